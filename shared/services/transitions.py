"""Saving a booking transition against the ETag, whoever triggers it (a user, Stripe)."""

from __future__ import annotations

from collections.abc import Callable

from shared.domain.booking import Booking
from shared.storage.bookings import BookingRepository
from shared.work.record import record_on_latest

# Re-applying a transition to a newer version: background writers (a worker recording what
# Teams answered) change the ETag often, and must not turn a user's action into a conflict.
_CHANGE_TRIES = 5


def save_transition(
    bookings: BookingRepository, booking: Booking, transition: Callable[[Booking], Booking]
) -> Booking:
    """Save `transition(booking)`; on a lost ETag race, apply it again to the newer version
    (which may now refuse it: an illegal transition is a 409 with nothing saved). A transition
    that returns the booking itself changes nothing, and nothing is written."""
    return record_on_latest(bookings, booking, transition, tries=_CHANGE_TRIES, skip_unchanged=True)
