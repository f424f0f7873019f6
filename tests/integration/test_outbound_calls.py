"""Outbound calls take no proxy from the environment: Graph and sign-in go through
OUTBOUND_PROXY when it is set (else direct), storage always goes direct, and the CA bundle the
host names (REQUESTS_CA_BUNDLE, here the emulator's CA) is still trusted, loaded once for every
connection."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests

from shared.auth.principal import Principal, Role
from shared.domain.booking import BookingStatus, MeetingStatus
from shared.graph.session import TimeoutSession
from shared.services import bookings as use_cases
from shared.services.bookings import Approval
from shared.settings import StorageSettings
from shared.storage.queue_names import MAIL_POISON_QUEUE, MAIL_QUEUE
from shared.storage.queues import StorageWorkQueue, WorkMessage
from tests.builders import a_booking
from tests.integration.conftest import DIRECTORY, TENANT

pytestmark = pytest.mark.integration

START = (datetime.now(UTC) + timedelta(days=7)).replace(minute=0, second=0, microsecond=0)
STAFF = Principal("staff-1", TENANT, frozenset({Role.STAFF}))


@pytest.fixture
def dead_proxy_in_environment(monkeypatch: pytest.MonkeyPatch) -> str:
    """Every proxy variable names a port nothing listens on; nothing is exempt."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, dead)
    return dead


def test_an_approval_reaches_storage_and_graph_past_a_dead_proxy_in_the_environment(
    make_services, emulator, dead_proxy_in_environment
):
    # GIVEN services built while the environment names a proxy nothing answers at
    svc = make_services()
    booking = svc.bookings.add(
        a_booking(tenant_id=TENANT, start=START, end=START + timedelta(hours=1))
    )

    # WHEN staff approve a booking (tables, sign-in, the organizer, the meeting) and work is
    # queued
    result = use_cases.approve_booking(STAFF, booking.booking_id, Approval(), svc.booking_deps)
    svc.queue.send(WorkMessage(TENANT, booking.booking_id))

    # THEN every call went direct, and the emulator's certificate was trusted
    assert result.booking.status is BookingStatus.CONFIRMED
    assert result.booking.meeting.status is MeetingStatus.CREATED
    assert len(emulator.live_meetings()) == 1


def test_every_tls_connection_shares_one_context_and_still_verifies(emulator, monkeypatch):
    # GIVEN the app's session, trusting the emulator's CA (REQUESTS_CA_BUNDLE)
    session = TimeoutSession(5.0)
    url = f"{emulator.base_url}/{DIRECTORY}/v2.0/.well-known/openid-configuration"

    # WHEN it opens two TLS connections (the pool emptied between them)
    contexts = []
    for _ in range(2):
        with session.get(url, stream=True) as answer:
            assert answer.status_code == 200
            connection = answer.raw.connection
            assert connection is not None
            assert isinstance(connection.sock, ssl.SSLSocket)
            contexts.append(connection.sock.context)
        session.close()

    # THEN both used the one context, its roots loaded once
    assert contexts[0] is contexts[1]
    # AND a session that does not trust the emulator's CA is refused
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    with pytest.raises(requests.exceptions.SSLError):
        TimeoutSession(5.0).get(url)


class ConnectionCounter:
    """A TCP relay in front of a port that counts the connections made through it."""

    def __init__(self, target_port: int) -> None:
        self.connections = 0
        self._target = target_port
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            self.connections += 1
            upstream = socket.create_connection(("127.0.0.1", self._target))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._server.close()


def test_the_queues_clients_share_one_pipeline_and_its_connections(azurite):
    # GIVEN storage reached through a relay that counts connections
    relay = ConnectionCounter(azurite.queue_port)
    storage = StorageSettings(
        connection_string=azurite.connection_string.replace(
            f":{azurite.queue_port}/", f":{relay.port}/"
        )
    )
    prefix = f"q{uuid.uuid4().hex[:10]}-"
    meetings = StorageWorkQueue(storage, prefix=prefix)
    mail = StorageWorkQueue(storage, prefix=prefix, queue=MAIL_QUEUE, poison=MAIL_POISON_QUEUE)

    # WHEN work goes to both queues, one after the other, several times
    for n in range(3):
        meetings.send(WorkMessage(TENANT, f"b{n}"))
        mail.send(WorkMessage(TENANT, f"b{n}"))

    # THEN one kept-alive connection carried all of it (the queues' creation included)
    relay.close()
    assert relay.connections == 1
