"""Mail follows the booking: one e-mail per participant per change, with the calendar invite,
through the `mail` outbox; never twice, never lost, never failing the user's action.

In-memory repositories, queue and ledger (the same contracts as on Azurite), real transports:
a folder of `.eml` files, or Graph sendMail with Graph faked at the wire by the emulator.
"""

from __future__ import annotations

import base64
from collections import Counter
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import icalendar
import vobject

from localdev.graph_emulator import Fault
from localdev.mailbox import invite_parts
from shared.auth.principal import Principal, Role
from shared.domain.booking import MAIL_WORK, BookingStatus, MeetingStatus
from shared.domain.notices import MailStatus, Notice, NoticeKind
from shared.mail.delivery import MailOutbox
from shared.services import bookings as use_cases
from shared.services.bookings import Approval
from shared.storage.mail import ClaimOutcome, MailKey
from shared.storage.queues import WorkMessage
from tests.builders import a_booking
from tests.mail_world import TENANT, MailWorld, mail_world

STAFF = Principal("staff-1", TENANT, frozenset({Role.STAFF}))


def a_pending_booking(mw: MailWorld, **changes):
    start = mw.world.clock.now + timedelta(days=3)
    booking = a_booking(
        tenant_id=TENANT,
        start=start,
        end=start + timedelta(hours=1),
        status=BookingStatus.PENDING,
        **changes,
    )
    return mw.world.bookings.add(booking).booking_id


def approve(mw: MailWorld, booking_id: str) -> None:
    use_cases.approve_booking(STAFF, booking_id, Approval(), mw.deps)


def reschedule(mw: MailWorld, booking_id: str, days: int = 4) -> None:
    start = mw.world.clock.now + timedelta(days=days)
    use_cases.reschedule_booking(STAFF, booking_id, (start, start + timedelta(hours=1)), mw.deps)


def cancel(mw: MailWorld, booking_id: str, reason: str | None = "Tutor unwell") -> None:
    use_cases.cancel_booking(STAFF, booking_id, reason, mw.deps)


def invite_of(message):
    alternative, attachment = invite_parts(message)
    assert attachment is not None
    assert attachment.get_filename() == "invite.ics"
    assert alternative is not None
    assert alternative.get_payload(decode=True) == attachment.get_payload(decode=True)
    return attachment.get_payload(decode=True)


def text_of(message):
    return message.get_body(preferencelist=("plain",)).get_content()


def html_of(message):
    return message.get_body(preferencelist=("html",)).get_content()


def test_approve_reschedule_cancel_mail_every_participant_once_per_change(tmp_path: Path):
    with mail_world(tmp_path) as mw:
        # GIVEN a pending booking with a student and a tutor
        booking_id = a_pending_booking(mw)

        # WHEN it is approved, moved and cancelled, the mail queue running after each change
        approve(mw, booking_id)
        mw.drain()
        join_url = mw.world.booking(booking_id).meeting.join_url
        reschedule(mw, booking_id)
        mw.drain()
        cancel(mw, booking_id)
        mw.drain()

        # THEN each participant got three e-mails, each with its invite
        messages = mw.emls()
        assert Counter(str(m["To"].addresses[0].addr_spec) for m in messages) == {
            "student@example.com": 3,
            "tutor@example.com": 3,
        }
        subjects = sorted(str(m["Subject"]).split(":")[0] for m in messages)
        assert subjects == sorted(
            ["Confirmed", "Assigned to you", "New time", "New time", "Cancelled", "Cancelled"]
        )
        assert join_url is not None
        assert join_url.startswith("https://")
        stored = mw.world.booking(booking_id)
        assert stored.mail.status is MailStatus.SENT
        assert (stored.mail.sent, stored.mail.pending) == (3, ())


