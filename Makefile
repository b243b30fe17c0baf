# The README's two commands: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# SAM CLI must never phone home: the tests and CI run offline.
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: run test check scan unit bench build clean
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

test: $(BIN)/.installed check
	$(BIN)/pytest

check: $(BIN)/.installed
	$(BIN)/ruff check --output-format concise .
	$(BIN)/mypy
	$(BIN)/sam validate --lint --template template.yaml
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

# Figures for the README, each script side by side in one run; cost.py rewrites
# bench/cost.md and bench/cost.png. coldstart.py needs `make build` (the built layer).
bench: $(BIN)/.installed
	$(BIN)/python bench/feeds.py
	$(BIN)/python bench/calls.py
	$(BIN)/python bench/cpu.py
	$(BIN)/python bench/hotkeys.py
	$(BIN)/python bench/collection_writes.py
	$(BIN)/python bench/cost.py
	$(BIN)/python bench/edge.py
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

clean:
	rm -rf .aws-sam .pytest_cache .ruff_cache .offload/scan
