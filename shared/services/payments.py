"""Stripe payments confirm bookings (SPEC §6).

Receiving an event:
1. The signature is checked over the raw bytes (`shared.payments.events.verify`).
2. What the event says about a booking is taken from it; other event types are ignored (200).
3. The event is *recorded* (a conditional insert, with a "pending" row in the same
   transaction). A second delivery meets the record and does nothing more; 20 at once, the same.
4. The fact is applied to the booking by the state it describes (`record_payment`): the
   booking's payment facts merge, so order and repetition cannot change the outcome.
5. The record is marked applied (its pending row deleted); then the change's follow-up
   (`FollowUp`): the meeting converges through `MeetingSync` (outbox message + one inline
   attempt under the short budget), then the mail outbox message.

If storage fails between 3 and 5, the receiver gives its claim up before answering 503, so the
next delivery applies the event at once. If the process stops there, the pending row stays and
the record's short claim lapses: then a redelivery of the event, or the reconciliation timer,
applies it again (applying is idempotent). Events Stripe failed to deliver are listed from its
API by the timer (with `STRIPE_API_KEY`) and go through the same steps.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol, TypeVar

from shared.domain.booking import Booking, record_payment
from shared.domain.payment import BookingRef, FactKind
from shared.mail.delivery import MailOutbox
from shared.meetings.worker import MeetingSync
from shared.observability import log_event
from shared.payments.events import StripeEvent, interpret, verify
from shared.services.attendance import attending
from shared.services.follow_up import FollowUp
from shared.services.transitions import save_transition
from shared.storage.bookings import BookingRepository
from shared.storage.errors import (
    AlreadyExistsError,
    ConcurrencyError,
    NotFoundError,
    StorageError,
)
from shared.storage.payment_events import EventState, PaymentEventRepository, RecordedEvent
from shared.storage.tenant_directory import TenantDirectory
from shared.work.kinds import KindWorker

logger = logging.getLogger("meetings.payments")
T = TypeVar("T")

# How long a receiver has to apply an event before a redelivery or the timer may take over.
APPLY_CLAIM = timedelta(seconds=30)
RECOVERY_WINDOW = timedelta(days=3)
# Receivers that may try to apply one event (the first and take-overs) before it is given up.
MAX_APPLY_ATTEMPTS = 6


class Outcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"  # recorded before: nothing more is done
    IGNORED = "ignored"  # an event type (or an unpaid checkout) that changes no booking
    PARKED = "parked"  # a refund without metadata before its payment: applied when it comes
    REJECTED = "rejected"  # names no booking of ours; logged as an error, never retried


@dataclass(frozen=True)
class Receipt:
    """What the webhook answers Stripe. A Graph failure of the meeting is not Stripe's
    concern: it is on the booking's meeting state, and the queue retries it."""

    event_id: str
    outcome: Outcome


@dataclass
class RecoveryReport:
    pending: int = 0
    resumed: int = 0
    listed: int = 0
    recovered: int = 0
    errors: int = 0


class UndeliveredEvents(Protocol):
    """Where missed events come from: Stripe's API (`shared.payments.source`)."""

    def list_since(self, since: datetime) -> Iterable[StripeEvent]:
        """Events created since `since` whose webhook delivery failed."""
        ...