def test_the_invites_of_a_lifecycle_parse_alike_in_icalendar_and_vobject(tmp_path: Path):
    with mail_world(tmp_path) as mw:
        booking_id = a_pending_booking(mw)
        approve(mw, booking_id)
        mw.drain()
        join_url = mw.world.booking(booking_id).meeting.join_url
        reschedule(mw, booking_id)
        mw.drain()
        cancel(mw, booking_id)
        mw.drain()

        to_student = [m for m in mw.emls() if "student@" in str(m["To"])]
        # in the order of the changes: approval, new time, cancellation
        order = {"Confirmed": 0, "New time": 1, "Cancelled": 2}
        to_student.sort(key=lambda m: order[str(m["Subject"]).split(":")[0]])
        invites = [invite_of(m) for m in to_student]

        methods, sequences, uids = [], [], set()
        for raw in invites:
            # every line folded to at most 75 octets
            assert max(len(line) for line in raw.split(b"\r\n")) <= 75
            calendar: Any = icalendar.Calendar.from_ical(raw)
            (event,) = calendar.walk("VEVENT")
            parsed = vobject.readOne(raw.decode())
            assert str(parsed.method.value) == str(calendar["METHOD"])
            assert int(parsed.vevent.sequence.value) == int(event["SEQUENCE"])
            assert str(parsed.vevent.uid.value) == str(event["UID"])
            methods.append(str(calendar["METHOD"]))
            sequences.append(int(event["SEQUENCE"]))
            uids.add(str(event["UID"]))
            attendees = sorted(str(a) for a in event.get("ATTENDEE"))
            assert attendees == ["mailto:student@example.com", "mailto:tutor@example.com"]
            assert all(a.params["RSVP"] == "TRUE" for a in event.get("ATTENDEE"))
            assert str(event["ORGANIZER"]) == "mailto:organizer@a.example"
            assert event["DTSTART"].dt.utcoffset() == timedelta(0)
            assert "DTSTAMP" in event
            if calendar["METHOD"] == "REQUEST":
                assert str(event["URL"]) == join_url
                assert str(parsed.vevent.url.value) == join_url
                assert f"Join Teams Meeting: {join_url}" in str(event["DESCRIPTION"])
                assert str(event["LOCATION"]) == "Microsoft Teams Meeting"
                assert str(event["X-MICROSOFT-SKYPETEAMSMEETINGURL"]) == join_url
                (alarm,) = event.walk("VALARM")
                assert alarm["TRIGGER"].dt == timedelta(minutes=-15)
            else:
                assert str(event["STATUS"]) == "CANCELLED"
                assert "URL" not in event

        assert methods == ["REQUEST", "REQUEST", "CANCEL"]
        assert sequences[0] < sequences[1] < sequences[2]
        assert len(uids) == 1
        # the rescheduled invite carries the new times
        moved: Any = icalendar.Calendar.from_ical(invites[1]).walk("VEVENT")[0]
        assert moved["DTSTART"].dt == mw.world.booking(booking_id).start


def test_the_approval_mail_carries_the_join_link_in_text_and_as_a_button(tmp_path: Path):
    with mail_world(tmp_path) as mw:
        booking_id = a_pending_booking(mw)
        approve(mw, booking_id)
        mw.drain()
        join_url = mw.world.booking(booking_id).meeting.join_url

        (to_student,) = [m for m in mw.emls() if "student@" in str(m["To"])]
        assert f"Join Teams Meeting: {join_url}" in text_of(to_student)
        html = html_of(to_student)
        assert f'href="{join_url}"' in html
        assert ">Join Teams Meeting</a>" in html
        # the recipient's time, with the zone named
        assert "Friday 4 December 2026, 09:00\u201310:00 (Europe/London, GMT)" in text_of(
            to_student
        )


def test_mail_waits_for_the_meeting_so_that_the_first_mail_carries_the_link():
    with mail_world() as mw:
        # GIVEN Graph is briefly unavailable, so approval's inline create fails
        mw.world.emulator.add_fault(Fault(operation="createOrGet", status=503, count=1))
        booking_id = a_pending_booking(mw)
        approve(mw, booking_id)
        assert mw.world.booking(booking_id).meeting.status is MeetingStatus.PENDING

        # WHEN the mail worker looks first, then the meeting worker makes the meeting
        ((_, work),) = mw.queue.messages
        mw.queue.messages.clear()
        report = mw.worker.handle(work)
        assert report.waiting
        assert report.sent == 0
        assert not mw.world.emulator.mail
        mw.world.drain()
        assert mw.world.booking(booking_id).meeting.status is MeetingStatus.CREATED
        mw.drain()

        # THEN the approval mails went once, with the link
        join_url = mw.world.booking(booking_id).meeting.join_url
        sent = mw.world.emulator.mail
        assert len(sent) == 2
        assert all(join_url in m["message"]["body"]["content"] for m in sent)


