"""The reconciliation timer firing twice a second while a meeting's work fails leaves each retry
round to its owner: over real HTTP, with the local Functions host running the meeting-ops queue
trigger and the timer in its own threads, the waits between rounds are the configured schedule
and each failure consumes exactly one round."""

from __future__ import annotations

import itertools
import json
import threading

import pytest
import requests

from localdev.graph_emulator import Fault
from localdev.stack import DEMO_TENANT_ID, local_stack
from shared.domain.audit import AuditEvent
from shared.settings import StorageSettings
from shared.storage.audit import TableAuditRepository
from shared.storage.tables import Tables, make_table_service
from tests.e2e.conftest import QUIET_TIMER, booking_body, settle

pytestmark = pytest.mark.e2e

SCHEDULE = (6.0, 12.0)
JITTER = 0.2
SHORT = {
    "MEETING_RETRY_SCHEDULE": ",".join(str(int(d)) for d in SCHEDULE),
    "MEETING_INLINE_BUDGET_SECONDS": "2",
    **QUIET_TIMER,  # fired by the test, through the admin API
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with local_stack(state_dir=tmp_path_factory.mktemp("stack"), extra_env=SHORT) as s:
        yield s


def failed_attempts(stack, booking_id):
    audit = TableAuditRepository(
        Tables(
            make_table_service(StorageSettings(connection_string=stack.azurite.connection_string))
        )
    )
    records = audit.list_for_booking(DEMO_TENANT_ID, booking_id)
    return sorted(r.occurred_at for r in records if r.event is AuditEvent.MEETING_ATTEMPT_FAILED)


def test_a_timer_firing_during_the_workers_rounds_does_not_shorten_the_schedule(stack, staff):
    # GIVEN Teams answers every create with 503, and a booking is approved
    stack.emulator.add_fault(Fault(operation="createOrGet", status=503))
    created = staff.call("POST", "/v1/bookings", booking_body())
    assert created.status_code == 201, created.text
    booking_id = created.json()["id"]
    approved = staff.call("POST", f"/v1/bookings/{booking_id}/approve", {})
    assert approved.status_code == 200, approved.text

    def status() -> str:
        return str(staff.call("GET", f"/v1/bookings/{booking_id}").json()["meeting"]["status"])

    # WHEN, once the worker's first round is under way, the timer fires run after run (at
    # most twice a second: locally the admin call answers once the run is over)
    assert settle(lambda: len(failed_attempts(stack, booking_id)) >= 2, timeout=30)
    done = threading.Event()
    fired = 0

    def fire() -> None:
        nonlocal fired
        while not done.wait(0.5):
            requests.post(f"{stack.host_url}/admin/functions/reconcile", timeout=60)
            fired += 1

    timer = threading.Thread(target=fire, daemon=True)
    timer.start()
    try:
        assert settle(lambda: status() == "failed", timeout=120, every=0.5)
    finally:
        done.set()
        timer.join()

    # THEN the meeting failed only after both delayed rounds were waited for
    failures = failed_attempts(stack, booking_id)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(failures)]
    round_gaps = [g for g in gaps if g > 4.5]  # in-process pauses are 1, 2 and 4 s
    assert len(round_gaps) == len(SCHEDULE), gaps
    for waited, configured in zip(round_gaps, SCHEDULE, strict=True):
        assert configured * (1 - JITTER) - 0.2 <= waited <= configured * (1 + JITTER) + 2.0, gaps
    # AND each round was scheduled once, and the work poisoned once
    scheduled = [
        json.loads(line[line.index("{") :])
        for line in stack.host_output
        if '"event":"meeting_retry_scheduled"' in line and booking_id in line
    ]
    assert [s["round"] for s in scheduled] == [1, 2]

    def poisoned() -> int:
        return sum(
            '"event":"meeting_work_failed"' in line and booking_id in line
            for line in stack.host_output
        )

    assert settle(lambda: poisoned() >= 1, timeout=30)
    assert poisoned() == 1
    # AND the timer really did fire throughout
    assert fired >= 40
