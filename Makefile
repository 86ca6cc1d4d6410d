# edgeprune: every target sets up what it needs (a virtualenv in .venv) first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_WORKERS ?= 2

MODEL ?= build/demo/pruned-sparse.tflite
DEVICES ?= local

.PHONY: setup test lint format bench demo deploy-and-measure test-arm test-faults clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

## The test command (README, CI): lint, the Python 3.8 check of the agent, then the suite.
test: $(STAMP) lint
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --durations=15

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/vermin --target=3.8- --no-tips --violations --eval-annotations device_agents/

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Speed claims live here: ratios measured side by side in one run.
bench: $(STAMP)
	$(BIN)/python -m benchmarks

## The main job end to end on the `local` device.
demo: $(STAMP)
	$(BIN)/python -m edgeprune.demo_pipeline

deploy-and-measure: $(STAMP)
	$(BIN)/edgeprune deploy $(MODEL) --device $(DEVICES)
	$(BIN)/edgeprune bench $(MODEL) --device $(DEVICES)
	$(BIN)/edgeprune results report

test-arm: $(STAMP)
	$(BIN)/python -m pytest -m arm tests/arm

test-faults: $(STAMP)
	$(BIN)/python -m pytest -m faults tests/faults

clean:
	rm -rf build .pytest_cache .ruff_cache tests/.cache
