"""Credential health: is each tenant's Teams integration able to make meetings at all?

The reconciliation timer asks, at most every `CREDENTIAL_CHECK_MINUTES` per tenant, for a
token and makes two cheap authorised reads: the organizer (`GET /users/{upn}`: the secret or
certificate, admin consent, the organizer's account) and a meeting of the organizer that does
not exist (`GET /users/{id}/onlineMeetings/{probe}`: Teams checks the Application Access
Policy before it looks for the meeting, so a 404 means the policy let the app through).

A failure an admin must fix turns the tenant unhealthy with a reason; a transient one (5xx,
timeouts, throttling) changes nothing. Each change of state is one log line and one audit
record for the tenant, however many bookings failed meanwhile: the tenant's state is the
alert, not each booking. When the tenant turns healthy again, the bookings whose meetings
failed for such a cause are asked again, as a user's "generate meeting" would.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import math
import time as clock_time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta

from shared.domain import booking as lifecycle
from shared.domain.audit import TENANT_RECORD, AuditEvent, AuditRecord
from shared.domain.booking import Booking
from shared.domain.meeting import Step
from shared.domain.tenant import (
    CredentialKind,
    HealthReason,
    HealthState,
    InstallStatus,
    MicrosoftProfile,
    TeamsHealth,
    Tenant,
)
from shared.graph.client import CallContext, GraphMeetingsClient
from shared.graph.errors import (
    TENANT_CAUSED_CODES,
    GraphAuthError,
    GraphError,
    GraphForbiddenError,
    GraphInvalidRequestError,
    GraphNotFoundError,
    GraphPolicyMissingError,
)
from shared.meetings.worker import MeetingSync
from shared.observability import log_event
from shared.services.follow_up import FollowUp
from shared.services.transitions import save_transition
from shared.storage.audit import AuditRepository
from shared.storage.bookings import BookingRepository
from shared.storage.errors import ConcurrencyError, StorageError
from shared.storage.tenant_directory import TenantDirectory

logger = logging.getLogger("meetings.credentials")

# Days before a known expiry at which one WARNING is logged each.
EXPIRY_WARNINGS = (30, 7)
# The thread of a meeting no one has: the probe wants Teams' access-policy gate, not a meeting.
PROBE_THREAD = "19:meeting_credential-check@thread.v2"
# Checks stop after this long in one timer run (each is up to three Graph calls, each bounded
# by the Graph timeout); the tenants left are checked on the next run, before the sweep waits.
CHECK_BUDGET_SECONDS = 60.0
# Bookings restarted per tenant per timer run after a recovery; the rest wait for the next
# run (each restart is one inline attempt within the inline budget).
RESTARTS_PER_RUN = 50
# Failed bookings listed per run (those failed for other causes are listed too, and skipped).
FAILED_LISTED = 500
ACTOR = "credential_check"


def classify(error: GraphError) -> HealthReason | None:
    """The reason a failed check makes the tenant unhealthy; None for a transient failure
    (or one that says nothing about the tenant), which changes no state."""
    if isinstance(error, GraphPolicyMissingError):
        return HealthReason.POLICY_MISSING
    if isinstance(error, GraphForbiddenError):
        return HealthReason.CONSENT_MISSING
    if isinstance(error, GraphAuthError):
        # Refused at sign-in (AADSTS7000215 invalid secret, AADSTS7000222 expired secret,
        # invalid_client, an unknown certificate or federation): the credential. A 401 from
        # Graph itself, after a token was issued: the token carries no granted permission.
        return HealthReason.CONSENT_MISSING if error.sent else HealthReason.CREDENTIAL_INVALID
    if isinstance(error, GraphNotFoundError):
        return HealthReason.ORGANIZER_MISSING
    return None


def next_health(
    previous: TeamsHealth | None, reason: HealthReason | None, now: datetime
) -> TeamsHealth:
    """The tenant's health after a conclusive check (`reason` None: it passed)."""
    state = HealthState.HEALTHY if reason is None else HealthState.UNHEALTHY
    if previous is not None and (previous.state, previous.reason) == (state, reason):
        return replace(previous, checked_at=now)
    recovered = previous is not None and not previous.healthy and reason is None
    return TeamsHealth(
        state=state,
        since=now,
        checked_at=now,
        reason=reason,
        expiry_warned=previous.expiry_warned if previous else None,
        retry_pending=recovered or (previous is not None and previous.retry_pending),
    )


