"""Mail in the participant's language: every shipped catalogue has exactly English's keys and
placeholders, every template renders in every language, dates and zones are Babel's (right
across a clock change), the recipient's locale wins over the tenant's, and a key a language
lacks is said in English."""

# ruff: noqa: RUF001 (the en dash is what CLDR and the catalogues write between two times)
from __future__ import annotations

import logging
import re
import string
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import icalendar
import pytest
import yaml
from babel.dates import parse_pattern
from babel.messages.pofile import read_po

from shared.auth.principal import Principal, Role
from shared.domain.attendance import (
    Attendance,
    AttendanceSource,
    LessonOutcome,
    ParticipantAttendance,
)
from shared.domain.booking import BookingStatus, MeetingState, Participant, ParticipantRole
from shared.domain.language import language_tag
from shared.domain.notices import Notice, NoticeKind
from shared.mail.ics import Organizer, invite
from shared.mail.rendering import MailRenderer, Recipient, template_for, when
from shared.mail.strings import (
    DEFAULT_LANGUAGE,
    LOCALES,
    Catalogues,
    Strings,
    language_for,
    shipped_languages,
)
from shared.services import teams_settings
from tests.builders import a_booking
from tests.mail_world import TENANT, mail_world
from tests.unit.test_mail_delivery import (
    a_pending_booking,
    approve,
    html_of,
    invite_of,
    text_of,
)

NOW = datetime(2026, 12, 20, 9, 0, tzinfo=UTC)
JOIN = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_abc%40thread.v2/0?context=%7b%7d"
RENDERER = MailRenderer()
LANGUAGES = shipped_languages()
ROLES = (ParticipantRole.STUDENT, ParticipantRole.TUTOR)


def entries(language: str, folder: Path = LOCALES) -> dict[str, str]:
    """Every message of a catalogue as written, translated or not."""
    path = folder / language / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as file:
        return {str(m.id): str(m.string) for m in read_po(file) if m.id}


def placeholders(pattern: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(pattern) if field is not None}


def catalogue_problems(english: dict[str, str], other: dict[str, str]) -> list[str]:
    """What keeps `other` from being a complete translation of `english`."""
    problems = [f"missing {key}" for key in sorted(english.keys() - other.keys())]
    problems += [f"extra {key}" for key in sorted(other.keys() - english.keys())]
    problems += [f"untranslated {key}" for key in sorted(k for k, v in other.items() if not v)]
    problems += [
        f"placeholders of {key}: {sorted(placeholders(other[key]))}"
        for key in sorted(english.keys() & other.keys())
        if other[key] and placeholders(other[key]) != placeholders(english[key])
    ]
    return problems


# --- the catalogues ------------------------------------------------------------------------


def test_english_and_german_are_shipped():
    assert LANGUAGES[0] == DEFAULT_LANGUAGE
    assert set(LANGUAGES) >= {"en", "de"}


@pytest.mark.parametrize("language", [lang for lang in LANGUAGES if lang != DEFAULT_LANGUAGE])
def test_every_shipped_catalogue_has_exactly_the_keys_and_placeholders_of_english(language):
    assert catalogue_problems(entries(DEFAULT_LANGUAGE), entries(language)) == []


def test_the_catalogue_check_finds_a_missing_key_an_extra_one_and_other_placeholders():
    english = {"greeting": "Hello {name},", "when": "When: {when}", "calendar": "Attached."}
    other = {"greeting": "Hallo {nom},", "calendar": "", "extra": "x"}

    assert catalogue_problems(english, other) == [
        "missing when",
        "extra extra",
        "untranslated calendar",
        "placeholders of greeting: ['nom']",
    ]


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_date_pattern_is_one_babel_reads(language):
    for key, pattern in entries(language).items():
        if key.startswith("time.pattern."):
            assert parse_pattern(pattern).format  # raises on a pattern CLDR cannot read
            assert "{" not in pattern


class RecordingCatalogues(Catalogues):
    """The shipped catalogues, noting every key the mail asks for."""

    def __init__(self) -> None:
        super().__init__(LOCALES)
        self.used: set[str] = set()

    def pattern(self, language: str, key: str) -> str:
        self.used.add(key)
        return super().pattern(language, key)


