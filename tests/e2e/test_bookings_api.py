"""The bookings API over real HTTP: local Functions host, Azurite and the Graph emulator."""

from __future__ import annotations

import pytest

from localdev.graph_emulator import POLICY_MISSING_MESSAGE, Fault
from tests.e2e.conftest import booking_body, caller, future_slot

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def admin(stack):
    return caller(stack, "admin-1", "admin")


@pytest.fixture(autouse=True)
def clean_emulator(stack):
    stack.emulator.reset()
    yield
    stack.emulator.clear_faults()


def create(who, **changes):
    response = who.call("POST", "/v1/bookings", booking_body(**changes))
    assert response.status_code == 201, response.text
    return response.json()


def test_approve_reschedule_cancel_keep_one_meeting_in_step(stack, staff, student):
    # GIVEN a student's booking request
    booking = create(student)
    assert booking["status"] == "pending"
    assert booking["meeting"]["status"] == "none"

    # WHEN staff approve it, THEN it is confirmed with exactly one Teams meeting
    approved = staff.call("POST", f"/v1/bookings/{booking['id']}/approve", {})
    assert approved.status_code == 200
    body = approved.json()
    assert "teamsMeetingWarning" not in body
    (meeting,) = stack.emulator.live_meetings()
    assert body["booking"]["meetingLink"] == meeting.join_url
    assert body["booking"]["meeting"]["meetingId"] == meeting.id
    assert student.call("GET", f"/v1/bookings/{booking['id']}").json()["meetingLink"] == (
        meeting.join_url
    )

    # WHEN it is rescheduled, THEN the same meeting moves (same id, same link)
    start, end = future_slot(days=5, hours=1.5)
    moved = staff.call(
        "POST",
        f"/v1/bookings/{booking['id']}/reschedule",
        {"startDateTime": start, "endDateTime": end},
    )
    assert moved.status_code == 200
    assert moved.json()["booking"]["meeting"]["meetingId"] == meeting.id
    assert meeting.start.startswith(start[:-1])
    assert meeting.end.startswith(end[:-1])

    # WHEN the student cancels, THEN Graph deletes the meeting
    cancelled = student.call("POST", f"/v1/bookings/{booking['id']}/cancel", {"reason": "ill"})
    assert cancelled.status_code == 200
    assert cancelled.json()["booking"]["status"] == "cancelled"
    assert cancelled.json()["booking"]["meetingLink"] is None
    assert stack.emulator.live_meetings() == []
    assert stack.emulator.calls["createOrGet"] == 1
    assert stack.emulator.calls["deleteMeeting"] == 1


def test_staff_complete_a_lesson_by_hand_with_the_outcome_they_saw(stack, staff, student):
    # GIVEN a confirmed lesson
    booking = create(student)
    staff.call("POST", f"/v1/bookings/{booking['id']}/approve", {})
    assert student.call("GET", f"/v1/bookings/{booking['id']}").json()["outcome"] is None

    # WHEN an unknown outcome is sent, THEN it is a 400 and nothing changes
    bad = staff.call("POST", f"/v1/bookings/{booking['id']}/complete", {"outcome": "late"})
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid_value")
    assert student.call("GET", f"/v1/bookings/{booking['id']}").json()["status"] == "confirmed"

    # WHEN staff complete it as a student no-show
    done = staff.call(
        "POST", f"/v1/bookings/{booking['id']}/complete", {"outcome": "student_no_show"}
    )

    # THEN it is completed with that outcome, recorded as staff's, and the meeting stays
    assert done.status_code == 200, done.text
    seen = student.call("GET", f"/v1/bookings/{booking['id']}").json()
    assert (seen["status"], seen["outcome"]) == ("completed", "student_no_show")
    assert (seen["attendance"]["source"], seen["attendance"]["participants"]) == ("staff", [])
    assert len(stack.emulator.live_meetings()) == 1

    # AND completing it again is an illegal transition
    again = staff.call("POST", f"/v1/bookings/{booking['id']}/complete")
    assert (again.status_code, again.json()["code"]) == (409, "illegal_transition")


def test_declining_a_request_makes_no_graph_call(stack, staff, student):
    booking = create(student)

    declined = staff.call("POST", f"/v1/bookings/{booking['id']}/decline", {"reason": "full"})

    assert declined.json()["booking"]["status"] == "declined"
    assert stack.emulator.calls["createOrGet"] == 0


