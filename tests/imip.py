"""Reading a received mail as an iMIP invitation (RFC 6047), with Python's email package."""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import icalendar

from shared.domain.booking import BookingStatus, MeetingState
from shared.domain.notices import Notice, NoticeKind
from shared.mail.ics import Organizer, invite
from shared.mail.messages import OutgoingMail
from shared.mail.rendering import MailRenderer, recipients
from tests.builders import a_booking

NOW = datetime(2026, 12, 20, 9, 0, tzinfo=UTC)
JOIN = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_x%40thread.v2/0"


def an_approval_mail(sender: str, key_suffix: str | None = None) -> OutgoingMail:
    """The approval e-mail of a confirmed booking with its Teams link, from `sender`."""
    booking = a_booking(
        status=BookingStatus.CONFIRMED,
        meeting=MeetingState(wanted=True, meeting_id="m1", join_url=JOIN),
    )
    notice = Notice(NoticeKind.APPROVED, 1, 0, NOW)
    person = recipients(booking)[0]
    rendered = MailRenderer().render(booking, notice, person, "Tenant A")
    return OutgoingMail(
        key=f"tenant-a|{booking.booking_id}|1|{key_suffix or person.email}",
        sender=sender,
        sender_name="Tenant A",
        to=person.email,
        to_name=person.name,
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        invite=invite(
            booking,
            kind=NoticeKind.APPROVED,
            sequence=0,
            organizer=Organizer(sender, "Tenant A"),
            now=NOW,
        ),
        method="REQUEST",
        sent_at=NOW,
    )


@dataclass(frozen=True)
class Invitation:
    """What one received mail says as an invitation."""

    to: str
    subject: str
    method: str
    uid: str
    sequence: int


def read_imip(raw: bytes) -> Invitation:
    """Parse one mail with Python's email package and check its iMIP shape; what it invites to."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert message.get_content_type() == "multipart/mixed"
    alternative, attachment = message.iter_parts()
    assert alternative.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in alternative.iter_parts()] == [
        "text/plain",
        "text/html",
        "text/calendar",
    ]
    (*_, calendar_part) = alternative.iter_parts()
    assert calendar_part.get_content_disposition() is None  # an alternative, not a file
    assert calendar_part.get_param("charset") == "utf-8"
    assert attachment.get_content_type() == "application/ics"
    assert attachment.get_content_disposition() == "attachment"
    assert attachment.get_filename() == "invite.ics"
    # the same bytes twice
    invite: Any = calendar_part.get_payload(decode=True)
    assert invite == attachment.get_payload(decode=True)

    sender = message["From"].addresses[0].addr_spec
    (recipient,) = [a.addr_spec for a in message["To"].addresses]
    calendar: Any = icalendar.Calendar.from_ical(invite)
    method = str(calendar["METHOD"])
    assert calendar_part.get_param("method") == method
    (event,) = calendar.walk("VEVENT")
    assert str(event["ORGANIZER"]) == f"mailto:{sender}"
    assert f"mailto:{recipient}" in [str(a) for a in event.get("ATTENDEE")]
    return Invitation(
        recipient, str(message["Subject"]), method, str(event["UID"]), int(event["SEQUENCE"])
    )
