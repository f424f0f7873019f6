"""Mail delivery through the `mail` outbox queue (SPEC §8), the meeting work's pattern again.

- A change that owes mail saves its notice on the booking (same transaction as the change);
  `MailOutbox.after_change` then sends the booking id to the `mail` queue. A lost enqueue is
  found by the timer (`MailSweep`) through the booking's `m|` marker row.
- `MailWorker.handle` renders each pending notice from the booking's latest state and sends it
  to each recipient, once: the ledger's claim comes before the send and its mark after.
  Notices pile up while mail waits (for the link, a retry, a slot): each recipient is sent
  only the newest one due to them, worded for what they have not had yet (the mail story
  rule, `notices.told_as`), and the older ones finish with it.
  A notice waits while the booking's Teams meeting is still being made (so the first e-mail
  carries the link), at most `link_wait`; then it goes without the link rather than never.
- Transient failures: in-process retries after 1 s, 2 s, 4 s, then delayed rounds by
  re-enqueueing (about 30 s, 2 min, 10 min, 1 h, 6 h, never sooner than Retry-After). A
  permanent failure, or the last round, finishes the notice as failed (the booking says so) and
  sends it to `mail-poison`, whose consumer logs it. The user's action never fails for mail.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import Enum
from functools import partial

from shared.domain import notices
from shared.domain.booking import MAIL_WORK, Booking
from shared.domain.notices import Notice, NoticeKind
from shared.domain.tenant import Tenant
from shared.mail.ics import Organizer, invite
from shared.mail.messages import OutgoingMail
from shared.mail.rendering import (
    MailRenderer,
    Recipient,
    join_url_of,
    recipients,
    recipients_of,
)
from shared.mail.strings import Strings
from shared.mail.transports import (
    MailError,
    MailRecipientRefusedError,
    MailTransport,
    Sender,
    SendPacer,
)
from shared.observability import log_event
from shared.storage.bookings import BookingRepository
from shared.storage.errors import NotFoundError, StorageError
from shared.storage.mail import Claim, ClaimOutcome, MailKey, MailLedger
from shared.storage.queues import PoisonedWork, WorkMessage, WorkQueue
from shared.storage.tenant_directory import TenantDirectory
from shared.work.policy import DUE_SLACK, RetryPolicy, retried_in_process
from shared.work.record import record_on_latest
from shared.work.rounds import RetryRounds, RoundEnd
from shared.work.sweep import MarkerSweep

logger = logging.getLogger("meetings.mail")

# While a notice waits for its meeting's link, the booking is looked at again this often.
LINK_POLL_SECONDS = 15.0


_PACE_TRIES = 10


def lease_for(timeout_seconds: float, policy: RetryPolicy) -> timedelta:
    """A claim that outlives one send: every try at its timeout, the pauses between, a margin."""
    tries = len(policy.in_process) + 1
    longest = tries * timeout_seconds + sum(policy.in_process) + 30.0
    return timedelta(seconds=max(120.0, longest))


# How soon a closing notice looks again when another worker holds an earlier notice's mail.
HELD_RECHECK_SECONDS = 2.0


@dataclass(frozen=True)
class MailConfig:
    link_wait: timedelta = timedelta(minutes=10)
    # Longer than one send with its in-process retries (`lease_for`), so that no other worker
    # takes a mail over while it is still being tried.
    lease: timedelta = timedelta(minutes=2)
    policy: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass
class MailReport:
    sent: int = 0
    already_sent: int = 0
    waiting: bool = False
    deferred_seconds: float | None = None
    failed: bool = False
    error_code: str | None = None


@dataclass(frozen=True)
class Delivered:
    """Every recipient has the notice (now or from an earlier try), as of `at`."""

    at: datetime
    without_link: bool
    told: notices.Told | None = None

    def fact(self, number: int) -> Callable[[Booking], Booking]:
        return partial(
            notices.delivered,
            number=number,
            now=self.at,
            without_link=self.without_link,
            told=self.told,
        )


@dataclass(frozen=True)
class Dropped:
    """A later notice says it all (`notices.superseded`): this one finishes without a mail."""

    def fact(self, number: int) -> Callable[[Booking], Booking]:
        return partial(notices.dropped, number=number)


@dataclass(frozen=True)
class Deferred:
    """Not now. The report notes `seconds`; the queue brings the message back after `delay`.
    `waiting`: for the meeting's link or the notice's next round, not for a claim or a slot."""

    seconds: float
    delay: float
    waiting: bool = False


@dataclass(frozen=True)
class Failed:
    """A send failed: the notice's rounds schedule it again or poison it. `refused`: only
    addresses that can never have it, the others got theirs and the next notice may go."""

    error: MailError
    refused: bool = False


@dataclass(frozen=True)
class NoticeResult:
    """What became of one notice, and how many of its e-mails went now or had gone before."""

    outcome: Delivered | Dropped | Deferred | Failed
    sent: int = 0
    already_sent: int = 0
    # Who was sent it now, when it went without the join link.
    without_link: tuple[str, ...] = ()


class _Sent(Enum):
    """One recipient's e-mail went now, or had gone before (the ledger says so)."""

    NOW = "now"
    BEFORE = "before"


