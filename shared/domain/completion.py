"""After the lesson: when its attendance is due, who Teams saw, and the outcome.

A confirmed booking with a meeting owes the `attendance` kind of work (shared/work/kinds.py),
due `graceMinutes` after its end (Teams publishes the report after the meeting); a move owes it
afresh at the new end. The work reads the meeting's attendance reports and completes the
booking with `attended_from`'s answer.

Matching a report's records to the booking's participants (SPEC §2):
- by e-mail: a record whose `emailAddress` equals a participant's e-mail, ignoring case (Teams
  writes the address, or the UPN, of a signed-in user);
- otherwise by display name, for guests and anonymous joiners, whom Teams records by the name
  they typed: the record's `identity.displayName` equals one participant's display name,
  ignoring case and runs of white space. A name two or more participants share is ambiguous:
  such a record is counted as unmatched (and the work logs `attendance_ambiguous_name`), never
  guessed;
- records matching no one (the organizer's mailbox, strangers) are counted as unmatched.

Outcome: a participant is present after `minimumMinutes` in the meeting, summed over every
report (a meeting left empty and joined again has a report per session) save those of sessions
that ended more than an hour before the lesson began (a try of the link the day before, or the
old time of a moved lesson: the meeting is the same). The student side is
the booking's students, or its clients when it has no student; the tutor side its tutors, or
its staff when it has no tutor. Either side is present when one of its participants is:
both → `attended`, only the tutor → `student_no_show`, only the student → `tutor_no_show`,
neither → `no_show`. A side the booking has nobody for is not judged; with nobody on either,
the outcome is `unknown`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from shared.domain import work as works
from shared.domain.attendance import (
    Attendance,
    AttendanceRecord,
    AttendanceReport,
    AttendanceSource,
    LessonOutcome,
    ParticipantAttendance,
)
from shared.domain.booking import Booking, BookingStatus, Participant, ParticipantRole, complete
from shared.domain.tenant import AttendanceSettings

ATTENDANCE_WORK = "attendance"
# A session that ended longer than this before the lesson began is not the lesson's.
EARLIER_SESSION = timedelta(hours=1)

_STUDENT_SIDE = (ParticipantRole.STUDENT, ParticipantRole.CLIENT)
_TUTOR_SIDE = (ParticipantRole.TUTOR, ParticipantRole.STAFF)


def attendance_due(booking: Booking, settings: AttendanceSettings) -> datetime:
    """When the report is first asked for: the end, plus the grace Teams takes to publish it."""
    return booking.end + timedelta(minutes=settings.grace_minutes)


def attendance_deadline(booking: Booking, settings: AttendanceSettings) -> datetime:
    """When a report not there yet is given up on (the outcome is then `unknown`)."""
    return booking.end + timedelta(hours=settings.deadline_hours)


def attendance_owed(before: Booking, after: Booking, settings: AttendanceSettings) -> Booking:
    """`after` (a change of `before`), owing its attendance afresh when the change confirmed a
    booking with a meeting, asked for a meeting on a confirmed one, or moved it: due at the
    (new) end plus the grace. Anything else leaves the work as it was."""
    if after is before or after.status is not BookingStatus.CONFIRMED:
        return after
    if not after.meeting.wanted:
        return after
    newly = before.status is not BookingStatus.CONFIRMED or not before.meeting.wanted
    moved = (before.start, before.end) != (after.start, after.end)
    state = works.state_of(after.work, ATTENDANCE_WORK)
    if not (newly or moved or state is None):
        return after
    due = attendance_due(after, settings)
    owed = works.owe(after.work, ATTENDANCE_WORK)
    state = works.state_of(owed, ATTENDANCE_WORK)
    assert state is not None
    return replace(after, work=works.with_state(owed, replace(state, next_attempt_at=due)))


@dataclass(frozen=True)
class Matched:
    """The attendance of each participant, and what could not be matched."""

    participants: tuple[ParticipantAttendance, ...]
    unmatched: int
    ambiguous_names: tuple[str, ...] = ()


def _fold(name: str | None) -> str:
    return " ".join((name or "").split()).casefold()


def match_records(
    participants: Sequence[Participant], reports: Sequence[AttendanceReport]
) -> Matched:
    """Each participant's attendance from every record of every report (module docstring)."""
    by_email = {p.email.casefold(): p for p in participants if p.email}
    by_name: dict[str, list[Participant]] = {}
    for p in participants:
        if _fold(p.display_name):
            by_name.setdefault(_fold(p.display_name), []).append(p)
    found: dict[str, list[AttendanceRecord]] = {p.user_id: [] for p in participants}
    unmatched = 0
    ambiguous: list[str] = []
    for report in reports:
        for record in report.records:
            who = by_email.get((record.email or "").casefold()) if record.email else None
            if who is None:
                named = by_name.get(_fold(record.display_name), [])
                if len(named) > 1:
                    ambiguous.append(record.display_name or "")
                who = named[0] if len(named) == 1 else None
            if who is None:
                unmatched += 1
                continue
            found[who.user_id].append(record)
    return Matched(
        tuple(_attendance_of(p.user_id, found[p.user_id]) for p in participants),
        unmatched,
        tuple(dict.fromkeys(ambiguous)),
    )


