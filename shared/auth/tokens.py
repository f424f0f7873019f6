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
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jwt
import requests

from shared.auth.principal import Principal, Role
from shared.errors import AppError
from shared.keys import InvalidKeyError, validate_key
from shared.settings import AuthSettings, TrustedIssuer

ALLOWED_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}
)
_LEEWAY_SECONDS = 60
_MIN_REFRESH_SECONDS = 60.0
# Most tokens are 1-2 KiB, but Entra ID puts up to 200 group ids in a JWT before it sends a
# groups overage claim instead ("Configure group claims for applications by using Microsoft
# Entra ID", learn.microsoft.com/azure/active-directory/hybrid/how-to-connect-fed-group-claims);
# such an access token measures about 12 KB (tests/unit/test_large_tokens.py). 16 KiB leaves
# over 4 KiB to spare and stays well under Kestrel's default 32 KiB for all request headers.
# Anything larger is refused before it is parsed.
MAX_TOKEN_CHARS = 16 * 1024
# The key type (and curve) each algorithm family needs: a token may not pick an algorithm that
# does not fit the key its kid names.
_KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC"}
_CURVES = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}


class AuthError(AppError):
    """The caller is not authenticated (401). The message says why, without token contents."""

    http_status = 401
    code = "unauthenticated"
    headers = MappingProxyType({"WWW-Authenticate": 'Bearer error="invalid_token"'})

    def __init__(self, message: str) -> None:
        super().__init__(message)


class InvalidTokenError(AuthError):
    code = "invalid_token"


@dataclass(frozen=True)
class SigningKey:
    """A published key and the algorithm its JWK declares, if any."""

    jwk: jwt.PyJWK
    alg: str | None

    def fits(self, algorithm: str) -> bool:
        if self.alg is not None and self.alg != algorithm:
            return False
        if self.jwk.key_type != _KEY_TYPES.get(algorithm[:2]):
            return False
        curve = getattr(getattr(self.jwk.key, "curve", None), "name", None)
        return algorithm not in _CURVES or curve == _CURVES[algorithm]


class JwksCache:
    """Signing keys per issuer, fetched on first use and again when a new `kid` appears."""

    def __init__(self, http: requests.Session, timeout: float = 5.0) -> None:
        self._http = http
        self._timeout = timeout
        self._keys: dict[str, dict[str, SigningKey]] = {}
        self._fetched_at: dict[str, float] = {}
        self._lock = threading.Lock()

    def key(self, issuer: TrustedIssuer, kid: str | None) -> SigningKey:
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

    def _fetch(self, issuer: TrustedIssuer) -> dict[str, SigningKey]:
        try:
            if issuer.jwks_file:
                document = json.loads(Path(issuer.jwks_file).read_text())
            else:
                response = self._http.get(issuer.jwks_url or "", timeout=self._timeout)
                response.raise_for_status()
                document = response.json()
        except (OSError, ValueError, requests.RequestException) as exc:
            raise AuthError(f"the signing keys of {issuer.issuer} could not be read") from exc
        keys: dict[str, SigningKey] = {}
        listed = document.get("keys", []) if isinstance(document, dict) else []
        for index, item in enumerate(listed if isinstance(listed, list) else []):
            if not isinstance(item, dict) or item.get("use", "sig") != "sig":
                continue
            try:
                alg = item.get("alg")
                keys[str(item.get("kid", index))] = SigningKey(
                    jwt.PyJWK(item), alg if isinstance(alg, str) else None
                )
            except (jwt.PyJWTError, ValueError, TypeError):
                continue  # a key type we do not use, or a malformed entry
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
        token = token.strip()
        if len(token) > MAX_TOKEN_CHARS:
            raise InvalidTokenError("the bearer token is too large")
        claims = self._verified_claims(token)
        return self._principal(claims)

    def _verified_claims(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise InvalidTokenError("the bearer token is not a well-formed JWT") from exc
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in ALLOWED_ALGORITHMS:
            raise InvalidTokenError(f"token algorithm {str(algorithm)[:20]!r} is not accepted")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidTokenError("the token's key id (kid) is not a string")
        claimed_issuer = _text(unverified, "iss")
        issuer = self._issuers.get(claimed_issuer) if claimed_issuer else None
        if issuer is None:
            raise InvalidTokenError("the token's issuer is not trusted")
        key = self._jwks.key(issuer, kid)
        if not key.fits(algorithm):
            raise InvalidTokenError(
                f"the token's algorithm {algorithm} does not fit the issuer's key {kid!r}"
            )
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.jwk.key,
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
        except (ValueError, TypeError) as exc:
            # The crypto library's own refusals (a key that cannot verify this algorithm).
            raise InvalidTokenError("the token's signature could not be checked") from exc
        return claims

    def _principal(self, claims: Mapping[str, Any]) -> Principal:
        tenant = claims.get(self._tenant_claim)
        if tenant in (None, ""):
            tenant = self._default_tenant_id
        if not isinstance(tenant, str):
            raise InvalidTokenError(
                f"the token's tenant claim ({self._tenant_claim}) is not a string"
            )
        raw_roles = claims.get(self._roles_claim)
        if raw_roles is None:
            raw_roles = []
        elif isinstance(raw_roles, str):
            raw_roles = [raw_roles]
        if not isinstance(raw_roles, list) or not all(isinstance(r, str) for r in raw_roles):
            raise InvalidTokenError(
                f"the token's roles claim ({self._roles_claim}) must be a string or a list "
                "of strings"
            )
        roles = frozenset(Role(r) for r in raw_roles if r in Role._value2member_map_)
        if not isinstance(claims.get("sub"), str):
            raise InvalidTokenError("the token's subject (sub) is not a string")
        email = (
            _text(claims, "email") or _text(claims, "preferred_username") or _text(claims, "upn")
        )
        try:
            # Both become parts of storage keys; an issuer that sends odd ones is refused here.
            user_id = validate_key(claims["sub"], "subject (sub)")
            tenant_id = validate_key(tenant, f"tenant claim ({self._tenant_claim})")
        except InvalidKeyError as exc:
            raise InvalidTokenError(f"the token's {exc}") from exc
        return Principal(
            user_id=user_id,
            tenant_id=tenant_id,
            roles=roles,
            email=email,
            name=_text(claims, "name"),
        )


def _text(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    return value if isinstance(value, str) and value else None
