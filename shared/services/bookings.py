"""Booking use cases: create, list, read, approve, decline, reschedule, cancel, generate a meeting.

Each action saves the booking's new state, with what it now wants of its meeting, and hands the
booking to `MeetingSync`, the path every trigger shares: the outbox message, then one inline
attempt to converge the meeting. User actions never fail because Graph failed (SPEC §2): a
failure becomes a `warning`, and the meeting state says what happened. Generating a meeting by
hand is the exception: there the meeting *is* the action, so its error is returned.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from shared.auth.principal import Principal, Role
from shared.domain import booking as lifecycle
from shared.domain import notices
from shared.domain.attendance import LessonOutcome
from shared.domain.booking import (
    Booking,
    BookingStatus,
    IllegalTransitionError,
    MeetingStatus,
    Participant,
    ParticipantRole,
    Step,
)
from shared.domain.notices import NoticeKind
from shared.domain.tenant import Tenant
from shared.errors import AppError, retry_after
from shared.meetings.steps import StepError, TeamsUnavailableError, describe_failure
from shared.meetings.worker import Claiming, MeetingSync
from shared.services.access import (
    Command,
    ForbiddenError,
    is_participant,
    load_visible,
    may_generate_meeting,
    read_command,
    require_role,
)
from shared.services.attendance import attending
from shared.services.follow_up import FollowUp
from shared.services.transitions import save_transition
from shared.storage.bookings import BookingPage, BookingQuery, BookingRepository, RequestKey
from shared.storage.errors import AlreadyExistsError
from shared.storage.tenant_directory import TenantDirectory

if TYPE_CHECKING:
    from shared.mail.delivery import MailOutbox
    from shared.work.kinds import KindWorker

logger = logging.getLogger("meetings.bookings")

NOT_CONFIRMED = "Booking must be confirmed (paid) before generating meeting link"


@dataclass(frozen=True)
class BookingDeps:
    bookings: BookingRepository
    tenants: TenantDirectory
    sync: MeetingSync
    clock: Callable[[], datetime]
    # The mail outbox; the notices themselves are saved with each change (SPEC §8).
    mail: MailOutbox | None = None
    # Other registered kinds of work a change may owe (shared/work/kinds.py).
    kinds: KindWorker | None = None

    @property
    def follow_up(self) -> FollowUp:
        """What each saved change implies: its meeting, then its mail, then other work."""
        return FollowUp(self.sync, self.mail, self.kinds)


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


class IdempotencyKeyReusedError(AppError):
    """The Idempotency-Key was used before for a different request."""

    http_status = 422
    code = "idempotency_key_reused"
    message = (
        "This Idempotency-Key was already used for a different booking request; "
        "use a new key for a new booking"
    )

    def __init__(self) -> None:
        super().__init__(self.message)


@dataclass(frozen=True)
class Approval:
    generate_teams_meeting: bool | None = None
    assignee_id: str | None = None
    internal_notes: str | None = None


@dataclass(frozen=True)
class ActionResult:
    booking: Booking
    warning: str | None = None


class MeetingGenerationError(AppError):
    """Manual generation failed in Graph; carries the Graph error for the response: its code,
    with 503 and when to try again if Graph may do it later, else 502."""

    http_status = 502

    def __init__(self, error: StepError) -> None:
        super().__init__(
            describe_failure(
                "The Teams meeting could not be generated", error, retry_scheduled=error.retryable
            )
        )
        self.error = error
        self.code = error.code
        if error.retryable:
            self.http_status = 503
            self.headers = retry_after(error.retry_after, default=5)


def create_booking(
    caller: Principal,
    command: Command[NewBooking],
    deps: BookingDeps,
    idempotency_key: Command[str | None] = None,
) -> Created:
    """A pending booking. Students and clients book for themselves; staff and admins for anyone.

    With an `idempotency_key`, repeating the request (a retry after a lost response, a double
    click) returns the booking the first request made instead of making another.
    """
    require_role(
        caller,
        Role.STUDENT,
        Role.CLIENT,
        Role.STAFF,
        Role.ADMIN,
        message="Only students, clients, staff and admins can request bookings",
    )
    new = read_command(command)
    key = read_command(idempotency_key)
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
    if key is None:
        return Created(deps.bookings.add(booking))
    request = RequestKey(caller.user_id, key, _fingerprint(new))
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
) -> BookingPage:
    """Staff and admins see the tenant's bookings; everyone else their own. One page."""
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
    caller: Principal, booking_id: str, command: Command[Approval], deps: BookingDeps
) -> ActionResult:
    require_role(
        caller, Role.STAFF, Role.ADMIN, message="Only staff and admins can approve bookings"
    )
    booking = deps.bookings.get(caller.tenant_id, booking_id)
    approval = read_command(command)
    tenant = deps.tenants.get(caller.tenant_id, recent=True)
    capability = tenant.meeting_capability()
    wanted = (
        capability.available
        if approval.generate_teams_meeting is None
        else approval.generate_teams_meeting
    )
    notice = None
    if wanted and not capability.available:
        wanted = False
        notice = (
            "Booking approved, but no Teams meeting was created: Teams meetings are not "
            f"available for this tenant ({capability.reason})."
        )

    def approve(booking: Booking) -> Booking:
        now = deps.clock()
        approved = lifecycle.approve(
            booking,
            now=now,
            with_meeting=wanted,
            assignee_id=approval.assignee_id,
            internal_notes=approval.internal_notes,
        )
        return notices.requested(approved, NoticeKind.APPROVED, now=now)

    claim = deps.sync.claiming(attending(approve, tenant), tenant)
    saved = _change(deps, booking, claim)
    result = _sync(caller, saved, "Booking approved", deps, tenant, claim)
    return replace(result, warning=result.warning or notice)