def test_every_key_english_has_is_one_the_mail_uses():
    # GIVEN every mail and invite there is: each kind, to each role, with and without a link,
    # on the same day and across a clock change and midnight
    catalogues = RecordingCatalogues()
    renderer = MailRenderer(catalogues)
    strings = Strings("en", catalogues)
    for kind in NoticeKind:
        for role in ParticipantRole:
            for link in (JOIN, None):
                shown = (booking_for(kind, link), BERLIN_OCTOBER, NEW_YORK_LATE, *no_shows(kind))
                for booking in shown:
                    person = Recipient("p@example.com", "Pat", role)
                    renderer.render(booking, Notice(kind, 1, 0, NOW), person, "Tenant A")
                    invite(
                        booking_for(kind, link),
                        kind=kind,
                        sequence=0,
                        organizer=Organizer("o@a.example"),
                        now=NOW,
                        strings=strings,
                    )

    # THEN English holds those keys and no other
    english = set(entries(DEFAULT_LANGUAGE))
    assert english - catalogues.used == set()
    assert catalogues.used - english == set()


# --- rendering in every language -----------------------------------------------------------


def confirmed(join_url: str | None, **changes: Any):
    meeting = MeetingState(
        wanted=True, meeting_id="m1" if join_url else None, join_url=join_url, synced_start=None
    )
    return a_booking(status=BookingStatus.CONFIRMED, meeting=meeting, **changes)


def booking_for(kind: NoticeKind, link: str | None):
    if kind.for_staff:
        return no_shows(kind)[0]  # after the lesson: no link to offer
    booking = confirmed(link)
    if kind.closing:
        booking = replace(booking, status=BookingStatus.CANCELLED, status_reason="Unwell")
    return booking


def no_shows(kind: NoticeKind) -> list[Any]:
    """For the staff's no-show mail: a completed lesson of each no-show outcome, one
    participant in the meeting for a while and the other never."""
    if not kind.for_staff:
        return []
    lesson = confirmed(None)
    first, second = (p.user_id for p in lesson.participants[:2])
    present = (
        ParticipantAttendance(first, joined=True, total_seconds=240),
        ParticipantAttendance(second),
    )
    return [
        replace(
            lesson,
            status=BookingStatus.COMPLETED,
            attendance=Attendance(outcome, AttendanceSource.REPORT, NOW, present),
        )
        for outcome in (
            LessonOutcome.STUDENT_NO_SHOW,
            LessonOutcome.TUTOR_NO_SHOW,
            LessonOutcome.NO_SHOW,
        )
    ]


def english_sentences() -> list[str]:
    """What the English mail says in its own words (names, links and dates left out)."""
    english = Strings("en")
    return [
        english("greeting", name="Pat").removesuffix("Pat,"),
        english("join.button"),
        english("join.pending"),
        english("calendar"),
        english("when", when="").strip(),
        english("reason", reason="").strip(),
        *(english(f"intro.{w}", subject="") for w in _WORDINGS),
    ]


_WORDINGS = [
    "appointment-request-approved-client",
    "appointment-assigned",
    "payment-confirmed",
    "appointment-rescheduled",
    "appointment-cancelled",
    "appointment-declined",
    "appointment-declined-host",
    "appointment-refunded",
    "meeting-link-changed",
    "meeting-link-ready",
]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", list(NoticeKind))
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("link", [JOIN, None], ids=["link", "no-link"])
def test_every_template_renders_in_every_language(language, kind, role, link):
    # GIVEN a booking and a recipient who asked for `language`
    booking = booking_for(kind, link)
    person = Recipient("p@example.com", "Pat", role, language)

    # WHEN the notice is rendered for them
    mail = RENDERER.render(booking, Notice(kind, 1, 0, NOW), person, "Tenant A")

    # THEN it is in that language throughout: subject, greeting, intro, the link's wording
    t = Strings(language)
    assert mail.language == language
    assert f'<html lang="{language}" ' in mail.html
    assert t("greeting", name="Pat") in mail.text
    assert t("greeting", name="Pat") in mail.html
    subject_key = mail.subject.split(":", 1)[0]
    assert t.pattern(f"subject.{_wording(kind, role)}").startswith(subject_key)
    assert t(f"intro.{_wording(kind, role)}", subject="Computer Science") in mail.text
    assert t("when", when=when(booking, t)) in mail.text
    offers_link = link is not None and not kind.closing and not kind.for_staff
    assert (t("join.text", url=JOIN) in mail.text) is offers_link
    assert (f">{t('join.button')}</a>" in mail.html) is offers_link
    if kind.closing:
        assert t("reason", reason="Unwell") in mail.text
    # AND no English is left in another language's mail but names and links
    if language != DEFAULT_LANGUAGE:
        for sentence in english_sentences():
            assert sentence not in mail.text, sentence
            assert sentence not in mail.html, sentence