def test_decline_of_a_booking_with_a_meeting_deletes_it(stack, admin, staff, student):
    booking = create(student)
    staff.call("POST", f"/v1/bookings/{booking['id']}/approve", {})

    # a confirmed booking cannot be declined, only cancelled
    declined = staff.call("POST", f"/v1/bookings/{booking['id']}/decline", {})
    cancelled = admin.call("POST", f"/v1/bookings/{booking['id']}/cancel", {})

    assert declined.status_code == 409
    assert declined.json()["code"] == "illegal_transition"
    assert cancelled.status_code == 200
    assert stack.emulator.calls["deleteMeeting"] == 1


@pytest.mark.parametrize(
    ("fault", "words", "state"),
    [
        (
            Fault(operation="createOrGet", status=403, message=POLICY_MISSING_MESSAGE),
            "Application Access Policy",
            "failed",
        ),
        (Fault(operation="createOrGet", status=503), "retried", "pending"),
    ],
)
def test_graph_failure_during_approval_is_a_warning_not_an_error(
    stack, staff, student, fault, words, state
):
    stack.emulator.add_fault(fault)
    booking = create(student)

    approved = staff.call("POST", f"/v1/bookings/{booking['id']}/approve", {})

    assert approved.status_code == 200
    assert words in approved.json()["teamsMeetingWarning"]
    stored = staff.call("GET", f"/v1/bookings/{booking['id']}").json()
    assert stored["status"] == "confirmed"
    assert stored["meeting"]["status"] == state
    assert stored["meeting"]["lastErrorCode"] in ("graph_policy_missing", "graph_unavailable")
    assert stored["meetingLink"] is None


def test_generate_meeting_follows_seed_000(stack, staff, student):
    booking = create(student)
    not_yet = student.call("POST", f"/v1/bookings/{booking['id']}/generate-meeting")
    assert not_yet.status_code == 409
    assert not_yet.json()["error"] == (
        "Booking must be confirmed (paid) before generating meeting link"
    )

    staff.call("POST", f"/v1/bookings/{booking['id']}/approve", {"generateTeamsMeeting": False})
    stack.emulator.add_fault(
        Fault(operation="createOrGet", status=403, message=POLICY_MISSING_MESSAGE, count=1)
    )
    refused = student.call("POST", f"/v1/bookings/{booking['id']}/generate-meeting")
    generated = student.call("POST", f"/v1/bookings/{booking['id']}/generate-meeting")

    assert refused.status_code == 502
    assert refused.json()["code"] == "graph_policy_missing"
    assert "teams-meetings-setup.md" in refused.json()["error"]
    assert generated.status_code == 200
    (meeting,) = stack.emulator.live_meetings()
    assert generated.json() == {
        "message": "Teams meeting generated successfully",
        "meetingLink": meeting.join_url,
        "meetingId": meeting.id,
    }


def test_attendance_thresholds_are_the_tenants_and_change_one_at_a_time(admin):
    defaults = {"minimumMinutes": 5, "graceMinutes": 15, "deadlineHours": 24, "noShowMailTo": None}
    try:
        assert admin.call("GET", "/v1/teams-meetings/settings").json()["attendance"] == defaults

        changed = admin.call(
            "PUT", "/v1/teams-meetings/settings", {"attendance": {"minimumMinutes": 10}}
        )

        assert changed.status_code == 200, changed.text
        assert changed.json()["attendance"] == {**defaults, "minimumMinutes": 10}
        desk = admin.call(
            "PUT", "/v1/teams-meetings/settings", {"attendance": {"noShowMailTo": "desk@a.example"}}
        )
        assert desk.json()["attendance"]["noShowMailTo"] == "desk@a.example"
        cleared = admin.call(
            "PUT", "/v1/teams-meetings/settings", {"attendance": {"noShowMailTo": None}}
        )
        assert cleared.json()["attendance"] == {**defaults, "minimumMinutes": 10}
        for bad in (
            {"graceMinutes": 61},
            {"deadlineHours": 0},
            {"minimumMinutes": 2.5},
            {"x": 1},
            {"noShowMailTo": "not an address"},
            {"noShowMailTo": 5},
        ):
            refused = admin.call("PUT", "/v1/teams-meetings/settings", {"attendance": bad})
            assert refused.status_code == 400, bad
        after = admin.call("GET", "/v1/teams-meetings/settings").json()["attendance"]
        assert after == {**defaults, "minimumMinutes": 10}
    finally:
        admin.call("PUT", "/v1/teams-meetings/settings", {"attendance": defaults})