def decline_booking(
    caller: Principal, booking_id: str, command: Command[str | None], deps: BookingDeps
) -> ActionResult:
    require_role(
        caller, Role.STAFF, Role.ADMIN, message="Only staff and admins can decline bookings"
    )
    booking = deps.bookings.get(caller.tenant_id, booking_id)
    reason = read_command(command)
    saved = _change(
        deps,
        booking,
        _notifying(
            lambda b: lifecycle.decline(b, now=deps.clock(), reason=reason),
            deps,
            NoticeKind.DECLINED,
        ),
    )
    return _sync(caller, saved, "Booking declined", deps)


def cancel_booking(
    caller: Principal, booking_id: str, command: Command[str | None], deps: BookingDeps
) -> ActionResult:
    booking = load_visible(
        caller,
        deps.bookings,
        booking_id,
        "Only the booking's participants, staff and admins can cancel it",
    )
    reason = read_command(command)
    cancel = _notifying(
        lambda b: lifecycle.cancel(b, now=deps.clock(), reason=reason),
        deps,
        NoticeKind.CANCELLED,
    )
    claim = deps.sync.claiming(cancel)
    saved = _change(deps, booking, claim)
    return _sync(caller, saved, "Booking cancelled", deps, claim=claim)


def reschedule_booking(
    caller: Principal,
    booking_id: str,
    command: Command[tuple[datetime, datetime]],
    deps: BookingDeps,
) -> ActionResult:
    booking = load_visible(caller, deps.bookings, booking_id)
    tenant = deps.tenants.get(caller.tenant_id, recent=True)
    if not caller.is_tenant_wide and not (
        tenant.participants_can_reschedule and is_participant(caller, booking)
    ):
        raise ForbiddenError(
            "Only staff and admins can reschedule bookings"
            + ("" if tenant.participants_can_reschedule else " in this tenant")
        )
    start, end = read_command(command)
    reschedule = _notifying(
        lambda b: lifecycle.reschedule(b, start=start, end=end, now=deps.clock()),
        deps,
        NoticeKind.RESCHEDULED,
        # A pending request has no invite out yet: its approval will carry the new time.
        only_if=lambda b: b.status is BookingStatus.CONFIRMED,
    )
    claim = deps.sync.claiming(attending(reschedule, tenant), tenant)
    saved = _change(deps, booking, claim)
    return _sync(caller, saved, "Booking rescheduled", deps, tenant, claim)


def complete_booking(
    caller: Principal,
    booking_id: str,
    command: Command[LessonOutcome | None],
    deps: BookingDeps,
) -> ActionResult:
    """Staff or an admin mark a confirmed booking completed by hand, with the `outcome` they
    saw if they give one. The attendance work finds it completed and leaves it as it is."""
    require_role(
        caller, Role.STAFF, Role.ADMIN, message="Only staff and admins can complete bookings"
    )
    booking = deps.bookings.get(caller.tenant_id, booking_id)
    outcome = read_command(command)
    saved = _change(
        deps, booking, lambda b: lifecycle.complete(b, now=deps.clock(), outcome=outcome)
    )
    return _sync(caller, saved, "Booking completed", deps)


