"""Meeting effects: make, move and remove a booking's Teams meeting through Graph.

Each effect is one attempt. It returns the booking with the outcome recorded in its meeting
state (not yet saved), the Graph error if there was one, and a sentence for the user; it writes
the audit record. Whether a failure fails the user's action is the caller's decision (SPEC §2).
"""

from __future__ import annotations

import logging
import string
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from shared.domain import booking as lifecycle
from shared.domain.audit import AuditEvent, AuditRecord
from shared.domain.booking import Booking
from shared.domain.tenant import Tenant
from shared.graph.bodies import Attendee, MeetingRequest
from shared.graph.client import CallContext, GraphMeetingsClient
from shared.graph.errors import (
    GraphAuthError,
    GraphError,
    GraphForbiddenError,
    GraphNotFoundError,
    GraphPolicyMissingError,
    GraphTransientError,
)
from shared.observability import log_event
from shared.services.tenants import TenantDirectory
from shared.storage.audit import AuditRepository
from shared.storage.errors import StorageError

logger = logging.getLogger("meetings.effects")
RUNBOOK = "docs/integrations/teams-meetings-setup.md"


class TeamsUnavailableError(Exception):
    """The tenant cannot make meetings now (not configured, no organizer, disabled)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"Teams meetings are not available for this tenant ({reason})")
        self.reason = reason


@dataclass(frozen=True)
class Outcome:
    booking: Booking
    error: GraphError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def subject_for(booking: Booking, tenant: Tenant) -> str:
    """The tenant's subject template filled from the booking ("{subject} {level} Lesson")."""
    values = {"subject": booking.subject, "level": booking.level or ""}
    template = tenant.meeting_options.subject_template
    try:
        text = string.Formatter().vformat(template, (), _Blank(values))
    except (ValueError, IndexError):
        text = booking.subject
    return " ".join(text.split())[:255] or booking.subject


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


def describe_failure(action: str, error: GraphError) -> str:
    """The human sentence for a warning or an error response."""
    if isinstance(error, GraphPolicyMissingError):
        return (
            f"{action}, but Microsoft Teams refused to act for the organizer: no Teams "
            f"Application Access Policy grants this app that user (see {RUNBOOK})."
        )
    if isinstance(error, GraphAuthError):
        return (
            f"{action}, but the app could not sign in to Microsoft Graph (check the client "
            f"id, secret and admin consent; see {RUNBOOK})."
        )
    if isinstance(error, GraphForbiddenError):
        return f"{action}, but Microsoft Graph denied the permission it needs (see {RUNBOOK})."
    if isinstance(error, GraphNotFoundError):
        return f"{action}, but Microsoft Graph did not find the organizer or the meeting."
    if error.retryable:
        return f"{action}, but Microsoft Teams did not answer in time; it will be retried."
    return f"{action}, but Microsoft Graph refused the request ({error.code})."


