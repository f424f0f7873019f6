"""A burst of paid bookings at a cold host: every booking gets exactly one meeting, and fast.

Starts the local stack (Graph slowed by `--latency-ms` a call), makes `--bookings` pending
bookings, restarts nothing but sends their payments to a host that has not yet signed in to
Graph, from `--senders` at once: each booking's `payment_intent.succeeded`, `--redelivered` of
them a second time (Stripe delivers at least once) and `--out-of-order` of them preceded by their
`checkout.session.completed` (another event for the same payment, arriving first). Then it waits
for every booking's link and reports: meetings made against bookings, duplicates (bookings with
more than one live meeting), token and organizer requests per tenant, the host's peak memory
(the largest of its worker processes) and the time from the first event to the last link.

    .venv/bin/python scripts/bench_burst.py [--bookings 1000] [--senders 32] [--latency-ms 100]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from localdev import stripe_events
from localdev.graph_emulator import Fault
from localdev.stack import DEMO_TENANT_ID, LocalStack, local_stack
from scripts import process_stats
from scripts.bench_payments import QUIET_TIMER, make_bookings, send_event


@dataclass
class Burst:
    bookings: int
    events: int
    redelivered: int
    out_of_order: int
    senders: int
    worker_processes: int
    meetings: int
    duplicates: int
    without_link: int
    token_requests: int
    organizer_lookups: int
    peak_rss_mib: float
    seconds_to_last_link: float
    answers: dict[int, int]
    retried: dict[str, int]


def plan(ids: list[str], redelivered: float, out_of_order: float, seed: int) -> list[Any]:
    """The events in delivery order: each booking's payment, a share sent twice (the copy a
    little later, as a retry comes), a share preceded by its checkout session event."""
    rng = random.Random(seed)  # noqa: S311 - a repeatable order, not a secret
    events: list[Any] = []
    late: list[tuple[int, Any]] = []
    early = set(rng.sample(ids, round(out_of_order * len(ids))))
    twice = set(rng.sample(ids, round(redelivered * len(ids))))
    for n, booking_id in enumerate(ids):
        payment = stripe_events.payment_succeeded(DEMO_TENANT_ID, booking_id)
        if booking_id in early:
            events.append(stripe_events.checkout_completed(DEMO_TENANT_ID, booking_id))
        events.append(payment)
        if booking_id in twice:
            late.append((n + rng.randint(1, 50), payment))
    for position, payment in sorted(late, key=lambda item: item[0], reverse=True):
        events.insert(min(position, len(events)), payment)
    return events


def deliver(stack: LocalStack, event: dict[str, Any], retried: Counter[str]) -> int:
    """Send an event as Stripe does: a 5xx answer is delivered again (here after at most 2 s,
    where Stripe waits longer), up to 5 times. The last answer's status."""
    for _ in range(5):
        answer = send_event(stack, event)
        if answer.status_code < 500:
            return answer.status_code
        retried[f"{answer.status_code} {answer.json().get('code', '')}".strip()] += 1
        time.sleep(min(2.0, float(answer.headers.get("Retry-After") or 1)))
    return answer.status_code


def wait_for_links(stack: LocalStack, ids: list[str], token: str, timeout: float) -> list[str]:
    """Read each booking until it has its link; the ids still without one at the deadline."""
    deadline = time.monotonic() + timeout
    pending = list(ids)
    session = requests.Session()
    while pending and time.monotonic() < deadline:
        still = []
        for booking_id in pending:
            booking = session.get(
                f"{stack.api}/v1/bookings/{booking_id}",
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            ).json()
            if not booking.get("meetingLink"):
                still.append(booking_id)
        pending = still
        if pending:
            time.sleep(0.2)
    return pending


def measure(
    *,
    bookings: int = 1000,
    senders: int = 32,
    latency_ms: int = 100,
    redelivered: float = 0.10,
    out_of_order: float = 0.05,
    worker_processes: int = 1,
    seed: int = 16,
    echo: bool = False,
) -> Burst:
    settings = {**QUIET_TIMER, "FUNCTIONS_WORKER_PROCESS_COUNT": str(worker_processes)}
    with (
        tempfile.TemporaryDirectory(prefix="bench-burst-") as state,
        local_stack(state_dir=Path(state), extra_env=settings) as stack,
    ):
        token = stack.issuer.mint(user="admin-1", roles=["admin"], tenant=DEMO_TENANT_ID)
        started = time.perf_counter()
        ids = make_bookings(stack, bookings, token, 0, senders=16)
        if echo:
            print(
                f"  {bookings} pending bookings made in {time.perf_counter() - started:.1f} s",
                flush=True,
            )
        events = plan(ids, redelivered, out_of_order, seed)
        stack.emulator.add_fault(Fault(operation="*", latency_ms=latency_ms))
        before = stack.emulator.snapshot()["calls"]
        started = time.perf_counter()
        retried: Counter[str] = Counter()
        with ThreadPoolExecutor(senders) as pool:
            answers = Counter(pool.map(lambda e: deliver(stack, e, retried), events))
        if echo:
            print(
                f"  {len(events)} events answered in {time.perf_counter() - started:.1f} s "
                f"from {senders} senders: {dict(answers)}; delivered again after "
                f"{dict(retried) or 'none'}",
                flush=True,
            )
        missing = wait_for_links(stack, ids, token, timeout=300)
        seconds = time.perf_counter() - started
        peak = max(
            process_stats.peak_rss_mib(pid)
            for pid in process_stats.process_tree(stack.host_process.pid)
        )
        snapshot = stack.emulator.snapshot()
    calls = Counter(snapshot["calls"])
    calls.subtract(before)
    live = [m for m in snapshot["meetings"] if not m["deleted"]]
    # externalId is "<tenant>:<booking>" (":<generation>" after a remake): live meetings per
    # booking, whatever their generation.
    per_booking = Counter(str(m.get("externalId")).split(":")[1] for m in live)
    return Burst(
        bookings=bookings,
        events=len(events),
        redelivered=round(redelivered * bookings),
        out_of_order=round(out_of_order * bookings),
        senders=senders,
        worker_processes=worker_processes,
        meetings=len(live),
        duplicates=sum(count - 1 for count in per_booking.values()),
        without_link=len(missing),
        # The host signs in through its managed identity (`identity`), then asks for a Graph
        # token (`token`); the demo stack has one tenant.
        token_requests=calls["token"],
        organizer_lookups=calls["getUser"],
        peak_rss_mib=peak,
        seconds_to_last_link=seconds,
        answers=dict(answers),
        retried=dict(retried),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bookings", type=int, default=1000)
    parser.add_argument("--senders", type=int, default=32)
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--worker-processes", type=int, default=1)
    args = parser.parse_args()
    burst = measure(
        bookings=args.bookings,
        senders=args.senders,
        latency_ms=args.latency_ms,
        worker_processes=args.worker_processes,
        echo=True,
    )
    for name, value in vars(burst).items():
        print(f"{name}: {value}")


if __name__ == "__main__":
    main()
