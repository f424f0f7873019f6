"""Every e-mail the service sends, in every shipped language, with and without a join link.

Written as HTML files with an index.html that links them all and, with a Chromium on PATH, a
PNG screenshot of each:

    .venv/bin/python -m localdev.previews [--out previews] [--no-png] [--only approved]
    .venv/bin/python -m localdev.previews --readme-image    # docs/images/approval-mail.png

Each mail goes through the real `MailRenderer`, the real invite and the real MIME composition
(`mime_bytes`): the `.html` and `.txt` files are the message's parts as a mail client decodes
them, the `.eml` the whole message. The booking is fixed sample data, so the files only change
when the templates or the strings do.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import html
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

from shared.domain.attendance import (
    Attendance,
    AttendanceSource,
    LessonOutcome,
    ParticipantAttendance,
)
from shared.domain.booking import (
    Booking,
    BookingStatus,
    MeetingState,
    Participant,
    ParticipantRole,
)
from shared.domain.branding import Branding
from shared.domain.notices import Notice, NoticeKind
from shared.domain.tenant import CredentialKind, MicrosoftProfile, Tenant
from shared.mail.ics import Organizer, invite
from shared.mail.messages import OutgoingMail, mime_bytes
from shared.mail.rendering import MailRenderer, Recipient, RenderedMail
from shared.mail.strings import Strings
from shared.mail.strings import shipped_languages as catalogued

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "previews"
README_IMAGE = REPO / "docs" / "images" / "approval-mail.png"
README_PREVIEW = ("approved-student", "en", True)  # the approval a student receives, with link

CHROMIUMS = ("chromium", "chromium-browser", "google-chrome")
WIDTH = 700
MIN_HEIGHT, MAX_HEIGHT = 200, 4000
SHOT_TIMEOUT_SECONDS = 60

# -- the sample: one lesson, its people and its tenant -------------------------------------------

NOW = datetime(2027, 4, 8, 9, 30, tzinfo=UTC)
START = datetime(2027, 4, 15, 16, 0, tzinfo=UTC)  # 17:00 in London (BST)
JOIN_URL = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_NorthwindPreview%40thread.v2/0"
TENANT = Tenant(
    tenant_id="northwind",
    display_name="Northwind Tutoring",
    microsoft=MicrosoftProfile(
        "00000000-0000-4000-8000-000000000001",
        "00000000-0000-4000-8000-000000000002",
        credential=CredentialKind.MANAGED_IDENTITY,
    ),
    organizer_upn="lessons@northwind.example.org",
)
SENDER = "lessons@northwind.example.org"
# One person per role; the booking has the student and the tutor.
PEOPLE = {
    ParticipantRole.STUDENT: Participant(
        "student-ada", ParticipantRole.STUDENT, "ada.lovelace@example.com", "Ada Lovelace"
    ),
    ParticipantRole.PARENT: Participant(
        "parent-anne", ParticipantRole.PARENT, "anne.byron@example.com", "Anne Isabella Byron"
    ),
    ParticipantRole.CLIENT: Participant(
        "client-ada", ParticipantRole.CLIENT, "ada.lovelace@example.com", "Ada Lovelace"
    ),
    ParticipantRole.TUTOR: Participant(
        "tutor-charles", ParticipantRole.TUTOR, "charles.babbage@example.org", "Charles Babbage"
    ),
    ParticipantRole.STAFF: Participant(
        "staff-mary", ParticipantRole.STAFF, "mary.somerville@example.org", "Mary Somerville"
    ),
}
# What each closing kind leaves on the booking.
CLOSED = {
    NoticeKind.CANCELLED: (BookingStatus.CANCELLED, "Ada is unwell this week."),
    NoticeKind.DECLINED: (BookingStatus.DECLINED, "No tutor is free at that time."),
    NoticeKind.REFUNDED: (BookingStatus.CANCELLED, "Payment refunded"),
}
# The invite SEQUENCE each kind plausibly carries after the approval's 0.
SEQUENCE = {NoticeKind.RESCHEDULED: 1, NoticeKind.LINK_CHANGED: 1} | dict.fromkeys(CLOSED, 2)


def shipped_languages() -> list[str]:
    """The languages mail is written in."""
    return list(catalogued())


# The sample tenant's mail branding (no logo: a screenshot taken offline could not load it).
BRANDING = Branding(
    display_name="Northwind Tutoring",
    accent_color="#0a7b83",
    reply_to="help@northwind.example.org",
    contact_line="Questions? help@northwind.example.org",
    footer_text="Northwind Tutoring Ltd\n1 High Street, London",
)
RENDERER = MailRenderer()


def sample_booking(kind: NoticeKind, *, with_link: bool) -> Booking:
    """The lesson as it stands when `kind` is told: confirmed with its Teams meeting (made, or
    on its way when `with_link` is false), or closed with a reason."""
    meeting = MeetingState(
        wanted=True,
        provider="teams" if with_link else None,
        meeting_id="northwind-preview-meeting" if with_link else None,
        join_url=JOIN_URL if with_link else None,
    )
    status, reason = CLOSED.get(kind, (BookingStatus.CONFIRMED, None))
    attendance = None
    if kind.for_staff:
        # The lesson took place: the tutor was there throughout, the student for 4 minutes.
        status = BookingStatus.COMPLETED
        attendance = Attendance(
            LessonOutcome.STUDENT_NO_SHOW,
            AttendanceSource.REPORT,
            START + timedelta(hours=1, minutes=15),
            (
                ParticipantAttendance(
                    PEOPLE[ParticipantRole.STUDENT].user_id, joined=True, total_seconds=240
                ),
                ParticipantAttendance(
                    PEOPLE[ParticipantRole.TUTOR].user_id, joined=True, total_seconds=3600
                ),
            ),
        )
    return Booking(
        tenant_id=TENANT.tenant_id,
        booking_id="0f1e2d3c4b5a69788796a5b4c3d2e1f0",
        status=status,
        subject="Algebra II \u2014 Lesson 4",
        level="A-Level",
        start=START,
        end=START + timedelta(hours=1),
        time_zone="Europe/London",
        participants=(PEOPLE[ParticipantRole.STUDENT], PEOPLE[ParticipantRole.TUTOR]),
        created_by=PEOPLE[ParticipantRole.STUDENT].user_id,
        created_at=NOW - timedelta(days=2),
        updated_at=NOW,
        assignee_id=PEOPLE[ParticipantRole.TUTOR].user_id,
        status_reason=reason,
        meeting=meeting,
        attendance=attendance,
    )


def recipient(role: ParticipantRole) -> Recipient:
    person = PEOPLE[role]
    return Recipient(person.email, person.display_name, role)


# -- which mails there are -----------------------------------------------------------------------


@dataclass(frozen=True)
class Preview:
    """One distinct mail: a notice kind as the roles in `roles` receive it."""

    name: str
    kind: NoticeKind
    roles: tuple[ParticipantRole, ...]

    @property
    def role(self) -> ParticipantRole:
        """The role it is rendered for."""
        return self.roles[0]

    @property
    def can_link(self) -> bool:
        """Whether it can carry a join link (a cancellation never does)."""
        return not self.kind.closing and not self.kind.for_staff


def previews() -> list[Preview]:
    """Every notice kind once per distinct mail it makes: the roles that receive the same
    words (the same person in each role, as the renderer sees it) share one preview."""
    found: list[Preview] = []
    renderer = RENDERER
    for kind in NoticeKind:
        booking = sample_booking(kind, with_link=True)
        notice = Notice(kind, 1, SEQUENCE.get(kind, 0), NOW)
        groups: dict[tuple[str, str, str, str], list[ParticipantRole]] = {}
        for role in ParticipantRole:
            probe = Recipient("someone@example.com", "Someone", role)
            mail = renderer.render(booking, notice, probe, TENANT.display_name, BRANDING)
            groups.setdefault((mail.template, mail.subject, mail.text, mail.html), []).append(role)
        base = kind.value.replace("_", "-")
        for roles in groups.values():
            name = base if len(groups) == 1 else f"{base}-{roles[0].value}"
            found.append(Preview(name, kind, tuple(roles)))
    return found


# -- one mail, as it is sent ---------------------------------------------------------------------


@dataclass(frozen=True)
class Written:
    preview: Preview
    language: str
    with_link: bool
    template: str
    subject: str
    html: Path
    text: Path
    eml: Path
    png: Path | None = None

    @property
    def label(self) -> str:
        return "with link" if self.with_link else "no link"


def file_stem(preview: Preview, language: str, with_link: bool) -> str:
    return f"{preview.name}.{language}.{'link' if with_link else 'no-link'}"


def compose(preview: Preview, language: str, with_link: bool) -> tuple[RenderedMail, bytes]:
    """The rendered mail and its MIME bytes, as the mail worker composes them."""
    booking = sample_booking(preview.kind, with_link=with_link)
    notice = Notice(preview.kind, 1, SEQUENCE.get(preview.kind, 0), NOW)
    person = recipient(preview.role)
    rendered = RENDERER.render(
        booking, notice, person, TENANT.display_name, BRANDING, default_locale=language
    )
    mail = OutgoingMail(
        key=f"{TENANT.tenant_id}|{booking.booking_id}|{notice.number}|{person.email}",
        sender=SENDER,
        sender_name=BRANDING.display_name,
        to=person.email,
        to_name=person.name,
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        invite=None
        if notice.kind.for_staff
        else invite(
            booking,
            kind=notice.kind,
            sequence=notice.sequence,
            organizer=Organizer(SENDER, TENANT.display_name),
            now=NOW,
            strings=Strings(language),
        ),
        method="CANCEL" if notice.kind.closing else "REQUEST",
        sent_at=NOW,
        reply_to=BRANDING.reply_to,
        language=rendered.language,
    )
    return rendered, mime_bytes(mail)


def _part(message: EmailMessage, subtype: str) -> str:
    body = message.get_body(preferencelist=(subtype,))
    if body is None:
        raise ValueError(f"the message has no text/{subtype} part")
    # As decoded from the wire: CRLF line ends, LF in a file people open.
    return str(body.get_content()).replace("\r\n", "\n")


def write_one(out: Path, preview: Preview, language: str, with_link: bool) -> Written:
    rendered, raw = compose(preview, language, with_link)
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    stem = file_stem(preview, language, with_link)
    written = Written(
        preview,
        language,
        with_link,
        rendered.template,
        str(message["Subject"]),
        out / f"{stem}.html",
        out / f"{stem}.txt",
        out / f"{stem}.eml",
    )
    written.html.write_text(_part(message, "html"), encoding="utf-8")
    written.text.write_text(_part(message, "plain"), encoding="utf-8")
    written.eml.write_bytes(raw)
    return written


# -- screenshots ---------------------------------------------------------------------------------


def find_chromium() -> str | None:
    for name in CHROMIUMS:
        found = shutil.which(name)
        if found:
            return found
    return None


class Chromium:
    """Headless screenshots, one process per shot, with a throw-away profile in `scratch`."""

    def __init__(self, executable: str, scratch: Path) -> None:
        scratch.mkdir(parents=True, exist_ok=True)
        self._command = [
            executable,
            "--headless=new",
            "--no-sandbox",  # as root (containers, CI) Chromium runs only without it
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={scratch / 'profile'}",
        ]
        self._probe_page = scratch / "measure.html"

    def _run(self, *args: str) -> str | None:
        try:
            done = subprocess.run(
                [*self._command, *args],
                capture_output=True,
                text=True,
                timeout=SHOT_TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return None
        return done.stdout if done.returncode == 0 else None

    def height_of(self, page: Path) -> int | None:
        """The page's height at WIDTH: a copy that writes it into its own DOM, dumped."""
        probe = (
            "<script>document.body.setAttribute('data-preview-height',"
            " String(document.documentElement.scrollHeight))</script>"
        )
        source = page.read_text(encoding="utf-8")
        cut = source.lower().rfind("</body>")
        cut = len(source) if cut < 0 else cut
        self._probe_page.write_text(source[:cut] + probe + source[cut:], encoding="utf-8")
        dom = self._run(
            f"--window-size={WIDTH},{MIN_HEIGHT}", "--dump-dom", self._probe_page.as_uri()
        )
        marker = 'data-preview-height="'
        if dom is None or marker not in dom:
            return None
        digits = dom.split(marker, 1)[1].split('"', 1)[0]
        return int(digits) if digits.isdigit() else None

    def shoot(self, page: Path, png: Path) -> bool:
        """`page` as a WIDTH-wide PNG, as tall as its content (within bounds)."""
        height = max(MIN_HEIGHT, min(MAX_HEIGHT, self.height_of(page) or 1000))
        png.unlink(missing_ok=True)
        self._run(f"--window-size={WIDTH},{height}", f"--screenshot={png}", page.as_uri())
        return png.is_file() and png.stat().st_size > 0


