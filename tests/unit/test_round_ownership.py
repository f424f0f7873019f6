"""One owner per retry round: whatever triggers convergence (the queue worker, the timer, both at
once), a failure consumes exactly one round, and the waits between rounds are the configured
schedule. In memory, with Graph faked at the wire and a clock that moves only when the worker
sleeps or a message becomes visible."""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Callable
from datetime import timedelta

import pytest

from localdev.graph_emulator import Fault
from shared.auth.principal import Principal, Role
from shared.domain.audit import AuditEvent
from shared.domain.booking import MEETING_WORK, MeetingStatus
from shared.meetings.reconciler import Reconciler
from shared.services import bookings as use_cases
from shared.services.bookings import Approval
from shared.storage.tenant_directory import TenantDirectory
from shared.work.policy import RetryPolicy
from tests.builders import a_booking
from tests.memory_world import TENANT, MemoryWorld, memory_world

STAFF = Principal("staff-1", TENANT, frozenset({Role.STAFF}))
SCHEDULE = (30.0, 120.0)
OUTBOX = 5.0
IN_PROCESS = (1.0, 2.0, 4.0)
# What a meeting waits between failed attempts when nothing else interferes: the outbox
# message, then each round of 1 + 3 in-process attempts, then the next delayed round.
ALONE = [OUTBOX, *IN_PROCESS, SCHEDULE[0], *IN_PROCESS, SCHEDULE[1], *IN_PROCESS]


def create_work(world: MemoryWorld) -> str:
    world.emulator.add_fault(Fault(operation="createOrGet", status=503))
    start = world.clock.now + timedelta(days=3)
    booking = world.bookings.add(
        a_booking(tenant_id=TENANT, start=start, end=start + timedelta(hours=1))
    )
    use_cases.approve_booking(STAFF, booking.booking_id, Approval(), world.deps)
    return booking.booking_id


def confirmed_with_meeting(world: MemoryWorld) -> str:
    start = world.clock.now + timedelta(days=3)
    booking = world.bookings.add(
        a_booking(tenant_id=TENANT, start=start, end=start + timedelta(hours=1))
    )
    use_cases.approve_booking(STAFF, booking.booking_id, Approval(), world.deps)
    world.queue.messages.clear()
    assert world.booking(booking.booking_id).meeting.status is MeetingStatus.CREATED
    return booking.booking_id


def update_work(world: MemoryWorld) -> str:
    booking_id = confirmed_with_meeting(world)
    world.emulator.add_fault(Fault(operation="patchMeeting", status=503))
    start = world.clock.now + timedelta(days=4)
    use_cases.reschedule_booking(STAFF, booking_id, (start, start + timedelta(hours=1)), world.deps)
    return booking_id


def delete_work(world: MemoryWorld) -> str:
    booking_id = confirmed_with_meeting(world)
    world.emulator.add_fault(Fault(operation="deleteMeeting", status=503))
    use_cases.cancel_booking(STAFF, booking_id, None, world.deps)
    return booking_id


WORK: dict[str, Callable[[MemoryWorld], str]] = {
    "create": create_work,
    "update": update_work,
    "delete": delete_work,
}


def failed_attempt_times(world: MemoryWorld, booking_id: str) -> list[float]:
    records = world.audit.list_for_booking(TENANT, booking_id)
    times = sorted(r.occurred_at for r in records if r.event is AuditEvent.MEETING_ATTEMPT_FAILED)
    return [(b - a).total_seconds() for a, b in itertools.pairwise(times)]


def scheduled_delays(caplog: pytest.LogCaptureFixture, booking_id: str) -> list[float]:
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "meetings.work"]
    return [
        line["delaySeconds"]
        for line in lines
        if line.get("event") == "meeting_retry_scheduled" and line["bookingId"] == booking_id
    ]


def run_to_the_end(world: MemoryWorld, booking_id: str) -> None:
    world.drain()
    stored = world.booking(booking_id)
    assert stored.meeting.status is MeetingStatus.FAILED
    assert not stored.needs_reconciliation


@pytest.mark.parametrize("timer_runs", [0, 1, 2], ids=["no-timer", "timer-once", "timer-twice"])
@pytest.mark.parametrize("kind", list(WORK))
def test_a_timer_firing_during_a_round_leaves_the_round_to_its_owner(kind, timer_runs, caplog):
    with memory_world(policy=RetryPolicy(rounds=SCHEDULE)) as world:
        caplog.set_level(logging.INFO, logger="meetings.work")
        # GIVEN Graph fails every attempt at the work, and the timer fires during each of the
        # worker's in-process pauses (once, or twice)
        for _ in range(timer_runs):
            world.during_sleep.append(world.reconciler.run)
        booking_id = WORK[kind](world)

        # WHEN the queue delivers everything there is
        run_to_the_end(world, booking_id)

        # THEN the meeting waited exactly the schedule, and used each round once
        assert failed_attempt_times(world, booking_id) == ALONE
        assert scheduled_delays(caplog, booking_id) == list(SCHEDULE)
        assert world.booking(booking_id).meeting.rounds == len(SCHEDULE)
        (poisoned,) = world.queue.poisoned
        assert (poisoned.reason, poisoned.step, poisoned.round) == (
            "retries_exhausted",
            kind,
            len(SCHEDULE),
        )


