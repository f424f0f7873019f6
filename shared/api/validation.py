"""Request validation: every bad input is a 400 (or 413) with `error` + `code`, before any write."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import azure.functions as func

from shared.domain.language import MAX_TAG_CHARS, language_tag
from shared.errors import AppError
from shared.json_depth import nesting_depth
from shared.keys import InvalidKeyError, validate_key

MAX_BODY_BYTES = 16 * 1024
MAX_JSON_DEPTH = 8  # our bodies nest three levels at most
MIN_DURATION = timedelta(minutes=5)
MAX_DURATION = timedelta(hours=12)
# A booking or a move may start a little in the past (clocks differ; a form took a minute).
PAST_GRACE = timedelta(minutes=5)
# Query filters may name any moment in these years; outside them a date is surely a mistake.
EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC)
# The same patterns are in docs/openapi.yaml, so that the contract and the checks agree.
# An e-mail address is an RFC 5322 dot-atom in ASCII (what every mail system, and the mail
# this service writes, can carry): no quoted local parts, comments, trailing dots or IDN.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*@{_LABEL}(?:\.{_LABEL})+")
# A character that is neither white space nor a control character (a required text has one).
_VISIBLE = re.compile(r"[^\s\ufeff\x00-\x1f\x7f-\x9f]")
# RFC 3339 date-time with an offset (what OpenAPI's `date-time` means), years 1970-2199.
_DATE_TIME = re.compile(
    r"(19[7-9][0-9]|2[01][0-9]{2})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
)
# C0/C1 control characters (tab and newline only where text may span lines) and lone
# surrogates: they corrupt mail headers, calendar files and storage, and no person types them.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL_MULTILINE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_JSON_TYPES = ("application/json",)
E = TypeVar("E")


class ValidationError(AppError):
    def __init__(self, message: str, code: str = "invalid_request", status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = status

    @property
    def status(self) -> int:
        """The HTTP status it answers with (`http_status`)."""
        return self.http_status


def read_json(
    req: func.HttpRequest,
    *,
    allowed: Iterable[str],
    required: Iterable[str] = (),
    body_required: bool = False,
) -> dict[str, Any]:
    """The body as a JSON object with only `allowed` fields and all `required` ones.

    An empty body is an empty object (for actions whose fields are all optional). A body must be
    sent as `application/json` (415 otherwise), within the size and nesting limits.
    """
    raw = req.get_body() or b""
    if len(raw) > MAX_BODY_BYTES:
        raise ValidationError(
            f"Request body is larger than {MAX_BODY_BYTES} bytes", "body_too_large", 413
        )
    if not raw.strip():
        if body_required:
            raise ValidationError("A JSON body is required", "missing_body")
        body: Any = {}
    else:
        _require_json_type(req.headers.get("Content-Type"))
        if nesting_depth(raw) > MAX_JSON_DEPTH:
            raise ValidationError(
                f"Request body nests deeper than {MAX_JSON_DEPTH} levels", "invalid_json"
            )
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):
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


def _require_json_type(content_type: str | None) -> None:
    media = (content_type or "").split(";")[0].strip().lower()
    if media not in _JSON_TYPES and not (
        media.startswith("application/") and media.endswith("+json")
    ):
        raise ValidationError(
            "Send the request body as JSON with Content-Type: application/json",
            "unsupported_media_type",
            415,
        )


def text(
    body: Mapping[str, Any],
    name: str,
    *,
    max_length: int,
    required: bool = False,
    multiline: bool = False,
) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise ValidationError(f"{name} is required", "missing_field")
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be a string", "invalid_type")
    if (_CONTROL_MULTILINE if multiline else _CONTROL).search(value):
        raise ValidationError(
            f"{name} contains control characters or invalid text", "invalid_characters"
        )
    if len(value) > max_length:
        raise ValidationError(f"{name} is longer than {max_length} characters", "too_long")
    if required and not _VISIBLE.search(value):
        raise ValidationError(f"{name} must not be empty", "invalid_value")
    return value.strip() or None


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
    if _CONTROL.search(value):
        raise ValidationError(f"{name} contains control characters or invalid text", "invalid_id")
    try:
        return validate_key(value, name)
    except InvalidKeyError as exc:
        raise ValidationError(str(exc), "invalid_id") from None


def email(value: Any, name: str, code: str = "invalid_value") -> str:
    if not isinstance(value, str) or len(value) > 254 or not _EMAIL.fullmatch(value):
        raise ValidationError(f"{name} must be an e-mail address", code)
    return value


def plain_text(
    body: Mapping[str, Any], name: str, *, max_length: int, multiline: bool = False
) -> str | None:
    """Text shown as it is (a name, a footer): `text`, and no angle brackets, so that what an
    admin types is never taken for markup, wherever it is shown."""
    value = text(body, name, max_length=max_length, multiline=multiline)
    if value is not None and ("<" in value or ">" in value):
        raise ValidationError(f"{name} must be plain text, without < or >", "markup_not_allowed")
    return value


def choice(value: Any, name: str, kind: Callable[[str], E]) -> E:
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be a string", "invalid_type")
    try:
        return kind(value)
    except ValueError:
        raise ValidationError(f"{name} has an unknown value {value!r}", "invalid_value") from None


def instant(raw: Any, name: str) -> datetime:
    """An RFC 3339 date-time with an offset, between 1970 and 2200, returned in UTC."""
    if not isinstance(raw, str):
        raise ValidationError(f"{name} must be an ISO 8601 date-time string", "invalid_type")
    if not _DATE_TIME.fullmatch(raw):
        if _DATE_TIME.fullmatch(raw + "Z"):
            raise ValidationError(
                f"{name} must include a UTC offset (e.g. 2025-12-24T13:00:00Z)", "missing_offset"
            )
        raise ValidationError(
            f"{name} is not an RFC 3339 date-time between 1970 and 2199 "
            "(e.g. 2025-12-24T13:00:00Z)",
            "invalid_datetime",
        )
    text = raw.upper().replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:  # Python reads at most six fractional digits
        digits = rest[: len(rest) - 6]
        text = f"{head}.{digits[:6]}{rest[len(digits) :]}"
    try:
        moment = datetime.fromisoformat(text).astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValidationError(f"{name} is not a date that exists", "invalid_datetime") from None
    if not EARLIEST <= moment < LATEST:
        raise ValidationError(f"{name} must lie between 1970 and 2200", "invalid_datetime")
    return moment.replace(microsecond=0)


def span(
    body: Mapping[str, Any], *, now: datetime, horizon: timedelta
) -> tuple[datetime, datetime]:
    """startDateTime/endDateTime of a booking or a move: end after start, a duration a meeting
    can have, not in the past and not further ahead than `horizon`."""
    start = instant(body.get("startDateTime"), "startDateTime")
    end = instant(body.get("endDateTime"), "endDateTime")
    if end <= start:
        raise ValidationError("endDateTime must be after startDateTime", "invalid_time_range")
    if not MIN_DURATION <= end - start <= MAX_DURATION:
        raise ValidationError("A booking lasts between 5 minutes and 12 hours", "invalid_duration")
    if start < now - PAST_GRACE:
        raise ValidationError("startDateTime is in the past", "time_in_past")
    if start > now + horizon:
        raise ValidationError(
            f"startDateTime is more than {horizon.days} days ahead", "time_too_far_ahead"
        )
    return start, end


def time_zone(raw: Any, name: str) -> str:
    if not isinstance(raw, str) or not raw or len(raw) > 64:
        raise ValidationError(f"{name} must be an IANA time zone name", "invalid_time_zone")
    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # OSError: a name the zone database holds as a folder ("America"), or cannot read.
        raise ValidationError(
            f"{name} {raw!r} is not an IANA time zone (e.g. Europe/London)", "invalid_time_zone"
        ) from None
    return raw


def locale(raw: Any, name: str) -> str:
    """A BCP 47 language tag ("de", "de-AT", "en-GB"), in canonical case."""
    if not isinstance(raw, str) or len(raw) > MAX_TAG_CHARS:
        raise ValidationError(
            f"{name} must be a BCP 47 language tag of at most {MAX_TAG_CHARS} characters "
            "(e.g. de, de-AT, en-GB)",
            "invalid_locale",
        )
    tag = language_tag(raw)
    if tag is None:
        raise ValidationError(
            f"{name} {raw!r} is not a BCP 47 language tag (e.g. de, de-AT, en-GB)",
            "invalid_locale",
        )
    return tag


def query_instant(params: Mapping[str, str], name: str) -> datetime | None:
    raw = params.get(name)
    return None if raw is None else instant(raw, name)
