"""How meeting work gets done, from every trigger, through the one converger.

- `MeetingSync.after_change`: a user action or a payment saved the booking's new desired state
  (with its "needs work" marker, in the same transaction). The booking id goes to the
  `meeting-ops` queue (the outbox message), then one inline attempt runs under a short budget.
- `MeetingWorker.handle`: the queue worker. In-process retries 1 s / 2 s / 4 s (seed 000), then
  a delayed re-enqueue per `RetryPolicy.rounds` (about 30 s, 2 min, 10 min, 1 h, 6 h, with
  jitter, never sooner than Retry-After). A permanent error stops at once.
- When work stops for good, the meeting is `failed` and the message goes to
  `meeting-ops-poison`; `record_poisoned` (its trigger) writes the one ERROR log (a WARNING when
  the tenant's credential, consent, policy or organizer is the cause: the tenant's credential
  check alerts on those once) and the audit record.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared import telemetry
from shared.domain import convergence as facts
from shared.domain.audit import AuditEvent, AuditRecord
from shared.domain.booking import Booking
from shared.domain.tenant import Tenant
from shared.graph.errors import TENANT_CAUSED_CODES
from shared.meetings.converger import Converger, ConvergeResult
from shared.meetings.steps import StepError
from shared.observability import log_event
from shared.storage.audit import AuditRepository
from shared.storage.bookings import BookingRepository
from shared.storage.errors import NotFoundError, StorageError
from shared.storage.queues import PoisonedWork, WorkMessage, WorkQueue
from shared.work.policy import RetryPolicy, retried_in_process
from shared.work.rounds import RETRIES_EXHAUSTED, RetryRounds, poison

logger = logging.getLogger("meetings.work")


@dataclass(frozen=True)
class SyncResult:
    booking: Booking
    error: StepError | None = None
    # The change is saved; the meeting follows through the queue or the timer.
    deferred: bool = False


@dataclass
class Claiming:
    """A transition that takes, with the change it makes, the claim for the meeting step the
    change asks for (as the converger would take it before that step), so that the inline
    attempt after the save needs no claim write. A transition that changes nothing stays so."""

    transition: Callable[[Booking], Booking]
    converger: Converger
    token: str
    tenant: Tenant | None = None
    # Whether a create was in doubt before the claim (the claim of a create marks it so).
    doubt_before: bool = False

    def __call__(self, booking: Booking) -> Booking:
        changed = self.transition(booking)
        if changed is booking:
            return booking
        self.doubt_before = changed.meeting.create_in_doubt
        return self.converger.claim_ahead(changed, self.token, self.tenant)

    def claimed(self, saved: Booking) -> bool:
        return saved.meeting.claim_token == self.token


class MeetingSync:
    """The path of a trigger that changed a booking (user action, payment)."""

    def __init__(
        self,
        converger: Converger,
        queue: WorkQueue,
        policy: RetryPolicy,
        clock: Callable[[], datetime],
    ) -> None:
        self._converger = converger
        self._queue = queue
        self._policy = policy
        self._clock = clock

    def claiming(
        self, transition: Callable[[Booking], Booking], tenant: Tenant | None = None
    ) -> Claiming:
        """`transition`, saved with a claim for the meeting step it asks for, so that
        `after_change(..., claim=...)` starts that step without a claim write of its own."""
        return Claiming(transition, self._converger, uuid.uuid4().hex, tenant)

    def after_change(
        self,
        saved: Booking,
        *,
        actor: str | None,
        tenant: Tenant | None = None,
        claim: Claiming | None = None,
    ) -> SyncResult:
        """Send the outbox message, then one inline attempt within the budget. `tenant`: the
        booking's tenant as the caller read it in the same request (saves a read). `claim`:
        the transition `claiming` made of the change, if it was saved through one."""
        if not saved.needs_reconciliation:
            return SyncResult(saved)
        work = WorkMessage(saved.tenant_id, saved.booking_id)
        message_due = self._clock() + timedelta(seconds=self._policy.outbox_delay)
        try:
            self._queue.send(work, self._policy.outbox_delay)
        except StorageError:
            # The marker was saved with the booking: the reconciliation timer finds it.
            logger.warning("meeting work for booking %s not enqueued", saved.booking_id)
        try:
            result = self._converger.converge(
                saved.tenant_id,
                saved.booking_id,
                actor=actor,
                latest=saved,
                budget=self._policy.inline_budget,
                tenant=tenant,
                token=None if claim is None else claim.token,
                preclaimed=claim is not None and claim.claimed(saved),
                doubt_before=claim is not None and claim.doubt_before,
            )
        except StorageError:
            logger.warning("inline meeting attempt for %s stopped by storage", saved.booking_id)
            return SyncResult(saved, deferred=True)
        except Exception:
            # The user's change is saved, with its marker and queued message: the worker and
            # the timer take the meeting from here. The action itself must not look failed.
            logger.exception("inline meeting attempt for %s failed", saved.booking_id)
            return SyncResult(saved, deferred=True)
        error = result.error
        if error is not None and not error.retryable:
            stop(self._queue, result.booking, error, "permanent")
        elif error is not None and not result.busy:
            # The queued message owns the next attempt: the timer leaves the work alone until
            # it is due, or until Graph's Retry-After if that is later (the message then waits).
            at = max(message_due, self._clock() + timedelta(seconds=error.retry_after or 0))
            work_of = facts.Work.of(result.booking)
            booking = self._converger.record(
                result.booking,
                lambda b: facts.waits_until(b, at) if work_of.still(b) else b,
            )
            return SyncResult(booking, error)
        return SyncResult(result.booking, error, deferred=error is None and not result.converged)


class MeetingWorker:
    """The `meeting-ops` queue worker."""

    def __init__(
        self,
        bookings: BookingRepository,
        converger: Converger,
        queue: WorkQueue,
        policy: RetryPolicy,
        clock: Callable[[], datetime],
        *,
        sleep: Callable[[float], None] = time.sleep,
        rnd: Callable[[], float] = random.random,
    ) -> None:
        self._bookings = bookings
        self._converger = converger
        self._queue = queue
        self._policy = policy
        self._clock = clock
        self._sleep = sleep
        self._rounds = RetryRounds(
            "meeting", queue, policy, clock, logger, unsent_poison=_record_unsent, rnd=rnd
        )

    def handle(self, work: WorkMessage) -> ConvergeResult | None:
        """Converge the booking the message names. Storage errors propagate, so the host
        delivers the message again (and poisons it after maxDequeueCount)."""
        try:
            booking = self._bookings.get(work.tenant_id, work.booking_id)
        except NotFoundError:
            logger.warning("meeting work for unknown booking %s dropped", work.booking_id)
            return None
        if not booking.meeting.due(None, self._clock()) and booking.needs_reconciliation:
            self._wait_for_round(work, booking)
            return ConvergeResult(booking, not_due=True)
        # The round this message starts is this worker's: it alone retries in process and
        # schedules the next round, holding the booking's claim in between.
        token = uuid.uuid4().hex
        result = self._attempts(work, booking, token)
        error = result.error
        if result.busy:
            self._defer_to_holder(work, result.booking)
        elif result.not_due:
            self._wait_for_round(work, result.booking)
        elif error is not None and not error.retryable:
            stop(self._queue, result.booking, error, "permanent")
        elif error is not None:
            self.schedule(result.booking, error, token)
        elif not result.converged and not result.booking.meeting.failed:
            self._queue.send(work)  # more steps than one call takes: carry on at once
        return result

    def schedule(self, booking: Booking, error: StepError, token: str) -> Booking:
        """End the round under way, held by `token`'s claim: schedule the next delayed round
        of the booking's current work, or stop when its rounds are spent. Only the claim's
        holder does this, once per round; a round whose claim is gone (lapsed and taken, or
        new work saved meanwhile) is someone else's to end. The count lives on the booking:
        new work starts again at round 1, whatever messages of older work are on their way."""
        return self._rounds.end(
            booking,
            _MeetingRounds(facts.Work.of(booking), token, error.code, self._clock()),
            error,
            self._converger.record,
            lambda after, end: poisoned_work(after, error, end.reason or RETRIES_EXHAUSTED),
        )

    def _attempts(self, work: WorkMessage, booking: Booking, token: str) -> ConvergeResult:
        pauses = len(self._policy.in_process)

        def attempt(number: int) -> ConvergeResult:
            # Between attempts the claim covers the longest pause taken in process.
            hold = self._policy.max_in_process_wait if number < pauses else 0.0
            latest = booking if number == 0 else None
            return self._converger.converge(
                work.tenant_id, work.booking_id, latest=latest, token=token, hold=hold
            )

        # A round that another worker holds, or that is not due, has no error to retry.
        return retried_in_process(
            self._policy, self._sleep, attempt, lambda r: None if r.busy else r.error
        )

    def _wait_for_round(self, work: WorkMessage, booking: Booking) -> None:
        due = booking.meeting.next_attempt_at or self._clock()
        self._queue.send(work, max(0.0, (due - self._clock()).total_seconds()))

    def _defer_to_holder(self, work: WorkMessage, booking: Booking) -> None:
        # The holder re-reads after each step and carries on; if it died, its claim lapses.
        until = booking.meeting.claim_until or self._clock()
        self._queue.send(work, (until - self._clock()).total_seconds() + 1)


@dataclass(frozen=True)
class _MeetingRounds:
    """The rounds of the booking's current meeting work, ended by the holder of `token`."""

    work: facts.Work
    token: str
    error_code: str
    now: datetime

    def taken(self, booking: Booking) -> int | None:
        if not facts.owns_round(booking, self.work, self.token):
            return None
        return booking.meeting.rounds

    def scheduled(self, booking: Booking, at: datetime) -> Booking:
        return facts.retry_scheduled(booking, at, self.token)

    def stopped(self, booking: Booking, reason: str) -> Booking:
        return facts.gave_up(booking, self.error_code, self.now, self.token)


