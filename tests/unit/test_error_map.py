"""Every error the app raises on purpose is an `AppError` that says its own HTTP status and code,
and the endpoint wrapper answers each exactly as the isinstance chain it replaced did: `EXPECTED`
was taken from that chain, run on a representative of every error class."""

from __future__ import annotations

import importlib
import json
import pkgutil
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import azure.functions as func
import pytest

import functions
import shared
from localdev.graph_emulator import Fault
from shared.api.responses import anonymous
from shared.api.validation import ValidationError
from shared.auth.principal import Principal, Role
from shared.auth.tokens import AuthError, InvalidTokenError
from shared.domain.booking import IllegalTransitionError, MeetingStatus
from shared.domain.subject import TemplateError
from shared.errors import AppError
from shared.graph import errors as graph
from shared.mail.messages import BadAddressError
from shared.mail.transports import (
    MailError,
    MailRecipientRefusedError,
    MailRejectedError,
    MailTransientError,
)
from shared.meetings.steps import TeamsNotConfiguredError, TeamsUnavailableError
from shared.payments.events import (
    PayloadError,
    PayloadTooLargeError,
    SignatureError,
    WebhookError,
)
from shared.services import bookings as use_cases
from shared.services.access import ForbiddenError
from shared.services.bookings import Approval, IdempotencyKeyReusedError, MeetingGenerationError
from shared.services.check_meetings import CheckBacklogError
from shared.services.replay import ReplayError
from shared.services.tutor_preferences import PreferenceNotAllowed
from shared.settings import SettingsError
from shared.storage import errors as storage
from shared.storage.queues import BadMessageError
from shared.work.policy import RetryPolicy
from tests.builders import a_booking
from tests.memory_world import TENANT, MemoryWorld, memory_world

GRAPH_ERRORS: tuple[type[graph.GraphError], ...] = (
    graph.GraphError,
    graph.GraphThrottledError,
    graph.GraphTransientError,
    graph.GraphTimeoutError,
    graph.GraphMeetingVanishingError,
    graph.GraphInconsistentError,
    graph.GraphAuthError,
    graph.GraphForbiddenError,
    graph.GraphPolicyMissingError,
    graph.GraphNotFoundError,
    graph.GraphInvalidRequestError,
)


