"""Structured logs: one JSON object a line, with the fields SPEC §9 names.

Nothing secret goes in: callers pass ids and codes, never tokens, secrets or join URLs. The
formatter also drops any field whose name says it could hold one, as a second line of defence.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from shared import telemetry

_NEVER_LOGGED = ("token", "secret", "password", "authorization", "joinurl", "joinweburl")


# Attributes a logging.LogRecord has of its own; a field by such a name keeps it only in the JSON.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def log_event(logger: logging.Logger, level: int, event: str, **fields: Any) -> None:
    """Log `event` with `fields` as one JSON object (fields that are None are left out). With
    telemetry on, the fields are also the record's attributes (Application Insights custom
    dimensions), and the booking and tenant go on the current span."""
    record: dict[str, Any] = {"event": event}
    for name, value in fields.items():
        if value is None or any(word in name.lower() for word in _NEVER_LOGGED):
            continue
        record[name] = value
    text = json.dumps(record, default=str, separators=(",", ":"))
    if not telemetry.enabled():
        logger.log(level, text)
        return
    extra = {
        k: v for k, v in telemetry.safe_attributes(record).items() if k not in _RECORD_ATTRIBUTES
    }
    logger.log(level, text, extra=extra)
    telemetry.annotate(**{k: record[k] for k in ("tenant", "bookingId") if k in record})
