"""Every repository's contract: keys, queries, ETag concurrency, the reconciliation index.

Each test runs against the Table Storage implementation on Azurite and against the in-memory
one, so the fakes that unit and property tests use behave as the real thing does."""

from __future__ import annotations

import threading
import uuid
from dataclasses import replace
from datetime import date, timedelta

import pytest

from shared.domain.audit import AuditEvent, AuditRecord
from shared.domain.booking import MEETING_WORK, BookingStatus, MeetingState, MeetingStatus
from shared.domain.branding import Branding
from shared.domain.preferences import NO_PREFERENCES, TutorPreferences
from shared.domain.tenant import (
    HealthReason,
    HealthState,
    InstallStatus,
    LobbyBypassScope,
    MeetingChatMode,
    MicrosoftProfile,
    TeamsHealth,
    TutorChoices,
)
from shared.storage.audit import TableAuditRepository
from shared.storage.bookings import BookingQuery, RequestKey, TableBookingRepository
from shared.storage.errors import (
    AlreadyExistsError,
    ConcurrencyError,
    InvalidKeyError,
    NotFoundError,
    SchemaError,
)
from shared.storage.memory import (
    InMemoryAuditRepository,
    InMemoryBookingRepository,
    InMemoryTenantRepository,
)
from shared.storage.preferences import InMemoryPreferencesRepository, TablePreferencesRepository
from shared.storage.tables import Tables
from shared.storage.tenants import TableTenantRepository
from tests.builders import T0, a_booking, a_tenant

pytestmark = pytest.mark.integration


@pytest.fixture(params=["table", "memory"])
def store(request):
    return request.param


@pytest.fixture
def bookings(store, request):
    if store == "memory":
        return InMemoryBookingRepository()
    return TableBookingRepository(request.getfixturevalue("tables"))


@pytest.fixture
def tenants(store, request):
    if store == "memory":
        return InMemoryTenantRepository()
    return TableTenantRepository(request.getfixturevalue("tables"))


@pytest.fixture
def audit(store, request):
    if store == "memory":
        return InMemoryAuditRepository()
    return TableAuditRepository(request.getfixturevalue("tables"))


# -- bookings -----------------------------------------------------------------------------------


def test_an_added_booking_reads_back_equal(bookings):
    booking = bookings.add(a_booking())

    stored = bookings.get(booking.tenant_id, booking.booking_id)

    assert stored == booking
    assert stored.version == 1
    assert stored.etag


def test_adding_the_same_id_twice_is_refused(bookings):
    booking = a_booking()
    bookings.add(booking)

    with pytest.raises(AlreadyExistsError):
        bookings.add(replace(booking, subject="other"))


def test_a_missing_booking_is_not_found(bookings):
    with pytest.raises(NotFoundError):
        bookings.get("tenant-a", "nope")


def test_another_tenants_booking_is_not_found(bookings):
    booking = bookings.add(a_booking(tenant_id="tenant-a"))

    with pytest.raises(NotFoundError):
        bookings.get("tenant-b", booking.booking_id)


def test_forbidden_key_characters_are_refused_before_storage(bookings):
    with pytest.raises(InvalidKeyError):
        bookings.get("tenant-a", "../other")
    with pytest.raises(InvalidKeyError):
        bookings.add(a_booking(booking_id="a#b"))


def test_an_update_bumps_the_version_and_etag(bookings):
    booking = bookings.add(a_booking())

    updated = bookings.update(replace(booking, status=BookingStatus.CONFIRMED))

    assert updated.version == 2
    assert updated.etag != booking.etag
    assert bookings.get(booking.tenant_id, booking.booking_id).status is BookingStatus.CONFIRMED


def test_a_stale_update_is_a_conflict_and_changes_nothing(bookings):
    booking = bookings.add(a_booking())
    bookings.update(replace(booking, subject="first writer"))

    with pytest.raises(ConcurrencyError):
        bookings.update(replace(booking, subject="second writer"))

    assert bookings.get(booking.tenant_id, booking.booking_id).subject == "first writer"


