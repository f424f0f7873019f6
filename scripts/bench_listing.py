"""What one page of `GET /bookings` costs as the tenant grows.

Starts Azurite (in memory, free ports), bulk-loads 100 and then 4,000 bookings into a tenant (in
entity-group transactions, as the tests do) and lists `--limit` (default 20) of them through the
booking repository: the staff list, a one-day window of it, and one participant's list (a tutor
who takes part in every booking). For each it prints the entities read (query results and point
reads), the storage requests sent (counted at the wire) and the median milliseconds of
`--runs` (default 5) repetitions. Last, what the indexes cost a write: the median milliseconds of
saving one confirmed booking that wants a meeting (one entity-group transaction).

    .venv/bin/python -m scripts.bench_listing [--limit 20] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from localdev.azurite import start_azurite
from shared.domain.booking import BookingStatus, MeetingState, Participant, ParticipantRole
from shared.settings import StorageSettings
from shared.storage.bookings import BookingQuery, TableBookingRepository
from shared.storage.tables import Tables, make_table_service
from shared.storage.wire import WIRE
from tests.builders import a_booking, store_in_bulk

TENANT = "tenant-bench"
START = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
ONE_DAY = timedelta(days=1)
STATUSES = (BookingStatus.PENDING, BookingStatus.CONFIRMED, BookingStatus.CANCELLED)


def requests_sent() -> int:
    """Storage requests this process has sent, counted at the wire (`shared.storage.wire`)."""
    return sum(WIRE.snapshot().values())


def load(tables: Tables, count: int) -> None:
    """`count` bookings, two to each hour (equal start times on purpose), in bulk transactions."""
    bookings = []
    for i in range(count):
        start = START + timedelta(hours=i // 2)
        booking = a_booking(
            tenant_id=TENANT,
            booking_id=f"bench{i:05d}",
            status=STATUSES[i % len(STATUSES)],
            start=start,
            end=start + timedelta(hours=1),
            participants=(
                Participant(f"student-{i % 50}", ParticipantRole.STUDENT, "s@example.com"),
                Participant("tutor-1", ParticipantRole.TUTOR, "t@example.com"),
            ),
            version=1,
        )
        bookings.append(booking)
    store_in_bulk(tables.table("bookings"), bookings)


def measure(
    repo: TableBookingRepository,
    tables: Tables,
    runs: int,
    query: BookingQuery,
    participant: str | None,
) -> tuple[int, int, float]:
    def list_page() -> object:
        if participant is None:
            return repo.list_for_tenant(TENANT, query)
        return repo.list_for_participant(TENANT, participant, query)

    list_page()  # warm: the table client exists, the connection is open
    timings = []
    reads = requests = 0
    for _ in range(runs):
        reads_before, requests_before = tables.reads, requests_sent()
        started = time.perf_counter()
        list_page()
        timings.append((time.perf_counter() - started) * 1000)
        reads, requests = tables.reads - reads_before, requests_sent() - requests_before
    return reads, requests, statistics.median(timings)


def save_ms(repo: TableBookingRepository) -> float:
    booking = repo.add(
        a_booking(
            tenant_id=TENANT,
            status=BookingStatus.CONFIRMED,
            start=START,
            end=START + ONE_DAY / 24,
            meeting=MeetingState(wanted=True),
        )
    )
    timings = []
    for n in range(21):
        started = time.perf_counter()
        booking = repo.update(replace(booking, internal_notes=f"note {n}"))
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    query = BookingQuery(limit=args.limit)
    day = START + ONE_DAY
    cases: list[tuple[str, BookingQuery, str | None]] = [
        ("staff", query, None),
        ("staff, one-day window", replace(query, start_from=day, start_to=day + ONE_DAY), None),
        ("staff, status=confirmed", replace(query, status=BookingStatus.CONFIRMED), None),
        ("participant (tutor-1)", query, "tutor-1"),
    ]
    azurite = start_azurite()
    try:
        print(f"limit={args.limit}, median of {args.runs} runs, Azurite in memory")
        print(f"{'bookings':>8}  {'list':<24} {'entities read':>13} {'requests':>8} {'ms':>8}")
        for count in (100, 4000):
            service = make_table_service(
                StorageSettings(connection_string=azurite.connection_string)
            )
            tables = Tables(service, prefix=f"b{uuid.uuid4().hex[:10]}")
            load(tables, count)
            repo = TableBookingRepository(tables)
            for name, case, participant in cases:
                reads, requests, ms = measure(repo, tables, args.runs, case, participant)
                print(f"{count:>8}  {name:<24} {reads:>13} {requests:>8} {ms:>8.1f}")
        print(f"save of one booking (median of 20): {save_ms(repo):.1f} ms")
    finally:
        azurite.stop()


if __name__ == "__main__":
    main()
