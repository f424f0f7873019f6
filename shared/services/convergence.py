"""Converge one booking's meeting: read the latest version, take the next step, record what
Teams answered, and repeat until nothing differs or a call fails (SPEC §7).

Why this is race-safe:
- The step is computed from the latest stored booking, never carried in a message or a request.
- Before a Graph call the worker writes a short claim with the booking's ETag, so only one worker
  calls Graph for a booking at a time; a trigger that finds the claim taken leaves the work to
  its holder, who reads the booking again after every step and so sees what changed meanwhile.
- A create's claim is also its write-ahead record (`create_in_doubt`): if the answer is lost, or
  the worker dies, the next step finds the meeting by its externalId instead of forgetting it.
- What Teams answered is recorded on the *latest* version (a lost ETag race re-reads and records
  again), so a cancel or a second reschedule saved meanwhile is kept, and the next step is
  computed from both.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from shared.domain import convergence as facts
from shared.domain.booking import Booking
from shared.domain.meeting import Step
from shared.domain.tenant import Tenant
from shared.graph.errors import (
    GraphError,
    GraphInconsistentError,
    GraphMeetingVanishingError,
    GraphTransientError,
)
from shared.services.meetings import MeetingSteps, StepResult, TeamsNotConfiguredError
from shared.services.tenants import TenantDirectory
from shared.storage.bookings import BookingRepository
from shared.storage.errors import ConcurrencyError, StorageError

logger = logging.getLogger("meetings.converge")

# Steps one converge call may take: a create, the update a race calls for, and a delete.
MAX_STEPS = 6
# Re-reads to record one answer when other writers keep winning the ETag race.
MAX_RECORD_TRIES = 8
# Meetings one piece of work may make anew because Teams lost them, before a person looks.
MAX_REMADE = 3
# Below this many seconds of budget no Graph call is started.
MIN_CALL_SECONDS = 0.5


@dataclass(frozen=True)
class ConvergeResult:
    """Where a booking stands after a converge call.

    `error`: the Graph failure that stopped it (recorded on the booking). `busy`: another
    worker holds the booking's claim and will carry on. `out_of_time`: the budget ran out
    before the next step. `not_due`: a delayed round is scheduled later (`nextAttemptAt`);
    its owner's message takes it then.
    """

    booking: Booking
    error: GraphError | None = None
    busy: bool = False
    out_of_time: bool = False
    not_due: bool = False

    @property
    def converged(self) -> bool:
        return self.booking.next_step is Step.NONE


Fact = Callable[[Booking], Booking]


class Converger:
    def __init__(
        self,
        bookings: BookingRepository,
        tenants: TenantDirectory,
        steps: MeetingSteps,
        clock: Callable[[], datetime],
        *,
        claim_seconds: float,
    ) -> None:
        self._bookings = bookings
        self._tenants = tenants
        self._steps = steps
        self._clock = clock
        # Longer than the longest step (three Graph calls at their timeout), so that a live
        # holder has finished or abandoned its call before anyone else may start one.
        self._claim = timedelta(seconds=claim_seconds)

    def converge(
        self,
        tenant_id: str,
        booking_id: str,
        *,
        actor: str | None = None,
        latest: Booking | None = None,
        budget: float | None = None,
        token: str | None = None,
        hold: float | None = None,
        tenant: Tenant | None = None,
    ) -> ConvergeResult:
        """Take steps until the meeting is as the booking says, a call fails, another worker
        holds the booking, or `budget` seconds are spent. `latest`: a version just read or
        saved, to save a read. Storage errors propagate (the caller's retry covers them).

        `token` and `hold`: the caller owns the round. It passes the same token to each of its
        attempts, and after a retryable failure the claim stays its own for `hold` seconds
        (plus a claim's length), so that it alone retries or schedules the next round.
        `tenant`: the tenant as the caller read it in the same request, to save a read."""
        deadline = None if budget is None else time.monotonic() + budget
        token = token or uuid.uuid4().hex
        keep = None if hold is None else (token, hold)
        booking = latest or self._bookings.get(tenant_id, booking_id)
        # Read once, when a step needs it (unless the caller read it in the same request).
        made_here: set[int] = set()  # generations this call made
        # The last record also took the claim for the step that follows (see `_claiming`).
        ahead: list[Step] = []
        for _ in range(MAX_STEPS):
            step = booking.next_step
            if step is Step.NONE or booking.meeting.failed:
                return ConvergeResult(self._let_go(booking, token))
            if booking.meeting.claimed_by_other(token, self._clock()):
                return ConvergeResult(booking, busy=True)
            if not booking.meeting.due(token, self._clock()):
                # Read again after a lost ETag race, or listed before its round was scheduled:
                # the round's owner scheduled the next one, and its message takes it.
                return ConvergeResult(booking, not_due=True)
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining < MIN_CALL_SECONDS:
                if ahead:
                    booking = self._let_go(booking, token)
                return ConvergeResult(booking, out_of_time=True)
            tenant = tenant or self._tenants.get(tenant_id)
            organizer = None
            if step is Step.CREATE:
                try:
                    organizer = self._organizer(booking, tenant, remaining)
                except GraphError as error:
                    fact = self._failure(step, error, booking, booking, None, keep=keep)
                    return ConvergeResult(self.record(booking, fact), error=error)
            if ahead == [step] and booking.meeting.claim_token == token:
                # Claimed when the previous answer was recorded: the same claim carries on.
                held = booking
            else:
                try:
                    held = self._bookings.update(
                        facts.claimed(
                            booking, token, self._clock() + self._claim, organizer_id=organizer
                        )
                    )
                except ConcurrencyError:
                    ahead.clear()
                    booking = self._bookings.get(tenant_id, booking_id)
                    continue
            ahead.clear()
            result = self._steps.take(step, held, tenant, actor=actor, timeout=remaining)
            if result.gone and step is Step.UPDATE and result.generation in made_here:
                # Teams says the meeting it made moments ago is missing: Graph is wrong, not
                # the meeting gone. Made anew at once, it would make meetings without end.
                result = replace(
                    result,
                    gone=False,
                    error=GraphInconsistentError(
                        "Teams reports the meeting it has just made as missing", status=404
                    ),
                )
            if (
                result.gone
                and step is Step.UPDATE
                and result.error is None
                and facts.would_remake(held)
                and held.meeting.remade >= MAX_REMADE
            ):
                result = replace(
                    result,
                    gone=False,
                    error=GraphMeetingVanishingError(
                        f"Teams lost the meeting made for this booking {MAX_REMADE + 1} times",
                        status=404,
                    ),
                )
            if step is Step.CREATE and result.sighting is not None:
                made_here.add(result.generation)
            if result.error is not None:
                fact = self._failure(
                    step, result.error, held, booking, token, sent_step=True, keep=keep
                )
            else:
                fact = self._answer(result, token)
                if step is Step.CREATE:
                    # The options PATCH that follows a create goes under the same claim.
                    fact = self._claiming(fact, token, Step.UPDATE, ahead)
            booking = self.record(held, fact)
            if (
                result.error is not None
                and facts.Work.of(held).still(booking)
                and booking.next_step is step
            ):
                return ConvergeResult(booking, error=result.error)
            # Succeeded, or failed at work the booking no longer asks for: carry on.
        return ConvergeResult(self._let_go(booking, token) if ahead else booking)

    def _claiming(self, fact: Fact, token: str, following: Step, taken: list[Step]) -> Fact:
        """`fact`, and if the booking's next step is then `following`, the claim for it (as
        the claim write before that step would take it), so that the step needs no write of
        its own. `taken` says whether it was taken on the version finally saved."""
        until = self._clock() + self._claim

        def and_claim(b: Booking) -> Booking:
            taken.clear()
            after = fact(b)
            meeting = after.meeting
            if (
                after.next_step is following
                and not meeting.failed
                and meeting.claim_token is None
                and meeting.due(token, self._clock())
            ):
                taken.append(following)
                return facts.claimed(after, token, until)
            return after

        return and_claim

    def _let_go(self, booking: Booking, token: str) -> Booking:
        """Nothing (more) to do: a claim this call still holds (kept over a pause after a
        failure) is released, so that the next action need not wait for it to lapse."""
        if booking.meeting.claim_token != token:
            return booking
        return self.record(booking, lambda b: facts.released(b, token))

    def _organizer(self, booking: Booking, tenant: Tenant, remaining: float | None) -> str:
        """Whom a create is sent for. A create in doubt is retried for the organizer it was
        sent for, so that changing the organizer can never make a second meeting."""
        meeting = booking.meeting
        if meeting.create_in_doubt and meeting.organizer_id:
            return meeting.organizer_id
        capability = tenant.meeting_capability()
        if not capability.available:
            raise TeamsNotConfiguredError(
                f"Teams meetings are not available for this tenant ({capability.reason})"
            )
        with self._steps.deadline(remaining):
            return self._steps.organizer_for(tenant, booking_id=booking.booking_id)

    def check(self, booking: Booking, *, actor: str | None = None) -> ConvergeResult | None:
        """Read the booking's meeting in Teams (pre-start verification) and record what is
        there: times edited in Teams become drift, a meeting gone is made anew under the next
        generation. None when another worker holds the booking."""
        token = uuid.uuid4().hex
        if booking.meeting.claimed_by_other(token, self._clock()):
            return None
        try:
            held = self._bookings.update(
                facts.claimed(booking, token, self._clock() + self._claim, check=True)
            )
        except ConcurrencyError:
            return None  # it changed just now: whoever changed it converges it
        result = self._steps.check(held, self._tenants.get(booking.tenant_id), actor=actor)
        if result.gone and facts.would_remake(held) and held.meeting.remade >= MAX_REMADE:
            result = replace(
                result,
                gone=False,
                error=GraphMeetingVanishingError(
                    f"Teams lost the meeting made for this booking {MAX_REMADE + 1} times",
                    status=404,
                ),
            )
        now = self._clock()
        fact: Fact
        if result.error is not None:
            fact = lambda b: facts.released(b, token)  # noqa: E731
        elif result.sighting is not None:
            sighting = result.sighting
            fact = lambda b: facts.checked(b, result.generation, sighting, token, now)  # noqa: E731
        else:
            fact = lambda b: facts.gone(b, result.generation, result.gone_id, token, now)  # noqa: E731
        return ConvergeResult(self.record(held, fact), error=result.error)

    def record(self, booking: Booking, fact: Fact) -> Booking:
        """Save `fact` on `booking`; if the booking changed meanwhile, on its newer version."""
        for _ in range(MAX_RECORD_TRIES):
            try:
                return self._bookings.update(fact(booking))
            except ConcurrencyError:
                booking = self._bookings.get(booking.tenant_id, booking.booking_id)
        raise StorageError(
            f"booking {booking.booking_id}: could not record a meeting answer after "
            f"{MAX_RECORD_TRIES} conflicting writes"
        )

    def _failure(
        self,
        step: Step,
        error: GraphError,
        held: Booking,
        before_claim: Booking,
        token: str | None,
        *,
        sent_step: bool = False,
        keep: tuple[str, float] | None = None,
    ) -> Fact:
        now = self._clock()
        work = facts.Work.of(held)
        hold = None if keep is None else (keep[0], now + self._claim + timedelta(seconds=keep[1]))
        doubt_before = before_claim.meeting.create_in_doubt
        # Only the step's own request, sent and unanswered, may have made something.
        unanswered = sent_step and isinstance(error, GraphTransientError) and error.sent
        return lambda b: facts.attempt_failed(
            b,
            step=step,
            work=work,
            error_code=error.code,
            retryable=error.retryable,
            unanswered=unanswered,
            doubt_before=doubt_before,
            token=token,
            now=now,
            hold=hold,
        )

    def _answer(self, result: StepResult, token: str) -> Fact:
        now = self._clock()
        if result.sighting is not None:
            sighting = result.sighting
            return lambda b: facts.seen(b, result.generation, sighting, token, now)
        return lambda b: facts.gone(b, result.generation, result.gone_id, token, now)
