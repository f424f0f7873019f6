"""`make services` (`python -m localdev.run --services-only`): Azurite and the Graph emulator
alone, for a Functions host of one's own (Core Tools' `func start`), and the local.settings.json
that points the app at them. Run as a developer runs it: a process whose output is read; then a
host that knows nothing but the written file (as `func start` does) serves the app."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from localdev.azurite import REPO_ROOT
from localdev.devauth import ensure_dev_issuer
from localdev.stack import DEMO_TENANT_ID, ORGANIZER_UPN, port_is_free
from shared.settings import SETTINGS, Settings, StorageSettings

pytestmark = pytest.mark.e2e

EXAMPLE = json.loads((REPO_ROOT / "local.settings.json.example").read_text())["Values"]
READY = "Ctrl-C stops the services."
# Stable across restarts with the same state folder, so that a pasted file stays valid.
KEPT = ("IDENTITY_HEADER", "MICROSOFT_IDENTITY_CLIENT_ID", "STRIPE_WEBHOOK_SECRET")


@dataclass
class Process:
    """A child process whose output lines are collected as they come."""

    popen: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = 90.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if match := re.search(pattern, line):
                    return match
            if self.popen.poll() is not None and not any(
                re.search(pattern, line) for line in self.lines
            ):
                break
            time.sleep(0.1)
        raise AssertionError(f"{pattern!r} never came:\n" + "\n".join(self.lines[-40:]))

    def stop(self) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            raise


def start_services(state: Path, *args: str) -> Process:
    process = Process(
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "localdev.run",
                "--services-only",
                "--free-ports",
                "--fresh",
                "--state-dir",
                str(state),
                *args,
            ],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    )
    process.wait_for(re.escape(READY))
    return process


def printed_document(lines: list[str]) -> dict[str, Any]:
    """The local.settings.json the command printed: from a line `{` to the line `}`."""
    start = lines.index("{")
    document: dict[str, Any] = json.loads("\n".join(lines[start : lines.index("}", start) + 1]))
    return document


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="module")
def services(state: Path) -> Iterator[Process]:
    process = start_services(state)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def values(services: Process) -> dict[str, str]:
    document = printed_document(services.lines)
    assert document["IsEncrypted"] is False
    printed: dict[str, str] = document["Values"]
    return printed


def test_the_printed_settings_are_the_example_completed(values):
    # THEN they hold every key of the example (which thus lacks none this path needs) and no
    # other, and name every setting the app reads
    assert set(values) == set(EXAMPLE)
    assert {spec.name for spec in SETTINGS} <= set(values)
    assert values["FUNCTIONS_WORKER_RUNTIME"] == "python"


def test_the_printed_settings_over_the_example_are_accepted_by_the_app(values):
    settings = Settings.from_env({**EXAMPLE, **values})

    assert settings.default_tenant_id == DEMO_TENANT_ID
    assert settings.microsoft is not None
    assert settings.microsoft.organizer_upn == ORGANIZER_UPN
    assert settings.graph_base_url.startswith("https://127.0.0.1:")


def test_azurite_and_the_emulator_answer_at_the_printed_addresses(values):
    from azure.storage.queue import QueueServiceClient

    from shared.storage.tables import Tables, make_table_service
    from shared.storage.tenants import TableTenantRepository

    # Azurite: the demo tenant is seeded, and the queue service answers
    service = make_table_service(StorageSettings(connection_string=values["AzureWebJobsStorage"]))
    with service:
        tenant = TableTenantRepository(Tables(service)).get(DEMO_TENANT_ID)
    assert tenant.organizer_upn == ORGANIZER_UPN
    with QueueServiceClient.from_connection_string(values["AzureWebJobsStorage"]) as queues:
        assert queues.get_service_properties() is not None

    # the emulator: over TLS trusted through the printed bundle, its login metadata and the
    # platform's identity endpoint, which honours the printed header
    bundle = values["REQUESTS_CA_BUNDLE"]
    discovery = requests.get(
        f"{values['MICROSOFT_AUTHORITY_HOST']}/{values['MICROSOFT_TENANT_ID']}"
        "/v2.0/.well-known/openid-configuration",
        verify=bundle,
        timeout=10,
    )
    assert discovery.status_code == 200
    identity = requests.get(
        values["IDENTITY_ENDPOINT"],
        params={
            "resource": "api://AzureADTokenExchange",
            "api-version": "2019-08-01",
            "client_id": values["MICROSOFT_IDENTITY_CLIENT_ID"],
        },
        headers={"X-IDENTITY-HEADER": values["IDENTITY_HEADER"]},
        verify=bundle,
        timeout=10,
    )
    assert identity.status_code == 200, identity.text
    assert identity.json()["access_token"]


def test_it_stops_on_sigterm_and_frees_its_ports(services, values):
    ports = [int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", values["AzureWebJobsStorage"])]
    ports.append(int(values["GRAPH_BASE_URL"].split(":")[2].split("/")[0]))

    assert services.stop() == 0
    assert "Stopping..." in services.lines
    assert all(port_is_free(port) for port in ports)


def test_a_host_that_reads_only_the_written_file_serves_the_app(state, values, tmp_path):
    # GIVEN the services started again on the same state folder, writing local.settings.json
    settings_file = tmp_path / "local.settings.json"
    settings_file.write_text(json.dumps({"IsEncrypted": False, "Values": {"MAIL_FROM": "me@x.y"}}))
    again = start_services(state, "--write-settings", str(settings_file))
    host: Process | None = None
    try:
        written = json.loads(settings_file.read_text())["Values"]
        # what may have been pasted before still holds; a value of the developer's is kept
        assert {name: written[name] for name in KEPT} == {name: values[name] for name in KEPT}
        assert written["MAIL_FROM"] == "me@x.y"
        assert set(written) == set(EXAMPLE)
        assert oct(settings_file.stat().st_mode & 0o777) == "0o600"

        # WHEN a Functions host starts knowing nothing but that file, as `func start` does
        host = Process(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "localdev.host",
                    "--script-root",
                    str(REPO_ROOT),
                    "--port",
                    "0",
                    "--settings-file",
                    str(settings_file),
                ],
                cwd=REPO_ROOT,
                env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONUNBUFFERED": "1"},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
        url = host.wait_for(r"Host started on (http://\S+)").group(1)

        # THEN the deployed-service smoke test passes against it: health, capability, the
        # organizer dry run through the emulator (its identity, no secret), a signed webhook
        issuer = ensure_dev_issuer(state / "dev-auth")
        admin = issuer.mint(user="admin-1", roles=["admin"], tenant=DEMO_TENANT_ID)
        smoke = subprocess.run(
            [
                sys.executable,
                "-m",
                "scripts.smoke",
                "--url",
                url,
                "--token",
                admin,
                "--stripe-secret",
                written["STRIPE_WEBHOOK_SECRET"],
            ],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert smoke.returncode == 0, smoke.stdout + smoke.stderr + "\n".join(host.lines)
        assert smoke.stdout.count("PASS ") == 4
    finally:
        if host is not None:
            host.stop()
        assert again.stop() == 0
