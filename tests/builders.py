"""Small builders for domain objects, so tests name only what matters to them."""

from __future__ import annotations

import uuid
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
