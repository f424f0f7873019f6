"""Booking persistence.

Partition design (one table, `bookings`; see docs/architecture.md):

    PartitionKey = tenant id              every query is inside one tenant
    RowKey  b|{bookingId}                 the booking itself
            t|{start}|{bookingId}         the tenant's bookings by start (a copy of the booking)
            u|{participantId}|{start}|{bookingId}
                                          a participant's bookings by start (a copy)
            r|{bookingId}                 marker: this booking's meeting needs work (the outbox)
            s|{startUtc}|{bookingId}      start-time index of bookings whose meeting is wanted
                                          (a copy)
            k|{requestKeyDigest}          a create's Idempotency-Key → the booking it made
            m|{bookingId}                 marker: this booking owes e-mail (the mail outbox)
            a|...                         audit records (shared/storage/audit.py), written in
                                          the transaction of the booking state they led to

Because the kinds share the tenant's partition, a booking and its index rows are written in one
entity-group transaction, guarded by the booking's ETag. The `t|`, `u|` and `s|` rows carry a
copy of the booking written in that transaction, and the same transaction deletes the rows its
previous version had and this one no longer wants (a moved start, a removed assignee, a meeting
no longer wanted): the booking records their keys (`IndexRows`). So these indexes are never
stale, and reading them is reading the booking. A page of the tenant's bookings is a range scan
over `t|` cut by the service at the page size; a participant's over `u|{id}|`; the status filter
runs in the service too. The reconciler reads only `r|` rows, so its cost grows with the bookings
that need work, not with all; pre-start verification reads only the `s|` rows of its window.
A create that carries an Idempotency-Key inserts its `k|` row in the same transaction, so a
repeated request can never make a second booking.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from shared.domain.attendance import (
    Attendance,
    AttendanceSource,
    LessonOutcome,
    ParticipantAttendance,
)
from shared.domain.audit import AuditRecord
from shared.domain.booking import (
    MAIL_WORK,
    MEETING_WORK,
    Booking,
    BookingStatus,
    MeetingState,
    Participant,
    ParticipantRole,
    settled,
)
from shared.domain.lease import Lease
from shared.domain.notices import MailState, Notice, NoticeKind, Told
from shared.domain.payment import IntentPayment, PaymentState
from shared.domain.reminder_state import Reminders, SentReminder
from shared.domain.work import Works, WorkState
from shared.storage.audit import audit_rows
from shared.storage.errors import ConcurrencyError, NotFoundError, SchemaError
from shared.storage.tables import (
    EntityReader,
    Tables,
    check_string,
    prefix_range,
    row_key,
    to_utc,
    translated_errors,
    validate_key,
)

if TYPE_CHECKING:
    from azure.data.tables import TableClient

logger = logging.getLogger("meetings.storage")

TABLE = "bookings"
_BOOKING, _PARTICIPANT, _RECONCILE, _REQUEST, _START = "b", "u", "r", "k", "s"
_MAIL, _BY_START = "m", "t"
_LEGACY = "p"  # the older participant index, p|{participantId}|{bookingId}: see reindex
# "a" is the audit records' (shared/storage/audit.py), kept in this table's tenant partition.
_WORK = "w"  # w|{kind}|{bookingId}: the marker of any other kind of work (shared/domain/work.py)
# The meeting's and the mail's markers keep the layout they had before other kinds.
_MARKER_PREFIX = {MEETING_WORK: _RECONCILE, MAIL_WORK: _MAIL}
_MARKER_KIND_COLUMN = {MEETING_WORK: "reconcile"}
# Booking versions whose markers a repository remembers (see `TableBookingRepository.update`).
_KNOWN_VERSIONS = 10_000


@dataclass(frozen=True)
class RequestKey:
    """A client's Idempotency-Key for a create: scoped to the caller, with the request's
    fingerprint so that the same key sent with a different request can be told apart."""

    caller_id: str
    key: str
    fingerprint: str

    @property
    def digest(self) -> str:
        # Hashed: keys and caller ids may hold characters a RowKey may not.
        return hashlib.sha256(f"{self.caller_id}\n{self.key}".encode()).hexdigest()


@dataclass(frozen=True)
class RequestRecord:
    """What an earlier request with the same key did."""

    booking_id: str
    fingerprint: str


@dataclass(frozen=True, order=True)
class ListPosition:
    """Where a listing stands: bookings are listed by start, then id (a total, stable order)."""

    start: datetime
    booking_id: str


@dataclass(frozen=True)
class BookingQuery:
    """Filters for listing; times compare with the booking's start. `after`: list only the
    bookings after that position (the last booking of the previous page)."""

    status: BookingStatus | None = None
    start_from: datetime | None = None
    start_to: datetime | None = None
    limit: int = 100
    after: ListPosition | None = None


@dataclass(frozen=True)
class BookingPage:
    """Up to `limit` bookings in listing order; `more` when further ones match after them."""

    bookings: list[Booking]
    more: bool = False

    @property
    def next_after(self) -> ListPosition | None:
        """The `after` of the next page, if there is one."""
        if not self.more or not self.bookings:
            return None
        return position_of(self.bookings[-1])


class BookingRepository(Protocol):
    def add(self, booking: Booking, request: RequestKey | None = None) -> Booking:
        """Insert a new booking, or `AlreadyExistsError` (also when `request` was used
        before). Returns it with its ETag."""
        ...

    def find_request(self, tenant_id: str, request: RequestKey) -> RequestRecord | None:
        """What an earlier create with this request key made, if any."""
        ...

    def get(self, tenant_id: str, booking_id: str) -> Booking:
        """The booking, or `NotFoundError`."""
        ...

    def update(self, booking: Booking, audit: Sequence[AuditRecord] = ()) -> Booking:
        """Save a booking read earlier; `ConcurrencyError` if it changed since (ETag). `audit`:
        records of what led to this state, stored with it (all or nothing)."""
        ...

    def list_for_tenant(self, tenant_id: str, query: BookingQuery) -> BookingPage:
        """A page of the tenant's bookings, read from the start index only. The bookings are
        copies written with the booking: read one (`get`) before saving it."""
        ...

    def list_for_participant(
        self, tenant_id: str, participant_id: str, query: BookingQuery
    ) -> BookingPage:
        """A page of one participant's bookings (assignee included), from their index only."""
        ...

    def list_marked(
        self, kind: str, tenant_id: str, limit: int = 100, due_by: datetime | None = None
    ) -> list[Booking]:
        """Bookings carrying the marker of `kind` of work (`Booking.owed`), read through that
        kind's marker rows only. With `due_by`, those whose next attempt is later are left to
        it (their delayed round's message takes them)."""
        ...

    def list_starting_between(
        self, tenant_id: str, start_from: datetime, start_to: datetime
    ) -> list[Booking]:
        """Bookings whose meeting is wanted and that start in [start_from, start_to), read
        from the start index only (copies: read one with `get` before saving it)."""
        ...

    def list_meeting_failed(
        self, tenant_id: str, start_from: datetime, limit: int = 500
    ) -> list[Booking]:
        """Bookings whose meeting work stopped for good and that start at or after
        `start_from`, earliest first. Failed work has no marker: the booking rows are filtered
        by the table service itself, so only failed ones are returned (and read)."""
        ...


