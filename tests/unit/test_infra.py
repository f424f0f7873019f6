"""infra/ gives the app what its code reads, keeps secrets in Key Vault and grants data roles only.

The Bicep is parsed with pycep-parser and scanned with checkov, both offline (no Bicep compiler
installs here): these tests read what the templates say, not what Azure would make of them.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from pycep import BicepParser

from shared.settings import SETTINGS
from shared.storage import (
    audit,
    bookings,
    check_meetings,
    mail,
    payment_events,
    poisoned,
    queues,
    tenants,
)
from shared.storage.queue_names import ATTENDANCE_POISON_QUEUE, ATTENDANCE_QUEUE

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
NAMES = {spec.name for spec in SETTINGS}
DEFAULTS = {spec.name: spec.default for spec in SETTINGS if spec.default is not None}

# Settings the code reads only on a developer's machine: infra/ never sets them.
LOCAL_ONLY = {
    "AzureWebJobsStorage": "a connection string (Azurite locally); in Azure the host and the app "
    "reach storage with the identity, and a connection string would win over it",
    "AUTH_DEV_JWKS_FILE": "the development token issuer, which the app refuses in Azure",
    "MAIL_FOLDER": "the folder transport writes .eml files to local disk; a Flex Consumption "
    "instance's disk is temporary, so infra/ offers graph and smtp only",
}
# Secret settings and the vault secret each one references.
SECRETS = {
    "STRIPE_WEBHOOK_SECRET": "stripe-webhook-secret",
    "STRIPE_API_KEY": "stripe-api-key",
    "MICROSOFT_CLIENT_SECRET": "microsoft-client-secret",
    "MICROSOFT_CLIENT_CERTIFICATE": "microsoft-client-certificate",
    "MAIL_SMTP_PASSWORD": "mail-smtp-password",
}
REQUIRED_SECRETS = {"STRIPE_WEBHOOK_SECRET"}
# Where Azure's default differs from the local one on purpose.
AZURE_DEFAULTS = {"MAIL_TRANSPORT": "graph"}

ROLES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": "Key Vault Secrets Officer",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
    "73c42c96-874c-492b-b04d-ab87d138a893": "Log Analytics Reader",
}
BROAD_ROLES = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": "User Access Administrator",
}
STORAGE_DATA = {
    ("storage", "Storage Blob Data Owner"),
    ("storage", "Storage Queue Data Contributor"),
    ("storage", "Storage Table Data Contributor"),
}


# --- reading the templates ---------------------------------------------------------------------


@functools.cache
def bicep(relative: str) -> dict[str, Any]:
    return cast(dict[str, Any], BicepParser().parse(file_path=INFRA / relative))


def main() -> dict[str, Any]:
    return bicep("main.bicep")


def body(declaration: dict[str, Any]) -> dict[str, Any]:
    """A resource's or module's own properties, under any condition or loop."""
    config: dict[str, Any] = declaration["config"]
    while "config" in config and ("condition" in config or "loop_type" in config):
        config = config["config"]
    return config


def module(path: str) -> dict[str, Any]:
    [found] = [m for m in main()["modules"].values() if m["detail"]["path"] == path]
    return body(found)


def resources(relative: str, type_: str) -> dict[str, dict[str, Any]]:
    return {
        name: declaration
        for name, declaration in bicep(relative)["resources"].items()
        if declaration["type"] == type_
    }


def accessor(expression: Any) -> tuple[str, ...] | None:
    """`a.b.c` as ('a', 'b', 'c'); None for anything else."""
    if isinstance(expression, str):
        return (expression,)
    if isinstance(expression, dict) and expression.get("function", {}).get("type") == "environment":
        return ("environment()", expression["function"]["property_name"])
    operator = expression.get("operator", {}) if isinstance(expression, dict) else {}
    if operator.get("type") != "property_accessor":
        return None
    left = accessor(operator["operands"]["operand_1"])
    right = accessor(operator["operands"]["operand_2"])
    return left + right if left is not None and right is not None else None


def outcomes(expression: Any) -> list[Any]:
    """Every value a conditional expression can take (other expressions are their own)."""
    operator = expression.get("operator", {}) if isinstance(expression, dict) else {}
    if operator.get("type") == "conditional":
        operands = operator["operands"]
        return outcomes(operands["true_value"]) + outcomes(operands["false_value"])
    return [expression]


def strings(expression: Any) -> Iterator[str]:
    """Every string in an expression: identifiers, literals and interpolations alike."""
    if isinstance(expression, str):
        yield expression
    elif isinstance(expression, dict):
        for key, value in expression.items():
            yield key
            yield from strings(value)
    elif isinstance(expression, list):
        for item in expression:
            yield from strings(item)


def mentions(expression: Any, name: str) -> bool:
    pattern = re.compile(rf"^{re.escape(name)}$|\$\{{\s*{re.escape(name)}\b")
    return any(pattern.search(text) for text in strings(expression))


def app_settings() -> dict[str, Any]:
    """The function app's app settings, as main.bicep hands them to app/function.bicep."""
    [config] = [
        body(declaration)
        for declaration in resources("app/function.bicep", "Microsoft.Web/sites/config").values()
        if body(declaration)["name"] == "appsettings"
    ]
    parameter = config["properties"]
    variable = module("app/function.bicep")["params"][parameter]
    settings: dict[str, Any] = main()["variables"][variable]["value"]
    return settings


