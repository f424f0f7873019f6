"""A local Azure Functions host for this app, for machines without Core Tools.

It serves `function_app.app` from the azure-functions library's own function index
(`app.get_functions()`), behaving as the real host does for the triggers this app uses:

- HTTP: routes under `extensions.http.routePrefix` (default `api`), route parameters with the
  host's template syntax (`{id}`, `{id:int}`, `{id:guid}`, `{id:alpha}`, `{id?}`, `{*rest}`),
  method filters, a 404 when nothing matches (as `{"error", "code": "not_found"}` JSON, like
  the app's own errors) and a 500 when the function raises. Function keys
  are not enforced, as with Core Tools locally.
- Queue triggers on Azurite: messages are base64-decoded (`extensions.queues.messageEncoding`),
  each invocation gets a `QueueMessage` with its dequeue count, a failure makes the message
  visible again after `visibilityTimeout`, and after `maxDequeueCount` failures it moves to
  `<queue>-poison`. Empty queues are polled with an exponential back-off up to
  `maxPollingInterval`. Messages are processed concurrently: each received batch (up to
  `batchSize`, default 16) runs in parallel on a thread pool of the queue function's own, and
  the next batch is fetched once the messages in flight drop to `newBatchThreshold` (default
  `batchSize / 2`), so at most `batchSize + newBatchThreshold` run at once, as on the real host.
  `batchSize: 1` processes one message at a time. A received message is held invisible for
  10 minutes while it is processed; the real host renews that hold for longer runs, this one
  does not.
- Timer triggers: six-field NCRONTAB schedules in UTC, `runOnStartup`, and `%SETTING%` names.
- `%SETTING%` in queue names and schedules resolves from app settings; `local.settings.json`
  `Values` are loaded into the environment first (variables already set win).
- `POST /admin/functions/{name}` runs a queue or timer function at once, as the real host's
  admin API does (body `{"input": "..."}` is the queue message text). Its 202 comes after a
  timer's run has finished (the real host answers at once).
- Stopping stops polling, then waits (up to a grace period) for the messages in flight to finish.
- Concurrency as the Python worker runs sync functions: HTTP invocations run on a pool of
  `PYTHON_THREADPOOL_THREAD_COUNT` threads (default `min(32, cores + 4)`, the worker's own), and
  `FUNCTIONS_WORKER_PROCESS_COUNT` (1 to 10, default 1) worker processes serve HTTP, sharing the
  port (`SO_REUSEPORT`: the kernel spreads connections over them). Queue and timer triggers run in
  the first process only, so a queue's `batchSize` bounds the whole host as on one instance. Each
  process has its own clients, token cache and single-flight locks, as each worker process does.

Not supported (refused at start with a message): other trigger types, input/output bindings
other than the HTTP `$return`, and TimeSpan timer schedules.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import importlib
import inspect
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from localdev.ncrontab import NCrontab

log = logging.getLogger("localdev.host")

_SETTING_REF = re.compile(r"%([^%]+)%")
_CONSTRAINTS = {
    "int": r"-?\d+",
    "long": r"-?\d+",
    "guid": r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}",
    "alpha": r"[A-Za-z]+",
    "bool": r"(?i:true|false)",
}
# A queue receive returns at most 32 messages; the host refuses a larger batchSize.
_MAX_BATCH_SIZE = 32
# How long a received message stays invisible while its function runs. The real host takes
# 10 minutes too and renews the hold while the function is still running; this host does not
# renew, so a run longer than this would see its message delivered again.
_PROCESSING_HOLD_SECONDS = 600
# How long stop() waits for the messages in flight to finish.
_DRAIN_SECONDS = 30.0


class _HttpServer(ThreadingHTTPServer):
    # socketserver's default listen backlog is 5: a burst of clients beyond it meets
    # connection resets, which a real host (and Graph) would not give.
    request_queue_size = 128


class _SharedPortHttpServer(_HttpServer):
    # Several worker processes listen on one port; the kernel spreads connections over them.
    allow_reuse_port = True


class HostError(RuntimeError):
    """The app cannot be served as the real host would serve it."""


# The worker's own limits (azure-functions-python-worker): at most 10 worker processes and
# 32 threads; a sync function runs on a ThreadPoolExecutor whose default size this is.
_MAX_WORKER_PROCESSES = 10
_MAX_THREADS = 32


def _int_setting(name: str, default: int, low: int, high: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HostError(f"app setting {name} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise HostError(f"app setting {name} must be {low} to {high}, got {value}")
    return value


def worker_process_count() -> int:
    """`FUNCTIONS_WORKER_PROCESS_COUNT`: how many worker processes serve HTTP (default 1)."""
    return _int_setting("FUNCTIONS_WORKER_PROCESS_COUNT", 1, 1, _MAX_WORKER_PROCESSES)


def thread_count() -> int:
    """`PYTHON_THREADPOOL_THREAD_COUNT`: threads running sync HTTP functions in one process
    (default `min(32, cores + 4)`, as the worker's ThreadPoolExecutor)."""
    default = min(_MAX_THREADS, (os.cpu_count() or 1) + 4)
    return _int_setting("PYTHON_THREADPOOL_THREAD_COUNT", default, 1, _MAX_THREADS)


# -- host.json --------------------------------------------------------------------------------


def _timespan_seconds(value: str | None, default: float) -> float:
    if not value:
        return default
    days = 0
    text = value
    if "." in text.split(":")[0]:
        day_text, _, text = text.partition(".")
        days = int(day_text)
    hours, minutes, seconds = text.split(":")
    return days * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)


