"""E-mail over the whole stack: the API's changes, the `mail` queue served by the local host, the
folder transport's `.eml` files read back with Python's `email` parser, and the calendar route."""

from __future__ import annotations

import email
import email.policy
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

import icalendar
import pytest
import vobject

from localdev.graph_emulator import Fault
from localdev.mailbox import invite_parts, stories
from tests.e2e.conftest import booking_body, caller, future_slot, settle

pytestmark = pytest.mark.e2e


def mail_folder(stack) -> Path:
    return Path(stack.env["MAIL_FOLDER"])


def mails_for(stack, booking_id: str) -> list[Any]:
    found = []
    for path in sorted(mail_folder(stack).glob("*.eml")):
        if booking_id[:40] in path.name:
            found.append(email.message_from_bytes(path.read_bytes(), policy=email.policy.default))
    return found


def invite(message: Any) -> Any:
    parts: tuple[Any, Any] = invite_parts(message)
    alternative, attachment = parts
    assert alternative.get_payload(decode=True) == attachment.get_payload(decode=True)
    return attachment.get_payload(decode=True)


def test_approve_reschedule_cancel_at_once_tell_no_one_a_cancellation_unannounced(stack, staff):
    # GIVEN a lesson a student asked for, whose meeting Teams will not make (so no mail
    # waits for its link)
    stack.emulator.add_fault(Fault(operation="createOrGet", status=404, count=4))
    try:
        student = caller(stack, "student-1", "student")
        created = student.call("POST", "/v1/bookings", booking_body())
        assert created.status_code == 201, created.text
        booking_id = created.json()["id"]

        # WHEN it is approved, moved and cancelled at once (the queue's workers taking the
        # mail messages as they come: the approval may or may not go before the rest)
        assert staff.call("POST", f"/v1/bookings/{booking_id}/approve", {}).status_code == 200
        start, end = future_slot(days=5)
        moved = staff.call(
            "POST",
            f"/v1/bookings/{booking_id}/reschedule",
            {"startDateTime": start, "endDateTime": end},
        )
        assert moved.status_code == 200, moved.text
        cancelled = student.call("POST", f"/v1/bookings/{booking_id}/cancel", {"reason": "Unwell"})
        assert cancelled.status_code == 200, cancelled.text
        assert settle(
            lambda: (
                staff.call("GET", f"/v1/bookings/{booking_id}").json()["mail"]["status"] == "sent"
            )
        )
        time.sleep(2)  # any straggler's mail would be written by now
    finally:
        stack.emulator.clear_faults()

    # THEN each recipient's mails read as a story: the student, who asked, ends with one
    # cancellation; the tutor has either nothing or the assignment and then the cancellation,
    # never a cancellation of a lesson they were not told of
    story = stories_of(stack, booking_id)
    student_mails = story.pop("student-1@example.com")
    assert student_mails[-1] == "Cancelled"
    assert student_mails.count("Cancelled") == 1
    assert story.get("tutor-1@example.com", []) in ([], ["Assigned to you", "Cancelled"])
    assert set(story) <= {"tutor-1@example.com"}


def stories_of(stack, booking_id: str) -> dict[str, list[str]]:
    """Each recipient's subjects (before the colon) in the order the mails were written."""
    paths = sorted(
        mail_folder(stack).glob(f"*{booking_id[:40]}*.eml"),
        key=lambda p: (p.stat().st_mtime_ns, p.name),
    )
    told: dict[str, list[str]] = {}
    for path in paths:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        to = message["To"].addresses[0].addr_spec
        told.setdefault(to, []).append(str(message["Subject"]).split(":")[0])
    return told