def secure_parameters(relative: str) -> set[str]:
    return {
        name
        for name, parameter in bicep(relative)["parameters"].items()
        if {"type": "secure"} in parameter["decorators"]
    }


def key_vault_reference(secret: str) -> str:
    return f"@Microsoft.KeyVault(SecretUri=${{keyVault.outputs.uri}}secrets/{secret}/)"


def role_assignments() -> list[tuple[str, str, str]]:
    """(principal, scope, role) of every role assignment in app/rbac.bicep."""
    rbac = bicep("app/rbac.bicep")
    role_ids = rbac["variables"]["roles"]["value"]

    def role_id(expression: Any) -> str:
        path = accessor(expression)
        assert path is not None
        assert path[0] == "roles", f"role not from the roles table: {path}"
        return str(role_ids[path[1]])

    found = []
    for declaration in resources(
        "app/rbac.bicep", "Microsoft.Authorization/roleAssignments"
    ).values():
        properties = body(declaration)["properties"]
        definition = properties["roleDefinitionId"]["function"]["parameters"]["resource_name_1"]
        loop = declaration["config"].get("loop_type")
        if loop and definition == loop["detail"]["item_name"]:
            ids = [
                role_id(item) for item in rbac["variables"][loop["detail"]["array_name"]]["value"]
            ]
        else:
            ids = [role_id(definition)]
        for id_ in ids:
            found.append((properties["principalId"], body(declaration)["scope"], id_))
    return found


def role_names(principal: str) -> set[tuple[str, str]]:
    return {
        (scope, ROLES.get(id_) or BROAD_ROLES.get(id_) or id_)
        for who, scope, id_ in role_assignments()
        if who == principal
    }


# --- app settings ------------------------------------------------------------------------------


def test_every_setting_the_code_reads_is_an_app_setting_in_azure_or_local_only():
    missing = NAMES - set(app_settings()) - set(LOCAL_ONLY)

    assert not missing, f"settings the code reads that infra/ does not set: {sorted(missing)}"


def test_local_only_settings_are_settings_the_code_reads_and_never_set_in_azure():
    assert set(LOCAL_ONLY) <= NAMES
    assert not set(LOCAL_ONLY) & set(app_settings())


def test_app_settings_reach_storage_with_the_user_assigned_identity_in_any_cloud():
    settings = app_settings()
    identity_client_id = ("identity", "outputs", "clientId")

    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert accessor(settings["AzureWebJobsStorage__clientId"]) == identity_client_id
    for service in ("blob", "queue", "table"):
        assert settings[f"AzureWebJobsStorage__{service}ServiceUri"] == (
            f"https://${{storageAccountName}}.{service}.${{environment().suffixes.storage}}"
        )
    assert accessor(settings["STORAGE_ENDPOINT_SUFFIX"]) == ("environment()", "suffixes", "storage")
    assert accessor(settings["MICROSOFT_IDENTITY_CLIENT_ID"]) == identity_client_id
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == (
        "ClientId=${identity.outputs.clientId};Authorization=AAD"
    )


