"""After the lesson: the `attendance` kind of work reads the meeting's Teams attendance report
(the Graph emulator, at the wire) and completes the booking with who joined and the outcome —
on the app's own wiring (`bootstrap`, in memory), with a clock that jumps to when each queue
message becomes visible: no sleeping for hours."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from localdev import stripe_events
from localdev.graph_emulator import Fault
from shared.auth.principal import Principal, Role
from shared.domain.attendance import AttendanceSource, LessonOutcome
from shared.domain.booking import Booking, BookingStatus, IllegalTransitionError, Participant
from shared.domain.booking import ParticipantRole as R
from shared.domain.completion import ATTENDANCE_WORK
from shared.domain.tenant import AttendanceSettings
from shared.domain.work import state_of
from shared.payments.events import parse
from shared.services import bookings as use_cases
from shared.services.bookings import Approval
from shared.storage.queues import WorkMessage
from shared.work.kinds import Outcome
from shared.work.policy import RetryPolicy
from tests.builders import a_booking
from tests.memory_world import TENANT, MemoryWorld, drain, memory_world

pytestmark = pytest.mark.integration

STAFF = Principal("staff-1", TENANT, frozenset({Role.STAFF}))
STUDENT = "student@example.com"
TUTOR = "tutor@example.com"
# The kit's rounds in these worlds: 30 s, 2 min, 10 min (the last one held back to the deadline).
POLICY = RetryPolicy(rounds=(30.0, 120.0, 600.0))


def lesson(world: MemoryWorld, **changes) -> Booking:
    """A lesson tomorrow, approved with a Teams meeting (made inline, on the emulator)."""
    start = world.clock.now + timedelta(days=1)
    booking = world.bookings.add(
        a_booking(tenant_id=TENANT, start=start, end=start + timedelta(hours=1), **changes)
    )
    use_cases.approve_booking(STAFF, booking.booking_id, Approval(), world.deps)
    world.drain()  # the meeting's outbox message: nothing left to do
    approved = world.booking(booking.booking_id)
    assert approved.meeting.meeting_id is not None
    return approved


def attend(world: MemoryWorld, booking: Booking, who: str, minutes: float, *, late: float = 1.0):
    join = booking.start + timedelta(minutes=late)
    world.emulator.attend(
        str(booking.meeting.meeting_id), who, join, join + timedelta(minutes=minutes)
    )


def publish(world: MemoryWorld, booking: Booking) -> None:
    world.emulator.publish_attendance(str(booking.meeting.meeting_id))


def deliver(world: MemoryWorld, rounds: int = 20) -> list[Outcome]:
    """Deliver the attendance queue's messages as the trigger would, each when visible."""
    outcomes: list[Outcome] = []

    def handle(message: WorkMessage) -> None:
        outcomes.append(world.services.kinds.handle(ATTENDANCE_WORK, message))

    drain(world.attendance_queue, world.clock, handle, rounds, "the attendance queue")
    return outcomes


def events(caplog, name: str) -> list[dict]:
    found = []
    for record in caplog.records:
        try:
            logged = json.loads(record.getMessage())
        except ValueError:
            continue
        if logged.get("event") == name:
            found.append(logged)
    return found


def seen(booking: Booking) -> dict[str, tuple[bool, int]]:
    assert booking.attendance is not None
    return {p.user_id: (p.joined, p.total_seconds) for p in booking.attendance.participants}


