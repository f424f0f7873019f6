"""Small builders for domain objects, so tests name only what matters to them."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.domain.booking import Booking, BookingStatus, Participant, ParticipantRole
from shared.domain.tenant import MicrosoftProfile, Tenant

T0 = datetime(2026, 12, 24, 13, 0, tzinfo=UTC)


def a_booking(**changes: Any) -> Booking:
    booking = Booking(
        tenant_id="tenant-a",
        booking_id=uuid.uuid4().hex,
        status=BookingStatus.PENDING,
        subject="Computer Science",
        level="A-Level",
        start=T0,
        end=T0 + timedelta(hours=1),
        time_zone="Europe/London",
        participants=(
            Participant("student-1", ParticipantRole.STUDENT, "student@example.com", "Sam Student"),
            Participant("tutor-1", ParticipantRole.TUTOR, "tutor@example.com", "Tia Tutor"),
        ),
        created_by="student-1",
        created_at=T0 - timedelta(days=3),
        updated_at=T0 - timedelta(days=3),
    )
    return replace(booking, **changes)


def a_tenant(**changes: Any) -> Tenant:
    tenant = Tenant(
        tenant_id="tenant-a",
        display_name="Tenant A",
        microsoft=MicrosoftProfile("dir-a", "client-a", "TENANT_A_SECRET"),
        organizer_upn="organizer@a.example",
    )
    return replace(tenant, **changes)


def store_in_bulk(table: Any, bookings: Iterable[Booking]) -> None:
    """Write `bookings` with all their rows straight to a bookings table client, in
    entity-group transactions of at most 100 rows (one tenant's bookings): a fast load of
    thousands, for tests and benchmarks of what reads cost."""
    from shared.storage.bookings import rows_for

    batch: list[dict[str, Any]] = []
    for booking in bookings:
        rows = rows_for(booking)
        if len(batch) + len(rows) > 100:
            table.submit_transaction([("upsert", row) for row in batch])
            batch = []
        batch += rows
    if batch:
        table.submit_transaction([("upsert", row) for row in batch])


def in_step(
    tenant_id: str, number: int, start: datetime, verified_at: datetime | None = None
) -> Booking:
    """A confirmed booking whose Teams meeting is made and in step (last confirmed by Teams
    at `verified_at`)."""
    from shared.domain.booking import MeetingState

    return a_booking(
        tenant_id=tenant_id,
        booking_id=f"healthy{number:05d}",
        status=BookingStatus.CONFIRMED,
        start=start,
        end=start + timedelta(hours=1),
        meeting=MeetingState(
            wanted=True,
            provider="teams",
            meeting_id=f"m{number}",
            join_url=f"https://teams.microsoft.com/l/meetup-join/{number}",
            organizer_id="o1",
            synced_start=start,
            synced_end=start + timedelta(hours=1),
            options_applied=True,
            verified_at=verified_at,
        ),
        version=1,
    )
