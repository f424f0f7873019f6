"""Mail that makes sense to each recipient (SPEC §8): what a change tells people, and when it
tells them nothing."""

from __future__ import annotations

from pathlib import Path

from localdev.graph_emulator import Fault
from shared.services import bookings as use_cases
from tests.mail_world import mail_world
from tests.unit.test_mail_delivery import STAFF, a_pending_booking, approve, cancel, reschedule


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


def mails_to(mw) -> dict[str, list[str]]:
    """Each recipient's subjects (in the folder's order, which is not the order sent)."""
    story: dict[str, list[str]] = {}
    for mail in mw.emls():
        to = str(mail["To"]).rsplit("<", 1)[-1].rstrip(">")
        story.setdefault(to, []).append(str(mail["Subject"]))
    return story


def test_a_tutor_never_told_of_a_lesson_gets_no_cancellation_for_it(tmp_path: Path):
    with mail_world(tmp_path) as mw:
        # GIVEN Teams slow to make the meeting, so the approval's mail waits for its link
        mw.world.emulator.add_fault(Fault(operation="createOrGet", status=503, count=3))
        booking_id = a_pending_booking(mw)

        # WHEN it is approved, rescheduled and cancelled within seconds
        approve(mw, booking_id)
        reschedule(mw, booking_id)
        cancel(mw, booking_id)
        mw.world.drain()
        mw.drain()

        # THEN the student, who asked for it, is told it was cancelled; the tutor nothing
        story = mails_to(mw)
        assert [s.split(":")[0] for s in story.get("student@example.com", [])] == ["Cancelled"]
        assert "tutor@example.com" not in story


def test_a_declined_request_is_told_to_the_requester_only(tmp_path: Path):
    with mail_world(tmp_path) as mw:
        booking_id = a_pending_booking(mw)

        use_cases.decline_booking(STAFF, booking_id, "No tutor free", mw.deps)
        mw.drain()

        story = mails_to(mw)
        assert list(story) == ["student@example.com"]


def test_once_the_lesson_was_announced_a_cancellation_goes_to_everyone(tmp_path: Path):
    with mail_world(tmp_path) as mw:
        booking_id = a_pending_booking(mw)
        approve(mw, booking_id)
        mw.world.drain()
        mw.drain()

        cancel(mw, booking_id)
        mw.drain()

        story = mails_to(mw)
        assert sorted(s.split(":")[0] for s in story["student@example.com"]) == [
            "Cancelled",
            "Confirmed",
        ]
        assert sorted(s.split(":")[0] for s in story["tutor@example.com"]) == [
            "Assigned to you",
            "Cancelled",
        ]
