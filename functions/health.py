"""GET /api/v1/health: is storage reachable, and which version answers."""

from __future__ import annotations

import azure.functions as func

from shared.api.responses import json_response

bp = func.Blueprint()


@bp.function_name("health")
@bp.route(route="v1/health", methods=["GET"])
def health(req: func.HttpRequest) -> func.HttpResponse:
    from shared import __version__
    from shared.bootstrap import services
    from shared.storage.errors import StorageError

    try:
        services().tables.ping()
    except StorageError:
        body = {"status": "degraded", "storage": "unreachable", "version": __version__}
        return json_response(body, status=503)
    return json_response({"status": "ok", "storage": "ok", "version": __version__})
