# The commands people and CI share. `make demo` and `make test` install what they need first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test lint bench services browser

$(BIN)/regsync: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/regsync

install: $(BIN)/regsync

demo: install
	$(BIN)/regsync demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: install services browser lint
	$(BIN)/pytest -q -p no:cacheprovider --durations=20

bench: install services
	$(BIN)/python -m bench

services:
	scripts/services

browser:  # Debian's Chromium for the browser tests (apt, once, only when missing)
	@test -x /usr/bin/chromium || scripts/chromium >/dev/null
