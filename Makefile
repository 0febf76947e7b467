# nbfeatures: one command per habit. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help setup demo test test-unit check format protos lab panel bench clean java native native-deps

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
	@# The install built the Features panel (extension/); link it so a rebuild shows at once.
	$(BIN)/jupyter-builder develop --overwrite . >/dev/null
	@touch $(STAMP)

setup: $(STAMP) ## create .venv with every extra and the dev tools

demo: $(STAMP) ## run the whole path on the embedded defaults, in ./demo-workspace
	$(BIN)/python -m nbfeatures.demo demo-workspace

# The native data plane's build tools, from Debian (installed when missing and run as root).
NATIVE_DEBS := g++ make pkg-config libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler nlohmann-json3-dev

native-deps: ## install the native data plane's build tools from Debian when missing
	@if pkg-config --exists grpc++ protobuf 2>/dev/null && command -v grpc_cpp_plugin >/dev/null \
	   && [ -f /usr/include/nlohmann/json.hpp ]; then exit 0; fi; \
	 if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	   echo "installing the native data plane's build tools: $(NATIVE_DEBS)"; \
	   apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	     --no-install-recommends $(NATIVE_DEBS) >/dev/null; \
	 else \
	   echo "the native data plane needs: apt-get install -y $(NATIVE_DEBS)" >&2; exit 1; \
	 fi

native: native-deps ## build the native data plane, native/build/nbf-serve-native
	@$(MAKE) --no-print-directory -C native

test: $(STAMP) native ## unit and integration tests against real Spark, MLflow, PostgreSQL, Redis
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

# The workspace the Features panel and the quickstart notebook share (`make demo` fills it).
LAB_WORKSPACE ?= demo-workspace

lab: $(STAMP) ## JupyterLab with the Features panel on LAB_WORKSPACE, the quickstart open
	@mkdir -p $(LAB_WORKSPACE)
	NBF_WORKSPACE=$(abspath $(LAB_WORKSPACE)) $(BIN)/jupyter lab notebooks/quickstart.ipynb \
	  $(if $(filter 0,$(shell id -u)),--allow-root)

panel: $(STAMP) ## rebuild the JupyterLab panel after editing extension/ (needs Node.js 20)
	cd extension && export PATH="$(abspath $(BIN)):$$PATH" && jlpm install && jlpm build

bench: $(STAMP) ## the %%feature benchmark; bench/README.md gives the command of each other one
	$(BIN)/python -m bench.notebook_preview

clean: ## remove the environment, the native build and workspace state
	rm -rf $(VENV) native/build .nbfeatures demo-workspace .mypy_cache .ruff_cache .pytest_cache
	rm -rf nbfeatures/labextension extension/lib extension/node_modules extension/tsconfig.tsbuildinfo
