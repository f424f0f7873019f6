"""The reconciliation timer: converge every booking marked "needs work", then verify the meetings
of bookings that start soon against Teams (SPEC §7).

Its cost grows with the work, not with all bookings: it reads the tenants, the marker rows of
each tenant (and the bookings they name), and the start-index rows of the verification window.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from shared.domain.booking import MEETING_WORK, Booking
from shared.domain.meeting import Step
from shared.meetings.converger import Converger
from shared.meetings.worker import MeetingWorker, stop
from shared.observability import log_event
from shared.storage.bookings import BookingRepository
from shared.storage.queues import WorkQueue
from shared.storage.tenant_directory import TenantDirectory
from shared.work.sweep import MarkerSweep

logger = logging.getLogger("meetings.reconcile")

# "Checked again about an hour before" the start.
FINAL_CHECK = timedelta(hours=1)
MARKERS_PER_TENANT = 500


@dataclass
class ReconcileReport:
    tenants: int = 0
    marked: int = 0
    converged: int = 0
    scheduled: int = 0
    stopped: int = 0
    busy: int = 0
    not_due: int = 0
    in_window: int = 0
    verified: int = 0
    repaired: int = 0
    remade: int = 0
    errors: int = 0
    entities_read: int = 0
    out_of_time: bool = False
    failed_tenants: list[str] = field(default_factory=list)


def due_for_check(booking: Booking, now: datetime, window: timedelta) -> bool:
    """Checked once in the window (an answer from Teams inside it counts), and again within
    the last hour before the start."""
    verified_at = booking.meeting.verified_at
    if verified_at is None or verified_at < booking.start - window:
        return True
    final_from = booking.start - FINAL_CHECK
    return now >= final_from and verified_at < final_from


class Reconciler:
    def __init__(
        self,
        bookings: BookingRepository,
        tenants: TenantDirectory,
        converger: Converger,
        worker: MeetingWorker,
        queue: WorkQueue,
        clock: Callable[[], datetime],
        *,
        verify_window: timedelta,
        entities_read: Callable[[], int],
        budget_seconds: float = 240.0,
    ) -> None:
        self._bookings = bookings
        self._tenants = tenants
        self._converger = converger
        self._worker = worker
        self._queue = queue
        self._clock = clock
        self._window = verify_window
        self._entities_read = entities_read
        self._budget = budget_seconds
        self._sweep = MarkerSweep(
            bookings,
            tenants,
            MEETING_WORK,
            clock,
            per_tenant=MARKERS_PER_TENANT,
            logger=logger,
            what="reconciliation",
        )

    def run(self) -> ReconcileReport:
        report = ReconcileReport()
        reads_before = self._entities_read()
        deadline = time.monotonic() + self._budget
        self._sweep.run(
            lambda booking: self._converge(booking, report),
            report,
            deadline,
            then=lambda tenant_id: self._verify_window(tenant_id, report, deadline),
        )
        report.entities_read = self._entities_read() - reads_before
        log_event(logger, logging.INFO, "reconcile_run", **asdict(report))
        return report

    def _converge(self, booking: Booking, report: ReconcileReport) -> None:
        # A due marker nobody holds: this run owns the round (one attempt) and schedules the
        # next, as the worker would. Work held by a worker (between its in-process retries, or
        # waiting for a delayed round) is its holder's: busy, or not listed as due.
        token = uuid.uuid4().hex
        result = self._converger.converge(
            booking.tenant_id,
            booking.booking_id,
            actor="reconciler",
            latest=booking,
            token=token,
            hold=0.0,
        )
        error = result.error
        if result.busy:
            report.busy += 1
        elif result.not_due:
            report.not_due += 1  # its round was scheduled after the markers were listed
        elif error is not None and not error.retryable:
            stop(self._queue, result.booking, error, "permanent")
            report.stopped += 1
        elif error is not None:
            # The queue takes it from here, on the delayed schedule.
            self._worker.schedule(result.booking, error, token)
            report.scheduled += 1
        elif result.converged:
            report.converged += 1

    def _verify_window(self, tenant_id: str, report: ReconcileReport, deadline: float) -> None:
        now = self._clock()
        starting = self._bookings.list_starting_between(tenant_id, now, now + self._window)
        report.in_window += len(starting)
        for booking in starting:
            if time.monotonic() > deadline:
                report.out_of_time = True
                return
            if not due_for_check(booking, now, self._window) or booking.next_step is not Step.NONE:
                continue  # checked recently, or work is outstanding and converging already
            if not booking.meeting.in_teams or booking.meeting.failed:
                continue
            self._sweep.guarded(lambda b: self._verify(b, report), booking, report)

    def _verify(self, booking: Booking, report: ReconcileReport) -> None:
        if booking.etag is None:
            # Listed from the start index's copy: only a booking due for a check costs a read
            # of the booking itself, whose ETag guards the claim.
            booking = self._bookings.get(booking.tenant_id, booking.booking_id)
        checked = self._converger.check(booking, actor="reconciler")
        if checked is None:
            report.busy += 1
            return
        if checked.error is not None:
            report.errors += 1
            return
        report.verified += 1
        after = checked.booking
        if after.meeting.generation != booking.meeting.generation:
            report.remade += 1
        elif after.next_step is Step.UPDATE:
            report.repaired += 1
        if after.next_step is not Step.NONE:
            self._converge(after, report)
