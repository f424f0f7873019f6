"""Application settings: one frozen object, built from the environment once.

Every name here is an app setting. `SETTINGS` is the single list of them; a test proves that
`local.settings.json.example`, `infra/` and the README's configuration table name the same ones.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from shared.errors import AppError


class SettingsError(AppError):
    """The environment does not describe a runnable app; the message names every problem.

    `names` are the settings at fault (never their values): health and every function report
    them as 503 `misconfigured`, so that a bad setting is seen, not a dead app. A caller is
    told the names only (`public_message`); the problems, which may quote values, are logged.
    """

    http_status = 503
    code = "misconfigured"
    headers = MappingProxyType({"Retry-After": "60"})

    def __init__(self, problems: list[str]) -> None:
        super().__init__("Invalid app settings: " + "; ".join(problems) + ".")
        self.problems = tuple(problems)
        self.names = tuple(sorted({name for p in problems for name in _at_fault(p)}))

    @property
    def public_message(self) -> str:
        return "The service is misconfigured: check the app settings " + ", ".join(
            self.names or ("(see the start-up log)",)
        )


def _at_fault(problem: str) -> set[str]:
    """The settings a problem is about: those its subject names (before ':' or ' ('), else
    every setting it names."""

    def named(text: str) -> set[str]:
        return {
            spec.name
            for spec in SETTINGS
            if re.search(rf"(?<!\w){re.escape(spec.name)}(?!\w)", text)
        }

    return named(re.split(r":| \(", problem, maxsplit=1)[0]) or named(problem)


class _Refused(Exception):
    """A setting's text is refused: `problem` says why, `value` stands in for it meanwhile."""

    def __init__(self, problem: str, value: Any = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.value = value


# A setting's parser: (name, text) -> value, or `_Refused`. The text is stripped, with the
# default when the setting is unset ("" when it is an unresolved Key Vault reference).
Parser = Callable[[str, str], Any]


def _text(name: str, raw: str) -> str:
    return raw


def _number(low: float, high: float, message: str | None = None) -> Parser:
    """A number in (low, high]."""
    message = message or "{name} must be a number greater than {low:g} and at most {high:g}"

    def parse(name: str, raw: str) -> float:
        try:
            number = float(raw)
            if not low < number <= high:
                raise ValueError
        except ValueError:
            problem = message.format(name=name, low=low, high=high) + f", got {raw!r}"
            raise _Refused(problem, 0.0) from None
        return number

    return parse


def _https_url(optional: bool = False) -> Parser:
    """An https URL without its trailing slashes ("" when optional and unset)."""

    def parse(name: str, raw: str) -> str:
        url = raw.rstrip("/")
        parts = urlsplit(url)
        if (url or not optional) and (parts.scheme != "https" or not parts.netloc):
            raise _Refused(f"{name} must be an https URL, got {url!r}", url)
        return url

    return parse


def _proxy_url(name: str, raw: str) -> str:
    parts = urlsplit(raw)
    if raw and (parts.scheme not in ("http", "https") or not parts.netloc):
        raise _Refused(f"{name} must be an http:// or https:// URL, got {raw!r}", raw)
    return raw


def _ncrontab(name: str, raw: str) -> str:
    if len(raw.split()) != 6:
        raise _Refused(
            f"{name} must be a six-field NCRONTAB expression "
            f"(second minute hour day month weekday), got {raw!r}",
            raw,
        )
    return raw


def _retry_schedule(name: str, raw: str) -> tuple[float, ...]:
    try:
        schedule = tuple(float(p) for p in raw.split(","))
        if not schedule or not all(1 <= d <= 7 * 24 * 3600 for d in schedule):
            raise ValueError
    except ValueError:
        raise _Refused(
            f"{name} must be comma-separated seconds, each from 1 to 604800 (7 days), got {raw!r}",
            (),
        ) from None
    return schedule


def _one_of(*choices: str) -> Parser:
    """One of `choices`, in any case."""

    def parse(name: str, raw: str) -> str:
        chosen = raw.lower()
        if chosen not in choices:
            problem = f"{name} must be one of {', '.join(choices)}, got {chosen!r}"
            raise _Refused(problem, chosen)
        return chosen

    return parse


def _webhook_secret(name: str, raw: str) -> str:
    if not raw:
        raise _Refused(
            f"{name} is missing: payment webhooks cannot be verified without "
            "the endpoint's signing secret (whsec_...)",
            raw,
        )
    if not raw.startswith("whsec_"):
        raise _Refused(f"{name} must be a webhook signing secret (whsec_...)", raw)
    return raw


def _issuer_list(name: str, raw: str) -> tuple[TrustedIssuer, ...]:
    """A JSON list of {issuer, audience, jwksUrl} (refused: the issuers read before the fault)."""
    issuers: list[TrustedIssuer] = []
    if not raw:
        return ()
    try:
        listed = json.loads(raw)
        if not isinstance(listed, list):
            raise ValueError
        for item in listed:
            issuers.append(
                TrustedIssuer(str(item["issuer"]), str(item["audience"]), str(item["jwksUrl"]))
            )
    except (ValueError, KeyError, TypeError, RecursionError):
        problem = f'{name} must be a JSON list of {{"issuer", "audience", "jwksUrl"}} objects'
        raise _Refused(problem, tuple(issuers)) from None
    return tuple(issuers)


@dataclass(frozen=True)
class SettingSpec:
    name: str
    description: str
    required: bool = False
    default: str | None = None
    parse: Parser = _text

    def read(self, raw: str, problems: list[str]) -> Any:
        """This setting's value from its text; a refusal is added to `problems`."""
        try:
            return self.parse(self.name, raw)
        except _Refused as refused:
            problems.append(refused.problem)
            return refused.value


SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec(
        "AzureWebJobsStorage",
        "Storage account for the host, the queues and the tables: a connection string "
        "(or use AzureWebJobsStorage__accountName with a managed identity).",
    ),
    SettingSpec(
        "AzureWebJobsStorage__accountName",
        "Storage account name when the app reaches storage with its managed identity "
        "(endpoints from STORAGE_ENDPOINT_SUFFIX, unless the service URIs are set).",
    ),
    SettingSpec(
        "AzureWebJobsStorage__tableServiceUri",
        "Table endpoint of the storage account, with a managed identity (any cloud).",
        parse=_https_url(optional=True),
    ),
    SettingSpec(
        "AzureWebJobsStorage__queueServiceUri",
        "Queue endpoint of the storage account, with a managed identity (any cloud).",
        parse=_https_url(optional=True),
    ),
    SettingSpec(
        "AzureWebJobsStorage__clientId",
        "Client id of the user-assigned managed identity that reaches storage.",
    ),
    SettingSpec(
        "STORAGE_ENDPOINT_SUFFIX",
        "DNS suffix of storage endpoints built from AzureWebJobsStorage__accountName "
        "(national clouds: e.g. core.chinacloudapi.cn).",
        default="core.windows.net",
    ),
    SettingSpec("MICROSOFT_TENANT_ID", "Default tenant: Microsoft Entra directory (tenant) id."),
    SettingSpec("MICROSOFT_CLIENT_ID", "Default tenant: application (client) id."),
    SettingSpec(
        "MICROSOFT_CREDENTIAL",
        "Default tenant: how the app signs in to Entra: managed_identity (the app's identity as "
        "a federated credential of the app registration), certificate or secret. Default: "
        "secret when MICROSOFT_CLIENT_SECRET is set, certificate when "
        "MICROSOFT_CLIENT_CERTIFICATE is, else managed_identity.",
    ),
    SettingSpec(
        "MICROSOFT_IDENTITY_CLIENT_ID",
        "Client id of the user-assigned managed identity federated with the app registration "
        "(managed_identity; unset: the platform's default identity).",
    ),
    SettingSpec(
        "MICROSOFT_CLIENT_CERTIFICATE",
        "Default tenant: private key and certificate, PEM (certificate; a Key Vault reference).",
    ),
    SettingSpec(
        "MICROSOFT_CLIENT_SECRET", "Default tenant: client secret (secret; a Key Vault reference)."
    ),
    SettingSpec(
        "MICROSOFT_CLIENT_SECRET_EXPIRES_ON",
        "Default tenant: the client secret's expiry date (ISO, e.g. 2027-03-01, as Entra shows "
        "it), so the credential check warns 30 and 7 days ahead.",
    ),
    SettingSpec(
        "TEAMS_ORGANIZER_EMAIL", "Default tenant: UPN of the mailbox that organizes meetings."
    ),
    SettingSpec("DEFAULT_TENANT_ID", "Id of the default tenant.", default="default"),
    SettingSpec(
        "GRAPH_BASE_URL",
        "Microsoft Graph root.",
        default="https://graph.microsoft.com/v1.0",
        parse=_https_url(),
    ),
    SettingSpec(
        "MICROSOFT_AUTHORITY_HOST",
        "Microsoft Entra login host.",
        default="https://login.microsoftonline.com",
        parse=_https_url(),
    ),
    SettingSpec(
        "GRAPH_TIMEOUT_SECONDS",
        "Timeout of one Graph call, in seconds.",
        default="10",
        parse=_number(0, 120, "{name} must be a number of seconds between 0 and 120"),
    ),
    SettingSpec(
        "OUTBOUND_PROXY",
        "Proxy URL (http:// or https://) for calls to Graph, sign-in, token issuers' keys and "
        "Stripe; unset: direct. The environment's *_PROXY variables are not read.",
        parse=_proxy_url,
    ),
    SettingSpec(
        "RECONCILE_SCHEDULE",
        "NCRONTAB schedule of the reconciliation timer.",
        default="0 */5 * * * *",
        parse=_ncrontab,
    ),
    SettingSpec(
        "VERIFY_WINDOW_HOURS",
        "How far ahead meetings are verified against Teams before they start, in hours.",
        default="24",
        parse=_number(0, 24 * 14),
    ),
    SettingSpec(
        "CREDENTIAL_CHECK_MINUTES",
        "How often the timer checks each tenant's Microsoft credential, consent, access policy "
        "and organizer, in minutes (at most once per timer run).",
        default="15",
        parse=_number(0, 24 * 60),
    ),
    SettingSpec(
        "MEETING_RETRY_SCHEDULE",
        "Seconds between the delayed retries of failed meeting work (comma-separated).",
        default="30,120,600,3600,21600",
        parse=_retry_schedule,
    ),
    SettingSpec(
        "MEETING_INLINE_BUDGET_SECONDS",
        "How long a request may spend on its meeting before the queue takes over.",
        default="5",
        parse=_number(0, 60),
    ),
    SettingSpec(
        "BOOKING_HORIZON_DAYS",
        "How far ahead a booking may start, in days (requests beyond it are refused).",
        default="730",
        parse=_number(0, 365 * 10),
    ),
    SettingSpec(
        "MAIL_TRANSPORT",
        "graph, smtp or folder.",
        default="folder",
        parse=_one_of("graph", "smtp", "folder"),
    ),
    SettingSpec(
        "STRIPE_WEBHOOK_SECRET",
        "Signing secret (whsec_...) of the Stripe webhook endpoint (Key Vault reference).",
        required=True,
        parse=_webhook_secret,
    ),
    SettingSpec(
        "STRIPE_API_KEY",
        "Optional restricted Stripe key (read events) for recovering missed webhooks.",
    ),
    SettingSpec(
        "MAIL_FROM",
        "Sender address for smtp and folder mail (graph sends from the tenant's mailbox).",
    ),
    SettingSpec(
        "MAIL_FOLDER", "Folder the folder transport writes .eml files to.", default=".local/mail"
    ),
    SettingSpec("MAIL_SMTP_HOST", "SMTP submission server (MAIL_TRANSPORT=smtp)."),
    SettingSpec(
        "MAIL_SMTP_PORT",
        "SMTP submission port (STARTTLS).",
        default="587",
        parse=_number(0, 65535),
    ),
    SettingSpec("MAIL_SMTP_USERNAME", "SMTP sign-in user, if the server wants one."),
    SettingSpec("MAIL_SMTP_PASSWORD", "SMTP password (in Azure a Key Vault reference)."),
    SettingSpec(
        "MAIL_LINK_WAIT_SECONDS",
        "How long an e-mail waits for its booking's Teams meeting before it goes without the link.",
        default="600",
        parse=_number(0, 86400),
    ),
    SettingSpec(
        "MAIL_SEND_RATE_PER_MINUTE",
        "Most e-mails one worker sends from one mailbox per minute (Exchange: about 30).",
        default="30",
        parse=_number(0, 10000),
    ),
    SettingSpec("AUTH_ISSUER", "Trusted OIDC issuer of frontend tokens (iss)."),
    SettingSpec("AUTH_AUDIENCE", "Audience (aud) those tokens must carry."),
    SettingSpec("AUTH_JWKS_URL", "https URL of the issuer's signing keys (JWKS)."),
    SettingSpec(
        "AUTH_ISSUERS",
        "Several trusted issuers: JSON list of {issuer, audience, jwksUrl}.",
        parse=_issuer_list,
    ),
    SettingSpec("AUTH_TENANT_CLAIM", "Token claim naming the tenant.", default="tenant"),
    SettingSpec("AUTH_ROLES_CLAIM", "Token claim holding the roles.", default="roles"),
    SettingSpec(
        "AUTH_DEV_JWKS_FILE",
        "Local runs only: JWKS file of the development issuer (refused in Azure).",
    ),
)

