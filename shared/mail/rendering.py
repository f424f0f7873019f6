"""E-mails rendered from a booking's latest state with jinja2: an HTML and a plain-text part per
template, every value autoescaped in HTML, every header value one safe line.

Participant text (subjects, names, reasons) is data: HTML escapes it, and what goes into a
header (the subject line, display names) is cut to one line without control characters, so it
can neither add markup nor add a header. The tenant's branding is data too, and checked again
here: a logo that is not an https URL is left out, an accent that is not a colour is the default.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.domain.booking import Booking, ParticipantRole
from shared.domain.branding import (
    DEFAULT_ACCENT,
    MAX_CONTACT_LINE_CHARS,
    MAX_FOOTER_TEXT_CHARS,
    Branding,
    is_color,
    is_logo_url,
)
from shared.domain.notices import Notice, NoticeKind
from shared.mail.strings import CATALOGUES, DEFAULT_LANGUAGE, Catalogues, Strings

if TYPE_CHECKING:
    import jinja2

TEMPLATES = Path(__file__).parent / "templates"
MAX_HEADER_CHARS = 200
MAX_NAME_CHARS = 100

# Who hosts the appointment (gets the assignment) rather than attends it (gets the approval).
HOSTS = (ParticipantRole.TUTOR, ParticipantRole.STAFF)

_TEMPLATE_OF_KIND = {
    NoticeKind.PAYMENT_CONFIRMED: "payment-confirmed",
    NoticeKind.RESCHEDULED: "appointment-rescheduled",
    NoticeKind.CANCELLED: "appointment-cancelled",
    NoticeKind.DECLINED: "appointment-cancelled",
    NoticeKind.REFUNDED: "appointment-cancelled",
    NoticeKind.LINK_CHANGED: "meeting-link-changed",
    NoticeKind.LINK_READY: "meeting-link-changed",
    NoticeKind.REMINDER: "appointment-reminder",
}
# The cancellation template says which of the three it was.
_WORDING_OF_KIND = {
    NoticeKind.DECLINED: "appointment-declined",
    NoticeKind.REFUNDED: "appointment-refunded",
    NoticeKind.LINK_READY: "meeting-link-ready",
}


@dataclass(frozen=True)
class Recipient:
    email: str
    name: str | None
    role: ParticipantRole
    locale: str | None = None  # the language tag the participant asked for, if any


@dataclass(frozen=True)
class Look:
    """What the layout shows of the tenant: its name (the logo's alt text), logo, colours and
    footer, every value checked and cut to size."""

    name: str
    logo_url: str | None
    accent: str  # #rrggbb
    on_accent: str  # the button's text colour, readable on the accent
    contact_line: str
    footer_lines: tuple[str, ...]


@dataclass(frozen=True)
class RenderedMail:
    template: str
    subject: str
    text: str
    html: str
    language: str = DEFAULT_LANGUAGE  # the shipped language it is written in ("en", "de")


def recipients(booking: Booking) -> list[Recipient]:
    """Everyone on the booking, once per address (the assignee is told when a participant)."""
    seen: set[str] = set()
    found: list[Recipient] = []
    for p in booking.participants:
        key = p.email.lower()
        if key not in seen:
            seen.add(key)
            found.append(Recipient(p.email, p.display_name, p.role, p.locale))
    return found


def recipients_of(booking: Booking, notice: Notice, told: Collection[str] = ()) -> list[Recipient]:
    """Who is sent `notice`. A closing notice (cancelled, declined, refunded) of a booking of
    which no one was told yet goes only to whoever asked for it, and to those `told` (the
    addresses, in lower case, that have had a notice still pending for others): a tutor is
    never told a lesson was cancelled that they were never told about. Everyone else, every
    time."""
    if notice.kind.for_staff:
        # The tenant's staff address, whoever is on the booking.
        return [Recipient(address, None, ParticipantRole.STAFF) for address in notice.to]
    everyone = recipients(booking)
    if notice.to:
        # Owed to some only (the link, to those an earlier mail reached without it).
        return [r for r in everyone if r.email.lower() in notice.to]
    if not notice.kind.closing or booking.mail.sent > 0 or booking.mail.failed > 0:
        return everyone
    asked = {p.email.lower() for p in booking.participants if p.user_id == booking.created_by}
    if not asked:
        # Booked by staff for someone: the student or client it is for asked through them.
        asked = {p.email.lower() for p in booking.participants if p.role not in HOSTS}
    return [r for r in everyone if r.email.lower() in asked or r.email.lower() in told]


def template_for(kind: NoticeKind, role: ParticipantRole) -> str:
    if kind.for_staff:
        return "lesson-no-show"
    if kind is NoticeKind.APPROVED:
        return "appointment-assigned" if role in HOSTS else "appointment-request-approved-client"
    return _TEMPLATE_OF_KIND[kind]


def one_line(text: str | None, limit: int = MAX_HEADER_CHARS) -> str:
    """`text` as one header-safe line: control and format characters (CR, LF, tabs, bidi
    overrides) become spaces, runs of spaces one, encoded-word openers are broken, and it is
    cut to `limit` characters."""
    if not text:
        return ""
    cleaned = "".join(
        " " if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch for ch in text
    )
    cleaned = re.sub(r"\s+", " ", cleaned).strip()
    # "=?" opens an RFC 2047 encoded word, which the mail library decodes when it folds a
    # header: a CR/LF hidden in one would become a header of its own. Text never needs one.
    cleaned = cleaned.replace("=?", "= ?")
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1].rstrip() + "…"


def zone_of(booking: Booking) -> ZoneInfo:
    try:
        return ZoneInfo(booking.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def when(booking: Booking, strings: Strings) -> str:
    """The booking's times in its IANA zone, with the zone named, by Babel in the strings'
    language. Each time carries its own offset name when a clock change falls between them,
    and the end its date when it falls on another day."""
    from babel.dates import format_datetime

    zone = zone_of(booking)
    locale = strings.cldr_locale
    start, end = booking.start.astimezone(zone), booking.end.astimezone(zone)

    def formatted(moment: datetime, key: str) -> str:
        return str(format_datetime(moment, strings.pattern(key), tzinfo=zone, locale=locale))

    date = formatted(start, "time.pattern.date")
    start_name, end_name = zone_abbreviation(start, locale), zone_abbreviation(end, locale)
    start_time = formatted(start, "time.pattern.clock")
    end_time = formatted(end, "time.pattern.clock")
    if start.utcoffset() == end.utcoffset() and end.date() == start.date():
        return strings(
            "time.range",
            date=date,
            start=start_time,
            end=end_time,
            zone=zone.key,
            abbreviation=start_name,
        )
    if end.date() == start.date():
        end_text = strings("time.moment", time=end_time, abbreviation=end_name)
    else:
        end_text = strings(
            "time.moment.day",
            day=formatted(end, "time.pattern.day"),
            time=end_time,
            abbreviation=end_name,
        )
    return strings(
        "time.range.long",
        date=date,
        start=strings("time.moment", time=start_time, abbreviation=start_name),
        end=end_text,
        zone=zone.key,
    )


def zone_abbreviation(moment: datetime, locale: str) -> str:
    """The zone's short name at `moment` in `locale` (CLDR: "GMT" and "BST" in British
    English, "MEZ" and "MESZ" in German), or, where the language has none for it, the offset
    as CLDR writes it ("GMT-05:00"), as Unicode TR35 falls back. Babel itself would fall back
    to the long name ("Eastern Standard Time")."""
    from babel.core import Locale, get_global
    from babel.dates import NO_INHERITANCE_MARKER, get_timezone_gmt, get_timezone_name

    cldr = Locale.parse(locale)
    zone = get_timezone_name(moment.tzinfo, return_zone=True)
    variant = "daylight" if moment.dst() else "standard"
    own = cldr.time_zones.get(zone, {}).get("short", {}).get(variant)
    metazone = get_global("meta_zones").get(zone)
    shared_name = cldr.meta_zones.get(metazone, {}).get("short", {}).get(variant)
    for name in (own, shared_name):
        if name and name != NO_INHERITANCE_MARKER:
            return str(name)
    if not moment.utcoffset():
        return str(cldr.zone_formats["gmt"] % "")  # GMT itself, not "GMT+00:00"
    return str(get_timezone_gmt(moment, width="long", locale=cldr))


def short_date(moment: datetime, booking: Booking, strings: Strings) -> str:
    from babel.dates import format_datetime

    zone = zone_of(booking)
    pattern = strings.pattern("time.pattern.day")
    return str(format_datetime(moment, pattern, tzinfo=zone, locale=strings.cldr_locale))


def join_url_of(booking: Booking, kind: NoticeKind) -> str | None:
    """The link an e-mail offers: the meeting Teams holds for the booking, while it is wanted."""
    meeting = booking.meeting
    if kind.closing or not (booking.live and meeting.wanted and meeting.in_teams):
        return None
    url = meeting.join_url
    return url if url and url.startswith("https://") else None


def look_of(branding: Branding, organization: str) -> Look:
    """The tenant's branding as a mail shows it. The name falls back to `organization` (the
    tenant's own name); a value that breaks the branding rules is left out."""
    accent = branding.accent_color if is_color(branding.accent_color) else DEFAULT_ACCENT
    if len(accent) == 4:  # "#rgb": some clients read only six digits in bgcolor
        accent = "#" + "".join(ch * 2 for ch in accent[1:])
    accent = accent.lower()
    footer = (branding.footer_text or "")[:MAX_FOOTER_TEXT_CHARS]
    return Look(
        name=one_line(branding.display_name, MAX_NAME_CHARS)
        or one_line(organization, MAX_NAME_CHARS),
        logo_url=branding.logo_url if is_logo_url(branding.logo_url) else None,
        accent=accent,
        on_accent=_readable_on(accent),
        contact_line=one_line(branding.contact_line, MAX_CONTACT_LINE_CHARS),
        footer_lines=tuple(
            line
            for line in (one_line(raw, MAX_FOOTER_TEXT_CHARS) for raw in footer.splitlines())
            if line
        ),
    )