def test_no_cloud_host_is_hard_coded_in_infra():
    hosts = re.compile(
        r"core\.windows\.net|\.azure\.net|azurewebsites\.net|\.azure\.cn|usgovcloudapi"
    )
    for path in INFRA.rglob("*.bicep"):
        code = "\n".join(line.split("//")[0] for line in path.read_text().splitlines())

        assert not hosts.search(code), f"{path.relative_to(ROOT)} names a cloud's host"


# --- parameters --------------------------------------------------------------------------------


def test_every_main_parameter_is_set_from_an_azd_environment_variable():
    mapped = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]

    assert set(mapped) == set(main()["parameters"])
    for name, entry in mapped.items():
        # Only ${VAR}: an unset variable leaves main.bicep's default, the one place it is kept.
        assert re.fullmatch(r"\$\{[A-Z][A-Z0-9_]*\}", entry["value"]), f"{name}: {entry}"


def test_parameter_defaults_are_the_codes_defaults():
    parameters = main()["parameters"]
    compared = 0
    for name, expression in app_settings().items():
        if isinstance(expression, str) and expression in parameters and name in DEFAULTS:
            expected = AZURE_DEFAULTS.get(name, DEFAULTS[name])

            assert parameters[expression]["default"] == expected, name
            compared += 1
    assert compared >= 10


def test_settings_that_only_one_value_suits_are_restricted_to_it():
    parameters = main()["parameters"]
    allowed = {
        name: next(d["argument"] for d in p["decorators"] if d["type"] == "allowed")
        for name, p in parameters.items()
        if any(d["type"] == "allowed" for d in p["decorators"])
    }

    assert set(allowed["mailTransport"]) == {"graph", "smtp"}
    assert set(allowed["microsoftCredential"]) == {"managed_identity", "certificate", "secret"}
    assert parameters["microsoftCredential"]["default"] == "managed_identity"
    assert parameters["storageSku"]["default"] == "Standard_ZRS"
    assert parameters["vnetEnabled"]["default"] is False


# --- secrets -----------------------------------------------------------------------------------


def test_every_secret_setting_is_a_key_vault_reference_or_unset():
    settings = app_settings()
    for name, secret in SECRETS.items():
        values = outcomes(settings[name])
        allowed = [key_vault_reference(secret)] + ([] if name in REQUIRED_SECRETS else [""])

        assert key_vault_reference(secret) in values, name
        assert all(value in allowed for value in values), f"{name}: {values}"


def test_the_deployment_writes_each_referenced_secret_from_a_secure_parameter():
    vault = bicep("app/keyvault.bicep")
    names = vault["variables"]["secretNames"]["value"]
    written = {}
    for declaration in resources(
        "app/keyvault.bicep", "Microsoft.KeyVault/vaults/secrets"
    ).values():
        secret = body(declaration)
        path = accessor(secret["name"])
        assert path is not None
        written[names[path[-1]]] = secret["properties"]["value"]

    assert set(written) == set(SECRETS.values())
    assert set(written.values()) == secure_parameters("app/keyvault.bicep")
    # main.bicep hands each of its secrets to the vault module, under the same name.
    vault_params = module("app/keyvault.bicep")["params"]
    for parameter in secure_parameters("main.bicep"):
        assert vault_params[parameter] == parameter


def test_no_secret_reaches_an_app_setting_a_module_but_the_vault_or_an_output():
    secure = secure_parameters("main.bicep")
    assert len(secure) == len(SECRETS)
    for parameter in secure:
        assert not mentions(app_settings(), parameter), parameter
        assert not mentions(main()["outputs"], parameter), parameter
        for found in main()["modules"].values():
            if found["detail"]["path"] != "app/keyvault.bicep":
                assert not mentions(body(found), parameter), parameter
    for parameter in secure_parameters("app/keyvault.bicep"):
        assert not mentions(bicep("app/keyvault.bicep")["outputs"], parameter), parameter


def test_the_required_secret_has_no_default_so_azd_asks_for_it():
    parameters = main()["parameters"]

    assert parameters["stripeWebhookSecret"]["default"] is None
    assert all(
        parameters[p]["default"] == ""
        for p in secure_parameters("main.bicep") - {"stripeWebhookSecret"}
    )


# --- the function app --------------------------------------------------------------------------


