"""The one step after a change (`FollowUp`): the meeting's outbox message and inline attempt,
then the mail outbox message, so that the e-mail finds the join link; and neither a lost mail
message nor a Graph failure fails the user's change.

In-memory repositories and queues, Graph faked at the wire by the emulator (`responses`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path

from localdev.graph_emulator import Fault
from shared.auth.principal import Principal, Role
from shared.domain import booking as lifecycle
from shared.domain import notices
from shared.domain.booking import BookingStatus, MeetingStatus
from shared.domain.notices import NoticeKind
from shared.mail.delivery import MailOutbox
from shared.meetings.worker import MeetingSync
from shared.services import bookings as use_cases
from shared.services.bookings import Approval, BookingDeps
from shared.services.follow_up import FollowUp
from shared.services.transitions import save_transition
from shared.storage.errors import StorageError
from shared.storage.queues import InMemoryWorkQueue, PoisonedWork, WorkMessage, WorkQueue
from shared.work.kinds import WorkKind, owe
from shared.work.policy import RetryPolicy
from tests.builders import a_booking
from tests.mail_world import TENANT, MailWorld, mail_world

STAFF = Principal("staff-1", TENANT, frozenset({Role.STAFF}))
POLICY = RetryPolicy(rounds=(30.0, 120.0, 600.0))


@dataclass
class Watched:
    """A queue that notes, as each message goes, how many creates Graph had been asked for and
    the join link the stored booking had then; `down`: it refuses every message."""

    name: str
    mw: MailWorld
    inner: WorkQueue
    log: list[tuple[str, int, str | None]] = field(default_factory=list)
    down: bool = False

    def send(self, work: WorkMessage, delay_seconds: float = 0) -> None:
        if self.down:
            raise StorageError("the queue service is unavailable")
        stored = self.mw.world.booking(work.booking_id)
        creates = self.mw.world.emulator.calls["createOrGet"]
        self.log.append((self.name, creates, stored.meeting.join_url))
        self.inner.send(work, delay_seconds)

    def send_poison(self, poisoned: PoisonedWork) -> None:
        self.inner.send_poison(poisoned)


def watched_deps(mw: MailWorld, *, mail_down: bool = False) -> tuple[BookingDeps, list]:
    """The booking actions' deps, with both outbox queues noting into one log."""
    log: list[tuple[str, int, str | None]] = []
    meetings = Watched("meeting", mw, mw.world.queue, log)
    mail = Watched("mail", mw, mw.queue, log, down=mail_down)
    sync = MeetingSync(mw.world.converger, meetings, POLICY, mw.world.clock)
    return replace(mw.world.deps, sync=sync, mail=MailOutbox(mail)), log


def a_pending_booking(mw: MailWorld) -> str:
    start = mw.world.clock.now + timedelta(days=3)
    booking = a_booking(
        tenant_id=TENANT, start=start, end=start + timedelta(hours=1), status=BookingStatus.PENDING
    )
    return mw.world.bookings.add(booking).booking_id


def test_the_mail_message_goes_after_the_meeting_attempt_and_the_mail_carries_the_link(
    tmp_path: Path,
):
    with mail_world(tmp_path, policy=POLICY) as mw:
        deps, log = watched_deps(mw)
        booking_id = a_pending_booking(mw)

        # WHEN the booking is approved
        result = use_cases.approve_booking(STAFF, booking_id, Approval(), deps)

        # THEN the meeting's message went first, then the inline create, then the mail's
        # message, when the booking already held the join link
        join_url = mw.world.booking(booking_id).meeting.join_url
        assert join_url is not None
        assert log == [("meeting", 0, None), ("mail", 1, join_url)]
        assert result.warning is None
        assert result.booking.meeting.join_url == join_url

        # AND the e-mails it sends carry the link
        mw.drain()
        messages = mw.emls()
        assert len(messages) == 2
        for message in messages:
            text = message.get_body(preferencelist=("plain",))
            assert text is not None
            assert join_url in text.get_content()