def test_approve_reschedule_cancel_leave_eml_files_with_their_invites(stack, staff, tmp_path):
    # GIVEN a booking with a student and a tutor
    booking = staff.call("POST", "/v1/bookings", booking_body()).json()
    booking_id = booking["id"]

    # WHEN it is approved, moved and cancelled, each mail going out before the next change
    approved = staff.call("POST", f"/v1/bookings/{booking_id}/approve", {}).json()
    join_url = approved["booking"]["meetingLink"]
    assert settle(lambda: len(mails_for(stack, booking_id)) == 2)
    start, end = future_slot(days=5)
    moved = staff.call(
        "POST",
        f"/v1/bookings/{booking_id}/reschedule",
        {"startDateTime": start, "endDateTime": end},
    )
    assert moved.status_code == 200
    assert settle(lambda: len(mails_for(stack, booking_id)) == 4)
    cancelled = staff.call("POST", f"/v1/bookings/{booking_id}/cancel", {"reason": "Unwell"})
    assert cancelled.status_code == 200
    assert settle(lambda: len(mails_for(stack, booking_id)) == 6)

    # THEN each participant has three mails, and their invites update one event
    messages = mails_for(stack, booking_id)
    assert Counter(m["To"].addresses[0].addr_spec for m in messages) == {
        "student-1@example.com": 3,
        "tutor-1@example.com": 3,
    }
    seen: list[tuple[int, str]] = []
    for message in messages:
        raw = invite(message)
        calendar: Any = icalendar.Calendar.from_ical(raw)
        (event,) = calendar.walk("VEVENT")
        parsed = vobject.readOne(raw.decode())
        assert str(parsed.vevent.uid.value) == str(event["UID"])
        seen.append((int(event["SEQUENCE"]), str(calendar["METHOD"])))
        if calendar["METHOD"] == "REQUEST":
            assert str(event["URL"]) == join_url
            text = message.get_body(preferencelist=("plain",)).get_content()
            assert f"Join Teams Meeting: {join_url}" in text
    assert sorted(set(seen)) == [(0, "REQUEST"), (1, "REQUEST"), (2, "CANCEL")]
    assert (
        len(
            {
                str(icalendar.Calendar.from_ical(invite(m)).walk("VEVENT")[0]["UID"])
                for m in messages
            }
        )
        == 1
    )

    final = staff.call("GET", f"/v1/bookings/{booking_id}").json()
    assert final["mail"]["status"] == "sent"
    assert final["mail"]["sent"] == 3

    # AND the mailbox tells each recipient's story in order
    story = tmp_path / "story"
    story.mkdir()
    for path in mail_folder(stack).glob(f"*{booking_id[:40]}*.eml"):
        shutil.copy2(path, story / path.name)  # with its time written
    told = {to.split("<")[-1].rstrip(">"): said for to, said in stories(story).items()}

    def read(said: str) -> tuple[str, str]:
        return said.split(":")[0], said[said.index("[") + 1 : said.index("]")]

    assert [read(s) for s in told["student-1@example.com"]] == [
        ("Confirmed", "REQUEST SEQUENCE:0"),
        ("New time", "REQUEST SEQUENCE:1"),
        ("Cancelled", "CANCEL SEQUENCE:2"),
    ]
    assert [s.split(":")[0] for s in told["tutor-1@example.com"]] == [
        "Assigned to you",
        "New time",
        "Cancelled",
    ]


def test_the_calendar_route_serves_the_current_invite_to_those_who_may_see_it(stack, staff):
    booking = staff.call("POST", "/v1/bookings", booking_body()).json()
    booking_id = booking["id"]
    staff.call("POST", f"/v1/bookings/{booking_id}/approve", {})

    as_student = caller(stack, "student-1", "student").call(
        "GET", f"/v1/bookings/{booking_id}/calendar.ics"
    )
    stranger = caller(stack, "student-9", "student").call(
        "GET", f"/v1/bookings/{booking_id}/calendar.ics"
    )
    other_tenant = caller(stack, "staff-1", "staff", tenant="other").call(
        "GET", f"/v1/bookings/{booking_id}/calendar.ics"
    )
    anonymous = caller(stack, "x", "student")
    anonymous.token = None

    assert as_student.status_code == 200
    assert as_student.headers["Content-Type"].startswith("text/calendar")
    calendar: Any = icalendar.Calendar.from_ical(as_student.content)
    assert str(calendar["METHOD"]) == "REQUEST"
    (event,) = calendar.walk("VEVENT")
    link = staff.call("GET", f"/v1/bookings/{booking_id}").json()["meetingLink"]
    assert str(event["URL"]) == link
    assert stranger.status_code == 403
    assert other_tenant.status_code == 404
    assert other_tenant.json()["code"]
    unauthenticated = anonymous.call("GET", f"/v1/bookings/{booking_id}/calendar.ics")
    assert unauthenticated.status_code == 401

    # once cancelled, the route hands out the cancellation, same UID
    staff.call("POST", f"/v1/bookings/{booking_id}/cancel", {})
    after = caller(stack, "student-1", "student").call(
        "GET", f"/v1/bookings/{booking_id}/calendar.ics"
    )
    cancelled: Any = icalendar.Calendar.from_ical(after.content)
    assert str(cancelled["METHOD"]) == "CANCEL"
    assert str(cancelled.walk("VEVENT")[0]["UID"]) == str(event["UID"])
    assert int(cancelled.walk("VEVENT")[0]["SEQUENCE"]) > int(event["SEQUENCE"])