# -- the index -----------------------------------------------------------------------------------


def _link(path: Path | None, label: str) -> str:
    if path is None:
        return ""
    return f'<a href="{html.escape(path.name)}">{html.escape(label)}</a>'


def index_page(written: Sequence[Written]) -> str:
    rows = []
    for w in written:
        roles = ", ".join(r.value for r in w.preview.roles)
        png = html.escape(w.png.name) if w.png is not None else ""
        files = " · ".join(
            link
            for link in (
                _link(w.html, "HTML"),
                _link(w.text, "text"),
                _link(w.eml, ".eml"),
                _link(w.png, "PNG"),
            )
            if link
        )
        rows.append(
            "<tr>"
            f"<td>{_link(w.html, w.preview.name)}</td>"
            f"<td>{html.escape(roles)}</td>"
            f"<td><code>{html.escape(w.template)}</code></td>"
            f"<td>{html.escape(w.language)}</td>"
            f"<td>{html.escape(w.label)}</td>"
            f"<td>{html.escape(w.subject)}</td>"
            f"<td>{files}</td>"
            + (f'<td><a href="{png}"><img src="{png}" width="350" alt=""></a></td>' if png else "")
            + "</tr>"
        )
    columns = ["Mail", "Sent to", "Template", "Language", "Link", "Subject", "Files"]
    if any(w.png is not None for w in written):
        columns.append("Screenshot")
    head = "".join(f"<th>{h}</th>" for h in columns)
    body = "\n".join(rows)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8">'
        "<title>Mail previews</title>\n<style>"
        "body{font-family:Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#242424}"
        "table{border-collapse:collapse}th,td{border:1px solid #ddd;padding:4px 8px;"
        "text-align:left;vertical-align:top}th{background:#f4f4f4}"
        "</style></head>\n<body>\n<h1>Mail previews</h1>\n"
        f"<p>{len(written)} mails, written by <code>python -m localdev.previews</code> from "
        "the templates in <code>shared/mail/templates</code>. A cancellation never carries a "
        "join link, so it has no “with link” variant.</p>\n"
        f"<table>\n<tr>{head}</tr>\n{body}\n</table>\n</body>\n</html>\n"
    )


