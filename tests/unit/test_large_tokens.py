"""Bearer tokens as large as Entra ID makes them pass; larger ones are refused unread.

Entra ID puts at most 200 groups in a JWT (beyond that it sends a groups overage claim), so the
largest token a real tenant sends is an access token carrying 200 group ids.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import jwt
import pytest
import requests
import responses
from cryptography.hazmat.primitives.asymmetric import rsa

from localdev.devauth import DevIssuer, ensure_dev_issuer
from shared.auth.principal import Role
from shared.auth.tokens import MAX_TOKEN_CHARS, InvalidTokenError, JwksCache, TokenValidator
from shared.settings import DEV_AUDIENCE, DEV_ISSUER, AuthSettings, TrustedIssuer

JWKS_URL = "https://keys.test.example/dev/jwks"
DIRECTORY = "6a1b2c3d-0000-4000-8000-000000000001"
ENTRA_GROUP_LIMIT = 200


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> DevIssuer:
    return ensure_dev_issuer(tmp_path_factory.mktemp("dev-auth"))


@pytest.fixture
def rsps(issuer):
    """The issuer's keys, served over HTTPS, so a test can see whether they were fetched."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(JWKS_URL, json=json.loads(Path(issuer.jwks_file).read_text()))
        yield mock


@pytest.fixture
def validator(rsps):
    trusted = TrustedIssuer(DEV_ISSUER, DEV_AUDIENCE, jwks_url=JWKS_URL)
    return TokenValidator(AuthSettings(issuers=(trusted,)), JwksCache(requests.Session()), "demo")


def entra_access_token(issuer: DevIssuer, groups: int = ENTRA_GROUP_LIMIT, **extra) -> str:
    """An access token shaped as Entra ID v2.0 issues one, with `groups` group object ids."""
    return issuer.mint(
        user="AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
        roles=["staff"],
        tenant="demo",
        email="adele.vance@contoso.example",
        name="Adele Vance",
        aio="AXQAi/8YAAAAOTwqQ4YGxK0UaC3xtqXdTnRJ8Av4qKh1KCdHPSNyLKgM7jAQfRMDpXbQDX9dp7E=",
        azp=str(uuid.uuid4()),
        azpacr="0",
        groups=[str(uuid.uuid4()) for _ in range(groups)],
        oid=str(uuid.uuid4()),
        preferred_username="adele.vance@contoso.example",
        rh="0.AQ8AqVQWnAN9mU6fkd6BcBvO3wIAAAAAAAAAwAAAAAAAAAAPAOI.",
        scp="access_as_user",
        tid=DIRECTORY,
        uti="aBcDeFgHiJkLmNoPqRsTuV",
        ver="2.0",
        wids=["b79fbf4d-3ef9-4689-8143-76b194e85509"],
        **extra,
    )


def test_a_token_with_entras_200_groups_is_accepted(validator, issuer, capsys):
    # GIVEN the largest token Entra ID sends: an access token with 200 groups
    token = entra_access_token(issuer)
    # Entra signs with RS256 and a 2048-bit key: the same claims, as it would sign them.
    as_entra_signs = jwt.encode(
        jwt.decode(token, options={"verify_signature": False}),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        algorithm="RS256",
        headers={"kid": "KQ2tAcrE7lBaVVGBmc5FobgdJo4", "x5t": "KQ2tAcrE7lBaVVGBmc5FobgdJo4"},
    )
    with capsys.disabled():
        print(
            f"\n200-group access token: {len(token)} characters (ES256, dev issuer), "
            f"{len(as_entra_signs)} (RS256, as Entra signs); bound {MAX_TOKEN_CHARS}"
        )
    assert 11_000 < len(as_entra_signs) < MAX_TOKEN_CHARS - 4_000

    # WHEN it is presented
    principal = validator.authenticate(f"Bearer {token}")

    # THEN it passes, with room to spare under the bound
    assert principal.roles == frozenset({Role.STAFF})
    assert principal.tenant_id == "demo"
    assert 11_000 < len(token) < MAX_TOKEN_CHARS - 4_000


def test_a_token_just_over_the_bound_is_refused_before_its_keys_are_fetched(
    validator, issuer, rsps
):
    # GIVEN a well-signed token a few characters too large
    token = entra_access_token(issuer)
    token = entra_access_token(issuer, padding="x" * ((MAX_TOKEN_CHARS - len(token)) * 3 // 4 + 8))
    assert MAX_TOKEN_CHARS < len(token) < MAX_TOKEN_CHARS + 64

    # WHEN it is presented THEN it is refused as too large, and nothing was fetched or verified
    with pytest.raises(InvalidTokenError, match="too large") as refused:
        validator.authenticate(f"Bearer {token}")
    assert refused.value.http_status == 401
    assert len(rsps.calls) == 0


def test_a_megabyte_token_is_refused_unread(validator, rsps):
    token = "eyJhbGciOiJFUzI1NiJ9." + "A" * 1_000_000 + ".sig"

    with pytest.raises(InvalidTokenError, match="too large") as refused:
        validator.authenticate(f"Bearer {token}")

    assert refused.value.http_status == 401
    assert len(rsps.calls) == 0


def test_a_token_at_the_bound_is_read(validator, issuer):
    token = entra_access_token(issuer)
    # Padding a claim grows the token by 4 characters per 3 bytes; land exactly on the bound.
    for pad in range((MAX_TOKEN_CHARS - len(token)) * 3 // 4 - 40, MAX_TOKEN_CHARS):
        token = entra_access_token(issuer, padding="x" * pad)
        if len(token) >= MAX_TOKEN_CHARS - 2:
            break
    assert MAX_TOKEN_CHARS - 2 <= len(token) <= MAX_TOKEN_CHARS

    assert validator.authenticate(f"Bearer {token}").tenant_id == "demo"


def test_the_bound_stays_bounded():
    # A bound is only a bound if a hostile header cannot make the validator read megabytes.
    assert 12_288 < MAX_TOKEN_CHARS <= 32 * 1024