def representatives() -> dict[str, Exception]:
    """One instance of every error class (more where the answer depends on what it carries)."""
    cases: dict[str, Exception] = {}
    for cls in GRAPH_ERRORS:
        cases[cls.__name__] = cls("Graph said no", status=418)
        cases[f"MeetingGenerationError({cls.__name__})"] = MeetingGenerationError(
            cls("Graph said no", status=418)
        )
    for cls in (graph.GraphThrottledError, graph.GraphTransientError, graph.GraphAuthError):
        for wait in (0.0, 0.2, 7.6):
            cases[f"MeetingGenerationError({cls.__name__}, retry_after={wait})"] = (
                MeetingGenerationError(cls("Graph said no", retry_after=wait))
            )
    not_configured = "Teams meetings are not configured for this tenant"
    cases["TeamsNotConfiguredError"] = TeamsNotConfiguredError(not_configured)
    cases["MeetingGenerationError(TeamsNotConfiguredError)"] = MeetingGenerationError(
        TeamsNotConfiguredError("the meeting's organizer is not known")
    )
    cases["TeamsUnavailableError"] = TeamsUnavailableError("not_configured")
    cases["StorageError"] = storage.StorageError("booking b-1: transaction failed (x)")
    cases["NotFoundError"] = storage.NotFoundError("booking b-1 was not found")
    cases["AlreadyExistsError"] = storage.AlreadyExistsError("booking b-1 already exists")
    cases["ConcurrencyError"] = storage.ConcurrencyError("booking b-1 was changed by someone else")
    cases["InvalidKeyError"] = storage.InvalidKeyError("bookingId holds a forbidden character")
    cases["SchemaError"] = storage.SchemaError("booking b-1 has no start")
    cases["StorageUnavailableError"] = storage.StorageUnavailableError("storage unreachable")
    cases["BadMessageError"] = BadMessageError("the message is not JSON")
    cases["MailError"] = MailError("not sent", "mail_failed")
    cases["MailTransientError"] = MailTransientError("slow down", "mail_throttled", 3.0)
    cases["MailRejectedError"] = MailRejectedError("refused", "mail_forbidden")
    cases["MailRecipientRefusedError"] = MailRecipientRefusedError("no", "bad_address")
    cases["BadAddressError"] = BadAddressError("not an address mail can go to: 'x'")
    cases["WebhookError"] = WebhookError("not a webhook")
    cases["SignatureError"] = SignatureError("Stripe-Signature is missing")
    cases["PayloadError"] = PayloadError("not an event")
    cases["PayloadTooLargeError"] = PayloadTooLargeError("too large")
    cases["ValidationError"] = ValidationError("start is required")
    cases["ValidationError(415)"] = ValidationError("send JSON", "unsupported_media_type", 415)
    cases["AuthError"] = AuthError("Missing bearer token")
    cases["InvalidTokenError"] = InvalidTokenError("The token has expired")
    cases["ForbiddenError"] = ForbiddenError()
    cases["ForbiddenError(message, code)"] = ForbiddenError("Only staff may", "not_staff")
    cases["IllegalTransitionError"] = IllegalTransitionError(
        "Cannot approve a cancelled booking", "booking_not_confirmed"
    )
    cases["IdempotencyKeyReusedError"] = IdempotencyKeyReusedError()
    cases["ReplayError"] = ReplayError("booking b-1 of tenant t-1 does not exist")
    cases["CheckBacklogError"] = CheckBacklogError("10 check meetings are still to be removed")
    cases["TemplateError"] = TemplateError("subjectTemplate is empty")
    cases["PreferenceNotAllowed"] = PreferenceNotAllowed(
        "recordAutomatically true is not allowed by the tenant (tutors cannot set it)"
    )
    cases["SettingsError"] = SettingsError(
        ["AzureWebJobsStorage is required", "GRAPH_TIMEOUT_SECONDS: not a number"]
    )
    cases["ValueError"] = ValueError("x")
    cases["Exception"] = Exception("x")
    return cases


