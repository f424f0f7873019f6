"""Bookings and the state of their Teams meeting."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


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
