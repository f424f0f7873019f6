"""Bookings API (SPEC §4): create, list, read, and the lifecycle actions.

Each handler imports what it calls on its first call, not when the app is indexed: indexing
(every cold start) then costs the routes alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import azure.functions as func

from shared.api.responses import authenticated, json_response

if TYPE_CHECKING:
    from shared.auth.principal import Principal

bp = func.Blueprint()


@bp.function_name("bookings_create")
@bp.route(route="v1/bookings", methods=["POST"])
@authenticated
def create(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    from shared.api import commands as parse
    from shared.api.representations import booking_json
    from shared.bootstrap import services
    from shared.services import bookings as use_cases
    from shared.services.reminders import offsets_of

    svc = services()
    created = use_cases.create_booking(
        caller,
        lambda: parse.new_booking(req, svc.clock(), svc.settings.booking_horizon),
        svc.booking_deps,
        lambda: parse.idempotency_key(req),
    )
    replayed = {"Idempotent-Replayed": "true"} if created.replayed else {}
    return json_response(
        booking_json(created.booking, caller, offsets_of(caller, svc.directory)),
        status=201,
        headers=replayed,
    )


@bp.function_name("bookings_list")
@bp.route(route="v1/bookings", methods=["GET"])
@authenticated
def list_bookings(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    from shared.api import commands as parse
    from shared.api.representations import booking_json
    from shared.bootstrap import services
    from shared.services import bookings as use_cases
    from shared.services.reminders import offsets_of

    query, participant = parse.booking_query(req)
    svc = services()
    page = use_cases.list_bookings(caller, query, participant, svc.booking_deps)
    offsets = offsets_of(caller, svc.directory)
    return json_response(
        {
            "bookings": [booking_json(b, caller, offsets) for b in page.bookings],
            "nextPageToken": parse.next_page_token(page, query, participant),
        }
    )


@bp.function_name("bookings_get")
@bp.route(route="v1/bookings/{id}", methods=["GET"])
@authenticated
def get(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    from shared.api import commands as parse
    from shared.api.representations import booking_json
    from shared.bootstrap import services
    from shared.services import bookings as use_cases
    from shared.services.reminders import offsets_of

    svc = services()
    booking = use_cases.get_booking(caller, parse.booking_id(req), svc.booking_deps)
    return json_response(booking_json(booking, caller, offsets_of(caller, svc.directory)))


@bp.function_name("bookings_approve")
@bp.route(route="v1/bookings/{id}/approve", methods=["POST"])
@authenticated
def approve(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    from shared.api import commands as parse
    from shared.api.representations import action_json
    from shared.bootstrap import services
    from shared.services import bookings as use_cases
    from shared.services.reminders import offsets_of

    svc = services()
    result = use_cases.approve_booking(
        caller, parse.booking_id(req), lambda: parse.approval(req), svc.booking_deps
    )
    return json_response(
        action_json(result.booking, caller, result.warning, offsets_of(caller, svc.directory))
    )


@bp.function_name("bookings_decline")
@bp.route(route="v1/bookings/{id}/decline", methods=["POST"])
@authenticated
def decline(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    from shared.api import commands as parse
    from shared.api.representations import action_json
    from shared.bootstrap import services
    from shared.services import bookings as use_cases
    from shared.services.reminders import offsets_of

    svc = services()
    result = use_cases.decline_booking(
        caller, parse.booking_id(req), lambda: parse.reason(req), svc.booking_deps
    )
    return json_response(
        action_json(result.booking, caller, result.warning, offsets_of(caller, svc.directory))
    )


@bp.function_name("bookings_cancel")
@bp.route(route="v1/bookings/{id}/cancel", methods=["POST"])
@authenticated
def cancel(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    from shared.api import commands as parse
    from shared.api.representations import action_json
    from shared.bootstrap import services
    from shared.services import bookings as use_cases
    from shared.services.reminders import offsets_of

    svc = services()
    result = use_cases.cancel_booking(
        caller, parse.booking_id(req), lambda: parse.reason(req), svc.booking_deps
    )
    return json_response(
        action_json(result.booking, caller, result.warning, offsets_of(caller, svc.directory))
    )


@bp.function_name("bookings_reschedule")
@bp.route(route="v1/bookings/{id}/reschedule", methods=["POST"])
@authenticated
def reschedule(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    from shared.api import commands as parse
    from shared.api.representations import action_json
    from shared.bootstrap import services
    from shared.services import bookings as use_cases
    from shared.services.reminders import offsets_of

    svc = services()
    result = use_cases.reschedule_booking(
        caller,
        parse.booking_id(req),
        lambda: parse.new_times(req, svc.clock(), svc.settings.booking_horizon),
        svc.booking_deps,
    )
    return json_response(
        action_json(result.booking, caller, result.warning, offsets_of(caller, svc.directory))
    )


@bp.function_name("bookings_complete")
@bp.route(route="v1/bookings/{id}/complete", methods=["POST"])
@authenticated
def complete(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    from shared.api import commands as parse
    from shared.api.representations import action_json
    from shared.bootstrap import services
    from shared.services import bookings as use_cases
    from shared.services.reminders import offsets_of

    svc = services()
    result = use_cases.complete_booking(
        caller, parse.booking_id(req), lambda: parse.outcome(req), svc.booking_deps
    )
    return json_response(
        action_json(result.booking, caller, result.warning, offsets_of(caller, svc.directory))
    )


@bp.function_name("bookings_generate_meeting")
@bp.route(route="v1/bookings/{id}/generate-meeting", methods=["POST"])
@authenticated
def generate_meeting(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    from shared.api import commands as parse
    from shared.api.representations import generation_json
    from shared.bootstrap import services
    from shared.services import bookings as use_cases

    result = use_cases.generate_meeting(
        caller, parse.booking_id(req), services().booking_deps, lambda: parse.no_body(req)
    )
    return json_response(*generation_json(result.booking))


@bp.function_name("bookings_retry_meeting")
@bp.route(route="v1/bookings/{id}/retry-meeting", methods=["POST"])
@authenticated
def retry_meeting(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    from shared.api import commands as parse
    from shared.api.representations import action_json
    from shared.bootstrap import services
    from shared.services import bookings as use_cases
    from shared.services.reminders import offsets_of

    svc = services()
    result = use_cases.retry_meeting(
        caller, parse.booking_id(req), svc.booking_deps, lambda: parse.no_body(req)
    )
    return json_response(
        action_json(result.booking, caller, result.warning, offsets_of(caller, svc.directory)),
        status=202,
    )