UNRESOLVED_REFERENCE = "@Microsoft.KeyVault("
DEV_ISSUER = "urn:meetings-service:local-dev"
DEV_AUDIENCE = "meetings-service"

_SPEC_BY_NAME = {spec.name: spec for spec in SETTINGS}
_MICROSOFT_PROFILE_NAMES = (
    "MICROSOFT_TENANT_ID",
    "MICROSOFT_CLIENT_ID",
    "TEAMS_ORGANIZER_EMAIL",
)
_CREDENTIALS = ("managed_identity", "certificate", "secret")
# The app setting that holds each credential's material (none for a managed identity).
CREDENTIAL_SETTING = {
    "certificate": "MICROSOFT_CLIENT_CERTIFICATE",
    "secret": "MICROSOFT_CLIENT_SECRET",
}


@dataclass(frozen=True)
class StorageSettings:
    """Either a connection string (Azurite, keys), or endpoints reached with a managed
    identity: the service URIs, or an account name and the cloud's endpoint suffix."""

    connection_string: str | None = field(default=None, repr=False)
    account_name: str | None = None
    table_service_uri: str | None = None
    queue_service_uri: str | None = None
    endpoint_suffix: str = "core.windows.net"
    # The user-assigned identity to use (None: the platform's default identity chain).
    identity_client_id: str | None = None

    @property
    def table_endpoint(self) -> str:
        return self.table_service_uri or f"https://{self.account_name}.table.{self.endpoint_suffix}"

    @property
    def queue_endpoint(self) -> str:
        return self.queue_service_uri or f"https://{self.account_name}.queue.{self.endpoint_suffix}"

    @classmethod
    def from_values(
        cls, value: Callable[[str], str], problems: list[str] | None = None
    ) -> StorageSettings:
        """Storage from the AzureWebJobsStorage* settings; `problems` names what is wrong."""
        problems = problems if problems is not None else []
        parsed = {
            spec.name: spec.read(value(spec.name), problems)
            for spec in SETTINGS
            if spec.name.startswith("AzureWebJobsStorage") or spec.name == "STORAGE_ENDPOINT_SUFFIX"
        }
        return cls._from_parsed(parsed.__getitem__, problems)

    @classmethod
    def _from_parsed(cls, value: Callable[[str], Any], problems: list[str]) -> StorageSettings:
        connection_string = value("AzureWebJobsStorage")
        account_name = value("AzureWebJobsStorage__accountName")
        table_uri = value("AzureWebJobsStorage__tableServiceUri")
        queue_uri = value("AzureWebJobsStorage__queueServiceUri")
        if not connection_string and not account_name and not (table_uri and queue_uri):
            problems.append(
                "AzureWebJobsStorage is missing (or, to use the managed identity, set "
                "AzureWebJobsStorage__tableServiceUri and __queueServiceUri, or "
                "AzureWebJobsStorage__accountName)"
            )
        return cls(
            connection_string=connection_string or None,
            account_name=account_name or None,
            table_service_uri=table_uri or None,
            queue_service_uri=queue_uri or None,
            endpoint_suffix=value("STORAGE_ENDPOINT_SUFFIX") or "core.windows.net",
            identity_client_id=value("AzureWebJobsStorage__clientId") or None,
        )