def test_a_lesson_both_attend_is_completed_as_attended_with_each_participants_times():
    with memory_world(policy=POLICY) as world:
        # GIVEN an approved lesson whose student and tutor joined, and whose report is out
        booking = lesson(world)
        attend(world, booking, STUDENT, 50, late=2)
        attend(world, booking, TUTOR, 58)
        publish(world, booking)

        # WHEN the attendance work's messages are delivered
        outcomes = deliver(world)

        # THEN it waited until the end plus the grace (15 min), then completed the booking
        assert outcomes[-1] is Outcome.DONE
        assert world.clock.now >= booking.end + timedelta(minutes=15)
        after = world.booking(booking.booking_id)
        assert after.status is BookingStatus.COMPLETED
        assert after.attendance is not None
        assert after.attendance.outcome is LessonOutcome.ATTENDED
        assert after.attendance.source is AttendanceSource.REPORT
        assert seen(after) == {"student-1": (True, 50 * 60), "tutor-1": (True, 58 * 60)}
        (student, _) = after.attendance.participants
        assert student.first_join == booking.start + timedelta(minutes=2)
        assert student.last_leave == booking.start + timedelta(minutes=52)
        assert world.emulator.calls["listAttendanceReports"] == 1
        assert world.emulator.calls["getAttendanceReport"] == 1


def test_a_lesson_confirmed_by_payment_owes_its_attendance_too(svc):
    # GIVEN a pending lesson on Azurite, paid through Stripe (the app's services, real HTTP)
    start = (svc.clock() + timedelta(days=3)).replace(microsecond=0)
    booking = svc.bookings.add(
        a_booking(tenant_id=TENANT, start=start, end=start + timedelta(hours=1))
    )
    event = parse(json.dumps(stripe_events.payment_succeeded(TENANT, booking.booking_id)))

    # WHEN the payment is received
    svc.payments.receive(event, source="webhook")

    # THEN the booking is confirmed and owes its attendance after the end and grace, with its
    # marker (the timer finds it once due)
    paid = svc.bookings.get(TENANT, booking.booking_id)
    assert paid.status is BookingStatus.CONFIRMED
    state = state_of(paid.work, ATTENDANCE_WORK)
    assert state is not None
    assert state.next_attempt_at == paid.end + timedelta(minutes=15)
    assert svc.bookings.list_marked(ATTENDANCE_WORK, TENANT, 10, svc.clock()) == []
    due = svc.bookings.list_marked(ATTENDANCE_WORK, TENANT, 10, paid.end + timedelta(minutes=15))
    assert [b.booking_id for b in due] == [booking.booking_id]


def test_a_lesson_approved_without_a_meeting_owes_attendance_once_one_is_generated():
    with memory_world(policy=POLICY) as world:
        # GIVEN a lesson approved without a Teams meeting: no attendance to read
        start = world.clock.now + timedelta(days=1)
        booking = world.bookings.add(
            a_booking(tenant_id=TENANT, start=start, end=start + timedelta(hours=1))
        )
        use_cases.approve_booking(
            STAFF, booking.booking_id, Approval(generate_teams_meeting=False), world.deps
        )
        assert state_of(world.booking(booking.booking_id).work, ATTENDANCE_WORK) is None
        assert world.attendance_queue.messages == []

        # WHEN its meeting is generated by hand
        admin = Principal("admin-1", TENANT, frozenset({Role.ADMIN}))
        use_cases.generate_meeting(admin, booking.booking_id, world.deps)

        # THEN its attendance is owed, with its message
        generated = world.booking(booking.booking_id)
        state = state_of(generated.work, ATTENDANCE_WORK)
        assert state is not None
        assert state.next_attempt_at == generated.end + timedelta(minutes=15)
        assert len(world.attendance_queue.messages) == 1


def test_only_the_tutor_there_is_a_student_no_show():
    with memory_world(policy=POLICY) as world:
        booking = lesson(world)
        attend(world, booking, TUTOR, 58)
        publish(world, booking)

        deliver(world)

        after = world.booking(booking.booking_id)
        assert after.attendance is not None
        assert after.attendance.outcome is LessonOutcome.STUDENT_NO_SHOW
        assert seen(after) == {"student-1": (False, 0), "tutor-1": (True, 58 * 60)}


