"""Audit records of meeting effects (SPEC §9)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class AuditEvent(StrEnum):
    """One record per Graph attempt at a meeting step, and one per final outcome.

    ATTACHED / UPDATED / DELETED: an attempt succeeded. ATTEMPT_FAILED: an attempt failed
    (it may be retried). FAILED: retries stopped (permanent error or schedule exhausted).
    MISSING: pre-start verification found the meeting gone from Teams (it is made anew).
    SUBJECT_TEMPLATE_REFUSED: the tenant's stored subject template is not one this product
    renders; the meeting got the default subject.
    """

    MEETING_ATTACHED = "APPOINTMENT_ONLINE_MEETING_ATTACHED"
    MEETING_UPDATED = "APPOINTMENT_ONLINE_MEETING_UPDATED"
    MEETING_DELETED = "APPOINTMENT_ONLINE_MEETING_DELETED"
    MEETING_ATTEMPT_FAILED = "APPOINTMENT_ONLINE_MEETING_ATTEMPT_FAILED"
    MEETING_FAILED = "APPOINTMENT_ONLINE_MEETING_FAILED"
    MEETING_MISSING = "APPOINTMENT_ONLINE_MEETING_MISSING"
    SUBJECT_TEMPLATE_REFUSED = "APPOINTMENT_ONLINE_MEETING_SUBJECT_TEMPLATE_REFUSED"
    # The tenant's Teams integration changed state (credential check); the record's
    # booking id is TENANT_RECORD and its error code the reason.
    TEAMS_CREDENTIAL_UNHEALTHY = "TENANT_TEAMS_CREDENTIAL_UNHEALTHY"
    TEAMS_CREDENTIAL_HEALTHY = "TENANT_TEAMS_CREDENTIAL_HEALTHY"


# The booking id of audit records about the tenant itself rather than one booking.
TENANT_RECORD = "tenant"


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
    # When the work this attempt served was asked for (approval, payment, reschedule...):
    # occurred_at - requested_at of an ATTACHED record is the request → link latency.
    requested_at: datetime | None = None
