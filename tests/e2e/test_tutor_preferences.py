"""Per-tutor meeting options over real HTTP (local host, Azurite, the Graph emulator): a tutor
chooses within what the tenant allows, and their meetings, not others', carry the choice."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import booking_body, caller

pytestmark = pytest.mark.e2e

PREFS = "/v1/tutors/{}/meeting-preferences"
ALLOWANCE = {"allowMeetingChat": ["enabled", "disabled"], "recordAutomatically": [True, False]}


@pytest.fixture(scope="module")
def admin(stack):
    return caller(stack, "admin-1", "admin")


@pytest.fixture(scope="module")
def tutor(stack):
    return caller(stack, "tutor-1", "tutor")


@pytest.fixture(autouse=True)
def tenant_allows_chat_and_recording(stack, admin):
    stack.emulator.reset()
    saved = admin.call("PUT", "/v1/teams-meetings/settings", {"tutorChoices": ALLOWANCE})
    assert saved.status_code == 200, saved.text
    yield
    admin.call("PUT", "/v1/teams-meetings/settings", {"tutorChoices": None})
    for who in ("tutor-1", "tutor-2"):
        admin.call("PUT", PREFS.format(who), {})


def meeting_of(stack, staff, student, tutor_id: str, **approval):
    created = student.call("POST", "/v1/bookings", booking_body(tutor=tutor_id))
    assert created.status_code == 201, created.text
    booking_id = created.json()["id"]
    approved = staff.call("POST", f"/v1/bookings/{booking_id}/approve", approval)
    assert approved.status_code == 200, approved.text
    join_url = approved.json()["booking"]["meetingLink"]
    (meeting,) = [m for m in stack.emulator.live_meetings() if m.join_url == join_url]
    return meeting


def test_a_tutors_choices_reach_their_meetings_and_no_one_elses(
    stack, admin, tutor, staff, student
):
    # GIVEN the tutor chose no chat and automatic recording, both within the tenant's allowance
    saved = tutor.call(
        "PUT",
        PREFS.format("tutor-1"),
        {"allowMeetingChat": "disabled", "recordAutomatically": True},
    )
    assert saved.status_code == 200, saved.text
    body = saved.json()
    assert body["preferences"] == {
        "lobbyBypassScope": None,
        "allowedPresenters": None,
        "allowMeetingChat": "disabled",
        "recordAutomatically": True,
    }
    assert body["allowed"] == {
        "allowMeetingChat": ["disabled", "enabled"],
        "recordAutomatically": [False, True],
    }
    assert (body["effective"]["allowMeetingChat"], body["effective"]["recordAutomatically"]) == (
        "disabled",
        True,
    )
    assert tutor.call("GET", PREFS.format("tutor-1")).json() == body

    # WHEN a booking of theirs and one of another tutor are approved
    theirs = meeting_of(stack, staff, student, "tutor-1")
    others = meeting_of(stack, staff, student, "tutor-2")

    # THEN Teams holds their meeting with their options, the other with the tenant's
    assert (theirs.allow_meeting_chat, theirs.record_automatically) == ("disabled", True)
    assert (others.allow_meeting_chat, others.record_automatically) == ("enabled", False)


def test_a_tenant_that_narrows_its_allowance_wins_over_choices_saved_before(
    stack, admin, tutor, staff, student
):
    saved = tutor.call("PUT", PREFS.format("tutor-1"), {"recordAutomatically": True})
    assert saved.status_code == 200, saved.text
    narrowed = admin.call(
        "PUT", "/v1/teams-meetings/settings", {"tutorChoices": {"allowMeetingChat": ["enabled"]}}
    )
    assert narrowed.status_code == 200, narrowed.text
    assert narrowed.json()["tutorChoices"] == {"allowMeetingChat": ["enabled"]}

    meeting = meeting_of(stack, staff, student, "tutor-1")

    assert meeting.record_automatically is False
    assert (
        tutor.call("GET", PREFS.format("tutor-1")).json()["effective"]["recordAutomatically"]
        is False
    )


def test_the_tutor_assigned_on_approval_is_the_one_whose_choices_count(
    stack, tutor, staff, student
):
    # GIVEN tutor-2 chose no chat, tutor-1 nothing
    tutor_2 = caller(stack, "tutor-2", "tutor")
    saved = tutor_2.call("PUT", PREFS.format("tutor-2"), {"allowMeetingChat": "disabled"})
    assert saved.status_code == 200, saved.text

    # WHEN a booking made with tutor-1 is approved and assigned to tutor-2
    meeting = meeting_of(stack, staff, student, "tutor-1", assigneeId="tutor-2")

    # THEN its meeting follows tutor-2's choice
    assert meeting.allow_meeting_chat == "disabled"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"lobbyBypassScope": "organizer"}, "preference_not_allowed"),  # not among the choices
        ({"allowMeetingChat": "limited"}, "preference_not_allowed"),
        ({"allowMeetingChat": "sometimes"}, "invalid_value"),
        ({"recordAutomatically": "yes"}, "invalid_type"),
        ({"colour": "red"}, "unknown_field"),
    ],
)
def test_a_preference_outside_the_allowance_or_malformed_is_refused_and_changes_nothing(
    stack, tutor, body, code
):
    before = tutor.call("GET", PREFS.format("tutor-1")).json()

    answer = tutor.call("PUT", PREFS.format("tutor-1"), body)

    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == code
    assert answer.json()["error"]
    assert tutor.call("GET", PREFS.format("tutor-1")).json() == before


def test_the_refusal_names_the_values_the_tenant_allows(stack, tutor):
    answer = tutor.call("PUT", PREFS.format("tutor-1"), {"allowMeetingChat": "limited"})

    assert answer.json()["error"] == (
        "allowMeetingChat limited is not allowed by the tenant (allowed: disabled, enabled)"
    )


def test_only_the_tutor_staff_and_admins_see_or_change_a_tutors_preferences(stack, staff):
    other_tutor = caller(stack, "tutor-2", "tutor")
    student = caller(stack, "student-1", "student")
    for who in (other_tutor, student):
        assert who.call("GET", PREFS.format("tutor-1")).status_code == 403
        put = who.call("PUT", PREFS.format("tutor-1"), {"allowMeetingChat": "disabled"})
        assert put.status_code == 403
        assert put.json()["code"] == "forbidden"
    by_staff = staff.call("PUT", PREFS.format("tutor-1"), {"allowMeetingChat": "disabled"})
    assert by_staff.status_code == 200
    assert by_staff.json()["preferences"]["allowMeetingChat"] == "disabled"


def test_a_tenant_allowance_that_is_not_of_its_shape_is_refused(stack, admin):
    for bad, code in (
        ({"tutorChoices": {"allowMeetingChat": "enabled"}}, "invalid_type"),
        ({"tutorChoices": {"allowMeetingChat": ["sometimes"]}}, "invalid_value"),
        ({"tutorChoices": {"subjectTemplate": ["x"]}}, "unknown_field"),
        ({"tutorChoices": ["allowMeetingChat"]}, "invalid_type"),
    ):
        answer = admin.call("PUT", "/v1/teams-meetings/settings", bad)
        assert answer.status_code == 400, bad
        assert answer.json()["code"] == code, bad
    assert admin.call("GET", "/v1/teams-meetings/settings").json()["tutorChoices"] == {
        "allowMeetingChat": ["disabled", "enabled"],
        "recordAutomatically": [False, True],
    }