def test_clearing_the_organizer_stops_meeting_creation(stack, admin, staff, student):
    try:
        cleared = admin.call("PUT", "/v1/teams-meetings/settings", {"organizerUpn": None})
        assert cleared.status_code == 200
        assert cleared.json()["capability"] == {"available": False, "reason": "no_organizer"}
        capability = student.call("GET", "/v1/teams-meetings/capability").json()
        assert capability == {"available": False, "reason": "no_organizer"}

        booking = create(student)
        approved = staff.call("POST", f"/v1/bookings/{booking['id']}/approve", {})

        assert approved.status_code == 200
        assert approved.json()["booking"]["meeting"]["status"] == "none"
        assert stack.emulator.calls["createOrGet"] == 0
    finally:
        restored = admin.call(
            "PUT", "/v1/teams-meetings/settings", {"organizerUpn": "meetings@demo.example"}
        )
        assert restored.json()["capability"] == {"available": True}


def test_settings_and_verification_for_admins(stack, admin):
    settings = admin.call("GET", "/v1/teams-meetings/settings").json()
    verified = admin.call("POST", "/v1/teams-meetings/verify-organizer", {"dryRun": True})
    unknown = admin.call(
        "POST", "/v1/teams-meetings/verify-organizer", {"upn": "nobody@demo.example"}
    )

    assert settings["organizerUpn"] == "meetings@demo.example"
    assert settings["meetingOptions"]["lobbyBypassScope"] == "everyone"
    assert verified.json() == {
        "valid": True,
        "dryRun": True,
        "displayName": "Demo Meetings Organizer",
        "objectId": stack.organizer.id,
        "checkMeetingRemoved": True,
    }
    assert unknown.json() == {"valid": False, "dryRun": False, "reason": "user_not_found"}
    assert stack.emulator.live_meetings() == []


@pytest.mark.parametrize(
    ("operation", "valid", "removed"),
    [("patchMeeting", False, True), ("deleteMeeting", True, False)],
)
def test_a_dry_run_meeting_graph_fails_on_is_said_honestly(stack, admin, operation, valid, removed):
    # GIVEN Teams answers the check meeting's options PATCH, or its DELETE, with 503 once
    stack.emulator.add_fault(Fault(operation=operation, status=503, count=1))

    answer = admin.call("POST", "/v1/teams-meetings/verify-organizer", {"dryRun": True}).json()

    # THEN the answer says whether the check completed and whether its meeting is gone
    assert (answer["valid"], answer["checkMeetingRemoved"]) == (valid, removed)
    assert answer.get("reason") == (None if valid else "graph_error")
    live = [m for m in stack.emulator.live_meetings() if m.external_id.startswith("verify:")]
    assert len(live) == (0 if removed else 1)
    for meeting in live:
        stack.emulator.delete_meeting_by_hand(meeting.id)  # the timer's part is tested apart


def test_meeting_options_saved_by_an_admin_reach_the_next_meeting(stack, admin, staff, student):
    try:
        saved = admin.call(
            "PUT",
            "/v1/teams-meetings/settings",
            {
                "meetingOptions": {
                    "lobbyBypassScope": "organization",
                    "allowMeetingChat": "disabled",
                    "subjectTemplate": "Tutoring: {subject}",
                },
            },
        )
        assert saved.status_code == 200
        booking = create(student)
        staff.call("POST", f"/v1/bookings/{booking['id']}/approve", {})

        (meeting,) = stack.emulator.live_meetings()
        assert meeting.lobby_scope == "organization"
        assert meeting.allow_meeting_chat == "disabled"
        assert meeting.dial_in_bypass is True  # options not sent keep their values
        assert saved.json()["meetingOptions"]["allowedPresenters"] == "everyone"
        assert meeting.subject == "Tutoring: Computer Science"
    finally:
        admin.call(
            "PUT",
            "/v1/teams-meetings/settings",
            {
                "meetingOptions": {
                    "lobbyBypassScope": "everyone",
                    "allowMeetingChat": "enabled",
                    "subjectTemplate": "{subject} {level} Lesson",
                }
            },
        )


def roles(meeting) -> dict[str, str]:
    return {a["upn"]: a["role"] for a in meeting.participants}


