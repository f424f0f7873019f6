"""Calendar invites (RFC 5545, with icalendar): one event per booking, updated in place.

The `UID` is stable per booking, the `SEQUENCE` grows with every invite issued (the booking's
`mail.invites`), so calendars replace the earlier event: `METHOD:REQUEST` for an approval, a
payment or a new time or link, `METHOD:CANCEL` (same UID) when the booking is cancelled or
declined. Times are UTC; icalendar folds lines at 75 octets.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared.domain.booking import Booking, BookingStatus
from shared.domain.notices import NoticeKind
from shared.mail.rendering import join_url_of, one_line, recipients
from shared.mail.strings import Strings

PRODUCT_ID = "-//Meetings service//Bookings//EN"
REMINDER = timedelta(minutes=15)


@dataclass(frozen=True)
class Organizer:
    email: str
    name: str | None = None


def uid_of(booking: Booking) -> str:
    return f"{booking.booking_id}.{booking.tenant_id}@meetings-service"


def invite(
    booking: Booking,
    *,
    kind: NoticeKind,
    sequence: int,
    organizer: Organizer,
    now: datetime,
    strings: Strings | None = None,
) -> bytes:
    """The invite for `booking` as it is now, as notice `kind` sends it."""
    from icalendar import Alarm, Calendar, Event, vCalAddress, vText

    t = strings or Strings()
    cancel = kind.closing
    calendar = Calendar()
    calendar.add("prodid", PRODUCT_ID)
    calendar.add("version", "2.0")
    calendar.add("method", "CANCEL" if cancel else "REQUEST")

    event = Event()
    event.add("uid", uid_of(booking))
    event.add("sequence", sequence)
    event.add("dtstamp", now.astimezone(UTC))
    event.add("dtstart", booking.start.astimezone(UTC))
    event.add("dtend", booking.end.astimezone(UTC))
    summary = one_line(booking.subject)
    event.add("summary", summary)
    # A request not yet approved (the calendar route serves it too) is only tentative.
    event.add("status", "CANCELLED" if cancel else ("CONFIRMED" if booking.live else "TENTATIVE"))
    join_url = join_url_of(booking, kind)
    if join_url:
        event.add("location", t("ics.location"))
        event.add("url", join_url)
        event.add("description", t("join.text", url=join_url))
        event.add("x-microsoft-skypeteamsmeetingurl", join_url)
    address = vCalAddress(f"mailto:{organizer.email}")
    if organizer.name:
        address.params["cn"] = vText(one_line(organizer.name, 100))
    event.add("organizer", address)
    for person in recipients(booking):
        attendee = vCalAddress(f"mailto:{person.email}")
        if person.name:
            attendee.params["cn"] = vText(one_line(person.name, 100))
        attendee.params["role"] = "REQ-PARTICIPANT"
        attendee.params["partstat"] = "NEEDS-ACTION"
        attendee.params["rsvp"] = "TRUE"
        event.add("attendee", attendee, encode=False)
    if not cancel:
        alarm = Alarm()
        alarm.add("action", "DISPLAY")
        alarm.add("trigger", -REMINDER)
        alarm.add("description", t("ics.alarm", subject=summary))
        event.add_component(alarm)
    calendar.add_component(event)
    return bytes(calendar.to_ical())


def current_invite(
    booking: Booking, organizer: Organizer, now: datetime, strings: Strings | None = None
) -> bytes:
    """What `GET …/calendar.ics` returns: the newest invite the booking issued (or would
    issue), a cancellation once it is closed; its text in `strings`' language."""
    if booking.live or booking.status is BookingStatus.PENDING:
        kind = NoticeKind.APPROVED
    else:
        kind = NoticeKind.CANCELLED
    return invite(
        booking,
        kind=kind,
        sequence=booking.mail.current_sequence,
        organizer=organizer,
        now=now,
        strings=strings,
    )
