"""The one place that builds real clients, once per worker process.

Handlers ask for `services()`; tests build their own `Services` with `build_services` around
Azurite and a faked Graph wire. Heavy SDKs are imported here, on first use, not when the
function app is indexed, so cold starts stay short; `report_settings`, which indexing calls,
needs nothing but the settings.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from shared.observability import log_event
from shared.settings import Settings, SettingsError, get_settings

if TYPE_CHECKING:
    import requests

    from shared.auth.tokens import TokenValidator
    from shared.domain.tenant import Tenant
    from shared.graph.client import GraphMeetingsClient
    from shared.mail.delivery import MailServices
    from shared.mail.transports import MailTransport, Sender
    from shared.meetings.converger import Converger
    from shared.meetings.reconciler import Reconciler
    from shared.meetings.steps import MeetingSteps
    from shared.meetings.worker import MeetingSync, MeetingWorker
    from shared.services.bookings import BookingDeps
    from shared.services.check_meetings import CheckMeetings
    from shared.services.credential_health import CredentialHealth
    from shared.services.payments import PaymentEvents
    from shared.storage.audit import AuditRepository
    from shared.storage.bookings import BookingRepository
    from shared.storage.poisoned import PoisonedMessages
    from shared.storage.queues import MeetingWorkQueue
    from shared.storage.tables import Tables
    from shared.storage.tenant_directory import TenantDirectory
    from shared.storage.tenants import TenantRepository
    from shared.work.policy import RetryPolicy


@dataclass(frozen=True)
class Services:
    settings: Settings
    tables: Tables
    bookings: BookingRepository
    tenants: TenantRepository
    audit: AuditRepository
    graph: GraphMeetingsClient
    directory: TenantDirectory
    queue: MeetingWorkQueue
    steps: MeetingSteps
    converger: Converger
    sync: MeetingSync
    worker: MeetingWorker
    reconciler: Reconciler
    payments: PaymentEvents
    tokens: TokenValidator
    mail: MailServices
    check_meetings: CheckMeetings
    credential_health: CredentialHealth
    # Poisoned work kept for the operator's replay, by kind ("meeting", "mail").
    poisoned: dict[str, PoisonedMessages]

    def clock(self) -> datetime:
        return datetime.now(UTC)

    @property
    def booking_deps(self) -> BookingDeps:
        from shared.services.bookings import BookingDeps

        return BookingDeps(
            self.bookings, self.directory, self.sync, self.clock, mail=self.mail.outbox
        )


def resolve_secret_setting(name: str) -> str:
    """Read a client secret (or certificate) from the app setting a tenant's profile names.

    In Azure the setting is a Key Vault reference, which the platform resolves; the tables
    only ever hold the setting's name.
    """
    from shared.graph.errors import GraphAuthError

    value = os.environ.get(name, "")
    if not value:
        raise GraphAuthError(
            f"the app setting {name!r} that should hold the client credential is not set",
            graph_code="secret_missing",
        )
    return value


def default_tenant(settings: Settings) -> Tenant | None:
    """The tenant the seed's four variables describe, if they are set."""
    from shared.domain.tenant import CredentialKind, InstallStatus, MicrosoftProfile, Tenant

    if settings.microsoft is None:
        return None
    return Tenant(
        tenant_id=settings.default_tenant_id,
        display_name=settings.default_tenant_id,
        install_status=InstallStatus.ACTIVE,
        microsoft=MicrosoftProfile(
            directory_tenant_id=settings.microsoft.directory_tenant_id,
            client_id=settings.microsoft.client_id,
            secret_setting=settings.microsoft.credential_setting,
            credential=CredentialKind(settings.microsoft.credential),
            secret_expires_on=settings.microsoft.secret_expires_on,
        ),
        organizer_upn=settings.microsoft.organizer_upn,
    )