def _attendance_of(user_id: str, records: Sequence[AttendanceRecord]) -> ParticipantAttendance:
    if not records:
        return ParticipantAttendance(user_id)
    joins = [i.join for r in records for i in r.intervals]
    leaves = [i.leave for r in records for i in r.intervals if i.leave is not None]
    return ParticipantAttendance(
        user_id,
        joined=True,
        first_join=min(joins) if joins else None,
        last_leave=max(leaves) if leaves else None,
        total_seconds=sum(max(0, r.total_seconds) for r in records),
    )


def outcome_of(
    participants: Sequence[Participant],
    attendance: Sequence[ParticipantAttendance],
    settings: AttendanceSettings,
) -> LessonOutcome:
    """The lesson's outcome from who was present (module docstring)."""
    least = 60 * settings.minimum_minutes
    present = {a.user_id for a in attendance if a.joined and a.total_seconds >= least}

    def side(roles: tuple[ParticipantRole, ...]) -> bool | None:
        for role in roles:
            ids = [p.user_id for p in participants if p.role is role]
            if ids:
                return any(i in present for i in ids)
        return None  # nobody on this side: not judged

    student, tutor = side(_STUDENT_SIDE), side(_TUTOR_SIDE)
    if student is None and tutor is None:
        return LessonOutcome.UNKNOWN
    if student is False and tutor is False:
        return LessonOutcome.NO_SHOW
    if student is False:
        return LessonOutcome.STUDENT_NO_SHOW
    if tutor is False:
        return LessonOutcome.TUTOR_NO_SHOW
    return LessonOutcome.ATTENDED


def attended_from(
    booking: Booking,
    reports: Sequence[AttendanceReport],
    settings: AttendanceSettings,
    now: datetime,
) -> tuple[Attendance, Matched]:
    """The booking's attendance as `reports` show it."""
    since = booking.start - EARLIER_SESSION
    lessons = [r for r in reports if r.meeting_end is None or r.meeting_end >= since]
    matched = match_records(booking.participants, lessons)
    outcome = outcome_of(booking.participants, matched.participants, settings)
    attendance = Attendance(
        outcome,
        AttendanceSource.REPORT,
        now,
        participants=matched.participants,
        unmatched=matched.unmatched,
    )
    return attendance, matched


def unknown_attendance(now: datetime, error_code: str) -> Attendance:
    """No report could be read (`error_code` says why): the outcome is unknown."""
    return Attendance(LessonOutcome.UNKNOWN, AttendanceSource.NONE, now, error_code=error_code)


def completed_with(booking: Booking, attendance: Attendance, *, end: datetime) -> Booking:
    """`booking` completed with `attendance`, if it is still the confirmed lesson that ended at
    `end` (the one whose reports were read); otherwise itself: completed by hand, cancelled or
    moved meanwhile, it is left alone."""
    if booking.status is not BookingStatus.CONFIRMED or booking.end != end:
        return booking
    return complete(booking, now=attendance.recorded_at, attendance=attendance)
