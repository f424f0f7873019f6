"""Property: no input makes a request parser or the token validator raise anything but its own
4xx error (SPEC §4: no input produces a 5xx). Any body, any query, any header, any token."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func
import requests
import responses
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from shared.api import commands as parse
from shared.api.validation import ValidationError
from shared.auth.tokens import AuthError, JwksCache, TokenValidator
from shared.settings import AuthSettings, TrustedIssuer

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
HORIZON = timedelta(days=730)
SETTINGS = settings(
    max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True)
    | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)
# Bodies shaped like ours (known field names with any values), and anything at all.
FIELDS = (
    "subject",
    "level",
    "startDateTime",
    "endDateTime",
    "timeZone",
    "participants",
    "internalNotes",
    "generateTeamsMeeting",
    "assigneeId",
    "reason",
    "organizerUpn",
    "meetingOptions",
    "participantsCanReschedule",
    "defaultLocale",
    "upn",
    "dryRun",
)
shaped = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=8)
bodies = (
    shaped.map(lambda d: json.dumps(d).encode())
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=200)
)
content_types = st.sampled_from(["application/json", "text/plain", "", "application/x+json; a=b"])

PARSERS = (
    lambda r: parse.new_booking(r, NOW, HORIZON),
    parse.approval,
    parse.reason,
    lambda r: parse.new_times(r, NOW, HORIZON),
    parse.settings_change,
    parse.verification,
    parse.no_body,
)


def request(body: bytes = b"", content_type: str = "application/json", **extra: Any) -> Any:
    return func.HttpRequest(
        method="POST",
        url="http://localhost/api/v1/x",
        headers={"Content-Type": content_type, **extra.get("headers", {})},
        params=extra.get("params", {}),
        route_params={},
        body=body,
    )


def outcome(call: Any) -> Any:
    """What a call did: its value, or the error it refused with; anything else escapes."""
    try:
        return call()
    except (ValidationError, AuthError) as error:
        return error


def refused_cleanly(result: Any) -> None:
    if isinstance(result, ValidationError):
        assert 400 <= result.status < 500
        assert isinstance(result.message, str)
        assert result.message
        assert result.code
        assert result.code.isascii()


@SETTINGS
@given(body=bodies, content_type=content_types, which=st.integers(0, len(PARSERS) - 1))
@example(body=b"[" * 5000 + b"]" * 5000, content_type="application/json", which=0)
@example(
    body=b'{"startDateTime": "0001-01-01T00:00:00+01:00", "endDateTime": "x"}',
    content_type="application/json",
    which=3,
)
def test_any_body_is_parsed_or_refused_with_a_4xx(body, content_type, which):
    refused_cleanly(outcome(lambda: PARSERS[which](request(body, content_type))))


@SETTINGS
@given(params=st.dictionaries(st.text(max_size=10), st.text(max_size=30), max_size=5))
@example(params={"limit": "\u00b2"})
@example(params={"from": "0001-01-01T00:00:00+01:00"})
def test_any_list_query_is_parsed_or_refused_with_a_4xx(params):
    refused_cleanly(outcome(lambda: parse.booking_query(request(params=params))))


@SETTINGS
@given(key=st.text(max_size=300))
def test_any_idempotency_key_is_taken_or_refused_with_a_4xx(key):
    refused_cleanly(
        outcome(lambda: parse.idempotency_key(request(headers={"Idempotency-Key": key})))
    )


ISSUER = TrustedIssuer("https://issuer.test", "meetings", "https://issuer.test/jwks")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


tokens = (
    st.text(max_size=100)
    | st.tuples(json_values, json_values, st.binary(max_size=64)).map(
        lambda parts: ".".join(
            (b64(json.dumps(parts[0]).encode()), b64(json.dumps(parts[1]).encode()), b64(parts[2]))
        )
    )
    | st.tuples(
        st.fixed_dictionaries(
            {"alg": st.sampled_from(["RS256", "ES256", "none", "HS256"]), "kid": json_values}
        ),
        st.fixed_dictionaries(
            {
                "iss": st.just(ISSUER.issuer),
                "aud": json_values,
                "sub": json_values,
                "exp": json_values,
            },
            optional={"roles": json_values, "tenant": json_values, "nbf": json_values},
        ),
    ).map(
        lambda parts: (
            f"{b64(json.dumps(parts[0]).encode())}.{b64(json.dumps(parts[1]).encode())}.c2ln"
        )
    )
)


@SETTINGS
@given(token=tokens, scheme=st.sampled_from(["Bearer ", "bearer ", "Basic ", ""]))
def test_any_token_is_accepted_or_refused_with_a_401(token, scheme):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as wire:
        wire.get(
            ISSUER.jwks_url or "",
            json={
                "keys": [
                    {
                        "kty": "EC",
                        "crv": "P-256",
                        "kid": "k",
                        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
                    }
                ]
            },
        )
        validator = TokenValidator(
            AuthSettings(issuers=(ISSUER,)), JwksCache(requests.Session()), "d"
        )
        result = outcome(lambda: validator.authenticate(scheme + token))
    if isinstance(result, AuthError):
        assert result.message
        assert result.code in ("unauthenticated", "invalid_token")
