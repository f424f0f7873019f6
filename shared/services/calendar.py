"""The booking's current calendar invite (`GET /v1/bookings/{id}/calendar.ics`)."""

from __future__ import annotations

from shared.auth.principal import Principal
from shared.mail.ics import Organizer, current_invite
from shared.mail.strings import Strings, language_for
from shared.services.access import load_visible
from shared.services.bookings import BookingDeps


def calendar_invite(caller: Principal, booking_id: str, deps: BookingDeps) -> bytes:
    """The invite as the latest e-mail sent it (same UID and SEQUENCE), for the booking's
    participants, staff and admins; a cancellation once the booking is closed. Its text is in
    the caller's language when they are a participant who chose one, else the tenant's."""
    booking = load_visible(caller, deps.bookings, booking_id)
    tenant = deps.tenants.get(caller.tenant_id)
    organizer = Organizer(
        tenant.organizer_upn or tenant.mail.sender_upn or "meetings@localhost", tenant.display_name
    )
    own = next((p.locale for p in booking.participants if p.user_id == caller.user_id), None)
    strings = Strings(language_for(own, tenant.locale))
    return current_invite(booking, organizer, deps.clock(), strings)
