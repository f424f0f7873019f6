"""A tenant's mail branding: admins set it in the Teams settings, where a colour must be a
colour, a logo an https URL and a name plain text; its mails then wear it (logo or name, accent,
footer, Reply-To) in a layout mail clients read, and a hostile value never reaches a mail, even
one stored by other means than the API.

The settings go through the app's own parser and use case on the in-memory world; mail through
the real transports (Graph sendMail at the wire, the folder of `.eml` files).
"""

from __future__ import annotations

import base64
import email
import email.policy
import json
import re
from dataclasses import replace
from datetime import timedelta
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import azure.functions as func
import icalendar
import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml

from localdev.mailbox import invite_parts
from shared.api import commands as parse
from shared.api.representations import settings_json
from shared.api.validation import ValidationError
from shared.auth.principal import Principal, Role
from shared.domain.booking import BookingStatus, MeetingState
from shared.domain.branding import DEFAULT_ACCENT, LOGO_URL, Branding
from shared.domain.notices import Notice, NoticeKind
from shared.mail.rendering import MailRenderer, RenderedMail, recipients
from shared.services import bookings as use_cases
from shared.services import teams_settings
from shared.services.bookings import Approval
from shared.storage.tenant_directory import TenantDirectory
from tests.builders import T0, a_booking
from tests.mail_world import TENANT, MailWorld, mail_world

ADMIN = Principal("admin-1", TENANT, frozenset({Role.ADMIN}))
STAFF = Principal("staff-1", TENANT, frozenset({Role.STAFF}))
JOIN = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_b%40thread.v2/0?context=%7b%7d"
LOGO = "https://cdn.example.com/brand/logo.png"
BRANDING = {
    "displayName": "Acme Tutoring",
    "logoUrl": LOGO,
    "accentColor": "#0A7B83",
    "replyTo": "help@acme.example",
    "contactLine": "Questions? help@acme.example · +44 20 7946 0000",
    "footerText": "Acme Tutoring Ltd\n1 High Street, London",
}


def put(body: Any) -> func.HttpRequest:
    return func.HttpRequest(
        method="PUT",
        url="http://localhost/api/v1/teams-meetings/settings",
        headers={"Content-Type": "application/json"},
        params={},
        route_params={},
        body=json.dumps(body).encode(),
    )


def save(directory: TenantDirectory, body: Any) -> dict[str, Any]:
    """PUT /v1/teams-meetings/settings as its function does it: parse, then the use case."""
    saved = teams_settings.update_settings(
        ADMIN, lambda: parse.settings_change(put(body)), directory, T0
    )
    return settings_json(saved)


def shown(directory: TenantDirectory) -> dict[str, Any]:
    return settings_json(teams_settings.get_settings(ADMIN, directory))


# -- the settings API --------------------------------------------------------------------------


def test_an_admin_sets_branding_and_settings_show_it():
    with mail_world() as mw:
        directory = mw.world.services.directory

        saved = save(directory, {"branding": BRANDING})

        expected = {**BRANDING, "accentColor": "#0a7b83"}
        assert saved["branding"] == expected
        assert shown(directory)["branding"] == expected
        assert mw.world.tenants.get(TENANT).branding == Branding(
            display_name="Acme Tutoring",
            logo_url=LOGO,
            accent_color="#0a7b83",
            reply_to="help@acme.example",
            contact_line=BRANDING["contactLine"],
            footer_text="Acme Tutoring Ltd\n1 High Street, London",
        )


def test_null_clears_a_field_an_absent_one_keeps_its_value_and_null_branding_clears_all():
    with mail_world() as mw:
        directory = mw.world.services.directory
        save(directory, {"branding": BRANDING})

        # WHEN one field is cleared with null, another with "", the rest not sent
        after = save(directory, {"branding": {"logoUrl": None, "footerText": ""}})

        # THEN only those two are gone
        assert after["branding"]["logoUrl"] is None
        assert after["branding"]["footerText"] is None
        assert after["branding"]["displayName"] == "Acme Tutoring"
        assert after["branding"]["replyTo"] == "help@acme.example"
        # and branding: null clears it all
        cleared = save(directory, {"branding": None})
        assert set(cleared["branding"].values()) == {None}


def test_a_tenant_never_branded_shows_every_field_null():
    with mail_world() as mw:
        assert shown(mw.world.services.directory)["branding"] == {
            "displayName": None,
            "logoUrl": None,
            "accentColor": None,
            "replyTo": None,
            "contactLine": None,
            "footerText": None,
        }


