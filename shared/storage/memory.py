"""In-memory repositories that keep the Table ones' contract (the same contract tests run against
both), so the convergence logic can be exercised over thousands of interleavings in
milliseconds. Azurite keeps proving the real thing; nothing in the app uses these.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime

from shared.domain.audit import AuditRecord
from shared.domain.booking import Booking, settled
from shared.domain.tenant import Tenant
from shared.storage.audit import audit_rows
from shared.storage.bookings import (
    BookingPage,
    BookingQuery,
    RequestKey,
    RequestRecord,
    booking_to_entity,
    page_of,
    position_of,
)
from shared.storage.errors import AlreadyExistsError, ConcurrencyError, NotFoundError
from shared.storage.tables import validate_key
from shared.storage.tenants import tenant_to_entity


class InMemoryBookingRepository:
    """`BookingRepository` in memory, with ETags, the marker index and the start index."""

    def __init__(self, audit: InMemoryAuditRepository | None = None) -> None:
        # Where the audit records saved with a booking go (a list of its own without one).
        self._audit = audit if audit is not None else InMemoryAuditRepository()
        self._lock = threading.Lock()
        self._etags = itertools.count(1)
        self._rows: dict[tuple[str, str], Booking] = {}
        self._requests: dict[tuple[str, str], RequestRecord] = {}
        # (kind, tenant, booking) -> not before: the marker rows of each kind of work.
        self._markers: dict[tuple[str, str, str], datetime | None] = {}
        self._participant_rows: dict[tuple[str, str], set[str]] = {}
        self.reads = 0

    def add(self, booking: Booking, request: RequestKey | None = None) -> Booking:
        booking = replace(booking, version=1, etag=None)
        booking_to_entity(booking)  # the same key and size checks as the table
        key = (booking.tenant_id, booking.booking_id)
        with self._lock:
            if key in self._rows:
                raise AlreadyExistsError(f"booking {booking.booking_id} already exists")
            if request is not None:
                request_key = (booking.tenant_id, request.digest)
                if request_key in self._requests:
                    raise AlreadyExistsError(f"booking {booking.booking_id} already exists")
                self._requests[request_key] = RequestRecord(booking.booking_id, request.fingerprint)
            return self._store(booking)

    def find_request(self, tenant_id: str, request: RequestKey) -> RequestRecord | None:
        validate_key(tenant_id, "tenant id")
        with self._lock:
            return self._requests.get((tenant_id, request.digest))

    def get(self, tenant_id: str, booking_id: str) -> Booking:
        validate_key(tenant_id, "tenant id")
        validate_key(booking_id, "booking id")
        with self._lock:
            self.reads += 1
            found = self._rows.get((tenant_id, booking_id))
        if found is None:
            raise NotFoundError(f"booking {booking_id} was not found")
        return found

    def update(self, booking: Booking, audit: Sequence[AuditRecord] = ()) -> Booking:
        if booking.etag is None:
            raise ConcurrencyError(f"booking {booking.booking_id} was not read before saving")
        saved = replace(booking, version=booking.version + 1)
        booking_to_entity(saved)
        for record in audit:
            audit_rows(record)  # the same key checks as the table
        with self._lock:
            current = self._rows.get((booking.tenant_id, booking.booking_id))
            if current is None:
                raise NotFoundError(f"booking {booking.booking_id} was not found")
            if current.etag != booking.etag:
                raise ConcurrencyError(f"booking {booking.booking_id} was changed by someone else")
            stored = self._store(saved)
            for record in audit:
                self._audit.add(record)
            return stored

    def _store(self, booking: Booking) -> Booking:
        stored = replace(settled(booking), etag=f'W/"{next(self._etags)}"')
        key = (booking.tenant_id, booking.booking_id)
        self._rows[key] = stored
        for participant in booking.participant_ids:
            self._participant_rows.setdefault((booking.tenant_id, participant), set()).add(
                booking.booking_id
            )
        owed = booking.owed()
        for kind in booking.works():
            if kind in owed:
                self._markers[(kind, *key)] = owed[kind]
            else:
                self._markers.pop((kind, *key), None)
        return stored

    def list_for_tenant(self, tenant_id: str, query: BookingQuery) -> BookingPage:
        validate_key(tenant_id, "tenant id")
        with self._lock:
            found = [b for (t, _), b in self._rows.items() if t == tenant_id]
        return self._index_page(found, query)

    def list_for_participant(
        self, tenant_id: str, participant_id: str, query: BookingQuery
    ) -> BookingPage:
        validate_key(tenant_id, "tenant id")
        validate_key(participant_id, "participant id")
        with self._lock:
            ids = self._participant_rows.get((tenant_id, participant_id), set())
            found = [self._rows[(tenant_id, i)] for i in ids]
            # As the table deletes a removed assignee's rows in the same save.
            found = [b for b in found if participant_id in b.participant_ids]
        return self._index_page(found, query)

    def _index_page(self, bookings: list[Booking], query: BookingQuery) -> BookingPage:
        """As the table's index pages: the page and one more row are read, copies are returned."""
        page = page_of(bookings, query)
        with self._lock:
            self.reads += len(page.bookings) + (1 if page.more else 0)
        return replace(page, bookings=[replace(b, etag=None) for b in page.bookings])

    def list_marked(
        self, kind: str, tenant_id: str, limit: int = 100, due_by: datetime | None = None
    ) -> list[Booking]:
        validate_key(tenant_id, "tenant id")
        with self._lock:
            marked = sorted(
                (booking_id, not_before)
                for (k, t, booking_id), not_before in self._markers.items()
                if k == kind and t == tenant_id
            )
            self.reads += len(marked)
            found = []
            for booking_id, not_before in marked:
                if due_by is not None and not_before is not None and not_before > due_by:
                    continue
                self.reads += 1
                found.append(self._rows[(tenant_id, booking_id)])
        return found[:limit]

    def list_starting_between(
        self, tenant_id: str, start_from: datetime, start_to: datetime
    ) -> list[Booking]:
        validate_key(tenant_id, "tenant id")
        with self._lock:
            found = [
                b
                for (t, _), b in self._rows.items()
                if t == tenant_id
                and b.live
                and b.meeting.wanted
                and start_from <= b.start < start_to
            ]
            self.reads += len(found)  # the start index rows, which carry copies
        return sorted((replace(b, etag=None) for b in found), key=position_of)

    def list_meeting_failed(
        self, tenant_id: str, start_from: datetime, limit: int = 500
    ) -> list[Booking]:
        validate_key(tenant_id, "tenant id")
        with self._lock:
            found = [
                b
                for (t, _), b in self._rows.items()
                if t == tenant_id and b.meeting.failed and b.start >= start_from
            ]
            self.reads += len(found)
        return sorted(found, key=lambda b: (b.start, b.booking_id))[:limit]


