"""Tenant Teams settings (SPEC §3): capability, settings, organizer verification."""

from __future__ import annotations

from typing import TYPE_CHECKING

import azure.functions as func

from shared.api.responses import authenticated, json_response

if TYPE_CHECKING:
    from shared.auth.principal import Principal

bp = func.Blueprint()


@bp.function_name("teams_capability")
@bp.route(route="v1/teams-meetings/capability", methods=["GET"])
@authenticated
def capability(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    from shared.api.representations import capability_json
    from shared.bootstrap import services
    from shared.services import teams_settings

    return json_response(capability_json(teams_settings.capability(caller, services().directory)))


@bp.function_name("teams_settings_get")
@bp.route(route="v1/teams-meetings/settings", methods=["GET"])
@authenticated
def get_settings(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    from shared.api.representations import settings_json
    from shared.bootstrap import services
    from shared.services import teams_settings

    return json_response(settings_json(teams_settings.get_settings(caller, services().directory)))


@bp.function_name("teams_settings_put")
@bp.route(route="v1/teams-meetings/settings", methods=["PUT"])
@authenticated
def put_settings(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    from shared.api import commands as parse
    from shared.api.representations import settings_json
    from shared.bootstrap import services
    from shared.services import teams_settings

    svc = services()
    saved = teams_settings.update_settings(
        caller, lambda: parse.settings_change(req), svc.directory, svc.clock()
    )
    return json_response(settings_json(saved))


@bp.function_name("teams_verify_organizer")
@bp.route(route="v1/teams-meetings/verify-organizer", methods=["POST"])
@authenticated
def verify_organizer(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    from shared.api import commands as parse
    from shared.api.representations import verification_json
    from shared.bootstrap import services
    from shared.services import teams_settings

    svc = services()
    result = teams_settings.verify_organizer(
        caller, lambda: parse.verification(req), svc.directory, svc.graph, svc.check_meetings
    )
    return json_response(verification_json(result))
