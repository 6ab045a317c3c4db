# Two commands do everything: `make demo` and `make test`. Both create/refresh the venv in .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.reprl-installed
export MUJOCO_GL ?= egl
export PYTHONUNBUFFERED := 1

.PHONY: install demo study test test-fast lint clean

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1 2>&1 | grep -v "is ignored" || true
	$(PY) -m pip install -q -e ".[sim,dev]" 2>&1 | grep -v "is ignored" || true
	$(PY) -c "import reprl, torch, torchvision, lightning, metaworld; print('reprl', reprl.__version__, 'torch', torch.__version__)"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	bash tools/demo.sh

# The study (several hours on 2 cores; resumable: run it again to continue). docs/results.md has the figures.
study: $(STAMP)
	bash tools/study.sh

test: $(STAMP)
	$(PY) -m ruff check reprl tests tools
	$(PY) -m mypy
	$(PY) -m pytest

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"

lint: $(STAMP)
	$(PY) -m ruff check reprl tests tools
	$(PY) -m mypy

clean:
	rm -rf demo_out study_out runs .pytest_cache .mypy_cache
