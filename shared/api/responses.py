"""JSON responses, the endpoint wrapper, and the one place where errors become HTTP statuses."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import azure.functions as func

from shared import telemetry
from shared.observability import log_event

if TYPE_CHECKING:
    from shared.auth.principal import Principal

logger = logging.getLogger("meetings.api")


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> func.HttpResponse:
    return func.HttpResponse(
        body=json.dumps(body, separators=(",", ":"), default=str),
        status_code=status,
        headers={"Cache-Control": "no-store", **(headers or {})},
        mimetype="application/json",
        charset="utf-8",
    )


def error_response(
    status: int, message: str, code: str, headers: dict[str, str] | None = None
) -> func.HttpResponse:
    return json_response({"error": message, "code": code}, status, headers)


def _status_for(exc: Exception) -> tuple[int, str, str, dict[str, str]]:
    """(status, message, code, headers) for an exception a handler raised: what the error says
    of itself. An error that answers 500, or that is not the app's, says only "Internal error"."""
    # Imported here so that answering a request that succeeds costs none of these imports (an
    # AppError that was raised has loaded shared.errors already).
    from shared.errors import AppError

    if isinstance(exc, AppError) and exc.http_status != 500:
        return exc.http_status, exc.public_message, exc.code, dict(exc.headers)
    return 500, "Internal error", "internal_error", {}


def _refusal_level(exc: Exception) -> int:
    from shared.payments.events import WebhookError

    # A webhook that is not Stripe's is someone probing the endpoint (or a wrong secret).
    return logging.WARNING if isinstance(exc, WebhookError) else logging.INFO


def route_of(req: func.HttpRequest) -> str:
    """The request's path as its route template (`/api/v1/bookings/{id}`): one name per route,
    not one per booking id, for span names and the `request_failed` log."""
    path = str(urlsplit(req.url).path)
    for name, value in (req.route_params or {}).items():
        path = path.replace(f"/{value}", f"/{{{name}}}")
    return path


def _fail(req: func.HttpRequest, exc: Exception) -> func.HttpResponse:
    status, message, code, headers = _status_for(exc)
    log_event(
        logger,
        logging.ERROR if status >= 500 else _refusal_level(exc),
        "request_failed",
        route=route_of(req),
        method=req.method,
        status=status,
        code=code,
        errorType=type(exc).__name__,
    )
    if status == 500:
        logger.error("unhandled error", exc_info=exc)
    return error_response(status, message, code, headers)


@contextlib.contextmanager
def _request_span(
    req: func.HttpRequest,
) -> Iterator[Callable[[func.HttpResponse], func.HttpResponse]]:
    """The request's server span (with telemetry on): the trace its work continues."""
    name = f"{req.method} {route_of(req)}"
    with telemetry.span(name, kind="server", **{"http.method": req.method}):

        def answered(response: func.HttpResponse) -> func.HttpResponse:
            telemetry.annotate(**{"http.status_code": response.status_code})
            return response

        yield answered


def _named_like(wrapper: Callable[..., Any], handler: Callable[..., Any]) -> None:
    # Not functools.wraps: the host binds parameters by the visible signature, which must
    # stay (req) rather than the handler's (req, caller).
    wrapper.__name__ = handler.__name__
    wrapper.__qualname__ = handler.__qualname__
    wrapper.__doc__ = handler.__doc__


def anonymous(
    handler: Callable[[func.HttpRequest], func.HttpResponse],
) -> Callable[[func.HttpRequest], func.HttpResponse]:
    """Map every exception the handler raises to `{"error", "code"}` with its status."""

    def run(req: func.HttpRequest) -> func.HttpResponse:
        with _request_span(req) as answered:
            try:
                return answered(handler(req))
            except Exception as exc:
                return answered(_fail(req, exc))

    _named_like(run, handler)
    return run


def authenticated(
    handler: Callable[[func.HttpRequest, Principal], func.HttpResponse],
) -> Callable[[func.HttpRequest], func.HttpResponse]:
    """Authenticate the bearer token, then run the handler with the caller; map errors."""

    def run(req: func.HttpRequest) -> func.HttpResponse:
        from shared.bootstrap import services

        with _request_span(req) as answered:
            try:
                caller = services().tokens.authenticate(req.headers.get("Authorization"))
                return answered(handler(req, caller))
            except Exception as exc:
                return answered(_fail(req, exc))

    _named_like(run, handler)
    return run