def test_with_presenters_by_role_the_tutor_presents_and_the_student_attends(
    stack, admin, staff, student
):
    # GIVEN a tenant whose meetings' presenters are by role
    try:
        saved = admin.call(
            "PUT",
            "/v1/teams-meetings/settings",
            {"meetingOptions": {"allowedPresenters": "roleIsPresenter"}},
        )
        assert saved.status_code == 200, saved.text

        # WHEN a booking is approved, and then moved
        booking = create(student)
        staff.call("POST", f"/v1/bookings/{booking['id']}/approve", {})

        # THEN Teams holds the tutor as a presenter and the student as an attendee
        (meeting,) = stack.emulator.live_meetings()
        assert meeting.allowed_presenters == "roleIsPresenter"
        assert roles(meeting) == {
            "student-1@example.com": "attendee",
            "tutor-1@example.com": "presenter",
        }
        start, end = future_slot(days=5)
        moved = staff.call(
            "POST",
            f"/v1/bookings/{booking['id']}/reschedule",
            {"startDateTime": start, "endDateTime": end},
        )
        assert moved.status_code == 200, moved.text
        # AND the move's PATCH, which carries the whole list, keeps them so
        (meeting,) = stack.emulator.live_meetings()
        assert meeting.start.startswith(start[:16])
        assert roles(meeting) == {
            "student-1@example.com": "attendee",
            "tutor-1@example.com": "presenter",
        }
    finally:
        admin.call(
            "PUT",
            "/v1/teams-meetings/settings",
            {"meetingOptions": {"allowedPresenters": "everyone"}},
        )


@pytest.mark.parametrize(
    ("template", "code"),
    [
        ("{x.y} Lesson", "invalid_template"),
        ("{0}", "invalid_template"),
        ("{subject!r}", "invalid_template"),
        ("{subject:x>999999999}", "invalid_template"),
        ("{{", "invalid_template"),
        ("{teacher} Lesson", "invalid_template"),
        ("x" * 10_000, "too_long"),
        ("{subject}\u0007", "invalid_characters"),
    ],
)
def test_a_subject_template_that_is_not_data_is_refused_and_changes_nothing(admin, template, code):
    before = admin.call("GET", "/v1/teams-meetings/settings").json()

    refused = admin.call(
        "PUT", "/v1/teams-meetings/settings", {"meetingOptions": {"subjectTemplate": template}}
    )

    assert refused.status_code == 400
    assert refused.json()["code"] == code
    assert "subjectTemplate" in refused.json()["error"]
    assert admin.call("GET", "/v1/teams-meetings/settings").json() == before


def test_list_filters(stack, staff, student):
    first = create(student)
    staff.call("POST", f"/v1/bookings/{first['id']}/approve", {"generateTeamsMeeting": False})

    confirmed = staff.call("GET", "/v1/bookings?status=confirmed&participant=student-1").json()
    mine = student.call("GET", "/v1/bookings").json()["bookings"]

    assert first["id"] in {b["id"] for b in confirmed["bookings"]}
    assert all(b["status"] == "confirmed" for b in confirmed["bookings"])
    assert all("student-1" in {p["userId"] for p in b["participants"]} for b in mine)
    assert all("internalNotes" not in b for b in mine)


def pages(who, query):
    """Every page's ids of `GET /v1/bookings?{query}`, following nextPageToken."""
    found, token = [], None
    while True:
        suffix = "" if token is None else f"&pageToken={token}"
        response = who.call("GET", f"/v1/bookings?{query}{suffix}")
        assert response.status_code == 200, response.text
        body = response.json()
        found.append([b["id"] for b in body["bookings"]])
        token = body["nextPageToken"]
        if token is None:
            return found


def test_pages_chain_to_every_booking_once_for_staff_and_participants(stack, staff, student):
    # GIVEN five bookings at one start, on a day nothing else is booked, one of them declined
    start, end = future_slot(days=40)
    made = [create(student, startDateTime=start, endDateTime=end)["id"] for _ in range(5)]
    staff.call("POST", f"/v1/bookings/{made[0]}/decline", {})
    window = f"from={start}&to={end}"

    # WHEN the lists are followed two at a time
    everything = pages(staff, f"{window}&limit=2")
    pending = pages(staff, f"{window}&status=pending&limit=2")
    mine = pages(student, f"{window}&limit=2")
    theirs = pages(staff, f"{window}&participant=student-1&limit=2")

    # THEN each holds every booking it should exactly once, by id (their start is the same)
    assert [i for page in everything for i in page] == sorted(made)
    assert [len(page) for page in everything] == [2, 2, 1]
    assert [i for page in pending for i in page] == sorted(made[1:])
    assert [i for page in mine for i in page] == sorted(made)
    assert [i for page in theirs for i in page] == sorted(made)


