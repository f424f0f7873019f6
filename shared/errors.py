"""The one base of the application's errors, and what an HTTP caller is answered with.

Each integration's tree (Graph, mail, storage, Stripe) and each service's errors derive from
`AppError`, so that the endpoint wrapper looks the answer up on the error instead of testing its
type. Imports nothing of the project: every layer may raise these.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

NO_HEADERS: Mapping[str, str] = MappingProxyType({})


class AppError(Exception):
    """An error the application raises on purpose (Powertools' `BaseError`).

    `message` says what went wrong and names what it is about; `code` is the stable machine
    code; `http_status` the status an HTTP caller gets and `headers` what the answer carries
    besides (Retry-After): class defaults that an instance may override. An error that answers
    500 is told to the caller as "Internal error" only: its message is for the log.
    """

    http_status: int = 500
    code: str = "internal_error"
    headers: Mapping[str, str] = NO_HEADERS

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    @property
    def public_message(self) -> str:
        """The text an HTTP caller reads: the message, unless the class says otherwise."""
        return self.message


def retry_after(seconds: float | None, *, default: float) -> Mapping[str, str]:
    """The Retry-After header for a wait of `seconds` (`default` when none is known): whole
    seconds, at least one."""
    return MappingProxyType({"Retry-After": str(max(1, round(seconds or default)))})
