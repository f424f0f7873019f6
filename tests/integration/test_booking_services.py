"""The booking use cases on Azurite, with Graph faked at the wire by the local Graph emulator."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from localdev.graph_emulator import POLICY_MISSING_MESSAGE, Fault
from shared.auth.principal import Principal, Role
from shared.domain.audit import AuditEvent
from shared.domain.booking import MEETING_WORK, BookingStatus, IllegalTransitionError, MeetingStatus
from shared.domain.tenant import CapabilityReason
from shared.graph.errors import GraphPolicyMissingError
from shared.services import bookings as use_cases
from shared.services import teams_settings
from shared.services.access import ForbiddenError
from shared.services.bookings import Approval, MeetingGenerationError, NewBooking
from shared.storage.bookings import BookingQuery
from shared.storage.errors import NotFoundError
from tests.builders import a_booking
from tests.integration.conftest import DIRECTORY, TENANT

pytestmark = pytest.mark.integration

START = (datetime.now(UTC) + timedelta(days=7)).replace(minute=0, second=0, microsecond=0)

ADMIN = Principal("admin-1", TENANT, frozenset({Role.ADMIN}))
STAFF = Principal("staff-1", TENANT, frozenset({Role.STAFF}))
STUDENT = Principal("student-1", TENANT, frozenset({Role.STUDENT}))
TUTOR = Principal("tutor-1", TENANT, frozenset({Role.TUTOR}))
OTHER_STUDENT = Principal("student-2", TENANT, frozenset({Role.STUDENT}))
OTHER_TENANT_ADMIN = Principal("admin-9", "tenant-b", frozenset({Role.ADMIN}))


@pytest.fixture
def deps(svc):
    return svc.booking_deps


def pending(deps, **changes):
    booking = a_booking(tenant_id=TENANT, start=START, end=START + timedelta(hours=1), **changes)
    return deps.bookings.add(booking)


def audit_events(svc, booking_id):
    return [r.event for r in svc.audit.list_for_booking(TENANT, booking_id)]


def test_approve_makes_exactly_one_meeting_and_stores_its_link(svc, deps, emulator):
    # GIVEN a pending booking of a tenant that is capable
    booking = pending(deps)

    # WHEN staff approve it with the default toggle
    result = use_cases.approve_booking(STAFF, booking.booking_id, Approval(), deps)

    # THEN it is confirmed, with one meeting whose link is stored, and nothing left to do
    assert result.warning is None
    stored = deps.bookings.get(TENANT, booking.booking_id)
    assert stored.status is BookingStatus.CONFIRMED
    assert stored.meeting.status is MeetingStatus.CREATED
    (meeting,) = emulator.live_meetings()
    assert stored.meeting.meeting_id == meeting.id
    assert stored.meeting.join_url == meeting.join_url
    assert meeting.external_id == f"{TENANT}:{booking.booking_id}"
    assert meeting.subject == "Computer Science A-Level Lesson"
    assert {a["upn"] for a in meeting.participants} == {"student@example.com", "tutor@example.com"}
    assert deps.bookings.list_marked(MEETING_WORK, TENANT) == []
    # the create, then the PATCH that puts the tenant's options on it
    assert audit_events(svc, booking.booking_id) == [
        AuditEvent.MEETING_ATTACHED,
        AuditEvent.MEETING_UPDATED,
    ]


def test_the_organizer_object_id_is_resolved_once_and_kept(svc, deps, emulator):
    for _ in range(3):
        use_cases.approve_booking(STAFF, pending(deps).booking_id, Approval(), deps)

    assert emulator.calls["getUser"] == 1
    assert svc.tenants.get(TENANT).organizer_object_id == emulator.live_meetings()[0].organizer_id


def test_generate_meeting_returns_the_existing_meeting_without_a_new_one(deps, emulator):
    booking = pending(deps)
    use_cases.approve_booking(STAFF, booking.booking_id, Approval(), deps)

    result = use_cases.generate_meeting(STUDENT, booking.booking_id, deps)

    assert result.booking.meeting.meeting_id == emulator.live_meetings()[0].id
    assert emulator.calls["createOrGet"] == 1


def test_reschedule_moves_the_same_meeting(svc, deps, emulator):
    booking = pending(deps)
    use_cases.approve_booking(STAFF, booking.booking_id, Approval(), deps)
    new_start = START + timedelta(days=1)

    result = use_cases.reschedule_booking(
        STAFF, booking.booking_id, (new_start, new_start + timedelta(hours=2)), deps
    )

    (meeting,) = emulator.live_meetings()
    assert result.warning is None
    assert result.booking.meeting.meeting_id == meeting.id
    assert meeting.start.startswith(new_start.strftime("%Y-%m-%dT%H:%M:%S"))
    assert meeting.end.startswith((new_start + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S"))
    assert not result.booking.needs_reconciliation
    assert audit_events(svc, booking.booking_id)[-1] is AuditEvent.MEETING_UPDATED


@pytest.mark.parametrize("action", ["cancel", "decline"])
def test_cancel_and_decline_delete_the_meeting(svc, deps, emulator, action):
    booking = pending(deps)
    if action == "cancel":
        use_cases.approve_booking(STAFF, booking.booking_id, Approval(), deps)
        result = use_cases.cancel_booking(STUDENT, booking.booking_id, "ill", deps)
        assert emulator.calls["deleteMeeting"] == 1
        assert emulator.live_meetings() == []
        assert result.booking.meeting.status is MeetingStatus.DELETED
        assert audit_events(svc, booking.booking_id)[-1] is AuditEvent.MEETING_DELETED
    else:
        result = use_cases.decline_booking(STAFF, booking.booking_id, "full", deps)
        assert emulator.calls["createOrGet"] == 0
        assert emulator.calls["deleteMeeting"] == 0
    assert result.warning is None
    assert result.booking.status_reason in ("ill", "full")


@pytest.mark.parametrize(
    ("fault", "status", "code", "words"),
    [
        (
            Fault(operation="createOrGet", status=403, message=POLICY_MISSING_MESSAGE),
            MeetingStatus.FAILED,
            "graph_policy_missing",
            "Application Access Policy",
        ),
        (
            Fault(operation="createOrGet", status=503),
            MeetingStatus.PENDING,
            "graph_unavailable",
            "retried",
        ),
        (
            Fault(operation="createOrGet", status=429, retry_after="1.5"),
            MeetingStatus.PENDING,
            "graph_throttled",
            "retried",
        ),
    ],
)
def test_approval_succeeds_when_graph_fails(svc, deps, emulator, fault, status, code, words):
    # GIVEN Graph refuses to make meetings
    emulator.add_fault(fault)
    booking = pending(deps)

    # WHEN the booking is approved
    result = use_cases.approve_booking(STAFF, booking.booking_id, Approval(), deps)

    # THEN the approval stands, with a warning, and the meeting state says what happened
    assert result.warning is not None
    assert words in result.warning
    stored = deps.bookings.get(TENANT, booking.booking_id)
    assert stored.status is BookingStatus.CONFIRMED
    assert (stored.meeting.status, stored.meeting.last_error_code) == (status, code)
    assert stored.meeting.attempts == 1
    # a retryable failure keeps its "needs work" marker; a permanent one stops at once
    marked = [b.booking_id for b in deps.bookings.list_marked(MEETING_WORK, TENANT)]
    assert marked == ([booking.booking_id] if status is MeetingStatus.PENDING else [])
    assert emulator.live_meetings() == []
    (record,) = svc.audit.list_for_booking(TENANT, booking.booking_id)
    assert (record.event, record.error_code) == (AuditEvent.MEETING_ATTEMPT_FAILED, code)


def test_reschedule_and_cancel_succeed_when_graph_fails(deps, emulator):
    booking = pending(deps)
    use_cases.approve_booking(STAFF, booking.booking_id, Approval(), deps)
    emulator.add_fault(Fault(operation="patchMeeting", status=503))
    emulator.add_fault(Fault(operation="deleteMeeting", status=503))
    new_start = START + timedelta(days=2)

    moved = use_cases.reschedule_booking(
        STAFF, booking.booking_id, (new_start, new_start + timedelta(hours=1)), deps
    )
    cancelled = use_cases.cancel_booking(STAFF, booking.booking_id, None, deps)

    assert moved.warning is not None
    assert moved.booking.start == new_start
    assert cancelled.warning is not None
    assert cancelled.booking.status is BookingStatus.CANCELLED
    assert cancelled.booking.needs_reconciliation  # the meeting still has to go
    assert len(emulator.live_meetings()) == 1


def test_cancel_after_an_unanswered_create_removes_the_meeting_teams_made(svc, deps, emulator):
    # GIVEN Graph made the meeting but its answer was lost (504 after the work was done)
    emulator.add_fault(Fault(operation="createOrGet", status=504, lost_reply=True, count=1))
    booking = pending(deps)
    approved = use_cases.approve_booking(STAFF, booking.booking_id, Approval(), deps)
    assert approved.booking.meeting.meeting_id is None
    assert len(emulator.live_meetings()) == 1

    # WHEN the booking is cancelled
    result = use_cases.cancel_booking(STUDENT, booking.booking_id, None, deps)

    # THEN the meeting is found by its externalId and deleted: nothing is left in Teams
    assert result.warning is None
    assert emulator.live_meetings() == []
    assert emulator.calls["deleteMeeting"] == 1
    assert result.booking.meeting.status is MeetingStatus.DELETED
    assert deps.bookings.list_marked(MEETING_WORK, TENANT) == []
    assert audit_events(svc, booking.booking_id)[-1] is AuditEvent.MEETING_DELETED


def test_cancel_after_a_refused_create_calls_graph_no_more(deps, emulator):
    emulator.add_fault(Fault(operation="createOrGet", status=429, retry_after="1", count=1))
    booking = pending(deps)
    use_cases.approve_booking(STAFF, booking.booking_id, Approval(), deps)

    result = use_cases.cancel_booking(STUDENT, booking.booking_id, None, deps)

    assert result.booking.meeting.status is MeetingStatus.NONE
    assert (emulator.calls["createOrGet"], emulator.calls["deleteMeeting"]) == (1, 0)
    assert deps.bookings.list_marked(MEETING_WORK, TENANT) == []


def test_clearing_the_organizer_turns_creation_off(svc, deps, emulator):
    # GIVEN the admin clears the organizer (the back-out switch)
    teams_settings.update_settings(
        ADMIN,
        teams_settings.SettingsChange(organizer_upn=None),
        svc.directory,
        datetime.now(UTC),
    )

    # THEN capability says so, and approvals make no meeting
    capability = teams_settings.capability(STUDENT, svc.directory)
    assert (capability.available, capability.reason) == (False, CapabilityReason.NO_ORGANIZER)
    quiet = use_cases.approve_booking(STAFF, pending(deps).booking_id, Approval(), deps)
    asked = use_cases.approve_booking(
        STAFF, pending(deps).booking_id, Approval(generate_teams_meeting=True), deps
    )
    assert quiet.warning is None
    assert "no_organizer" in (asked.warning or "")
    assert quiet.booking.meeting.status is MeetingStatus.NONE
    assert emulator.calls["createOrGet"] == 0


def test_turning_the_toggle_off_makes_no_meeting(deps, emulator):
    result = use_cases.approve_booking(
        STAFF, pending(deps).booking_id, Approval(generate_teams_meeting=False), deps
    )

    assert result.booking.status is BookingStatus.CONFIRMED
    assert emulator.calls["createOrGet"] == 0


def test_generate_meeting_needs_a_confirmed_booking(deps):
    with pytest.raises(IllegalTransitionError) as raised:
        use_cases.generate_meeting(STUDENT, pending(deps).booking_id, deps)

    assert raised.value.message == use_cases.NOT_CONFIRMED


def test_generate_meeting_returns_the_graph_error_to_the_caller(deps, emulator):
    booking = pending(deps)
    use_cases.approve_booking(
        STAFF, booking.booking_id, Approval(generate_teams_meeting=False), deps
    )
    emulator.add_fault(Fault(operation="createOrGet", status=403, message=POLICY_MISSING_MESSAGE))

    with pytest.raises(MeetingGenerationError) as raised:
        use_cases.generate_meeting(TUTOR, booking.booking_id, deps)

    assert isinstance(raised.value.error, GraphPolicyMissingError)
    assert deps.bookings.get(TENANT, booking.booking_id).meeting.status is MeetingStatus.FAILED


def test_generate_meeting_after_a_failure_makes_the_meeting(deps, emulator):
    booking = pending(deps)
    emulator.add_fault(Fault(operation="createOrGet", status=503, count=1))
    use_cases.approve_booking(STAFF, booking.booking_id, Approval(), deps)

    result = use_cases.generate_meeting(STUDENT, booking.booking_id, deps)

    assert result.booking.meeting.status is MeetingStatus.CREATED
    assert len(emulator.live_meetings()) == 1


def test_participants_act_on_their_own_bookings_only(deps):
    booking = pending(deps)

    with pytest.raises(ForbiddenError):
        use_cases.get_booking(OTHER_STUDENT, booking.booking_id, deps)
    with pytest.raises(ForbiddenError):
        use_cases.cancel_booking(OTHER_STUDENT, booking.booking_id, None, deps)
    with pytest.raises(ForbiddenError):
        use_cases.approve_booking(STUDENT, booking.booking_id, Approval(), deps)
    with pytest.raises(NotFoundError):
        use_cases.get_booking(OTHER_TENANT_ADMIN, booking.booking_id, deps)
    assert use_cases.get_booking(TUTOR, booking.booking_id, deps).booking_id == booking.booking_id


def test_students_book_only_for_themselves(deps):
    mine = NewBooking(
        subject="Maths",
        start=START,
        end=START + timedelta(hours=1),
        time_zone="Europe/London",
        participants=a_booking().participants,
    )

    created = use_cases.create_booking(STUDENT, mine, deps).booking
    with pytest.raises(ForbiddenError):
        use_cases.create_booking(OTHER_STUDENT, mine, deps)
    with pytest.raises(ForbiddenError):
        use_cases.create_booking(TUTOR, mine, deps)

    assert created.status is BookingStatus.PENDING
    assert created.created_by == "student-1"


def test_lists_show_participants_their_own_and_staff_the_tenants(deps):
    mine = pending(deps)
    other = pending(deps, participants=(replace(a_booking().participants[0], user_id="x-9"),))

    assert {
        b.booking_id for b in use_cases.list_bookings(STUDENT, BookingQuery(), None, deps).bookings
    } == {mine.booking_id}
    assert {
        b.booking_id for b in use_cases.list_bookings(STAFF, BookingQuery(), None, deps).bookings
    } == {
        mine.booking_id,
        other.booking_id,
    }
    with pytest.raises(ForbiddenError):
        use_cases.list_bookings(STUDENT, BookingQuery(), "x-9", deps)


def test_verify_organizer_reports_each_reason(svc, emulator):
    def verify(upn=None, dry_run=False, caller=ADMIN):
        return teams_settings.verify_organizer(
            caller, (upn, dry_run), svc.directory, svc.graph, svc.check_meetings
        )

    ok = verify(dry_run=True)
    assert (ok.valid, ok.display_name) == (True, "Organizer")
    assert emulator.live_meetings() == []  # the dry run cleaned up after itself
    assert verify("nobody@a.example").reason == "user_not_found"
    emulator.add_user(DIRECTORY, "nopolicy@a.example", "No Policy", policy_granted=False)
    assert verify("nopolicy@a.example").valid is True  # a lookup cannot see the policy...
    assert verify("nopolicy@a.example", dry_run=True).reason == "policy_missing"  # ...a dry run can
    emulator.add_fault(Fault(operation="getUser", status=503, count=1))
    assert verify().reason == "graph_error"
    unconfigured = Principal("admin-9", "tenant-b", frozenset({Role.ADMIN}))
    assert verify(caller=unconfigured).reason == "not_configured"
    with pytest.raises(ForbiddenError):
        verify(caller=STAFF)


def test_the_default_tenant_from_the_environment_keeps_its_organizer_id(
    make_services, emulator, monkeypatch
):
    # GIVEN a tenant described only by the seed's four variables (no row of its own)
    monkeypatch.setenv("MICROSOFT_CLIENT_SECRET", "services-secret")
    svc = make_services(
        DEFAULT_TENANT_ID="tenant-env",
        MICROSOFT_TENANT_ID=DIRECTORY,
        MICROSOFT_CLIENT_ID="client-services",
        MICROSOFT_CLIENT_SECRET="services-secret",
        TEAMS_ORGANIZER_EMAIL="organizer@a.example",
    )
    staff = Principal("staff-1", "tenant-env", frozenset({Role.STAFF}))
    start = START + timedelta(days=1)

    # WHEN three bookings are approved
    for _ in range(3):
        booking = svc.bookings.add(
            a_booking(tenant_id="tenant-env", start=start, end=start + timedelta(hours=1))
        )
        use_cases.approve_booking(staff, booking.booking_id, Approval(), svc.booking_deps)

    # THEN the organizer was looked up once, and each create was createOrGet + the options PATCH
    assert emulator.calls["getUser"] == 1
    assert (emulator.calls["createOrGet"], emulator.calls["patchMeeting"]) == (3, 3)
    assert svc.directory.get("tenant-env").organizer_object_id is not None
