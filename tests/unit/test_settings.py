"""Settings are read once from the environment; a bad environment stops start-up, named."""

from __future__ import annotations

import dataclasses
import json
import secrets

import pytest

from shared.settings import Settings, SettingsError

STORAGE = {
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "STRIPE_WEBHOOK_SECRET": f"whsec_{secrets.token_hex(8)}",
    "AUTH_ISSUER": "https://securetoken.google.com/tutoring-app",
    "AUTH_AUDIENCE": "tutoring-app",
    "AUTH_JWKS_URL": "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com",
}
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
    assert settings.mail.transport == "folder"
    assert settings.graph_timeout_seconds == 10.0
    assert settings.verify_window_hours == 24.0
    assert settings.retry_schedule == (30.0, 120.0, 600.0, 3600.0, 21600.0)
    assert settings.inline_budget_seconds == 5.0


def test_missing_storage_names_the_setting():
    with pytest.raises(SettingsError, match="AzureWebJobsStorage"):
        Settings.from_env({})


def test_managed_identity_account_name_replaces_the_connection_string():
    env = {**STORAGE, "AzureWebJobsStorage__accountName": "prodstore"}
    del env["AzureWebJobsStorage"]
    settings = Settings.from_env(env)

    assert settings.storage.account_name == "prodstore"
    assert settings.storage.connection_string is None


def test_storage_endpoints_come_from_the_service_uris_in_any_cloud():
    env = {
        **STORAGE,
        "AzureWebJobsStorage__tableServiceUri": "https://st1.table.core.chinacloudapi.cn/",
        "AzureWebJobsStorage__queueServiceUri": "https://st1.queue.core.chinacloudapi.cn",
        "AzureWebJobsStorage__clientId": "11111111-2222-3333-4444-555555555555",
    }
    del env["AzureWebJobsStorage"]
    storage = Settings.from_env(env).storage

    assert storage.table_endpoint == "https://st1.table.core.chinacloudapi.cn"
    assert storage.queue_endpoint == "https://st1.queue.core.chinacloudapi.cn"
    assert storage.identity_client_id == "11111111-2222-3333-4444-555555555555"


def test_an_account_name_takes_the_clouds_endpoint_suffix():
    env = {
        **STORAGE,
        "AzureWebJobsStorage__accountName": "st1",
        "STORAGE_ENDPOINT_SUFFIX": "core.usgovcloudapi.net",
    }
    del env["AzureWebJobsStorage"]
    storage = Settings.from_env(env).storage

    assert storage.table_endpoint == "https://st1.table.core.usgovcloudapi.net"
    assert storage.queue_endpoint == "https://st1.queue.core.usgovcloudapi.net"


def test_a_storage_service_uri_must_be_https():
    env = {**STORAGE, "AzureWebJobsStorage__tableServiceUri": "http://st1.table.example"}

    with pytest.raises(SettingsError, match="AzureWebJobsStorage__tableServiceUri"):
        Settings.from_env(env)


def test_the_four_seed_variables_make_the_default_tenant_profile():
    settings = Settings.from_env({**STORAGE, **PROFILE})

    assert settings.microsoft is not None
    assert settings.microsoft.directory_tenant_id == "dir-1"
    assert settings.microsoft.organizer_upn == "organizer@example.com"


def test_a_partial_profile_names_each_missing_variable():
    env = {**STORAGE, **PROFILE, "MICROSOFT_CREDENTIAL": "secret"}
    del env["MICROSOFT_CLIENT_SECRET"]
    del env["TEAMS_ORGANIZER_EMAIL"]

    with pytest.raises(SettingsError) as raised:
        Settings.from_env(env)

    assert raised.value.names == ("MICROSOFT_CLIENT_SECRET", "TEAMS_ORGANIZER_EMAIL")


def test_without_a_secret_or_certificate_the_profile_signs_in_with_the_managed_identity():
    env = {**STORAGE, **PROFILE, "MICROSOFT_IDENTITY_CLIENT_ID": "mi-client-1"}
    del env["MICROSOFT_CLIENT_SECRET"]

    microsoft = Settings.from_env(env).microsoft

    assert microsoft is not None
    assert (microsoft.credential, microsoft.identity_client_id) == (
        "managed_identity",
        "mi-client-1",
    )
    assert microsoft.credential_setting is None


