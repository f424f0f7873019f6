"""Reminders before a session: each participant is e-mailed once per offset before the start,
however often the timer runs; none after a cancellation; a moved booking is reminded for its new
time only; none when the tenant turned them off; the join link, or word that it follows; in the
participant's language. The whole service in memory (its own bootstrap), time on the world's
clock, mail into a folder of `.eml` files."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import icalendar
import pytest

from shared.api.commands import reminder_offsets
from shared.api.validation import ValidationError
from shared.domain import reminders
from shared.domain.booking import BookingStatus, MeetingState, Participant, ParticipantRole
from shared.domain.notices import NoticeKind
from shared.domain.reminders import SentReminder
from tests.builders import a_booking
from tests.mail_world import TENANT, MailWorld, mail_world
from tests.unit.test_mail_delivery import approve, cancel, invite_of, text_of

DAY, QUARTER = timedelta(days=1), timedelta(minutes=15)


def a_confirmed_booking(mw: MailWorld, start_in: timedelta = timedelta(days=3), **changes):
    """Approved with its meeting, its approval mail delivered."""
    start = mw.world.clock.now + start_in
    booking = a_booking(
        tenant_id=TENANT,
        start=start,
        end=start + timedelta(hours=1),
        status=BookingStatus.PENDING,
        **changes,
    )
    booking_id = mw.world.bookings.add(booking).booking_id
    approve(mw, booking_id)
    mw.drain()
    return booking_id


def run_timer(mw: MailWorld, times: int = 1) -> int:
    """The timer's reminder pass, `times` times; then the mail queue. Reminders recorded."""
    recorded = sum(mw.world.services.reminders.run().reminded for _ in range(times))
    mw.drain()
    return recorded


def at(mw: MailWorld, moment: datetime) -> None:
    assert moment >= mw.world.clock.now
    mw.world.clock.now = moment


def reminder_mails(mw: MailWorld) -> list[Any]:
    return [m for m in mw.emls() if str(m["Subject"]).startswith(("Reminder:", "Erinnerung:"))]


def to_whom(mails: list[Any]) -> Counter[str]:
    return Counter(str(m["To"].addresses[0].addr_spec) for m in mails)


def test_each_participant_is_reminded_once_per_offset_however_often_the_timer_runs(tmp_path: Path):
    with mail_world(tmp_path) as mw:
        # GIVEN a confirmed booking with its meeting, three days ahead (offsets 24 h and 15 min)
        booking_id = a_confirmed_booking(mw)
        start = mw.world.booking(booking_id).start
        join_url = mw.world.booking(booking_id).meeting.join_url
        assert join_url is not None

        # WHEN the timer runs before the first reminder is due, then three times once it is,
        # and again and again later
        assert run_timer(mw, 3) == 0
        at(mw, start - DAY + timedelta(minutes=2))
        assert run_timer(mw, 3) == 1
        at(mw, start - DAY + timedelta(minutes=7))
        assert run_timer(mw, 2) == 0
        first = reminder_mails(mw)

        # THEN each participant has one reminder, with the join link and the current invite
        assert to_whom(first) == {"student@example.com": 1, "tutor@example.com": 1}
        for mail in first:
            assert join_url in text_of(mail)
            calendar: Any = icalendar.Calendar.from_ical(invite_of(mail))
            (event,) = calendar.walk("VEVENT")
            # a reminder changes nothing in the calendar: the approval's invite, same SEQUENCE
            assert (str(calendar["METHOD"]), int(event["SEQUENCE"])) == ("REQUEST", 0)

        # WHEN the 15-minute moment comes and the timer runs on until after the start
        at(mw, start - QUARTER + timedelta(seconds=30))
        assert run_timer(mw, 2) == 1
        at(mw, start + timedelta(minutes=1))
        assert run_timer(mw, 2) == 0

        # THEN one more each: two reminders per participant, one per offset
        assert to_whom(reminder_mails(mw)) == {"student@example.com": 2, "tutor@example.com": 2}
        booking = mw.world.booking(booking_id)
        assert [(r.offset_minutes, r.for_start) for r in booking.reminders.sent] == [
            (1440, start),
            (15, start),
        ]
        # the invites issued are still only the approval's
        assert booking.mail.current_sequence == 0


