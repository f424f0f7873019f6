"""One e-mail to one recipient and its one wire form: a MIME message, the same bytes over Graph
sendMail (MIME form), SMTP and `.eml` files. The invite is iMIP (RFC 6047): a `text/calendar;
method=…` alternative beside the text and HTML, and the same bytes attached as `invite.ics`."""

from __future__ import annotations

import email.policy
import hashlib
from dataclasses import dataclass
from datetime import datetime
from email.errors import MessageError
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime

from shared.errors import AppError
from shared.mail.rendering import MAX_NAME_CHARS, one_line

INVITE_FILENAME = "invite.ics"
# The attachment is `application/ics`, not a second `text/calendar; method=…` part: a client then
# finds one scheduling message (the alternative) and the file is only a file, as Google Calendar
# sends it; a second text/calendar part is shown twice, or as "not supported calendar message".
INVITE_ATTACHMENT_TYPE = "application/ics"


class BadAddressError(AppError, ValueError):
    """An address a message cannot be sent to (or from), or text a message cannot carry."""

    code = "bad_address"


# What a message carries at its top level; anything else in the serialized bytes would be a
# header someone smuggled in through the text, and the message is refused instead of sent.
_HEADERS = frozenset(
    {
        "from",
        "to",
        "reply-to",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "content-language",
    }
)


@dataclass(frozen=True)
class OutgoingMail:
    """What the worker hands a transport. `key` names the notice and recipient it serves."""

    key: str
    sender: str
    sender_name: str | None
    to: str
    to_name: str | None
    subject: str
    text: str
    html: str
    invite: bytes | None  # None: a mail that invites to nothing (a no-show to the staff)
    method: str  # the invite's METHOD: REQUEST or CANCEL
    sent_at: datetime
    # Where answers go (the tenant's branding), when not to the sender.
    reply_to: str | None = None
    language: str | None = None  # its Content-Language ("en", "de"); None: not said

    @property
    def message_id(self) -> str:
        # The same notice and recipient always make the same Message-ID, so a mail system that
        # de-duplicates by it drops a copy sent again after a crash.
        digest = hashlib.sha256(self.key.encode()).hexdigest()[:32]
        return f"<{digest}@meetings-service>"


def _address(addr: str, name: str | None) -> Address:
    try:
        return Address(display_name=one_line(name, MAX_NAME_CHARS), addr_spec=addr)
    except (ValueError, IndexError, TypeError, AttributeError, MessageError) as exc:
        raise BadAddressError(f"not an address mail can go to: {one_line(addr, 80)!r}") from exc


def _reply_to(addr: str | None) -> Address | None:
    """The Reply-To address, or None for none, or for one the mail library cannot write as a
    single address (the settings refuse such a value; a mail still goes without it)."""
    if not addr:
        return None
    try:
        return _address(addr, None)
    except BadAddressError:
        return None


def mime_bytes(mail: OutgoingMail) -> bytes:
    """The message as sent (SMTP) or stored (`.eml`). Raises `BadAddressError` for an address
    or text the mail library cannot write, and for serialized headers other than our own."""
    try:
        data = to_mime(mail).as_bytes()
    except BadAddressError:
        raise
    except (ValueError, IndexError, TypeError, AttributeError, MessageError) as exc:
        raise BadAddressError(f"the message cannot be written ({type(exc).__name__})") from exc
    parsed = BytesParser(policy=email.policy.default).parsebytes(data, headersonly=True)
    written = [name.lower() for name in parsed.keys()]  # noqa: SIM118 (a list, with repeats)
    if not set(written) <= _HEADERS or len(written) != len(set(written)):
        raise BadAddressError("the message's headers are not the ones it was given")
    return data


def to_mime(mail: OutgoingMail) -> EmailMessage:
    """multipart/mixed: a multipart/alternative (text/plain, text/html, then the invite as
    `text/calendar; method=…; charset=utf-8`), then the same invite bytes as `invite.ics`;
    without an invite, the multipart/alternative alone."""
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = _address(mail.sender, mail.sender_name)
    message["To"] = _address(mail.to, mail.to_name)
    reply_to = _reply_to(mail.reply_to)
    if reply_to is not None:
        message["Reply-To"] = reply_to
    message["Subject"] = one_line(mail.subject)
    message["Date"] = format_datetime(mail.sent_at)
    message["Message-ID"] = mail.message_id
    message.set_content(mail.text, subtype="plain", charset="utf-8")
    message.add_alternative(mail.html, subtype="html", charset="utf-8")
    if mail.invite is not None:
        message.add_alternative(
            mail.invite,
            maintype="text",
            subtype="calendar",
            params={"method": mail.method, "charset": "utf-8"},
        )
        maintype, subtype = INVITE_ATTACHMENT_TYPE.split("/")
        message.add_attachment(
            mail.invite, maintype=maintype, subtype=subtype, filename=INVITE_FILENAME
        )
    if mail.language:
        # After the parts are made: making a multipart moves Content-* headers into its first
        # part, and the language is the whole message's (RFC 3282).
        message["Content-Language"] = one_line(mail.language, 35)
    # Boundaries from the Message-ID, so one mail is one sequence of bytes whoever writes it. A
    # boundary with "=_" cannot occur in base64 or quoted-printable text (where "=" is "=3D").
    token = mail.message_id[1:33]
    if mail.invite is None:
        message.set_boundary(f"=_alt_{token}")  # multipart/alternative: text and HTML only
        return message
    message.set_boundary(f"=_mixed_{token}")
    (alternative, _) = message.iter_parts()
    alternative.set_boundary(f"=_alt_{token}")
    return message
