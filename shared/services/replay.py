"""Replaying poisoned work after a fix (the operator's `scripts/poison.py`).

A poisoned message names a booking. Replaying it puts that booking's work back on its queue,
where the usual worker takes it: for a meeting, the outstanding work is first asked for afresh
(`restart_meeting_work`, as the admin's retry route does), since the converger leaves a meeting
whose retries stopped (`failed`) alone; for mail, the notice that finished as failed is owed
again (`notices.owed_again`: not when a newer notice has told it all since), and the booking's
pending mail goes out, to the recipients who do not have it yet. The poisoned message is deleted
only once the work is back on its queue.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from shared.domain import notices
from shared.domain.booking import Booking, IllegalTransitionError
from shared.domain.notices import NoticeKind
from shared.errors import AppError
from shared.services.bookings import restart_meeting_work
from shared.storage.bookings import BookingRepository
from shared.storage.errors import ConcurrencyError, NotFoundError, StorageError
from shared.storage.poisoned import MAIL_WORK, MEETING_WORK, HeldMessage, PoisonedMessages
from shared.storage.queues import BadMessageError, PoisonedWork, WorkMessage, WorkQueue

_SAVE_TRIES = 5


class ReplayError(AppError):
    """This message cannot be replayed as it is; it stays where it is."""

    code = "not_replayable"


@dataclass(frozen=True)
class Replayed:
    held: HeldMessage
    work: PoisonedWork
    note: str


class PoisonReplay:
    def __init__(
        self,
        bookings: BookingRepository,
        queues: dict[str, WorkQueue],
        clock: Callable[[], datetime],
    ) -> None:
        self._bookings = bookings
        self._queues = queues  # by work kind name: "meeting", "mail"
        self._clock = clock

    def replay(self, held: HeldMessage) -> Replayed:
        """Put the work of `held` back on its queue. The caller deletes the message after."""
        work = read_work(held)
        note = "mail work re-enqueued"
        if held.kind is MAIL_WORK and work.notice is not None:
            note = self._owe_again(work)
        if held.kind is MEETING_WORK:
            booking = self._booking(work)
            try:
                restart_meeting_work(self._bookings, booking, self._clock)
                note = "meeting work restarted and re-enqueued"
            except IllegalTransitionError:
                # Converged meanwhile (a user action, the retry route): the message finds
                # nothing to do, which is the truth.
                note = "meeting already as the booking says; re-enqueued all the same"
        self._queues[held.kind.name].send(WorkMessage(work.tenant_id, work.booking_id))
        return Replayed(held, work, note)

    def _booking(self, work: PoisonedWork) -> Booking:
        try:
            return self._bookings.get(work.tenant_id, work.booking_id)
        except NotFoundError as exc:
            raise ReplayError(
                f"booking {work.booking_id} of tenant {work.tenant_id} does not exist"
            ) from exc

    def _owe_again(self, work: PoisonedWork) -> str:
        """Owe the failed notice of `work` again; what was done, for the operator."""
        assert work.notice is not None
        try:
            kind = NoticeKind(work.notice_kind or "")
        except ValueError as exc:
            raise ReplayError(
                f"the message names no known notice kind: {work.notice_kind}"
            ) from exc
        booking = self._booking(work)
        for _ in range(_SAVE_TRIES):
            owed = notices.owed_again(
                booking, work.notice, kind, work.sequence or 0, now=self._clock()
            )
            if owed is None:
                return (
                    f"notice {work.notice} ({kind.value}) has nothing left to send (a newer "
                    "notice was issued, or it is pending); mail work re-enqueued"
                )
            try:
                self._bookings.update(owed)
            except ConcurrencyError:
                booking = self._booking(work)
                continue
            return (
                f"notice {work.notice} ({kind.value}) owed again; mail work re-enqueued "
                "(recipients who have it are not sent it twice)"
            )
        raise StorageError(f"booking {work.booking_id}: could not owe notice {work.notice} again")

    def replay_all(
        self, source: PoisonedMessages, message_id: str | None
    ) -> tuple[list[Replayed], list[tuple[HeldMessage, str]]]:
        """Replay `message_id` (every message when None) of `source`: (replayed, refused)."""
        done: list[Replayed] = []
        refused: list[tuple[HeldMessage, str]] = []
        with source.taken(message_id) as taken:
            for item in taken:
                try:
                    replayed = self.replay(item.held)
                except ReplayError as exc:
                    refused.append((item.held, str(exc)))
                    continue
                item.delete()
                done.append(replayed)
        return done, refused


def read_work(held: HeldMessage) -> PoisonedWork:
    try:
        return PoisonedWork.from_text(held.text)
    except BadMessageError as exc:
        raise ReplayError(f"the message is not {held.kind.name} work: {exc}") from exc