# (status, code, message, headers besides Cache-Control), as the isinstance chain answered.
EXPECTED: dict[str, tuple[int, str, str, dict[str, str]]] = {
    "GraphError": (
        502,
        "graph_error",
        "Microsoft Graph refused the request: Graph said no",
        {},
    ),
    "MeetingGenerationError(GraphError)": (
        502,
        "graph_error",
        (
            "The Teams meeting could not be generated, but Microsoft Graph refused the request "
            "(graph_error). It will not be retried automatically."
        ),
        {},
    ),
    "GraphThrottledError": (
        502,
        "graph_throttled",
        "Microsoft Graph refused the request: Graph said no",
        {},
    ),
    "MeetingGenerationError(GraphThrottledError)": (
        503,
        "graph_throttled",
        (
            "The Teams meeting could not be generated, but Microsoft Teams is throttling "
            "requests (HTTP 429). It will be retried automatically."
        ),
        {"Retry-After": "5"},
    ),
    "GraphTransientError": (
        502,
        "graph_unavailable",
        "Microsoft Graph refused the request: Graph said no",
        {},
    ),
    "MeetingGenerationError(GraphTransientError)": (
        503,
        "graph_unavailable",
        (
            "The Teams meeting could not be generated, but Microsoft Teams was unavailable "
            "(HTTP 418). It will be retried automatically."
        ),
        {"Retry-After": "5"},
    ),
    "GraphTimeoutError": (
        502,
        "graph_timeout",
        "Microsoft Graph refused the request: Graph said no",
        {},
    ),
    "MeetingGenerationError(GraphTimeoutError)": (
        503,
        "graph_timeout",
        (
            "The Teams meeting could not be generated, but Microsoft Teams did not answer in "
            "time. It will be retried automatically."
        ),
        {"Retry-After": "5"},
    ),
    "GraphMeetingVanishingError": (
        502,
        "graph_meeting_vanishing",
        "Microsoft Graph refused the request: Graph said no",
        {},
    ),
    "MeetingGenerationError(GraphMeetingVanishingError)": (
        502,
        "graph_meeting_vanishing",
        (
            "The Teams meeting could not be generated, but Microsoft Graph refused the request "
            "(graph_meeting_vanishing). It will not be retried automatically."
        ),
        {},
    ),
    "GraphInconsistentError": (
        502,
        "graph_inconsistent",
        "Microsoft Graph refused the request: Graph said no",
        {},
    ),
    "MeetingGenerationError(GraphInconsistentError)": (
        503,
        "graph_inconsistent",
        (
            "The Teams meeting could not be generated, but Microsoft Teams said the meeting was"
            " not found, though it still has it. It will be retried automatically."
        ),
        {"Retry-After": "5"},
    ),
    "GraphAuthError": (
        502,
        "graph_unauthorized",
        "Microsoft Graph refused the request: Graph said no",
        {},
    ),
    "MeetingGenerationError(GraphAuthError)": (
        502,
        "graph_unauthorized",
        (
            "The Teams meeting could not be generated, but the app could not sign in to "
            "Microsoft Graph (check the client id, secret and admin consent; see "
            "docs/integrations/teams-meetings-setup.md). It will not be retried automatically."
        ),
        {},
    ),
    "GraphForbiddenError": (
        502,
        "graph_forbidden",
        "Microsoft Graph refused the request: Graph said no",
        {},
    ),
    "MeetingGenerationError(GraphForbiddenError)": (
        502,
        "graph_forbidden",
        (
            "The Teams meeting could not be generated, but Microsoft Graph denied the "
            "permission it needs (see docs/integrations/teams-meetings-setup.md). It will not "
            "be retried automatically."
        ),
        {},
    ),
    "GraphPolicyMissingError": (
        502,
        "graph_policy_missing",
        "Microsoft Graph refused the request: Graph said no",
        {},
    ),
    "MeetingGenerationError(GraphPolicyMissingError)": (
        502,
        "graph_policy_missing",
        (
            "The Teams meeting could not be generated, but Microsoft Teams refused to act for "
            "the organizer: no Teams Application Access Policy grants this app that user (see "
            "docs/integrations/teams-meetings-setup.md). It will not be retried automatically."
        ),
        {},
    ),
    "GraphNotFoundError": (
        502,
        "graph_not_found",
        "Microsoft Graph refused the request: Graph said no",
        {},
    ),
    "MeetingGenerationError(GraphNotFoundError)": (
        502,
        "graph_not_found",
        (
            "The Teams meeting could not be generated, but Microsoft Graph did not find the "
            "meeting organizer. It will not be retried automatically."
        ),
        {},
    ),
    "GraphInvalidRequestError": (
        502,
        "graph_invalid_request",
        "Microsoft Graph refused the request: Graph said no",
        {},
    ),
    "MeetingGenerationError(GraphInvalidRequestError)": (
        502,
        "graph_invalid_request",
        (
            "The Teams meeting could not be generated, but Microsoft Graph refused the request "
            "(graph_invalid_request). It will not be retried automatically."
        ),
        {},
    ),
    "MeetingGenerationError(GraphThrottledError, retry_after=0.0)": (
        503,
        "graph_throttled",
        (
            "The Teams meeting could not be generated, but Microsoft Teams is throttling "
            "requests (HTTP 429). It will be retried automatically."
        ),
        {"Retry-After": "5"},
    ),
    "MeetingGenerationError(GraphThrottledError, retry_after=0.2)": (
        503,
        "graph_throttled",
        (
            "The Teams meeting could not be generated, but Microsoft Teams is throttling "
            "requests (HTTP 429). It will be retried automatically."
        ),
        {"Retry-After": "1"},
    ),
    "MeetingGenerationError(GraphThrottledError, retry_after=7.6)": (
        503,
        "graph_throttled",
        (
            "The Teams meeting could not be generated, but Microsoft Teams is throttling "
            "requests (HTTP 429). It will be retried automatically."
        ),
        {"Retry-After": "8"},
    ),
    "MeetingGenerationError(GraphTransientError, retry_after=0.0)": (
        503,
        "graph_unavailable",
        (
            "The Teams meeting could not be generated, but Microsoft Teams was unavailable. It "
            "will be retried automatically."
        ),
        {"Retry-After": "5"},
    ),
    "MeetingGenerationError(GraphTransientError, retry_after=0.2)": (
        503,
        "graph_unavailable",
        (
            "The Teams meeting could not be generated, but Microsoft Teams was unavailable. It "
            "will be retried automatically."
        ),
        {"Retry-After": "1"},
    ),
    "MeetingGenerationError(GraphTransientError, retry_after=7.6)": (
        503,
        "graph_unavailable",
        (
            "The Teams meeting could not be generated, but Microsoft Teams was unavailable. It "
            "will be retried automatically."
        ),
        {"Retry-After": "8"},
    ),
    "MeetingGenerationError(GraphAuthError, retry_after=0.0)": (
        502,
        "graph_unauthorized",
        (
            "The Teams meeting could not be generated, but the app could not sign in to "
            "Microsoft Graph (check the client id, secret and admin consent; see "
            "docs/integrations/teams-meetings-setup.md). It will not be retried automatically."
        ),
        {},
    ),
    "MeetingGenerationError(GraphAuthError, retry_after=0.2)": (
        502,
        "graph_unauthorized",
        (
            "The Teams meeting could not be generated, but the app could not sign in to "
            "Microsoft Graph (check the client id, secret and admin consent; see "
            "docs/integrations/teams-meetings-setup.md). It will not be retried automatically."
        ),
        {},
    ),
    "MeetingGenerationError(GraphAuthError, retry_after=7.6)": (
        502,
        "graph_unauthorized",
        (
            "The Teams meeting could not be generated, but the app could not sign in to "
            "Microsoft Graph (check the client id, secret and admin consent; see "
            "docs/integrations/teams-meetings-setup.md). It will not be retried automatically."
        ),
        {},
    ),
    "TeamsNotConfiguredError": (
        502,
        "teams_unavailable",
        ("Microsoft Graph refused the request: Teams meetings are not configured for this tenant"),
        {},
    ),
    "MeetingGenerationError(TeamsNotConfiguredError)": (
        502,
        "teams_unavailable",
        (
            "The Teams meeting could not be generated, but Teams meetings are not configured "
            "for this tenant any more. It will not be retried automatically."
        ),
        {},
    ),
    "TeamsUnavailableError": (
        409,
        "teams_unavailable",
        "Teams meetings are not available for this tenant (not_configured)",
        {},
    ),
    "StorageError": (
        500,
        "internal_error",
        "Internal error",
        {},
    ),
    "NotFoundError": (
        404,
        "not_found",
        "Booking not found",
        {},
    ),
    "AlreadyExistsError": (
        500,
        "internal_error",
        "Internal error",
        {},
    ),
    "ConcurrencyError": (
        409,
        "conflict",
        "The booking was changed by someone else; reload and try again",
        {},
    ),
    "InvalidKeyError": (
        400,
        "invalid_id",
        "bookingId holds a forbidden character",
        {},
    ),
    "SchemaError": (
        500,
        "internal_error",
        "Internal error",
        {},
    ),
    "StorageUnavailableError": (
        503,
        "storage_unavailable",
        "Storage is unavailable; try again shortly",
        {"Retry-After": "5"},
    ),
    "BadMessageError": (
        500,
        "internal_error",
        "Internal error",
        {},
    ),
    "MailError": (
        500,
        "internal_error",
        "Internal error",
        {},
    ),
    "MailTransientError": (
        500,
        "internal_error",
        "Internal error",
        {},
    ),
    "MailRejectedError": (
        500,
        "internal_error",
        "Internal error",
        {},
    ),
    "MailRecipientRefusedError": (
        500,
        "internal_error",
        "Internal error",
        {},
    ),
    "BadAddressError": (
        500,
        "internal_error",
        "Internal error",
        {},
    ),
    "WebhookError": (
        400,
        "invalid_webhook",
        "not a webhook",
        {},
    ),
    "SignatureError": (
        400,
        "invalid_signature",
        "Stripe-Signature is missing",
        {},
    ),
    "PayloadError": (
        400,
        "invalid_payload",
        "not an event",
        {},
    ),
    "PayloadTooLargeError": (
        413,
        "body_too_large",
        "too large",
        {},
    ),
    "ValidationError": (
        400,
        "invalid_request",
        "start is required",
        {},
    ),
    "ValidationError(415)": (
        415,
        "unsupported_media_type",
        "send JSON",
        {},
    ),
    "AuthError": (
        401,
        "unauthenticated",
        "Missing bearer token",
        {"WWW-Authenticate": 'Bearer error="invalid_token"'},
    ),
    "InvalidTokenError": (
        401,
        "invalid_token",
        "The token has expired",
        {"WWW-Authenticate": 'Bearer error="invalid_token"'},
    ),
    "ForbiddenError": (
        403,
        "forbidden",
        "Unauthorized",
        {},
    ),
    "ForbiddenError(message, code)": (
        403,
        "not_staff",
        "Only staff may",
        {},
    ),
    "PreferenceNotAllowed": (
        400,
        "preference_not_allowed",
        "recordAutomatically true is not allowed by the tenant (tutors cannot set it)",
        {},
    ),
    "IllegalTransitionError": (
        409,
        "booking_not_confirmed",
        "Cannot approve a cancelled booking",
        {},
    ),
    "IdempotencyKeyReusedError": (
        422,
        "idempotency_key_reused",
        (
            "This Idempotency-Key was already used for a different booking request; use a new "
            "key for a new booking"
        ),
        {},
    ),
    "ReplayError": (
        500,
        "internal_error",
        "Internal error",
        {},
    ),
    "CheckBacklogError": (
        500,
        "internal_error",
        "Internal error",
        {},
    ),
    "TemplateError": (
        500,
        "internal_error",
        "Internal error",
        {},
    ),
    "SettingsError": (
        503,
        "misconfigured",
        (
            "The service is misconfigured: check the app settings AzureWebJobsStorage, "
            "GRAPH_TIMEOUT_SECONDS"
        ),
        {"Retry-After": "60"},
    ),
    "ValueError": (
        500,
        "internal_error",
        "Internal error",
        {},
    ),
    "Exception": (
        500,
        "internal_error",
        "Internal error",
        {},
    ),
}


