"""Credential health through the running host: the reconciliation timer (run by hand through
the admin API) finds the tenant's missing access policy, capability and health say so over HTTP,
the host logs one ERROR for the tenant, and granting the policy heals the failed bookings."""

from __future__ import annotations

import pytest
import requests

from localdev.stack import local_stack
from tests.e2e.conftest import QUIET_TIMER, booking_body, caller, settle

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    env = {**QUIET_TIMER, "CREDENTIAL_CHECK_MINUTES": "0.001"}  # each run is due for a check
    with local_stack(state_dir=tmp_path_factory.mktemp("stack"), extra_env=env) as running:
        yield running


def run_timer(stack) -> None:
    response = requests.post(f"{stack.host_url}/admin/functions/reconcile", json={}, timeout=10)
    assert response.status_code == 202


def capability(staff) -> dict:
    response = staff.call("GET", "/v1/teams-meetings/capability")
    assert response.status_code == 200
    body: dict = response.json()
    return body


def health(stack) -> dict:
    response = requests.get(f"{stack.api}/v1/health", timeout=10)
    assert response.status_code == 200
    body: dict = response.json()
    return body


def error_lines(stack) -> list[str]:
    return [line for line in stack.host_output if '"event":"tenant_credential_unhealthy"' in line]


def check_lines(stack) -> str:
    """The credential checks' own lines, for a failure's message."""
    marks = ('"operation":"credential_check"', "credential_check_run", "tenant_credential_")
    return "\n".join(line for line in stack.host_output if any(m in line for m in marks))


def test_a_missing_policy_is_one_alert_and_granting_it_heals_the_bookings(stack, staff, student):
    # GIVEN no access policy grants the app the organizer, and three approvals failed on it
    stack.organizer.policy_granted = False
    ids = []
    for _ in range(3):
        created = student.call("POST", "/v1/bookings", booking_body())
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])
        approved = staff.call("POST", f"/v1/bookings/{ids[-1]}/approve", {})
        assert approved.status_code == 200, approved.text
    assert capability(staff) == {"available": True}

    # WHEN the timer runs
    run_timer(stack)

    # THEN capability says why, health counts the tenant (still 200), one ERROR names it
    assert settle(lambda: capability(staff).get("reason") == "policy_missing", timeout=30)
    assert capability(staff)["available"] is False
    assert health(stack)["unhealthyTenants"] == 1
    assert settle(lambda: len(error_lines(stack)) == 1, timeout=10)
    admin = caller(stack, "admin-1", "admin")
    settings = admin.call("GET", "/v1/teams-meetings/settings").json()
    assert settings["teamsHealth"]["state"] == "unhealthy"
    assert settings["teamsHealth"]["reason"] == "policy_missing"

    # WHEN the policy is granted and the timer runs again (and again, on its schedule, if a
    # check was inconclusive: Graph slow or throttled leaves the state as it was)
    stack.organizer.policy_granted = True

    def healed() -> bool:
        run_timer(stack)
        return capability(staff) == {"available": True}

    # THEN the tenant is healthy and the bookings get their meetings, with no user action
    assert settle(healed, timeout=30, every=1.0), check_lines(stack)
    assert health(stack)["unhealthyTenants"] == 0

    def all_created() -> bool:
        statuses = [staff.call("GET", f"/v1/bookings/{i}").json()["meeting"]["status"] for i in ids]
        return statuses == ["created"] * 3

    assert settle(all_created, timeout=60)
    # The bookings' own stopped work is logged, as WARNING, by the poison queue's consumer
    # (which polls its queue on its own schedule): the tenant's line is the alert.
    assert settle(lambda: any('"event":"meeting_work_failed"' in x for x in stack.host_output))
    assert len(error_lines(stack)) == 1
    assert [line for line in stack.host_output if " ERROR " in line] == error_lines(stack)
