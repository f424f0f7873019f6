"""App-only Graph tokens: one msal ConfidentialClientApplication per tenant profile per process.

msal keeps each app's tokens in memory and serves them until shortly before they expire, so a
profile costs one token request per token lifetime, not one per Graph call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import requests

from shared.domain.tenant import MicrosoftProfile
from shared.graph.errors import (
    GraphAuthError,
    GraphError,
    GraphThrottledError,
    GraphTimeoutError,
    GraphTransientError,
)
from shared.graph.session import forget_last_status, last_status

if TYPE_CHECKING:
    import msal


class TokenSource(Protocol):
    def token(self, profile: MicrosoftProfile) -> str:
        """A bearer token for Graph, app-only, for this profile."""
        ...


SecretResolver = Callable[[str], str]
"""Turns a profile's secret reference (an app setting name) into the secret."""


def graph_scope(graph_base_url: str) -> str:
    """`https://graph.microsoft.com/.default` for the cloud the base URL names."""
    parts = urlsplit(graph_base_url)
    return f"{parts.scheme}://{parts.netloc}/.default"


class MsalTokenSource:
    """`TokenSource` backed by msal, with one cached app object per profile."""

    def __init__(
        self,
        *,
        authority_host: str,
        graph_base_url: str,
        resolve_secret: SecretResolver,
        http: requests.Session,
        timeout: float,
    ) -> None:
        self._authority_host = authority_host.rstrip("/")
        self._scopes = [graph_scope(graph_base_url)]
        self._resolve_secret = resolve_secret
        self._http = http
        self._timeout = timeout
        self._apps: dict[tuple[str, str, str], msal.ConfidentialClientApplication] = {}
        self._lock = threading.Lock()

    def token(self, profile: MicrosoftProfile) -> str:
        """A token, or a `GraphError` (never sent: no Graph request went out)."""
        import msal

        forget_last_status()
        try:
            app = self._app(profile)
            result: dict[str, Any] = app.acquire_token_for_client(scopes=self._scopes)
        except requests.Timeout as exc:
            raise GraphTimeoutError("login timed out", sent=False) from exc
        except requests.RequestException as exc:
            raise GraphTransientError("login endpoint unreachable", sent=False) from exc
        except msal.exceptions.MsalServiceError as exc:
            raise _login_http_error(last_status(), "the login endpoint failed") from exc
        except ValueError as exc:
            # msal could not read the answer (a gateway's HTML page, a proxy's error).
            raise _login_http_error(last_status(), "the login endpoint answered garbage") from exc
        token = result.get("access_token")
        if token:
            return str(token)
        raise _token_error(result, last_status())

    def _app(self, profile: MicrosoftProfile) -> msal.ConfidentialClientApplication:
        key = (profile.directory_tenant_id, profile.client_id, profile.secret_setting)
        with self._lock:
            app = self._apps.get(key)
            if app is None:
                app = self._build(profile)
                self._apps[key] = app
            return app

    def _build(self, profile: MicrosoftProfile) -> msal.ConfidentialClientApplication:
        import msal

        authority = f"{self._authority_host}/{profile.directory_tenant_id}"
        known_host = urlsplit(self._authority_host).hostname in _KNOWN_AUTHORITY_HOSTS
        try:
            return msal.ConfidentialClientApplication(
                client_id=profile.client_id,
                client_credential=self._resolve_secret(profile.secret_setting),
                authority=authority,
                http_client=self._http,
                timeout=self._timeout,
                # Instance discovery asks login.microsoftonline.com about the host; for a
                # sovereign or local authority that is the wrong place to ask.
                instance_discovery=None if known_host else False,
            )
        except requests.Timeout as exc:
            raise GraphTimeoutError("login metadata request timed out", sent=False) from exc
        except requests.RequestException as exc:
            raise GraphTransientError("login endpoint unreachable", sent=False) from exc
        except ValueError as exc:
            # msal could not read the tenant's OIDC metadata: throttled or down (retry), or a
            # directory id the login endpoint does not know (permanent).
            status = last_status()
            if status is not None and (status == 429 or status >= 500):
                raise _login_http_error(status, "the login metadata request failed") from exc
            raise GraphAuthError(
                f"the directory (tenant) id {profile.directory_tenant_id!r} was not recognised "
                "by the login endpoint",
                graph_code="invalid_tenant",
                sent=False,
            ) from exc


_KNOWN_AUTHORITY_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoftonline.us",
        "login.partner.microsoftonline.cn",
        "login.microsoftonline.de",
    }
)


def _login_http_error(status: int | None, what: str) -> GraphError:
    """A login request answered with an HTTP error msal does not explain."""
    if status == 429:
        return GraphThrottledError(f"{what}: throttled", status=429, sent=False)
    if status is None or status >= 500 or status == 408:
        return GraphTransientError(f"{what} ({status or 'no answer'})", status=status, sent=False)
    return GraphAuthError(f"{what} ({status})", status=status, sent=False)


def _token_error(result: dict[str, Any], status: int | None) -> GraphError:
    code = str(result.get("error") or "token_error")
    # The description names the failing part (AADSTS number) and never holds the secret.
    description = str(result.get("error_description") or "").splitlines()[0:1]
    text = description[0] if description else code
    if status == 429:
        return GraphThrottledError(f"login throttled: {text}", graph_code=code, sent=False)
    if code in ("temporarily_unavailable", "server_error") or (status or 0) >= 500:
        return GraphTransientError(f"login failed: {text}", graph_code=code, sent=False)
    return GraphAuthError(f"login failed: {text}", graph_code=code, status=401, sent=False)