def test_only_the_student_there_is_a_tutor_no_show():
    with memory_world(policy=POLICY) as world:
        booking = lesson(world)
        attend(world, booking, STUDENT.upper(), 30)  # e-mail matched whatever its case
        publish(world, booking)

        deliver(world)

        after = world.booking(booking.booking_id)
        assert after.attendance is not None
        assert after.attendance.outcome is LessonOutcome.TUTOR_NO_SHOW


def test_both_there_for_less_than_the_minimum_is_a_no_show_while_joined_is_still_recorded():
    with memory_world(policy=POLICY) as world:
        # GIVEN both looked in for 2 minutes (the tenant's minimum is 5)
        booking = lesson(world)
        attend(world, booking, STUDENT, 2)
        attend(world, booking, TUTOR, 2)
        publish(world, booking)

        deliver(world)

        after = world.booking(booking.booking_id)
        assert after.attendance is not None
        assert after.attendance.outcome is LessonOutcome.NO_SHOW
        assert seen(after) == {"student-1": (True, 120), "tutor-1": (True, 120)}


def test_the_minimum_is_the_tenants_own():
    with memory_world(policy=POLICY) as world:
        # GIVEN a tenant for whom one minute counts
        tenant = world.tenants.get(TENANT)
        world.tenants.update(replace(tenant, attendance=AttendanceSettings(minimum_minutes=1)))
        booking = lesson(world)
        attend(world, booking, STUDENT, 2)
        attend(world, booking, TUTOR, 2)
        publish(world, booking)

        deliver(world)

        after = world.booking(booking.booking_id)
        assert after.attendance is not None
        assert after.attendance.outcome is LessonOutcome.ATTENDED


def test_a_report_published_late_is_retried_on_the_kits_schedule_then_recorded(caplog):
    caplog.set_level(logging.INFO)
    with memory_world(policy=POLICY) as world:
        # GIVEN a lesson both attended, whose report Teams has not published yet
        booking = lesson(world)
        attend(world, booking, STUDENT, 55)
        attend(world, booking, TUTOR, 58)
        (message,) = world.attendance_queue.messages
        world.attendance_queue.messages.clear()
        world.clock.now = booking.end + timedelta(minutes=15)

        # WHEN the work runs: no report yet
        first = world.services.kinds.handle(ATTENDANCE_WORK, message[1])

        # THEN it is a retry on the kit's schedule (not an in-process loop), not a completion
        assert first is Outcome.RETRYING
        waiting = world.booking(booking.booking_id)
        assert waiting.status is BookingStatus.CONFIRMED
        state = state_of(waiting.work, ATTENDANCE_WORK)
        assert state is not None
        assert (state.owed, state.rounds) == (True, 1)
        ((delay, _),) = world.attendance_queue.messages
        assert delay == 60.0  # a report is not asked for again within the minute
        assert world.emulator.calls["listAttendanceReports"] == 1
        (retry,) = events(caplog, "attendance_retry_scheduled")
        assert retry["errorCode"] == "attendance_report_missing"

        # WHEN Teams publishes the report, and the next round comes
        publish(world, booking)
        outcomes = deliver(world)

        # THEN it is recorded
        assert outcomes == [Outcome.DONE]
        after = world.booking(booking.booking_id)
        assert after.attendance is not None
        assert after.attendance.outcome is LessonOutcome.ATTENDED


def test_a_report_that_never_appears_completes_the_booking_as_unknown_at_the_deadline():
    with memory_world(policy=POLICY) as world:
        # GIVEN a lesson whose report never comes
        booking = lesson(world)

        # WHEN every message is delivered
        outcomes = deliver(world)

        # THEN its rounds ran, the last one at the deadline (24 h after the end), and the
        # booking completed with outcome unknown, nothing poisoned
        assert outcomes[-1] is Outcome.DONE
        assert outcomes.count(Outcome.RETRYING) == len(POLICY.rounds)
        deadline = booking.end + timedelta(hours=24)
        assert deadline <= world.clock.now <= deadline + timedelta(minutes=1)
        after = world.booking(booking.booking_id)
        assert after.status is BookingStatus.COMPLETED
        assert after.attendance is not None
        assert (after.attendance.outcome, after.attendance.error_code) == (
            LessonOutcome.UNKNOWN,
            "attendance_report_missing",
        )
        assert after.attendance.source is AttendanceSource.NONE
        assert world.attendance_queue.poisoned == []
        assert world.emulator.calls["listAttendanceReports"] == 1 + len(POLICY.rounds)


