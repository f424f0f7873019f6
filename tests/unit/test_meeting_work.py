"""The meeting-ops worker's retry schedule, give-up and poison handling (in memory, Graph faked at
the wire, a clock that moves only when the worker sleeps or a message is delivered)."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import timedelta

import pytest

from localdev.graph_emulator import POLICY_MISSING_MESSAGE, Fault
from shared.auth.principal import Principal, Role
from shared.domain.audit import AuditEvent
from shared.domain.booking import MeetingStatus
from shared.meetings.worker import record_poisoned
from shared.services import bookings as use_cases
from shared.services.bookings import Approval
from shared.storage.queues import PoisonedWork, WorkMessage
from shared.work.policy import RetryPolicy
from tests.builders import a_booking
from tests.memory_world import DIRECTORY, TENANT, memory_world

STAFF = Principal("staff-1", TENANT, frozenset({Role.STAFF}))


def approved(world, **fault):
    """A booking approved while Graph answers with `fault` (if any) to every createOrGet."""
    if fault:
        world.emulator.add_fault(Fault(operation="createOrGet", **fault))
    start = world.clock.now + timedelta(days=3)
    booking = world.bookings.add(
        a_booking(tenant_id=TENANT, start=start, end=start + timedelta(hours=1))
    )
    use_cases.approve_booking(STAFF, booking.booking_id, Approval(), world.deps)
    return booking.booking_id


def test_a_failing_create_is_retried_1_2_4_seconds_then_requeued_on_the_schedule():
    with memory_world(policy=RetryPolicy(rounds=(30.0, 120.0, 600.0))) as world:
        # GIVEN Graph answers every create with 503, and an approval left its outbox message
        booking_id = approved(world, status=503)
        ((outbox_delay, work),) = world.queue.messages
        assert (work, outbox_delay) == (WorkMessage(TENANT, booking_id), 5.0)
        world.queue.messages.clear()

        # WHEN the worker takes the message, once it is visible
        world.clock.sleep(outbox_delay)
        world.worker.handle(work)

        # THEN it tried four times in process, waiting 1, 2 and 4 s, and scheduled round 1
        assert world.sleeps == [1.0, 2.0, 4.0]
        assert world.emulator.calls["createOrGet"] == 1 + 4
        ((delay, again),) = world.queue.messages
        assert (delay, again) == (30.0, WorkMessage(TENANT, booking_id))
        stored = world.booking(booking_id)
        assert stored.meeting.status is MeetingStatus.PENDING
        assert stored.meeting.next_attempt_at == world.clock.now + timedelta(seconds=30)
        assert stored.meeting.attempts == 5
        assert stored.needs_reconciliation


def test_after_the_last_round_the_meeting_is_failed_and_the_work_poisoned(caplog):
    with memory_world(policy=RetryPolicy(rounds=(30.0, 120.0))) as world:
        booking_id = approved(world, status=503)

        world.drain()

        # THEN: the outbox round and two delayed rounds, each 1 + 3 in-process attempts
        assert world.emulator.calls["createOrGet"] == 1 + 3 * 4
        stored = world.booking(booking_id)
        assert (stored.meeting.status, stored.meeting.last_error_code) == (
            MeetingStatus.FAILED,
            "graph_unavailable",
        )
        assert not stored.needs_reconciliation
        (poisoned,) = world.queue.poisoned
        assert (poisoned.reason, poisoned.step, poisoned.graph_status) == (
            "retries_exhausted",
            "create",
            503,
        )

        # AND the poison consumer writes one ERROR log and the audit record
        with caplog.at_level(logging.ERROR, logger="meetings.work"):
            record_poisoned(PoisonedWork.from_text(poisoned.to_text()), world.audit, world.clock())
        (line,) = [r for r in caplog.records if r.levelno == logging.ERROR]
        logged = json.loads(line.getMessage())
        assert (logged["tenant"], logged["bookingId"], logged["operation"]) == (
            TENANT,
            booking_id,
            "create",
        )
        assert logged["graphStatus"] == 503
        events = [r.event for r in world.audit.list_for_booking(TENANT, booking_id)]
        assert events.count(AuditEvent.MEETING_ATTEMPT_FAILED) == 13
        assert events.count(AuditEvent.MEETING_FAILED) == 1


def test_a_permanent_error_stops_after_one_call():
    with memory_world() as world:
        booking_id = approved(world, status=403, message=POLICY_MISSING_MESSAGE)

        world.drain()

        assert world.emulator.calls["createOrGet"] == 1
        assert world.booking(booking_id).meeting.status is MeetingStatus.FAILED
        (poisoned,) = world.queue.poisoned
        assert (poisoned.reason, poisoned.error_code) == ("permanent", "graph_policy_missing")


def test_a_long_retry_after_is_waited_for_in_the_queue_not_in_a_thread():
    with memory_world() as world:
        # GIVEN Graph throttles with Retry-After 45 s (longer than the outbox delay)
        booking_id = approved(world, status=429, retry_after="45", count=2)
        stored = world.booking(booking_id)
        assert stored.meeting.next_attempt_at == world.clock.now + timedelta(seconds=45)

        # WHEN the outbox message arrives early, THEN it waits (no call) until then
        ((_, work),) = world.queue.messages
        world.queue.messages.clear()
        world.worker.handle(work)
        assert world.emulator.calls["createOrGet"] == 1
        ((delay, _),) = world.queue.messages
        assert 43 <= delay <= 45

        # AND a second 429 is not slept on either: the next round waits at least 45 s
        world.drain()
        assert world.sleeps == []
        assert world.booking(booking_id).meeting.status is MeetingStatus.CREATED
        assert world.emulator.calls["createOrGet"] == 3


def test_redelivered_messages_after_success_call_graph_no_more():
    with memory_world() as world:
        booking_id = approved(world)
        calls = dict(world.emulator.calls)

        for _ in range(3):
            world.redeliver(WorkMessage(TENANT, booking_id))

        assert dict(world.emulator.calls) == calls
        assert world.booking(booking_id).meeting.status is MeetingStatus.CREATED


def test_a_booking_claimed_by_another_worker_is_left_to_it_until_its_claim_lapses():
    with memory_world(claim_seconds=40) as world:
        booking_id = approved(world, status=503, count=1)
        world.queue.messages.clear()
        world.clock.sleep(5)  # the outbox message's delay
        # GIVEN another worker holds the booking (it took the claim, then died)
        from shared.domain import convergence as facts

        held = facts.claimed(
            world.booking(booking_id), "other", world.clock.now + timedelta(seconds=40)
        )
        world.bookings.update(held)

        # WHEN a message for it arrives, THEN it is put back until the claim lapses
        world.worker.handle(WorkMessage(TENANT, booking_id))
        ((delay, _),) = world.queue.messages
        assert delay == pytest.approx(41)
        assert world.emulator.calls["createOrGet"] == 1

        # AND then the work is done (the dead worker's create was in doubt: createOrGet)
        world.drain()
        assert world.booking(booking_id).meeting.status is MeetingStatus.CREATED
        assert len(world.emulator.live_meetings()) == 1


@pytest.mark.parametrize(
    ("round_", "retry_after", "rnd", "expected"),
    [
        (1, None, 0.5, 30.0),
        (1, None, 0.0, 24.0),  # -20 %
        (1, None, 0.999999, 36.0),  # +20 %
        (2, None, 0.5, 120.0),
        (5, None, 0.5, 21600.0),
        (1, 90.0, 0.5, 90.0),  # never sooner than Retry-After
        (9, None, 0.5, 21600.0),  # past the end: the last delay
    ],
)
def test_round_delays_follow_the_schedule_with_jitter(round_, retry_after, rnd, expected):
    assert RetryPolicy().round_delay(round_, retry_after, rnd) == pytest.approx(expected, rel=1e-4)


def test_new_work_starts_its_retry_rounds_afresh_whatever_old_messages_say():
    with memory_world(policy=RetryPolicy(rounds=(30.0, 120.0))) as world:
        # GIVEN a create that failed through both delayed rounds' worth of scheduling
        booking_id = approved(world, status=503)
        world.queue.messages.clear()
        world.clock.sleep(5)  # the outbox message's delay
        world.worker.handle(WorkMessage(TENANT, booking_id))
        world.clock.sleep(40)  # past round 1's time
        world.worker.handle(WorkMessage(TENANT, booking_id))
        assert world.booking(booking_id).meeting.rounds == 2
        world.queue.messages.clear()

        # WHEN the booking is rescheduled (new work) and an old message arrives while Graph
        # still fails once more
        start = world.clock.now + timedelta(days=4)
        use_cases.reschedule_booking(
            STAFF, booking_id, (start, start + timedelta(hours=1)), world.deps
        )
        world.queue.messages.clear()
        world.clock.sleep(5)
        world.worker.handle(WorkMessage(TENANT, booking_id))

        # THEN the new work is on its first round, not given up
        stored = world.booking(booking_id)
        assert (stored.meeting.status, stored.meeting.rounds) == (MeetingStatus.PENDING, 1)
        assert world.queue.poisoned == []
        world.emulator.clear_faults()
        world.drain()
        assert world.booking(booking_id).meeting.status is MeetingStatus.CREATED


@pytest.mark.parametrize(
    "fault",
    [
        Fault(operation="discovery", status=503, count=1),
        Fault(operation="discovery", status=429, retry_after="1", count=1),
        Fault(operation="token", status=503, count=1),
        Fault(operation="token", status=429, retry_after="1", count=1),
        Fault(operation="token", status=408, count=1),
        Fault(operation="token", hang_seconds=30, count=1),
    ],
    ids=["discovery-503", "discovery-429", "token-503", "token-429", "token-408", "token-hang"],
)
def test_sign_in_trouble_is_retried_and_leaves_no_doubt(fault):
    with memory_world() as world:
        # GIVEN the login endpoint is throttled, down or slow once
        world.emulator.add_fault(fault)

        booking_id = approved(world)

        # THEN the approval stands with a retry scheduled (the marker and the queued message);
        # nothing was sent to Teams, so a cancellation needs no Graph call at all
        stored = world.booking(booking_id)
        assert stored.meeting.status is MeetingStatus.PENDING
        assert stored.needs_reconciliation
        assert not stored.meeting.create_in_doubt
        assert world.queue.messages
        cancelled = use_cases.cancel_booking(STAFF, booking_id, None, world.deps)
        assert cancelled.booking.meeting.status is MeetingStatus.NONE
        assert world.emulator.calls["createOrGet"] == 0


def test_an_in_doubt_create_is_finished_for_the_organizer_it_was_sent_for():
    with memory_world() as world:
        # GIVEN a create whose answer was lost (Teams made the meeting)
        booking_id = approved(world, status=504, lost_reply=True, count=1)
        assert world.booking(booking_id).meeting.create_in_doubt

        # WHEN the admin switches the organizer to someone else before the retry
        world.emulator.add_user(DIRECTORY, "other@a.example", "Other Organizer")
        tenant = world.tenants.get(TENANT)
        world.tenants.update(
            replace(tenant, organizer_upn="other@a.example", organizer_object_id=None)
        )
        world.drain()

        # THEN the retry found the first meeting: one meeting, linked, not two
        (meeting,) = world.emulator.live_meetings()
        assert world.booking(booking_id).meeting.meeting_id == meeting.id


def test_clearing_the_organizer_then_cancelling_removes_an_in_doubt_meeting():
    with memory_world() as world:
        booking_id = approved(world, status=504, lost_reply=True, count=1)
        # GIVEN the admin clears the organizer (the back-out switch)
        tenant = world.tenants.get(TENANT)
        world.tenants.update(replace(tenant, organizer_upn=None, organizer_object_id=None))

        # WHEN the booking is cancelled, THEN the meeting Teams made is found and removed
        result = use_cases.cancel_booking(STAFF, booking_id, None, world.deps)
        assert result.warning is None
        assert world.emulator.live_meetings() == []
        assert result.booking.meeting.status is MeetingStatus.DELETED
