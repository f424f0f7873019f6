"""Tutors' meeting preferences.

Table `tenants`, PartitionKey = "tutor|{tenant id}", RowKey = tutor id: beside the tenant rows
(whose partition is "tenant"), one row per tutor who saved preferences. A tutor without a row
has none. The meeting steps read them only for a tenant that lets tutors choose anything,
through `get_recent` (a copy kept `CACHE_SECONDS` in the process, an absent row included), so a
tenant that allows no choice pays no read, and one that does pays one per tutor per half
minute and process at most.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from shared.domain.preferences import NO_PREFERENCES, TutorPreferences
from shared.domain.tenant import AllowedPresenters, LobbyBypassScope, MeetingChatMode
from shared.storage.errors import NotFoundError
from shared.storage.tables import EntityReader, Tables, translated_errors, validate_key
from shared.storage.tenants import CACHE_SECONDS, TABLE

if TYPE_CHECKING:
    from azure.data.tables import TableClient


class PreferencesRepository(Protocol):
    def get(self, tenant_id: str, tutor_id: str) -> TutorPreferences:
        """The tutor's preferences (`NO_PREFERENCES` when they saved none)."""
        ...

    def get_recent(self, tenant_id: str, tutor_id: str) -> TutorPreferences:
        """As `get`, from a copy at most `CACHE_SECONDS` old in this process."""
        ...

    def save(self, tenant_id: str, tutor_id: str, preferences: TutorPreferences) -> None:
        """Replace the tutor's preferences (the tutor's own: the last save wins)."""
        ...


class _Recent:
    """A short per-process copy of each tutor's preferences, an absent row included."""

    def __init__(self, seconds: float, clock: Callable[[], float]) -> None:
        self._seconds = seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._copies: dict[tuple[str, str], tuple[float, TutorPreferences]] = {}

    def get(self, key: tuple[str, str]) -> TutorPreferences | None:
        with self._lock:
            found = self._copies.get(key)
        return found[1] if found is not None and self._clock() < found[0] else None

    def keep(self, key: tuple[str, str], preferences: TutorPreferences) -> TutorPreferences:
        if self._seconds > 0:
            with self._lock:
                self._copies[key] = (self._clock() + self._seconds, preferences)
        return preferences


class TablePreferencesRepository:
    def __init__(
        self,
        tables: Tables,
        cache_seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tables = tables
        self._recent = _Recent(cache_seconds, clock)

    @property
    def _table(self) -> TableClient:
        return self._tables.table(TABLE)

    def get(self, tenant_id: str, tutor_id: str) -> TutorPreferences:
        key = _keys(tenant_id, tutor_id)
        try:
            with translated_errors(f"preferences of tutor {tutor_id}"):
                entity = self._table.get_entity(*key)
        except NotFoundError:
            return self._recent.keep(key, NO_PREFERENCES)
        self._tables.reads += 1
        return self._recent.keep(key, entity_to_preferences(entity))

    def get_recent(self, tenant_id: str, tutor_id: str) -> TutorPreferences:
        found = self._recent.get(_keys(tenant_id, tutor_id))
        return found if found is not None else self.get(tenant_id, tutor_id)

    def save(self, tenant_id: str, tutor_id: str, preferences: TutorPreferences) -> None:
        from azure.data.tables import UpdateMode

        key = _keys(tenant_id, tutor_id)
        with translated_errors(f"preferences of tutor {tutor_id}"):
            self._table.upsert_entity(preferences_to_entity(key, preferences), UpdateMode.REPLACE)
        self._recent.keep(key, preferences)


class InMemoryPreferencesRepository:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[tuple[str, str], TutorPreferences] = {}

    def get(self, tenant_id: str, tutor_id: str) -> TutorPreferences:
        key = _keys(tenant_id, tutor_id)
        with self._lock:
            return self._rows.get(key, NO_PREFERENCES)

    def get_recent(self, tenant_id: str, tutor_id: str) -> TutorPreferences:
        return self.get(tenant_id, tutor_id)

    def save(self, tenant_id: str, tutor_id: str, preferences: TutorPreferences) -> None:
        key = _keys(tenant_id, tutor_id)
        with self._lock:
            self._rows[key] = preferences


def _keys(tenant_id: str, tutor_id: str) -> tuple[str, str]:
    return f"tutor|{validate_key(tenant_id, 'tenant id')}", validate_key(tutor_id, "tutor id")


def preferences_to_entity(key: tuple[str, str], preferences: TutorPreferences) -> dict[str, Any]:
    p = preferences
    return {
        "PartitionKey": key[0],
        "RowKey": key[1],
        "LobbyBypassScope": p.lobby_bypass_scope.value if p.lobby_bypass_scope else None,
        "AllowedPresenters": p.allowed_presenters.value if p.allowed_presenters else None,
        "AllowMeetingChat": p.allow_meeting_chat.value if p.allow_meeting_chat else None,
        "RecordAutomatically": p.record_automatically,
    }


def entity_to_preferences(entity: Any) -> TutorPreferences:
    r = EntityReader(entity, "tutor preferences")
    record = entity.get("RecordAutomatically")
    return TutorPreferences(
        lobby_bypass_scope=(
            r.enum("LobbyBypassScope", LobbyBypassScope) if r.opt_text("LobbyBypassScope") else None
        ),
        allowed_presenters=(
            r.enum("AllowedPresenters", AllowedPresenters)
            if r.opt_text("AllowedPresenters")
            else None
        ),
        allow_meeting_chat=(
            r.enum("AllowMeetingChat", MeetingChatMode) if r.opt_text("AllowMeetingChat") else None
        ),
        record_automatically=None if record is None else bool(record),
    )
