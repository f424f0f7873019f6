"""Services on Azurite with Graph faked at the wire by the local Graph emulator (over TLS)."""

from __future__ import annotations

import uuid

import pytest

from localdev.graph_emulator import GraphEmulator
from shared.bootstrap import Services, build_services
from shared.domain.tenant import MicrosoftProfile, Tenant
from shared.settings import Settings
from tests.conftest import STRIPE_SECRET

DIRECTORY = "0a0b0c0d-0000-4000-8000-0000000000aa"
CLIENT_ID = "client-services"
TENANT = "tenant-a"
ORGANIZER = "organizer@a.example"


@pytest.fixture
def emulator(local_tls, trust_local_tls):
    instance = GraphEmulator(local_tls).start()
    instance.register_app(DIRECTORY, CLIENT_ID, "services-secret")
    instance.add_user(DIRECTORY, ORGANIZER, "Organizer")
    yield instance
    instance.stop()


@pytest.fixture
def make_services(azurite, emulator, dev_issuer, monkeypatch):
    """Build the app's services on fresh tables and queues (or those of `prefix`, for a second
    process's services on the same storage), with tenant-a configured unless `with_tenant` is
    False."""
    monkeypatch.setenv("TENANT_A_SECRET", "services-secret")

    def make(prefix: str | None = None, *, with_tenant: bool = True, **env: str) -> Services:
        settings = Settings.from_env(
            {
                "AzureWebJobsStorage": azurite.connection_string,
                "GRAPH_BASE_URL": emulator.graph_url,
                "MICROSOFT_AUTHORITY_HOST": emulator.base_url,
                "AUTH_DEV_JWKS_FILE": str(dev_issuer.jwks_file),
                "STRIPE_WEBHOOK_SECRET": STRIPE_SECRET,
                **env,
            }
        )
        prefix = prefix or f"s{uuid.uuid4().hex[:10]}"
        services = build_services(settings, table_prefix=prefix, queue_prefix=f"{prefix}-")
        if not with_tenant:
            return services
        services.tenants.add(
            Tenant(
                tenant_id=TENANT,
                display_name="Tenant A",
                microsoft=MicrosoftProfile(DIRECTORY, CLIENT_ID, "TENANT_A_SECRET"),
                organizer_upn=ORGANIZER,
            )
        )
        return services

    return make


@pytest.fixture
def svc(make_services):
    return make_services()
