"""The three transports against real counterparts: an SMTP server (aiosmtpd, STARTTLS with the
local CA) started here, a folder read back with Python's `email` parser, and Graph sendMail on
the local Graph emulator over TLS."""

from __future__ import annotations

import base64
import email
import email.policy
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import icalendar
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from localdev.mailbox import invite_parts
from localdev.stack import free_port
from localdev.tls import LocalTls
from shared.domain.tenant import MicrosoftProfile
from shared.graph.client import GraphMeetingsClient
from shared.graph.session import TimeoutSession
from shared.graph.tokens import MsalTokenSource
from shared.mail.messages import OutgoingMail, mime_bytes
from shared.mail.transports import (
    FolderMailTransport,
    GraphMailTransport,
    MailRejectedError,
    MailTransientError,
    Sender,
    SmtpMailTransport,
    SmtpSettings,
)
from tests.imip import JOIN, an_approval_mail, read_imip
from tests.integration.conftest import CLIENT_ID, DIRECTORY, ORGANIZER

pytestmark = pytest.mark.integration

SENDER = Sender("tenant-a", ORGANIZER, "Tenant A", MicrosoftProfile(DIRECTORY, CLIENT_ID, "S"))


def approval_mail() -> OutgoingMail:
    return an_approval_mail(ORGANIZER, key_suffix="x")


def calendar_part(message: Any) -> bytes:
    parts: tuple[Any, Any] = invite_parts(message)
    part, attachment = parts
    assert part.get_param("method") == "REQUEST"
    payload: bytes = part.get_payload(decode=True)
    assert attachment.get_payload(decode=True) == payload
    return payload


# -- SMTP --------------------------------------------------------------------------------------


@dataclass
class Inbox:
    answer: str = "250 OK"
    messages: list[bytes] = field(default_factory=list)
    starttls_seen: list[bool] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.answer.startswith("250"):
            self.messages.append(envelope.original_content or envelope.content)
        self.starttls_seen.append(session.ssl is not None)
        return self.answer


@dataclass
class SmtpServer:
    inbox: Inbox
    port: int
    client_tls: ssl.SSLContext


def _start_smtp(local_tls: LocalTls, *, tls: bool = True, **kwargs: Any) -> Iterator[SmtpServer]:
    inbox = Inbox()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(local_tls.cert_file, local_tls.key_file)
    port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=server_tls if tls else None,
        require_starttls=tls,
        **kwargs,
    )
    controller.start()
    try:
        yield SmtpServer(inbox, port, ssl.create_default_context(cafile=str(local_tls.ca_file)))
    finally:
        controller.stop()


@pytest.fixture
def smtp(local_tls: LocalTls) -> Iterator[SmtpServer]:
    yield from _start_smtp(local_tls)


def test_smtp_sends_over_starttls_with_the_invite_attached(smtp: SmtpServer):
    transport = SmtpMailTransport(SmtpSettings("127.0.0.1", smtp.port), tls=smtp.client_tls)

    transport.send(approval_mail(), SENDER, "b1")

    (raw,) = smtp.inbox.messages
    assert smtp.inbox.starttls_seen == [True]
    message: Any = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["To"].addresses[0].addr_spec == "student@example.com"
    assert message["Subject"].startswith("Confirmed: Computer Science")
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert f"Join Teams Meeting: {JOIN}" in text
    event = icalendar.Calendar.from_ical(calendar_part(message)).walk("VEVENT")[0]
    assert str(event["URL"]) == JOIN


def test_smtp_sends_the_mime_bytes_of_an_imip_invitation(smtp: SmtpServer):
    mail = approval_mail()
    transport = SmtpMailTransport(SmtpSettings("127.0.0.1", smtp.port), tls=smtp.client_tls)

    transport.send(mail, SENDER, "b1")

    (raw,) = smtp.inbox.messages
    assert raw == mime_bytes(mail)  # the bytes Graph and the folder carry too
    invitation = read_imip(raw)
    assert (invitation.to, invitation.method, invitation.sequence) == (
        "student@example.com",
        "REQUEST",
        0,
    )


def test_smtp_carries_the_tenants_reply_to(smtp: SmtpServer):
    mail = replace(approval_mail(), reply_to="help@acme.example")
    transport = SmtpMailTransport(SmtpSettings("127.0.0.1", smtp.port), tls=smtp.client_tls)

    transport.send(mail, SENDER, "b1")

    (raw,) = smtp.inbox.messages
    assert raw == mime_bytes(mail)
    message: Any = email.message_from_bytes(raw, policy=email.policy.default)
    assert [a.addr_spec for a in message["Reply-To"].addresses] == ["help@acme.example"]
    assert message["From"].addresses[0].addr_spec == ORGANIZER
    assert read_imip(raw).method == "REQUEST"


def test_smtp_signs_in_with_the_configured_user_after_starttls(local_tls: LocalTls):
    seen: list[tuple[str, str, bool]] = []

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth: Any):
        assert isinstance(auth, LoginPassword)
        seen.append((auth.login.decode(), auth.password.decode(), session.ssl is not None))
        return AuthResult(success=True)

    for server in _start_smtp(local_tls, authenticator=authenticator, auth_required=True):
        settings = SmtpSettings("127.0.0.1", server.port, username="mailer", password="pw-1")
        SmtpMailTransport(settings, tls=server.client_tls).send(approval_mail(), SENDER, "b1")

        assert len(server.inbox.messages) == 1
        assert seen == [("mailer", "pw-1", True)]


