"""The app signs in to Entra without a secret by default: its managed identity is a federated
credential of the app registration, the identity's token for api://AzureADTokenExchange is the
client assertion. A certificate is the second way, a client secret the last. Against the local
login emulator over TLS, which plays the platform's identity endpoint as App Service does
(IDENTITY_ENDPOINT, IDENTITY_HEADER) and checks each token request's proof."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from localdev.graph_emulator import GraphEmulator
from shared.domain.tenant import CredentialKind, MicrosoftProfile
from shared.graph.client import CallContext, GraphMeetingsClient
from shared.graph.errors import GraphAuthError
from shared.graph.session import TimeoutSession
from shared.graph.tokens import ManagedIdentityAssertion, MsalTokenSource

pytestmark = pytest.mark.integration

DIRECTORY = "0a0b0c0d-0000-4000-8000-0000000000cc"
ORGANIZER = "organizer@c.example"


@pytest.fixture
def emulator(local_tls, trust_local_tls, monkeypatch):
    instance = GraphEmulator(local_tls).start()
    instance.add_user(DIRECTORY, ORGANIZER, "Organizer")
    # As App Service gives them to a function app with a managed identity.
    monkeypatch.setenv("IDENTITY_ENDPOINT", instance.identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", instance.identity_header)
    yield instance
    instance.stop()


class Clock:
    def __init__(self) -> None:
        import time

        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def tokens_for(emulator, *, identity=None, secrets=None) -> MsalTokenSource:
    session = TimeoutSession(5.0)
    return MsalTokenSource(
        authority_host=emulator.base_url,
        graph_base_url=emulator.graph_url,
        resolve_secret=lambda name: (secrets or {})[name],
        http=session,
        timeout=5.0,
        identity=identity,
    )


def federated_app(emulator, identity, client_id: str) -> MicrosoftProfile:
    emulator.register_app(DIRECTORY, client_id, None)  # no secret exists
    emulator.federate(DIRECTORY, client_id, identity)
    return MicrosoftProfile(DIRECTORY, client_id, None, CredentialKind.MANAGED_IDENTITY)


def test_the_managed_identity_signs_in_with_a_federated_assertion_and_no_secret(emulator):
    # GIVEN an app registration whose only credential is the app's managed identity
    identity = emulator.add_managed_identity(DIRECTORY)
    profile = federated_app(emulator, identity, "client-federated")
    tokens = tokens_for(emulator, identity=ManagedIdentityAssertion(identity.client_id, timeout=5))

    # WHEN the app calls Graph
    graph = GraphMeetingsClient(
        base_url=emulator.graph_url, tokens=tokens, http=TimeoutSession(5.0), timeout=5.0
    )
    user = graph.get_user(profile, ORGANIZER, CallContext(tenant_id="t", operation="verify"))

    # THEN its token request carried a jwt-bearer assertion the federation trusts, no secret
    assert user.display_name == "Organizer"
    assert emulator.token_requests == [{"clientId": "client-federated", "credential": "federated"}]
    assert emulator.calls["identity"] == 1


def test_one_identity_token_serves_every_sign_in_until_it_nears_expiry(emulator):
    identity = emulator.add_managed_identity(DIRECTORY)
    clock = Clock()
    assertion = ManagedIdentityAssertion(identity.client_id, timeout=5, clock=clock)
    tokens = tokens_for(emulator, identity=assertion)
    first, second, third = (
        federated_app(emulator, identity, f"client-{n}") for n in ("one", "two", "three")
    )

    # WHEN two registrations sign in, one several times
    for profile in (first, second, first, second):
        assert tokens.token(profile)

    # THEN one identity request served both; msal asked the token endpoint once per app
    assert emulator.calls["identity"] == 1
    assert emulator.calls["token"] == 2

    # AND once the identity token is within five minutes of its expiry, it is fetched anew
    clock.now += emulator.identity_token_seconds - 299
    assert tokens.token(third)
    assert emulator.calls["identity"] == 2


def test_a_registration_that_does_not_trust_the_identity_refuses_it(emulator):
    identity = emulator.add_managed_identity(DIRECTORY)
    stranger = emulator.add_managed_identity(DIRECTORY)
    profile = federated_app(emulator, identity, "client-trusts-one")
    tokens = tokens_for(emulator, identity=ManagedIdentityAssertion(stranger.client_id, timeout=5))

    with pytest.raises(GraphAuthError) as refused:
        tokens.token(profile)

    assert refused.value.sent is False
    assert emulator.token_requests == []


def test_without_an_identity_endpoint_the_sign_in_fails_clearly(emulator, monkeypatch):
    monkeypatch.delenv("IDENTITY_ENDPOINT")
    monkeypatch.delenv("IDENTITY_HEADER")
    identity = emulator.add_managed_identity(DIRECTORY)
    profile = federated_app(emulator, identity, "client-no-endpoint")
    tokens = tokens_for(emulator, identity=ManagedIdentityAssertion(identity.client_id, timeout=2))

    with pytest.raises(GraphAuthError) as refused:
        tokens.token(profile)

    assert emulator.calls["token"] == 0
    assert refused.value.graph_code == "managed_identity_unavailable"
    assert "IDENTITY_ENDPOINT" in str(refused.value)


def certificate_pem(common_name: str) -> tuple[str, bytes]:
    """(key and certificate PEM, as Key Vault gives a PEM certificate's secret; the public part)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    return (key_pem + cert_pem).decode(), cert_pem


def test_a_certificate_signs_the_assertion_and_no_secret_is_sent(emulator):
    combined, public = certificate_pem("meetings-service")
    emulator.register_app(DIRECTORY, "client-cert", None)
    emulator.add_certificate(DIRECTORY, "client-cert", public)
    profile = MicrosoftProfile(DIRECTORY, "client-cert", "CERT_SETTING", CredentialKind.CERTIFICATE)
    tokens = tokens_for(emulator, secrets={"CERT_SETTING": combined})

    assert tokens.token(profile)
    assert emulator.token_requests == [{"clientId": "client-cert", "credential": "certificate"}]
    assert emulator.calls["identity"] == 0


def test_a_certificate_the_registration_does_not_hold_is_refused(emulator):
    _, public = certificate_pem("uploaded")
    other, _ = certificate_pem("someone-else")
    emulator.register_app(DIRECTORY, "client-cert-2", None)
    emulator.add_certificate(DIRECTORY, "client-cert-2", public)
    profile = MicrosoftProfile(DIRECTORY, "client-cert-2", "CERT", CredentialKind.CERTIFICATE)

    with pytest.raises(GraphAuthError):
        tokens_for(emulator, secrets={"CERT": other}).token(profile)


def test_a_certificate_setting_without_a_private_key_is_an_auth_error(emulator):
    _, public = certificate_pem("no-key")
    emulator.register_app(DIRECTORY, "client-cert-3", None)
    profile = MicrosoftProfile(DIRECTORY, "client-cert-3", "CERT", CredentialKind.CERTIFICATE)

    with pytest.raises(GraphAuthError) as refused:
        tokens_for(emulator, secrets={"CERT": public.decode()}).token(profile)

    assert refused.value.graph_code == "certificate_invalid"


def test_a_client_secret_still_works(emulator):
    emulator.register_app(DIRECTORY, "client-secret", "s3cret")
    profile = MicrosoftProfile(DIRECTORY, "client-secret", "SECRET_SETTING")

    assert tokens_for(emulator, secrets={"SECRET_SETTING": "s3cret"}).token(profile)
    assert emulator.token_requests == [{"clientId": "client-secret", "credential": "secret"}]


def test_a_burst_on_a_cold_process_asks_for_one_token_per_registration(emulator):
    from concurrent.futures import ThreadPoolExecutor

    # GIVEN two registrations and a process that holds no token yet
    emulator.register_app(DIRECTORY, "client-burst-1", "s1")
    emulator.register_app(DIRECTORY, "client-burst-2", "s2")
    first = MicrosoftProfile(DIRECTORY, "client-burst-1", "S1")
    second = MicrosoftProfile(DIRECTORY, "client-burst-2", "S2")
    tokens = tokens_for(emulator, secrets={"S1": "s1", "S2": "s2"})

    # WHEN 32 threads want a token at once, half for each
    with ThreadPoolExecutor(max_workers=32) as pool:
        got = list(pool.map(lambda i: tokens.token(first if i % 2 else second), range(32)))

    # THEN each registration asked the token endpoint once
    assert all(got)
    assert emulator.calls["token"] == 2


def test_a_burst_resolves_the_organizer_once(emulator):
    from concurrent.futures import ThreadPoolExecutor

    from shared.domain.tenant import Tenant
    from shared.meetings.steps import MeetingSteps
    from shared.storage.memory import InMemoryAuditRepository, InMemoryTenantRepository
    from shared.storage.tenant_directory import TenantDirectory

    emulator.register_app(DIRECTORY, "client-organizer", "s")
    tenant = Tenant(
        tenant_id="t-burst",
        display_name="Burst",
        microsoft=MicrosoftProfile(DIRECTORY, "client-organizer", "S"),
        organizer_upn=ORGANIZER,
    )
    repository = InMemoryTenantRepository()
    repository.add(tenant)
    graph = GraphMeetingsClient(
        base_url=emulator.graph_url,
        tokens=tokens_for(emulator, secrets={"S": "s"}),
        http=TimeoutSession(5.0),
        timeout=5.0,
    )
    steps = MeetingSteps(
        graph,
        TenantDirectory(repository, None),
        InMemoryAuditRepository(),
        lambda: dt.datetime.now(dt.UTC),
    )

    with ThreadPoolExecutor(max_workers=32) as pool:
        ids = set(pool.map(lambda _: steps.organizer_for(tenant), range(32)))

    assert len(ids) == 1
    assert emulator.calls["getUser"] == 1
    assert emulator.calls["token"] == 1
