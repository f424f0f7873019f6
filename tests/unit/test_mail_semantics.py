"""Mail that makes sense to each recipient (SPEC §8): what a change tells people, and when it
tells them nothing. Mail still waiting when a later change comes goes as one mail telling the
booking as it is now (the mail story rule, docs/architecture.md)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from localdev.graph_emulator import Fault
from shared.domain.booking import BookingStatus, Participant, ParticipantRole
from shared.domain.notices import MAX_PENDING, MailStatus
from shared.services import bookings as use_cases
from shared.storage.mail import ClaimOutcome, MailKey
from tests.builders import a_booking
from tests.mail_story import received
from tests.mail_world import TENANT, MailWorld, mail_world
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


def test_a_cancellation_without_announcement_goes_only_to_the_requester(tmp_path: Path):
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


def a_booking_starting_soon(mw: MailWorld) -> str:
    """Pending, starting within pre-start verification's window (the timer looks at Teams)."""
    start = mw.world.clock.now + timedelta(hours=20)
    booking = a_booking(
        tenant_id=TENANT,
        start=start,
        end=start + timedelta(hours=1),
        status=BookingStatus.PENDING,
    )
    return mw.world.bookings.add(booking).booking_id


def test_a_meeting_remade_before_the_first_mail_sends_one_mail_with_the_current_link():
    with mail_world() as mw:
        # GIVEN an approved booking whose meeting was made, its approval not mailed yet
        booking_id = a_booking_starting_soon(mw)
        approve(mw, booking_id)
        mw.queue.messages.clear()  # the approval's mail has not gone yet
        old_link = mw.world.booking(booking_id).meeting.join_url
        meeting_id = mw.world.booking(booking_id).meeting.meeting_id
        assert old_link is not None
        assert meeting_id is not None

        # WHEN the meeting is deleted in Teams and the timer remakes it, then mail goes
        mw.world.emulator.delete_meeting_by_hand(meeting_id)
        mw.world.reconciler.run()
        booking = mw.world.booking(booking_id)
        new_link = booking.meeting.join_url
        assert new_link is not None
        assert new_link != old_link
        mw.sweep.run()
        mw.drain()

        # THEN each participant got one mail: the approval, with the new link and the newest
        # SEQUENCE (no "New meeting link" a second later)
        story = received(mw.world.emulator)
        assert {to: [m.headline for m in mails] for to, mails in story.items()} == {
            "student@example.com": ["Confirmed"],
            "tutor@example.com": ["Assigned to you"],
        }
        booking = mw.world.booking(booking_id)
        for (mail,) in story.values():
            assert mail.link == new_link
            assert mail.method == "REQUEST"
            assert mail.sequence == booking.mail.current_sequence == 1
        assert booking.mail.status is MailStatus.SENT
        assert booking.mail.pending == ()
        assert not booking.mail.link_owed


def test_mails_waiting_when_the_booking_moves_go_as_one_approval_at_the_new_time():
    with mail_world() as mw:
        # GIVEN an approved booking whose approval has not been mailed yet
        booking_id = a_pending_booking(mw)
        approve(mw, booking_id)
        mw.queue.messages.clear()

        # WHEN it is moved before the mail goes, and mail runs
        reschedule(mw, booking_id, days=5)
        mw.sweep.run()
        mw.drain()

        # THEN each is sent one approval at the new time, with the newest SEQUENCE: nobody is
        # told of a time they never had, nor that it moved from it
        booking = mw.world.booking(booking_id)
        story = received(mw.world.emulator)
        assert {to: [m.headline for m in mails] for to, mails in story.items()} == {
            "student@example.com": ["Confirmed"],
            "tutor@example.com": ["Assigned to you"],
        }
        for (mail,) in story.values():
            assert (mail.start, mail.end) == (booking.start, booking.end)
            assert mail.sequence == booking.mail.current_sequence == 1
            assert mail.link == booking.meeting.join_url
        assert booking.mail.pending == ()
        assert booking.mail.status is MailStatus.SENT
        # and a worker still holding the booking as approved finds the approval's mails sent
        now = mw.world.clock.now
        for to in story:
            claim = mw.ledger.claim(MailKey(TENANT, booking_id, 1, to), now, now)
            assert claim.outcome is ClaimOutcome.SENT


