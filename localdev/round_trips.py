"""Storage round trips and Graph calls per action, counted at the wire.

The function app is driven in this process through its own function index (the handlers the
host would call, with the app's own `services()`), on Azurite, with Graph answered at the wire
by the Graph emulator through `responses`. Storage requests are counted by the hook every
storage client carries (`shared.storage.wire`); Graph requests by `responses`.

Used by `tests/integration/test_round_trips.py` (bounds) and `scripts/bench_round_trips.py`.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import azure.functions as func

from localdev import stripe_events
from localdev.devauth import DevIssuer
from localdev.graph_emulator import GraphEmulator
from shared.storage.wire import WIRE, since

DIRECTORY = "0a0b0c0d-0000-4000-8000-0000000000bb"
CLIENT_ID = "client-round-trips"
SECRET = "round-trips-secret"
SECRET_SETTING = "ROUND_TRIPS_SECRET"
ORGANIZER = "organizer@rt.example"
GRAPH_BASE = "https://graph.test"


@dataclass
class Measured:
    """One action: its storage requests by kind, its Graph requests, its time."""

    action: str
    storage: dict[str, int]
    graph: list[str]
    ms: float
    status: int
    body: Any = None

    @property
    def round_trips(self) -> int:
        from shared.storage.wire import round_trips

        return round_trips(self.storage)


@dataclass
class AppInProcess:
    """The function app's handlers, called as the host calls them."""

    handlers: dict[str, Callable[..., Any]]
    issuer: DevIssuer
    emulator: GraphEmulator
    graph_calls: Callable[[], list[str]]
    tenant: str
    stripe_secret: str
    _slot: int = field(default=0)

    def token(self, user: str, *roles: str) -> str:
        return self.issuer.mint(user=user, roles=list(roles), tenant=self.tenant)

    def call(
        self,
        function: str,
        method: str,
        url: str,
        *,
        body: Any = None,
        raw: bytes | None = None,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
        route_params: Mapping[str, str] | None = None,
    ) -> func.HttpResponse:
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        request = func.HttpRequest(
            method,
            f"http://localhost/api/{url}",
            headers=all_headers,
            params={},
            route_params=dict(route_params or {}),
            body=data,
        )
        response: func.HttpResponse = self.handlers[function](req=request)
        return response

    def measure(self, action: str, run: Callable[[], func.HttpResponse]) -> Measured:
        before, graph_before = WIRE.snapshot(), len(self.graph_calls())
        started = time.perf_counter()
        response = run()
        ms = (time.perf_counter() - started) * 1000
        body = response.get_body()
        return Measured(
            action,
            since(before, WIRE.snapshot()),
            self.graph_calls()[graph_before:],
            ms,
            response.status_code,
            json.loads(body) if body else None,
        )

    # -- the actions -----------------------------------------------------------------------

    def create(self, student: str = "student-1") -> str:
        self._slot += 1
        start = (datetime.now(UTC) + timedelta(days=3, hours=self._slot)).replace(
            minute=0, second=0, microsecond=0
        )
        body = {
            "subject": "Computer Science",
            "level": "A-Level",
            "startDateTime": _iso(start),
            "endDateTime": _iso(start + timedelta(hours=1)),
            "timeZone": "Europe/London",
            "participants": [
                {"userId": student, "role": "student", "email": f"{student}@example.com"},
                {"userId": "tutor-1", "role": "tutor", "email": "tutor-1@example.com"},
            ],
        }
        response = self.call(
            "bookings_create",
            "POST",
            "v1/bookings",
            body=body,
            token=self.token(student, "student"),
        )
        if response.status_code != 201:
            raise RuntimeError(f"create answered {response.status_code}: {response.get_body()!r}")
        booking_id: str = json.loads(response.get_body())["id"]
        return booking_id

    def approve(self, booking_id: str) -> Measured:
        return self.measure(
            "approve",
            lambda: self.call(
                "bookings_approve",
                "POST",
                f"v1/bookings/{booking_id}/approve",
                body={},
                token=self.token("staff-1", "staff"),
                route_params={"id": booking_id},
            ),
        )

    def reschedule(self, booking_id: str) -> Measured:
        self._slot += 1
        start = (datetime.now(UTC) + timedelta(days=5, hours=self._slot)).replace(
            minute=0, second=0, microsecond=0
        )
        body = {"startDateTime": _iso(start), "endDateTime": _iso(start + timedelta(hours=1))}
        return self.measure(
            "reschedule",
            lambda: self.call(
                "bookings_reschedule",
                "POST",
                f"v1/bookings/{booking_id}/reschedule",
                body=body,
                token=self.token("staff-1", "staff"),
                route_params={"id": booking_id},
            ),
        )

    def cancel(self, booking_id: str) -> Measured:
        return self.measure(
            "cancel",
            lambda: self.call(
                "bookings_cancel",
                "POST",
                f"v1/bookings/{booking_id}/cancel",
                body={"reason": "no longer needed"},
                token=self.token("staff-1", "staff"),
                route_params={"id": booking_id},
            ),
        )

    def pay(self, booking_id: str) -> Measured:
        payload = json.dumps(stripe_events.payment_succeeded(self.tenant, booking_id)).encode()
        signature = stripe_events.signature(payload, self.stripe_secret)
        return self.measure(
            "payment webhook",
            lambda: self.call(
                "payments_webhook",
                "POST",
                "v1/payments/webhook",
                raw=payload,
                headers={"Stripe-Signature": signature},
            ),
        )


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def app_env(
    connection_string: str, issuer: DevIssuer, stripe_secret: str, mail_folder: Path
) -> dict[str, str]:
    """The settings of the app in process: Azurite, Graph at the wire, mail to a folder."""
    return {
        "MAIL_TRANSPORT": "folder",
        "MAIL_FOLDER": str(mail_folder),
        "AzureWebJobsStorage": connection_string,
        "GRAPH_BASE_URL": f"{GRAPH_BASE}/v1.0",
        "MICROSOFT_AUTHORITY_HOST": GRAPH_BASE,
        "AUTH_DEV_JWKS_FILE": str(issuer.jwks_file),
        "STRIPE_WEBHOOK_SECRET": stripe_secret,
        SECRET_SETTING: SECRET,
    }


