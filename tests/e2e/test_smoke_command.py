"""scripts/smoke.py as an operator runs it after a deployment, here against the local stack (the
same app, served over HTTP with Azurite and the Graph emulator): one PASS or FAIL line per check,
a non-zero exit when any failed, and never the token or the signing secret in its output."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys

import pytest

from localdev.azurite import REPO_ROOT
from localdev.stack import DEMO_TENANT_ID, LocalStack, local_stack
from scripts.smoke import IGNORED_EVENT_TYPE
from shared.payments.events import HANDLED_TYPES

pytestmark = pytest.mark.e2e

CHECKS = ("health", "capability", "verify-organizer", "stripe-webhook")
LINE = re.compile(r"(PASS|FAIL) ([a-z-]+): (.+)")


def smoke(
    *args: str, env: dict[str, str] | None = None
) -> tuple[int, dict[str, tuple[str, str]], str]:
    """Run the command; its exit code, each check's (verdict, reason), and all it printed."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SMOKE_")}
    result = subprocess.run(
        [sys.executable, "-m", "scripts.smoke", *args],
        cwd=REPO_ROOT,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=180,
    )
    lines = result.stdout.splitlines()
    parsed = [LINE.fullmatch(line) for line in lines]
    assert all(parsed), result.stdout + result.stderr
    checks = {m.group(2): (m.group(1), m.group(3)) for m in parsed if m is not None}
    assert list(checks) == list(CHECKS), "exactly one line per check, in order"
    return result.returncode, checks, result.stdout + result.stderr


def admin_token(stack: LocalStack) -> str:
    return stack.issuer.mint(user="admin-1", roles=["admin"], tenant=DEMO_TENANT_ID)


def test_the_webhook_check_sends_an_event_type_the_service_ignores():
    assert IGNORED_EVENT_TYPE not in HANDLED_TYPES


def test_every_check_passes_against_a_healthy_service(stack):
    # GIVEN a healthy service, an admin's token and the endpoint's signing secret
    token, secret = admin_token(stack), stack.env["STRIPE_WEBHOOK_SECRET"]
    calls_before = dict(stack.emulator.calls)

    # WHEN the smoke test runs against it
    code, checks, output = smoke(
        "--url", stack.host_url, "--token", token, "--stripe-secret", secret
    )

    # THEN every check passes, and it says what it saw
    assert code == 0, output
    assert {verdict for verdict, _ in checks.values()} == {"PASS"}
    assert checks["health"][1].startswith("ok (version ")
    assert "removed" in checks["verify-organizer"][1]
    # the dry run made one meeting and deleted it; nothing else reached Graph
    assert stack.emulator.live_meetings() == []
    calls = {k: v - calls_before.get(k, 0) for k, v in stack.emulator.calls.items()}
    assert calls.get("createOrGet") == 1
    assert calls.get("deleteMeeting") == 1
    # and the signed event was acknowledged without being recorded
    event_id = re.search(r"evt_\w+", checks["stripe-webhook"][1])
    assert event_id is not None
    assert not recorded(stack, event_id.group(0))
    assert token not in output
    assert secret not in output


def test_values_may_come_from_the_environment_instead_of_the_command_line(stack):
    token, secret = admin_token(stack), stack.env["STRIPE_WEBHOOK_SECRET"]

    code, checks, output = smoke(
        env={"SMOKE_URL": stack.api, "SMOKE_TOKEN": token, "SMOKE_STRIPE_SECRET": secret}
    )

    assert code == 0, output
    assert {verdict for verdict, _ in checks.values()} == {"PASS"}
    assert token not in output
    assert secret not in output


def test_a_forged_signing_secret_fails_the_webhook_check_only(stack):
    forged = f"whsec_{secrets.token_hex(16)}"

    code, checks, output = smoke(
        "--url", stack.host_url, "--token", admin_token(stack), "--stripe-secret", forged
    )

    assert code == 1
    assert checks["stripe-webhook"][0] == "FAIL"
    assert "invalid_signature" in checks["stripe-webhook"][1]
    assert [name for name, (verdict, _) in checks.items() if verdict == "FAIL"] == [
        "stripe-webhook"
    ]
    assert forged not in output