def test_a_cancelled_booking_is_not_reminded_even_once_its_reminder_was_recorded(
    tmp_path: Path,
):
    with mail_world(tmp_path) as mw:
        # GIVEN two confirmed bookings; one is cancelled before its reminder is due
        early, late = a_confirmed_booking(mw), a_confirmed_booking(mw)
        start = mw.world.booking(early).start
        cancel(mw, early)
        mw.drain()

        # WHEN the reminder comes due; the timer records the other's, then it is cancelled too
        # before its mail went
        at(mw, start - DAY + timedelta(minutes=1))
        assert mw.world.services.reminders.run().reminded == 1
        cancel(mw, late)
        mw.drain()
        at(mw, start - QUARTER)
        assert run_timer(mw, 2) == 0

        # THEN no reminder went to anyone; the cancellations did
        assert reminder_mails(mw) == []
        subjects = Counter(str(m["Subject"]).split(":")[0] for m in mw.emls())
        assert subjects["Cancelled"] == 4
        assert mw.world.booking(late).mail.pending == ()


def test_a_moved_booking_is_reminded_for_its_new_time_not_its_old_one(tmp_path: Path):
    from shared.services import bookings as use_cases
    from tests.unit.test_mail_delivery import STAFF

    with mail_world(tmp_path) as mw:
        # GIVEN a confirmed booking whose 24-hour reminder was recorded but not yet mailed
        booking_id = a_confirmed_booking(mw)
        old_start = mw.world.booking(booking_id).start
        at(mw, old_start - DAY + timedelta(minutes=1))
        assert mw.world.services.reminders.run().reminded == 1

        # WHEN it is moved two days later before that mail went, and the timer runs on past
        # the old start's reminders and on to the new start's
        new_start = old_start + 2 * DAY
        use_cases.reschedule_booking(
            STAFF, booking_id, (new_start, new_start + timedelta(hours=1)), mw.deps
        )
        mw.drain()
        at(mw, old_start - QUARTER + timedelta(minutes=1))
        assert run_timer(mw) == 0
        assert reminder_mails(mw) == []
        at(mw, new_start - DAY + timedelta(minutes=3))
        assert run_timer(mw, 2) == 1
        at(mw, new_start - QUARTER + timedelta(minutes=3))
        assert run_timer(mw, 2) == 1

        # THEN only the new time's reminders went, two per participant, after the new-time mail
        mails = reminder_mails(mw)
        assert to_whom(mails) == {"student@example.com": 2, "tutor@example.com": 2}
        sent = mw.world.booking(booking_id).reminders.sent
        assert [(r.offset_minutes, r.for_start) for r in sent] == [
            (1440, old_start),
            (1440, new_start),
            (15, new_start),
        ]
        # the old start's record stays as history; its notice finished without a mail
        assert mw.world.booking(booking_id).mail.pending == ()


def test_a_reminder_that_could_only_go_after_the_start_is_dropped(tmp_path: Path):
    with mail_world(tmp_path) as mw:
        # GIVEN a 15-minute reminder recorded, whose mail did not go before the start (the
        # mail queue stalled)
        booking_id = a_confirmed_booking(mw)
        start = mw.world.booking(booking_id).start
        at(mw, start - QUARTER)
        assert mw.world.services.reminders.run().reminded == 1

        # WHEN the mail worker gets to it after the start
        at(mw, start + timedelta(minutes=1))
        mw.drain()

        # THEN it finished without a mail
        assert reminder_mails(mw) == []
        assert mw.world.booking(booking_id).mail.pending == ()


def test_reminders_off_with_an_empty_list_reads_nothing_and_sends_nothing(tmp_path: Path):
    with mail_world(tmp_path) as mw:
        # GIVEN a tenant whose reminderOffsets is [] and a booking a quarter of an hour ahead
        booking_id = a_confirmed_booking(mw, start_in=DAY)
        tenant = mw.world.tenants.get(TENANT)
        mw.world.tenants.update(replace(tenant, reminder_offsets=()))
        at(mw, mw.world.booking(booking_id).start - timedelta(minutes=10))

        # WHEN the timer runs
        report = mw.world.services.reminders.run()
        mw.drain()

        # THEN no booking was read and nothing recorded or sent
        assert (report.tenants, report.entities_read, report.reminded) == (1, 0, 0)
        assert reminder_mails(mw) == []
        assert mw.world.booking(booking_id).reminders.sent == ()


