"""Every template renders with and without a join link, and participant text can neither add
markup to the HTML part nor a header to the message, however hostile or long."""

from __future__ import annotations

import email
import email.policy
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import icalendar
import pytest

from localdev.mailbox import invite_parts
from shared.domain import notices
from shared.domain.booking import BookingStatus, MeetingState, Participant, ParticipantRole
from shared.domain.notices import Notice, NoticeKind
from shared.mail.ics import Organizer, invite
from shared.mail.messages import OutgoingMail, to_mime
from shared.mail.rendering import (
    MailRenderer,
    Recipient,
    recipients,
    template_for,
)
from shared.mail.strings import ENGLISH, Strings
from tests.builders import a_booking

NOW = datetime(2026, 12, 20, 9, 0, tzinfo=UTC)
JOIN = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_abc%40thread.v2/0?context=%7b%7d"
RENDERER = MailRenderer()
HOSTILE = [
    '<script>alert("x")</script><img src=x onerror=alert(1)>',
    'Sam"\r\nBcc: victim@evil.example\r\n\r\n<b>body</b>',
    "Tab\there\x0bvertical\x1bescape\u202eright-to-left",
    "&lt;already escaped&gt; {{ 7*7 }} {% raw %}",
    # format strings in data are text, never formatted: no attribute walk, no padding to GiB
    "{subject:x>999999999} {0.__class__} {name!r} %s%s%n ${x}",
    "x" * 5000,
]
KINDS_AND_ROLES = [
    (kind, role) for kind in NoticeKind for role in (ParticipantRole.STUDENT, ParticipantRole.TUTOR)
]


def confirmed(join_url: str | None = JOIN, **changes):
    meeting = MeetingState(
        wanted=True,
        meeting_id="m1" if join_url else None,
        join_url=join_url,
        synced_start=None,
    )
    return a_booking(status=BookingStatus.CONFIRMED, meeting=meeting, **changes)


def notice(kind: NoticeKind) -> Notice:
    return Notice(kind, number=1, sequence=0, recorded_at=NOW)


def student(name: str | None = "Sam Student") -> Recipient:
    return Recipient("student@example.com", name, ParticipantRole.STUDENT)


@pytest.mark.parametrize(("kind", "role"), KINDS_AND_ROLES)
@pytest.mark.parametrize("link", [JOIN, None])
def test_every_template_renders_with_and_without_a_link(kind, role, link):
    booking = confirmed(link)
    if kind.closing:
        booking = replace(booking, status=BookingStatus.CANCELLED, status_reason="Unwell")
    person = Recipient("p@example.com", "Pat", role)

    mail = RENDERER.render(booking, notice(kind), person, "Tenant A")

    assert mail.template == template_for(kind, role)
    assert "Hello Pat," in mail.text
    assert "Hello Pat," in mail.html
    assert "(Europe/London, GMT)" in mail.text
    offers_link = link is not None and not kind.closing and not kind.for_staff
    assert (f"Join Teams Meeting: {JOIN}" in mail.text) is offers_link
    assert (">Join Teams Meeting</a>" in mail.html) is offers_link
    assert ("Join Teams Meeting" in mail.html) is offers_link
    if kind.closing:
        assert "Reason: Unwell" in mail.text


