"""Seed 000's meeting metrics for one tenant and time window, read from the audit records and
the bookings.

Success rate, request → link latency (p50/p95), retry rate and Graph error rate, and of the
lessons that started in the window and completed, the attendance and no-show rates; the definitions
are in shared/services/metrics.py and docs/operations.md ("Metrics"). Storage comes from the
`AzureWebJobsStorage` connection string (or `AzureWebJobsStorage__accountName` with a managed
identity), as for the function app.

    .venv/bin/python scripts/meeting_metrics.py --tenant demo --since 2026-11-21T00:00:00Z
    .venv/bin/python scripts/meeting_metrics.py --tenant demo --hours 6 --json

The window is [since, until): --since and --until; or --since and --hours; or the --hours
(default 24) before --until (default now). Times without an offset are UTC.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

# Run as a file (python scripts/meeting_metrics.py), the repository root is not on the path.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.domain.booking import Booking, BookingStatus
from shared.services.metrics import AttendanceCounts, MeetingMetrics, compute_metrics
from shared.settings import StorageSettings
from shared.storage.audit import TABLE as AUDIT_TABLE
from shared.storage.audit import TableAuditRepository
from shared.storage.bookings import BookingQuery, ListPosition, TableBookingRepository
from shared.storage.errors import NotFoundError, StorageError, StorageUnavailableError
from shared.storage.tables import Tables, make_table_service

if TYPE_CHECKING:
    from azure.data.tables import TableClient

DEFAULT_HOURS = 24.0
PAGE = 200


class CommandError(Exception):
    """A problem the user can fix; printed as one line, without a traceback."""


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        since, until = window(args.since, args.until, args.hours, now=datetime.now(UTC))
    except ValueError as exc:
        parser.error(str(exc))
    except OverflowError:
        parser.error("the window reaches beyond the calendar")
    try:
        metrics = read_metrics(
            storage_from_env(os.environ), args.tenant, since, until, args.table_prefix
        )
    except CommandError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(metrics.to_json(), indent=2, ensure_ascii=False))
    else:
        print(metrics.render_text())
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meeting_metrics",
        description="Seed 000's meeting metrics of one tenant, from audit records and bookings.",
    )
    parser.add_argument("--tenant", required=True, help="tenant id (e.g. demo)")
    parser.add_argument(
        "--since", type=moment, help="window start, ISO 8601 (e.g. 2026-11-21T00:00:00Z)"
    )
    parser.add_argument("--until", type=moment, help="window end, excluded (default: now)")
    parser.add_argument(
        "--hours",
        type=hours,
        help=f"window length in hours (default {DEFAULT_HOURS:g} when --since is not given)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument(
        "--table-prefix", default="", help="prefix of the table names (tests use one)"
    )
    return parser


def moment(raw: str) -> datetime:
    """An ISO 8601 date or time; without an offset it is UTC."""
    try:
        parsed = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{raw!r} is not an ISO 8601 time (e.g. 2026-11-21T00:00:00Z)"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def hours(raw: str) -> float:
    """A window length: a finite number of hours above 0."""
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{raw!r} is not a number of hours above 0")
    return value


def window(
    since: datetime | None, until: datetime | None, hours: float | None, *, now: datetime
) -> tuple[datetime, datetime]:
    """[since, until) from the options given; ValueError when they do not make one window."""
    if since is not None and until is not None and hours is not None:
        raise ValueError("give at most two of --since, --until and --hours")
    if hours is not None and hours <= 0:
        raise ValueError("--hours must be more than 0")
    if since is None:
        until = until or now
        since = until - timedelta(hours=DEFAULT_HOURS if hours is None else hours)
    elif until is None:
        until = now if hours is None else since + timedelta(hours=hours)
    if since >= until:
        raise ValueError(
            f"the window is empty: --since {since:%Y-%m-%dT%H:%M:%SZ} is not "
            f"before its end {until:%Y-%m-%dT%H:%M:%SZ}"
        )
    return since, until


def storage_from_env(env: Mapping[str, str]) -> StorageSettings:
    problems: list[str] = []
    storage = StorageSettings.from_values(lambda name: env.get(name, "").strip(), problems)
    if problems:
        raise CommandError(
            "AzureWebJobsStorage is not set: export the storage connection string (for a local "
            "run, Azurite's; see docs/operations.md), or AzureWebJobsStorage__accountName to "
            "use your Azure login"
            if not (storage.connection_string or storage.account_name)
            else "; ".join(problems)
        )
    return storage


class ExistingTables(Tables):
    """Tables as they are: a command that only reads creates none (a reader role cannot)."""

    def table(self, name: str) -> TableClient:
        return self._service.get_table_client(f"{self._prefix}{name}")


def read_metrics(
    storage: StorageSettings, tenant_id: str, since: datetime, until: datetime, prefix: str
) -> MeetingMetrics:
    """Read the tenant's audit records of the window and compute the metrics."""
    try:
        service = make_table_service(storage)
    except ValueError as exc:
        raise CommandError(
            f"AzureWebJobsStorage is not a usable connection string ({exc})"
        ) from exc
    audit = TableAuditRepository(ExistingTables(service, prefix=prefix))
    with service:
        try:
            records = audit.list_for_period(tenant_id, since, until)
        except NotFoundError:
            print(f"note: there is no {prefix}{AUDIT_TABLE} table: no records", file=sys.stderr)
            records = []
        except StorageUnavailableError as exc:
            raise CommandError(
                f"cannot read the audit records: {exc} (is the storage running, and is "
                "AzureWebJobsStorage the right connection string?)"
            ) from exc
        except StorageError as exc:
            raise CommandError(f"cannot read the audit records: {exc}") from exc
        try:
            completed = completed_lessons(
                ExistingTables(service, prefix=prefix), tenant_id, since, until
            )
        except NotFoundError:
            completed = []
        except StorageError as exc:
            raise CommandError(f"cannot read the bookings: {exc}") from exc
    metrics = compute_metrics(records, since, until, tenant_id=tenant_id)
    return replace(metrics, attendance=AttendanceCounts.of(completed))


def completed_lessons(
    tables: Tables, tenant_id: str, since: datetime, until: datetime
) -> list[Booking]:
    """The tenant's completed bookings that started in [since, until), page by page from the
    start index (a read per page, only of bookings in the window)."""
    bookings = TableBookingRepository(tables)
    found: list[Booking] = []
    query = BookingQuery(
        status=BookingStatus.COMPLETED, start_from=since, start_to=until, limit=PAGE
    )
    while True:
        page = bookings.list_for_tenant(tenant_id, query)
        found += [b for b in page.bookings if b.start < until]
        if not page.more or not page.bookings:
            return found
        last = page.bookings[-1]
        query = replace(query, after=ListPosition(last.start, last.booking_id))


if __name__ == "__main__":
    sys.exit(main())
