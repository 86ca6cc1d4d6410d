# edgeprune: every target sets up what it needs (a virtualenv in .venv) first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_WORKERS ?= 2

RECIPE ?= configs/recipes/demo.yaml
DEVICES ?= local

.PHONY: setup test lint format bench demo deploy-and-measure test-arm test-faults test-faults-heavy clean

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
	$(BIN)/mypy edgeprune device_agents

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Speed claims live here: ratios measured side by side in one run.
bench: $(STAMP)
	$(BIN)/python -m benchmarks

## The main job end to end on the `local` device: train, sweep, measure, recommend
## (stages cached under build/demo/; a second run trains and measures nothing).
demo: $(STAMP)
	$(BIN)/edgeprune run configs/recipes/demo.yaml

## A recipe's variants built and measured on DEVICES (names or tags, comma-separated);
## MODEL=file.tflite measures that one model instead.
deploy-and-measure: $(STAMP)
ifdef MODEL
	$(BIN)/edgeprune deploy $(MODEL) --device $(DEVICES)
	$(BIN)/edgeprune bench $(MODEL) --device $(DEVICES)
	$(BIN)/edgeprune results report
else
	$(BIN)/edgeprune run $(RECIPE) --device $(DEVICES)
endif

## The agent as arm64 code on emulated Pi 4 / Pi 5 / Jetson Nano boards over sshd (qemu
## user-mode; needs qemu-user-static). One process: the sparse A/B timings share no CPU.
## ARM_BOARDS=pi4-ai-edge-litert,pi4-tflite-runtime runs a subset (what CI runs).
ARM_BOARDS ?=
test-arm: $(STAMP)
	EDGEPRUNE_ARM_BOARDS=$(ARM_BOARDS) $(BIN)/python -m pytest -m arm --durations=10 tests/arm

## Faults, bad input, security and load (tests/faults), the heavy `faults` tier included;
## prints the closing table (also: python tests/faults/figures.py).
test-faults: $(STAMP)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -m "faults or not faults" --durations=10 tests/faults

## Only the heavy tier (`make test` already ran the quick one): what CI runs after it.
test-faults-heavy: $(STAMP)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -m faults --durations=10 tests/faults

clean:
	rm -rf build .pytest_cache .ruff_cache tests/.cache
