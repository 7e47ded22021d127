# Two commands on a fresh machine: `make demo` and `make test` (both install what they need).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ROWS ?= 200000
REQUESTS ?= 100000
PYTEST_ARGS ?=

export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install test test-all demo demo-clean lint format synth clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[all]"
	touch $(STAMP)

test: install
	$(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

test-all: install
	$(BIN)/pytest $(PYTEST_ARGS)

demo: install
	$(BIN)/aik demo --rows $(ROWS) --requests $(REQUESTS)

demo-clean:
	rm -rf .aik

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

synth: install
	$(BIN)/python app.py

clean: demo-clean
	rm -rf $(VENV) cdk.out .pytest_cache .ruff_cache *.egg-info

# cfn-lint over every synthesized template (the stacks and the EMR product); cdk-nag runs inside synth.
.PHONY: cfn-lint
cfn-lint: synth
	$(BIN)/python -m stacks.lint cdk.out