@dataclass(frozen=True)
class HostConfig:
    route_prefix: str = "api"
    max_dequeue_count: int = 5
    visibility_timeout: float = 0.0
    max_polling_interval: float = 60.0
    batch_size: int = 16
    new_batch_threshold: int | None = None
    message_encoding: str = "base64"

    @property
    def batch_threshold(self) -> int:
        """Messages in flight at or below which the next batch is fetched (`batchSize / 2`)."""
        if self.new_batch_threshold is not None:
            return self.new_batch_threshold
        return self.batch_size // 2

    @property
    def max_in_flight(self) -> int:
        """The most messages one queue function processes at once."""
        return self.batch_size + self.batch_threshold

    @classmethod
    def load(cls, path: Path) -> HostConfig:
        data = json.loads(path.read_text()) if path.exists() else {}
        extensions = data.get("extensions", {})
        http = extensions.get("http", {})
        queues = extensions.get("queues", {})
        encoding = str(queues.get("messageEncoding", "base64")).lower()
        if encoding not in ("base64", "none"):
            raise HostError(f"host.json: messageEncoding must be base64 or none, got {encoding}")
        batch_size = int(queues.get("batchSize", 16))
        if not 1 <= batch_size <= _MAX_BATCH_SIZE:
            raise HostError(
                f"host.json: batchSize must be 1 to {_MAX_BATCH_SIZE}, got {batch_size}"
            )
        threshold = queues.get("newBatchThreshold")
        if threshold is not None and int(threshold) < 0:
            raise HostError(f"host.json: newBatchThreshold must not be negative, got {threshold}")
        return cls(
            route_prefix=str(http.get("routePrefix", "api")).strip("/"),
            max_dequeue_count=int(queues.get("maxDequeueCount", 5)),
            visibility_timeout=_timespan_seconds(queues.get("visibilityTimeout"), 0.0),
            max_polling_interval=_timespan_seconds(queues.get("maxPollingInterval"), 60.0),
            batch_size=batch_size,
            new_batch_threshold=None if threshold is None else int(threshold),
            message_encoding=encoding,
        )


