"""Property: whatever order approvals, moves, cancellations, meetings remade in Teams, Graph
failures and mail runs come in, each recipient's mails read as a story (the mail story rule,
docs/architecture.md).

Each example runs one booking through a random script on the in-memory world (its own
`bootstrap`, Graph faked at the wire by the emulator through `responses`, mail through Graph
sendMail). The mail worker runs at random points, sendMail and the meeting's creation fail now
and then, time passes; then Graph recovers and every queue and timer runs to the end. What each
recipient received, in the order sendMail took it, must then tell them, per recipient:

(a) nothing of a booking they were never told of, but the requester, who is told it was
    declined or cancelled: the first mail is the approval (the assignment, for a host), or the
    requester's one cancellation;
(b) nothing twice: no mail leaves their calendar as the one before did;
(c) a SEQUENCE that only grows;
(d) after the last mail, the booking as it is: its times and its link while it is on (with
    the newest SEQUENCE, unless the notices after it would have told them nothing new: moved
    and moved back before they heard), METHOD CANCEL with the newest SEQUENCE (the last mail
    a cancellation) once it is off.
"""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import timedelta
from itertools import pairwise
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from localdev.graph_emulator import Fault
from shared.domain.booking import BookingStatus, IllegalTransitionError
from shared.domain.notices import MailStatus
from shared.mail.rendering import HOSTS
from shared.services import bookings as use_cases
from shared.services.bookings import Approval
from tests.builders import a_booking
from tests.mail_story import Received, received
from tests.mail_world import TENANT, MailWorld, mail_world
from tests.unit.test_mail_delivery import STAFF

EVENTS = (
    "approve",
    "reschedule",
    "cancel",
    "remake",  # the meeting is deleted in Teams and the timer's verification remakes it
    "mail",  # the mail worker takes the next n messages of its queue
    "meetings",  # the meeting worker runs its queue
    "sweep",  # the mail timer
    "mail_fault",  # sendMail fails the next n calls (503, or 429 for even n)
    "meeting_fault",  # Teams fails the next n creates
    "later",  # time passes
)
# User actions and mail runs, which make the stories, come more often than the rest.
WEIGHTED = (*EVENTS, "approve", "reschedule", "cancel", "mail", "mail", "mail")
script = st.lists(st.tuples(st.sampled_from(WEIGHTED), st.integers(1, 4)), max_size=12)


def new_booking(mw: MailWorld, host_first: bool) -> str:
    # Within pre-start verification's window, so the timer sees a meeting deleted in Teams.
    start = mw.world.clock.now + timedelta(hours=20)
    booking = a_booking(
        tenant_id=TENANT, start=start, end=start + timedelta(hours=1), status=BookingStatus.PENDING
    )
    if host_first:  # mailed first, so a notice can reach the tutor and not yet the student
        booking = replace(booking, participants=booking.participants[::-1])
    return mw.world.bookings.add(booking).booking_id


def apply(mw: MailWorld, booking_id: str, kind: str, n: int) -> None:
    world = mw.world
    try:
        if kind == "approve":
            use_cases.approve_booking(STAFF, booking_id, Approval(), mw.deps)
        elif kind == "reschedule":
            start = world.clock.now + timedelta(hours=15 + n)
            use_cases.reschedule_booking(
                STAFF, booking_id, (start, start + timedelta(minutes=30 * n)), mw.deps
            )
        elif kind == "cancel":
            use_cases.cancel_booking(STAFF, booking_id, None, mw.deps)
        elif kind == "remake":
            for meeting in world.emulator.live_meetings():
                world.emulator.delete_meeting_by_hand(meeting.id)
            world.reconciler.run()
        elif kind == "mail":
            for _ in range(n):
                if not mw.queue.messages:
                    break
                mw.queue.messages.sort(key=lambda m: m[0])
                delay, work = mw.queue.messages.pop(0)
                world.clock.sleep(max(0.0, delay))
                mw.queue.messages = [(max(0.0, d - delay), w) for d, w in mw.queue.messages]
                mw.worker.handle(work)
        elif kind == "meetings":
            world.drain(rounds=200)
        elif kind == "sweep":
            mw.sweep.run()
        elif kind == "mail_fault":
            fault = (
                Fault(operation="sendMail", status=429, retry_after="2", count=n)
                if n % 2 == 0
                else Fault(operation="sendMail", status=503, count=n)
            )
            world.emulator.add_fault(fault)
        elif kind == "meeting_fault":
            world.emulator.add_fault(Fault(operation="createOrGet", status=503, count=n))
        elif kind == "later":
            world.clock.sleep(90.0 * n)
    except IllegalTransitionError:
        pass