def build_services(
    settings: Settings,
    *,
    http: requests.Session | None = None,
    table_prefix: str = "",
    queue_prefix: str = "",
) -> Services:
    """Every client and service of the app. Tests give their own table and queue prefixes, so
    that they share one Azurite without sharing data."""
    from shared.auth.tokens import JwksCache, TokenValidator
    from shared.graph.client import GraphMeetingsClient
    from shared.graph.session import TimeoutSession
    from shared.graph.tokens import ManagedIdentityAssertion, MsalTokenSource
    from shared.meetings.converger import Converger
    from shared.meetings.reconciler import Reconciler
    from shared.meetings.steps import MeetingSteps
    from shared.meetings.worker import MeetingSync, MeetingWorker
    from shared.payments.source import StripeUndeliveredEvents
    from shared.services.check_meetings import CheckMeetings
    from shared.services.credential_health import CredentialHealth
    from shared.services.payments import PaymentEvents
    from shared.storage.audit import TableAuditRepository
    from shared.storage.bookings import TableBookingRepository
    from shared.storage.check_meetings import TableCheckMeetingRepository
    from shared.storage.payment_events import TablePaymentEventRepository
    from shared.storage.poisoned import WORK_KINDS, PoisonedMessages
    from shared.storage.queues import StorageMeetingWorkQueue
    from shared.storage.tables import Tables, make_table_service
    from shared.storage.tenant_directory import TenantDirectory
    from shared.storage.tenants import TableTenantRepository
    from shared.work.policy import RetryPolicy

    session = http or TimeoutSession(settings.graph_timeout_seconds, proxy=settings.outbound_proxy)
    tables = Tables(make_table_service(settings.storage), prefix=table_prefix)
    tokens = MsalTokenSource(
        authority_host=settings.authority_host,
        graph_base_url=settings.graph_base_url,
        resolve_secret=resolve_secret_setting,
        http=session,
        timeout=settings.graph_timeout_seconds,
        identity=ManagedIdentityAssertion(
            settings.microsoft.identity_client_id if settings.microsoft else None,
            timeout=settings.graph_timeout_seconds,
        ),
    )
    tenants = TableTenantRepository(tables)
    audit = TableAuditRepository(tables)
    directory = TenantDirectory(tenants, default_tenant(settings))
    graph = GraphMeetingsClient(
        base_url=settings.graph_base_url,
        tokens=tokens,
        http=session,
        timeout=settings.graph_timeout_seconds,
    )
    bookings = TableBookingRepository(tables)
    queue = StorageMeetingWorkQueue(settings.storage, prefix=queue_prefix)
    steps = MeetingSteps(graph, directory, audit, _utc_now)
    policy = RetryPolicy(
        rounds=settings.retry_schedule,
        inline_budget=settings.inline_budget_seconds,
        outbox_delay=settings.inline_budget_seconds,
    )
    # A claim outlives the longest step: sign-in (metadata + token), the organizer lookup and
    # the step's own request, each bounded by the Graph timeout, and two table writes.
    converger = Converger(
        bookings, directory, steps, _utc_now, claim_seconds=6 * settings.graph_timeout_seconds
    )
    worker = MeetingWorker(bookings, converger, queue, policy, _utc_now)
    sync = MeetingSync(converger, queue, policy, _utc_now)
    stripe_key = settings.stripe.api_key
    mail = build_mail(settings, tables, bookings, directory, graph, policy, queue_prefix)
    return Services(
        settings=settings,
        tables=tables,
        bookings=bookings,
        tenants=tenants,
        audit=audit,
        graph=graph,
        directory=directory,
        queue=queue,
        steps=steps,
        converger=converger,
        sync=sync,
        worker=worker,
        reconciler=Reconciler(
            bookings,
            directory,
            converger,
            worker,
            queue,
            _utc_now,
            verify_window=timedelta(hours=settings.verify_window_hours),
            entities_read=lambda: tables.reads,
        ),
        payments=PaymentEvents(
            TablePaymentEventRepository(tables),
            bookings,
            directory,
            sync,
            _utc_now,
            webhook_secret=settings.stripe.webhook_secret,
            mail=mail.outbox,
            undelivered=(
                StripeUndeliveredEvents(
                    stripe_key,
                    timeout=settings.graph_timeout_seconds,
                    proxy=settings.outbound_proxy,
                )
                if stripe_key
                else None
            ),
        ),
        tokens=TokenValidator(
            settings.auth, JwksCache(session), default_tenant_id=settings.default_tenant_id
        ),
        mail=mail,
        check_meetings=CheckMeetings(
            TableCheckMeetingRepository(tables),
            graph,
            directory,
            policy,
            _utc_now,
            # Longer than a dry run's four Graph calls, each bounded by the Graph timeout.
            grace=timedelta(seconds=6 * settings.graph_timeout_seconds),
        ),
        credential_health=CredentialHealth(
            directory,
            graph,
            audit,
            bookings,
            sync,
            _utc_now,
            interval=timedelta(minutes=settings.credential_check_minutes),
            resolve_secret=resolve_secret_setting,
        ),
        poisoned={
            kind.name: PoisonedMessages(settings.storage, kind, prefix=queue_prefix)
            for kind in WORK_KINDS
        },
    )


