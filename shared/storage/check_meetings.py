"""Throw-away meetings of organizer verification (the dry run), until Teams no longer has them.

Table `checkmeetings`, one partition (`check`): a row per dry run, written *before* its
createOrGet (so a meeting made but never answered is not forgotten) and removed once the
meeting is deleted. RowKey is the check id; the meeting's externalId is
`verify:{tenant}:{checkId}`, recognisable in Teams as this product's check. The table holds only
checks in flight or whose deletion failed, so the timer lists it whole.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from shared.storage.errors import NotFoundError
from shared.storage.tables import EntityReader, Tables, to_utc, translated_errors, validate_key

if TYPE_CHECKING:
    from azure.data.tables import TableClient

TABLE = "checkmeetings"
_PARTITION = "check"
EXTERNAL_ID_PREFIX = "verify:"


@dataclass(frozen=True)
class CheckMeeting:
    """One dry run's meeting: whom it was made for, its id once Teams answered, and the
    progress of its removal (attempts, when next, and `failed` once retries stopped)."""

    check_id: str
    tenant_id: str
    organizer_id: str
    created_at: datetime
    next_attempt_at: datetime
    meeting_id: str | None = None
    attempts: int = 0
    last_error_code: str | None = None
    failed: bool = False

    @property
    def external_id(self) -> str:
        return f"{EXTERNAL_ID_PREFIX}{self.tenant_id}:{self.check_id}"

    def retried(self, at: datetime, error_code: str, *, failed: bool) -> CheckMeeting:
        return replace(
            self,
            attempts=self.attempts + 1,
            next_attempt_at=at,
            last_error_code=error_code,
            failed=failed,
        )


class CheckMeetingRepository(Protocol):
    def save(self, check: CheckMeeting) -> None:
        """Insert or replace the check's row."""
        ...

    def remove(self, check_id: str) -> None:
        """Forget the check (its meeting is gone); removing a missing row is a no-op."""
        ...

    def list_due(self, now: datetime, limit: int = 100) -> list[CheckMeeting]:
        """Checks whose removal is due and not given up, oldest first."""
        ...

    def count_for_tenant(self, tenant_id: str) -> int:
        """The tenant's checks still recorded (in flight, retrying or given up)."""
        ...


class TableCheckMeetingRepository:
    """`CheckMeetingRepository` on Azure Table Storage."""

    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    @property
    def _table(self) -> TableClient:
        return self._tables.table(TABLE)

    def save(self, check: CheckMeeting) -> None:
        from azure.data.tables import UpdateMode

        with translated_errors(f"check meeting {check.check_id}"):
            self._table.upsert_entity(_to_entity(check), mode=UpdateMode.REPLACE)

    def remove(self, check_id: str) -> None:
        key = validate_key(check_id, "check id")
        try:
            with translated_errors(f"check meeting {check_id}"):
                self._table.delete_entity(_PARTITION, key)
        except NotFoundError:
            return

    def list_due(self, now: datetime, limit: int = 100) -> list[CheckMeeting]:
        stamp = to_utc(now, "now").strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        flt = (
            f"PartitionKey eq '{_PARTITION}' and Failed eq false "
            f"and NextAttemptAt le datetime'{stamp}'"
        )
        with translated_errors("check meetings query"):
            found = [_from_entity(e) for e in self._table.query_entities(flt)]
            self._tables.reads += len(found)
        return sorted(found, key=lambda c: c.created_at)[:limit]

    def count_for_tenant(self, tenant_id: str) -> int:
        pk = validate_key(tenant_id, "tenant id")
        flt = f"PartitionKey eq '{_PARTITION}' and TenantId eq '{pk}'"
        with translated_errors("check meetings query"):
            found = sum(1 for _ in self._table.query_entities(flt, select=["RowKey"]))
        self._tables.reads += found
        return found


class InMemoryCheckMeetingRepository:
    """The in-memory twin (passes the same contract tests)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, CheckMeeting] = {}

    def save(self, check: CheckMeeting) -> None:
        _to_entity(check)  # the same checks as the table
        with self._lock:
            self._rows[check.check_id] = check

    def remove(self, check_id: str) -> None:
        validate_key(check_id, "check id")
        with self._lock:
            self._rows.pop(check_id, None)

    def list_due(self, now: datetime, limit: int = 100) -> list[CheckMeeting]:
        with self._lock:
            rows = list(self._rows.values())
        due = [c for c in rows if not c.failed and c.next_attempt_at <= now]
        return sorted(due, key=lambda c: c.created_at)[:limit]

    def count_for_tenant(self, tenant_id: str) -> int:
        with self._lock:
            return sum(1 for c in self._rows.values() if c.tenant_id == tenant_id)

    def all(self) -> list[CheckMeeting]:
        with self._lock:
            return list(self._rows.values())


def _to_entity(check: CheckMeeting) -> dict[str, Any]:
    return {
        "PartitionKey": _PARTITION,
        "RowKey": validate_key(check.check_id, "check id"),
        "TenantId": validate_key(check.tenant_id, "tenant id"),
        "OrganizerId": check.organizer_id,
        "MeetingId": check.meeting_id,
        "CreatedAt": to_utc(check.created_at, "createdAt"),
        "NextAttemptAt": to_utc(check.next_attempt_at, "nextAttemptAt"),
        "Attempts": check.attempts,
        "LastErrorCode": check.last_error_code,
        "Failed": check.failed,
    }


def _from_entity(entity: Any) -> CheckMeeting:
    r = EntityReader(entity, "check meeting")
    return CheckMeeting(
        check_id=r.text("RowKey"),
        tenant_id=r.text("TenantId"),
        organizer_id=r.text("OrganizerId"),
        meeting_id=r.opt_text("MeetingId"),
        created_at=r.moment("CreatedAt"),
        next_attempt_at=r.moment("NextAttemptAt"),
        attempts=r.number("Attempts", default=0),
        last_error_code=r.opt_text("LastErrorCode"),
        failed=r.flag("Failed"),
    )
