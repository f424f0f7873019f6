"""The health probe's storage check answers at once when storage does not: one request, no SDK
retries (which, with 20-second reads, kept a probe waiting 85 s against a hung Azurite)."""

from __future__ import annotations

import re

import pytest
import responses

from localdev.azurite import ACCOUNT_KEY, ACCOUNT_NAME
from shared.settings import StorageSettings
from shared.storage.errors import StorageUnavailableError
from shared.storage.tables import Tables, make_table_service

# Azurite's well-known account, at an address `responses` answers for.
CONNECTION = (
    f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
    f"TableEndpoint=http://127.0.0.1:1/{ACCOUNT_NAME};"
)


@responses.activate
def test_a_failing_table_service_is_asked_once_by_the_health_probe():
    responses.add(responses.GET, re.compile(r"http://127\.0\.0\.1:1/.*"), status=503)
    tables = Tables(make_table_service(StorageSettings(connection_string=CONNECTION)))

    with pytest.raises(StorageUnavailableError):
        tables.ping()

    assert len(responses.calls) == 1


@responses.activate
def test_an_answering_table_service_passes_the_probe():
    responses.add(
        responses.GET, re.compile(r"http://127\.0\.0\.1:1/.*"), json={"value": []}, status=200
    )
    tables = Tables(make_table_service(StorageSettings(connection_string=CONNECTION)))

    tables.ping()

    assert len(responses.calls) == 1
