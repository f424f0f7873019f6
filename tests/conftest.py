"""Shared fixtures. Storage is real: one Azurite per test session, started here on free ports."""

from __future__ import annotations

import os
import secrets
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from localdev.azurite import Azurite, start_azurite
from localdev.devauth import DevIssuer, ensure_dev_issuer
from localdev.tls import LocalTls, make_local_tls
from shared.settings import StorageSettings
from shared.storage.tables import Tables, make_table_service

# function_app validates settings when imported; give tests a harmless baseline: storage that
# is never reached, and a development token issuer of the session's own.
DEV_ISSUER = ensure_dev_issuer(Path(tempfile.mkdtemp(prefix="dev-auth-")))
os.environ.setdefault(
    "AzureWebJobsStorage",
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=placeholder;"
    "TableEndpoint=http://127.0.0.1:9/devstoreaccount1;",
)
os.environ.setdefault("AUTH_DEV_JWKS_FILE", str(DEV_ISSUER.jwks_file))
# The Stripe webhook signing secret of this test session (made here, never stored).
STRIPE_SECRET = os.environ.setdefault("STRIPE_WEBHOOK_SECRET", f"whsec_{secrets.token_hex(16)}")


@pytest.fixture(scope="session")
def dev_issuer() -> DevIssuer:
    return DEV_ISSUER


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    instance = start_azurite(log_file=tmp_path_factory.mktemp("azurite") / "azurite.log")
    yield instance
    instance.stop()


@pytest.fixture
def tables(azurite: Azurite) -> Tables:
    """A fresh set of tables for one test (a unique name prefix), on the session's Azurite."""
    service = make_table_service(StorageSettings(connection_string=azurite.connection_string))
    return Tables(service, prefix=f"t{uuid.uuid4().hex[:10]}")


@pytest.fixture(scope="session")
def local_tls(tmp_path_factory: pytest.TempPathFactory) -> LocalTls:
    return make_local_tls(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def trust_local_tls(local_tls: LocalTls, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make requests trust the emulator's CA (as a local run does), for this test only."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(local_tls.bundle_file))
    return local_tls.bundle_file
