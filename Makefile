# Two commands for a newcomer (see README): `make repro` and `make test`.
# Both create .venv when missing and install the pinned stack (constraints.txt) first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.dc003-installed

# Nothing phones home (the package sets the same defaults for direct `python -m` / `dc003` use).
export DVC_NO_ANALYTICS := 1
export GX_ANALYTICS_ENABLED := false
export ORT_DISABLE_TELEMETRY := 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
# stages run `python -m pipeline.X`: the venv's python must come first on PATH
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup system repro plots test lint typecheck unit

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

# system packages beside the pip stack: redis-server (the tests of `dc003 serve` start a real one);
# a no-op when it is installed, else apt-get (root or sudo)
system:
	scripts/setup_system.sh

repro: setup
	$(VENV)/bin/dvc repro
	$(VENV)/bin/dvc push

# `dvc plots show` with Vega, Vega-Lite and Vega-Embed inlined: dvc_plots/index.html renders offline
plots: setup
	$(VENV)/bin/dc003 plots -o dvc_plots

lint: setup
	$(VENV)/bin/ruff check src tests pipeline scripts

typecheck: setup
	$(VENV)/bin/mypy src/dc003

unit: setup
	$(VENV)/bin/pytest -n 2 --dist loadgroup

test: system lint typecheck unit