def test_a_lost_mail_message_does_not_fail_the_change_and_the_timer_sends_the_mail(
    tmp_path: Path,
):
    with mail_world(tmp_path, policy=POLICY) as mw:
        deps, log = watched_deps(mw, mail_down=True)
        booking_id = a_pending_booking(mw)

        # WHEN the mail queue refuses the approval's message
        result = use_cases.approve_booking(STAFF, booking_id, Approval(), deps)

        # THEN the approval stands, meeting and all, without a warning
        assert result.warning is None
        stored = mw.world.booking(booking_id)
        assert stored.status is BookingStatus.CONFIRMED
        assert stored.meeting.status is MeetingStatus.CREATED
        assert [name for name, _, _ in log] == ["meeting"]
        assert mw.queue.messages == []

        # AND the notice it owes is on the booking, where the timer's sweep finds it
        assert stored.mail.pending
        mw.sweep.run()
        assert len(mw.emls()) == 2
        assert not mw.world.booking(booking_id).mail.pending


def test_a_graph_failure_does_not_fail_the_change_and_the_mail_waits_for_the_meeting():
    with mail_world(policy=POLICY) as mw:
        # GIVEN Graph answers the first create with 503
        mw.world.emulator.add_fault(Fault(operation="createOrGet", status=503, count=1))
        deps, log = watched_deps(mw)
        booking_id = a_pending_booking(mw)

        # WHEN the booking is approved
        result = use_cases.approve_booking(STAFF, booking_id, Approval(), deps)

        # THEN the approval is saved and answered with a warning, not an error
        assert result.warning is not None
        assert result.warning.startswith("Booking approved")
        stored = mw.world.booking(booking_id)
        assert stored.status is BookingStatus.CONFIRMED
        assert stored.meeting.status is MeetingStatus.PENDING
        # AND the mail's message still went, after the failed attempt, without a link yet
        assert log == [("meeting", 0, None), ("mail", 1, None)]

        # WHILE the meeting is still being made, the worker's follow-up sends no more mail
        follow_up = deps.follow_up
        mw.queue.messages.clear()
        follow_up.after_meeting(stored)
        assert mw.queue.messages == []

        # WHEN the meeting worker has made the meeting, its follow-up sends the mail on
        mw.world.drain()
        made = mw.world.booking(booking_id)
        assert made.meeting.join_url is not None
        follow_up.after_meeting(made)
        assert log[-1] == ("mail", 2, made.meeting.join_url)
        mw.drain()
        assert len(mw.world.emulator.mail) == 2
        assert not mw.world.booking(booking_id).mail.pending


def test_without_a_mail_outbox_only_the_meeting_follows():
    with mail_world(policy=POLICY) as mw:
        deps, log = watched_deps(mw)
        follow_up = FollowUp(deps.sync)
        booking_id = a_pending_booking(mw)
        now = mw.world.clock()

        # WHEN an approval that owes a notice is handed to a follow-up without mail
        saved = save_transition(
            mw.world.bookings,
            mw.world.booking(booking_id),
            lambda b: notices.requested(
                lifecycle.approve(b, now=now, with_meeting=True), NoticeKind.APPROVED, now=now
            ),
        )
        synced = follow_up.after_change(saved, actor=STAFF.user_id)
        follow_up.after_meeting(synced.booking)

        # THEN the meeting followed, and nothing was sent for mail
        assert synced.booking.meeting.status is MeetingStatus.CREATED
        assert synced.booking.mail.pending
        assert [name for name, _, _ in log] == ["meeting"]
        assert mw.queue.messages == []


def test_a_change_owing_a_registered_kind_of_work_sends_that_kinds_message_too():
    with mail_world(policy=POLICY) as mw:
        # GIVEN a kind of work registered on the app's kit, with a queue of its own
        toy_queue = InMemoryWorkQueue()
        mw.world.services.kinds.register(WorkKind("toy", toy_queue, lambda _: None))
        booking = mw.world.bookings.add(a_booking(tenant_id=TENANT))

        # WHEN a change that owes it, and a notice, is saved and followed up
        changed = notices.requested(owe(booking, "toy"), NoticeKind.APPROVED, now=mw.world.clock())
        saved = save_transition(mw.world.bookings, booking, lambda _: changed)
        mw.world.deps.follow_up.after_change(saved, actor="staff-1")

        # THEN the kind's queue has the booking's message, and the mail's has its own
        assert toy_queue.messages == [(0, WorkMessage(TENANT, booking.booking_id))]
        assert [w for _, w in mw.queue.messages] == [WorkMessage(TENANT, booking.booking_id)]
        assert mw.world.services.kinds.handle("toy", toy_queue.messages[0][1]).value == "done"