@dataclass(frozen=True)
class MicrosoftProfileSettings:
    """The default tenant's Microsoft profile: seed 000's variables, and how the app signs in
    (`credential`; for a certificate or a secret, the setting that holds it)."""

    directory_tenant_id: str
    client_id: str
    organizer_upn: str
    credential: str = "managed_identity"
    identity_client_id: str | None = None
    secret_expires_on: date | None = None

    @property
    def credential_setting(self) -> str | None:
        return CREDENTIAL_SETTING.get(self.credential)


@dataclass(frozen=True)
class TrustedIssuer:
    """An OIDC issuer whose tokens the API accepts. Keys come from `jwks_url`, or from
    `jwks_file` for the local development issuer."""

    issuer: str
    audience: str
    jwks_url: str | None = None
    jwks_file: str | None = None


@dataclass(frozen=True)
class AuthSettings:
    issuers: tuple[TrustedIssuer, ...]
    tenant_claim: str = "tenant"
    roles_claim: str = "roles"


@dataclass(frozen=True)
class StripeSettings:
    webhook_secret: str = field(repr=False)
    api_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class MailTransportSettings:
    """How e-mail leaves (MAIL_*): the transport and what it needs."""

    transport: str = "folder"
    from_address: str | None = None
    folder: str = ".local/mail"
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    link_wait_seconds: float = 600.0
    send_rate_per_minute: int = 30