class MailOutbox:
    """The path of a trigger that saved a change with a notice: the outbox message."""

    def __init__(self, queue: WorkQueue) -> None:
        self._queue = queue

    def after_change(self, saved: Booking) -> None:
        """Never raises: a lost message is found by the timer through the mail marker."""
        if not saved.mail.pending:
            return
        try:
            self._queue.send(WorkMessage(saved.tenant_id, saved.booking_id))
        except StorageError:
            logger.warning(
                "mail for booking %s not enqueued; the timer will send it", saved.booking_id
            )

    def after_meeting(self, booking: Booking) -> None:
        """The meeting worker moved the booking on: mail that waited for the meeting, or that
        its arrival called for, goes now rather than at the next look. Nothing while the
        meeting is still being made (the waiting mail looks again by itself)."""
        if booking.mail.pending and not notices.waiting_for_link(booking):
            self.after_change(booking)


SenderOf = Callable[[Tenant], Sender]


class MailWorker:
    """The `mail` queue worker."""

    def __init__(
        self,
        bookings: BookingRepository,
        tenants: TenantDirectory,
        ledger: MailLedger,
        transport: MailTransport,
        queue: WorkQueue,
        sender_of: SenderOf,
        clock: Callable[[], datetime],
        *,
        config: MailConfig | None = None,
        renderer: MailRenderer | None = None,
        pacer: SendPacer | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rnd: Callable[[], float] = random.random,
    ) -> None:
        self._bookings = bookings
        self._tenants = tenants
        self._ledger = ledger
        self._transport = transport
        self._queue = queue
        self._sender_of = sender_of
        self._clock = clock
        self._config = config or MailConfig()
        self._renderer = renderer or MailRenderer()
        self._pacer = pacer or SendPacer(30)
        self._sleep = sleep
        self._rounds = RetryRounds(
            "mail",
            queue,
            self._config.policy,
            clock,
            logger,
            unsent_poison=record_mail_poisoned,
            rnd=rnd,
        )

    def handle(self, work: WorkMessage, *, requeue: bool = True) -> MailReport:
        """Send what the booking owes. `requeue=False` (the timer): leave waiting notices for
        the next look instead of scheduling one, so timer runs never multiply messages.
        Storage errors propagate, so the host delivers the message again."""
        report = MailReport()
        try:
            booking = self._bookings.get(work.tenant_id, work.booking_id)
        except NotFoundError:
            logger.warning("mail for unknown booking %s dropped", work.booking_id)
            return report
        pending = booking.mail.pending
        told, unsure = self._told(booking)
        if unsure is not None:
            # Another worker holds an earlier notice's mail: whether it goes decides who is
            # told of the closing one. Look again once that is settled.
            self._defer(work, Deferred(unsure, delay=unsure), report, requeue)
            return report
        # Notices whose every recipient is due a later one: that one tells them all this one
        # would, from the booking as it is now (the mail story rule). They finish with it.
        absorbed: list[Notice] = []
        for notice in pending:
            if booking.mail.notice(notice.number) is None:
                # Finished meanwhile by another worker (the latest version, as recorded here,
                # says so): it is not this one's to send, nor to count among those told.
                continue
            if _absorbed(booking, notice, pending, told):
                absorbed.append(notice)
                continue
            result = self._attempt(booking, notice, absorbed, told)
            report.sent += result.sent
            report.already_sent += result.already_sent
            match result.outcome:
                case Delivered() | Dropped() as finished:
                    booking = self._record(
                        booking, _with_absorbed(finished.fact(notice.number), absorbed)
                    )
                    absorbed = []
                case Deferred() as deferred:
                    booking = self._partly_without_link(booking, notice, result)
                    self._defer(work, deferred, report, requeue)
                    break
                case Failed(error=error, refused=refused):
                    report.failed = True
                    report.error_code = error.code
                    booking = self._partly_without_link(booking, notice, result)
                    booking = self._failed(work, booking, notice, error, requeue)
                    if absorbed and booking.mail.notice(notice.number) is None:
                        # It finished as failed: what it was to tell finishes with it.
                        booking = self._record(booking, _with_absorbed(lambda b: b, absorbed))
                    absorbed = []
                    if not refused:
                        break
        return report

    def _partly_without_link(
        self, booking: Booking, notice: Notice, result: NoticeResult
    ) -> Booking:
        """Some had the notice without the link and others have yet to: remember who, so that
        if the others get it with the link, these are sent the link."""
        if not result.without_link:
            return booking
        return self._record(
            booking,
            partial(notices.sent_without_link, number=notice.number, addresses=result.without_link),
        )

    def _told(self, booking: Booking) -> tuple[frozenset[str], float | None]:
        """The addresses that have had a notice still pending for others, when a closing notice
        is to go and no notice has finished yet (so `recipients_of` knows who was told); with
        the seconds to wait when another worker holds one of those mails (sending it, or only
        looking, as this does), since whether it goes is not known yet (else None)."""
        mail = booking.mail
        if mail.sent or mail.failed or not any(n.kind.closing for n in mail.pending):
            return frozenset(), None
        now = self._clock()
        told: set[str] = set()
        for notice in mail.pending:
            if notice.kind.closing:
                continue
            for person in recipients(booking):
                key = MailKey(booking.tenant_id, booking.booking_id, notice.number, person.email)
                claim = self._ledger.claim(key, now, now + self._config.lease)
                if claim.outcome is ClaimOutcome.CLAIMED:
                    self._ledger.release(claim)  # not had, only looked at
                elif claim.outcome is ClaimOutcome.SENT:
                    told.add(person.email.lower())
                else:
                    held = (claim.until - now).total_seconds() if claim.until else 0.0
                    return frozenset(told), max(1.0, min(HELD_RECHECK_SECONDS, held))
        return frozenset(told), None

    def _attempt(
        self,
        booking: Booking,
        notice: Notice,
        absorbed: Sequence[Notice] = (),
        told: Collection[str] = (),
    ) -> NoticeResult:
        """What becomes of `notice` now: it waits, is dropped, or goes to its recipients. It
        waits no longer for the link than the oldest notice it tells would have."""
        since = min((n.recorded_at for n in (*absorbed, notice)), default=notice.recorded_at)
        now = self._clock()
        wait = self._wait_for(booking, replace(notice, recorded_at=since), now)
        if wait is not None:
            return NoticeResult(Deferred(wait, delay=wait, waiting=True))
        if notices.superseded(booking, notice, now):
            return NoticeResult(Dropped())
        return self._deliver(booking, notice, absorbed, told)

    def _defer(
        self, work: WorkMessage, deferred: Deferred, report: MailReport, requeue: bool
    ) -> None:
        """Look again later: the queue brings the message back, unless the timer is the caller."""
        report.waiting = deferred.waiting
        report.deferred_seconds = deferred.seconds
        if requeue:
            self._queue.send(work, deferred.delay)

    def _wait_for(self, booking: Booking, notice: Notice, now: datetime) -> float | None:
        """Seconds to wait before notice can go, or None when it may go now."""
        due = notice.next_attempt_at
        if due is not None and due - now > DUE_SLACK:
            return (due - now).total_seconds()
        if not notices.due(booking, notice, now, self._config.link_wait):
            left = (notice.recorded_at + self._config.link_wait - now).total_seconds()
            return max(1.0, min(LINK_POLL_SECONDS, left))
        return None

    def _deliver(
        self,
        booking: Booking,
        notice: Notice,
        absorbed: Sequence[Notice] = (),
        told: Collection[str] = (),
    ) -> NoticeResult:
        """Notice to each recipient, telling them the `absorbed` notices they have not had. A
        refused address does not stop the others; anything else that stops one recipient
        stops the notice there."""
        tenant = self._tenants.get(booking.tenant_id)
        sender = self._sender_of(tenant)
        # The invite's ORGANIZER is the mail's From (RFC 6047 §3: clients check they match).
        organizer = Organizer(sender.address, sender.name or tenant.display_name)
        sent = already_sent = 0
        sent_to: list[str] = []
        refused: Failed | None = None
        without_link = booking.live and booking.meeting.wanted and not booking.meeting.in_teams
        for person in recipients_of(booking, notice, told):
            address = person.email.lower()
            earlier = [
                n
                for n in absorbed
                if any(r.email.lower() == address for r in recipients_of(booking, n, told))
            ]
            outcome = self._deliver_to(
                booking,
                notice,
                person,
                sender,
                organizer,
                earlier,
                default_locale=tenant.locale,
            )
            if outcome is _Sent.NOW:
                sent += 1
                sent_to.append(address)
            elif outcome is _Sent.BEFORE:
                already_sent += 1
            elif isinstance(outcome, Failed) and outcome.refused:
                refused = outcome
            else:
                return NoticeResult(outcome, sent, already_sent, _if(without_link, sent_to))
        if refused is not None:
            return NoticeResult(refused, sent, already_sent, _if(without_link, sent_to))
        # What this mail said, from the version it was rendered from.
        return NoticeResult(
            Delivered(self._clock(), without_link, _view(booking)), sent, already_sent
        )

    def _deliver_to(
        self,
        booking: Booking,
        notice: Notice,
        person: Recipient,
        sender: Sender,
        organizer: Organizer,
        earlier: Sequence[Notice] = (),
        *,
        default_locale: str | None = None,
    ) -> _Sent | Deferred | Failed:
        """Notice to one recipient, once: the ledger's claim before the send, its mark after.
        The `earlier` notices this recipient has not had are claimed with it and marked with
        it, so that no worker still holding them sends them after this one, and the mail is
        worded for them (`notices.told_as`)."""
        now = self._clock()
        until = now + self._config.lease
        key = MailKey(booking.tenant_id, booking.booking_id, notice.number, person.email)
        claim = self._ledger.claim(key, now, until)
        if claim.outcome is ClaimOutcome.SENT:
            return _Sent.BEFORE
        if claim.outcome is ClaimOutcome.HELD:
            return _held(claim, now)
        claims = [claim]
        run = []
        # Their calendar holds what the last notice delivered to all told, unless one of the
        # notices still pending reached them since.
        since_told = False
        for before in earlier:
            had = self._ledger.claim(
                MailKey(booking.tenant_id, booking.booking_id, before.number, person.email),
                now,
                until,
            )
            if had.outcome is ClaimOutcome.SENT:
                since_told = True
                continue
            if had.outcome is ClaimOutcome.HELD:
                self._release(claims)
                return _held(had, now)
            claims.append(had)
            run.append(before.kind)
        told = replace(notice, kind=notices.told_as([*run, notice.kind]))
        if not since_told and _nothing_new(booking, told, run):
            # Moved and moved back, say, before they heard: nothing to tell them.
            sent_at = self._clock()
            for taken in claims:
                self._ledger.mark_sent(taken, sent_at)
            return _Sent.BEFORE
        pause = self._pace(sender.address)
        if pause > self._config.policy.max_in_process_wait:
            self._release(claims)
            return Deferred(pause, delay=pause)
        error = self._send_to(
            booking, told, person, sender, organizer, key, default_locale=default_locale
        )
        if error is None:
            sent_at = self._clock()
            for taken in claims:
                self._ledger.mark_sent(taken, sent_at)
            return _Sent.NOW
        self._release(claims)
        if not isinstance(error, MailRecipientRefusedError):
            return Failed(error)
        # This address cannot have it, whatever we retry; the others still get theirs.
        log_event(
            logger,
            logging.WARNING,
            "mail_recipient_refused",
            tenant=booking.tenant_id,
            bookingId=booking.booking_id,
            notice=notice.number,
            role=person.role.value,
            errorCode=error.code,
        )
        return Failed(error, refused=True)

    def _release(self, claims: Sequence[Claim]) -> None:
        for claim in claims:
            self._ledger.release(claim)

    def _pace(self, sender: str) -> float:
        """0 once a send slot is booked (after a short wait, if one frees soon); else the
        seconds until one frees, for the queue to wait instead of a thread."""
        pause = self._pacer.take(sender)
        for _ in range(_PACE_TRIES):
            if not 0 < pause <= self._config.policy.max_in_process_wait:
                break
            self._sleep(pause)
            pause = self._pacer.take(sender)  # others may have taken the slot meanwhile
        return pause

    def _send_to(
        self,
        booking: Booking,
        notice: Notice,
        person: Recipient,
        sender: Sender,
        organizer: Organizer,
        key: MailKey,
        *,
        default_locale: str | None = None,
    ) -> MailError | None:
        """Compose this recipient's e-mail and send it; the error that stopped it, if any."""
        now = self._clock()
        try:
            rendered = self._renderer.render(
                booking,
                notice,
                person,
                sender.name or "",
                sender.branding,
                default_locale=default_locale,
            )
            mail = OutgoingMail(
                key=str(key),
                sender=sender.address,
                sender_name=sender.name,
                to=person.email,
                to_name=person.name,
                subject=rendered.subject,
                text=rendered.text,
                html=rendered.html,
                invite=None
                if notice.kind.for_staff
                else invite(
                    booking,
                    kind=notice.kind,
                    sequence=notice.sequence,
                    organizer=organizer,
                    now=now,
                    strings=Strings(rendered.language),
                ),
                method="CANCEL" if notice.kind.closing else "REQUEST",
                sent_at=now,
                reply_to=sender.branding.reply_to,
                language=rendered.language,
            )
        except Exception as exc:
            # Text or an address the mail and calendar libraries cannot write: no retry helps.
            logger.exception("mail for booking %s could not be composed", booking.booking_id)
            reason = f"the mail cannot be written ({type(exc).__name__})"
            return MailRecipientRefusedError(reason, "bad_content")
        return self._send(mail, sender, booking.booking_id)

    def _send(self, mail: OutgoingMail, sender: Sender, booking_id: str) -> MailError | None:
        """One send, with the in-process retries for transient failures."""

        def attempt(_: int) -> MailError | None:
            try:
                self._transport.send(mail, sender, booking_id)
            except MailError as error:
                return error
            return None

        return retried_in_process(self._config.policy, self._sleep, attempt, lambda e: e)

    def _failed(
        self, work: WorkMessage, booking: Booking, notice: Notice, error: MailError, requeue: bool
    ) -> Booking:
        def poisoned(_: Booking, end: RoundEnd) -> PoisonedWork:
            return PoisonedWork(
                booking.tenant_id,
                booking.booking_id,
                notice.rounds,
                reason=end.reason,
                step="email",
                error_code=error.code,
                notice=notice.number,
                notice_kind=notice.kind.value,
                sequence=notice.sequence,
            )

        return self._rounds.end(
            booking,
            _NoticeRounds(notice.number, error.code, self._clock()),
            error,
            self._record,
            poisoned,
            requeue=requeue,
            notice=notice.number,
        )

    def _record(self, booking: Booking, fact: Callable[[Booking], Booking]) -> Booking:
        """Save `fact` on the latest version of the booking (user actions win races)."""
        return record_on_latest(
            self._bookings,
            booking,
            fact,
            what="mail progress",
        )


