"""What Stripe told us about a booking's payment (SPEC §6).

Stripe delivers events at least once and in any order, for days. So a booking does not keep
"the last event" but the facts all its events established, merged so that any order and any
repetition give the same state: once paid, paid; once fully refunded, refunded (a success that
arrives after its refund does not undo it); refunded amounts only grow. The booking's lifecycle
then follows that state (shared/domain/booking.py `record_payment`), never an event's arrival.

Nothing here talks to Stripe or storage.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum


class PaymentStatus(StrEnum):
    """What the API shows; derived from the facts, never set on its own."""

    NONE = "none"  # no payment event seen
    FAILED = "failed"  # an attempt failed and none succeeded (yet)
    PAID = "paid"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"  # fully refunded: the booking is cancelled


class FactKind(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REFUNDED = "refunded"  # a charge.refunded: full or partial, by its amounts


@dataclass(frozen=True)
class BookingRef:
    """The booking a payment is for (Stripe `metadata.tenantId` + `metadata.bookingId`)."""

    tenant_id: str
    booking_id: str


@dataclass(frozen=True)
class PaymentFact:
    """What one Stripe event says about a booking's payment."""

    kind: FactKind
    occurred_at: datetime  # the event's `created`
    intent_id: str | None = None
    amount: int | None = None  # in the currency's smallest unit
    currency: str | None = None
    amount_refunded: int = 0
    fully_refunded: bool = False
    failure_code: str | None = None
    failure_message: str | None = None


@dataclass(frozen=True)
class PaymentState:
    paid: bool = False
    refunded: bool = False  # fully
    intent_id: str | None = None
    amount: int | None = None
    currency: str | None = None
    amount_refunded: int = 0
    paid_at: datetime | None = None
    refunded_at: datetime | None = None
    # The latest failed attempt, kept even after a later success (for support).
    failure_code: str | None = None
    failure_message: str | None = None
    failed_at: datetime | None = None

    @property
    def status(self) -> PaymentStatus:
        if self.refunded:
            return PaymentStatus.REFUNDED
        if self.paid and self.amount_refunded > 0:
            return PaymentStatus.PARTIALLY_REFUNDED
        if self.paid:
            return PaymentStatus.PAID
        return PaymentStatus.FAILED if self.failed_at is not None else PaymentStatus.NONE


def merge(state: PaymentState, fact: PaymentFact) -> PaymentState:
    """`state` with what `fact` establishes. Commutative and idempotent over facts, so the
    order and repetition of Stripe's deliveries cannot change the result."""
    intent_id = state.intent_id or fact.intent_id
    amount = state.amount if state.amount is not None else fact.amount
    currency = state.currency or fact.currency
    if fact.kind is FactKind.SUCCEEDED:
        return replace(
            state,
            paid=True,
            intent_id=intent_id,
            # A success names the amount paid; a refund's charge amount is only a fallback.
            amount=fact.amount if fact.amount is not None else amount,
            currency=currency,
            paid_at=_earliest(state.paid_at, fact.occurred_at),
        )
    if fact.kind is FactKind.REFUNDED:
        refunded = state.refunded or fact.fully_refunded
        return replace(
            state,
            intent_id=intent_id,
            amount=amount,
            currency=currency,
            amount_refunded=max(state.amount_refunded, fact.amount_refunded),
            refunded=refunded,
            refunded_at=(
                _earliest(state.refunded_at, fact.occurred_at)
                if fact.fully_refunded
                else state.refunded_at
            ),
        )
    if state.failed_at is not None and _failure_key(state) >= _failure_key(fact):
        return replace(state, intent_id=intent_id, currency=currency)
    return replace(
        state,
        intent_id=intent_id,
        currency=currency,
        failure_code=fact.failure_code,
        failure_message=fact.failure_message,
        failed_at=fact.occurred_at,
    )


def _earliest(current: datetime | None, new: datetime) -> datetime:
    return new if current is None or new < current else current


def _failure_key(item: PaymentState | PaymentFact) -> tuple[datetime, str, str]:
    """Orders failures: the latest wins, ties broken by their text (so order cannot)."""
    at = item.failed_at if isinstance(item, PaymentState) else item.occurred_at
    assert at is not None
    return (at, item.failure_code or "", item.failure_message or "")