def position_of(booking: Booking) -> ListPosition:
    return ListPosition(to_utc(booking.start, "start"), booking.booking_id)


def matches(booking: Booking, query: BookingQuery) -> bool:
    if query.status is not None and booking.status is not query.status:
        return False
    if query.start_from is not None and booking.start < query.start_from:
        return False
    if query.after is not None and position_of(booking) <= query.after:
        return False
    return not (query.start_to is not None and booking.start >= query.start_to)


def page_of(bookings: Iterable[Booking], query: BookingQuery) -> BookingPage:
    """The page `query` asks for out of `bookings` (for repositories that filter in memory)."""
    ordered = sorted((b for b in bookings if matches(b, query)), key=position_of)
    return BookingPage(ordered[: query.limit], more=len(ordered) > query.limit)


class TableBookingRepository:
    """`BookingRepository` on Azure Table Storage."""

    def __init__(self, tables: Tables) -> None:
        self._tables = tables
        # The markers each booking version read or written here is stored with, by (tenant,
        # booking, ETag): a save of that version deletes a marker it no longer needs in its own
        # transaction (see `update`). Bounded; a version not in it is cleaned up apart.
        self._stored_markers: OrderedDict[tuple[str, str, str], frozenset[str]] = OrderedDict()
        self._stored_lock = threading.Lock()

    @property
    def _table(self) -> TableClient:
        return self._tables.table(TABLE)

    def add(self, booking: Booking, request: RequestKey | None = None) -> Booking:
        booking = replace(booking, version=1, etag=None)
        entity = booking_to_entity(booking)
        operations: list[Any] = [("create", entity)]
        operations += _index_upserts(booking)
        if request is not None:
            operations.append(("create", _request_row(booking, request)))
        what = f"booking {booking.booking_id}"
        with translated_errors(what):
            results = self._table.submit_transaction(operations)
        return self._remember(
            replace(booking, etag=results[0]["etag"], index_rows=_moving_keys(booking))
        )

    def find_request(self, tenant_id: str, request: RequestKey) -> RequestRecord | None:
        pk = validate_key(tenant_id, "tenant id")
        try:
            with translated_errors("request key"):
                entity = self._table.get_entity(pk, row_key(_REQUEST, request.digest))
        except NotFoundError:
            return None
        reader = EntityReader(entity, "request key")
        return RequestRecord(reader.text("BookingId"), reader.text("Fingerprint"))

    def get(self, tenant_id: str, booking_id: str) -> Booking:
        keys = _booking_keys(tenant_id, booking_id)
        with translated_errors(f"booking {booking_id}"):
            entity = self._table.get_entity(*keys)
        self._tables.reads += 1
        return self._remember(entity_to_booking(entity))

    def update(self, booking: Booking, audit: Sequence[AuditRecord] = ()) -> Booking:
        from azure.core import MatchConditions
        from azure.data.tables import UpdateMode

        if booking.etag is None:
            raise ConcurrencyError(f"booking {booking.booking_id} was not read before saving")
        saved = replace(booking, version=booking.version + 1)
        entity = booking_to_entity(saved)
        operations: list[Any] = [
            (
                "update",
                entity,
                {
                    "mode": UpdateMode.REPLACE,
                    "etag": booking.etag,
                    "match_condition": MatchConditions.IfNotModified,
                },
            )
        ]
        operations += _index_upserts(saved)
        # A marker the new version no longer needs goes in the same transaction when the
        # version read is known to have it: the booking's ETag condition then proves that no
        # newer write happened, so the marker is the one that version's save put there (a
        # newer save would have changed the ETag and failed this whole transaction).
        known = self._markers_of_version(booking)
        apart: list[str] = []
        for kind in sorted(saved.works() - _wanted(saved)):
            if known is None:
                apart.append(kind)
            elif kind in known:
                marker = _marker_key(kind, saved.booking_id)
                operations.append(("delete", {"PartitionKey": booking.tenant_id, "RowKey": marker}))
        for record in audit:
            if record.tenant_id != booking.tenant_id:
                raise SchemaError(f"audit record {record.record_id} is another tenant's")
            operations += [("create", row) for row in audit_rows(record)]
        deletes = [op for op in operations if op[0] == "delete"]
        try:
            with translated_errors(f"booking {booking.booking_id}"):
                results = self._table.submit_transaction(operations)
        except NotFoundError:
            if not deletes:
                raise
            # A row this save deletes is gone already (by hand, or never written by an older
            # version): the whole transaction fails on it, and every retry would too. Save
            # without the deletes, then delete each row apart unless a newer save wrote it.
            # (If the booking itself is gone, this fails the same way.)
            with translated_errors(f"booking {booking.booking_id}"):
                results = self._table.submit_transaction(
                    [op for op in operations if op[0] != "delete"]
                )
            for _, row in deletes:
                self._delete_unless_newer(saved.tenant_id, row["RowKey"], saved.version)
        for kind in apart:
            # The version read is not known here (read by another repository, or long ago):
            # delete the marker apart, unless a newer write (a higher booking version) put it.
            self._clear_marker(saved, saved.version, kind)
        return self._remember(
            replace(saved, etag=results[0]["etag"], index_rows=_moving_keys(saved))
        )

    def list_for_tenant(self, tenant_id: str, query: BookingQuery) -> BookingPage:
        pk = validate_key(tenant_id, "tenant id")
        return self._page(pk, row_key(_BY_START, ""), query)

    def list_for_participant(
        self, tenant_id: str, participant_id: str, query: BookingQuery
    ) -> BookingPage:
        pk = validate_key(tenant_id, "tenant id")
        prefix = row_key(_PARTICIPANT, validate_key(participant_id, "participant id"), "")
        return self._page(pk, prefix, query)

    def _page(self, pk: str, prefix: str, query: BookingQuery) -> BookingPage:
        """One page over an index by start whose rows are copies of the bookings: the window
        and the position bound the row keys, the service applies the status filter and stops
        at the page size (one more row says whether another page follows)."""
        low = prefix + ("" if query.start_from is None else _list_stamp(query.start_from))
        high = prefix + ("~" if query.start_to is None else _list_stamp(query.start_to))
        flt = f"{_pk_filter(pk)} and RowKey ge '{_quote(low)}' and RowKey lt '{_quote(high)}'"
        if query.after is not None:
            after = prefix + _listing_suffix(query.after.start, query.after.booking_id)
            flt += f" and RowKey gt '{_quote(after)}'"
        if query.status is not None:
            flt += f" and Status eq '{query.status.value}'"
        wanted = query.limit + 1
        rows: list[Any] = []
        with translated_errors("bookings query"):
            for page in self._table.query_entities(flt, results_per_page=wanted).by_page():
                rows += page
                if len(rows) >= wanted:
                    break
        self._tables.reads += len(rows)
        found = [_copy_to_booking(row) for row in rows[:wanted]]
        return BookingPage(found[: query.limit], more=len(found) > query.limit)

    def list_marked(
        self, kind: str, tenant_id: str, limit: int = 100, due_by: datetime | None = None
    ) -> list[Booking]:
        pk = validate_key(tenant_id, "tenant id")
        flt = f"{_pk_filter(pk)} and {prefix_range(_marker_key(kind, ''))}"
        result: list[Booking] = []
        for marker in self._query(flt):
            not_before = marker.get("NotBefore")
            if due_by is not None and not_before is not None and not_before > due_by:
                continue
            try:
                booking = self._get_or_none(pk, marker["BookingId"])
            except SchemaError:
                # A row no version of the code can read: logged, and the others still swept.
                logger.exception(
                    "booking %s cannot be read for its %s work", marker["BookingId"], kind
                )
                continue
            if booking is None or kind not in booking.owed():
                # A marker outlived its reason (its clean-up was interrupted): heal it.
                if booking is not None:
                    self._clear_marker(booking, marker.get("BookingVersion", 0), kind)
                continue
            result.append(booking)
            if len(result) >= limit:
                break
        return result

    def list_starting_between(
        self, tenant_id: str, start_from: datetime, start_to: datetime
    ) -> list[Booking]:
        pk = validate_key(tenant_id, "tenant id")
        low = row_key(_START, _stamp(to_utc(start_from, "from")))
        high = row_key(_START, _stamp(to_utc(start_to, "to")))
        flt = f"{_pk_filter(pk)} and RowKey ge '{low}' and RowKey lt '{high}'"
        found: list[Booking] = []
        for row in list(self._query(flt)):
            if "Version" in row:
                found.append(_copy_to_booking(row))  # written with the booking: never stale
                continue
            # A row of the older layout carries no copy and may be left behind by a reschedule
            # or a cancellation: the point read is the truth.
            booking = self._get_or_none(pk, row["BookingId"])
            if booking is not None and _start_row_key(booking) == row["RowKey"]:
                found.append(booking)
                continue
            self._delete_unchanged(pk, row)
        return sorted(found, key=position_of)

    def list_meeting_failed(
        self, tenant_id: str, start_from: datetime, limit: int = 500
    ) -> list[Booking]:
        pk = validate_key(tenant_id, "tenant id")
        stamp = to_utc(start_from, "from").strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        flt = (
            f"{_pk_filter(pk)} and {prefix_range(_BOOKING + '|')} and MeetingFailed eq true "
            f"and Start ge datetime'{stamp}'"
        )
        found = [entity_to_booking(e) for e in self._query(flt)]
        return sorted(found, key=lambda b: (b.start, b.booking_id))[:limit]

    def _remember(self, booking: Booking) -> Booking:
        """Note which markers this version is stored with; returns `booking`."""
        if booking.etag is not None:
            key = (booking.tenant_id, booking.booking_id, booking.etag)
            with self._stored_lock:
                self._stored_markers[key] = _wanted(booking)
                self._stored_markers.move_to_end(key)
                while len(self._stored_markers) > _KNOWN_VERSIONS:
                    self._stored_markers.popitem(last=False)
        return booking

    def _markers_of_version(self, booking: Booking) -> frozenset[str] | None:
        """The markers stored with the version `booking` was read as (its ETag), if known."""
        if booking.etag is None:
            return None
        with self._stored_lock:
            return self._stored_markers.get((booking.tenant_id, booking.booking_id, booking.etag))

    def reindex(self, tenant_id: str) -> int:
        """Bring the tenant's bookings stored before the listing indexes into the current
        layout: each booking without `IndexRows` is saved once (so its copies are written),
        then the rows of the older participant index are deleted. Returns how many bookings
        were saved. Safe alongside the app (a booking saved meanwhile was indexed by that save)
        and to run again."""
        pk = validate_key(tenant_id, "tenant id")
        saved = 0
        for entity in list(self._query(f"{_pk_filter(pk)} and {prefix_range(_BOOKING + '|')}")):
            if entity.get("IndexRows") is not None:
                continue
            with contextlib.suppress(ConcurrencyError):
                self.update(entity_to_booking(entity))
                saved += 1
        for row in list(self._query(f"{_pk_filter(pk)} and {prefix_range(_LEGACY + '|')}")):
            with contextlib.suppress(NotFoundError), translated_errors("old index row"):
                self._table.delete_entity(pk, row["RowKey"])
        return saved

    def _query(self, flt: str) -> Iterator[Any]:
        with translated_errors("bookings query"):
            for entity in self._table.query_entities(flt):
                self._tables.reads += 1
                yield entity

    def _delete_unchanged(self, pk: str, row: Any) -> None:
        """Delete an index row unless it was written again since it was read (by a save that
        moved its booking back to it: then it is that save's row)."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError

        with (
            contextlib.suppress(NotFoundError, ConcurrencyError, ResourceModifiedError),
            translated_errors("start index row"),
        ):
            self._table.delete_entity(
                pk,
                row["RowKey"],
                etag=row.metadata["etag"],
                match_condition=MatchConditions.IfNotModified,
            )

    def _get_or_none(self, tenant_id: str, booking_id: str) -> Booking | None:
        try:
            return self.get(tenant_id, booking_id)
        except NotFoundError:
            return None

    def _clear_marker(self, booking: Booking, up_to_version: int, kind: str) -> None:
        """Delete the marker unless a newer write (a higher booking version) put it there."""
        self._delete_unless_newer(
            booking.tenant_id, _marker_key(kind, booking.booking_id), up_to_version
        )

    def _delete_unless_newer(self, pk: str, rk: str, up_to_version: int) -> None:
        """Delete a marker or index row unless a newer write (a higher booking version: a
        marker's `BookingVersion`, a copy's `Version`) put it there."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

        try:
            with translated_errors(f"row {rk}"):
                row = self._table.get_entity(pk, rk)
        except NotFoundError:
            return
        if int(row.get("BookingVersion", row.get("Version", 0))) > up_to_version:
            return
        # If the row changed or went meanwhile, someone newer owns it: leave it.
        with contextlib.suppress(ResourceModifiedError, ResourceNotFoundError):
            self._table.delete_entity(
                pk, rk, etag=row.metadata["etag"], match_condition=MatchConditions.IfNotModified
            )


