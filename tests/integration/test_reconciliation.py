"""The reconciliation timer on Azurite with the Graph emulator: it converges marked bookings at a
cost that grows with the work, and verifies soon-starting meetings against Teams itself."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shared.auth.principal import Principal, Role
from shared.domain.audit import AuditEvent
from shared.domain.booking import BookingStatus, MeetingState, MeetingStatus
from shared.services import bookings as use_cases
from shared.services.bookings import Approval
from tests.builders import a_booking, in_step, store_in_bulk
from tests.integration.conftest import TENANT

pytestmark = pytest.mark.integration

STAFF = Principal("staff-1", TENANT, frozenset({Role.STAFF}))


def approved(svc, start, last_seen=None):
    """A booking approved with its meeting; `last_seen`: when Teams was last asked about it
    (approvals made days earlier were last seen then)."""
    booking = svc.bookings.add(
        a_booking(tenant_id=TENANT, start=start, end=start + timedelta(hours=1))
    )
    use_cases.approve_booking(STAFF, booking.booking_id, Approval(), svc.booking_deps)
    stored = svc.bookings.get(TENANT, booking.booking_id)
    assert stored.meeting.status is MeetingStatus.CREATED
    if last_seen is not None:
        stored = svc.bookings.update(
            replace(stored, meeting=replace(stored.meeting, verified_at=last_seen))
        )
    return stored


def load_healthy(svc, count, start, verified_at=None):
    """`count` confirmed bookings whose meetings are in step, written in bulk transactions;
    `verified_at`: when Teams last confirmed them."""
    bookings = (in_step(TENANT, i, start, verified_at) for i in range(count))
    store_in_bulk(svc.tables.table("bookings"), bookings)


def drifted(svc, count, start):
    """`count` confirmed bookings that want a meeting Teams does not have yet."""
    return [
        svc.bookings.add(
            a_booking(
                tenant_id=TENANT,
                status=BookingStatus.CONFIRMED,
                start=start,
                end=start + timedelta(hours=1),
                meeting=MeetingState(wanted=True),
            )
        ).booking_id
        for _ in range(count)
    ]


def test_reconciliation_reads_grow_with_the_work_not_with_all_bookings(make_services, capsys):
    start = (datetime.now(UTC) + timedelta(days=5)).replace(microsecond=0)
    read = {}
    for healthy in (0, 5000):
        # GIVEN `healthy` bookings in step and 10 whose meetings are missing
        svc = make_services()
        load_healthy(svc, healthy, start)
        ids = drifted(svc, 10, start)

        # WHEN the timer runs
        report = svc.reconciler.run()

        # THEN the ten converge, and what it read is counted
        assert report.converged == 10
        assert all(svc.bookings.get(TENANT, i).meeting.status is MeetingStatus.CREATED for i in ids)
        read[healthy] = report.entities_read

    with capsys.disabled():
        print(
            f"\nreconciliation entities read: 0 healthy + 10 drifted = {read[0]}, "
            f"5,000 healthy + 10 drifted = {read[5000]} (ratio {read[5000] / read[0]:.2f})"
        )
    assert read[5000] <= 1.5 * read[0]


def test_verifying_bookings_checked_recently_reads_their_start_index_rows_only(
    make_services, emulator
):
    now = datetime.now(UTC).replace(microsecond=0)
    start = now + timedelta(hours=3)
    read = {}
    for healthy in (0, 300):
        # GIVEN `healthy` bookings in the window that Teams confirmed a minute ago, and one
        # last checked days ago whose meeting was since moved in Teams
        svc = make_services()
        load_healthy(svc, healthy, start, verified_at=now - timedelta(minutes=1))
        drifted = approved(svc, start, now - timedelta(days=3))
        emulator.edit_meeting_by_hand(
            drifted.meeting.meeting_id, start=start + timedelta(hours=2), end=start + timedelta(3)
        )
        gets = emulator.calls["getMeeting"]

        # WHEN the timer runs
        report = svc.reconciler.run()

        # THEN only the drifted one is asked about, and it is moved back
        assert report.in_window == healthy + 1
        assert (report.verified, report.repaired) == (1, 1)
        assert emulator.calls["getMeeting"] - gets == 1
        assert svc.bookings.get(TENANT, drifted.booking_id).meeting.synced_start == start
        read[healthy] = report.entities_read

    # AND each booking checked recently cost its start index row alone: no point read
    assert read[300] - read[0] == 300


def test_pre_start_verification_remakes_deleted_meetings_and_moves_edited_ones_back(svc, emulator):
    now = datetime.now(UTC).replace(microsecond=0)
    # GIVEN three meetings: one deleted in Teams, one moved in Teams, one days away
    days_ago = now - timedelta(days=3)
    gone = approved(svc, now + timedelta(hours=2), days_ago)
    moved = approved(svc, now + timedelta(hours=5), days_ago)
    approved(svc, now + timedelta(days=3), days_ago)
    emulator.delete_meeting_by_hand(gone.meeting.meeting_id)
    emulator.edit_meeting_by_hand(
        moved.meeting.meeting_id, start=now + timedelta(hours=7), end=now + timedelta(hours=8)
    )
    gets = emulator.calls["getMeeting"]

    # WHEN the timer runs
    report = svc.reconciler.run()

    # THEN only the two in the window were read from Teams (the missing one twice: a 404 is
    # believed once a second GET agrees), and both were repaired
    assert emulator.calls["getMeeting"] - gets == 3
    assert (report.in_window, report.verified, report.remade, report.repaired) == (2, 2, 1, 1)
    remade = svc.bookings.get(TENANT, gone.booking_id)
    assert remade.meeting.status is MeetingStatus.CREATED
    assert remade.meeting.meeting_id != gone.meeting.meeting_id
    assert remade.meeting.join_url != gone.meeting.join_url
    assert remade.external_id == f"{TENANT}:{gone.booking_id}:2"
    live = {m.external_id: m for m in emulator.live_meetings()}
    assert live[remade.external_id].id == remade.meeting.meeting_id
    events = [r.event for r in svc.audit.list_for_booking(TENANT, gone.booking_id)]
    assert events[-3:] == [
        AuditEvent.MEETING_MISSING,
        AuditEvent.MEETING_ATTACHED,
        AuditEvent.MEETING_UPDATED,  # its options
    ]
    back = live[moved.external_id]
    assert back.start.startswith(moved.start.strftime("%Y-%m-%dT%H:%M:%S"))
    assert back.end.startswith(moved.end.strftime("%Y-%m-%dT%H:%M:%S"))

    # AND the next runs check only the new meeting, once; then nothing (each meeting is checked
    # once in the window and once more in the last hour)
    gets = emulator.calls["getMeeting"]
    assert svc.reconciler.run().verified == 1
    assert svc.reconciler.run().verified == 0
    assert emulator.calls["getMeeting"] == gets + 1


def test_a_meeting_is_checked_again_in_the_hour_before_it_starts(svc, emulator):
    now = datetime.now(UTC).replace(microsecond=0)
    # GIVEN a meeting last seen in Teams three hours ago, starting in 50 minutes
    approved(svc, now + timedelta(minutes=50), now - timedelta(hours=3))
    gets = emulator.calls["getMeeting"]

    assert svc.reconciler.run().verified == 1
    assert emulator.calls["getMeeting"] == gets + 1
