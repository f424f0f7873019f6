"""POST /api/v1/payments/webhook: Stripe's events confirm bookings (SPEC §6).

Anonymous, but every request must carry Stripe's signature over its raw bytes.
"""

from __future__ import annotations

import azure.functions as func

from shared.api.responses import anonymous, json_response

bp = func.Blueprint()


@bp.function_name("payments_webhook")
@bp.route(route="v1/payments/webhook", methods=["POST"])
@anonymous
def webhook(req: func.HttpRequest) -> func.HttpResponse:
    from shared.bootstrap import services

    receipt = services().payments.receive_webhook(
        req.get_body() or b"", req.headers.get("Stripe-Signature")
    )
    return json_response(
        {"received": True, "eventId": receipt.event_id, "outcome": receipt.outcome.value}
    )