def _wanted(booking: Booking) -> frozenset[str]:
    """The kinds of work whose markers a booking version is saved with (in its transaction)."""
    return frozenset(booking.owed())


def _marker_key(kind: str, booking_id: str) -> str:
    prefix = _MARKER_PREFIX.get(kind)
    if prefix is not None:
        return row_key(prefix, booking_id)
    return row_key(_WORK, kind, booking_id)


def _pk_filter(pk: str) -> str:
    return "PartitionKey eq '" + pk.replace("'", "''") + "'"


def _booking_keys(tenant_id: str, booking_id: str) -> tuple[str, str]:
    return (
        validate_key(tenant_id, "tenant id"),
        row_key(_BOOKING, validate_key(booking_id, "booking id")),
    )


def _quote(value: str) -> str:
    return value.replace("'", "''")


def _list_stamp(moment: datetime) -> str:
    # Fixed width to the microsecond, so that row keys sort exactly as the starts do.
    return to_utc(moment, "start").strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _listing_suffix(start: datetime, booking_id: str) -> str:
    return row_key(_list_stamp(start), validate_key(booking_id, "booking id"))


def _listing_keys(booking: Booking) -> list[str]:
    """The keys of the booking's listing rows: by start, and by participant and start."""
    suffix = _listing_suffix(booking.start, booking.booking_id)
    return [
        row_key(_BY_START, suffix),
        *(
            row_key(_PARTICIPANT, validate_key(pid, "participant id"), suffix)
            for pid in sorted(booking.participant_ids)
        ),
    ]


