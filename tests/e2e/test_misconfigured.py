"""A bad configuration is reported, never a dead app: with a required setting missing, malformed
or left as an unresolved Key Vault reference, the local host (as Azure's would) still indexes
every function; health and every route answer 503 `misconfigured` naming the setting, and no
secret value reaches a response or a log line. Fixed and restarted, all works."""

from __future__ import annotations

import re

import pytest
import requests

from localdev.stack import local_stack

pytestmark = pytest.mark.e2e

MARK = "s3cr3t-VALUE-never-shown"
UNRESOLVED = (
    "@Microsoft.KeyVault(SecretUri=https://kv-x.vault.azure.net/secrets/stripe-webhook-secret/)"
)
CASES = {
    "missing": ({"STRIPE_WEBHOOK_SECRET": ""}, ["STRIPE_WEBHOOK_SECRET"]),
    "malformed": ({"STRIPE_WEBHOOK_SECRET": f"sk_live_{MARK}"}, ["STRIPE_WEBHOOK_SECRET"]),
    "unresolved": ({"STRIPE_WEBHOOK_SECRET": UNRESOLVED}, ["STRIPE_WEBHOOK_SECRET"]),
    "unresolved-graph-secret": (
        {"MICROSOFT_CLIENT_SECRET": UNRESOLVED.replace("stripe-webhook", "microsoft-client")},
        ["MICROSOFT_CLIENT_SECRET"],
    ),
    "two-at-once": (
        {"GRAPH_BASE_URL": "http://graph.example/v1.0", "MAIL_TRANSPORT": "pigeon"},
        ["GRAPH_BASE_URL", "MAIL_TRANSPORT"],
    ),
}
_LISTED = re.compile(r"^\s+(\w+): \[([A-Z,]+)\] https?://[^/]+/(\S+)$")


def http_routes(output: list[str]) -> list[tuple[str, str, str]]:
    """(name, method, path) of every HTTP function the host listed at start."""
    found = []
    for line in output:
        match = _LISTED.match(line.rstrip("\n"))
        if match:
            name, methods, template = match.groups()
            path = re.sub(r"\{[^}]+\}", "b1", template)
            found += [(name, method, path) for method in methods.split(",")]
    return found


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_setting_is_answered_as_misconfigured_by_every_function(tmp_path, case):
    env, names = CASES[case]
    with local_stack(state_dir=tmp_path, extra_env=env, wait_healthy=False) as stack:
        # GIVEN the host started with the bad setting: every function is indexed
        output = stack.host_output
        listed = [line for line in output if re.match(r"^\s+\w+: ", line)]
        assert len(listed) >= 14, "".join(output)
        routes = http_routes(output)
        assert len(routes) >= 10

        # WHEN health is asked, THEN it is 503 misconfigured naming the settings
        health = requests.get(f"{stack.api}/v1/health", timeout=10)
        assert health.status_code == 503
        assert health.json()["code"] == "misconfigured"
        assert health.json()["settings"] == names
        bodies = [health.text]

        # AND every other route answers the same, never a 500
        for name, method, path in routes:
            response = requests.request(method, f"{stack.host_url}/{path}", json={}, timeout=10)
            assert response.status_code == 503, (name, response.text)
            assert response.json()["code"] == "misconfigured", name
            for setting in names:
                assert setting in response.json()["error"]
            bodies.append(response.text)

        # AND one ERROR line at start names them; no secret value anywhere
        started = [line for line in output if '"event":"settings_invalid"' in line]
        assert len(started) == 1
        secrets = [MARK, stack.env["IDENTITY_HEADER"]]
        for text in bodies + output:
            for secret in secrets:
                assert secret not in text


def test_once_the_setting_is_fixed_a_restart_serves_again(tmp_path):
    with local_stack(
        state_dir=tmp_path, extra_env={"STRIPE_WEBHOOK_SECRET": UNRESOLVED}, wait_healthy=False
    ) as stack:
        assert requests.get(f"{stack.api}/v1/health", timeout=10).status_code == 503
    with local_stack(state_dir=tmp_path) as fixed:
        health = requests.get(f"{fixed.api}/v1/health", timeout=10)
        assert (health.status_code, health.json()["status"]) == (200, "ok")
