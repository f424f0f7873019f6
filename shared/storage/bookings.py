"""Booking persistence.

Partition design (one table, `bookings`; see docs/architecture.md):

    PartitionKey = tenant id              every query is inside one tenant
    RowKey  b|{bookingId}                 the booking itself
            p|{participantId}|{bookingId} "bookings of this participant" index row
            r|{bookingId}                 marker: this booking's meeting needs work (the outbox)
            s|{startUtc}|{bookingId}      start-time index of bookings whose meeting is wanted
            k|{requestKeyDigest}          a create's Idempotency-Key → the booking it made
            m|{bookingId}                 marker: this booking owes e-mail (the mail outbox)
            a|...                         audit records (shared/storage/audit.py), written in
                                          the transaction of the booking state they led to

Because the three kinds share the tenant's partition, a booking and its index rows are written
in one entity-group transaction, guarded by the booking's ETag. Listing a tenant's bookings is a
range scan over `b|`; a participant's a range scan over `p|{id}|` followed by point reads; the
reconciler reads only `r|` rows, so its cost grows with the bookings that need work, not with all;
pre-start verification reads only the `s|` rows of its window. Index rows left behind by a
reschedule or a cancellation are filtered out by the point read and then deleted.
A create that carries an Idempotency-Key inserts its `k|` row in the same transaction, so a
repeated request can never make a second booking.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from shared.domain.audit import AuditRecord
from shared.domain.booking import (
    Booking,
    BookingStatus,
    MeetingState,
    Participant,
    ParticipantRole,
    settled,
)
from shared.domain.notices import MailState, Notice, NoticeKind
from shared.domain.payment import IntentPayment, PaymentState
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

TABLE = "bookings"
_BOOKING, _PARTICIPANT, _RECONCILE, _REQUEST, _START = "b", "p", "r", "k", "s"
_MAIL = "m"
_MARKER_KINDS = frozenset((_RECONCILE, _MAIL))
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


@dataclass(frozen=True)
class BookingQuery:
    """Filters for listing; times compare with the booking's start."""

    status: BookingStatus | None = None
    start_from: datetime | None = None
    start_to: datetime | None = None
    limit: int = 100


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

    def list_for_tenant(self, tenant_id: str, query: BookingQuery) -> list[Booking]: ...

    def list_for_participant(
        self, tenant_id: str, participant_id: str, query: BookingQuery
    ) -> list[Booking]: ...

    def list_needing_reconciliation(
        self, tenant_id: str, limit: int = 100, due_by: datetime | None = None
    ) -> list[Booking]:
        """Bookings carrying the "needs work" marker, read through the marker index only.
        With `due_by`, those whose scheduled retry is later are left to it."""
        ...

    def list_starting_between(
        self, tenant_id: str, start_from: datetime, start_to: datetime
    ) -> list[Booking]:
        """Bookings whose meeting is wanted and that start in [start_from, start_to)."""
        ...

    def list_owing_mail(
        self, tenant_id: str, limit: int = 100, due_by: datetime | None = None
    ) -> list[Booking]:
        """Bookings with pending notices, read through the mail marker index only. With
        `due_by`, those whose every notice waits for a later scheduled retry are left to it."""
        ...

    def list_meeting_failed(
        self, tenant_id: str, start_from: datetime, limit: int = 500
    ) -> list[Booking]:
        """Bookings whose meeting work stopped for good and that start at or after
        `start_from`, earliest first. Failed work has no marker: the booking rows are filtered
        by the table service itself, so only failed ones are returned (and read)."""
        ...


def matches(booking: Booking, query: BookingQuery) -> bool:
    if query.status is not None and booking.status is not query.status:
        return False
    if query.start_from is not None and booking.start < query.start_from:
        return False
    return not (query.start_to is not None and booking.start >= query.start_to)


