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
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import NamedTuple

from shared.domain import convergence as facts
from shared.domain.audit import AuditRecord
from shared.domain.booking import Booking
from shared.domain.meeting import Step
from shared.domain.tenant import Tenant
from shared.graph.errors import (
    GraphError,
    GraphInconsistentError,
    GraphMeetingVanishingError,
    GraphTransientError,
)
from shared.meetings.steps import MeetingSteps, StepError, StepResult, TeamsNotConfiguredError
from shared.storage.bookings import BookingRepository
from shared.storage.errors import ConcurrencyError
from shared.storage.tenant_directory import TenantDirectory
from shared.work.record import record_on_latest

logger = logging.getLogger("meetings.converge")

# Steps one converge call may take: a create, the update a race calls for, and a delete.
MAX_STEPS = 6
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
    error: StepError | None = None
    busy: bool = False
    out_of_time: bool = False
    not_due: bool = False

    @property
    def converged(self) -> bool:
        return self.booking.next_step is Step.NONE


Fact = Callable[[Booking], Booking]


def _then(first: Fact, second: Fact) -> Fact:
    return lambda b: second(first(b))


def _vanishing(result: StepResult, held: Booking) -> StepResult:
    """A "meeting gone" that would remake the meeting once more than `MAX_REMADE` allows,
    turned into a failure: a meeting Teams keeps losing needs a person, not another remake."""
    if result.gone and facts.would_remake(held) and held.meeting.remade >= MAX_REMADE:
        return replace(
            result,
            gone=False,
            error=GraphMeetingVanishingError(
                f"Teams lost the meeting made for this booking {MAX_REMADE + 1} times",
                status=404,
            ),
        )
    return result


def _still_asked(step: Step, held: Booking, booking: Booking) -> bool:
    """`booking`, saved after `step` on `held` failed, still asks for that same work: the
    failure stops the call (else the work changed meanwhile, and the next step serves that)."""
    return facts.Work.of(held).still(booking) and booking.next_step is step


class _Unsaved(NamedTuple):
    """A create's answer not yet saved, because the options PATCH that follows it goes under
    the same claim and both answers are saved at once. If the worker dies in between, the
    claim's `create_in_doubt` has the next attempt find the meeting by its externalId."""

    base: Booking  # the version saved with the create's claim
    claiming: Fact  # the create's answer and the claim for the PATCH
    answer: Fact  # the create's answer alone
    audit: tuple[AuditRecord, ...]


