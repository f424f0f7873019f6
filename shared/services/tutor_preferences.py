"""A tutor's meeting preferences (seed 000: "lobby and meeting options per tutor preference"):
read and saved by the tutor, or by staff and admins for them, within what the tenant allows.
Meetings made or moved after a save follow it (within the half minute a process keeps its
copy); the options step applies them (shared/meetings/steps.py, `options_for`)."""

from __future__ import annotations

from dataclasses import dataclass

from shared.auth.principal import Principal, Role
from shared.domain.preferences import TutorPreferences, effective_options, refused
from shared.domain.tenant import MeetingOptions, TutorChoices
from shared.errors import AppError
from shared.services.access import Command, ForbiddenError, read_command
from shared.storage.preferences import PreferencesRepository
from shared.storage.tenant_directory import TenantDirectory

OWN_OR_STAFF = "Only the tutor, staff or admins can see or change a tutor's meeting preferences"


@dataclass(frozen=True)
class TutorMeetingPreferences:
    """What the API shows: the tutor's own choices, the tenant's allowance, and the options
    the tutor's next meeting gets."""

    tutor_id: str
    preferences: TutorPreferences
    allowed: TutorChoices
    effective: MeetingOptions


class PreferenceNotAllowed(AppError):
    """A preference outside the tenant's allowance (400)."""

    http_status = 400
    code = "preference_not_allowed"


def get_preferences(
    caller: Principal, tutor_id: str, preferences: PreferencesRepository, tenants: TenantDirectory
) -> TutorMeetingPreferences:
    _may_act_for(caller, tutor_id)
    tenant = tenants.get(caller.tenant_id)
    saved = preferences.get(caller.tenant_id, tutor_id)
    return _view(tutor_id, saved, tenant.meeting_options, tenant.tutor_choices)


def save_preferences(
    caller: Principal,
    tutor_id: str,
    command: Command[TutorPreferences],
    preferences: PreferencesRepository,
    tenants: TenantDirectory,
) -> TutorMeetingPreferences:
    """Replace the tutor's preferences; any the tenant does not allow is a 400 naming the
    values it allows, and nothing is saved."""
    _may_act_for(caller, tutor_id)
    wanted = read_command(command)
    tenant = tenants.get(caller.tenant_id)
    problems = refused(wanted, tenant.tutor_choices)
    if problems:
        said = "; ".join(
            f"{_json_name(p.option)} {p.value!s} is not allowed by the tenant"
            + (f" (allowed: {', '.join(p.allowed)})" if p.allowed else " (tutors cannot set it)")
            for p in problems
        )
        raise PreferenceNotAllowed(said)
    preferences.save(caller.tenant_id, tutor_id, wanted)
    return _view(tutor_id, wanted, tenant.meeting_options, tenant.tutor_choices)


def _may_act_for(caller: Principal, tutor_id: str) -> None:
    own = caller.user_id == tutor_id and caller.has(Role.TUTOR)
    if not (own or caller.has(Role.STAFF, Role.ADMIN)):
        raise ForbiddenError(OWN_OR_STAFF)


def _view(
    tutor_id: str, saved: TutorPreferences, options: MeetingOptions, choices: TutorChoices
) -> TutorMeetingPreferences:
    return TutorMeetingPreferences(
        tutor_id, saved, choices, effective_options(options, choices, saved)
    )


def _json_name(option: str) -> str:
    head, *rest = option.split("_")
    return head + "".join(word.title() for word in rest)