def test_without_the_permission_the_booking_completes_as_unknown_naming_it(caplog):
    caplog.set_level(logging.INFO)
    with memory_world(policy=POLICY) as world:
        # GIVEN an app without OnlineMeetingArtifact.Read.All
        booking = lesson(world)
        attend(world, booking, STUDENT, 55)
        publish(world, booking)
        world.emulator.artifacts_granted = False

        deliver(world)

        # THEN the booking completed at once (no retries), unknown, with a code naming why
        after = world.booking(booking.booking_id)
        assert after.status is BookingStatus.COMPLETED
        assert after.attendance is not None
        assert (after.attendance.outcome, after.attendance.error_code) == (
            LessonOutcome.UNKNOWN,
            "attendance_permission_missing",
        )
        assert world.emulator.statuses["listAttendanceReports:403"] == 1
        (forbidden,) = events(caplog, "attendance_forbidden")
        assert forbidden["permission"] == "OnlineMeetingArtifact.Read.All"
        assert "OnlineMeetingArtifact.Read.All" in forbidden["message"]
        assert [r for r in caplog.records if r.levelno == logging.ERROR]


def test_a_failing_report_call_is_retried_like_any_other_graph_call():
    with memory_world(policy=POLICY) as world:
        # GIVEN Graph answers the first two report reads with 503
        booking = lesson(world)
        attend(world, booking, STUDENT, 55)
        attend(world, booking, TUTOR, 55)
        publish(world, booking)
        world.emulator.add_fault(Fault(operation="getAttendanceReport", status=503, count=2))

        outcomes = deliver(world)

        # THEN the kit retried it in process, and it was recorded
        assert outcomes[-1] is Outcome.DONE
        assert world.emulator.statuses["getAttendanceReport:503"] == 2
        assert world.emulator.calls["getAttendanceReport"] == 3
        after = world.booking(booking.booking_id)
        assert after.attendance is not None
        assert after.attendance.outcome is LessonOutcome.ATTENDED


def test_a_meeting_deleted_in_teams_completes_the_booking_as_unknown_at_once():
    with memory_world(policy=POLICY) as world:
        booking = lesson(world)
        world.emulator.delete_meeting_by_hand(str(booking.meeting.meeting_id))

        outcomes = deliver(world)

        assert Outcome.RETRYING not in outcomes
        after = world.booking(booking.booking_id)
        assert after.attendance is not None
        assert (after.attendance.outcome, after.attendance.error_code) == (
            LessonOutcome.UNKNOWN,
            "graph_not_found",
        )


def test_graph_unavailable_until_the_deadline_completes_the_booking_as_unknown_then():
    with memory_world(policy=POLICY) as world:
        booking = lesson(world)
        world.emulator.add_fault(Fault(operation="listAttendanceReports", status=503))

        outcomes = deliver(world)

        assert outcomes.count(Outcome.RETRYING) == len(POLICY.rounds)
        assert world.clock.now >= booking.end + timedelta(hours=24)
        after = world.booking(booking.booking_id)
        assert after.attendance is not None
        assert (after.attendance.outcome, after.attendance.error_code) == (
            LessonOutcome.UNKNOWN,
            "graph_unavailable",
        )
        assert world.attendance_queue.poisoned == []


