# The README names two commands: `make demo` (the main job) and `make test`.
# Both create .venv and install everything they need on a fresh clone.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo serve simulate test check format bench bench-quick bench-detectors bench-telemetry clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,detoxify]'
	touch $@

setup: $(STAMP)  ## create .venv with Guardline and its dev tools

demo: $(STAMP)  ## the proxy in front of the built-in simulator; prints how to call it
	$(BIN)/guardline demo

test: check  ## lint, format check, mypy --strict, then the whole test suite
	$(BIN)/pytest

check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)  ## overhead benchmark: direct vs through Guardline (~5 min)
	$(BIN)/python benchmarks/overhead.py

bench-quick: $(STAMP)
	$(BIN)/python benchmarks/overhead.py --quick

bench-telemetry: $(STAMP)  ## telemetry off / on / on with OTLP, against a direct call (~4 min)
	$(BIN)/python benchmarks/telemetry.py

bench-detectors: $(STAMP)  ## detector throughput, stream-guard cost, guard-mode time to first token
	$(BIN)/python benchmarks/detectors.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis *.egg-info
