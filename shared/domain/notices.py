"""What a booking owes its participants by e-mail (SPEC §8): notices, recorded with the change
that calls for them and delivered later by the mail worker.

A notice is a kind of change (approved, rescheduled, cancelled, …) with a number and the ICS
`SEQUENCE` its invite carries. It is saved on the booking in the same transaction as the change,
so a change and its mail can never part: if the queue message is lost, the timer finds the
pending notice; if the mail fails, the booking says so. Pure rules, like the rest of the
domain; the values they change (`Notice`, `MailState`), which a booking holds, are in
`shared.domain.mail_state`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from shared.domain.mail_state import (
    MAX_PENDING,
    MailState,
    MailStatus,
    Notice,
    NoticeKind,
    Told,
    kept,
)

if TYPE_CHECKING:
    from shared.domain.booking import Booking

__all__ = ["MAX_PENDING", "MailState", "MailStatus", "Notice", "NoticeKind", "Told", "told_as"]

# The mail story rule's wording, most telling first: what a recipient who never saw the
# notices of a run is told by its one mail (a closing last notice aside, see `told_as`).
_TELLING = (
    NoticeKind.APPROVED,
    NoticeKind.PAYMENT_CONFIRMED,
    NoticeKind.RESCHEDULED,
    NoticeKind.LINK_READY,
    NoticeKind.LINK_CHANGED,
)


def requested(
    booking: Booking, kind: NoticeKind, *, now: datetime, to: tuple[str, ...] = ()
) -> Booking:
    """The booking, owing its participants (or, with `to`, those addresses) a notice of
    `kind`. Call it inside the transition that makes the change, so the notice is saved in
    the same transaction as the change."""
    return replace(booking, mail=booking.mail.requested(kind, now=now, to=to))


def waiting_for_link(booking: Booking) -> bool:
    """The booking wants a Teams meeting that does not exist yet, and its creation has not
    failed: a notice now would go without the join link."""
    meeting = booking.meeting
    return booking.live and meeting.wanted and not meeting.in_teams and not meeting.failed


def due(booking: Booking, notice: Notice, now: datetime, link_wait: timedelta) -> bool:
    """A notice goes once the meeting it is about exists (so the first e-mail carries the
    link), or when waiting longer would be worse than a mail without it."""
    if notice.kind.closing or notice.kind is NoticeKind.REMINDER or not waiting_for_link(booking):
        return True  # a reminder does not wait: it says the link follows
    return now - notice.recorded_at >= link_wait


def superseded(booking: Booking, notice: Notice, now: datetime | None = None) -> bool:
    """An invite for a booking that has since closed: the closing notice tells it all. A
    reminder for a start the booking has since moved from (the new-time mail tells it), or
    that could only go once the session has started (`now`)."""
    if notice.kind is NoticeKind.REMINDER and (
        (now is not None and now >= booking.start)
        or not any(
            r.notice == notice.number and r.for_start == booking.start
            for r in booking.reminders.sent
        )
    ):
        return True
    if notice.kind.for_staff:
        return False  # about the lesson that took place: the booking is completed by then
    return not notice.kind.closing and not booking.live


def told_as(run: Sequence[NoticeKind]) -> NoticeKind:
    """The wording of the one mail that tells a recipient a run of notices they have not had
    (oldest first; the mail is the newest notice's, rendered from the booking's latest state,
    with its SEQUENCE). A closing newest notice says it is over. Otherwise the most telling
    change of the run: whoever was never told of the booking is told it is confirmed (at
    the times and with the link it has now, not that it moved), whoever knew it is told of
    its new time (with the current link), and only a run of links is a new link.
    """
    if not run:
        raise ValueError("a run of notices has at least one")
    newest = run[-1]
    if newest.closing:
        return newest
    return min(run, key=lambda kind: _TELLING.index(kind) if kind in _TELLING else len(_TELLING))


def _finished(mail: MailState, number: int, **changes: object) -> MailState:
    pending = tuple(n for n in mail.pending if n.number != number)
    return replace(mail, pending=pending, **changes)  # type: ignore[arg-type]


def delivered(
    booking: Booking,
    number: int,
    now: datetime,
    *,
    without_link: bool = False,
    told: Told | None = None,
) -> Booking:
    """Every recipient of notice `number` has it. `without_link`: it was an invite to a
    meeting that did not exist yet, so the link is owed (to those it reached without it
    before, `Notice.without_link`, when it reached the others with it). `told`: what its
    invite carried."""
    mail = booking.mail
    notice = mail.notice(number)
    if notice is None:
        return booking
    owed_to = mail.owed_to
    if notice.kind.closing:
        owed = mail.link_owed
    elif without_link:
        owed, owed_to = True, ()
    elif notice.without_link and not (mail.link_owed and not mail.owed_to):
        owed, owed_to = True, tuple(sorted({*mail.owed_to, *notice.without_link}))
    else:
        owed = mail.link_owed
    mail = _finished(
        mail,
        number,
        sent=mail.sent + 1,
        last_failed=False,
        last_error_code=None,
        last_sent_at=now,
        link_owed=owed,
        owed_to=owed_to if owed else (),
        told=None if notice.kind.closing else (told or mail.told),
    )
    after = replace(booking, mail=mail)
    # The meeting may have arrived while this mail was on its way.
    return link_arrived(after, now) if owed and booking.meeting.in_teams else after


def link_arrived(booking: Booking, now: datetime) -> Booking:
    """The booking's meeting now exists: if an e-mail went without its link, send the link."""
    if not booking.mail.link_owed:
        return booking
    to = booking.mail.owed_to
    booking = replace(booking, mail=replace(booking.mail, link_owed=False, owed_to=()))
    if not booking.live:
        return booking
    return replace(booking, mail=booking.mail.requested(NoticeKind.LINK_READY, now=now, to=to))


