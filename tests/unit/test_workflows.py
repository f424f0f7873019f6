"""The GitHub workflows: CI runs the README's test command, and the deployment signs in to Azure
through OIDC with no Azure secret stored and no secret written into the workflow."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
SECRET_REFERENCE = re.compile(r"\$\{\{\s*secrets\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
# What a secret written into a workflow looks like: Stripe keys and signing secrets, private
# keys, storage keys, GUIDs (client, tenant and subscription ids belong in variables), tokens.
SECRET_LITERALS = {
    "Stripe signing secret": re.compile(r"whsec_[A-Za-z0-9]"),
    "Stripe key": re.compile(r"\b[sr]k_(live|test)_[A-Za-z0-9]"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "storage key": re.compile(r"AccountKey=", re.IGNORECASE),
    "GUID": re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"),
    "JWT": re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),
    "long hex or base64 value": re.compile(r"[A-Za-z0-9+/=_-]{40,}"),
}


def load(name: str) -> dict[Any, Any]:
    data: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the bare key `on` as True.
    data["on"] = data.pop(True, data.get("on"))
    return data


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps", []))


def uses(step: dict[str, Any]) -> str:
    return str(step.get("uses", "")).lower()


def strings(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str]]:
    """Every string in the document with the keys that lead to it."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from strings(value, (*path, str(key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from strings(value, (*path, str(index)))
    elif isinstance(node, str):
        yield path, node


def permissions_of(workflow: dict[Any, Any], job: dict[str, Any]) -> dict[str, str]:
    return dict(job.get("permissions") or workflow.get("permissions") or {})


# -- CI -----------------------------------------------------------------------------------------


def test_ci_runs_the_readmes_test_command_as_ci_run_does():
    # GIVEN the README's test command and what .ci/run runs
    readme = (ROOT / "README.md").read_text()
    ci_run = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test\b", readme, flags=re.MULTILINE)
    assert re.search(r"^make test$", ci_run, flags=re.MULTILINE)

    # WHEN the CI workflow is read
    workflow = load("ci.yml")
    (job,) = workflow["jobs"].values()
    commands = [str(step["run"]).strip() for step in steps(job) if "run" in step]

    # THEN its one command is .ci/run (or the README's command itself), with CI=true
    assert commands in ([".ci/run"], ["bash .ci/run"], ["make test"])
    assert str(job.get("env", {}).get("CI", workflow.get("env", {}).get("CI"))).lower() == "true"
    assert job["runs-on"].startswith("ubuntu")


def test_ci_has_python_311_and_node_with_their_caches():
    (job,) = load("ci.yml")["jobs"].values()
    by_action = {uses(step).split("@")[0]: step.get("with", {}) for step in steps(job)}

    assert str(by_action["actions/setup-python"]["python-version"]) == "3.11"
    assert by_action["actions/setup-python"]["cache"] == "pip"
    assert "requirements-dev.txt" in by_action["actions/setup-python"]["cache-dependency-path"]
    assert by_action["actions/setup-node"]["cache"] == "npm"
    assert by_action["actions/setup-node"]["cache-dependency-path"] == "package-lock.json"


def test_ci_runs_on_pushes_and_pull_requests_and_can_be_called_by_the_deployment():
    triggers = load("ci.yml")["on"]

    assert {"push", "pull_request", "workflow_call"} <= set(triggers)


# -- Deployment ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deploy() -> dict[Any, Any]:
    return load("deploy.yml")


def deploy_job(workflow: dict[Any, Any]) -> dict[str, Any]:
    """The one job with steps of its own (the other calls ci.yml)."""
    jobs: list[dict[str, Any]] = [job for job in workflow["jobs"].values() if "steps" in job]
    (job,) = jobs
    return job


def test_deploy_runs_on_pushes_to_main_and_by_hand(deploy):
    assert deploy["on"]["push"]["branches"] == ["main"]
    assert "workflow_dispatch" in deploy["on"]


def test_deploy_runs_in_an_environment_after_the_tests_pass(deploy):
    job = deploy_job(deploy)
    needs = [job["needs"]] if isinstance(job["needs"], str) else job["needs"]

    assert job["environment"]
    assert [deploy["jobs"][name].get("uses") for name in needs] == ["./.github/workflows/ci.yml"]


def test_deploy_signs_in_with_an_oidc_federated_credential(deploy):
    job = deploy_job(deploy)
    permissions = permissions_of(deploy, job)
    login = " ".join(
        str(step["run"]) for step in steps(job) if "azd auth login" in str(step.get("run", ""))
    )

    # THEN GitHub may mint this run's token, and azd exchanges it; no secret, no stored creds
    assert permissions == {"id-token": "write", "contents": "read"}
    assert any(uses(step).startswith("azure/setup-azd@") for step in steps(job))
    assert "--federated-credential-provider github" in login
    assert '--client-id "$AZURE_CLIENT_ID"' in login
    assert '--tenant-id "$AZURE_TENANT_ID"' in login
    assert "--client-secret" not in login
    text = (WORKFLOWS / "deploy.yml").read_text()
    assert "AZURE_CREDENTIALS" not in text
    assert "creds:" not in text


def test_deploy_takes_its_azure_coordinates_from_repository_variables(deploy):
    env = deploy_job(deploy)["env"]

    for name in (
        "AZURE_CLIENT_ID",
        "AZURE_TENANT_ID",
        "AZURE_SUBSCRIPTION_ID",
        "AZURE_ENV_NAME",
        "AZURE_LOCATION",
    ):
        assert env[name] == f"${{{{ vars.{name} }}}}"


def test_deploy_compiles_the_bicep_then_provisions_then_deploys(deploy):
    job = deploy_job(deploy)
    texts = [str(step.get("run", "")) + str(step.get("with", {})) for step in steps(job)]

    def first(pattern: str) -> int:
        return next(i for i, text in enumerate(texts) if re.search(pattern, text))

    bicep = first(r"(az )?bicep build --file infra/main\.bicep")
    provision, deploy_step = first(r"azd provision --no-prompt"), first(r"azd deploy --no-prompt")
    assert first(r"azd auth login") < provision
    assert bicep < provision < deploy_step


def test_deploy_holds_no_secret_literal(deploy):
    offences = []
    for path, value in strings(deploy):
        for kind, pattern in SECRET_LITERALS.items():
            # an expression such as ${{ secrets.NAME }} is a reference, not a value
            literal = re.sub(r"\$\{\{.*?\}\}", "", value)
            if pattern.search(literal):
                offences.append((".".join(path), kind))

    assert offences == []


def test_deploy_passes_secrets_only_through_step_environments(deploy):
    """A secret referenced in a script's text would be pasted into it (and into a shell's
    parsing); passed through `env`, it is data. Only whole `${{ secrets.NAME }}` values of an
    `env` mapping are allowed."""
    found = {}
    for path, value in strings(deploy):
        if "secrets." not in value:
            continue
        match = SECRET_REFERENCE.fullmatch(value.strip())
        assert match is not None, f"{'.'.join(path)} uses a secret inside other text"
        assert path[-2] == "env", f"{'.'.join(path)} is not an environment variable"
        found[path[-1]] = match.group(1)

    assert found["STRIPE_WEBHOOK_SECRET"] == "STRIPE_WEBHOOK_SECRET"
    assert all(name == secret for name, secret in found.items())
