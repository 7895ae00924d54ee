# The README names two commands: `make demo` (the main job) and `make test`.
# Both create .venv and install everything they need on a fresh clone.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FMEVAL_VENV ?= .venv-fmeval
FMEVAL_STAMP := $(FMEVAL_VENV)/.installed
LITELLM_VENV ?= .venv-litellm
LITELLM_STAMP := $(LITELLM_VENV)/.installed

.PHONY: setup demo serve simulate test check format tools bench bench-quick bench-detectors bench-telemetry bench-samples bench-setup bench-compare bench-compare-quick clean fmeval-venv dashboards image

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,detoxify]'
	touch $@

setup: $(STAMP)  ## create .venv with Guardline and its dev tools

# fmeval's pins (transformers<5, numpy 1.26) clash with ours, so it gets its own venv; the
# dataset-export test runs tests/exporters/fmeval_load.py with it (~2 min, ~2 GB).
$(FMEVAL_STAMP): constraints-fmeval.txt
	$(PYTHON) -m venv $(FMEVAL_VENV)
	$(FMEVAL_VENV)/bin/python -m pip install --quiet -c constraints-fmeval.txt fmeval pyarrow torch
	touch $@

# Prometheus, promtool and Alertmanager (Debian packages) for the SRE tests, and Chromium
# for the report test's headless screenshot. Installing needs root (CI runs as root);
# without it the tests that need them skip, or fail where GUARDLINE_REQUIRE_E2E=1.
tools:  ## install prometheus (with promtool), prometheus-alertmanager and chromium where missing
	@missing=""; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v prometheus-alertmanager >/dev/null || missing="$$missing prometheus-alertmanager"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends $$missing >/dev/null; \
	else echo "make tools:$$missing missing and cannot apt-get install (not root)"; fi

fmeval-venv: $(FMEVAL_STAMP)  ## create .venv-fmeval with AWS FMEval, for the FMEval load test

demo: $(STAMP)  ## the proxy in front of the built-in simulator; prints how to call it
	$(BIN)/guardline demo

test: check $(FMEVAL_STAMP) tools  ## lint, format check, mypy --strict, then the whole test suite
	$(BIN)/pytest

check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

image:  ## build the container image with buildah (scripts/build-image.sh; root, no Docker Hub needed)
	scripts/build-image.sh

dashboards: $(STAMP)  ## regenerate dashboards/*.json from guardline/dashboards (commit the result)
	$(BIN)/python -m guardline.dashboards --write

bench: $(STAMP)  ## overhead benchmark: direct vs through Guardline (~5 min)
	$(BIN)/python benchmarks/overhead.py

bench-quick: $(STAMP)
	$(BIN)/python benchmarks/overhead.py --quick

bench-telemetry: $(STAMP)  ## telemetry off / on / on with OTLP, against a direct call (~4 min)
	$(BIN)/python benchmarks/telemetry.py

bench-samples: $(STAMP)  ## samples off / JSON Lines / + Kafka / Kafka down, at 1% and 100% (~16 min)
	$(BIN)/python benchmarks/samples.py

# LiteLLM's proxy, the comparison's competitor, in its own venv (~1 min, ~750 MB): its pins
# (openai, pydantic, fastapi) must not touch ours.
$(LITELLM_STAMP): constraints-litellm.txt
	$(PYTHON) -m venv $(LITELLM_VENV)
	$(LITELLM_VENV)/bin/python -m pip install --quiet -c constraints-litellm.txt 'litellm[proxy]' httptools opentelemetry-sdk
	touch $@

bench-setup: $(STAMP) $(LITELLM_STAMP)  ## install LiteLLM's proxy into .venv-litellm for bench-compare

bench-compare: bench-setup  ## direct vs Guardline vs LiteLLM, same load, one run (~35 min)
	$(BIN)/python benchmarks/compare.py --litellm $(LITELLM_VENV)/bin/litellm

bench-compare-quick: bench-setup  ## a smoke run of the comparison (~6 min)
	$(BIN)/python benchmarks/compare.py --litellm $(LITELLM_VENV)/bin/litellm --quick

bench-detectors: $(STAMP)  ## detector throughput, stream-guard cost, guard-mode time to first token
	$(BIN)/python benchmarks/detectors.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis *.egg-info
