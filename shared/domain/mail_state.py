"""A booking's mail as it is saved on the booking: the notices still owed and how the finished
ones went. Pure values; the rules that change them, given a booking, are in
`shared.domain.notices`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum


class NoticeKind(StrEnum):
    APPROVED = "approved"  # to the client/student, and the assignment to the tutor
    PAYMENT_CONFIRMED = "payment_confirmed"
    RESCHEDULED = "rescheduled"
    CANCELLED = "cancelled"
    DECLINED = "declined"
    REFUNDED = "refunded"
    LINK_CHANGED = "link_changed"  # the meeting was made anew: a new join link
    LINK_READY = "link_ready"  # an earlier e-mail went without the link; here it is
    REMINDER = "reminder"  # the session starts soon (shared/domain/reminders.py)
    # The lesson's attendance showed a no-show: told to the tenant's staff address, not to
    # the participants, and without an invite (it changes no one's calendar).
    NO_SHOW = "no_show"

    @property
    def closing(self) -> bool:
        """Its invite is a `METHOD:CANCEL`."""
        return self in (NoticeKind.CANCELLED, NoticeKind.DECLINED, NoticeKind.REFUNDED)

    @property
    def brings_link(self) -> bool:
        """Its whole point is the join link."""
        return self in (NoticeKind.LINK_CHANGED, NoticeKind.LINK_READY)

    @property
    def changes_invite(self) -> bool:
        """It issues a new invite (the next SEQUENCE). A reminder changes nothing in the
        calendar: its invite is the current one again, at the current SEQUENCE."""
        return self not in (NoticeKind.REMINDER, NoticeKind.NO_SHOW)

    @property
    def for_staff(self) -> bool:
        """It goes to the addresses it names (the tenant's staff), not to the participants,
        and carries no invite."""
        return self is NoticeKind.NO_SHOW


# Pending notices kept on one booking; a booking changed faster than mail can go keeps the
# oldest (whoever has not had it is told the booking is on: it may be the approval) and the
# newest (each renders the booking's latest state, so the newest tell the whole story).
MAX_PENDING = 8


def kept(pending: tuple[Notice, ...]) -> tuple[Notice, ...]:
    """At most `MAX_PENDING` notices: the oldest and the newest; those between are told by
    the newest anyway (the mail story rule)."""
    if len(pending) <= MAX_PENDING:
        return pending
    return (pending[0], *pending[-(MAX_PENDING - 1) :])


@dataclass(frozen=True)
class Notice:
    """One change to tell the participants about.

    `number` (1, 2, 3, … per booking) with the recipient is the idempotency key of one e-mail:
    a redelivered message never sends it twice. `sequence` is the ICS SEQUENCE of its invite.
    """

    kind: NoticeKind
    number: int
    sequence: int
    recorded_at: datetime
    attempts: int = 0
    rounds: int = 0
    next_attempt_at: datetime | None = None
    last_error_code: str | None = None
    # Only these addresses (lower case) are sent it; empty: everyone it is for.
    to: tuple[str, ...] = ()
    # The addresses sent it without the join link while it is still owed to others.
    without_link: tuple[str, ...] = ()


@dataclass(frozen=True)
class Told:
    """What the participants' calendars hold after the last notice delivered to them all: the
    times and the join link its invite carried."""

    start: datetime
    end: datetime
    link: str | None


class MailStatus(StrEnum):
    """What the API shows of a booking's mail."""

    NONE = "none"  # nothing was ever owed
    PENDING = "pending"  # notices wait to be sent (or for the meeting link, or a retry)
    SENT = "sent"  # every notice went out
    FAILED = "failed"  # the last notice that finished could not be delivered


@dataclass(frozen=True)
class MailState:
    """A booking's mail: the notices still owed, and how the finished ones went.

    `issued` counts notices (the next number), `invites` the invites issued (the next ICS
    SEQUENCE: it only grows, so calendars always take the newest).
    """

    issued: int = 0
    invites: int = 0
    pending: tuple[Notice, ...] = ()
    sent: int = 0
    failed: int = 0
    last_failed: bool = False
    last_error_code: str | None = None
    last_sent_at: datetime | None = None
    # An invite went out without the join link (the meeting did not exist yet): when it does,
    # the participants are sent the link.
    link_owed: bool = False
    # Who is owed it, when only some are (the notice went to them before the meeting existed,
    # to the others after); empty: everyone.
    owed_to: tuple[str, ...] = ()
    # What the last notice delivered (to everyone it was for) told them, while the booking is on.
    told: Told | None = None

    @property
    def status(self) -> MailStatus:
        if self.pending:
            return MailStatus.PENDING
        if self.issued == 0:
            return MailStatus.NONE
        return MailStatus.FAILED if self.last_failed else MailStatus.SENT

    @property
    def current_sequence(self) -> int:
        """The SEQUENCE of the newest invite issued (0 before any)."""
        return max(self.invites - 1, 0)

    def notice(self, number: int) -> Notice | None:
        return next((n for n in self.pending if n.number == number), None)

    def next_attempt_at(self) -> datetime | None:
        """The earliest scheduled retry, while every pending notice waits for one."""
        times = [n.next_attempt_at for n in self.pending]
        if not times or any(t is None for t in times):
            return None
        return min(t for t in times if t is not None)

    def requested(self, kind: NoticeKind, *, now: datetime, to: tuple[str, ...] = ()) -> MailState:
        """The mail, owing one more notice of `kind` (at most `MAX_PENDING` are kept), to the
        addresses `to` only when some are given. A kind that changes no invite (a reminder)
        carries the current SEQUENCE and issues none."""
        new_invite = kind.changes_invite
        sequence = self.invites if new_invite else self.current_sequence
        notice = Notice(
            kind=kind, number=self.issued + 1, sequence=sequence, recorded_at=now, to=to
        )
        pending = kept((*self.pending, notice))
        invites = self.invites + (1 if new_invite else 0)
        return replace(self, issued=notice.number, invites=invites, pending=pending)
