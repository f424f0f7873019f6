"""Kinds of durable work beyond the meeting and the mail: a handler and a registration.

A kind names what a booking may owe (`Booking.work`, shared/domain/work.py) and the handler
that does it. The kit does the rest, as it does for meetings and mail:
- `owe(booking, kind)` in the change that asks for it: the booking's save writes the kind's
  marker row in the same transaction; then the work message goes to the kind's queue.
- `KindWorker.handle` (the queue trigger, and the timer's sweep): one worker at a time takes
  the work's lease, calls the handler, retries a retryable failure in process (1 s, 2 s, 4 s),
  then in delayed rounds (about 30 s, 2 min, 10 min, 1 h, 6 h), and poisons it when a failure
  is permanent or the rounds are spent; `record_kind_poisoned` logs the one ERROR.
- `KindWorker.sweep`: the timer's look at each kind's due markers, for lost messages.

A handler is a function of the booking, to be idempotent (a worker that died after the work but
before recording it is followed by another attempt). It returns a change to record with the
work's completion (or None), and raises `WorkFailed` when the work could not be done.
"""

from __future__ import annotations

import logging
import random
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from shared.domain import work as works
from shared.domain.booking import MAIL_WORK, MEETING_WORK, Booking
from shared.domain.lease import Lease
from shared.observability import log_event
from shared.storage.bookings import BookingRepository
from shared.storage.errors import NotFoundError, StorageError
from shared.storage.queues import PoisonedWork, WorkMessage, WorkQueue
from shared.storage.tenant_directory import TenantDirectory
from shared.work.policy import DUE_SLACK, RetryPolicy, retried_in_process
from shared.work.record import Change, record_on_latest
from shared.work.rounds import RetryRounds, RoundEnd
from shared.work.sweep import MarkerSweep

logger = logging.getLogger("meetings.work")