def test_mail_goes_without_the_link_when_the_meeting_keeps_failing():
    with mail_world(link_wait=timedelta(minutes=5)) as mw:
        # GIVEN Teams refuses the create for good (no access policy)
        mw.world.emulator.add_fault(
            Fault(operation="createOrGet", status=403, graph_code="Forbidden")
        )
        booking_id = a_pending_booking(mw)

        # WHEN it is approved and the mail queue runs
        approve(mw, booking_id)
        mw.drain()

        # THEN the approval went out, without a join link and without a promise of one
        sent = mw.world.emulator.mail
        assert len(sent) == 2
        for m in sent:
            body = m["message"]["body"]["content"]
            assert "Join Teams Meeting</a>" not in body
            assert "not ready yet" not in body
        assert mw.world.booking(booking_id).meeting.status is MeetingStatus.FAILED


def test_a_waiting_mail_goes_without_the_link_after_the_wait():
    with mail_world(link_wait=timedelta(minutes=5)) as mw:
        mw.world.emulator.add_fault(Fault(operation="createOrGet", status=503))
        booking_id = a_pending_booking(mw)
        approve(mw, booking_id)

        mw.drain()  # the meeting queue is not run: the meeting does not exist yet

        sent = mw.world.emulator.mail
        assert len(sent) == 2
        assert all("not ready yet" in m["message"]["body"]["content"] for m in sent)

        # WHEN Graph recovers and the meeting is made
        mw.world.emulator.clear_faults()
        mw.world.drain()
        join_url = mw.world.booking(booking_id).meeting.join_url
        assert join_url is not None
        mw.sweep.run()  # the timer finds the notice the meeting's arrival saved
        mw.sweep.run()

        # THEN everyone is sent the link, once
        later = mw.world.emulator.mail[2:]
        assert len(later) == 2
        assert all(m["message"]["subject"].startswith("Meeting link:") for m in later)
        assert all(join_url in m["message"]["body"]["content"] for m in later)
        assert not mw.world.booking(booking_id).mail.link_owed


def test_transient_sendmail_failures_then_recovery_send_exactly_one_mail_per_recipient():
    with mail_world() as mw:
        # GIVEN sendMail fails with 503 for its first six calls, then 429 once
        mw.world.emulator.add_fault(Fault(operation="sendMail", status=503, count=6))
        mw.world.emulator.add_fault(
            Fault(operation="sendMail", status=429, retry_after="3", count=1)
        )
        booking_id = a_pending_booking(mw)

        # WHEN the booking is approved and, once the approval went, moved (mail waiting in the
        # queue when the move came would go as one mail: the mail story rule)
        approve(mw, booking_id)
        mw.drain()
        reschedule(mw, booking_id)
        mw.drain()

        # THEN every recipient has exactly one mail per change
        sent = Counter(
            (m["message"]["toRecipients"][0]["emailAddress"]["address"], m["message"]["subject"])
            for m in mw.world.emulator.mail
        )
        assert sorted(sent.values()) == [1, 1, 1, 1]
        assert {to for to, _ in sent} == {"student@example.com", "tutor@example.com"}
        assert mw.world.emulator.calls["sendMail"] == 4 + 7
        stored = mw.world.booking(booking_id)
        assert stored.mail.status is MailStatus.SENT
        assert stored.mail.last_error_code is None


def test_a_redelivered_message_never_mails_twice():
    with mail_world() as mw:
        booking_id = a_pending_booking(mw)
        approve(mw, booking_id)
        mw.drain()
        assert len(mw.world.emulator.mail) == 2

        # WHEN the same message comes again
        again = mw.worker.handle(WorkMessage(TENANT, booking_id))
        # and even with the delivered notice put back as pending (a crash before its record)
        stored = mw.world.booking(booking_id)
        assert stored.mail.pending == ()
        approval = Notice(NoticeKind.APPROVED, number=1, sequence=0, recorded_at=mw.world.clock.now)
        mw.world.bookings.update(replace(stored, mail=replace(stored.mail, pending=(approval,))))
        replayed = mw.worker.handle(WorkMessage(TENANT, booking_id))

        # THEN no second mail: the ledger knows both recipients have it
        assert len(mw.world.emulator.mail) == 2
        assert (again.sent, again.already_sent) == (0, 0)
        assert (replayed.sent, replayed.already_sent) == (0, 2)
        assert mw.world.booking(booking_id).mail.pending == ()


