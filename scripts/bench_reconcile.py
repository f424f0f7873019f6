"""What the reconciliation timer costs as a tenant's healthy bookings grow.

Two runs of the timer (`reconcile`), each on a fresh Azurite, with the function app's own
services in this process and Graph answered at the wire by the emulator (localdev/round_trips.py):

- marked work: 10 bookings whose meeting is missing (their "needs work" markers), beside 0 and
  then `--healthy` (default 10,000) bookings in step that start in five days;
- pre-start verification: 10 bookings starting in three hours whose meetings were last checked
  days ago and were since moved by hand in Teams, beside 0 and then `--healthy` bookings in the
  same window that Teams confirmed a minute ago.

For each it prints the entities the timer read, the storage requests it sent (counted at the
wire) and its Graph requests, and the ratio of the large run to the small one: the cost should
follow the work (the 10), not the bookings.

    .venv/bin/python -m scripts.bench_reconcile [--healthy 10000]
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from localdev.round_trips import (
    AppInProcess,
    app_env,
    app_in_process,
    restore_environment,
    set_environment,
)

DRIFTED = 10


@dataclass(frozen=True)
class Cost:
    healthy: int
    entities_read: int
    requests: int
    graph: int
    seconds: float
    converged: int


def load_healthy(app: AppInProcess, count: int, start: datetime, verified_at: datetime) -> None:
    """`count` confirmed bookings whose meetings are in step, in bulk transactions."""
    from shared.bootstrap import services
    from tests.builders import in_step, store_in_bulk

    bookings = (in_step(app.tenant, i, start, verified_at) for i in range(count))
    store_in_bulk(services().tables.table("bookings"), bookings)


def missing_meetings(app: AppInProcess, start: datetime) -> None:
    """DRIFTED confirmed bookings that want a meeting Teams does not have yet."""
    from shared.bootstrap import services
    from shared.domain.booking import BookingStatus, MeetingState
    from tests.builders import a_booking

    for _ in range(DRIFTED):
        services().bookings.add(
            a_booking(
                tenant_id=app.tenant,
                status=BookingStatus.CONFIRMED,
                start=start,
                end=start + timedelta(hours=1),
                meeting=MeetingState(wanted=True),
            )
        )


def moved_in_teams(app: AppInProcess, start: datetime, last_seen: datetime) -> None:
    """DRIFTED approved bookings last checked at `last_seen`, their meetings since moved."""
    from shared.bootstrap import services

    svc = services()
    for _ in range(DRIFTED):
        booking_id = app.create()
        app.approve(booking_id)
        stored = svc.bookings.get(app.tenant, booking_id)
        moved = replace(stored, start=start, end=start + timedelta(hours=1))
        stored = svc.bookings.update(
            replace(moved, meeting=replace(moved.meeting, verified_at=last_seen))
        )
        app.emulator.edit_meeting_by_hand(
            str(stored.meeting.meeting_id),
            start=start + timedelta(hours=2),
            end=start + timedelta(hours=3),
        )


def timer_run(app: AppInProcess, healthy: int) -> Cost:
    from shared.bootstrap import services
    from shared.storage.wire import WIRE, round_trips, since

    graph_before = len(app.graph_calls())
    wire_before = WIRE.snapshot()
    began = time.perf_counter()
    report = services().reconciler.run()
    seconds = time.perf_counter() - began
    return Cost(
        healthy,
        report.entities_read,
        round_trips(since(wire_before, WIRE.snapshot())),
        len(app.graph_calls()) - graph_before,
        seconds,
        report.converged + report.repaired,
    )


def measure(kind: str, healthy: int, state: Path) -> Cost:
    from localdev.azurite import start_azurite
    from localdev.devauth import ensure_dev_issuer

    azurite = start_azurite(log_file=state / f"azurite-{kind}-{healthy}.log")
    issuer = ensure_dev_issuer(state / "dev-auth")
    stripe_secret = f"whsec_{secrets.token_hex(16)}"
    env = app_env(azurite.connection_string, issuer, stripe_secret, state / "mail")
    env["RECONCILE_SCHEDULE"] = "0 0 0 1 1 *"
    before = set_environment(env)
    try:
        with app_in_process(issuer, stripe_secret) as app:
            timer_run(app, 0)  # the warming approval's own checks; tables made once
            now = datetime.now(UTC).replace(microsecond=0)
            if kind == "marked":
                start = now + timedelta(days=5)
                load_healthy(app, healthy, start, verified_at=now - timedelta(minutes=1))
                missing_meetings(app, start)
            else:
                start = now + timedelta(hours=3)
                load_healthy(app, healthy, start, verified_at=now - timedelta(minutes=1))
                moved_in_teams(app, start, now - timedelta(days=3))
            cost = timer_run(app, healthy)
    finally:
        restore_environment(before)
        azurite.stop()
    if cost.converged < DRIFTED:
        raise SystemExit(f"{kind}: the timer put {cost.converged} of {DRIFTED} right")
    return cost


def compare(healthy: int) -> list[tuple[str, Cost, Cost]]:
    with tempfile.TemporaryDirectory(prefix="bench-reconcile-") as folder:
        state = Path(folder)
        return [
            (kind, measure(kind, 0, state), measure(kind, healthy, state))
            for kind in ("marked", "verification")
        ]


def bench(quick: bool = False) -> list[dict[str, Any]]:
    """Figures for `make bench` (scripts/bench.py)."""
    healthy = 1_000 if quick else 10_000
    figures: list[dict[str, Any]] = []
    for kind, small, large in compare(healthy):
        what = "marked work" if kind == "marked" else "pre-start verification"
        ratio = large.requests / small.requests
        figures.append(
            {
                "name": f"{what}: {healthy:,} healthy + {DRIFTED} drifted against 0 + {DRIFTED}",
                "value": (
                    f"entities read {large.entities_read} vs {small.entities_read}, "
                    f"storage requests {large.requests} vs {small.requests} ({ratio:.2f}x), "
                    f"Graph {large.graph} vs {small.graph}, "
                    f"{large.seconds * 1000:.0f} vs {small.seconds * 1000:.0f} ms"
                ),
                "target": (
                    "Graph calls equal; one entity per healthy booking in the window (its "
                    "start-index copy), no point read"
                    if kind == "verification"
                    else "Graph calls equal; storage requests within 1.5x"
                ),
                "met": large.graph == small.graph
                and (
                    large.entities_read - small.entities_read == healthy
                    if kind == "verification"
                    else ratio <= 1.5
                ),
            }
        )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--healthy", type=int, default=10_000)
    args = parser.parse_args()
    print(
        f"{'timer work':<14} {'healthy':>8} {'entities':>9} {'requests':>9} {'graph':>6} {'ms':>8}"
    )
    for kind, small, large in compare(args.healthy):
        for cost in (small, large):
            print(
                f"{kind:<14} {cost.healthy:>9} {cost.entities_read:>9} {cost.requests:>9} "
                f"{cost.graph:>9} {cost.seconds * 1000:>9.0f}"
            )


if __name__ == "__main__":
    main()