def load_local_settings(path: Path) -> list[str]:
    """Put `Values` of local.settings.json into the environment; return the names applied."""
    if not path.exists():
        return []
    values = json.loads(path.read_text()).get("Values", {})
    applied = []
    for name, value in values.items():
        if name not in os.environ:
            os.environ[name] = str(value)
            applied.append(name)
    return applied


def resolve_setting_refs(text: str) -> str:
    """Replace `%NAME%` with the app setting NAME, as the host does for binding properties."""

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise HostError(f"app setting {name!r} (named as %{name}%) is not set")
        return os.environ[name]

    return _SETTING_REF.sub(lookup, text)


# -- invocation -------------------------------------------------------------------------------


class _Context:
    """What the Python worker passes as `context`."""

    def __init__(self, function_name: str, directory: str) -> None:
        self.invocation_id = str(uuid.uuid4())
        self.function_name = function_name
        self.function_directory = directory
        self.trace_context = None
        self.retry_context = None
        self.thread_local_storage = threading.local()


@dataclass
class LocalFunction:
    name: str
    trigger: dict[str, Any]
    user_function: Callable[..., Any]
    directory: str

    def invoke(self, trigger_value: Any) -> Any:
        kwargs = {self.trigger["name"]: trigger_value}
        if "context" in inspect.signature(self.user_function).parameters:
            kwargs["context"] = _Context(self.name, self.directory)
        result = self.user_function(**kwargs)
        if inspect.isawaitable(result):
            result = asyncio.run(_await(result))
        return result


async def _await(awaitable: Any) -> Any:
    return await awaitable


# -- HTTP -------------------------------------------------------------------------------------


@dataclass
class HttpRoute:
    function: LocalFunction
    methods: frozenset[str]
    template: str
    pattern: re.Pattern[str]
    literal_segments: int

    @classmethod
    def build(cls, function: LocalFunction, prefix: str) -> HttpRoute:
        template = function.trigger.get("route") or function.name
        methods = frozenset(
            str(getattr(m, "value", m)).upper() for m in function.trigger.get("methods") or []
        )
        full = "/".join(p for p in (prefix, template.strip("/")) if p)
        regex, literals = _route_regex(full)
        return cls(function, methods, full, re.compile(regex, re.IGNORECASE), literals)

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if self.methods and method not in self.methods:
            return None
        found = self.pattern.fullmatch(path.strip("/"))
        if found is None:
            return None
        # Route values arrive percent-decoded, as the host's routing gives them.
        return {k: unquote(v) for k, v in found.groupdict().items() if v is not None}


def _route_regex(template: str) -> tuple[str, int]:
    parts: list[str] = []
    literals = 0
    for segment in template.split("/"):
        param = re.fullmatch(r"\{(\*)?([A-Za-z_][A-Za-z0-9_]*)(?::([a-z]+))?(\?)?\}", segment)
        if param is None:
            if "{" in segment:
                raise HostError(f"route segment {segment!r} is not supported by the local host")
            parts.append("/" + re.escape(segment))
            literals += 1
            continue
        catch_all, name, constraint, optional = param.groups()
        if constraint and constraint not in _CONSTRAINTS:
            raise HostError(f"route constraint {constraint!r} is not supported by the local host")
        body = ".*" if catch_all else _CONSTRAINTS.get(constraint or "", r"[^/]+")
        piece = f"/(?P<{name}>{body})"
        parts.append(f"(?:{piece})?" if optional or catch_all else piece)
    return "".join(parts)[1:] if parts and parts[0].startswith("/") else "".join(parts), literals


# -- queues -----------------------------------------------------------------------------------