@pytest.mark.parametrize("timer_runs", [1, 2], ids=["timer-once", "timer-twice"])
@pytest.mark.parametrize("kind", list(WORK))
def test_a_timer_that_takes_a_due_round_ends_it_and_the_message_waits_for_the_next(
    kind, timer_runs, caplog
):
    with memory_world(policy=RetryPolicy(rounds=SCHEDULE)) as world:
        caplog.set_level(logging.INFO, logger="meetings.work")
        booking_id = WORK[kind](world)

        # WHEN the timer runs the moment each message becomes visible, before the worker
        handled = 0
        while world.queue.messages and handled < 50:
            world.queue.messages.sort(key=lambda m: m[0])
            delay, work = world.queue.messages.pop(0)
            world.clock.sleep(delay)
            world.queue.messages = [(max(0.0, d - delay), w) for d, w in world.queue.messages]
            for _ in range(timer_runs):
                world.reconciler.run()
            world.worker.handle(work)
            handled += 1

        # THEN each failure still consumed exactly one round, on the configured schedule, and
        # no attempt came before its round was due
        stored = world.booking(booking_id)
        assert stored.meeting.status is MeetingStatus.FAILED
        assert scheduled_delays(caplog, booking_id) == list(SCHEDULE)
        assert stored.meeting.rounds == len(SCHEDULE)
        gaps = failed_attempt_times(world, booking_id)
        assert [g for g in gaps if g >= SCHEDULE[0]] == list(SCHEDULE)
        assert len(world.queue.poisoned) == 1


class ListsThenWaits:
    """The timer's view of the bookings: `meanwhile` runs between its listing of the markers
    and its work on them (in production the timer takes each listed booking in turn, up to a
    Graph timeout each, while the queue worker goes on)."""

    def __init__(self, inner, meanwhile: Callable[[], object]) -> None:
        self._inner = inner
        self._meanwhile = meanwhile

    def __getattr__(self, name: str):
        return getattr(self._inner, name)

    def list_marked(self, kind, *args, **kwargs):
        listed = self._inner.list_marked(kind, *args, **kwargs)
        if kind == MEETING_WORK:
            self._meanwhile()
        return listed


def test_a_timer_working_from_an_old_listing_leaves_a_round_scheduled_meanwhile(caplog):
    with memory_world(policy=RetryPolicy(rounds=SCHEDULE)) as world:
        caplog.set_level(logging.INFO, logger="meetings.work")
        booking_id = create_work(world)
        ((delay, work),) = world.queue.messages
        world.queue.messages.clear()
        world.clock.sleep(delay)

        # GIVEN the timer lists the due marker, and while it works through its list the worker
        # takes the outbox message, fails its round and schedules the next
        def worker_round() -> None:
            world.worker.handle(work)

        timer = Reconciler(
            ListsThenWaits(world.bookings, worker_round),
            TenantDirectory(world.tenants, None),
            world.converger,
            world.worker,
            world.queue,
            world.clock,
            verify_window=timedelta(hours=24),
            entities_read=lambda: 0,
        )

        # WHEN the timer reaches the booking with the version it listed
        report = timer.run()

        # THEN it leaves the scheduled round alone: no attempt, no second round, no message
        assert report.not_due == 1
        assert world.booking(booking_id).meeting.rounds == 1
        assert scheduled_delays(caplog, booking_id) == [SCHEDULE[0]]
        assert len(world.queue.messages) == 1
        run_to_the_end(world, booking_id)
        assert failed_attempt_times(world, booking_id) == ALONE


def test_work_that_ends_during_a_pause_releases_the_held_claim():
    with memory_world(policy=RetryPolicy(rounds=SCHEDULE)) as world:
        booking_id = confirmed_with_meeting(world)
        synced = world.booking(booking_id)
        world.emulator.add_fault(Fault(operation="patchMeeting", status=503, count=1))
        reschedule_at = world.clock.now + timedelta(days=4)
        use_cases.reschedule_booking(
            STAFF, booking_id, (reschedule_at, reschedule_at + timedelta(hours=1)), world.deps
        )
        ((delay, work),) = world.queue.messages
        world.queue.messages.clear()
        world.clock.sleep(delay)
        world.emulator.add_fault(Fault(operation="patchMeeting", status=503, count=1))

        # GIVEN staff move the booking back to the times Teams holds during the worker's pause
        def moved_back() -> None:
            use_cases.reschedule_booking(STAFF, booking_id, (synced.start, synced.end), world.deps)

        world.during_sleep.append(moved_back)
        world.worker.handle(work)
        world.during_sleep.clear()

        # THEN nothing is left to do and the worker's claim is gone
        stored = world.booking(booking_id)
        assert stored.meeting.claim_token is None
        # AND the next move is made at once by its own inline attempt, not after the claim
        later = world.clock.now + timedelta(days=5)
        moved = use_cases.reschedule_booking(
            STAFF, booking_id, (later, later + timedelta(hours=1)), world.deps
        )
        assert moved.booking.meeting.status is MeetingStatus.CREATED
