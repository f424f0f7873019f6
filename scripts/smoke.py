"""Smoke test of a deployed meetings service: is it up, configured, able to make Teams meetings,
and does it accept Stripe's signature?

    .venv/bin/python -m scripts.smoke --url https://<app>.azurewebsites.net \\
        --token <an admin's bearer token> --stripe-secret whsec_...

Each value may come from the environment instead (SMOKE_URL, SMOKE_TOKEN, SMOKE_STRIPE_SECRET),
so that no secret need be on a command line. Prints one line per check, `PASS name: reason` or
`FAIL name: reason`, and exits 1 if any failed (2 when the arguments are wrong):

- health: `GET /api/v1/health` answers 200 `ok` (a 503 `misconfigured` names the settings);
- capability: `GET /api/v1/teams-meetings/capability` says Teams meetings are available;
- verify-organizer: `POST /api/v1/teams-meetings/verify-organizer {"dryRun": true}` makes a
  throw-away meeting as the organizer, with the tenant's options, and removes it;
- stripe-webhook: a Stripe event signed with the endpoint's secret, of a type the service
  acknowledges and ignores (`payment_intent.created`), so no booking changes.

The token and the secret are never printed. Every request has a timeout.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from localdev.stripe_events import event, signature

DEFAULT_TIMEOUT = 30.0
# Stripe sends it whenever a payment is started; the service acknowledges it and changes nothing.
IGNORED_EVENT_TYPE = "payment_intent.created"
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


@dataclass(frozen=True)
class Result:
    name: str
    passed: bool
    reason: str

    def line(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'} {self.name}: {self.reason}"


class Unreachable(Exception):
    """The request got no HTTP answer; the message says why, for a person."""


@dataclass(frozen=True)
class DeployedService:
    """The service's API at `base_url` (…/api), with a caller's token if one was given."""

    base_url: str
    token: str | None
    timeout: float
    session: requests.Session

    def call(
        self,
        method: str,
        path: str,
        *,
        authenticated: bool = True,
        json_body: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        where = urlsplit(self.base_url).netloc
        sent = dict(headers or {})
        if authenticated and self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        try:
            return self.session.request(
                method,
                f"{self.base_url}{path}",
                json=json_body,
                data=data,
                headers=sent,
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.exceptions.SSLError as exc:
            raise Unreachable(f"TLS error with {where}: {_tls_reason(exc)}") from None
        except requests.exceptions.ConnectTimeout:
            raise Unreachable(f"no connection to {where} within {self.timeout:g} s") from None
        except requests.exceptions.Timeout:
            raise Unreachable(f"no answer from {where} within {self.timeout:g} s") from None
        except requests.exceptions.ConnectionError as exc:
            raise Unreachable(f"cannot connect to {where}: {_connection_reason(exc)}") from None
        except requests.exceptions.RequestException as exc:
            raise Unreachable(f"request failed: {_connection_reason(exc)}") from None


def check_health(service: DeployedService) -> Result:
    response = service.call("GET", "/v1/health", authenticated=False)
    body = _json(response)
    if response.status_code == 200 and body.get("status") == "ok":
        detail = f"version {body.get('version', '?')}"
        if body.get("unhealthyTenants"):
            # A tenant's broken credential is the tenant's to fix, not the deployment's: a PASS.
            detail += f", {body['unhealthyTenants']} tenant(s) with an unhealthy Teams integration"
        return Result("health", True, f"ok ({detail})")
    if body.get("status") == "misconfigured" or body.get("code") == "misconfigured":
        names = body.get("settings")
        listed = ", ".join(map(str, names)) if isinstance(names, list) and names else None
        return Result(
            "health",
            False,
            f"{response.status_code} misconfigured: settings {listed}"
            if listed
            else f"{response.status_code} misconfigured: {body.get('error', 'no settings named')}",
        )
    if body.get("storage") == "unreachable":
        return Result("health", False, f"{response.status_code}: storage is unreachable")
    return Result("health", False, _unexpected(response, body))


def check_capability(service: DeployedService) -> Result:
    if not service.token:
        return Result("capability", False, "no token given (--token or SMOKE_TOKEN)")
    response = service.call("GET", "/v1/teams-meetings/capability")
    body = _json(response)
    if response.status_code != 200:
        return Result("capability", False, _refusal(response, body))
    if body.get("available") is True:
        return Result("capability", True, "Teams meetings are available")
    return Result(
        "capability", False, f"Teams meetings are not available: {body.get('reason', 'no reason')}"
    )


def check_verify_organizer(service: DeployedService) -> Result:
    name = "verify-organizer"
    if not service.token:
        return Result(name, False, "no token given (--token or SMOKE_TOKEN)")
    response = service.call(
        "POST", "/v1/teams-meetings/verify-organizer", json_body={"dryRun": True}
    )
    body = _json(response)
    if response.status_code != 200:
        return Result(name, False, _refusal(response, body, admin_only=True))
    organizer = body.get("displayName") or body.get("objectId") or "the organizer"
    if body.get("valid") is not True:
        return Result(name, False, f"not valid: {body.get('reason', 'no reason given')}")
    if body.get("checkMeetingRemoved") is not True:
        return Result(
            name,
            False,
            f"{organizer} made the check meeting, but it was not removed yet "
            "(the timer will remove it)",
        )
    return Result(name, True, f"{organizer} made a check meeting and it was removed")


def check_stripe_webhook(service: DeployedService, secret: str | None) -> Result:
    name = "stripe-webhook"
    if not secret:
        return Result(
            name, False, "no signing secret given (--stripe-secret or SMOKE_STRIPE_SECRET)"
        )
    sent = event(
        IGNORED_EVENT_TYPE,
        {
            "id": f"pi_smoke{os.urandom(8).hex()}",
            "object": "payment_intent",
            "amount": 100,
            "currency": "gbp",
            "status": "requires_payment_method",
            "metadata": {},
        },
    )
    payload = json.dumps(sent).encode()
    response = service.call(
        "POST",
        "/v1/payments/webhook",
        authenticated=False,
        data=payload,
        headers={
            "Content-Type": "application/json",
            "Stripe-Signature": signature(payload, secret),
        },
    )
    body = _json(response)
    if response.status_code == 200 and body.get("outcome") == "ignored":
        return Result(name, True, f"signed test event {sent['id']} accepted, nothing changed")
    if response.status_code == 400 and body.get("code") == "invalid_signature":
        return Result(
            name,
            False,
            f"400 invalid_signature: the service does not accept this signing secret "
            f"({body.get('error', '')})",
        )
    if response.status_code == 200:
        return Result(name, False, f"accepted, but with outcome {body.get('outcome')!r}")
    return Result(name, False, _refusal(response, body))


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _refusal(response: requests.Response, body: dict[str, Any], admin_only: bool = False) -> str:
    status, code = response.status_code, body.get("code")
    message = body.get("error")
    if status == 401:
        return f"401 the token was refused ({code}: {message})"
    if status == 403:
        hint = "the token is not an admin's" if admin_only else "the token may not do this"
        return f"403 forbidden: {hint} ({message})"
    if code == "misconfigured":
        return f"{status} misconfigured: {message}"
    return _unexpected(response, body)


def _unexpected(response: requests.Response, body: dict[str, Any]) -> str:
    if response.is_redirect:
        return f"HTTP {response.status_code} redirect to {response.headers.get('Location')}"
    if body.get("code"):
        return f"HTTP {response.status_code} {body['code']}: {body.get('error', '')}"
    text = " ".join(response.text.split())[:200]
    return f"HTTP {response.status_code}: {text or '(empty body)'}"


def _causes(exc: BaseException) -> list[BaseException]:
    """`exc` and what it wraps: requests wraps urllib3's error, which wraps the socket's or
    ssl's, through causes, arguments and `reason`."""
    chain: list[BaseException] = []
    node: object = exc
    while isinstance(node, BaseException) and node not in chain:
        chain.append(node)
        wrapped = node.args[0] if node.args else None
        node = next(
            (
                candidate
                for candidate in (getattr(node, "reason", None), wrapped, node.__cause__)
                if isinstance(candidate, BaseException)
            ),
            node.__context__,
        )
    return chain


