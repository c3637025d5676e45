# The two commands of the README: `make demo` and `make test`. Both install first (idempotently).
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: install lock demo test lint typecheck contracts unit integration up status clean help embedding-bench \
	console-screenshots

help:
	@echo "make demo   - install, then run Stratus end to end on the embedded arena"
	@echo "make test   - install, then lint, type-check, import contracts and the whole test suite"
	@echo "make lint   - ruff"
	@echo "make lock   - recompile requirements.lock and requirements-dev.lock from pyproject.toml (UPGRADE=1: newest)"
	@echo "make up     - start NATS, Redis and every service (stratus up)"
	@echo "make console-screenshots - run the console's browser test and save its screenshots to docs/console"
	@echo "make embedding-bench - record the state-embedding dataset, train, print the comparison with baselines"

install:
	@bash scripts/install.sh

# The locks pin every package with hashes; `make install` installs exactly requirements-dev.lock.
# (the first install may not check the lock against pyproject.toml: a dependency just added is what `lock` is for)
lock:
	@LOCK_CHECK=0 bash scripts/install.sh
	$(BIN)/python scripts/lock.py compile $(if $(UPGRADE),--upgrade)
	@bash scripts/install.sh

lint: install
	$(BIN)/ruff check stratus services arena tests scripts
	$(BIN)/ruff format --check stratus services arena tests scripts

typecheck: install
	$(BIN)/mypy stratus services

contracts: install
	$(BIN)/lint-imports

test: install lint typecheck contracts
	BIN=$(BIN) bash scripts/test.sh

demo: install
	$(BIN)/python -m arena.demo $(if $(FAULT),--fault $(FAULT))

# The console's screenshots in the README: its browser test on the whole system, saving what the page showed.
console-screenshots: install
	STRATUS_CONSOLE_SCREENSHOTS=docs/console $(BIN)/pytest -q -p no:cacheprovider tests/e2e/test_console_browser.py

# The state embedding: record the synthetic dataset, train from scratch, print the comparison (not part of `make test`).
embedding-bench: install
	nice -n 10 $(BIN)/stratus embedding-bench run --out bench-out/embedding \
		--model-out stratus/embedding/models/state-embedding-v1.npz

up: install
	$(BIN)/stratus up

status: install
	$(BIN)/stratus status

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build *.egg-info

# Opt-in local LLM (not part of `make test`): Qwen2.5-Coder-1.5B-Instruct served by llama.cpp on 127.0.0.1, built for
# this machine's CPU without the AMX kernel, with the model's own chat template. `make llm-stop` also cleans up after
# a crash.
LLM_PORT ?= 8089
export LLM_PORT
.PHONY: llm-local llm-stop test-llm

llm-local: install
	@bash scripts/llm-local.sh start

llm-stop:
	@bash scripts/llm-local.sh stop

test-llm: llm-local
	STRATUS_LLM_BASE_URL=http://127.0.0.1:$(LLM_PORT)/v1 STRATUS_LLM_MODEL=local STRATUS_LLM_COMPACT=true \
	STRATUS_LLM_CONTEXT_TOKENS=$${LLM_CTX:-8192} \
	STRATUS_LLM_PRICE_IN_PER_MTOK=0 STRATUS_LLM_PRICE_OUT_PER_MTOK=0 STRATUS_LLM_TIMEOUT_S=900 \
	$(BIN)/pytest -q -p no:cacheprovider --timeout=1800 -rA tests_llm
