"""The in-memory meetings service of `memory_world`, with its mail side: the outbox, the worker
on an in-memory queue and ledger, and a real transport (the Graph emulator at the wire through
`responses`, or a folder of `.eml` files)."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

from shared.domain.tenant import Tenant
from shared.graph.client import GraphMeetingsClient
from shared.graph.session import TimeoutSession
from shared.graph.tokens import MsalTokenSource
from shared.mail.delivery import MailConfig, MailOutbox, MailSweep, MailWorker
from shared.mail.transports import (
    FolderMailTransport,
    GraphMailTransport,
    MailTransport,
    Sender,
    SendPacer,
)
from shared.services.bookings import BookingDeps
from shared.storage.mail import InMemoryMailLedger
from shared.storage.queues import InMemoryMeetingWorkQueue
from shared.storage.tenant_directory import TenantDirectory
from shared.work.policy import RetryPolicy
from tests.memory_world import ORGANIZER, SECRET, TENANT, MemoryWorld, memory_world

__all__ = ["TENANT", "MailWorld", "mail_world", "read_eml"]


@dataclass
class MailWorld:
    world: MemoryWorld
    queue: InMemoryMeetingWorkQueue
    ledger: InMemoryMailLedger
    worker: MailWorker
    sweep: MailSweep
    folder: Path | None

    @property
    def deps(self) -> BookingDeps:
        return replace(self.world.deps, mail=MailOutbox(self.queue))

    def drain(self, rounds: int = 100) -> int:
        """Deliver mail messages (jumping the clock to each) until none are left."""
        clock = self.world.clock
        for handled in range(rounds):
            if not self.queue.messages:
                return handled
            self.queue.messages.sort(key=lambda m: m[0])
            delay, work = self.queue.messages.pop(0)
            clock.sleep(max(0.0, delay))
            self.queue.messages = [(max(0.0, d - delay), w) for d, w in self.queue.messages]
            self.worker.handle(work)
        raise AssertionError(f"the mail queue did not drain in {rounds} messages")

    def emls(self) -> list[EmailMessage]:
        assert self.folder is not None
        return [read_eml(p) for p in sorted(self.folder.glob("*.eml"))]


def read_eml(path: Path) -> EmailMessage:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


@contextmanager
def mail_world(
    folder: Path | None = None,
    *,
    policy: RetryPolicy | None = None,
    link_wait: timedelta = timedelta(minutes=10),
    per_minute: int = 30,
) -> Iterator[MailWorld]:
    """Mail through Graph sendMail (the emulator), or into `folder` when one is given."""
    policy = policy or RetryPolicy(rounds=(30.0, 120.0, 600.0))
    with memory_world(policy=policy) as world:
        transport: MailTransport
        if folder is not None:
            transport = FolderMailTransport(folder)
        else:
            session = TimeoutSession(5.0)
            graph = GraphMeetingsClient(
                base_url=world.emulator.graph_url,
                tokens=MsalTokenSource(
                    authority_host=world.emulator.base_url,
                    graph_base_url=world.emulator.graph_url,
                    resolve_secret=lambda _: SECRET,
                    http=session,
                    timeout=5.0,
                ),
                http=session,
                timeout=5.0,
            )
            transport = GraphMailTransport(graph)
        queue = InMemoryMeetingWorkQueue()
        ledger = InMemoryMailLedger()
        directory = TenantDirectory(world.tenants, None)

        def sender_of(tenant: Tenant) -> Sender:
            return Sender(tenant.tenant_id, ORGANIZER, tenant.display_name, tenant.microsoft)

        worker = MailWorker(
            world.bookings,
            directory,
            ledger,
            transport,
            queue,
            sender_of,
            world.clock,
            config=MailConfig(link_wait=link_wait, policy=policy),
            # The mailbox's pace is kept on the world's clock, like every wait here.
            pacer=SendPacer(per_minute, clock=lambda: world.clock.now.timestamp()),
            sleep=world.clock.sleep,
            rnd=lambda: 0.5,
        )
        sweep = MailSweep(world.bookings, directory, worker, world.clock)
        yield MailWorld(world, queue, ledger, worker, sweep, folder)
