"""JSON responses, and the single place where errors become HTTP statuses."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import azure.functions as func

from shared.observability import log_event

logger = logging.getLogger("meetings.api")

_JSON = "application/json; charset=utf-8"


class ApiError(Exception):
    """An error meant for the caller: status, human message, machine code."""

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


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


def error_response(status: int, message: str, code: str, **extra: Any) -> func.HttpResponse:
    return json_response({"error": message, "code": code, **extra}, status)


def _status_for(exc: Exception) -> tuple[int, str, str]:
    # Imported here so that a function that never fails does not pay for these modules.
    from shared.graph.errors import (
        GraphError,
        GraphNotFoundError,
        GraphThrottledError,
        GraphTransientError,
    )
    from shared.storage.errors import (
        ConcurrencyError,
        InvalidKeyError,
        NotFoundError,
        StorageUnavailableError,
    )

    if isinstance(exc, ApiError):
        return exc.status, exc.message, exc.code
    if isinstance(exc, InvalidKeyError):
        return 400, str(exc), "invalid_id"
    if isinstance(exc, NotFoundError):
        return 404, "Not found", "not_found"
    if isinstance(exc, ConcurrencyError):
        return 409, "The booking was changed by someone else; reload and try again", "conflict"
    if isinstance(exc, StorageUnavailableError):
        return 503, "Storage is unavailable; try again shortly", "storage_unavailable"
    if isinstance(exc, GraphThrottledError | GraphTransientError):
        return 503, f"Microsoft Graph is unavailable: {exc.message}", exc.code
    if isinstance(exc, GraphNotFoundError):
        return 502, f"Microsoft Graph: {exc.message}", exc.code
    if isinstance(exc, GraphError):
        return 502, f"Microsoft Graph refused the request: {exc.message}", exc.code
    return 500, "Internal error", "internal_error"


def handle_errors(
    handler: Callable[[func.HttpRequest], func.HttpResponse],
) -> Callable[[func.HttpRequest], func.HttpResponse]:
    """Map every exception a handler raises to `{"error", "code"}` with the right status."""
    import functools

    @functools.wraps(handler)
    def wrapper(req: func.HttpRequest) -> func.HttpResponse:
        try:
            return handler(req)
        except Exception as exc:
            status, message, code = _status_for(exc)
            log_event(
                logger,
                logging.ERROR if status >= 500 else logging.INFO,
                "request_failed",
                route=req.url.split("?")[0],
                method=req.method,
                status=status,
                code=code,
                errorType=type(exc).__name__,
            )
            if status == 500:
                logger.exception("unhandled error")
            headers = {"Retry-After": "5"} if status == 503 else None
            response = error_response(status, message, code)
            if headers:
                response.headers.update(headers)
            return response

    return wrapper
