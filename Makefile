# Both entry points set themselves up (system tools, .venv/) idempotently before they run.
.PHONY: demo test lint setup clean

VENV := .venv
PY := $(VENV)/bin/python

setup:
	@bash scripts/system-deps.sh
	@bash scripts/bootstrap.sh

demo: setup
	@$(PY) -m pipeline.demo

test: setup
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check bot pipeline server.py
	$(VENV)/bin/mypy

clean:
	rm -rf demo-output .pytest_cache .mypy_cache .ruff_cache
