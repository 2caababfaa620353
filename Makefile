# Both entry points set themselves up (system tools, .venv/) idempotently before they run.
.PHONY: demo test test-fast lint lint-only setup clean image-test

VENV := .venv
PY := $(VENV)/bin/python

setup:
	@bash scripts/system-deps.sh
	@bash scripts/bootstrap.sh

demo: setup
	@$(PY) -m pipeline.demo

# The suite first (its failures matter most), then the linters; either failing fails the target.
test: setup
	$(PY) -m pytest
	@$(MAKE) --no-print-directory lint-only

# The tests not marked slow (no end-to-end runs, subprocesses, real models or real servers): for the edit-test loop.
test-fast: setup
	$(PY) -m pytest -m "not slow"

lint: setup lint-only

lint-only:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# Builds the image and smoke-tests it from outside (Docker, or podman; see the script's header).
image-test:
	bash scripts/image-smoke.sh

clean:
	rm -rf demo-output .pytest_cache .mypy_cache .ruff_cache