@pytest.mark.parametrize(
    "token",
    [
        "not a token",
        "e30",  # {}
        "eyJzIjoieCIsImIiOiJ5IiwicSI6InoifQ",  # {"s":"x","b":"y","q":"z"}
        "A" * 601,
        "%C3%A9",
    ],
)
def test_a_page_token_the_list_did_not_give_out_is_a_400(staff, token):
    response = staff.call("GET", f"/v1/bookings?pageToken={token}")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_page_token"
    assert response.json()["error"]


def test_a_page_token_sent_with_other_filters_is_a_400(stack, staff, student):
    start, end = future_slot(days=41)
    for _ in range(2):
        create(student, startDateTime=start, endDateTime=end)
    first = staff.call("GET", f"/v1/bookings?from={start}&limit=1").json()
    token = first["nextPageToken"]

    refused = staff.call("GET", f"/v1/bookings?from={end}&limit=1&pageToken={token}")
    accepted = staff.call("GET", f"/v1/bookings?from={start}&limit=5&pageToken={token}")

    assert refused.status_code == 400
    assert refused.json()["code"] == "invalid_page_token"
    assert accepted.status_code == 200  # the page size may change between pages
    assert first["bookings"][0]["id"] not in {b["id"] for b in accepted.json()["bookings"]}


# -- Idempotency-Key on create -------------------------------------------------------------------


def bookings_of(who):
    return {b["id"] for b in who.call("GET", "/v1/bookings?limit=200").json()["bookings"]}


def test_a_repeated_create_with_the_same_key_returns_the_first_booking(student):
    body = booking_body(subject="Retried after a lost response")
    key = {"Idempotency-Key": "0b4f6c1e-create-1"}

    first = student.call("POST", "/v1/bookings", body, headers=key)
    again = student.call("POST", "/v1/bookings", body, headers=key)

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    subjects = [
        b["subject"] for b in student.call("GET", "/v1/bookings?limit=200").json()["bookings"]
    ]
    assert subjects.count("Retried after a lost response") == 1


def test_the_same_key_with_another_request_is_refused_and_writes_nothing(student):
    key = {"Idempotency-Key": "0b4f6c1e-create-2"}
    first = student.call("POST", "/v1/bookings", booking_body(subject="First"), headers=key)
    before = bookings_of(student)

    other = student.call("POST", "/v1/bookings", booking_body(subject="Second"), headers=key)

    assert first.status_code == 201
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"
    assert bookings_of(student) == before


def test_keys_belong_to_their_caller(stack):
    key = {"Idempotency-Key": "shared-looking-key"}
    one = caller(stack, "student-7", "student")
    two = caller(stack, "student-8", "student")

    mine = one.call("POST", "/v1/bookings", booking_body(student="student-7"), headers=key)
    theirs = two.call("POST", "/v1/bookings", booking_body(student="student-8"), headers=key)

    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert mine.json()["id"] != theirs.json()["id"]


@pytest.mark.parametrize("bad", ["", "x" * 256, "has space", "tab\tkey", "caf\u00e9"])
def test_a_malformed_key_is_a_400_and_writes_nothing(student, bad):
    before = bookings_of(student)

    response = student.call(
        "POST", "/v1/bookings", booking_body(), headers={"Idempotency-Key": bad}
    )

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_idempotency_key"
    assert bookings_of(student) == before


def test_reminder_offsets_are_set_shown_and_turned_off(admin, student):
    # GIVEN the default offsets: 24 hours and 15 minutes
    assert admin.call("GET", "/v1/teams-meetings/settings").json()["reminderOffsets"] == [1440, 15]
    try:
        # WHEN an admin sets three, in any order, then none
        saved = admin.call(
            "PUT", "/v1/teams-meetings/settings", {"reminderOffsets": [15, 10080, 120]}
        )
        shown = admin.call("GET", "/v1/teams-meetings/settings").json()["reminderOffsets"]
        off = admin.call("PUT", "/v1/teams-meetings/settings", {"reminderOffsets": []})

        # THEN they are kept largest first, and [] turns reminders off
        assert saved.status_code == 200, saved.text
        assert saved.json()["reminderOffsets"] == shown == [10080, 120, 15]
        assert off.json()["reminderOffsets"] == []
        # and every booking answer shows them beside the reminders it was sent
        booking = create(student)
        assert booking["reminders"] == {"offsets": [], "sent": []}
        listed = student.call("GET", "/v1/bookings").json()["bookings"]
        assert all(b["reminders"]["offsets"] == [] for b in listed)
    finally:
        admin.call("PUT", "/v1/teams-meetings/settings", {"reminderOffsets": [1440, 15]})
