"""The HTTP session Graph and msal share: pooled connections, and never a call without a timeout."""

from __future__ import annotations

from typing import Any

import requests


class TimeoutSession(requests.Session):
    """A `requests.Session` that adds `timeout` to any request made without one.

    msal sends its metadata and token requests through the session it is given without a
    timeout of its own, so the default has to live here.
    """

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.default_timeout = timeout

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.default_timeout
        return super().request(method, url, *args, **kwargs)
