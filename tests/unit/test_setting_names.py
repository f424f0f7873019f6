"""The settings the code reads are those infra/, the settings example and the README name."""

from __future__ import annotations

import json
import re
from pathlib import Path

from shared.settings import SETTINGS

ROOT = Path(__file__).resolve().parents[2]
NAMES = {spec.name for spec in SETTINGS}
# In Azure the app reaches storage with its identity, so infra/ sets the account name instead.
# The development token issuer is refused in Azure, so infra/ never sets it.
NOT_IN_INFRA = {"AzureWebJobsStorage", "AUTH_DEV_JWKS_FILE"}
# Not app settings: in Azure the platform gives the worker these (the runtime, the managed
# identity's endpoint and header, the system's CA roots); a local host, Core Tools' included,
# takes them from local.settings.json, pointing at the Graph emulator and its CA.
HOST_VALUES = {
    "FUNCTIONS_WORKER_RUNTIME",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "REQUESTS_CA_BUNDLE",
}


def test_local_settings_example_names_every_setting_and_no_other():
    values = json.loads((ROOT / "local.settings.json.example").read_text())["Values"]

    assert set(values) - HOST_VALUES == NAMES


def test_local_settings_example_holds_no_secret_values():
    values = json.loads((ROOT / "local.settings.json.example").read_text())["Values"]

    assert values["MICROSOFT_CLIENT_SECRET"] == ""
    assert values["STRIPE_WEBHOOK_SECRET"] == ""
    assert values["STRIPE_API_KEY"] == ""
    assert values["IDENTITY_HEADER"] == ""


def test_infra_sets_every_setting():
    bicep = "\n".join(p.read_text() for p in (ROOT / "infra").rglob("*.bicep"))
    set_in_infra = set(re.findall(r"^\s*([A-Za-z_]+)\s*:", bicep, flags=re.MULTILINE))

    assert set_in_infra >= NAMES - NOT_IN_INFRA


def test_readme_configuration_table_names_every_setting():
    readme = (ROOT / "README.md").read_text()
    in_table = set(re.findall(r"^\| `([A-Za-z_]+)` \|", readme, flags=re.MULTILINE))

    assert in_table == NAMES
