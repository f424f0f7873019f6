"""Settings are read once from the environment; a bad environment stops start-up, named."""

from __future__ import annotations

import dataclasses

import pytest

from shared.settings import Settings, SettingsError

STORAGE = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}
PROFILE = {
    "MICROSOFT_TENANT_ID": "dir-1",
    "MICROSOFT_CLIENT_ID": "client-1",
    "MICROSOFT_CLIENT_SECRET": "shh-secret",
    "TEAMS_ORGANIZER_EMAIL": "organizer@example.com",
}


def test_defaults_apply_when_only_storage_is_set():
    settings = Settings.from_env(STORAGE)

    assert settings.graph_base_url == "https://graph.microsoft.com/v1.0"
    assert settings.authority_host == "https://login.microsoftonline.com"
    assert settings.default_tenant_id == "default"
    assert settings.microsoft is None
    assert settings.mail_transport == "folder"
    assert settings.graph_timeout_seconds == 10.0
    assert settings.running_in_azure is False


def test_missing_storage_names_the_setting():
    with pytest.raises(SettingsError, match="AzureWebJobsStorage"):
        Settings.from_env({})


def test_managed_identity_account_name_replaces_the_connection_string():
    settings = Settings.from_env({"AzureWebJobsStorage__accountName": "prodstore"})

    assert settings.storage.account_name == "prodstore"
    assert settings.storage.connection_string is None


def test_the_four_seed_variables_make_the_default_tenant_profile():
    settings = Settings.from_env({**STORAGE, **PROFILE})

    assert settings.microsoft is not None
    assert settings.microsoft.directory_tenant_id == "dir-1"
    assert settings.microsoft.organizer_upn == "organizer@example.com"


def test_a_partial_profile_names_each_missing_variable():
    env = {**STORAGE, **PROFILE}
    del env["MICROSOFT_CLIENT_SECRET"]
    del env["TEAMS_ORGANIZER_EMAIL"]

    with pytest.raises(SettingsError) as raised:
        Settings.from_env(env)

    assert "MICROSOFT_CLIENT_SECRET" in str(raised.value)
    assert "TEAMS_ORGANIZER_EMAIL" in str(raised.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GRAPH_BASE_URL", "http://graph.local/v1.0"),
        ("MICROSOFT_AUTHORITY_HOST", "login.microsoftonline.com"),
        ("GRAPH_TIMEOUT_SECONDS", "soon"),
        ("GRAPH_TIMEOUT_SECONDS", "0"),
        ("RECONCILE_SCHEDULE", "*/5 * * * *"),
        ("MAIL_TRANSPORT", "pigeon"),
    ],
)
def test_bad_values_are_refused_by_name(name, value):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({**STORAGE, name: value})


def test_every_problem_is_reported_at_once():
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"MAIL_TRANSPORT": "pigeon", "GRAPH_TIMEOUT_SECONDS": "x"})

    message = str(raised.value)
    assert "AzureWebJobsStorage" in message
    assert "MAIL_TRANSPORT" in message
    assert "GRAPH_TIMEOUT_SECONDS" in message


def test_settings_are_frozen_and_never_show_the_secret():
    settings = Settings.from_env({**STORAGE, **PROFILE})

    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.mail_transport = "smtp"  # type: ignore[misc]
    assert "shh-secret" not in repr(settings)
    assert "UseDevelopmentStorage" not in repr(settings)


def test_trailing_slashes_are_trimmed_from_urls():
    settings = Settings.from_env({**STORAGE, "GRAPH_BASE_URL": "https://graph.microsoft.us/v1.0/"})

    assert settings.graph_base_url == "https://graph.microsoft.us/v1.0"


def test_running_in_azure_is_recognised():
    assert Settings.from_env({**STORAGE, "WEBSITE_INSTANCE_ID": "abc"}).running_in_azure
