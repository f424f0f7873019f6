"""Booking use cases: create, list, read, approve, decline, reschedule, cancel, generate a meeting.

User actions never fail because Graph failed (SPEC §2): the booking change is saved first, with
the meeting operation recorded as outstanding; the Graph call follows, and its failure becomes a
`warning` while the meeting state keeps what happened for the durable retry. Generating a
meeting by hand is the exception: there the meeting *is* the action, so its error is returned.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from shared.auth.principal import Principal, Role
from shared.domain import booking as lifecycle
from shared.domain.booking import (
    Booking,
    BookingStatus,
    IllegalTransitionError,
    MeetingStatus,
    Participant,
    ParticipantRole,
)
from shared.graph.errors import GraphError
from shared.services.access import (
    ForbiddenError,
    is_participant,
    load_visible,
    may_generate_meeting,
    require_role,
)
from shared.services.meetings import MeetingEffects, Outcome, describe_failure
from shared.services.tenants import TenantDirectory
from shared.storage.bookings import BookingQuery, BookingRepository, RequestKey
from shared.storage.errors import AlreadyExistsError, ConcurrencyError

logger = logging.getLogger("meetings.bookings")

NOT_CONFIRMED = "Booking must be confirmed (paid) before generating meeting link"


@dataclass(frozen=True)
class BookingDeps:
    bookings: BookingRepository
    tenants: TenantDirectory
    meetings: MeetingEffects
    clock: Callable[[], datetime]


@dataclass(frozen=True)
class NewBooking:
    subject: str
    start: datetime
    end: datetime
    time_zone: str
    participants: tuple[Participant, ...]
    level: str | None = None
    internal_notes: str | None = None


@dataclass(frozen=True)
class Created:
    booking: Booking
    replayed: bool = False  # an earlier request with the same Idempotency-Key made it


class IdempotencyKeyReusedError(Exception):
    """The Idempotency-Key was used before for a different request."""

    message = (
        "This Idempotency-Key was already used for a different booking request; "
        "use a new key for a new booking"
    )


@dataclass(frozen=True)
class Approval:
    generate_teams_meeting: bool | None = None
    assignee_id: str | None = None
    internal_notes: str | None = None


@dataclass(frozen=True)
class ActionResult:
    booking: Booking
    warning: str | None = None


class MeetingGenerationError(Exception):
    """Manual generation failed in Graph; carries the Graph error for the response."""

    def __init__(self, error: GraphError) -> None:
        super().__init__(describe_failure("The Teams meeting could not be generated", error))
        self.error = error
        self.message = str(self)


def create_booking(
    caller: Principal, new: NewBooking, deps: BookingDeps, idempotency_key: str | None = None
) -> Created:
    """A pending booking. Students and clients book for themselves; staff and admins for anyone.

    With an `idempotency_key`, repeating the request (a retry after a lost response, a double
    click) returns the booking the first request made instead of making another.
    """
    require_role(caller, Role.STUDENT, Role.CLIENT, Role.STAFF, Role.ADMIN)
    if not caller.is_tenant_wide:
        own = [p for p in new.participants if p.user_id == caller.user_id]
        if not any(p.role in (ParticipantRole.STUDENT, ParticipantRole.CLIENT) for p in own):
            raise ForbiddenError(
                "Students and clients can only book for themselves: include yourself as the "
                "student or client participant",
                "not_own_booking",
            )
    now = deps.clock()
    booking = Booking(
        tenant_id=caller.tenant_id,
        booking_id=uuid.uuid4().hex,
        status=BookingStatus.PENDING,
        subject=new.subject,
        level=new.level,
        start=new.start,
        end=new.end,
        time_zone=new.time_zone,
        participants=new.participants,
        created_by=caller.user_id,
        created_at=now,
        updated_at=now,
        internal_notes=new.internal_notes if caller.is_tenant_wide else None,
    )
    if idempotency_key is None:
        return Created(deps.bookings.add(booking))
    request = RequestKey(caller.user_id, idempotency_key, _fingerprint(new))
    try:
        return Created(deps.bookings.add(booking, request))
    except AlreadyExistsError:
        earlier = deps.bookings.find_request(caller.tenant_id, request)
        if earlier is None:
            raise
    if earlier.fingerprint != request.fingerprint:
        raise IdempotencyKeyReusedError()
    return Created(deps.bookings.get(caller.tenant_id, earlier.booking_id), replayed=True)


def _fingerprint(new: NewBooking) -> str:
    # The parsed command, not the raw bytes: whitespace and key order do not make it another
    # request. Frozen dataclasses of str, datetime and enums have a stable repr.
    return hashlib.sha256(repr(new).encode()).hexdigest()


def list_bookings(
    caller: Principal, query: BookingQuery, participant: str | None, deps: BookingDeps
) -> list[Booking]:
    """Staff and admins see the tenant's bookings; everyone else their own."""
    if caller.is_tenant_wide:
        if participant:
            return deps.bookings.list_for_participant(caller.tenant_id, participant, query)
        return deps.bookings.list_for_tenant(caller.tenant_id, query)
    if participant and participant != caller.user_id:
        raise ForbiddenError("You can only list your own bookings", "forbidden")
    return deps.bookings.list_for_participant(caller.tenant_id, caller.user_id, query)


def get_booking(caller: Principal, booking_id: str, deps: BookingDeps) -> Booking:
    return load_visible(caller, deps.bookings, booking_id)