def test_the_client_gets_the_approval_and_the_tutor_the_assignment():
    assert template_for(NoticeKind.APPROVED, ParticipantRole.CLIENT) == (
        "appointment-request-approved-client"
    )
    assert template_for(NoticeKind.APPROVED, ParticipantRole.STUDENT) == (
        "appointment-request-approved-client"
    )
    assert template_for(NoticeKind.APPROVED, ParticipantRole.TUTOR) == "appointment-assigned"
    assert template_for(NoticeKind.PAYMENT_CONFIRMED, ParticipantRole.TUTOR) == "payment-confirmed"


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_participant_text_cannot_add_markup_or_headers(text):
    booking = confirmed(
        subject=text,
        level=text,
        status_reason=text,
        participants=(
            Participant("s1", ParticipantRole.STUDENT, "student@example.com", text),
            Participant("t1", ParticipantRole.TUTOR, "tutor@example.com", "Tia"),
        ),
    )
    for kind in (NoticeKind.APPROVED, NoticeKind.CANCELLED):
        subject_booking = (
            booking if not kind.closing else replace(booking, status=BookingStatus.CANCELLED)
        )
        rendered = RENDERER.render(subject_booking, notice(kind), student(text), "Tenant A")

        # no markup from the participant: the only tags are the template's own
        assert "<script" not in rendered.html
        assert "<img" not in rendered.html
        assert "<b>body</b>" not in rendered.html
        assert "49" not in rendered.html  # templates in data are not evaluated
        # nothing grows beyond the template and the text given (no padding, no repetition)
        assert len(rendered.text) < 10_000 + 3 * len(text)
        assert len(rendered.html) < 20_000 + 6 * len(text)
        assert "x" * 1000 not in rendered.text or len(text) >= 1000
        # the subject is one line, cut to a sane length
        assert "\n" not in rendered.subject
        assert "\r" not in rendered.subject
        assert len(rendered.subject) <= 200

        mail = OutgoingMail(
            key="tenant-a|b|1|x",
            sender="organizer@a.example",
            sender_name=text,
            to="student@example.com",
            to_name=text,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            invite=invite(
                subject_booking,
                kind=kind,
                sequence=0,
                organizer=Organizer("organizer@a.example", text),
                now=NOW,
            ),
            method="CANCEL" if kind.closing else "REQUEST",
            sent_at=NOW,
        )
        raw = to_mime(mail).as_bytes()
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        # exactly the headers we wrote: nothing smuggled in through a name or a subject
        assert sorted(parsed.keys()) == sorted(
            ["From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type"]
        )
        assert [a.addr_spec for a in parsed["To"].addresses] == ["student@example.com"]
        assert parsed["Bcc"] is None
        # and the invite still parses, one event, attendees by address
        (_, part) = invite_parts(parsed)
        assert part is not None
        payload: Any = part.get_payload(decode=True)
        calendar: Any = icalendar.Calendar.from_ical(payload)
        (event,) = calendar.walk("VEVENT")
        assert "\n" not in str(event["SUMMARY"])
        assert "\n" not in str(parsed["Subject"])
        assert "\r" not in parsed["To"].addresses[0].display_name


def test_a_join_link_that_is_not_https_is_never_offered():
    booking = confirmed("javascript:alert(1)")

    rendered = RENDERER.render(booking, notice(NoticeKind.APPROVED), student(), "Tenant A")

    assert "javascript:" not in rendered.html
    assert "javascript:" not in rendered.text


def test_recipients_are_the_participants_once_per_address():
    booking = a_booking(
        participants=(
            Participant("s1", ParticipantRole.STUDENT, "Same@example.com", "A"),
            Participant("p1", ParticipantRole.PARENT, "same@example.com", "B"),
            Participant("t1", ParticipantRole.TUTOR, "tutor@example.com", None),
        )
    )

    assert [r.email for r in recipients(booking)] == ["Same@example.com", "tutor@example.com"]


def test_every_string_the_templates_name_exists_and_strings_are_one_table():
    # Another language is one more table with the same keys.
    strings = Strings("fr")  # unknown: falls back to English rather than failing
    assert strings.language == "en"
    for kind in NoticeKind:
        for role in ParticipantRole:
            assert f"subject.{template_for(kind, role)}" in ENGLISH


def test_a_payment_confirmation_is_owed_to_student_and_tutor_with_the_next_sequence():
    # GIVEN a booking whose approval invite went out (sequence 0)
    booking = notices.requested(a_booking(), NoticeKind.APPROVED, now=NOW)

    # WHEN the payment transition asks for its notice
    paid = notices.requested(
        replace(booking, status=BookingStatus.CONFIRMED), NoticeKind.PAYMENT_CONFIRMED, now=NOW
    )

    # THEN it is pending behind the approval, with the next number and SEQUENCE
    (_first, second) = paid.mail.pending
    assert (second.kind, second.number, second.sequence) == (NoticeKind.PAYMENT_CONFIRMED, 2, 1)
    assert paid.mail.invites == 2
    assert paid.mail.current_sequence == 1
    templates = {template_for(second.kind, r.role) for r in recipients(paid)}
    assert templates == {"payment-confirmed"}
    rendered = RENDERER.render(confirmed(), second, student(), "Tenant A")
    assert rendered.subject.startswith("Payment received: Computer Science")


def test_the_current_invite_of_a_request_not_yet_approved_is_tentative():
    from shared.mail.ics import current_invite

    raw = current_invite(a_booking(), Organizer("organizer@a.example"), NOW)

    calendar: Any = icalendar.Calendar.from_ical(raw)
    (event,) = calendar.walk("VEVENT")
    assert str(calendar["METHOD"]) == "REQUEST"
    assert str(event["STATUS"]) == "TENTATIVE"
    assert int(event["SEQUENCE"]) == 0
    assert "URL" not in event
