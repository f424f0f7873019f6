"""Imports run one way: no module of shared/ imports one of a higher layer, and no two modules
import each other, directly or round a loop (docs/architecture.md, "Layers")."""

from __future__ import annotations

import ast
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"

# From the bottom up; a module may import its own layer and those below.
LAYERS: tuple[tuple[str, ...], ...] = (
    (
        "shared",
        "shared.errors",
        "shared.keys",
        "shared.settings",
        "shared.observability",
        "shared.telemetry",
        "shared.json_depth",
    ),
    ("shared.domain",),
    ("shared.storage",),
    ("shared.graph", "shared.payments", "shared.auth"),
    ("shared.work",),
    ("shared.meetings", "shared.mail"),
    ("shared.services",),
    ("shared.bootstrap",),
    ("shared.api",),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(SHARED.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    best, rank = "", -1
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
                best, rank = prefix, i
    assert rank >= 0, f"{module} belongs to no layer: add it to LAYERS"
    return rank


def imports() -> dict[str, set[str]]:
    """Every project module each module of shared/ imports, anywhere in it (lazy imports in a
    function and imports for type checking count too)."""
    modules = {module_name(p): p for p in SHARED.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            found |= {t for t in targets if t in modules and t != name}
        graph[name] = found
    return graph


def upward(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{source} -> {target}"
        for source, targets in graph.items()
        for target in targets
        if layer_of(target) > layer_of(source)
    )


def loops(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components: a component of two or more is a loop."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_one_of_a_higher_layer():
    assert upward(imports()) == []


def test_no_modules_import_each_other():
    assert loops(imports()) == []


def test_the_checks_see_an_upward_import_and_a_loop():
    # GIVEN a made-up graph: mail reaching up into services, and booking <-> notices
    graph = {
        "shared.mail.delivery": {"shared.services.tenants", "shared.work.rounds"},
        "shared.domain.booking": {"shared.domain.notices"},
        "shared.domain.notices": {"shared.domain.booking"},
    }

    # THEN both are named
    assert upward(graph) == ["shared.mail.delivery -> shared.services.tenants"]
    assert loops(graph) == [["shared.domain.booking", "shared.domain.notices"]]
