# Two entry points on a fresh Debian machine with Python 3.11: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: demo test lint prometheus postgresql clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv
	$(BIN)/uv pip install --python $(BIN)/python --quiet -e '.[dev]'
	touch $@

demo: $(INSTALLED)
	$(BIN)/jouletrace demo --out data

# Later tests start a real Prometheus; install Debian's package when we can (root) and it is missing.
prometheus:
	@if ! command -v prometheus >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; \
	  else echo "prometheus is not installed and we are not root: tests that need it will skip"; fi; \
	fi

# The deployment tests start a real PostgreSQL (Debian keeps its binaries in /usr/lib/postgresql/<ver>/bin).
postgresql:
	@if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	  else echo "postgresql is not installed and we are not root: tests that need it will skip"; fi; \
	fi

lint: $(INSTALLED)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

test: $(INSTALLED) prometheus postgresql lint
	$(BIN)/pytest

clean:
	rm -rf $(VENV) data