def test_a_booking_completed_by_hand_is_left_as_staff_recorded_it():
    with memory_world(policy=POLICY) as world:
        # GIVEN staff completed the lesson by hand, as a tutor no-show
        booking = lesson(world)
        attend(world, booking, STUDENT, 55)
        attend(world, booking, TUTOR, 55)
        publish(world, booking)
        use_cases.complete_booking(
            STAFF, booking.booking_id, LessonOutcome.TUTOR_NO_SHOW, world.deps
        )
        by_hand = world.booking(booking.booking_id)

        # WHEN the attendance work runs after the lesson
        outcomes = deliver(world)

        # THEN it read nothing and changed nothing of what staff recorded
        assert Outcome.DONE in outcomes
        after = world.booking(booking.booking_id)
        assert after.status is BookingStatus.COMPLETED
        assert after.attendance == by_hand.attendance
        assert after.attendance is not None
        assert (after.attendance.outcome, after.attendance.source) == (
            LessonOutcome.TUTOR_NO_SHOW,
            AttendanceSource.STAFF,
        )
        assert world.emulator.calls["listAttendanceReports"] == 0


def test_completing_by_hand_is_for_staff_and_confirmed_bookings_only():
    with memory_world(policy=POLICY) as world:
        booking = lesson(world)
        student = Principal("student-1", TENANT, frozenset({Role.STUDENT}))
        with pytest.raises(Exception, match="Only staff and admins"):
            use_cases.complete_booking(student, booking.booking_id, None, world.deps)
        done = use_cases.complete_booking(STAFF, booking.booking_id, None, world.deps)
        assert (done.booking.status, done.booking.attendance) == (BookingStatus.COMPLETED, None)
        with pytest.raises(IllegalTransitionError):
            use_cases.complete_booking(STAFF, booking.booking_id, None, world.deps)


def test_a_cancelled_booking_is_left_alone():
    with memory_world(policy=POLICY) as world:
        booking = lesson(world)
        use_cases.cancel_booking(STAFF, booking.booking_id, None, world.deps)
        world.drain()

        deliver(world)

        after = world.booking(booking.booking_id)
        assert (after.status, after.attendance) == (BookingStatus.CANCELLED, None)
        assert world.emulator.calls["listAttendanceReports"] == 0


def test_a_moved_lesson_is_read_after_its_new_end_not_its_old_one():
    with memory_world(policy=POLICY) as world:
        # GIVEN a lesson moved a day later, after its attendance was owed for the old time
        booking = lesson(world)
        start = booking.start + timedelta(days=1)
        use_cases.reschedule_booking(
            STAFF, booking.booking_id, (start, start + timedelta(hours=1)), world.deps
        )
        world.drain()
        moved = world.booking(booking.booking_id)
        state = state_of(moved.work, ATTENDANCE_WORK)
        assert state is not None
        assert state.next_attempt_at == moved.end + timedelta(minutes=15)

        # WHEN the old time's message comes (before the new end), THEN it is not due
        world.clock.now = booking.end + timedelta(minutes=20)
        message = WorkMessage(TENANT, booking.booking_id)
        assert world.services.kinds.handle(ATTENDANCE_WORK, message) is Outcome.NOT_DUE
        assert world.emulator.calls["listAttendanceReports"] == 0

        # WHEN the lesson takes place at its new time
        attend(world, moved, STUDENT, 55)
        attend(world, moved, TUTOR, 55)
        publish(world, moved)
        deliver(world)

        # THEN it is read once, after the new end
        after = world.booking(booking.booking_id)
        assert after.attendance is not None
        assert after.attendance.outcome is LessonOutcome.ATTENDED
        assert after.attendance.recorded_at >= moved.end + timedelta(minutes=15)
        assert world.emulator.calls["listAttendanceReports"] == 1


