"""A tutor's meeting preferences, within what their tenant allows.

The tenant sets its meeting options (the defaults) and, per option, the values its tutors may
choose (`TutorChoices`; an option with no values listed is the tenant's alone). A tutor's
`TutorPreferences` name a value for some options. The options a booking's meeting gets are
the tenant's, overlaid with its tutor's preferences where the tenant allows them *now*: a
tenant that narrows its allowance later wins over preferences saved before. Pure values.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from enum import StrEnum

from shared.domain.booking import Booking, ParticipantRole
from shared.domain.tenant import (
    AllowedPresenters,
    LobbyBypassScope,
    MeetingChatMode,
    MeetingOptions,
    TutorChoices,
)


@dataclass(frozen=True)
class TutorPreferences:
    """What one tutor prefers; None leaves the tenant's option."""

    lobby_bypass_scope: LobbyBypassScope | None = None
    allowed_presenters: AllowedPresenters | None = None
    allow_meeting_chat: MeetingChatMode | None = None
    record_automatically: bool | None = None

    def chosen(self) -> dict[str, object]:
        return {
            f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None
        }


NO_PREFERENCES = TutorPreferences()


@dataclass(frozen=True)
class NotAllowed:
    """A preference outside the tenant's allowance: the option and the values it allows."""

    option: str
    value: object
    allowed: tuple[str, ...]


def refused(preferences: TutorPreferences, choices: TutorChoices) -> list[NotAllowed]:
    """Each preference the tenant does not allow (empty: all are allowed)."""
    found = []
    for name, value in preferences.chosen().items():
        allowed: frozenset[object] = getattr(choices, name)
        if value not in allowed:
            found.append(NotAllowed(name, value, tuple(sorted(_text(v) for v in allowed))))
    return found


def effective_options(
    options: MeetingOptions, choices: TutorChoices, preferences: TutorPreferences
) -> MeetingOptions:
    """The tenant's options with the tutor's preferences that the tenant allows now."""
    allowed = {
        name: value
        for name, value in preferences.chosen().items()
        if value in getattr(choices, name)
    }
    return replace(options, **allowed) if allowed else options  # type: ignore[arg-type]


def tutor_of(booking: Booking) -> str | None:
    """Whose preferences a booking's meeting follows: the tutor it was assigned to (staff
    assign one when they approve), else its first tutor participant."""
    if booking.assignee_id:
        return booking.assignee_id
    for participant in booking.participants:
        if participant.role is ParticipantRole.TUTOR:
            return participant.user_id
    return None


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value.value if isinstance(value, StrEnum) else str(value)
