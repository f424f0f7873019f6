"""Recording a change on the latest version of a booking, whoever makes it.

Many writers save one booking: a user's action, a worker recording what Teams answered, the
mail worker noting what it sent. Each save carries the ETag of the version it read; a writer
that loses the race reads the booking again and applies its change to the newer version, so
that nobody's change is lost and the next step is computed from all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from shared.domain.audit import AuditRecord
from shared.domain.booking import Booking
from shared.storage.bookings import BookingRepository
from shared.storage.errors import ConcurrencyError, StorageError

Change = Callable[[Booking], Booking]

# Re-reads a background writer makes to record one change while other writers keep winning.
RECORD_TRIES = 8


def record_on_latest(
    bookings: BookingRepository,
    booking: Booking,
    change: Change,
    *,
    tries: int = RECORD_TRIES,
    audit: Sequence[AuditRecord] = (),
    skip_unchanged: bool = False,
    what: str | None = None,
) -> Booking:
    """Save `change(booking)`; after a lost ETag race, `change` of the version read again, at
    most `tries` saves in all. `skip_unchanged`: a change that returns the booking itself
    saves nothing. When every try lost: a background writer, which names `what` it records,
    raises `StorageError` (its message or the timer tries again); without `what` the last
    `ConcurrencyError` propagates (a user's action answers 409 then, with nothing saved)."""
    for attempt in range(tries):
        changed = change(booking)
        if skip_unchanged and changed is booking:
            return booking
        try:
            return bookings.update(changed, audit)
        except ConcurrencyError:
            if what is None and attempt == tries - 1:
                raise
            booking = bookings.get(booking.tenant_id, booking.booking_id)
    raise StorageError(
        f"booking {booking.booking_id}: could not record {what} after {tries} conflicting writes"
    )