def _held(claim: Claim, now: datetime) -> Deferred:
    """Another worker is sending it; look again once its lease has run out."""
    held = ((claim.until or now) - now).total_seconds() + 1
    return Deferred(held, delay=max(held, 1.0))


def _view(booking: Booking) -> notices.Told | None:
    """What an invite of the booking carries now: its times and join link, while it is on."""
    if not booking.live:
        return None
    return notices.Told(booking.start, booking.end, join_url_of(booking, NoticeKind.RESCHEDULED))


def _nothing_new(booking: Booking, told: Notice, run: Sequence[NoticeKind]) -> bool:
    """A change of time or link whose mail would leave their calendar as the last one did
    (a link owed to them is always news: their last mail went without it)."""
    changes = (NoticeKind.RESCHEDULED, NoticeKind.LINK_CHANGED)
    if told.kind not in changes or NoticeKind.LINK_READY in run:
        return False
    return booking.mail.told is not None and booking.mail.told == _view(booking)


def _if(condition: bool, addresses: Sequence[str]) -> tuple[str, ...]:
    return tuple(addresses) if condition else ()


def _absorbed(
    booking: Booking, notice: Notice, pending: Sequence[Notice], told: Collection[str]
) -> bool:
    """Every recipient of `notice` is due a later pending notice that will go (the mail story
    rule: that one tells them the booking as it is now, in one mail)."""
    later = [n for n in pending if n.number > notice.number and not notices.superseded(booking, n)]
    if not later:
        return False
    due = {r.email.lower() for n in later for r in recipients_of(booking, n, told)}
    return all(r.email.lower() in due for r in recipients_of(booking, notice, told))