def approve_booking(
    caller: Principal, booking_id: str, approval: Approval, deps: BookingDeps
) -> ActionResult:
    require_role(caller, Role.STAFF, Role.ADMIN)
    booking = deps.bookings.get(caller.tenant_id, booking_id)
    tenant = deps.tenants.get(caller.tenant_id)
    capability = tenant.meeting_capability()
    wanted = (
        capability.available
        if approval.generate_teams_meeting is None
        else (approval.generate_teams_meeting)
    )
    warning = None
    if wanted and not capability.available:
        wanted = False
        warning = (
            "Booking approved, but no Teams meeting was created: Teams meetings are not "
            f"available for this tenant ({capability.reason})."
        )
    approved = lifecycle.approve(
        booking,
        now=deps.clock(),
        with_meeting=wanted,
        assignee_id=approval.assignee_id,
        internal_notes=approval.internal_notes,
    )
    saved = deps.bookings.update(approved)
    if wanted and saved.meeting.status is MeetingStatus.PENDING:
        outcome = deps.meetings.create(saved, tenant, actor=caller.user_id)
        saved = _save_outcome(deps, outcome)
        if outcome.error:
            warning = describe_failure("Booking approved", outcome.error)
    return ActionResult(saved, warning)


def decline_booking(
    caller: Principal, booking_id: str, reason: str | None, deps: BookingDeps
) -> ActionResult:
    require_role(caller, Role.STAFF, Role.ADMIN)
    booking = deps.bookings.get(caller.tenant_id, booking_id)
    return _close(caller, booking, lifecycle.decline, reason, "Booking declined", deps)


def cancel_booking(
    caller: Principal, booking_id: str, reason: str | None, deps: BookingDeps
) -> ActionResult:
    booking = load_visible(caller, deps.bookings, booking_id)
    return _close(caller, booking, lifecycle.cancel, reason, "Booking cancelled", deps)


def _close(
    caller: Principal,
    booking: Booking,
    transition: Callable[..., Booking],
    reason: str | None,
    action: str,
    deps: BookingDeps,
) -> ActionResult:
    had_meeting = booking.meeting.status is MeetingStatus.CREATED
    saved = deps.bookings.update(transition(booking, now=deps.clock(), reason=reason))
    # PENDING after closing: a create went unanswered, so Teams may hold the meeting.
    if not had_meeting and saved.meeting.status is not MeetingStatus.PENDING:
        return ActionResult(saved)
    tenant = deps.tenants.get(caller.tenant_id)
    outcome = deps.meetings.delete(saved, tenant, actor=caller.user_id)
    saved = _save_outcome(deps, outcome)
    warning = None
    if outcome.error:
        warning = describe_failure(action, outcome.error)
        if not outcome.error.retryable:
            warning += " Please remove the meeting in Teams if it is still there."
    return ActionResult(saved, warning)


def reschedule_booking(
    caller: Principal, booking_id: str, start: datetime, end: datetime, deps: BookingDeps
) -> ActionResult:
    booking = load_visible(caller, deps.bookings, booking_id)
    tenant = deps.tenants.get(caller.tenant_id)
    if not caller.is_tenant_wide and not (
        tenant.participants_can_reschedule and is_participant(caller, booking)
    ):
        raise ForbiddenError()
    moved = deps.bookings.update(
        lifecycle.reschedule(booking, start=start, end=end, now=deps.clock())
    )
    if moved.meeting.status is not MeetingStatus.CREATED:
        return ActionResult(moved)
    outcome = deps.meetings.update(moved, tenant, actor=caller.user_id)
    saved = _save_outcome(deps, outcome)
    warning = describe_failure("Booking rescheduled", outcome.error) if outcome.error else None
    return ActionResult(saved, warning)


def generate_meeting(caller: Principal, booking_id: str, deps: BookingDeps) -> ActionResult:
    """Seed 000's manual generation: the existing meeting, or a new one now."""
    booking = load_visible(caller, deps.bookings, booking_id)
    if not may_generate_meeting(caller, booking):
        raise ForbiddenError()
    if booking.status is not BookingStatus.CONFIRMED:
        raise IllegalTransitionError(NOT_CONFIRMED, "booking_not_confirmed")
    if booking.meeting.status is MeetingStatus.CREATED:
        return ActionResult(booking)
    tenant = deps.tenants.get(caller.tenant_id)
    requested = deps.bookings.update(lifecycle.meeting_requested(booking, now=deps.clock()))
    outcome = deps.meetings.create(requested, tenant, actor=caller.user_id)
    saved = _save_outcome(deps, outcome)
    if outcome.error:
        raise MeetingGenerationError(outcome.error)
    return ActionResult(saved)


def _save_outcome(deps: BookingDeps, outcome: Outcome) -> Booking:
    """Save a meeting outcome; if the booking changed meanwhile, put the outcome on the new
    version (the meeting exists in Teams whatever else changed)."""
    booking = outcome.booking
    for _ in range(3):
        try:
            return deps.bookings.update(booking)
        except ConcurrencyError:
            fresh = deps.bookings.get(booking.tenant_id, booking.booking_id)
            if fresh.meeting.generation != booking.meeting.generation:
                return fresh
            booking = replace(fresh, meeting=booking.meeting)
    logger.error(
        "meeting outcome for booking %s not saved after repeated conflicts", booking.booking_id
    )
    return deps.bookings.get(booking.tenant_id, booking.booking_id)