def test_without_a_live_meeting_the_reminder_says_the_link_follows(tmp_path: Path):
    with mail_world(tmp_path) as mw:
        # GIVEN a confirmed booking whose Teams meeting is not made yet
        start = mw.world.clock.now + timedelta(hours=3)
        booking = a_booking(
            tenant_id=TENANT,
            start=start,
            end=start + timedelta(hours=1),
            status=BookingStatus.CONFIRMED,
            meeting=MeetingState(wanted=True),
        )
        booking_id = mw.world.bookings.add(booking).booking_id
        tenant = mw.world.tenants.get(TENANT)
        mw.world.tenants.update(replace(tenant, reminder_offsets=(150,)))

        # WHEN its reminder comes due (the meeting still on its way)
        at(mw, start - timedelta(minutes=149))
        assert run_timer(mw) == 1

        # THEN the reminder went at once, without a link, saying it follows
        (mail, _) = reminder_mails(mw)
        text = text_of(mail)
        assert "https://teams.microsoft.com" not in text
        assert "The Teams meeting link is not ready yet" in text
        assert "This is a reminder of Computer Science" in text
        # and the link is owed: it goes by itself once the meeting exists
        assert mw.world.booking(booking_id).mail.link_owed


def test_an_approval_not_yet_mailed_is_told_with_the_reminder_in_one_mail(tmp_path: Path):
    from shared.domain.mail_state import MailState

    with mail_world(tmp_path) as mw:
        # GIVEN a booking approved moments before its reminder's moment, its approval mail still
        # waiting for the meeting's link
        start = mw.world.clock.now + timedelta(hours=3)
        booking = a_booking(
            tenant_id=TENANT,
            start=start,
            end=start + timedelta(hours=1),
            status=BookingStatus.CONFIRMED,
            meeting=MeetingState(wanted=True),
            mail=MailState().requested(NoticeKind.APPROVED, now=mw.world.clock.now),
        )
        booking_id = mw.world.bookings.add(booking).booking_id
        tenant = mw.world.tenants.get(TENANT)
        mw.world.tenants.update(replace(tenant, reminder_offsets=(179,)))

        # WHEN the reminder is recorded and the mail goes
        at(mw, start - timedelta(minutes=179))
        assert run_timer(mw) == 1

        # THEN each recipient has one mail, the approval's (the most telling), at SEQUENCE 0
        mails = mw.emls()
        assert sorted(str(m["Subject"]).split(":")[0] for m in mails) == [
            "Assigned to you",
            "Confirmed",
        ]
        for mail in mails:
            calendar: Any = icalendar.Calendar.from_ical(invite_of(mail))
            (event,) = calendar.walk("VEVENT")
            assert int(event["SEQUENCE"]) == 0
        assert mw.world.booking(booking_id).mail.pending == ()


def test_a_german_participant_is_reminded_in_german(tmp_path: Path):
    with mail_world(tmp_path) as mw:
        # GIVEN a booking whose student reads German
        booking_id = a_confirmed_booking(
            mw,
            participants=(
                Participant(
                    "student-1", ParticipantRole.STUDENT, "student@example.com", "Sam", "de-AT"
                ),
                Participant("tutor-1", ParticipantRole.TUTOR, "tutor@example.com", "Tia"),
            ),
        )
        start = mw.world.booking(booking_id).start

        # WHEN the 24-hour reminder goes
        at(mw, start - DAY + timedelta(minutes=1))
        assert run_timer(mw) == 1

        # THEN the student's is German, formal, the tutor's English
        by_whom = {str(m["To"].addresses[0].addr_spec): m for m in reminder_mails(mw)}
        german = by_whom["student@example.com"]
        assert str(german["Subject"]).startswith("Erinnerung: Computer Science, ")
        assert str(german["Content-Language"]) == "de"
        assert "Wir möchten Sie an Ihren bevorstehenden Termin Computer Science erinnern." in (
            text_of(german)
        )
        assert str(by_whom["tutor@example.com"]["Subject"]).startswith("Reminder: ")


