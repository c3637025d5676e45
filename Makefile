# The two commands of the README: `make demo` and `make test`. Both install first (idempotently).
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: install demo test lint typecheck contracts unit integration up status clean help

help:
	@echo "make demo   - install, then run Stratus end to end on the embedded arena"
	@echo "make test   - install, then lint, type-check, import contracts and the whole test suite"
	@echo "make lint   - ruff"
	@echo "make up     - start NATS, Redis and every service (stratus up)"

install:
	@bash scripts/install.sh

lint: install
	$(BIN)/ruff check stratus services arena tests scripts
	$(BIN)/ruff format --check stratus services arena tests scripts

typecheck: install
	$(BIN)/mypy stratus services

contracts: install
	$(BIN)/lint-imports

test: install lint typecheck contracts
	$(BIN)/pytest -q -p no:cacheprovider tests

demo: install
	$(BIN)/python -m stratus.demo

up: install
	$(BIN)/stratus up

status: install
	$(BIN)/stratus status

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build *.egg-info