@pytest.mark.parametrize("color", ["#fff", "#FFFFFF", "#5b5fc7", "#0a7B83"])
def test_a_colour_is_three_or_six_hex_digits(color):
    with mail_world() as mw:
        saved = save(mw.world.services.directory, {"branding": {"accentColor": color}})

        assert saved["branding"]["accentColor"] == color.lower()


HOSTILE = [
    ("logoUrl", "javascript:alert(1)", "invalid_url"),
    ("logoUrl", "JavaScript:alert(document.cookie)//https://x.example", "invalid_url"),
    ("logoUrl", "data:image/svg+xml;base64,PHN2Zz48c2NyaXB0Pg==", "invalid_url"),
    ("logoUrl", "http://cdn.example.com/logo.png", "invalid_url"),
    ("logoUrl", "//cdn.example.com/logo.png", "invalid_url"),
    ("logoUrl", "/logo.png", "invalid_url"),
    ("logoUrl", "https:///logo.png", "invalid_url"),
    ("logoUrl", "https://admin:secret@cdn.example.com/logo.png", "invalid_url"),
    ("logoUrl", "https://cdn.example.com@evil.example/logo.png", "invalid_url"),
    ("logoUrl", "https://cdn.example.com/a logo.png", "invalid_url"),
    ("logoUrl", "https://cdn.example.com/logo.png\n", "invalid_url"),
    ("logoUrl", "https://cdn.example.com/\u0000.png", "invalid_url"),
    ("logoUrl", 'https://cdn.example.com/x"onerror="alert(1)', "invalid_url"),
    ("logoUrl", 'https://cdn.example.com/"><script>alert(1)</script>', "invalid_url"),
    ("logoUrl", "https://cdn.example.com:99999/logo.png", "invalid_url"),
    ("logoUrl", "https://10.0.0.1/logo.png", "invalid_url"),
    ("logoUrl", "https://cdn.example.com/" + "a" * 2048, "too_long"),
    ("logoUrl", 42, "invalid_type"),
    ("accentColor", "red;background:url(https://evil.example/x)", "invalid_color"),
    ("accentColor", "red;background:url(x)", "invalid_color"),
    ("accentColor", "red", "invalid_color"),
    ("accentColor", "#5b5fc7;color:red", "invalid_color"),
    ("accentColor", "#5b5fc7 !important", "invalid_color"),
    ("accentColor", "#12345", "invalid_color"),
    ("accentColor", "#ggg", "invalid_color"),
    ("accentColor", "rgb(0,0,0)", "invalid_color"),
    ("accentColor", "#fff\n", "invalid_color"),
    ("displayName", "<script>alert(1)</script>", "markup_not_allowed"),
    ("displayName", '"><img src=x onerror=alert(1)>', "markup_not_allowed"),
    ("displayName", "Acme\r\nBcc: victim@evil.example", "invalid_characters"),
    ("displayName", "Two\nlines", "invalid_characters"),
    ("displayName", "x" * 101, "too_long"),
    ("displayName", ["Acme"], "invalid_type"),
    ("contactLine", '"><img src=x onerror=alert(1)>', "markup_not_allowed"),
    ("contactLine", "x" * 201, "too_long"),
    ("footerText", "<script>alert(1)</script>", "markup_not_allowed"),
    ("footerText", 'Ltd\n"><img src=x onerror=alert(1)>', "markup_not_allowed"),
    ("footerText", "bell\u0007", "invalid_characters"),
    ("footerText", "x" * 501, "too_long"),
    ("replyTo", "not-an-address", "invalid_email"),
    ("replyTo", "help@acme.example, victim@evil.example", "invalid_email"),
    ("replyTo", "help@acme.example\r\nBcc: victim@evil.example", "invalid_email"),
    ("replyTo", "Help <help@acme.example>", "invalid_email"),
]


