"""A booking's calendar invite as a file (SPEC §4, §8)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import azure.functions as func

from shared.api.responses import authenticated

if TYPE_CHECKING:
    from shared.auth.principal import Principal

bp = func.Blueprint()


@bp.function_name("bookings_calendar")
@bp.route(route="v1/bookings/{id}/calendar.ics", methods=["GET"])
@authenticated
def calendar(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    from shared.api import commands as parse
    from shared.bootstrap import services
    from shared.services.calendar import calendar_invite

    body = calendar_invite(caller, parse.booking_id(req), services().booking_deps)
    return func.HttpResponse(
        body=body,
        status_code=200,
        mimetype="text/calendar",
        charset="utf-8",
        headers={
            "Cache-Control": "no-store",
            "Content-Disposition": 'inline; filename="invite.ics"',
        },
    )