def test_a_token_that_is_not_an_admins_fails_the_organizer_check(stack):
    # GIVEN a staff member's token: signed in, but no admin
    staff = stack.issuer.mint(user="staff-1", roles=["staff"], tenant=DEMO_TENANT_ID)

    code, checks, output = smoke(
        "--url",
        stack.host_url,
        "--token",
        staff,
        "--stripe-secret",
        stack.env["STRIPE_WEBHOOK_SECRET"],
    )

    # THEN capability (any signed-in user) passes and the admin-only dry run is refused
    assert code == 1
    assert checks["capability"][0] == "PASS"
    assert checks["verify-organizer"][0] == "FAIL"
    assert checks["verify-organizer"][1].startswith("403 forbidden: the token is not an admin's")
    assert staff not in output


def test_a_token_the_service_does_not_trust_is_named_as_refused(stack):
    code, checks, _ = smoke(
        "--url",
        stack.host_url,
        "--token",
        "not-a-jwt",
        "--stripe-secret",
        stack.env["STRIPE_WEBHOOK_SECRET"],
    )

    assert code == 1
    assert checks["capability"][0] == "FAIL"
    assert checks["capability"][1].startswith("401 the token was refused")
    assert checks["verify-organizer"][1].startswith("401 the token was refused")


def test_missing_values_are_failed_checks_not_a_crash(stack):
    code, checks, _ = smoke("--url", stack.host_url)

    assert code == 1
    assert checks["health"][0] == "PASS"
    assert "no token given" in checks["capability"][1]
    assert "no signing secret given" in checks["stripe-webhook"][1]


def test_a_misconfigured_service_fails_health_naming_the_setting(tmp_path):
    # GIVEN a service whose signing secret is a Key Vault reference that did not resolve
    unresolved = (
        "@Microsoft.KeyVault(SecretUri=https://kv-x.vault.azure.net/secrets/stripe-webhook-secret/)"
    )
    with local_stack(
        state_dir=tmp_path,
        extra_env={"STRIPE_WEBHOOK_SECRET": unresolved},
        wait_healthy=False,
    ) as broken:
        # WHEN the smoke test runs against it
        code, checks, output = smoke(
            "--url",
            broken.host_url,
            "--token",
            admin_token(broken),
            "--stripe-secret",
            f"whsec_{secrets.token_hex(16)}",
        )

    # THEN health names the setting (never its value), and the other checks fail as well
    assert code == 1
    assert checks["health"] == ("FAIL", "503 misconfigured: settings STRIPE_WEBHOOK_SECRET")
    assert all(verdict == "FAIL" for verdict, _ in checks.values())
    assert "vault.azure.net" not in output


# Last in this module: it stops the stack's storage.
def test_storage_stopped_fails_the_health_check(stack):
    stack.azurite.stop()

    code, checks, _ = smoke(
        "--url",
        stack.host_url,
        "--token",
        admin_token(stack),
        "--stripe-secret",
        stack.env["STRIPE_WEBHOOK_SECRET"],
        "--timeout",
        "60",
    )

    assert code == 1
    assert checks["health"] == ("FAIL", "503: storage is unreachable")
    assert checks["capability"][0] == "FAIL"


def recorded(stack: LocalStack, event_id: str) -> bool:
    from shared.settings import StorageSettings
    from shared.storage.errors import NotFoundError
    from shared.storage.payment_events import TablePaymentEventRepository
    from shared.storage.tables import Tables, make_table_service

    service = make_table_service(StorageSettings(connection_string=stack.azurite.connection_string))
    with service:
        try:
            TablePaymentEventRepository(Tables(service)).get(event_id)
        except NotFoundError:
            return False
    return True
