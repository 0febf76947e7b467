# nbfeatures: one command per habit. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help setup demo test test-unit check format protos lab bench clean java

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

java: ## fail early when Java 17+ (needed by Spark) is missing
	@command -v java >/dev/null || { echo "Java 17 is required by Spark: apt-get install -y openjdk-17-jre-headless" >&2; exit 1; }
	@v=$$(java -version 2>&1 | head -1 | sed -E 's/.*"([0-9]+).*/\1/'); \
	 [ "$$v" -ge 17 ] 2>/dev/null || { echo "Java 17+ is required by Spark, found: $$(java -version 2>&1 | head -1)" >&2; exit 1; }

$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory java
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[all,dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $(STAMP)

setup: $(STAMP) ## create .venv with every extra and the dev tools

demo: $(STAMP) ## run the whole path on the embedded defaults, in ./demo-workspace
	$(BIN)/python -m nbfeatures.demo demo-workspace

test: $(STAMP) ## unit and integration tests against real Spark, MLflow, PostgreSQL, Redis
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-unit: $(STAMP) ## the tests that need no services
	$(BIN)/python -m pytest -m "not integration" $(PYTEST_ARGS)

check: $(STAMP) ## ruff format --check, ruff check, mypy
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy nbfeatures

format: $(STAMP) ## apply ruff's formatting and fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

protos: $(STAMP) ## regenerate the gRPC code (and .pyi stubs) from proto/
	$(BIN)/python -m nbfeatures.serving.codegen

lab: $(STAMP) ## JupyterLab on this workspace with the quickstart notebook
	$(BIN)/jupyter lab notebooks/quickstart.ipynb

bench: $(STAMP) ## the %%feature benchmark; bench/README.md gives the command of each other one
	$(BIN)/python -m bench.notebook_preview

clean: ## remove the environment and workspace state
	rm -rf $(VENV) .nbfeatures demo-workspace .mypy_cache .ruff_cache .pytest_cache