# -- the command ---------------------------------------------------------------------------------


def write_previews(
    out: Path, *, png: bool = True, only: str | None = None, quiet: bool = False
) -> list[Written]:
    """Every preview (those whose name contains `only`) in every shipped language, into `out`,
    with index.html; with `png` and a Chromium, a screenshot of each."""
    chosen = [p for p in previews() if only is None or only in p.name]
    if not chosen:
        raise SystemExit(f"no mail is named like {only!r}: {', '.join(p.name for p in previews())}")
    out.mkdir(parents=True, exist_ok=True)
    written = [
        write_one(out, preview, language, with_link)
        for preview in chosen
        for language in shipped_languages()
        for with_link in ((True, False) if preview.can_link else (False,))
    ]
    executable = find_chromium() if png else None
    if png and executable is None:
        print(f"No Chromium on PATH ({', '.join(CHROMIUMS)}): HTML only, no PNG.")
    if executable is not None:
        with tempfile.TemporaryDirectory(prefix="previews-chromium-") as scratch:
            chromium = Chromium(executable, Path(scratch))
            for i, w in enumerate(written):
                target = w.html.with_suffix(".png")
                if chromium.shoot(w.html, target):
                    written[i] = replace(w, png=target)
                elif not quiet:
                    print(f"no screenshot of {w.html.name} (Chromium failed or timed out)")
    (out / "index.html").write_text(index_page(written), encoding="utf-8")
    return written


