"""The timer's sweep of marked work (SPEC §7's outbox, for every kind of work).

A change that owes work saves that kind's marker row with the booking, in one transaction, and
then sends its queue message. If the message is lost (or poisoned by crashes), the marker is
still there: the sweep lists each tenant's due markers of one kind, never the whole table, and
hands each booking to that kind's handler. One booking's trouble never stops the others; a
storage failure stops the tenant, which the next run takes again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from shared.domain.booking import Booking
from shared.storage.bookings import BookingRepository
from shared.storage.errors import StorageError
from shared.storage.tenant_directory import TenantDirectory


class SweepCounts(Protocol):
    """What a sweep counts, in the report of whichever kind of work it sweeps."""

    tenants: int
    marked: int
    errors: int
    out_of_time: bool
    failed_tenants: list[str]


Handle = Callable[[Booking], None]


class MarkerSweep:
    """Each tenant's bookings carrying the due marker of `kind`, one at a time."""

    def __init__(
        self,
        bookings: BookingRepository,
        tenants: TenantDirectory,
        kind: str,
        clock: Callable[[], datetime],
        *,
        per_tenant: int,
        logger: logging.Logger,
        what: str,
    ) -> None:
        self._bookings = bookings
        self._tenants = tenants
        self._kind = kind
        self._clock = clock
        self._per_tenant = per_tenant
        self._logger = logger
        self._what = what  # how the log names this sweep: "reconciliation", "mail sweep"

    def run(
        self,
        handle: Handle,
        counts: SweepCounts,
        deadline: float,
        *,
        then: Callable[[str], None] | None = None,
    ) -> None:
        """Sweep every tenant until `deadline` (time.monotonic()); `then(tenant_id)` runs after
        each tenant's marked work (e.g. the meetings' pre-start verification)."""
        tenant_ids = self._tenants.tenant_ids()
        counts.tenants = len(tenant_ids)
        for tenant_id in tenant_ids:
            try:
                self._tenant(tenant_id, handle, counts, deadline)
                if then is not None:
                    then(tenant_id)
            except StorageError:
                self._logger.exception("%s of tenant %s stopped by storage", self._what, tenant_id)
                counts.failed_tenants.append(tenant_id)
            if time.monotonic() > deadline:
                counts.out_of_time = True
                break

    def _tenant(self, tenant_id: str, handle: Handle, counts: SweepCounts, deadline: float) -> None:
        due_by = self._clock()
        marked = self._bookings.list_marked(self._kind, tenant_id, self._per_tenant, due_by)
        counts.marked += len(marked)
        for booking in marked:
            if time.monotonic() > deadline:
                counts.out_of_time = True
                return
            self.guarded(handle, booking, counts)

    def guarded(self, handle: Handle, booking: Booking, counts: SweepCounts) -> None:
        """One booking's trouble must not stop the sweep for every other booking; storage
        being down stops the tenant (it propagates)."""
        try:
            handle(booking)
        except StorageError:
            raise
        except Exception:
            counts.errors += 1
            self._logger.exception(
                "%s of booking %s in tenant %s failed",
                self._what,
                booking.booking_id,
                booking.tenant_id,
            )
