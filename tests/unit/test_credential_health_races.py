"""Credential health under the ways it breaks in production: two timer runs at once (the
schedule and an admin's run, or two instances), Graph throttling the tenant for an hour, a
cancellation whose removal failed during the outage. In memory, Graph faked at the wire."""

from __future__ import annotations

import json
import logging
import threading
from datetime import timedelta

from localdev.graph_emulator import Fault
from shared.domain.audit import TENANT_RECORD
from shared.domain.booking import MeetingStatus
from shared.services import bookings as use_cases
from shared.services.bookings import Approval
from tests.builders import a_booking
from tests.memory_world import TENANT, memory_world
from tests.unit.test_credential_health import STAFF


def organizer(world):
    return next(iter(world.emulator.users.values()))


def test_two_runs_at_once_announce_a_change_of_state_once(caplog):
    with memory_world() as world:
        world.credential_health.run()  # healthy
        world.clock.sleep(15 * 60)
        organizer(world).policy_granted = False
        # Both runs' probes are in flight together (Graph slowed), so both see the old state.
        world.emulator.add_fault(Fault(operation="getMeeting", latency_ms=400))

        with caplog.at_level(logging.INFO, logger="meetings.credentials"):
            runs = [threading.Thread(target=world.credential_health.run) for _ in range(2)]
            for run in runs:
                run.start()
            for run in runs:
                run.join()

        events = [
            json.loads(r.getMessage())["event"]
            for r in caplog.records
            if r.getMessage().startswith("{")
        ]
        assert events.count("tenant_credential_unhealthy") == 1
        audit = [r.event.value for r in world.audit.list_for_booking(TENANT, TENANT_RECORD)]
        assert audit.count("TENANT_TEAMS_CREDENTIAL_UNHEALTHY") == 1
        health = world.tenants.get(TENANT).teams_health
        assert health is not None
        assert health.reason is not None
        assert health.reason.value == "policy_missing"


def test_a_throttled_tenant_is_probed_no_more_often_than_the_interval():
    with memory_world() as world:
        world.credential_health.run()
        before = world.emulator.calls["getUser"]
        world.emulator.add_fault(Fault(operation="getUser", status=429, retry_after="1"))

        for _ in range(12):  # an hour of timer runs every 5 minutes; the interval is 15
            world.clock.sleep(5 * 60)
            world.credential_health.run()

        assert world.emulator.calls["getUser"] - before <= 4
        health = world.tenants.get(TENANT).teams_health
        assert health is not None
        assert health.healthy  # throttling is no verdict


def test_a_cancellation_whose_removal_failed_in_the_outage_is_removed_after_the_fix():
    with memory_world() as world:
        start = world.clock() + timedelta(days=2)
        booking = world.bookings.add(a_booking(start=start, end=start + timedelta(hours=1)))
        use_cases.approve_booking(STAFF, booking.booking_id, Approval(), world.deps)
        world.drain()
        world.credential_health.run()
        # GIVEN the policy is removed and the booking cancelled: its meeting's removal fails
        organizer(world).policy_granted = False
        use_cases.cancel_booking(STAFF, booking.booking_id, None, world.deps)
        world.drain()
        assert world.booking(booking.booking_id).meeting.status is MeetingStatus.FAILED
        world.clock.sleep(15 * 60)
        world.credential_health.run()

        # WHEN the admin grants the policy again and the timer runs
        organizer(world).policy_granted = True
        world.clock.sleep(15 * 60)
        report = world.credential_health.run()
        world.drain()

        # THEN the cancelled booking's meeting is gone from Teams
        assert report.restarted == 1
        assert world.booking(booking.booking_id).meeting.status is MeetingStatus.DELETED
        assert world.emulator.live_meetings() == []
