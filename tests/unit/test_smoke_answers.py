"""How scripts/smoke.py reads answers a live stack cannot give on demand: a misconfigured
deployment, a gateway's HTML error page, a redirect. Graph and the service are faked at the wire
(`responses`); the live checks are in tests/e2e/test_smoke_command.py."""

from __future__ import annotations

import re

import pytest
import responses

from scripts.smoke import api_base, main

URL = "https://meetings.example.net"
API = f"{URL}/api"
TOKEN = "eyJhbGciOiJFUzI1NiJ9.secret-token-body.signature"
SECRET = "whsec_0123456789abcdef0123456789abcdef"


def run(capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, str]]:
    """The command's exit code and each check's line, as {name: "PASS reason"}."""
    code = main(["--url", URL, "--token", TOKEN, "--stripe-secret", SECRET, "--timeout", "5"])
    out = capsys.readouterr().out
    assert TOKEN not in out
    assert SECRET not in out
    matches = [re.fullmatch(r"(PASS|FAIL) ([a-z-]+): (.+)", line) for line in out.splitlines()]
    lines = {m.group(2): f"{m.group(1)} {m.group(3)}" for m in matches if m is not None}
    assert list(lines) == ["health", "capability", "verify-organizer", "stripe-webhook"], out
    return code, lines


@responses.activate
def test_a_misconfigured_deployment_names_its_settings_and_fails(capsys):
    # GIVEN a deployment whose Key Vault reference did not resolve
    misconfigured = {
        "error": "The service is misconfigured: check the app settings STRIPE_WEBHOOK_SECRET",
        "code": "misconfigured",
    }
    responses.get(
        f"{API}/v1/health",
        status=503,
        json={
            "status": "misconfigured",
            "code": "misconfigured",
            "error": misconfigured["error"],
            "settings": ["AUTH_JWKS_URL", "STRIPE_WEBHOOK_SECRET"],
            "version": "0.1.0",
        },
    )
    responses.get(f"{API}/v1/teams-meetings/capability", status=503, json=misconfigured)
    responses.post(f"{API}/v1/teams-meetings/verify-organizer", status=503, json=misconfigured)
    responses.post(f"{API}/v1/payments/webhook", status=503, json=misconfigured)

    # WHEN the smoke test runs
    code, lines = run(capsys)

    # THEN health names the settings (names only), every check fails, the exit code says so
    assert code == 1
    assert (
        lines["health"] == "FAIL 503 misconfigured: settings AUTH_JWKS_URL, STRIPE_WEBHOOK_SECRET"
    )
    assert lines["capability"].startswith("FAIL 503 misconfigured: The service is misconfigured")
    assert lines["stripe-webhook"].startswith("FAIL 503 misconfigured")


@responses.activate
def test_a_gateways_html_page_and_a_redirect_are_reported_as_such(capsys):
    responses.get(f"{API}/v1/health", status=502, body="<html><body>Bad Gateway</body></html>")
    responses.get(
        f"{API}/v1/teams-meetings/capability",
        status=302,
        headers={"Location": "https://login.example.net/"},
    )
    responses.post(f"{API}/v1/teams-meetings/verify-organizer", status=404, body="")
    responses.post(f"{API}/v1/payments/webhook", status=200, json={"outcome": "applied"})

    code, lines = run(capsys)

    assert code == 1
    assert lines["health"] == "FAIL HTTP 502: <html><body>Bad Gateway</body></html>"
    assert lines["capability"] == "FAIL HTTP 302 redirect to https://login.example.net/"
    assert lines["verify-organizer"] == "FAIL HTTP 404: (empty body)"
    assert lines["stripe-webhook"] == "FAIL accepted, but with outcome 'applied'"


@responses.activate
def test_an_organizer_without_the_access_policy_fails_with_its_reason(capsys):
    responses.get(f"{API}/v1/health", json={"status": "ok", "version": "0.1.0"})
    responses.get(f"{API}/v1/teams-meetings/capability", json={"available": True})
    responses.post(
        f"{API}/v1/teams-meetings/verify-organizer",
        json={"valid": False, "dryRun": True, "reason": "policy_missing"},
    )
    responses.post(f"{API}/v1/payments/webhook", json={"received": True, "outcome": "ignored"})

    code, lines = run(capsys)

    assert code == 1
    assert lines["verify-organizer"] == "FAIL not valid: policy_missing"
    assert [name for name, line in lines.items() if line.startswith("PASS")] == [
        "health",
        "capability",
        "stripe-webhook",
    ]
    # the webhook was sent signed, as Stripe signs
    webhook = next(c.request for c in responses.calls if str(c.request.url).endswith("/webhook"))
    assert webhook.headers["Stripe-Signature"].startswith("t=")
    assert "Authorization" not in webhook.headers


@pytest.mark.parametrize(
    ("given", "base"),
    [
        ("https://app.azurewebsites.net", "https://app.azurewebsites.net/api"),
        ("https://app.azurewebsites.net/", "https://app.azurewebsites.net/api"),
        ("https://app.azurewebsites.net/api/", "https://app.azurewebsites.net/api"),
        ("http://127.0.0.1:7071", "http://127.0.0.1:7071/api"),
    ],
)
def test_the_url_may_name_the_host_or_its_api(given, base):
    assert api_base(given) == base


@pytest.mark.parametrize("given", ["http://app.azurewebsites.net", "ftp://x", "app.example"])
def test_a_url_that_would_send_the_token_in_clear_or_nowhere_is_refused(given):
    with pytest.raises(ValueError, match="https"):
        api_base(given)


@responses.activate
def test_health_passes_naming_the_tenants_with_an_unhealthy_teams_integration(capsys):
    # GIVEN a service whose one tenant's credential check failed
    responses.get(
        f"{API}/v1/health", json={"status": "ok", "unhealthyTenants": 1, "version": "0.1.0"}
    )
    responses.get(f"{API}/v1/teams-meetings/capability", json={"available": True})
    responses.post(f"{API}/v1/teams-meetings/verify-organizer", json={"valid": True})
    responses.post(f"{API}/v1/payments/webhook", json={"received": True, "outcome": "ignored"})

    # WHEN the smoke test runs
    _, lines = run(capsys)

    # THEN health still passes (the service is well), and says how many tenants are not
    assert lines["health"] == (
        "PASS ok (version 0.1.0, 1 tenant(s) with an unhealthy Teams integration)"
    )
