"""Every bad input is a clear 400 (or 413) with `error` + `code`, and nothing is written."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import booking_body, caller, future_slot

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def admin(stack):
    return caller(stack, "admin-1", "admin")


def count_bookings(admin) -> int:
    return len(admin.call("GET", "/v1/bookings?limit=200").json()["bookings"])


def participants(**changes):
    person = {"userId": "student-1", "role": "student", "email": "s@example.com"}
    person.update(changes)
    return [person]


START, END = future_slot()

BAD_CREATES = [
    ("not json", b"{not json", "invalid_json"),
    ("an array", b"[1, 2]", "invalid_json"),
    ("unknown field", booking_body(colour="red"), "unknown_field"),
    (
        "missing subject",
        {k: v for k, v in booking_body().items() if k != "subject"},
        "missing_field",
    ),
    ("subject not a string", booking_body(subject=42), "invalid_type"),
    ("empty subject", booking_body(subject="   "), "invalid_value"),
    ("subject too long", booking_body(subject="x" * 201), "too_long"),
    ("time without offset", booking_body(startDateTime=START[:-1]), "missing_offset"),
    ("not a time", booking_body(startDateTime="next tuesday"), "invalid_datetime"),
    ("end before start", booking_body(startDateTime=END, endDateTime=START), "invalid_time_range"),
    ("a 13-hour lesson", booking_body(endDateTime=future_slot(hours=13)[1]), "invalid_duration"),
    ("a 1-minute lesson", booking_body(endDateTime=START[:-3] + "01Z"), "invalid_duration"),
    ("unknown time zone", booking_body(timeZone="Mars/Olympus"), "invalid_time_zone"),
    ("a zone folder, not a zone", booking_body(timeZone="America"), "invalid_time_zone"),
    ("a zone path escape", booking_body(timeZone="../../etc/passwd"), "invalid_time_zone"),
    ("no participants", booking_body(participants=[]), "invalid_value"),
    ("participant not an object", booking_body(participants=["student-1"]), "invalid_type"),
    ("bad e-mail", booking_body(participants=participants(email="nope")), "invalid_value"),
    ("unknown role", booking_body(participants=participants(role="wizard")), "invalid_value"),
    ("id with a slash", booking_body(participants=participants(userId="a/b")), "invalid_id"),
    ("participant twice", booking_body(participants=participants() * 2), "duplicate_participant"),
    ("participant extra field", booking_body(participants=participants(age=12)), "unknown_field"),
    (
        "locale not a language tag",
        booking_body(participants=participants(locale="German please")),
        "invalid_locale",
    ),
    ("locale with _", booking_body(participants=participants(locale="de_AT")), "invalid_locale"),
    (
        "locale too long",
        booking_body(participants=participants(locale="de-" + "-".join(["abcdefgh"] * 5))),
        "invalid_locale",
    ),
    ("locale not a string", booking_body(participants=participants(locale=49)), "invalid_locale"),
    ("too large", booking_body(internalNotes="x" * 20_000), "body_too_large"),
    ("NUL in the subject", booking_body(subject="Maths\x00"), "invalid_characters"),
    ("ESC in the subject", booking_body(subject="\x1b[31mMaths"), "invalid_characters"),
    ("CR LF in the level", booking_body(level="A\r\nBcc: x@example.com"), "invalid_characters"),
    (
        "a lone surrogate in a name",
        b'{"subject": "M", "startDateTime": "'
        + START.encode()
        + b'", "endDateTime": "'
        + END.encode()
        + b'", "timeZone": "Europe/London", "participants": [{"userId": "s",'
        b' "role": "student", "email": "s@example.com", "displayName": "\\ud800x"}]}',
        "invalid_characters",
    ),
    ("nested five thousand levels", b"[" * 5000 + b"]" * 5000, "invalid_json"),
    (
        "nested under a field",
        b'{"subject": ' + b"[" * 40 + b"]" * 40 + b"}",
        "invalid_json",
    ),
    ("in the year 1", booking_body(startDateTime="0001-01-01T00:00:00+01:00"), "invalid_datetime"),
    (
        "in the year 9999",
        booking_body(startDateTime="9999-12-31T23:59:59-01:00"),
        "invalid_datetime",
    ),
    (
        "in the year 2000",
        booking_body(startDateTime="2000-01-01T10:00:00Z", endDateTime="2000-01-01T11:00:00Z"),
        "time_in_past",
    ),
    (
        "five years ahead",
        booking_body(startDateTime="2031-11-01T10:00:00Z", endDateTime="2031-11-01T11:00:00Z"),
        "time_too_far_ahead",
    ),
    (
        "non-ASCII digits in a time",
        booking_body(startDateTime="\uff12\uff10\uff12\uff17-01-01T10:00:00Z"),
        "invalid_datetime",
    ),
]


@pytest.mark.parametrize(("name", "body", "code"), BAD_CREATES, ids=[b[0] for b in BAD_CREATES])
def test_bad_booking_requests_are_refused_and_nothing_is_written(admin, name, body, code):
    before = count_bookings(admin)

    if isinstance(body, bytes):
        response = admin.call("POST", "/v1/bookings", raw=body)
    else:
        response = admin.call("POST", "/v1/bookings", body)

    assert response.status_code == (413 if code == "body_too_large" else 400), response.text
    assert response.json()["code"] == code
    assert response.json()["error"]
    assert count_bookings(admin) == before


@pytest.fixture(scope="module")
def pending_id(admin):
    return admin.call("POST", "/v1/bookings", booking_body()).json()["id"]


BAD_ACTIONS = [
    ("approve unknown field", "POST", "/approve", {"generateTeams": True}, "unknown_field"),
    (
        "approve toggle not a bool",
        "POST",
        "/approve",
        {"generateTeamsMeeting": "yes"},
        "invalid_type",
    ),
    ("approve assignee with #", "POST", "/approve", {"assigneeId": "a#b"}, "invalid_id"),
    ("approve assignee of 256 chars", "POST", "/approve", {"assigneeId": "a" * 256}, "invalid_id"),
    ("reschedule missing end", "POST", "/reschedule", {"startDateTime": START}, "missing_field"),
    (
        "reschedule no offset",
        "POST",
        "/reschedule",
        {"startDateTime": START[:-1], "endDateTime": END},
        "missing_offset",
    ),
    ("cancel reason not text", "POST", "/cancel", {"reason": ["x"]}, "invalid_type"),
    ("decline reason too long", "POST", "/decline", {"reason": "x" * 1001}, "too_long"),
    ("generate with a body", "POST", "/generate-meeting", {"force": True}, "unknown_field"),
    (
        "reschedule into the past",
        "POST",
        "/reschedule",
        {"startDateTime": "2020-01-01T10:00:00Z", "endDateTime": "2020-01-01T11:00:00Z"},
        "time_in_past",
    ),
    (
        "reschedule to the year 9999",
        "POST",
        "/reschedule",
        {"startDateTime": "9999-12-31T10:00:00Z", "endDateTime": "9999-12-31T11:00:00Z"},
        "invalid_datetime",
    ),
    ("cancel reason with NUL", "POST", "/cancel", {"reason": "ill\x00"}, "invalid_characters"),
]


@pytest.mark.parametrize(
    ("name", "method", "suffix", "body", "code"), BAD_ACTIONS, ids=[b[0] for b in BAD_ACTIONS]
)
def test_bad_action_bodies_change_nothing(admin, pending_id, name, method, suffix, body, code):
    before = admin.call("GET", f"/v1/bookings/{pending_id}").json()

    response = admin.call(method, f"/v1/bookings/{pending_id}{suffix}", body)

    assert response.status_code == 400, response.text
    assert response.json()["code"] == code
    assert admin.call("GET", f"/v1/bookings/{pending_id}").json() == before


BAD_OTHERS = [
    ("list bad status", "GET", "/v1/bookings?status=lost", None, "invalid_value"),
    ("list bad limit", "GET", "/v1/bookings?limit=0", None, "invalid_value"),
    (
        "list limit of a superscript digit",
        "GET",
        "/v1/bookings?limit=%C2%B2",
        None,
        "invalid_value",
    ),
    (
        "list from the year 1",
        "GET",
        "/v1/bookings?from=0001-01-01T00:00:00%2B01:00",
        None,
        "invalid_datetime",
    ),
    (
        "list to the year 9999",
        "GET",
        "/v1/bookings?to=9999-12-31T23:59:59-01:00",
        None,
        "invalid_datetime",
    ),
    ("list bad from", "GET", "/v1/bookings?from=yesterday", None, "invalid_datetime"),
    ("list unknown parameter", "GET", "/v1/bookings?sort=asc", None, "unknown_field"),
    ("booking id with a backslash", "GET", "/v1/bookings/a%5Cb", None, "invalid_id"),
    (
        "settings bad scope",
        "PUT",
        "/v1/teams-meetings/settings",
        {"meetingOptions": {"lobbyBypassScope": "anyone"}},
        "invalid_value",
    ),
    (
        "settings bad upn",
        "PUT",
        "/v1/teams-meetings/settings",
        {"organizerUpn": "not-an-email"},
        "invalid_value",
    ),
    (
        "settings unknown option",
        "PUT",
        "/v1/teams-meetings/settings",
        {"meetingOptions": {"recording": True}},
        "unknown_field",
    ),
    (
        "settings default locale not a tag",
        "PUT",
        "/v1/teams-meetings/settings",
        {"defaultLocale": "<script>"},
        "invalid_locale",
    ),
    (
        "settings default locale too long",
        "PUT",
        "/v1/teams-meetings/settings",
        {"defaultLocale": "en-" + "x" * 40},
        "invalid_locale",
    ),
    *[
        (
            f"reminder offsets {name}",
            "PUT",
            "/v1/teams-meetings/settings",
            {"reminderOffsets": v},
            c,
        )
        for name, v, c in [
            ("not a list", 15, "invalid_type"),
            ("not minutes", [15.5], "invalid_type"),
            ("too many", [1, 2, 3, 4, 5], "too_many"),
            ("zero", [0], "out_of_range"),
            ("over a week", [10081], "out_of_range"),
            ("repeated", [15, 15], "duplicate_value"),
        ]
    ],
    ("verify bad upn", "POST", "/v1/teams-meetings/verify-organizer", {"upn": 7}, "invalid_value"),
    *[
        (f"branding {name}", "PUT", "/v1/teams-meetings/settings", {"branding": branding}, code)
        for name, branding, code in [
            ("javascript logo", {"logoUrl": "javascript:alert(1)"}, "invalid_url"),
            ("http logo", {"logoUrl": "http://cdn.example.com/logo.png"}, "invalid_url"),
            ("css in the colour", {"accentColor": "red;background:url(x)"}, "invalid_color"),
            (
                "script in the name",
                {"displayName": "<script>alert(1)</script>"},
                "markup_not_allowed",
            ),
            (
                "markup in the footer",
                {"footerText": '"><img src=x onerror=alert(1)>'},
                "markup_not_allowed",
            ),
            ("bad reply-to", {"replyTo": "nobody"}, "invalid_email"),
            ("unknown field", {"font": "Comic Sans"}, "unknown_field"),
            ("not an object", "Acme", "invalid_type"),
        ]
    ],
]


@pytest.mark.parametrize(
    ("name", "method", "path", "body", "code"), BAD_OTHERS, ids=[b[0] for b in BAD_OTHERS]
)
def test_bad_queries_and_settings_are_refused(admin, name, method, path, body, code):
    settings_before = admin.call("GET", "/v1/teams-meetings/settings").json()

    response = admin.call(method, path, body)

    assert response.status_code == 400, response.text
    assert response.json()["code"] == code
    assert admin.call("GET", "/v1/teams-meetings/settings").json() == settings_before


def test_an_unknown_booking_is_404(admin):
    response = admin.call("GET", "/v1/bookings/does-not-exist")

    assert response.status_code == 404
    assert json.loads(response.text) == {"error": "Booking not found", "code": "not_found"}


def test_a_body_that_is_not_json_by_its_type_is_415(admin):
    before = count_bookings(admin)

    response = admin.call(
        "POST",
        "/v1/bookings",
        raw=json.dumps(booking_body()).encode(),
        headers={"Content-Type": "text/plain"},
    )

    assert response.status_code == 415, response.text
    assert response.json()["code"] == "unsupported_media_type"
    assert count_bookings(admin) == before


def test_multi_line_text_keeps_its_lines(admin):
    response = admin.call(
        "POST", "/v1/bookings", booking_body(internalNotes="line one\nline two\tend")
    )

    assert response.status_code == 201, response.text
    assert response.json()["internalNotes"] == "line one\nline two\tend"


def test_ids_of_the_longest_allowed_length_work_end_to_end(admin):
    # 255 characters: the longest id, which must still fit every composite storage key
    longest = "u" * 255
    created = admin.call(
        "POST", "/v1/bookings", booking_body(participants=participants(userId=longest))
    )
    assert created.status_code == 201, created.text

    approved = admin.call(
        "POST", f"/v1/bookings/{created.json()['id']}/approve", {"assigneeId": "t" * 255}
    )

    assert approved.status_code == 200, approved.text
    listed = admin.call("GET", f"/v1/bookings?participant={longest}").json()["bookings"]
    assert [b["id"] for b in listed] == [created.json()["id"]]
