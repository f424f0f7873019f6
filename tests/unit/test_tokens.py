"""Bearer JWTs: only tokens signed by a trusted issuer's key, for our audience, in time, pass."""

from __future__ import annotations

import json
import time

import jwt
import pytest
import requests
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from shared.auth.principal import Role
from shared.auth.tokens import AuthError, InvalidTokenError, JwksCache, TokenValidator
from shared.settings import AuthSettings, TrustedIssuer

FIREBASE = TrustedIssuer(
    "https://securetoken.google.com/tutoring-app",
    "tutoring-app",
    "https://keys.test.example/firebase/jwks",
)
ENTRA = TrustedIssuer(
    "https://login.microsoftonline.com/dir-1/v2.0",
    "api://meetings",
    "https://keys.test.example/entra/jwks",
)


def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


KEY_A, KEY_B, STRANGER = rsa_key(), rsa_key(), rsa_key()


def jwks(*pairs) -> dict:
    keys = []
    for kid, key in pairs:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        keys.append({**jwk, "kid": kid, "alg": "RS256", "use": "sig"})
    return {"keys": keys}


def token(key=KEY_A, kid="a", issuer=FIREBASE, alg="RS256", **claims) -> str:
    now = int(time.time())
    body = {
        "iss": issuer.issuer,
        "aud": issuer.audience,
        "sub": "user-1",
        "iat": now,
        "exp": now + 600,
        "roles": ["student"],
        "tenant": "tenant-a",
        "email": "user@example.com",
    }
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(body, key, algorithm=alg, headers={"kid": kid})


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(FIREBASE.jwks_url, json=jwks(("a", KEY_A)))
        mock.get(ENTRA.jwks_url, json=jwks(("e", KEY_B)))
        yield mock


@pytest.fixture
def validator(rsps):
    return TokenValidator(
        AuthSettings(issuers=(FIREBASE, ENTRA)), JwksCache(requests.Session()), "default"
    )


def bearer(value: str) -> str:
    return f"Bearer {value}"


def test_a_valid_firebase_token_names_the_caller(validator):
    caller = validator.authenticate(bearer(token()))

    assert caller.user_id == "user-1"
    assert caller.tenant_id == "tenant-a"
    assert caller.roles == {Role.STUDENT}
    assert caller.email == "user@example.com"


def test_an_entra_token_from_a_second_issuer_is_accepted(validator):
    caller = validator.authenticate(
        bearer(token(KEY_B, "e", ENTRA, roles=["admin", "staff"], tenant=None))
    )

    assert caller.roles == {Role.ADMIN, Role.STAFF}
    assert caller.tenant_id == "default"


def test_a_single_role_string_and_unknown_roles(validator):
    assert validator.authenticate(bearer(token(roles="tutor"))).roles == {Role.TUTOR}
    assert validator.authenticate(bearer(token(roles=["superuser"]))).roles == frozenset()


def test_keys_are_fetched_once_and_cached(rsps, validator):
    for _ in range(3):
        validator.authenticate(bearer(token()))

    assert len([c for c in rsps.calls if c.request.url == FIREBASE.jwks_url]) == 1


def test_a_rotated_key_is_found_by_refreshing_the_jwks(rsps, validator, monkeypatch):
    validator.authenticate(bearer(token()))
    rsps.replace(responses.GET, FIREBASE.jwks_url, json=jwks(("a", KEY_A), ("b", KEY_B)))
    monkeypatch.setattr("shared.auth.tokens._MIN_REFRESH_SECONDS", 0.0)

    caller = validator.authenticate(bearer(token(KEY_B, "b")))

    assert caller.user_id == "user-1"
    assert len([c for c in rsps.calls if c.request.url == FIREBASE.jwks_url]) == 2


def test_an_unknown_kid_does_not_hammer_the_issuer(rsps, validator):
    validator.authenticate(bearer(token()))

    for _ in range(3):
        with pytest.raises(InvalidTokenError, match="key"):
            validator.authenticate(bearer(token(STRANGER, "zz")))

    assert len([c for c in rsps.calls if c.request.url == FIREBASE.jwks_url]) == 1


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: token(exp=int(time.time()) - 3600), "expired"),
        (lambda: token(nbf=int(time.time()) + 3600), "not valid yet"),
        (lambda: token(aud="someone-else"), "audience"),
        (lambda: token(iss="https://evil.example"), "issuer"),
        (lambda: token(STRANGER, "a"), "refused"),
        (lambda: token(exp=None), "refused"),
        (lambda: token(sub=None), "refused"),
        (lambda: token(tenant="a/b"), "tenant"),
        (lambda: "not.a.jwt", "well-formed"),
    ],
)
def test_bad_tokens_are_refused(validator, make, message):
    with pytest.raises(InvalidTokenError, match=message):
        validator.authenticate(bearer(make()))


def test_a_tampered_payload_fails_the_signature(validator):
    header, payload, signature = token().split(".")
    other = token(sub="admin-1", roles=["admin"]).split(".")[1]

    with pytest.raises(InvalidTokenError):
        validator.authenticate(bearer(f"{header}.{other}.{signature}"))
    assert payload != other