@dataclass
class QueueListener:
    """Polls one queue for one function and runs its messages on a pool of the function's own.

    One thread receives batches; a pool of `batchSize + newBatchThreshold` threads runs them.
    The next batch is received once the messages in flight drop to `newBatchThreshold`.
    """

    function: LocalFunction
    queue_name: str
    connection_string: str
    config: HostConfig
    stop_event: threading.Event
    invocations: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    thread: threading.Thread | None = field(default=None, repr=False)
    _pool: ThreadPoolExecutor | None = field(default=None, repr=False)
    _changed: threading.Condition = field(default_factory=threading.Condition, repr=False)
    _worker: threading.local = field(default_factory=threading.local, repr=False)
    _clients_made: list[tuple[Any, Any]] = field(default_factory=list, repr=False)

    def start(self) -> None:
        # The queues exist before start() returns, as they do once the host reports it is
        # listening: a message sent right after start-up must not meet "queue does not exist".
        clients = self._clients(create=True)
        self._pool = ThreadPoolExecutor(
            max_workers=self.config.max_in_flight,
            thread_name_prefix=f"queue:{self.queue_name}:worker",
            initializer=self._init_worker,
        )
        self.thread = threading.Thread(
            target=self._run, args=clients, name=f"queue:{self.queue_name}", daemon=True
        )
        self.thread.start()

    def stop(self, timeout: float = _DRAIN_SECONDS) -> bool:
        """Stop polling, let the messages in flight finish (up to `timeout` seconds), and shut
        the pool down. Returns False when some were still running when the time was up (their
        messages reappear once the processing hold ends)."""
        self.stop_event.set()
        with self._changed:
            self._changed.notify_all()
        if self.thread is not None:
            self.thread.join()
        if self._pool is None:
            return True
        # Nothing waits in the pool's queue (it has a thread for every message in flight), so
        # cancelling only matters in a race; a cancelled message is released at once.
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._changed:
            drained = self._changed.wait_for(lambda: self.in_flight == 0, timeout)
        if drained:
            self._pool.shutdown(wait=True)
            for queue, poison in self._clients_made:
                queue.close()
                poison.close()
            self._clients_made.clear()
        else:
            log.warning(
                "%s message(s) of %s still running at stop", self.in_flight, self.function.name
            )
        self._pool = None
        return drained

    def _clients(self, *, create: bool = False) -> tuple[Any, Any]:
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.queue import QueueClient

        queue = QueueClient.from_connection_string(self.connection_string, self.queue_name)
        poison = QueueClient.from_connection_string(
            self.connection_string, f"{self.queue_name}-poison"
        )
        if create:
            for client in (queue, poison):
                with contextlib.suppress(ResourceExistsError):
                    client.create_queue()
        with self._changed:
            self._clients_made.append((queue, poison))
        return queue, poison

    def _init_worker(self) -> None:
        # Each pool thread has its own clients (and HTTP session) rather than sharing one.
        self._worker.clients = self._clients()

    def _run(self, queue: Any, poison: Any) -> None:
        delay = 0.0
        threshold = self.config.batch_threshold
        while not self.stop_event.is_set():
            with self._changed:
                self._changed.wait_for(
                    lambda: self.in_flight <= threshold or self.stop_event.is_set()
                )
            if self.stop_event.is_set():
                return
            try:
                messages = list(
                    queue.receive_messages(
                        max_messages=self.config.batch_size,
                        messages_per_page=self.config.batch_size,
                        visibility_timeout=_PROCESSING_HOLD_SECONDS,
                    )
                )
            except Exception:
                log.exception("receiving from queue %s failed", self.queue_name)
                messages = []
            if not messages:
                # The host backs off from 100 ms to maxPollingInterval while a queue is empty.
                delay = min(max(delay * 2, 0.1), self.config.max_polling_interval)
                self.stop_event.wait(delay)
                continue
            delay = 0.0
            with self._changed:
                self.in_flight += len(messages)
                self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            for message in messages:
                self._submit(queue, message)

    def _submit(self, queue: Any, message: Any) -> None:
        assert self._pool is not None
        try:
            future = self._pool.submit(self._process_here, message)
        except RuntimeError:  # the pool was shut down: stop() is under way
            self._finished(queue, message, None)
            return
        future.add_done_callback(lambda done: self._finished(queue, message, done))

    def _process_here(self, message: Any) -> None:
        queue, poison = self._worker.clients
        self.process(queue, poison, message)

    def _finished(self, queue: Any, message: Any, future: Future[None] | None) -> None:
        try:
            if future is None or future.cancelled():
                # Never started (the host is stopping): make it visible again for the next run.
                with contextlib.suppress(Exception):
                    queue.update_message(message, visibility_timeout=0)
            elif (error := future.exception()) is not None:
                log.error(
                    "Completing message %s of '%s' failed: %r",
                    message.id,
                    self.function.name,
                    error,
                )
        finally:
            with self._changed:
                self.in_flight -= 1
                self._changed.notify_all()

    def process(self, queue: Any, poison: Any, message: Any) -> None:
        from azure.functions.queue import QueueMessage

        try:
            body = self._decode(message.content)
            with self._changed:
                self.invocations += 1
            self.function.invoke(
                QueueMessage(
                    id=message.id,
                    body=body,
                    dequeue_count=message.dequeue_count,
                    expiration_time=message.expires_on,
                    insertion_time=message.inserted_on,
                    time_next_visible=message.next_visible_on,
                    pop_receipt=message.pop_receipt,
                )
            )
        except Exception:
            log.error(
                "Executed '%s' (Failed, Id=%s, DequeueCount=%s)\n%s",
                self.function.name,
                message.id,
                message.dequeue_count,
                traceback.format_exc(),
            )
            self._after_failure(queue, poison, message)
            return
        log.info("Executed '%s' (Succeeded, Id=%s)", self.function.name, message.id)
        queue.delete_message(message)

    def _decode(self, content: str | bytes) -> bytes:
        raw = content.encode() if isinstance(content, str) else content
        if self.config.message_encoding == "none":
            return raw
        try:
            return base64.b64decode(raw, validate=True)
        except binascii.Error as exc:
            raise HostError(
                "queue message is not valid base64 (host.json messageEncoding is base64)"
            ) from exc

    def _after_failure(self, queue: Any, poison: Any, message: Any) -> None:
        if message.dequeue_count >= self.config.max_dequeue_count:
            poison.send_message(message.content)
            queue.delete_message(message)
            log.warning(
                "Message %s moved to %s-poison after %s attempts",
                message.id,
                self.queue_name,
                message.dequeue_count,
            )
        else:
            queue.update_message(message, visibility_timeout=int(self.config.visibility_timeout))