def test_a_mail_another_worker_is_sending_waits_for_its_lease():
    with mail_world() as mw:
        booking_id = a_pending_booking(mw)
        approve(mw, booking_id)
        # GIVEN another worker holds the claim of the student's approval mail
        now = mw.world.clock.now
        held = mw.ledger.claim(
            MailKey(TENANT, booking_id, 1, "student@example.com"), now, now + timedelta(minutes=2)
        )
        assert held.outcome is ClaimOutcome.CLAIMED
        ((_, work),) = mw.queue.messages
        mw.queue.messages.clear()

        # WHEN this worker handles the message
        report = mw.worker.handle(work)

        # THEN it sends nothing for that recipient now and looks again after the lease
        assert report.deferred_seconds is not None
        assert report.deferred_seconds > 100
        assert mw.world.booking(booking_id).mail.pending != ()
        # and once the lease lapsed (its holder died), the mail goes out once
        mw.drain()
        to = [
            m["message"]["toRecipients"][0]["emailAddress"]["address"]
            for m in mw.world.emulator.mail
        ]
        assert sorted(to) == ["student@example.com", "tutor@example.com"]


def test_a_permanent_mail_failure_never_fails_the_action_and_shows_on_the_booking():
    with mail_world() as mw:
        mw.world.emulator.add_fault(
            Fault(operation="sendMail", status=403, graph_code="ErrorAccessDenied")
        )
        booking_id = a_pending_booking(mw)

        result = use_cases.approve_booking(STAFF, booking_id, Approval(), mw.deps)
        mw.drain()

        assert result.booking.status is BookingStatus.CONFIRMED
        stored = mw.world.booking(booking_id)
        assert stored.mail.status is MailStatus.FAILED
        assert stored.mail.last_error_code == "mail_forbidden"
        assert stored.mail.pending == ()
        (poisoned,) = mw.queue.poisoned
        assert (poisoned.step, poisoned.reason) == ("email", "permanent")
        assert mw.world.emulator.calls["sendMail"] == 1


def test_mail_retries_stop_after_the_last_round_and_the_booking_says_failed():
    with mail_world() as mw:
        mw.world.emulator.add_fault(Fault(operation="sendMail", status=503))
        booking_id = a_pending_booking(mw)
        approve(mw, booking_id)

        mw.drain()

        stored = mw.world.booking(booking_id)
        assert stored.mail.status is MailStatus.FAILED
        (poisoned,) = mw.queue.poisoned
        assert poisoned.reason == "retries_exhausted"
        # one call, three in-process retries, per round: the first and three delayed rounds
        assert mw.world.emulator.calls["sendMail"] == 4 * 4


def test_mail_whose_queue_message_was_lost_is_sent_by_the_timer():
    with mail_world() as mw:
        booking_id = a_pending_booking(mw)
        approve(mw, booking_id)
        mw.queue.messages.clear()  # the outbox message is lost

        report = mw.sweep.run()

        assert report.sent == 2
        assert len(mw.world.emulator.mail) == 2
        assert mw.world.bookings.list_marked(MAIL_WORK, TENANT) == []
        assert mw.queue.messages == []  # the timer schedules nothing of its own


def test_the_timer_leaves_a_waiting_mail_for_later_without_queueing_more():
    with mail_world() as mw:
        mw.world.emulator.add_fault(Fault(operation="createOrGet", status=503))
        booking_id = a_pending_booking(mw)
        approve(mw, booking_id)
        mw.queue.messages.clear()

        report = mw.sweep.run()

        assert report.sent == 0
        assert report.owing == 1
        assert mw.queue.messages == []
        assert not mw.world.emulator.mail


def test_graph_sendmail_carries_the_invite_as_a_meeting_request_with_the_file_attached():
    with mail_world() as mw:
        booking_id = a_pending_booking(mw)
        approve(mw, booking_id)
        mw.drain()

        (to_student,) = [
            m
            for m in mw.world.emulator.mail
            if m["message"]["toRecipients"][0]["emailAddress"]["address"] == "student@example.com"
        ]
        assert to_student["from"] == "organizer@a.example"
        message = to_student["message"]
        assert message["body"]["contentType"] == "HTML"
        assert message["meetingMessageType"] == "meetingRequest"
        (attachment,) = message["attachments"]
        assert attachment["@odata.type"] == "#microsoft.graph.fileAttachment"
        assert attachment["name"] == "invite.ics"
        assert attachment["contentType"] == "application/ics"
        calendar: Any = icalendar.Calendar.from_ical(base64.b64decode(attachment["contentBytes"]))
        assert str(calendar["METHOD"]) == "REQUEST"
        assert (
            str(calendar.walk("VEVENT")[0]["URL"]) == mw.world.booking(booking_id).meeting.join_url
        )


