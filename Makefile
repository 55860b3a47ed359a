# Two commands on a fresh clone: `make demo` (the main job) and `make test` (the whole suite).
# Everything they need is installed here, pinned by constraints.txt.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup demo test lint typecheck unit lab bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

setup: $(STAMP)

demo: setup
	rm -f reports/demo.db reports/demo.db-wal reports/demo.db-shm
	FLEETLAB_DB=reports/demo.db $(BIN)/python -m fleetlab.demo

lint: setup
	$(BIN)/ruff check fleetlab tests
	$(BIN)/ruff format --check fleetlab tests

typecheck: setup
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest -q

test: lint typecheck unit

lab: setup
	$(BIN)/jupyter lab notebooks/

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
