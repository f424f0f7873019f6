"""The in-memory meetings service of `memory_world`, seen from its mail side: the outbox, the
worker on an in-memory queue and ledger, and a real transport (the Graph emulator at the wire
through `responses`, or a folder of `.eml` files), all wired by the app's own `bootstrap`."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

from shared.mail.delivery import MailSweep, MailWorker
from shared.services.bookings import BookingDeps
from shared.storage.mail import InMemoryMailLedger
from shared.storage.queues import InMemoryWorkQueue
from shared.work.policy import RetryPolicy
from tests.memory_world import TENANT, MemoryWorld, drain, memory_world

__all__ = ["TENANT", "MailWorld", "mail_world", "read_eml"]


@dataclass
class MailWorld:
    world: MemoryWorld
    folder: Path | None

    @property
    def queue(self) -> InMemoryWorkQueue:
        return self.world.mail_queue

    @property
    def ledger(self) -> InMemoryMailLedger:
        return self.world.mail_ledger

    @property
    def worker(self) -> MailWorker:
        return self.world.mail.worker

    @property
    def sweep(self) -> MailSweep:
        return self.world.mail.sweep

    @property
    def deps(self) -> BookingDeps:
        return self.world.deps

    def drain(self, rounds: int = 100) -> int:
        """Deliver mail messages (jumping the clock to each) until none are left."""
        return drain(self.queue, self.world.clock, self.worker.handle, rounds, "the mail queue")

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
    with memory_world(
        policy=policy, mail_folder=folder, link_wait=link_wait, per_minute=per_minute
    ) as world:
        yield MailWorld(world, folder)
