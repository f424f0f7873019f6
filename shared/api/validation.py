"""Request validation: every bad input is a 400 (or 413) with `error` + `code`, before any write."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import azure.functions as func

from shared.storage.errors import InvalidKeyError
from shared.storage.tables import validate_key

MAX_BODY_BYTES = 16 * 1024
MIN_DURATION = timedelta(minutes=5)
MAX_DURATION = timedelta(hours=12)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
E = TypeVar("E")


class ValidationError(Exception):
    def __init__(self, message: str, code: str = "invalid_request", status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


def read_json(
    req: func.HttpRequest, *, allowed: Iterable[str], required: Iterable[str] = ()
) -> dict[str, Any]:
    """The body as a JSON object with only `allowed` fields and all `required` ones.

    An empty body is an empty object (for actions whose fields are all optional).
    """
    raw = req.get_body() or b""
    if len(raw) > MAX_BODY_BYTES:
        raise ValidationError(
            f"Request body is larger than {MAX_BODY_BYTES} bytes", "body_too_large", 413
        )
    if not raw.strip():
        body: Any = {}
    else:
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise ValidationError("Request body is not valid JSON", "invalid_json") from None
    if not isinstance(body, dict):
        raise ValidationError("Request body must be a JSON object", "invalid_json")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ValidationError(f"Unknown field(s): {', '.join(unknown)}", "unknown_field")
    missing = [name for name in required if body.get(name) is None]
    if missing:
        raise ValidationError(f"Missing field(s): {', '.join(missing)}", "missing_field")
    return body


def text(
    body: Mapping[str, Any], name: str, *, max_length: int, required: bool = False
) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise ValidationError(f"{name} is required", "missing_field")
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be a string", "invalid_type")
    value = value.strip()
    if required and not value:
        raise ValidationError(f"{name} must not be empty", "invalid_value")
    if len(value) > max_length:
        raise ValidationError(f"{name} is longer than {max_length} characters", "too_long")
    return value or None


def required_text(body: Mapping[str, Any], name: str, *, max_length: int) -> str:
    value = text(body, name, max_length=max_length, required=True)
    assert value is not None
    return value


def boolean(body: Mapping[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise ValidationError(f"{name} must be true or false", "invalid_type")
    return value


def identifier(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be a string", "invalid_type")
    try:
        return validate_key(value, name)
    except InvalidKeyError as exc:
        raise ValidationError(str(exc), "invalid_id") from None


def email(value: Any, name: str) -> str:
    if not isinstance(value, str) or len(value) > 254 or not _EMAIL.match(value.strip()):
        raise ValidationError(f"{name} must be an e-mail address", "invalid_value")
    return value.strip()


def choice(value: Any, name: str, kind: Callable[[str], E]) -> E:
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be a string", "invalid_type")
    try:
        return kind(value)
    except ValueError:
        raise ValidationError(f"{name} has an unknown value {value!r}", "invalid_value") from None


def instant(raw: Any, name: str) -> datetime:
    """An ISO 8601 date-time with an offset, returned in UTC."""
    if not isinstance(raw, str):
        raise ValidationError(f"{name} must be an ISO 8601 date-time string", "invalid_type")
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"{name} is not an ISO 8601 date-time", "invalid_datetime") from None
    if moment.tzinfo is None:
        raise ValidationError(
            f"{name} must include a UTC offset (e.g. 2025-12-24T13:00:00Z)", "missing_offset"
        )
    return moment.astimezone(UTC).replace(microsecond=0)


def span(body: Mapping[str, Any]) -> tuple[datetime, datetime]:
    """startDateTime/endDateTime: end after start, and a duration a meeting can have."""
    start = instant(body.get("startDateTime"), "startDateTime")
    end = instant(body.get("endDateTime"), "endDateTime")
    if end <= start:
        raise ValidationError("endDateTime must be after startDateTime", "invalid_time_range")
    if not MIN_DURATION <= end - start <= MAX_DURATION:
        raise ValidationError("A booking lasts between 5 minutes and 12 hours", "invalid_duration")
    return start, end


def time_zone(raw: Any, name: str) -> str:
    if not isinstance(raw, str) or not raw or len(raw) > 64:
        raise ValidationError(f"{name} must be an IANA time zone name", "invalid_time_zone")
    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            f"{name} {raw!r} is not an IANA time zone (e.g. Europe/London)", "invalid_time_zone"
        ) from None
    return raw


def query_instant(params: Mapping[str, str], name: str) -> datetime | None:
    raw = params.get(name)
    return None if raw in (None, "") else instant(raw, name)
