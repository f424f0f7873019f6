"""Tenant persistence.

Table `tenants`: PartitionKey = "tenant", RowKey = tenant id. Tenants are few and read by id
(a point read; `get_recent` keeps it for `CACHE_SECONDS` in the process) or all at once by the
reconciler (one partition scan). No secret is ever stored: the Microsoft profile keeps the
*name* of the app setting that holds the client secret.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from typing import TYPE_CHECKING, Any, Protocol

from shared.domain.branding import Branding
from shared.domain.reminders import DEFAULT_OFFSETS, normalized, offsets_problem
from shared.domain.tenant import (
    AllowedPresenters,
    AttendanceSettings,
    CredentialKind,
    HealthReason,
    HealthState,
    InstallStatus,
    LobbyBypassScope,
    MailSettings,
    MeetingChatMode,
    MeetingOptions,
    MicrosoftProfile,
    TeamsHealth,
    Tenant,
    TutorChoices,
)
from shared.storage.errors import AlreadyExistsError, ConcurrencyError, StorageError
from shared.storage.tables import (
    EntityReader,
    Tables,
    check_string,
    translated_errors,
    validate_key,
)

if TYPE_CHECKING:
    from azure.data.tables import TableClient

TABLE = "tenants"
_PARTITION = "tenant"


class TenantRepository(Protocol):
    def get(self, tenant_id: str) -> Tenant:
        """The tenant, or `NotFoundError`."""
        ...

    def get_recent(self, tenant_id: str) -> Tenant:
        """The tenant as read (or saved) at most a few seconds ago in this process, or read
        now: for the meeting steps of a request, not for showing or changing settings."""
        ...

    def add(self, tenant: Tenant) -> Tenant:
        """Insert; `AlreadyExistsError` if the id is taken."""
        ...

    def update(self, tenant: Tenant) -> Tenant:
        """Save a tenant read earlier; `ConcurrencyError` if it changed since."""
        ...

    def list_all(self) -> list[Tenant]: ...


# How long a tenant read here serves `get_recent` without a read (the meeting steps of every
# request need their tenant, and tenants change seldom). A save in this process replaces the
# copy at once (with its new ETag); one made by another process is seen within this time.
# `get` always reads (settings, capability, credential checks).
CACHE_SECONDS = 30.0


class TableTenantRepository:
    """`TenantRepository` on Azure Table Storage, with a short per-process copy of each row."""

    def __init__(
        self,
        tables: Tables,
        cache_seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tables = tables
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, Tenant]] = {}
        # Saves (and forgets) made here, by tenant: a read that one overtook keeps no copy.
        self._writes: dict[str, int] = {}
        self._cache_lock = threading.Lock()

    @property
    def _table(self) -> TableClient:
        return self._tables.table(TABLE)

    def get_recent(self, tenant_id: str) -> Tenant:
        key = validate_key(tenant_id, "tenant id")
        with self._cache_lock:
            cached = self._cache.get(key)
        if cached is not None and self._clock() < cached[0]:
            return cached[1]
        return self.get(tenant_id)

    def get(self, tenant_id: str) -> Tenant:
        key = validate_key(tenant_id, "tenant id")
        seen = self._writes_now()
        with translated_errors(f"tenant {tenant_id}"):
            entity = self._table.get_entity(_PARTITION, key)
        return self._keep_read(entity_to_tenant(entity), seen)

    def _writes_now(self) -> dict[str, int]:
        with self._cache_lock:
            return dict(self._writes)

    def _keep_read(self, tenant: Tenant, seen: dict[str, int]) -> Tenant:
        """Keep a tenant read, unless a save here since the read began (`seen`: the saves
        counted then) may be newer than its answer: that save's copy stays."""
        if self._cache_seconds > 0:
            key = tenant.tenant_id
            with self._cache_lock:
                if self._writes.get(key, 0) == seen.get(key, 0):
                    self._cache[key] = (self._clock() + self._cache_seconds, tenant)
        return tenant

    def _keep(self, tenant: Tenant) -> Tenant:
        with self._cache_lock:
            self._writes[tenant.tenant_id] = self._writes.get(tenant.tenant_id, 0) + 1
            if self._cache_seconds > 0:
                self._cache[tenant.tenant_id] = (self._clock() + self._cache_seconds, tenant)
        return tenant

    def _forget(self, tenant_id: str) -> None:
        with self._cache_lock:
            self._writes[tenant_id] = self._writes.get(tenant_id, 0) + 1
            self._cache.pop(tenant_id, None)

    def add(self, tenant: Tenant) -> Tenant:
        try:
            with translated_errors(f"tenant {tenant.tenant_id}"):
                meta = self._table.create_entity(tenant_to_entity(tenant))
        except AlreadyExistsError:
            self._forget(tenant.tenant_id)
            raise
        return self._keep(replace(tenant, etag=meta["etag"]))

    def update(self, tenant: Tenant) -> Tenant:
        from azure.core import MatchConditions
        from azure.data.tables import UpdateMode

        if tenant.etag is None:
            raise ConcurrencyError(f"tenant {tenant.tenant_id} was not read before saving")
        try:
            with translated_errors(f"tenant {tenant.tenant_id}"):
                meta = self._table.update_entity(
                    tenant_to_entity(tenant),
                    mode=UpdateMode.REPLACE,
                    etag=tenant.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
        except StorageError:
            # Changed elsewhere (or gone): the next read asks the table.
            self._forget(tenant.tenant_id)
            raise
        return self._keep(replace(tenant, etag=meta["etag"]))

    def list_all(self) -> list[Tenant]:
        seen = self._writes_now()
        with translated_errors("tenants query"):
            entities = list(self._table.query_entities(f"PartitionKey eq '{_PARTITION}'"))
        self._tables.reads += len(entities)
        return sorted(
            (self._keep_read(entity_to_tenant(e), seen) for e in entities),
            key=lambda t: t.tenant_id,
        )


def tenant_to_entity(tenant: Tenant) -> dict[str, Any]:
    options = tenant.meeting_options
    profile = tenant.microsoft
    return {
        "PartitionKey": _PARTITION,
        "RowKey": validate_key(tenant.tenant_id, "tenant id"),
        "DisplayName": check_string(tenant.display_name, "display name"),
        "InstallStatus": tenant.install_status.value,
        "DirectoryTenantId": profile.directory_tenant_id if profile else None,
        "ClientId": profile.client_id if profile else None,
        "SecretSetting": profile.secret_setting if profile else None,
        "Credential": profile.credential.value if profile else None,
        "CredentialExpiresOn": (
            profile.secret_expires_on.isoformat() if profile and profile.secret_expires_on else None
        ),
        "OrganizerUpn": tenant.organizer_upn,
        "OrganizerObjectId": tenant.organizer_object_id,
        "LobbyBypassScope": options.lobby_bypass_scope.value,
        "DialInBypass": options.dial_in_bypass,
        "AllowedPresenters": options.allowed_presenters.value,
        "AllowMeetingChat": options.allow_meeting_chat.value,
        "EntryExitAnnounced": options.entry_exit_announced,
        "SubjectTemplate": check_string(options.subject_template, "subject template"),
        "RecordAutomatically": options.record_automatically,
        "TutorChoices": _choices_column(tenant.tutor_choices),
        "MailSenderUpn": tenant.mail.sender_upn,
        **_branding_columns(tenant.branding),
        "ParticipantsCanReschedule": tenant.participants_can_reschedule,
        "AttendanceMinimumMinutes": tenant.attendance.minimum_minutes,
        "AttendanceGraceMinutes": tenant.attendance.grace_minutes,
        "AttendanceDeadlineHours": tenant.attendance.deadline_hours,
        "AttendanceNoShowMailTo": tenant.attendance.no_show_mail_to,
        "Locale": check_string(tenant.locale, "locale"),
        # "[1440,15]"; "[]" for none. No column (a tenant stored before): the default.
        "ReminderOffsets": json.dumps(list(tenant.reminder_offsets), separators=(",", ":")),
        "UpdatedAt": tenant.updated_at,
        **_health_columns(tenant.teams_health),
    }


def _branding_columns(branding: Branding) -> dict[str, Any]:
    # `MailReplyTo` is the column rows held the reply-to address in before there was branding.
    return {
        "BrandDisplayName": check_string(branding.display_name, "branding display name"),
        "BrandLogoUrl": check_string(branding.logo_url, "branding logo URL"),
        "BrandAccentColor": branding.accent_color,
        "MailReplyTo": check_string(branding.reply_to, "branding reply-to"),
        "BrandContactLine": check_string(branding.contact_line, "branding contact line"),
        "BrandFooterText": check_string(branding.footer_text, "branding footer text"),
    }


def _branding(r: EntityReader) -> Branding:
    return Branding(
        display_name=r.opt_text("BrandDisplayName"),
        logo_url=r.opt_text("BrandLogoUrl"),
        accent_color=r.opt_text("BrandAccentColor"),
        reply_to=r.opt_text("MailReplyTo"),
        contact_line=r.opt_text("BrandContactLine"),
        footer_text=r.opt_text("BrandFooterText"),
    )


_CHOICE_KINDS: dict[str, Any] = {
    "lobby_bypass_scope": LobbyBypassScope,
    "allowed_presenters": AllowedPresenters,
    "allow_meeting_chat": MeetingChatMode,
    "record_automatically": bool,
}


def _choices_column(choices: TutorChoices) -> str | None:
    """The tenant's allowance as one JSON column (option → the values tutors may choose)."""
    if not choices.any:
        return None
    listed = {
        name: sorted(v if isinstance(v, bool) else v.value for v in getattr(choices, name))
        for name in _CHOICE_KINDS
        if getattr(choices, name)
    }
    return json.dumps(listed, sort_keys=True, separators=(",", ":"))


def _choices(r: EntityReader) -> TutorChoices:
    text = r.opt_text("TutorChoices")
    if not text:
        return TutorChoices()
    try:
        listed = json.loads(text)
        given: dict[str, Any] = {
            name: frozenset(bool(v) if kind is bool else kind(v) for v in listed.get(name, ()))
            for name, kind in _CHOICE_KINDS.items()
        }
    except (ValueError, TypeError, AttributeError) as exc:
        raise r.fail(f"TutorChoices is not a valid allowance ({exc})") from exc
    return TutorChoices(**given)


def _health_columns(health: TeamsHealth | None) -> dict[str, Any]:
    return {
        "HealthState": health.state.value if health else None,
        "HealthReason": health.reason.value if health and health.reason else None,
        "HealthSince": health.since if health else None,
        "HealthCheckedAt": health.checked_at if health else None,
        "HealthExpiryWarned": health.expiry_warned if health else None,
        "HealthRetryPending": health.retry_pending if health else None,
    }


def _health(r: EntityReader) -> TeamsHealth | None:
    if not r.opt_text("HealthState"):
        return None
    since, checked = r.opt_moment("HealthSince"), r.opt_moment("HealthCheckedAt")
    if since is None or checked is None:
        raise r.fail("Teams health has a state but not since when, or when it was checked")
    return TeamsHealth(
        state=r.enum("HealthState", HealthState),
        since=since,
        checked_at=checked,
        reason=r.enum("HealthReason", HealthReason) if r.opt_text("HealthReason") else None,
        expiry_warned=r.opt_number("HealthExpiryWarned"),
        retry_pending=r.flag("HealthRetryPending"),
    )


def entity_to_tenant(entity: Any) -> Tenant:
    r = EntityReader(entity, "tenant")
    defaults = MeetingOptions()
    return Tenant(
        tenant_id=r.text("RowKey"),
        display_name=r.text("DisplayName"),
        install_status=r.enum("InstallStatus", InstallStatus),
        microsoft=_profile(r),
        organizer_upn=r.opt_text("OrganizerUpn"),
        organizer_object_id=r.opt_text("OrganizerObjectId"),
        meeting_options=MeetingOptions(
            lobby_bypass_scope=r.enum("LobbyBypassScope", LobbyBypassScope),
            dial_in_bypass=r.flag("DialInBypass", defaults.dial_in_bypass),
            allowed_presenters=r.enum("AllowedPresenters", AllowedPresenters),
            allow_meeting_chat=r.enum("AllowMeetingChat", MeetingChatMode),
            entry_exit_announced=r.flag("EntryExitAnnounced", defaults.entry_exit_announced),
            subject_template=r.opt_text("SubjectTemplate") or defaults.subject_template,
            record_automatically=r.flag("RecordAutomatically", defaults.record_automatically),
        ),
        tutor_choices=_choices(r),
        mail=MailSettings(sender_upn=r.opt_text("MailSenderUpn")),
        branding=_branding(r),
        participants_can_reschedule=r.flag("ParticipantsCanReschedule"),
        attendance=_attendance_settings(r),
        locale=r.opt_text("Locale"),
        reminder_offsets=_reminder_offsets(r),
        updated_at=r.opt_moment("UpdatedAt"),
        teams_health=_health(r),
        etag=entity.metadata.get("etag") if hasattr(entity, "metadata") else None,
    )


def _reminder_offsets(r: EntityReader) -> tuple[int, ...]:
    if r.opt_text("ReminderOffsets") is None:
        return DEFAULT_OFFSETS
    offsets = r.json_value("ReminderOffsets")
    problem = offsets_problem(offsets)
    if problem is not None:
        raise r.fail(f"ReminderOffsets {problem[0]}")
    return normalized(offsets)


def _attendance_settings(r: EntityReader) -> AttendanceSettings:
    # Rows written before attendance was read have none: the defaults.
    defaults = AttendanceSettings()
    minimum, grace, deadline = (
        r.opt_number("AttendanceMinimumMinutes"),
        r.opt_number("AttendanceGraceMinutes"),
        r.opt_number("AttendanceDeadlineHours"),
    )
    return AttendanceSettings(
        minimum_minutes=defaults.minimum_minutes if minimum is None else minimum,
        grace_minutes=defaults.grace_minutes if grace is None else grace,
        deadline_hours=defaults.deadline_hours if deadline is None else deadline,
        no_show_mail_to=r.opt_text("AttendanceNoShowMailTo"),
    )


def _profile(r: EntityReader) -> MicrosoftProfile | None:
    directory, client, setting = (
        r.opt_text("DirectoryTenantId"),
        r.opt_text("ClientId"),
        r.opt_text("SecretSetting"),
    )
    # Rows written before credentials had kinds hold a secret setting.
    credential = (
        r.enum("Credential", CredentialKind) if r.opt_text("Credential") else CredentialKind.SECRET
    )
    if not any((directory, client, setting)):
        return None
    needs_setting = credential is not CredentialKind.MANAGED_IDENTITY
    if not (directory and client) or (needs_setting and not setting):
        raise r.fail(
            "Microsoft profile is incomplete (directory, client id, and for a secret or a "
            "certificate the app setting that holds it)"
        )
    expires = r.opt_text("CredentialExpiresOn")
    try:
        expires_on = date.fromisoformat(expires) if expires else None
    except ValueError as exc:
        raise r.fail("CredentialExpiresOn is not an ISO date") from exc
    return MicrosoftProfile(
        directory, client, setting if needs_setting else None, credential, expires_on
    )
