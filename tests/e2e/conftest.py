"""One running stack (Azurite, Graph emulator, Functions host as a process) per e2e module."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from localdev.stack import DEMO_TENANT_ID, LocalStack, local_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with local_stack(state_dir=tmp_path_factory.mktemp("stack")) as running:
        yield running


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
            headers["Content-Type"] = "application/json"
            return requests.request(
                method, f"{self.stack.api}{path}", data=raw, headers=headers, timeout=30
            )
        return requests.request(
            method, f"{self.stack.api}{path}", json=body, headers=headers, timeout=30
        )


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
