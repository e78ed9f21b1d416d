# Two commands matter: `make run` and `make test`. Everything else is a convenience.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RUN_STAMP  := $(VENV)/.run-installed
TEST_STAMP := $(VENV)/.test-installed
BENCH_STAMP := $(VENV)/.bench-installed
DIST_STAMP := $(VENV)/.dist-installed
# Pins what CI installs (as constraints: extras the lock does not name stay free).
LOCK := requirements/ci-lock.txt

.PHONY: run test lint types unit bench clean system-deps lock agent-dist

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml $(LOCK) | $(BIN)/python
	$(BIN)/pip install --quiet -c $(LOCK) -e '.[server,agent]'
	touch $@

# The tests build the single-file agent too (tests/integration/test_agent_dist.py): dist extra.
$(TEST_STAMP): pyproject.toml $(LOCK) | $(BIN)/python
	$(BIN)/pip install --quiet -c $(LOCK) -e '.[dev,dist]'
	touch $@ $(RUN_STAMP) $(DIST_STAMP)

$(DIST_STAMP): pyproject.toml $(LOCK) | $(BIN)/python
	$(BIN)/pip install --quiet -c $(LOCK) -e '.[agent,dist]'
	touch $@

$(BENCH_STAMP): pyproject.toml $(LOCK) | $(BIN)/python
	$(BIN)/pip install --quiet -c $(LOCK) -e '.[bench]'
	touch $@ $(RUN_STAMP)

## Start the broker on 127.0.0.1:8080 with SQLite under ./var and demo users.
run: $(RUN_STAMP)
	$(BIN)/rsb serve --demo-users

## Install everything the tests need (Python and Debian packages) and run the whole suite.
test: $(TEST_STAMP) system-deps lint types
	$(BIN)/pytest

system-deps:
	./scripts/install-system-deps.sh

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(TEST_STAMP)
	$(BIN)/mypy

unit: $(TEST_STAMP)
	$(BIN)/pytest tests/unit tests/fuzz

## The single-file agent for this OS and architecture (PyInstaller, packaging/agent.spec), into
## dist/agent/ where the broker serves it; cached in build/agent-cache. Then sign it:
## `.venv/bin/rsb release sign dist/agent/rsb-agent-linux-x86_64 --key release.pem`.
agent-dist: $(DIST_STAMP)
	$(BIN)/python packaging/build_agent.py

## Benchmarks (issue 5): about 15 minutes on loopback; rewrites docs/benchmarks.md and its chart.
## MeshCentral is installed with npm into /tmp/rsb-bench-peers (reported unavailable without npm).
## One part alone: `.venv/bin/python -m bench PART`, e.g. `login` (issue 11's login burst, about
## a minute; it updates only its own section of docs/benchmarks.md).
bench: $(BENCH_STAMP) system-deps
	$(BIN)/python -m bench

## Rewrite the lock from a fresh virtualenv with the dev extra (after changing pyproject.toml).
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet '.[dev,dist]'
	{ echo "# What make test installs, as pip constraints (make lock rewrites it from a fresh venv)."; \
	  echo "# tests/unit/test_dependencies.py checks it against the advisory floors."; \
	  .lock-venv/bin/pip freeze --exclude-editable | grep -v '^remote-support-broker'; } > $(LOCK)
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) var build .mypy_cache .ruff_cache .pytest_cache .hypothesis