def test_the_function_app_uses_its_user_assigned_identity_for_everything():
    [app] = [body(d) for d in resources("app/function.bicep", "Microsoft.Web/sites").values()]
    properties = app["properties"]
    config = properties["functionAppConfig"]

    assert app["identity"]["type"] == "UserAssigned"
    assert properties["keyVaultReferenceIdentity"] == "identityId"
    assert config["deployment"]["storage"]["authentication"] == {
        "type": "UserAssignedIdentity",
        "userAssignedIdentityResourceId": "identityId",
    }
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    assert accessor(module("app/function.bicep")["params"]["identityId"]) == (
        "identity",
        "outputs",
        "id",
    )


def test_the_function_app_takes_https_tls12_http2_and_no_basic_publishing():
    [app] = [body(d) for d in resources("app/function.bicep", "Microsoft.Web/sites").values()]
    site = app["properties"]["siteConfig"]
    policies = resources(
        "app/function.bicep", "Microsoft.Web/sites/basicPublishingCredentialsPolicies"
    )

    assert app["properties"]["httpsOnly"] is True
    assert site["minTlsVersion"] == "1.2"
    assert site["http20Enabled"] is True
    assert site["cors"]["allowedOrigins"] == "corsAllowedOrigins"
    # Flex Consumption has no FTP and rejects ftpsState in some regions: the policies close it.
    assert "ftpsState" not in site
    assert sorted(body(p)["name"] for p in policies.values()) == ["ftp", "scm"]
    assert all(body(p)["properties"] == {"allow": False} for p in policies.values())


def test_declared_tables_and_queues_are_those_the_code_uses():
    tables = {m.TABLE for m in (bookings, tenants, audit, payment_events, mail, check_meetings)}
    queue_names = {
        queues.MEETING_OPS_QUEUE,
        queues.MEETING_OPS_POISON_QUEUE,
        mail.MAIL_QUEUE,
        mail.MAIL_POISON_QUEUE,
        ATTENDANCE_QUEUE,
        ATTENDANCE_POISON_QUEUE,
        *(kind.parked for kind in poisoned.WORK_KINDS),
    }
    storage = module("app/storage.bicep")["params"]

    assert set(main()["variables"][storage["tables"]]["value"]) == tables
    assert set(main()["variables"][storage["queues"]]["value"]) == queue_names


# --- roles -------------------------------------------------------------------------------------


def test_the_app_identity_holds_a_data_role_for_each_resource_the_code_touches_and_no_other():
    assert accessor(module("app/rbac.bicep")["params"]["identityPrincipalId"]) == (
        "identity",
        "outputs",
        "principalId",
    )
    assert role_names("identityPrincipalId") == STORAGE_DATA | {
        ("vault", "Key Vault Secrets User"),
        ("appInsights", "Monitoring Metrics Publisher"),
    }


def test_the_deploying_principal_may_manage_secrets_and_read_data_nothing_broader():
    assert role_names("principalId") == STORAGE_DATA | {("vault", "Key Vault Secrets Officer")}


def test_no_one_is_granted_owner_contributor_or_user_access_administrator():
    granted = {id_ for _, _, id_ in role_assignments()}

    assert granted <= set(ROLES)
    assert not granted & set(BROAD_ROLES)


# --- checkov -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkov_report() -> dict[str, Any]:
    checkov = Path(sys.executable).with_name("checkov")
    # --skip-download and no API key: nothing is fetched from or sent to any platform.
    environment = {k: v for k, v in os.environ.items() if k not in {"BC_API_KEY", "PRISMA_API_URL"}}
    result = subprocess.run(
        [
            str(checkov),
            "--directory",
            str(INFRA),
            "--framework",
            "bicep",
            "--skip-download",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
        check=False,
    )
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def test_checkov_finds_no_failed_check_in_infra(checkov_report):
    summary = checkov_report["summary"]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']})"
        for c in checkov_report["results"]["failed_checks"]
    ]

    assert summary["parsing_errors"] == 0, checkov_report["results"].get("parsing_errors")
    assert summary["failed"] == 0, failed
    assert summary["passed"] >= 40


def test_every_checkov_suppression_gives_its_reason(checkov_report):
    for check in checkov_report["results"]["skipped_checks"]:
        reason = check["check_result"].get("suppress_comment", "")

        assert len(reason.split()) >= 5, f"{check['check_id']} on {check['resource']}: {reason!r}"


