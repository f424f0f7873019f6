"""What a worker records on a booking while it converges the booking's meeting.

Each function takes the *latest* stored version of the booking and returns it with one fact
added: a claim taken, what Teams answered, a failure, a retry scheduled. Because facts are
recorded on the latest version, whatever the triggers changed meanwhile (a cancel, a second
reschedule) stays, and the next `Booking.next_step` sees both: the difference is the work.

What Teams answered is always recorded (it is what Teams holds). A *failure* is recorded only
while it still describes the work: an answer that arrives after the booking asked for something
else, or after the worker's claim lapsed and someone else took over, proves only that a create
may have happened — it never marks newer work failed, and never clears a doubt.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from shared.domain import notices
from shared.domain.booking import Booking, settled
from shared.domain.lease import Lease
from shared.domain.meeting import TEAMS, Step


@dataclass(frozen=True)
class Sighting:
    """Teams holds this meeting, with these times (an answer to create, update or get)."""

    meeting_id: str
    join_url: str
    organizer_id: str
    start: datetime
    end: datetime
    # The tenant's meeting options are on it. A meeting createOrGet handed back (200) counts as
    # not yet: it may have been deleted in Teams, and only a PATCH or a GET can tell.
    options_applied: bool = False


@dataclass(frozen=True)
class Work:
    """Which work an attempt served: the desired state's revision and generation at the claim."""

    revision: int
    generation: int

    @classmethod
    def of(cls, booking: Booking) -> Work:
        return cls(booking.meeting.revision, booking.meeting.generation)

    def still(self, booking: Booking) -> bool:
        return Work.of(booking) == self


def claimed(
    booking: Booking,
    token: str,
    until: datetime,
    *,
    organizer_id: str | None = None,
    check: bool = False,
) -> Booking:
    """Take the booking's claim for its next step (or, with `check`, for a read of the
    meeting). Written with the ETag before the Graph call, so one worker at a time acts.

    For a create, the claim is also the write-ahead record that a create is being sent, and for
    which organizer: if the worker dies before it records the answer, the meeting is in doubt,
    not forgotten, and the retry or the removal asks the same organizer.
    """
    meeting = booking.meeting.leased(Lease(token, until))
    if not check:
        creating = booking.next_step is Step.CREATE
        # `next_attempt_at` stays: the round it was scheduled for is now under way, held by
        # this claim, and only the holder records when the next one is due (`retry_scheduled`).
        meeting = replace(
            meeting,
            attempts=meeting.attempts + 1,
            create_in_doubt=meeting.create_in_doubt or creating,
            organizer_id=organizer_id if creating and organizer_id else meeting.organizer_id,
        )
    return settled(replace(booking, meeting=meeting))


def released(booking: Booking, token: str | None) -> Booking:
    if not booking.meeting.lease.mine(token):
        return booking
    return replace(booking, meeting=booking.meeting.leased(Lease()))


def seen(
    booking: Booking, generation: int, sighting: Sighting, token: str, now: datetime
) -> Booking:
    """Teams holds `sighting` for `generation`. A sighting of an older generation (made anew
    meanwhile) changes nothing; the newer generation's own steps take care of it."""
    booking = released(booking, token)
    meeting = booking.meeting
    if generation != meeting.generation:
        return booking
    meeting = replace(
        meeting,
        provider=TEAMS,
        meeting_id=sighting.meeting_id,
        join_url=sighting.join_url,
        organizer_id=sighting.organizer_id,
        synced_start=sighting.start,
        synced_end=sighting.end,
        options_applied=sighting.options_applied,
        removed=False,
        create_in_doubt=False,
        last_error_code=None,
        rounds=0,  # progress: whatever follows counts its own retries
        attempts=0,  # and its own attempts: `attempts` counts those at the current step
        next_attempt_at=None,
        changed_at=now,
    )
    after = settled(replace(booking, meeting=meeting))
    return notices.link_arrived(after, now) if after.meeting.in_teams else after


def checked(
    booking: Booking, generation: int, sighting: Sighting, token: str, now: datetime
) -> Booking:
    """Pre-start verification read the meeting in Teams: times edited there become drift."""
    booking = seen(booking, generation, sighting, token, now)
    if generation != booking.meeting.generation:
        return booking
    return replace(booking, meeting=replace(booking.meeting, verified_at=now))


