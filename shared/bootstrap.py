"""The one place that builds real clients, once per worker process.

Handlers ask for `services()`. Tests build their own `Services` with the same `bootstrap`: around
Azurite and a faked Graph wire (`build_services`), or with in-memory repositories, queues and a
clock of their own in place of the real ones (`tests/memory_world.py`). Heavy SDKs are
imported here, on first use, not when the function app is indexed, so cold starts stay short;
`report_settings`, which indexing calls, needs nothing but the settings.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import time
from collections.abc import Callable
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
    from shared.mail.transports import MailTransport, Sender, SendPacer
    from shared.meetings.converger import Converger
    from shared.meetings.reconciler import Reconciler
    from shared.meetings.steps import MeetingSteps
    from shared.meetings.worker import MeetingSync, MeetingWorker
    from shared.services.bookings import BookingDeps
    from shared.services.check_meetings import CheckMeetings
    from shared.services.credential_health import CredentialHealth
    from shared.services.follow_up import FollowUp
    from shared.services.payments import PaymentEvents
    from shared.services.reminders import ReminderPass
    from shared.storage.audit import AuditRepository
    from shared.storage.bookings import BookingRepository
    from shared.storage.check_meetings import CheckMeetingRepository
    from shared.storage.mail import MailLedger
    from shared.storage.payment_events import PaymentEventRepository
    from shared.storage.poisoned import PoisonedMessages
    from shared.storage.preferences import PreferencesRepository
    from shared.storage.queues import WorkQueue
    from shared.storage.tables import Tables
    from shared.storage.tenant_directory import TenantDirectory
    from shared.storage.tenants import TenantRepository
    from shared.work.kinds import KindWorker
    from shared.work.policy import RetryPolicy


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Services:
    settings: Settings
    tables: Tables
    bookings: BookingRepository
    tenants: TenantRepository
    preferences: PreferencesRepository
    audit: AuditRepository
    graph: GraphMeetingsClient
    directory: TenantDirectory
    queue: WorkQueue
    steps: MeetingSteps
    converger: Converger
    sync: MeetingSync
    worker: MeetingWorker
    reconciler: Reconciler
    payments: PaymentEvents
    tokens: TokenValidator
    mail: MailServices
    # Registered kinds of work beyond meetings and mail (`register_kinds`).
    kinds: KindWorker
    check_meetings: CheckMeetings
    credential_health: CredentialHealth
    # Poisoned work kept for the operator's replay, by kind ("meeting", "mail").
    poisoned: dict[str, PoisonedMessages]
    # The timer's reminder pass (shared/services/reminders.py).
    reminders: ReminderPass
    # The time every service reads (a test's own clock in place of the wall clock's).
    clock: Callable[[], datetime] = _utc_now

    @property
    def booking_deps(self) -> BookingDeps:
        from shared.services.bookings import BookingDeps

        return BookingDeps(
            self.bookings,
            self.directory,
            self.sync,
            self.clock,
            mail=self.mail.outbox,
            kinds=self.kinds,
        )

    @property
    def follow_up(self) -> FollowUp:
        from shared.services.follow_up import FollowUp

        return FollowUp(self.sync, self.mail.outbox, self.kinds)


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
    return bootstrap(settings, http=http, table_prefix=table_prefix, queue_prefix=queue_prefix)


def bootstrap(
    settings: Settings,
    *,
    http: requests.Session | None = None,
    table_prefix: str = "",
    queue_prefix: str = "",
    tables: Tables | None = None,
    bookings: BookingRepository | None = None,
    tenants: TenantRepository | None = None,
    preferences: PreferencesRepository | None = None,
    audit: AuditRepository | None = None,
    payment_events: PaymentEventRepository | None = None,
    check_meetings: CheckMeetingRepository | None = None,
    mail_ledger: MailLedger | None = None,
    queue: WorkQueue | None = None,
    mail_queue: WorkQueue | None = None,
    attendance_queue: WorkQueue | None = None,
    mail_transport: MailTransport | None = None,
    policy: RetryPolicy | None = None,
    clock: Callable[[], datetime] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    rnd: Callable[[], float] = random.random,
    resolve_secret: Callable[[str], str] = resolve_secret_setting,
    claim_seconds: float | None = None,
    entities_read: Callable[[], int] | None = None,
) -> Services:
    """The app's services, wired as production wires them. Each replacement given is used in
    place of what `settings` would build, and everything else is built around it the same way:
    tests give in-memory repositories and queues, the tables, a transport, a clock with the
    workers' `sleep` and `rnd`, the retry `policy`, the converger's `claim_seconds`, a counter
    of `entities_read`. With none, this is the app."""
    from shared.auth.tokens import JwksCache, TokenValidator
    from shared.graph.client import GraphMeetingsClient
    from shared.graph.session import TimeoutSession
    from shared.graph.tokens import ManagedIdentityAssertion, MsalTokenSource
    from shared.mail.transports import SendPacer
    from shared.meetings.converger import Converger
    from shared.meetings.steps import MeetingSteps
    from shared.services.check_meetings import CheckMeetings
    from shared.services.credential_health import CredentialHealth
    from shared.storage.audit import TableAuditRepository
    from shared.storage.bookings import TableBookingRepository
    from shared.storage.check_meetings import TableCheckMeetingRepository
    from shared.storage.mail import MAIL_POISON_QUEUE, MAIL_QUEUE, TableMailLedger
    from shared.storage.payment_events import TablePaymentEventRepository
    from shared.storage.poisoned import WORK_KINDS, PoisonedMessages
    from shared.storage.preferences import TablePreferencesRepository
    from shared.storage.queue_names import ATTENDANCE_POISON_QUEUE, ATTENDANCE_QUEUE
    from shared.storage.queues import StorageWorkQueue
    from shared.storage.tables import Tables, make_table_service
    from shared.storage.tenant_directory import TenantDirectory
    from shared.storage.tenants import TableTenantRepository
    from shared.work.policy import RetryPolicy

    now = clock or _utc_now
    session = http or TimeoutSession(settings.graph_timeout_seconds, proxy=settings.outbound_proxy)
    if tables is None:
        tables = Tables(make_table_service(settings.storage), prefix=table_prefix)
    tokens = MsalTokenSource(
        authority_host=settings.authority_host,
        graph_base_url=settings.graph_base_url,
        resolve_secret=resolve_secret,
        http=session,
        timeout=settings.graph_timeout_seconds,
        identity=ManagedIdentityAssertion(
            settings.microsoft.identity_client_id if settings.microsoft else None,
            timeout=settings.graph_timeout_seconds,
        ),
    )
    tenants = TableTenantRepository(tables) if tenants is None else tenants
    audit = TableAuditRepository(tables) if audit is None else audit
    if preferences is None:
        preferences = TablePreferencesRepository(tables)
    directory = TenantDirectory(tenants, default_tenant(settings))
    graph = GraphMeetingsClient(
        base_url=settings.graph_base_url,
        tokens=tokens,
        http=session,
        timeout=settings.graph_timeout_seconds,
    )
    bookings = TableBookingRepository(tables) if bookings is None else bookings
    if queue is None:
        queue = StorageWorkQueue(settings.storage, prefix=queue_prefix)
    if mail_queue is None:
        mail_queue = StorageWorkQueue(
            settings.storage, prefix=queue_prefix, queue=MAIL_QUEUE, poison=MAIL_POISON_QUEUE
        )
    if attendance_queue is None:
        attendance_queue = StorageWorkQueue(
            settings.storage,
            prefix=queue_prefix,
            queue=ATTENDANCE_QUEUE,
            poison=ATTENDANCE_POISON_QUEUE,
        )
    steps = MeetingSteps(graph, directory, audit, now, preferences=preferences)
    if policy is None:
        policy = RetryPolicy(
            rounds=settings.retry_schedule,
            inline_budget=settings.inline_budget_seconds,
            outbox_delay=settings.inline_budget_seconds,
        )
    # A claim outlives the longest step: sign-in (metadata + token), the organizer lookup and
    # the step's own request, each bounded by the Graph timeout, and two table writes.
    if claim_seconds is None:
        claim_seconds = 6 * settings.graph_timeout_seconds
    converger = Converger(bookings, directory, steps, now, claim_seconds=claim_seconds)
    work = build_work(
        settings,
        bookings=bookings,
        directory=directory,
        graph=graph,
        converger=converger,
        queue=queue,
        attendance_queue=attendance_queue,
        policy=policy,
        clock=now,
        sleep=sleep,
        rnd=rnd,
        entities_read=entities_read or (lambda: tables.reads),
        payment_events=(
            TablePaymentEventRepository(tables) if payment_events is None else payment_events
        ),
        mail_queue=mail_queue,
        mail_ledger=TableMailLedger(tables) if mail_ledger is None else mail_ledger,
        mail_transport=mail_transport or default_mail_transport(settings, graph),
        # The mailbox's pace is kept on the test's clock when there is one.
        pacer=SendPacer(
            settings.mail.send_rate_per_minute,
            clock=time.monotonic if clock is None else lambda: now().timestamp(),
        ),
    )
    return Services(
        settings=settings,
        tables=tables,
        bookings=bookings,
        tenants=tenants,
        preferences=preferences,
        audit=audit,
        graph=graph,
        directory=directory,
        queue=queue,
        steps=steps,
        converger=converger,
        sync=work.sync,
        worker=work.worker,
        reconciler=work.reconciler,
        payments=work.payments,
        tokens=TokenValidator(
            settings.auth, JwksCache(session), default_tenant_id=settings.default_tenant_id
        ),
        mail=work.mail,
        kinds=work.kinds,
        reminders=work.reminders,
        check_meetings=CheckMeetings(
            TableCheckMeetingRepository(tables) if check_meetings is None else check_meetings,
            graph,
            directory,
            policy,
            now,
            # Longer than a dry run's four Graph calls, each bounded by the Graph timeout.
            grace=timedelta(seconds=6 * settings.graph_timeout_seconds),
            rnd=rnd,
        ),
        credential_health=CredentialHealth(
            directory,
            graph,
            audit,
            bookings,
            work.sync,
            now,
            interval=timedelta(minutes=settings.credential_check_minutes),
            resolve_secret=resolve_secret,
        ),
        poisoned={
            kind.name: PoisonedMessages(settings.storage, kind, prefix=queue_prefix)
            for kind in WORK_KINDS
        },
        clock=now,
    )


@dataclass(frozen=True)
class Work:
    """The objects that carry out durable work: meetings (inline, queued, swept), payments, mail."""

    sync: MeetingSync
    worker: MeetingWorker
    reconciler: Reconciler
    payments: PaymentEvents
    mail: MailServices
    kinds: KindWorker
    reminders: ReminderPass


def register_kinds(
    kinds: KindWorker,
    *,
    graph: GraphMeetingsClient,
    directory: TenantDirectory,
    policy: RetryPolicy,
    clock: Callable[[], datetime],
    attendance_queue: WorkQueue,
) -> None:
    """Where a kind of durable work beyond meetings and mail is registered: its name, its
    queue and its handler (`kinds.register(WorkKind(...))`), plus a queue trigger in
    functions/ that hands its messages to `kinds.handle`. The timer sweeps every kind
    registered here (docs/architecture.md, "Adding a kind of work").

    - `attendance` (shared/services/attendance.py): after the lesson, its attendance report
      and the booking's completion; queue `attendance` (functions/attendance.py)."""
    from shared.services.attendance import AttendanceCollector
    from shared.work.kinds import WorkKind

    collector = AttendanceCollector(graph, directory, policy, clock)
    kinds.register(WorkKind(collector.kind, attendance_queue, collector))


