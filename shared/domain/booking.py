"""Bookings and the state of their Teams meeting."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from shared.domain.attendance import Attendance, AttendanceSource, LessonOutcome
from shared.domain.mail_state import MailState, NoticeKind
from shared.domain.meeting import MeetingState, MeetingStatus, Step, plan, status_of
from shared.domain.payment import PaymentFact, PaymentState, merge
from shared.domain.reminder_state import Reminders
from shared.domain.work import Works
from shared.errors import AppError

__all__ = [
    "Booking",
    "BookingStatus",
    "IllegalTransitionError",
    "MeetingState",
    "MeetingStatus",
    "Participant",
    "ParticipantRole",
    "Step",
]


class IllegalTransitionError(AppError):
    """The booking's state does not allow this action; nothing was changed."""

    http_status = 409

    def __init__(self, message: str, code: str = "illegal_transition") -> None:
        super().__init__(message)
        self.code = code


# The kinds of durable work a booking's marker rows name (the sweep lists them by kind).
MEETING_WORK = "meeting"
MAIL_WORK = "mail"


class BookingStatus(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    COMPLETED = "completed"
    DECLINED = "declined"
    CANCELLED = "cancelled"


class ParticipantRole(StrEnum):
    STUDENT = "student"
    PARENT = "parent"
    CLIENT = "client"
    TUTOR = "tutor"
    STAFF = "staff"


@dataclass(frozen=True)
class Participant:
    user_id: str
    role: ParticipantRole
    email: str
    display_name: str | None = None
    # The BCP 47 tag of the language their mail is written in ("de-AT"); None: the tenant's.
    locale: str | None = None


@dataclass(frozen=True)
class Booking:
    tenant_id: str
    booking_id: str
    status: BookingStatus
    subject: str
    start: datetime
    end: datetime
    time_zone: str
    participants: tuple[Participant, ...]
    created_by: str
    created_at: datetime
    updated_at: datetime
    level: str | None = None
    assignee_id: str | None = None
    internal_notes: str | None = None
    status_reason: str | None = None
    meeting: MeetingState = field(default_factory=MeetingState)
    payment: PaymentState = field(default_factory=PaymentState)
    mail: MailState = field(default_factory=MailState)  # notices owed (shared/domain/notices.py)
    # Other kinds of durable work it owes (shared/domain/work.py), one state per kind.
    work: Works = ()
    # The reminders it was sent before its start (shared/domain/reminders.py).
    reminders: Reminders = field(default_factory=Reminders)
    # What a completed booking recorded of its lesson (shared/domain/attendance.py).
    attendance: Attendance | None = None
    # Persistence: the stored version counts saves (it also orders ICS updates), the ETag
    # guards each save against a lost race, and the keys of the index rows stored with this
    # version let the next save delete those its new state no longer wants (a moved start).
    version: int = field(default=0, compare=False)
    etag: str | None = field(default=None, compare=False)
    index_rows: tuple[str, ...] = field(default=(), compare=False, repr=False)

    @property
    def external_id(self) -> str:
        """The Graph createOrGet key: one meeting per booking and generation, whoever asks."""
        base = f"{self.tenant_id}:{self.booking_id}"
        return base if self.meeting.generation == 1 else f"{base}:{self.meeting.generation}"

    @property
    def participant_ids(self) -> frozenset[str]:
        ids = {p.user_id for p in self.participants}
        if self.assignee_id:
            ids.add(self.assignee_id)
        return frozenset(ids)

    @property
    def live(self) -> bool:
        """The booking's status keeps a meeting."""
        return self.status in (BookingStatus.CONFIRMED, BookingStatus.COMPLETED)

    @property
    def next_step(self) -> Step:
        """The next Graph step its meeting needs (SPEC §7: the difference is the only work)."""
        return plan(self.meeting, live=self.live, start=self.start, end=self.end)

    @property
    def needs_reconciliation(self) -> bool:
        """A step is outstanding and retries have not stopped: the "needs work" marker."""
        return self.next_step is not Step.NONE and not self.meeting.failed

    def owed(self) -> dict[str, datetime | None]:
        """Each kind of durable work this version owes, with when its next attempt is due
        (None: now): the marker rows saved with it, which the timer sweeps by kind."""
        owed: dict[str, datetime | None] = {}
        if self.needs_reconciliation:
            owed[MEETING_WORK] = self.meeting.next_attempt_at
        if self.mail.pending:
            owed[MAIL_WORK] = self.mail.next_attempt_at()
        for state in self.work:
            if state.owed:
                owed[state.kind] = state.next_attempt_at
        return owed

    def works(self) -> frozenset[str]:
        """Every kind of work this version may carry a marker of, owed or not."""
        return frozenset((MEETING_WORK, MAIL_WORK, *(state.kind for state in self.work)))


def settled(booking: Booking) -> Booking:
    """The booking with its meeting status derived from the rest of its state. Once nothing
    is outstanding, an error code of an earlier attempt no longer describes it."""
    step = booking.next_step
    status = status_of(booking.meeting, step)
    error = booking.meeting.last_error_code if step is not Step.NONE else None
    if (status, error) == (booking.meeting.status, booking.meeting.last_error_code):
        return booking
    return replace(booking, meeting=replace(booking.meeting, status=status, last_error_code=error))


# -- lifecycle (SPEC §2) ---------------------------------------------------------------------------

_OPEN = (BookingStatus.PENDING, BookingStatus.CONFIRMED)


def _require(booking: Booking, allowed: tuple[BookingStatus, ...], action: str) -> None:
    if booking.status not in allowed:
        names = " or ".join(s.value for s in allowed)
        raise IllegalTransitionError(
            f"Cannot {action} a {booking.status.value} booking; it must be {names}"
        )


def _asked(meeting: MeetingState, now: datetime) -> MeetingState:
    """A new desired state: progress towards the old one no longer counts."""
    return replace(
        meeting,
        revision=meeting.revision + 1,
        requested_at=now,
        attempts=0,
        last_error_code=None,
        failed=False,
        next_attempt_at=None,
        rounds=0,
        remade=0,
        changed_at=now,
    )


def approve(
    booking: Booking,
    *,
    now: datetime,
    with_meeting: bool,
    assignee_id: str | None = None,
    internal_notes: str | None = None,
) -> Booking:
    """pending → confirmed. With a meeting, its creation becomes the outstanding step."""
    _require(booking, (BookingStatus.PENDING,), "approve")
    meeting = booking.meeting
    if with_meeting and not meeting.wanted:
        meeting = _asked(replace(meeting, wanted=True), now)
    return settled(
        replace(
            booking,
            status=BookingStatus.CONFIRMED,
            assignee_id=assignee_id or booking.assignee_id,
            internal_notes=internal_notes if internal_notes is not None else booking.internal_notes,
            meeting=meeting,
            updated_at=now,
        )
    )


def decline(booking: Booking, *, now: datetime, reason: str | None = None) -> Booking:
    """pending → declined."""
    _require(booking, (BookingStatus.PENDING,), "decline")
    return _closed(booking, BookingStatus.DECLINED, now, reason)


def cancel(booking: Booking, *, now: datetime, reason: str | None = None) -> Booking:
    """pending | confirmed → cancelled."""
    _require(booking, _OPEN, "cancel")
    return _closed(booking, BookingStatus.CANCELLED, now, reason)


def _closed(booking: Booking, status: BookingStatus, now: datetime, reason: str | None) -> Booking:
    # The meeting is no longer wanted. If Teams has it, or may have it (a create went
    # unanswered), removing it is now the outstanding step; otherwise nothing is left to do.
    meeting = _asked(replace(booking.meeting, wanted=False), now)
    return settled(
        replace(booking, status=status, status_reason=reason, meeting=meeting, updated_at=now)
    )


def reschedule(booking: Booking, *, start: datetime, end: datetime, now: datetime) -> Booking:
    """New times for a pending or confirmed booking; the status stays, the meeting follows.
    The times it has already change nothing: the booking itself is returned (nothing is saved,
    no meeting update, no mail)."""
    _require(booking, _OPEN, "reschedule")
    if end <= start:
        raise ValueError("endDateTime must be after startDateTime")
    if (start, end) == (booking.start, booking.end):
        return booking
    meeting = booking.meeting
    if meeting.wanted:
        meeting = _asked(replace(meeting, verified_at=None), now)
    return settled(replace(booking, start=start, end=end, meeting=meeting, updated_at=now))


def complete(
    booking: Booking,
    *,
    now: datetime,
    attendance: Attendance | None = None,
    outcome: LessonOutcome | None = None,
) -> Booking:
    """confirmed → completed (the meeting stays: people may still open the link), with what
    the attendance reports showed (`attendance`), or by hand with the `outcome` staff saw."""
    _require(booking, (BookingStatus.CONFIRMED,), "complete")
    if attendance is None and outcome is not None:
        attendance = Attendance(outcome, AttendanceSource.STAFF, now)
    return settled(
        replace(booking, status=BookingStatus.COMPLETED, attendance=attendance, updated_at=now)
    )


def meeting_requested(booking: Booking, *, now: datetime) -> Booking:
    """Ask for a meeting on a live booking (manual generation): the one Teams has, or a new
    one. A meeting that was removed is made anew under the next externalId generation, since
    createOrGet would hand back the removed one."""
    meeting = booking.meeting.anew() if booking.meeting.removed else booking.meeting
    return settled(replace(booking, meeting=_asked(replace(meeting, wanted=True), now)))


NOTHING_TO_RETRY = "The booking has no meeting work to retry: its meeting is as the booking says"


def meeting_retried(booking: Booking, *, now: datetime) -> Booking:
    """Start the outstanding meeting work afresh (an operator's retry after a fix): retries
    that stopped (`failed`) or stalled count from zero again, and the step is the one the
    booking already asks for. Nothing outstanding is a 409."""
    if booking.next_step is Step.NONE:
        raise IllegalTransitionError(NOTHING_TO_RETRY, "no_meeting_to_retry")
    meeting = booking.meeting
    if meeting.wanted and meeting.removed:
        meeting = meeting.anew()
    return settled(replace(booking, meeting=_asked(meeting, now)))


REFUNDED_REASON = "Payment refunded"


def record_payment(
    booking: Booking, fact: PaymentFact, *, now: datetime, with_meeting: bool
) -> Booking:
    """What a Stripe event established, and what the booking's payment state now calls for,
    decided by that state rather than by the order events came in (SPEC §6):

    - every payment known fully refunded: a pending or confirmed booking is cancelled and its
      meeting removed; a refund that came before its payment leaves the booking cancelled all
      the same; refunding one of two payments (a duplicate) leaves the booking as it is;
    - paid (and not refunded): a pending booking is confirmed, with a meeting when
      `with_meeting`; a declined or cancelled one is not revived (the payment is recorded).

    A confirmation or a refund's cancellation owes the participants an e-mail, saved with it.

    Returns `booking` itself when the fact changes nothing (a redelivery, a late duplicate).
    """
    payment = merge(booking.payment, fact)
    if payment == booking.payment:
        return booking
    changed = replace(booking, payment=payment, updated_at=now)
    if payment.refunded and booking.status in _OPEN:
        cancelled = _closed(changed, BookingStatus.CANCELLED, now, REFUNDED_REASON)
        return replace(cancelled, mail=cancelled.mail.requested(NoticeKind.REFUNDED, now=now))
    if payment.live and booking.status is BookingStatus.PENDING:
        confirmed = approve(changed, now=now, with_meeting=with_meeting)
        mail = confirmed.mail.requested(NoticeKind.PAYMENT_CONFIRMED, now=now)
        return replace(confirmed, mail=mail)
    return changed
