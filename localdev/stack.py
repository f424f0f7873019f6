"""Everything a local run needs, started together and stopped together.

`local_services`: Azurite (tables and queues), the Microsoft Graph emulator with a demo
directory, and the app settings that point the function app at both. `local_stack`: those and
the local Functions host serving function_app.py as a child process with those settings.
`make run` and the end-to-end tests use the same `LocalStack`; `make services` starts the
services alone, for Core Tools' `func start`.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from localdev.azurite import REPO_ROOT, Azurite, start_azurite
from localdev.devauth import DevIssuer, ensure_dev_issuer
from localdev.graph_emulator import GraphEmulator, ManagedIdentity, User
from localdev.tls import LocalTls, make_local_tls

DEMO_TENANT_ID = "demo"
DEMO_DIRECTORY_ID = "8d1c3f4e-0000-4000-8000-000000000de0"
DEMO_CLIENT_ID = "5f0e0a6b-0000-4000-8000-00000000c11e"
# The app's user-assigned managed identity, federated with the demo app registration.
DEMO_IDENTITY_CLIENT_ID = "3a9d6c2e-0000-4000-8000-0000000001d0"
ORGANIZER_UPN = "meetings@demo.example"
SETTINGS_EXAMPLE = REPO_ROOT / "local.settings.json.example"
_STARTED = re.compile(r"Host started on (http://\S+)")


@dataclass
class LocalStack:
    azurite: Azurite
    emulator: GraphEmulator
    tls: LocalTls
    organizer: User
    host_url: str
    host_process: subprocess.Popen[str]
    env: dict[str, str]
    issuer: DevIssuer
    host_output: list[str] = field(default_factory=list)

    @property
    def api(self) -> str:
        return f"{self.host_url}/api"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        # As the servers bind: a port whose old connections are still closing is free to use.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def seed_demo_tenant(connection_string: str) -> None:
    """Store the demo tenant: it signs in with the app's managed identity (no secret), as
    deployments do by default."""
    from shared.domain.tenant import CredentialKind, MicrosoftProfile, Tenant
    from shared.settings import StorageSettings
    from shared.storage.errors import AlreadyExistsError
    from shared.storage.tables import Tables, make_table_service
    from shared.storage.tenants import TableTenantRepository

    service = make_table_service(StorageSettings(connection_string=connection_string))
    # Closing the client drops its keep-alive connection, so Azurite can later stop at once.
    with service, suppress(AlreadyExistsError):
        TableTenantRepository(Tables(service)).add(
            Tenant(
                tenant_id=DEMO_TENANT_ID,
                display_name="Demo tutoring platform",
                microsoft=MicrosoftProfile(
                    DEMO_DIRECTORY_ID, DEMO_CLIENT_ID, None, CredentialKind.MANAGED_IDENTITY
                ),
                organizer_upn=ORGANIZER_UPN,
            )
        )


STRIPE_SECRET_FILE = "stripe-webhook-secret"
IDENTITY_HEADER_FILE = "identity-header"


def ensure_local_secret(state_dir: Path, name: str, make: Callable[[], str]) -> str:
    """A value made once per state folder and kept there, readable by its owner only, so that
    settings handed out once (a local.settings.json) stay valid across restarts."""
    path = state_dir / name
    if path.exists():
        return path.read_text().strip()
    value = make()
    path.touch(mode=0o600)
    path.write_text(value)
    return value


def ensure_stripe_secret(state_dir: Path) -> str:
    """The local Stripe webhook signing secret, so that `localdev.stripe_events` can sign
    events the running host accepts."""
    return ensure_local_secret(
        state_dir, STRIPE_SECRET_FILE, lambda: f"whsec_{secrets.token_hex(24)}"
    )


@dataclass
class LocalServices:
    """What the function app needs around it, whichever host serves it: Azurite, the Graph
    emulator with the demo directory, app registration, managed identity and organizer, the
    development token issuer, and the demo tenant seeded in storage."""

    azurite: Azurite
    emulator: GraphEmulator
    tls: LocalTls
    organizer: User
    issuer: DevIssuer
    settings: dict[str, str]
    """App settings that point the function app at them (local.settings.json `Values`), with
    the two the platform gives an app with a managed identity and the CA bundle to trust."""


def service_settings(
    azurite: Azurite,
    emulator: GraphEmulator,
    tls: LocalTls,
    identity: ManagedIdentity,
    issuer: DevIssuer,
    stripe_secret: str,
    mail_folder: Path,
) -> dict[str, str]:
    """App settings for the function app against the local services."""
    return {
        "AzureWebJobsStorage": azurite.connection_string,
        "DEFAULT_TENANT_ID": DEMO_TENANT_ID,
        "MICROSOFT_TENANT_ID": DEMO_DIRECTORY_ID,
        "MICROSOFT_CLIENT_ID": DEMO_CLIENT_ID,
        # No secret: the app's (emulated) managed identity is a federated credential of the
        # demo app registration, as in Azure.
        "MICROSOFT_CREDENTIAL": "managed_identity",
        "MICROSOFT_IDENTITY_CLIENT_ID": identity.client_id,
        "IDENTITY_ENDPOINT": emulator.identity_endpoint,
        "IDENTITY_HEADER": emulator.identity_header,
        "TEAMS_ORGANIZER_EMAIL": ORGANIZER_UPN,
        "GRAPH_BASE_URL": emulator.graph_url,
        "MICROSOFT_AUTHORITY_HOST": emulator.base_url,
        "MAIL_TRANSPORT": "folder",
        "MAIL_FOLDER": str(mail_folder),
        "STRIPE_WEBHOOK_SECRET": stripe_secret,
        # Timer schedules are %SETTING% references: the host refuses to start without them.
        "RECONCILE_SCHEDULE": "0 */5 * * * *",
        "AUTH_DEV_JWKS_FILE": str(issuer.jwks_file),
        "REQUESTS_CA_BUNDLE": str(tls.bundle_file),
    }


@contextmanager
def local_services(
    *,
    state_dir: Path,
    emulator_port: int = 0,
    azurite_ports: tuple[int, int, int] = (0, 0, 0),
    persist: bool = False,
) -> Iterator[LocalServices]:
    """Start Azurite and the Graph emulator and seed the demo tenant; stop both on exit.

    The identity header and the Stripe secret are kept in `state_dir` and the identity's
    client id is fixed, so that on the same ports the settings are the same run after run.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    tls = make_local_tls(state_dir / "certs")
    azurite = start_azurite(
        location=state_dir / "azurite" if persist else None,
        ports=azurite_ports,
        log_file=state_dir / "azurite.log",
    )
    emulator: GraphEmulator | None = None
    try:
        emulator = GraphEmulator(tls, port=emulator_port)
        emulator.identity_header = ensure_local_secret(
            state_dir, IDENTITY_HEADER_FILE, lambda: secrets.token_urlsafe(16)
        )
        emulator.start()
        emulator.register_app(DEMO_DIRECTORY_ID, DEMO_CLIENT_ID, None)
        identity = emulator.add_managed_identity(DEMO_DIRECTORY_ID, DEMO_IDENTITY_CLIENT_ID)
        emulator.federate(DEMO_DIRECTORY_ID, DEMO_CLIENT_ID, identity)
        organizer = emulator.add_user(DEMO_DIRECTORY_ID, ORGANIZER_UPN, "Demo Meetings Organizer")
        issuer = ensure_dev_issuer(state_dir / "dev-auth")
        stripe_secret = ensure_stripe_secret(state_dir)
        seed_demo_tenant(azurite.connection_string)
        settings = service_settings(
            azurite, emulator, tls, identity, issuer, stripe_secret, state_dir / "mail"
        )
        yield LocalServices(azurite, emulator, tls, organizer, issuer, settings)
    finally:
        if emulator is not None:
            emulator.stop()
        azurite.stop()


