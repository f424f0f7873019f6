"""After the lesson, as rules: when attendance is owed, how report records are matched to the
booking's participants, and which outcome follows (shared/domain/completion.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from shared.domain import booking as lifecycle
from shared.domain.attendance import (
    AttendanceInterval,
    AttendanceRecord,
    AttendanceReport,
    AttendanceSource,
    LessonOutcome,
)
from shared.domain.booking import BookingStatus, Participant, ParticipantRole
from shared.domain.completion import (
    ATTENDANCE_WORK,
    attendance_owed,
    attended_from,
    completed_with,
    match_records,
    unknown_attendance,
)
from shared.domain.tenant import AttendanceSettings
from shared.domain.work import done, state_of
from tests.builders import T0, a_booking

NOW = T0 - timedelta(days=1)
SETTINGS = AttendanceSettings()
R = ParticipantRole


def record(email=None, name=None, minutes=50.0, late=0.0) -> AttendanceRecord:
    join = T0 + timedelta(minutes=late)
    return AttendanceRecord(
        email,
        name,
        "Attendee",
        int(minutes * 60),
        (AttendanceInterval(join, join + timedelta(minutes=minutes)),),
    )


def report(*records: AttendanceRecord) -> AttendanceReport:
    return AttendanceReport("r1", records)


def outcome(*records: AttendanceRecord, booking=None) -> LessonOutcome:
    attendance, _ = attended_from(booking or a_booking(), [report(*records)], SETTINGS, NOW)
    return attendance.outcome


# -- owed ---------------------------------------------------------------------------------


def test_confirming_with_a_meeting_owes_attendance_after_the_end_and_grace():
    pending = a_booking()
    approved = lifecycle.approve(pending, now=NOW, with_meeting=True)

    owed = attendance_owed(pending, approved, SETTINGS)

    state = state_of(owed.work, ATTENDANCE_WORK)
    assert state is not None
    assert (state.owed, state.rounds) == (True, 0)
    assert state.next_attempt_at == pending.end + timedelta(minutes=15)
    assert owed.owed()[ATTENDANCE_WORK] == pending.end + timedelta(minutes=15)


def test_confirming_without_a_meeting_owes_nothing():
    pending = a_booking()
    approved = lifecycle.approve(pending, now=NOW, with_meeting=False)

    assert attendance_owed(pending, approved, SETTINGS) is approved


def test_a_move_owes_it_afresh_at_the_new_end_and_other_changes_leave_it():
    pending = a_booking()
    confirmed = attendance_owed(
        pending, lifecycle.approve(pending, now=NOW, with_meeting=True), SETTINGS
    )
    later = confirmed.end + timedelta(days=1)
    moved = lifecycle.reschedule(confirmed, start=later - timedelta(hours=1), end=later, now=NOW)

    after = attendance_owed(confirmed, moved, SETTINGS)
    noted = replace(confirmed, internal_notes="a note")

    state = state_of(after.work, ATTENDANCE_WORK)
    assert state is not None
    assert state.next_attempt_at == later + timedelta(minutes=15)
    assert attendance_owed(confirmed, noted, SETTINGS) is noted


def test_a_cancellation_owes_nothing_new():
    pending = a_booking()
    confirmed = attendance_owed(
        pending, lifecycle.approve(pending, now=NOW, with_meeting=True), SETTINGS
    )
    cancelled = lifecycle.cancel(confirmed, now=NOW)

    assert attendance_owed(confirmed, cancelled, SETTINGS) is cancelled


# -- matching -------------------------------------------------------------------------------


def test_records_are_matched_by_e_mail_whatever_its_case():
    matched = match_records(a_booking().participants, [report(record("STUDENT@Example.com"))])

    assert [p.joined for p in matched.participants] == [True, False]
    assert matched.unmatched == 0


def test_a_guest_is_matched_by_display_name_ignoring_case_and_spacing():
    matched = match_records(a_booking().participants, [report(record(None, " sam  student"))])

    assert [p.joined for p in matched.participants] == [True, False]


def test_an_e_mail_of_no_participant_falls_back_to_the_display_name():
    # A student signed in with another account, under their own name.
    matched = match_records(
        a_booking().participants, [report(record("sam@personal.example", "Sam Student"))]
    )

    assert [p.joined for p in matched.participants] == [True, False]


def test_a_name_two_participants_share_is_unmatched_and_named_as_ambiguous():
    twins = (
        Participant("s1", R.STUDENT, "a1@example.com", "Alex Kim"),
        Participant("s2", R.STUDENT, "a2@example.com", "alex kim"),
    )

    matched = match_records(twins, [report(record(None, "Alex Kim"))])

    assert [p.joined for p in matched.participants] == [False, False]
    assert (matched.unmatched, matched.ambiguous_names) == (1, ("Alex Kim",))


def test_strangers_and_the_organizer_are_unmatched():
    matched = match_records(
        a_booking().participants,
        [report(record("organizer@a.example", "Organizer"), record(None, "Someone Else"))],
    )

    assert matched.unmatched == 2
    assert not any(p.joined for p in matched.participants)


def test_a_participants_records_across_reports_add_up():
    first = report(record("student@example.com", minutes=3))
    second = AttendanceReport("r2", (record("student@example.com", minutes=20, late=10),))

    (student, _) = match_records(a_booking().participants, [first, second]).participants

    assert student.total_seconds == 23 * 60
    assert student.first_join == T0
    assert student.last_leave == T0 + timedelta(minutes=30)


# -- outcome --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("student_minutes", "tutor_minutes", "expected"),
    [
        (50, 55, LessonOutcome.ATTENDED),
        (None, 55, LessonOutcome.STUDENT_NO_SHOW),
        (50, None, LessonOutcome.TUTOR_NO_SHOW),
        (None, None, LessonOutcome.NO_SHOW),
        (4.9, 55, LessonOutcome.STUDENT_NO_SHOW),  # below the 5-minute minimum
        (5, 5, LessonOutcome.ATTENDED),  # the minimum itself counts
    ],
)
def test_the_outcome_follows_who_was_present_long_enough(student_minutes, tutor_minutes, expected):
    records = []
    if student_minutes is not None:
        records.append(record("student@example.com", minutes=student_minutes))
    if tutor_minutes is not None:
        records.append(record("tutor@example.com", minutes=tutor_minutes))

    assert outcome(*records) is expected


def test_without_a_student_the_client_is_the_student_side_and_staff_without_a_tutor():
    booking = a_booking(
        participants=(
            Participant("c1", R.CLIENT, "client@example.com", "Cleo Client"),
            Participant("p1", R.PARENT, "parent@example.com", "Pat Parent"),
            Participant("st1", R.STAFF, "staff@example.com", "Stu Staff"),
        )
    )

    assert outcome(record("parent@example.com"), booking=booking) is LessonOutcome.NO_SHOW
    assert outcome(record("client@example.com"), booking=booking) is LessonOutcome.TUTOR_NO_SHOW
    assert outcome(record("client@example.com"), record("staff@example.com"), booking=booking) is (
        LessonOutcome.ATTENDED
    )


def test_a_side_the_booking_has_nobody_for_is_not_judged():
    only_students = a_booking(
        participants=(Participant("s1", R.STUDENT, "student@example.com", "Sam Student"),)
    )
    nobody = a_booking(participants=(Participant("p1", R.PARENT, "parent@example.com", "Pat"),))

    assert outcome(record("student@example.com"), booking=only_students) is LessonOutcome.ATTENDED
    assert outcome(booking=only_students) is LessonOutcome.STUDENT_NO_SHOW
    assert outcome(record("parent@example.com"), booking=nobody) is LessonOutcome.UNKNOWN


# -- completion -----------------------------------------------------------------------------


def test_completion_records_on_the_confirmed_lesson_that_was_read_only():
    confirmed = a_booking(status=BookingStatus.CONFIRMED)
    attendance = unknown_attendance(NOW, "attendance_report_missing")

    completed = completed_with(confirmed, attendance, end=confirmed.end)
    moved = replace(confirmed, end=confirmed.end + timedelta(hours=1))
    by_hand = lifecycle.complete(confirmed, now=NOW, outcome=LessonOutcome.NO_SHOW)

    assert (completed.status, completed.attendance) == (BookingStatus.COMPLETED, attendance)
    assert completed_with(moved, attendance, end=confirmed.end) is moved
    assert completed_with(by_hand, attendance, end=confirmed.end) is by_hand
    assert by_hand.attendance is not None
    assert (by_hand.attendance.outcome, by_hand.attendance.source) == (
        LessonOutcome.NO_SHOW,
        AttendanceSource.STAFF,
    )


def test_completed_by_hand_without_an_outcome_records_none():
    completed = lifecycle.complete(a_booking(status=BookingStatus.CONFIRMED), now=NOW)

    assert (completed.status, completed.attendance) == (BookingStatus.COMPLETED, None)


def test_done_work_is_not_owed_again_by_a_change_that_does_not_ask_for_it():
    pending = a_booking()
    confirmed = attendance_owed(
        pending, lifecycle.approve(pending, now=NOW, with_meeting=True), SETTINGS
    )
    finished = replace(confirmed, work=done(confirmed.work, ATTENDANCE_WORK, NOW))
    noted = replace(finished, internal_notes="a note")

    assert attendance_owed(finished, noted, SETTINGS) is noted
    assert ATTENDANCE_WORK not in noted.owed()


def test_a_session_that_ended_well_before_the_lesson_is_not_its_attendance():
    booking = a_booking()
    yesterday = AttendanceReport(
        "r0",
        (record("student@example.com", minutes=10, late=-24 * 60),),
        meeting_end=T0 - timedelta(hours=23),
    )
    early_start = AttendanceReport(
        "r1",
        (record("tutor@example.com", minutes=50, late=-10),),
        meeting_end=T0 + timedelta(minutes=45),
    )

    attendance, _ = attended_from(booking, [yesterday, early_start], SETTINGS, NOW)

    assert attendance.outcome is LessonOutcome.STUDENT_NO_SHOW
    assert [p.joined for p in attendance.participants] == [False, True]
