"""Two processes (two sets of services on the same tables) racing approve, reschedule and
cancel on the same bookings while Graph is slow: whatever order the saves land in, each
booking's listing rows, start row and markers are exactly its current state's, and Teams
holds exactly the meetings the stored bookings say. On Azurite, Graph faked at the wire."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from localdev.graph_emulator import Fault
from shared.auth.principal import Principal, Role
from shared.domain.booking import BookingStatus, IllegalTransitionError
from shared.services import bookings as use_cases
from shared.services.bookings import Approval
from shared.storage.bookings import TABLE, BookingQuery
from shared.storage.errors import ConcurrencyError
from tests.builders import a_booking
from tests.integration.conftest import TENANT

pytestmark = pytest.mark.integration

START = (datetime.now(UTC) + timedelta(days=7)).replace(minute=0, second=0, microsecond=0)
STAFF = Principal("staff-1", TENANT, frozenset({Role.STAFF}))
BOOKINGS = 6


@pytest.fixture
def two_processes(make_services):
    """Two processes' services (each its own caches) on the same tables and queues."""
    prefix = f"s{uuid.uuid4().hex[:10]}"
    return make_services(prefix), make_services(prefix, with_tenant=False)


def rows(svc, prefix: str) -> dict[str, dict]:
    table = svc.tables.table(TABLE)
    flt = f"PartitionKey eq '{TENANT}' and RowKey ge '{prefix}' and RowKey lt '{prefix}~'"
    return {row["RowKey"]: row for row in table.query_entities(flt)}


def test_racing_changes_from_two_processes_leave_every_index_exact(two_processes, emulator):
    one, two = two_processes
    emulator.add_fault(Fault(latency_ms=40))
    added = [
        one.bookings.add(
            a_booking(
                tenant_id=TENANT,
                booking_id=f"race{i}",
                start=START + timedelta(hours=i),
                end=START + timedelta(hours=i + 1),
                assignee_id="staff-1",
            )
        )
        for i in range(BOOKINGS)
    ]

    def approve(svc, booking_id):
        use_cases.approve_booking(STAFF, booking_id, Approval(), svc.booking_deps)

    def reschedule(svc, booking_id, days):
        moved = START + timedelta(days=days)
        use_cases.reschedule_booking(
            STAFF, booking_id, (moved, moved + timedelta(hours=1)), svc.booking_deps
        )

    def cancel(svc, booking_id):
        use_cases.cancel_booking(STAFF, booking_id, "clash", svc.booking_deps)

    errors: list[BaseException] = []

    def run(action, *args):
        for _ in range(5):
            try:
                action(*args)
                return
            except ConcurrencyError:
                continue  # the caller (a client) tries again on 409
            except IllegalTransitionError:
                return
            except BaseException as exc:
                errors.append(exc)
                return

    threads = []
    for i, booking in enumerate(added):
        bid = booking.booking_id
        plan = [(approve, one, bid), (approve, two, bid), (reschedule, two, bid, 1 + i)]
        plan += [(reschedule, one, bid, 2 + i)]
        if i % 2:
            plan.append((cancel, two if i % 4 == 1 else one, bid))
        threads += [threading.Thread(target=run, args=step) for step in plan]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    emulator.clear_faults()
    for _ in range(4):
        one.reconciler.run()

    stored = {b.booking_id: one.bookings.get(TENANT, b.booking_id) for b in added}
    listed = one.bookings.list_for_tenant(TENANT, BookingQuery(limit=100)).bookings
    assert sorted(b.booking_id for b in listed) == sorted(stored)
    for copy in listed:
        current = stored[copy.booking_id]
        assert (copy.version, copy.start, copy.status) == (
            current.version,
            current.start,
            current.status,
        )
    for who in ("staff-1", "student-1", "tutor-1"):
        mine = one.bookings.list_for_participant(TENANT, who, BookingQuery(limit=100)).bookings
        assert sorted(b.booking_id for b in mine) == sorted(stored)
        assert all(b.version == stored[b.booking_id].version for b in mine)
    by_start = rows(one, "t|")
    assert len(by_start) == len(stored)
    markers = {row["BookingId"] for row in rows(one, "r|").values()}
    assert markers == {b.booking_id for b in stored.values() if b.needs_reconciliation}
    mail = {row["BookingId"] for row in rows(one, "m|").values()}
    assert mail == {b.booking_id for b in stored.values() if b.mail.pending}
    start_rows = rows(one, "s|")
    assert sorted(row["BookingId"] for row in start_rows.values()) == sorted(
        b.booking_id for b in stored.values() if b.live and b.meeting.wanted
    )
    for b in stored.values():
        keys = json.loads(rows(one, "b|" + b.booking_id)["b|" + b.booking_id]["IndexRows"])
        assert set(keys) <= set(by_start) | set(start_rows) | set(rows(one, "u|"))
    live = {m.external_id: m for m in emulator.live_meetings()}
    confirmed = {b.booking_id for b in stored.values() if b.status is BookingStatus.CONFIRMED}
    assert set(live) == {f"{TENANT}:{bid}" for bid in confirmed}
    for bid in confirmed:
        assert stored[bid].meeting.meeting_id == live[f"{TENANT}:{bid}"].id
        assert live[f"{TENANT}:{bid}"].start.startswith(
            stored[bid].start.strftime("%Y-%m-%dT%H:%M:%S")
        )
    assert len(emulator.live_meetings()) == len(confirmed)