# -- the rule, on its own ------------------------------------------------------------------------

START = datetime(2026, 12, 10, 15, 0, tzinfo=UTC)


def confirmed(**changes: Any):
    return a_booking(status=BookingStatus.CONFIRMED, start=START, end=START + QUARTER, **changes)


@pytest.mark.parametrize(
    ("now", "due"),
    [
        (START - DAY - timedelta(minutes=1), None),  # not yet
        (START - DAY, 1440),  # its moment
        (START - DAY + QUARTER, 1440),  # at most 15 minutes late
        (START - DAY + QUARTER + timedelta(seconds=1), None),  # later: skipped
        (START - timedelta(hours=3), None),  # made after the 24-hour moment: none until
        (START - QUARTER, 15),
        (START - timedelta(seconds=1), 15),
        (START, None),  # never once it started
    ],
)
def test_when_a_reminder_is_due(now: datetime, due: int | None):
    assert reminders.due_offset(confirmed(), (1440, 15), now) == due


def test_of_several_due_at_once_only_the_nearest_goes_and_no_larger_one_follows():
    # offsets 20 and 15: the timer was down until both were due
    now = START - timedelta(minutes=14)
    booking = reminders.reminded(confirmed(), (20, 15), now)
    assert [r.offset_minutes for r in booking.reminders.sent] == [15]
    assert [n.kind for n in booking.mail.pending] == [NoticeKind.REMINDER]
    # a minute later the 20-minute one is still within its lateness, but a nearer one went
    later = now + timedelta(minutes=1)
    assert reminders.reminded(booking, (20, 15), later) is booking


def test_a_reminder_for_a_moved_start_or_a_closed_booking_is_not_due():
    sent = SentReminder(15, START, START - QUARTER, 1)
    booking = confirmed(reminders=reminders.Reminders((sent,)))
    assert reminders.due_offset(booking, (15,), START - timedelta(minutes=10)) is None
    moved = replace(booking, start=START + DAY, end=START + DAY + QUARTER)
    assert reminders.due_offset(moved, (15,), START + DAY - timedelta(minutes=10)) == 15
    for status in (BookingStatus.CANCELLED, BookingStatus.DECLINED, BookingStatus.PENDING):
        assert reminders.due_offset(replace(moved, status=status), (15,), START + DAY) is None


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("1440", "invalid_type"),
        ([15.5], "invalid_type"),
        ([True], "invalid_type"),
        (["15"], "invalid_type"),
        ([10, 20, 30, 40, 50], "too_many"),
        ([0], "out_of_range"),
        ([10081], "out_of_range"),
        ([15, 15], "duplicate_value"),
        ([15, 15.0], "duplicate_value"),
    ],
)
def test_bad_reminder_offsets_are_refused_with_their_code(raw: Any, code: str):
    with pytest.raises(ValidationError) as refused:
        reminder_offsets(raw)
    assert refused.value.code == code
    assert "reminderOffsets" in str(refused.value)


def test_good_reminder_offsets_are_kept_largest_first():
    assert reminder_offsets([15, 10080, 60]) == (10080, 60, 15)
    assert reminder_offsets([]) == ()
    # JSON's whole numbers, however written
    assert reminder_offsets([318.0, 2]) == (318, 2)
    assert type(reminder_offsets([60.0])[0]) is int


@pytest.mark.parametrize(
    ("schedule", "late"),
    [
        ("0 */5 * * * *", timedelta(minutes=15)),  # the default: at least 15 minutes
        ("0 * * * * *", timedelta(minutes=15)),
        ("0 */10 * * * *", timedelta(minutes=30)),  # three periods
        ("0 0 */2 * * *", timedelta(hours=6)),
        ("0 30 * * * *", timedelta(hours=3)),
        ("0 5,35 9-17 * * 1-5", timedelta(minutes=15)),  # another shape: as every 5 minutes
    ],
)
def test_a_slower_timer_lets_reminders_be_later(schedule: str, late: timedelta):
    from shared.services.reminders import lateness_for

    assert lateness_for(schedule) == late