def _tls_reason(exc: BaseException) -> str:
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"the server's certificate is not trusted ({cause.verify_message})"
        if isinstance(cause, ssl.SSLError):
            return cause.reason or str(cause)
    return str(exc)


def _connection_reason(exc: BaseException) -> str:
    causes = _causes(exc)
    for cause in reversed(causes):
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
    return str(causes[-1])[:300]


def api_base(url: str) -> str:
    """`https://host` or `https://host/api` → `https://host/api`; plain http only to loopback."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(
            f"--url must be an https URL such as https://<app>.azurewebsites.net, got {url!r}"
        )
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        raise ValueError("--url must be https: the token would travel in clear text")
    path = parts.path.rstrip("/")
    if not path.endswith("/api"):
        path += "/api"
    return f"{parts.scheme}://{parts.netloc}{path}"


def run(service: DeployedService, stripe_secret: str | None) -> list[Result]:
    checks: list[tuple[str, Callable[[], Result]]] = [
        ("health", lambda: check_health(service)),
        ("capability", lambda: check_capability(service)),
        ("verify-organizer", lambda: check_verify_organizer(service)),
        ("stripe-webhook", lambda: check_stripe_webhook(service, stripe_secret)),
    ]
    results = []
    for name, check in checks:
        try:
            results.append(check())
        except Unreachable as exc:
            results.append(Result(name, False, str(exc)))
    return results


def redact(text: str, *secrets: str | None) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("SMOKE_URL"), help="or SMOKE_URL")
    parser.add_argument(
        "--token", default=os.environ.get("SMOKE_TOKEN"), help="an admin's JWT, or SMOKE_TOKEN"
    )
    parser.add_argument(
        "--stripe-secret",
        default=os.environ.get("SMOKE_STRIPE_SECRET"),
        help="the webhook signing secret (whsec_...), or SMOKE_STRIPE_SECRET",
    )
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per request"
    )
    args = parser.parse_args(argv)
    if not args.url:
        parser.error("--url (or SMOKE_URL) is required")
    try:
        base = api_base(args.url)
    except ValueError as exc:
        parser.error(str(exc))
    with requests.Session() as session:
        service = DeployedService(base, args.token or None, args.timeout, session)
        results = run(service, args.stripe_secret or None)
    for result in results:
        print(redact(result.line(), args.token, args.stripe_secret), flush=True)
    return 0 if all(result.passed for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
