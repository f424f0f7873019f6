"""Traces and metrics with OpenTelemetry, exported to Application Insights when it is configured.

Off by default: unless `APPLICATIONINSIGHTS_CONNECTION_STRING` is set (or OpenTelemetry's own
`OTEL_TRACES_EXPORTER=console` asks for spans on the console, locally), nothing of
OpenTelemetry is imported and every call here is a no-op, so a cold start pays nothing for it.
When on:

- one trace follows a booking across functions: the HTTP request (or Stripe's webhook) is a
  server span, each queue message it causes carries the W3C `traceparent` of the span that sent
  it, and the queue worker's span continues that trace; Graph, Stripe and storage calls are
  dependencies under it (the requests and Azure SDK instrumentations);
- every `log_event` line is also a log record whose fields are attributes (custom dimensions in
  Application Insights), and the current span carries the booking and tenant;
- seed 000's four metrics are instruments: `meetings.operations` (outcome, operation, tenant),
  `meetings.link_latency` (seconds, tenant), `meetings.attempts` (operation, tenant, result,
  retry) and `graph.calls` (operation, status, tenant).

Attributes never hold secrets, tokens or join URLs: `observability` drops such fields before they
get here, and `safe_attributes` drops them again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from typing import Any

_NEVER = ("token", "secret", "password", "authorization", "joinurl", "joinweburl", "assertion")
_lock = threading.Lock()
_state: dict[str, Any] = {"on": False, "tracer": None, "meter": None, "instruments": None}


def configure(env: Mapping[str, str] = os.environ) -> bool:
    """Turn telemetry on if the environment asks for it (once per process). True when on."""
    with _lock:
        if _state["on"]:
            return True
        connection = env.get("APPLICATIONINSIGHTS_CONNECTION_STRING", "").strip()
        if connection:
            from azure.monitor.opentelemetry import configure_azure_monitor

            try:
                # The app's own loggers go to Application Insights as traces, with their fields.
                configure_azure_monitor(connection_string=connection, logger_name="meetings")
            except Exception as exc:
                # A malformed connection string must not take the app down with it.
                logging.getLogger("meetings.telemetry").error(
                    '{"event":"telemetry_unavailable","errorType":"%s"}', type(exc).__name__
                )
                return False
        elif env.get("OTEL_TRACES_EXPORTER", "").strip() == "console":
            from opentelemetry import trace
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

            provider = TracerProvider()
            provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
            trace.set_tracer_provider(provider)
        else:
            return False
        _turn_on(None, None)
        return True


def install(tracer_provider: Any, meter_provider: Any) -> None:
    """Use these providers (tests: in-memory exporters), with the requests instrumentation."""
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    with _lock:
        RequestsInstrumentor().instrument(tracer_provider=tracer_provider)
        _turn_on(tracer_provider, meter_provider)


def uninstall() -> None:
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    with _lock:
        RequestsInstrumentor().uninstrument()
        _state.update(on=False, tracer=None, meter=None, instruments=None)


def _turn_on(tracer_provider: Any, meter_provider: Any) -> None:
    from opentelemetry import metrics, trace

    tracer = (tracer_provider or trace.get_tracer_provider()).get_tracer("meetings")
    meter = (meter_provider or metrics.get_meter_provider()).get_meter("meetings")
    _state.update(
        on=True,
        tracer=tracer,
        meter=meter,
        instruments={
            "operations": meter.create_counter(
                "meetings.operations", description="Meeting operations ended, by outcome"
            ),
            "link_latency": meter.create_histogram(
                "meetings.link_latency", unit="s", description="Request to meeting link"
            ),
            "attempts": meter.create_counter(
                "meetings.attempts", description="Graph attempts at meeting steps"
            ),
            "graph_calls": meter.create_counter(
                "graph.calls", description="Microsoft Graph calls, by status"
            ),
        },
    )


def enabled() -> bool:
    return bool(_state["on"])


def safe_attributes(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Fields as OpenTelemetry attributes: scalars kept, others as text, secrets dropped."""
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if value is None or any(word in name.lower() for word in _NEVER):
            continue
        out[name] = value if isinstance(value, str | bool | int | float) else str(value)
    return out


@contextlib.contextmanager
def span(
    name: str, *, kind: str = "internal", parent: str | None = None, **attributes: Any
) -> Iterator[None]:
    """A span (no-op while telemetry is off). `parent`: a W3C traceparent to continue."""
    if not _state["on"]:
        yield
        return
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    context = None
    if parent:
        context = TraceContextTextMapPropagator().extract({"traceparent": parent})
    span_kind = {
        "server": trace.SpanKind.SERVER,
        "consumer": trace.SpanKind.CONSUMER,
        "client": trace.SpanKind.CLIENT,
    }.get(kind, trace.SpanKind.INTERNAL)
    with _state["tracer"].start_as_current_span(
        name, context=context, kind=span_kind, attributes=safe_attributes(attributes)
    ) as current:
        try:
            yield
        except Exception as exc:
            current.set_status(trace.Status(trace.StatusCode.ERROR, type(exc).__name__))
            raise


def annotate(**attributes: Any) -> None:
    """Add attributes (a booking, a tenant, a status) to the current span, if any."""
    if not _state["on"]:
        return
    from opentelemetry import trace

    current = trace.get_current_span()
    if current.is_recording():
        current.set_attributes(safe_attributes(attributes))


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span, for a message that continues the trace."""
    if not _state["on"]:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier.get("traceparent")


def count(instrument: str, amount: float = 1, **attributes: Any) -> None:
    """Add to a counter, or record into a histogram (no-op while off)."""
    instruments = _state["instruments"]
    if instruments is None:
        return
    target = instruments[instrument]
    attrs = safe_attributes(attributes)
    if hasattr(target, "record"):
        target.record(amount, attributes=attrs)
    else:
        target.add(amount, attributes=attrs)