@pytest.mark.parametrize(("field", "value", "code"), HOSTILE, ids=[h[2] for h in HOSTILE])
def test_a_hostile_branding_value_is_refused_and_nothing_changes(field, value, code):
    with mail_world() as mw:
        directory = mw.world.services.directory
        save(directory, {"branding": BRANDING})
        before = shown(directory)

        # WHEN a good value and a bad one are sent together
        with pytest.raises(ValidationError) as refused:
            save(directory, {"branding": {"displayName": "Changed", field: value}})

        # THEN a 400 with the field's own code, naming the field, and nothing is saved
        assert refused.value.status == 400
        assert refused.value.code == code
        assert f"branding.{field}" in refused.value.message
        assert shown(directory) == before


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"branding": {"font": "Comic Sans"}}, "unknown_field"),
        ({"branding": {"displayName": "A", "css": "x"}}, "unknown_field"),
        ({"branding": "Acme"}, "invalid_type"),
        ({"branding": ["Acme"]}, "invalid_type"),
    ],
)
def test_branding_that_is_not_an_object_of_known_fields_is_refused(body, code):
    with mail_world() as mw:
        directory = mw.world.services.directory
        before = shown(directory)

        with pytest.raises(ValidationError) as refused:
            save(directory, body)

        assert (refused.value.status, refused.value.code) == (400, code)
        assert shown(directory) == before


SPEC = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml").read_text(encoding="utf-8")
)


def contract_allows(branding: Any) -> bool:
    schema = {"$ref": "#/components/schemas/BrandingUpdate", "components": SPEC["components"]}
    return bool(jsonschema.Draft202012Validator(schema).is_valid(branding))


def test_the_contract_says_what_the_service_accepts():
    schemas = SPEC["components"]["schemas"]
    assert schemas["LogoUrl"]["pattern"] == f"^{LOGO_URL.pattern}$"
    assert contract_allows(BRANDING)
    assert contract_allows(dict.fromkeys(BRANDING))
    assert contract_allows(dict.fromkeys(BRANDING, ""))
    assert not contract_allows({"font": "Comic Sans"})
    # JSON Schema's "$" also matches before a final newline; the service refuses those too
    for field, value, _ in HOSTILE:
        if not (isinstance(value, str) and value.endswith("\n")):
            assert not contract_allows({field: value}), (field, value)


# -- the layout --------------------------------------------------------------------------------


