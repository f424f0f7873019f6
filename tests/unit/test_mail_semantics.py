"""Mail that makes sense to each recipient (SPEC §8): what a change tells people, and when it
tells them nothing."""

from __future__ import annotations

from shared.services import bookings as use_cases
from tests.mail_world import mail_world
from tests.unit.test_mail_delivery import STAFF, a_pending_booking, approve


def test_a_reschedule_to_the_times_the_booking_has_changes_nothing_and_mails_no_one():
    with mail_world() as mw:
        # GIVEN a confirmed booking whose meeting and mails have gone out
        booking_id = a_pending_booking(mw)
        approve(mw, booking_id)
        mw.world.drain()
        mw.drain()
        before = mw.world.booking(booking_id)
        updates = mw.world.emulator.calls["patchMeeting"]
        sent = len(mw.world.emulator.mail)

        # WHEN it is rescheduled to the times it already has
        result = use_cases.reschedule_booking(
            STAFF, booking_id, (before.start, before.end), mw.deps
        )

        # THEN nothing was saved, Teams was not asked, and no one is mailed
        assert result.warning is None
        after = mw.world.booking(booking_id)
        assert after.version == before.version
        assert after.mail.pending == ()
        assert mw.queue.messages == []
        assert mw.world.queue.messages == []
        mw.drain()
        assert mw.world.emulator.calls["patchMeeting"] == updates
        assert len(mw.world.emulator.mail) == sent
