"""Each recipient's mails, in the order Graph sendMail took them (the emulator's record), as
what they tell: the subject, and the invite's METHOD, SEQUENCE, times and join link."""

from __future__ import annotations

import base64
import email
import email.policy
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Any

import icalendar

from localdev.graph_emulator import GraphEmulator
from localdev.mailbox import invite_parts


@dataclass(frozen=True)
class Received:
    subject: str
    method: str
    sequence: int
    start: datetime
    end: datetime
    link: str | None

    @property
    def headline(self) -> str:
        """The subject's first words: "Confirmed", "New time", "Cancelled", …"""
        return self.subject.split(":")[0]

    @property
    def view(self) -> tuple[str, datetime, datetime, str | None]:
        """What the recipient's calendar holds after this mail."""
        return (self.method, self.start, self.end, self.link)


def received(emulator: GraphEmulator) -> dict[str, list[Received]]:
    story: dict[str, list[Received]] = {}
    for sent in emulator.mail:
        raw = base64.b64decode(sent["mime"])
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        alternative, attachment = invite_parts(message)
        assert alternative is not None
        assert attachment is not None
        ics: Any = attachment.get_payload(decode=True)
        assert isinstance(ics, bytes)
        assert alternative.get_payload(decode=True) == ics
        calendar: Any = icalendar.Calendar.from_ical(ics)
        (event,) = calendar.walk("VEVENT")
        link = event.get("X-MICROSOFT-SKYPETEAMSMEETINGURL")
        (to,) = message["To"].addresses
        story.setdefault(to.addr_spec, []).append(
            Received(
                subject=str(message["Subject"]),
                method=str(calendar["METHOD"]),
                sequence=int(event["SEQUENCE"]),
                start=event.decoded("DTSTART"),
                end=event.decoded("DTEND"),
                link=None if link is None else str(link),
            )
        )
    return story
