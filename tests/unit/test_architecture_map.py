"""docs/architecture.md's "Where things are" table stays true: every module it names exists
and imports, and every module of shared/meetings/, shared/mail/ and shared/work/ is named."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def mapped_modules() -> list[str]:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    table = text.split("## Where things are", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "`" in line]
    paths = [p for row in rows for p in re.findall(r"`(shared/[\w/]+\.py)`", row.split("|")[2])]
    return sorted({p.removesuffix(".py").replace("/", ".") for p in paths})


def test_every_module_the_map_names_imports():
    modules = mapped_modules()

    assert len(modules) >= 30
    for name in modules:
        importlib.import_module(name)


def test_the_map_names_every_module_of_the_work_kit_meetings_and_mail():
    named = set(mapped_modules())
    expected = {
        f"shared.{folder}.{path.stem}"
        for folder in ("work", "meetings")
        for path in (ROOT / "shared" / folder).glob("*.py")
        if path.stem != "__init__"
    } | {"shared.mail.delivery", "shared.mail.transports"}

    assert expected - named == set()