def build_work(
    settings: Settings,
    *,
    bookings: BookingRepository,
    directory: TenantDirectory,
    graph: GraphMeetingsClient,
    converger: Converger,
    queue: WorkQueue,
    attendance_queue: WorkQueue,
    policy: RetryPolicy,
    clock: Callable[[], datetime],
    sleep: Callable[[float], None],
    rnd: Callable[[], float],
    entities_read: Callable[[], int],
    payment_events: PaymentEventRepository,
    mail_queue: WorkQueue,
    mail_ledger: MailLedger,
    mail_transport: MailTransport,
    pacer: SendPacer,
) -> Work:
    """Each worker, sweep and outbox of the app, built once here."""
    from shared.mail.delivery import (
        MailConfig,
        MailOutbox,
        MailServices,
        MailSweep,
        MailWorker,
        lease_for,
    )
    from shared.meetings.reconciler import Reconciler
    from shared.meetings.worker import MeetingSync, MeetingWorker
    from shared.payments.source import StripeUndeliveredEvents
    from shared.services.payments import PaymentEvents
    from shared.services.reminders import ReminderPass, lateness_for
    from shared.work.kinds import KindWorker

    worker = MeetingWorker(bookings, converger, queue, policy, clock, sleep=sleep, rnd=rnd)
    sync = MeetingSync(converger, queue, policy, clock)
    mail_worker = MailWorker(
        bookings,
        directory,
        mail_ledger,
        mail_transport,
        mail_queue,
        sender_of(settings),
        clock,
        config=MailConfig(
            link_wait=timedelta(seconds=settings.mail.link_wait_seconds),
            # A send waits at most the Graph timeout, or SMTP's own (20 s).
            lease=lease_for(max(settings.graph_timeout_seconds, 20.0), policy),
            policy=policy,
        ),
        pacer=pacer,
        sleep=sleep,
        rnd=rnd,
    )
    outbox = MailOutbox(mail_queue)
    kinds = KindWorker(
        bookings, directory, policy, clock, sleep=sleep, rnd=rnd, after_done=outbox.after_change
    )
    register_kinds(
        kinds,
        graph=graph,
        directory=directory,
        policy=policy,
        clock=clock,
        attendance_queue=attendance_queue,
    )
    stripe_key = settings.stripe.api_key
    return Work(
        sync=sync,
        worker=worker,
        reconciler=Reconciler(
            bookings,
            directory,
            converger,
            worker,
            queue,
            clock,
            verify_window=timedelta(hours=settings.verify_window_hours),
            entities_read=entities_read,
        ),
        payments=PaymentEvents(
            payment_events,
            bookings,
            directory,
            sync,
            clock,
            webhook_secret=settings.stripe.webhook_secret,
            mail=outbox,
            kinds=kinds,
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
        mail=MailServices(
            outbox=outbox,
            worker=mail_worker,
            sweep=MailSweep(bookings, directory, mail_worker, clock),
            transport=mail_transport,
            ledger=mail_ledger,
        ),
        kinds=kinds,
        reminders=ReminderPass(
            bookings,
            directory,
            outbox,
            clock,
            entities_read=entities_read,
            late=lateness_for(settings.reconcile_schedule),
        ),
    )


def default_mail_transport(settings: Settings, graph: GraphMeetingsClient) -> MailTransport:
    """The transport `MAIL_TRANSPORT` names."""
    from pathlib import Path

    from shared.mail.transports import (
        FolderMailTransport,
        GraphMailTransport,
        SmtpMailTransport,
        SmtpSettings,
    )

    mail = settings.mail
    if mail.transport == "graph":
        return GraphMailTransport(graph)
    if mail.transport == "smtp":
        return SmtpMailTransport(
            SmtpSettings(
                host=mail.smtp_host or "",
                port=mail.smtp_port,
                username=mail.smtp_username,
                password=mail.smtp_password,
            )
        )
    return FolderMailTransport(Path(mail.folder))


def sender_of(settings: Settings) -> Callable[[Tenant], Sender]:
    """Who a tenant's mail is from, for the transport the settings name."""
    mail = settings.mail
    via_graph = mail.transport == "graph"

    def sender(tenant: Tenant) -> Sender:
        from shared.mail.transports import Sender

        # Graph sends from a mailbox of the tenant's own; SMTP and files from MAIL_FROM.
        own = tenant.mail.sender_upn or tenant.organizer_upn
        address = own if via_graph else (mail.from_address or own)
        return Sender(
            tenant.tenant_id,
            address or "meetings@localhost",
            tenant.branding.display_name or tenant.display_name,
            tenant.microsoft,
            tenant.branding,
        )

    return sender


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