def answer(exc: Exception) -> tuple[int, str, str, dict[str, str]]:
    """What a caller gets when a handler raises `exc`."""

    def handler(req: func.HttpRequest) -> func.HttpResponse:
        raise exc

    request = func.HttpRequest("GET", "http://localhost/api/v1/things", body=b"")
    response = anonymous(handler)(request)
    body = json.loads(response.get_body())
    headers = {k: v for k, v in response.headers.items() if k.lower() != "cache-control"}
    return response.status_code, body["code"], body["error"], headers


def app_errors(base: type[AppError]) -> Iterator[type[AppError]]:
    for cls in base.__subclasses__():
        yield cls
        yield from app_errors(cls)


def every_app_error() -> set[type[AppError]]:
    for package in (shared, functions):
        for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            importlib.import_module(module.name)
    return set(app_errors(AppError))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_error_answers_over_http_as_it_did_before_the_error_base(name):
    # GIVEN a handler that raises a representative of an error class
    exc = representatives()[name]

    # WHEN the endpoint wrapper answers for it
    # THEN the caller gets the status, code, message and headers the isinstance chain gave
    assert answer(exc) == EXPECTED[name]


def test_every_representative_has_its_expected_answer_and_back():
    assert sorted(representatives()) == sorted(EXPECTED)


