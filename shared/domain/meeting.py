"""A booking's Teams meeting: what the booking wants of it, what Teams is known to hold, and the
one function that turns the difference into the next Graph step (SPEC §7).

Nothing here talks to Graph or storage. Every trigger (a user action, a Stripe event, a queue
message, the timer) only changes the *desired* half; a worker then takes `plan(...)`'s step,
records what Teams answered in the *observed* half, and asks again until the step is `NONE`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from shared.domain.lease import Lease

TEAMS = "teams"
# A scheduled time this close counts as due (queue visibility has whole-second precision).
DUE_SLACK = timedelta(seconds=1)


class MeetingStatus(StrEnum):
    """What the API shows. Derived from the rest of the state, never set on its own:

    `created` only while Teams holds the meeting exactly as the booking says; `pending` while a
    step is outstanding (with the last error code, if an attempt failed); `failed` when automatic
    retries stopped; `deleted` once the meeting is gone; `none` when no meeting was ever wanted.
    """

    NONE = "none"
    PENDING = "pending"
    CREATED = "created"
    FAILED = "failed"
    DELETED = "deleted"


class Step(StrEnum):
    """The next Graph call a booking's meeting needs."""

    CREATE = "create"  # createOrGet (+ the options PATCH)
    UPDATE = "update"  # PATCH start/end (and subject)
    DELETE = "delete"  # DELETE (404 counts as done)
    NONE = "none"


@dataclass(frozen=True)
class MeetingState:
    """Desired, observed and progress of one booking's meeting.

    Desired: `wanted` (with a live booking status and the booking's times), `revision` (bumped
    by every new request, so an answer can tell whether it still serves the current work), and
    `generation`, which counts meetings made anew: the Graph externalId of generation 1 is
    `tenant:booking`, later ones `tenant:booking:N`, because createOrGet hands back a meeting
    that was deleted rather than make a new one.

    Observed: `meeting_id`/`join_url`/`organizer_id` of the meeting Teams made for this
    generation (`organizer_id` is also the organizer a create was sent for), `synced_start`/
    `synced_end` (the times Teams was last known to hold), `options_applied` (the tenant's lobby,
    presenter and chat options are known to be on it), `removed` (Teams no longer has it), and
    `create_in_doubt` (a create for this generation was sent and its answer never seen, so Teams
    may hold a meeting we have no id for).

    Progress: `attempts` at the current step (a step that succeeds starts the next at 0), the
    last error code, `failed` when retries
    stopped, `next_attempt_at` and `rounds` (delayed retries scheduled for the current work),
    `remade` (meetings of the current work made anew because Teams lost them),
    and a short claim (`claim_token`, `claim_until`) that lets only one worker call Graph for
    the booking at a time.
    """

    # desired
    wanted: bool = False
    generation: int = 1
    revision: int = 0
    requested_at: datetime | None = None
    # observed
    provider: str | None = None
    meeting_id: str | None = None
    join_url: str | None = None
    organizer_id: str | None = None
    synced_start: datetime | None = None
    synced_end: datetime | None = None
    options_applied: bool = False
    removed: bool = False
    create_in_doubt: bool = False
    verified_at: datetime | None = None
    # progress
    status: MeetingStatus = MeetingStatus.NONE
    attempts: int = 0
    last_error_code: str | None = None
    failed: bool = False
    next_attempt_at: datetime | None = None
    rounds: int = 0
    # Times the current work's meeting was made anew because Teams no longer had it.
    remade: int = 0
    claim_token: str | None = None
    claim_until: datetime | None = None
    changed_at: datetime | None = None

    @property
    def lease(self) -> Lease:
        """The short claim (`claim_token`, `claim_until`) on the booking's Graph calls."""
        return Lease(self.claim_token, self.claim_until)

    def leased(self, lease: Lease) -> MeetingState:
        """The same state under `lease` (`Lease()` releases it)."""
        return replace(self, claim_token=lease.token, claim_until=lease.until)

    @property
    def in_teams(self) -> bool:
        """Teams is known to hold this generation's meeting."""
        return self.meeting_id is not None and not self.removed

    def anew(self) -> MeetingState:
        """The same wish, for a meeting made anew under the next externalId generation
        (createOrGet would hand back the old, removed meeting for the old one)."""
        return replace(
            self,
            generation=self.generation + 1,
            meeting_id=None,
            join_url=None,
            synced_start=None,
            synced_end=None,
            options_applied=False,
            removed=False,
            create_in_doubt=False,
            verified_at=None,
        )

    def due(self, token: str | None, now: datetime) -> bool:
        """An attempt may start now: no delayed round is scheduled later (queue visibility has
        whole-second precision, hence the slack), or `token` holds the round under way."""
        if self.lease.mine(token):
            return True
        return self.next_attempt_at is None or self.next_attempt_at - now <= DUE_SLACK

    def claimed_by_other(self, token: str | None, now: datetime) -> bool:
        return self.lease.held_by_other(token, now)


def plan(meeting: MeetingState, *, live: bool, start: datetime, end: datetime) -> Step:
    """The next step from the difference between desired and observed. Pure and total.

    `live`: the booking's status keeps a meeting (confirmed or completed).
    """
    if meeting.wanted and live:
        if not meeting.in_teams:
            return Step.CREATE
        if (meeting.synced_start, meeting.synced_end) != (start, end):
            return Step.UPDATE
        if not meeting.options_applied:
            return Step.UPDATE  # the same PATCH carries the options (and proves it still exists)
        return Step.NONE
    if meeting.in_teams or meeting.create_in_doubt:
        return Step.DELETE
    return Step.NONE


def status_of(meeting: MeetingState, step: Step) -> MeetingStatus:
    if step is Step.NONE:
        if meeting.in_teams:
            return MeetingStatus.CREATED
        return MeetingStatus.DELETED if meeting.removed else MeetingStatus.NONE
    return MeetingStatus.FAILED if meeting.failed else MeetingStatus.PENDING
