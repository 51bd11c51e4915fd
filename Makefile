# The two set-up commands: `make run` and `make test`. Both create .venv when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OIDC := tests/support/oidc_provider

.PHONY: run test soak lint layers typecheck pytest system-deps node-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	@echo "mailgate: starting on https://localhost:8443 (self-signed certificate; data in ./var)"
	$(BIN)/mailgate serve --host 127.0.0.1 --port 8443

# As root on Debian, install the servers the tests start; elsewhere, say what is missing.
system-deps:
	@bash tests/support/install-system-deps.sh

node-deps: system-deps
	@if [ ! -d $(OIDC)/node_modules/oidc-provider ]; then \
		cd $(OIDC) && npm ci --no-audit --no-fund --loglevel=error; fi

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

# The layers of docs/architecture.md, as pyproject.toml's contracts state them.
layers: $(STAMP)
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

# Two test processes (pytest-xdist: most tests wait on servers; each process starts its own
# servers): about 22 minutes on 2 cores, 36 in one. PYTEST_WORKERS=0 runs it in one.
PYTEST_WORKERS ?= 2

pytest: $(STAMP) node-deps
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --durations=15

test: lint layers typecheck pytest

# The long variants of the reliability tests (thousands of messages, dozens of worker kills).
soak: $(STAMP) node-deps
	MAILGATE_SOAK=1 $(BIN)/pytest -q tests/reliability

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
