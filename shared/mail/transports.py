"""How an e-mail leaves: Microsoft Graph sendMail (production), SMTP with STARTTLS, or a folder of
`.eml` files (local runs). One interface, chosen by `MAIL_TRANSPORT`, and one error tree:
services branch on `retryable`, never on message text."""

from __future__ import annotations

import logging
import os
import re
import smtplib
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from shared.domain.branding import Branding
from shared.errors import AppError
from shared.graph.errors import GraphError, GraphForbiddenError, GraphThrottledError
from shared.mail.messages import BadAddressError, OutgoingMail, mime_bytes
from shared.observability import log_event

if TYPE_CHECKING:
    from shared.domain.tenant import MicrosoftProfile
    from shared.graph.client import GraphMeetingsClient

logger = logging.getLogger("meetings.mail")


class MailError(AppError):
    """A mail was not sent. `retryable`: the same mail may go through later."""

    retryable = False

    def __init__(self, message: str, code: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after


class MailTransientError(MailError):
    """The transport is unavailable, timed out or asked us to slow down."""

    retryable = True


class MailRejectedError(MailError):
    """The transport refused this mail (address, permission, configuration)."""


class MailRecipientRefusedError(MailRejectedError):
    """This recipient cannot have the mail (its address, or text the mail cannot carry); the
    other recipients of the same notice still can."""


@dataclass(frozen=True)
class Sender:
    """Whom a tenant's mail comes from. `profile`: its Microsoft profile, for Graph;
    `branding`: how its mail looks and where replies go."""

    tenant_id: str
    address: str
    name: str | None
    profile: MicrosoftProfile | None
    branding: Branding = field(default_factory=Branding)


class MailTransport(Protocol):
    def send(self, mail: OutgoingMail, sender: Sender, booking_id: str) -> None:
        """Send `mail` or raise `MailError`."""
        ...


class GraphMailTransport:
    """`POST /users/{sender}/sendMail` in MIME form: the message's own bytes, so Exchange sees
    the iMIP invitation the other transports send. The app needs the
    `Mail.Send` application permission, restricted to the sending mailbox by an Exchange
    application access policy (docs/integrations/teams-meetings-setup.md)."""

    def __init__(self, graph: GraphMeetingsClient) -> None:
        self._graph = graph

    def send(self, mail: OutgoingMail, sender: Sender, booking_id: str) -> None:
        from shared.graph.client import CallContext

        if sender.profile is None:
            raise MailRejectedError(
                "the tenant has no Microsoft profile to send mail with", "not_configured"
            )
        try:
            data = mime_bytes(mail)
        except BadAddressError as exc:
            raise MailRecipientRefusedError(str(exc), "bad_address") from exc
        ctx = CallContext(tenant_id=sender.tenant_id, operation="email", booking_id=booking_id)
        try:
            self._graph.send_mime_mail(sender.profile, sender.address, data, ctx)
        except GraphThrottledError as exc:
            raise MailTransientError(str(exc), exc.code, exc.retry_after) from exc
        except GraphForbiddenError as exc:
            # Mail.Send is missing, or the Exchange access policy leaves this mailbox out.
            raise MailRejectedError(str(exc), "mail_forbidden") from exc
        except GraphError as exc:
            error = MailTransientError if exc.retryable else MailRejectedError
            raise error(str(exc), exc.code, exc.retry_after) from exc


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 587
    username: str | None = None
    password: str | None = None
    timeout: float = 20.0


class SmtpMailTransport:
    """SMTP submission with STARTTLS (never in clear), then AUTH when a user is set."""

    def __init__(self, settings: SmtpSettings, tls: ssl.SSLContext | None = None) -> None:
        self._settings = settings
        self._tls = tls or ssl.create_default_context()

    def send(self, mail: OutgoingMail, sender: Sender, booking_id: str) -> None:
        try:
            data = mime_bytes(mail)
        except BadAddressError as exc:
            raise MailRecipientRefusedError(str(exc), "bad_address") from exc
        s = self._settings
        started = time.perf_counter()
        code = "sent"
        try:
            with smtplib.SMTP(s.host, s.port, timeout=s.timeout) as smtp:
                smtp.starttls(context=self._tls)
                if s.username:
                    smtp.login(s.username, s.password or "")
                smtp.sendmail(mail.sender, [mail.to], data)
        except smtplib.SMTPNotSupportedError as exc:
            code = "smtp_no_starttls"
            raise MailRejectedError("the SMTP server does not offer STARTTLS", code) from exc
        except smtplib.SMTPAuthenticationError as exc:
            code = "smtp_auth"
            raise MailRejectedError("the SMTP server refused the sign-in", code) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [c for c, _ in exc.recipients.values()]
            code = f"smtp_{codes[0]}" if codes else "smtp_refused"
            if all(400 <= c < 500 for c in codes):
                raise MailTransientError("the SMTP server refused the recipient", code) from exc
            raise MailRecipientRefusedError("the SMTP server refused the recipient", code) from exc
        except smtplib.SMTPResponseException as exc:
            code = f"smtp_{exc.smtp_code}"
            error = MailTransientError if 400 <= exc.smtp_code < 500 else MailRejectedError
            raise error(f"the SMTP server answered {exc.smtp_code}", code) from exc
        except (smtplib.SMTPException, OSError) as exc:
            # Connection refused or dropped, timeouts, TLS failures: the server may come back.
            code = "smtp_unavailable"
            raise MailTransientError(
                f"the SMTP server is unreachable ({type(exc).__name__})", code
            ) from exc
        finally:
            _log_send("smtp", sender, booking_id, started, code)


_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


class FolderMailTransport:
    """Writes each mail as an `.eml` file (RFC 5322, what a mail client opens) into a folder:
    the local default. Written to a temporary name and renamed, so a reader never sees half."""

    def __init__(self, folder: Path, clock: Callable[[], float] = time.time) -> None:
        self._folder = folder
        self._clock = clock

    @property
    def folder(self) -> Path:
        return self._folder

    def send(self, mail: OutgoingMail, sender: Sender, booking_id: str) -> None:
        started = time.perf_counter()
        try:
            data = mime_bytes(mail)
        except BadAddressError as exc:
            raise MailRecipientRefusedError(str(exc), "bad_address") from exc
        name = (
            f"{mail.sent_at.strftime('%Y%m%dT%H%M%S')}-{_UNSAFE.sub('_', booking_id)[:40]}-"
            f"{mail.message_id[1:13]}.eml"
        )
        try:
            self._folder.mkdir(parents=True, exist_ok=True)
            partial = self._folder / f".{name}.partial"
            partial.write_bytes(data)
            os.replace(partial, self._folder / name)
        except OSError as exc:
            _log_send("folder", sender, booking_id, started, "folder_unwritable")
            raise MailTransientError(
                f"the mail folder is not writable ({exc.strerror})", "folder_unwritable"
            ) from exc
        _log_send("folder", sender, booking_id, started, "sent")


def _log_send(transport: str, sender: Sender, booking_id: str, started: float, code: str) -> None:
    log_event(
        logger,
        logging.INFO if code == "sent" else logging.WARNING,
        "mail_sent" if code == "sent" else "mail_failed",
        tenant=sender.tenant_id,
        bookingId=booking_id,
        operation="email",
        transport=transport,
        latencyMs=round((time.perf_counter() - started) * 1000, 1),
        errorCode=None if code == "sent" else code,
    )


class SendPacer:
    """Keeps one process within a mailbox's send rate (Exchange: about 30 a minute): `delay`
    says how long to wait before the next send from `sender`, and books the slot when it is
    free. Several instances each pace themselves; Graph's 429 + Retry-After backs that up."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._per_minute = per_minute
        self._clock = clock
        self._sent: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def take(self, sender: str) -> float:
        """0 and the slot is booked; or the seconds until a slot frees (nothing booked)."""
        with self._lock:
            now = self._clock()
            recent = [t for t in self._sent.get(sender.lower(), []) if now - t < 60.0]
            if len(recent) >= self._per_minute:
                self._sent[sender.lower()] = recent
                return max(recent[0] + 60.0 - now, 0.001)
            recent.append(now)
            self._sent[sender.lower()] = recent
            return 0.0