def test_every_app_error_of_the_project_has_a_representative_a_status_and_a_code():
    # GIVEN every module of the app imported, and one instance of every error class
    errors = every_app_error()
    shown = {type(exc): exc for exc in representatives().values()}

    # THEN each AppError subclass is shown above, so that its HTTP answer is pinned
    assert sorted(cls.__name__ for cls in errors - set(shown)) == []
    # AND it answers with an error status and a code of its own
    for cls in errors:
        exc = shown[cls]
        assert isinstance(exc, AppError)
        assert 400 <= exc.http_status <= 599, cls
        assert exc.code, cls
        assert exc.code != "internal_error", cls


def test_teams_not_configured_is_a_fact_of_the_tenant_recorded_like_a_graph_error():
    # GIVEN a step that finds the tenant without Teams set up
    error = TeamsNotConfiguredError("the tenant has no Microsoft profile any more")

    # THEN it is no Graph error (a handler of Graph's errors does not take it for one)
    assert not isinstance(error, graph.GraphError)
    # AND it carries what recording a failed step reads: not worth repeating, no Graph status
    assert (error.code, error.retryable, error.retry_after, error.status) == (
        "teams_unavailable",
        False,
        None,
        None,
    )


STAFF = Principal("staff-1", TENANT, frozenset({Role.STAFF}))


