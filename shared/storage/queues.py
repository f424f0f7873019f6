"""The work queues (`meeting-ops`, `mail`, …): booking ids whose work is due, and their poison
queues.

A message names a tenant and a booking, never an operation: the worker reads the booking and
computes the step from it, so a message that arrives late or twice can do no harm. Messages are
base64 text, as the queue trigger expects (host.json `messageEncoding`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from shared import telemetry
from shared.storage.errors import StorageError
from shared.storage.queue_names import MEETING_OPS_POISON_QUEUE as MEETING_OPS_POISON_QUEUE
from shared.storage.queue_names import MEETING_OPS_QUEUE as MEETING_OPS_QUEUE
from shared.storage.tables import (
    STORAGE_TRANSPORT,
    storage_credential,
    translated_errors,
    validate_key,
)

_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")

if TYPE_CHECKING:
    from azure.storage.queue import QueueClient, QueueServiceClient

    from shared.settings import StorageSettings

MAX_DELAY_SECONDS = 7 * 24 * 3600  # the longest visibility timeout Storage accepts


class BadMessageError(StorageError, ValueError):
    """A queue message that is not a work message (it cannot ever succeed)."""

    code = "bad_message"


@dataclass(frozen=True)
class WorkMessage:
    """Look at this booking's work of the queue's kind (its meeting, its mail, …): the message
    names a booking, never an operation. (How often it was retried is on the booking, so that
    a late message of older work cannot speak for newer work.)"""

    tenant_id: str
    booking_id: str
    # The W3C traceparent of the span that sent it: the worker continues that trace.
    traceparent: str | None = field(default=None, compare=False)

    def to_text(self) -> str:
        body: dict[str, str] = {"tenantId": self.tenant_id, "bookingId": self.booking_id}
        if self.traceparent:
            body["traceparent"] = self.traceparent
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def from_text(cls, text: str | bytes) -> WorkMessage:
        data = _json_object(text)
        parent = data.get("traceparent")
        traced = parent if isinstance(parent, str) and _TRACEPARENT.fullmatch(parent) else None
        return cls(_key(data, "tenantId"), _key(data, "bookingId"), traced)


@dataclass(frozen=True)
class PoisonedWork:
    """Work that stopped for good, with why: `permanent` (Graph refused for a reason retrying
    will not change) or `retries_exhausted`, after `round` delayed rounds. Messages the host
    itself moved to the poison queue after repeated crashes carry only the work (reason None)."""

    tenant_id: str
    booking_id: str
    round: int = 0
    reason: str | None = None
    step: str | None = None
    graph_status: int | None = None
    error_code: str | None = None
    requested_at: str | None = None  # ISO 8601: when the work that stopped was asked for
    # Mail only: the notice that finished as failed, so a replay after the fix can owe it again.
    notice: int | None = None
    notice_kind: str | None = None
    sequence: int | None = None

    def to_text(self) -> str:
        body = {
            "tenantId": self.tenant_id,
            "bookingId": self.booking_id,
            "round": self.round,
            "reason": self.reason,
            "step": self.step,
            "graphStatus": self.graph_status,
            "errorCode": self.error_code,
            "requestedAt": self.requested_at,
            "notice": self.notice,
            "noticeKind": self.notice_kind,
            "sequence": self.sequence,
        }
        return json.dumps({k: v for k, v in body.items() if v is not None}, separators=(",", ":"))

    @classmethod
    def from_text(cls, text: str | bytes) -> PoisonedWork:
        work = WorkMessage.from_text(text)
        data = _json_object(text)

        def opt_text(name: str) -> str | None:
            value = data.get(name)
            return value[:100] if isinstance(value, str) else None

        def opt_int(name: str, low: int, high: int) -> int | None:
            value = data.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
                return value
            return None

        return cls(
            work.tenant_id,
            work.booking_id,
            opt_int("round", 0, 1000) or 0,
            reason=opt_text("reason"),
            step=opt_text("step"),
            graph_status=opt_int("graphStatus", 100, 599),
            error_code=opt_text("errorCode"),
            requested_at=opt_text("requestedAt"),
            notice=opt_int("notice", 1, 2**31),
            notice_kind=opt_text("noticeKind"),
            sequence=opt_int("sequence", 0, 2**31),
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


MAX_MESSAGE_CHARS = 4096  # what we send is far smaller; anything else is not ours


def _json_object(text: str | bytes) -> dict[str, Any]:
    if len(text) > MAX_MESSAGE_CHARS:
        raise BadMessageError("the message is larger than a meeting work item can be")
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise BadMessageError("the message is not JSON") from exc
    if not isinstance(data, dict):
        raise BadMessageError("the message is not a JSON object")
    return data


def _key(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str):
        raise BadMessageError(f"{name} is missing")
    try:
        return validate_key(value, name)
    except ValueError as exc:
        raise BadMessageError(str(exc)) from exc


class WorkQueue(Protocol):
    def send(self, work: WorkMessage, delay_seconds: float = 0) -> None:
        """Enqueue `work`, invisible for `delay_seconds`; `StorageError` if it could not."""
        ...

    def send_poison(self, poisoned: PoisonedWork) -> None: ...


class StorageWorkQueue:
    """`WorkQueue` on Azure Storage queues (base64 text, like the trigger)."""

    def __init__(
        self,
        storage: StorageSettings,
        prefix: str = "",
        *,
        queue: str = MEETING_OPS_QUEUE,
        poison: str = MEETING_OPS_POISON_QUEUE,
    ) -> None:
        self._storage = storage
        self._prefix = prefix
        self._queue = queue
        self._poison = poison
        self._clients: dict[str, QueueClient] = {}

    @property
    def name(self) -> str:
        return f"{self._prefix}{self._queue}"

    def send(self, work: WorkMessage, delay_seconds: float = 0) -> None:
        delay = min(MAX_DELAY_SECONDS, max(0, round(delay_seconds)))
        parent = work.traceparent or telemetry.current_traceparent()
        self._send(self.name, replace(work, traceparent=parent).to_text(), delay)

    def send_poison(self, poisoned: PoisonedWork) -> None:
        self._send(f"{self._prefix}{self._poison}", poisoned.to_text(), 0)

    def _send(self, queue: str, text: str, delay: int) -> None:
        with translated_errors(f"queue {queue}"):
            self._client(queue).send_message(text, visibility_timeout=delay or None)

    def _client(self, queue: str) -> QueueClient:
        return ready_queue_client(self._storage, queue, self._clients)


def ready_queue_client(
    storage: StorageSettings, queue: str, clients: dict[str, QueueClient]
) -> QueueClient:
    """The client of `queue` from `clients`, made (and the queue created) on first use."""
    client = clients.get(queue)
    if client is None:
        from azure.core.exceptions import ResourceExistsError

        client = make_queue_client(storage, queue)
        with translated_errors(f"queue {queue}"), contextlib.suppress(ResourceExistsError):
            client.create_queue()
        clients[queue] = client
    return client


def make_queue_client(storage: StorageSettings, queue: str) -> QueueClient:
    """A client of `queue` (base64 text, as the trigger expects) on the process's one queue
    service: the clients of every queue share its pipeline and connections."""
    from azure.storage.queue import BinaryBase64DecodePolicy, TextBase64EncodePolicy

    return queue_service(storage).get_queue_client(
        queue,
        message_encode_policy=TextBase64EncodePolicy(),
        message_decode_policy=BinaryBase64DecodePolicy(),
    )


@functools.cache
def queue_service(storage: StorageSettings) -> QueueServiceClient:
    """The process's QueueServiceClient, from a connection string or a managed identity."""
    from azure.storage.queue import QueueServiceClient

    from shared.storage.wire import count_request

    options: dict[str, Any] = {**STORAGE_TRANSPORT, "raw_request_hook": count_request}
    if storage.connection_string:
        return QueueServiceClient.from_connection_string(storage.connection_string, **options)
    return QueueServiceClient(
        storage.queue_endpoint, credential=storage_credential(storage), **options
    )


class InMemoryWorkQueue:
    """`WorkQueue` in memory, for unit and property tests: messages with the time
    (in the caller's clock units) they become visible."""

    def __init__(self) -> None:
        self.messages: list[tuple[float, WorkMessage]] = []
        self.poisoned: list[PoisonedWork] = []

    def send(self, work: WorkMessage, delay_seconds: float = 0) -> None:
        self.messages.append((delay_seconds, work))

    def send_poison(self, poisoned: PoisonedWork) -> None:
        self.poisoned.append(poisoned)

    def take_all(self) -> list[WorkMessage]:
        taken = [work for _, work in self.messages]
        self.messages.clear()
        return taken
