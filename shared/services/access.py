"""Who may do what (SPEC §4, "who"). Other tenants' data is never reachable: reads are keyed
by the caller's own tenant, so another tenant's id is simply not found (404, not 403)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias, TypeVar

from shared.auth.principal import Principal, Role
from shared.domain.booking import Booking, ParticipantRole
from shared.errors import AppError
from shared.storage.bookings import BookingRepository

T = TypeVar("T")
Command: TypeAlias = T | Callable[[], T]
"""A use case's input: parsed already, or a reader the use case calls once the caller may act,
so that a caller who may not act learns nothing about what it sent (SPEC §4)."""


def read_command(command: Command[T]) -> T:
    return command() if callable(command) else command


class ForbiddenError(AppError):
    """The caller is known but may not do this (403). Seed 000's text is "Unauthorized"."""

    http_status = 403

    def __init__(self, message: str = "Unauthorized", code: str = "forbidden") -> None:
        super().__init__(message)
        self.code = code


def require_role(caller: Principal, *roles: Role, message: str = "Unauthorized") -> None:
    """403 with `message` (what is missing) unless the caller has one of `roles`."""
    if not caller.has(*roles):
        raise ForbiddenError(message)


def is_participant(caller: Principal, booking: Booking) -> bool:
    return caller.user_id in booking.participant_ids


def participant_role(caller: Principal, booking: Booking) -> ParticipantRole | None:
    for participant in booking.participants:
        if participant.user_id == caller.user_id:
            return participant.role
    if booking.assignee_id == caller.user_id:
        return ParticipantRole.TUTOR
    return None


def load_visible(
    caller: Principal,
    bookings: BookingRepository,
    booking_id: str,
    message: str = "Only the booking's participants, staff and admins can see it",
) -> Booking:
    """The booking if the caller may see it: staff and admins of its tenant, or a participant."""
    booking = bookings.get(caller.tenant_id, booking_id)
    if caller.is_tenant_wide or is_participant(caller, booking):
        return booking
    raise ForbiddenError(message)


def may_generate_meeting(caller: Principal, booking: Booking) -> bool:
    """Seed 000: the booking's student or tutor, or an admin."""
    if caller.has(Role.ADMIN):
        return True
    return participant_role(caller, booking) in (ParticipantRole.STUDENT, ParticipantRole.TUTOR)