def _moving_keys(booking: Booking) -> tuple[str, ...]:
    """The index rows whose keys follow the booking's state; a save deletes the ones its
    previous version had and it no longer has (markers are cleared on their own)."""
    start_key = _start_row_key(booking)
    return (*_listing_keys(booking), *([] if start_key is None else [start_key]))


def _copy_row(entity: dict[str, Any], rk: str, kind: str) -> dict[str, Any]:
    # The keys of the index rows matter only on the booking's own row (its save reads them).
    copy = {**entity, "RowKey": rk, "Kind": kind}
    del copy["IndexRows"]
    return copy


def _copy_to_booking(row: Any) -> Booking:
    # A copy's ETag is the index row's, not the booking's: it cannot guard a save.
    return replace(entity_to_booking(row), etag=None)


def _participant_rows(booking: Booking, entity: dict[str, Any]) -> list[dict[str, Any]]:
    """The listing rows: the booking's copy by start, and by each participant and start."""
    by_start, *by_participant = _listing_keys(booking)
    return [
        _copy_row(entity, by_start, "listing"),
        *(_copy_row(entity, rk, "participant") for rk in by_participant),
    ]


def _request_row(booking: Booking, request: RequestKey) -> dict[str, Any]:
    return {
        "PartitionKey": booking.tenant_id,
        "RowKey": row_key(_REQUEST, request.digest),
        "Kind": "request",
        "BookingId": booking.booking_id,
        "Fingerprint": request.fingerprint,
        "CallerId": request.caller_id,
    }