def run_to_the_end(mw: MailWorld, booking_id: str) -> None:
    """Graph recovers; the queues drain and the timers run until nothing is owed."""
    mw.world.emulator.clear_faults()
    for _ in range(12):
        mw.world.drain(rounds=200)
        mw.drain(rounds=200)
        mw.world.clock.sleep(11 * 60.0)  # past the wait for a link
        mw.world.reconciler.run()
        mw.sweep.run()
        booking = mw.world.booking(booking_id)
        if not booking.mail.pending and not mw.queue.messages and not mw.world.queue.messages:
            return
    raise AssertionError(f"mail still owed: {mw.world.booking(booking_id).mail}")


def assert_each_story(mw: MailWorld, booking_id: str, log: list[Any]) -> None:
    booking = mw.world.booking(booking_id)
    story = received(mw.world.emulator)
    context = f"script: {log}; booking: {booking.status}; mails: {story}"
    assert booking.mail.pending == (), context
    assert booking.mail.status is not MailStatus.FAILED, context
    requester = {p.email for p in booking.participants if p.user_id == booking.created_by}
    for person in booking.participants:
        mails: list[Received] = story.pop(person.email, [])
        if not mails:
            # Nothing to tell: a request never approved, or closed before anyone was told.
            assert not booking.live, context
            assert person.email not in requester or booking.status is BookingStatus.PENDING, context
            continue
        first = mails[0]
        if first.method == "CANCEL":
            # (a) never told of it: only the requester hears, once, that it is off
            assert person.email in requester, context
            assert len(mails) == 1, context
        else:
            expected = "Assigned to you" if person.role in HOSTS else "Confirmed"
            assert first.headline == expected, context
        # (b) each mail changes what their calendar holds
        views = [m.view for m in mails]
        assert all(a != b for a, b in pairwise(views)), context
        # (c) SEQUENCE only grows
        sequences = [m.sequence for m in mails]
        assert sequences == sorted(set(sequences)), context
        # (d) the last mail tells the booking as it is
        last = mails[-1]
        assert last.sequence <= booking.mail.current_sequence, context
        if booking.live:
            assert last.method == "REQUEST", context
            assert (last.start, last.end) == (booking.start, booking.end), context
            meeting = booking.meeting
            assert last.link == (meeting.join_url if meeting.in_teams else None), context
        else:
            assert last.method == "CANCEL", context
            assert last.sequence == booking.mail.current_sequence, context
            assert last.headline == "Cancelled", context
            assert all(m.method == "REQUEST" for m in mails[:-1]), context
    assert story == {}, context  # nobody off the booking was mailed


# PROPERTY_SOAK=N runs N scripts (a soak run); the README's test command runs 150.
SOAK = int(os.environ.get("PROPERTY_SOAK", "0"))


@settings(
    max_examples=SOAK or 150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# The stories found wanting before the rule, kept as examples: a meeting remade before the
# first mail, a move before it, a notice that reached only one recipient when the booking
# moved or was cancelled, a move and back before anyone heard, and an approval that reached
# the student without the link and the tutor with it.
@example(opening=["approve"], events=[("remake", 1)], host_first=False, per_minute=30)
@example(opening=["approve"], events=[("reschedule", 2)], host_first=False, per_minute=30)
@example(
    opening=["approve"], events=[("mail", 1), ("reschedule", 2)], host_first=False, per_minute=1
)
@example(opening=["approve"], events=[("mail", 1), ("cancel", 1)], host_first=True, per_minute=1)
@example(
    opening=["approve"],
    events=[("reschedule", 2), ("mail", 1), ("reschedule", 1), ("reschedule", 2)],
    host_first=False,
    per_minute=30,
)
@example(
    opening=["approve", "meeting_fault"],
    events=[("remake", 1), ("later", 3), ("later", 4), ("mail", 1)],
    host_first=False,
    per_minute=1,
)
@given(
    opening=st.lists(st.sampled_from(("approve", "mail_fault", "meeting_fault")), max_size=2),
    events=script,
    host_first=st.booleans(),
    # A mailbox that takes one mail a minute leaves notices sent to some recipients only.
    per_minute=st.sampled_from((30, 1)),
)
def test_each_recipients_mails_read_as_a_story(opening, events, host_first, per_minute):
    with mail_world(per_minute=per_minute) as mw:
        booking_id = new_booking(mw, host_first)
        log: list[Any] = list(opening)
        for kind in opening:
            apply(mw, booking_id, kind, 2)
        for kind, n in events:
            log.append((kind, n))
            apply(mw, booking_id, kind, n)
        run_to_the_end(mw, booking_id)
        assert_each_story(mw, booking_id, log)