@pytest.mark.parametrize(
    ("answer", "error", "code"),
    [
        ("451 4.3.0 try again later", MailTransientError, "smtp_451"),
        ("550 5.7.1 relaying denied", MailRejectedError, "smtp_550"),
    ],
)
def test_smtp_answers_are_classified(smtp: SmtpServer, answer, error, code):
    smtp.inbox.answer = answer
    transport = SmtpMailTransport(SmtpSettings("127.0.0.1", smtp.port), tls=smtp.client_tls)

    with pytest.raises(error) as raised:
        transport.send(approval_mail(), SENDER, "b1")

    assert raised.value.code == code
    assert smtp.inbox.messages == []


def test_a_server_without_starttls_is_refused_rather_than_used_in_clear(local_tls: LocalTls):
    for server in _start_smtp(local_tls, tls=False):
        transport = SmtpMailTransport(SmtpSettings("127.0.0.1", server.port), tls=server.client_tls)
        with pytest.raises(MailRejectedError) as refused:
            transport.send(approval_mail(), SENDER, "b1")

        assert refused.value.code == "smtp_no_starttls"
        assert server.inbox.messages == []


def test_an_unreachable_smtp_server_is_a_transient_failure():
    transport = SmtpMailTransport(SmtpSettings("127.0.0.1", free_port(), timeout=2))

    with pytest.raises(MailTransientError) as raised:
        transport.send(approval_mail(), SENDER, "b1")

    assert raised.value.code == "smtp_unavailable"


# -- folder ------------------------------------------------------------------------------------


def test_the_folder_transport_writes_eml_files_the_email_parser_reads_back(tmp_path: Path):
    transport = FolderMailTransport(tmp_path / "mail")
    mail = approval_mail()

    transport.send(mail, SENDER, "b1")

    (path,) = (tmp_path / "mail").glob("*.eml")
    assert path.read_bytes() == mime_bytes(mail)  # the bytes Graph and SMTP carry too
    assert read_imip(path.read_bytes()).method == "REQUEST"
    assert list((tmp_path / "mail").glob(".*")) == []  # no partial file left behind
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert message["From"].addresses[0].addr_spec == ORGANIZER
    assert message.get_content_type() == "multipart/mixed"
    assert message.get_body(preferencelist=("html",)) is not None
    calendar = icalendar.Calendar.from_ical(calendar_part(message))
    assert str(calendar["METHOD"]) == "REQUEST"


def test_the_folder_transport_keeps_the_tenants_reply_to(tmp_path: Path):
    mail = replace(approval_mail(), reply_to="help@acme.example")

    FolderMailTransport(tmp_path).send(mail, SENDER, "b1")

    (path,) = tmp_path.glob("*.eml")
    assert path.read_bytes() == mime_bytes(mail)
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert [a.addr_spec for a in message["Reply-To"].addresses] == ["help@acme.example"]


def test_an_unwritable_folder_is_a_transient_failure(tmp_path: Path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the folder should be")

    with pytest.raises(MailTransientError):
        FolderMailTransport(blocker).send(approval_mail(), SENDER, "b1")


# -- Graph -------------------------------------------------------------------------------------


def graph_transport(emulator: Any) -> GraphMailTransport:
    session = TimeoutSession(5.0)
    return GraphMailTransport(
        GraphMeetingsClient(
            base_url=emulator.graph_url,
            tokens=MsalTokenSource(
                authority_host=emulator.base_url,
                graph_base_url=emulator.graph_url,
                resolve_secret=lambda _: "services-secret",
                http=session,
                timeout=5.0,
            ),
            http=session,
            timeout=5.0,
        )
    )


def test_graph_sendmail_posts_the_message_with_its_invite_to_the_emulator(emulator):
    mail = approval_mail()

    graph_transport(emulator).send(mail, SENDER, "b1")

    (sent,) = emulator.mail
    assert sent["from"] == ORGANIZER
    assert sent["saveToSentItems"] is True
    # the MIME form: the body is the base64 of the very bytes SMTP and the folder write
    assert base64.b64decode(sent["mime"]) == mime_bytes(mail)
    assert read_imip(base64.b64decode(sent["mime"])).method == "REQUEST"
    message = sent["message"]
    assert message["toRecipients"] == [
        {"emailAddress": {"address": "student@example.com", "name": "Sam Student"}}
    ]
    assert f'href="{JOIN}"' in message["body"]["content"]
    assert message["meetingMessageType"] == "meetingRequest"
    (attachment,) = message["attachments"]
    assert attachment["contentType"] == "application/ics"
    assert base64.b64decode(attachment["contentBytes"]) == mail.invite


def test_graph_sendmail_carries_the_tenants_reply_to_and_none_without_one(emulator):
    branded = replace(approval_mail(), reply_to="help@acme.example")

    graph_transport(emulator).send(branded, SENDER, "b1")
    graph_transport(emulator).send(approval_mail(), SENDER, "b2")

    (with_reply_to, without) = emulator.mail
    assert base64.b64decode(with_reply_to["mime"]) == mime_bytes(branded)
    assert with_reply_to["message"]["replyTo"] == [
        {"emailAddress": {"address": "help@acme.example"}}
    ]
    assert "replyTo" not in without["message"]


def test_graph_refusals_and_outages_are_classified(emulator):
    from localdev.graph_emulator import Fault

    emulator.add_fault(Fault(operation="sendMail", status=503, count=1))
    with pytest.raises(MailTransientError):
        graph_transport(emulator).send(approval_mail(), SENDER, "b1")

    emulator.add_fault(Fault(operation="sendMail", status=403, graph_code="ErrorAccessDenied"))
    with pytest.raises(MailRejectedError) as refused:
        graph_transport(emulator).send(approval_mail(), SENDER, "b1")

    assert refused.value.code == "mail_forbidden"
    assert emulator.mail == []
