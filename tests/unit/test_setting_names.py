"""The settings the code reads are those the settings example and the README name.

That infra/ sets each of them in Azure (or that it is local-only) is tests/unit/test_infra.py's,
which reads the parsed Bicep.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from shared.settings import SETTINGS

ROOT = Path(__file__).resolve().parents[2]
NAMES = {spec.name for spec in SETTINGS}
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


def test_readme_configuration_table_names_every_setting():
    readme = (ROOT / "README.md").read_text()
    in_table = set(re.findall(r"^\| `([A-Za-z_]+)` \|", readme, flags=re.MULTILINE))

    assert in_table == NAMES
