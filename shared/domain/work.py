"""Durable work a booking owes beyond its meeting and its mail: one state per kind of work.

A kind of work registered on the kit (shared/work/kinds.py) keeps on the booking whether the
booking owes it, how many delayed rounds it has had, when its next one is due, and how it
stopped. The booking's save writes that kind's marker row in the same transaction while it is
owed, so that a lost queue message is found by the timer (SPEC §7's outbox, for any kind).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from shared.domain.lease import Lease


@dataclass(frozen=True)
class WorkState:
    kind: str
    owed: bool = True
    rounds: int = 0
    next_attempt_at: datetime | None = None
    # Set when the work stopped for good (a permanent error, or its rounds spent).
    failed_code: str | None = None
    done_at: datetime | None = None
    # Who is doing it now: one worker at a time (a lapsed lease may be taken over).
    lease: Lease = field(default_factory=Lease)


Works = tuple[WorkState, ...]


def state_of(works: Works, kind: str) -> WorkState | None:
    return next((s for s in works if s.kind == kind), None)


def with_state(works: Works, state: WorkState) -> Works:
    """`works` with `state` in place of its kind's (or added), in a stable order."""
    kept = tuple(s for s in works if s.kind != state.kind)
    return tuple(sorted((*kept, state), key=lambda s: s.kind))


def owe(works: Works, kind: str) -> Works:
    """The work is asked for (afresh: its rounds count from zero)."""
    return with_state(works, WorkState(kind))


def leased(works: Works, kind: str, lease: Lease) -> Works:
    """The work is taken (or, with an empty lease, let go) by a worker."""
    state = state_of(works, kind)
    if state is None or not state.owed:
        return works
    return with_state(works, replace(state, lease=lease))


def done(works: Works, kind: str, now: datetime) -> Works:
    state = state_of(works, kind)
    if state is None or not state.owed:
        return works
    finished = replace(state, owed=False, next_attempt_at=None, done_at=now, lease=Lease())
    return with_state(works, finished)


def retry_scheduled(works: Works, kind: str, at: datetime) -> Works:
    state = state_of(works, kind)
    if state is None or not state.owed:
        return works
    scheduled = replace(state, rounds=state.rounds + 1, next_attempt_at=at, lease=Lease())
    return with_state(works, scheduled)


def gave_up(works: Works, kind: str, error_code: str) -> Works:
    state = state_of(works, kind)
    if state is None or not state.owed:
        return works
    stopped = replace(
        state, owed=False, next_attempt_at=None, failed_code=error_code, lease=Lease()
    )
    return with_state(works, stopped)
