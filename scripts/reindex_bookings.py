"""Write the listing indexes of bookings stored before them (once, after upgrading).

    .venv/bin/python -m scripts.reindex_bookings [--tenant TENANT_ID]

Bookings saved before the `t|`/`a|` listing rows existed do not appear in `GET /api/v1/bookings`
until their next save. This saves each such booking once, in every tenant (or one), and deletes
the older participant index rows (`p|`); see docs/architecture.md ("Listing by index"). Storage
comes from `AzureWebJobsStorage` (or `AzureWebJobsStorage__accountName` with a managed
identity), as for the function app. Safe to run alongside the app and to run again.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# Run as a file (python scripts/reindex_bookings.py), the repository root is not on the path.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.meeting_metrics import CommandError, storage_from_env
from shared.storage.bookings import TableBookingRepository
from shared.storage.errors import StorageError
from shared.storage.tables import Tables, make_table_service
from shared.storage.tenants import TableTenantRepository


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenant", help="only this tenant (default: every tenant)")
    args = parser.parse_args(argv)
    try:
        tables = Tables(make_table_service(storage_from_env(os.environ)))
        tenants = (
            [args.tenant]
            if args.tenant
            else [t.tenant_id for t in TableTenantRepository(tables).list_all()]
        )
        bookings = TableBookingRepository(tables)
        for tenant_id in tenants:
            print(f"{tenant_id}: {bookings.reindex(tenant_id)} booking(s) indexed")
    except (CommandError, StorageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