def _wording(kind: NoticeKind, role: ParticipantRole) -> str:
    if kind is NoticeKind.DECLINED:
        return (
            "appointment-declined-host"
            if role is ParticipantRole.TUTOR
            else ("appointment-declined")
        )
    return {
        NoticeKind.REFUNDED: "appointment-refunded",
        NoticeKind.LINK_READY: "meeting-link-ready",
    }.get(kind, template_for(kind, role))


def test_the_german_approval_reads_as_german():
    booking = confirmed(JOIN, start=datetime(2026, 12, 4, 9, tzinfo=UTC), time_zone="Europe/Berlin")
    booking = replace(booking, end=booking.start + timedelta(hours=1))
    person = Recipient("s@example.com", "Sam Student", ParticipantRole.STUDENT, "de-AT")

    mail = RENDERER.render(booking, Notice(NoticeKind.APPROVED, 1, 0, NOW), person, "Tenant A")

    assert mail.subject == "Bestätigt: Computer Science, 4. Dezember 2026"
    assert mail.text.startswith(
        "Guten Tag Sam Student,\n\nIhre Terminanfrage für Computer Science wurde bestätigt.\n\n"
        "Wann: Freitag, 4. Dezember 2026, 10:00–11:00 Uhr (Europe/Berlin, MEZ)\n"
    )
    assert f"An Teams-Besprechung teilnehmen: {JOIN}" in mail.text
    assert "Die Kalendereinladung ist beigefügt (invite.ics)." in mail.text


def test_the_invite_is_in_the_mails_language():
    booking = confirmed(JOIN)

    raw = invite(
        booking,
        kind=NoticeKind.APPROVED,
        sequence=0,
        organizer=Organizer("organizer@a.example"),
        now=NOW,
        strings=Strings("de"),
    )

    calendar: Any = icalendar.Calendar.from_ical(raw)
    (event,) = calendar.walk("VEVENT")
    assert str(event["LOCATION"]) == "Microsoft Teams-Besprechung"
    assert str(event["DESCRIPTION"]) == f"An Teams-Besprechung teilnehmen: {JOIN}"
    (alarm,) = event.walk("VALARM")
    assert str(alarm["DESCRIPTION"]) == "Computer Science beginnt in 15 Minuten"


# --- dates across a clock change -----------------------------------------------------------

# Berlin leaves summer time on the last Sunday of October (03:00 CEST → 02:00 CET, 01:00 UTC);
# New York starts it on the second Sunday of March (02:00 EST → 03:00 EDT, 07:00 UTC).
BERLIN_OCTOBER = a_booking(
    time_zone="Europe/Berlin",
    start=datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
    end=datetime(2026, 10, 25, 1, 30, tzinfo=UTC),
)
NEW_YORK_LATE = a_booking(
    time_zone="America/New_York",
    start=datetime(2026, 12, 2, 3, 0, tzinfo=UTC),
    end=datetime(2026, 12, 2, 6, 0, tzinfo=UTC),
)
NEW_YORK_MARCH = a_booking(
    time_zone="America/New_York",
    start=datetime(2027, 3, 14, 6, 30, tzinfo=UTC),
    end=datetime(2027, 3, 14, 7, 30, tzinfo=UTC),
)
SPANS = [
    (
        BERLIN_OCTOBER,
        "en",
        "Sunday 25 October 2026, 02:30 CEST – 02:30 CET (Europe/Berlin)",
    ),
    (
        BERLIN_OCTOBER,
        "de",
        "Sonntag, 25. Oktober 2026, 02:30 Uhr MESZ bis 02:30 Uhr MEZ (Europe/Berlin)",
    ),
    (
        NEW_YORK_MARCH,
        "en",
        "Sunday 14 March 2027, 01:30 GMT-05:00 – 03:30 GMT-04:00 (America/New_York)",
    ),
    (
        NEW_YORK_MARCH,
        "de",
        "Sonntag, 14. März 2027, 01:30 Uhr GMT-05:00 bis 03:30 Uhr GMT-04:00 (America/New_York)",
    ),
    (
        NEW_YORK_LATE,
        "de",
        "Dienstag, 1. Dezember 2026, 22:00 Uhr GMT-05:00 bis 2. Dezember 2026, 01:00 Uhr "
        "GMT-05:00 (America/New_York)",
    ),
    (
        a_booking(
            time_zone="Europe/London",
            start=datetime(2026, 7, 1, 8, 0, tzinfo=UTC),
            end=datetime(2026, 7, 1, 9, 0, tzinfo=UTC),
        ),
        "de",
        "Mittwoch, 1. Juli 2026, 09:00–10:00 Uhr (Europe/London, GMT+01:00)",
    ),
    (
        a_booking(
            time_zone="Europe/London",
            start=datetime(2026, 7, 1, 8, 0, tzinfo=UTC),
            end=datetime(2026, 7, 1, 9, 0, tzinfo=UTC),
        ),
        "en",
        "Wednesday 1 July 2026, 09:00–10:00 (Europe/London, BST)",
    ),
]


