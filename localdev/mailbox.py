"""Read the folder transport's `.eml` files: one line per e-mail (when, to, subject, and its
invite's METHOD, SEQUENCE and UID), or one e-mail in full with `--show NAME`.

    .venv/bin/python -m localdev.mailbox [.local/mail] [--show FILE] [--ics]
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


def _invite(message: EmailMessage) -> bytes | None:
    for part in message.iter_attachments():
        if part.get_content_type() == "text/calendar":
            payload: Any = part.get_payload(decode=True)
            return bytes(payload)
    return None


def _summary(path: Path) -> str:
    from icalendar import Calendar

    message = _read(path)
    invite = _invite(message)
    described = "no invite"
    if invite is not None:
        calendar: Any = Calendar.from_ical(invite)
        event = calendar.walk("VEVENT")[0]
        described = f"{calendar['METHOD']} SEQUENCE:{event['SEQUENCE']} UID:{event['UID']}"
    return f"{path.name}\n  To: {message['To']}\n  Subject: {message['Subject']}\n  {described}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default=".local/mail", type=Path)
    parser.add_argument("--show", help="print this file's plain-text part")
    parser.add_argument("--ics", action="store_true", help="with --show: print its invite too")
    args = parser.parse_args()
    if args.show:
        message = _read(args.folder / args.show)
        print(f"From: {message['From']}\nTo: {message['To']}\nSubject: {message['Subject']}\n")
        body = message.get_body(preferencelist=("plain",))
        print(body.get_content() if body is not None else "(no text part)")
        invite = _invite(message)
        if args.ics and invite is not None:
            print(invite.decode("utf-8"))
        return
    for path in sorted(args.folder.glob("*.eml")):
        print(_summary(path))


if __name__ == "__main__":
    main()