def a_booking_whose_create_failed_once(world: MemoryWorld, status: int) -> str:
    """Approved while Graph answered the create with `status`: the create is due again later
    (in doubt after a 503, for the organizer it was sent for; after a 429, not)."""
    world.emulator.add_fault(Fault(operation="createOrGet", status=status, count=1))
    start = world.clock.now + timedelta(days=3)
    booking = world.bookings.add(
        a_booking(tenant_id=TENANT, start=start, end=start + timedelta(hours=1))
    )
    use_cases.approve_booking(STAFF, booking.booking_id, Approval(), world.deps)
    return booking.booking_id


@pytest.mark.parametrize(
    ("status", "change"),
    [
        # the create step itself finds no profile
        pytest.param(503, {"microsoft": None}, id="in-doubt-no-microsoft-profile"),
        # choosing the organizer finds Teams unavailable
        pytest.param(429, {"microsoft": None}, id="no-microsoft-profile"),
        pytest.param(429, {"organizer_upn": None, "organizer_object_id": None}, id="no-organizer"),
    ],
)
def test_a_tenant_without_teams_fails_the_meeting_work_as_not_worth_repeating(status, change):
    with memory_world(policy=RetryPolicy(rounds=(30.0,))) as world:
        # GIVEN a meeting create that is due again
        booking_id = a_booking_whose_create_failed_once(world, status)
        calls = world.emulator.calls["createOrGet"]
        # AND its tenant no longer has Teams set up
        world.tenants.update(replace(world.tenants.get(TENANT), **change))

        # WHEN the worker takes the work
        world.drain()

        # THEN Graph is not called again, the meeting fails at once as teams_unavailable
        assert world.emulator.calls["createOrGet"] == calls
        meeting = world.booking(booking_id).meeting
        assert (meeting.status, meeting.last_error_code) == (
            MeetingStatus.FAILED,
            "teams_unavailable",
        )
        # AND the work is poisoned as permanent, with no Graph status
        (poisoned,) = world.queue.poisoned
        assert (poisoned.reason, poisoned.error_code, poisoned.graph_status) == (
            "permanent",
            "teams_unavailable",
            None,
        )