def test_a_meeting_made_anew_tells_everyone_the_new_link(tmp_path: Path):
    with mail_world(tmp_path) as mw:
        booking_id = a_pending_booking(mw)
        approve(mw, booking_id)
        mw.drain()
        old_link = mw.world.booking(booking_id).meeting.join_url
        assert old_link is not None
        # GIVEN the organizer deleted the meeting in Teams by hand, and the start is near
        meeting_id = mw.world.booking(booking_id).meeting.meeting_id
        assert meeting_id is not None
        mw.world.emulator.delete_meeting_by_hand(meeting_id)
        mw.world.clock.sleep(timedelta(days=2, hours=12).total_seconds())

        # WHEN the timer verifies the meeting (and remakes it), then mail runs
        mw.world.reconciler.run()
        new_link = mw.world.booking(booking_id).meeting.join_url
        mw.sweep.run()

        # THEN both participants got the new link, once
        assert new_link
        assert new_link != old_link
        changed = [m for m in mw.emls() if str(m["Subject"]).startswith("New meeting link")]
        assert len(changed) == 2
        assert all(f"Join Teams Meeting: {new_link}" in text_of(m) for m in changed)
        assert all(old_link not in text_of(m) for m in changed)


def test_a_pending_request_moved_before_approval_sends_no_reschedule_mail(tmp_path: Path):
    with mail_world(tmp_path) as mw:
        booking_id = a_pending_booking(mw)
        reschedule(mw, booking_id)
        mw.drain()

        assert mw.emls() == []
        assert mw.world.booking(booking_id).mail.status is MailStatus.NONE


def test_an_invite_superseded_by_a_closing_change_is_dropped_and_only_the_requester_told(
    tmp_path: Path,
):
    with mail_world(tmp_path) as mw:
        booking_id = a_pending_booking(mw)
        approve(mw, booking_id)
        mw.queue.messages.clear()  # the approval's mail has not gone yet
        cancel(mw, booking_id)

        mw.drain()

        # The student asked for the lesson and is told it was cancelled; the tutor was never
        # told of it, so gets no cancellation either.
        sent = [(str(m["To"]), str(m["Subject"])) for m in mw.emls()]
        assert len(sent) == 1
        assert "student@example.com" in sent[0][0]
        assert sent[0][1].startswith("Cancelled")


def test_mail_beyond_the_mailbox_rate_waits_its_turn_instead_of_failing():
    with mail_world(per_minute=2) as mw:
        # GIVEN a mailbox that takes two e-mails a minute, and three approvals (six e-mails)
        ids = [a_pending_booking(mw) for _ in range(3)]
        started = mw.world.clock.now

        for booking_id in ids:
            approve(mw, booking_id)
        mw.drain()

        # THEN all six went, once each, spread over the minutes the pace allows
        assert len(mw.world.emulator.mail) == 6
        assert mw.world.emulator.calls["sendMail"] == 6
        assert mw.world.clock.now - started >= timedelta(minutes=2)
        assert all(mw.world.booking(b).mail.status is MailStatus.SENT for b in ids)


def test_the_meeting_worker_sends_on_mail_that_waited_for_its_meeting():
    with mail_world() as mw:
        mw.world.emulator.add_fault(Fault(operation="createOrGet", status=503, count=1))
        booking_id = a_pending_booking(mw)
        approve(mw, booking_id)
        mw.queue.messages.clear()  # the waiting mail's own message, to see the new one alone
        outbox = MailOutbox(mw.queue)

        # WHILE the meeting is still being made, nothing is queued for mail
        outbox.after_meeting(mw.world.booking(booking_id))
        assert mw.queue.messages == []

        # WHEN the meeting worker has made it
        mw.world.drain()
        outbox.after_meeting(mw.world.booking(booking_id))

        # THEN the mail goes at once, with the link
        assert [w.booking_id for _, w in mw.queue.messages] == [booking_id]
        assert mw.queue.messages[0][0] == 0
        mw.drain()
        join_url = mw.world.booking(booking_id).meeting.join_url
        assert join_url is not None
        assert len(mw.world.emulator.mail) == 2
        assert all(join_url in m["message"]["body"]["content"] for m in mw.world.emulator.mail)
