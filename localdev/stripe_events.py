"""Send correctly signed Stripe test events to the local host, like `stripe trigger`.

    .venv/bin/python -m localdev.stripe_events payment-succeeded --booking <id> [--times 3]
    .venv/bin/python -m localdev.stripe_events refund --booking <id> [--partial 1000]
    .venv/bin/python -m localdev.stripe_events checkout-completed --booking <id> [--unpaid]
    .venv/bin/python -m localdev.stripe_events payment-failed --booking <id>
    .venv/bin/python -m localdev.stripe_events forged --booking <id>

The signing secret is `STRIPE_WEBHOOK_SECRET`, or the one `make run` made in
.local/stripe-webhook-secret. Events are shaped like Stripe's (id, type, created, data.object
with `metadata.tenantId` and `metadata.bookingId`); the tests use the same builders.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import secrets
import sys
import time
from typing import Any

from localdev.azurite import REPO_ROOT

DEFAULT_URL = "http://localhost:7071/api/v1/payments/webhook"


def signature(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header: HMAC-SHA256 of "{t}.{payload}" with the secret."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def event(
    event_type: str, obj: dict[str, Any], *, event_id: str | None = None, created: int | None = None
) -> dict[str, Any]:
    return {
        "id": event_id or f"evt_{secrets.token_hex(12)}",
        "object": "event",
        "api_version": "2024-06-20",
        "type": event_type,
        "created": int(time.time()) if created is None else created,
        "livemode": False,
        "pending_webhooks": 1,
        "data": {"object": obj},
    }


def _metadata(tenant: str, booking: str) -> dict[str, str]:
    return {"tenantId": tenant, "bookingId": booking}


def intent_id_for(booking: str) -> str:
    return f"pi_{hashlib.sha256(booking.encode()).hexdigest()[:24]}"


def payment_succeeded(
    tenant: str, booking: str, *, amount: int = 4500, currency: str = "gbp", **kw: Any
) -> dict[str, Any]:
    obj = {
        "id": intent_id_for(booking),
        "object": "payment_intent",
        "amount": amount,
        "amount_received": amount,
        "currency": currency,
        "status": "succeeded",
        "metadata": _metadata(tenant, booking),
    }
    return event("payment_intent.succeeded", obj, **kw)


def payment_failed(tenant: str, booking: str, **kw: Any) -> dict[str, Any]:
    obj = {
        "id": intent_id_for(booking),
        "object": "payment_intent",
        "amount": 4500,
        "currency": "gbp",
        "status": "requires_payment_method",
        "last_payment_error": {
            "code": "card_declined",
            "decline_code": "insufficient_funds",
            "message": "Your card has insufficient funds.",
        },
        "metadata": _metadata(tenant, booking),
    }
    return event("payment_intent.payment_failed", obj, **kw)


def checkout_completed(
    tenant: str, booking: str, *, paid: bool = True, async_success: bool = False, **kw: Any
) -> dict[str, Any]:
    obj = {
        "id": f"cs_test_{secrets.token_hex(12)}",
        "object": "checkout.session",
        "mode": "payment",
        "payment_intent": intent_id_for(booking),
        "payment_status": "paid" if paid else "unpaid",
        "amount_total": 4500,
        "currency": "gbp",
        "metadata": _metadata(tenant, booking),
    }
    kind = (
        "checkout.session.async_payment_succeeded"
        if async_success
        else "checkout.session.completed"
    )
    return event(kind, obj, **kw)


def refund(
    tenant: str | None,
    booking: str,
    *,
    amount: int = 4500,
    refunded: int | None = None,
    **kw: Any,
) -> dict[str, Any]:
    """charge.refunded: full unless `refunded` is less than `amount`. Without `tenant` the
    charge carries no metadata (its payment intent names the booking)."""
    refunded = amount if refunded is None else refunded
    obj = {
        "id": f"ch_{secrets.token_hex(12)}",
        "object": "charge",
        "amount": amount,
        "amount_refunded": refunded,
        "refunded": refunded >= amount,
        "currency": "gbp",
        "payment_intent": intent_id_for(booking),
        "metadata": _metadata(tenant, booking) if tenant else {},
    }
    return event("charge.refunded", obj, **kw)


def local_secret() -> str:
    value = os.environ.get("STRIPE_WEBHOOK_SECRET", "").strip()
    if value:
        return value
    path = REPO_ROOT / ".local" / "stripe-webhook-secret"
    if path.exists():
        return path.read_text().strip()
    sys.exit("No signing secret: start `make run` first, or set STRIPE_WEBHOOK_SECRET.")


def main() -> None:
    parser = argparse.ArgumentParser(description="Send a signed Stripe test event.")
    parser.add_argument(
        "kind",
        choices=["payment-succeeded", "checkout-completed", "payment-failed", "refund", "forged"],
    )
    parser.add_argument("--booking", required=True, help="the booking id (metadata.bookingId)")
    parser.add_argument("--tenant", default="demo", help="the tenant id (metadata.tenantId)")
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--partial", type=int, help="refund: the amount refunded (of 4500)")
    parser.add_argument("--unpaid", action="store_true", help="checkout: payment_status unpaid")
    parser.add_argument(
        "--times",
        type=int,
        default=1,
        help="deliver the same event this many times (as Stripe may)",
    )
    args = parser.parse_args()
    import requests

    if args.kind in ("payment-succeeded", "forged"):
        body = payment_succeeded(args.tenant, args.booking)
    elif args.kind == "checkout-completed":
        body = checkout_completed(args.tenant, args.booking, paid=not args.unpaid)
    elif args.kind == "payment-failed":
        body = payment_failed(args.tenant, args.booking)
    else:
        body = refund(args.tenant, args.booking, refunded=args.partial)
    payload = json.dumps(body).encode()
    secret = f"whsec_{secrets.token_hex(16)}" if args.kind == "forged" else local_secret()
    for _ in range(max(1, args.times)):
        response = requests.post(
            args.url,
            data=payload,
            headers={
                "Content-Type": "application/json",
                "Stripe-Signature": signature(payload, secret),
            },
            timeout=30,
        )
        print(f"{body['type']} {body['id']} -> {response.status_code} {response.text}")


if __name__ == "__main__":
    main()