@dataclass(frozen=True)
class Settings:
    storage: StorageSettings
    default_tenant_id: str
    microsoft: MicrosoftProfileSettings | None
    graph_base_url: str
    authority_host: str
    graph_timeout_seconds: float
    reconcile_schedule: str
    verify_window_hours: float
    credential_check_minutes: float
    retry_schedule: tuple[float, ...]
    inline_budget_seconds: float
    booking_horizon_days: float
    stripe: StripeSettings
    auth: AuthSettings
    mail: MailTransportSettings = MailTransportSettings()
    outbound_proxy: str | None = None

    @property
    def booking_horizon(self) -> timedelta:
        return timedelta(days=self.booking_horizon_days)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Build settings from `env`; raise `SettingsError` naming every missing or bad one
        (each row's problems in the table's order, then those between settings)."""
        problems: list[str] = []
        values = {
            spec.name: spec.read(_text_of(env, spec, problems), problems) for spec in SETTINGS
        }
        value = values.__getitem__
        storage = StorageSettings._from_parsed(value, problems)
        microsoft = _microsoft_profile(env, value, problems)
        mail = _mail_settings(value, problems)
        issuers = _trusted_issuers(env, value, problems)
        if problems:
            raise SettingsError(problems)
        return cls(
            storage=storage,
            default_tenant_id=value("DEFAULT_TENANT_ID"),
            microsoft=microsoft,
            graph_base_url=value("GRAPH_BASE_URL"),
            authority_host=value("MICROSOFT_AUTHORITY_HOST"),
            graph_timeout_seconds=value("GRAPH_TIMEOUT_SECONDS"),
            reconcile_schedule=value("RECONCILE_SCHEDULE"),
            verify_window_hours=value("VERIFY_WINDOW_HOURS"),
            credential_check_minutes=value("CREDENTIAL_CHECK_MINUTES"),
            retry_schedule=value("MEETING_RETRY_SCHEDULE"),
            inline_budget_seconds=value("MEETING_INLINE_BUDGET_SECONDS"),
            booking_horizon_days=value("BOOKING_HORIZON_DAYS"),
            stripe=StripeSettings(value("STRIPE_WEBHOOK_SECRET"), value("STRIPE_API_KEY") or None),
            auth=AuthSettings(
                issuers=issuers,
                tenant_claim=value("AUTH_TENANT_CLAIM"),
                roles_claim=value("AUTH_ROLES_CLAIM"),
            ),
            mail=mail,
            outbound_proxy=value("OUTBOUND_PROXY") or None,
        )


def _text_of(env: Mapping[str, str], spec: SettingSpec, problems: list[str]) -> str:
    """The setting's text in `env`, stripped, or its default; "" for a Key Vault reference the
    platform could not resolve (it leaves the reference as its own text), which is a problem."""
    raw = env.get(spec.name, "").strip()
    if raw.startswith(UNRESOLVED_REFERENCE):
        problems.append(
            f"{spec.name} is an unresolved Key Vault reference (the secret does not exist, "
            "or the app's identity may not read it)"
        )
        return ""
    return raw or (spec.default or "")


def _microsoft_profile(
    env: Mapping[str, str], value: Callable[[str], str], problems: list[str]
) -> MicrosoftProfileSettings | None:
    """The default tenant's profile, or None when none of its settings is given."""
    material = [name for name in CREDENTIAL_SETTING.values() if value(name)]
    named = env.get("MICROSOFT_CREDENTIAL", "").strip().lower()
    given = [name for name in _MICROSOFT_PROFILE_NAMES if value(name)]
    if not given and not material and not named:
        return None
    if named and named not in _CREDENTIALS:
        problems.append(
            f"MICROSOFT_CREDENTIAL must be one of {', '.join(_CREDENTIALS)}, got {named!r}"
        )
        return None
    credential = named or (
        "secret"
        if value("MICROSOFT_CLIENT_SECRET")
        else "certificate"
        if value("MICROSOFT_CLIENT_CERTIFICATE")
        else "managed_identity"
    )
    needed = [*_MICROSOFT_PROFILE_NAMES]
    if credential in CREDENTIAL_SETTING:
        needed.insert(2, CREDENTIAL_SETTING[credential])
    missing = [name for name in needed if not value(name)]
    if missing:
        problems.append(
            f"{', '.join(missing)} missing: the default tenant's Microsoft profile with "
            f"MICROSOFT_CREDENTIAL={credential} needs {', '.join(needed)} (or none of them)"
        )
        return None
    if credential == "certificate" and "PRIVATE KEY-----" not in value(
        "MICROSOFT_CLIENT_CERTIFICATE"
    ):
        problems.append(
            "MICROSOFT_CLIENT_CERTIFICATE must hold the private key and the certificate in PEM "
            "(a Key Vault certificate's secret with content type application/x-pem-file)"
        )
    expires_on = None
    if value("MICROSOFT_CLIENT_SECRET_EXPIRES_ON"):
        try:
            expires_on = date.fromisoformat(value("MICROSOFT_CLIENT_SECRET_EXPIRES_ON"))
        except ValueError:
            problems.append(
                "MICROSOFT_CLIENT_SECRET_EXPIRES_ON must be an ISO date (e.g. 2027-03-01), got "
                f"{value('MICROSOFT_CLIENT_SECRET_EXPIRES_ON')!r}"
            )
    return MicrosoftProfileSettings(
        directory_tenant_id=value("MICROSOFT_TENANT_ID"),
        client_id=value("MICROSOFT_CLIENT_ID"),
        organizer_upn=value("TEAMS_ORGANIZER_EMAIL"),
        credential=credential,
        identity_client_id=value("MICROSOFT_IDENTITY_CLIENT_ID") or None,
        secret_expires_on=expires_on,
    )


