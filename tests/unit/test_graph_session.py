"""The shared HTTP session: every call has a timeout, and a deadline shortens all of them."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
import responses

from shared.graph.session import TimeoutSession, deadline, last_status


class RecordingSession(TimeoutSession):
    """Records the timeout each request leaves the session with (at the transport)."""

    def __init__(self, timeout: float) -> None:
        super().__init__(timeout)
        self.timeouts: list[float] = []

    def send(self, request: Any, **kwargs: Any) -> Any:
        self.timeouts.append(kwargs["timeout"])
        return super().send(request, **kwargs)


@pytest.fixture
def wire():
    with responses.RequestsMock() as mock:
        mock.get("https://login.test/x", status=503)
        yield mock


def test_a_request_without_a_timeout_gets_the_default(wire):
    session = RecordingSession(10.0)

    session.get("https://login.test/x")

    assert session.timeouts == [10.0]
    assert last_status() == 503


def test_a_deadline_shortens_every_call_and_ends_them_once_spent(wire):
    session = RecordingSession(10.0)

    with deadline(2.0):
        session.get("https://login.test/x", timeout=30)
        time.sleep(0.05)
        session.get("https://login.test/x")
    with deadline(0.0), pytest.raises(requests.ConnectTimeout):
        session.get("https://login.test/x")

    assert all(t <= 2.0 for t in session.timeouts)
    assert session.timeouts[1] < session.timeouts[0]
    session.get("https://login.test/x")
    assert session.timeouts[-1] == 10.0  # the deadline ended with its block
