# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv and install what they need.
PYTHON ?= $(shell command -v python3.11 >/dev/null 2>&1 && echo python3.11 || echo python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST := $(BIN)/python -m pytest
DEMO_DATA ?= revealed-data

.PHONY: demo test check lint typecheck bench clean venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,spark]'
	# Open Bandit Pipeline, for the estimators' parity test: it pins python<3.11 and torch 1.12,
	# so its own dependencies are not taken (the dev extra holds what obp.ope imports)
	$(BIN)/python -m pip install --quiet --no-deps --ignore-requires-python obp==0.5.7
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

typecheck: $(STAMP)
	$(BIN)/mypy src

## the fast suite, for iterating (a few minutes): no slow or Spark tests
check: lint typecheck
	$(PYTEST) -q -n 2 -m "not slow and not spark"

## the whole suite, exactly as CI runs it
test: lint typecheck
	$(PYTEST) -q -n 2 --timeout 900

## the project's story, end to end, on simulated data and the embedded default store
demo: $(STAMP)
	$(BIN)/python examples/demo.py --data $(DEMO_DATA)

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) revealed-data .mypy_cache .ruff_cache .pytest_cache
