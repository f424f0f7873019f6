"""What participants type can never become an e-mail header, and one address mail cannot carry
never stops the others' mail (found by attacking the mail path)."""

from __future__ import annotations

import base64
import email
import email.policy
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.domain.booking import Participant, ParticipantRole
from shared.domain.notices import MailStatus
from shared.mail.messages import BadAddressError, OutgoingMail, mime_bytes
from shared.mail.rendering import one_line
from shared.mail.transports import SendPacer
from tests.mail_world import mail_world
from tests.unit.test_mail_delivery import a_pending_booking, approve

OWN_HEADERS = {"From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type"}


def encoded(text: str) -> str:
    """An RFC 2047 encoded word hiding `text` (CR/LF included) from a control-character check."""
    return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="


def a_mail(**changes: object) -> OutgoingMail:
    mail = OutgoingMail(
        key="k",
        sender="meetings@demo.example",
        sender_name="Demo",
        to="student@example.com",
        to_name="Sam",
        subject="Confirmed: Maths",
        text="Hello",
        html="<p>Hello</p>",
        invite=b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n",
        method="REQUEST",
        sent_at=datetime(2026, 12, 1, tzinfo=UTC),
    )
    return replace(mail, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "field",
    ["subject", "to_name", "sender_name"],
)
def test_an_encoded_word_hiding_cr_lf_never_becomes_a_header(field: str):
    # GIVEN text with an encoded word that decodes to new header lines and a new body
    hostile = "Maths " + encoded(
        "x\r\nBcc: spy@evil.example\r\nReply-To: attacker@evil.example\r\n"
        "Content-Type: text/html\r\n\r\n<h1>Pay here</h1>"
    )

    # WHEN the message is written as it would be sent
    data = mime_bytes(a_mail(**{field: hostile}))

    # THEN it has exactly our own headers, and its body is still ours
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert set(message.keys()) == OWN_HEADERS
    assert b"Bcc:" not in data
    assert b"Reply-To:" not in data
    assert message.get_content_type() == "multipart/mixed"
    assert [a.addr_spec for a in message["To"].addresses] == ["student@example.com"]


def test_one_line_breaks_encoded_word_openers():
    assert "=?" not in one_line("a =?utf-8?q?x?= b")


@pytest.mark.parametrize(
    "address", ["sam@example.com.", "sam@example..com", "<sam@example.com", "sam,x@example.com"]
)
def test_an_address_the_mail_library_cannot_write_is_a_bad_address_not_a_crash(address: str):
    with pytest.raises(BadAddressError):
        mime_bytes(a_mail(to=address))


def test_one_participant_with_an_unusable_address_does_not_stop_the_others_mail(tmp_path: Path):
    with mail_world(tmp_path) as mw:
        # GIVEN a booking whose student's address (stored before addresses were checked this
        # strictly) no mail can be written to, and a tutor with a good one
        booking_id = a_pending_booking(
            mw,
            participants=(
                Participant("student-1", ParticipantRole.STUDENT, "sam@example.com."),
                Participant("tutor-1", ParticipantRole.TUTOR, "tutor@example.com", "Tia"),
            ),
        )

        # WHEN it is approved and the mail queue runs
        approve(mw, booking_id)
        mw.drain()

        # THEN the tutor has the mail, and the booking says the notice failed (for the student)
        assert [m["To"].addresses[0].addr_spec for m in mw.emls()] == ["tutor@example.com"]
        stored = mw.world.booking(booking_id)
        assert stored.mail.status is MailStatus.FAILED
        assert stored.mail.last_error_code == "bad_address"
        assert stored.mail.pending == ()


def test_the_pacer_never_books_more_sends_than_its_rate():
    now = [0.0]
    pacer = SendPacer(3, clock=lambda: now[0])
    booked = [pacer.take("m@x") for _ in range(3)]
    assert booked == [0.0, 0.0, 0.0]

    # WHEN six more ask once the first slot frees, each taking again after waiting
    now[0] = 60.0
    again = [pacer.take("m@x") for _ in range(6)]

    # THEN only as many as the rate allows got a slot
    assert again.count(0.0) == 3
    assert all(wait > 0 for wait in again[3:])


def test_the_mail_lease_outlives_one_send_with_its_retries():
    from shared.mail.delivery import lease_for
    from shared.work.policy import RetryPolicy

    policy = RetryPolicy()
    assert lease_for(40.0, policy) > timedelta(seconds=4 * 40 + 7)
    assert lease_for(10.0, policy) >= timedelta(minutes=2)


def test_times_across_a_clock_change_name_each_offset_and_a_late_end_its_date():
    from shared.mail.rendering import when
    from shared.mail.strings import Strings
    from tests.builders import a_booking

    # GIVEN a two-hour booking over London's change from BST to GMT (00:00-02:00 UTC)
    start = datetime(2026, 10, 25, 0, 0, tzinfo=UTC)
    over_change = a_booking(start=start, end=start + timedelta(hours=2))
    # AND one in New York that ends after midnight
    late = a_booking(
        time_zone="America/New_York",
        start=datetime(2026, 12, 2, 3, 0, tzinfo=UTC),
        end=datetime(2026, 12, 2, 6, 0, tzinfo=UTC),
    )

    # THEN each time says its own offset, and the late end says its day
    text = when(over_change, Strings())
    assert "01:00 BST" in text
    assert "02:00 GMT" in text
    late_text = when(late, Strings())
    assert "22:00" in late_text
    assert "2 December 2026 01:00" in late_text


def test_a_decline_tells_the_tutor_it_was_not_their_request():
    from shared.domain.notices import Notice, NoticeKind
    from shared.mail.rendering import MailRenderer, Recipient
    from tests.builders import a_booking

    booking = a_booking()
    notice = Notice(NoticeKind.DECLINED, 1, 0, datetime(2026, 12, 1, tzinfo=UTC))
    renderer = MailRenderer()

    to_tutor = renderer.render(
        booking, notice, Recipient("t@x.io", "Tia", ParticipantRole.TUTOR), ""
    )
    to_student = renderer.render(
        booking, notice, Recipient("s@x.io", "Sam", ParticipantRole.STUDENT), ""
    )

    assert "Your appointment request" not in to_tutor.text
    assert "was not approved" in to_tutor.text
    assert "Your appointment request" in to_student.text
