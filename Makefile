# Quick start:
#   make train   # create .venv, install zoo[train], train LeNet-5 on the bundled digits
#   make test    # create or reuse .venv, install zoo[dev], run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
ARGS   ?=
# pytest workers: one per core by default; idle workers take queued tests from busy ones (worksteal), so a
# few long subprocess tests at the end do not leave a core idle.
JOBS   ?= auto

.PHONY: train test test-export table results bench install install-dev report clean help

help:
	@echo "make train [ARGS='model=... data=...']  train (default: LeNet-5 on digits)"
	@echo "make test                               run the test suite"
	@echo "make install                            .venv with zoo[train] and the zoo command: $(BIN)/zoo --help"
	@echo "make test-export                        export every model with every exporter and check it"
	@echo "make table [ARGS='--only lenet5*']      run the README table's presets over seeds 0,1,2 into results/runs"
	@echo "make results                            regenerate the README results table from results/runs"
	@echo "make bench [ARGS='--quick']             time the training loop, loaders and models into results/bench"
	@echo "make clean                              remove .venv and run outputs"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "zoo needs Python 3.10+, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)

# Reinstall only when pyproject.toml changes. The core install (pip install -e .) is the models alone;
# training needs the train extra, the report the report extra, the tests dev (all extras + pytest).
$(VENV)/.installed-train: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[train]'
	@touch $@

$(VENV)/.installed-report: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[train,report]'
	@touch $@ $(VENV)/.installed-train

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@ $(VENV)/.installed-train $(VENV)/.installed-report

install: $(VENV)/.installed-train
install-dev: $(VENV)/.installed-dev

train: $(VENV)/.installed-train
	$(BIN)/python train.py $(ARGS)

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -n $(JOBS) --dist worksteal --durations=15 -m "not export_sweep" $(ARGS)

# Every registered model through TorchScript, torch.export, ONNX (onnxruntime) and torch.compile.
test-export: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -n $(JOBS) --dist worksteal -m export_sweep tests/test_export.py $(ARGS)

# The README results table: `make table` trains every CPU-trainable preset over seeds 0,1,2 (finished seeds
# are skipped) into results/runs, which is kept in git without weights; `make results` regenerates the
# table, results/report/results.{md,csv} and its plots from those runs. The table is never edited by hand.
table: $(VENV)/.installed-train
	$(BIN)/python scripts/run_table.py $(ARGS)

results: $(VENV)/.installed-report
	$(BIN)/python -m zoo.report results/runs --out results/report --readme README.md

# The benchmark (python -m zoo.bench): the training loop vs a plain loop, the loaders vs torchvision's, the
# models vs their torchvision twins, fp32/bf16/channels_last, into results/bench/bench.{md,csv,json}.
# ARGS='--quick' for a smoke run; ARGS='--sections tta' for the time-to-accuracy run.
bench: $(VENV)/.installed-train
	$(BIN)/python -m zoo.bench $(ARGS)

clean:
	rm -rf $(VENV) outputs multirun lightning_logs .pytest_cache
