"""GET /api/v1/health: are the settings whole and storage reachable, how many tenants' Teams
integrations are unhealthy (the service's health, so still 200), and which version answers."""

from __future__ import annotations

import azure.functions as func

from shared.api.responses import json_response

bp = func.Blueprint()


@bp.function_name("health")
@bp.route(route="v1/health", methods=["GET"])
def health(req: func.HttpRequest) -> func.HttpResponse:
    from shared import __version__
    from shared.bootstrap import services
    from shared.settings import SettingsError
    from shared.storage.errors import StorageError

    try:
        svc = services()
        svc.tables.ping()
        unhealthy = svc.credential_health.unhealthy_tenants()
    except SettingsError as exc:
        body = {
            "status": "misconfigured",
            "error": exc.public_message,
            "code": exc.code,
            "settings": list(exc.names),
            "version": __version__,
        }
        return json_response(body, status=503)
    except StorageError:
        body = {"status": "degraded", "storage": "unreachable", "version": __version__}
        return json_response(body, status=503)
    return json_response(
        {"status": "ok", "storage": "ok", "unhealthyTenants": unhealthy, "version": __version__}
    )
