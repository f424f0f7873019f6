"""One running stack (Azurite, Graph emulator, Functions host as a process) per e2e module."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from localdev.stack import DEMO_TENANT_ID, LocalStack, local_stack

# The timer is run by hand through the admin API where a test needs it; on its own schedule it
# could converge an earlier test's bookings in the middle of a later test.
QUIET_TIMER = {"RECONCILE_SCHEDULE": "0 0 0 1 1 *"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with local_stack(state_dir=tmp_path_factory.mktemp("stack"), extra_env=QUIET_TIMER) as running:
        yield running


@pytest.fixture(autouse=True)
def no_leftover_work(request):
    """Each test starts with empty meeting and mail queues, so that retries an earlier test
    scheduled do not act in its middle."""
    if "stack" not in request.fixturenames:
        yield
        return
    running = request.getfixturevalue("stack")
    purge_meeting_queues(running)
    yield


def purge_meeting_queues(stack: LocalStack) -> None:
    from azure.storage.queue import QueueClient

    for name in ("meeting-ops", "meeting-ops-poison", "mail", "mail-poison"):
        client = QueueClient.from_connection_string(stack.azurite.connection_string, name)
        with client:
            client.clear_messages()


@dataclass
class Caller:
    """A client of the API holding one token (or none)."""

    stack: LocalStack
    token: str | None

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ):
        headers = dict(headers or {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if raw is not None:
            headers.setdefault("Content-Type", "application/json")
            return requests.request(
                method, f"{self.stack.api}{path}", data=raw, headers=headers, timeout=30
            )
        return requests.request(
            method, f"{self.stack.api}{path}", json=body, headers=headers, timeout=30
        )


@pytest.fixture(scope="module")
def staff(stack: LocalStack) -> Caller:
    return caller(stack, "staff-1", "staff")


@pytest.fixture(scope="module")
def student(stack: LocalStack) -> Caller:
    return caller(stack, "student-1", "student")


def settle(predicate: Callable[[], bool], timeout: float = 60.0, every: float = 0.25) -> bool:
    """Wait until `predicate()` holds (background work draining); its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return predicate()


def caller(
    stack: LocalStack, user: str, *roles: str, tenant: str = DEMO_TENANT_ID, **claims: Any
) -> Caller:
    return Caller(stack, stack.issuer.mint(user=user, roles=list(roles), tenant=tenant, **claims))


def future_slot(days: int = 3, hours: float = 1.0) -> tuple[str, str]:
    start = (datetime.now(UTC) + timedelta(days=days)).replace(minute=0, second=0, microsecond=0)
    end = start + timedelta(hours=hours)
    return start.strftime("%Y-%m-%dT%H:%M:%SZ"), end.strftime("%Y-%m-%dT%H:%M:%SZ")


def booking_body(student: str = "student-1", tutor: str = "tutor-1", **changes: Any) -> dict:
    start, end = future_slot()
    body = {
        "subject": "Computer Science",
        "level": "A-Level",
        "startDateTime": start,
        "endDateTime": end,
        "timeZone": "Europe/London",
        "participants": [
            {"userId": student, "role": "student", "email": f"{student}@example.com"},
            {"userId": tutor, "role": "tutor", "email": f"{tutor}@example.com"},
        ],
    }
    body.update(changes)
    return body
