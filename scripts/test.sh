#!/usr/bin/env bash
# The whole test suite: lint, types, then pytest (which starts its own Azurite on free ports).
# Extra arguments go to one pytest run, e.g. scripts/test.sh -k graph -x
#
# Without arguments, the end-to-end tests (tests/e2e: a local host, Azurite and the Graph
# emulator per module, mostly waiting on them) run in one pytest process and the unit and
# integration tests (mostly CPU) in another, side by side: on 2 cores that takes about half the
# time of one after the other. Each run has its own Azurite; their outputs are shown one after
# the other, and the suite fails if either fails.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy
if [ "$#" -gt 0 ]; then
    echo "== pytest"
    exec .venv/bin/pytest "$@"
fi

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
echo "== pytest: tests/e2e beside tests/unit and tests/integration"
started=$(date +%s)
.venv/bin/pytest -p no:cacheprovider tests/e2e >"$logs/e2e.txt" 2>&1 &
e2e=$!
.venv/bin/pytest -p no:cacheprovider tests/unit tests/integration >"$logs/rest.txt" 2>&1 &
rest=$!
status=0
wait "$rest" || status=$?
wait "$e2e" || status=$?
echo "== pytest tests/unit tests/integration"
cat "$logs/rest.txt"
echo "== pytest tests/e2e"
cat "$logs/e2e.txt"
echo "== pytest: both runs took $(($(date +%s) - started)) s"
exit "$status"