# -- timers -----------------------------------------------------------------------------------


@dataclass
class TimerSchedule:
    function: LocalFunction
    schedule: NCrontab
    run_on_startup: bool
    stop_event: threading.Event
    last: datetime | None = None
    invocations: int = 0

    def start(self) -> None:
        threading.Thread(target=self._run, name=f"timer:{self.function.name}", daemon=True).start()

    def fire(self, scheduled: datetime | None = None) -> None:
        from azure.functions.timer import TimerRequest

        now = datetime.now(UTC)
        nxt = self.schedule.next_after(now)
        past_due = scheduled is not None and now - scheduled > timedelta(seconds=30)
        request = TimerRequest(
            past_due=past_due,
            schedule_status={
                "Last": (self.last or now).isoformat(),
                "Next": nxt.isoformat(),
                "LastUpdated": now.isoformat(),
            },
            schedule={"AdjustForDST": True},
        )
        self.last = now
        self.invocations += 1
        try:
            self.function.invoke(request)
            log.info("Executed '%s' (Succeeded)", self.function.name)
        except Exception:
            log.error("Executed '%s' (Failed)\n%s", self.function.name, traceback.format_exc())

    def _run(self) -> None:
        if self.run_on_startup:
            self.fire()
        while not self.stop_event.is_set():
            due = self.schedule.next_after(datetime.now(UTC))
            wait = (due - datetime.now(UTC)).total_seconds()
            if self.stop_event.wait(max(0.0, wait)):
                return
            self.fire(due)


