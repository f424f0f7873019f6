"""The reminders a booking was sent, as saved on the booking. Pure values; the rules that
decide and record them, given a booking, are in `shared.domain.reminders`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# The tenant's setting `reminderOffsets` when it set none: minutes before the start.
DEFAULT_OFFSETS: tuple[int, ...] = (1440, 15)
# Reminders kept on a booking (the newest; older starts' records are history only).
MAX_KEPT = 8


@dataclass(frozen=True)
class SentReminder:
    """Offset `offset_minutes` before `for_start` was reminded at `at`, by notice `notice`."""

    offset_minutes: int
    for_start: datetime
    at: datetime
    notice: int


@dataclass(frozen=True)
class Reminders:
    """The reminders a booking was sent (newest last)."""

    sent: tuple[SentReminder, ...] = ()

    def sent_for(self, start: datetime) -> tuple[SentReminder, ...]:
        return tuple(r for r in self.sent if r.for_start == start)
