"""The claim for a change's first meeting step saved with the change, and a create and its
options PATCH saved in one write: fewer writes, the same guarantees."""

from __future__ import annotations

from datetime import timedelta

from localdev.graph_emulator import Fault
from shared.auth.principal import Principal, Role
from shared.domain.audit import AuditEvent
from shared.domain.booking import MeetingStatus
from shared.services import bookings as use_cases
from shared.services.bookings import Approval
from shared.work.policy import RetryPolicy
from tests.builders import a_booking
from tests.memory_world import TENANT, memory_world

STAFF = Principal("staff-1", TENANT, frozenset({Role.STAFF}))


def add_booking(world) -> str:
    start = world.clock.now + timedelta(days=3)
    booking = world.bookings.add(
        a_booking(tenant_id=TENANT, start=start, end=start + timedelta(hours=1))
    )
    booking_id: str = booking.booking_id
    return booking_id


def test_an_approval_is_three_versions_the_claim_saved_with_it_and_both_answers_in_one_write():
    with memory_world() as world:
        use_cases.approve_booking(STAFF, add_booking(world), Approval(), world.deps)  # organizer
        booking_id = add_booking(world)

        result = use_cases.approve_booking(STAFF, booking_id, Approval(), world.deps)

        # added (1), approved with the create's claim (2), the create and the PATCH (3)
        stored = world.booking(booking_id)
        assert result.warning is None
        assert stored.version == 3
        assert stored.meeting.status is MeetingStatus.CREATED
        assert stored.meeting.options_applied
        assert stored.meeting.claim_token is None
        assert not stored.meeting.create_in_doubt
        assert not stored.needs_reconciliation
        events = [r.event for r in world.audit.list_for_booking(TENANT, booking_id)]
        assert sorted(events) == sorted([AuditEvent.MEETING_ATTACHED, AuditEvent.MEETING_UPDATED])


def test_a_create_refused_under_a_claim_saved_with_the_approval_leaves_no_doubt():
    with memory_world() as world:
        use_cases.approve_booking(STAFF, add_booking(world), Approval(), world.deps)  # organizer
        booking_id = add_booking(world)
        creates = world.emulator.calls["createOrGet"]
        # GIVEN Teams throttles the create, with a clear answer (nothing was made)
        world.emulator.add_fault(
            Fault(operation="createOrGet", status=429, retry_after="1.5", count=1)
        )

        approved = use_cases.approve_booking(STAFF, booking_id, Approval(), world.deps)

        # THEN the approval stands, and the claim saved with it did not leave a create in doubt
        assert "throttling" in (approved.warning or "")
        assert not world.booking(booking_id).meeting.create_in_doubt
        # so a cancellation needs no Graph call at all
        cancelled = use_cases.cancel_booking(STAFF, booking_id, None, world.deps)
        assert cancelled.booking.meeting.status is MeetingStatus.NONE
        assert world.emulator.calls["createOrGet"] == creates + 1
        assert world.emulator.calls["deleteMeeting"] == 0


def test_a_create_answered_as_the_budget_runs_out_is_saved_before_the_attempt_stops():
    # GIVEN an inline budget of 1.5 s and a create that takes 1.2 s to answer (so too little is
    # left to start the options PATCH under the same claim)
    policy = RetryPolicy(rounds=(30.0, 120.0, 600.0), inline_budget=1.5)
    with memory_world(policy=policy) as world:
        use_cases.approve_booking(STAFF, add_booking(world), Approval(), world.deps)  # organizer
        booking_id = add_booking(world)
        world.emulator.add_fault(Fault(operation="createOrGet", latency_ms=1200, count=1))

        # WHEN the booking is approved
        result = use_cases.approve_booking(STAFF, booking_id, Approval(), world.deps)

        # THEN the create's answer is saved (the meeting is known, not in doubt); the PATCH is
        # left to the queued message, which applies it
        stored = world.booking(booking_id)
        assert result.warning is None
        assert stored.meeting.meeting_id is not None
        assert not stored.meeting.create_in_doubt
        assert not stored.meeting.options_applied
        assert stored.needs_reconciliation
        world.drain()
        assert world.booking(booking_id).meeting.options_applied
        assert world.emulator.calls["createOrGet"] == 2