# --- alerts and the workbook -------------------------------------------------------------------

KQL = INFRA / "app" / "kql"
OPERATIONS = ROOT / "docs" / "operations.md"

# name: (measure column, aggregation, operator, threshold, window). The rules issue "Operate it"
# asks for; a measure of "" counts result rows.
REQUIRED_ALERTS: dict[str, tuple[str, str, str, float, str]] = {
    "poison-messages": ("", "Count", "GreaterThan", 0, "PT5M"),
    "meeting-failure-rate": ("failureRatePercent", "Maximum", "GreaterThan", 1, "PT15M"),
    "graph-error-rate": ("graphErrorRatePercent", "Maximum", "GreaterThan", 1, "PT15M"),
    "link-latency-p95": ("p95Seconds", "Maximum", "GreaterThan", 5, "PT15M"),
    "http-5xx-rate": ("serverErrorPercent", "Maximum", "GreaterThan", 0.5, "PT15M"),
    "tenant-credential-unhealthy": ("events", "Total", "GreaterThan", 0, "PT5M"),
    "timer-stopped": ("runs", "Total", "LessThan", 1, "PT15M"),
}
# What each rule's query must read, so a query cannot drift to another signal unnoticed.
ALERT_SIGNALS = {
    "poison-messages": [
        '"meeting_work_failed"',
        '"mail_failed"',
        '"work_failed"',
        "severityLevel >= 3",
    ],
    "meeting-failure-rate": ['"meetings.operations"', '"failed"'],
    "graph-error-rate": ['"meetings.attempts"', '"failed"'],
    "link-latency-p95": ['"meetings.link_latency"', "95"],
    "http-5xx-rate": ["requests", ">= 500", "itemCount"],
    "tenant-credential-unhealthy": ['"tenant_credential_unhealthy"', "by tenant"],
    "timer-stopped": ['"reconcile_run"', "count()"],
}


def loaded_text(expression: Any, relative_to: Path) -> str:
    """The text a `loadTextContent('...')` expression loads."""
    function = expression["function"]
    assert function["type"] == "load_text_content", expression
    return (relative_to / str(function["parameters"]["file_path"])).read_text()


def number(expression: Any) -> float:
    """A literal number, or Bicep's `json('0.5')` for a fraction."""
    if isinstance(expression, dict):
        function = expression["function"]
        assert function["type"] == "json", expression
        return float(function["parameters"]["arg_1"])
    return float(expression)


def alert_rules() -> dict[str, dict[str, Any]]:
    return {rule["name"]: rule for rule in bicep("app/alerts.bicep")["variables"]["rules"]["value"]}


def workbook_tiles() -> dict[str, dict[str, Any]]:
    return {
        tile["name"]: tile for tile in bicep("app/workbook.bicep")["variables"]["tiles"]["value"]
    }


def test_the_alerts_and_the_workbook_parse_and_main_deploys_both():
    paths = {found["detail"]["path"] for found in main()["modules"].values()}

    assert {"app/alerts.bicep", "app/workbook.bicep"} <= paths
    assert resources("app/alerts.bicep", "Microsoft.Insights/scheduledQueryRules")
    assert resources("app/alerts.bicep", "Microsoft.Insights/actionGroups")
    assert resources("app/workbook.bicep", "Microsoft.Insights/workbooks")


def test_alert_email_is_a_mapped_parameter_and_the_action_group_exists_only_with_it():
    mapped = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    [group] = resources("app/alerts.bicep", "Microsoft.Insights/actionGroups").values()
    [rules] = resources("app/alerts.bicep", "Microsoft.Insights/scheduledQueryRules").values()
    actions = body(rules)["properties"]["actions"]["actionGroups"]

    assert mapped["alertEmail"]["value"] == "${ALERT_EMAIL}"
    assert main()["parameters"]["alertEmail"]["default"] == ""
    assert module("app/alerts.bicep")["params"]["alertEmail"] == "alertEmail"
    assert group["config"]["condition"] == "hasEmail"
    assert body(group)["properties"]["emailReceivers"][0]["emailAddress"] == "alertEmail"
    # Every rule notifies the group when there is one, and no group otherwise.
    assert actions["operator"]["operands"]["condition"] == "hasEmail"
    [with_email, without] = outcomes(actions)
    assert [accessor(item) for item in with_email] == [("actionGroup", "id")]
    assert without == []