def test_concurrent_updates_one_wins_the_other_sees_a_conflict(bookings):
    # GIVEN two workers holding the same version of one booking
    booking = bookings.add(a_booking())
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def worker(n: int) -> None:
        barrier.wait()
        try:
            bookings.update(replace(booking, subject=f"writer {n}"))
            outcomes.append(f"won {n}")
        except ConcurrencyError:
            outcomes.append("conflict")

    # WHEN eight of them save at once
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    # THEN exactly one save landed, and it is the one stored
    winners = [o for o in outcomes if o.startswith("won")]
    assert len(winners) == 1
    assert outcomes.count("conflict") == 7
    assert bookings.get(booking.tenant_id, booking.booking_id).subject == f"writer {winners[0][4:]}"


def test_racing_creates_with_one_request_key_make_one_booking(bookings):
    # GIVEN eight copies of one create request carrying the same Idempotency-Key
    request = RequestKey("student-1", "key|with/odd#chars?", "fingerprint-1")
    barrier = threading.Barrier(8)
    made: list[str] = []
    refused: list[str] = []

    def worker() -> None:
        barrier.wait()
        try:
            made.append(bookings.add(a_booking(booking_id=uuid.uuid4().hex), request).booking_id)
        except AlreadyExistsError:
            refused.append("refused")

    # WHEN they are saved at once
    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    # THEN one booking exists, and the key leads to it
    (winner,) = made
    assert len(refused) == 7
    record = bookings.find_request("tenant-a", request)
    assert (record.booking_id, record.fingerprint) == (winner, "fingerprint-1")
    assert [
        b.booking_id for b in bookings.list_for_tenant("tenant-a", BookingQuery()).bookings
    ] == [winner]
    assert bookings.find_request("tenant-a", replace(request, caller_id="student-2")) is None
    assert bookings.find_request("tenant-b", request) is None


def test_a_booking_that_does_not_fit_is_refused_and_nothing_is_written(bookings):
    booking = a_booking(internal_notes="x" * 40_000)

    with pytest.raises(SchemaError):
        bookings.add(booking)
    with pytest.raises(NotFoundError):
        bookings.get(booking.tenant_id, booking.booking_id)


def test_list_for_tenant_filters_and_orders_by_start(bookings):
    late = bookings.add(
        a_booking(start=T0 + timedelta(days=2), end=T0 + timedelta(days=2, hours=1))
    )
    early = bookings.add(a_booking(status=BookingStatus.CONFIRMED))
    bookings.add(a_booking(tenant_id="tenant-b"))

    everything = bookings.list_for_tenant("tenant-a", BookingQuery()).bookings
    confirmed = bookings.list_for_tenant(
        "tenant-a", BookingQuery(status=BookingStatus.CONFIRMED)
    ).bookings
    from_tomorrow = bookings.list_for_tenant(
        "tenant-a", BookingQuery(start_from=T0 + timedelta(days=1))
    ).bookings

    assert [b.booking_id for b in everything] == [early.booking_id, late.booking_id]
    assert [b.booking_id for b in confirmed] == [early.booking_id]
    assert [b.booking_id for b in from_tomorrow] == [late.booking_id]
    assert len(bookings.list_for_tenant("tenant-a", BookingQuery(limit=1)).bookings) == 1


def test_list_for_participant_sees_only_their_bookings(bookings):
    theirs = bookings.add(a_booking())
    other_student = bookings.add(
        a_booking(participants=(replace(theirs.participants[0], user_id="student-2"),))
    )

    mine = bookings.list_for_participant("tenant-a", "student-1", BookingQuery()).bookings
    tutors = bookings.list_for_participant("tenant-a", "tutor-1", BookingQuery()).bookings
    other = bookings.list_for_participant("tenant-a", "student-2", BookingQuery()).bookings

    assert [b.booking_id for b in mine] == [theirs.booking_id]
    assert [b.booking_id for b in tutors] == [theirs.booking_id]
    assert [b.booking_id for b in other] == [other_student.booking_id]
    assert bookings.list_for_participant("tenant-b", "student-1", BookingQuery()).bookings == []


def test_an_assignee_added_later_finds_the_booking(bookings):
    booking = bookings.add(a_booking())

    bookings.update(replace(booking, assignee_id="technician-9"))

    found = bookings.list_for_participant("tenant-a", "technician-9", BookingQuery()).bookings
    assert [b.booking_id for b in found] == [booking.booking_id]


