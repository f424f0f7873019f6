"""What a completed booking records of its lesson: who joined, when, for how long, and the
outcome (shared/domain/completion.py decides it from Teams' attendance reports)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class LessonOutcome(StrEnum):
    ATTENDED = "attended"
    STUDENT_NO_SHOW = "student_no_show"
    TUTOR_NO_SHOW = "tutor_no_show"
    NO_SHOW = "no_show"
    # No report could be read by the deadline (or the app may not read reports).
    UNKNOWN = "unknown"


class AttendanceSource(StrEnum):
    REPORT = "report"  # Teams' attendance reports
    STAFF = "staff"  # completed by hand
    NONE = "none"  # no report could be read: the outcome is unknown


@dataclass(frozen=True)
class ParticipantAttendance:
    """One participant of the booking in the meeting: `joined` at all, first join, last leave
    and the seconds Teams counted (summed over every record matched to them)."""

    user_id: str
    joined: bool = False
    first_join: datetime | None = None
    last_leave: datetime | None = None
    total_seconds: int = 0


@dataclass(frozen=True)
class Attendance:
    outcome: LessonOutcome
    source: AttendanceSource
    recorded_at: datetime
    participants: tuple[ParticipantAttendance, ...] = ()
    # Report records matched to no participant (strangers, the organizer's mailbox, or a
    # display name two participants share).
    unmatched: int = 0
    # Why the outcome is unknown: `attendance_report_missing`,
    # `attendance_permission_missing`, a Graph error code, ...
    error_code: str | None = None


@dataclass(frozen=True)
class AttendanceInterval:
    join: datetime
    leave: datetime | None


@dataclass(frozen=True)
class AttendanceRecord:
    """One attendee of one report, as Teams records them (Graph's attendanceRecord)."""

    email: str | None
    display_name: str | None
    role: str | None
    total_seconds: int
    intervals: tuple[AttendanceInterval, ...] = ()


@dataclass(frozen=True)
class AttendanceReport:
    """Graph's meetingAttendanceReport: one per session of the meeting (joined after everyone
    had left, a meeting has another)."""

    report_id: str
    records: tuple[AttendanceRecord, ...] = ()
    meeting_start: datetime | None = None
    meeting_end: datetime | None = None
