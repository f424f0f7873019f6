"""What a worker records on a booking while it converges the booking's meeting.

Each function takes the *latest* stored version of the booking and returns it with one fact
added: a claim taken, what Teams answered, a failure, a retry scheduled. Because facts are
recorded on the latest version, whatever the triggers changed meanwhile (a cancel, a second
reschedule) stays, and the next `Booking.next_step` sees both: the difference is the work.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from shared.domain.booking import Booking, settled
from shared.domain.meeting import TEAMS, MeetingState, Step


@dataclass(frozen=True)
class Sighting:
    """Teams holds this meeting, with these times (an answer to create, update or get)."""

    meeting_id: str
    join_url: str
    organizer_id: str
    start: datetime
    end: datetime


def claimed(booking: Booking, token: str, until: datetime, *, check: bool = False) -> Booking:
    """Take the booking's claim for its next step (or, with `check`, for a read of the
    meeting). Written with the ETag before the Graph call, so one worker at a time acts.

    For a create, the claim is also the write-ahead record that a create is being sent: if the
    worker dies before it records the answer, the meeting is in doubt, not forgotten.
    """
    meeting = replace(booking.meeting, claim_token=token, claim_until=until)
    if not check:
        meeting = replace(
            meeting,
            attempts=meeting.attempts + 1,
            next_attempt_at=None,
            create_in_doubt=meeting.create_in_doubt or booking.next_step is Step.CREATE,
        )
    return settled(replace(booking, meeting=meeting))


def released(booking: Booking, token: str) -> Booking:
    if booking.meeting.claim_token != token:
        return booking
    return replace(booking, meeting=replace(booking.meeting, claim_token=None, claim_until=None))


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
        removed=False,
        create_in_doubt=False,
        # An answer from Teams is as good as a check of it.
        verified_at=now,
        last_error_code=None,
        changed_at=now,
    )
    return settled(replace(booking, meeting=meeting))


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
        changed_at=now,
    )
    if booking.live and meeting.wanted and meeting.removed:
        meeting = _anew(meeting)
    return settled(replace(booking, meeting=meeting))


def _anew(meeting: MeetingState) -> MeetingState:
    return replace(
        meeting,
        generation=meeting.generation + 1,
        meeting_id=None,
        join_url=None,
        synced_start=None,
        synced_end=None,
        removed=False,
        create_in_doubt=False,
        verified_at=None,
    )


def attempt_failed(
    booking: Booking,
    *,
    step: Step,
    error_code: str,
    retryable: bool,
    unanswered: bool,
    doubt_before: bool,
    token: str,
    now: datetime,
) -> Booking:
    """An attempt at `step` failed. A permanent error stops retries at once (`failed`).

    `unanswered`: Graph may have carried it out (timeout, 5xx). A create refused with a clear
    answer (429, 4xx) made nothing, so it leaves the doubt as it was before the claim.
    """
    booking = released(booking, token)
    meeting = booking.meeting
    in_doubt = meeting.create_in_doubt
    if step is Step.CREATE and not unanswered:
        in_doubt = doubt_before
    meeting = replace(
        meeting,
        create_in_doubt=in_doubt,
        last_error_code=error_code,
        failed=meeting.failed or not retryable,
        changed_at=now,
    )
    return settled(replace(booking, meeting=meeting))


def retry_scheduled(booking: Booking, at: datetime) -> Booking:
    return replace(booking, meeting=replace(booking.meeting, next_attempt_at=at))


def gave_up(booking: Booking, error_code: str | None, now: datetime) -> Booking:
    """Retries are exhausted: the meeting is `failed` until someone asks again."""
    meeting = replace(
        booking.meeting,
        failed=True,
        last_error_code=error_code or booking.meeting.last_error_code,
        next_attempt_at=None,
        changed_at=now,
    )
    return settled(replace(booking, meeting=meeting))
