"""Invitations are iMIP (RFC 6047): each mail is multipart/mixed ⟶ [multipart/alternative
(text/plain, text/html, `text/calendar; method=…; charset=utf-8`), `invite.ics` attached], the
alternative and the attachment the same bytes, and every transport sends the same MIME bytes.

Mail goes through the real transports: Graph sendMail in MIME form answered by the emulator at
the wire, and the folder of `.eml` files (SMTP: tests/integration/test_mail_transports.py).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from shared.auth.principal import Principal, Role
from shared.domain.booking import BookingStatus
from shared.domain.tenant import MicrosoftProfile
from shared.mail.ics import uid_of
from shared.mail.messages import OutgoingMail, mime_bytes
from shared.mail.transports import FolderMailTransport, GraphMailTransport, Sender
from shared.services import bookings as use_cases
from shared.services.bookings import Approval
from tests.builders import a_booking
from tests.imip import Invitation, read_imip
from tests.imip import an_approval_mail as imip_mail
from tests.mail_world import TENANT, MailWorld, mail_world
from tests.memory_world import CLIENT_ID, DIRECTORY

STAFF = Principal("staff-1", TENANT, frozenset({Role.STAFF}))
SENDER = "organizer@a.example"
Reader = Callable[[MailWorld], list[bytes]]


def an_approval_mail() -> OutgoingMail:
    return imip_mail(SENDER)


def a_pending_booking(mw: MailWorld) -> str:
    start = mw.world.clock.now + timedelta(days=3)
    booking = a_booking(
        tenant_id=TENANT, start=start, end=start + timedelta(hours=1), status=BookingStatus.PENDING
    )
    return mw.world.bookings.add(booking).booking_id


def approve_reschedule_cancel(mw: MailWorld, booking_id: str, read: Reader) -> list[bytes]:
    """The booking approved, moved and cancelled, mail going out after each change; the mails
    `read` finds, in the order of the changes they tell."""
    told: list[bytes] = []

    def then_mail() -> None:
        mw.drain()
        told.extend(raw for raw in read(mw) if raw not in told)

    use_cases.approve_booking(STAFF, booking_id, Approval(), mw.deps)
    then_mail()
    start = mw.world.clock.now + timedelta(days=4)
    use_cases.reschedule_booking(STAFF, booking_id, (start, start + timedelta(hours=1)), mw.deps)
    then_mail()
    use_cases.cancel_booking(STAFF, booking_id, "Tutor unwell", mw.deps)
    then_mail()
    return told


def graph_mails(mw: MailWorld) -> list[bytes]:
    """The MIME bytes each sendMail carried, as the emulator received them on the wire."""
    return [base64.b64decode(m["mime"], validate=True) for m in mw.world.emulator.mail]


def folder_mails(mw: MailWorld) -> list[bytes]:
    assert mw.folder is not None
    return [p.read_bytes() for p in sorted(mw.folder.glob("*.eml"))]


def assert_a_story_per_recipient(invitations: list[Invitation], uid: str) -> None:
    """Each recipient: a REQUEST, a REQUEST with a higher SEQUENCE, then a CANCEL; one UID."""
    for person in ("student@example.com", "tutor@example.com"):
        theirs = [i for i in invitations if i.to == person]
        assert [i.method for i in theirs] == ["REQUEST", "REQUEST", "CANCEL"], person
        assert {i.uid for i in theirs} == {uid}
        sequences = [i.sequence for i in theirs]
        assert sequences == sorted(set(sequences)), person  # strictly increasing


def test_graph_sendmail_sends_imip_mime_for_approve_reschedule_and_cancel():
    with mail_world() as mw:
        # GIVEN a pending booking with a student and a tutor
        booking_id = a_pending_booking(mw)

        # WHEN it is approved, moved and cancelled, mail going out after each change
        told = approve_reschedule_cancel(mw, booking_id, graph_mails)

        # THEN every sendMail was in MIME form, each an iMIP invitation in order
        sent = mw.world.emulator.mail
        assert len(sent) == 6
        assert all(m["from"] == SENDER for m in sent)
        assert told == graph_mails(mw)
        invitations = [read_imip(raw) for raw in told]
        assert_a_story_per_recipient(invitations, uid_of(mw.world.booking(booking_id)))
        # and Graph read them as meeting messages, the invite attached once
        kinds = [m["message"]["meetingMessageType"] for m in sent]
        assert kinds == ["meetingRequest"] * 4 + ["meetingCancelled"] * 2
        assert all(len(m["message"]["attachments"]) == 1 for m in sent)


def test_the_folder_writes_imip_mime_for_approve_reschedule_and_cancel(tmp_path: Path):
    with mail_world(tmp_path / "mail") as mw:
        booking_id = a_pending_booking(mw)

        told = approve_reschedule_cancel(mw, booking_id, folder_mails)

        invitations = [read_imip(raw) for raw in told]
        assert len(invitations) == 6
        assert_a_story_per_recipient(invitations, uid_of(mw.world.booking(booking_id)))


def test_a_declined_request_is_a_cancel():
    with mail_world() as mw:
        booking_id = a_pending_booking(mw)

        use_cases.decline_booking(STAFF, booking_id, "No tutor free", mw.deps)
        mw.drain()

        invitations = [read_imip(raw) for raw in graph_mails(mw)]
        assert invitations
        assert {i.method for i in invitations} == {"CANCEL"}


def test_graph_and_the_folder_send_the_same_bytes_for_the_same_mail(tmp_path: Path):
    # GIVEN one mail
    mail = an_approval_mail()
    with mail_world() as mw:
        sender = Sender(TENANT, SENDER, "Tenant A", MicrosoftProfile(DIRECTORY, CLIENT_ID, "S"))

        # WHEN Graph sendMail and the folder each send it
        GraphMailTransport(mw.world.services.graph).send(mail, sender, "b1")
        FolderMailTransport(tmp_path).send(mail, sender, "b1")

        # THEN Graph got the base64 of its MIME bytes (in MIME form: text/plain), and the
        # folder wrote those very bytes
        (sent,) = mw.world.emulator.mail
        (eml,) = tmp_path.glob("*.eml")
        assert sent["mime"] == base64.b64encode(mime_bytes(mail)).decode("ascii")
        assert base64.b64decode(sent["mime"]) == eml.read_bytes() == mime_bytes(mail)
        assert read_imip(eml.read_bytes()).method == "REQUEST"


def test_mime_bytes_are_the_same_each_time_they_are_written():
    mail = an_approval_mail()

    assert mime_bytes(mail) == mime_bytes(mail)
    assert read_imip(mime_bytes(mail)).method == "REQUEST"


def test_the_emulator_refuses_mime_that_is_not_a_message_as_graph_does():
    from shared.graph.client import CallContext
    from shared.graph.errors import GraphError

    with mail_world() as mw:
        profile = MicrosoftProfile(DIRECTORY, CLIENT_ID, "S")
        ctx = CallContext(tenant_id=TENANT, operation="email")

        with pytest.raises(GraphError) as refused:
            mw.world.services.graph.send_mime_mail(profile, SENDER, b"no headers, no one", ctx)

        assert refused.value.status == 400
        assert refused.value.graph_code == "ErrorMimeContentInvalid"
        assert mw.world.emulator.mail == []