def test_alg_none_is_refused(validator):
    unsigned = jwt.encode(
        {
            "iss": FIREBASE.issuer,
            "aud": FIREBASE.audience,
            "sub": "x",
            "exp": int(time.time()) + 60,
        },
        key="",
        algorithm="none",
    )

    with pytest.raises(InvalidTokenError, match="not accepted"):
        validator.authenticate(bearer(unsigned))


def test_hmac_signed_with_the_public_key_is_refused(validator):
    public_pem = KEY_A.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "kid": "a", "typ": "JWT"}
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    now = int(time.time())
    claims = {"iss": FIREBASE.issuer, "aud": FIREBASE.audience, "sub": "x", "exp": now + 60}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()

    with pytest.raises(InvalidTokenError, match="not accepted"):
        validator.authenticate(bearer(f"{signing_input}.{b64(signature)}"))


@pytest.mark.parametrize("header", [None, "", "Basic dXNlcjpwYXNz", "Bearer", "Bearer   "])
def test_missing_or_non_bearer_credentials_are_unauthenticated(validator, header):
    with pytest.raises(AuthError) as raised:
        validator.authenticate(header)

    assert raised.value.code == "unauthenticated"


def test_an_unreachable_jwks_is_an_auth_error_not_a_crash(rsps, validator):
    rsps.replace(responses.GET, FIREBASE.jwks_url, status=503)

    with pytest.raises(AuthError, match="signing keys"):
        validator.authenticate(bearer(token()))


def test_the_dev_issuer_reads_its_keys_from_a_file(dev_issuer):
    from shared.settings import DEV_AUDIENCE, DEV_ISSUER

    validator = TokenValidator(
        AuthSettings(
            issuers=(TrustedIssuer(DEV_ISSUER, DEV_AUDIENCE, jwks_file=str(dev_issuer.jwks_file)),)
        ),
        JwksCache(requests.Session()),
        "default",
    )

    caller = validator.authenticate(
        bearer(dev_issuer.mint(user="admin-1", roles=["admin"], tenant="demo"))
    )

    assert (caller.user_id, caller.tenant_id) == ("admin-1", "demo")
    assert caller.roles == {Role.ADMIN}


# -- hostile tokens: every shape is a 401 (InvalidTokenError), never an exception -----------------

EC_KEY = ec.generate_private_key(ec.SECP256R1())
EC_P384 = ec.generate_private_key(ec.SECP384R1())


@pytest.fixture
def ec_validator():
    """An issuer whose only key (kid "k") is ES256."""
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(EC_KEY.public_key()))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(FIREBASE.jwks_url, json={"keys": [{**jwk, "kid": "k", "use": "sig"}]})
        yield TokenValidator(AuthSettings(issuers=(FIREBASE,)), JwksCache(requests.Session()), "d")


def test_an_attackers_rs256_token_naming_an_ec_kid_is_refused(ec_validator):
    # GIVEN the issuer's kid "k" is an EC key, and an attacker signs RS256 with their own key
    forged = token(STRANGER, "k", alg="RS256", roles=["admin"])

    with pytest.raises(InvalidTokenError, match="does not fit"):
        ec_validator.authenticate(bearer(forged))


def test_an_es384_token_for_a_p256_key_is_refused(ec_validator):
    with pytest.raises(InvalidTokenError, match="does not fit"):
        ec_validator.authenticate(bearer(token(EC_P384, "k", alg="ES384")))


def test_a_genuine_es256_token_is_accepted(ec_validator):
    assert ec_validator.authenticate(bearer(token(EC_KEY, "k", alg="ES256"))).user_id == "user-1"


def test_a_token_whose_alg_differs_from_the_keys_declared_alg_is_refused(validator):
    # The JWKS declares "alg": "RS256" for kid "a": a PS256 signature with that key is refused.
    with pytest.raises(InvalidTokenError, match="does not fit"):
        validator.authenticate(bearer(token(KEY_A, "a", alg="PS256")))


@pytest.mark.parametrize(
    "claims",
    [
        {"roles": {"admin": True}},
        {"roles": 7},
        {"roles": ["admin", 7]},
        {"roles": [["admin"]]},
        {"tenant": ["tenant-a"]},
        {"tenant": {"id": "tenant-a"}},
        {"tenant": 42},
        {"sub": 12345},
        {"sub": ["user-1"]},
    ],
)
def test_claims_of_the_wrong_type_are_refused(validator, claims):
    with pytest.raises(InvalidTokenError, match=r"not a string|must be a string"):
        validator.authenticate(bearer(token(**claims)))


def test_an_oversized_token_is_refused_before_it_is_parsed(validator):
    with pytest.raises(InvalidTokenError, match="too large"):
        validator.authenticate(bearer(token(padding="x" * 20_000)))


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "RS256", "kid": 5},
        {"alg": ["RS256"], "kid": "a"},
        {"alg": None},
    ],
)
def test_malformed_headers_are_refused(validator, header):
    head = jwt.utils.base64url_encode(json.dumps(header).encode()).decode()
    _, payload, signature = token().split(".")

    with pytest.raises(InvalidTokenError):
        validator.authenticate(bearer(f"{head}.{payload}.{signature}"))
