"""The alerts and the workbook ask of the telemetry only what the code sends: every log event a
query names is logged somewhere, every metric it reads is an instrument, and every dimension of
a metric it reads is an attribute the code records."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KQL = sorted((ROOT / "infra" / "app" / "kql").glob("*.kql"))
CODE = "\n".join(
    p.read_text() for folder in ("shared", "functions") for p in (ROOT / folder).rglob("*.py")
)


def events_named(query: str) -> set[str]:
    found: set[str] = set()
    pattern = r"event\)?\s*(?:==\s*\"([a-z_]+)\"|in\s*\(([^)]*)\))"
    for match in re.finditer(pattern, query):
        if match.group(1):
            found.add(match.group(1))
        else:
            found |= set(re.findall(r"\"([a-z_]+)\"", match.group(2)))
    return found


def test_the_queries_exist():
    assert len(KQL) >= 10


def test_every_event_a_query_names_is_logged_by_the_code():
    named = set().union(*(events_named(q.read_text()) for q in KQL))
    assert {"meeting_work_failed", "tenant_credential_unhealthy", "reconcile_run"} <= named
    missing = {event for event in named if f'"{event}"' not in CODE}
    assert not missing


def test_every_metric_and_dimension_a_query_reads_is_recorded():
    telemetry = (ROOT / "shared" / "telemetry.py").read_text()
    instruments = set(re.findall(r"create_(?:counter|histogram)\(\s*\"([a-z_.]+)\"", telemetry))
    recorded: set[str] = set()
    for match in re.finditer(r"telemetry\.count\(", CODE):
        call = CODE[match.end() : match.end() + 600].split("\n\n")[0]
        recorded |= set(re.findall(r"\b([a-zA-Z]+)=", call))
    for query in KQL:
        text = query.read_text()
        if "customMetrics" not in text:
            continue
        for metric in re.findall(r"name\s*==\s*\"([a-z_.]+)\"", text):
            assert metric in instruments, (query.name, metric)
        for dimension in re.findall(r"customDimensions\.(\w+)", text):
            assert dimension in recorded, (query.name, dimension)
