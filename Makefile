# Two commands on a fresh clone: `make demo` (the main job) and `make test` (the whole suite).
# Everything they need is installed here, pinned by constraints.txt.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup demo test lint typecheck unit lab bench mutants clean kernel browser-deps sandbox-deps \
	pg-deps phoenix e2e

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,bench]'
	touch $@

setup: $(STAMP)

# The main job: simulate last week's fleet (offline, seeded) into the default database (fleet.db
# at the root of this checkout, or $FLEETLAB_DB), then write that week's digest
# (reports/<week>/index.html, digest.md, metrics.json); prints the path of index.html. Then
# `fleetlab trace ID` (an id from the report) and `fleetlab logs` read the same database with
# no export. The database is replaced only if an earlier `make demo` made it (it is marked so):
# any other is kept, and the demo stops saying what to do.
demo: setup kernel sandbox-deps
	rm -rf reports/demo.db reports/demo.db-wal reports/demo.db-shm reports/workspaces
	@week=$$($(BIN)/python -c "from fleetlab.clock import SystemClock, last_complete_week; \
		print(last_complete_week(SystemClock()).label)") && \
	$(BIN)/fleetlab fleet simulate --demo --days 7 --tasks-per-day 60 --week $$week && \
	$(BIN)/fleetlab digest --week $$week

lint: setup
	$(BIN)/ruff check fleetlab tests
	$(BIN)/ruff format --check fleetlab tests

typecheck: setup
	$(BIN)/mypy

# The notebook tests and `make lab` run notebooks on the venv's own kernel.
KERNEL := $(VENV)/share/jupyter/kernels/python3/kernel.json
$(KERNEL): $(STAMP)
	$(BIN)/python -m ipykernel install --sys-prefix --name python3

kernel: $(KERNEL)

# The browser test drives Debian's chromium with Playwright (Playwright's own browser
# download does not work here). `make test` needs it: where it cannot be installed (not root,
# or no apt-get, or apt fails) this fails with the reason rather than let the test skip.
browser-deps:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing chromium for the browser test (about a minute)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "browser-deps: /usr/bin/chromium is missing and cannot be installed here" \
			"(needs root and apt-get); install Debian's chromium and run make test again" >&2; \
		exit 1; \
	fi

# Verifiers run agent code under Debian's bubblewrap (fleetlab.sandbox). Where it cannot be
# installed (not root, or no apt-get) the demo still runs (the simulated model's own code runs
# unsandboxed, with a warning), a real model's code is refused, and the sandbox tests say why
# they skipped.
sandbox-deps:
	@if command -v bwrap >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing bubblewrap for the verifier sandbox"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; \
	else \
		echo "sandbox-deps: bwrap is missing and cannot be installed here (needs root and apt-get):" \
			"a real model's agent code will be refused, and make test fails its sandbox tests"; \
	fi

# The PostgreSQL tests start their own throwaway cluster from Debian's server binaries (initdb
# in /usr/lib/postgresql/*/bin, run as the package's postgres user when root), and the
# fleet-across-machines test gives each worker host its own network namespace with `ip`
# (iproute2). `make test` needs both: where they cannot be installed (not root, or no apt-get,
# or apt fails) this fails with the reason rather than let those tests skip.
PG_INITDB := /usr/lib/postgresql/*/bin/initdb
pg-deps:
	@missing=""; \
	ls $(PG_INITDB) >/dev/null 2>&1 || missing="postgresql"; \
	{ command -v ip || test -x /usr/sbin/ip || test -x /sbin/ip; } >/dev/null 2>&1 || \
		missing="$${missing:+$$missing }iproute2"; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing $$missing for the PostgreSQL tests (about a minute)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else \
		echo "pg-deps: make test needs PostgreSQL's initdb (/usr/lib/postgresql/*/bin) and" \
			"the ip command; Debian's $$missing cannot be installed here (needs root and" \
			"apt-get): install it and run make test again" >&2; \
		exit 1; \
	fi

# FLEETLAB_REQUIRE_DEPS turns the browser, sandbox and PostgreSQL tests' "missing" skip into
# a failure: under `make test` nothing skips silently (pytest by hand still skips, saying why).
# The suite runs on every core (pytest-xdist; TEST_WORKERS=0: in one process), a whole test
# file per worker, the files with slow tests first (tests/conftest.py) so the short ones fill
# in at the end.
TEST_WORKERS ?= auto
unit: setup kernel browser-deps sandbox-deps pg-deps
	FLEETLAB_REQUIRE_DEPS=1 $(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

test: lint typecheck unit

# As root (a container) jupyter refuses to start without --allow-root.
lab: setup kernel
	$(BIN)/jupyter lab $$([ "$$(id -u)" = 0 ] && echo --allow-root) notebooks/

# Benchmarks, side by side (LangGraph comes from the `bench` extra); several minutes.
# Writes reports/bench/latest.md and latest.json. `make test` runs each part once, tiny.
bench: setup
	$(BIN)/python -m fleetlab.bench all

# Mutation testing, one module at a time, with the tests that cover it (mutmut, in a copy
# under .mutants/): `make mutants MODULE=fleetlab/clock.py`, optionally TESTS="tests/a.py ..."
# and FUNCTIONS=claim_many,renew_leases. Prints the score and every surviving mutant.
MODULE ?=
TESTS ?=
FUNCTIONS ?=
mutants: setup
	@test -n "$(MODULE)" || { echo "usage: make mutants MODULE=fleetlab/clock.py [TESTS=...] [FUNCTIONS=f,g]" >&2; exit 2; }
	$(BIN)/python -m fleetlab.testing.mutants $(MODULE) $(if $(TESTS),--tests $(TESTS)) \
		$(if $(FUNCTIONS),--functions $(FUNCTIONS))

# Arize Phoenix, pinned, in its own venv (large: not part of `make test`), serving on
# 127.0.0.1 (port 6006, or a free one) with its database in .phoenix/; prints its URL. A second
# `make phoenix` reuses the venv and the running server. Stop it with
# `$(BIN)/python -m fleetlab.testing.phoenix_e2e stop`.
PHOENIX_VERSION := 20.26.1
PHOENIX_VENV := .phoenix-venv
PHOENIX_STAMP := $(PHOENIX_VENV)/.installed-$(PHOENIX_VERSION)
$(PHOENIX_STAMP):
	test -x $(PHOENIX_VENV)/bin/python || $(PYTHON) -m venv $(PHOENIX_VENV)
	$(PHOENIX_VENV)/bin/python -m pip install --quiet --upgrade "pip>=24"
	@echo "installing arize-phoenix $(PHOENIX_VERSION) into $(PHOENIX_VENV) (a minute or two)"
	$(PHOENIX_VENV)/bin/python -m pip install --quiet "arize-phoenix==$(PHOENIX_VERSION)"
	touch $@

phoenix: setup $(PHOENIX_STAMP)
	@$(BIN)/python -m fleetlab.testing.phoenix_e2e serve

# One decomposed goal with the OpenTelemetry export on (content included) into Phoenix; checks
# through Phoenix's REST and GraphQL APIs that its agents, calls, messages and cost arrived (the
# fleet db is the oracle) and screenshots the trace page into reports/screenshots/.
e2e: setup browser-deps $(PHOENIX_STAMP)
	$(BIN)/python -m fleetlab.testing.phoenix_e2e check

clean:
	rm -rf .mutants $(VENV) .pytest_cache .mypy_cache .ruff_cache
