"""Tenants: who owns bookings, and how their Teams meetings are made."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import date, datetime
from enum import StrEnum

from shared.domain.branding import Branding
from shared.domain.reminder_state import DEFAULT_OFFSETS


class InstallStatus(StrEnum):
    ACTIVE = "active"
    PENDING = "pending"
    DISABLED = "disabled"


class LobbyBypassScope(StrEnum):
    ORGANIZER = "organizer"
    ORGANIZATION = "organization"
    ORGANIZATION_AND_FEDERATED = "organizationAndFederated"
    EVERYONE = "everyone"
    INVITED = "invited"
    ORGANIZATION_EXCLUDING_GUESTS = "organizationExcludingGuests"


class AllowedPresenters(StrEnum):
    EVERYONE = "everyone"
    ORGANIZATION = "organization"
    ROLE_IS_PRESENTER = "roleIsPresenter"
    ORGANIZER = "organizer"


class MeetingChatMode(StrEnum):
    ENABLED = "enabled"
    DISABLED = "disabled"
    LIMITED = "limited"


@dataclass(frozen=True)
class MeetingOptions:
    """Teams meeting options; the defaults are seed 000's (meetings start without the organizer)."""

    lobby_bypass_scope: LobbyBypassScope = LobbyBypassScope.EVERYONE
    dial_in_bypass: bool = True
    allowed_presenters: AllowedPresenters = AllowedPresenters.EVERYONE
    allow_meeting_chat: MeetingChatMode = MeetingChatMode.ENABLED
    entry_exit_announced: bool = False
    subject_template: str = "{subject} {level} Lesson"
    # Teams records the meeting when it starts; the recording stays in Teams.
    record_automatically: bool = False


@dataclass(frozen=True)
class TutorChoices:
    """Per option, the values a tutor may choose; empty: tutors cannot change it."""

    lobby_bypass_scope: frozenset[LobbyBypassScope] = frozenset()
    allowed_presenters: frozenset[AllowedPresenters] = frozenset()
    allow_meeting_chat: frozenset[MeetingChatMode] = frozenset()
    record_automatically: frozenset[bool] = frozenset()

    @property
    def any(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))


class CredentialKind(StrEnum):
    """How the app proves itself to Microsoft Entra for a tenant's app registration."""

    # The app's managed identity, added to the app registration as a federated identity
    # credential: no secret exists anywhere, nothing expires unseen.
    MANAGED_IDENTITY = "managed_identity"
    # A certificate (private key and certificate, PEM) the app signs its assertion with.
    CERTIFICATE = "certificate"
    # A client secret (24 months at most in Entra).
    SECRET = "secret"  # noqa: S105 (a kind of credential, not one)


@dataclass(frozen=True)
class MicrosoftProfile:
    """The tenant's app registration. No secret is ever stored here, only a reference.

    `credential` says how the app signs in. For a secret or a certificate, `secret_setting`
    names the app setting that holds it (in Azure a Key Vault reference, so the value lives in
    Key Vault); a managed identity needs none (the app's own identity is federated with the
    registration).
    """

    directory_tenant_id: str
    client_id: str
    secret_setting: str | None = None
    credential: CredentialKind = CredentialKind.SECRET
    # When the client secret expires (Entra shows it; the secret itself cannot tell), so that
    # the credential check warns ahead. A certificate's expiry is read from the certificate.
    secret_expires_on: date | None = None


@dataclass(frozen=True)
class AttendanceSettings:
    """When a lesson counts as attended, and how long to wait for Teams' attendance report
    (shared/domain/completion.py): a participant is present after `minimum_minutes` in the
    meeting; the report is first asked for `grace_minutes` after the end, and given up on
    (the outcome is then `unknown`) `deadline_hours` after the end."""

    minimum_minutes: int = 5
    grace_minutes: int = 15
    deadline_hours: int = 24
    # Where a no-show is e-mailed (the tenant's staff); None: no one is.
    no_show_mail_to: str | None = None


@dataclass(frozen=True)
class MailSettings:
    """The mailbox the tenant's mail is sent from (Graph); how it presents itself, its Reply-To
    included, is the tenant's `Branding`."""

    sender_upn: str | None = None


class CapabilityReason(StrEnum):
    NOT_CONFIGURED = "not_configured"
    NO_ORGANIZER = "no_organizer"
    DISABLED = "disabled"
    # The tenant's Teams integration is unhealthy (the credential check's reasons).
    CREDENTIAL_INVALID = "credential_invalid"
    CONSENT_MISSING = "consent_missing"
    POLICY_MISSING = "policy_missing"
    ORGANIZER_MISSING = "organizer_missing"


class HealthState(StrEnum):
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


class HealthReason(StrEnum):
    """What an admin must fix before the tenant's meetings can be made again."""

    # The secret or certificate is wrong, expired or unknown to the app registration.
    CREDENTIAL_INVALID = "credential_invalid"
    # A token is issued, but Graph refuses it: admin consent to the app's permissions is missing.
    CONSENT_MISSING = "consent_missing"
    # No Teams Application Access Policy grants the app the organizer.
    POLICY_MISSING = "policy_missing"
    # The organizer's account does not exist (any more) in the directory.
    ORGANIZER_MISSING = "organizer_missing"


@dataclass(frozen=True)
class TeamsHealth:
    """The last credential check's verdict on the tenant's Teams integration.

    `since` is when the state began, `checked_at` when it was last confirmed. `expiry_warned`
    is the smallest advance-warning threshold (days) already logged for the credential's
    expiry, so each threshold warns once; `retry_pending` says bookings that failed while the
    tenant was unhealthy are still to be restarted.
    """

    state: HealthState
    since: datetime
    checked_at: datetime
    reason: HealthReason | None = None
    expiry_warned: int | None = None
    retry_pending: bool = False

    @property
    def healthy(self) -> bool:
        return self.state is HealthState.HEALTHY


@dataclass(frozen=True)
class Capability:
    available: bool
    reason: CapabilityReason | None = None


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    display_name: str
    install_status: InstallStatus = InstallStatus.ACTIVE
    microsoft: MicrosoftProfile | None = None
    organizer_upn: str | None = None
    organizer_object_id: str | None = None
    meeting_options: MeetingOptions = MeetingOptions()
    # What the tenant's tutors may choose for their own meetings (shared/domain/preferences.py).
    tutor_choices: TutorChoices = TutorChoices()
    mail: MailSettings = MailSettings()
    attendance: AttendanceSettings = AttendanceSettings()
    branding: Branding = field(default_factory=Branding)
    participants_can_reschedule: bool = False
    # The BCP 47 tag of the language of mail to participants who set none; None: English.
    locale: str | None = None
    # Minutes before a session its participants are reminded, largest first; (): none.
    reminder_offsets: tuple[int, ...] = DEFAULT_OFFSETS
    updated_at: datetime | None = None
    # None until the credential check first ran.
    teams_health: TeamsHealth | None = None
    etag: str | None = field(default=None, compare=False)

    def meeting_capability(self) -> Capability:
        """Whether meetings can be made now (the PRD's readiness check)."""
        if self.install_status is InstallStatus.DISABLED:
            return Capability(False, CapabilityReason.DISABLED)
        if self.microsoft is None or self.install_status is not InstallStatus.ACTIVE:
            return Capability(False, CapabilityReason.NOT_CONFIGURED)
        if not self.organizer_upn:
            return Capability(False, CapabilityReason.NO_ORGANIZER)
        health = self.teams_health
        if health is not None and not health.healthy and health.reason is not None:
            return Capability(False, CapabilityReason(health.reason.value))
        return Capability(True)
