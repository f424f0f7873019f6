"""Bookings and tenants map to table entities and back, and what cannot fit is refused clearly."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from shared.domain.attendance import (
    Attendance,
    AttendanceSource,
    LessonOutcome,
    ParticipantAttendance,
)
from shared.domain.booking import (
    BookingStatus,
    MeetingState,
    MeetingStatus,
    Participant,
    ParticipantRole,
)
from shared.domain.branding import Branding
from shared.domain.tenant import AttendanceSettings
from shared.storage.bookings import booking_to_entity, entity_to_booking
from shared.storage.errors import InvalidKeyError, SchemaError
from shared.storage.tables import MAX_STRING_PROPERTY_CHARS, validate_key
from shared.storage.tenants import entity_to_tenant, tenant_to_entity
from tests.builders import T0, a_booking, a_tenant


class StoredEntity(dict):
    """What azure-data-tables returns: a dict with `metadata`."""

    def __init__(self, data, etag='W/"1"'):
        super().__init__(data)
        self.metadata = {"etag": etag}


def test_a_booking_survives_the_round_trip():
    booking = a_booking(
        status=BookingStatus.CONFIRMED,
        meeting=MeetingState(
            wanted=True,
            generation=2,
            revision=7,
            requested_at=T0 - timedelta(days=2),
            provider="teams",
            join_url="https://teams.microsoft.com/l/meetup-join/x",
            meeting_id="m1",
            organizer_id="org-1",
            synced_start=T0 - timedelta(hours=1),
            synced_end=T0,
            options_applied=True,
            verified_at=T0 - timedelta(hours=5),
            attempts=3,
            last_error_code="graph_throttled",
            next_attempt_at=T0 - timedelta(days=1),
            rounds=2,
            claim_token="c1",
            claim_until=T0 - timedelta(days=1, seconds=-40),
            changed_at=T0,
        ),
        assignee_id="tutor-1",
        internal_notes="bring the past paper",
        version=4,
    )

    back = entity_to_booking(StoredEntity(booking_to_entity(booking)))

    # the status is derived on the way in: Teams holds other times, so the update is pending
    assert back == replace(booking, meeting=replace(booking.meeting, status=MeetingStatus.PENDING))
    assert back.version == 4
    assert back.etag == 'W/"1"'


def test_times_are_stored_in_utc():
    plus_two = timezone(timedelta(hours=2))
    booking = a_booking(
        start=datetime(2026, 12, 24, 15, 0, tzinfo=plus_two),
        end=datetime(2026, 12, 24, 16, 0, tzinfo=plus_two),
    )

    entity = booking_to_entity(booking)

    assert entity["Start"] == T0
    assert entity["Start"].utcoffset() == timedelta(0)


def test_naive_times_do_not_fit_the_schema():
    with pytest.raises(SchemaError, match="offset"):
        booking_to_entity(a_booking(start=datetime(2026, 12, 24, 13, 0)))


@pytest.mark.parametrize(
    "bad", ["a/b", "a\\b", "a#b", "what?", "a|b", "tab\there", "", "x" * 600, "lone\ud800"]
)
def test_keys_with_forbidden_characters_are_refused(bad):
    with pytest.raises(InvalidKeyError):
        validate_key(bad, "booking id")
    with pytest.raises(InvalidKeyError):
        booking_to_entity(a_booking(booking_id=bad))


def test_text_with_a_lone_surrogate_does_not_fit_the_schema():
    # Storage cannot hold it; one such write once left the local emulator failing every batch.
    with pytest.raises(SchemaError, match="surrogate"):
        booking_to_entity(a_booking(subject="Maths \udc00"))


def test_participant_ids_are_keys_too():
    booking = a_booking(assignee_id="tutor/evil")

    with pytest.raises(InvalidKeyError, match="participant id"):
        booking_to_entity(booking)


def test_oversized_text_does_not_fit():
    with pytest.raises(SchemaError, match="internal notes"):
        booking_to_entity(a_booking(internal_notes="x" * (MAX_STRING_PROPERTY_CHARS + 1)))


def test_a_stored_row_missing_a_field_is_a_schema_error_naming_it():
    entity = booking_to_entity(a_booking())
    del entity["Subject"]

    with pytest.raises(SchemaError, match="Subject"):
        entity_to_booking(StoredEntity(entity))


def test_a_stored_row_with_an_unknown_status_is_a_schema_error():
    entity = {**booking_to_entity(a_booking()), "Status": "teleported"}

    with pytest.raises(SchemaError, match="teleported"):
        entity_to_booking(StoredEntity(entity))


def test_a_stored_row_with_wrong_types_is_a_schema_error():
    entity = {**booking_to_entity(a_booking()), "Start": "yesterday"}

    with pytest.raises(SchemaError, match="Start"):
        entity_to_booking(StoredEntity(entity))


def test_a_completed_bookings_attendance_survives_the_round_trip():
    attendance = Attendance(
        LessonOutcome.STUDENT_NO_SHOW,
        AttendanceSource.REPORT,
        T0 + timedelta(hours=2),
        participants=(
            ParticipantAttendance("student-1"),
            ParticipantAttendance("tutor-1", True, T0, T0 + timedelta(minutes=58), 3480),
        ),
        unmatched=2,
    )
    booking = a_booking(status=BookingStatus.COMPLETED, attendance=attendance)

    back = entity_to_booking(StoredEntity(booking_to_entity(booking)))

    assert back.attendance == attendance
    assert entity_to_booking(StoredEntity(booking_to_entity(a_booking()))).attendance is None


def test_broken_attendance_json_is_a_schema_error():
    entity = {**booking_to_entity(a_booking()), "Attendance": '{"outcome": "late"}'}

    with pytest.raises(SchemaError, match="Attendance"):
        entity_to_booking(StoredEntity(entity))


def test_a_tenants_attendance_thresholds_survive_and_older_rows_get_the_defaults():
    tenant = a_tenant(attendance=AttendanceSettings(10, 30, 48))
    older = {
        k: v for k, v in tenant_to_entity(a_tenant()).items() if not k.startswith("Attendance")
    }

    assert entity_to_tenant(StoredEntity(tenant_to_entity(tenant))).attendance == (
        AttendanceSettings(10, 30, 48)
    )
    assert entity_to_tenant(StoredEntity(older)).attendance == AttendanceSettings()


def test_broken_participants_json_is_a_schema_error():
    entity = {**booking_to_entity(a_booking()), "Participants": '[{"userId": "x"}]'}

    with pytest.raises(SchemaError, match="Participants"):
        entity_to_booking(StoredEntity(entity))


def test_external_id_is_stable_per_booking_and_generation():
    booking = a_booking(tenant_id="tenant-a", booking_id="b1")

    assert booking.external_id == "tenant-a:b1"
    assert replace(booking, meeting=MeetingState(generation=2)).external_id == "tenant-a:b1:2"


def test_a_tenant_survives_the_round_trip_and_stores_no_secret():
    tenant = a_tenant(organizer_object_id="obj-1", updated_at=T0)

    entity = tenant_to_entity(tenant)
    back = entity_to_tenant(StoredEntity(entity))

    assert back == tenant
    assert entity["SecretSetting"] == "TENANT_A_SECRET"
    assert not any("secret" in k.lower() and k != "SecretSetting" for k in entity)


def test_a_tenants_branding_survives_the_round_trip_and_reply_to_keeps_its_column():
    branding = Branding(
        display_name="Acme Tutoring",
        logo_url="https://cdn.example.com/logo.png",
        accent_color="#0a7b83",
        reply_to="help@acme.example",
        contact_line="Call us",
        footer_text="Acme Ltd\n1 High Street",
    )
    tenant = a_tenant(branding=branding)

    entity = tenant_to_entity(tenant)
    back = entity_to_tenant(StoredEntity(entity))

    assert back.branding == branding
    # rows written before branding held the reply-to address in MailReplyTo: still read
    assert entity["MailReplyTo"] == "help@acme.example"
    old_row = {k: v for k, v in tenant_to_entity(a_tenant()).items() if not k.startswith("Brand")}
    old_row["MailReplyTo"] = "office@a.example"
    assert entity_to_tenant(StoredEntity(old_row)).branding == Branding(reply_to="office@a.example")


def test_a_tenant_with_half_a_profile_is_a_schema_error():
    entity = {**tenant_to_entity(a_tenant()), "ClientId": None}

    with pytest.raises(SchemaError, match="incomplete"):
        entity_to_tenant(StoredEntity(entity))


def test_the_tenants_and_each_participants_language_survive_the_round_trip():
    tenant = a_tenant(locale="de-AT")
    booking = a_booking(
        participants=(
            Participant("s1", ParticipantRole.STUDENT, "s@example.com", "Sam", "en-GB"),
            Participant("t1", ParticipantRole.TUTOR, "t@example.com", "Tia"),
        )
    )

    entity = booking_to_entity(booking)

    assert entity_to_tenant(StoredEntity(tenant_to_entity(tenant))).locale == "de-AT"
    back = entity_to_booking(StoredEntity(entity))
    assert [p.locale for p in back.participants] == ["en-GB", None]
    # a participant without one is stored as before
    assert '"locale"' not in entity["Participants"].split('"t1"', 1)[1]