def test_reconciliation_index_follows_the_meeting_state(bookings):
    # GIVEN a confirmed booking that wants a meeting it does not have yet
    booking = bookings.add(
        a_booking(status=BookingStatus.CONFIRMED, meeting=MeetingState(wanted=True))
    )
    calm = bookings.add(a_booking(status=BookingStatus.CONFIRMED))
    assert [b.booking_id for b in bookings.list_marked(MEETING_WORK, "tenant-a")] == [
        booking.booking_id
    ]

    # WHEN the meeting is created in step with the booking
    synced = bookings.update(
        replace(
            booking,
            meeting=replace(
                booking.meeting,
                status=MeetingStatus.CREATED,
                meeting_id="m1",
                synced_start=booking.start,
                synced_end=booking.end,
                options_applied=True,
            ),
        )
    )

    # THEN it no longer needs work; moving it makes it need work again
    assert bookings.list_marked(MEETING_WORK, "tenant-a") == []
    moved = bookings.update(
        replace(
            synced, start=synced.start + timedelta(hours=1), end=synced.end + timedelta(hours=1)
        )
    )
    assert [b.booking_id for b in bookings.list_marked(MEETING_WORK, "tenant-a")] == [
        moved.booking_id
    ]
    assert calm.booking_id not in {
        b.booking_id for b in bookings.list_marked(MEETING_WORK, "tenant-a")
    }


def test_failed_meetings_are_listed_by_start_without_a_marker(bookings):
    # GIVEN two failed meetings (one started yesterday), one healthy, one of another tenant
    failed = MeetingState(wanted=True, failed=True, last_error_code="graph_policy_missing")
    soon = bookings.add(
        a_booking(status=BookingStatus.CONFIRMED, start=T0 + timedelta(days=1), meeting=failed)
    )
    later = bookings.add(
        a_booking(status=BookingStatus.CONFIRMED, start=T0 + timedelta(days=9), meeting=failed)
    )
    bookings.add(
        a_booking(status=BookingStatus.CONFIRMED, start=T0 - timedelta(days=1), meeting=failed)
    )
    bookings.add(a_booking(status=BookingStatus.CONFIRMED, meeting=MeetingState(wanted=True)))
    bookings.add(a_booking(tenant_id="tenant-b", status=BookingStatus.CONFIRMED, meeting=failed))

    # WHEN the tenant's failed meetings from now on are listed
    found = bookings.list_meeting_failed("tenant-a", T0)

    # THEN the two that start from now are, earliest first; a limit keeps the earliest
    assert [b.booking_id for b in found] == [soon.booking_id, later.booking_id]
    assert found[0].meeting.last_error_code == "graph_policy_missing"
    assert [b.booking_id for b in bookings.list_meeting_failed("tenant-a", T0, limit=1)] == [
        soon.booking_id
    ]
    assert bookings.list_marked(MEETING_WORK, "tenant-a") != found


def test_a_leftover_marker_heals_itself(tables):
    bookings = TableBookingRepository(tables)
    # GIVEN a marker whose clean-up never ran (the process died after the transaction)
    booking = bookings.add(a_booking(status=BookingStatus.CONFIRMED))
    tables.table("bookings").upsert_entity(
        {
            "PartitionKey": "tenant-a",
            "RowKey": f"r|{booking.booking_id}",
            "Kind": "reconcile",
            "BookingId": booking.booking_id,
            "BookingVersion": booking.version,
        }
    )

    # WHEN the reconciler looks, THEN the booking is not returned and the marker is gone
    assert bookings.list_marked(MEETING_WORK, "tenant-a") == []
    rows = list(tables.table("bookings").query_entities("RowKey ge 'r|' and RowKey lt 'r|~'"))
    assert rows == []


# -- tenants ------------------------------------------------------------------------------------


def test_tenants_add_get_update_list(tenants):
    tenant = tenants.add(a_tenant())
    tenants.add(a_tenant(tenant_id="tenant-b", display_name="B"))

    fetched = tenants.get("tenant-a")
    updated = tenants.update(
        replace(fetched, organizer_upn=None, install_status=InstallStatus.DISABLED)
    )

    assert fetched == tenant
    assert tenants.get("tenant-a").organizer_upn is None
    assert updated.etag != fetched.etag
    assert [t.tenant_id for t in tenants.list_all()] == ["tenant-a", "tenant-b"]


