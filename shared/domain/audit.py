"""Audit records of meeting effects (SPEC §9)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class AuditEvent(StrEnum):
    MEETING_ATTACHED = "APPOINTMENT_ONLINE_MEETING_ATTACHED"
    MEETING_UPDATED = "APPOINTMENT_ONLINE_MEETING_UPDATED"
    MEETING_DELETED = "APPOINTMENT_ONLINE_MEETING_DELETED"
    MEETING_FAILED = "APPOINTMENT_ONLINE_MEETING_FAILED"


@dataclass(frozen=True)
class AuditRecord:
    tenant_id: str
    booking_id: str
    event: AuditEvent
    occurred_at: datetime
    record_id: str
    operation: str
    attempt: int = 1
    latency_ms: int | None = None
    graph_status: int | None = None
    error_code: str | None = None
    meeting_id: str | None = None
    actor: str | None = None
