"""The retry schedule every kind of durable work shares (seed 000: 1 s, 2 s, 4 s in process;
then delayed rounds of about 30 s, 2 min, 10 min, 1 h, 6 h, with jitter)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol, TypeVar

R = TypeVar("R")

# The longest a delayed round waits: a queue message cannot be hidden for longer (Storage's
# longest visibility timeout), whatever Retry-After asked for.
MAX_ROUND_SECONDS = 7 * 24 * 3600.0
# A message that arrives this close to its round's due time takes the round (queues are not
# exact to the second).
DUE_SLACK = timedelta(seconds=1)


@dataclass(frozen=True)
class RetryPolicy:
    """When durable work (a meeting step, a mail) is tried again: in process, then in delayed
    rounds through its queue."""

    in_process: tuple[float, ...] = (1.0, 2.0, 4.0)
    rounds: tuple[float, ...] = (30.0, 120.0, 600.0, 3600.0, 21600.0)
    jitter: float = 0.2
    # The outbox message of a user action becomes visible this long after it, when the inline
    # attempt has normally finished; if it succeeded, the message finds nothing to do.
    outbox_delay: float = 5.0
    inline_budget: float = 5.0
    # A Retry-After longer than this is waited for in the queue, not in a worker thread.
    max_in_process_wait: float = 10.0

    def round_delay(self, round_: int, retry_after: float | None, rnd: float) -> float:
        """Seconds before delayed round `round_` (1-based); `rnd` in [0, 1) spreads them. Never
        sooner than `retry_after`, never later than a queue message can wait."""
        base = self.rounds[min(round_, len(self.rounds)) - 1]
        spread = base * self.jitter * (2 * rnd - 1)
        return min(max(base + spread, retry_after or 0.0, 1.0), MAX_ROUND_SECONDS)


class Failure(Protocol):
    """What the kit needs to know of an error: whether to try again, and not before when."""

    @property
    def retryable(self) -> bool: ...

    @property
    def retry_after(self) -> float | None: ...


def retried_in_process(
    policy: RetryPolicy,
    sleep: Callable[[float], None],
    attempt: Callable[[int], R],
    failure: Callable[[R], Failure | None],
) -> R:
    """`attempt(0)`, then after each retryable `failure` of its result one more attempt
    (`attempt(1)`, …) after the policy's next pause, never sooner than the failure's
    Retry-After, until the pauses are spent or one would be longer than a thread should wait
    (the queue waits those). The last attempt's result."""
    result = attempt(0)
    for number, pause in enumerate(policy.in_process, start=1):
        error = failure(result)
        if error is None or not error.retryable:
            break
        wait = max(pause, error.retry_after or 0.0)
        if wait > policy.max_in_process_wait:
            break
        sleep(wait)
        result = attempt(number)
    return result