def readme_image(target: Path = README_IMAGE) -> Path:
    """The README's picture: the approval a student receives, in English, with its link."""
    executable = find_chromium()
    if executable is None:
        raise SystemExit(f"--readme-image needs a Chromium on PATH ({', '.join(CHROMIUMS)})")
    name, language, with_link = README_PREVIEW
    (preview,) = [p for p in previews() if p.name == name]
    with tempfile.TemporaryDirectory(prefix="previews-") as scratch:
        page = write_one(Path(scratch), preview, language, with_link).html
        target.parent.mkdir(parents=True, exist_ok=True)
        if not Chromium(executable, Path(scratch) / "chromium").shoot(page, target):
            raise SystemExit(f"Chromium could not screenshot {page.name}")
    return target


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.resolve())


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m localdev.previews", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="where to write them (default: previews/)"
    )
    parser.add_argument("--no-png", action="store_true", help="HTML only, no screenshots")
    parser.add_argument(
        "--only", metavar="NAME", help="only the mails whose name contains NAME (e.g. approved)"
    )
    parser.add_argument(
        "--readme-image",
        action="store_true",
        help=f"only write the README's picture, {_shown(README_IMAGE)}",
    )
    args = parser.parse_args(argv)
    if args.readme_image:
        print(f"Wrote {_shown(readme_image())}")
        return
    written = write_previews(args.out, png=not args.no_png, only=args.only)
    shots = sum(1 for w in written if w.png is not None)
    mails = len({w.preview.name for w in written})
    languages = sorted({w.language for w in written})
    print(
        f"Wrote {len(written)} previews ({mails} mails in {', '.join(languages)}, with and "
        f"without a join link): {len(written)} HTML, text and .eml files and {shots} PNG "
        f"in {_shown(args.out)}/"
    )
    print(f"Open {_shown(args.out / 'index.html')}")


if __name__ == "__main__":
    main()
