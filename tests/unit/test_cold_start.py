"""Indexing the function app, which every cold start pays for, imports the routes and triggers
and nothing its handlers call: no SDK, no use case. Each is imported on its first call."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.test_function_index import EXPECTED

ROOT = Path(__file__).resolve().parents[2]
# What a first request may import, and indexing must not.
HEAVY = (
    "requests",
    "urllib3",
    "certifi",
    "charset_normalizer",
    "msal",
    "jwt",
    "cryptography",
    "stripe",
    "jinja2",
    "icalendar",
    "babel",
    "opentelemetry",
    "azure.monitor",
    "azure.core",
    "azure.data.tables",
    "azure.storage.queue",
    "azure.identity",
    "smtplib",
)
# The project's modules indexing may import: the app, its function modules, the response
# wrappers they decorate with, the settings it checks at start-up and the queue names.
INDEXING = {
    "function_app",
    "functions",
    "shared",
    "shared.api",
    "shared.api.responses",
    "shared.bootstrap",
    "shared.errors",  # the error base SettingsError derives from; it imports nothing
    "shared.observability",
    "shared.settings",
    "shared.storage",
    "shared.storage.queue_names",
    "shared.telemetry",
}
REPORT = """
import json, sys
import function_app
print(json.dumps({
    "modules": sorted(sys.modules),
    "functions": sorted(fn.get_function_name() for fn in function_app.app.get_functions()),
}))
"""


def index_in_a_fresh_process(settings: dict[str, str]) -> dict[str, list[str]]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("APPLICATIONINSIGHTS_CONNECTION_STRING", "OTEL_TRACES_EXPORTER")
    }
    env.update(settings)
    indexed = subprocess.run(
        [sys.executable, "-c", REPORT],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=True,
    )
    report: dict[str, list[str]] = json.loads(indexed.stdout.strip().splitlines()[-1])
    return report


def loaded(modules: list[str], name: str) -> bool:
    return any(module == name or module.startswith(f"{name}.") for module in modules)


WHOLE = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}
# Settings at fault are reported at start-up; indexing still imports no more.
AT_FAULT = {"AzureWebJobsStorage": "", "AUTH_DEV_JWKS_FILE": "", "GRAPH_TIMEOUT_SECONDS": "x"}


@pytest.mark.parametrize("settings", [WHOLE, AT_FAULT], ids=["whole", "at-fault"])
def test_indexing_imports_no_sdk_and_no_use_case(settings):
    # GIVEN a fresh process, WHEN it indexes the function app
    report = index_in_a_fresh_process(settings)

    # THEN none of the SDKs the handlers use is loaded
    assert [name for name in HEAVY if loaded(report["modules"], name)] == []
    # AND of the project, only the routes, the response wrappers, the settings and queue names
    ours = {
        module
        for module in report["modules"]
        if module == "function_app" or module.split(".")[0] in ("functions", "shared")
    }
    assert {m for m in ours if not m.startswith("functions.")} == INDEXING


def test_indexing_in_a_fresh_process_still_finds_every_function():
    report = index_in_a_fresh_process(WHOLE)

    assert report["functions"] == sorted(EXPECTED)