def local_settings_document(
    services: LocalServices,
    existing: dict[str, Any] | None = None,
    example: Path = SETTINGS_EXAMPLE,
) -> dict[str, Any]:
    """local.settings.json for a host of one's own (Core Tools' `func start`) against the
    services: every value of `local.settings.json.example`, then those of an `existing` file
    (which a developer may have filled in), then the services' own."""
    document: dict[str, Any] = json.loads(example.read_text())
    values = {**document["Values"], **(existing or {}).get("Values", {}), **services.settings}
    values["FUNCTIONS_WORKER_RUNTIME"] = "python"
    return {**document, **(existing or {}), "Values": values}


@contextmanager
def local_stack(
    *,
    state_dir: Path,
    host_port: int = 0,
    emulator_port: int = 0,
    azurite_ports: tuple[int, int, int] = (0, 0, 0),
    persist: bool = False,
    echo: bool = False,
    extra_env: dict[str, str] | None = None,
    wait_healthy: bool = True,
) -> Iterator[LocalStack]:
    """Start the local services and the Functions host; stop them all on exit."""
    with local_services(
        state_dir=state_dir,
        emulator_port=emulator_port,
        azurite_ports=azurite_ports,
        persist=persist,
    ) as services:
        env = {
            **os.environ,
            **services.settings,
            "PYTHONUNBUFFERED": "1",
            # `MAIL_TRANSPORT=graph make run` sends through the emulator's sendMail instead.
            "MAIL_TRANSPORT": os.environ.get("MAIL_TRANSPORT") or "folder",
            **(extra_env or {}),
        }
        port = host_port or free_port()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "localdev.host",
                "--script-root",
                str(REPO_ROOT),
                "--port",
                str(port),
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            output: list[str] = []
            url = _wait_for_host(process, output, echo)
            stack = LocalStack(
                services.azurite,
                services.emulator,
                services.tls,
                services.organizer,
                url,
                process,
                env,
                services.issuer,
                output,
            )
            if wait_healthy:
                _wait_healthy(stack)
            yield stack
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()


def _wait_for_host(process: subprocess.Popen[str], output: list[str], echo: bool) -> str:
    found: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            if echo:
                sys.stdout.write(line)
                sys.stdout.flush()
            match = _STARTED.search(line)
            if match and not found:
                found.append(match.group(1))
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    ready.wait(timeout=60)
    if not found:
        raise RuntimeError("the Functions host did not start:\n" + "".join(output[-30:]))
    return found[0]


def _wait_healthy(stack: LocalStack, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            response = requests.get(f"{stack.api}/v1/health", timeout=5)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text}"
        except requests.RequestException as exc:
            last = str(exc)
        time.sleep(0.2)
    raise RuntimeError(f"the service never became healthy: {last}")