def build_mail(
    settings: Settings,
    tables: Tables,
    bookings: BookingRepository,
    directory: TenantDirectory,
    graph: GraphMeetingsClient,
    policy: RetryPolicy,
    queue_prefix: str = "",
    *,
    transport: MailTransport | None = None,
) -> MailServices:
    """The mail outbox, worker and timer sweep, with the transport `MAIL_TRANSPORT` names."""
    from pathlib import Path

    from shared.mail.delivery import (
        MailConfig,
        MailOutbox,
        MailServices,
        MailSweep,
        MailWorker,
        lease_for,
    )
    from shared.mail.transports import (
        FolderMailTransport,
        GraphMailTransport,
        SendPacer,
        SmtpMailTransport,
        SmtpSettings,
    )
    from shared.storage.mail import MAIL_POISON_QUEUE, MAIL_QUEUE, TableMailLedger
    from shared.storage.queues import StorageMeetingWorkQueue

    mail = settings.mail
    if transport is None:
        if mail.transport == "graph":
            transport = GraphMailTransport(graph)
        elif mail.transport == "smtp":
            transport = SmtpMailTransport(
                SmtpSettings(
                    host=mail.smtp_host or "",
                    port=mail.smtp_port,
                    username=mail.smtp_username,
                    password=mail.smtp_password,
                )
            )
        else:
            transport = FolderMailTransport(Path(mail.folder))
    queue = StorageMeetingWorkQueue(
        settings.storage, prefix=queue_prefix, queue=MAIL_QUEUE, poison=MAIL_POISON_QUEUE
    )
    ledger = TableMailLedger(tables)
    via_graph = mail.transport == "graph"

    def sender_of(tenant: Tenant) -> Sender:
        from shared.mail.transports import Sender

        # Graph sends from a mailbox of the tenant's own; SMTP and files from MAIL_FROM.
        own = tenant.mail.sender_upn or tenant.organizer_upn
        address = own if via_graph else (mail.from_address or own)
        return Sender(
            tenant.tenant_id, address or "meetings@localhost", tenant.display_name, tenant.microsoft
        )

    worker = MailWorker(
        bookings,
        directory,
        ledger,
        transport,
        queue,
        sender_of,
        _utc_now,
        config=MailConfig(
            link_wait=timedelta(seconds=mail.link_wait_seconds),
            # A send waits at most the Graph timeout, or SMTP's own (20 s).
            lease=lease_for(max(settings.graph_timeout_seconds, 20.0), policy),
            policy=policy,
        ),
        pacer=SendPacer(mail.send_rate_per_minute),
    )
    return MailServices(
        outbox=MailOutbox(queue),
        worker=worker,
        sweep=MailSweep(bookings, directory, worker, _utc_now),
        transport=transport,
        ledger=ledger,
    )


def _utc_now() -> datetime:
    return datetime.now(UTC)


@functools.cache
def services() -> Services:
    """The process's services, built on first use. `SettingsError` while the settings are not
    whole (answered as 503 `misconfigured`)."""
    return build_services(get_settings())


def report_settings() -> bool:
    """At start-up: log one ERROR naming every setting at fault (names and what is wrong,
    never a secret value). True when the settings are whole."""
    try:
        get_settings()
    except SettingsError as exc:
        log_event(
            logging.getLogger("meetings.settings"),
            logging.ERROR,
            "settings_invalid",
            settings=list(exc.names),
            problems=list(exc.problems),
        )
        return False
    return True
