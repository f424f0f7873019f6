"""A tutor's meeting preferences (seed 000's "per tutor preference"): lobby, presenters, chat
and recording for the tutor's own meetings, within what the tenant allows."""

from __future__ import annotations

from typing import TYPE_CHECKING

import azure.functions as func

from shared.api.responses import authenticated, json_response

if TYPE_CHECKING:
    from shared.auth.principal import Principal

bp = func.Blueprint()


@bp.function_name("tutor_preferences_get")
@bp.route(route="v1/tutors/{id}/meeting-preferences", methods=["GET"])
@authenticated
def get_preferences(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    from shared.api import commands as parse
    from shared.api.representations import tutor_preferences_json
    from shared.bootstrap import services
    from shared.services import tutor_preferences

    svc = services()
    view = tutor_preferences.get_preferences(
        caller, parse.tutor_id(req), svc.preferences, svc.directory
    )
    return json_response(tutor_preferences_json(view))


@bp.function_name("tutor_preferences_put")
@bp.route(route="v1/tutors/{id}/meeting-preferences", methods=["PUT"])
@authenticated
def put_preferences(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    from shared.api import commands as parse
    from shared.api.representations import tutor_preferences_json
    from shared.bootstrap import services
    from shared.services import tutor_preferences

    svc = services()
    view = tutor_preferences.save_preferences(
        caller,
        parse.tutor_id(req),
        lambda: parse.tutor_preferences(req),
        svc.preferences,
        svc.directory,
    )
    return json_response(tutor_preferences_json(view))
