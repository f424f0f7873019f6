"""A 404 from Graph on the PATCH or DELETE of a meeting is believed only once a GET agrees: a
meeting declared gone is made anew (or its cancelled booking left alone), so one wrong 404 must
never leave a second meeting, or a live one, behind. In memory, Graph faked at the wire."""

from __future__ import annotations

from datetime import timedelta

from localdev.graph_emulator import Fault
from shared.auth.principal import Principal, Role
from shared.domain.booking import MeetingStatus
from shared.services import bookings as use_cases
from shared.services.bookings import Approval
from shared.work.policy import RetryPolicy
from tests.builders import a_booking
from tests.memory_world import TENANT, MemoryWorld, memory_world

STAFF = Principal("staff-1", TENANT, frozenset({Role.STAFF}))


def with_meeting(world: MemoryWorld) -> tuple[str, str]:
    start = world.clock.now + timedelta(days=3)
    booking = world.bookings.add(
        a_booking(tenant_id=TENANT, start=start, end=start + timedelta(hours=1))
    )
    use_cases.approve_booking(STAFF, booking.booking_id, Approval(), world.deps)
    world.queue.messages.clear()
    stored = world.booking(booking.booking_id)
    assert stored.meeting.status is MeetingStatus.CREATED
    assert stored.meeting.meeting_id is not None
    return booking.booking_id, stored.meeting.meeting_id


def reschedule(world: MemoryWorld, booking_id: str) -> None:
    start = world.clock.now + timedelta(days=4)
    use_cases.reschedule_booking(STAFF, booking_id, (start, start + timedelta(hours=1)), world.deps)


def test_a_wrong_404_on_patch_keeps_the_same_meeting_and_moves_it():
    with memory_world() as world:
        booking_id, meeting_id = with_meeting(world)
        # GIVEN Graph answers one PATCH with 404 though the meeting exists
        world.emulator.add_fault(Fault(operation="patchMeeting", status=404, count=1))

        # WHEN the booking is moved, and its work runs to the end
        reschedule(world, booking_id)
        world.drain()

        # THEN the one meeting moved: no second meeting, the same link
        stored = world.booking(booking_id)
        (meeting,) = world.emulator.live_meetings()
        assert meeting.id == meeting_id == stored.meeting.meeting_id
        assert stored.meeting.status is MeetingStatus.CREATED
        assert stored.meeting.generation == 1
        assert meeting.start.startswith(stored.start.strftime("%Y-%m-%dT%H:%M:%S"))
        assert world.emulator.calls["getMeeting"] == 1
        assert world.emulator.calls["createOrGet"] == 1


def test_a_confirmed_404_on_patch_makes_the_meeting_anew_as_before():
    with memory_world() as world:
        booking_id, meeting_id = with_meeting(world)
        # GIVEN the meeting was deleted in Teams by hand
        world.emulator.delete_meeting_by_hand(meeting_id)

        reschedule(world, booking_id)
        world.drain()

        stored = world.booking(booking_id)
        (meeting,) = world.emulator.live_meetings()
        assert meeting.id != meeting_id
        assert stored.meeting.meeting_id == meeting.id
        assert stored.meeting.generation == 2


def test_a_wrong_404_on_delete_leaves_no_live_meeting_for_a_cancelled_booking():
    with memory_world() as world:
        booking_id, _ = with_meeting(world)
        world.emulator.add_fault(Fault(operation="deleteMeeting", status=404, count=1))

        use_cases.cancel_booking(STAFF, booking_id, None, world.deps)
        world.drain()

        assert world.emulator.live_meetings() == []
        stored = world.booking(booking_id)
        assert stored.meeting.status is MeetingStatus.DELETED
        assert world.emulator.calls["deleteMeeting"] == 2
        assert world.emulator.calls["getMeeting"] == 1


def test_a_confirmed_404_on_delete_counts_as_done():
    with memory_world() as world:
        booking_id, meeting_id = with_meeting(world)
        world.emulator.delete_meeting_by_hand(meeting_id)

        use_cases.cancel_booking(STAFF, booking_id, None, world.deps)

        stored = world.booking(booking_id)
        assert stored.meeting.status is MeetingStatus.DELETED
        assert world.emulator.calls["deleteMeeting"] == 1
        assert world.emulator.calls["getMeeting"] == 1


def test_a_get_that_fails_after_a_404_is_a_retry_not_a_verdict():
    with memory_world() as world:
        booking_id, _ = with_meeting(world)
        world.emulator.add_fault(Fault(operation="deleteMeeting", status=404, count=1))
        world.emulator.add_fault(Fault(operation="getMeeting", status=503, count=1))

        cancelled = use_cases.cancel_booking(STAFF, booking_id, None, world.deps)
        assert cancelled.booking.meeting.status is MeetingStatus.PENDING
        world.drain()

        assert world.emulator.live_meetings() == []
        assert world.booking(booking_id).meeting.status is MeetingStatus.DELETED


def test_a_wrong_404_to_the_pre_start_check_makes_no_second_meeting():
    with memory_world() as world:
        # GIVEN a meeting that starts within the verification window
        start = world.clock.now + timedelta(hours=3)
        booking = world.bookings.add(
            a_booking(tenant_id=TENANT, start=start, end=start + timedelta(hours=1))
        )
        use_cases.approve_booking(STAFF, booking.booking_id, Approval(), world.deps)
        world.queue.messages.clear()
        (meeting,) = world.emulator.live_meetings()
        # AND Graph answers the check's GET with one wrong 404
        world.emulator.add_fault(Fault(operation="getMeeting", status=404, count=1))

        # WHEN the timer verifies it
        report = world.reconciler.run()

        # THEN the second GET found it: nothing is made anew, and the next run checks it again
        assert (report.remade, report.errors) == (0, 1)
        assert [m.id for m in world.emulator.live_meetings()] == [meeting.id]
        assert world.booking(booking.booking_id).meeting.generation == 1
        assert world.reconciler.run().verified == 1


def test_teams_losing_every_meeting_it_makes_is_retried_on_the_schedule_not_without_end():
    with memory_world(policy=RetryPolicy(rounds=(30.0, 120.0))) as world:
        # GIVEN Graph answers 404 to every PATCH and GET of the meetings it makes
        world.emulator.add_fault(Fault(operation="patchMeeting", status=404))
        world.emulator.add_fault(Fault(operation="getMeeting", status=404))
        start = world.clock.now + timedelta(days=3)
        booking = world.bookings.add(
            a_booking(tenant_id=TENANT, start=start, end=start + timedelta(hours=1))
        )

        use_cases.approve_booking(STAFF, booking.booking_id, Approval(), world.deps)
        world.drain()

        # THEN a few meetings were made, one per attempt, and then the work stopped for a person
        stored = world.booking(booking.booking_id)
        assert stored.meeting.status is MeetingStatus.FAILED
        assert stored.meeting.last_error_code == "graph_meeting_vanishing"
        assert world.emulator.calls["createOrGet"] == 4
        assert stored.meeting.generation == 4
        (poisoned,) = world.queue.poisoned
        assert poisoned.reason == "permanent"