class PaymentEvents:
    def __init__(
        self,
        events: PaymentEventRepository,
        bookings: BookingRepository,
        directory: TenantDirectory,
        sync: MeetingSync,
        clock: Callable[[], datetime],
        *,
        webhook_secret: str,
        mail: MailOutbox | None = None,
        kinds: KindWorker | None = None,
        undelivered: UndeliveredEvents | None = None,
    ) -> None:
        self._events = events
        self._bookings = bookings
        self._directory = directory
        self._sync = sync
        self._clock = clock
        self._secret = webhook_secret
        self._follow_up = FollowUp(sync, mail, kinds)
        self._undelivered = undelivered

    def receive_webhook(self, raw: bytes, signature: str | None) -> Receipt:
        """A webhook request: verified, then received. `WebhookError` if not from Stripe."""
        return self.receive(verify(raw, signature, self._secret), source="webhook")

    def receive(self, event: StripeEvent, *, source: str) -> Receipt:
        meaning = interpret(event)
        if meaning.fact is None:
            log_event(
                logger,
                logging.INFO,
                "payment_event_ignored",
                eventId=event.event_id,
                type=event.type,
                reason=meaning.ignored,
            )
            return Receipt(event.event_id, Outcome.IGNORED)
        now = self._clock()
        record = RecordedEvent(
            event_id=event.event_id,
            type=event.type,
            state=EventState.RECEIVED,
            received_at=now,
            source=source,
            ref=meaning.ref,
            fact=meaning.fact,
            claim_until=now + APPLY_CLAIM,
        )
        try:
            record = self._events.record(record)
        except AlreadyExistsError:
            taken = self._take_over(self._events.get(event.event_id))
            if taken is None:
                return Receipt(event.event_id, Outcome.DUPLICATE)
            record = taken
        return self._apply_or_let_go(record)

    def recover(self) -> RecoveryReport:
        """The timer's part: events recorded but not applied (their receiver stopped), then
        events Stripe failed to deliver in the last three days."""
        report = RecoveryReport()
        try:
            pending = self._events.list_pending()
        except StorageError:
            logger.exception("pending payment events could not be read")
            pending = []
            report.errors += 1
        for record in pending:
            report.pending += 1
            taken = self._guarded(functools.partial(self._take_over, record), report)
            if taken is not None:
                self._guarded(functools.partial(self._apply_or_let_go, taken), report)
                report.resumed += 1
        if self._undelivered is not None:
            self._recover_undelivered(self._undelivered, report)
        log_event(logger, logging.INFO, "payment_recovery_run", **report.__dict__)
        return report

    def _recover_undelivered(self, source: UndeliveredEvents, report: RecoveryReport) -> None:
        try:
            for event in source.list_since(self._clock() - RECOVERY_WINDOW):
                report.listed += 1
                receipt = self._guarded(functools.partial(self.receive, event, source="recovery"))
                if receipt is None:
                    report.errors += 1
                elif receipt.outcome is Outcome.APPLIED:
                    report.recovered += 1
        except Exception:
            # Stripe unreachable or refusing the key: the next run asks again.
            report.errors += 1
            logger.exception("listing undelivered Stripe events failed")

    def _take_over(self, record: RecordedEvent) -> RecordedEvent | None:
        """The record, claimed, if its receiver stopped half-way; None if it is done or
        someone is applying it now."""
        now = self._clock()
        if record.state is not EventState.RECEIVED or record.claimed(now):
            return None
        try:
            claimed = self._events.claim(record, now + APPLY_CLAIM)
        except ConcurrencyError:
            return None
        if claimed.attempts > MAX_APPLY_ATTEMPTS:
            # It failed every time for a reason retrying does not change: stop, loudly.
            self._reject(claimed, "gave_up_after_attempts", claimed.ref)
            return None
        return claimed

    def _apply_or_let_go(self, record: RecordedEvent) -> Receipt:
        """Apply the record this receiver holds. If storage fails half-way, the claim is given
        up before the error reaches the caller (a 503 to Stripe, or the timer's log), so that
        the next delivery takes the event over at once instead of finding it held and
        answering "duplicate" with nothing applied. (If giving it up fails too, the claim
        lapses: the timer, or a redelivery after it, applies the event.)"""
        try:
            return self._apply(record)
        except StorageError:
            with contextlib.suppress(StorageError):
                self._events.release(record)
            raise

    def _apply(self, record: RecordedEvent) -> Receipt:
        fact = record.fact
        assert fact is not None  # only events with a fact are recorded
        ref = record.ref
        if ref is None and fact.kind is FactKind.REFUNDED and fact.intent_id:
            # A charge without metadata: its intent names the booking once its success came.
            ref = self._events.park(fact.intent_id, record.event_id, fact)
            if ref is None:
                return self._park(record)
        if ref is None:
            return self._reject(record, "no_booking_reference")
        try:
            booking = self._bookings.get(ref.tenant_id, ref.booking_id)
        except NotFoundError:
            known = self._directory.is_known(ref.tenant_id)
            return self._reject(record, "unknown_booking" if known else "unknown_tenant", ref)
        facts = [fact]
        if fact.kind is FactKind.SUCCEEDED and fact.intent_id:
            # Before the booking changes, so that a refund racing this success finds the booking.
            facts += [p.fact for p in self._events.link_intent(fact.intent_id, ref)]
        tenant = self._directory.get(ref.tenant_id, recent=True)
        with_meeting = tenant.meeting_capability().available
        now = self._clock()

        def apply_all(b: Booking) -> Booking:
            for each in facts:
                b = record_payment(b, each, now=now, with_meeting=with_meeting)
            return b

        # The claim for the meeting step the payment asks for is saved with it.
        claim = self._sync.claiming(attending(apply_all, tenant), tenant)
        saved = save_transition(self._bookings, booking, claim)
        try:
            self._events.finish(record, EventState.APPLIED, saved.status.value, self._clock())
        except ConcurrencyError:
            # Our claim lapsed and another receiver took the event over: it finishes it (the
            # booking already holds the fact, so its work is a no-op).
            logger.warning("payment event %s was taken over while applied", record.event_id)
        log_event(
            logger,
            logging.INFO,
            "payment_event_applied",
            eventId=record.event_id,
            type=record.type,
            tenant=ref.tenant_id,
            bookingId=ref.booking_id,
            parkedApplied=len(facts) - 1 or None,
            bookingStatus=saved.status.value,
            paymentStatus=saved.payment.status.value,
        )
        self._follow_up.after_change(saved, actor="stripe", tenant=tenant, claim=claim)
        return Receipt(record.event_id, Outcome.APPLIED)

    def _park(self, record: RecordedEvent) -> Receipt:
        log_event(
            logger,
            logging.WARNING,
            "payment_event_parked",
            eventId=record.event_id,
            type=record.type,
            reason="refund before the payment that names its booking",
        )
        with contextlib.suppress(ConcurrencyError):  # taken over: the other receiver finishes
            self._events.finish(record, EventState.PARKED, "awaiting_payment", self._clock())
        return Receipt(record.event_id, Outcome.PARKED)

    def _reject(self, record: RecordedEvent, reason: str, ref: BookingRef | None = None) -> Receipt:
        # Stripe cannot fix this by sending the event again: 200, and an error for people.
        log_event(
            logger,
            logging.ERROR,
            "payment_event_rejected",
            eventId=record.event_id,
            type=record.type,
            tenant=ref.tenant_id if ref else None,
            bookingId=ref.booking_id if ref else None,
            reason=reason,
        )
        with contextlib.suppress(ConcurrencyError):  # taken over: the other receiver finishes
            self._events.finish(record, EventState.REJECTED, reason, self._clock())
        return Receipt(record.event_id, Outcome.REJECTED)

    @staticmethod
    def _guarded(work: Callable[[], T], report: RecoveryReport | None = None) -> T | None:
        """One event's trouble must not stop the timer for the others."""
        try:
            return work()
        except Exception:
            if report is not None:
                report.errors += 1
            logger.exception("recovering a payment event failed")
            return None
