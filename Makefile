# The two commands of the README, and a few helpers.
.PHONY: setup run services test bench lint format

setup:            ## install .venv (Python 3.11) and Azurite if missing
	scripts/setup.sh

run: setup        ## run the service locally: Azurite + Graph emulator + Functions host
	.venv/bin/python -m localdev.run $(ARGS)

services: setup   ## Azurite + Graph emulator only, and the local.settings.json for `func start`
	.venv/bin/python -m localdev.run --services-only $(ARGS)

test:             ## ruff, mypy and pytest (with its own Azurite)
	scripts/test.sh $(ARGS)

bench: setup      ## every benchmark; writes docs/benchmarks.md (ARGS=--quick for a short run)
	.venv/bin/python scripts/bench.py $(ARGS)

lint: setup
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy

format: setup
	.venv/bin/ruff format . && .venv/bin/ruff check --fix .
