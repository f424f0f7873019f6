"""The Graph client against the local Graph emulator: real TLS, real msal, injected faults."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from localdev.graph_emulator import POLICY_MISSING_MESSAGE, Fault, GraphEmulator
from shared.domain.tenant import MeetingOptions, MicrosoftProfile
from shared.graph.bodies import Attendee, MeetingRequest
from shared.graph.client import CallContext, GraphMeetingsClient
from shared.graph.errors import (
    GraphAuthError,
    GraphNotFoundError,
    GraphPolicyMissingError,
    GraphThrottledError,
    GraphTimeoutError,
    GraphTransientError,
)
from shared.graph.session import TimeoutSession
from shared.graph.tokens import MsalTokenSource

pytestmark = pytest.mark.integration

DIRECTORY = "6a1b2c3d-0000-4000-8000-000000000001"
CLIENT_ID = "client-emulated"
SECRET = "emulated-secret"
PROFILE = MicrosoftProfile(DIRECTORY, CLIENT_ID, "EMULATED_SECRET")
CTX = CallContext("tenant-a", "create", "b1")
START = datetime(2026, 12, 24, 13, 0, tzinfo=UTC)


@pytest.fixture
def emulator(local_tls, trust_local_tls):
    instance = GraphEmulator(local_tls).start()
    instance.register_app(DIRECTORY, CLIENT_ID, SECRET)
    yield instance
    instance.stop()


@pytest.fixture
def organizer(emulator):
    return emulator.add_user(DIRECTORY, "organizer@a.example", "Organizer")


def make_client(emulator: GraphEmulator, secret: str = SECRET, timeout: float = 5.0):
    session = TimeoutSession(timeout)
    tokens = MsalTokenSource(
        authority_host=emulator.base_url,
        graph_base_url=emulator.graph_url,
        resolve_secret=lambda _: secret,
        http=session,
        timeout=timeout,
    )
    return GraphMeetingsClient(
        base_url=emulator.graph_url, tokens=tokens, http=session, timeout=timeout
    )


@pytest.fixture
def client(emulator):
    return make_client(emulator)


def request(external_id: str = "tenant-a:b1") -> MeetingRequest:
    return MeetingRequest(
        external_id,
        "Maths A-Level Lesson",
        START,
        START + timedelta(hours=1),
        (Attendee("student@example.com", "Sam"),),
    )


def test_one_external_id_makes_exactly_one_meeting_however_often_called(
    emulator, organizer, client
):
    meetings = [
        client.create_or_get_meeting(PROFILE, organizer.id, request(), MeetingOptions(), CTX)
        for _ in range(5)
    ]

    assert len({m.id for m in meetings}) == 1
    assert len({m.join_url for m in meetings}) == 1
    assert [m.created for m in meetings] == [True, False, False, False, False]
    assert len(emulator.live_meetings()) == 1


def test_racing_workers_still_make_one_meeting(emulator, organizer, client):
    barrier = threading.Barrier(6)
    ids: list[str] = []

    def worker() -> None:
        barrier.wait()
        ids.append(
            client.create_or_get_meeting(PROFILE, organizer.id, request(), MeetingOptions(), CTX).id
        )

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(ids) == 6
    assert len(set(ids)) == 1
    assert len(emulator.live_meetings()) == 1


def test_created_meetings_carry_the_options_patched_after_create(emulator, organizer, client):
    client.create_or_get_meeting(PROFILE, organizer.id, request(), MeetingOptions(), CTX)

    (meeting,) = emulator.live_meetings()
    assert meeting.lobby_scope == "everyone"
    assert meeting.dial_in_bypass is True
    assert meeting.entry_exit_announced is False
    assert meeting.participants[0]["upn"] == "student@example.com"


def test_a_token_is_requested_once_for_many_calls(emulator, organizer, client):
    for n in range(4):
        client.create_or_get_meeting(
            PROFILE, organizer.id, request(f"t:{n}"), MeetingOptions(), CTX
        )

    assert emulator.calls["token"] == 1
    assert emulator.calls["createOrGet"] == 4


def test_reschedule_patches_the_same_meeting_and_keeps_its_link(emulator, organizer, client):
    created = client.create_or_get_meeting(PROFILE, organizer.id, request(), MeetingOptions(), CTX)
    new_start = START + timedelta(days=1)

    moved = client.update_meeting(
        PROFILE,
        organizer.id,
        created.id,
        start=new_start,
        end=new_start + timedelta(hours=1),
        subject=None,
        ctx=CTX,
    )

    assert moved.id == created.id
    assert moved.join_url == created.join_url
    assert moved.start == new_start
    assert client.get_meeting(PROFILE, organizer.id, created.id, CTX).start == new_start


def test_delete_removes_the_meeting_and_a_second_delete_is_done_too(emulator, organizer, client):
    created = client.create_or_get_meeting(PROFILE, organizer.id, request(), MeetingOptions(), CTX)

    assert client.delete_meeting(PROFILE, organizer.id, created.id, CTX) is True
    assert client.delete_meeting(PROFILE, organizer.id, created.id, CTX) is False
    assert emulator.live_meetings() == []
    with pytest.raises(GraphNotFoundError):
        client.get_meeting(PROFILE, organizer.id, created.id, CTX)


def test_the_organizer_upn_resolves_to_its_object_id(organizer, client):
    user = client.get_user(PROFILE, "ORGANIZER@a.example", CTX)

    assert user.id == organizer.id
    with pytest.raises(GraphNotFoundError):
        client.get_user(PROFILE, "nobody@a.example", CTX)


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (Fault(operation="createOrGet", status=429, retry_after="0.75"), GraphThrottledError),
        (Fault(operation="createOrGet", status=503), GraphTransientError),
        (
            Fault(operation="createOrGet", status=403, message=POLICY_MISSING_MESSAGE),
            GraphPolicyMissingError,
        ),
        (Fault(operation="createOrGet", status=404), GraphNotFoundError),
        (Fault(operation="token", status=401), GraphAuthError),
    ],
)
def test_each_injected_fault_becomes_its_error_class(emulator, organizer, client, fault, expected):
    emulator.add_fault(fault)

    with pytest.raises(expected) as raised:
        client.create_or_get_meeting(PROFILE, organizer.id, request(), MeetingOptions(), CTX)

    if fault.retry_after:
        assert raised.value.retry_after == pytest.approx(0.75)
    assert emulator.live_meetings() == []


def test_a_hanging_graph_is_a_timeout(emulator, organizer):
    client = make_client(emulator, timeout=0.5)
    emulator.add_fault(Fault(operation="getMeeting", hang_seconds=2.0))

    with pytest.raises(GraphTimeoutError):
        client.get_meeting(PROFILE, organizer.id, "any", CTX)


def test_an_organizer_without_the_access_policy_is_refused(emulator, client):
    unpolicied = emulator.add_user(DIRECTORY, "new@a.example", "New", policy_granted=False)

    with pytest.raises(GraphPolicyMissingError):
        client.create_or_get_meeting(PROFILE, unpolicied.id, request(), MeetingOptions(), CTX)


def test_a_wrong_secret_is_an_auth_error(emulator, organizer):
    client = make_client(emulator, secret="wrong")

    with pytest.raises(GraphAuthError, match="AADSTS7000215"):
        client.get_user(PROFILE, organizer.user_principal_name, CTX)


def test_a_share_of_faults_hits_that_share_of_calls(emulator, organizer, client):
    emulator.add_fault(Fault(operation="getUser", status=503, share=0.5))
    outcomes = []
    for _ in range(6):
        try:
            client.get_user(PROFILE, organizer.id, CTX)
            outcomes.append("ok")
        except GraphTransientError:
            outcomes.append("503")

    assert outcomes.count("503") == 3


def test_a_fault_with_a_count_stops_after_it(emulator, organizer, client):
    emulator.add_fault(Fault(operation="createOrGet", status=503, count=1))

    with pytest.raises(GraphTransientError):
        client.create_or_get_meeting(PROFILE, organizer.id, request(), MeetingOptions(), CTX)
    meeting = client.create_or_get_meeting(PROFILE, organizer.id, request(), MeetingOptions(), CTX)

    assert meeting.created is True
    assert emulator.statuses["createOrGet:503"] == 1
    assert emulator.statuses["createOrGet:201"] == 1
