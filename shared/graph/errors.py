"""One error tree for Microsoft Graph (and the login that precedes it).

Services branch on the type (`GraphPolicyMissingError`, `retryable`), never on message text;
`classify_response` is the one place that reads Graph's answers to choose the type.
"""

from __future__ import annotations

import email.utils
import time
from typing import Any

from shared.errors import AppError


class GraphError(AppError):
    """A Graph call failed. `code` is our machine code, stable for API clients; `status` is the
    status Graph answered with, and `http_status` (502) the one our caller gets."""

    http_status = 502
    code = "graph_error"
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        graph_code: str | None = None,
        retry_after: float | None = None,
        request_id: str | None = None,
        sent: bool = True,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.graph_code = graph_code
        self.retry_after = retry_after
        self.request_id = request_id
        # False when the failure came before the Graph request could reach Graph (sign-in,
        # connecting): nothing can have been carried out.
        self.sent = sent

    def __str__(self) -> str:
        status = f"{self.status} " if self.status is not None else ""
        graph = f" [{self.graph_code}]" if self.graph_code else ""
        return f"{status}{self.code}{graph}: {self.message}"

    @property
    def public_message(self) -> str:
        return f"Microsoft Graph refused the request: {self.message}"


class GraphThrottledError(GraphError):
    """429: too many requests. Wait `retry_after` seconds (fractional) before trying again."""

    code = "graph_throttled"
    retryable = True


class GraphTransientError(GraphError):
    """5xx, timeouts and connection failures: worth another try after a back-off."""

    code = "graph_unavailable"
    retryable = True


class GraphTimeoutError(GraphTransientError):
    code = "graph_timeout"


class GraphMeetingVanishingError(GraphError):
    """Every meeting made for this work is soon missing from Teams again: Graph is not keeping
    what it makes. Retrying would make meetings without end, so a person looks."""

    code = "graph_meeting_vanishing"


class GraphInconsistentError(GraphTransientError):
    """Graph answered 404 for a meeting that a GET right after still finds: not gone, and
    worth another try."""

    code = "graph_inconsistent"


class GraphAuthError(GraphError):
    """401, or the app could not get a token: wrong client id, secret, tenant or consent."""

    code = "graph_unauthorized"


class GraphForbiddenError(GraphError):
    """403: the app lacks a permission (or admin consent) for this call."""

    code = "graph_forbidden"


class GraphPolicyMissingError(GraphForbiddenError):
    """403 because no Teams Application Access Policy grants the app this organizer."""

    code = "graph_policy_missing"


class GraphNotFoundError(GraphError):
    """404: the user or meeting does not exist."""

    code = "graph_not_found"


class GraphInvalidRequestError(GraphError):
    """400 and other 4xx: the request itself is wrong; repeating it will not help."""

    code = "graph_invalid_request"


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta seconds (may be fractional) or a date."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        seconds = moment.timestamp() - (time.time() if now is None else now)
    if seconds != seconds or seconds == float("inf"):  # NaN or infinity
        return None
    # Nothing waits longer than a queue message can (7 days): an absurd header is not obeyed.
    return min(max(0.0, seconds), MAX_RETRY_AFTER_SECONDS)


MAX_RETRY_AFTER_SECONDS = 7 * 24 * 3600.0

# Failures an admin of the tenant must fix (credential, consent, access policy, organizer),
# not one booking: the tenant's credential check alerts on them once for the tenant.
TENANT_CAUSED_CODES = frozenset(
    {
        GraphAuthError.code,
        GraphForbiddenError.code,
        GraphPolicyMissingError.code,
        GraphNotFoundError.code,
    }
)
_POLICY_MISSING_MARKER = "application access policy"


def classify_response(status: int, headers: Any, body: Any, *, operation: str) -> GraphError:
    """Build the error for a failed Graph response (status >= 400)."""
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    graph_code = str(error.get("code") or "") or None
    message = str(error.get("message") or "") or f"Graph answered {status} to {operation}"
    inner = error.get("innerError") or error.get("innererror") or {}
    request_id = headers.get("request-id") or (
        inner.get("request-id") if isinstance(inner, dict) else None
    )
    retry_after = parse_retry_after(headers.get("Retry-After"))
    kwargs: dict[str, Any] = {
        "status": status,
        "graph_code": graph_code,
        "retry_after": retry_after,
        "request_id": request_id,
    }
    cls: type[GraphError]
    if status == 429:
        cls = GraphThrottledError
    elif status >= 500 or status == 408:
        cls = GraphTransientError
    elif status == 401:
        cls = GraphAuthError
    elif status == 403:
        cls = (
            GraphPolicyMissingError
            if _POLICY_MISSING_MARKER in message.lower()
            else GraphForbiddenError
        )
    elif status == 404:
        cls = GraphNotFoundError
    else:
        cls = GraphInvalidRequestError
    return cls(message, **kwargs)
