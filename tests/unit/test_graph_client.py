"""The Graph meeting client against Graph faked at the wire (`responses`), msal included."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
import requests
import responses

from shared.domain.tenant import LobbyBypassScope, MeetingOptions, MicrosoftProfile
from shared.graph.bodies import Attendee, MeetingRequest, options_body
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

LOGIN = "https://login.test.example"
GRAPH = "https://graph.test.example/v1.0"
PROFILE = MicrosoftProfile("dir-a", "client-a", "TENANT_A_SECRET")
SECRET = "client-secret-value"
ORGANIZER = "0f0e0d0c-0000-4000-8000-000000000001"
CTX = CallContext(tenant_id="tenant-a", operation="create", booking_id="b1")
START = datetime(2026, 12, 24, 13, 0, tzinfo=UTC)
JOIN_URL = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_secretthread%40thread.v2/0"
REQUEST = MeetingRequest(
    "tenant-a:b1",
    "Maths A-Level Lesson",
    START,
    START + timedelta(hours=1),
    (Attendee("student@example.com"),),
)


def meeting_json(**changes):
    body = {
        "id": "MSpmeeting1",
        "externalId": "tenant-a:b1",
        "joinWebUrl": JOIN_URL,
        "subject": "Maths A-Level Lesson",
        "startDateTime": "2026-12-24T13:00:00.0000000Z",
        "endDateTime": "2026-12-24T14:00:00.0000000Z",
        "lobbyBypassSettings": {"scope": "organization", "isDialInBypassEnabled": False},
        "allowedPresenters": "everyone",
        "allowMeetingChat": "enabled",
        "isEntryExitAnnounced": True,
    }
    body.update(changes)
    return body


def add_login(rsps: responses.RequestsMock, directory: str = "dir-a") -> None:
    rsps.get(
        f"{LOGIN}/{directory}/v2.0/.well-known/openid-configuration",
        json={
            "issuer": f"{LOGIN}/{directory}/v2.0",
            "authorization_endpoint": f"{LOGIN}/{directory}/oauth2/v2.0/authorize",
            "token_endpoint": f"{LOGIN}/{directory}/oauth2/v2.0/token",
        },
    )
    rsps.post(
        f"{LOGIN}/{directory}/oauth2/v2.0/token",
        json={"token_type": "Bearer", "expires_in": 3599, "access_token": f"token-{directory}"},
    )


def token_calls(rsps: responses.RequestsMock) -> int:
    return sum(1 for c in rsps.calls if str(c.request.url).endswith("/oauth2/v2.0/token"))


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        add_login(mock)
        yield mock


@pytest.fixture
def client() -> GraphMeetingsClient:
    session = TimeoutSession(4.0)
    tokens = MsalTokenSource(
        authority_host=LOGIN,
        graph_base_url=GRAPH,
        resolve_secret=lambda name: {"TENANT_A_SECRET": SECRET, "TENANT_B_SECRET": "b"}[name],
        http=session,
        timeout=4.0,
    )
    return GraphMeetingsClient(base_url=GRAPH, tokens=tokens, http=session, timeout=4.0)


def test_one_token_request_serves_many_calls(rsps, client):
    rsps.get(f"{GRAPH}/users/organizer@a.example", json={"id": ORGANIZER})
    rsps.get(f"{GRAPH}/users/{ORGANIZER}/onlineMeetings/MSpmeeting1", json=meeting_json())

    client.get_user(PROFILE, "organizer@a.example", CTX)
    client.get_meeting(PROFILE, ORGANIZER, "MSpmeeting1", CTX)
    client.get_meeting(PROFILE, ORGANIZER, "MSpmeeting1", CTX)

    assert token_calls(rsps) == 1
    graph_calls = [c for c in rsps.calls if c.request.url.startswith(GRAPH)]
    assert all(c.request.headers["Authorization"] == "Bearer token-dir-a" for c in graph_calls)


def test_each_tenant_profile_gets_its_own_token(rsps, client):
    add_login(rsps, "dir-b")
    rsps.get(f"{GRAPH}/users/organizer@a.example", json={"id": ORGANIZER})
    other = MicrosoftProfile("dir-b", "client-b", "TENANT_B_SECRET")

    client.get_user(PROFILE, "organizer@a.example", CTX)
    client.get_user(other, "organizer@a.example", CTX)
    client.get_user(other, "organizer@a.example", CTX)

    assert token_calls(rsps) == 2
    tokens_used = {
        c.request.headers.get("Authorization")
        for c in rsps.calls
        if c.request.url.startswith(GRAPH)
    }
    assert tokens_used == {"Bearer token-dir-a", "Bearer token-dir-b"}


def test_token_request_uses_client_credentials_and_the_graph_scope(rsps, client):
    rsps.get(f"{GRAPH}/users/organizer@a.example", json={"id": ORGANIZER})

    client.get_user(PROFILE, "organizer@a.example", CTX)

    token_request = next(c.request for c in rsps.calls if c.request.url.endswith("/token"))
    form = dict(p.split("=", 1) for p in str(token_request.body).split("&"))
    assert form["grant_type"] == "client_credentials"
    assert form["client_id"] == "client-a"
    assert "graph.test.example%2F.default" in form["scope"]


def test_get_user_resolves_the_organizer_object_id(rsps, client):
    rsps.get(
        f"{GRAPH}/users/organizer@a.example",
        json={"id": ORGANIZER, "displayName": "Org", "userPrincipalName": "organizer@a.example"},
    )

    user = client.get_user(PROFILE, "organizer@a.example", CTX)

    assert user.id == ORGANIZER
    assert user.display_name == "Org"


def test_create_posts_create_or_get_then_patches_the_options(rsps, client):
    rsps.post(
        f"{GRAPH}/users/{ORGANIZER}/onlineMeetings/createOrGet", json=meeting_json(), status=201
    )
    rsps.patch(
        f"{GRAPH}/users/{ORGANIZER}/onlineMeetings/MSpmeeting1",
        json=meeting_json(**options_body(MeetingOptions())),
    )

    meeting = client.create_or_get_meeting(PROFILE, ORGANIZER, REQUEST, MeetingOptions(), CTX)

    assert meeting.created is True
    assert meeting.id == "MSpmeeting1"
    assert meeting.join_url == JOIN_URL
    assert meeting.start == START
    create, patch = [c.request for c in rsps.calls if c.request.url.startswith(GRAPH)]
    assert json.loads(create.body)["externalId"] == "tenant-a:b1"
    assert "lobbyBypassSettings" not in json.loads(create.body)
    assert json.loads(patch.body) == options_body(MeetingOptions())


def test_an_existing_meeting_with_the_right_options_is_returned_without_a_patch(rsps, client):
    rsps.post(
        f"{GRAPH}/users/{ORGANIZER}/onlineMeetings/createOrGet",
        json=meeting_json(**options_body(MeetingOptions())),
        status=200,
    )

    meeting = client.create_or_get_meeting(PROFILE, ORGANIZER, REQUEST, MeetingOptions(), CTX)

    assert meeting.created is False
    assert [c.request.method for c in rsps.calls if c.request.url.startswith(GRAPH)] == ["POST"]


def test_evolved_lobby_scopes_ask_graph_for_unknown_enum_members(rsps, client):
    options = MeetingOptions(lobby_bypass_scope=LobbyBypassScope.INVITED)
    rsps.post(
        f"{GRAPH}/users/{ORGANIZER}/onlineMeetings/createOrGet",
        json=meeting_json(**options_body(options)),
        status=201,
    )

    client.create_or_get_meeting(PROFILE, ORGANIZER, REQUEST, options, CTX)

    create = next(c.request for c in rsps.calls if c.request.url.startswith(GRAPH))
    assert create.headers["Prefer"] == "include-unknown-enum-members"


def test_update_patches_start_and_end_of_the_same_meeting(rsps, client):
    rsps.patch(
        f"{GRAPH}/users/{ORGANIZER}/onlineMeetings/MSpmeeting1",
        json=meeting_json(startDateTime="2026-12-25T09:00:00Z", endDateTime="2026-12-25T10:00:00Z"),
    )
    new_start = START + timedelta(hours=20)

    meeting = client.update_meeting(
        PROFILE,
        ORGANIZER,
        "MSpmeeting1",
        start=new_start,
        end=new_start + timedelta(hours=1),
        subject=None,
        ctx=CTX,
    )

    assert meeting.start == new_start
    patch = next(c.request for c in rsps.calls if c.request.method == "PATCH")
    assert json.loads(patch.body) == {
        "startDateTime": "2026-12-25T09:00:00Z",
        "endDateTime": "2026-12-25T10:00:00Z",
    }


def test_delete_reports_whether_the_meeting_was_still_there(rsps, client):
    url = f"{GRAPH}/users/{ORGANIZER}/onlineMeetings/MSpmeeting1"
    rsps.delete(url, status=204)
    rsps.delete(url, status=404, json={"error": {"code": "NotFound", "message": "gone"}})

    assert client.delete_meeting(PROFILE, ORGANIZER, "MSpmeeting1", CTX) is True
    assert client.delete_meeting(PROFILE, ORGANIZER, "MSpmeeting1", CTX) is False


@pytest.mark.parametrize(
    ("status", "headers", "message", "expected"),
    [
        (429, {"Retry-After": "1.5"}, "Too many requests", GraphThrottledError),
        (503, {}, "Service unavailable", GraphTransientError),
        (403, {}, "No application access policy found for this app.", GraphPolicyMissingError),
        (401, {}, "Access token validation failure.", GraphAuthError),
    ],
)
def test_graph_failures_raise_typed_errors(rsps, client, status, headers, message, expected):
    rsps.post(
        f"{GRAPH}/users/{ORGANIZER}/onlineMeetings/createOrGet",
        status=status,
        headers=headers,
        json={"error": {"code": "X", "message": message}},
    )

    with pytest.raises(expected) as raised:
        client.create_or_get_meeting(PROFILE, ORGANIZER, REQUEST, MeetingOptions(), CTX)

    assert raised.value.status == status
    if status == 429:
        assert raised.value.retry_after == pytest.approx(1.5)


def test_a_timeout_is_a_retryable_timeout_error(rsps, client):
    rsps.get(
        f"{GRAPH}/users/{ORGANIZER}/onlineMeetings/m1", body=requests.exceptions.ReadTimeout("slow")
    )

    with pytest.raises(GraphTimeoutError) as raised:
        client.get_meeting(PROFILE, ORGANIZER, "m1", CTX)

    assert raised.value.retryable


def test_a_connection_failure_is_transient(rsps, client):
    rsps.get(
        f"{GRAPH}/users/{ORGANIZER}/onlineMeetings/m1",
        body=requests.exceptions.ConnectionError("refused"),
    )

    with pytest.raises(GraphTransientError):
        client.get_meeting(PROFILE, ORGANIZER, "m1", CTX)


def test_every_graph_call_has_the_configured_timeout(rsps, client):
    rsps.get(f"{GRAPH}/users/organizer@a.example", json={"id": ORGANIZER})
    rsps.delete(f"{GRAPH}/users/{ORGANIZER}/onlineMeetings/m1", status=204)

    client.get_user(PROFILE, "organizer@a.example", CTX)
    client.delete_meeting(PROFILE, ORGANIZER, "m1", CTX)

    timeouts = [c.request.req_kwargs["timeout"] for c in rsps.calls]
    assert timeouts
    assert all(t == 4.0 for t in timeouts)


def test_a_rejected_secret_is_an_auth_error_without_the_secret_in_it(client):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        add_login(rsps)
        rsps.replace(
            responses.POST,
            f"{LOGIN}/dir-a/oauth2/v2.0/token",
            status=401,
            json={
                "error": "invalid_client",
                "error_description": "AADSTS7000215: Invalid client secret provided.\nTrace",
            },
        )
        with pytest.raises(GraphAuthError) as raised:
            client.get_user(PROFILE, "organizer@a.example", CTX)

    assert raised.value.graph_code == "invalid_client"
    assert "AADSTS7000215" in str(raised.value)
    assert SECRET not in str(raised.value)


def test_an_unknown_directory_is_an_auth_error(client):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(
            f"{LOGIN}/dir-a/v2.0/.well-known/openid-configuration",
            status=400,
            json={"error": "invalid_tenant"},
        )
        with pytest.raises(GraphAuthError, match="dir-a"):
            client.get_user(PROFILE, "organizer@a.example", CTX)


def test_log_lines_name_the_booking_and_never_hold_tokens_or_join_urls(rsps, client, caplog):
    rsps.post(
        f"{GRAPH}/users/{ORGANIZER}/onlineMeetings/createOrGet",
        json=meeting_json(**options_body(MeetingOptions())),
        status=201,
    )
    rsps.get(
        f"{GRAPH}/users/{ORGANIZER}/onlineMeetings/gone",
        status=404,
        json={"error": {"code": "NotFound", "message": "no"}},
    )
    caplog.set_level(logging.INFO, logger="meetings.graph")

    client.create_or_get_meeting(PROFILE, ORGANIZER, REQUEST, MeetingOptions(), CTX)
    with pytest.raises(GraphNotFoundError):
        client.get_meeting(PROFILE, ORGANIZER, "gone", CTX)

    records = [json.loads(r.getMessage()) for r in caplog.records if r.name == "meetings.graph"]
    assert [(r["graphStatus"], r["operation"], r["tenant"], r["bookingId"]) for r in records] == [
        (201, "create", "tenant-a", "b1"),
        (404, "create", "tenant-a", "b1"),
    ]
    assert caplog.records[0].levelno == logging.INFO
    assert caplog.records[1].levelno == logging.WARNING
    assert records[1]["errorCode"] == "graph_not_found"
    text = caplog.text
    assert "token-dir-a" not in text
    assert SECRET not in text
    assert "secretthread" not in text


def test_the_public_cloud_authority_uses_instance_discovery(client):
    # GIVEN the production login host (known to msal) and Graph
    session = TimeoutSession(4.0)
    tokens = MsalTokenSource(
        authority_host="https://login.microsoftonline.com",
        graph_base_url="https://graph.microsoft.com/v1.0",
        resolve_secret=lambda _: SECRET,
        http=session,
        timeout=4.0,
    )
    prod = GraphMeetingsClient(
        base_url="https://graph.microsoft.com/v1.0", tokens=tokens, http=session, timeout=4.0
    )
    login = "https://login.microsoftonline.com"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(
            f"{login}/common/discovery/instance",
            json={
                "tenant_discovery_endpoint": f"{login}/dir-a/v2.0/.well-known/openid-configuration",
                "metadata": [
                    {
                        "preferred_network": "login.microsoftonline.com",
                        "aliases": ["login.microsoftonline.com"],
                    }
                ],
            },
        )
        rsps.get(
            f"{login}/dir-a/v2.0/.well-known/openid-configuration",
            json={
                "issuer": f"{login}/dir-a/v2.0",
                "authorization_endpoint": f"{login}/dir-a/oauth2/v2.0/authorize",
                "token_endpoint": f"{login}/dir-a/oauth2/v2.0/token",
            },
        )
        rsps.post(
            f"{login}/dir-a/oauth2/v2.0/token",
            json={"token_type": "Bearer", "expires_in": 3599, "access_token": "prod"},
        )
        rsps.get(
            "https://graph.microsoft.com/v1.0/users/organizer@a.example", json={"id": ORGANIZER}
        )

        # WHEN the organizer is looked up
        user = prod.get_user(PROFILE, "organizer@a.example", CTX)

    # THEN the token came from the public cloud with Graph's scope
    assert user.id == ORGANIZER