def gone(
    booking: Booking, generation: int, meeting_id: str | None, token: str, now: datetime
) -> Booking:
    """Teams does not hold the meeting (deleted by us, or found missing).

    `meeting_id` None: the in-doubt create of `generation` was resolved to nothing. If the
    booking still wants a meeting, it is made anew under the next generation (a deleted
    meeting's externalId would only hand back the deleted meeting).
    """
    booking = released(booking, token)
    meeting = booking.meeting
    if generation != meeting.generation or meeting.meeting_id not in (None, meeting_id):
        return booking
    known = meeting.meeting_id or meeting_id
    meeting = replace(
        meeting,
        meeting_id=known,
        removed=known is not None,
        create_in_doubt=False,
        last_error_code=None,
        rounds=0,
        attempts=0,
        next_attempt_at=None,
        changed_at=now,
    )
    remade = booking.live and meeting.wanted and meeting.removed
    if remade:
        meeting = replace(meeting.anew(), remade=meeting.remade + 1)
    after = settled(replace(booking, meeting=meeting))
    if remade and booking.meeting.join_url is not None:
        # People hold the old link: they are told the new one once the meeting exists.
        after = notices.requested(after, notices.NoticeKind.LINK_CHANGED, now=now)
    return after


def attempt_failed(
    booking: Booking,
    *,
    step: Step,
    work: Work,
    error_code: str,
    retryable: bool,
    unanswered: bool,
    doubt_before: bool,
    token: str | None,
    now: datetime,
    hold: tuple[str, datetime] | None = None,
) -> Booking:
    """An attempt at `step` for `work` failed. `token`: the claim it held (None: it failed
    before taking one). A permanent error stops retries at once (`failed`).

    `hold`: the claim (token, until) the attempt's owner keeps after a retryable failure, so
    that it alone retries in process or schedules the next round (`retry_scheduled`); nobody
    else acts on the work meanwhile. Taken only while nobody else holds the booking.

    `unanswered`: Graph may have carried it out (a timeout or 5xx after the request went out).
    A create refused with a clear answer (429, 4xx) or never sent made nothing, so it leaves
    the doubt as it was before the claim.
    """
    # Our claim is still ours (not lapsed and taken, nor released by whoever took it over).
    current = token is None or booking.meeting.claim_token == token
    booking = released(booking, token)
    meeting = booking.meeting
    maybe_created = step is Step.CREATE and unanswered and work.generation == meeting.generation
    if not (current and work.still(booking)) or booking.next_step is not step:
        # Stale: only what the attempt may have done in Teams is kept.
        if maybe_created and not meeting.create_in_doubt and not meeting.in_teams:
            meeting = replace(meeting, create_in_doubt=True, changed_at=now)
            return settled(replace(booking, meeting=meeting))
        return booking
    in_doubt = meeting.create_in_doubt
    if step is Step.CREATE and not unanswered and token is not None:
        # Only an attempt that held the claim knows the doubt it started from.
        in_doubt = doubt_before
    meeting = replace(
        meeting,
        create_in_doubt=in_doubt,
        last_error_code=error_code,
        failed=meeting.failed or not retryable,
        changed_at=now,
    )
    if hold is not None and retryable and not meeting.claimed_by_other(hold[0], now):
        meeting = replace(meeting, claim_token=hold[0], claim_until=hold[1])
    return settled(replace(booking, meeting=meeting))


def owns_round(booking: Booking, work: Work, token: str) -> bool:
    """`token` holds the booking's claim for `work`: its holder owns the round under way."""
    return work.still(booking) and booking.meeting.claim_token == token


def would_remake(booking: Booking) -> bool:
    """Recording the meeting gone would make it anew (the booking still wants one)."""
    return booking.live and booking.meeting.wanted


def retry_scheduled(booking: Booking, at: datetime, token: str | None = None) -> Booking:
    """The next delayed round of the current work is due `at`; the round under way, held by
    `token`'s claim, is over (its claim is released)."""
    meeting = booking.meeting
    scheduled = replace(
        booking, meeting=replace(meeting, next_attempt_at=at, rounds=meeting.rounds + 1)
    )
    return released(scheduled, token)


def waits_until(booking: Booking, at: datetime, token: str | None = None) -> Booking:
    """Graph asked for a pause (Retry-After): no attempt before `at`. Not a round of its own."""
    return released(replace(booking, meeting=replace(booking.meeting, next_attempt_at=at)), token)


def gave_up(
    booking: Booking, error_code: str | None, now: datetime, token: str | None = None
) -> Booking:
    """Retries are exhausted: the meeting is `failed` until someone asks again."""
    meeting = replace(
        booking.meeting,
        failed=True,
        last_error_code=error_code or booking.meeting.last_error_code,
        next_attempt_at=None,
        changed_at=now,
    )
    return settled(released(replace(booking, meeting=meeting), token))
