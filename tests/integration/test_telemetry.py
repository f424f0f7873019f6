"""One booking's path is one trace, and seed 000's metrics are instruments that agree with the
audit: the function app served in this process by the local host (the function index, HTTP
routes, the meeting-ops queue on Azurite), Graph faked at the wire by the emulator over TLS, and
OpenTelemetry's in-memory exporter and reader in place of Application Insights."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from localdev.azurite import REPO_ROOT
from localdev.devauth import ensure_dev_issuer
from localdev.graph_emulator import Fault
from localdev.host import LocalHost
from shared import bootstrap, settings, telemetry
from shared.services.metrics import compute_metrics
from tests.conftest import STRIPE_SECRET
from tests.e2e.conftest import booking_body
from tests.integration.conftest import CLIENT_ID, DIRECTORY, ORGANIZER

pytestmark = pytest.mark.integration

SECRET = "services-secret"


@pytest.fixture
def traced_host(azurite, emulator, tmp_path, monkeypatch):
    issuer = ensure_dev_issuer(tmp_path / "dev-auth")
    env = {
        "AzureWebJobsStorage": azurite.connection_string,
        "GRAPH_BASE_URL": emulator.graph_url,
        "MICROSOFT_AUTHORITY_HOST": emulator.base_url,
        "AUTH_DEV_JWKS_FILE": str(issuer.jwks_file),
        "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET,
        "DEFAULT_TENANT_ID": "traced",
        "MICROSOFT_TENANT_ID": DIRECTORY,
        "MICROSOFT_CLIENT_ID": CLIENT_ID,
        "MICROSOFT_CREDENTIAL": "secret",
        "MICROSOFT_CLIENT_SECRET": SECRET,
        "TEAMS_ORGANIZER_EMAIL": ORGANIZER,
        "MEETING_INLINE_BUDGET_SECONDS": "1",
        "RECONCILE_SCHEDULE": "0 0 0 1 1 *",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    telemetry.install(tracer_provider, MeterProvider(metric_readers=[reader]))
    bootstrap.services.cache_clear()
    settings.get_settings.cache_clear()
    host = LocalHost(script_root=REPO_ROOT, app_module="function_app", port=0).start()
    try:
        yield host, issuer, spans, reader
    finally:
        host.stop()
        telemetry.uninstall()
        bootstrap.services.cache_clear()
        settings.get_settings.cache_clear()


def wait_for(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return bool(predicate())


def metric_points(reader) -> dict[str, list]:
    found: dict[str, list] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


def test_an_approval_under_one_503_is_one_trace_and_its_metrics_match_the_audit(
    traced_host, emulator
):
    host, issuer, spans, reader = traced_host
    api = f"{host.base_url}/api"
    student = issuer.mint(user="student-1", roles=["student"], tenant="traced")
    staff = issuer.mint(user="staff-1", roles=["staff"], tenant="traced")
    before = datetime.now(UTC) - timedelta(minutes=1)

    # GIVEN a booking, and Teams answering the first create with 503
    created = requests.post(
        f"{api}/v1/bookings",
        json=booking_body(),
        headers={"Authorization": f"Bearer {student}"},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    booking_id = created.json()["id"]
    emulator.add_fault(Fault(operation="createOrGet", status=503, count=1))

    # WHEN staff approve it, and the queue makes the meeting
    approved = requests.post(
        f"{api}/v1/bookings/{booking_id}/approve",
        json={},
        headers={"Authorization": f"Bearer {staff}"},
        timeout=30,
    )
    assert approved.status_code == 200, approved.text

    def meeting() -> dict:
        return dict(
            requests.get(
                f"{api}/v1/bookings/{booking_id}",
                headers={"Authorization": f"Bearer {staff}"},
                timeout=30,
            ).json()
        )

    assert wait_for(lambda: meeting()["meeting"]["status"] == "created")
    join_url = meeting()["meetingLink"]

    # THEN the approval's request span, the queue worker's span and the Graph calls are one trace
    finished = spans.get_finished_spans()
    (request,) = [s for s in finished if s.kind is SpanKind.SERVER and s.name.endswith("/approve")]
    trace = [s for s in finished if s.context.trace_id == request.context.trace_id]
    workers = [s for s in trace if s.name == "meeting-ops process"]
    assert workers, [s.name for s in finished]
    assert all(w.kind is SpanKind.CONSUMER for w in workers)
    assert all(w.attributes["bookingId"] == booking_id for w in workers)
    graph_calls = [
        s
        for s in trace
        if s.kind is SpanKind.CLIENT and "onlineMeetings" in str(s.attributes.get("http.url", ""))
    ]
    statuses = sorted(int(s.attributes["http.status_code"]) for s in graph_calls)
    assert 503 in statuses
    assert 201 in statuses
    worker_ids = {w.context.span_id for w in workers}
    assert any(s.parent is not None and s.parent.span_id in worker_ids for s in graph_calls)
    assert request.attributes["bookingId"] == booking_id

    # AND no attribute anywhere holds a token, a secret or the join link
    for span in finished:
        for name, value in span.attributes.items():
            text = f"{name}={value}"
            for forbidden in (student, staff, SECRET, STRIPE_SECRET, join_url, "Bearer "):
                assert forbidden not in text, (span.name, name)

    # AND the instruments say what the audit says
    points = metric_points(reader)
    attempts = {
        (p.attributes["operation"], p.attributes["result"], p.attributes["retry"]): p.value
        for p in points["meetings.attempts"]
    }
    audit = compute_metrics(
        bootstrap.services().audit.list_for_period("traced", before, datetime.now(UTC)),
        before,
        datetime.now(UTC),
        tenant_id="traced",
    )
    assert attempts[("create", "failed", False)] == audit.failed_attempts == 1
    assert sum(attempts.values()) == audit.attempts
    operations = {
        (p.attributes["operation"], p.attributes["retried"]): p.value
        for p in points["meetings.operations"]
        if p.attributes["outcome"] == "succeeded"
    }
    assert sum(operations.values()) == audit.operations.succeeded
    assert sum(v for (_, retried), v in operations.items() if retried) == audit.operations.retried
    assert audit.retry_rate == 0.5  # the create was retried; its options PATCH was not
    (latency,) = points["meetings.link_latency"]
    assert latency.count == audit.latency.count == 1
    graph = {p.attributes["status"]: p.value for p in points["graph.calls"]}
    assert graph["503"] == 1


def test_a_refused_request_is_logged_and_traced_by_its_route_template(traced_host, caplog):
    host, issuer, spans, _ = traced_host
    caplog.set_level(logging.INFO, logger="meetings")
    staff = issuer.mint(user="staff-1", roles=["staff"], tenant="traced")

    # WHEN staff ask for a booking that does not exist
    answer = requests.get(
        f"{host.base_url}/api/v1/bookings/no-such-booking",
        headers={"Authorization": f"Bearer {staff}"},
        timeout=30,
    )

    # THEN the log line and the span name the route, not the id (the runbook groups by them)
    assert answer.status_code == 404
    (failed,) = [
        json.loads(r.getMessage())
        for r in caplog.records
        if r.name == "meetings.api" and '"request_failed"' in r.getMessage()
    ]
    assert (failed["route"], failed["status"], failed["code"]) == (
        "/api/v1/bookings/{id}",
        404,
        "not_found",
    )
    names = [s.name for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert names == ["GET /api/v1/bookings/{id}"]