class InMemoryTenantRepository:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._etags = itertools.count(1)
        self._rows: dict[str, Tenant] = {}

    def get(self, tenant_id: str) -> Tenant:
        validate_key(tenant_id, "tenant id")
        with self._lock:
            found = self._rows.get(tenant_id)
        if found is None:
            raise NotFoundError(f"tenant {tenant_id} was not found")
        return found

    def get_recent(self, tenant_id: str) -> Tenant:
        return self.get(tenant_id)

    def add(self, tenant: Tenant) -> Tenant:
        tenant_to_entity(tenant)
        with self._lock:
            if tenant.tenant_id in self._rows:
                raise AlreadyExistsError(f"tenant {tenant.tenant_id} already exists")
            return self._store(tenant)

    def update(self, tenant: Tenant) -> Tenant:
        if tenant.etag is None:
            raise ConcurrencyError(f"tenant {tenant.tenant_id} was not read before saving")
        tenant_to_entity(tenant)
        with self._lock:
            current = self._rows.get(tenant.tenant_id)
            if current is None:
                raise NotFoundError(f"tenant {tenant.tenant_id} was not found")
            if current.etag != tenant.etag:
                raise ConcurrencyError(f"tenant {tenant.tenant_id} was changed by someone else")
            return self._store(tenant)

    def _store(self, tenant: Tenant) -> Tenant:
        stored = replace(tenant, etag=f'W/"{next(self._etags)}"')
        self._rows[tenant.tenant_id] = stored
        return stored

    def list_all(self) -> list[Tenant]:
        with self._lock:
            return sorted(self._rows.values(), key=lambda t: t.tenant_id)


class InMemoryAuditRepository:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[tuple[str, str], AuditRecord] = {}

    def add(self, record: AuditRecord) -> None:
        validate_key(record.tenant_id, "tenant id")
        validate_key(record.booking_id, "booking id")
        validate_key(record.record_id, "record id")
        with self._lock:
            self._records.setdefault((record.tenant_id, record.record_id), record)

    def list_for_booking(self, tenant_id: str, booking_id: str) -> list[AuditRecord]:
        validate_key(tenant_id, "tenant id")
        return self._sorted(
            r for r in self._all() if r.tenant_id == tenant_id and r.booking_id == booking_id
        )

    def list_for_period(
        self, tenant_id: str, since: datetime, until: datetime
    ) -> list[AuditRecord]:
        validate_key(tenant_id, "tenant id")
        return self._sorted(
            r for r in self._all() if r.tenant_id == tenant_id and since <= r.occurred_at < until
        )

    def _all(self) -> list[AuditRecord]:
        with self._lock:
            return list(self._records.values())

    @staticmethod
    def _sorted(records: Iterable[AuditRecord]) -> list[AuditRecord]:
        return sorted(records, key=lambda r: (r.occurred_at, r.record_id))
