"""Property: whatever order user actions, Graph failures, lost replies, timeouts, redelivered
messages, timer runs and lapsed claims come in, a booking's meeting ends as the booking says.

Each example runs one booking through a random script in memory (in-memory repositories and
queue, Graph faked at the wire by the emulator through `responses`). Actions may land *during* a
Graph call (before Graph acts on it, or after it acted and before the answer arrives), which is
how concurrent requests interleave. Then Graph recovers, the queue drains and the timer runs,
and Teams must hold exactly what the booking says.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from localdev.graph_emulator import POLICY_MISSING_MESSAGE, Fault, GraphEmulator
from shared.auth.principal import Principal, Role
from shared.domain.booking import BookingStatus, IllegalTransitionError, MeetingStatus, Step
from shared.services import bookings as use_cases
from shared.services.bookings import Approval, MeetingGenerationError
from shared.storage.queues import WorkMessage
from shared.work.policy import RetryPolicy
from tests.builders import a_booking
from tests.memory_world import TENANT, MemoryWorld, memory_world

STAFF = Principal("staff-1", TENANT, frozenset({Role.STAFF}))
ADMIN = Principal("admin-1", TENANT, frozenset({Role.ADMIN}))

ACTIONS = ("approve", "approve_without", "reschedule", "cancel", "decline", "generate")
# "vanish" and "edit": someone deletes the meeting in Teams, or moves it there, behind our back.
EVENTS = (*ACTIONS, "redeliver", "timer", "lapse", "vanish", "edit")
# Mostly answers; then throttling, unavailability, lost replies, timeouts, and (rarely) a
# permanent refusal (no Application Access Policy).
OUTCOMES = ("ok",) * 6 + ("503", "429", "lost", "hang", "403")

event = st.tuples(st.sampled_from(EVENTS), st.integers(1, 6))
# What lands during a call is mostly a user action: that is how requests race. Two events can
# land together, e.g. a claim lapsing and a redelivered message taking the work over.
landing = st.tuples(
    st.sampled_from(("before", "after")),
    st.lists(
        st.tuples(st.sampled_from(ACTIONS), st.integers(1, 6)) | event, min_size=1, max_size=2
    ),
)
call = st.tuples(st.sampled_from(OUTCOMES), st.none() | landing | landing)


@dataclass
class Script:
    """What happens at each Graph meeting call during the chaos phase."""

    calls: list[tuple[str, Any]]
    world: MemoryWorld | None = None
    booking_id: str = ""
    nested: bool = False
    log: list[str] = field(default_factory=list)

    def next_call(self) -> tuple[str, Any]:
        return self.calls.pop(0) if self.calls else ("ok", None)


class ScriptedGraph(GraphEmulator):
    """The emulator, with the script deciding each meeting call's fate and what lands during
    it. Login calls are never scripted."""

    script: Script | None = None

    def handle(self, method, path, query, headers, body, **how):
        script = self.script
        if script is None or "/v1.0/" not in path:
            return super().handle(method, path, query, headers, body, **how)
        outcome, during = script.next_call()
        placement, nested = during if during and not script.nested else (None, None)
        if placement == "before":
            run_nested(script, nested)
        fault = {
            "503": Fault(status=503, count=1),
            "429": Fault(status=429, retry_after="1", count=1),
            "lost": Fault(status=504, lost_reply=True, count=1),
            "hang": Fault(hang_seconds=30, count=1),
            "403": Fault(status=403, message=POLICY_MISSING_MESSAGE, count=1),
        }.get(outcome)
        if fault is not None:
            with self._lock:
                self.faults.insert(0, fault)
        try:
            reply = super().handle(method, path, query, headers, body, **how)
        finally:
            if fault is not None:
                with self._lock:
                    if fault in self.faults:
                        self.faults.remove(fault)
        if placement == "after":
            run_nested(script, nested)
        return reply


def run_nested(script: Script, nested: Any) -> None:
    script.nested = True
    try:
        for item in nested:
            apply(script.world, script.booking_id, item, script.log)
    finally:
        script.nested = False


def apply(world: Any, booking_id: str, event: tuple[str, int], log: list[str]) -> None:
    kind, n = event
    log.append(f"{kind}({n})")
    deps = world.deps
    try:
        if kind == "approve":
            use_cases.approve_booking(STAFF, booking_id, Approval(), deps)
        elif kind == "approve_without":
            use_cases.approve_booking(
                STAFF, booking_id, Approval(generate_teams_meeting=False), deps
            )
        elif kind == "reschedule":
            start = world.clock.now + timedelta(days=2 + n)
            use_cases.reschedule_booking(
                STAFF, booking_id, (start, start + timedelta(minutes=30 * n)), deps
            )
        elif kind == "cancel":
            use_cases.cancel_booking(STAFF, booking_id, None, deps)
        elif kind == "decline":
            use_cases.decline_booking(STAFF, booking_id, None, deps)
        elif kind == "generate":
            use_cases.generate_meeting(ADMIN, booking_id, deps)
        elif kind == "redeliver":
            world.redeliver(WorkMessage(TENANT, booking_id))
        elif kind == "timer":
            world.reconciler.run()
        elif kind == "lapse":
            world.clock.sleep(20 * n)  # claims (40 s) may lapse: another worker may take over
        elif kind in ("vanish", "edit"):
            for meeting in world.emulator.live_meetings():
                if kind == "vanish":
                    world.emulator.delete_meeting_by_hand(meeting.id)
                else:
                    moved = world.clock.now + timedelta(days=1, hours=n)
                    world.emulator.edit_meeting_by_hand(
                        meeting.id, start=moved, end=moved + timedelta(hours=1)
                    )
    except (IllegalTransitionError, MeetingGenerationError):
        pass


def recover(world: MemoryWorld, booking_id: str) -> None:
    """Graph is healthy again: let every claim lapse, drain the queue, run the timer; then come
    within a few hours of the start, when pre-start verification looks at Teams itself."""
    settle(world, booking_id)
    start = world.booking(booking_id).start
    world.clock.now = max(world.clock.now, start - timedelta(hours=3))
    settle(world, booking_id)


def settle(world: MemoryWorld, booking_id: str) -> None:
    for _ in range(10):
        world.clock.sleep(60)
        world.drain(rounds=200)
        world.reconciler.run()
        booking = world.booking(booking_id)
        if not booking.needs_reconciliation and not world.queue.messages:
            return


def assert_teams_matches(world: MemoryWorld, booking_id: str, log: list[str]) -> None:
    booking = world.booking(booking_id)
    mine = [
        m
        for m in world.emulator.live_meetings()
        if (m.external_id or "").startswith(f"{TENANT}:{booking_id}")
    ]
    context = f"script: {log}; booking: {booking.status} {booking.meeting}"
    assert len(mine) <= 1, context  # never two meetings for one booking
    if booking.meeting.failed:
        # Retries stopped on a permanent refusal: honest about it, and nothing left pending.
        assert booking.meeting.status is MeetingStatus.FAILED, context
        assert not booking.needs_reconciliation, context
        return
    assert booking.next_step is Step.NONE, context
    if booking.live and booking.meeting.wanted:
        assert len(mine) == 1, context
        (meeting,) = mine
        assert booking.meeting.status is MeetingStatus.CREATED, context
        assert meeting.id == booking.meeting.meeting_id, context
        assert meeting.join_url == booking.meeting.join_url, context
        assert meeting.external_id == booking.external_id, context
        start = booking.start.strftime("%Y-%m-%dT%H:%M:%S")
        end = booking.end.strftime("%Y-%m-%dT%H:%M:%S")
        assert (meeting.start[:19], meeting.end[:19]) == (start, end), context
        assert meeting.lobby_scope == "everyone", context  # the tenant's options are on it
    else:
        assert mine == [], context
        assert booking.meeting.status in (MeetingStatus.NONE, MeetingStatus.DELETED), context


# PROPERTY_SOAK=N runs N scripts from fresh random seeds instead of the fixed ones (a soak run;
# the README's test command runs the fixed 1,500 so that every run checks the same scripts).
SOAK = int(os.environ.get("PROPERTY_SOAK", "0"))


@settings(
    max_examples=SOAK or 1500,
    deadline=None,
    derandomize=not SOAK,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    events=st.lists(event, min_size=1, max_size=10),
    calls=st.lists(call, min_size=1, max_size=20),
)
# The races the issue names, always tried: a reschedule or cancel landing while the create is
# sent or answered, a second reschedule during a PATCH, a redelivery during a create.
@example(events=[("approve", 1)], calls=[("ok", None), ("ok", ("before", [("reschedule", 2)]))])
@example(events=[("approve", 1)], calls=[("ok", None), ("ok", ("after", [("reschedule", 2)]))])
@example(events=[("approve", 1)], calls=[("ok", None), ("ok", ("after", [("cancel", 1)]))])
@example(events=[("approve", 1)], calls=[("lost", ("after", [("cancel", 1)]))])
@example(
    events=[("approve", 1), ("reschedule", 1)],
    calls=[("ok", None), ("ok", None), ("ok", None), ("ok", ("before", [("reschedule", 3)]))],
)
@example(
    events=[("approve", 1)],
    calls=[
        ("ok", None),
        ("hang", ("after", [("lapse", 3)])),
        ("ok", ("before", [("redeliver", 1)])),
    ],
)
# The options PATCH after a create is refused, then the booking is cancelled.
@example(events=[("approve", 1), ("cancel", 1)], calls=[("ok", None), ("ok", None), ("429", None)])
# A create whose meeting is deleted in Teams before the options PATCH.
@example(events=[("approve", 1)], calls=[("ok", None), ("ok", ("after", [("vanish", 1)]))])
@example(events=[("approve", 1), ("vanish", 1)], calls=[("ok", None), ("lost", None)])
# A slow holder's claim lapses mid-call and a redelivery takes over; then the holder answers.
@example(
    events=[("approve", 1)],
    calls=[("ok", None), ("lost", ("before", [("lapse", 3), ("redeliver", 1)])), ("429", None)],
)
# A PATCH refused for good after a cancel landed during it.
@example(
    events=[("approve", 1), ("reschedule", 2)],
    calls=[("ok", None), ("ok", None), ("ok", None), ("403", ("before", [("cancel", 1)]))],
)
def test_any_interleaving_ends_with_teams_as_the_booking_says(events, calls):
    # Many rounds: transient faults alone must never exhaust the schedule here.
    with memory_world(
        policy=RetryPolicy(rounds=(30.0,) * 12), emulator_class=ScriptedGraph
    ) as world:
        # GIVEN a pending booking and a script of Graph outcomes and actions landing mid-call
        start = world.clock.now + timedelta(days=3)
        booking = world.bookings.add(
            a_booking(tenant_id=TENANT, start=start, end=start + timedelta(hours=1))
        )
        script = Script(list(calls), world, booking.booking_id)
        world.emulator.script = script  # type: ignore[attr-defined]

        # WHEN the events happen (each may trigger Graph calls that run the script)
        for item in events:
            apply(world, booking.booking_id, item, script.log)

        # AND Graph recovers and the background work runs its course
        world.emulator.script = None  # type: ignore[attr-defined]
        recover(world, booking.booking_id)

        # THEN Teams holds exactly what the booking says
        assert_teams_matches(world, booking.booking_id, script.log)


def test_the_property_sees_a_meeting_left_behind():
    # The checker itself can fail: a live meeting for a cancelled booking is caught.
    with memory_world() as world:
        start = world.clock.now + timedelta(days=3)
        booking = world.bookings.add(
            a_booking(tenant_id=TENANT, start=start, end=start + timedelta(hours=1))
        )
        use_cases.approve_booking(STAFF, booking.booking_id, Approval(), world.deps)
        stored = world.booking(booking.booking_id)
        world.bookings.update(replace(stored, status=BookingStatus.CANCELLED))
        try:
            assert_teams_matches(world, booking.booking_id, [])
        except AssertionError:
            return
        raise AssertionError("a cancelled booking with a live meeting went unnoticed")
