"""A lease: who holds a piece of work, and until when.

One worker at a time acts on a booking's meeting, applies a Stripe event, or sends one e-mail:
each takes a lease (a token of its own and a time it ends), written with an ETag or a
conditional insert, so exactly one taker wins. A lease lapses at its `until` (a worker that
died holds nothing), and only its holder's token releases it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Lease:
    """`token` names the holder (None: none named), `until` when the lease ends (None: never
    taken, or released)."""

    token: str | None = None
    until: datetime | None = None

    def held(self, now: datetime) -> bool:
        """The lease is in force at `now`; one that ends at `now` has lapsed."""
        return self.until is not None and self.until > now

    def mine(self, token: str | None) -> bool:
        """`token` is the holder's (lapsed or not: until someone else takes it over)."""
        return self.token is not None and self.token == token

    def held_by_other(self, token: str | None, now: datetime) -> bool:
        """Someone other than `token` holds it at `now`."""
        return self.token is not None and not self.mine(token) and self.held(now)
