"""The largest booking the API accepts is stored, indexed and audited in one transaction at
every step of its life (Table Storage: 100 operations and 4 MiB a transaction, 1 MiB an
entity, 64 KiB a string property), on Azurite with Graph faked at the wire."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import azure.functions as func
import pytest

from shared.api.commands import MAX_PARTICIPANTS, new_booking
from shared.api.validation import MAX_BODY_BYTES
from shared.auth.principal import Principal, Role
from shared.domain.booking import BookingStatus
from shared.services import bookings as use_cases
from shared.services.bookings import Approval
from shared.storage.bookings import BookingQuery
from tests.integration.conftest import TENANT

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
START = (NOW + timedelta(days=7)).replace(minute=0, second=0, microsecond=0)
STAFF = Principal("staff-1", TENANT, frozenset({Role.STAFF}))
WIDE = "\U0001f600"  # outside the BMP: two UTF-16 units, a 12-character JSON escape


def largest_request() -> func.HttpRequest:
    participants = [
        {
            "userId": f"user-{i:02d}",
            "role": "student" if i else "tutor",
            "email": f"u{i:02d}@x.example",
            "displayName": WIDE * 175,
        }
        for i in range(MAX_PARTICIPANTS)
    ]
    body = {
        "subject": "Lesson " + WIDE * 20,
        "level": WIDE * 10,
        "startDateTime": START.isoformat(),
        "endDateTime": (START + timedelta(hours=1)).isoformat(),
        "timeZone": "Europe/London",
        "participants": participants,
        "internalNotes": WIDE * 20,
    }
    # A client sends UTF-8 as it is: the body limit allows the most characters so.
    raw = json.dumps(body, ensure_ascii=False).encode()
    assert len(raw) <= MAX_BODY_BYTES
    return func.HttpRequest(
        "POST", "/api/v1/bookings", body=raw, headers={"Content-Type": "application/json"}
    )


def test_the_largest_booking_the_api_accepts_lives_its_whole_life(svc, emulator):
    deps = svc.booking_deps
    command = new_booking(largest_request(), now=NOW, horizon=timedelta(days=400))
    assert len(command.participants) == MAX_PARTICIPANTS

    booking = use_cases.create_booking(STAFF, command, deps).booking
    use_cases.approve_booking(STAFF, booking.booking_id, Approval(), deps)
    moved = START + timedelta(days=1)
    use_cases.reschedule_booking(
        STAFF, booking.booking_id, (moved, moved + timedelta(hours=1)), deps
    )
    use_cases.cancel_booking(STAFF, booking.booking_id, "x" * 1000, deps)

    stored = deps.bookings.get(TENANT, booking.booking_id)
    assert stored.status is BookingStatus.CANCELLED
    assert stored.participants == command.participants
    assert stored.internal_notes == command.internal_notes
    assert emulator.live_meetings() == []
    (listed,) = deps.bookings.list_for_tenant(TENANT, BookingQuery(limit=10)).bookings
    assert listed.start == moved
    assert listed.status is BookingStatus.CANCELLED
    for user in ("user-00", "user-19"):
        (mine,) = deps.bookings.list_for_participant(TENANT, user, BookingQuery(limit=10)).bookings
        assert mine.booking_id == booking.booking_id
        assert mine.start == moved
