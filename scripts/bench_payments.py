"""Time from a Stripe webhook's receipt to the Teams link stored on its booking.

Starts the local stack (Azurite, the Graph emulator, the Functions host), slows every Graph call
by `--latency-ms` (default 100), makes pending bookings, and sends each a correctly signed
`payment_intent.succeeded`: first one at a time, then from `--concurrency` senders at once
(default 16). For each event it measures from the moment the request is sent until the booking
carries its join link (the webhook's answer when the inline attempt made the meeting, else the
first read that shows it), and prints the median, p95 and max, with how many links the inline
attempt stored before the answer.

    .venv/bin/python scripts/bench_payments.py [--events 100] [--latency-ms 100] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from localdev import stripe_events
from localdev.graph_emulator import Fault
from localdev.stack import DEMO_TENANT_ID, LocalStack, local_stack

QUIET_TIMER = {"RECONCILE_SCHEDULE": "0 0 0 1 1 *"}


def make_bookings(stack: LocalStack, count: int, token: str, offset: int) -> list[str]:
    ids = []
    for n in range(count):
        start = (datetime.now(UTC) + timedelta(days=2, minutes=30 * (n + offset))).replace(
            second=0, microsecond=0
        )
        body = {
            "subject": "Maths",
            "startDateTime": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "endDateTime": (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "timeZone": "Europe/London",
            "participants": [
                {"userId": "student-1", "role": "student", "email": "student@example.com"}
            ],
        }
        response = requests.post(
            f"{stack.api}/v1/bookings",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        response.raise_for_status()
        ids.append(response.json()["id"])
    return ids


def time_to_link(stack: LocalStack, booking_id: str, token: str) -> tuple[float, bool]:
    """Seconds from sending the event to the link on the booking; and whether the webhook's
    own inline attempt stored it (the link was there at the first read after the answer)."""
    payload = json.dumps(stripe_events.payment_succeeded(DEMO_TENANT_ID, booking_id)).encode()
    headers = {
        "Content-Type": "application/json",
        "Stripe-Signature": stripe_events.signature(payload, stack.env["STRIPE_WEBHOOK_SECRET"]),
    }
    started = time.perf_counter()
    answer = requests.post(
        f"{stack.api}/v1/payments/webhook", data=payload, headers=headers, timeout=60
    )
    answered = time.perf_counter()
    if answer.status_code != 200:
        raise RuntimeError(f"webhook answered {answer.status_code}: {answer.text}")
    first = True
    while True:
        booking = requests.get(
            f"{stack.api}/v1/bookings/{booking_id}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        ).json()
        if booking.get("meetingLink"):
            # Stored before the answer: count the answer's time, not the read's.
            end = answered if first else time.perf_counter()
            return end - started, first
        first = False
        if time.perf_counter() - started > 120:
            raise RuntimeError(f"no link for booking {booking_id} after 120 s")
        time.sleep(0.02)


def figures(label: str, results: list[tuple[float, bool]], wall: float) -> str:
    times = sorted(t for t, _ in results)
    p95 = times[max(0, round(0.95 * len(times)) - 1)]
    inline = sum(1 for _, ok in results if ok)
    return (
        f"{label:<28} events {len(times):>4}  median {statistics.median(times) * 1000:7.1f} ms"
        f"  p95 {p95 * 1000:7.1f} ms  max {times[-1] * 1000:7.1f} ms"
        f"  inline {inline}/{len(times)}  throughput {len(times) / wall:5.1f}/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="bench-payments-") as state,
        local_stack(state_dir=Path(state), extra_env=QUIET_TIMER) as stack,
    ):
        token = stack.issuer.mint(user="admin-1", roles=["admin"], tenant=DEMO_TENANT_ID)
        alone_ids = make_bookings(stack, args.events, token, 0)
        together_ids = make_bookings(stack, args.events, token, args.events)
        # Warm the host's sign-in and organizer lookup, which a running service holds.
        time_to_link(stack, make_bookings(stack, 1, token, 2 * args.events)[0], token)
        stack.emulator.add_fault(Fault(operation="*", latency_ms=args.latency_ms))
        print(f"Graph latency {args.latency_ms} ms per call (emulator), {args.events} events each")

        started = time.perf_counter()
        alone = [time_to_link(stack, booking_id, token) for booking_id in alone_ids]
        print(figures("one sender", alone, time.perf_counter() - started))

        started = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            together = list(pool.map(lambda b: time_to_link(stack, b, token), together_ids))
        print(
            figures(
                f"{args.concurrency} concurrent senders", together, time.perf_counter() - started
            )
        )
        calls = stack.emulator.snapshot()["calls"]
        print(
            "Graph calls: " + ", ".join(f"{name} {count}" for name, count in sorted(calls.items()))
        )


if __name__ == "__main__":
    main()
