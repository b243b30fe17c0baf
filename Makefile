# The README's two commands: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# SAM CLI must never phone home: the tests and CI run offline.
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: run test check scan unit bench build clean check-stack-name
# checkov pins its own AWS SDK, so it gets a virtualenv of its own.
SCANNER ?= checkov==3.3.30
SCAN_VENV ?= .venv-scan

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Offload needs Python 3.11 or newer"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --editable '.[dev]'
	@touch $@

# The local stack in the foreground until Ctrl-C; PORT (default 3000), EDGE_PORT (the local
# CDN, default 3080), PAGE_PORT (the demo page, default 3090) and EMULATOR_PORT (default: a
# free one) reach it through the environment: make run PORT=3001 EDGE_PORT=3081
run: $(BIN)/.installed
	@$(BIN)/offload-local

# Independent tests run on TEST_WORKERS processes (pytest-xdist); those timed against the
# clock (marked serial) run after them, alone, so that a busy neighbour cannot make them late.
TEST_WORKERS ?= 2
test: $(BIN)/.installed check
	$(BIN)/pytest -n $(TEST_WORKERS) -m "not serial"
	$(BIN)/pytest -m serial

check: $(BIN)/.installed
	$(BIN)/ruff check --output-format concise .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/sam validate --lint --template template.yaml
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet
	@$(MAKE) --no-print-directory scan

$(SCAN_VENV)/.installed:
	$(PYTHON) -m venv $(SCAN_VENV)
	$(SCAN_VENV)/bin/pip install --quiet '$(SCANNER)'
	@touch $@

# The policy scan (.checkov.yaml) of the template as CloudFormation sees it after SAM.
scan: $(BIN)/.installed $(SCAN_VENV)/.installed
	$(BIN)/python -m offload_local.translate .offload/scan/template.json
	$(SCAN_VENV)/bin/checkov --config-file .checkov.yaml

unit: $(BIN)/.installed
	$(BIN)/pytest tests/unit

# Figures for docs/measurements.md and docs/cost.md, each script side by side in one run;
# cost.py rewrites docs/cost-sources.md and docs/assets/cost.png; coldstart.py needs
# `make build` (the built layer).
bench: $(BIN)/.installed
	$(BIN)/python bench/feeds.py
	$(BIN)/python bench/calls.py
	$(BIN)/python bench/cpu.py
	$(BIN)/python bench/hotkeys.py
	$(BIN)/python bench/collection_writes.py
	$(BIN)/python bench/cost.py
	$(BIN)/python bench/edge.py
	$(BIN)/python bench/origin.py
	@$(MAKE) --no-print-directory build && $(BIN)/python bench/coldstart.py

# sam build needs the runtime's interpreter (python3.13) on PATH to build the layer;
# with pyenv, a 3.13 that is installed but not selected is selected for the build.
build: $(BIN)/.installed
	@if command -v pyenv >/dev/null 2>&1 && [ -z "$${PYENV_VERSION:-}" ]; then \
	  export PYENV_VERSION="$$(pyenv version-name):$$(pyenv versions --bare | grep -m1 '^3\.13' || true)"; \
	fi; \
	if ! python3.13 -V >/dev/null 2>&1; then \
	  echo "make build: no python3.13 on PATH; SAM builds the layer with the runtime's interpreter."; \
	  echo "Install Python 3.13 (pyenv install 3.13), or run 'sam build --use-container' with Docker."; \
	  exit 1; \
	fi; \
	$(BIN)/sam build

# A stack name CloudFormation takes may still make an invalid bucket name: the bucket is
# <stack>-feeds-<12-digit account id>, and S3 allows 63 characters, lowercase letters, digits
# and hyphens, beginning with a letter or digit and not with xn--, sthree- or amzn-s3-demo-.
# So at most 44 characters, lowercase. Checks samconfig.toml's stack name for ENV, or
# STACK_NAME: make check-stack-name ENV=prod; make check-stack-name STACK_NAME=offload-acme
ENV ?= dev
STACK_NAME ?= $(shell $(PYTHON) -c 'import sys, tomllib; print(tomllib.load(open("samconfig.toml", "rb"))[sys.argv[1]]["deploy"]["parameters"]["stack_name"])' '$(ENV)' 2>/dev/null)
check-stack-name:
	@name='$(STACK_NAME)'; \
	if [ -z "$$name" ]; then echo "make check-stack-name: no stack name for '$(ENV)' in samconfig.toml"; exit 1; fi; \
	case "$$name" in xn--*|sthree-*|amzn-s3-demo-*) bad=prefix;; esac; \
	if [ -n "$${bad:-}" ] || ! printf '%s' "$$name" | grep -Eqx '[a-z][a-z0-9-]{0,43}'; then \
	  echo "make check-stack-name: '$$name' makes an invalid bucket name ($$name-feeds-<account>):"; \
	  echo "  use at most 44 lowercase letters, digits and hyphens, starting with a letter."; \
	  exit 1; \
	fi

clean:
	rm -rf .aws-sam .pytest_cache .ruff_cache .offload/scan