def test_tenant_updates_are_guarded_by_etag(tenants):
    tenant = tenants.add(a_tenant())
    tenants.update(replace(tenant, organizer_upn="first@a.example"))

    with pytest.raises(ConcurrencyError):
        tenants.update(replace(tenant, organizer_upn="second@a.example"))
    assert tenants.get("tenant-a").organizer_upn == "first@a.example"


def test_a_tenants_teams_health_and_secret_expiry_read_back_as_saved(tenants):
    # GIVEN a tenant never checked, with a secret whose expiry is known
    tenant = tenants.add(
        a_tenant(
            microsoft=MicrosoftProfile(
                "dir-a", "client-a", "TENANT_A_SECRET", secret_expires_on=date(2027, 3, 1)
            )
        )
    )
    assert tenants.get("tenant-a").teams_health is None
    health = TeamsHealth(
        HealthState.UNHEALTHY,
        since=T0,
        checked_at=T0 + timedelta(minutes=15),
        reason=HealthReason.POLICY_MISSING,
        expiry_warned=30,
        retry_pending=False,
    )

    # WHEN its health is saved, then cleared of its reason
    tenants.update(replace(tenant, teams_health=health))
    unhealthy = tenants.get("tenant-a")
    healthy = replace(health, state=HealthState.HEALTHY, reason=None, retry_pending=True)
    tenants.update(replace(unhealthy, teams_health=healthy))

    # THEN each reads back as it was written
    assert unhealthy.teams_health == health
    assert unhealthy.microsoft is not None
    assert unhealthy.microsoft.secret_expires_on == date(2027, 3, 1)
    assert tenants.get("tenant-a").teams_health == healthy
    assert [t.teams_health for t in tenants.list_all()] == [healthy]


def test_a_tenants_branding_reads_back_as_saved_and_clears(tenants):
    # GIVEN a tenant with all of its branding, the footer on two lines
    branding = Branding(
        display_name="Acme Tutoring",
        logo_url="https://cdn.example.com/logo.png",
        accent_color="#0a7b83",
        reply_to="help@acme.example",
        contact_line="Questions? help@acme.example",
        footer_text="Acme Tutoring Ltd\n1 High Street",
    )
    tenant = tenants.add(a_tenant(branding=branding))

    # WHEN it is read back, then saved without the logo and the footer
    read = tenants.get("tenant-a")
    tenants.update(replace(read, branding=replace(branding, logo_url=None, footer_text=None)))

    # THEN the first read is what was saved, and the second save cleared just those two
    assert read == tenant
    assert read.branding == branding
    assert tenants.get("tenant-a").branding == replace(branding, logo_url=None, footer_text=None)
    assert a_tenant().branding == Branding()


def test_a_tenants_tutor_choices_and_recording_read_back_as_saved(tenants):
    choices = TutorChoices(
        allow_meeting_chat=frozenset({MeetingChatMode.ENABLED, MeetingChatMode.DISABLED}),
        record_automatically=frozenset({True}),
    )
    options = replace(a_tenant().meeting_options, record_automatically=True)
    tenants.add(a_tenant(tutor_choices=choices, meeting_options=options))

    read = tenants.get("tenant-a")
    tenants.update(replace(read, tutor_choices=TutorChoices()))

    assert (read.tutor_choices, read.meeting_options.record_automatically) == (choices, True)
    assert tenants.get("tenant-a").tutor_choices == TutorChoices()


@pytest.fixture
def preferences(store, request):
    if store == "memory":
        return InMemoryPreferencesRepository()
    return TablePreferencesRepository(request.getfixturevalue("tables"))


def test_a_tutors_preferences_read_back_as_saved_each_tutor_apart(preferences):
    chosen = TutorPreferences(
        lobby_bypass_scope=LobbyBypassScope.ORGANIZATION,
        allow_meeting_chat=MeetingChatMode.DISABLED,
        record_automatically=False,
    )
    assert preferences.get("tenant-a", "tutor-1") == NO_PREFERENCES

    preferences.save("tenant-a", "tutor-1", chosen)

    assert preferences.get("tenant-a", "tutor-1") == chosen
    assert preferences.get_recent("tenant-a", "tutor-1") == chosen
    assert preferences.get("tenant-a", "tutor-2") == NO_PREFERENCES
    assert preferences.get("tenant-b", "tutor-1") == NO_PREFERENCES
    preferences.save("tenant-a", "tutor-1", NO_PREFERENCES)
    assert preferences.get("tenant-a", "tutor-1") == NO_PREFERENCES


