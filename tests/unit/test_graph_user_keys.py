"""How a user is named in a Graph path: `/users/{id or upn}`, or `/users('{upn}')` for a UPN
that starts with `$` (Graph's "Get user" reference: OData reserves a leading `$`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests
import responses

from localdev.graph_emulator import GraphEmulator
from shared.domain.tenant import MeetingOptions, MicrosoftProfile
from shared.graph.bodies import Attendee, MeetingRequest
from shared.graph.client import CallContext, GraphMeetingsClient
from shared.graph.errors import GraphInvalidRequestError
from shared.graph.session import TimeoutSession
from shared.graph.tokens import MsalTokenSource

DIRECTORY = "6a1b2c3d-0000-4000-8000-000000000001"
CLIENT_ID = "client-emulated"
SECRET = "emulated-secret"
PROFILE = MicrosoftProfile(DIRECTORY, CLIENT_ID, "EMULATED_SECRET")
CTX = CallContext("tenant-a", "create", "b1")
START = datetime(2026, 12, 24, 13, 0, tzinfo=UTC)
BASE = "https://graph.test/v1.0"
REQUEST = MeetingRequest(
    "tenant-a:b1",
    "Maths A-Level Lesson",
    START,
    START + timedelta(hours=1),
    (Attendee("student@example.com", "Sam"),),
)


@pytest.fixture
def wire():
    """The Graph emulator answering at the wire, with the calls as `requests` sent them."""
    emulator = GraphEmulator(tls=None)
    emulator.register_app(DIRECTORY, CLIENT_ID, SECRET)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        emulator.install_responses(rsps)
        yield emulator, rsps


def make_client() -> GraphMeetingsClient:
    session = TimeoutSession(5.0)
    tokens = MsalTokenSource(
        authority_host="https://graph.test",
        graph_base_url=BASE,
        resolve_secret=lambda _: SECRET,
        http=session,
        timeout=5.0,
    )
    return GraphMeetingsClient(base_url=BASE, tokens=tokens, http=session, timeout=5.0)


def graph_paths(rsps: responses.RequestsMock) -> list[str]:
    return [
        str(call.request.url).removeprefix(BASE).partition("?")[0]
        for call in rsps.calls
        if str(call.request.url).startswith(BASE)
    ]


def drive_every_user_path(client: GraphMeetingsClient, upn: str) -> None:
    """Lookup, createOrGet (+ options PATCH), GET, reschedule PATCH, sendMail, DELETE by UPN."""
    user = client.get_user(PROFILE, upn, CTX)
    assert user.user_principal_name == upn
    meeting = client.create_or_get_meeting(PROFILE, upn, REQUEST, MeetingOptions(), CTX)
    assert client.get_meeting(PROFILE, upn, meeting.id, CTX).id == meeting.id
    moved = client.update_meeting(
        PROFILE,
        upn,
        meeting.id,
        start=START + timedelta(hours=2),
        end=START + timedelta(hours=3),
        subject=None,
        ctx=CTX,
    )
    assert moved.join_url == meeting.join_url
    client.send_mail(PROFILE, upn, {"subject": "Your lesson"}, CTX)
    assert client.delete_meeting(PROFILE, upn, meeting.id, CTX) is True


def test_a_upn_starting_with_a_dollar_is_named_in_the_quoted_key_form(wire):
    # GIVEN an organizer whose UPN starts with `$`
    emulator, rsps = wire
    upn = "$tutor@a.example"
    emulator.add_user(DIRECTORY, upn, "Tutor")

    # WHEN every call that names a user is made with that UPN
    drive_every_user_path(make_client(), upn)

    # THEN each path names it as users('...'), and the emulator (as Graph) found the user
    key = "/users('$tutor@a.example')"
    paths = graph_paths(rsps)
    assert paths[0] == key
    assert paths[1] == f"{key}/onlineMeetings/createOrGet"
    assert paths[2].startswith(f"{key}/onlineMeetings/")  # the options PATCH after create
    assert all(p.startswith(key) for p in paths)
    assert emulator.statuses["patchMeeting:200"] == 2
    assert emulator.statuses["sendMail:202"] == 1
    assert [m["from"] for m in emulator.mail] == [upn]
    assert not any(status.startswith("unknown") for status in emulator.statuses)


def test_a_single_quote_in_a_dollar_upn_is_doubled(wire):
    emulator, rsps = wire
    upn = "$o'brien@a.example"
    emulator.add_user(DIRECTORY, upn, "O'Brien")

    user = make_client().get_user(PROFILE, upn, CTX)

    assert user.user_principal_name == upn
    assert graph_paths(rsps) == ["/users('$o''brien@a.example')"]


@pytest.mark.parametrize(
    ("user", "path"),
    [
        ("tutor@a.example", "/users/tutor@a.example"),
        ("0f0e0d0c-0000-4000-8000-000000000001", "/users/0f0e0d0c-0000-4000-8000-000000000001"),
        ("o'brien@a.example", "/users/o%27brien@a.example"),
        ("tu$tor@a.example", "/users/tu%24tor@a.example"),
        ("guest_b.example#EXT#@a.example", "/users/guest_b.example%23EXT%23@a.example"),
    ],
)
def test_any_other_user_keeps_the_plain_path(wire, user, path):
    emulator, rsps = wire
    emulator.add_user(DIRECTORY, user, "Someone")

    make_client().get_user(PROFILE, user, CTX)

    assert graph_paths(rsps) == [path]


@pytest.mark.parametrize(
    "path",
    [
        "/users/$tutor@a.example",
        "/users/%24tutor@a.example",
        "/users('$tutor@a.example'",
        "/users('$o'brien@a.example')",
    ],
)
def test_the_emulator_refuses_a_dollar_upn_in_the_plain_path_as_graph_does(wire, path):
    emulator, _ = wire
    emulator.add_user(DIRECTORY, "$tutor@a.example", "Tutor")
    emulator.add_user(DIRECTORY, "$o'brien@a.example", "O'Brien")

    answer = requests.get(BASE + path, timeout=5)

    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "BadRequest"


def test_an_empty_user_is_refused_before_any_call(wire):
    _, rsps = wire

    with pytest.raises(GraphInvalidRequestError):
        make_client().get_user(PROFILE, "", CTX)

    assert graph_paths(rsps) == []