# -- the host ---------------------------------------------------------------------------------


class LocalHost:
    """Loads the function app and serves its triggers."""

    def __init__(
        self,
        *,
        script_root: Path,
        app_module: str = "function_app",
        host: str = "127.0.0.1",
        port: int = 7071,
        shared_port: bool = False,
        http_only: bool = False,
    ) -> None:
        self.script_root = script_root.resolve()
        self.http_only = http_only
        self.config = HostConfig.load(self.script_root / "host.json")
        self.stop_event = threading.Event()
        if str(self.script_root) not in sys.path:
            sys.path.insert(0, str(self.script_root))
        module = importlib.import_module(app_module)
        app = getattr(module, "app", None)
        if app is None or not hasattr(app, "get_functions"):
            raise HostError(f"{app_module}.py defines no FunctionApp named `app`")
        self.routes: list[HttpRoute] = []
        self.queues: list[QueueListener] = []
        self.timers: list[TimerSchedule] = []
        self.functions: dict[str, LocalFunction] = {}
        for fn in _function_index(app):
            self._add(fn)
        self.routes.sort(key=lambda r: (-r.literal_segments, r.template))
        server_class = _SharedPortHttpServer if shared_port else _HttpServer
        self._server = server_class((host, port), _http_handler(self))
        self._server.daemon_threads = True
        self.threads = thread_count()
        self._http_pool = ThreadPoolExecutor(
            max_workers=self.threads, thread_name_prefix="http:worker"
        )
        self._serving = False
        self._stopped = False

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def _add(self, fn: Any) -> None:
        name = fn.get_function_name()
        if name in self.functions:
            raise HostError(f"two functions are named {name!r}")
        trigger = fn.get_trigger().get_dict_repr()
        kind = trigger["type"]
        others = [b.get_dict_repr() for b in fn.get_bindings() if b.get_dict_repr() is not None]
        extra = [
            b
            for b in others
            if b["name"] != trigger["name"] and not (b["type"] == "http" and b["name"] == "$return")
        ]
        if extra:
            kinds = ", ".join(f"{b['type']} {b['name']!r}" for b in extra)
            raise HostError(f"function {name!r}: bindings not supported by the local host: {kinds}")
        local = LocalFunction(name, trigger, fn.get_user_function(), str(self.script_root))
        self.functions[name] = local
        if kind == "httpTrigger":
            self.routes.append(HttpRoute.build(local, self.config.route_prefix))
        elif kind == "queueTrigger":
            setting = trigger.get("connection") or "AzureWebJobsStorage"
            connection = os.environ.get(setting)
            if not connection:
                raise HostError(f"function {name!r}: app setting {setting!r} is not set")
            self.queues.append(
                QueueListener(
                    local,
                    resolve_setting_refs(trigger["queueName"]),
                    connection,
                    self.config,
                    self.stop_event,
                )
            )
        elif kind == "timerTrigger":
            expression = resolve_setting_refs(trigger["schedule"])
            if ":" in expression and len(expression.split()) == 1:
                raise HostError(f"function {name!r}: TimeSpan schedules are not supported")
            self.timers.append(
                TimerSchedule(
                    local,
                    NCrontab.parse(expression),
                    bool(trigger.get("runOnStartup")),
                    self.stop_event,
                )
            )
        else:
            raise HostError(f"function {name!r}: trigger {kind!r} is not supported locally")

    def describe(self) -> str:
        lines = ["Functions:"]
        for route in self.routes:
            methods = ",".join(sorted(route.methods)) or "ALL"
            lines.append(f"  {route.function.name}: [{methods}] {self.base_url}/{route.template}")
        for queue in self.queues:
            lines.append(f"  {queue.function.name}: queueTrigger {queue.queue_name}")
        for timer in self.timers:
            lines.append(f"  {timer.function.name}: timerTrigger {timer.schedule.expression}")
        return "\n".join(lines)

    def start(self) -> LocalHost:
        self._serving = True
        threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="http",
            daemon=True,
        ).start()
        if self.http_only:
            return self
        for listener in self.queues:
            listener.start()
        for timer in self.timers:
            timer.start()
        return self

    def stop(self, drain_seconds: float = _DRAIN_SECONDS) -> None:
        """Stop serving and polling; let queue messages in flight finish (up to
        `drain_seconds`) and shut the queue functions' pools down. Safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        self.stop_event.set()
        if self._serving:
            self._server.shutdown()
        self._server.server_close()
        self._http_pool.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + drain_seconds
        for listener in self.queues:
            listener.stop(max(0.0, deadline - time.monotonic()))

    # HTTP dispatch

    def dispatch(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        import azure.functions as func

        url = urlsplit(target)
        path = url.path.strip("/")
        admin = re.fullmatch(r"admin/functions/([^/]+)", path)
        if admin and method == "POST":
            return self._admin_invoke(admin.group(1), body)
        for route in self.routes:
            params = route.match(method, path)
            if params is None:
                continue
            request = func.HttpRequest(
                method=method,
                url=f"{self.base_url}{target}",
                headers=headers,
                params=dict(parse_qsl(url.query, keep_blank_values=True)),
                route_params=params,
                body=body,
            )
            started = time.perf_counter()
            try:
                # As the worker: the connection's thread waits while one of the pool's runs it.
                result = self._http_pool.submit(route.function.invoke, request).result()
            except Exception:
                log.error("Executed '%s' (Failed)\n%s", route.function.name, traceback.format_exc())
                return 500, {}, b""
            elapsed = (time.perf_counter() - started) * 1000
            log.info("Executed '%s' (%s %s, %.0f ms)", route.function.name, method, path, elapsed)
            return _http_result(result)
        return _not_found(method, path)

    def _admin_invoke(self, name: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        from azure.functions.queue import QueueMessage

        local = self.functions.get(name)
        if local is None:
            return _not_found("POST", f"admin/functions/{name}")
        if local.trigger["type"] == "timerTrigger":
            # The real host answers 202 at once; here the answer waits for the run, so that a
            # script or a test can read its effect next. Not a promise the host keeps in Azure.
            timer = next(t for t in self.timers if t.function is local)
            timer.fire()
            return 202, {}, b""
        if local.trigger["type"] == "queueTrigger":
            text = str(json.loads(body or b"{}").get("input", ""))
            message = QueueMessage(id=str(uuid.uuid4()), body=text.encode(), dequeue_count=1)
            threading.Thread(target=local.invoke, args=(message,), daemon=True).start()
            return 202, {}, b""
        return 400, {}, b""


def _not_found(method: str, path: str) -> tuple[int, dict[str, str], bytes]:
    """404 as the app answers every error, {"error", "code"}. (In Azure the host itself answers
    an unknown route, with an empty 404: see docs/local.md.)"""
    body = {"error": f"No route {method} /{path}", "code": "not_found"}
    return 404, {"Content-Type": "application/json; charset=utf-8"}, json.dumps(body).encode()


def _function_index(app: Any) -> list[Any]:
    """`app.get_functions()`, once per app object: like the worker, index the app only once
    (the library refuses a second indexing of the same app)."""
    functions: list[Any] | None = getattr(app, "_local_host_index", None)
    if functions is None:
        functions = list(app.get_functions())
        app._local_host_index = functions
    return functions


def _http_result(result: Any) -> tuple[int, dict[str, str], bytes]:
    import azure.functions as func

    if isinstance(result, func.HttpResponse):
        headers = dict(result.headers.items())
        if result.mimetype and not any(k.lower() == "content-type" for k in headers):
            charset = f"; charset={result.charset}" if result.charset else ""
            headers["Content-Type"] = f"{result.mimetype}{charset}"
        return result.status_code, headers, result.get_body() or b""
    if result is None:
        return 204, {}, b""
    return 200, {"Content-Type": "text/plain; charset=utf-8"}, str(result).encode()


def _http_handler(host: LocalHost) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, headers, payload = host.dispatch(
                self.command, self.path, dict(self.headers.items()), body
            )
            self.send_response(status)
            for name, value in headers.items():
                if name.lower() != "content-length":
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_TRACE = (
            do_QUERY
        ) = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


_WORKER_READY = "Worker process serving on "


def _start_workers(args: argparse.Namespace, host: LocalHost, count: int) -> list[Any]:
    """Start `count` more worker processes serving HTTP on the first one's port, and wait until
    each listens. Their output is relayed to ours."""
    port = str(host._server.server_address[1])
    workers = []
    for number in range(2, count + 2):
        command = [sys.executable, "-m", "localdev.host", "--script-root", str(args.script_root)]
        command += ["--app", args.app, "--host", args.host, "--port", port, "--http-only"]
        command += ["--worker-number", str(number)]
        if args.settings_file is not None:
            command += ["--settings-file", str(args.settings_file)]
        workers.append(
            subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
            )
        )
    for worker in workers:
        ready = threading.Event()

        def relay(process: Any = worker, started: threading.Event = ready) -> None:
            for line in process.stdout:
                if line.startswith(_WORKER_READY):
                    started.set()
                sys.stdout.write(line)
                sys.stdout.flush()
            started.set()

        threading.Thread(target=relay, daemon=True).start()
        ready.wait(60)
        if worker.poll() is not None:
            _stop_workers(workers)
            raise HostError(f"a worker process stopped at start (exit {worker.returncode})")
    return workers


def _stop_workers(workers: list[Any]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.terminate()
    for worker in workers:
        try:
            worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            worker.kill()


def _exit_with_parent(stop: threading.Event) -> None:
    """A further worker process ends when the first one is gone (even if it was killed)."""
    parent = os.getppid()

    def watch() -> None:
        while not stop.wait(1.0):
            if os.getppid() != parent:
                stop.set()

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve function_app.py locally.")
    parser.add_argument("--script-root", type=Path, default=Path.cwd())
    parser.add_argument("--app", default="function_app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument(
        "--settings-file",
        type=Path,
        default=None,
        help="local.settings.json to load (default: the one in --script-root)",
    )
    # Internal: a further worker process of FUNCTIONS_WORKER_PROCESS_COUNT (HTTP only).
    parser.add_argument("--http-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker-number", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="[%(asctime)s] %(name)s %(levelname)s %(message)s",
        stream=sys.stdout,
    )
    # The Azure SDKs log every request at INFO; the real host keeps them out of the console too.
    logging.getLogger("azure").setLevel(logging.WARNING)
    load_local_settings(args.settings_file or args.script_root / "local.settings.json")
    workers: list[Any] = []
    try:
        count = 1 if args.http_only else worker_process_count()
        host = LocalHost(
            script_root=args.script_root,
            app_module=args.app,
            host=args.host,
            port=args.port,
            shared_port=args.http_only or count > 1,
            http_only=args.http_only,
        ).start()
        if count > 1:
            workers = _start_workers(args, host, count - 1)
    except Exception as exc:
        # The real host refuses to start the same way: name the problem and stop.
        print(f"The function host could not start: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(1) from exc
    # SIGTERM (how `make run` and the tests stop the host) drains like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: host.stop_event.set())
    if args.http_only:
        _exit_with_parent(host.stop_event)
        print(f"{_WORKER_READY}{host.base_url} (worker process {args.worker_number})", flush=True)
    else:
        print(host.describe(), flush=True)
        print(
            f"Worker processes: {count}, threads for HTTP functions in each: {host.threads}",
            flush=True,
        )
        print(f"Host started on {host.base_url}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        host.stop_event.wait()
    _stop_workers(workers)
    host.stop(drain_seconds=3.0)


if __name__ == "__main__":
    main()
