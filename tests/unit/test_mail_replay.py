"""Replaying a poisoned mail message after the fix (`scripts/poison.py replay`): the notice that
finished as failed is owed again and goes to whoever does not have it yet, once."""

from __future__ import annotations

from collections import Counter

import pytest

from localdev.graph_emulator import Fault
from shared.domain.notices import MailStatus
from shared.services import bookings as use_cases
from shared.services.bookings import Approval
from shared.services.replay import PoisonReplay, ReplayError
from shared.storage.poisoned import MAIL_WORK, HeldMessage
from tests.mail_world import MailWorld, mail_world
from tests.unit.test_mail_delivery import STAFF, a_pending_booking, reschedule


def held(mw: MailWorld) -> HeldMessage:
    """The one poisoned mail message, as the operator's command reads it from `mail-parked`."""
    (poisoned,) = mw.queue.poisoned
    mw.queue.poisoned.clear()
    return HeldMessage(MAIL_WORK, MAIL_WORK.parked, "m-1", poisoned.to_text(), None, 1)


def replay(mw: MailWorld, message: HeldMessage) -> str:
    replayer = PoisonReplay(mw.world.bookings, {"mail": mw.queue}, mw.world.clock)
    return replayer.replay(message).note


def sent_to(mw: MailWorld) -> Counter[str]:
    return Counter(
        m["message"]["toRecipients"][0]["emailAddress"]["address"] for m in mw.world.emulator.mail
    )


def failed_approval(mw: MailWorld, fault: Fault) -> str:
    mw.world.emulator.add_fault(fault)
    booking_id = a_pending_booking(mw)
    use_cases.approve_booking(STAFF, booking_id, Approval(), mw.deps)
    mw.drain()
    assert mw.world.booking(booking_id).mail.status is MailStatus.FAILED
    mw.world.emulator.clear_faults()
    return str(booking_id)


def test_a_mail_failed_for_good_is_sent_after_the_fix_when_its_message_is_replayed():
    with mail_world() as mw:
        # GIVEN the approval mail refused for good (Mail.Send not granted), then the fix
        booking_id = failed_approval(
            mw, Fault(operation="sendMail", status=403, graph_code="ErrorAccessDenied")
        )
        message = held(mw)
        assert not mw.world.emulator.mail

        # WHEN the operator replays its poisoned message
        note = replay(mw, message)
        mw.drain()

        # THEN both participants get the approval, with its invite, and the booking says sent
        assert "notice 1 (approved) owed again" in note
        assert sent_to(mw) == Counter({"student@example.com": 1, "tutor@example.com": 1})
        stored = mw.world.booking(booking_id)
        assert stored.mail.status is MailStatus.SENT
        assert stored.mail.pending == ()
        assert mw.queue.poisoned == []


def test_a_replay_sends_only_to_the_recipients_who_did_not_have_it_and_only_once():
    with mail_world() as mw:
        # GIVEN the first recipient had the mail, the second's send refused for good
        booking_id = failed_approval(
            mw,
            Fault(
                operation="sendMail", status=403, graph_code="ErrorAccessDenied", count=1, share=0.5
            ),
        )
        first = sent_to(mw)
        assert sum(first.values()) == 1
        message = held(mw)

        # WHEN the message is replayed, and replayed again (the operator ran it twice)
        replay(mw, message)
        mw.drain()
        again = replay(mw, message)
        mw.drain()

        # THEN everybody has it exactly once
        assert sent_to(mw) == Counter({"student@example.com": 1, "tutor@example.com": 1})
        assert "nothing left to send" in again
        stored = mw.world.booking(booking_id)
        assert stored.mail.status is MailStatus.SENT
        assert stored.mail.sent == 1


def test_a_notice_a_newer_one_has_told_is_not_sent_again():
    with mail_world() as mw:
        # GIVEN the approval failed for good, and the booking was moved after the fix (that
        # notice went, and renders the booking as it is now, with a higher SEQUENCE)
        booking_id = failed_approval(
            mw, Fault(operation="sendMail", status=403, graph_code="ErrorAccessDenied")
        )
        message = held(mw)
        reschedule(mw, booking_id)
        mw.drain()
        told = sent_to(mw)
        assert sum(told.values()) == 2

        # WHEN the old approval's message is replayed
        note = replay(mw, message)
        mw.drain()

        # THEN nothing more is sent, and the booking's mail stays as the newer notice left it
        assert "nothing left to send" in note
        assert sent_to(mw) == told
        assert mw.world.booking(booking_id).mail.status is MailStatus.SENT


def test_a_poisoned_mail_message_carries_its_notice_and_an_unknown_kind_is_refused():
    with mail_world() as mw:
        failed_approval(mw, Fault(operation="sendMail", status=403, graph_code="ErrorAccessDenied"))
        (poisoned,) = mw.queue.poisoned
        assert (poisoned.notice, poisoned.notice_kind, poisoned.sequence) == (1, "approved", 0)
        text = poisoned.to_text().replace('"approved"', '"telegram"')
        message = HeldMessage(MAIL_WORK, MAIL_WORK.parked, "m-2", text, None, 1)

        with pytest.raises(ReplayError, match="no known notice kind"):
            replay(mw, message)
        assert mw.queue.messages == []
