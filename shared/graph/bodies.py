"""Request bodies for Graph onlineMeetings, built from plain values (no I/O, easy to test)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.domain.tenant import AllowedPresenters, LobbyBypassScope, MeetingOptions

ATTENDEE = "attendee"
PRESENTER = "presenter"


@dataclass(frozen=True)
class Attendee:
    """A participant as Graph lists one. `presenter` counts only where the meeting's
    allowedPresenters is roleIsPresenter (Graph ignores the role otherwise)."""

    upn: str
    display_name: str | None = None
    presenter: bool = False


@dataclass(frozen=True)
class MeetingRequest:
    """What createOrGet needs: the booking's key, its subject, its times and who attends."""

    external_id: str
    subject: str
    start: datetime
    end: datetime
    attendees: Sequence[Attendee] = ()


# Scopes Graph returns only when asked with `Prefer: include-unknown-enum-members`.
EVOLVED_LOBBY_SCOPES = frozenset(
    {LobbyBypassScope.INVITED, LobbyBypassScope.ORGANIZATION_EXCLUDING_GUESTS}
)


def graph_time(moment: datetime) -> str:
    """UTC, second precision, `Z` suffix, as Graph documents it."""
    if moment.tzinfo is None:
        raise ValueError("meeting times must carry a UTC offset")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def create_or_get_body(request: MeetingRequest) -> dict[str, Any]:
    """createOrGet accepts only these fields; options follow in a PATCH (`options_body`)."""
    if request.end <= request.start:
        raise ValueError("a meeting must end after it starts")
    body: dict[str, Any] = {
        "externalId": request.external_id,
        "subject": request.subject,
        "startDateTime": graph_time(request.start),
        "endDateTime": graph_time(request.end),
    }
    if request.attendees:
        body["participants"] = {"attendees": [_attendee(a) for a in request.attendees]}
    return body


def _attendee(attendee: Attendee) -> dict[str, Any]:
    entry: dict[str, Any] = {"upn": attendee.upn, "role": _role(attendee)}
    if attendee.display_name:
        entry["identity"] = {"user": {"displayName": attendee.display_name}}
    return entry


def _role(attendee: Attendee) -> str:
    return PRESENTER if attendee.presenter else ATTENDEE


def roles_apply(options: MeetingOptions) -> bool:
    """Whether the meeting's presenters are the attendees with the presenter role."""
    return options.allowed_presenters is AllowedPresenters.ROLE_IS_PRESENTER


def options_body(
    options: MeetingOptions, attendees: Sequence[Attendee] | None = None
) -> dict[str, Any]:
    """The meeting options PATCH (lobby, presenters, chat, announcements, recording). With
    presenters by role, the PATCH also carries every attendee with their role: Graph replaces
    the whole list with the one a PATCH sends, so a partial list would drop the others."""
    body: dict[str, Any] = {
        "lobbyBypassSettings": {
            "scope": options.lobby_bypass_scope.value,
            "isDialInBypassEnabled": options.dial_in_bypass,
        },
        "allowedPresenters": options.allowed_presenters.value,
        "allowMeetingChat": options.allow_meeting_chat.value,
        "isEntryExitAnnounced": options.entry_exit_announced,
        "recordAutomatically": options.record_automatically,
    }
    if attendees and roles_apply(options):
        body["participants"] = {"attendees": [_attendee(a) for a in attendees]}
    return body


def options_match(
    meeting: dict[str, Any],
    options: MeetingOptions,
    attendees: Sequence[Attendee] | None = None,
) -> bool:
    """Whether a meeting Graph returned already carries `options` (so no PATCH is needed);
    with `attendees` and presenters by role, also whether each has the role wanted."""
    wanted = options_body(options)
    lobby = meeting.get("lobbyBypassSettings") or {}
    return bool(
        lobby.get("scope") == wanted["lobbyBypassSettings"]["scope"]
        and bool(lobby.get("isDialInBypassEnabled"))
        == wanted["lobbyBypassSettings"]["isDialInBypassEnabled"]
        and meeting.get("allowedPresenters") == wanted["allowedPresenters"]
        and meeting.get("allowMeetingChat") == wanted["allowMeetingChat"]
        and bool(meeting.get("isEntryExitAnnounced")) == wanted["isEntryExitAnnounced"]
        and bool(meeting.get("recordAutomatically")) == wanted["recordAutomatically"]
        and (not attendees or not roles_apply(options) or _roles_match(meeting, attendees))
    )


def _roles_match(meeting: dict[str, Any], attendees: Sequence[Attendee]) -> bool:
    listed = (meeting.get("participants") or {}).get("attendees") or []
    held = {
        str(a.get("upn") or "").lower(): str(a.get("role") or ATTENDEE)
        for a in listed
        if isinstance(a, dict)
    }
    return all(held.get(a.upn.lower()) == _role(a) for a in attendees)


def reschedule_body(start: datetime, end: datetime, subject: str | None = None) -> dict[str, Any]:
    """Graph wants start and end together in a PATCH."""
    if end <= start:
        raise ValueError("a meeting must end after it starts")
    body: dict[str, Any] = {"startDateTime": graph_time(start), "endDateTime": graph_time(end)}
    if subject is not None:
        body["subject"] = subject
    return body
