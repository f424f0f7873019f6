"""The mail ledger: one row per e-mail owed (a notice to one recipient), so that a redelivered
queue message, a second worker or the timer never send the same mail twice.

Table `mailsent`, PartitionKey = tenant id, RowKey = `{bookingId}|{notice}|{recipientDigest}`.
A worker *claims* the row before it sends (a conditional insert: exactly one wins), marks it
`sent` after, and deletes its claim when the transport said no, so a retry sends again. A claim
lapses after its lease: if the worker died between the send and the mark, the next one sends
again. So the ledger errs towards a second copy in that one window (a crash or a lost answer
between the transport accepting the mail and the mark), never towards a mail not sent.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from shared.domain.lease import Lease
from shared.storage.errors import AlreadyExistsError, ConcurrencyError, NotFoundError
from shared.storage.queue_names import MAIL_POISON_QUEUE as MAIL_POISON_QUEUE
from shared.storage.queue_names import MAIL_QUEUE as MAIL_QUEUE
from shared.storage.tables import Tables, row_key, to_utc, translated_errors, validate_key

if TYPE_CHECKING:
    from azure.data.tables import TableClient

TABLE = "mailsent"


@dataclass(frozen=True)
class MailKey:
    tenant_id: str
    booking_id: str
    notice: int
    recipient: str

    @property
    def row_key(self) -> str:
        digest = hashlib.sha256(self.recipient.strip().lower().encode()).hexdigest()[:40]
        return row_key(validate_key(self.booking_id, "booking id"), str(self.notice), digest)

    def __str__(self) -> str:
        return f"{self.tenant_id}|{self.row_key}"


class ClaimOutcome(StrEnum):
    CLAIMED = "claimed"  # this worker sends it now
    SENT = "sent"  # it went out before
    HELD = "held"  # another worker is sending it (until `until`)


@dataclass(frozen=True)
class Claim:
    key: MailKey
    outcome: ClaimOutcome
    token: str | None = None
    until: datetime | None = None
    etag: str | None = None


class MailLedger(Protocol):
    def claim(self, key: MailKey, now: datetime, until: datetime) -> Claim:
        """Claim the mail for sending until `until`, or say why not (sent, or held)."""
        ...

    def mark_sent(self, claim: Claim, now: datetime) -> None: ...

    def release(self, claim: Claim) -> None:
        """The transport did not take the mail: whoever comes next may send it."""
        ...


class TableMailLedger:
    """`MailLedger` on Azure Table Storage."""

    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    @property
    def _table(self) -> TableClient:
        return self._tables.table(TABLE)

    def claim(self, key: MailKey, now: datetime, until: datetime) -> Claim:
        from azure.core import MatchConditions
        from azure.data.tables import UpdateMode

        pk = validate_key(key.tenant_id, "tenant id")
        token = uuid.uuid4().hex
        row = {
            "PartitionKey": pk,
            "RowKey": key.row_key,
            "State": "sending",
            "Token": token,
            "Until": to_utc(until, "until"),
        }
        what = f"mail {key}"
        try:
            with translated_errors(what):
                created = self._table.create_entity(row)
            return Claim(key, ClaimOutcome.CLAIMED, token, until, created.get("etag"))
        except AlreadyExistsError:
            pass
        try:
            with translated_errors(what):
                found = self._table.get_entity(pk, key.row_key)
        except NotFoundError:
            # Released just now: the next delivery claims it afresh.
            return Claim(key, ClaimOutcome.HELD, until=now)
        if found.get("State") == "sent":
            return Claim(key, ClaimOutcome.SENT)
        held = Lease(found.get("Token"), found.get("Until"))
        if held.held(now):
            return Claim(key, ClaimOutcome.HELD, until=held.until)
        # The holder's lease lapsed (it died, or hangs): take the claim over, if still lapsed.
        try:
            with translated_errors(what):
                updated = self._table.update_entity(
                    row,
                    mode=UpdateMode.REPLACE,
                    etag=found.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
        except (ConcurrencyError, NotFoundError):
            return Claim(key, ClaimOutcome.HELD, until=until)
        return Claim(key, ClaimOutcome.CLAIMED, token, until, updated.get("etag"))

    def mark_sent(self, claim: Claim, now: datetime) -> None:
        from azure.data.tables import UpdateMode

        row = {
            "PartitionKey": claim.key.tenant_id,
            "RowKey": claim.key.row_key,
            "State": "sent",
            "SentAt": to_utc(now, "sent at"),
        }
        with translated_errors(f"mail {claim.key}"):
            self._table.upsert_entity(row, mode=UpdateMode.REPLACE)

    def release(self, claim: Claim) -> None:
        from azure.core import MatchConditions

        if claim.outcome is not ClaimOutcome.CLAIMED:
            return
        # Only our own claim: one taken over meanwhile belongs to its new holder.
        with (
            contextlib.suppress(ConcurrencyError, NotFoundError),
            translated_errors(f"mail {claim.key}"),
        ):
            self._table.delete_entity(
                claim.key.tenant_id,
                claim.key.row_key,
                etag=claim.etag,
                match_condition=MatchConditions.IfNotModified,
            )


class InMemoryMailLedger:
    """`MailLedger` in memory, under the same contract tests as the table."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[tuple[str, str], tuple[str, str | None, datetime | None]] = {}

    def claim(self, key: MailKey, now: datetime, until: datetime) -> Claim:
        validate_key(key.tenant_id, "tenant id")
        address = (key.tenant_id, key.row_key)
        with self._lock:
            found = self._rows.get(address)
            if found is not None:
                state, holder, held_until = found
                if state == "sent":
                    return Claim(key, ClaimOutcome.SENT)
                held = Lease(holder, held_until)
                if held.held(now):
                    return Claim(key, ClaimOutcome.HELD, until=held.until)
            token = uuid.uuid4().hex
            self._rows[address] = ("sending", token, until)
            return Claim(key, ClaimOutcome.CLAIMED, token, until, etag=token)

    def mark_sent(self, claim: Claim, now: datetime) -> None:
        with self._lock:
            self._rows[(claim.key.tenant_id, claim.key.row_key)] = ("sent", None, None)

    def release(self, claim: Claim) -> None:
        if claim.outcome is not ClaimOutcome.CLAIMED:
            return
        address = (claim.key.tenant_id, claim.key.row_key)
        with self._lock:
            found = self._rows.get(address)
            if found is not None and found[0] == "sending" and found[1] == claim.token:
                del self._rows[address]

    def sent_count(self) -> int:
        with self._lock:
            return sum(1 for state, _, _ in self._rows.values() if state == "sent")