def test_an_approval_another_worker_is_sending_when_the_booking_moves_is_followed_by_the_move():
    with mail_world() as mw:
        # GIVEN another worker is sending the student's approval mail
        booking_id = a_pending_booking(mw)
        approve(mw, booking_id)
        now = mw.world.clock.now
        held = mw.ledger.claim(
            MailKey(TENANT, booking_id, 1, "student@example.com"), now, now + timedelta(minutes=2)
        )
        assert held.outcome is ClaimOutcome.CLAIMED
        mw.queue.messages.clear()

        # WHEN the booking moves, this worker looks while that send is on, then it went
        reschedule(mw, booking_id, days=5)
        ((_, work),) = mw.queue.messages
        mw.queue.messages.clear()
        assert mw.worker.handle(work, requeue=False).sent == 0
        mw.ledger.mark_sent(held, mw.world.clock.now)
        mw.sweep.run()
        mw.drain()

        # THEN the student, who had the approval, is told the new time; the tutor one
        # assignment at it
        story = received(mw.world.emulator)
        assert {to: [m.headline for m in mails] for to, mails in story.items()} == {
            "student@example.com": ["New time"],
            "tutor@example.com": ["Assigned to you"],
        }
        assert mw.world.booking(booking_id).mail.pending == ()


def test_who_had_the_approval_is_told_the_new_time_and_who_had_not_the_approval():
    with mail_world(per_minute=1) as mw:
        # GIVEN the approval mailed to the student, the tutor's waiting for the mailbox's pace
        booking_id = a_pending_booking(mw)
        approve(mw, booking_id)
        ((_, work),) = mw.queue.messages
        mw.queue.messages.clear()
        report = mw.worker.handle(work, requeue=False)
        assert report.sent == 1

        # WHEN the booking is moved, and mail runs to the end
        reschedule(mw, booking_id, days=5)
        mw.drain()
        mw.world.clock.sleep(120)
        mw.sweep.run()
        mw.drain()

        # THEN the student is told the new time; the tutor, never told, one assignment at it
        booking = mw.world.booking(booking_id)
        story = received(mw.world.emulator)
        assert {to: [m.headline for m in mails] for to, mails in story.items()} == {
            "student@example.com": ["Confirmed", "New time"],
            "tutor@example.com": ["Assigned to you"],
        }
        assert [m.sequence for m in story["student@example.com"]] == [0, 1]
        assert story["tutor@example.com"][0].sequence == 1
        assert (story["tutor@example.com"][0].start, story["tutor@example.com"][0].end) == (
            booking.start,
            booking.end,
        )
        assert booking.mail.pending == ()


def test_a_host_who_had_the_assignment_is_told_of_a_cancellation_before_everyone_had_it():
    host = Participant("tutor-1", ParticipantRole.TUTOR, "tutor@example.com", "Tia Tutor")
    student = Participant(
        "student-1", ParticipantRole.STUDENT, "student@example.com", "Sam Student"
    )
    with mail_world(per_minute=1) as mw:
        # GIVEN the assignment mailed to the tutor, the student's waiting for the pace
        booking_id = a_pending_booking(mw, participants=(host, student))
        approve(mw, booking_id)
        ((_, work),) = mw.queue.messages
        mw.queue.messages.clear()
        assert mw.worker.handle(work, requeue=False).sent == 1

        # WHEN the student cancels it before the approval reached them
        cancel(mw, booking_id)
        mw.world.clock.sleep(120)
        mw.sweep.run()
        mw.drain()

        # THEN the tutor, who was told, is told it is off; the student, who asked, too
        story = received(mw.world.emulator)
        assert {to: [m.headline for m in mails] for to, mails in story.items()} == {
            "tutor@example.com": ["Assigned to you", "Cancelled"],
            "student@example.com": ["Cancelled"],
        }
        assert all(mails[-1].method == "CANCEL" for mails in story.values())
        assert mw.world.booking(booking_id).mail.pending == ()