def expiry_threshold(expires_at: datetime, now: datetime) -> tuple[int, int | None]:
    """Whole days left before `expires_at`, and the smallest warning threshold reached."""
    days_left = math.floor((expires_at - now).total_seconds() / 86400)
    reached = [t for t in EXPIRY_WARNINGS if days_left <= t]
    return days_left, (min(reached) if reached else None)


def probe_meeting_id(organizer_id: str) -> str:
    """An id shaped as Teams' own (base64 of `1*{organizer}*0**{thread}`) for a meeting that
    does not exist, so that Graph answers 404 past the policy gate rather than 400 at the id."""
    return base64.b64encode(f"1*{organizer_id}*0**{PROBE_THREAD}".encode()).decode()


def certificate_expiry(pem: str) -> datetime | None:
    """The notAfter of the first certificate in a PEM, or None if none can be read."""
    from cryptography import x509

    start = pem.find("-----BEGIN CERTIFICATE-----")
    if start < 0:
        return None
    try:
        certificate = x509.load_pem_x509_certificate(pem[start:].encode())
    except ValueError:
        return None
    return certificate.not_valid_after_utc


@dataclass
class CredentialReport:
    checked: int = 0
    unhealthy: int = 0
    inconclusive: int = 0
    restarted: int = 0
    out_of_time: bool = False
    failed_tenants: list[str] = field(default_factory=list)


class CredentialHealth:
    def __init__(
        self,
        tenants: TenantDirectory,
        graph: GraphMeetingsClient,
        audit: AuditRepository,
        bookings: BookingRepository,
        sync: MeetingSync,
        clock: Callable[[], datetime],
        *,
        interval: timedelta,
        resolve_secret: Callable[[str], str],
        budget_seconds: float = CHECK_BUDGET_SECONDS,
    ) -> None:
        self._tenants = tenants
        self._graph = graph
        self._audit = audit
        self._bookings = bookings
        # A restart asks for meeting work and owes no notice: no mail outbox here.
        self._follow_up = FollowUp(sync)
        self._clock = clock
        self._interval = interval
        self._inconclusive_at: dict[str, datetime] = {}
        self._resolve_secret = resolve_secret
        self._budget = budget_seconds

    def run(self) -> CredentialReport:
        """Check every configured tenant that is due; never raises (one tenant's storage
        trouble waits for the next run, the others go on)."""
        report = CredentialReport()
        try:
            tenant_ids = self._tenants.tenant_ids()
        except StorageError:
            logger.exception("credential check could not list the tenants")
            return report
        deadline = clock_time.monotonic() + self._budget
        for tenant_id in tenant_ids:
            if clock_time.monotonic() > deadline:
                report.out_of_time = True
                break
            try:
                self._run_tenant(tenant_id, report)
            except StorageError:
                logger.exception("credential check of tenant %s stopped by storage", tenant_id)
                report.failed_tenants.append(tenant_id)
        log_event(logger, logging.INFO, "credential_check_run", **vars(report))
        return report

    def unhealthy_tenants(self) -> int:
        """How many tenants' Teams integrations are unhealthy now (one tenant-table scan: a
        tenant without a row was never checked)."""
        return sum(
            1 for t in self._tenants.stored() if t.teams_health and not t.teams_health.healthy
        )

    def _run_tenant(self, tenant_id: str, report: CredentialReport) -> None:
        tenant = self._tenants.get(tenant_id)
        if not _checkable(tenant):
            return  # capability already says not_configured, no_organizer or disabled
        now = self._clock()
        health = tenant.teams_health
        # Settings saved since the last check (a new organizer, say) are checked at once.
        saved_at = tenant.updated_at
        changed = health is not None and saved_at is not None and saved_at > health.checked_at
        # An inconclusive check (Graph throttled or down) records nothing on the row; it
        # still waits the interval before the next probe, so as not to add to the load.
        tried = self._inconclusive_at.get(tenant_id)
        waited = tried is None or now - tried >= self._interval
        if (health is None or changed or now - health.checked_at >= self._interval) and waited:
            tenant = self.check(tenant, now)
            report.checked += 1
            health = tenant.teams_health
            if health is None:
                report.inconclusive += 1
                return
            if not health.healthy:
                report.unhealthy += 1
        if health is not None and health.healthy and health.retry_pending:
            report.restarted += self._restart_failed(tenant, now)

    def check(self, tenant: Tenant, now: datetime) -> Tenant:
        """Check one tenant now and record the answer; the tenant as saved (unchanged when
        the check was inconclusive)."""
        assert tenant.microsoft is not None
        assert tenant.organizer_upn
        error = self._probe(tenant, tenant.microsoft, tenant.organizer_upn)
        reason = classify(error) if error is not None else None
        if error is not None and reason is None:
            self._inconclusive_at[tenant.tenant_id] = now
            log_event(
                logger,
                logging.INFO,
                "tenant_credential_check_inconclusive",
                tenant=tenant.tenant_id,
                errorCode=error.code,
                graphStatus=error.status,
            )
            return tenant
        self._inconclusive_at.pop(tenant.tenant_id, None)
        previous = tenant.teams_health
        health = next_health(previous, reason, now)
        health = self._expiry(tenant, tenant.microsoft, health, now)
        saved, raced = self._save(tenant, health, verdict=True)
        changed = previous is None or (previous.state, previous.reason) != (
            health.state,
            health.reason,
        )
        # A run at the same time that recorded this very change has logged it already.
        if changed and not raced:
            self._changed(saved, previous, health, error)
        return saved

    def _probe(self, tenant: Tenant, profile: MicrosoftProfile, upn: str) -> GraphError | None:
        ctx = CallContext(tenant.tenant_id, "credential_check")
        try:
            user = self._graph.get_user(profile, upn, ctx)
            # Past the access-policy gate, the meeting is not found (or its id not accepted).
            with contextlib.suppress(GraphNotFoundError, GraphInvalidRequestError):
                self._graph.get_meeting(profile, user.id, probe_meeting_id(user.id), ctx)
        except GraphError as error:
            return error
        return None

    def _changed(
        self,
        tenant: Tenant,
        previous: TeamsHealth | None,
        health: TeamsHealth,
        error: GraphError | None,
    ) -> None:
        if health.healthy:
            if previous is None:
                return  # the first check found it well: nothing changed for anyone
            log_event(
                logger,
                logging.INFO,
                "tenant_credential_healthy",
                tenant=tenant.tenant_id,
                previousReason=previous.reason.value if previous.reason else None,
                unhealthySince=previous.since.isoformat(),
            )
            event = AuditEvent.TEAMS_CREDENTIAL_HEALTHY
        else:
            assert health.reason is not None
            log_event(
                logger,
                logging.ERROR,
                "tenant_credential_unhealthy",
                tenant=tenant.tenant_id,
                reason=health.reason.value,
                errorCode=error.code if error else None,
                graphCode=error.graph_code if error else None,
                graphStatus=error.status if error else None,
            )
            event = AuditEvent.TEAMS_CREDENTIAL_UNHEALTHY
        record = AuditRecord(
            tenant_id=tenant.tenant_id,
            booking_id=TENANT_RECORD,
            event=event,
            occurred_at=health.since,
            record_id=uuid.uuid4().hex,
            operation=ACTOR,
            graph_status=error.status if error else None,
            error_code=health.reason.value if health.reason else None,
            actor=ACTOR,
        )
        try:
            self._audit.add(record)
        except StorageError:
            logger.exception("audit record of tenant %s's health not stored", tenant.tenant_id)

    def _expiry(
        self, tenant: Tenant, profile: MicrosoftProfile, health: TeamsHealth, now: datetime
    ) -> TeamsHealth:
        expires_at = self._expires_at(profile)
        if expires_at is None:
            return health
        days_left, reached = expiry_threshold(expires_at, now)
        if reached is None:
            # Not near (any more: a rotated credential warns again at its own time).
            return replace(health, expiry_warned=None)
        if health.expiry_warned is not None and health.expiry_warned <= reached:
            return health
        log_event(
            logger,
            logging.WARNING,
            "tenant_credential_expiring",
            tenant=tenant.tenant_id,
            credential=profile.credential.value,
            daysLeft=days_left,
            expiresOn=expires_at.isoformat(),
        )
        return replace(health, expiry_warned=reached)

    def _expires_at(self, profile: MicrosoftProfile) -> datetime | None:
        if profile.credential is CredentialKind.CERTIFICATE and profile.secret_setting:
            try:
                return certificate_expiry(self._resolve_secret(profile.secret_setting))
            except GraphError:
                return None  # the setting is missing: the probe said credential_invalid
        if profile.credential is CredentialKind.SECRET and profile.secret_expires_on:
            return datetime.combine(profile.secret_expires_on, time(0), UTC)
        return None

    def _save(
        self, tenant: Tenant, health: TeamsHealth, *, verdict: bool = False
    ) -> tuple[Tenant, bool]:
        """Save the health on the tenant's row; a concurrent settings change is re-read and
        the health written onto it. For a check's `verdict`: True beside it when another check
        had already recorded the same state (its run announces the change, not this one)."""
        for _ in range(3):
            try:
                return self._tenants.save(replace(tenant, teams_health=health)), False
            except ConcurrencyError:
                tenant = self._tenants.get(tenant.tenant_id)
                current = tenant.teams_health
                if (
                    verdict
                    and current is not None
                    and (current.state, current.reason)
                    == (
                        health.state,
                        health.reason,
                    )
                ):
                    return tenant, True
        return self._tenants.save(replace(tenant, teams_health=health)), False

    def _restart_failed(self, tenant: Tenant, now: datetime) -> int:
        """Ask again for the meetings that failed for a cause the admin has now fixed.

        Failed work has no marker, and indexing it would add a row to every failure's
        transaction for an event that is rare. Instead the table service filters the tenant's
        booking rows (`MeetingFailed eq true`, from now on: a past booking needs no meeting):
        one query that returns, and bills reads for, only the failed bookings, with one
        request per thousand rows the service scans. It runs once per recovery, not per
        timer run.
        """
        listed = self._bookings.list_meeting_failed(tenant.tenant_id, now, FAILED_LISTED)
        failed = [b for b in listed if _failed_for_tenant(b)]
        for booking in failed[:RESTARTS_PER_RUN]:
            saved = save_transition(
                self._bookings,
                booking,
                lambda b: (
                    lifecycle.meeting_retried(b, now=self._clock()) if _failed_for_tenant(b) else b
                ),
            )
            if saved is not booking:
                self._follow_up.after_change(saved, actor=ACTOR)
        if len(failed) <= RESTARTS_PER_RUN and len(listed) < FAILED_LISTED:
            health = tenant.teams_health
            assert health is not None
            self._save(tenant, replace(health, retry_pending=False))  # (a race: done either way)
        restarted = min(len(failed), RESTARTS_PER_RUN)
        if restarted:
            log_event(
                logger,
                logging.INFO,
                "tenant_failed_meetings_restarted",
                tenant=tenant.tenant_id,
                bookings=restarted,
                remaining=len(failed) - restarted,
            )
        return restarted


def _checkable(tenant: Tenant) -> bool:
    return (
        tenant.install_status is InstallStatus.ACTIVE
        and tenant.microsoft is not None
        and bool(tenant.organizer_upn)
    )


def _failed_for_tenant(booking: Booking) -> bool:
    """Work stopped by the tenant's credential, consent, policy or organizer: a meeting to
    make or move, or one to remove for a booking cancelled meanwhile."""
    meeting = booking.meeting
    return (
        meeting.failed
        and meeting.last_error_code in TENANT_CAUSED_CODES
        and booking.next_step is not Step.NONE
    )