def test_duplicate_and_missing_tenants(tenants):
    tenants.add(a_tenant())

    with pytest.raises(AlreadyExistsError):
        tenants.add(a_tenant())
    with pytest.raises(NotFoundError):
        tenants.get("nobody")
    with pytest.raises(InvalidKeyError):
        tenants.get("a/b")


# -- audit --------------------------------------------------------------------------------------


def record(booking_id: str, minutes: int, event=AuditEvent.MEETING_ATTACHED, **changes):
    return AuditRecord(
        tenant_id="tenant-a",
        booking_id=booking_id,
        event=event,
        occurred_at=T0 + timedelta(minutes=minutes),
        record_id=uuid.uuid4().hex,
        operation="create",
        **changes,
    )


def test_audit_records_read_back_by_booking_and_by_period(audit):
    first = record("b1", 0, latency_ms=420, graph_status=201, meeting_id="m1")
    second = record("b1", 5, AuditEvent.MEETING_UPDATED, graph_status=200)
    other = record(
        "b2",
        10,
        AuditEvent.MEETING_FAILED,
        error_code="graph_policy_missing",
        graph_status=403,
        attempt=5,
    )
    for r in (second, other, first):
        audit.add(r)

    assert audit.list_for_booking("tenant-a", "b1") == [first, second]
    assert audit.list_for_period(
        "tenant-a", T0 + timedelta(minutes=1), T0 + timedelta(hours=1)
    ) == [
        second,
        other,
    ]
    assert audit.list_for_booking("tenant-b", "b1") == []


def test_writing_the_same_audit_record_twice_keeps_one(audit):
    once = record("b1", 0)

    audit.add(once)
    audit.add(once)

    assert audit.list_for_booking("tenant-a", "b1") == [once]


def test_a_marker_whose_retry_is_scheduled_later_is_left_to_it(bookings):
    # GIVEN two bookings needing work, one with a retry scheduled for later
    wanting = MeetingState(wanted=True)
    due = bookings.add(a_booking(status=BookingStatus.CONFIRMED, meeting=wanting))
    later = bookings.add(
        a_booking(
            status=BookingStatus.CONFIRMED,
            meeting=replace(wanting, next_attempt_at=T0 + timedelta(hours=1)),
        )
    )

    # WHEN the reconciler asks for what is due now, THEN only the first is returned
    now = [b.booking_id for b in bookings.list_marked(MEETING_WORK, "tenant-a", due_by=T0)]
    after = bookings.list_marked(MEETING_WORK, "tenant-a", due_by=T0 + timedelta(hours=2))
    assert now == [due.booking_id]
    assert {b.booking_id for b in after} == {due.booking_id, later.booking_id}


def test_the_start_index_finds_wanted_meetings_in_a_window_and_follows_changes(bookings):
    # GIVEN confirmed bookings that want meetings, at T0 and a day later, and one that does not
    wanting = MeetingState(wanted=True)
    soon = bookings.add(a_booking(status=BookingStatus.CONFIRMED, meeting=wanting))
    later = bookings.add(
        a_booking(
            status=BookingStatus.CONFIRMED,
            meeting=wanting,
            start=T0 + timedelta(days=1),
            end=T0 + timedelta(days=1, hours=1),
        )
    )
    bookings.add(a_booking(status=BookingStatus.CONFIRMED))
    window = (T0 - timedelta(hours=1), T0 + timedelta(hours=2))

    assert [b.booking_id for b in bookings.list_starting_between("tenant-a", *window)] == [
        soon.booking_id
    ]

    # WHEN one moves out of the window and the other into it, THEN the index follows
    bookings.update(
        replace(soon, start=T0 + timedelta(days=3), end=T0 + timedelta(days=3, hours=1))
    )
    bookings.update(replace(later, start=T0 + timedelta(minutes=30), end=T0 + timedelta(hours=1)))
    assert [b.booking_id for b in bookings.list_starting_between("tenant-a", *window)] == [
        later.booking_id
    ]

    # AND a cancelled booking leaves it
    fresh = bookings.get("tenant-a", later.booking_id)
    bookings.update(replace(fresh, status=BookingStatus.CANCELLED))
    assert bookings.list_starting_between("tenant-a", *window) == []
    assert bookings.list_starting_between("tenant-b", *window) == []


