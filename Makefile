# sre-agent: the two commands a user needs are `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: install system-deps run test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Python packages (the project, editable, with its test extras).
install: $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'

# Debian's Prometheus and Alertmanager: the tests run the real programs.
system-deps:
	@if ! command -v prometheus >/dev/null || ! command -v prometheus-alertmanager >/dev/null \
	    || ! command -v promtool >/dev/null || ! command -v curl >/dev/null; then \
	  echo "installing Debian's prometheus, prometheus-alertmanager and curl"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    prometheus prometheus-alertmanager curl; \
	fi

# Run the service: SQLite in ./sre-agent.db, Ollama at localhost:11434 (see README for settings).
run: install
	$(BIN)/sre-agent serve --host $(HOST) --port $(PORT)

# Everything the tests need, then the whole suite. pytest's "no tests" (exit 5) fails.
test: install system-deps
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check sre_agent tools tests
	$(BIN)/ruff format --check sre_agent tools tests
	$(BIN)/mypy sre_agent tools/sre_agent_tools

bench: install system-deps
	$(BIN)/python scripts/bench.py

clean:
	rm -rf $(VENV) .pytest_cache build dist *.egg-info