def test_an_approval_whose_meeting_is_made_by_the_queue_mails_the_link(stack, staff):
    from localdev.graph_emulator import Fault

    # GIVEN Graph refuses the inline create once (503)
    stack.emulator.add_fault(Fault(operation="createOrGet", status=503, count=1))
    booking_id = staff.call("POST", "/v1/bookings", booking_body()).json()["id"]

    # WHEN it is approved: the booking is confirmed, the meeting left to the queue
    approved = staff.call("POST", f"/v1/bookings/{booking_id}/approve", {}).json()
    assert approved["booking"]["meetingLink"] is None

    # THEN the approval mails wait for the meeting, and carry its link
    assert settle(lambda: len(mails_for(stack, booking_id)) == 2)
    link = staff.call("GET", f"/v1/bookings/{booking_id}").json()["meetingLink"]
    assert link is not None
    for message in mails_for(stack, booking_id):
        text = message.get_body(preferencelist=("plain",)).get_content()
        assert f"Join Teams Meeting: {link}" in text


def test_the_branding_an_admin_sets_dresses_the_mail(stack, staff):
    admin = caller(stack, "admin-1", "admin")
    branding = {
        "displayName": "Acme Tutoring",
        "logoUrl": "https://cdn.example.com/logo.png",
        "accentColor": "#0a7b83",
        "replyTo": "help@acme.example",
        "contactLine": "Questions? help@acme.example",
        "footerText": "Acme Tutoring Ltd\n1 High Street",
    }
    try:
        # GIVEN an admin set the tenant's branding
        saved = admin.call("PUT", "/v1/teams-meetings/settings", {"branding": branding})
        assert saved.status_code == 200, saved.text
        assert admin.call("GET", "/v1/teams-meetings/settings").json()["branding"] == branding

        # WHEN a booking is approved
        booking_id = staff.call("POST", "/v1/bookings", booking_body()).json()["id"]
        staff.call("POST", f"/v1/bookings/{booking_id}/approve", {})
        assert settle(lambda: len(mails_for(stack, booking_id)) == 2)

        # THEN its mails reply to the tenant, and show its logo, colour and footer
        for message in mails_for(stack, booking_id):
            assert [a.addr_spec for a in message["Reply-To"].addresses] == ["help@acme.example"]
            assert message["From"].addresses[0].display_name == "Acme Tutoring"
            html = message.get_body(preferencelist=("html",)).get_content()
            assert '<img src="https://cdn.example.com/logo.png" alt="Acme Tutoring"' in html
            assert 'bgcolor="#0a7b83"' in html
            text = message.get_body(preferencelist=("plain",)).get_content()
            assert text.rstrip().endswith("Sent by Acme Tutoring")
    finally:
        cleared = admin.call("PUT", "/v1/teams-meetings/settings", {"branding": None})
        assert set(cleared.json()["branding"].values()) == {None}


def test_mail_is_in_the_participants_language_else_the_tenants(stack, staff):
    admin = caller(stack, "admin-1", "admin")
    # GIVEN a tenant whose default language is Austrian German
    saved = admin.call("PUT", "/v1/teams-meetings/settings", {"defaultLocale": "DE-at"})
    assert saved.status_code == 200, saved.text
    try:
        assert saved.json()["defaultLocale"] == "de-AT"
        assert admin.call("GET", "/v1/teams-meetings/settings").json()["defaultLocale"] == "de-AT"
        # AND a student who asked for British English, a tutor who said nothing
        body = booking_body()
        body["participants"][0]["locale"] = "en-GB"
        created = staff.call("POST", "/v1/bookings", body)
        assert created.status_code == 201, created.text
        booking = created.json()
        assert [p["locale"] for p in booking["participants"]] == ["en-GB", None]

        # WHEN it is approved
        staff.call("POST", f"/v1/bookings/{booking['id']}/approve", {})
        assert settle(lambda: len(mails_for(stack, booking["id"])) == 2)

        # THEN the student's mail is English and the tutor's German
        by_address = {m["To"].addresses[0].addr_spec: m for m in mails_for(stack, booking["id"])}
        student, tutor = by_address["student-1@example.com"], by_address["tutor-1@example.com"]
        assert student["Content-Language"] == "en"
        assert student["Subject"].startswith("Confirmed: Computer Science")
        assert tutor["Content-Language"] == "de"
        assert tutor["Subject"].startswith("Ihnen zugewiesen: Computer Science")
        text = tutor.get_body(preferencelist=("plain",)).get_content()
        assert "Ihnen wurde der Termin Computer Science zugewiesen." in text
        assert "An Teams-Besprechung teilnehmen: https://" in text
    finally:
        admin.call("PUT", "/v1/teams-meetings/settings", {"defaultLocale": None})
