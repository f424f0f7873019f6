"""A new kind of durable work needs only a handler and a registration: the kit retries it on
its schedule, poisons it after its rounds, and the timer sweeps it when its message is lost —
on Table Storage (Azurite) and on the in-memory store, which keep the same contract."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import pytest

from shared.domain.booking import Booking, BookingStatus
from shared.domain.lease import Lease
from shared.domain.work import WorkState, state_of
from shared.storage.bookings import TableBookingRepository
from shared.storage.memory import InMemoryBookingRepository, InMemoryTenantRepository
from shared.storage.queues import InMemoryWorkQueue, WorkMessage
from shared.storage.tenant_directory import TenantDirectory
from shared.work.kinds import Handler, KindWorker, Outcome, WorkFailed, WorkKind, owe
from shared.work.policy import RetryPolicy
from tests.builders import T0, a_booking, a_tenant

pytestmark = pytest.mark.integration

TOY = "toy"
# No in-process pauses: each failure ends a round, so the delayed schedule shows.
ROUNDS_ONLY = RetryPolicy(in_process=(), rounds=(30.0, 120.0), jitter=0.2)


@pytest.fixture(params=["table", "memory"])
def bookings(request):
    if request.param == "memory":
        return InMemoryBookingRepository()
    return TableBookingRepository(request.getfixturevalue("tables"))


@dataclass
class Clock:
    now: datetime = T0 - timedelta(days=2)
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += timedelta(seconds=seconds)


@dataclass
class Toy:
    """A handler that fails transiently `failures` times, then stamps the booking."""

    failures: int = 0
    retryable: bool = True
    calls: int = 0

    def __call__(self, booking: Booking):
        self.calls += 1
        if self.calls <= self.failures:
            raise WorkFailed("the toy service is busy", "toy_busy", retryable=self.retryable)
        return lambda b: replace(b, internal_notes=f"toy done after {self.calls} calls")


def kit(bookings, handler: Handler, policy: RetryPolicy = ROUNDS_ONLY, clock: Clock | None = None):
    clock = clock or Clock()
    queue = InMemoryWorkQueue()
    worker = KindWorker(
        bookings,
        TenantDirectory(InMemoryTenantRepository(), a_tenant()),
        policy,
        clock,
        sleep=clock.sleep,
        rnd=lambda: 0.5,  # no jitter: the delays are the schedule's own
    )
    worker.register(WorkKind(TOY, queue, handler))
    return worker, queue, clock


def owing_toy_work(bookings, worker) -> Booking:
    saved: Booking = bookings.add(owe(a_booking(status=BookingStatus.CONFIRMED), TOY))
    worker.after_change(saved)
    return saved


def toy_state(bookings, booking_id: str) -> WorkState:
    state = state_of(bookings.get("tenant-a", booking_id).work, TOY)
    assert state is not None
    return state


def deliver(worker, queue, clock) -> list[Outcome]:
    """Deliver each message when it becomes visible, as the queue trigger would."""
    outcomes = []
    while queue.messages:
        delay, message = queue.messages.pop(0)
        clock.now += timedelta(seconds=delay)
        outcomes.append(worker.handle(TOY, message))
    return outcomes


def test_a_new_kind_failing_transiently_twice_is_retried_on_the_kits_schedule(bookings):
    # GIVEN a toy kind registered with a handler that fails twice, then succeeds
    toy = Toy(failures=2)
    worker, queue, clock = kit(bookings, toy)
    booking = owing_toy_work(bookings, worker)
    assert [b.booking_id for b in bookings.list_marked(TOY, "tenant-a")] == [booking.booking_id]

    # WHEN its messages are delivered as they become visible
    outcomes = deliver(worker, queue, clock)

    # THEN two delayed rounds (30 s, then 120 s) came before it was done, and it is off the
    # timer's list
    assert outcomes == [Outcome.RETRYING, Outcome.RETRYING, Outcome.DONE]
    assert toy.calls == 3
    after = bookings.get("tenant-a", booking.booking_id)
    state = state_of(after.work, TOY)
    assert state is not None
    assert (state.owed, state.rounds, state.failed_code) == (False, 2, None)
    assert state.done_at == T0 - timedelta(days=2) + timedelta(seconds=150)
    assert after.internal_notes == "toy done after 3 calls"
    assert bookings.list_marked(TOY, "tenant-a") == []
    assert queue.poisoned == []


def test_the_in_process_pauses_come_first(bookings):
    # GIVEN the default policy (1 s, 2 s, 4 s in process) and a handler failing twice
    toy = Toy(failures=2)
    worker, queue, clock = kit(bookings, toy, RetryPolicy())
    booking = owing_toy_work(bookings, worker)

    # WHEN its message is delivered
    outcomes = deliver(worker, queue, clock)

    # THEN it was retried in process after 1 s and 2 s and needed no delayed round
    assert outcomes == [Outcome.DONE]
    assert clock.sleeps == [1.0, 2.0]
    assert toy_state(bookings, booking.booking_id).rounds == 0


def test_a_new_kind_that_keeps_failing_is_poisoned_after_its_rounds(bookings, caplog):
    # GIVEN a handler that never succeeds
    caplog.set_level(logging.INFO, logger="meetings.work")
    toy = Toy(failures=99)
    worker, queue, clock = kit(bookings, toy)
    booking = owing_toy_work(bookings, worker)

    # WHEN every message is delivered
    outcomes = deliver(worker, queue, clock)

    # THEN after its two rounds it stopped for good, poisoned once, with why
    assert outcomes == [Outcome.RETRYING, Outcome.RETRYING, Outcome.STOPPED]
    ((poisoned),) = queue.poisoned
    assert (poisoned.step, poisoned.reason, poisoned.round) == (TOY, "retries_exhausted", 2)
    assert poisoned.booking_id == booking.booking_id
    state = toy_state(bookings, booking.booking_id)
    assert (state.owed, state.failed_code) == (False, "toy_busy")
    assert bookings.list_marked(TOY, "tenant-a") == []
    scheduled = [r for r in caplog.records if '"event":"toy_retry_scheduled"' in r.getMessage()]
    assert len(scheduled) == 2


def test_a_permanent_failure_is_poisoned_at_once(bookings):
    toy = Toy(failures=1, retryable=False)
    worker, queue, clock = kit(bookings, toy)
    owing_toy_work(bookings, worker)

    assert deliver(worker, queue, clock) == [Outcome.STOPPED]
    ((poisoned),) = queue.poisoned
    assert (poisoned.reason, poisoned.round) == ("permanent", 0)
    assert toy.calls == 1


def test_a_new_kind_whose_message_was_lost_is_swept_by_the_timer(bookings):
    # GIVEN toy work saved with its marker, whose queue message is lost
    toy = Toy()
    worker, queue, _ = kit(bookings, toy)
    booking = owing_toy_work(bookings, worker)
    queue.messages.clear()

    # WHEN the timer sweeps the registered kinds
    (report,) = worker.sweep()

    # THEN it found the marker and did the work, queueing nothing of its own
    assert (report.kind, report.tenants, report.marked, report.done) == (TOY, 1, 1, 1)
    assert toy.calls == 1
    assert not toy_state(bookings, booking.booking_id).owed
    assert queue.messages == []
    assert worker.sweep()[0].marked == 0


def test_the_timer_leaves_a_round_scheduled_later_to_its_message(bookings):
    # GIVEN toy work that failed once: its next round is 30 s away
    toy = Toy(failures=1)
    worker, queue, clock = kit(bookings, toy)
    owing_toy_work(bookings, worker)
    _, message = queue.messages.pop(0)
    assert worker.handle(TOY, message) is Outcome.RETRYING

    # WHEN the timer sweeps before the round is due
    (report,) = worker.sweep()

    # THEN it does not take the round; the delayed message does
    assert (report.marked, report.done, toy.calls) == (0, 0, 1)
    assert deliver(worker, queue, clock) == [Outcome.DONE]


def test_work_another_worker_holds_is_left_to_it(bookings):
    # GIVEN toy work whose lease another worker holds for a minute
    toy = Toy()
    worker, queue, clock = kit(bookings, toy)
    booking = owing_toy_work(bookings, worker)
    queue.messages.clear()
    state = state_of(booking.work, TOY)
    assert state is not None
    held = replace(state, lease=Lease("someone-else", clock() + timedelta(seconds=60)))
    bookings.update(replace(booking, work=(held,)))

    # WHEN a message for it arrives
    outcome = worker.handle(TOY, WorkMessage("tenant-a", booking.booking_id))

    # THEN the handler is not called, and the message comes back once the lease has run out
    assert outcome is Outcome.BUSY
    assert toy.calls == 0
    assert [delay for delay, _ in queue.messages] == [61.0]
    clock.now += timedelta(seconds=61)
    assert deliver(worker, queue, clock) == [Outcome.DONE]


def test_a_handler_that_crashes_is_counted_as_a_failed_round_and_stops_after_its_rounds(
    bookings, caplog
):
    # GIVEN a handler with a bug: it raises something that is not WorkFailed, every time
    def crashes(booking: Booking):
        raise KeyError("a bug")

    worker, queue, clock = kit(bookings, crashes)
    booking = owing_toy_work(bookings, worker)

    # WHEN its messages are delivered
    outcomes = deliver(worker, queue, clock)

    # THEN it went the way of any failure: two rounds, then poisoned, never looping
    assert outcomes == [Outcome.RETRYING, Outcome.RETRYING, Outcome.STOPPED]
    (poisoned,) = queue.poisoned
    assert (poisoned.error_code, poisoned.reason) == ("handler_error", "retries_exhausted")
    assert not toy_state(bookings, booking.booking_id).owed


def test_a_retry_after_beyond_what_a_queue_can_wait_is_cut_to_seven_days(bookings):
    # GIVEN a handler asking to be retried in a very long time
    def later(booking: Booking):
        raise WorkFailed("come back much later", "toy_later", retryable=True, retry_after=1e12)

    worker, queue, _ = kit(bookings, later)
    owing_toy_work(bookings, worker)
    _, message = queue.messages.pop(0)

    # WHEN it fails, THEN its next round is in seven days (the longest a message can wait)
    assert worker.handle(TOY, message) is Outcome.RETRYING
    assert [delay for delay, _ in queue.messages] == [7 * 24 * 3600.0]


def test_work_taken_over_while_its_handler_ran_is_not_recorded_by_the_first_worker(bookings):
    # GIVEN a handler during which the lease lapses and another worker takes the work over
    clock = Clock()

    def slow(booking: Booking):
        state = state_of(booking.work, TOY)
        assert state is not None
        taken = replace(state, lease=Lease("another-worker", clock() + timedelta(minutes=5)))
        bookings.update(replace(booking, work=(taken,)))
        return lambda b: replace(b, internal_notes="from the first worker")

    worker, queue, clock = kit(bookings, slow, clock=clock)
    booking = owing_toy_work(bookings, worker)
    _, message = queue.messages.pop(0)

    # WHEN the first worker finishes
    outcome = worker.handle(TOY, message)

    # THEN it records nothing over the new holder's lease and says the work is someone else's
    assert outcome is Outcome.BUSY
    after = bookings.get("tenant-a", booking.booking_id)
    assert after.internal_notes != "from the first worker"
    assert toy_state(bookings, booking.booking_id).lease.token == "another-worker"


@pytest.mark.parametrize("name", ["to|y", "Toy", "", "t" * 41, "tö", "meeting", "mail"])
def test_a_kind_is_short_lower_case_ascii_and_not_the_kits_own(name):
    with pytest.raises(ValueError, match=r"work kind|the kit's own"):
        WorkKind(name, InMemoryWorkQueue(), Toy())
    with pytest.raises(ValueError, match=r"work kind|the kit's own"):
        owe(a_booking(), name)


def test_one_unreadable_booking_does_not_stop_the_sweep_of_the_others(tables):
    # GIVEN two bookings owing toy work, one of whose rows was corrupted
    bookings = TableBookingRepository(tables)
    toy = Toy()
    worker, queue, _ = kit(bookings, toy)
    broken = owing_toy_work(bookings, worker)
    healthy = owing_toy_work(bookings, worker)
    queue.messages.clear()
    table = tables.table("bookings")
    row = table.get_entity("tenant-a", f"b|{broken.booking_id}")
    row["Work"] = '[{"kind": "toy", "owed": "false", "rounds": 0}]'
    table.update_entity(row)

    # WHEN the timer sweeps
    (report,) = worker.sweep()

    # THEN the healthy booking's work is done
    assert (report.marked, report.done) == (1, 1)
    assert not toy_state(bookings, healthy.booking_id).owed