def sent_without_link(booking: Booking, number: int, addresses: Sequence[str]) -> Booking:
    """Notice `number` reached `addresses` without the join link, and not everyone yet: if
    the others get it with the link, these are still owed it."""
    notice = booking.mail.notice(number)
    if notice is None or not addresses:
        return booking
    marked = replace(
        notice,
        without_link=tuple(sorted({*notice.without_link, *(a.lower() for a in addresses)})),
    )
    pending = tuple(marked if n.number == number else n for n in booking.mail.pending)
    return replace(booking, mail=replace(booking.mail, pending=pending))


def dropped(booking: Booking, number: int) -> Booking:
    """Notice `number` is superseded (see `superseded`): it finishes without a mail."""
    if booking.mail.notice(number) is None:
        return booking
    return replace(booking, mail=_finished(booking.mail, number))


def attempt_failed(
    booking: Booking, number: int, error_code: str, *, permanent: bool, now: datetime
) -> Booking:
    """An attempt at notice `number` failed; a permanent failure finishes it as failed."""
    mail = booking.mail
    notice = mail.notice(number)
    if notice is None:
        return booking
    if permanent:
        mail = _finished(
            mail, number, failed=mail.failed + 1, last_failed=True, last_error_code=error_code
        )
        return replace(booking, mail=mail)
    failed = replace(notice, attempts=notice.attempts + 1, last_error_code=error_code)
    pending = tuple(failed if n.number == number else n for n in mail.pending)
    return replace(booking, mail=replace(mail, pending=pending, last_error_code=error_code))


def retry_scheduled(booking: Booking, number: int, at: datetime) -> Booking:
    mail = booking.mail
    notice = mail.notice(number)
    if notice is None:
        return booking
    scheduled = replace(notice, rounds=notice.rounds + 1, next_attempt_at=at)
    pending = tuple(scheduled if n.number == number else n for n in mail.pending)
    return replace(booking, mail=replace(mail, pending=pending))


def owed_again(
    booking: Booking, number: int, kind: NoticeKind, sequence: int, *, now: datetime
) -> Booking | None:
    """Notice `number`, finished as failed, owed again after the cause was fixed (the
    operator's replay of its poisoned message). The recipients who had it are not sent it twice:
    the number is the same, and with the recipient it keys each e-mail.

    None when there is nothing left to send: it is pending already, or went since (a replay
    done twice); a newer notice was issued since (that one renders the booking as it is now,
    with a higher SEQUENCE, so it tells all this one would); or it invites to a booking that has
    since closed."""
    mail = booking.mail
    if mail.notice(number) is not None or mail.issued != number or not mail.last_failed:
        return None
    notice = Notice(kind=kind, number=number, sequence=sequence, recorded_at=now)
    if superseded(booking, notice):
        return None
    pending = kept((*mail.pending, notice))
    return replace(booking, mail=replace(mail, pending=pending))
