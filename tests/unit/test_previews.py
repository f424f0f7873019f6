"""`python -m localdev.previews` writes every mail in every shipped language, with and without
a join link, as the mail worker composes it, and an index that links them all; with a
Chromium installed, a screenshot of each."""

from __future__ import annotations

import email
import email.policy
import html
import re
import struct
from pathlib import Path

import pytest

from localdev import previews
from shared.domain.notices import NoticeKind
from shared.mail.rendering import TEMPLATES
from tests.imip import read_imip

# Each distinct mail and the notice it tells: approvals and declines read differently to the
# one who attends and the one who hosts.
MAILS = {
    "approved-student": NoticeKind.APPROVED,
    "approved-tutor": NoticeKind.APPROVED,
    "payment-confirmed": NoticeKind.PAYMENT_CONFIRMED,
    "rescheduled": NoticeKind.RESCHEDULED,
    "cancelled": NoticeKind.CANCELLED,
    "declined-student": NoticeKind.DECLINED,
    "declined-tutor": NoticeKind.DECLINED,
    "refunded": NoticeKind.REFUNDED,
    "link-changed": NoticeKind.LINK_CHANGED,
    "link-ready": NoticeKind.LINK_READY,
    "reminder": NoticeKind.REMINDER,
    "no-show": NoticeKind.NO_SHOW,
}
SUBJECT = "Algebra II — Lesson 4"


def expected_pages() -> dict[str, bool]:
    """Each page the command should write, and whether it should carry the join link."""
    languages = previews.shipped_languages()
    assert "en" in languages
    return {
        f"{name}.{language}.{'link' if link else 'no-link'}.html": link
        for name, kind in MAILS.items()
        for language in languages
        # a cancellation never carries a link, nor the staff's no-show mail (the lesson is
        # over), so they have no "with link" page
        for link in ((False,) if kind.closing or kind.for_staff else (True, False))
    }


def hrefs(page: Path) -> set[str]:
    return set(re.findall(r'href="([^"]+)"', page.read_text(encoding="utf-8")))


def part(message: email.message.EmailMessage, subtype: str) -> str:
    body = message.get_body(preferencelist=(subtype,))
    assert body is not None
    return str(body.get_content()).replace("\r\n", "\n")


def test_the_sample_names_every_notice_kind():
    assert set(MAILS.values()) == set(NoticeKind)
    assert sorted(p.name for p in previews.previews()) == sorted(MAILS)


def test_one_page_per_mail_language_and_link_each_in_the_index(tmp_path, capsys):
    # WHEN
    previews.main(["--out", str(tmp_path), "--no-png"])

    # THEN one HTML page per mail, language and link, nothing else; the index links each
    expected = expected_pages()
    assert {p.name for p in tmp_path.glob("*.html")} == {*expected, "index.html"}
    assert not list(tmp_path.glob("*.png"))
    index = tmp_path / "index.html"
    assert set(expected) <= hrefs(index)
    index_text = index.read_text(encoding="utf-8")
    # every template file is shown by some page
    shipped = {p.stem for p in TEMPLATES.glob("*.html")} - {"layout"}
    assert all(f"<code>{template}</code>" in index_text for template in shipped)
    # and it says where they are and how many
    out = capsys.readouterr().out
    assert f"Wrote {len(expected)} previews" in out
    assert str((tmp_path / "index.html").resolve()) in out


def test_each_page_is_the_sent_mail_with_its_subject_and_link(tmp_path):
    previews.main(["--out", str(tmp_path), "--no-png"])
    index_text = (tmp_path / "index.html").read_text(encoding="utf-8")

    for name, with_link in expected_pages().items():
        page = (tmp_path / name).read_text(encoding="utf-8")
        raw = (tmp_path / name).with_suffix(".eml").read_bytes()
        message = email.message_from_bytes(raw, policy=email.policy.default)

        # the page is the HTML part of a whole iMIP mail (the staff's no-show mail invites
        # to nothing: text and HTML alone), the text file its plain-text part
        kind = MAILS[name.split(".")[0]]
        assert part(message, "html") == page
        text = (tmp_path / name).with_suffix(".txt").read_text(encoding="utf-8")
        assert part(message, "plain") == text
        if kind.for_staff:
            assert message.get_content_type() == "multipart/alternative"
            assert [p.get_content_type() for p in message.iter_parts()] == [
                "text/plain",
                "text/html",
            ]
            subject = str(message["Subject"])
        else:
            invitation = read_imip(raw)
            assert invitation.method == ("CANCEL" if kind.closing else "REQUEST")
            subject = invitation.subject
        # its subject line in the index, the lesson's subject on the page
        assert SUBJECT in subject
        assert html.escape(subject) in index_text
        assert html.escape(SUBJECT) in page
        # the join link exactly where it belongs, as the button and as text
        assert (previews.JOIN_URL in page) is with_link, name
        assert (previews.JOIN_URL in text) is with_link, name


def test_without_chromium_it_says_so_and_writes_html_only(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))

    previews.main(["--out", str(tmp_path), "--only", "approved-student"])

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("No Chromium on PATH")
    assert sum("Chromium" in line for line in lines) == 1
    approvals = {name for name in expected_pages() if name.startswith("approved-student.")}
    assert "approved-student.en.link.html" in approvals
    assert {p.name for p in tmp_path.glob("*.html")} == {*approvals, "index.html"}
    assert not list(tmp_path.glob("*.png"))


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_screenshots_as_wide_as_a_mail_and_as_tall_as_its_content(tmp_path):
    if previews.find_chromium() is None:
        pytest.skip("no Chromium on PATH (apt-get install chromium)")

    previews.main(["--out", str(tmp_path), "--only", "approved-student"])

    pages = sorted(tmp_path.glob("approved-student.*.html"))
    assert pages
    links = hrefs(tmp_path / "index.html")
    for page in pages:
        png = page.with_suffix(".png")
        width, height = png_size(png)
        assert width == previews.WIDTH
        assert previews.MIN_HEIGHT <= height < 1000  # cropped to the mail, not the window
        assert png.name in links
    readme = previews.readme_image(tmp_path / "readme" / "approval-mail.png")
    assert png_size(readme)[0] == previews.WIDTH