def rows_for(booking: Booking) -> list[dict[str, Any]]:
    """Every row a booking is stored as (the booking and its index rows), for bulk loads."""
    entity = booking_to_entity(booking)
    return [entity, *_index_rows(booking, entity)]


def _index_upserts(booking: Booking) -> list[Any]:
    """The index rows as whole-row upserts: a merge would keep properties a newer write left
    out (the SDK drops None), e.g. an old retry time on the marker. A save of a booking read
    earlier also deletes the index rows its stored version had and this one does not."""
    from azure.data.tables import UpdateMode

    operations: list[Any] = [
        ("upsert", row, {"mode": UpdateMode.REPLACE}) for row in _index_rows(booking)
    ]
    if booking.etag is not None:
        keep = set(_moving_keys(booking))
        operations += [
            ("delete", {"PartitionKey": booking.tenant_id, "RowKey": rk})
            for rk in booking.index_rows
            if rk not in keep
        ]
    return operations


def _index_rows(booking: Booking, entity: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The rows written with the booking in its transaction: its listing copies (by start, by
    participant), the "needs work" marker while a meeting step is outstanding, and the start
    index copy while a meeting is wanted. `entity`: the booking's own row, if made already."""
    entity = booking_to_entity(booking) if entity is None else entity
    rows = _participant_rows(booking, entity)
    for kind, not_before in booking.owed().items():
        rows.append(_marker_row(booking, kind, not_before))
    start_key = _start_row_key(booking)
    if start_key is not None:
        # A copy: verification decides from it whether Teams is due to be asked (its last
        # answer is recorded in the same write), so a booking checked recently costs one row.
        rows.append(_copy_row(entity, start_key, "start"))
    return rows


def _start_row_key(booking: Booking) -> str | None:
    if not (booking.live and booking.meeting.wanted):
        return None
    return row_key(_START, _stamp(to_utc(booking.start, "start")), booking.booking_id)


def _stamp(moment: datetime) -> str:
    # Fixed width, so row keys sort by time.
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _marker_row(booking: Booking, kind: str, not_before: datetime | None) -> dict[str, Any]:
    return {
        "PartitionKey": booking.tenant_id,
        "RowKey": _marker_key(kind, booking.booking_id),
        "Kind": _MARKER_KIND_COLUMN.get(kind, kind),
        "BookingId": booking.booking_id,
        "BookingVersion": booking.version,
        # A retry is already scheduled for then: the timer leaves it to the queue.
        "NotBefore": _opt_utc(not_before, f"next {kind} attempt"),
    }


def _mail_json(mail: MailState) -> str | None:
    if mail == MailState():
        return None

    def moment(value: datetime | None) -> str | None:
        return None if value is None else to_utc(value, "mail time").isoformat()

    return json.dumps(
        {
            "issued": mail.issued,
            "invites": mail.invites,
            "sent": mail.sent,
            "failed": mail.failed,
            "lastFailed": mail.last_failed,
            "lastErrorCode": mail.last_error_code,
            "lastSentAt": moment(mail.last_sent_at),
            "linkOwed": mail.link_owed,
            "owedTo": list(mail.owed_to),
            "told": None
            if mail.told is None
            else {
                "start": moment(mail.told.start),
                "end": moment(mail.told.end),
                "link": mail.told.link,
            },
            "pending": [
                {
                    "kind": n.kind.value,
                    "number": n.number,
                    "sequence": n.sequence,
                    "recordedAt": moment(n.recorded_at),
                    "attempts": n.attempts,
                    "rounds": n.rounds,
                    "nextAttemptAt": moment(n.next_attempt_at),
                    "lastErrorCode": n.last_error_code,
                    "to": list(n.to),
                    "withoutLink": list(n.without_link),
                }
                for n in mail.pending
            ],
        },
        separators=(",", ":"),
    )


def _told(data: Any) -> Told | None:
    """What the last delivered notice told (absent in rows saved before it was kept)."""
    if not data:
        return None
    link = data.get("link")
    return Told(
        start=datetime.fromisoformat(str(data["start"])),
        end=datetime.fromisoformat(str(data["end"])),
        link=None if link is None else str(link),
    )


def _mail_state(reader: EntityReader) -> MailState:
    if reader.opt_text("Mail") is None:
        return MailState()
    data = reader.json_value("Mail")

    def moment(value: Any) -> datetime | None:
        return None if value is None else datetime.fromisoformat(str(value))

    try:
        return MailState(
            issued=int(data["issued"]),
            invites=int(data["invites"]),
            sent=int(data["sent"]),
            failed=int(data["failed"]),
            last_failed=bool(data["lastFailed"]),
            last_error_code=data.get("lastErrorCode"),
            last_sent_at=moment(data.get("lastSentAt")),
            link_owed=bool(data.get("linkOwed", False)),
            owed_to=tuple(str(a) for a in data.get("owedTo") or ()),
            told=_told(data.get("told")),
            pending=tuple(
                Notice(
                    kind=NoticeKind(n["kind"]),
                    number=int(n["number"]),
                    sequence=int(n["sequence"]),
                    recorded_at=datetime.fromisoformat(str(n["recordedAt"])),
                    attempts=int(n["attempts"]),
                    rounds=int(n["rounds"]),
                    next_attempt_at=moment(n.get("nextAttemptAt")),
                    last_error_code=n.get("lastErrorCode"),
                    to=tuple(str(a) for a in n.get("to") or ()),
                    without_link=tuple(str(a) for a in n.get("withoutLink") or ()),
                )
                for n in data["pending"]
            ),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise reader.fail(f"Mail does not fit the schema ({exc})") from exc


def _work_json(works: Works) -> str | None:
    if not works:
        return None

    def moment(value: datetime | None) -> str | None:
        return None if value is None else to_utc(value, "work time").isoformat()

    return json.dumps(
        [
            {
                "kind": w.kind,
                "owed": w.owed,
                "rounds": w.rounds,
                "nextAttemptAt": moment(w.next_attempt_at),
                "failedCode": w.failed_code,
                "doneAt": moment(w.done_at),
                "leaseToken": w.lease.token,
                "leaseUntil": moment(w.lease.until),
            }
            for w in works
        ],
        separators=(",", ":"),
    )


def _work_states(reader: EntityReader) -> Works:
    if reader.opt_text("Work") is None:
        return ()

    def moment(value: Any) -> datetime | None:
        if value is None:
            return None
        parsed = datetime.fromisoformat(str(value))
        if parsed.tzinfo is None:
            raise ValueError(f"{value!r} has no UTC offset")
        return parsed

    def text(value: Any) -> str | None:
        if value is not None and not isinstance(value, str):
            raise TypeError(f"{value!r} is not text")
        return value

    def work_state(w: Any) -> WorkState:
        if not isinstance(w["owed"], bool) or type(w["rounds"]) is not int:
            raise TypeError("owed must be true or false, rounds a number")
        return WorkState(
            kind=str(text(w["kind"])),
            owed=w["owed"],
            rounds=w["rounds"],
            next_attempt_at=moment(w.get("nextAttemptAt")),
            failed_code=text(w.get("failedCode")),
            done_at=moment(w.get("doneAt")),
            lease=Lease(text(w.get("leaseToken")), moment(w.get("leaseUntil"))),
        )

    try:
        return tuple(work_state(w) for w in reader.json_value("Work"))
    except (KeyError, TypeError, ValueError) as exc:
        raise reader.fail(f"Work does not fit the schema ({exc})") from exc


def _reminders_json(reminders: Reminders) -> str | None:
    if not reminders.sent:
        return None
    return json.dumps(
        [
            {
                "offsetMinutes": r.offset_minutes,
                "forStart": to_utc(r.for_start, "reminder start").isoformat(),
                "at": to_utc(r.at, "reminder time").isoformat(),
                "notice": r.notice,
            }
            for r in reminders.sent
        ],
        separators=(",", ":"),
    )


def _attendance_json(attendance: Attendance | None) -> str | None:
    if attendance is None:
        return None

    def moment(value: datetime | None) -> str | None:
        return None if value is None else to_utc(value, "attendance time").isoformat()

    return json.dumps(
        {
            "outcome": attendance.outcome.value,
            "source": attendance.source.value,
            "recordedAt": moment(attendance.recorded_at),
            "unmatched": attendance.unmatched,
            "errorCode": attendance.error_code,
            "participants": [
                {
                    "userId": p.user_id,
                    "joined": p.joined,
                    "firstJoin": moment(p.first_join),
                    "lastLeave": moment(p.last_leave),
                    "totalSeconds": p.total_seconds,
                }
                for p in attendance.participants
            ],
        },
        separators=(",", ":"),
    )


def _reminders_from(reader: EntityReader) -> Reminders:
    if reader.opt_text("Reminders") is None:
        return Reminders()

    def moment(value: Any) -> datetime:
        parsed = datetime.fromisoformat(str(value))
        if parsed.tzinfo is None:
            raise ValueError(f"{value!r} has no UTC offset")
        return parsed

    def sent(r: Any) -> SentReminder:
        if type(r["offsetMinutes"]) is not int or type(r["notice"]) is not int:
            raise TypeError("offsetMinutes and notice must be numbers")
        return SentReminder(r["offsetMinutes"], moment(r["forStart"]), moment(r["at"]), r["notice"])

    try:
        return Reminders(tuple(sent(r) for r in reader.json_value("Reminders")))
    except (KeyError, TypeError, ValueError) as exc:
        raise reader.fail(f"Reminders does not fit the schema ({exc})") from exc


def _attendance(reader: EntityReader) -> Attendance | None:
    if reader.opt_text("Attendance") is None:
        return None

    def moment(value: Any) -> datetime | None:
        return None if value is None else datetime.fromisoformat(str(value)).astimezone(UTC)

    try:
        data = reader.json_value("Attendance")
        recorded = moment(data["recordedAt"])
        if recorded is None:
            raise ValueError("recordedAt is required")
        return Attendance(
            outcome=LessonOutcome(data["outcome"]),
            source=AttendanceSource(data["source"]),
            recorded_at=recorded,
            unmatched=int(data.get("unmatched") or 0),
            error_code=data.get("errorCode"),
            participants=tuple(
                ParticipantAttendance(
                    user_id=str(p["userId"]),
                    joined=bool(p["joined"]),
                    first_join=moment(p.get("firstJoin")),
                    last_leave=moment(p.get("lastLeave")),
                    total_seconds=int(p.get("totalSeconds") or 0),
                )
                for p in data["participants"]
            ),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise reader.fail(f"Attendance does not fit the schema ({exc})") from exc


def booking_to_entity(booking: Booking) -> dict[str, Any]:
    """Map a booking to its table entity; raise `SchemaError`/`InvalidKeyError` if it can't fit."""
    pk, rk = _booking_keys(booking.tenant_id, booking.booking_id)
    for participant_id in booking.participant_ids:
        validate_key(participant_id, "participant id")
    start, end = to_utc(booking.start, "start"), to_utc(booking.end, "end")
    meeting = booking.meeting
    participants = json.dumps(
        [
            {
                "userId": p.user_id,
                "role": p.role.value,
                "email": p.email,
                "displayName": p.display_name,
                # Only when one was given: rows stay as they were for everyone else.
                **({"locale": p.locale} if p.locale else {}),
            }
            for p in booking.participants
        ],
        separators=(",", ":"),
        # As the text is: an escape (\uXXXX) would take 6 to 12 characters of the property's
        # 64 KiB for each character outside ASCII, so names the API accepts would not fit.
        ensure_ascii=False,
    )
    return {
        "PartitionKey": pk,
        "RowKey": rk,
        "Kind": "booking",
        "Version": booking.version,
        "BookingId": booking.booking_id,
        "Status": booking.status.value,
        "Subject": check_string(booking.subject, "subject"),
        "Level": check_string(booking.level, "level"),
        "Start": start,
        "End": end,
        "TimeZone": check_string(booking.time_zone, "time zone"),
        "Participants": check_string(participants, "participants"),
        "CreatedBy": booking.created_by,
        "CreatedAt": to_utc(booking.created_at, "createdAt"),
        "UpdatedAt": to_utc(booking.updated_at, "updatedAt"),
        "AssigneeId": booking.assignee_id,
        "InternalNotes": check_string(booking.internal_notes, "internal notes"),
        "StatusReason": check_string(booking.status_reason, "reason"),
        "MeetingWanted": meeting.wanted,
        "MeetingGeneration": meeting.generation,
        "MeetingRevision": meeting.revision,
        "MeetingRequestedAt": _opt_utc(meeting.requested_at, "requested"),
        "MeetingStatus": meeting.status.value,
        "MeetingProvider": meeting.provider,
        "MeetingJoinUrl": check_string(meeting.join_url, "join URL"),
        "MeetingId": check_string(meeting.meeting_id, "meeting id"),
        "MeetingOrganizerId": meeting.organizer_id,
        "MeetingSyncedStart": _opt_utc(meeting.synced_start, "synced"),
        "MeetingSyncedEnd": _opt_utc(meeting.synced_end, "synced"),
        "MeetingOptionsApplied": meeting.options_applied,
        "MeetingRemoved": meeting.removed,
        "MeetingCreateInDoubt": meeting.create_in_doubt,
        "MeetingVerifiedAt": _opt_utc(meeting.verified_at, "verified"),
        "MeetingAttempts": meeting.attempts,
        "MeetingLastErrorCode": meeting.last_error_code,
        "MeetingFailed": meeting.failed,
        "MeetingNextAttemptAt": _opt_utc(meeting.next_attempt_at, "next attempt"),
        "MeetingRounds": meeting.rounds,
        "MeetingRemade": meeting.remade,
        "MeetingClaimToken": meeting.claim_token,
        "MeetingClaimUntil": _opt_utc(meeting.claim_until, "claim"),
        "MeetingChangedAt": _opt_utc(meeting.changed_at, "changed"),
        **_payment_fields(booking.payment),
        "Mail": check_string(_mail_json(booking.mail), "mail"),
        "Work": check_string(_work_json(booking.work), "work"),
        "Reminders": _reminders_json(booking.reminders),
        "Attendance": check_string(_attendance_json(booking.attendance), "attendance"),
        "IndexRows": json.dumps(_moving_keys(booking), separators=(",", ":")),
    }


def _payment_fields(payment: PaymentState) -> dict[str, Any]:
    """The payment as one JSON property (its intents are few; see MAX_INTENTS)."""
    if payment == PaymentState():
        return {"Payment": None}
    return {"Payment": check_string(payment_to_json(payment), "payment")}


def payment_to_json(payment: PaymentState) -> str:
    def at(moment: datetime | None) -> str | None:
        return None if moment is None else to_utc(moment, "payment time").isoformat()

    return json.dumps(
        {
            "intents": [
                {
                    "id": i.intent_id,
                    "paidAt": at(i.paid_at),
                    "amount": i.amount,
                    "charged": i.charged,
                    "currency": i.currency,
                    "refunded": i.amount_refunded,
                    "refundedAt": at(i.refunded_at),
                }
                for i in payment.intents
            ],
            "failureCode": payment.failure_code,
            "failureMessage": payment.failure_message,
            "failedAt": at(payment.failed_at),
        },
        separators=(",", ":"),
    )


def _payment_from(r: EntityReader) -> PaymentState:
    raw = r.opt_text("Payment")
    if raw is None:
        return PaymentState()
    try:
        data = json.loads(raw)

        def at(value: Any) -> datetime | None:
            return None if value is None else datetime.fromisoformat(value).astimezone(UTC)

        return PaymentState(
            intents=tuple(
                IntentPayment(
                    intent_id=str(i["id"]),
                    paid_at=at(i.get("paidAt")),
                    amount=i.get("amount"),
                    charged=i.get("charged"),
                    currency=i.get("currency"),
                    amount_refunded=int(i.get("refunded") or 0),
                    refunded_at=at(i.get("refundedAt")),
                )
                for i in data["intents"]
            ),
            failure_code=data.get("failureCode"),
            failure_message=data.get("failureMessage"),
            failed_at=at(data.get("failedAt")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise r.fail(f"Payment does not fit the schema ({exc})") from exc


def _opt_utc(value: datetime | None, what: str) -> datetime | None:
    return None if value is None else to_utc(value, what)


def entity_to_booking(entity: Any) -> Booking:
    """Read a stored booking; a row that does not fit the schema raises `SchemaError`.
    The meeting status is derived again from the stored state, never trusted on its own."""
    r = EntityReader(entity, "booking")
    try:
        participants = tuple(
            Participant(
                user_id=str(p["userId"]),
                role=ParticipantRole(p["role"]),
                email=str(p["email"]),
                display_name=p.get("displayName"),
                locale=p.get("locale"),
            )
            for p in r.json_value("Participants")
        )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, SchemaError):
            raise
        raise r.fail(f"Participants do not fit the schema ({exc})") from exc
    return settled(
        Booking(
            tenant_id=r.text("PartitionKey"),
            booking_id=r.text("BookingId"),
            status=r.enum("Status", BookingStatus),
            subject=r.text("Subject"),
            level=r.opt_text("Level"),
            start=r.moment("Start"),
            end=r.moment("End"),
            time_zone=r.text("TimeZone"),
            participants=participants,
            created_by=r.text("CreatedBy"),
            created_at=r.moment("CreatedAt"),
            updated_at=r.moment("UpdatedAt"),
            assignee_id=r.opt_text("AssigneeId"),
            internal_notes=r.opt_text("InternalNotes"),
            status_reason=r.opt_text("StatusReason"),
            meeting=MeetingState(
                wanted=r.flag("MeetingWanted"),
                generation=r.number("MeetingGeneration", default=1),
                revision=r.number("MeetingRevision", default=0),
                requested_at=r.opt_moment("MeetingRequestedAt"),
                provider=r.opt_text("MeetingProvider"),
                meeting_id=r.opt_text("MeetingId"),
                join_url=r.opt_text("MeetingJoinUrl"),
                organizer_id=r.opt_text("MeetingOrganizerId"),
                synced_start=r.opt_moment("MeetingSyncedStart"),
                synced_end=r.opt_moment("MeetingSyncedEnd"),
                options_applied=r.flag("MeetingOptionsApplied"),
                removed=r.flag("MeetingRemoved"),
                create_in_doubt=r.flag("MeetingCreateInDoubt"),
                verified_at=r.opt_moment("MeetingVerifiedAt"),
                attempts=r.number("MeetingAttempts", default=0),
                last_error_code=r.opt_text("MeetingLastErrorCode"),
                failed=r.flag("MeetingFailed"),
                next_attempt_at=r.opt_moment("MeetingNextAttemptAt"),
                rounds=r.number("MeetingRounds", default=0),
                remade=r.number("MeetingRemade", default=0),
                claim_token=r.opt_text("MeetingClaimToken"),
                claim_until=r.opt_moment("MeetingClaimUntil"),
                changed_at=r.opt_moment("MeetingChangedAt"),
            ),
            payment=_payment_from(r),
            mail=_mail_state(r),
            work=_work_states(r),
            reminders=_reminders_from(r),
            attendance=_attendance(r),
            version=r.number("Version", default=1),
            etag=entity.metadata.get("etag") if hasattr(entity, "metadata") else None,
            index_rows=_stored_index_rows(r),
        )
    )


def _stored_index_rows(r: EntityReader) -> tuple[str, ...]:
    # A booking of the older layout names none: its save deletes nothing it cannot know of.
    if r.opt_text("IndexRows") is None:
        return ()
    keys = r.json_value("IndexRows")
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise r.fail("IndexRows does not fit the schema")
    return tuple(keys)
