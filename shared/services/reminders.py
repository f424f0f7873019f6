"""The reminder pass of the reconciliation timer (SPEC §8): participants are e-mailed the join
link at the tenant's offsets before a session (`reminderOffsets`, default 24 h and 15 min).

Per tenant it makes one range query over the start index (`t|{start}|{id}`, confirmed bookings
starting in (now, now + the largest offset]), so a run costs the bookings in the reminder window,
not all bookings. A booking due for a reminder (`shared.domain.reminders.due_offset`, decided on
the index's copy, which is written with the booking) is read and saved with its REMINDER notice
and the record of (offset, start) in one ETag-guarded save on the latest version: a run that
loses the race to another sees the record and saves nothing. The mail outbox does the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from shared.auth.principal import Principal
from shared.domain import reminders
from shared.domain.booking import Booking, BookingStatus
from shared.mail.delivery import MailOutbox
from shared.observability import log_event
from shared.storage.bookings import BookingQuery, BookingRepository
from shared.storage.errors import NotFoundError, StorageError
from shared.storage.tenant_directory import TenantDirectory
from shared.work.record import record_on_latest

logger = logging.getLogger("meetings.reminders")

PAGE = 200
# The index's window ends are exclusive; its row keys are to the microsecond.
_TICK = timedelta(microseconds=1)


def lateness_for(schedule: str) -> timedelta:
    """How late a reminder may still go, for a timer on NCRONTAB `schedule`: three of its
    periods, and at least 15 minutes. The period is read from the usual shapes ("0 */5 * * * *"
    every 5 minutes, "0 0 */2 * * *" every 2 hours, "0 * * * * *" every minute); any other
    schedule counts as every 5 minutes (the default)."""
    fields = schedule.split()
    period = timedelta(minutes=5)
    if len(fields) == 6:
        minute, hour = fields[1], fields[2]
        if minute == "*":
            period = timedelta(minutes=1)
        elif minute.startswith("*/") and minute[2:].isdigit():
            period = timedelta(minutes=int(minute[2:]))
        elif minute.isdigit() and hour.startswith("*/") and hour[2:].isdigit():
            period = timedelta(hours=int(hour[2:]))
        elif minute.isdigit() and hour == "*":
            period = timedelta(hours=1)
    return max(reminders.LATE, 3 * period)


def offsets_of(caller: Principal, tenants: TenantDirectory) -> tuple[int, ...]:
    """The caller's tenant's reminder offsets, as the booking's JSON shows them (a copy of the
    tenant read moments ago in this process will do)."""
    return tenants.get(caller.tenant_id, recent=True).reminder_offsets


@dataclass
class ReminderReport:
    tenants: int = 0
    in_window: int = 0  # bookings the window's range queries returned
    reminded: int = 0  # reminders recorded (one notice each, to every participant)
    entities_read: int = 0  # booking entities read: the window's rows and the due bookings
    errors: int = 0
    failed_tenants: list[str] = field(default_factory=list)


class ReminderPass:
    def __init__(
        self,
        bookings: BookingRepository,
        tenants: TenantDirectory,
        outbox: MailOutbox,
        clock: Callable[[], datetime],
        *,
        entities_read: Callable[[], int],
        late: timedelta = reminders.LATE,
    ) -> None:
        self._bookings = bookings
        self._tenants = tenants
        self._outbox = outbox
        self._clock = clock
        self._entities_read = entities_read
        self._late = late

    def run(self) -> ReminderReport:
        """Record every reminder due now, in every tenant. A tenant whose storage fails is
        logged and counted; the others still go."""
        report = ReminderReport()
        reads_before = self._entities_read()
        try:
            tenant_ids = self._tenants.tenant_ids()
        except StorageError:
            logger.exception("reminder pass: the tenants could not be listed")
            report.errors += 1
            tenant_ids = []
        for tenant_id in tenant_ids:
            report.tenants += 1
            try:
                self._tenant(tenant_id, report)
            except StorageError:
                logger.exception("reminder pass failed for tenant %s", tenant_id)
                report.errors += 1
                report.failed_tenants.append(tenant_id)
        report.entities_read = self._entities_read() - reads_before
        log_event(logger, logging.INFO, "reminder_run", **asdict(report))
        return report

    def _tenant(self, tenant_id: str, report: ReminderReport) -> None:
        offsets = self._tenants.get(tenant_id, recent=True).reminder_offsets
        ahead = reminders.window(offsets)
        if ahead is None:
            return  # reminders off: nothing read
        now = self._clock()
        query = BookingQuery(
            status=BookingStatus.CONFIRMED,
            start_from=now + _TICK,
            start_to=now + ahead + _TICK,
            limit=PAGE,
        )
        while True:
            page = self._bookings.list_for_tenant(tenant_id, query)
            report.in_window += len(page.bookings)
            for copy in page.bookings:
                if reminders.due_offset(copy, offsets, now, self._late) is not None:
                    report.reminded += self._remind(copy, offsets, now)
            after = page.next_after
            if after is None:
                return
            query = BookingQuery(
                status=query.status,
                start_from=query.start_from,
                start_to=query.start_to,
                limit=PAGE,
                after=after,
            )

    def _remind(self, copy: Booking, offsets: tuple[int, ...], now: datetime) -> int:
        """Record the due reminder on the latest version; 1 if this run recorded it."""
        try:
            latest = self._bookings.get(copy.tenant_id, copy.booking_id)
        except NotFoundError:
            return 0
        made: list[bool] = []

        def change(booking: Booking) -> Booking:
            changed = reminders.reminded(booking, offsets, now, self._late)
            made[:] = [changed is not booking]
            return changed

        saved = record_on_latest(
            self._bookings, latest, change, skip_unchanged=True, what="reminder"
        )
        if not (made and made[-1]):
            return 0
        self._outbox.after_change(saved)
        return 1