def sort_and_limit(bookings: Iterable[Booking], query: BookingQuery) -> list[Booking]:
    ordered = sorted(bookings, key=lambda b: (b.start, b.booking_id))
    return ordered[: query.limit]


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
        return self._remember(replace(booking, etag=results[0]["etag"]))

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
        for kind in sorted(_MARKER_KINDS - _wanted(saved)):
            if known is None:
                apart.append(kind)
            elif kind in known:
                row = {"PartitionKey": booking.tenant_id, "RowKey": row_key(kind, saved.booking_id)}
                operations.append(("delete", row))
        for record in audit:
            if record.tenant_id != booking.tenant_id:
                raise SchemaError(f"audit record {record.record_id} is another tenant's")
            operations += [("create", row) for row in audit_rows(record)]
        with translated_errors(f"booking {booking.booking_id}"):
            results = self._table.submit_transaction(operations)
        for kind in apart:
            # The version read is not known here (read by another repository, or long ago):
            # delete the marker apart, unless a newer write (a higher booking version) put it.
            self._clear_marker(saved, up_to_version=saved.version, kind=kind)
        return self._remember(replace(saved, etag=results[0]["etag"]))

    def list_for_tenant(self, tenant_id: str, query: BookingQuery) -> list[Booking]:
        pk = validate_key(tenant_id, "tenant id")
        found = (
            entity_to_booking(e)
            for e in self._query(f"{_pk_filter(pk)} and {prefix_range(_BOOKING + '|')}")
        )
        return sort_and_limit((b for b in found if matches(b, query)), query)

    def list_for_participant(
        self, tenant_id: str, participant_id: str, query: BookingQuery
    ) -> list[Booking]:
        pk = validate_key(tenant_id, "tenant id")
        prefix = row_key(_PARTICIPANT, validate_key(participant_id, "participant id"), "")
        ids = [e["BookingId"] for e in self._query(f"{_pk_filter(pk)} and {prefix_range(prefix)}")]
        # Index rows of a participant who was later removed are left behind: the point read
        # is the truth, so such a row simply filters out.
        found = (self._get_or_none(pk, booking_id) for booking_id in ids)
        return sort_and_limit(
            (
                b
                for b in found
                if b is not None and participant_id in b.participant_ids and matches(b, query)
            ),
            query,
        )

    def list_needing_reconciliation(
        self, tenant_id: str, limit: int = 100, due_by: datetime | None = None
    ) -> list[Booking]:
        pk = validate_key(tenant_id, "tenant id")
        flt = f"{_pk_filter(pk)} and {prefix_range(_RECONCILE + '|')}"
        result: list[Booking] = []
        for marker in self._query(flt):
            not_before = marker.get("NotBefore")
            if due_by is not None and not_before is not None and not_before > due_by:
                continue
            booking = self._get_or_none(pk, marker["BookingId"])
            if booking is None or not booking.needs_reconciliation:
                # A marker outlived its reason (its clean-up was interrupted): heal it.
                if booking is not None:
                    self._clear_marker(booking, up_to_version=marker.get("BookingVersion", 0))
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
            booking = self._get_or_none(pk, row["BookingId"])
            if booking is not None and _start_row_key(booking) == row["RowKey"]:
                found.append(booking)
                continue
            # Left behind by a reschedule or a cancellation: the point read is the truth.
            with contextlib.suppress(NotFoundError), translated_errors("start index row"):
                self._table.delete_entity(pk, row["RowKey"])
        return sorted(found, key=lambda b: (b.start, b.booking_id))

    def list_owing_mail(
        self, tenant_id: str, limit: int = 100, due_by: datetime | None = None
    ) -> list[Booking]:
        pk = validate_key(tenant_id, "tenant id")
        result: list[Booking] = []
        for marker in self._query(f"{_pk_filter(pk)} and {prefix_range(_MAIL + '|')}"):
            not_before = marker.get("NotBefore")
            if due_by is not None and not_before is not None and not_before > due_by:
                continue
            booking = self._get_or_none(pk, marker["BookingId"])
            if booking is None or not booking.mail.pending:
                if booking is not None:
                    self._clear_marker(
                        booking, up_to_version=marker.get("BookingVersion", 0), kind=_MAIL
                    )
                continue
            result.append(booking)
            if len(result) >= limit:
                break
        return result

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

    def _query(self, flt: str) -> Iterator[Any]:
        with translated_errors("bookings query"):
            for entity in self._table.query_entities(flt):
                self._tables.reads += 1
                yield entity

    def _get_or_none(self, tenant_id: str, booking_id: str) -> Booking | None:
        try:
            return self.get(tenant_id, booking_id)
        except NotFoundError:
            return None

    def _clear_marker(self, booking: Booking, up_to_version: int, kind: str = _RECONCILE) -> None:
        """Delete the marker unless a newer write (a higher booking version) put it there."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

        rk = row_key(kind, booking.booking_id)
        try:
            with translated_errors(f"reconcile marker {booking.booking_id}"):
                marker = self._table.get_entity(booking.tenant_id, rk)
        except NotFoundError:
            return
        if int(marker.get("BookingVersion", 0)) > up_to_version:
            return
        # If the marker changed or went meanwhile, someone newer owns it: leave it.
        with contextlib.suppress(ResourceModifiedError, ResourceNotFoundError):
            self._table.delete_entity(
                booking.tenant_id,
                rk,
                etag=marker.metadata["etag"],
                match_condition=MatchConditions.IfNotModified,
            )


def _wanted(booking: Booking) -> frozenset[str]:
    """The marker kinds a booking version is saved with (in the transaction of its row)."""
    kinds = set()
    if booking.needs_reconciliation:
        kinds.add(_RECONCILE)
    if booking.mail.pending:
        kinds.add(_MAIL)
    return frozenset(kinds)


def _pk_filter(pk: str) -> str:
    return "PartitionKey eq '" + pk.replace("'", "''") + "'"


def _booking_keys(tenant_id: str, booking_id: str) -> tuple[str, str]:
    return (
        validate_key(tenant_id, "tenant id"),
        row_key(_BOOKING, validate_key(booking_id, "booking id")),
    )


def _participant_rows(booking: Booking) -> list[dict[str, Any]]:
    return [
        {
            "PartitionKey": booking.tenant_id,
            "RowKey": row_key(
                _PARTICIPANT, validate_key(pid, "participant id"), booking.booking_id
            ),
            "Kind": "participant",
            "BookingId": booking.booking_id,
        }
        for pid in sorted(booking.participant_ids)
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
    return [booking_to_entity(booking), *_index_rows(booking)]


def _index_upserts(booking: Booking) -> list[Any]:
    """The index rows as whole-row upserts: a merge would keep properties a newer write left
    out (the SDK drops None), e.g. an old retry time on the marker."""
    from azure.data.tables import UpdateMode

    return [("upsert", row, {"mode": UpdateMode.REPLACE}) for row in _index_rows(booking)]


def _index_rows(booking: Booking) -> list[dict[str, Any]]:
    """The rows written with the booking in its transaction: participants, the "needs work"
    marker while a meeting step is outstanding, and the start index while a meeting is wanted."""
    rows = _participant_rows(booking)
    if booking.needs_reconciliation:
        rows.append(_marker_row(booking))
    if booking.mail.pending:
        rows.append(_mail_marker_row(booking))
    start_key = _start_row_key(booking)
    if start_key is not None:
        rows.append(
            {
                "PartitionKey": booking.tenant_id,
                "RowKey": start_key,
                "Kind": "start",
                "BookingId": booking.booking_id,
            }
        )
    return rows


def _start_row_key(booking: Booking) -> str | None:
    if not (booking.live and booking.meeting.wanted):
        return None
    return row_key(_START, _stamp(to_utc(booking.start, "start")), booking.booking_id)


def _stamp(moment: datetime) -> str:
    # Fixed width, so row keys sort by time.
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _marker_row(booking: Booking) -> dict[str, Any]:
    return {
        "PartitionKey": booking.tenant_id,
        "RowKey": row_key(_RECONCILE, booking.booking_id),
        "Kind": "reconcile",
        "BookingId": booking.booking_id,
        "BookingVersion": booking.version,
        # A retry is already scheduled for then: the reconciler leaves it to the queue.
        "NotBefore": _opt_utc(booking.meeting.next_attempt_at, "next attempt"),
    }


def _mail_marker_row(booking: Booking) -> dict[str, Any]:
    return {
        "PartitionKey": booking.tenant_id,
        "RowKey": row_key(_MAIL, booking.booking_id),
        "Kind": "mail",
        "BookingId": booking.booking_id,
        "BookingVersion": booking.version,
        "NotBefore": _opt_utc(booking.mail.next_attempt_at(), "next mail attempt"),
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
                }
                for n in mail.pending
            ],
        },
        separators=(",", ":"),
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
                )
                for n in data["pending"]
            ),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise reader.fail(f"Mail does not fit the schema ({exc})") from exc


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
            }
            for p in booking.participants
        ],
        separators=(",", ":"),
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
            version=r.number("Version", default=1),
            etag=entity.metadata.get("etag") if hasattr(entity, "metadata") else None,
        )
    )