@contextmanager
def app_in_process(issuer: DevIssuer, stripe_secret: str) -> Iterator[AppInProcess]:
    """The function index's handlers on the app's own services (built from the environment,
    which the caller has set with `app_env`), a fresh tenant with Teams configured, Graph at
    the wire; warmed by one approval, so that sign-in and the organizer lookup, which a running
    service holds, are not counted."""
    import responses

    import function_app
    from shared import bootstrap, settings
    from shared.domain.tenant import MicrosoftProfile, Tenant

    bootstrap.services.cache_clear()
    settings.get_settings.cache_clear()
    emulator = GraphEmulator(tls=None)
    emulator.register_app(DIRECTORY, CLIENT_ID, SECRET)
    emulator.add_user(DIRECTORY, ORGANIZER, "Organizer")
    functions = getattr(function_app.app, "_local_host_index", None)
    if functions is None:
        functions = list(function_app.app.get_functions())
        function_app.app._local_host_index = functions  # type: ignore[attr-defined]
    handlers = {fn.get_function_name(): fn.get_user_function() for fn in functions}
    tenant = f"rt-{uuid.uuid4().hex[:10]}"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add_passthru("http://127.0.0.1")
        rsps.add_passthru("http://localhost")
        emulator.install_responses(rsps, base_url=GRAPH_BASE)

        def graph_calls() -> list[str]:
            return [
                f"{c.request.method} {c.request.url}"
                for c in rsps.calls
                if str(c.request.url).startswith(GRAPH_BASE)
            ]

        bootstrap.services().tenants.add(
            Tenant(
                tenant_id=tenant,
                display_name="Round trips",
                microsoft=MicrosoftProfile(DIRECTORY, CLIENT_ID, SECRET_SETTING),
                organizer_upn=ORGANIZER,
            )
        )
        app = AppInProcess(handlers, issuer, emulator, graph_calls, tenant, stripe_secret)
        warm = app.approve(app.create())
        if warm.status != 200:
            raise RuntimeError(f"the warming approval answered {warm.status}: {warm.body}")
        try:
            yield app
        finally:
            bootstrap.services.cache_clear()
            settings.get_settings.cache_clear()


def set_environment(env: Mapping[str, str]) -> dict[str, str | None]:
    """Set `env` in os.environ; what was there before, for `restore_environment`."""
    before = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    return before


def restore_environment(before: Mapping[str, str | None]) -> None:
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