def _mail_settings(value: Callable[[str], Any], problems: list[str]) -> MailTransportSettings:
    transport = value("MAIL_TRANSPORT")
    if transport == "smtp":
        for name in ("MAIL_SMTP_HOST", "MAIL_FROM"):
            if not value(name):
                problems.append(f"{name} is missing: MAIL_TRANSPORT=smtp needs it")
    return MailTransportSettings(
        transport=transport,
        from_address=value("MAIL_FROM") or None,
        folder=value("MAIL_FOLDER"),
        smtp_host=value("MAIL_SMTP_HOST") or None,
        smtp_port=int(value("MAIL_SMTP_PORT")),
        smtp_username=value("MAIL_SMTP_USERNAME") or None,
        smtp_password=value("MAIL_SMTP_PASSWORD") or None,
        link_wait_seconds=value("MAIL_LINK_WAIT_SECONDS"),
        send_rate_per_minute=max(1, int(value("MAIL_SEND_RATE_PER_MINUTE"))),
    )


def _trusted_issuers(
    env: Mapping[str, str], value: Callable[[str], Any], problems: list[str]
) -> tuple[TrustedIssuer, ...]:
    issuers: list[TrustedIssuer] = []
    trio = ("AUTH_ISSUER", "AUTH_AUDIENCE", "AUTH_JWKS_URL")
    given = [name for name in trio if value(name)]
    if given and len(given) < len(trio):
        missing = ", ".join(name for name in trio if not value(name))
        problems.append(f"{missing} missing: {', '.join(trio)} go together")
    elif given:
        issuers.append(
            TrustedIssuer(value("AUTH_ISSUER"), value("AUTH_AUDIENCE"), value("AUTH_JWKS_URL"))
        )
    issuers.extend(value("AUTH_ISSUERS"))
    for issuer in issuers:
        if urlsplit(issuer.jwks_url or "").scheme != "https":
            problems.append(
                f"AUTH_JWKS_URL (or AUTH_ISSUERS) of issuer {issuer.issuer!r} must be https"
            )
    dev_file = value("AUTH_DEV_JWKS_FILE")
    if dev_file:
        if env.get("WEBSITE_INSTANCE_ID"):
            problems.append(
                "AUTH_DEV_JWKS_FILE is set while running in Azure: the development token "
                "issuer is for local runs only; remove the setting"
            )
        else:
            issuers.append(TrustedIssuer(DEV_ISSUER, DEV_AUDIENCE, jwks_file=dev_file))
    if not issuers:
        problems.append(
            "no trusted token issuer: set AUTH_ISSUER, AUTH_AUDIENCE and AUTH_JWKS_URL "
            "(or AUTH_ISSUERS)"
        )
    return tuple(issuers)


@functools.cache
def get_settings() -> Settings:
    """The process's settings, read from the environment on first use."""
    return Settings.from_env(os.environ)
