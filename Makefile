# Quick start: `make train` and `make test` set everything up themselves (idempotent).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.matchnet-installed
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=
# pytest-xdist processes for make test (0: the suite in one process). Default: one more than the CPU
# cores, because the end-to-end tests spend part of their time waiting on their subprocesses and on
# timed signals, and a spare worker uses those cores meanwhile.
TEST_WORKERS ?= $(shell $(PYTHON) -c 'import os; print((os.cpu_count() or 1) + 1)')
ARGS ?=

.PHONY: install train test test-quick lint bench clean-cache help demo demo-screenshot results-report

help:
	@echo "make install   create $(VENV) and install matchnet with all dependencies"
	@echo "make train     train and test the default experiment (ARGS='key=value ...')"
	@echo "make test      the whole test suite (what CI runs) on every core, one worker more than cores (PYTEST_ARGS='-k ...', TEST_WORKERS=0 for one process)"
	@echo "make test-quick        the suite without the end-to-end tests (marker e2e: fresh processes, whole sweeps, the browser)"
	@echo "make lint      ruff check"
	@echo "make bench     throughput benchmark (quick), writes nothing to results/"
	@echo "make demo      the browser demo (ARGS='ckpt_path=... port=...')"
	@echo "make demo-screenshot   the browser test, saving docs/demo.png"
	@echo "make results-report    results/omniglot.md from the runs under multirun/results"
	@echo "make clean-cache       delete the preprocessed image caches (data/omniglot/cache)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel

$(STAMP): $(BIN)/python pyproject.toml scripts/build_learn2learn.py
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python scripts/build_learn2learn.py --wheel-dir build/wheels
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

train: $(STAMP)
	$(BIN)/python src/train.py $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=15 $(PYTEST_ARGS)

test-quick: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=15 -m "not e2e" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts

bench: $(STAMP)
	$(BIN)/python benchmarks/throughput.py --quick

demo: $(STAMP)
	$(BIN)/python src/demo.py $(ARGS)

demo-screenshot: $(STAMP)
	MATCHNET_DEMO_SCREENSHOT=docs/demo.png $(BIN)/python -m pytest tests/test_demo_browser.py

results-report: $(STAMP)
	$(BIN)/python benchmarks/omniglot_report.py

clean-cache:
	rm -rf data/omniglot/cache
