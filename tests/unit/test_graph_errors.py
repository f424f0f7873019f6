"""Every Graph failure becomes one precise, typed error; Retry-After is read to the fraction."""

from __future__ import annotations

import email.utils

import pytest

from shared.graph.errors import (
    GraphAuthError,
    GraphForbiddenError,
    GraphInvalidRequestError,
    GraphNotFoundError,
    GraphPolicyMissingError,
    GraphThrottledError,
    GraphTransientError,
    classify_response,
    parse_retry_after,
)


def graph_body(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message, "innerError": {"request-id": "r-1"}}}


@pytest.mark.parametrize(
    ("status", "message", "expected", "retryable"),
    [
        (429, "Too many requests", GraphThrottledError, True),
        (503, "Service unavailable", GraphTransientError, True),
        (504, "Gateway timeout", GraphTransientError, True),
        (500, "Internal", GraphTransientError, True),
        (401, "InvalidAuthenticationToken", GraphAuthError, False),
        (403, "No application access policy found for this app.", GraphPolicyMissingError, False),
        (403, "Insufficient privileges to complete the operation.", GraphForbiddenError, False),
        (404, "The specified meeting was not found.", GraphNotFoundError, False),
        (400, "Invalid startDateTime", GraphInvalidRequestError, False),
        (409, "Conflict", GraphInvalidRequestError, False),
    ],
)
def test_status_decides_the_error_class(status, message, expected, retryable):
    error = classify_response(status, {}, graph_body("Code", message), operation="create")

    assert type(error) is expected
    assert error.retryable is retryable
    assert error.status == status
    assert error.request_id == "r-1"


def test_policy_missing_is_still_a_forbidden_error():
    error = classify_response(
        403,
        {},
        graph_body("Forbidden", "No application access policy found for this app."),
        operation="create",
    )

    assert isinstance(error, GraphForbiddenError)
    assert error.code == "graph_policy_missing"


def test_a_body_that_is_not_graphs_still_classifies():
    error = classify_response(502, {}, "<html>bad gateway</html>", operation="update")

    assert isinstance(error, GraphTransientError)
    assert "502" in error.message


def test_throttling_carries_a_fractional_retry_after():
    error = classify_response(429, {"Retry-After": "2.128"}, {}, operation="create")

    assert error.retry_after == pytest.approx(2.128)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("3", 3.0),
        ("0.5", 0.5),
        ("  7.25 ", 7.25),
        ("-4", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("nan", None),
    ],
)
def test_parse_retry_after_seconds(header, expected):
    assert parse_retry_after(header) == expected


def test_parse_retry_after_http_date():
    now = 1_700_000_000.0
    header = email.utils.formatdate(now + 30, usegmt=True)

    assert parse_retry_after(header, now=now) == pytest.approx(30.0)


def test_an_absurd_retry_after_is_capped_at_what_a_queue_can_wait():
    assert parse_retry_after("1e12") == 7 * 24 * 3600.0
