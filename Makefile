# deposit-sentinel: `make help` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help install run test unit chaos bench soak memory-soak lint typecheck broker-start broker-stop broker-status clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml deploy/ensure-tools.sh
	@deploy/ensure-tools.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

install: $(STAMP) ## Install Java/Maven if missing, create .venv, install the package and dev tools

run: install ## Start a local broker, a worker and the demo feed; show alerts as they arrive (Ctrl-C stops all)
	@deploy/run-local.sh

test: install lint typecheck ## Lint, type-check, unit and integration tests on a real local Kafka broker (CI runs this)
	$(BIN)/pytest -q -p no:cacheprovider

unit: install ## Only the tests that need no broker
	$(BIN)/pytest -q -m "not kafka"

chaos: install ## Every fault-injection scenario (kill -9 x10, rebalance, broker outages, ...) on a real broker, as a table
	$(BIN)/python -m tests.chaos.run

bench: install ## Worker vs ideal aiokafka loop vs engine alone vs a Quix Streams app (row D), latency, 1 vs 2 workers, memory, backtest, exposure (transfers/s in one process and on a worker, bytes per exposed address), screening API (open-loop HTTP, needs go), soak (1M events, ~25 min + soak)
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python -m tests.bench.run $(if $(EVENTS),--events $(EVENTS),) $(if $(SOAK_EVENTS),--soak-events $(SOAK_EVENTS),) $(if $(SOAK_ACCOUNTS),--soak-accounts $(SOAK_ACCOUNTS),)

soak: install ## Long fault soak: 20 min of input at half the drain rate under mixed faults (kill -9, restarts, rebalance, broker kill, produce refusals), scored against backtest (MINUTES, SEED to change)
	$(BIN)/python -m tests.chaos.soak $(if $(MINUTES),--minutes $(MINUTES),) $(if $(SEED),--seed $(SEED),)

memory-soak: install ## Memory soak alone: worker RSS with and without the state sweep (2M events, 1M accounts, 3 days; SOAK_EVENTS/SOAK_ACCOUNTS to scale)
	$(BIN)/python -m tests.bench.soak $(if $(SOAK_EVENTS),--events $(SOAK_EVENTS),) $(if $(SOAK_ACCOUNTS),--accounts $(SOAK_ACCOUNTS),)

lint: install ## ruff lint and format check
	$(BIN)/ruff check streams tests
	$(BIN)/ruff format --check streams tests

typecheck: install ## mypy (strict) on the package
	$(BIN)/mypy

broker-start: ## Start the local Kafka broker (prints its bootstrap address)
	@deploy/kafka/broker.sh start

broker-stop: ## Stop the local Kafka broker
	@deploy/kafka/broker.sh stop

broker-status: ## Is the local Kafka broker running?
	@deploy/kafka/broker.sh status

clean: broker-stop ## Stop the broker and remove local data, caches and the virtualenv
	rm -rf .local $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
