"""What a saved change implies, carried out in one place for every trigger.

A transition returns the new booking, and the booking says what follows from it: meeting work
(`needs_reconciliation`, with its marker saved in the same transaction) and notices owed
(`mail.pending`, with theirs). `FollowUp` carries that out, the same way for a user action
(HTTP), a payment (Stripe), the credential check's restarts (the timer) and the queue worker:

- `after_change`: the meeting's outbox message and one inline attempt (`MeetingSync`), then
  the mail outbox message (`MailOutbox`), then the message of each other registered kind of
  work the booking owes (`KindWorker`). Mail comes after the meeting attempt, so that the
  e-mail finds the join link when Graph made the meeting in time.
- `after_meeting`: the meeting worker moved a meeting on; mail that waited for it goes now.

Neither fails the change: it is saved already, and a lost message is found by the timer
through the booking's markers (SPEC §2, §7, §8).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.meetings.worker import Claiming, MeetingSync, SyncResult

if TYPE_CHECKING:
    from shared.domain.booking import Booking
    from shared.domain.tenant import Tenant
    from shared.mail.delivery import MailOutbox
    from shared.work.kinds import KindWorker


class FollowUp:
    """The one step after a change. Without a mail outbox, only the meeting follows."""

    def __init__(
        self, sync: MeetingSync, mail: MailOutbox | None = None, kinds: KindWorker | None = None
    ) -> None:
        self._sync = sync
        self._mail = mail
        self._kinds = kinds

    def after_change(
        self,
        saved: Booking,
        *,
        actor: str | None,
        tenant: Tenant | None = None,
        claim: Claiming | None = None,
    ) -> SyncResult:
        """The meeting follows `saved` (`MeetingSync.after_change`: `tenant` as the caller read
        it, `claim` the transition that saved the step's claim), then its mail is enqueued."""
        synced = self._sync.after_change(saved, actor=actor, tenant=tenant, claim=claim)
        if self._mail is not None:
            # After the inline meeting attempt, so that the e-mail finds the join link.
            self._mail.after_change(synced.booking)
        if self._kinds is not None:
            self._kinds.after_change(synced.booking)
        return synced

    def after_meeting(self, booking: Booking) -> None:
        """The queue worker moved `booking`'s meeting on: mail that waited for it goes."""
        if self._mail is not None:
            self._mail.after_meeting(booking)