def generate_meeting(
    caller: Principal, booking_id: str, deps: BookingDeps, command: Command[None] = None
) -> ActionResult:
    """Seed 000's manual generation: the existing meeting, or a new one now. Here the meeting
    *is* the action, so a Graph failure is the caller's error (and is retried as well)."""
    # Seed 000's exact answer to a caller who may not: {"error": "Unauthorized"}.
    booking = load_visible(caller, deps.bookings, booking_id, "Unauthorized")
    if not may_generate_meeting(caller, booking):
        raise ForbiddenError("Unauthorized")
    read_command(command)
    if booking.status is not BookingStatus.CONFIRMED:
        raise IllegalTransitionError(NOT_CONFIRMED, "booking_not_confirmed")
    if booking.meeting.status is MeetingStatus.CREATED:
        return ActionResult(booking)
    tenant = deps.tenants.get(caller.tenant_id, recent=True)
    capability = tenant.meeting_capability()
    if not capability.available:
        raise TeamsUnavailableError(capability.reason or "not_configured")
    requested = _change(
        deps,
        booking,
        attending(lambda b: lifecycle.meeting_requested(b, now=deps.clock()), tenant),
    )
    synced = deps.sync.after_change(requested, actor=caller.user_id, tenant=tenant)
    if deps.kinds is not None:
        deps.kinds.after_change(synced.booking)  # its attendance, owed with the meeting
    if synced.error is not None:
        raise MeetingGenerationError(synced.error)
    return ActionResult(synced.booking)


def retry_meeting(
    caller: Principal, booking_id: str, deps: BookingDeps, command: Command[None] = None
) -> ActionResult:
    """An admin starts a booking's failed (or stuck) meeting work again, after a fix: the
    retries count from zero and the booking goes the way of every change, through
    `MeetingSync` (the outbox message, one inline attempt). 409 when nothing is outstanding."""
    require_role(caller, Role.ADMIN, message="Only admins can retry a booking's meeting")
    booking = deps.bookings.get(caller.tenant_id, booking_id)
    read_command(command)
    restarted = restart_meeting_work(deps.bookings, booking, deps.clock)
    return _sync(caller, restarted, "Meeting work restarted", deps)


def restart_meeting_work(
    bookings: BookingRepository, booking: Booking, clock: Callable[[], datetime]
) -> Booking:
    """Save `booking` with its outstanding meeting work asked for afresh (and so its "needs
    work" marker again); the caller hands it to the meeting queue. `IllegalTransitionError`
    when the meeting is already as the booking says."""
    return save_transition(bookings, booking, lambda b: lifecycle.meeting_retried(b, now=clock()))


def _change(
    deps: BookingDeps, booking: Booking, transition: Callable[[Booking], Booking]
) -> Booking:
    return save_transition(deps.bookings, booking, transition)


def _notifying(
    transition: Callable[[Booking], Booking],
    deps: BookingDeps,
    kind: NoticeKind,
    only_if: Callable[[Booking], bool] = lambda _: True,
) -> Callable[[Booking], Booking]:
    """`transition`, owing the participants a notice of `kind` in the same save."""

    def changed(booking: Booking) -> Booking:
        after = transition(booking)
        if after is booking:
            return booking  # a change to what it already is: nothing to tell anyone
        return notices.requested(after, kind, now=deps.clock()) if only_if(after) else after

    return changed


def _sync(
    caller: Principal,
    saved: Booking,
    action: str,
    deps: BookingDeps,
    tenant: Tenant | None = None,
    claim: Claiming | None = None,
) -> ActionResult:
    """The saved change's follow-up (`FollowUp`: the meeting, then the mail); a Graph failure
    becomes a warning, never an error (SPEC §2). Retryable failures are retried by the queue
    and the timer (the marker was saved with the change), so the warning says so. `tenant`: as
    the action read it, so that the meeting step need not read it again; `claim`: the
    transition that saved the claim for the step with the change (`MeetingSync.claiming`), so
    that the step needs no claim write."""
    synced = deps.follow_up.after_change(saved, actor=caller.user_id, tenant=tenant, claim=claim)
    if synced.error is None:
        return ActionResult(synced.booking)
    warning = describe_failure(action, synced.error, retry_scheduled=synced.error.retryable)
    if not synced.error.retryable and synced.booking.next_step is Step.DELETE:
        warning += " Please remove the meeting in Teams if it is still there."
    return ActionResult(synced.booking, warning)