@dataclass
class _Round:
    """What one converge call carries from one step to the next."""

    token: str
    deadline: float | None  # on time.monotonic(); None: no budget
    keep: tuple[str, float] | None  # (token, hold): the caller owns the round
    # The step the latest version already holds this call's claim for (taken with the change
    # that asked for it, or with a create's answer), so that it needs no claim write.
    ahead: list[Step]
    # The doubt before the claim saved with the change, for the first step's failure.
    doubt: bool | None
    unsaved: _Unsaved | None = None
    made_here: set[int] = field(default_factory=set)  # generations this call made

    def holds(self, booking: Booking) -> bool:
        """`booking`'s next step already holds this call's claim: it needs no claim write."""
        return self.ahead == [booking.next_step] and booking.meeting.claim_token == self.token

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def out_of_time(self) -> bool:
        return self.deadline is not None and self.deadline - time.monotonic() < MIN_CALL_SECONDS

    def must_flush(self, booking: Booking) -> bool:
        """The create's answer left unsaved cannot wait for the PATCH: the next step is not the
        one claimed, the claim is lost, or no time is left to take it."""
        return self.unsaved is not None and not (self.holds(booking) and not self.out_of_time())

    def before_claim(self, booking: Booking) -> Booking:
        """`booking`, held ahead, as it was before the claim saved with the change (its
        create-in-doubt flag), so that a failure of the step restores that doubt."""
        if self.doubt is not None and self.unsaved is None:
            meeting = replace(booking.meeting, create_in_doubt=self.doubt)
            return replace(booking, meeting=meeting)
        return booking

    def claim_used(self) -> None:
        """The claim held ahead goes to the step about to be taken."""
        self.ahead.clear()
        self.doubt = None

    def with_unsaved(
        self, held: Booking, fact: Fact, audit: tuple[AuditRecord, ...]
    ) -> tuple[Booking, Fact, tuple[AuditRecord, ...]]:
        """What to record for a step: its answer on `held`, or, after a create's answer left
        unsaved, both answers at once on the version that create was claimed on."""
        if self.unsaved is None:
            return held, fact, audit
        base, carried, _, earlier = self.unsaved
        self.unsaved = None
        return base, _then(carried, fact), earlier + audit


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
        preclaimed: bool = False,
        doubt_before: bool = False,
    ) -> ConvergeResult:
        """Take steps until the meeting is as the booking says, a call fails, another worker
        holds the booking, or `budget` seconds are spent. `latest`: a version just read or
        saved, to save a read. Storage errors propagate (the caller's retry covers them).

        `token` and `hold`: the caller owns the round. It passes the same token to each of its
        attempts, and after a retryable failure the claim stays its own for `hold` seconds
        (plus a claim's length), so that it alone retries or schedules the next round.
        `tenant`: the tenant as the caller read it in the same request, to save a read.
        `preclaimed`: `latest` was saved with `token`'s claim for its next step (`claim_ahead`),
        so that step needs no claim write of its own; `doubt_before`: whether a create was in
        doubt before that claim."""
        deadline = None if budget is None else time.monotonic() + budget
        token = token or uuid.uuid4().hex
        booking = latest or self._bookings.get(tenant_id, booking_id)
        state = _Round(
            token=token,
            deadline=deadline,
            keep=None if hold is None else (token, hold),
            ahead=[booking.next_step] if preclaimed else [],
            doubt=doubt_before if preclaimed else None,
        )
        for _ in range(MAX_STEPS):
            step = booking.next_step
            if state.must_flush(booking):
                booking = self._flush(state)
                continue
            stopped = self._not_now(booking, token)
            if stopped is not None:
                return stopped
            remaining = state.remaining()
            if remaining is not None and remaining < MIN_CALL_SECONDS:
                return ConvergeResult(booking, out_of_time=True)
            # Read once, when a step needs it (unless the caller read it in the same request).
            tenant = tenant or self._tenants.get(tenant_id, recent=True)
            if state.holds(booking):
                # Claimed with the change that asked for the work, or with the create's answer
                # (not saved yet: `state.unsaved`).
                held, before_claim = booking, state.before_claim(booking)
            else:
                organizer = None
                if step is Step.CREATE:
                    try:
                        organizer = self._organizer(booking, tenant, remaining)
                    except (GraphError, TeamsNotConfiguredError) as error:
                        fact = self._failure(step, error, booking, booking, None, keep=state.keep)
                        return ConvergeResult(self.record(booking, fact), error=error)
                claimed = self._claimed(booking, token, organizer)
                if claimed is None:
                    booking = self._bookings.get(tenant_id, booking_id)
                    continue
                held, before_claim = claimed, booking
            state.claim_used()
            result = self._steps.take(step, held, tenant, actor=actor, timeout=remaining)
            result = self._guard_remakes(step, result, held, state.made_here)
            if step is Step.CREATE and result.sighting is not None:
                state.made_here.add(result.generation)
            fact = self._outcome(step, result, held, before_claim, state)
            if state.unsaved is None and step is Step.CREATE and result.error is None:
                pending = self._defer_for_patch(state, held, fact, result.audit)
                if pending is not None:
                    booking = pending
                    continue
            booking = self.record(*state.with_unsaved(held, fact, result.audit))
            state.ahead.clear()  # replaying the create's claiming fact may have marked one
            if result.error is not None and _still_asked(step, held, booking):
                return ConvergeResult(booking, error=result.error)
            # Succeeded, or failed at work the booking no longer asks for: carry on.
        if state.unsaved is not None:
            booking = self._flush(state)
        return ConvergeResult(booking)

    def _not_now(self, booking: Booking, token: str) -> ConvergeResult | None:
        """Why no step is taken on `booking` now (None: one is): nothing to do (a claim this
        call holds is released), another worker holds it, or its next round is not due."""
        if booking.next_step is Step.NONE or booking.meeting.failed:
            return ConvergeResult(self._let_go(booking, token))
        if booking.meeting.claimed_by_other(token, self._clock()):
            return ConvergeResult(booking, busy=True)
        if not booking.meeting.due(token, self._clock()):
            # Read again after a lost ETag race, or listed before its round was scheduled:
            # the round's owner scheduled the next one, and its message takes it.
            return ConvergeResult(booking, not_due=True)
        return None

    def _claimed(self, booking: Booking, token: str, organizer: str | None) -> Booking | None:
        """`booking` saved with `token`'s claim for its next step, so that only this call
        calls Graph for it; None when another writer saved first (read again)."""
        try:
            return self._bookings.update(
                facts.claimed(booking, token, self._clock() + self._claim, organizer_id=organizer)
            )
        except ConcurrencyError:
            return None

    @staticmethod
    def _guard_remakes(
        step: Step, result: StepResult, held: Booking, made_here: set[int]
    ) -> StepResult:
        """An update's "meeting gone" that would remake meetings without end, turned into a
        failure: Teams lost what this call just made, or lost this booking's meeting too often."""
        if result.gone and step is Step.UPDATE and result.generation in made_here:
            # Teams says the meeting it made moments ago is missing: Graph is wrong, not
            # the meeting gone. Made anew at once, it would make meetings without end.
            return replace(
                result,
                gone=False,
                error=GraphInconsistentError(
                    "Teams reports the meeting it has just made as missing", status=404
                ),
            )
        if step is Step.UPDATE and result.error is None:
            return _vanishing(result, held)
        return result

    def _outcome(
        self, step: Step, result: StepResult, held: Booking, before_claim: Booking, state: _Round
    ) -> Fact:
        """What to record of the step: what Teams answered, or the failure (a create that
        surely made nothing gets back the doubt `before_claim` had)."""
        if result.error is not None:
            return self._failure(
                step, result.error, held, before_claim, state.token, sent_step=True, keep=state.keep
            )
        return self._answer(result, state.token)

    def _defer_for_patch(
        self, state: _Round, held: Booking, answer: Fact, audit: tuple[AuditRecord, ...]
    ) -> Booking | None:
        """A create's answer with the claim for the options PATCH that follows it, left
        unsaved so that both answers are saved at once; None when no PATCH follows now."""
        claiming = self._claiming(answer, state.token, Step.UPDATE, state.ahead)
        pending = claiming(held)
        if state.ahead != [Step.UPDATE]:
            return None
        state.unsaved = _Unsaved(held, claiming, answer, audit)
        return pending

    def _flush(self, state: _Round) -> Booking:
        """Save the create's answer left unsaved (without the PATCH's claim): the PATCH will
        not be taken under that claim in this call."""
        unsaved, state.unsaved = state.unsaved, None
        assert unsaved is not None  # called only when a create's answer is unsaved
        state.ahead.clear()
        return self.record(unsaved.base, unsaved.answer, unsaved.audit)

    def claim_ahead(self, booking: Booking, token: str, tenant: Tenant | None = None) -> Booking:
        """`booking`, a change about to be saved, with `token`'s claim for its next step taken
        as `converge` would take it (for a create: the organizer and the write-ahead doubt), so
        that the inline attempt after the save needs no claim write of its own (pass
        `preclaimed`). Unchanged when `converge` would not act now."""
        step = booking.next_step
        now = self._clock()
        meeting = booking.meeting
        if (
            step is Step.NONE
            or meeting.failed
            or meeting.claimed_by_other(token, now)
            or not meeting.due(token, now)
        ):
            return booking
        organizer = None
        if step is Step.CREATE:
            # Only an organizer known without a Graph call: a lookup (and its failure, which
            # the attempt records) belongs to the attempt, within its budget.
            if meeting.create_in_doubt and meeting.organizer_id:
                organizer = meeting.organizer_id
            else:
                tenant = tenant or self._tenants.get(booking.tenant_id, recent=True)
                if not tenant.meeting_capability().available:
                    return booking
                organizer = self._steps.known_organizer(tenant)
            if organizer is None:
                return booking
        return facts.claimed(booking, token, now + self._claim, organizer_id=organizer)

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
        tenant = self._tenants.get(booking.tenant_id, recent=True)
        result = self._steps.check(held, tenant, actor=actor)
        result = _vanishing(result, held)
        now = self._clock()
        fact: Fact
        if result.error is not None:
            fact = lambda b: facts.released(b, token)  # noqa: E731
        elif result.sighting is not None:
            sighting = result.sighting
            fact = lambda b: facts.checked(b, result.generation, sighting, token, now)  # noqa: E731
        else:
            fact = lambda b: facts.gone(b, result.generation, result.gone_id, token, now)  # noqa: E731
        return ConvergeResult(self.record(held, fact, result.audit), error=result.error)

    def record(self, booking: Booking, fact: Fact, audit: tuple[AuditRecord, ...] = ()) -> Booking:
        """Save `fact` on `booking`; if the booking changed meanwhile, on its newer version.
        `audit`: the records of the Graph calls that led to it, saved with it."""
        return record_on_latest(
            self._bookings,
            booking,
            fact,
            audit=audit,
            what="a meeting answer",
        )

    def _failure(
        self,
        step: Step,
        error: StepError,
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