@pytest.mark.parametrize(("booking", "language", "expected"), SPANS)
def test_times_are_written_by_babel_in_the_language_and_the_bookings_zone(
    booking, language, expected
):
    assert when(booking, Strings(language)) == expected


# --- which language ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("recipient", "tenant", "expected"),
    [
        ("de", None, "de"),
        ("de-AT", None, "de"),
        ("DE-at", "en", "de"),
        ("en-GB", "de", "en"),
        ("fr", "de", "de"),  # not shipped: the tenant's
        ("fr", None, "en"),  # neither: English
        (None, "de-CH", "de"),
        (None, None, "en"),
        ("de_AT", None, "en"),  # not a language tag
        ("x-klingon", "de", "de"),
    ],
)
def test_the_recipients_locale_wins_then_the_tenants_then_english(recipient, tenant, expected):
    assert language_for(recipient, tenant) == expected
    person = Recipient("p@example.com", "Pat", ParticipantRole.STUDENT, recipient)
    mail = RENDERER.render(
        confirmed(JOIN), Notice(NoticeKind.APPROVED, 1, 0, NOW), person, "", default_locale=tenant
    )
    assert mail.language == expected


WELL_FORMED = [
    ("de", "de"),
    ("de-AT", "de-AT"),
    ("EN-gb", "en-GB"),
    ("zh-hant-tw", "zh-Hant-TW"),
    ("es-419", "es-419"),
    ("sl-rozaj-biske", "sl-rozaj-biske"),
    ("de-CH-x-phonebk", "de-CH-x-phonebk"),
    ("en-a-bbb-x-a-ccc", "en-a-bbb-x-a-ccc"),
    ("x-whatever", "x-whatever"),
]
NOT_TAGS = [
    *("", "d", "deutsch-land-x", "de_AT", "de-", "-de", "de--AT", "de AT", "dé", "12"),
    *("en-US-", "a" * 9, "en-" + "-".join(["abcde"] * 10), "de\n", "<script>"),
]


def test_the_contract_admits_exactly_the_tags_the_api_accepts():
    spec = yaml.safe_load((LOCALES.parents[2] / "docs" / "openapi.yaml").read_text())
    schema = spec["components"]["schemas"]["LanguageTag"]
    # JSON Schema patterns are ECMA-262, whose $ is the end of the text; Python's also
    # matches before a final newline.
    contract = re.compile(schema["pattern"].removesuffix("$") + r"\Z")

    def admitted(text: str) -> bool:
        return len(text) <= schema["maxLength"] and contract.search(text) is not None

    for given, _ in WELL_FORMED:
        assert admitted(given), given
    for given in NOT_TAGS:
        assert not admitted(given), given


@pytest.mark.parametrize(
    ("given", "canonical"),
    WELL_FORMED,
)
def test_well_formed_language_tags_are_kept_in_canonical_case(given, canonical):
    assert language_tag(given) == canonical


@pytest.mark.parametrize("given", NOT_TAGS)
def test_anything_else_is_not_a_language_tag(given):
    assert language_tag(given) is None


# --- a key a language lacks ----------------------------------------------------------------