class MeetingEffects:
    def __init__(
        self,
        graph: GraphMeetingsClient,
        tenants: TenantDirectory,
        audit: AuditRepository,
        clock: Callable[[], datetime],
    ) -> None:
        self._graph = graph
        self._tenants = tenants
        self._audit = audit
        self._clock = clock

    def create(self, booking: Booking, tenant: Tenant, *, actor: str | None) -> Outcome:
        """createOrGet the booking's meeting (same externalId: never two meetings)."""
        capability = tenant.meeting_capability()
        if not capability.available or tenant.microsoft is None:
            raise TeamsUnavailableError(capability.reason or "not_configured")
        ctx = self._ctx(booking, "create")

        def call() -> Booking:
            assert tenant.microsoft is not None
            organizer_id = self.organizer_id(tenant, ctx)
            meeting = self._graph.create_or_get_meeting(
                tenant.microsoft,
                organizer_id,
                self._request(booking, tenant),
                tenant.meeting_options,
                ctx,
            )
            created = lifecycle.meeting_created(
                booking,
                meeting_id=meeting.id,
                join_url=meeting.join_url,
                organizer_id=organizer_id,
                now=self._clock(),
            )
            if meeting.start != booking.start or meeting.end != booking.end:
                # An earlier attempt made it before a reschedule: Graph still has old times.
                created = replace(
                    created,
                    meeting=replace(
                        created.meeting, synced_start=meeting.start, synced_end=meeting.end
                    ),
                )
            return created

        return self._run(booking, ctx, call, AuditEvent.MEETING_ATTACHED, actor)

    def update(self, booking: Booking, tenant: Tenant, *, actor: str | None) -> Outcome:
        """PATCH the meeting's times (and subject): same meeting, same join URL."""
        ctx = self._ctx(booking, "update")
        meeting = booking.meeting

        def call() -> Booking:
            profile = tenant.microsoft
            if profile is None or not meeting.meeting_id or not meeting.organizer_id:
                raise GraphNotFoundError("the booking has no meeting to update")
            self._graph.update_meeting(
                profile,
                meeting.organizer_id,
                meeting.meeting_id,
                start=booking.start,
                end=booking.end,
                subject=subject_for(booking, tenant),
                ctx=ctx,
            )
            return lifecycle.meeting_synced(booking, now=self._clock())

        return self._run(booking, ctx, call, AuditEvent.MEETING_UPDATED, actor)

    def delete(self, booking: Booking, tenant: Tenant, *, actor: str | None) -> Outcome:
        """DELETE the meeting; one that is already gone counts as deleted.

        When a create went unanswered we have no meeting id, but Teams may hold the meeting:
        createOrGet with the same externalId hands it over (or makes one), and it is deleted.
        """
        ctx = self._ctx(booking, "delete")
        meeting = booking.meeting

        def call() -> Booking:
            profile = tenant.microsoft
            meeting_id, organizer_id = meeting.meeting_id, meeting.organizer_id
            if (meeting_id or meeting.create_in_doubt) and profile is None:
                raise GraphAuthError("the tenant has no Microsoft profile any more")
            if profile is not None and not meeting_id and meeting.create_in_doubt:
                organizer_id = organizer_id or self.organizer_id(tenant, ctx)
                meeting_id = self._graph.create_or_get_meeting(
                    profile, organizer_id, self._request(booking, tenant), None, ctx
                ).id
            if profile is not None and meeting_id and organizer_id:
                self._graph.delete_meeting(profile, organizer_id, meeting_id, ctx)
            return lifecycle.meeting_deleted(booking, now=self._clock())

        return self._run(booking, ctx, call, AuditEvent.MEETING_DELETED, actor)

    def organizer_id(self, tenant: Tenant, ctx: CallContext) -> str:
        """The organizer's object id: stored, or resolved from the UPN once and kept."""
        if tenant.organizer_object_id:
            return tenant.organizer_object_id
        assert tenant.microsoft is not None
        assert tenant.organizer_upn
        user = self._graph.get_user(tenant.microsoft, tenant.organizer_upn, ctx)
        if tenant.etag is not None:
            # Keep it for next time; losing this race only costs a lookup later.
            try:
                self._tenants.save(replace(tenant, organizer_object_id=user.id))
            except StorageError:
                logger.info("organizer id not stored for tenant %s", tenant.tenant_id)
        return user.id

    @staticmethod
    def _request(booking: Booking, tenant: Tenant) -> MeetingRequest:
        return MeetingRequest(
            external_id=booking.external_id,
            subject=subject_for(booking, tenant),
            start=booking.start,
            end=booking.end,
            attendees=tuple(Attendee(p.email, p.display_name) for p in booking.participants),
        )

    def _ctx(self, booking: Booking, operation: str) -> CallContext:
        return CallContext(
            tenant_id=booking.tenant_id,
            operation=operation,
            booking_id=booking.booking_id,
            attempt=booking.meeting.attempts + 1,
        )

    def _run(
        self,
        booking: Booking,
        ctx: CallContext,
        call: Callable[[], Booking],
        success: AuditEvent,
        actor: str | None,
    ) -> Outcome:
        started = time.perf_counter()
        try:
            result = call()
        except GraphError as error:
            latency = round((time.perf_counter() - started) * 1000)
            failed = lifecycle.meeting_attempt_failed(
                booking,
                error_code=error.code,
                retryable=error.retryable,
                unanswered=isinstance(error, GraphTransientError),
                now=self._clock(),
            )
            self._record(failed, AuditEvent.MEETING_FAILED, ctx, latency, actor, error)
            log_event(
                logger,
                logging.WARNING,
                "meeting_effect_failed",
                tenant=booking.tenant_id,
                bookingId=booking.booking_id,
                operation=ctx.operation,
                attempt=ctx.attempt,
                latencyMs=latency,
                graphStatus=error.status,
                errorCode=error.code,
                retryable=error.retryable,
            )
            return Outcome(failed, error)
        latency = round((time.perf_counter() - started) * 1000)
        self._record(result, success, ctx, latency, actor, None)
        log_event(
            logger,
            logging.INFO,
            "meeting_effect",
            tenant=booking.tenant_id,
            bookingId=booking.booking_id,
            operation=ctx.operation,
            attempt=ctx.attempt,
            latencyMs=latency,
            meetingId=result.meeting.meeting_id,
        )
        return Outcome(result)

    def _record(
        self,
        booking: Booking,
        event: AuditEvent,
        ctx: CallContext,
        latency_ms: int,
        actor: str | None,
        error: GraphError | None,
    ) -> None:
        record = AuditRecord(
            tenant_id=booking.tenant_id,
            booking_id=booking.booking_id,
            event=event,
            occurred_at=self._clock(),
            record_id=uuid.uuid4().hex,
            operation=ctx.operation,
            attempt=ctx.attempt,
            latency_ms=latency_ms,
            graph_status=error.status if error else None,
            error_code=error.code if error else None,
            meeting_id=booking.meeting.meeting_id,
            actor=actor,
        )
        try:
            self._audit.add(record)
        except StorageError:
            # The audit trail must not undo a meeting that exists; the log line still tells.
            logger.exception("audit record not stored for booking %s", booking.booking_id)
