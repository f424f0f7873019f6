"""Time from a Stripe webhook's receipt to the Teams link stored on its booking.

Starts the local stack (Azurite, the Graph emulator, the Functions host), slows every Graph call
by `--latency-ms` (default 100), makes pending bookings, and sends each a correctly signed
`payment_intent.succeeded`: first one at a time, then from `--concurrency` senders at once
(default 16). For each event it measures from the moment the request is sent until the booking
carries its join link (the webhook's answer when the inline attempt made the meeting, else the
first read that shows it), and prints the median, p95, p99 and max, with how many links the inline
attempt stored before the answer, and where the CPU of one webhook went (the host's worker
processes, Azurite, this process with the Graph emulator): what the concurrent senders wait for
beyond the single sender's time is their turn at that CPU.

`--worker-processes N` runs the host with `FUNCTIONS_WORKER_PROCESS_COUNT=N` (default 1).

    .venv/bin/python scripts/bench_payments.py [--events 100] [--latency-ms 100] [--concurrency 16]
        [--worker-processes 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from localdev import stripe_events
from localdev.graph_emulator import Fault
from localdev.stack import DEMO_TENANT_ID, LocalStack, local_stack
from scripts import process_stats

QUIET_TIMER = {"RECONCILE_SCHEDULE": "0 0 0 1 1 *"}


def make_bookings(
    stack: LocalStack, count: int, token: str, offset: int, *, senders: int = 1
) -> list[str]:
    """`count` pending bookings, half an hour apart, made through the API by `senders` at once."""

    def make(n: int) -> str:
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
        booking_id: str = response.json()["id"]
        return booking_id

    with ThreadPoolExecutor(senders) as pool:
        return list(pool.map(make, range(count)))


def send_event(stack: LocalStack, event: dict[str, Any]) -> requests.Response:
    """POST one correctly signed Stripe event to the webhook."""
    payload = json.dumps(event).encode()
    headers = {
        "Content-Type": "application/json",
        "Stripe-Signature": stripe_events.signature(payload, stack.env["STRIPE_WEBHOOK_SECRET"]),
    }
    return requests.post(
        f"{stack.api}/v1/payments/webhook", data=payload, headers=headers, timeout=60
    )


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


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return sorted_values[max(0, min(len(sorted_values), round(q * len(sorted_values))) - 1)]


@dataclass
class Run:
    """One phase: each event's seconds to its link, how many the inline attempt stored, and
    the phase's wall time."""

    senders: int
    times: list[float]
    inline: int
    wall: float

    @property
    def p50(self) -> float:
        return statistics.median(self.times)

    def p(self, q: float) -> float:
        return percentile(sorted(self.times), q)

    @property
    def throughput(self) -> float:
        return len(self.times) / self.wall


@dataclass
class Throughput:
    latency_ms: int
    worker_processes: int
    alone: Run
    together: Run
    # CPU milliseconds one webhook cost, by where it was spent (during the concurrent phase).
    cpu_ms: dict[str, float] = field(default_factory=dict)
    graph_calls: dict[str, int] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.together.p50 / self.alone.p50


def run_phase(stack: LocalStack, ids: list[str], token: str, senders: int) -> Run:
    started = time.perf_counter()
    with ThreadPoolExecutor(senders) as pool:
        results = list(pool.map(lambda b: time_to_link(stack, b, token), ids))
    wall = time.perf_counter() - started
    return Run(senders, [t for t, _ in results], sum(1 for _, ok in results if ok), wall)


def measure(
    *,
    events: int = 100,
    latency_ms: int = 100,
    concurrency: int = 16,
    worker_processes: int = 1,
    echo: bool = False,
) -> Throughput:
    """Payment → link for one sender, then for `concurrency` senders, on a fresh local stack
    whose host runs `worker_processes` worker processes."""
    settings = {**QUIET_TIMER, "FUNCTIONS_WORKER_PROCESS_COUNT": str(worker_processes)}
    with (
        tempfile.TemporaryDirectory(prefix="bench-payments-") as state,
        local_stack(state_dir=Path(state), extra_env=settings) as stack,
    ):
        token = stack.issuer.mint(user="admin-1", roles=["admin"], tenant=DEMO_TENANT_ID)
        alone_ids = make_bookings(stack, events, token, 0, senders=8)
        together_ids = make_bookings(stack, events, token, events, senders=8)
        # Warm the host's sign-in and organizer lookup, which a running service holds (each
        # worker process has its own: warm as many bookings as there are senders).
        warm = make_bookings(stack, concurrency, token, 2 * events, senders=8)
        run_phase(stack, warm, token, concurrency)
        stack.emulator.add_fault(Fault(operation="*", latency_ms=latency_ms))
        if echo:
            print(
                f"  Graph latency {latency_ms} ms per call, {events} events each, "
                f"{worker_processes} worker process(es)",
                flush=True,
            )
        alone = run_phase(stack, alone_ids, token, 1)
        if echo:
            print("  " + figures("one sender", alone), flush=True)
        groups = {
            "host": process_stats.process_tree(stack.host_process.pid),
            "azurite": process_stats.process_tree(stack.azurite.process.pid),
            "bench": [os.getpid()],
        }
        meter = process_stats.CpuMeter(groups).start()
        together = run_phase(stack, together_ids, token, concurrency)
        used = meter.stop()
        if echo:
            print("  " + figures(f"{concurrency} concurrent senders", together), flush=True)
        calls = stack.emulator.snapshot()["calls"]
    cpu_ms = {name: seconds / events * 1000 for name, seconds in used.items()}
    return Throughput(latency_ms, worker_processes, alone, together, cpu_ms, calls)


def figures(label: str, run: Run) -> str:
    times = sorted(run.times)
    return (
        f"{label:<28} events {len(times):>4}  p50 {run.p50 * 1000:7.1f} ms"
        f"  p95 {run.p(0.95) * 1000:7.1f} ms  p99 {run.p(0.99) * 1000:7.1f} ms"
        f"  max {times[-1] * 1000:7.1f} ms  inline {run.inline}/{len(times)}"
        f"  throughput {run.throughput:5.1f}/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--worker-processes", type=int, default=1)
    args = parser.parse_args()
    result = measure(
        events=args.events,
        latency_ms=args.latency_ms,
        concurrency=args.concurrency,
        worker_processes=args.worker_processes,
        echo=True,
    )
    print(f"p50 with {args.concurrency} senders / p50 alone: {result.ratio:.2f}")
    print(
        "CPU per webhook: "
        + ", ".join(f"{name} {ms:.0f} ms" for name, ms in result.cpu_ms.items())
        + f"; waiting for a turn at it: {(result.together.p50 - result.alone.p50) * 1000:.0f} ms"
        " of the concurrent p50"
    )
    print(
        "Graph calls: "
        + ", ".join(f"{name} {count}" for name, count in sorted(result.graph_calls.items()))
    )


if __name__ == "__main__":
    main()
