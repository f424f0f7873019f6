"""The shared HTTP session: every call has a timeout, a deadline shortens all of them, and
proxies come from the OUTBOUND_PROXY setting, never from the environment on each call."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator
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


class Answering(http.server.BaseHTTPRequestHandler):
    """Answers every GET with 200, and keeps the request lines it was sent."""

    seen: list[str]

    def do_GET(self) -> None:
        self.seen.append(self.requestline)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server: its URL and the request lines it received."""
    seen: list[str] = []
    handler = type("Handler", (Answering,), {"seen": seen})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    httpd.shutdown()
    httpd.server_close()


def dead_address() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"  # closed again: nothing listens


@pytest.fixture
def dead_proxy_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    dead = dead_address()
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, dead)


def test_the_environments_proxy_variables_are_not_read(server, dead_proxy_in_environment):
    url, seen = server
    # GIVEN the environment names a proxy that does not answer, which a plain session obeys
    with pytest.raises(requests.exceptions.ProxyError):
        requests.Session().get(f"{url}/plain", timeout=2)

    # WHEN the app's session calls (built before or after the variables were set)
    answer = TimeoutSession(2.0).get(f"{url}/direct")

    # THEN the call went direct
    assert answer.status_code == 200
    assert seen == ["GET /direct HTTP/1.1"]


def test_the_outbound_proxy_setting_carries_every_call(server, dead_proxy_in_environment):
    proxy, seen = server
    session = TimeoutSession(2.0, proxy=proxy)

    answer = session.get("http://graph.test/v1.0/users/someone")

    # The proxy was asked for the absolute URL, as a client asks a forward proxy.
    assert answer.status_code == 200
    assert seen == ["GET http://graph.test/v1.0/users/someone HTTP/1.1"]