_DARK_TEXT = "#242424"


def _luminance(color: str) -> float:
    """WCAG relative luminance of `#rrggbb`."""

    def channel(hex_pair: str) -> float:
        c = int(hex_pair, 16) / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(color[i : i + 2]) for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _readable_on(accent: str) -> str:
    """White, or the body's dark grey when that contrasts more with the accent (a yellow)."""
    light = _luminance(accent)
    on_white = 1.05 / (light + 0.05)
    on_dark = (light + 0.05) / (_luminance(_DARK_TEXT) + 0.05)
    return "#ffffff" if on_white >= on_dark else _DARK_TEXT


class MailRenderer:
    def __init__(self, catalogues: Catalogues = CATALOGUES) -> None:
        self._catalogues = catalogues
        self._templates: jinja2.Environment | None = None

    @property
    def _env(self) -> jinja2.Environment:
        # Made on the first e-mail, not with the app's services: a request that only queues
        # mail does not pay for importing jinja2.
        if self._templates is None:
            import jinja2

            self._templates = jinja2.Environment(
                loader=jinja2.FileSystemLoader(TEMPLATES),
                # HTML parts escape every value; plain-text parts are not markup.
                autoescape=jinja2.select_autoescape(
                    enabled_extensions=("html",), default_for_string=True
                ),
                undefined=jinja2.StrictUndefined,
                trim_blocks=True,
                lstrip_blocks=True,
                keep_trailing_newline=True,
            )
        return self._templates

    def render(
        self,
        booking: Booking,
        notice: Notice,
        recipient: Recipient,
        organization: str,
        branding: Branding | None = None,
        *,
        default_locale: str | None = None,
    ) -> RenderedMail:
        """The mail `notice` owes `recipient`, signed by `organization` (the tenant's name),
        dressed in the tenant's `branding`, in the recipient's language: their locale if a
        shipped language serves it, else the tenant's `default_locale`, else English."""
        t = Strings(
            self._catalogues.language_for(recipient.locale, default_locale), self._catalogues
        )
        look = look_of(branding or Branding(), organization)
        template = template_for(notice.kind, recipient.role)
        wording = _WORDING_OF_KIND.get(notice.kind, template)
        if notice.kind is NoticeKind.DECLINED and recipient.role in HOSTS:
            wording = "appointment-declined-host"  # it was not the tutor's request
        subject_text = one_line(booking.subject, MAX_HEADER_CHARS)
        join_url = join_url_of(booking, notice.kind)
        meeting = booking.meeting
        context = {
            "t": t,
            "wording": wording,
            "name": one_line(recipient.name, MAX_NAME_CHARS) or recipient.email,
            "subject": subject_text,
            "level": one_line(booking.level, MAX_NAME_CHARS),
            "when": when(booking, t),
            "join_url": join_url,
            # Only promised while the meeting is on its way (not failed, waiting for a person).
            "link_pending": join_url is None
            and not notice.kind.closing
            and booking.live
            and meeting.wanted
            and not meeting.failed,
            "reason": booking.status_reason if notice.kind.closing else None,
            "organization": look.name,
            "look": look,
            "with_invite": not notice.kind.for_staff,
            **_attendance_context(booking, notice.kind),
        }
        subject = one_line(
            t(
                f"subject.{wording}",
                subject=subject_text,
                date=short_date(booking.start, booking, t),
            )
        )
        return RenderedMail(
            template=template,
            subject=subject,
            text=self._env.get_template(f"{template}.txt").render(context),
            html=self._env.get_template(f"{template}.html").render(context),
            language=t.language,
        )


def _attendance_context(booking: Booking, kind: NoticeKind) -> dict[str, object]:
    """For the staff's no-show mail: the outcome's key and each participant's minutes in the
    meeting (None: did not join), by name."""
    attendance = booking.attendance
    if not kind.for_staff or attendance is None:
        return {"outcome": None, "attended": ()}
    names = {
        p.user_id: one_line(p.display_name, MAX_NAME_CHARS) or p.email for p in booking.participants
    }
    attended = tuple(
        (names.get(a.user_id, a.user_id), a.total_seconds // 60 if a.joined else None)
        for a in attendance.participants
    )
    return {"outcome": f"outcome.{attendance.outcome.value}", "attended": attended}
