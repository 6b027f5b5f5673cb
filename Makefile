# proxy-lab: every target creates .venv itself with a Python >= 3.12 found on this machine.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev

# pip runs with PYTHONWARNINGS=ignore: setuptools explains editable installs at length on every run.
# First Python >= 3.12 found: python3.13, python3.12, then pyenv-installed versions, then python3.
PYTHON ?= $(shell for c in python3.13 python3.12 $$(ls -d $$HOME/.pyenv/versions/3.1[3-9]*/bin/python3 $$HOME/.pyenv/versions/3.12*/bin/python3 2>/dev/null | sort -rV) python3; do \
	if command -v $$c >/dev/null 2>&1 && $$c -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then command -v $$c; break; fi; done)

.PHONY: demo test lint typecheck bench fuzz soak matrix matrix-doc report-screenshot dashboard-screenshot certs clean

$(PY):
	@if [ -z "$(PYTHON)" ]; then echo "error: no Python >= 3.12 found (tried python3.13, python3.12, ~/.pyenv/versions/3.12+, python3)" >&2; exit 2; fi
	@echo "creating $(VENV) with $(PYTHON)"
	@$(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	PYTHONWARNINGS=ignore $(PY) -m pip install -q -e '.[fast]'
	@touch $@

$(DEVSTAMP): pyproject.toml | $(PY)
	PYTHONWARNINGS=ignore $(PY) -m pip install -q -e '.[fast,dev]'
	@touch $(STAMP) $@

demo: $(STAMP)
	$(VENV)/bin/proxy-lab demo $(DEMO_ARGS)

certs: $(STAMP)
	$(VENV)/bin/proxy-lab certs

lint: $(DEVSTAMP)
	$(VENV)/bin/ruff check proxy_lab tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

test: $(DEVSTAMP) lint
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

bench: $(DEVSTAMP)
	$(PY) -m bench.run $(BENCH_ARGS)
	$(PY) -m bench.chain $(CHAIN_ARGS)

fuzz: $(DEVSTAMP)
	$(PY) -m bench.fuzz $(FUZZ_ARGS)

soak: $(DEVSTAMP)
	$(PY) -m bench.soak $(SOAK_ARGS)

matrix: $(DEVSTAMP)
	$(VENV)/bin/proxy-lab matrix $(MATRIX_ARGS)

# The README links this file instead of carrying the matrix (root: real products in a namespace).
matrix-doc: $(DEVSTAMP)
	$(VENV)/bin/proxy-lab matrix --format markdown -o docs/matrix.md $(MATRIX_ARGS)

report-screenshot: $(DEVSTAMP)
	$(PY) -m proxy_lab.report.screenshot --output report.png

dashboard-screenshot: $(DEVSTAMP)
	$(PY) -m proxy_lab.serve.browser --output docs/dashboard.png

clean:
	rm -rf $(VENV) out report.html report.png
