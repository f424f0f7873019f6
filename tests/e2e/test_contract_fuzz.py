"""The contract, fuzzed: schemathesis generates requests from docs/openapi.yaml (valid and
invalid ones) and sends them to the running stack, with an admin's token and a student's.

Every answer must be documented (status, content type, body schema); no request may get a 5xx;
requests the schema calls valid must not be refused as malformed, and invalid ones must be.

Some rules are relative to the moment, to each other or to what was stored before, which JSON
Schema cannot say: a booking starts between now and the horizon and ends 5 minutes to 12 hours
after it starts, in a time zone that exists, with each participant listed once, and a new
Idempotency-Key names a new booking, a list's page token is one a list with the same filters
gave out, and a tutor's preference is one the tenant's tutorChoices (which the fuzzed settings
change) allow. For requests generated as valid, those fields are moved into range before
sending, a booking id names a booking that exists, a page token is made for the filters sent, a
tutor's preferences are left to the tenant's options (null), and a webhook event is signed with
the stack's Stripe secret over the bytes sent; everything else is sent as generated.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from localdev.stack import local_stack
from localdev.stripe_events import signature
from shared.api.commands import booking_query, next_page_token
from shared.api.validation import ValidationError
from shared.storage.bookings import BookingPage
from tests.builders import a_booking
from tests.conftest import DEV_ISSUER
from tests.e2e.conftest import QUIET_TIMER

pytestmark = pytest.mark.e2e

# The Functions host, not the app, answers a method no function accepts, with 404 (no 405, no
# Allow header); the local host does the same. Those two checks are about the host.
CHECKS = {
    "unsupported_method": {"enabled": False},
    "allow_header_conformance": {"enabled": False},
    # A refusal of an invalid request may also be 413 (a body over the size limit, documented as
    # the TooLarge response); schemathesis's default list leaves it out.
    "negative_data_rejection": {
        "expected-statuses": [
            "400",
            "401",
            "403",
            "404",
            "405",
            "406",
            "409",
            "413",
            "415",
            "422",
            "428",
            "429",
            "5xx",
        ]
    },
}
SPEC = Path(__file__).parents[2] / "docs" / "openapi.yaml"


def schema_as(user: str, role: str) -> Any:
    """The contract, with a caller's token given to schemathesis itself (so that a request it
    sends without one, on purpose, stays without one)."""
    token = DEV_ISSUER.mint(user=user, roles=[role], tenant="demo")
    config = SchemathesisConfig.from_dict(
        {"checks": CHECKS, "auth": {"openapi": {"bearer": {"bearer": token}}}}
    )
    return schemathesis.openapi.from_path(SPEC, config=config)


AS_ADMIN = schema_as("admin-1", "admin")
AS_STUDENT = schema_as("student-1", "student")
FUZZ = settings(
    max_examples=40,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    # The stack trusts the test session's development issuer, which minted the tokens above.
    env = {**QUIET_TIMER, "AUTH_DEV_JWKS_FILE": str(DEV_ISSUER.jwks_file)}
    with local_stack(state_dir=tmp_path_factory.mktemp("fuzz"), extra_env=env) as running:
        yield running


@pytest.fixture(scope="module")
def existing(stack) -> list[str]:
    """Bookings that exist, so that actions generated as valid act on real ones."""
    made = []
    for n in range(12):
        start = (datetime.now(UTC) + timedelta(days=3, hours=n)).replace(microsecond=0)
        body = {
            "subject": "Maths",
            "startDateTime": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "endDateTime": (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "timeZone": "Europe/London",
            "participants": [
                {"userId": "student-1", "role": "student", "email": "student@example.com"}
            ],
        }
        response = requests.post(
            f"{stack.api}/v1/bookings",
            json=body,
            headers={
                "Authorization": "Bearer "
                + DEV_ISSUER.mint(user="admin-1", roles=["admin"], tenant="demo")
            },
            timeout=10,
        )
        made.append(response.json()["id"])
    return made


def in_range(case: Any, existing: list[str], secret: str) -> None:
    """Move the relative rules of a request generated as valid into range (see above)."""
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return
    if case.path == "/v1/payments/webhook":
        # A valid webhook request is one Stripe signed: sign the exact bytes that are sent
        # (unless the header was left out on purpose, or another part made invalid).
        if "Stripe-Signature" not in (case.headers or {}) or any(
            c.mode.is_negative for c in case.meta.components.values()
        ):
            return
        # What requests sends for a JSON body (json.dumps with its defaults, UTF-8).
        payload = json.dumps(case.body, allow_nan=False).encode()
        case.headers = {**(case.headers or {}), "Stripe-Signature": signature(payload, secret)}
        return
    query = case.query
    if case.path == "/v1/bookings" and isinstance(query, dict) and "pageToken" in query:
        # A token as the list gives out, after some booking, for the filters being sent.
        unpaged = {k: str(v) for k, v in query.items() if k != "pageToken"}
        request = func.HttpRequest("GET", "/api/v1/bookings", params=unpaged, body=b"")
        try:
            filters, participant = booking_query(request)
        except ValidationError:
            return
        page = BookingPage([a_booking()], more=True)
        query["pageToken"] = next_page_token(page, filters, participant)
    if case.path_parameters and "id" in case.path_parameters:
        case.path_parameters["id"] = existing[hash(str(case.body)) % len(existing)]
    body = case.body
    if not isinstance(body, dict):
        return
    if case.path == "/v1/tutors/{id}/meeting-preferences":
        for name in body:
            body[name] = None
    if "startDateTime" in body and "endDateTime" in body:
        start = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
        body["startDateTime"] = start.strftime("%Y-%m-%dT%H:%M:%SZ")
        body["endDateTime"] = (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    if "timeZone" in body:
        body["timeZone"] = "Europe/London"
    people = body.get("participants")
    if isinstance(people, list):
        for index, person in enumerate(people):
            if isinstance(person, dict):
                person["userId"] = f"user-{index}"
    if case.headers and "Idempotency-Key" in case.headers:
        case.headers["Idempotency-Key"] = uuid.uuid4().hex  # a fresh key per booking meant


SEEN: Counter[tuple[str, int]] = Counter()


@pytest.fixture(scope="module", autouse=True)
def figures():
    """Print what the fuzzer sent and got, per operation and status (for the record)."""
    yield
    lines = [f"  {op} -> {status}: {n}" for (op, status), n in sorted(SEEN.items())]
    total = sum(SEEN.values())
    print(f"\ncontract fuzzing: {total} requests\n" + "\n".join(lines))


@AS_ADMIN.parametrize()
@FUZZ
def test_the_api_keeps_its_contract_for_an_admin(case, stack, existing):
    check(case, stack, existing)


@AS_STUDENT.parametrize()
@FUZZ
def test_the_api_keeps_its_contract_for_a_student(case, stack, existing):
    check(case, stack, existing)


def check(case: Any, stack: Any, existing: list[str]) -> None:
    in_range(case, existing, stack.env["STRIPE_WEBHOOK_SECRET"])
    response = case.call_and_validate(base_url=stack.api)
    SEEN[(f"{case.method} {case.path}", response.status_code)] += 1