def test_the_credential_follows_the_material_given_unless_named():
    pem = "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n"
    with_secret = Settings.from_env({**STORAGE, **PROFILE}).microsoft
    env = {**STORAGE, **PROFILE, "MICROSOFT_CLIENT_CERTIFICATE": pem}
    del env["MICROSOFT_CLIENT_SECRET"]
    with_certificate = Settings.from_env(env).microsoft
    named = Settings.from_env({**STORAGE, **PROFILE, "MICROSOFT_CREDENTIAL": "managed_identity"})

    assert with_secret is not None
    assert (with_secret.credential, with_secret.credential_setting) == (
        "secret",
        "MICROSOFT_CLIENT_SECRET",
    )
    assert with_certificate is not None
    assert with_certificate.credential_setting == "MICROSOFT_CLIENT_CERTIFICATE"
    assert named.microsoft is not None
    assert named.microsoft.credential == "managed_identity"


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"MICROSOFT_CREDENTIAL": "password"}, ("MICROSOFT_CREDENTIAL",)),
        ({"MICROSOFT_CREDENTIAL": "certificate"}, ("MICROSOFT_CLIENT_CERTIFICATE",)),
        ({"MICROSOFT_CLIENT_CERTIFICATE": "not a pem"}, ("MICROSOFT_CLIENT_CERTIFICATE",)),
    ],
)
def test_a_credential_without_what_it_needs_is_named(env, names):
    base = {**STORAGE, **PROFILE}
    del base["MICROSOFT_CLIENT_SECRET"]

    with pytest.raises(SettingsError) as raised:
        Settings.from_env({**base, **env})

    assert raised.value.names == names


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GRAPH_BASE_URL", "http://graph.local/v1.0"),
        ("MICROSOFT_AUTHORITY_HOST", "login.microsoftonline.com"),
        ("GRAPH_TIMEOUT_SECONDS", "soon"),
        ("GRAPH_TIMEOUT_SECONDS", "0"),
        ("RECONCILE_SCHEDULE", "*/5 * * * *"),
        ("MAIL_TRANSPORT", "pigeon"),
        ("VERIFY_WINDOW_HOURS", "0"),
        ("VERIFY_WINDOW_HOURS", "a day"),
        ("MEETING_RETRY_SCHEDULE", "30,soon"),
        ("MEETING_RETRY_SCHEDULE", "0.5,30"),
        ("MEETING_INLINE_BUDGET_SECONDS", "-1"),
        ("MEETING_INLINE_BUDGET_SECONDS", "nan"),
        ("OUTBOUND_PROXY", "proxy.corp:3128"),
        ("OUTBOUND_PROXY", "socks5://proxy.corp:1080"),
    ],
)
def test_bad_values_are_refused_by_name(name, value):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({**STORAGE, name: value})


def test_calls_go_direct_unless_an_outbound_proxy_is_set():
    assert Settings.from_env(STORAGE).outbound_proxy is None
    proxied = Settings.from_env({**STORAGE, "OUTBOUND_PROXY": "http://proxy.corp:3128"})
    assert proxied.outbound_proxy == "http://proxy.corp:3128"


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
        settings.mail.transport = "smtp"  # type: ignore[misc]
    assert "shh-secret" not in repr(settings)
    assert "UseDevelopmentStorage" not in repr(settings)


def test_trailing_slashes_are_trimmed_from_urls():
    settings = Settings.from_env({**STORAGE, "GRAPH_BASE_URL": "https://graph.microsoft.us/v1.0/"})

    assert settings.graph_base_url == "https://graph.microsoft.us/v1.0"


def test_one_trusted_issuer_from_the_three_auth_settings():
    (issuer,) = Settings.from_env(STORAGE).auth.issuers

    assert issuer.issuer == "https://securetoken.google.com/tutoring-app"
    assert issuer.audience == "tutoring-app"


def test_several_issuers_from_auth_issuers_json():
    entra = {
        "issuer": "https://login.microsoftonline.com/dir-1/v2.0",
        "audience": "api://meetings",
        "jwksUrl": "https://login.microsoftonline.com/dir-1/discovery/v2.0/keys",
    }
    settings = Settings.from_env({**STORAGE, "AUTH_ISSUERS": json.dumps([entra])})

    assert [i.issuer for i in settings.auth.issuers] == [
        "https://securetoken.google.com/tutoring-app",
        "https://login.microsoftonline.com/dir-1/v2.0",
    ]


