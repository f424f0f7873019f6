"""Storage requests counted at the wire, process-wide.

Every Table and Queue client the app builds carries `count_request` as its `raw_request_hook`,
which the SDK calls for each HTTP request it sends (each retry too, as it follows the retry
policy). What a request was is read from its method and URL. The counts are a figure for tests
and benchmarks (`WIRE.snapshot()`), kept under a lock: a dictionary increment per request.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any
from urllib.parse import unquote, urlsplit

# The kinds, in the order a breakdown lists them.
KINDS = (
    "read",  # a point read of one entity
    "query",  # a query (a range or a scan), one page
    "batch",  # an entity-group transaction
    "write",  # an insert, update, merge or upsert of one entity
    "delete",  # a delete of one entity
    "queue_send",  # a message put on a queue
    "queue_other",  # receive, delete or clear messages
    "setup",  # creating a table or a queue, listing tables
)


class WireCount:
    """Storage requests sent by this process, by kind."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, kind: str) -> None:
        with self._lock:
            self._counts[kind] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {kind: self._counts[kind] for kind in KINDS}


WIRE = WireCount()


def round_trips(counts: dict[str, int]) -> int:
    """Requests that are part of an action's cost (table and queue set-up is once a process)."""
    return sum(n for kind, n in counts.items() if kind != "setup")


def since(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {kind: after.get(kind, 0) - before.get(kind, 0) for kind in KINDS}


def describe(counts: dict[str, int]) -> str:
    """`9 round trips: 2 read, 1 batch, ...` (kinds with a count only)."""
    parts = ", ".join(f"{n} {kind}" for kind, n in counts.items() if n and kind != "setup")
    return f"{round_trips(counts)} round trips" + (f": {parts}" if parts else "")


def classify(method: str, url: str) -> str:
    """The kind of a Table or Queue service request."""
    path = unquote(urlsplit(url).path).rstrip("/")
    last = path.rsplit("/", 1)[-1]
    method = method.upper()
    if last == "$batch":
        return "batch"
    if "/messages" in path:
        if method == "POST":
            return "queue_send"
        return "queue_other"
    if last.startswith("Tables") or (method == "PUT" and "(" not in last):
        # POST /Tables (create), GET /Tables (list), PUT /{queue} (create)
        return "setup"
    if method == "GET":
        return "read" if "PartitionKey=" in last else "query"
    if method == "DELETE":
        return "delete"
    return "write"  # POST /{table} (insert), PUT/MERGE/PATCH /{table}(...) (update/upsert)


def count_request(request: Any) -> None:
    """The `raw_request_hook` of our storage clients: count one request."""
    http = request.http_request
    WIRE.add(classify(http.method, http.url))