def test_the_same_work_run_twice_records_once():
    with memory_world(policy=POLICY) as world:
        # GIVEN a lesson whose attendance was recorded
        booking = lesson(world)
        attend(world, booking, STUDENT, 55)
        attend(world, booking, TUTOR, 55)
        publish(world, booking)
        deliver(world)
        recorded = world.booking(booking.booking_id)

        # WHEN its message comes again (a redelivery) and the timer sweeps
        message = WorkMessage(TENANT, booking.booking_id)
        again = world.services.kinds.handle(ATTENDANCE_WORK, message)
        reports = world.services.kinds.sweep()

        # THEN nothing is read or saved again
        assert again is Outcome.NOTHING
        assert [(r.kind, r.marked) for r in reports] == [(ATTENDANCE_WORK, 0)]
        after = world.booking(booking.booking_id)
        assert after.version == recorded.version
        assert after.attendance == recorded.attendance
        assert world.emulator.calls["listAttendanceReports"] == 1


def test_lost_messages_are_found_by_the_timer_once_due():
    with memory_world(policy=POLICY) as world:
        booking = lesson(world)
        attend(world, booking, STUDENT, 55)
        attend(world, booking, TUTOR, 55)
        publish(world, booking)
        world.attendance_queue.messages.clear()

        # Before it is due the timer leaves it; once due, it does it
        assert world.services.kinds.sweep()[0].marked == 0
        world.clock.now = booking.end + timedelta(minutes=16)
        (report,) = world.services.kinds.sweep()

        assert (report.marked, report.done) == (1, 1)
        assert world.booking(booking.booking_id).status is BookingStatus.COMPLETED


def test_a_guest_is_matched_by_the_display_name_teams_recorded():
    with memory_world(policy=POLICY) as world:
        # GIVEN a student who joined as a guest, under their name (no e-mail in the report)
        booking = lesson(world)
        attend(world, booking, "  sam   STUDENT ", 40)
        attend(world, booking, TUTOR, 55)
        publish(world, booking)

        deliver(world)

        after = world.booking(booking.booking_id)
        assert after.attendance is not None
        assert after.attendance.outcome is LessonOutcome.ATTENDED
        assert seen(after)["student-1"] == (True, 40 * 60)
        assert after.attendance.unmatched == 0


def test_a_display_name_two_participants_share_is_not_guessed(caplog):
    caplog.set_level(logging.INFO)
    with memory_world(policy=POLICY) as world:
        # GIVEN two students of the same name, and a guest of that name in the report
        twins = (
            Participant("student-1", R.STUDENT, "alex.one@example.com", "Alex Kim"),
            Participant("student-2", R.STUDENT, "alex.two@example.com", "Alex Kim"),
            Participant("tutor-1", R.TUTOR, TUTOR, "Tia Tutor"),
        )
        booking = lesson(world, participants=twins)
        attend(world, booking, "Alex Kim", 50)
        attend(world, booking, TUTOR, 55)
        publish(world, booking)

        deliver(world)

        # THEN the guest counts for neither student, as unmatched, and the work says so
        after = world.booking(booking.booking_id)
        assert after.attendance is not None
        assert after.attendance.unmatched == 1
        assert seen(after) == {
            "student-1": (False, 0),
            "student-2": (False, 0),
            "tutor-1": (True, 55 * 60),
        }
        assert after.attendance.outcome is LessonOutcome.STUDENT_NO_SHOW
        (ambiguous,) = events(caplog, "attendance_ambiguous_name")
        assert (ambiguous["names"], ambiguous["unmatched"]) == (1, 1)
        assert "Alex Kim" not in json.dumps(ambiguous)


def test_sessions_in_several_reports_add_up():
    with memory_world(policy=POLICY) as world:
        # GIVEN a meeting left empty after 3 minutes and joined again: two reports
        booking = lesson(world)
        attend(world, booking, STUDENT, 3)
        attend(world, booking, TUTOR, 3)
        publish(world, booking)
        attend(world, booking, STUDENT, 20, late=10)
        attend(world, booking, TUTOR, 20, late=10)
        publish(world, booking)

        deliver(world)

        after = world.booking(booking.booking_id)
        assert after.attendance is not None
        assert after.attendance.outcome is LessonOutcome.ATTENDED
        assert seen(after)["student-1"] == (True, 23 * 60)
        student = after.attendance.participants[0]
        assert student.first_join == booking.start + timedelta(minutes=1)
        assert student.last_leave == booking.start + timedelta(minutes=30)
        assert world.emulator.calls["getAttendanceReport"] == 2


