# Two commands on a fresh machine: `make demo` and `make test` (both install what they need).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo
ROWS ?= 200000
REQUESTS ?= 100000
PYTEST_ARGS ?=
# pytest-xdist workers for `make test` and `make test-all` (one file per worker at a time; 1 = serial)
TEST_WORKERS ?= 2
XDIST = $(if $(filter 1,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)

export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install test test-all test-aws test-spark35 test-cluster demo demo-clean lint format synth clean thrift-tools

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[all]"
	touch $(STAMP)

# The demo needs only what it runs (no PyTorch, no test tools); a venv made by `make install` has it.
$(DEMO_STAMP): pyproject.toml
	@if [ -e $(STAMP) ] && [ $(STAMP) -nt pyproject.toml ]; then touch $(DEMO_STAMP); else \
		$(PYTHON) -m venv $(VENV) && $(BIN)/pip install --quiet --upgrade pip && \
		$(BIN)/pip install --quiet -e ".[demo]" && touch $(DEMO_STAMP); fi

# Debian's Thrift compiler and Java library (the machine's package mirror): the tests that generate a
# Python and a Java client from the original IDL (a second, independent Thrift implementation) skip
# without them. Installs only as root with apt-get; otherwise says so and the tests skip.
thrift-tools:
	@if command -v thrift >/dev/null && [ -e /usr/share/java/thrift.jar ]; then \
		echo "thrift-tools: thrift-compiler and libthrift-java present"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			thrift-compiler libthrift-java >/dev/null && echo "thrift-tools: installed"; \
	else \
		echo "thrift-tools: not installed (needs root and apt-get); the generated-client tests will skip"; \
	fi

test: install
	$(BIN)/pytest -m "not slow" $(XDIST) $(PYTEST_ARGS)

test-all: install
	$(BIN)/pytest $(XDIST) $(PYTEST_ARGS)

# The AWS paths as far as this machine goes (CI runs it after `make test`): the end-to-end tests
# against moto's server (tests/aws and the SageMaker backtest, marked slow) and the feature job under
# EMR 7's Spark 3.5.
test-aws: install test-spark35
	$(BIN)/pytest tests/aws tests/train/test_backtest_sagemaker.py $(PYTEST_ARGS)

# The feature job under Spark 3.5 (EMR 7.x): a second venv with what the EMR bootstrap installs
# (emr_bootstrap/requirements.txt, then the kit without dependencies), EMR 7.13's pyspark, and pytest.
VENV35 := .venv-spark35
PYSPARK35 := pyspark==3.5.6
SPARK35_TESTS := tests/pipeline/test_job.py tests/pipeline/test_spark_logs.py tests/pipeline/test_transforms.py
# the monitor's join job (an EMR step too): its table against the in-process join
SPARK35_TESTS += tests/monitor/test_monitor_spark_job.py
# these score the job's outputs through the filtering server, whose packages EMR nodes do not have
# (the main venv runs them)
SPARK35_TESTS += --deselect tests/pipeline/test_job.py::test_server_features_of_inference_rows_equal_the_splits_rows
SPARK35_TESTS += --deselect tests/pipeline/test_job.py::test_the_servers_scores_of_inference_rows_are_the_boosters_on_the_split_rows

$(VENV35)/.installed: emr_bootstrap/requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV35)
	$(VENV35)/bin/pip install --quiet -r emr_bootstrap/requirements.txt "$(PYSPARK35)" \
		"pytest>=8" "pytest-timeout>=2.3" "hypothesis>=6.100"
	$(VENV35)/bin/pip install --quiet --no-deps -e .
	touch $@

test-spark35: $(VENV35)/.installed
	$(VENV35)/bin/pytest -p no:cacheprovider $(SPARK35_TESTS) $(PYTEST_ARGS)

# The feature job on a Spark standalone cluster started on this machine from the pyspark distribution
# (a master and a worker on 127.0.0.1), submitted with spark-submit as docs/pipeline.md tells cluster
# users; CI runs it after `make test-aws`.
test-cluster: install
	$(BIN)/pytest -p no:cacheprovider tests/pipeline/test_cluster.py $(PYTEST_ARGS)

demo: $(DEMO_STAMP)
	$(BIN)/aik demo --rows $(ROWS) --requests $(REQUESTS)

demo-clean:
	rm -rf .aik

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

synth: install
	$(BIN)/python app.py

clean: demo-clean
	rm -rf $(VENV) $(VENV35) cdk.out .pytest_cache .ruff_cache *.egg-info

# cfn-lint over every synthesized template (the stacks and the EMR product); cdk-nag runs inside synth.
.PHONY: cfn-lint
cfn-lint: synth
	$(BIN)/python -m stacks.lint cdk.out
