"""Every sentence a participant reads, in one place per language. Templates name keys only, so
another language is one more mapping here, not another set of templates.

Values are `str.format` patterns; what they are filled with (a subject, a name) is participant
text, escaped by the HTML templates after formatting, like any other value.
"""

from __future__ import annotations

from collections.abc import Mapping

ENGLISH: Mapping[str, str] = {
    # subjects (one header line each)
    "subject.appointment-request-approved-client": "Confirmed: {subject}, {date}",
    "subject.appointment-assigned": "Assigned to you: {subject}, {date}",
    "subject.payment-confirmed": "Payment received: {subject}, {date}",
    "subject.appointment-rescheduled": "New time: {subject}, {date}",
    "subject.appointment-cancelled": "Cancelled: {subject}, {date}",
    "subject.appointment-declined": "Not approved: {subject}, {date}",
    "subject.appointment-declined-host": "Not approved: {subject}, {date}",
    "subject.appointment-refunded": "Refunded and cancelled: {subject}, {date}",
    "subject.meeting-link-changed": "New meeting link: {subject}, {date}",
    "subject.meeting-link-ready": "Meeting link: {subject}, {date}",
    # bodies
    "greeting": "Hello {name},",
    "intro.appointment-request-approved-client": "Your appointment request for {subject} has "
    "been approved.",
    "intro.appointment-assigned": "You have been assigned the appointment {subject}.",
    "intro.payment-confirmed": "We have received the payment for {subject}; the booking is "
    "confirmed.",
    "intro.appointment-rescheduled": "{subject} has moved to a new time. The calendar invite "
    "attached replaces the earlier one.",
    "intro.appointment-cancelled": "{subject} has been cancelled. The calendar invite attached "
    "removes it from your calendar.",
    "intro.appointment-declined": "Your appointment request for {subject} could not be approved.",
    "intro.appointment-declined-host": "The appointment request for {subject} was not approved, "
    "so it will not take place.",
    "intro.appointment-refunded": "The payment for {subject} has been refunded and the booking "
    "cancelled.",
    "intro.meeting-link-changed": "The Teams meeting for {subject} had to be set up again, so it "
    "has a new link. The link you had before no longer works.",
    "intro.meeting-link-ready": "The Teams meeting for {subject} is ready. Here is its link; "
    "the calendar invite attached adds it to your calendar.",
    "when": "When: {when}",
    "reason": "Reason: {reason}",
    "join.button": "Join Teams Meeting",
    "join.text": "Join Teams Meeting: {url}",
    "join.pending": "The Teams meeting link is not ready yet; you will get it by e-mail as "
    "soon as it is.",
    "join.fallback": "If the button does not work, copy this link into your browser:",
    "calendar": "The calendar invite is attached (invite.ics).",
    "signature": "{organization}",
    "footer.sent-by": "Sent by {organization}",
    "time.range": "{weekday} {day} {month} {year}, {start}\u2013{end} ({zone}, {abbreviation})",
    "time.short": "{day} {month} {year}",
    "weekdays": "Monday,Tuesday,Wednesday,Thursday,Friday,Saturday,Sunday",
    "months": "January,February,March,April,May,June,July,August,September,October,November,"
    "December",
    # the invite itself
    "ics.location": "Microsoft Teams Meeting",
    "ics.alarm": "{subject} starts in 15 minutes",
}

LANGUAGES: Mapping[str, Mapping[str, str]] = {"en": ENGLISH}
DEFAULT_LANGUAGE = "en"


class Strings:
    """The strings of one language; an unknown key is a bug, so it raises."""

    def __init__(self, language: str = DEFAULT_LANGUAGE) -> None:
        self.language = language if language in LANGUAGES else DEFAULT_LANGUAGE
        self._table = LANGUAGES[self.language]

    def __call__(self, key: str, **values: object) -> str:
        return self._table[key].format(**values)

    def names(self, key: str) -> list[str]:
        return self._table[key].split(",")
