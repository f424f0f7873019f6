"""Bookings and the state of their Teams meeting."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

TEAMS = "teams"


class IllegalTransitionError(Exception):
    """The booking's state does not allow this action; nothing was changed."""

    def __init__(self, message: str, code: str = "illegal_transition") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class BookingStatus(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    COMPLETED = "completed"
    DECLINED = "declined"
    CANCELLED = "cancelled"


class MeetingStatus(StrEnum):
    NONE = "none"
    PENDING = "pending"
    CREATED = "created"
    FAILED = "failed"
    DELETED = "deleted"


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


@dataclass(frozen=True)
class MeetingState:
    """What the booking wants of its meeting and what Graph is known to hold.

    `generation` counts meetings made anew for this booking: the Graph externalId of
    generation 1 is `tenant:booking`, later ones `tenant:booking:N`, because createOrGet
    would hand back a meeting that was deleted by hand rather than make a new one.
    `synced_start`/`synced_end` are the times Graph last accepted, so drift is visible.
    """

    wanted: bool = False
    status: MeetingStatus = MeetingStatus.NONE
    provider: str | None = None
    join_url: str | None = None
    meeting_id: str | None = None
    organizer_id: str | None = None
    generation: int = 1
    synced_start: datetime | None = None
    synced_end: datetime | None = None
    attempts: int = 0
    last_error_code: str | None = None
    changed_at: datetime | None = None
    # A create attempt ended without an answer (timeout, 5xx): Teams may hold a meeting under
    # this generation's externalId that we have no id for. Closing the booking must then still
    # remove it (createOrGet finds it by externalId), rather than forget it.
    create_in_doubt: bool = False


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
    meeting: MeetingState = MeetingState()
    # Persistence: the stored version counts saves (it also orders ICS updates), the ETag
    # guards each save against a lost race.
    version: int = field(default=0, compare=False)
    etag: str | None = field(default=None, compare=False)

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
    def needs_reconciliation(self) -> bool:
        """True while the meeting and the booking disagree, or an operation is outstanding."""
        meeting = self.meeting
        if meeting.status is MeetingStatus.PENDING:
            return True
        live = self.status in (BookingStatus.CONFIRMED, BookingStatus.COMPLETED)
        if meeting.status is MeetingStatus.CREATED:
            if not live:
                return True
            return (meeting.synced_start, meeting.synced_end) != (self.start, self.end)
        return self.status is BookingStatus.CONFIRMED and meeting.wanted


# -- lifecycle (SPEC §2) ---------------------------------------------------------------------------

_OPEN = (BookingStatus.PENDING, BookingStatus.CONFIRMED)


def _require(booking: Booking, allowed: tuple[BookingStatus, ...], action: str) -> None:
    if booking.status not in allowed:
        names = " or ".join(s.value for s in allowed)
        raise IllegalTransitionError(
            f"Cannot {action} a {booking.status.value} booking; it must be {names}"
        )


def approve(
    booking: Booking,
    *,
    now: datetime,
    with_meeting: bool,
    assignee_id: str | None = None,
    internal_notes: str | None = None,
) -> Booking:
    """pending → confirmed. With a meeting, its creation becomes an outstanding operation."""
    _require(booking, (BookingStatus.PENDING,), "approve")
    meeting = booking.meeting
    if with_meeting and meeting.status is not MeetingStatus.CREATED:
        meeting = replace(meeting, wanted=True, status=MeetingStatus.PENDING, changed_at=now)
    return replace(
        booking,
        status=BookingStatus.CONFIRMED,
        assignee_id=assignee_id or booking.assignee_id,
        internal_notes=internal_notes if internal_notes is not None else booking.internal_notes,
        meeting=meeting,
        updated_at=now,
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
    meeting = replace(booking.meeting, wanted=False)
    if meeting.status in (MeetingStatus.PENDING, MeetingStatus.FAILED) and not meeting.meeting_id:
        if meeting.create_in_doubt:
            # Teams may have made it: removing it is now the outstanding operation.
            meeting = replace(meeting, status=MeetingStatus.PENDING, changed_at=now)
        else:
            # Nothing was made in Teams: there is nothing left to do.
            meeting = replace(meeting, status=MeetingStatus.NONE, changed_at=now)
    return replace(booking, status=status, status_reason=reason, meeting=meeting, updated_at=now)


def reschedule(booking: Booking, *, start: datetime, end: datetime, now: datetime) -> Booking:
    """New times for a pending or confirmed booking; the status stays."""
    _require(booking, _OPEN, "reschedule")
    if end <= start:
        raise ValueError("endDateTime must be after startDateTime")
    return replace(booking, start=start, end=end, updated_at=now)


def complete(booking: Booking, *, now: datetime) -> Booking:
    """confirmed → completed (the meeting stays: people may still open the link)."""
    _require(booking, (BookingStatus.CONFIRMED,), "complete")
    return replace(booking, status=BookingStatus.COMPLETED, updated_at=now)


# -- meeting outcomes ----------------------------------------------------------------------------


def meeting_requested(booking: Booking, *, now: datetime) -> Booking:
    """Ask for a (new) meeting on a confirmed booking, e.g. by manual generation."""
    meeting = booking.meeting
    generation = meeting.generation
    if meeting.status is MeetingStatus.DELETED or (
        meeting.status is MeetingStatus.FAILED and meeting.meeting_id
    ):
        # createOrGet would hand back the old meeting for the old externalId.
        generation += 1
    return replace(
        booking,
        meeting=replace(
            meeting,
            wanted=True,
            status=MeetingStatus.PENDING,
            meeting_id=None if generation != meeting.generation else meeting.meeting_id,
            join_url=None if generation != meeting.generation else meeting.join_url,
            generation=generation,
            changed_at=now,
        ),
    )


def meeting_created(
    booking: Booking,
    *,
    meeting_id: str,
    join_url: str,
    organizer_id: str,
    now: datetime,
) -> Booking:
    return replace(
        booking,
        meeting=replace(
            booking.meeting,
            status=MeetingStatus.CREATED,
            provider=TEAMS,
            meeting_id=meeting_id,
            join_url=join_url,
            organizer_id=organizer_id,
            synced_start=booking.start,
            synced_end=booking.end,
            attempts=booking.meeting.attempts + 1,
            last_error_code=None,
            changed_at=now,
            create_in_doubt=False,
        ),
    )


def meeting_synced(booking: Booking, *, now: datetime) -> Booking:
    """Graph now holds the booking's times."""
    return replace(
        booking,
        meeting=replace(
            booking.meeting,
            synced_start=booking.start,
            synced_end=booking.end,
            attempts=booking.meeting.attempts + 1,
            last_error_code=None,
            changed_at=now,
        ),
    )


def meeting_deleted(booking: Booking, *, now: datetime) -> Booking:
    return replace(
        booking,
        meeting=replace(
            booking.meeting,
            wanted=False,
            status=MeetingStatus.DELETED,
            attempts=booking.meeting.attempts + 1,
            last_error_code=None,
            changed_at=now,
            create_in_doubt=False,
        ),
    )


def meeting_attempt_failed(
    booking: Booking,
    *,
    error_code: str,
    retryable: bool,
    now: datetime,
    unanswered: bool = False,
) -> Booking:
    """Record a failed attempt. A create that may succeed later stays pending; a permanent
    failure of a create is `failed`. A failed update or delete leaves the status as it was
    (the meeting still exists), so the drift stays visible to reconciliation.

    `unanswered`: the request may have been carried out (timeout, 5xx). For a create that
    leaves the meeting in doubt until an attempt succeeds or removes it.
    """
    meeting = booking.meeting
    status = meeting.status
    creating = status is MeetingStatus.PENDING and meeting.wanted and not meeting.meeting_id
    if status is MeetingStatus.PENDING and not retryable:
        status = MeetingStatus.FAILED
    return replace(
        booking,
        meeting=replace(
            meeting,
            status=status,
            attempts=meeting.attempts + 1,
            last_error_code=error_code,
            changed_at=now,
            create_in_doubt=meeting.create_in_doubt or (creating and unanswered),
        ),
    )