def test_a_later_save_clears_the_markers_retry_time(bookings):
    # GIVEN a booking whose retry was scheduled six hours ahead
    booking = bookings.add(
        a_booking(status=BookingStatus.CONFIRMED, meeting=MeetingState(wanted=True))
    )
    later = bookings.update(
        replace(booking, meeting=replace(booking.meeting, next_attempt_at=T0 + timedelta(hours=6)))
    )

    # WHEN a new save says nothing is scheduled (new work, due now)
    bookings.update(replace(later, meeting=replace(later.meeting, next_attempt_at=None)))

    # THEN the timer sees it as due (the old retry time did not linger on the marker)
    due = bookings.list_marked(MEETING_WORK, "tenant-a", due_by=T0)
    assert [b.booking_id for b in due] == [booking.booking_id]


@pytest.mark.parametrize("lost", ["r|", "t|", "u|student-1|", "s|"])
def test_a_save_whose_rows_to_delete_are_gone_already_still_saves(tables, lost):
    # GIVEN a booking whose meeting needs work, read here (so its marker is known), and one of
    # the rows its next save deletes already gone (deleted by hand, or never written by an
    # older version)
    bookings = TableBookingRepository(tables)
    table = tables.table("bookings")
    added = bookings.add(
        a_booking(status=BookingStatus.CONFIRMED, meeting=MeetingState(wanted=True))
    )
    booking = bookings.get("tenant-a", added.booking_id)
    (row,) = [
        r
        for r in table.query_entities("PartitionKey eq 'tenant-a'")
        if r["RowKey"].startswith(lost)
    ]
    table.delete_entity("tenant-a", row["RowKey"])

    # WHEN it is cancelled and moved (every row it had goes), THEN the save succeeds
    moved = booking.start + timedelta(days=1)
    saved = bookings.update(
        replace(
            booking,
            status=BookingStatus.CANCELLED,
            start=moved,
            end=moved + timedelta(hours=1),
            meeting=MeetingState(),
        )
    )
    assert bookings.get("tenant-a", booking.booking_id).status is BookingStatus.CANCELLED
    # and the rows left are exactly the new version's
    left = sorted(r["RowKey"] for r in table.query_entities("PartitionKey eq 'tenant-a'"))
    suffix = f"{moved.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}|{booking.booking_id}"
    assert left == sorted(
        [
            f"b|{booking.booking_id}",
            f"t|{suffix}",
            f"u|student-1|{suffix}",
            f"u|tutor-1|{suffix}",
        ]
    )
    assert saved.version == booking.version + 1


def test_a_read_answered_before_a_save_here_does_not_bring_back_the_old_tenant(azurite):
    # GIVEN a tenant read in flight whose answer (the row before the save) arrives after a save
    # made in the same process returned (the transport holds that one answer back)
    from azure.core.pipeline.transport import RequestsTransport
    from azure.data.tables import TableServiceClient

    answered, release = threading.Event(), threading.Event()
    held = {"armed": False}

    class HoldingTransport(RequestsTransport):  # type: ignore[misc]
        def send(self, request, **kwargs):
            response = super().send(request, **kwargs)
            if held["armed"] and request.method == "GET":
                held["armed"] = False
                answered.set()
                release.wait(10)
            return response

    service = TableServiceClient.from_connection_string(
        azurite.connection_string, transport=HoldingTransport()
    )
    tenants = TableTenantRepository(Tables(service, prefix=f"t{uuid.uuid4().hex[:10]}"))
    tenant = tenants.add(a_tenant())
    held["armed"] = True
    reader = threading.Thread(target=tenants.get, args=("tenant-a",))
    reader.start()
    assert answered.wait(10)

    # WHEN the admin's save returns (organizer cleared: the back-out switch), then the read ends
    tenants.update(replace(tenant, organizer_upn=None))
    release.set()
    reader.join()

    # THEN the meeting paths of this process see the saved tenant, not the older answer
    assert tenants.get_recent("tenant-a").organizer_upn is None
