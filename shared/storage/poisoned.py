"""Poisoned work kept for the operator, of both kinds (meetings and mail).

The poison queues' consumers record each message (an ERROR log, an audit record) and then park
it in a queue of its own kind, `meeting-ops-parked` or `mail-parked`, where it waits, without
expiry, until an operator replays it after a fix (`scripts/poison.py`). A message still in its
poison queue (the app was stopped, say) is shown and replayed all the same.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared.storage.mail import MAIL_POISON_QUEUE, MAIL_QUEUE
from shared.storage.queues import MEETING_OPS_POISON_QUEUE, MEETING_OPS_QUEUE, ready_queue_client
from shared.storage.tables import translated_errors

if TYPE_CHECKING:
    from azure.storage.queue import QueueClient

    from shared.settings import StorageSettings

# How long a message the replay looks at stays hidden from other readers, at most.
_LOOK_SECONDS = 60


@dataclass(frozen=True)
class WorkKind:
    """One kind of queued work: its queue, its poison queue, and where poisoned work waits."""

    name: str
    queue: str
    poison: str
    parked: str


MEETING_WORK = WorkKind(
    "meeting", MEETING_OPS_QUEUE, MEETING_OPS_POISON_QUEUE, "meeting-ops-parked"
)
MAIL_WORK = WorkKind("mail", MAIL_QUEUE, MAIL_POISON_QUEUE, "mail-parked")
WORK_KINDS = (MEETING_WORK, MAIL_WORK)


@dataclass(frozen=True)
class HeldMessage:
    """A poisoned message as it sits in a queue (`queue`: the poison or the parked one)."""

    kind: WorkKind
    queue: str
    message_id: str
    text: str
    inserted_on: datetime | None
    dequeue_count: int


class PoisonedMessages:
    """The poisoned messages of one kind of work, in its poison and its parked queue."""

    def __init__(self, storage: StorageSettings, kind: WorkKind, prefix: str = "") -> None:
        self._storage = storage
        self.kind = kind
        self._prefix = prefix
        self._clients: dict[str, QueueClient] = {}

    @property
    def queues(self) -> tuple[str, str]:
        return (f"{self._prefix}{self.kind.parked}", f"{self._prefix}{self.kind.poison}")

    def park(self, text: str) -> None:
        """Keep a recorded poison message, without expiry, for a replay."""
        queue = self.queues[0]
        with translated_errors(f"queue {queue}"):
            self._client(queue).send_message(text, time_to_live=-1)

    def peek(self, limit: int = 32) -> list[HeldMessage]:
        """The first messages of both queues, without hiding them from anyone (Storage
        peeks at most 32 per queue)."""
        found: list[HeldMessage] = []
        for queue in self.queues:
            with translated_errors(f"queue {queue}"):
                messages = self._client(queue).peek_messages(max_messages=min(limit, 32))
            found += [self._held(queue, m) for m in messages]
        return found

    @contextlib.contextmanager
    def taken(self, message_id: str | None) -> Iterator[list[Taken]]:
        """The message `message_id` (all messages when None), hidden from other readers while
        the caller replays them; the caller deletes each it replayed. Those it leaves are
        visible again at once when the block ends."""
        taken: list[Taken] = []
        others: list[Taken] = []  # released only at the end, or the receive would see them again
        try:
            for queue in self.queues:
                client = self._client(queue)
                with translated_errors(f"queue {queue}"):
                    for message in client.receive_messages(
                        messages_per_page=32, visibility_timeout=_LOOK_SECONDS
                    ):
                        item = Taken(self._held(queue, message), client, message)
                        wanted = message_id is None or message.id == message_id
                        (taken if wanted else others).append(item)
                if message_id is not None and taken:
                    break
            yield taken
        finally:
            for item in taken + others:
                if not item.deleted:
                    item.release()

    def _held(self, queue: str, message: Any) -> HeldMessage:
        content = message.content
        text = content.decode("utf-8", "replace") if isinstance(content, bytes) else str(content)
        return HeldMessage(
            self.kind, queue, message.id, text, message.inserted_on, message.dequeue_count or 0
        )

    def _client(self, queue: str) -> QueueClient:
        return ready_queue_client(self._storage, queue, self._clients)


class Taken:
    """A received message: delete it once its work is back on its queue, or release it."""

    def __init__(self, held: HeldMessage, client: QueueClient, message: Any) -> None:
        self.held = held
        self._client = client
        self._message = message
        self.deleted = False

    def delete(self) -> None:
        with translated_errors(f"queue {self.held.queue}"):
            self._client.delete_message(self._message)
        self.deleted = True

    def release(self) -> None:
        # Best effort: if this fails, the message is visible again after _LOOK_SECONDS anyway.
        # By id and receipt: given the message itself, the client would re-encode its content.
        with contextlib.suppress(Exception):
            self._client.update_message(
                self._message.id, pop_receipt=self._message.pop_receipt, visibility_timeout=0
            )
