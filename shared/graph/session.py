"""The HTTP session Graph and msal share: pooled connections, never a call without a timeout,
an optional deadline for every call a thread makes (a request's time budget), and proxies and
CA roots fixed when it is built rather than looked up in the environment on every call."""

from __future__ import annotations

import functools
import os
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import certifi
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.ssl_ import create_urllib3_context

_local = threading.local()


@functools.cache
def tls_context(ca_bundle: str) -> ssl.SSLContext:
    """The process's TLS context trusting `ca_bundle`, made once."""
    context = create_urllib3_context()
    context.load_verify_locations(cafile=ca_bundle)
    return context


class SharedTlsAdapter(HTTPAdapter):
    """Every connection shares one TLS context, its CA roots loaded once per process. urllib3
    otherwise makes a context and loads the whole CA bundle again for each new connection
    (tens of milliseconds of CPU each, paid by a first request and whenever a pool grows)."""

    def __init__(self, ca_bundle: str) -> None:
        self.ca_bundle = ca_bundle
        self.context = tls_context(ca_bundle)
        super().__init__()

    def _shares(self, verify: Any) -> bool:
        return verify is True or verify == self.ca_bundle

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> Any:
        host, pool = super().build_connection_pool_key_attributes(request, verify, cert)
        if self._shares(verify):
            pool.pop("ca_certs", None)
            pool.pop("ca_cert_dir", None)
            pool["ssl_context"] = self.context
        return host, pool

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        super().cert_verify(conn, url, verify, cert)  # type: ignore[no-untyped-call]
        if self._shares(verify):
            conn.ca_certs = None  # the shared context holds them
            conn.ca_cert_dir = None


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
        self.mount("https://", SharedTlsAdapter(ca_bundle or certifi.where()))

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
