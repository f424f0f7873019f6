"""The development token issuer: a local signing key, and a command that mints tokens.

The app trusts it only through `AUTH_DEV_JWKS_FILE` (the public keys), which it refuses when
running in Azure. The private key stays in `.local/dev-auth/`.

    python -m localdev.devauth --role admin --tenant demo --user admin-1
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from localdev.azurite import REPO_ROOT
from shared.settings import DEV_AUDIENCE, DEV_ISSUER

DEFAULT_DIR = REPO_ROOT / ".local" / "dev-auth"
ROLES = ("admin", "staff", "tutor", "student", "parent", "client")


@dataclass(frozen=True)
class DevIssuer:
    private_key_file: Path
    jwks_file: Path
    kid: str

    def mint(
        self,
        *,
        user: str,
        roles: list[str],
        tenant: str | None,
        email: str | None = None,
        name: str | None = None,
        lifetime: int = 3600,
        **extra: Any,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": DEV_ISSUER,
            "aud": DEV_AUDIENCE,
            "sub": user,
            "roles": roles,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "email": email or f"{user}@example.com",
            "name": name or user,
            **extra,
        }
        if tenant is not None:
            claims["tenant"] = tenant
        key = serialization.load_pem_private_key(self.private_key_file.read_bytes(), None)
        return jwt.encode(claims, key, algorithm="ES256", headers={"kid": self.kid})  # type: ignore[arg-type]


def ensure_dev_issuer(directory: Path = DEFAULT_DIR) -> DevIssuer:
    """The issuer in `directory`, made on first use (a P-256 key and its JWKS)."""
    directory.mkdir(parents=True, exist_ok=True)
    private_file, jwks_file = directory / "private-key.pem", directory / "jwks.json"
    if private_file.exists() and jwks_file.exists():
        kid = json.loads(jwks_file.read_text())["keys"][0]["kid"]
        return DevIssuer(private_file, jwks_file, kid)
    key = ec.generate_private_key(ec.SECP256R1())
    kid = uuid.uuid4().hex[:16]
    private_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    private_file.chmod(0o600)
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwks_file.write_text(
        json.dumps({"keys": [{**public, "kid": kid, "alg": "ES256", "use": "sig"}]})
    )
    return DevIssuer(private_file, jwks_file, kid)


def main() -> None:
    parser = argparse.ArgumentParser(description="Mint a development bearer token.")
    parser.add_argument("--role", action="append", choices=ROLES, required=True)
    parser.add_argument("--user", default=None, help="subject (user id); default: <role>-1")
    parser.add_argument("--tenant", default="demo")
    parser.add_argument("--email", default=None)
    parser.add_argument("--hours", type=float, default=8.0)
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    args = parser.parse_args()
    issuer = ensure_dev_issuer(args.dir)
    print(
        issuer.mint(
            user=args.user or f"{args.role[0]}-1",
            roles=args.role,
            tenant=args.tenant,
            email=args.email,
            lifetime=int(args.hours * 3600),
        )
    )


if __name__ == "__main__":
    main()