@pytest.mark.parametrize("bad", ["{}", '[{"issuer": "x"}]', "not json"])
def test_malformed_auth_issuers_is_refused(bad):
    with pytest.raises(SettingsError, match="AUTH_ISSUERS"):
        Settings.from_env({**STORAGE, "AUTH_ISSUERS": bad})


def test_without_any_issuer_start_up_fails():
    env = {k: v for k, v in STORAGE.items() if not k.startswith("AUTH_")}

    with pytest.raises(SettingsError, match="no trusted token issuer"):
        Settings.from_env(env)


def test_a_partial_issuer_names_what_is_missing():
    env = {**STORAGE}
    del env["AUTH_JWKS_URL"]

    with pytest.raises(SettingsError, match="AUTH_JWKS_URL"):
        Settings.from_env(env)


def test_jwks_must_come_over_https():
    with pytest.raises(SettingsError, match="https"):
        Settings.from_env({**STORAGE, "AUTH_JWKS_URL": "http://keys.example/jwks"})


def test_the_development_issuer_is_trusted_locally():
    settings = Settings.from_env({**STORAGE, "AUTH_DEV_JWKS_FILE": "/tmp/jwks.json"})

    assert settings.auth.issuers[-1].jwks_file == "/tmp/jwks.json"


def test_the_development_issuer_is_refused_in_azure():
    env = {**STORAGE, "AUTH_DEV_JWKS_FILE": "/tmp/jwks.json", "WEBSITE_INSTANCE_ID": "abc"}

    with pytest.raises(SettingsError, match="AUTH_DEV_JWKS_FILE"):
        Settings.from_env(env)


def test_a_missing_stripe_webhook_secret_stops_start_up():
    env = {k: v for k, v in STORAGE.items() if k != "STRIPE_WEBHOOK_SECRET"}

    with pytest.raises(SettingsError, match="STRIPE_WEBHOOK_SECRET is missing"):
        Settings.from_env(env)


def test_a_stripe_webhook_secret_must_be_a_signing_secret():
    with pytest.raises(SettingsError, match="whsec_"):
        Settings.from_env({**STORAGE, "STRIPE_WEBHOOK_SECRET": "sk_test_not_a_webhook_secret"})


def test_the_stripe_api_key_is_optional_and_never_shown():
    settings = Settings.from_env({**STORAGE, "STRIPE_API_KEY": "rk_test_restricted"})

    assert settings.stripe.api_key == "rk_test_restricted"
    assert "rk_test_restricted" not in repr(settings)
    assert STORAGE["STRIPE_WEBHOOK_SECRET"] not in repr(settings)
    assert Settings.from_env(STORAGE).stripe.api_key is None


def test_an_unresolved_key_vault_reference_is_named_and_never_used_as_a_value():
    reference = "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/stripe-api-key/)"
    env = {**STORAGE, **PROFILE, "STRIPE_API_KEY": reference}

    with pytest.raises(SettingsError) as refused:
        Settings.from_env(env)

    assert refused.value.names == ("STRIPE_API_KEY",)
    assert "unresolved Key Vault reference" in str(refused.value)
    assert "kv.vault.azure.net" not in str(refused.value)


def test_the_settings_at_fault_are_named_without_their_values():
    env = {
        **STORAGE,
        **PROFILE,
        "MICROSOFT_CREDENTIAL": "secret",
        "MICROSOFT_CLIENT_SECRET": "",
        "STRIPE_WEBHOOK_SECRET": "sk_live_not_a_signing_secret",
        "GRAPH_TIMEOUT_SECONDS": "-1",
    }

    with pytest.raises(SettingsError) as refused:
        Settings.from_env(env)

    assert refused.value.names == (
        "GRAPH_TIMEOUT_SECONDS",
        "MICROSOFT_CLIENT_SECRET",
        "STRIPE_WEBHOOK_SECRET",
    )
    assert "sk_live_not_a_signing_secret" not in str(refused.value)
    assert PROFILE["MICROSOFT_CLIENT_SECRET"] not in str(refused.value)
