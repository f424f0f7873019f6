"""Structured logs: one JSON object a line, with the fields SPEC §9 names.

Nothing secret goes in: callers pass ids and codes, never tokens, secrets or join URLs. The
formatter also drops any field whose name says it could hold one, as a second line of defence.
"""

from __future__ import annotations

import json
import logging
from typing import Any

_NEVER_LOGGED = ("token", "secret", "password", "authorization", "joinurl", "joinweburl")


def log_event(logger: logging.Logger, level: int, event: str, **fields: Any) -> None:
    """Log `event` with `fields` as one JSON object (fields that are None are left out)."""
    record: dict[str, Any] = {"event": event}
    for name, value in fields.items():
        if value is None or any(word in name.lower() for word in _NEVER_LOGGED):
            continue
        record[name] = value
    logger.log(level, json.dumps(record, default=str, separators=(",", ":")))