def stop(queue: WorkQueue, booking: Booking, error: StepError, reason: str) -> None:
    """Work stopped for good: the message goes to the poison queue, whose trigger records it."""
    poison(queue, poisoned_work(booking, error, reason), _record_unsent)


def poisoned_work(booking: Booking, error: StepError, reason: str) -> PoisonedWork:
    return PoisonedWork(
        booking.tenant_id,
        booking.booking_id,
        booking.meeting.rounds,
        reason=reason,
        step=booking.next_step.value,
        graph_status=error.status,
        error_code=error.code,
        requested_at=_iso(booking.meeting.requested_at),
    )


def _record_unsent(poisoned: PoisonedWork) -> None:
    # The booking already says `failed`; without the poison consumer, log it here.
    record_poisoned(poisoned, None, datetime.now().astimezone())


def record_poisoned(poisoned: PoisonedWork, audit: AuditRepository | None, now: datetime) -> None:
    """The poison queue's consumer: one ERROR log and an audit record. Never raises, so that a
    poison message cannot itself be poisoned; a message the host poisoned after crashes keeps
    its booking's marker, and the reconciliation timer converges it once storage answers."""
    # A credential, consent, policy or organizer failure is the tenant's, and the tenant's
    # credential check raises its one ERROR (tenant_credential_unhealthy): each booking it
    # stops is a WARNING, so that a hundred bookings are not a hundred alerts.
    tenant_caused = poisoned.error_code in TENANT_CAUSED_CODES
    log_event(
        logger,
        logging.WARNING if tenant_caused else logging.ERROR,
        "meeting_work_failed",
        tenant=poisoned.tenant_id,
        bookingId=poisoned.booking_id,
        operation=poisoned.step,
        graphStatus=poisoned.graph_status,
        errorCode=poisoned.error_code,
        reason=poisoned.reason or "host_poisoned",
        round=poisoned.round,
    )
    telemetry.count(
        "operations",
        outcome="failed",
        operation=poisoned.step or "unknown",
        tenant=poisoned.tenant_id,
    )
    if audit is None:
        return
    record = AuditRecord(
        tenant_id=poisoned.tenant_id,
        booking_id=poisoned.booking_id,
        event=AuditEvent.MEETING_FAILED,
        occurred_at=now,
        record_id=uuid.uuid4().hex,
        operation=poisoned.step or "unknown",
        attempt=poisoned.round,
        graph_status=poisoned.graph_status,
        error_code=poisoned.error_code or poisoned.reason or "host_poisoned",
        requested_at=_parse_iso(poisoned.requested_at),
    )
    try:
        audit.add(record)
    except StorageError:
        logger.exception("audit record of failed work not stored for %s", poisoned.booking_id)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def _parse_iso(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