def test_a_booking_moved_more_often_than_notices_are_kept_is_still_announced_once():
    with mail_world() as mw:
        # GIVEN an approval not mailed yet, and more moves than a booking keeps notices for
        booking_id = a_pending_booking(mw)
        approve(mw, booking_id)
        for day in range(4, 4 + MAX_PENDING + 2):
            reschedule(mw, booking_id, days=day)
        mw.queue.messages.clear()
        assert len(mw.world.booking(booking_id).mail.pending) == MAX_PENDING

        # WHEN mail goes
        mw.sweep.run()
        mw.drain()

        # THEN each is told once that it is on, at its last time, with the newest SEQUENCE
        booking = mw.world.booking(booking_id)
        story = received(mw.world.emulator)
        assert {to: [m.headline for m in mails] for to, mails in story.items()} == {
            "student@example.com": ["Confirmed"],
            "tutor@example.com": ["Assigned to you"],
        }
        for (mail,) in story.values():
            assert (mail.start, mail.end) == (booking.start, booking.end)
            assert mail.sequence == booking.mail.current_sequence == MAX_PENDING + 2
        assert booking.mail.pending == ()


def test_notices_told_by_one_that_failed_for_good_finish_with_it():
    with mail_world() as mw:
        # GIVEN a mailbox that may not send, and an approval then a move not mailed yet
        mw.world.emulator.add_fault(
            Fault(operation="sendMail", status=403, graph_code="ErrorAccessDenied")
        )
        booking_id = a_pending_booking(mw)
        approve(mw, booking_id)
        reschedule(mw, booking_id, days=5)

        # WHEN mail runs
        mw.drain()

        # THEN one send was tried (the move's, worded as the approval), and the booking says
        # its mail failed with nothing left owed: the approval is not sent after it, with the
        # older SEQUENCE
        stored = mw.world.booking(booking_id)
        assert mw.world.emulator.calls["sendMail"] == 1
        assert stored.mail.status is MailStatus.FAILED
        assert stored.mail.pending == ()
        (poisoned,) = mw.queue.poisoned
        assert (poisoned.notice, poisoned.reason) == (2, "permanent")


def test_an_approval_that_reached_one_without_the_link_and_the_other_with_it_links_the_first():
    with mail_world(per_minute=1, link_wait=timedelta(minutes=5)) as mw:
        # GIVEN Teams slow to make the meeting, and a mailbox that takes one mail a minute
        mw.world.emulator.add_fault(Fault(operation="createOrGet", status=503, count=3))
        booking_id = a_pending_booking(mw)
        approve(mw, booking_id)
        mw.queue.messages.clear()

        # WHEN the approval goes to the student without the link after the wait, the meeting
        # is made, and the tutor's goes after it
        mw.world.clock.sleep(6 * 60)
        assert mw.sweep.run().sent == 1
        mw.world.emulator.clear_faults()
        mw.world.drain()
        assert mw.world.booking(booking_id).meeting.join_url is not None
        for _ in range(3):
            mw.world.clock.sleep(90)
            mw.sweep.run()
        mw.drain()

        # THEN the student is sent the link; the tutor, who had it, is not sent it again
        booking = mw.world.booking(booking_id)
        story = received(mw.world.emulator)
        assert {to: [m.headline for m in mails] for to, mails in story.items()} == {
            "student@example.com": ["Confirmed", "Meeting link"],
            "tutor@example.com": ["Assigned to you"],
        }
        assert story["student@example.com"][0].link is None
        assert all(mails[-1].link == booking.meeting.join_url for mails in story.values())
        assert booking.mail.pending == ()
        assert not booking.mail.link_owed
