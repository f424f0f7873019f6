"""Ending a failed round of durable work: the next delayed round, or poison (SPEC §7, §8).

Every kind of work keeps its rounds on the booking (the meeting's on its meeting state, a
mail's on its notice, any other kind's in `Booking.work`), so that new work starts again at
round 1 whatever messages of older work are still on their way. The decision is taken on the
latest version of the booking, in the same write that records it: the round's number, its
delay (the policy's, with jitter, never sooner than Retry-After), or, once the rounds are spent
or the error is permanent, the end of the work. Then the kind's queue gets the delayed message,
or its poison queue the poisoned one, whose consumer logs the one ERROR.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from shared.domain.booking import Booking
from shared.observability import log_event
from shared.storage.errors import StorageError
from shared.storage.queues import PoisonedWork, WorkMessage, WorkQueue
from shared.work.policy import RetryPolicy
from shared.work.record import Change

PERMANENT = "permanent"
RETRIES_EXHAUSTED = "retries_exhausted"


class RoundError(Protocol):
    """The failure that ended a round, as the kit reads it."""

    @property
    def code(self) -> str: ...

    @property
    def retryable(self) -> bool: ...

    @property
    def retry_after(self) -> float | None: ...


class Rounds(Protocol):
    """How one piece of work keeps its rounds on the booking."""

    def taken(self, booking: Booking) -> int | None:
        """Rounds it has had; None when this round is not the caller's to end (the work is
        gone, or another holder owns it)."""
        ...

    def scheduled(self, booking: Booking, at: datetime) -> Booking:
        """The booking with the next round recorded, due at `at`."""
        ...

    def stopped(self, booking: Booking, reason: str) -> Booking:
        """The booking with the work ended for good (`PERMANENT` or `RETRIES_EXHAUSTED`)."""
        ...


@dataclass(frozen=True)
class RoundEnd:
    round: int
    delay: float | None = None  # seconds before it; None when the work stopped
    reason: str | None = None  # why it stopped


Record = Callable[[Booking, Change], Booking]


def poison(
    queue: WorkQueue, poisoned: PoisonedWork, unsent: Callable[[PoisonedWork], None]
) -> None:
    """Work stopped for good: its message goes to the poison queue, whose consumer records it;
    `unsent(poisoned)` records it here when the poison queue cannot be reached."""
    try:
        queue.send_poison(poisoned)
    except StorageError:
        unsent(poisoned)


class RetryRounds:
    """Schedule-or-poison for one kind of work (`kind` names its log events)."""

    def __init__(
        self,
        kind: str,
        queue: WorkQueue,
        policy: RetryPolicy,
        clock: Callable[[], datetime],
        logger: logging.Logger,
        *,
        unsent_poison: Callable[[PoisonedWork], None],
        rnd: Callable[[], float] = random.random,
    ) -> None:
        self._kind = kind
        self._queue = queue
        self._policy = policy
        self._clock = clock
        self._logger = logger
        self._unsent_poison = unsent_poison
        self._rnd = rnd

    def end(
        self,
        booking: Booking,
        rounds: Rounds,
        error: RoundError,
        record: Record,
        poisoned: Callable[[Booking, RoundEnd], PoisonedWork],
        *,
        requeue: bool = True,
        **log_fields: Any,
    ) -> Booking:
        """End the round under way after `error`: record the next round or the end on the
        latest version (through `record`), then send the delayed message (unless `requeue`
        is off: the timer leaves it to its next look) or the poisoned one."""
        now = self._clock()
        rnd = self._rnd()
        decided: list[RoundEnd] = []

        def next_round(b: Booking) -> Booking:
            decided.clear()
            taken = rounds.taken(b)
            if taken is None:
                return b
            round_ = taken + 1
            if not error.retryable or round_ > len(self._policy.rounds):
                reason = PERMANENT if not error.retryable else RETRIES_EXHAUSTED
                decided.append(RoundEnd(round_, reason=reason))
                return rounds.stopped(b, reason)
            delay = self._policy.round_delay(round_, error.retry_after, rnd)
            decided.append(RoundEnd(round_, delay))
            return rounds.scheduled(b, now + timedelta(seconds=delay))

        after = record(booking, next_round)
        if not decided:
            return after
        end = decided[0]
        if end.delay is None:
            self.poison(poisoned(after, end))
            return after
        if requeue:
            self._queue.send(WorkMessage(booking.tenant_id, booking.booking_id), end.delay)
        log_event(
            self._logger,
            logging.INFO,
            f"{self._kind}_retry_scheduled",
            tenant=booking.tenant_id,
            bookingId=booking.booking_id,
            **log_fields,
            round=end.round,
            delaySeconds=round(end.delay, 1),
            errorCode=error.code,
        )
        return after

    def poison(self, poisoned: PoisonedWork) -> None:
        poison(self._queue, poisoned, self._unsent_poison)
