"""A whole meetings service in memory: in-memory repositories and queue, a controllable clock,
and Graph faked at the wire (the Graph emulator answering through `responses`, msal included).

Property and worker tests use it to run thousands of steps in seconds; the same services run on
Azurite and over real HTTP in the integration and end-to-end suites.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import responses

from localdev.graph_emulator import GraphEmulator
from shared.domain.booking import Booking
from shared.domain.tenant import MicrosoftProfile, Tenant
from shared.graph.client import GraphMeetingsClient
from shared.graph.session import TimeoutSession
from shared.graph.tokens import MsalTokenSource
from shared.meetings.converger import Converger
from shared.meetings.reconciler import Reconciler
from shared.meetings.steps import MeetingSteps
from shared.meetings.worker import MeetingSync, MeetingWorker
from shared.services.bookings import BookingDeps
from shared.services.credential_health import CredentialHealth
from shared.storage.memory import (
    InMemoryAuditRepository,
    InMemoryBookingRepository,
    InMemoryTenantRepository,
)
from shared.storage.queues import InMemoryMeetingWorkQueue, MeetingWork
from shared.storage.tenant_directory import TenantDirectory
from shared.work.policy import RetryPolicy

TENANT = "tenant-a"
DIRECTORY = "7a1b2c3d-0000-4000-8000-0000000000aa"
CLIENT_ID = "client-memory"
SECRET = "memory-secret"
ORGANIZER = "organizer@a.example"


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
    bookings: InMemoryBookingRepository
    tenants: InMemoryTenantRepository
    audit: InMemoryAuditRepository
    queue: InMemoryMeetingWorkQueue
    converger: Converger
    sync: MeetingSync
    worker: MeetingWorker
    reconciler: Reconciler
    credential_health: CredentialHealth
    sleeps: list[float] = field(default_factory=list)
    # Called half-way through each of the worker's in-process sleeps (e.g. a timer run).
    during_sleep: list[Callable[[], object]] = field(default_factory=list)

    @property
    def deps(self) -> BookingDeps:
        return BookingDeps(
            self.bookings, TenantDirectory(self.tenants, None), self.sync, self.clock
        )

    def booking(self, booking_id: str) -> Booking:
        return self.bookings.get(TENANT, booking_id)

    def drain(self, rounds: int = 50) -> int:
        """Deliver queued messages (jumping the clock to when each becomes visible) until the
        queue is empty; return how many were handled."""
        for handled in range(rounds):
            if not self.queue.messages:
                return handled
            self.queue.messages.sort(key=lambda m: m[0])
            delay, work = self.queue.messages.pop(0)
            self.clock.sleep(max(0.0, delay))
            # Later messages were sent relative to an earlier "now": keep their order.
            self.queue.messages = [(max(0.0, d - delay), w) for d, w in self.queue.messages]
            self.worker.handle(work)
        raise AssertionError(f"the queue did not drain in {rounds} messages")

    def redeliver(self, work: MeetingWork) -> None:
        self.worker.handle(work)


@contextmanager
def memory_world(
    *,
    policy: RetryPolicy | None = None,
    claim_seconds: float = 40.0,
    emulator_class: type[GraphEmulator] = GraphEmulator,
) -> Iterator[MemoryWorld]:
    emulator = emulator_class(tls=None)
    emulator.register_app(DIRECTORY, CLIENT_ID, SECRET)
    emulator.add_user(DIRECTORY, ORGANIZER, "Organizer")
    clock = Clock()
    policy = policy or RetryPolicy(rounds=(30.0, 120.0, 600.0))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        emulator.install_responses(rsps)
        session = TimeoutSession(5.0)
        graph = GraphMeetingsClient(
            base_url=emulator.graph_url,
            tokens=MsalTokenSource(
                authority_host=emulator.base_url,
                graph_base_url=emulator.graph_url,
                resolve_secret=lambda _: SECRET,
                http=session,
                timeout=5.0,
            ),
            http=session,
            timeout=5.0,
        )
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
        directory = TenantDirectory(tenants, None)
        queue = InMemoryMeetingWorkQueue()
        steps = MeetingSteps(graph, directory, audit, clock)
        converger = Converger(bookings, directory, steps, clock, claim_seconds=claim_seconds)
        world_sleeps: list[float] = []
        during_sleep: list[Callable[[], object]] = []

        def sleep(seconds: float) -> None:
            world_sleeps.append(seconds)
            clock.sleep(seconds / 2)
            for hook in during_sleep:
                hook()
            clock.sleep(seconds / 2)

        worker = MeetingWorker(
            bookings, converger, queue, policy, clock, sleep=sleep, rnd=lambda: 0.5
        )
        sync = MeetingSync(converger, queue, policy, clock)
        yield MemoryWorld(
            emulator=emulator,
            clock=clock,
            bookings=bookings,
            tenants=tenants,
            audit=audit,
            queue=queue,
            converger=converger,
            sync=sync,
            worker=worker,
            reconciler=Reconciler(
                bookings,
                directory,
                converger,
                worker,
                queue,
                clock,
                verify_window=timedelta(hours=24),
                entities_read=lambda: bookings.reads,
            ),
            credential_health=CredentialHealth(
                directory,
                graph,
                audit,
                bookings,
                sync,
                clock,
                interval=timedelta(minutes=15),
                resolve_secret=lambda _: SECRET,
            ),
            sleeps=world_sleeps,
            during_sleep=during_sleep,
        )
