"""docs/openapi.yaml is the contract: it names exactly the routes function_app serves."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests.unit.test_function_index import index

SPEC = yaml.safe_load((Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml").read_text())
METHODS = {"get", "post", "put", "patch", "delete"}


def served() -> set[tuple[str, str]]:
    routes = set()
    for fn in index():
        trigger = fn.get_trigger().get_dict_repr()
        if trigger["type"] != "httpTrigger":
            continue
        for method in trigger.get("methods") or []:
            routes.add((str(getattr(method, "value", method)).lower(), "/" + trigger["route"]))
    return routes


def documented() -> set[tuple[str, str]]:
    return {
        (method, path)
        for path, item in SPEC["paths"].items()
        for method in item
        if method in METHODS
    }


def test_the_spec_is_openapi_3_1_served_under_api():
    assert SPEC["openapi"].startswith("3.1")
    assert SPEC["servers"][0]["url"].endswith("/api")


def test_every_served_route_is_documented_and_nothing_else():
    assert documented() == served()


def test_every_path_parameter_is_declared():
    for path, item in SPEC["paths"].items():
        names = set(re.findall(r"{(\w+)}", path))
        declared = set()
        for parameter in item.get("parameters", []):
            ref = parameter.get("$ref")
            resolved = SPEC["components"]["parameters"][ref.split("/")[-1]] if ref else parameter
            if resolved["in"] == "path":
                declared.add(resolved["name"])
        assert names == declared, path


# Health is open; Stripe's webhook carries Stripe's signature instead of a bearer token.
OPEN = {"/v1/health", "/v1/payments/webhook"}


def test_only_health_and_the_webhook_are_open_and_every_other_operation_can_answer_401():
    for method, path in documented():
        operation = SPEC["paths"][path][method]
        if path in OPEN:
            assert operation["security"] == []
            assert "401" not in operation["responses"], (method, path)
        else:
            assert "security" not in operation  # the global bearer requirement applies
            assert "401" in operation["responses"], (method, path)


def test_every_reference_resolves():
    text = (Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml").read_text()
    for ref in set(re.findall(r'\$ref: "#/components/(\w+)/(\w+)"', text)):
        assert ref[1] in SPEC["components"][ref[0]], ref