def test_each_required_alert_exists_with_its_threshold_and_window():
    rules = alert_rules()

    assert set(rules) == set(REQUIRED_ALERTS)
    for name, (measure, aggregation, operator, threshold, window) in REQUIRED_ALERTS.items():
        rule = rules[name]
        assert rule["measure"] == measure, name
        assert rule["aggregation"] == aggregation, name
        assert rule["operator"] == operator, name
        assert number(rule["threshold"]) == threshold, name
        assert rule["windowSize"] == window, name
        assert rule["frequency"] == "PT5M", name
        query = loaded_text(rule["query"], INFRA / "app")
        for signal in ALERT_SIGNALS[name]:
            assert signal in query, f"{name}: {signal!r} not in its query"
        if measure:
            assert re.search(rf"\b{measure}\s*=", query), f"{name}: no column {measure}"


def test_every_rule_takes_its_settings_from_the_table_and_runs_as_the_alerts_identity():
    [rules] = resources("app/alerts.bicep", "Microsoft.Insights/scheduledQueryRules").values()
    rule = body(rules)
    [criterion] = rule["properties"]["criteria"]["allOf"]

    assert rules["config"]["loop_type"]["detail"] == {"item_name": "rule", "array_name": "rules"}
    assert accessor(criterion["query"]) == ("rule", "query")
    assert accessor(criterion["threshold"]) == ("rule", "threshold")
    assert accessor(criterion["operator"]) == ("rule", "operator")
    assert accessor(rule["properties"]["windowSize"]) == ("rule", "windowSize")
    assert rule["properties"]["scopes"] == ["appInsightsId"]
    assert rule["identity"]["type"] == "UserAssigned"
    assert accessor(module("app/alerts.bicep")["params"]["identityId"]) == (
        "alertsIdentity",
        "outputs",
        "id",
    )


def test_the_alerts_identity_may_only_read_application_insights():
    assert accessor(module("app/rbac.bicep")["params"]["alertsPrincipalId"]) == (
        "alertsIdentity",
        "outputs",
        "principalId",
    )
    assert role_names("alertsPrincipalId") == {("appInsights", "Log Analytics Reader")}


def test_the_workbook_shows_seed_000s_metrics_poison_and_unhealthy_tenants_per_tenant():
    tiles = workbook_tiles()
    queries = {name: loaded_text(tile["query"], INFRA / "app") for name, tile in tiles.items()}
    [tenant] = [
        p
        for p in bicep("app/workbook.bicep")["variables"]["parameters"]["value"]["content"][
            "parameters"
        ]
        if p["name"] == "Tenant"
    ]

    assert {
        "success-rate",
        "link-latency",
        "retry-rate",
        "graph-error-rate",
        "poison-messages",
        "unhealthy-tenants",
    } <= set(tiles)
    assert tenant["typeSettings"]["selectAllValue"] == "*"
    for name, query in queries.items():
        assert '"*" in ({Tenant}) or tenant in ({Tenant})' in query, name
    assert "percentilew" in queries["link-latency"]
    assert "95)" in queries["link-latency"]
    assert '"meetings.operations"' in queries["success-rate"]
    # A boolean attribute may arrive as "True": compared without case.
    assert 'tolower(tostring(customDimensions.retry)) == "true"' in queries["retry-rate"]
    assert '"tenant_credential_unhealthy"' in queries["unhealthy-tenants"]
    assert '"tenant_credential_expiring"' in queries["expiring-credentials"]
    # The credential state is logged on change only: those tiles read the whole retention.
    for name, tile in tiles.items():
        fixed = name in {"unhealthy-tenants", "expiring-credentials"}
        assert tile["time"] == ("retention" if fixed else "chosenRange"), name


def test_every_query_in_infra_is_shown_as_it_stands_in_docs_operations():
    docs = OPERATIONS.read_text()
    loaded = {loaded_text(rule["query"], INFRA / "app") for rule in alert_rules().values()} | {
        loaded_text(tile["query"], INFRA / "app") for tile in workbook_tiles().values()
    }
    files = {path.read_text() for path in KQL.glob("*.kql")}

    assert loaded <= files
    for query in files:
        assert f"```kusto\n{query.rstrip()}\n```" in docs, query.splitlines()[:3]
