"""Storage that goes away mid-run: every booking's meeting still converges once it is back.

Azurite keeps its data in a folder here, is stopped while meeting work is outstanding (queued,
in flight and marked), and started again on the same ports.
"""

from __future__ import annotations

import time

import pytest
import requests

from localdev.azurite import start_azurite
from localdev.graph_emulator import Fault
from localdev.stack import local_stack
from tests.e2e.conftest import caller, settle
from tests.e2e.test_convergence import FAST, act, create, get, live_by_booking

pytestmark = pytest.mark.e2e


def test_every_booking_converges_after_storage_restarts(tmp_path):
    with local_stack(state_dir=tmp_path, persist=True, extra_env=FAST) as stack:
        staff = caller(stack, "staff-1", "staff")
        # GIVEN ten approvals whose meetings Graph cannot make yet
        stack.emulator.add_fault(Fault(operation="createOrGet", status=503))
        ids = [create(staff) for _ in range(10)]
        for booking_id in ids:
            assert "retried" in act(staff, booking_id, "approve")["teamsMeetingWarning"]

        # WHEN storage stops while that work is queued and in flight, and comes back later
        old = stack.azurite
        old.stop()
        time.sleep(3)
        stack.emulator.clear_faults()
        again = start_azurite(
            location=tmp_path / "azurite",
            ports=(old.blob_port, old.queue_port, old.table_port),
            log_file=tmp_path / "azurite-again.log",
        )
        stack.azurite = again
        try:
            check_every_booking_converges(stack, staff, ids)
        finally:
            again.stop()


def check_every_booking_converges(stack, staff, ids):
    """THEN every booking ends with exactly one meeting, linked (the timer picks up what the
    queue lost while storage was away)."""

    def converged() -> bool:
        requests.post(f"{stack.host_url}/admin/functions/reconcile", timeout=60)
        return all(get(staff, i)["meeting"]["status"] == "created" for i in ids)

    assert settle(converged, timeout=90, every=2), [get(staff, i)["meeting"] for i in ids]
    per_booking = live_by_booking(stack)
    assert set(per_booking) == set(ids)
    assert max(per_booking.values()) == 1
