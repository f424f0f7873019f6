"""A whole meetings service in memory: the app's own `bootstrap` with in-memory repositories and
queues, a controllable clock, and Graph faked at the wire (the Graph emulator answering through
`responses`, msal included). Mail is wired as in production, on an in-memory ledger and queue,
through Graph sendMail (the emulator) or into a folder of `.eml` files.

Property and worker tests use it to run thousands of steps in seconds; the same services run on
Azurite and over real HTTP in the integration and end-to-end suites.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import responses

from localdev.graph_emulator import GraphEmulator
from shared.bootstrap import Services, bootstrap
from shared.domain.booking import Booking
from shared.domain.tenant import MicrosoftProfile, Tenant
from shared.mail.delivery import MailServices
from shared.meetings.converger import Converger
from shared.meetings.reconciler import Reconciler
from shared.meetings.worker import MeetingSync, MeetingWorker
from shared.services.bookings import BookingDeps
from shared.services.credential_health import CredentialHealth
from shared.settings import Settings, StorageSettings
from shared.storage.check_meetings import InMemoryCheckMeetingRepository
from shared.storage.mail import InMemoryMailLedger
from shared.storage.memory import (
    InMemoryAuditRepository,
    InMemoryBookingRepository,
    InMemoryTenantRepository,
)
from shared.storage.queues import InMemoryWorkQueue, WorkMessage
from shared.storage.tables import Tables, make_table_service
from shared.work.policy import RetryPolicy

TENANT = "tenant-a"
DIRECTORY = "7a1b2c3d-0000-4000-8000-0000000000aa"
CLIENT_ID = "client-memory"
SECRET = "memory-secret"
ORGANIZER = "organizer@a.example"
# Storage nothing here reaches: every repository and queue the services use is in memory.
UNREACHABLE_STORAGE = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=placeholder;"
    "TableEndpoint=http://127.0.0.1:9/devstoreaccount1;"
    "QueueEndpoint=http://127.0.0.1:9/devstoreaccount1;"
)


@dataclass
class Clock:
    """Time that moves only when told to (sleeps advance it)."""

    now: datetime = field(default_factory=lambda: datetime(2026, 12, 1, 9, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class MemoryWorld:
    emulator: GraphEmulator
    clock: Clock
    services: Services
    # The fakes the services were built with.
    bookings: InMemoryBookingRepository
    tenants: InMemoryTenantRepository
    audit: InMemoryAuditRepository
    queue: InMemoryWorkQueue
    mail_queue: InMemoryWorkQueue
    mail_ledger: InMemoryMailLedger
    attendance_queue: InMemoryWorkQueue
    sleeps: list[float] = field(default_factory=list)
    # Called half-way through each of the workers' in-process sleeps (e.g. a timer run).
    during_sleep: list[Callable[[], object]] = field(default_factory=list)

    @property
    def converger(self) -> Converger:
        return self.services.converger

    @property
    def sync(self) -> MeetingSync:
        return self.services.sync

    @property
    def worker(self) -> MeetingWorker:
        return self.services.worker

    @property
    def reconciler(self) -> Reconciler:
        return self.services.reconciler

    @property
    def credential_health(self) -> CredentialHealth:
        return self.services.credential_health

    @property
    def mail(self) -> MailServices:
        return self.services.mail

    @property
    def deps(self) -> BookingDeps:
        return self.services.booking_deps

    def booking(self, booking_id: str) -> Booking:
        return self.bookings.get(TENANT, booking_id)

    def drain(self, rounds: int = 50) -> int:
        """Deliver queued messages (jumping the clock to when each becomes visible) until the
        queue is empty; return how many were handled."""
        return drain(self.queue, self.clock, self.worker.handle, rounds, "the queue")

    def redeliver(self, work: WorkMessage) -> None:
        self.worker.handle(work)


def drain(
    queue: InMemoryWorkQueue,
    clock: Clock,
    handle: Callable[[WorkMessage], object],
    rounds: int,
    name: str,
) -> int:
    for handled in range(rounds):
        if not queue.messages:
            return handled
        queue.messages.sort(key=lambda m: m[0])
        delay, work = queue.messages.pop(0)
        clock.sleep(max(0.0, delay))
        # Later messages were sent relative to an earlier "now": keep their order.
        queue.messages = [(max(0.0, d - delay), w) for d, w in queue.messages]
        handle(work)
    raise AssertionError(f"{name} did not drain in {rounds} messages")


# Built once: a property test builds a world per example.
@functools.cache
def memory_settings(
    authority: str, graph_url: str, mail_folder: Path | None, link_wait: timedelta, per_minute: int
) -> Settings:
    return Settings.from_env(
        {
            "AzureWebJobsStorage": UNREACHABLE_STORAGE,
            "GRAPH_BASE_URL": graph_url,
            "MICROSOFT_AUTHORITY_HOST": authority,
            "GRAPH_TIMEOUT_SECONDS": "5",
            "VERIFY_WINDOW_HOURS": "24",
            "CREDENTIAL_CHECK_MINUTES": "15",
            "STRIPE_WEBHOOK_SECRET": "whsec_memory",
            "AUTH_ISSUER": "https://issuer.memory.test/",
            "AUTH_AUDIENCE": "api://memory",
            "AUTH_JWKS_URL": "https://issuer.memory.test/jwks",
            "MAIL_TRANSPORT": "graph" if mail_folder is None else "folder",
            "MAIL_FOLDER": str(mail_folder or ""),
            "MAIL_LINK_WAIT_SECONDS": str(link_wait.total_seconds()),
            "MAIL_SEND_RATE_PER_MINUTE": str(per_minute),
        }
    )


@functools.cache
def unreachable_tables() -> Tables:
    """Tables no repository here uses (they are all in memory), for what `Services` holds."""
    return Tables(make_table_service(StorageSettings(connection_string=UNREACHABLE_STORAGE)))


@contextmanager
def memory_world(
    *,
    policy: RetryPolicy | None = None,
    claim_seconds: float = 40.0,
    emulator_class: type[GraphEmulator] = GraphEmulator,
    mail_folder: Path | None = None,
    link_wait: timedelta = timedelta(minutes=10),
    per_minute: int = 30,
) -> Iterator[MemoryWorld]:
    """Mail goes through Graph sendMail (the emulator), or into `mail_folder` when one is given."""
    emulator = emulator_class(tls=None)
    emulator.register_app(DIRECTORY, CLIENT_ID, SECRET)
    emulator.add_user(DIRECTORY, ORGANIZER, "Organizer")
    clock = Clock()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        emulator.install_responses(rsps)
        audit = InMemoryAuditRepository()
        bookings = InMemoryBookingRepository(audit)
        tenants = InMemoryTenantRepository()
        tenants.add(
            Tenant(
                tenant_id=TENANT,
                display_name="Tenant A",
                microsoft=MicrosoftProfile(DIRECTORY, CLIENT_ID, "TENANT_A_SECRET"),
                organizer_upn=ORGANIZER,
            )
        )
        queue = InMemoryWorkQueue()
        mail_queue = InMemoryWorkQueue()
        attendance_queue = InMemoryWorkQueue()
        mail_ledger = InMemoryMailLedger()
        sleeps: list[float] = []
        during_sleep: list[Callable[[], object]] = []

        def sleep(seconds: float) -> None:
            sleeps.append(seconds)
            clock.sleep(seconds / 2)
            for hook in during_sleep:
                hook()
            clock.sleep(seconds / 2)

        services = bootstrap(
            memory_settings(
                emulator.base_url, emulator.graph_url, mail_folder, link_wait, per_minute
            ),
            tables=unreachable_tables(),
            bookings=bookings,
            tenants=tenants,
            audit=audit,
            check_meetings=InMemoryCheckMeetingRepository(),
            mail_ledger=mail_ledger,
            queue=queue,
            mail_queue=mail_queue,
            attendance_queue=attendance_queue,
            policy=policy or RetryPolicy(rounds=(30.0, 120.0, 600.0)),
            clock=clock,
            sleep=sleep,
            rnd=lambda: 0.5,
            resolve_secret=lambda _: SECRET,
            claim_seconds=claim_seconds,
            entities_read=lambda: bookings.reads,
        )
        yield MemoryWorld(
            emulator=emulator,
            clock=clock,
            services=services,
            bookings=bookings,
            tenants=tenants,
            audit=audit,
            queue=queue,
            mail_queue=mail_queue,
            mail_ledger=mail_ledger,
            attendance_queue=attendance_queue,
            sleeps=sleeps,
            during_sleep=during_sleep,
        )
