# The few entry points a person types. Each creates .venv and installs the project on
# first use (and again when pyproject.toml changes); later calls reuse it.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Parameters of `make train` (override on the command line):
#   DATA     cifar10 (download), a CIFAR-10 archive or folder, or a class-folder tree
#   RUN_DIR  the run folder (default runs/<preset>-<recipe>; the same command resumes it)
#   ARGS     any other `python -m alexnet_lib train` flags, e.g. ARGS="--epochs 2"
PRESET ?= cifar
DATA ?= cifar10
RUN_DIR ?=
ARGS ?=
# Parameters of `make notebooks`: PARAMS names notebooks/params/<PARAMS>.yaml; DATA and
# RUN_DIR, when given on the command line, override the set's own.
PARAMS ?= smoke
KERNEL := alexnet-cifar10

.PHONY: help setup train test test-fast bench notebooks ablations lab gpu-kit clean

help:
	@echo "make train   train the default CPU job and evaluate it (PRESET=$(PRESET) DATA=$(DATA))"
	@echo "make test    run the test suite and execute the notebooks once (nbval); creates .venv"
	@echo "make test-fast   the fast tier: no training runs, subprocesses, notebooks or real data"
	@echo "make bench   measure training throughput (docs/benchmarks.md)"
	@echo "make notebooks PARAMS=smoke|cpu|gpu-origin|gpu-paper   run the four notebooks (papermill)"
	@echo "make ablations PARAMS=smoke|full   the paper's claims: notebook 05's sweep (papermill)"
	@echo "make lab     start JupyterLab with the project's kernel"
	@echo "make gpu-kit   gpu-kit/: wheels and data for a JAX-only GPU machine (tools/gpu_check.sh)"
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
	$(PY) -m alexnet_lib train --preset $(PRESET) --data "$(DATA)" $(if $(RUN_DIR),--run-dir "$(RUN_DIR)") $(ARGS)

test: $(STAMP)
	$(PY) -m pytest --nbval-lax tests notebooks

# The tests not marked slow (training runs, subprocesses), notebooks or realdata.
test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow and not notebooks and not realdata" tests

notebooks: $(STAMP)
	$(PY) -m alexnet_lib notebooks --params $(PARAMS) \
		$(if $(filter command line,$(origin DATA)),--data "$(DATA)") $(if $(RUN_DIR),--run-dir "$(RUN_DIR)")

# The ablation sweep (notebook 05) with notebooks/params/ablations-<PARAMS>.yaml: PARAMS=smoke
# (default, minutes) or full (the README's claims table); DATA and RUN_DIR override the set's.
ablations: $(STAMP)
	$(PY) -m alexnet_lib notebooks --params ablations-$(PARAMS) --only 05_ablations \
		$(if $(filter command line,$(origin DATA)),--data "$(DATA)") $(if $(RUN_DIR),--run-dir "$(RUN_DIR)")

# Registers the environment as a Jupyter kernel for this user ("AlexNet (alexnet-cifar10)"),
# so other Jupyter installations can use it too, then starts JupyterLab in notebooks/.
# As root (a container, say) JupyterLab refuses to start without --allow-root: it is added.
LAB_AS_ROOT ?= $(if $(filter 0,$(shell id -u)),--allow-root)
lab: $(STAMP)
	$(PY) -m ipykernel install --user --name $(KERNEL) --display-name "AlexNet ($(KERNEL))"
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $(LAB_AS_ROOT)

bench: $(STAMP)
	$(PY) benchmarks/bench_train.py
	$(PY) benchmarks/bench_train.py --layers
	$(PY) benchmarks/bench_pipeline.py
	$(PY) benchmarks/bench_precision.py

# What a JAX-only GPU machine without network lacks (the wheels pinned by hash in
# tools/gpu-kit/, the CIFAR-10 JPEG copy packed when it is at hand): run there
# `bash tools/gpu_check.sh` with gpu-kit/ beside the project.
gpu-kit:
	$(PYTHON) tools/gpu_kit.py build

clean:
	rm -rf .pytest_cache build *.egg-info
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +
