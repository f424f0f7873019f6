"""A tenant's Teams settings: capability, organizer and meeting options, organizer verification."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from shared.auth.principal import Principal, Role
from shared.domain.branding import Branding
from shared.domain.tenant import (
    AllowedPresenters,
    AttendanceSettings,
    Capability,
    LobbyBypassScope,
    MeetingChatMode,
    MeetingOptions,
    MicrosoftProfile,
    Tenant,
    TutorChoices,
)
from shared.graph.client import CallContext, GraphMeetingsClient
from shared.graph.errors import (
    GraphAuthError,
    GraphError,
    GraphForbiddenError,
    GraphNotFoundError,
    GraphPolicyMissingError,
    GraphTransientError,
)
from shared.services.access import Command, read_command, require_role
from shared.services.check_meetings import CheckBacklogError, CheckMeetings
from shared.storage.errors import StorageError
from shared.storage.tenant_directory import TenantDirectory

logger = logging.getLogger("meetings.settings")

UNSET = object()


@dataclass(frozen=True)
class OptionsChange:
    """The meeting options a caller sent; None keeps the tenant's current value."""

    lobby_bypass_scope: LobbyBypassScope | None = None
    dial_in_bypass: bool | None = None
    allowed_presenters: AllowedPresenters | None = None
    allow_meeting_chat: MeetingChatMode | None = None
    entry_exit_announced: bool | None = None
    subject_template: str | None = None
    record_automatically: bool | None = None

    def applied_to(self, options: MeetingOptions) -> MeetingOptions:
        given = {name: value for name, value in vars(self).items() if value is not None}
        return replace(options, **given)


@dataclass(frozen=True)
class AttendanceChange:
    """The attendance thresholds a caller sent; None keeps the tenant's current value."""

    minimum_minutes: int | None = None
    grace_minutes: int | None = None
    deadline_hours: int | None = None
    no_show_mail_to: object = UNSET  # an address, or None to mail no one

    def applied_to(self, settings: AttendanceSettings) -> AttendanceSettings:
        given = {
            name: value
            for name, value in vars(self).items()
            if value is not None and value is not UNSET
        }
        if self.no_show_mail_to is None:
            given["no_show_mail_to"] = None
        return replace(settings, **given)


@dataclass(frozen=True)
class BrandingChange:
    """The branding fields a caller sent, by `Branding` field name: a value sets the field,
    None clears it; a field not named keeps its value."""

    fields: Mapping[str, str | None] = field(default_factory=dict)

    def applied_to(self, branding: Branding) -> Branding:
        return replace(branding, **self.fields)


@dataclass(frozen=True)
class SettingsChange:
    """Fields of a settings update; a field left as `UNSET`/None keeps its value."""

    organizer_upn: object = UNSET  # str, or None to switch meeting creation off
    meeting_options: OptionsChange | None = None
    participants_can_reschedule: bool | None = None
    attendance: AttendanceChange | None = None
    branding: BrandingChange | None = None
    default_locale: object = UNSET  # a BCP 47 tag, or None for English
    # What tutors may choose (replaces the whole allowance; empty: nothing).
    tutor_choices: TutorChoices | None = None
    # Minutes before a session its participants are reminded (checked); () turns them off.
    reminder_offsets: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Verification:
    valid: bool
    display_name: str | None = None
    object_id: str | None = None
    reason: str | None = None
    dry_run: bool = False
    # A dry run's meeting is gone from Teams (False: the timer will remove it).
    check_removed: bool | None = None


def capability(caller: Principal, tenants: TenantDirectory) -> Capability:
    """Any signed-in user of the tenant may ask (the approval form's toggle needs it)."""
    return tenants.get(caller.tenant_id).meeting_capability()


ADMINS_ONLY = "Only admins can see or change the tenant's Teams settings"


def get_settings(caller: Principal, tenants: TenantDirectory) -> Tenant:
    require_role(caller, Role.ADMIN, message=ADMINS_ONLY)
    return tenants.get(caller.tenant_id)


def update_settings(
    caller: Principal, command: Command[SettingsChange], tenants: TenantDirectory, now: datetime
) -> Tenant:
    """Save the organizer, options and mail branding. Clearing the organizer stops new
    meetings at once (the PRD's back-out switch); links already stored keep working."""
    require_role(caller, Role.ADMIN, message=ADMINS_ONLY)
    change = read_command(command)
    tenant = tenants.get(caller.tenant_id)
    updated = replace(tenant, updated_at=now)
    if change.organizer_upn is not UNSET:
        upn = change.organizer_upn if isinstance(change.organizer_upn, str) else None
        if upn != tenant.organizer_upn:
            updated = replace(updated, organizer_upn=upn, organizer_object_id=None)
    if change.meeting_options is not None:
        updated = replace(
            updated, meeting_options=change.meeting_options.applied_to(tenant.meeting_options)
        )
    if change.participants_can_reschedule is not None:
        updated = replace(updated, participants_can_reschedule=change.participants_can_reschedule)
    if change.attendance is not None:
        updated = replace(updated, attendance=change.attendance.applied_to(tenant.attendance))
    if change.branding is not None:
        updated = replace(updated, branding=change.branding.applied_to(tenant.branding))
    if change.tutor_choices is not None:
        updated = replace(updated, tutor_choices=change.tutor_choices)
    if change.reminder_offsets is not None:
        updated = replace(updated, reminder_offsets=change.reminder_offsets)
    if change.default_locale is not UNSET:
        tag = change.default_locale if isinstance(change.default_locale, str) else None
        updated = replace(updated, locale=tag)
    return tenants.save(updated)


def verify_organizer(
    caller: Principal,
    command: Command[tuple[str | None, bool]],
    tenants: TenantDirectory,
    graph: GraphMeetingsClient,
    checks: CheckMeetings,
) -> Verification:
    """Look the organizer (`upn`, or the tenant's) up in Graph; with `dry_run`, also create a
    throw-away meeting with the tenant's options and delete it, the only true test of the Teams
    Application Access Policy. The answer says whether the check completed and whether its
    meeting is gone; one that is not is removed by the timer."""
    require_role(caller, Role.ADMIN, message="Only admins can verify the meeting organizer")
    upn, dry_run = read_command(command)
    tenant = tenants.get(caller.tenant_id)
    profile = tenant.microsoft
    target = upn or tenant.organizer_upn
    if profile is None or not target:
        return Verification(False, reason="not_configured", dry_run=dry_run)
    ctx = CallContext(tenant_id=tenant.tenant_id, operation="verify")
    try:
        user = graph.get_user(profile, target, ctx)
    except GraphError as error:
        return Verification(False, reason=_reason(error), dry_run=dry_run)
    if dry_run:
        found = Verification(True, user.display_name, user.id, dry_run=True)
        checked = _dry_run(found, tenant, profile, graph, checks, ctx)
        if not checked.valid:
            return checked
    if target == tenant.organizer_upn and tenant.organizer_object_id != user.id:
        _remember_organizer(tenants, tenant, user.id)
    return checked if dry_run else Verification(True, user.display_name, user.id)


def _dry_run(
    found: Verification,
    tenant: Tenant,
    profile: MicrosoftProfile,
    graph: GraphMeetingsClient,
    checks: CheckMeetings,
    ctx: CallContext,
) -> Verification:
    organizer_id = found.object_id or ""
    try:
        check = checks.open(tenant.tenant_id, organizer_id)
    except CheckBacklogError:
        # Earlier checks' meetings are still in Teams (see check_meeting_not_removed): a
        # person removes them before more are made.
        return replace(found, valid=False, reason="check_meetings_left")
    request = checks.request(check)
    try:
        meeting = graph.create_or_get_meeting(
            profile, organizer_id, request, tenant.meeting_options, ctx, apply_options=False
        )
    except GraphError as error:
        if isinstance(error, GraphTransientError) and error.sent:
            # Teams may have made it: the timer finds it by its externalId and removes it.
            return replace(found, valid=False, reason=_reason(error), check_removed=False)
        checks.nothing_made(check)
        return replace(found, valid=False, reason=_reason(error), check_removed=True)
    check = replace(check, meeting_id=meeting.id)
    reason = None
    try:
        # The options too: a tenant's lobby or presenter settings Teams refuses show here.
        graph.update_meeting(
            profile,
            organizer_id,
            meeting.id,
            start=request.start,
            end=request.end,
            subject=None,
            ctx=ctx,
            options=tenant.meeting_options,
        )
    except GraphError as error:
        reason = _reason(error)
    removed = checks.remove(check, profile) is True
    return replace(found, valid=reason is None, reason=reason, check_removed=removed)


def _remember_organizer(tenants: TenantDirectory, tenant: Tenant, object_id: str) -> None:
    try:
        tenants.save(replace(tenant, organizer_object_id=object_id))
    except StorageError:
        logger.info("organizer id not stored for tenant %s", tenant.tenant_id)


def _reason(error: GraphError) -> str:
    if isinstance(error, GraphPolicyMissingError):
        return "policy_missing"
    if isinstance(error, GraphNotFoundError):
        return "user_not_found"
    if isinstance(error, GraphAuthError | GraphForbiddenError):
        return "unauthorized"
    return "graph_error"
