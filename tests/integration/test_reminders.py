"""Reminders on Azurite: two timer runs racing record each reminder once (the booking's ETag);
a run costs the bookings in the reminder window, not all bookings; the tenant's offsets are
stored and read back."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta

import pytest

from shared.domain.booking import Booking, BookingStatus
from shared.domain.notices import NoticeKind
from shared.domain.tenant import Tenant
from shared.mail.delivery import MailOutbox
from shared.services.reminders import ReminderPass, ReminderReport
from shared.storage.bookings import TableBookingRepository
from shared.storage.queues import InMemoryWorkQueue
from shared.storage.tables import Tables
from shared.storage.tenant_directory import TenantDirectory
from shared.storage.tenants import TableTenantRepository
from tests.builders import T0, a_booking, store_in_bulk

pytestmark = pytest.mark.integration

TENANT = "tenant-a"
NOW = T0  # the timer's "now": the bookings are placed around it


def a_confirmed(i: int, start_in: timedelta) -> Booking:
    start = NOW + start_in
    return replace(
        a_booking(
            booking_id=f"b{i:05d}",
            status=BookingStatus.CONFIRMED,
            start=start,
            end=start + timedelta(hours=1),
        ),
        version=1,
    )


def a_pass(tables: Tables, queue: InMemoryWorkQueue | None = None) -> ReminderPass:
    """A timer's reminder pass as another process would have it: its own repositories."""
    directory = TenantDirectory(TableTenantRepository(tables), None)
    return ReminderPass(
        TableBookingRepository(tables),
        directory,
        MailOutbox(queue or InMemoryWorkQueue()),
        lambda: NOW,
        entities_read=lambda: tables.reads,
    )


def with_tenant(tables: Tables, **changes) -> None:
    TableTenantRepository(tables).add(Tenant(tenant_id=TENANT, display_name="A", **changes))


def test_two_racing_timer_runs_record_each_reminder_once(tables: Tables):
    # GIVEN 12 confirmed bookings whose 15-minute reminder is due
    with_tenant(tables)
    due = [a_confirmed(i, timedelta(minutes=10)) for i in range(12)]
    store_in_bulk(tables.table("bookings"), due)

    # WHEN two timer runs (two processes) race, three times over
    queue = InMemoryWorkQueue()
    passes = [a_pass(tables, queue), a_pass(tables, queue)]
    barrier = threading.Barrier(2)

    def run(reminder_pass: ReminderPass) -> ReminderReport:
        barrier.wait()
        return reminder_pass.run()

    reports: list[ReminderReport] = []
    for _ in range(3):
        with ThreadPoolExecutor(2) as pool:
            reports += pool.map(run, passes)

    # THEN each booking got exactly one reminder notice and one record, whoever won each race
    assert sum(r.reminded for r in reports) == 12
    assert all(r.errors == 0 for r in reports)
    repo = TableBookingRepository(tables)
    for booking in due:
        stored = repo.get(TENANT, booking.booking_id)
        kinds = [n.kind for n in stored.mail.pending]
        assert kinds == [NoticeKind.REMINDER], booking.booking_id
        assert [(r.offset_minutes, r.for_start) for r in stored.reminders.sent] == [
            (15, booking.start)
        ]
    # one mail message per recorded reminder (the outbox)
    assert Counter(m.booking_id for _, m in queue.messages) == {b.booking_id: 1 for b in due}


def test_a_run_costs_the_bookings_in_the_window_not_all_bookings(tables: Tables, azurite):
    from shared.settings import StorageSettings
    from shared.storage.tables import make_table_service

    cost: dict[str, tuple[int, int, int]] = {}
    for name, elsewhere in (("20 in the window", 0), ("20 in the window among 2,000", 2000)):
        # GIVEN 20 bookings due for their 15-minute reminder, and `elsewhere` bookings that
        # start later than the largest offset (24 h), or started already, or were cancelled
        service = make_table_service(StorageSettings(connection_string=azurite.connection_string))
        fresh = Tables(service, prefix=f"r{uuid.uuid4().hex[:10]}")
        with_tenant(fresh)
        window = [a_confirmed(i, timedelta(minutes=5 + i % 10)) for i in range(20)]
        others = [
            a_confirmed(100 + i, timedelta(days=2 + i % 300, minutes=i))
            if i % 4
            else a_confirmed(100 + i, -timedelta(hours=1 + i % 50))
            for i in range(elsewhere)
        ]
        others += [
            replace(a_confirmed(5000 + i, timedelta(minutes=7)), status=BookingStatus.CANCELLED)
            for i in range(elsewhere // 100)
        ]
        store_in_bulk(fresh.table("bookings"), window + others)

        # WHEN the timer's reminder pass runs
        report = a_pass(fresh).run()
        cost[name] = (report.entities_read, report.in_window, report.reminded)

    # THEN both runs read the same: the tenant's row, the 20 window rows, the 20 bookings saved
    for name, (read, in_window, reminded) in cost.items():
        print(f"{name}: {read} entities read, {in_window} in the window, {reminded} reminded")
    assert cost["20 in the window"] == (41, 20, 20)
    assert cost["20 in the window among 2,000"] == cost["20 in the window"]


def test_the_tenants_offsets_are_stored_and_read_back(tables: Tables):
    repo = TableTenantRepository(tables)
    # a tenant stored before the setting existed reminds at the defaults
    with_tenant(tables)
    assert repo.get(TENANT).reminder_offsets == (1440, 15)
    for offsets in ((), (10080, 60, 30, 5)):
        repo.update(replace(repo.get(TENANT), reminder_offsets=offsets))
        assert repo.get(TENANT).reminder_offsets == offsets
