"""The HTTP session Graph and msal share: pooled connections, never a call without a timeout,
an optional deadline for every call a thread makes (a request's time budget), and proxies and
CA roots fixed when it is built rather than looked up in the environment on every call."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests

_local = threading.local()


class TimeoutSession(requests.Session):
    """A `requests.Session` that adds `timeout` to any request made without one, shortens it
    to the thread's deadline (see `deadline`), and remembers the thread's last HTTP status.

    msal sends its metadata and token requests through the session it is given, without a
    timeout of its own and without telling why it failed, so both have to live here.

    `proxy` (the OUTBOUND_PROXY setting) carries every call; None: calls go direct. The
    environment's proxy variables and ~/.netrc are not read (requests would read them again
    on every call); the CA bundle REQUESTS_CA_BUNDLE names (locally: the emulator's CA) is
    read once, here.
    """

    def __init__(self, timeout: float, *, proxy: str | None = None) -> None:
        super().__init__()
        self.default_timeout = timeout
        self.trust_env = False
        if proxy:
            self.proxies = {"http": proxy, "https": proxy}
        ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if ca_bundle:
            self.verify = ca_bundle

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        timeout = kwargs.get("timeout")
        timeout = self.default_timeout if timeout is None else timeout
        until: float | None = getattr(_local, "deadline", None)
        if until is not None:
            remaining = until - time.monotonic()
            if remaining <= 0:
                raise requests.ConnectTimeout("the time budget for this work is spent")
            timeout = min(float(timeout), remaining)
        kwargs["timeout"] = timeout
        _local.last_status = None
        response = super().request(method, url, *args, **kwargs)
        _local.last_status = response.status_code
        return response


@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Every call this thread makes through a `TimeoutSession` ends within `seconds`."""
    if seconds is None:
        yield
        return
    outer = getattr(_local, "deadline", None)
    mine = time.monotonic() + seconds
    _local.deadline = mine if outer is None else min(outer, mine)
    try:
        yield
    finally:
        _local.deadline = outer


def last_status() -> int | None:
    """The HTTP status of this thread's last response through a `TimeoutSession` since
    `forget_last_status()` (None: no response, e.g. msal answered from its own cache)."""
    status: int | None = getattr(_local, "last_status", None)
    return status


def forget_last_status() -> None:
    _local.last_status = None
