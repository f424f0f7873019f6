"""Events Stripe could not deliver, read back from its API with a restricted read key.

Stripe lists events whose webhook delivery failed (`delivery_success=false`) for 30 days; the
timer asks for the last three (SPEC §6) and receives each like a webhook, minus the signature:
the API, reached over TLS with our key, is the source of truth.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from shared.payments.events import PayloadError, StripeEvent, event_from

logger = logging.getLogger("meetings.payments")

PAGE_SIZE = 100
MAX_EVENTS = 2000  # per timer run; the rest waits for the next


class StripeUndeliveredEvents:
    def __init__(self, api_key: str, *, timeout: float, proxy: str | None = None) -> None:
        self._api_key = api_key
        self._timeout = timeout
        self._proxy = proxy
        self._client: Any = None

    def _stripe(self) -> Any:
        # Made on the timer's first recovery, not with the app's services: importing stripe
        # costs more than a request does.
        if self._client is None:
            import requests
            import stripe

            session = requests.Session()
            # Proxies from OUTBOUND_PROXY, not from the environment on every call.
            session.trust_env = False
            self._client = stripe.StripeClient(
                self._api_key,
                http_client=stripe.RequestsClient(
                    timeout=self._timeout, session=session, proxy=self._proxy
                ),
                max_network_retries=2,
            )
        return self._client

    def list_since(self, since: datetime) -> Iterator[StripeEvent]:
        listed = self._stripe().v1.events.list(
            params={
                "delivery_success": False,
                "created": {"gte": int(since.timestamp())},
                "limit": PAGE_SIZE,
            }
        )
        for count, item in enumerate(listed.auto_paging_iter()):
            if count >= MAX_EVENTS:
                return
            try:
                yield event_from(_plain(item))
            except PayloadError as exc:
                logger.warning("an undelivered Stripe event could not be read: %s", exc)


def _plain(item: Any) -> Any:
    to_dict = getattr(item, "to_dict", None)
    return to_dict() if callable(to_dict) else item