def test_a_key_a_language_lacks_is_said_in_english_and_logged_without_values(tmp_path, caplog):
    # GIVEN a folder of catalogues where German lacks one key and has another only as fuzzy
    for language in ("en", "de"):
        (tmp_path / language / "LC_MESSAGES").mkdir(parents=True)
    (tmp_path / "en" / "LC_MESSAGES" / "messages.po").write_text(
        'msgid "greeting"\nmsgstr "Hello {name},"\n\n'
        'msgid "calendar"\nmsgstr "The invite is attached."\n\n'
        'msgid "when"\nmsgstr "When: {when}"\n',
        encoding="utf-8",
    )
    (tmp_path / "de" / "LC_MESSAGES" / "messages.po").write_text(
        'msgid "greeting"\nmsgstr "Guten Tag {name},"\n\n'
        '#, fuzzy\nmsgid "when"\nmsgstr "Wann ungefähr: {when}"\n',
        encoding="utf-8",
    )
    catalogues = Catalogues(tmp_path)
    german = Strings("de", catalogues)

    # WHEN the mail asks for them
    with caplog.at_level(logging.WARNING, logger="meetings.mail"):
        texts = [
            german("greeting", name="Sam Secret"),
            german("calendar"),
            german("when", when="x"),
        ]
        german("calendar")

    # THEN the missing and the fuzzy one are English, the others German
    assert texts == ["Guten Tag Sam Secret,", "The invite is attached.", "When: x"]
    # AND each gap is logged once, by key and language, with nothing it was filled with
    logged = [r.getMessage() for r in caplog.records]
    assert logged == [
        "mail text calendar has no de translation; English used",
        "mail text when has no de translation; English used",
    ]
    assert "Sam Secret" not in caplog.text
    # AND a key English lacks is a bug
    with pytest.raises(KeyError):
        german("nothing-like-it")


def test_an_unshipped_language_is_english():
    strings = Strings("fr-CA")

    assert strings.language == "en"
    assert strings("greeting", name="Sam") == "Hello Sam,"


# --- through the mail worker ---------------------------------------------------------------


def test_each_recipient_gets_the_mail_in_their_language_else_the_tenants(tmp_path: Path):
    with mail_world(tmp_path) as mw:
        # GIVEN a tenant whose default is German, a student who asked for English (en-GB)
        # and a tutor who set no locale
        admin = Principal("admin-1", TENANT, frozenset({Role.ADMIN}))
        teams_settings.update_settings(
            admin,
            teams_settings.SettingsChange(default_locale="de"),
            mw.deps.tenants,
            mw.world.clock(),
        )
        booking_id = a_pending_booking(
            mw,
            participants=(
                Participant(
                    "student-1", ParticipantRole.STUDENT, "student@example.com", "Sam", "en-GB"
                ),
                Participant("tutor-1", ParticipantRole.TUTOR, "tutor@example.com", "Tia"),
            ),
        )

        # WHEN the booking is approved and its mail goes out
        approve(mw, booking_id)
        mw.drain()

        # THEN the student's is English and the tutor's German: text, html lang, header, invite
        mails = {m["To"].addresses[0].addr_spec: m for m in mw.emls()}
        student, tutor = mails["student@example.com"], mails["tutor@example.com"]
        assert student["Content-Language"] == "en"
        assert student["Subject"].startswith("Confirmed: Computer Science")
        assert '<html lang="en" ' in html_of(student)
        assert tutor["Content-Language"] == "de"
        assert tutor["Subject"].startswith("Ihnen zugewiesen: Computer Science")
        assert '<html lang="de" ' in html_of(tutor)
        assert "Ihnen wurde der Termin Computer Science zugewiesen." in text_of(tutor)
        locations = {
            to: str(icalendar.Calendar.from_ical(invite_of(m)).walk("VEVENT")[0]["LOCATION"])
            for to, m in mails.items()
        }
        assert locations == {
            "student@example.com": "Microsoft Teams Meeting",
            "tutor@example.com": "Microsoft Teams-Besprechung",
        }


def test_the_calendar_route_speaks_the_callers_language_else_the_tenants():
    from shared.services.calendar import calendar_invite

    with mail_world() as mw:
        # GIVEN a German tenant and a confirmed booking whose student asked for English
        admin = Principal("admin-1", TENANT, frozenset({Role.ADMIN}))
        teams_settings.update_settings(
            admin,
            teams_settings.SettingsChange(default_locale="de"),
            mw.deps.tenants,
            mw.world.clock(),
        )
        booking_id = a_pending_booking(
            mw,
            participants=(
                Participant("student-1", ParticipantRole.STUDENT, "s@example.com", "Sam", "en"),
                Participant("tutor-1", ParticipantRole.TUTOR, "t@example.com", "Tia"),
            ),
        )
        approve(mw, booking_id)
        mw.world.drain()

        def location(user: str, role: Role) -> str:
            raw = calendar_invite(Principal(user, TENANT, frozenset({role})), booking_id, mw.deps)
            return str(icalendar.Calendar.from_ical(raw).walk("VEVENT")[0]["LOCATION"])

        # WHEN each fetches the invite, THEN the student's is English, the others' German
        assert location("student-1", Role.STUDENT) == "Microsoft Teams Meeting"
        assert location("tutor-1", Role.TUTOR) == "Microsoft Teams-Besprechung"
        assert location("admin-1", Role.ADMIN) == "Microsoft Teams-Besprechung"
