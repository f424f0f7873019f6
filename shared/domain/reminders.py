"""Reminders before a session (SPEC §8): at each of the tenant's offsets before the start, each
participant is e-mailed the join link once.

The rule, pure like the rest of the domain: a booking is reminded at offset `o` at the first
timer run at or after `start - o`, while it is confirmed and before it starts, and at most
`late` after that moment (three timer periods, at least `LATE`), so a booking made or moved
after a reminder's moment is not sent that one (its approval or new-time mail has just told
the participants). When several offsets are due at once (the timer was down) only the nearest
goes, and an offset larger than one already sent for the same start never follows it. What was
sent is recorded on the booking, per offset and start, with the REMINDER notice that carries
it, in one save: each reminder goes once per booking and offset however often and
concurrently the timer runs, and a moved booking (a new start) is reminded afresh for its new
time.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from shared.domain.booking import Booking, BookingStatus
from shared.domain.mail_state import NoticeKind
from shared.domain.reminder_state import DEFAULT_OFFSETS, MAX_KEPT, Reminders, SentReminder

__all__ = ["DEFAULT_OFFSETS", "MAX_KEPT", "Reminders", "SentReminder"]

MAX_OFFSETS = 4
MIN_OFFSET_MINUTES = 1
MAX_OFFSET_MINUTES = 10080  # a week
# How late a reminder may still go after its moment, at least: three runs of the default
# 5-minute timer (a slower timer allows more: `shared.services.reminders.lateness_for`).
LATE = timedelta(minutes=15)


def offsets_problem(values: object) -> tuple[str, str] | None:
    """What is wrong with `values` as a tenant's reminder offsets, and its error code, or None:
    a list of at most four distinct whole numbers of minutes, each 1..10080 (a week); []
    turns reminders off."""
    if not isinstance(values, list | tuple):
        return "must be a list of minutes", "invalid_type"
    if not all(_whole(value) for value in values):
        return "must hold whole numbers of minutes", "invalid_type"
    if len(values) > MAX_OFFSETS:
        return f"may hold at most {MAX_OFFSETS} values", "too_many"
    if any(not MIN_OFFSET_MINUTES <= value <= MAX_OFFSET_MINUTES for value in values):
        limits = f"{MIN_OFFSET_MINUTES} to {MAX_OFFSET_MINUTES}"
        return f"values must be {limits} minutes", "out_of_range"
    if len(set(values)) != len(values):
        return "must not repeat a value", "duplicate_value"
    return None


def _whole(value: object) -> bool:
    """A whole number, as JSON has it (318 or 318.0), not a boolean."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def normalized(offsets: tuple[int, ...] | list[int]) -> tuple[int, ...]:
    """Offsets as stored and shown (checked by `offsets_problem`): whole minutes, largest
    first."""
    return tuple(sorted({int(o) for o in offsets}, reverse=True))


def window(offsets: tuple[int, ...]) -> timedelta | None:
    """How far ahead of now a booking may be due for a reminder (None: reminders are off)."""
    return timedelta(minutes=max(offsets)) if offsets else None


def due_offset(
    booking: Booking, offsets: tuple[int, ...], now: datetime, late: timedelta = LATE
) -> int | None:
    """The offset `booking` is to be reminded at now, or None (see the module's rule)."""
    start = booking.start
    if booking.status is not BookingStatus.CONFIRMED or not now < start:
        return None
    sent = [r.offset_minutes for r in booking.reminders.sent_for(start)]
    nearest_sent = min(sent, default=None)
    due = [
        o
        for o in offsets
        if start - timedelta(minutes=o) <= now <= start - timedelta(minutes=o) + late
        and (nearest_sent is None or o < nearest_sent)
    ]
    return min(due, default=None)


def reminded(
    booking: Booking, offsets: tuple[int, ...], now: datetime, late: timedelta = LATE
) -> Booking:
    """The booking with its due reminder recorded: the REMINDER notice and the record of
    (offset, start) in one change; the booking itself when none is due (also when another run
    recorded it meanwhile: the change is applied to the latest version)."""
    offset = due_offset(booking, offsets, now, late)
    if offset is None:
        return booking
    mail = booking.mail.requested(NoticeKind.REMINDER, now=now)
    record = SentReminder(offset, booking.start, now, mail.issued)
    sent = (*booking.reminders.sent, record)[-MAX_KEPT:]
    return replace(booking, mail=mail, reminders=Reminders(sent))


def current(booking: Booking, notice_number: int) -> bool:
    """Reminder notice `notice_number` is still about the booking's start (not moved since)."""
    return any(
        r.notice == notice_number and r.for_start == booking.start for r in booking.reminders.sent
    )