def test_the_attendance_is_kept_through_storage(tables):
    from shared.storage.bookings import TableBookingRepository

    # GIVEN a booking completed with its attendance, saved to Table Storage (Azurite)
    with memory_world(policy=POLICY) as world:
        booking = lesson(world)
        attend(world, booking, STUDENT, 55)
        publish(world, booking)
        deliver(world)
        completed = world.booking(booking.booking_id)
    repository = TableBookingRepository(tables)
    stored = repository.add(replace(completed, version=0, etag=None))

    # THEN it reads back the same
    read: Booking = repository.get(stored.tenant_id, stored.booking_id)
    assert read.attendance == completed.attendance
    assert isinstance(read.attendance.recorded_at, datetime)  # type: ignore[union-attr]


# -- a no-show, e-mailed to the staff ---------------------------------------------------------

STAFF_DESK = "Desk@Tenant-A.example"


def staff_mails(world: MemoryWorld) -> list[dict]:
    """Deliver the mail queue; what Graph sendMail took for the staff's address."""
    drain(world.mail_queue, world.clock, world.mail.worker.handle, 20, "the mail queue")
    return [
        m["message"]
        for m in world.emulator.mail
        if [r["emailAddress"]["address"] for r in m["message"]["toRecipients"]]
        == [STAFF_DESK.lower()]
    ]


def with_staff_desk(world: MemoryWorld) -> None:
    tenant = world.tenants.get(TENANT)
    settings = AttendanceSettings(no_show_mail_to=STAFF_DESK)
    world.tenants.update(replace(tenant, attendance=settings))


def test_a_student_no_show_is_mailed_to_the_staff_once_without_an_invite():
    with memory_world(policy=POLICY) as world:
        # GIVEN a tenant that wants no-shows mailed to its desk, and a lesson only the tutor
        # attended
        with_staff_desk(world)
        booking = lesson(world)
        assert staff_mails(world) == []  # the approval's mails go to the participants
        mailed_before = len(world.emulator.mail)
        attend(world, booking, TUTOR, 58)
        publish(world, booking)

        # WHEN the attendance work runs (twice: a redelivery), and then the mail queue
        deliver(world)
        world.services.kinds.handle(ATTENDANCE_WORK, WorkMessage(TENANT, booking.booking_id))
        mails = staff_mails(world)

        # THEN the desk has one mail saying who did not attend, with no calendar in it; the
        # participants were mailed nothing more
        (mail,) = mails
        assert mail["subject"] == "No-show: Computer Science, " + mail["subject"].split(", ")[-1]
        body = mail["body"]["content"]
        assert "The student did not attend." in body
        assert "did not join" in body
        assert "58 min in the meeting" in body
        assert mail["attachments"] == []
        assert "meetingMessageType" not in mail
        assert len(world.emulator.mail) == mailed_before + 1
        after = world.booking(booking.booking_id)
        assert after.status is BookingStatus.COMPLETED
        assert after.mail.pending == ()


@pytest.mark.parametrize("desk", [True, False], ids=["attended", "no-desk"])
def test_no_mail_to_the_staff_for_an_attended_lesson_or_without_a_desk(desk):
    with memory_world(policy=POLICY) as world:
        if desk:
            with_staff_desk(world)
        booking = lesson(world)
        attend(world, booking, TUTOR, 58)
        if desk:
            attend(world, booking, STUDENT, 50)  # attended: nothing to tell
        publish(world, booking)

        deliver(world)

        assert staff_mails(world) == []
        assert world.booking(booking.booking_id).status is BookingStatus.COMPLETED