def _with_absorbed(
    fact: Callable[[Booking], Booking], absorbed: Sequence[Notice]
) -> Callable[[Booking], Booking]:
    """`fact`, with the notices the finished one told (or was to tell) finished too."""

    def recorded(booking: Booking) -> Booking:
        for notice in absorbed:
            booking = notices.dropped(booking, notice.number)
        return fact(booking)

    return recorded


@dataclass(frozen=True)
class _NoticeRounds:
    """The rounds of notice `number`, kept on the notice itself."""

    number: int
    error_code: str
    now: datetime

    def taken(self, booking: Booking) -> int | None:
        notice = booking.mail.notice(self.number)
        return None if notice is None else notice.rounds

    def scheduled(self, booking: Booking, at: datetime) -> Booking:
        failed = notices.attempt_failed(
            booking, self.number, self.error_code, permanent=False, now=self.now
        )
        return notices.retry_scheduled(failed, self.number, at)

    def stopped(self, booking: Booking, reason: str) -> Booking:
        return notices.attempt_failed(
            booking, self.number, self.error_code, permanent=True, now=self.now
        )


def record_mail_poisoned(poisoned: PoisonedWork) -> None:
    """The `mail-poison` consumer: one ERROR log. The booking already says the mail failed."""
    log_event(
        logger,
        logging.ERROR,
        "mail_failed",
        tenant=poisoned.tenant_id,
        bookingId=poisoned.booking_id,
        operation="email",
        errorCode=poisoned.error_code,
        reason=poisoned.reason or "host_poisoned",
        round=poisoned.round,
        notice=poisoned.notice,
    )