class Page(HTMLParser):
    """An HTML part as tags (name, attributes) and its text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.styles: list[str] = []
        self._in_style = False
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        (self.styles if self._in_style else self.text).append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]

    def links(self) -> list[str]:
        return [a["href"] or "" for a in self.all("a")]


def approval(join_url: str | None = JOIN, branding: Branding | None = None) -> RenderedMail:
    booking = a_booking(
        status=BookingStatus.CONFIRMED,
        meeting=MeetingState(wanted=True, meeting_id="m1" if join_url else None, join_url=join_url),
    )
    notice = Notice(NoticeKind.APPROVED, 1, 0, T0)
    return MailRenderer().render(booking, notice, recipients(booking)[0], "Tenant A", branding)


BRANDED = Branding(
    display_name="Acme Tutoring",
    logo_url=LOGO,
    accent_color="#0a7b83",
    reply_to="help@acme.example",
    contact_line="Questions? help@acme.example",
    footer_text="Acme Tutoring Ltd\n1 High Street, London",
)


@pytest.mark.parametrize("branding", [None, BRANDED], ids=["default", "branded"])
def test_the_html_part_is_laid_out_as_mail_clients_need(branding):
    page = Page(approval(branding=branding).html)

    # tables for layout, each presentational; none wider than 600 px, the card centred
    tables = page.all("table")
    assert tables
    assert all(t.get("role") == "presentation" for t in tables)
    assert any("max-width: 600px" in (t.get("style") or "") for t in tables)
    html = approval(branding=branding).html
    widths = re.findall(r'width(?:: ?|=")(\d+)(?:px|")', html)
    assert widths
    assert max(int(w) for w in widths) == 600
    assert any(td.get("align") == "center" for td in page.all("td"))
    # all CSS inline: no stylesheet, no import, no web font; the one <style> is the dark block
    assert page.all("link") == []
    (style,) = page.styles
    assert style.strip().startswith("@media (prefers-color-scheme: dark)")
    assert "@import" not in style
    assert "url(" not in html
    # dark-mode safe: both schemes declared, every text element sets its own colour, every
    # cell with a background also says what colour its text is
    metas = {m.get("name"): m.get("content") for m in page.all("meta")}
    assert metas["color-scheme"] == "light dark"
    for tag in ("p", "span", "a"):
        for attrs in page.all(tag):
            assert re.search(r"(^|;)\s*color:", attrs.get("style") or ""), (tag, attrs)
    for td in page.all("td"):
        style = td.get("style") or ""
        if "background-color: #ffffff" in style:
            assert "color: #242424" in style or "color: #5c5c5c" in style
    # the bulletproof button: a cell with bgcolor holding the link, and the link again as text
    (button,) = [a for a in page.all("a") if a.get("target") == "_blank"]
    assert button["href"] == JOIN
    assert page.links() == [JOIN, JOIN]
    assert JOIN in page.text
    accent = (branding.accent_color if branding else None) or DEFAULT_ACCENT
    assert any(td.get("bgcolor") == accent for td in page.all("td"))
    # the preheader: hidden text first in the body
    first_div = page.all("div")[0]
    assert "display: none" in (first_div.get("style") or "")


def test_a_branded_mail_shows_the_logo_with_its_name_as_alt_text_and_the_footer():
    mail = approval(branding=BRANDED)
    page = Page(mail.html)

    (logo,) = page.all("img")
    assert logo["src"] == LOGO
    assert logo["alt"] == "Acme Tutoring"
    assert (logo["width"], logo["height"]) == ("200", "48")
    text = " ".join(" ".join(page.text).split())
    assert "Questions? help@acme.example" in text
    assert "Acme Tutoring Ltd 1 High Street, London" in text
    assert "Sent by Acme Tutoring" in text
    # the accent colours the button and the rule under the header
    assert [td.get("bgcolor") for td in page.all("td")].count("#0a7b83") == 2
    assert "#5b5fc7" not in mail.html


def test_without_branding_the_header_is_the_tenants_name_and_the_accent_the_default():
    mail = approval()
    page = Page(mail.html)

    assert page.all("img") == []
    assert "Tenant A" in [s.strip() for s in page.text]
    assert "Sent by Tenant A" in " ".join(page.text)
    assert [td.get("bgcolor") for td in page.all("td")].count(DEFAULT_ACCENT) == 2


def test_a_light_accent_gets_dark_button_text():
    page = Page(approval(branding=Branding(accent_color="#ffeb3b")).html)

    (button,) = [a for a in page.all("a") if a.get("target") == "_blank"]
    assert "color: #242424" in (button.get("style") or "")
    default = Page(approval().html)
    (plain,) = [a for a in default.all("a") if a.get("target") == "_blank"]
    assert "color: #ffffff" in (plain.get("style") or "")


@pytest.mark.parametrize("branding", [None, BRANDED], ids=["default", "branded"])
def test_the_plain_text_part_reads_well_alone(branding):
    text = approval(branding=branding).text
    lines = text.splitlines()

    # no markup or entities left over
    assert not re.search(r"<[a-zA-Z/!]|&[a-z]+;|&#", text)
    # the link whole on its line, nothing after it
    (link_line,) = [line for line in lines if JOIN in line]
    assert link_line.endswith(JOIN)
    assert link_line == f"Join Teams Meeting: {JOIN}"
    # a signature block at the end, after the "-- " separator
    footer = lines[lines.index("-- ") + 1 :]
    name = "Acme Tutoring" if branding else "Tenant A"
    assert footer[-1] == f"Sent by {name}"
    if branding:
        assert footer[:3] == [
            "Questions? help@acme.example",
            "Acme Tutoring Ltd",
            "1 High Street, London",
        ]
    # no run of blank lines
    assert "\n\n\n" not in text


def test_a_mail_without_a_link_offers_no_button_and_no_link_text():
    page = Page(approval(join_url=None, branding=BRANDED).html)

    assert page.links() == []
    assert "If the button does not work" not in " ".join(page.text)


# -- hostile values that got stored anyway -----------------------------------------------------

STORED_HOSTILE = Branding(
    display_name='<script>alert(1)</script>"><img src=x onerror=alert(1)>',
    logo_url="javascript:alert(1)",
    accent_color="red;background:url(https://evil.example/x)",
    reply_to="help@acme.example\r\nBcc: victim@evil.example",
    contact_line='"><img src=x onerror=alert(2)>',
    footer_text="<script>alert(3)</script>\nline\u202etwo",
)


def test_a_hostile_branding_renders_escaped_or_is_dropped():
    mail = approval(branding=STORED_HOSTILE)
    page = Page(mail.html)

    # the only tags are the template's own: no script, no image (the logo was not https)
    assert [name for name, _ in page.tags if name in ("script", "img")] == []
    assert "javascript:" not in mail.html
    assert "<script" not in mail.html
    assert all("onerror" not in attrs for _, attrs in page.tags)
    # the colour was not a colour: the default accent, nothing of the CSS
    assert "evil.example" not in mail.html
    assert "red;" not in mail.html
    assert [td.get("bgcolor") for td in page.all("td")].count(DEFAULT_ACCENT) == 2
    # the text is shown as text
    assert '<script>alert(1)</script>"><img src=x onerror=alert(1)>' in "".join(page.text)
    assert "\u202e" not in mail.html
    assert "\u202e" not in mail.text


def put_branding(mw: MailWorld, branding: Branding) -> None:
    """Write the tenant row directly, as a migration or another tool might."""
    tenant = mw.world.tenants.get(TENANT)
    mw.world.tenants.update(replace(tenant, branding=branding))


def approved_booking(mw: MailWorld) -> str:
    start = mw.world.clock.now + timedelta(days=3)
    booking = a_booking(
        tenant_id=TENANT, start=start, end=start + timedelta(hours=1), status=BookingStatus.PENDING
    )
    booking_id = mw.world.bookings.add(booking).booking_id
    use_cases.approve_booking(STAFF, booking_id, Approval(), mw.deps)
    mw.drain()
    return booking_id


def parsed(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def html_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    html: str = part.get_content()
    return html


def graph_mails(mw: MailWorld) -> list[EmailMessage]:
    return [parsed(base64.b64decode(m["mime"], validate=True)) for m in mw.world.emulator.mail]


def test_a_hostile_branding_stored_directly_never_reaches_a_sent_mail():
    with mail_world() as mw:
        # GIVEN a tenant row holding hostile branding, written past the API
        put_branding(mw, STORED_HOSTILE)

        # WHEN a booking is approved and its mail goes out over Graph
        approved_booking(mw)

        # THEN every mail went, its HTML escaped or without the value, and no header was added
        mails = graph_mails(mw)
        assert len(mails) == 2
        for message in mails:
            html = html_of(message)
            assert "<script" not in html
            assert "javascript:" not in html
            assert "evil.example" not in html
            assert message["Reply-To"] is None
            assert message["Bcc"] is None


# -- Reply-To on every transport ---------------------------------------------------------------


def folder_mails(mw: MailWorld) -> list[EmailMessage]:
    return mw.emls()


@pytest.mark.parametrize("transport", ["graph", "folder"])
def test_the_tenants_reply_to_is_the_mails_reply_to(transport, tmp_path: Path):
    with mail_world(tmp_path if transport == "folder" else None) as mw:
        # GIVEN the admin set the branding in the settings
        save(mw.world.services.directory, {"branding": BRANDING})

        # WHEN an approval mails the student and the tutor
        approved_booking(mw)

        # THEN each mail's Reply-To is the tenant's, its From named after the brand, and the
        # HTML wears it
        mails = graph_mails(mw) if transport == "graph" else folder_mails(mw)
        assert len(mails) == 2
        for message in mails:
            assert [a.addr_spec for a in message["Reply-To"].addresses] == ["help@acme.example"]
            assert message["From"].addresses[0].display_name == "Acme Tutoring"
            # AND the invite's organizer is the From, by the same name (RFC 6047)
            _, attachment = invite_parts(message)
            assert attachment is not None
            calendar: Any = icalendar.Calendar.from_ical(bytes(attachment.get_payload(decode=True)))
            (invite,) = calendar.walk("VEVENT")
            sender = message["From"].addresses[0].addr_spec.lower()
            assert str(invite["ORGANIZER"]).lower() == f"mailto:{sender}"
            assert invite["ORGANIZER"].params["CN"] == "Acme Tutoring"
            html = html_of(message)
            assert f'src="{LOGO}"' in html
            assert 'bgcolor="#0a7b83"' in html


@pytest.mark.parametrize("transport", ["graph", "folder"])
def test_without_a_reply_to_the_mail_has_none(transport, tmp_path: Path):
    with mail_world(tmp_path if transport == "folder" else None) as mw:
        approved_booking(mw)

        mails = graph_mails(mw) if transport == "graph" else folder_mails(mw)
        assert len(mails) == 2
        assert all(message["Reply-To"] is None for message in mails)
        assert all(m["From"].addresses[0].display_name == "Tenant A" for m in mails)
