"""Storage round trips and Graph calls per action, counted at the wire, with the time each took.

Starts Azurite (on free ports), drives the function app in this process through its function
index (see localdev/round_trips.py), Graph answered at the wire by the emulator, and prints a
table: for approve, reschedule, cancel and a Stripe payment webhook (payment_intent.succeeded for
a pending booking), the median of `--runs` runs of each count and of the time.

    .venv/bin/python -m scripts.bench_round_trips [--runs 5] [--only approve]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from localdev.round_trips import (
    AppInProcess,
    Measured,
    app_env,
    app_in_process,
    restore_environment,
    set_environment,
)

COLUMNS = ("read", "query", "batch", "write", "delete", "queue_send")


def actions(app: AppInProcess) -> dict[str, Callable[[], Measured]]:
    def approve() -> Measured:
        return app.approve(app.create())

    def reschedule() -> Measured:
        booking_id = app.create()
        app.approve(booking_id)
        return app.reschedule(booking_id)

    def cancel() -> Measured:
        booking_id = app.create()
        app.approve(booking_id)
        return app.cancel(booking_id)

    def pay() -> Measured:
        return app.pay(app.create())

    return {"approve": approve, "reschedule": reschedule, "cancel": cancel, "payment webhook": pay}


def table(results: dict[str, list[Measured]]) -> str:
    head = f"{'action':<16} {'round trips':>11} " + " ".join(f"{c:>10}" for c in COLUMNS)
    head += f" {'graph':>6} {'ms':>8}"
    lines = [head, "-" * len(head)]
    for name, runs in results.items():

        def median(values: list[float]) -> float:
            return float(statistics.median(values))

        cells = [f"{median([r.storage[c] for r in runs]):>10g}" for c in COLUMNS]
        lines.append(
            f"{name:<16} {median([r.round_trips for r in runs]):>11g} "
            + " ".join(cells)
            + f" {median([len(r.graph) for r in runs]):>6g}"
            + f" {median([r.ms for r in runs]):>8.1f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--only", choices=["approve", "reschedule", "cancel", "payment webhook"], default=None
    )
    args = parser.parse_args()

    from localdev.azurite import start_azurite
    from localdev.devauth import ensure_dev_issuer

    with tempfile.TemporaryDirectory(prefix="bench-round-trips-") as state:
        azurite = start_azurite(log_file=Path(state) / "azurite.log")
        issuer = ensure_dev_issuer(Path(state) / "dev-auth")
        stripe_secret = f"whsec_{secrets.token_hex(16)}"
        env = app_env(azurite.connection_string, issuer, stripe_secret, Path(state) / "mail")
        before = set_environment(env)
        try:
            with app_in_process(issuer, stripe_secret) as app:
                results: dict[str, list[Measured]] = {}
                for name, run in actions(app).items():
                    if args.only not in (None, name):
                        continue
                    results[name] = [run() for _ in range(args.runs)]
                    bad = [r for r in results[name] if r.status != 200]
                    if bad:
                        raise SystemExit(f"{name} answered {bad[0].status}: {bad[0].body}")
                read_ms = one_read_ms(app, args.runs)
        finally:
            restore_environment(before)
            azurite.stop()
    print(f"Storage requests per action (median of {args.runs}), Graph calls, in-process time")
    print(table(results))
    if "approve" in results:
        approve_ms = statistics.median(r.ms for r in results["approve"])
        print(
            f"One storage round trip (a booking's point read): {read_ms:.1f} ms; approve takes "
            f"{approve_ms / read_ms:.1f} round-trip units (Graph answered in process)"
        )


def one_read_ms(app: AppInProcess, runs: int) -> float:
    """The median time of one storage round trip: a point read of a booking."""
    import time

    from shared.bootstrap import services

    booking_id = app.create()
    bookings = services().bookings
    times = []
    for _ in range(max(runs, 5) * 4):
        began = time.perf_counter()
        bookings.get(app.tenant, booking_id)
        times.append((time.perf_counter() - began) * 1000)
    return float(statistics.median(times))


if __name__ == "__main__":
    main()
