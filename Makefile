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
	$(BIN)/python -m arena.demo $(if $(FAULT),--fault $(FAULT))

up: install
	$(BIN)/stratus up

status: install
	$(BIN)/stratus status

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build *.egg-info

# Opt-in local LLM (not part of `make test`): Qwen2.5-Coder-1.5B-Instruct served by llama.cpp on 127.0.0.1.
LLM_PORT ?= 8089
export LLM_PORT
.PHONY: llm-local llm-stop test-llm

llm-local: install
	@bash scripts/llm-local.sh start

llm-stop:
	@bash scripts/llm-local.sh stop

test-llm: llm-local
	STRATUS_LLM_BASE_URL=http://127.0.0.1:$(LLM_PORT)/v1 STRATUS_LLM_MODEL=local STRATUS_LLM_COMPACT=true \
	STRATUS_LLM_PRICE_IN_PER_MTOK=0 STRATUS_LLM_PRICE_OUT_PER_MTOK=0 STRATUS_LLM_TIMEOUT_S=900 \
	$(BIN)/pytest -q -p no:cacheprovider --timeout=1800 -rA tests_llm
