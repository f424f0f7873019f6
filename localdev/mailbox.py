"""Read the folder transport's `.eml` e-mails.

One entry per e-mail (file, to, subject, and its invite's METHOD, SEQUENCE and UID); with
`--by-recipient`, each recipient's e-mails in the order they were sent (the story each person
read); with `--show NAME`, one e-mail's MIME tree, then its plain-text part.

    .venv/bin/python -m localdev.mailbox [.local/mail] [--by-recipient] [--show FILE] [--ics]
"""

from __future__ import annotations

import argparse
import email
import email.policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any


def _read(path: Path) -> EmailMessage:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def invite_parts(message: EmailMessage) -> tuple[EmailMessage | None, EmailMessage | None]:
    """The invite twice: the `text/calendar; method=…` alternative (what mail clients show as
    an invitation) and the `invite.ics` attachment."""
    alternative = attachment = None
    for part in message.walk():
        assert isinstance(part, EmailMessage)
        if part.is_attachment() and part.get_filename() == "invite.ics":
            attachment = part
        elif part.get_content_type() == "text/calendar" and not part.is_attachment():
            alternative = part
    return alternative, attachment


def _invite(message: EmailMessage) -> bytes | None:
    for part in invite_parts(message):
        if part is not None:
            payload: Any = part.get_payload(decode=True)
            return bytes(payload)
    return None


def mime_tree(part: EmailMessage, depth: int = 0) -> list[str]:
    """One line per MIME part, indented by depth: its Content-Type, and how it is placed."""
    line = "  " * depth + str(part.get("Content-Type", part.get_content_type())).split(";")[0]
    given = part.get_params(header="content-type") or []
    params = [f"{k}={v}" for k, v in given[1:] if k != "boundary"]
    if params:
        line += "; " + "; ".join(params)
    if part.get_content_disposition() is not None:
        line += f" [{part.get_content_disposition()}: {part.get_filename()}]"
    lines = [line]
    if part.is_multipart():
        for child in part.iter_parts():
            assert isinstance(child, EmailMessage)
            lines += mime_tree(child, depth + 1)
    return lines


def _described(message: EmailMessage) -> str:
    from icalendar import Calendar

    invite = _invite(message)
    if invite is None:
        return "no invite"
    calendar: Any = Calendar.from_ical(invite)
    event = calendar.walk("VEVENT")[0]
    return f"{calendar['METHOD']} SEQUENCE:{event['SEQUENCE']} UID:{event['UID']}"


def _summary(path: Path) -> str:
    message = _read(path)
    return (
        f"{path.name}\n  To: {message['To']}\n  Subject: {message['Subject']}\n"
        f"  {_described(message)}"
    )


def stories(folder: Path) -> dict[str, list[str]]:
    """Each recipient's e-mails, oldest first (as written: file names begin with the second
    sent, and several go in one second): the subject and the invite's METHOD and SEQUENCE."""
    told: dict[str, list[str]] = {}
    for path in sorted(folder.glob("*.eml"), key=lambda p: (p.stat().st_mtime_ns, p.name)):
        message = _read(path)
        language = message.get("Content-Language")
        said = f"{message['Subject']}  [{_described(message).rsplit(' UID:', 1)[0]}]"
        told.setdefault(str(message["To"]), []).append(f"{said} ({language})" if language else said)
    return told


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", default=".local/mail", type=Path)
    parser.add_argument(
        "--by-recipient", action="store_true", help="each recipient's e-mails, in order"
    )
    parser.add_argument("--show", help="print this file's MIME tree and plain-text part")
    parser.add_argument("--ics", action="store_true", help="with --show: print its invite too")
    args = parser.parse_args()
    if args.show:
        message = _read(args.folder / args.show)
        reply_to = f"Reply-To: {message['Reply-To']}\n" if message["Reply-To"] else ""
        print(
            f"From: {message['From']}\n{reply_to}To: {message['To']}\n"
            f"Subject: {message['Subject']}\n"
        )
        print("\n".join(mime_tree(message)) + "\n")
        body = message.get_body(preferencelist=("plain",))
        print(body.get_content() if body is not None else "(no text part)")
        invite = _invite(message)
        if args.ics and invite is not None:
            print(invite.decode("utf-8"))
        return
    if args.by_recipient:
        for recipient, mails in stories(args.folder).items():
            print(recipient)
            for number, said in enumerate(mails, 1):
                print(f"  {number}. {said}")
        return
    for path in sorted(args.folder.glob("*.eml")):
        print(_summary(path))


if __name__ == "__main__":
    main()
