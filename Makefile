# Two entry points on a fresh Debian machine with Python 3.11: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
KERNELS := datasets/kernels/_compiled.sha256
KERNEL_SOURCES := datasets/kernels/loops.py datasets/attribution/sweep.py datasets/kernels/signatures.py \
	datasets/kernels/build.py

.PHONY: demo test lint prometheus postgresql browser clean

# Byte-compiled at install: with PYTHONDONTWRITEBYTECODE set, every process (each Dagster run and code
# server, each test) would otherwise compile dagster, pandas and scikit-learn again (16 s instead of 6 s).
$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv
	# torch's CPU build through pip, which finds it where pip is configured to look (uv would fetch the
	# multi-GB CUDA build from the index; elsewhere set PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode -e '.[dev,policy]'
	touch $@

# The attribution kernels compiled ahead of time (datasets/kernels/build.py, ~20 s): no numba start-up in
# each process. Without a C compiler they run under numba's JIT, with the same results.
$(KERNELS): $(INSTALLED) $(KERNEL_SOURCES)
	$(BIN)/python -m datasets.kernels.build || echo "kernels not compiled ahead of time: numba's JIT runs them"

demo: $(INSTALLED) $(KERNELS)
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

# The browser test drives Debian's chromium (installed when root) with Playwright for Python.
browser: $(INSTALLED)
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is not installed and we are not root: the browser test will skip"; fi; \
	fi
	@$(BIN)/python -c 'import playwright.sync_api' 2>/dev/null || \
	  $(BIN)/uv pip install --python $(BIN)/python --quiet 'playwright>=1.45'

lint: $(INSTALLED)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

test: $(INSTALLED) $(KERNELS) prometheus postgresql browser lint
	$(BIN)/pytest

clean:
	rm -rf $(VENV) data test-artifacts datasets/kernels/_compiled.*
