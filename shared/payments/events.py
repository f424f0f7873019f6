"""Stripe events: the signature check over the raw body, and what an event says about a booking.

Only the facts a booking needs are taken from an event (ids, amounts, the failure code), so
nothing else of the payload is stored or logged.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.domain.payment import BookingRef, FactKind, PaymentFact
from shared.errors import AppError
from shared.json_depth import nesting_depth
from shared.keys import InvalidKeyError, validate_key

SIGNATURE_TOLERANCE_SECONDS = 300  # Stripe's default
MAX_PAYLOAD_BYTES = 512 * 1024  # Stripe's events are far smaller
MAX_PAYLOAD_DEPTH = 64

SUCCEEDED_TYPES = frozenset(
    {
        "payment_intent.succeeded",
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
    }
)
HANDLED_TYPES = SUCCEEDED_TYPES | {"payment_intent.payment_failed", "charge.refunded"}

_CURRENCY = re.compile(r"[a-z]{3}")
_EVENT_ID = re.compile(r"evt_[A-Za-z0-9_]{1,250}")  # the same pattern is in docs/openapi.yaml
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_MAX_AMOUNT = 2**31 - 1


class WebhookError(AppError):
    """A webhook request that cannot be an event from Stripe; nothing is written."""

    code = "invalid_webhook"
    http_status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)

    @property
    def status(self) -> int:
        """The HTTP status it answers with (`http_status`)."""
        return self.http_status


class SignatureError(WebhookError):
    """Missing, malformed, forged or stale `Stripe-Signature`."""

    code = "invalid_signature"


class PayloadError(WebhookError):
    """Correctly signed, but not a Stripe event this service can read."""

    code = "invalid_payload"


class PayloadTooLargeError(WebhookError):
    code = "body_too_large"
    http_status = 413


@dataclass(frozen=True)
class StripeEvent:
    event_id: str
    type: str
    created: datetime
    data_object: Mapping[str, Any]


@dataclass(frozen=True)
class Interpretation:
    """What an event means here: a fact about the booking it names (`ref` may be None for a
    refund whose charge carries no metadata: its payment intent names the booking then), or
    nothing (`ignored` says why)."""

    ref: BookingRef | None = None
    fact: PaymentFact | None = None
    ignored: str | None = None


def verify(raw: bytes, signature: str | None, secret: str) -> StripeEvent:
    """The event in `raw`, if `signature` is Stripe's over exactly these bytes, made within
    the tolerance; else `SignatureError` (or `PayloadError` for a signed body we cannot read)."""
    import stripe

    if len(raw) > MAX_PAYLOAD_BYTES:
        raise PayloadTooLargeError(f"Webhook body is larger than {MAX_PAYLOAD_BYTES} bytes")
    if not signature:
        raise SignatureError("Missing Stripe-Signature header")
    try:
        payload = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SignatureError("Webhook body is not UTF-8 text, so not signed by Stripe") from None
    signed_at = _signed_at(signature)
    try:
        stripe.WebhookSignature.verify_header(
            payload, signature, secret, SIGNATURE_TOLERANCE_SECONDS
        )
    except stripe.SignatureVerificationError as exc:
        raise SignatureError(_refusal(str(exc))) from None
    except Exception:
        # Whatever else the library meets in a header (it was checked above, so this is the
        # library's own trouble), the request is not Stripe's: a refusal, never a 500.
        raise SignatureError("Stripe-Signature header is malformed") from None
    # The library bounds the timestamp's age only; one from the future is no fresher.
    if signed_at > time.time() + SIGNATURE_TOLERANCE_SECONDS:
        raise SignatureError("Stripe-Signature timestamp is outside the 300-second tolerance")
    return parse(payload)


# Stripe's header: `t=<unix seconds>,v1=<hex HMAC-SHA256>[,v1=...]`, perhaps with other
# schemes' items (`v0=...`), which are ignored; all of it ASCII.
MAX_SIGNATURE_HEADER_CHARS = 2048
_ITEM = re.compile(r"([a-z][a-z0-9]{0,15})=([0-9A-Za-z._-]{1,256})")
_V1 = re.compile(r"[0-9a-f]{64}")
_T = re.compile(r"[0-9]{1,12}")


def _signed_at(signature: str) -> int:
    """The header's timestamp, once the header is known to be Stripe's shape: anything else
    (other characters, a `v1` that is not an HMAC-SHA256, no `t` or no `v1`) is malformed."""
    malformed = SignatureError("Stripe-Signature header is malformed")
    if len(signature) > MAX_SIGNATURE_HEADER_CHARS or not signature.isascii():
        raise malformed
    items = [_ITEM.fullmatch(item.strip()) for item in signature.split(",")]
    if not all(items):
        raise malformed
    pairs = [(m.group(1), m.group(2)) for m in items if m is not None]
    stamps = [value for key, value in pairs if key == "t"]
    v1 = [value for key, value in pairs if key == "v1"]
    if len(stamps) != 1 or not _T.fullmatch(stamps[0]) or not v1:
        raise malformed
    if not all(_V1.fullmatch(value) for value in v1):
        raise malformed
    return int(stamps[0])


def _refusal(detail: str) -> str:
    if "Timestamp outside the tolerance zone" in detail:
        return "Stripe-Signature timestamp is outside the 300-second tolerance"
    if "Unable to extract" in detail or "expected scheme" in detail:
        return "Stripe-Signature header is malformed"
    return "Stripe-Signature does not match the body"


def parse(payload: str | bytes) -> StripeEvent:
    """A Stripe event from its JSON text (already verified, or read from Stripe's API)."""
    if nesting_depth(payload) > MAX_PAYLOAD_DEPTH:
        raise PayloadError("Webhook body nests too deeply to be a Stripe event")
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):
        raise PayloadError("Webhook body is not valid JSON") from None
    return event_from(data)


