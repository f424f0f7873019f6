"""Stripe events this service has received, and what became of each (SPEC §6).

Table `paymentevents`, one partition (`stripe`), three kinds of row:

    e|{eventId}    the event record: type, the booking it names, the payment fact it carries,
                   state (received → applied | rejected), when, and a short claim
    q|{eventId}    "received, not yet applied": written with the record in one transaction and
                   deleted with its final state in another, so that the timer finds events
                   whose processing stopped half-way by a range scan over `q|` alone
    i|{intentId}   a payment intent → the booking it pays for, written before its success is
                   applied; and refunds of that intent that came first and named no booking
                   (their charge carried no metadata), parked here until the success names it

The record's insert is the idempotency check: a second delivery of the same event meets
`AlreadyExistsError` and does nothing more (unless the first stopped half-way; see
`shared/services/payments.py`).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from shared.domain.lease import Lease
from shared.domain.payment import BookingRef, FactKind, PaymentFact
from shared.storage.errors import AlreadyExistsError, ConcurrencyError, NotFoundError, SchemaError
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

TABLE = "paymentevents"
PARTITION = "stripe"
_EVENT, _PENDING, _INTENT = "e", "q", "i"


class EventState(StrEnum):
    RECEIVED = "received"  # recorded; applying it has not finished
    APPLIED = "applied"
    PARKED = "parked"  # a refund waiting on its intent's row for the success that names the booking
    REJECTED = "rejected"  # it can never apply (names no booking we have); logged as an error


@dataclass(frozen=True)
class ParkedFact:
    event_id: str
    fact: PaymentFact


@dataclass(frozen=True)
class RecordedEvent:
    event_id: str
    type: str
    state: EventState
    received_at: datetime
    source: str  # webhook | recovery
    ref: BookingRef | None = None
    fact: PaymentFact | None = None
    claim_until: datetime | None = None
    finished_at: datetime | None = None
    outcome: str | None = None
    attempts: int = 1  # receivers that took it on (the first, then take-overs)
    etag: str | None = None

    def claimed(self, now: datetime) -> bool:
        return Lease(None, self.claim_until).held(now)


class PaymentEventRepository(Protocol):
    def record(self, event: RecordedEvent) -> RecordedEvent:
        """Insert the record and its pending row; `AlreadyExistsError` if the id is known."""
        ...

    def get(self, event_id: str) -> RecordedEvent:
        """The record, or `NotFoundError`."""
        ...

    def claim(self, event: RecordedEvent, until: datetime) -> RecordedEvent:
        """Take the record over for applying until `until` (one more attempt);
        `ConcurrencyError` if it changed meanwhile."""
        ...

    def release(self, event: RecordedEvent) -> None:
        """Give the claim up (storage failed the receiver): the next receiver takes the record
        over at once, and this receiver's attempt is not counted (storage trouble is not a
        reason to give the event up). `ConcurrencyError` if it changed meanwhile."""
        ...

    def finish(self, event: RecordedEvent, state: EventState, outcome: str, at: datetime) -> None:
        """Save the final state and delete the pending row, in one transaction."""
        ...

    def list_pending(self, limit: int = 100) -> list[RecordedEvent]:
        """Records still `received`, read through the pending rows only."""
        ...

    def link_intent(self, intent_id: str, ref: BookingRef) -> list[ParkedFact]:
        """Record that `intent_id` pays for `ref`; the refunds parked on it before."""
        ...

    def park(self, intent_id: str, event_id: str, fact: PaymentFact) -> BookingRef | None:
        """The booking `intent_id` pays for, if known; else park the fact on it (None)."""
        ...


class TablePaymentEventRepository:
    """`PaymentEventRepository` on Azure Table Storage."""

    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    @property
    def _table(self) -> TableClient:
        return self._tables.table(TABLE)

    def record(self, event: RecordedEvent) -> RecordedEvent:
        entity = event_to_entity(event)
        pending = {
            "PartitionKey": PARTITION,
            "RowKey": row_key(_PENDING, event.event_id),
            "EventId": event.event_id,
            "ReceivedAt": to_utc(event.received_at, "receivedAt"),
        }
        with translated_errors(f"payment event {event.event_id}"):
            results = self._table.submit_transaction([("create", entity), ("create", pending)])
        return replace(event, etag=results[0]["etag"])

    def get(self, event_id: str) -> RecordedEvent:
        rk = row_key(_EVENT, validate_key(event_id, "event id"))
        with translated_errors(f"payment event {event_id}"):
            entity = self._table.get_entity(PARTITION, rk)
        self._tables.reads += 1
        return entity_to_event(entity)

    def claim(self, event: RecordedEvent, until: datetime) -> RecordedEvent:
        from azure.core import MatchConditions
        from azure.data.tables import UpdateMode

        claimed = replace(event, claim_until=until, attempts=event.attempts + 1)
        with translated_errors(f"payment event {event.event_id}"):
            metadata = self._table.update_entity(
                event_to_entity(claimed),
                mode=UpdateMode.REPLACE,
                etag=event.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        return replace(claimed, etag=metadata["etag"])

    def release(self, event: RecordedEvent) -> None:
        from azure.core import MatchConditions
        from azure.data.tables import UpdateMode

        with translated_errors(f"payment event {event.event_id}"):
            self._table.update_entity(
                event_to_entity(
                    replace(event, claim_until=None, attempts=max(event.attempts - 1, 0))
                ),
                mode=UpdateMode.REPLACE,
                etag=event.etag,
                match_condition=MatchConditions.IfNotModified,
            )

    def finish(self, event: RecordedEvent, state: EventState, outcome: str, at: datetime) -> None:
        from azure.core import MatchConditions
        from azure.data.tables import UpdateMode

        done = replace(event, state=state, outcome=outcome, finished_at=at, claim_until=None)
        pending = {"PartitionKey": PARTITION, "RowKey": row_key(_PENDING, event.event_id)}
        operations: list[Any] = [
            (
                "update",
                event_to_entity(done),
                {
                    "mode": UpdateMode.REPLACE,
                    "etag": event.etag,
                    "match_condition": MatchConditions.IfNotModified,
                },
            ),
            ("delete", pending),
        ]
        with translated_errors(f"payment event {event.event_id}"):
            self._table.submit_transaction(operations)

    def list_pending(self, limit: int = 100) -> list[RecordedEvent]:
        flt = f"PartitionKey eq '{PARTITION}' and {prefix_range(_PENDING + '|')}"
        found: list[RecordedEvent] = []
        with translated_errors("payment events query"):
            rows = list(itertools.islice(self._table.query_entities(flt), limit))
        for row in rows:
            self._tables.reads += 1
            try:
                event = self.get(row["EventId"])
            except NotFoundError:
                continue
            if event.state is EventState.RECEIVED:
                found.append(event)
        return found

    def link_intent(self, intent_id: str, ref: BookingRef) -> list[ParkedFact]:
        # Usually the first word of this intent: insert its row at once (no read). A row that
        # is there already (a refund parked first, a redelivery) is read and replaced below.
        if self._write_intent(None, _intent_entity(intent_id, ref, [])):
            return []
        for _ in range(_INTENT_TRIES):
            row = self._intent_row(intent_id)
            parked = _parked_from(row)
            if row is not None and row.get("BookingId") == ref.booking_id:
                return parked
            wanted = _intent_entity(intent_id, ref, parked)
            if self._write_intent(row, wanted):
                return parked
        raise ConcurrencyError(f"payment intent {intent_id} keeps changing")

    def park(self, intent_id: str, event_id: str, fact: PaymentFact) -> BookingRef | None:
        for _ in range(_INTENT_TRIES):
            row = self._intent_row(intent_id)
            if row is not None and row.get("TenantId") and row.get("BookingId"):
                return BookingRef(row["TenantId"], row["BookingId"])
            parked = [p for p in _parked_from(row) if p.event_id != event_id]
            parked.append(ParkedFact(event_id, fact))
            if self._write_intent(row, _intent_entity(intent_id, None, parked)):
                return None
        raise ConcurrencyError(f"payment intent {intent_id} keeps changing")

    def _intent_row(self, intent_id: str) -> Any:
        rk = row_key(_INTENT, validate_key(intent_id, "payment intent id"))
        try:
            with translated_errors(f"payment intent {intent_id}"):
                return self._table.get_entity(PARTITION, rk)
        except NotFoundError:
            return None

    def _write_intent(self, row: Any, wanted: dict[str, Any]) -> bool:
        """Insert or replace the intent row as read; False if it changed since (re-read)."""
        from azure.core import MatchConditions
        from azure.data.tables import UpdateMode

        try:
            with translated_errors(f"payment intent row {wanted['RowKey']}"):
                if row is None:
                    self._table.create_entity(wanted)
                else:
                    self._table.update_entity(
                        wanted,
                        mode=UpdateMode.REPLACE,
                        etag=row.metadata["etag"],
                        match_condition=MatchConditions.IfNotModified,
                    )
        except (AlreadyExistsError, ConcurrencyError):
            return False
        return True


_INTENT_TRIES = 8
MAX_PARKED = 20


def _intent_entity(
    intent_id: str, ref: BookingRef | None, parked: list[ParkedFact]
) -> dict[str, Any]:
    return {
        "PartitionKey": PARTITION,
        "RowKey": row_key(_INTENT, validate_key(intent_id, "payment intent id")),
        "TenantId": ref.tenant_id if ref else None,
        "BookingId": ref.booking_id if ref else None,
        "Parked": check_string(
            json.dumps(
                [{"eventId": p.event_id, "fact": _fact_json(p.fact)} for p in parked[-MAX_PARKED:]]
            ),
            "parked refunds",
        ),
    }


def _parked_from(row: Any) -> list[ParkedFact]:
    if row is None or not row.get("Parked"):
        return []
    reader = EntityReader(row, "payment intent")
    try:
        items = json.loads(row["Parked"])
        return [ParkedFact(str(i["eventId"]), _fact_from(i["fact"], reader)) for i in items]
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, SchemaError):
            raise
        raise reader.fail(f"Parked does not fit the schema ({exc})") from exc


def event_to_entity(event: RecordedEvent) -> dict[str, Any]:
    fact = event.fact
    return {
        "PartitionKey": PARTITION,
        "RowKey": row_key(_EVENT, validate_key(event.event_id, "event id")),
        "EventId": event.event_id,
        "Type": event.type,
        "State": event.state.value,
        "Source": event.source,
        "ReceivedAt": to_utc(event.received_at, "receivedAt"),
        "TenantId": event.ref.tenant_id if event.ref else None,
        "BookingId": event.ref.booking_id if event.ref else None,
        "Fact": check_string(None if fact is None else _fact_json(fact), "fact"),
        "ClaimUntil": None if event.claim_until is None else to_utc(event.claim_until, "claim"),
        "FinishedAt": None if event.finished_at is None else to_utc(event.finished_at, "done"),
        "Outcome": event.outcome,
        "Attempts": event.attempts,
    }


def entity_to_event(entity: Any) -> RecordedEvent:
    r = EntityReader(entity, "payment event")
    tenant_id, booking_id = r.opt_text("TenantId"), r.opt_text("BookingId")
    raw_fact = r.opt_text("Fact")
    return RecordedEvent(
        event_id=r.text("EventId"),
        type=r.text("Type"),
        state=r.enum("State", EventState),
        received_at=r.moment("ReceivedAt"),
        source=r.text("Source"),
        ref=BookingRef(tenant_id, booking_id) if tenant_id and booking_id else None,
        fact=None if raw_fact is None else _fact_from(raw_fact, r),
        claim_until=r.opt_moment("ClaimUntil"),
        finished_at=r.opt_moment("FinishedAt"),
        outcome=r.opt_text("Outcome"),
        attempts=r.number("Attempts", default=1),
        etag=entity.metadata.get("etag") if hasattr(entity, "metadata") else None,
    )


def _fact_json(fact: PaymentFact) -> str:
    return json.dumps(
        {
            "kind": fact.kind.value,
            "occurredAt": to_utc(fact.occurred_at, "occurredAt").isoformat(),
            "intentId": fact.intent_id,
            "amount": fact.amount,
            "currency": fact.currency,
            "amountRefunded": fact.amount_refunded,
            "fullyRefunded": fact.fully_refunded,
            "failureCode": fact.failure_code,
            "failureMessage": fact.failure_message,
        },
        separators=(",", ":"),
    )


def _fact_from(raw: str, r: EntityReader) -> PaymentFact:
    try:
        data = json.loads(raw)
        return PaymentFact(
            kind=FactKind(data["kind"]),
            occurred_at=datetime.fromisoformat(data["occurredAt"]).astimezone(UTC),
            intent_id=data.get("intentId"),
            amount=data.get("amount"),
            currency=data.get("currency"),
            amount_refunded=int(data.get("amountRefunded") or 0),
            fully_refunded=bool(data.get("fullyRefunded")),
            failure_code=data.get("failureCode"),
            failure_message=data.get("failureMessage"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, SchemaError):
            raise
        raise r.fail(f"Fact does not fit the schema ({exc})") from exc
