"""The service as a user runs it: Azurite, the Graph emulator and the host, as processes."""

from __future__ import annotations

import pytest
import requests

from localdev.stack import local_stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with local_stack(state_dir=tmp_path_factory.mktemp("stack")) as running:
        yield running


def test_health_answers_over_http_with_storage_reachable(stack):
    response = requests.get(f"{stack.api}/v1/health", timeout=10)

    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["storage"] == "ok"
    assert response.headers["Content-Type"].startswith("application/json")


def test_health_reports_storage_loss_as_503(stack):
    stack.azurite.stop()

    response = requests.get(f"{stack.api}/v1/health", timeout=30)

    assert response.status_code == 503
    assert response.json()["storage"] == "unreachable"


def test_the_host_refuses_to_start_without_storage(tmp_path):
    import subprocess
    import sys

    from localdev.azurite import REPO_ROOT

    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "localdev.host",
            "--script-root",
            str(REPO_ROOT),
            "--port",
            "0",
            "--settings-file",
            str(tmp_path / "none.json"),
        ],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    assert "AzureWebJobsStorage" in result.stderr


def test_the_local_service_reaches_graph_without_any_secret(tmp_path):
    with local_stack(state_dir=tmp_path) as stack:
        # GIVEN the demo app registration holds no secret, only the federated identity
        assert "MICROSOFT_CLIENT_SECRET" not in stack.env
        admin = stack.issuer.mint(user="admin-1", roles=["admin"], tenant="demo")

        # WHEN an admin verifies the organizer (a Graph call) twice
        for _ in range(2):
            answer = requests.post(
                f"{stack.api}/v1/teams-meetings/verify-organizer",
                json={},
                headers={"Authorization": f"Bearer {admin}"},
                timeout=30,
            )
            assert answer.json()["valid"] is True

        # THEN the app signed in once, with its managed identity's federated assertion
        assert stack.emulator.token_requests == [
            {"clientId": stack.env["MICROSOFT_CLIENT_ID"], "credential": "federated"}
        ]
        assert stack.emulator.calls["identity"] == 1