def event_from(data: Any) -> StripeEvent:
    if not isinstance(data, dict) or data.get("object") != "event":
        raise PayloadError("Webhook body is not a Stripe event")
    event_id, event_type, created = data.get("id"), data.get("type"), data.get("created")
    obj = data.get("data", {}).get("object") if isinstance(data.get("data"), dict) else None
    if not isinstance(event_id, str) or not _EVENT_ID.fullmatch(event_id):
        raise PayloadError("Stripe event without an id (evt_...)")
    if not isinstance(event_type, str) or not 0 < len(event_type) <= 100:
        raise PayloadError("Stripe event without a type")
    if isinstance(created, float) and created.is_integer():
        created = int(created)  # JSON does not tell 128 from 128.0
    if not isinstance(created, int) or isinstance(created, bool) or not 0 < created < 2**33:
        raise PayloadError("Stripe event without a creation time")
    if not isinstance(obj, dict):
        raise PayloadError("Stripe event without data.object")
    return StripeEvent(event_id, event_type, datetime.fromtimestamp(created, UTC), obj)


def interpret(event: StripeEvent) -> Interpretation:
    """What `event` says about a booking's payment (SPEC §6)."""
    obj = event.data_object
    if event.type not in HANDLED_TYPES:
        return Interpretation(ignored="event type not handled")
    ref = booking_ref(obj.get("metadata"))
    if event.type.startswith("checkout.session."):
        if obj.get("payment_status") != "paid":
            return Interpretation(ignored="checkout session not paid")
        fact = PaymentFact(
            FactKind.SUCCEEDED,
            event.created,
            intent_id=_object_id(obj.get("payment_intent")),
            amount=_amount(obj.get("amount_total")),
            currency=_currency(obj.get("currency")),
        )
    elif event.type == "payment_intent.succeeded":
        received = _amount(obj.get("amount_received"))
        fact = PaymentFact(
            FactKind.SUCCEEDED,
            event.created,
            intent_id=_object_id(obj.get("id")),
            amount=received if received is not None else _amount(obj.get("amount")),
            currency=_currency(obj.get("currency")),
        )
    elif event.type == "payment_intent.payment_failed":
        error = obj.get("last_payment_error")
        error = error if isinstance(error, dict) else {}
        fact = PaymentFact(
            FactKind.FAILED,
            event.created,
            intent_id=_object_id(obj.get("id")),
            currency=_currency(obj.get("currency")),
            failure_code=_short_text(error.get("decline_code") or error.get("code"), 100),
            failure_message=_short_text(error.get("message"), 500),
        )
    else:  # charge.refunded
        amount = _amount(obj.get("amount"))
        refunded = _amount(obj.get("amount_refunded")) or 0
        full = obj.get("refunded") is True or (amount is not None and 0 < amount <= refunded)
        fact = PaymentFact(
            FactKind.REFUNDED,
            event.created,
            intent_id=_object_id(obj.get("payment_intent")),
            amount=amount,
            currency=_currency(obj.get("currency")),
            amount_refunded=refunded,
            fully_refunded=full,
        )
    if ref is None and not (fact.kind is FactKind.REFUNDED and fact.intent_id):
        return Interpretation(fact=fact)  # rejected when applied: it names no booking
    return Interpretation(ref=ref, fact=fact)


def booking_ref(metadata: Any) -> BookingRef | None:
    """`metadata.tenantId` + `metadata.bookingId`, if both can name a booking."""
    if not isinstance(metadata, dict):
        return None
    tenant_id, booking_id = metadata.get("tenantId"), metadata.get("bookingId")
    if not isinstance(tenant_id, str) or not isinstance(booking_id, str):
        return None
    try:
        return BookingRef(validate_key(tenant_id, "tenant id"), validate_key(booking_id, "id"))
    except InvalidKeyError:
        return None


def _object_id(value: Any) -> str | None:
    """A Stripe object id (`pi_…`), if it is one this service can keep as a key."""
    if isinstance(value, dict):  # an expanded object
        value = value.get("id")
    if not isinstance(value, str):
        return None
    try:
        return validate_key(value, "Stripe object id")
    except InvalidKeyError:
        return None


def _amount(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX_AMOUNT:
        return value
    return None


def _currency(value: Any) -> str | None:
    return value if isinstance(value, str) and _CURRENCY.fullmatch(value) else None


def _short_text(value: Any, limit: int) -> str | None:
    if not isinstance(value, str):
        return None
    cleaned = _CONTROL.sub(" ", value).strip()
    return cleaned[:limit] or None
