"""App-only Graph tokens: one msal ConfidentialClientApplication per tenant profile per process.

msal keeps each app's tokens in memory and serves them until shortly before they expire, so a
profile costs one token request per token lifetime, not one per Graph call.

The app proves itself to Entra in one of three ways (`CredentialKind`): with its managed
identity, federated with the app registration (no secret anywhere: the identity's token for
`api://AzureADTokenExchange` is the client assertion), with a certificate (msal signs the
assertion), or with a client secret.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import requests

from shared.domain.tenant import CredentialKind, MicrosoftProfile
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

FEDERATION_SCOPE = "api://AzureADTokenExchange/.default"
# A cached identity token is renewed this long before it expires.
_RENEW_BEFORE = 300.0


class ManagedIdentityAssertion:
    """The client assertion of a federated identity credential: the app's managed identity's
    token for `api://AzureADTokenExchange`, from azure-identity (the platform's identity
    endpoint, `IDENTITY_ENDPOINT`/`IDENTITY_HEADER`), cached until shortly before it expires.
    msal calls it only when it needs a Graph token, so it costs one identity request per
    identity-token lifetime."""

    def __init__(
        self,
        client_id: str | None,
        *,
        timeout: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client_id = client_id
        self._timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._token: tuple[str, float] | None = None

    def __call__(self) -> str:
        with self._lock:
            if self._token is not None and self._token[1] - _RENEW_BEFORE > self._clock():
                return self._token[0]
            token, expires_on = self._fetch()
            self._token = (token, expires_on)
            return token

    def _fetch(self) -> tuple[str, float]:
        from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError
        from azure.identity import CredentialUnavailableError, ManagedIdentityCredential

        if not (os.environ.get("IDENTITY_ENDPOINT") and os.environ.get("IDENTITY_HEADER")):
            # Functions hands every app with an identity these two; without them there is none
            # (and no instance metadata service to ask, as on a virtual machine).
            raise GraphAuthError(
                "no managed identity is available to sign in with: IDENTITY_ENDPOINT and "
                "IDENTITY_HEADER are not set (assign the app a managed identity, or choose "
                "MICROSOFT_CREDENTIAL=certificate or secret)",
                graph_code="managed_identity_unavailable",
                sent=False,
            )
        try:
            # A credential of its own each time: this cache decides when a token is renewed.
            credential = ManagedIdentityCredential(
                client_id=self._client_id,
                connection_timeout=self._timeout,
                read_timeout=self._timeout,
                retry_total=1,
            )
            got = credential.get_token(FEDERATION_SCOPE)
        except CredentialUnavailableError as exc:
            raise GraphAuthError(
                "no managed identity is available to sign in with (MICROSOFT_CREDENTIAL="
                "managed_identity needs the app's identity; locally, the emulator's endpoint)",
                graph_code="managed_identity_unavailable",
                sent=False,
            ) from exc
        except ServiceRequestError as exc:
            raise GraphTransientError("the identity endpoint is unreachable", sent=False) from exc
        except ClientAuthenticationError as exc:
            status = getattr(getattr(exc, "response", None), "status_code", None)
            if status is None or status == 429 or status >= 500:
                raise GraphTransientError(
                    f"the identity endpoint failed ({status or 'no answer'})",
                    status=status,
                    sent=False,
                ) from exc
            raise GraphAuthError(
                f"the managed identity was refused a token ({status})",
                status=status,
                graph_code="managed_identity_refused",
                sent=False,
            ) from exc
        return str(got.token), float(got.expires_on)


def certificate_credential(pem: str) -> dict[str, str]:
    """msal's certificate credential from one PEM holding the private key and the certificate
    (what Key Vault gives for a certificate with content type application/x-pem-file). msal
    computes the SHA-256 thumbprint from the certificate and signs the assertion (PS256)."""
    key = re.search(
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----.+?-----END [A-Z ]*PRIVATE KEY-----", pem, re.S
    )
    certs = re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", pem, re.S)
    if key is None or not certs:
        raise GraphAuthError(
            "the client certificate setting does not hold a PEM private key and certificate",
            graph_code="certificate_invalid",
            sent=False,
        )
    return {"private_key": key.group(0), "public_certificate": certs[0]}


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
        identity: Callable[[], str] | None = None,
    ) -> None:
        self._authority_host = authority_host.rstrip("/")
        self._scopes = [graph_scope(graph_base_url)]
        self._resolve_secret = resolve_secret
        self._http = http
        self._timeout = timeout
        # The managed identity's client assertion (None: no identity configured).
        self._identity = identity
        self._apps: dict[tuple[str, ...], msal.ConfidentialClientApplication] = {}
        # One acquisition at a time per profile: under a burst on a cold process, the first
        # thread fetches the token and the others find it in msal's cache (one token request
        # per profile, not one per thread). Other profiles are not held up. Re-entrant, so that
        # work nested on the same thread never waits on itself.
        self._acquiring: dict[tuple[str, ...], threading.RLock] = {}
        self._lock = threading.Lock()

    def token(self, profile: MicrosoftProfile) -> str:
        """A token, or a `GraphError` (never sent: no Graph request went out)."""
        import msal

        forget_last_status()
        try:
            app = self._app(profile)
            with self._acquiring[_key(profile)]:
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
        key = _key(profile)
        with self._lock:
            app = self._apps.get(key)
            if app is None:
                app = self._build(profile)
                self._apps[key] = app
                self._acquiring[key] = threading.RLock()
            return app

    def _build(self, profile: MicrosoftProfile) -> msal.ConfidentialClientApplication:
        import msal

        authority = f"{self._authority_host}/{profile.directory_tenant_id}"
        known_host = urlsplit(self._authority_host).hostname in _KNOWN_AUTHORITY_HOSTS
        try:
            return msal.ConfidentialClientApplication(
                client_id=profile.client_id,
                client_credential=self._credential(profile),
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

    def _credential(self, profile: MicrosoftProfile) -> Any:
        if profile.credential is CredentialKind.MANAGED_IDENTITY:
            if self._identity is None:
                raise GraphAuthError(
                    "the tenant signs in with the app's managed identity, and none is configured",
                    graph_code="managed_identity_unavailable",
                    sent=False,
                )
            return {"client_assertion": self._identity}
        if not profile.secret_setting:
            raise GraphAuthError(
                f"the tenant's {profile.credential.value} credential names no app setting",
                graph_code="secret_missing",
                sent=False,
            )
        material = self._resolve_secret(profile.secret_setting)
        if profile.credential is CredentialKind.CERTIFICATE:
            return certificate_credential(material)
        return material


def _key(profile: MicrosoftProfile) -> tuple[str, ...]:
    return (
        profile.directory_tenant_id,
        profile.client_id,
        profile.credential.value,
        profile.secret_setting or "",
    )


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
    if code in ("temporarily_unavailable", "server_error") or (status or 0) >= 500 or status == 408:
        return GraphTransientError(f"login failed: {text}", graph_code=code, sent=False)
    return GraphAuthError(f"login failed: {text}", graph_code=code, status=401, sent=False)
