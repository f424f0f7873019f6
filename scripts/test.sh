#!/usr/bin/env bash
# The whole test suite: lint, types, then pytest (which starts its own Azurite on free ports).
# Extra arguments go to pytest, e.g. scripts/test.sh -k graph -x
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
.venv/bin/pytest "$@"
