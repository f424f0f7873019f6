"""Audit persistence.

Audit records live in the tenant's partition of the `bookings` table, so that the record of a
meeting step is written in the same entity-group transaction as the booking state it led to
(see `TableBookingRepository.update`). Each record is written twice:

    a|t|{occurredAt}|{recordId}              by time (metrics over a period: a range scan)
    a|b|{bookingId}|{occurredAt}|{recordId}  by booking (one booking's history: a range scan)

`occurredAt` is fixed-width UTC ISO 8601, so row keys sort by time. Writing a record twice (a
retried operation) is harmless: the insert of an existing record id is treated as done.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from shared.domain.audit import AuditEvent, AuditRecord
from shared.storage.errors import AlreadyExistsError
from shared.storage.tables import (
    EntityReader,
    Tables,
    prefix_range,
    row_key,
    to_utc,
    translated_errors,
    validate_key,
)

if TYPE_CHECKING:
    from azure.data.tables import TableClient

# The bookings table (shared.storage.bookings.TABLE), whose partitions are tenants too.
TABLE = "bookings"
_AUDIT = "a"
_BY_TIME, _BY_BOOKING = row_key(_AUDIT, "t"), row_key(_AUDIT, "b")


class AuditRepository(Protocol):
    def add(self, record: AuditRecord) -> None:
        """Store a record; storing the same record id again is a no-op."""
        ...

    def list_for_booking(self, tenant_id: str, booking_id: str) -> list[AuditRecord]: ...

    def list_for_period(
        self, tenant_id: str, since: datetime, until: datetime
    ) -> list[AuditRecord]: ...


def _stamp(moment: datetime) -> str:
    return to_utc(moment, "occurredAt").strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class TableAuditRepository:
    """`AuditRepository` on Azure Table Storage."""

    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    @property
    def _table(self) -> TableClient:
        return self._tables.table(TABLE)

    def add(self, record: AuditRecord) -> None:
        rows = audit_rows(record)
        try:
            with translated_errors(f"audit record {record.record_id}"):
                self._table.submit_transaction([("create", row) for row in rows])
        except AlreadyExistsError:
            return

    def list_for_booking(self, tenant_id: str, booking_id: str) -> list[AuditRecord]:
        pk = validate_key(tenant_id, "tenant id")
        prefix = row_key(_BY_BOOKING, validate_key(booking_id, "booking id"), "")
        return self._query(f"PartitionKey eq '{pk}' and {prefix_range(prefix)}")

    def list_for_period(
        self, tenant_id: str, since: datetime, until: datetime
    ) -> list[AuditRecord]:
        pk = validate_key(tenant_id, "tenant id")
        low, high = row_key(_BY_TIME, _stamp(since)), row_key(_BY_TIME, _stamp(until))
        return self._query(f"PartitionKey eq '{pk}' and RowKey ge '{low}' and RowKey lt '{high}'")

    def _query(self, flt: str) -> list[AuditRecord]:
        with translated_errors("audit query"):
            return [entity_to_audit(e) for e in self._table.query_entities(flt)]


def audit_rows(record: AuditRecord) -> list[dict[str, Any]]:
    """The two rows a record is stored as (by time, by booking), in its tenant's partition."""
    pk = validate_key(record.tenant_id, "tenant id")
    booking_id = validate_key(record.booking_id, "booking id")
    record_id = validate_key(record.record_id, "record id")
    stamp = _stamp(record.occurred_at)
    body = audit_to_entity(record)
    return [
        {**body, "PartitionKey": pk, "RowKey": row_key(_BY_TIME, stamp, record_id)},
        {**body, "PartitionKey": pk, "RowKey": row_key(_BY_BOOKING, booking_id, stamp, record_id)},
    ]


def audit_to_entity(record: AuditRecord) -> dict[str, Any]:
    return {
        "RecordId": record.record_id,
        "BookingId": record.booking_id,
        "Event": record.event.value,
        "OccurredAt": to_utc(record.occurred_at, "occurredAt"),
        "Operation": record.operation,
        "Attempt": record.attempt,
        "LatencyMs": record.latency_ms,
        "GraphStatus": record.graph_status,
        "ErrorCode": record.error_code,
        "MeetingId": record.meeting_id,
        "Actor": record.actor,
        "RequestedAt": None if record.requested_at is None else to_utc(record.requested_at, "at"),
    }


def entity_to_audit(entity: Any) -> AuditRecord:
    r = EntityReader(entity, "audit")
    return AuditRecord(
        tenant_id=r.text("PartitionKey"),
        booking_id=r.text("BookingId"),
        event=r.enum("Event", AuditEvent),
        occurred_at=r.moment("OccurredAt").astimezone(UTC),
        record_id=r.text("RecordId"),
        operation=r.text("Operation"),
        attempt=r.number("Attempt", default=1),
        latency_ms=r.opt_number("LatencyMs"),
        graph_status=r.opt_number("GraphStatus"),
        error_code=r.opt_text("ErrorCode"),
        meeting_id=r.opt_text("MeetingId"),
        actor=r.opt_text("Actor"),
        requested_at=r.opt_moment("RequestedAt"),
    )
