"""Meeting steps: the one place that makes, moves, checks and removes Teams meetings in Graph.

`MeetingSteps.take` carries out one step for a booking and says what Teams now holds (a
`Sighting`, or that the meeting is gone) or how it failed, with the audit record of the attempt,
and writes its log line; it saves nothing (the converger records the answer on the booking, and
the audit record with it, in one transaction).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TypeAlias

from shared import telemetry
from shared.domain.audit import AuditEvent, AuditRecord
from shared.domain.booking import Booking, ParticipantRole
from shared.domain.convergence import Sighting
from shared.domain.meeting import Step
from shared.domain.preferences import effective_options, tutor_of
from shared.domain.subject import DEFAULT, SubjectTemplate, TemplateError
from shared.domain.tenant import MeetingOptions, MicrosoftProfile, Tenant
from shared.errors import AppError
from shared.graph.bodies import Attendee, MeetingRequest
from shared.graph.client import CallContext, GraphMeetingsClient, OnlineMeeting
from shared.graph.errors import (
    GraphAuthError,
    GraphError,
    GraphForbiddenError,
    GraphInconsistentError,
    GraphNotFoundError,
    GraphPolicyMissingError,
    GraphThrottledError,
    GraphTimeoutError,
    GraphTransientError,
)
from shared.observability import log_event
from shared.storage.audit import AuditRepository
from shared.storage.errors import StorageError
from shared.storage.preferences import PreferencesRepository
from shared.storage.tenant_directory import TenantDirectory

logger = logging.getLogger("meetings.steps")
RUNBOOK = "docs/integrations/teams-meetings-setup.md"


class TeamsUnavailableError(AppError):
    """The tenant cannot make meetings now (not configured, no organizer, disabled)."""

    http_status = 409
    code = "teams_unavailable"

    def __init__(self, reason: str) -> None:
        super().__init__(f"Teams meetings are not available for this tenant ({reason})")
        self.reason = reason


class TeamsNotConfiguredError(AppError):
    """A step needs the tenant's Microsoft profile or organizer, and it has none (any more).

    A fact of the tenant, not an answer of Graph; a step's failure all the same, recorded like
    a Graph error that will not help to repeat: no `status` from Graph, not `retryable`."""

    http_status = 502
    code = "teams_unavailable"
    retryable = False
    retry_after: float | None = None
    status: int | None = None

    @property
    def public_message(self) -> str:
        # Unchanged from when it was a Graph error; it reaches a caller wrapped in a
        # MeetingGenerationError, which says what it means.
        return f"Microsoft Graph refused the request: {self.message}"


# What a meeting step fails with.
StepError: TypeAlias = GraphError | TeamsNotConfiguredError


@dataclass(frozen=True)
class StepResult:
    """What one step found: Teams holds `sighting`, or the meeting is `gone` (`gone_id`, if
    known), or the step failed with `error`."""

    step: Step
    generation: int
    sighting: Sighting | None = None
    gone: bool = False
    gone_id: str | None = None
    error: StepError | None = None
    # The audit record of the call, to be saved with the booking state it leads to.
    audit: tuple[AuditRecord, ...] = ()


def describe_failure(action: str, error: StepError, *, retry_scheduled: bool) -> str:
    """The sentence for a warning or an error response: the real cause, and whether a retry
    is scheduled (said only when one is)."""
    if isinstance(error, GraphPolicyMissingError):
        cause = (
            "Microsoft Teams refused to act for the organizer: no Teams Application Access "
            f"Policy grants this app that user (see {RUNBOOK})"
        )
    elif isinstance(error, TeamsNotConfiguredError):
        cause = "Teams meetings are not configured for this tenant any more"
    elif isinstance(error, GraphAuthError):
        cause = (
            "the app could not sign in to Microsoft Graph (check the client id, secret and "
            f"admin consent; see {RUNBOOK})"
        )
    elif isinstance(error, GraphForbiddenError):
        cause = f"Microsoft Graph denied the permission it needs (see {RUNBOOK})"
    elif isinstance(error, GraphNotFoundError):
        cause = "Microsoft Graph did not find the meeting organizer"
    elif isinstance(error, GraphThrottledError):
        cause = "Microsoft Teams is throttling requests (HTTP 429)"
    elif isinstance(error, GraphTimeoutError):
        cause = "Microsoft Teams did not answer in time"
    elif isinstance(error, GraphInconsistentError):
        cause = "Microsoft Teams said the meeting was not found, though it still has it"
    elif isinstance(error, GraphTransientError):
        status = f" (HTTP {error.status})" if error.status else ""
        cause = f"Microsoft Teams was unavailable{status}"
    else:
        cause = f"Microsoft Graph refused the request ({error.code})"
    if retry_scheduled:
        return f"{action}, but {cause}. It will be retried automatically."
    return f"{action}, but {cause}. It will not be retried automatically."


_SUCCESS_EVENTS = {
    Step.CREATE: AuditEvent.MEETING_ATTACHED,
    Step.UPDATE: AuditEvent.MEETING_UPDATED,
    Step.DELETE: AuditEvent.MEETING_DELETED,
}


class MeetingSteps:
    def __init__(
        self,
        graph: GraphMeetingsClient,
        tenants: TenantDirectory,
        audit: AuditRepository,
        clock: Callable[[], datetime],
        *,
        preferences: PreferencesRepository | None = None,
    ) -> None:
        self._graph = graph
        self._tenants = tenants
        self._audit = audit
        self._clock = clock
        self._preferences = preferences
        # Organizer object ids resolved in this process, so that even a tenant whose row
        # cannot be written resolves its organizer once.
        self._organizers: dict[tuple[str, str], str] = {}
        self._looking_up: dict[tuple[str, str], threading.RLock] = {}
        self._organizers_lock = threading.Lock()

    def deadline(self, seconds: float | None) -> AbstractContextManager[None]:
        """Every Graph call (sign-in included) this thread makes ends within `seconds`."""
        return self._graph.deadline(seconds)

    def take(
        self,
        step: Step,
        booking: Booking,
        tenant: Tenant,
        *,
        actor: str | None,
        timeout: float | None = None,
    ) -> StepResult:
        """Carry out `step` (CREATE, UPDATE or DELETE) once for `booking`."""
        ctx = CallContext(
            tenant_id=booking.tenant_id,
            operation=step.value,
            booking_id=booking.booking_id,
            attempt=booking.meeting.attempts,
            timeout=timeout,
        )
        calls = {Step.CREATE: self._create, Step.UPDATE: self._update, Step.DELETE: self._delete}
        started = time.perf_counter()
        try:
            with self._graph.deadline(timeout):
                result = calls[step](booking, tenant, ctx)
        except (GraphError, TeamsNotConfiguredError) as error:
            record = self._report(
                booking, ctx, started, actor, AuditEvent.MEETING_ATTEMPT_FAILED, error
            )
            return StepResult(step, booking.meeting.generation, error=error, audit=(record,))
        record = self._report(booking, ctx, started, actor, _SUCCESS_EVENTS[step], None, result)
        return replace(result, audit=(record,))

    def check(self, booking: Booking, tenant: Tenant, *, actor: str | None) -> StepResult:
        """GET the booking's meeting: is it still in Teams, at which times?"""
        ctx = CallContext(booking.tenant_id, "verify", booking.booking_id)
        generation = booking.meeting.generation
        started = time.perf_counter()
        try:
            profile, organizer_id, meeting_id = self._address(booking, tenant)
            try:
                found = self._graph.get_meeting(
                    profile, organizer_id, meeting_id, ctx, self.options_for(booking, tenant)
                )
            except GraphNotFoundError:
                # Made anew on this answer, a wrong 404 would leave a second meeting live.
                self._graph.confirm_gone(profile, organizer_id, meeting_id, ctx, "GET")
                result = StepResult(Step.NONE, generation, gone=True, gone_id=meeting_id)
                record = self._report(
                    booking, ctx, started, actor, AuditEvent.MEETING_MISSING, None, result
                )
                return replace(result, audit=(record,))
        except (GraphError, TeamsNotConfiguredError) as error:
            self._log(booking, ctx, started, error, None)
            return StepResult(Step.NONE, generation, error=error)
        result = StepResult(Step.NONE, generation, sighting=_sighting(found, organizer_id, booking))
        self._log(booking, ctx, started, None, result)
        return result

    # -- the steps ------------------------------------------------------------------------------

    def _create(self, booking: Booking, tenant: Tenant, ctx: CallContext) -> StepResult:
        """createOrGet with this generation's externalId, for the organizer the claim recorded:
        never two meetings for one booking. The options follow as an update step (the PATCH also
        proves the meeting still exists: createOrGet hands back a meeting deleted in Teams)."""
        profile = tenant.microsoft
        organizer_id = booking.meeting.organizer_id
        if profile is None or organizer_id is None:
            raise TeamsNotConfiguredError("Teams meetings are not configured for this tenant")
        meeting = self._graph.create_or_get_meeting(
            profile,
            organizer_id,
            _request(booking, self._subject(booking, tenant, ctx)),
            self.options_for(booking, tenant),
            ctx,
            apply_options=False,
        )
        sighting = _sighting(meeting, organizer_id, booking)
        if not meeting.created:
            sighting = replace(sighting, options_applied=False)
        return StepResult(Step.CREATE, booking.meeting.generation, sighting=sighting)

    def _update(self, booking: Booking, tenant: Tenant, ctx: CallContext) -> StepResult:
        """PATCH start/end, subject and options: same meeting, same join URL. A meeting that is
        gone from Teams is reported gone, so that it is made anew."""
        profile, organizer_id, meeting_id = self._address(booking, tenant)
        try:
            meeting = self._graph.update_meeting(
                profile,
                organizer_id,
                meeting_id,
                start=booking.start,
                end=booking.end,
                subject=self._subject(booking, tenant, ctx),
                ctx=ctx,
                options=self.options_for(booking, tenant),
                attendees=attendees_of(booking),
            )
        except GraphNotFoundError:
            self._graph.confirm_gone(profile, organizer_id, meeting_id, ctx, "PATCH")
            return StepResult(
                Step.UPDATE, booking.meeting.generation, gone=True, gone_id=meeting_id
            )
        return StepResult(
            Step.UPDATE,
            booking.meeting.generation,
            sighting=_sighting(meeting, organizer_id, booking),
        )

    def _delete(self, booking: Booking, tenant: Tenant, ctx: CallContext) -> StepResult:
        """DELETE the meeting (404 counts as done). After a create that went unanswered there is
        no meeting id, but Teams may hold the meeting: createOrGet with the same externalId, for
        the organizer the create was sent for, hands it over, and it is deleted."""
        meeting = booking.meeting
        profile = tenant.microsoft
        if profile is None:
            raise TeamsNotConfiguredError("the tenant has no Microsoft profile any more")
        meeting_id, organizer_id = meeting.meeting_id, meeting.organizer_id
        if organizer_id is None:
            raise TeamsNotConfiguredError("the meeting's organizer is not known")
        if meeting_id is None:
            meeting_id = self._graph.create_or_get_meeting(
                profile,
                organizer_id,
                _request(booking, self._subject(booking, tenant, ctx)),
                None,
                ctx,
            ).id
        if not self._graph.delete_meeting(profile, organizer_id, meeting_id, ctx):
            self._graph.confirm_gone(profile, organizer_id, meeting_id, ctx, "DELETE")
        return StepResult(Step.DELETE, meeting.generation, gone=True, gone_id=meeting_id)

    def known_organizer(self, tenant: Tenant) -> str | None:
        """The organizer's object id if known without a Graph call (stored, or resolved in
        this process), else None."""
        if tenant.organizer_object_id:
            return tenant.organizer_object_id
        if tenant.microsoft is None or not tenant.organizer_upn:
            return None
        with self._organizers_lock:
            return self._organizers.get((tenant.tenant_id, tenant.organizer_upn.lower()))

    def options_for(self, booking: Booking, tenant: Tenant) -> MeetingOptions:
        """The tenant's meeting options, with the booking's tutor's preferences where the
        tenant lets tutors choose (read only then, from the copy of the last half minute)."""
        tutor = tutor_of(booking)
        if self._preferences is None or tutor is None or not tenant.tutor_choices.any:
            return tenant.meeting_options
        preferences = self._preferences.get_recent(tenant.tenant_id, tutor)
        return effective_options(tenant.meeting_options, tenant.tutor_choices, preferences)

    def organizer_for(self, tenant: Tenant, *, booking_id: str | None = None) -> str:
        """The organizer's object id: stored, or resolved from the UPN once and kept, for every
        tenant (the one described by the environment alone gets a row for it)."""
        if tenant.organizer_object_id:
            return tenant.organizer_object_id
        if tenant.microsoft is None or not tenant.organizer_upn:
            raise TeamsNotConfiguredError("Teams meetings are not configured for this tenant")
        key = (tenant.tenant_id, tenant.organizer_upn.lower())
        with self._organizers_lock:
            lookup = self._looking_up.setdefault(key, threading.RLock())
        # One lookup per organizer under a burst: the others wait for it and take its answer.
        # Re-entrant, so that work nested on the same thread never waits on itself.
        with lookup:
            known = self._organizers.get(key)
            if known is not None:
                return known
            ctx = CallContext(tenant.tenant_id, "create", booking_id)
            known = self._graph.get_user(tenant.microsoft, tenant.organizer_upn, ctx).id
            self._organizers[key] = known
        try:
            self._tenants.save(replace(tenant, organizer_object_id=known))
        except StorageError:
            # Losing this race, or a storage hiccup, costs at most a lookup in another process.
            logger.info("organizer id not stored for tenant %s", tenant.tenant_id)
        return known

    def _subject(self, booking: Booking, tenant: Tenant, ctx: CallContext) -> str:
        """The meeting's subject from the tenant's template. A stored template this product no
        longer accepts (saved before templates were checked) gives the default subject, with a
        warning and an audit record: a tenant's text never stops its meetings."""
        text = tenant.meeting_options.subject_template
        try:
            return SubjectTemplate.parse(text).render(booking)
        except TemplateError as problem:
            log_event(
                logger,
                logging.WARNING,
                "subject_template_refused",
                tenant=booking.tenant_id,
                bookingId=booking.booking_id,
                operation=ctx.operation,
                problem=str(problem),
            )
            record = AuditRecord(
                tenant_id=booking.tenant_id,
                booking_id=booking.booking_id,
                event=AuditEvent.SUBJECT_TEMPLATE_REFUSED,
                occurred_at=self._clock(),
                record_id=uuid.uuid4().hex,
                operation=ctx.operation,
                attempt=ctx.attempt,
                error_code=TemplateError.code,
                meeting_id=booking.meeting.meeting_id,
            )
            try:
                self._audit.add(record)
            except StorageError:
                logger.exception("audit record not stored for booking %s", booking.booking_id)
            return DEFAULT.render(booking)

    def _address(self, booking: Booking, tenant: Tenant) -> tuple[MicrosoftProfile, str, str]:
        meeting = booking.meeting
        if tenant.microsoft is None:
            raise TeamsNotConfiguredError("the tenant has no Microsoft profile any more")
        if not meeting.meeting_id or not meeting.organizer_id:
            raise GraphNotFoundError("the booking has no meeting in Teams")
        return tenant.microsoft, meeting.organizer_id, meeting.meeting_id

    # -- audit and logs -------------------------------------------------------------------------

    def _report(
        self,
        booking: Booking,
        ctx: CallContext,
        started: float,
        actor: str | None,
        event: AuditEvent,
        error: StepError | None,
        result: StepResult | None = None,
    ) -> AuditRecord:
        """Log and measure the call; its audit record, which the caller saves with the booking
        state the call leads to (in one transaction)."""
        latency = self._log(booking, ctx, started, error, result)
        self._measure(booking, ctx, event, error)
        meeting_id = booking.meeting.meeting_id
        if result is not None and result.sighting is not None:
            meeting_id = result.sighting.meeting_id
        elif result is not None and result.gone_id:
            meeting_id = result.gone_id
        return AuditRecord(
            tenant_id=booking.tenant_id,
            booking_id=booking.booking_id,
            event=event,
            occurred_at=self._clock(),
            record_id=uuid.uuid4().hex,
            operation=ctx.operation,
            attempt=ctx.attempt,
            latency_ms=latency,
            graph_status=error.status if error else None,
            error_code=error.code if error else None,
            meeting_id=meeting_id,
            actor=actor,
            requested_at=booking.meeting.requested_at,
        )

    def _measure(
        self, booking: Booking, ctx: CallContext, event: AuditEvent, error: StepError | None
    ) -> None:
        """Seed 000's metrics as instruments, from the same facts as the audit record: an
        attempt is a retry when an earlier attempt at the same work failed."""
        retry = booking.meeting.last_error_code is not None
        tenant = booking.tenant_id
        telemetry.count(
            "attempts",
            operation=ctx.operation,
            tenant=tenant,
            result="failed" if error is not None else "succeeded",
            retry=retry,
        )
        if error is not None or event is AuditEvent.MEETING_MISSING:
            return
        telemetry.count(
            "operations", outcome="succeeded", operation=ctx.operation, tenant=tenant, retried=retry
        )
        requested = booking.meeting.requested_at
        if event is AuditEvent.MEETING_ATTACHED and requested is not None:
            seconds = (self._clock() - requested).total_seconds()
            telemetry.count("link_latency", seconds, tenant=tenant)

    @staticmethod
    def _log(
        booking: Booking,
        ctx: CallContext,
        started: float,
        error: StepError | None,
        result: StepResult | None,
    ) -> int:
        latency = round((time.perf_counter() - started) * 1000)
        fields: dict[str, object] = {
            "tenant": booking.tenant_id,
            "bookingId": booking.booking_id,
            "operation": ctx.operation,
            "attempt": ctx.attempt,
            "latencyMs": latency,
        }
        if error is None:
            gone = result is not None and result.gone
            log_event(logger, logging.INFO, "meeting_step", **fields, gone=gone)
        else:
            log_event(
                logger,
                logging.WARNING,
                "meeting_step_failed",
                **fields,
                graphStatus=error.status,
                errorCode=error.code,
                retryable=error.retryable,
            )
        return latency


# Who presents where the tenant's presenters are by role: whoever teaches or runs the session.
PRESENTERS = frozenset({ParticipantRole.TUTOR, ParticipantRole.STAFF})


def attendees_of(booking: Booking) -> tuple[Attendee, ...]:
    """The booking's participants as Graph lists them: its tutors and staff are the
    presenters (where the meeting's presenters are by role), everyone else attends."""
    return tuple(
        Attendee(p.email, p.display_name, presenter=p.role in PRESENTERS)
        for p in booking.participants
    )


def _request(booking: Booking, subject: str) -> MeetingRequest:
    return MeetingRequest(
        external_id=booking.external_id,
        subject=subject,
        start=booking.start,
        end=booking.end,
        attendees=attendees_of(booking),
    )


def _sighting(meeting: OnlineMeeting, organizer_id: str, booking: Booking) -> Sighting:
    # createOrGet returns an existing meeting unchanged, so its times are what Teams holds;
    # Graph always answers with them, the booking's are only a fallback.
    return Sighting(
        meeting_id=meeting.id,
        join_url=meeting.join_url,
        organizer_id=organizer_id,
        start=meeting.start or booking.start,
        end=meeting.end or booking.end,
        options_applied=meeting.options_applied,
    )
