# The few entry points a person types. Each creates .venv and installs the project on
# first use (and again when pyproject.toml changes); later calls reuse it.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Parameters of `make train` (issue-free defaults; override on the command line).
PRESET ?= cifar

.PHONY: help setup train test test-fast bench clean

help:
	@echo "make train   build the default preset and print its summary (PRESET=$(PRESET))"
	@echo "make test    run the test suite (creates .venv on first use)"
	@echo "make bench   measure training throughput (docs/benchmarks.md)"
	@echo "make clean   remove caches (keeps .venv, data/ and runs/)"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else \
		"Python 3.10+ is needed; found " + sys.version.split()[0] + ". Set PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

setup: $(STAMP)

train: $(STAMP)
	@echo "Training is not implemented yet: building the '$(PRESET)' preset and printing its summary."
	$(PY) -m alexnet_lib summary --preset $(PRESET)

test: $(STAMP)
	$(PY) -m pytest --nbval-lax tests notebooks

bench: $(STAMP)
	$(PY) benchmarks/bench_train.py
	$(PY) benchmarks/bench_layers.py

clean:
	rm -rf .pytest_cache build *.egg-info
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +
