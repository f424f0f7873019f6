"""Bearer JWT validation against one or more trusted OIDC issuers.

Checks, in order: the header names an allowed asymmetric algorithm (never `none`, never HMAC,
so a public key can't be used as a shared secret); the issuer is one we trust; the signing key
is in that issuer's JWKS (fetched once and cached, re-fetched on an unknown `kid` at most once a
minute); then signature, `exp`, `nbf`, `iss` and `aud`, with a minute of clock leeway.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jwt
import requests

from shared.auth.principal import Principal, Role
from shared.settings import AuthSettings, TrustedIssuer
from shared.storage.errors import InvalidKeyError
from shared.storage.tables import validate_key

ALLOWED_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}
)
_LEEWAY_SECONDS = 60
_MIN_REFRESH_SECONDS = 60.0


class AuthError(Exception):
    """The caller is not authenticated (401). The message says why, without token contents."""

    code = "unauthenticated"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidTokenError(AuthError):
    code = "invalid_token"


class JwksCache:
    """Signing keys per issuer, fetched on first use and again when a new `kid` appears."""

    def __init__(self, http: requests.Session, timeout: float = 5.0) -> None:
        self._http = http
        self._timeout = timeout
        self._keys: dict[str, dict[str, jwt.PyJWK]] = {}
        self._fetched_at: dict[str, float] = {}
        self._lock = threading.Lock()

    def key(self, issuer: TrustedIssuer, kid: str | None) -> jwt.PyJWK:
        source = issuer.jwks_url or issuer.jwks_file or ""
        with self._lock:
            keys = self._keys.get(source)
            stale = time.monotonic() - self._fetched_at.get(source, -1e9) > _MIN_REFRESH_SECONDS
            if keys is None or (kid not in keys and stale):
                keys = self._fetch(issuer)
                self._keys[source] = keys
                self._fetched_at[source] = time.monotonic()
        if kid is None and len(keys) == 1:
            return next(iter(keys.values()))
        if kid is None or kid not in keys:
            raise InvalidTokenError("the token was signed with a key the issuer does not publish")
        return keys[kid]

    def _fetch(self, issuer: TrustedIssuer) -> dict[str, jwt.PyJWK]:
        try:
            if issuer.jwks_file:
                document = json.loads(Path(issuer.jwks_file).read_text())
            else:
                response = self._http.get(issuer.jwks_url or "", timeout=self._timeout)
                response.raise_for_status()
                document = response.json()
        except (OSError, ValueError, requests.RequestException) as exc:
            raise AuthError(f"the signing keys of {issuer.issuer} could not be read") from exc
        keys: dict[str, jwt.PyJWK] = {}
        for index, item in enumerate(document.get("keys", [])):
            try:
                keys[str(item.get("kid", index))] = jwt.PyJWK(item)
            except jwt.PyJWTError:
                continue  # a key type we do not use (e.g. an encryption key)
        return keys


class TokenValidator:
    def __init__(self, auth: AuthSettings, jwks: JwksCache, default_tenant_id: str) -> None:
        self._issuers = {issuer.issuer: issuer for issuer in auth.issuers}
        self._tenant_claim = auth.tenant_claim
        self._roles_claim = auth.roles_claim
        self._jwks = jwks
        self._default_tenant_id = default_tenant_id

    def authenticate(self, authorization: str | None) -> Principal:
        """The caller named by an `Authorization: Bearer` header, or `AuthError`."""
        if not authorization:
            raise AuthError("Authentication required: send Authorization: Bearer <token>")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("Authentication required: send Authorization: Bearer <token>")
        claims = self._verified_claims(token.strip())
        return self._principal(claims)

    def _verified_claims(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise InvalidTokenError("the bearer token is not a well-formed JWT") from exc
        algorithm = header.get("alg")
        if algorithm not in ALLOWED_ALGORITHMS:
            raise InvalidTokenError(f"token algorithm {algorithm!r} is not accepted")
        issuer = self._issuers.get(str(unverified.get("iss")))
        if issuer is None:
            raise InvalidTokenError("the token's issuer is not trusted")
        key = self._jwks.key(issuer, header.get("kid"))
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                audience=issuer.audience,
                issuer=issuer.issuer,
                leeway=_LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidTokenError("the token has expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise InvalidTokenError("the token is not valid yet") from exc
        except jwt.InvalidAudienceError as exc:
            raise InvalidTokenError("the token is meant for another audience") from exc
        except jwt.PyJWTError as exc:
            raise InvalidTokenError(f"the token was refused: {exc}") from exc
        return claims

    def _principal(self, claims: Mapping[str, Any]) -> Principal:
        tenant = claims.get(self._tenant_claim) or self._default_tenant_id
        raw_roles = claims.get(self._roles_claim) or []
        if isinstance(raw_roles, str):
            raw_roles = [raw_roles]
        roles = frozenset(Role(r) for r in raw_roles if r in Role._value2member_map_)
        email = claims.get("email") or claims.get("preferred_username") or claims.get("upn")
        try:
            # Both become parts of storage keys; an issuer that sends odd ones is refused here.
            user_id = validate_key(str(claims["sub"]), "subject (sub)")
            tenant_id = validate_key(str(tenant), f"tenant claim ({self._tenant_claim})")
        except InvalidKeyError as exc:
            raise InvalidTokenError(f"the token's {exc}") from exc
        return Principal(
            user_id=user_id,
            tenant_id=tenant_id,
            roles=roles,
            email=str(email) if email else None,
            name=str(claims["name"]) if claims.get("name") else None,
        )
