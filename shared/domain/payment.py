"""What Stripe told us about a booking's payment (SPEC §6).

Stripe delivers events at least once and in any order, for days. So a booking does not keep
"the last event" but the facts all its events established, per payment intent, merged so that
any order and any repetition give the same state: once paid, paid; once fully refunded,
refunded (a success that arrives after its refund does not undo it); refunded amounts only grow.
The booking's lifecycle then follows that state (shared/domain/booking.py `record_payment`),
never an event's arrival.

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


# A booking paid more than this many times is not a booking; further intents are ignored.
MAX_INTENTS = 20
_NO_INTENT = ""  # facts that name no payment intent (rare: a checkout without one)


@dataclass(frozen=True)
class IntentPayment:
    """One PaymentIntent's facts. A booking may be paid twice (a double click, a retry), and
    refunding the duplicate must not cancel it, so facts are kept per intent."""

    intent_id: str
    paid_at: datetime | None = None
    amount: int | None = None  # what its success said was paid
    charged: int | None = None  # what its refunded charge said (when no success was seen)
    currency: str | None = None
    amount_refunded: int = 0
    refunded_at: datetime | None = None  # fully refunded

    @property
    def live(self) -> bool:
        """Paid and not fully refunded: this intent's money is still with the merchant."""
        return self.paid_at is not None and self.refunded_at is None


@dataclass(frozen=True)
class PaymentState:
    intents: tuple[IntentPayment, ...] = ()  # ordered by intent id, so equal facts are equal
    # The latest failed attempt, kept even after a later success (for support).
    failure_code: str | None = None
    failure_message: str | None = None
    failed_at: datetime | None = None

    @property
    def live(self) -> bool:
        return any(i.live for i in self.intents)

    @property
    def paid(self) -> bool:
        return any(i.paid_at is not None for i in self.intents)

    @property
    def refunded(self) -> bool:
        """Every payment known is fully refunded (a refund implies its payment happened, even
        when the success has not arrived yet)."""
        return not self.live and any(i.refunded_at is not None for i in self.intents)

    @property
    def status(self) -> PaymentStatus:
        if self.refunded:
            return PaymentStatus.REFUNDED
        if self.live and self.amount_refunded > 0:
            return PaymentStatus.PARTIALLY_REFUNDED
        if self.live:
            return PaymentStatus.PAID
        return PaymentStatus.FAILED if self.failed_at is not None else PaymentStatus.NONE

    @property
    def first(self) -> IntentPayment | None:
        """The earliest payment (the one the API names), else any intent known."""
        paid = sorted(
            (i for i in self.intents if i.paid_at), key=lambda i: (i.paid_at, i.intent_id)
        )
        return paid[0] if paid else (self.intents[0] if self.intents else None)

    @property
    def amount(self) -> int | None:
        amounts = [i.amount if i.amount is not None else i.charged for i in self.intents]
        known = [a for a in amounts if a is not None]
        return sum(known) if known else None

    @property
    def amount_refunded(self) -> int:
        return sum(i.amount_refunded for i in self.intents)

    @property
    def currency(self) -> str | None:
        first = self.first
        return first.currency if first else None

    @property
    def paid_at(self) -> datetime | None:
        first = self.first
        return first.paid_at if first else None

    @property
    def refunded_at(self) -> datetime | None:
        times = [i.refunded_at for i in self.intents if i.refunded_at]
        return max(times) if self.refunded and times else None


def merge(state: PaymentState, fact: PaymentFact) -> PaymentState:
    """`state` with what `fact` establishes. Commutative and idempotent over facts (the state
    is a function of the set of facts seen), so the order and repetition of Stripe's
    deliveries cannot change it."""
    if fact.kind is FactKind.FAILED:
        return _failed(state, fact)
    key = fact.intent_id or _NO_INTENT
    intents = {i.intent_id: i for i in state.intents}
    if key not in intents and len(intents) >= MAX_INTENTS:
        return state
    intent = intents.get(key, IntentPayment(key))
    currency = min(filter(None, (intent.currency, fact.currency)), default=None)
    if fact.kind is FactKind.SUCCEEDED:
        intent = replace(
            intent,
            paid_at=_earliest(intent.paid_at, fact.occurred_at),
            amount=_larger(intent.amount, fact.amount),
            currency=currency,
        )
    else:
        intent = replace(
            intent,
            charged=_larger(intent.charged, fact.amount),
            currency=currency,
            amount_refunded=max(intent.amount_refunded, fact.amount_refunded),
            refunded_at=(
                _earliest(intent.refunded_at, fact.occurred_at)
                if fact.fully_refunded
                else intent.refunded_at
            ),
        )
    intents[key] = intent
    return replace(state, intents=tuple(intents[k] for k in sorted(intents)))


def _failed(state: PaymentState, fact: PaymentFact) -> PaymentState:
    if state.failed_at is not None and _failure_key(state) >= _failure_key(fact):
        return state
    return replace(
        state,
        failure_code=fact.failure_code,
        failure_message=fact.failure_message,
        failed_at=fact.occurred_at,
    )


def _earliest(current: datetime | None, new: datetime) -> datetime:
    return new if current is None or new < current else current


def _larger(current: int | None, new: int | None) -> int | None:
    if current is None or new is None:
        return new if current is None else current
    return max(current, new)


def _failure_key(item: PaymentState | PaymentFact) -> tuple[datetime, str, str]:
    """Orders failures: the latest wins, ties broken by their text (so order cannot)."""
    at = item.failed_at if isinstance(item, PaymentState) else item.occurred_at
    assert at is not None
    return (at, item.failure_code or "", item.failure_message or "")