class WorkFailed(Exception):
    """A handler could not do its work: `retryable` says whether trying again may help,
    `retry_after` (seconds) not before when."""

    def __init__(
        self, message: str, code: str, *, retryable: bool, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.retryable = retryable
        self.retry_after = retry_after


Handler = Callable[[Booking], Change | None]


@dataclass(frozen=True)
class WorkKind:
    """A kind of durable work: its name (a key part: the marker is w|{name}|{bookingId}), the
    queue its messages go to, and its handler."""

    name: str
    queue: WorkQueue
    handler: Handler

    def __post_init__(self) -> None:
        check_kind(self.name)


# A kind's name is a constant of the code, part of its marker's key: short, lower-case ASCII.
_KIND_NAME = re.compile(r"[a-z][a-z0-9_-]{0,39}")


def check_kind(name: str) -> str:
    if not _KIND_NAME.fullmatch(name):
        raise ValueError(f"work kind {name!r}: 1-40 of a-z, 0-9, _ and -, starting with a letter")
    if name in (MEETING_WORK, MAIL_WORK):
        raise ValueError(f"{name} is the kit's own kind of work")
    return name


def owe(booking: Booking, kind: str) -> Booking:
    """`booking`, owing `kind` of work afresh (its rounds count from zero): save it, then
    `KindWorker.after_change` sends the message."""
    return replace(booking, work=works.owe(booking.work, check_kind(kind)))


class Outcome(StrEnum):
    DONE = "done"
    NOTHING = "nothing"  # not owed (done already, stopped, or never asked for)
    NOT_DUE = "not_due"  # a delayed round is due later: its message takes it then
    BUSY = "busy"  # another worker holds the lease
    RETRYING = "retrying"  # failed; the next round is scheduled
    STOPPED = "stopped"  # failed for good: poisoned


@dataclass
class KindSweepReport:
    kind: str
    tenants: int = 0
    marked: int = 0
    done: int = 0
    errors: int = 0
    out_of_time: bool = False
    failed_tenants: list[str] = field(default_factory=list)


@dataclass
class _KindRounds:
    """The rounds of one kind of work, kept in its `WorkState`, ended by the lease holder.
    `held`: whether the version the round was ended on was still this holder's."""

    kind: str
    token: str
    error_code: str
    held: bool = False

    def taken(self, booking: Booking) -> int | None:
        self.held = _holds(booking, self.kind, self.token)
        state = works.state_of(booking.work, self.kind)
        return state.rounds if self.held and state is not None else None

    def scheduled(self, booking: Booking, at: datetime) -> Booking:
        return replace(booking, work=works.retry_scheduled(booking.work, self.kind, at))

    def stopped(self, booking: Booking, reason: str) -> Booking:
        return replace(booking, work=works.gave_up(booking.work, self.kind, self.error_code))


class KindWorker:
    """Runs every registered kind of work: its queue messages, and the timer's sweep."""

    def __init__(
        self,
        bookings: BookingRepository,
        tenants: TenantDirectory,
        policy: RetryPolicy,
        clock: Callable[[], datetime],
        *,
        lease_seconds: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
        rnd: Callable[[], float] = random.random,
        after_done: Callable[[Booking], None] | None = None,
    ) -> None:
        self._bookings = bookings
        self._tenants = tenants
        self._policy = policy
        self._clock = clock
        # What the booking a kind's work completed owes next (its mail: the outbox message;
        # never raises, and what it misses the timer's sweeps find by their markers).
        self._after_done = after_done
        self._lease = timedelta(seconds=lease_seconds)
        self._sleep = sleep
        self._rnd = rnd
        self._kinds: dict[str, tuple[WorkKind, RetryRounds]] = {}

    def register(self, kind: WorkKind) -> None:
        if kind.name in self._kinds:
            raise ValueError(f"work kind {kind.name} is registered already")
        rounds = RetryRounds(
            kind.name,
            kind.queue,
            self._policy,
            self._clock,
            logger,
            unsent_poison=record_kind_poisoned,
            rnd=self._rnd,
        )
        self._kinds[kind.name] = (kind, rounds)

    @property
    def kinds(self) -> Iterable[str]:
        return tuple(self._kinds)

    def after_change(self, saved: Booking) -> None:
        """The outbox message of each registered kind `saved` owes. Never raises: a lost
        message is found by the timer through the kind's marker."""
        owed = saved.owed()
        for name, (kind, _) in self._kinds.items():
            if name not in owed:
                continue
            try:
                kind.queue.send(WorkMessage(saved.tenant_id, saved.booking_id))
            except StorageError:
                logger.warning("%s work for booking %s not enqueued", name, saved.booking_id)

    def handle(self, kind_name: str, message: WorkMessage, *, requeue: bool = True) -> Outcome:
        """Do the work `message` names, if the booking still owes it. `requeue=False` (the
        timer): work that is not due, or held, is left for the next look. Storage errors
        propagate, so the host delivers the message again."""
        kind, rounds = self._kinds[kind_name]
        booking = self._owing(kind_name, message)
        if booking is None:
            return Outcome.NOTHING
        token = uuid.uuid4().hex
        later = self._not_yet(booking, kind_name, token)
        if later is not None:
            outcome, seconds = later
            if requeue:
                kind.queue.send(message, seconds)
            return outcome
        now = self._clock()
        lease = Lease(token, now + self._lease)
        held = self._record(
            booking, lambda b: _leased(b, kind_name, lease, token, now), skip_unchanged=True
        )
        if not _holds(held, kind_name, token):
            return Outcome.BUSY  # taken meanwhile, or no longer owed
        result = self._attempts(kind, held)
        if isinstance(result, WorkFailed):
            ended = _KindRounds(kind_name, token, result.code)
            after = rounds.end(
                held,
                ended,
                result,
                lambda b, change: self._record(b, change, skip_unchanged=True),
                lambda after, end: _poisoned(after, kind_name, result, end),
                requeue=requeue,
            )
            if not ended.held:
                return Outcome.BUSY  # its lease lapsed and another worker took the work over
            state = works.state_of(after.work, kind_name)
            return Outcome.RETRYING if state is not None and state.owed else Outcome.STOPPED
        completed: list[bool] = []
        complete = _completed(kind_name, token, result, self._clock(), completed)
        saved = self._record(held, complete, skip_unchanged=True)
        done = bool(completed and completed[-1])
        if done and self._after_done is not None:
            self._after_done(saved)
        return Outcome.DONE if done else Outcome.BUSY

    def _owing(self, kind_name: str, message: WorkMessage) -> Booking | None:
        """The booking, if it still owes the work."""
        try:
            booking = self._bookings.get(message.tenant_id, message.booking_id)
        except NotFoundError:
            logger.warning("%s work for unknown booking %s dropped", kind_name, message.booking_id)
            return None
        state = works.state_of(booking.work, kind_name)
        return booking if state is not None and state.owed else None

    def _not_yet(
        self, booking: Booking, kind_name: str, token: str
    ) -> tuple[Outcome, float] | None:
        """Why the work may not be taken now, and in how many seconds to look again: its next
        round is due later, or another worker's lease runs until then. None: take it."""
        state = works.state_of(booking.work, kind_name)
        assert state is not None
        now = self._clock()
        due = state.next_attempt_at
        if due is not None and due - now > DUE_SLACK:
            return Outcome.NOT_DUE, (due - now).total_seconds()
        until = state.lease.until
        if state.lease.held_by_other(token, now) and until is not None:
            return Outcome.BUSY, (until - now).total_seconds() + 1
        return None

    def _attempts(self, kind: WorkKind, booking: Booking) -> Change | WorkFailed | None:
        """The handler's result, after the in-process retries of its retryable failures."""

        def attempt(_: int) -> Change | WorkFailed | None:
            try:
                return kind.handler(booking)
            except WorkFailed as failed:
                return failed
            except StorageError:
                raise  # the host delivers the message again
            except Exception as exc:
                # A handler's own trouble (a bug, a client it calls): counted as a failed
                # round like any other, so that it stops after its rounds, never looping.
                logger.exception("%s work for booking %s failed", kind.name, booking.booking_id)
                return WorkFailed(type(exc).__name__, "handler_error", retryable=True)

        def failure(r: Change | WorkFailed | None) -> WorkFailed | None:
            return r if isinstance(r, WorkFailed) else None

        return retried_in_process(self._policy, self._sleep, attempt, failure)

    def sweep(
        self, *, budget_seconds: float = 60.0, per_tenant: int = 200
    ) -> list[KindSweepReport]:
        """The timer's part: each registered kind's due work whose message was lost."""
        deadline = time.monotonic() + budget_seconds
        return [self._sweep(name, deadline, per_tenant) for name in self._kinds]

    def _sweep(self, name: str, deadline: float, per_tenant: int) -> KindSweepReport:
        report = KindSweepReport(name)
        sweep = MarkerSweep(
            self._bookings,
            self._tenants,
            name,
            self._clock,
            per_tenant=per_tenant,
            logger=logger,
            what=f"{name} sweep",
        )

        def handle(booking: Booking) -> None:
            message = WorkMessage(booking.tenant_id, booking.booking_id)
            if self.handle(name, message, requeue=False) is Outcome.DONE:
                report.done += 1

        sweep.run(handle, report, deadline)
        log_event(logger, logging.INFO, "work_sweep", **vars(report))
        return report

    def _record(self, booking: Booking, change: Change, *, skip_unchanged: bool = False) -> Booking:
        return record_on_latest(
            self._bookings,
            booking,
            change,
            skip_unchanged=skip_unchanged,
            what="its work's progress",
        )


def _holds(booking: Booking, kind: str, token: str) -> bool:
    state = works.state_of(booking.work, kind)
    return state is not None and state.owed and state.lease.mine(token)


def _completed(
    kind: str, token: str, change: Change | None, now: datetime, completed: list[bool]
) -> Change:
    """The handler's change and the work's completion, recorded while the lease is ours
    (`completed` says, for the version it was last applied to, whether it was)."""

    def complete(b: Booking) -> Booking:
        completed.append(_holds(b, kind, token))
        if not completed[-1]:
            return b
        b = change(b) if change is not None else b
        return replace(b, work=works.done(b.work, kind, now))

    return complete


def _leased(booking: Booking, kind: str, lease: Lease, token: str, now: datetime) -> Booking:
    state = works.state_of(booking.work, kind)
    if state is None or not state.owed or state.lease.held_by_other(token, now):
        return booking
    return replace(booking, work=works.leased(booking.work, kind, lease))


def _poisoned(booking: Booking, kind: str, error: WorkFailed, end: RoundEnd) -> PoisonedWork:
    state = works.state_of(booking.work, kind)
    return PoisonedWork(
        booking.tenant_id,
        booking.booking_id,
        0 if state is None else state.rounds,
        reason=end.reason,
        step=kind,
        error_code=error.code,
    )


def record_kind_poisoned(poisoned: PoisonedWork) -> None:
    """The poison consumer of a registered kind: one ERROR log (the booking says it failed)."""
    log_event(
        logger,
        logging.ERROR,
        "work_failed",
        tenant=poisoned.tenant_id,
        bookingId=poisoned.booking_id,
        operation=poisoned.step,
        errorCode=poisoned.error_code,
        reason=poisoned.reason or "host_poisoned",
        round=poisoned.round,
    )