@dataclass
class SweepReport:
    tenants: int = 0
    marked: int = 0
    sent: int = 0
    errors: int = 0
    out_of_time: bool = False
    failed_tenants: list[str] = field(default_factory=list)

    @property
    def owing(self) -> int:
        """Bookings listed as owing mail."""
        return self.marked


class MailSweep:
    """The timer's part: mail whose queue message was lost (or poisoned by crashes) still goes.
    It reads the tenants and each tenant's `m|` marker rows, never the whole table."""

    def __init__(
        self,
        bookings: BookingRepository,
        tenants: TenantDirectory,
        worker: MailWorker,
        clock: Callable[[], datetime],
        *,
        budget_seconds: float = 120.0,
        per_tenant: int = 200,
    ) -> None:
        self._worker = worker
        self._budget = budget_seconds
        self._sweep = MarkerSweep(
            bookings,
            tenants,
            MAIL_WORK,
            clock,
            per_tenant=per_tenant,
            logger=logger,
            what="mail sweep",
        )

    def run(self) -> SweepReport:
        report = SweepReport()

        def send(booking: Booking) -> None:
            done = self._worker.handle(
                WorkMessage(booking.tenant_id, booking.booking_id), requeue=False
            )
            report.sent += done.sent

        self._sweep.run(send, report, time.monotonic() + self._budget)
        log_event(logger, logging.INFO, "mail_sweep", **vars(report))
        return report


@dataclass(frozen=True)
class MailServices:
    """The mail side of the app, as bootstrap builds it."""

    outbox: MailOutbox
    worker: MailWorker
    sweep: MailSweep
    transport: MailTransport
    ledger: MailLedger
