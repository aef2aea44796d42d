# The cluster label registry. `make run` starts the system, `make test` proves it.
SHELL := /bin/bash
UV_VERSION := 0.13.9
export UV_PYTHON_DOWNLOADS := never
UV := uv
RUN := $(UV) run --frozen
WITH_ENV := set -a && source .local/env && set +a &&

.PHONY: help setup stack stop status topics run test test-unit test-integration lint fmt bench

help:
	@echo "make run     start PostgreSQL, Kafka and the topics (installs what is missing)"
	@echo "make test    lint (ruff, mypy) and every test against the real PostgreSQL and Kafka"
	@echo "make bench   the event store and relay benchmark (durable settings), prints and writes JSON"
	@echo "make stop    stop PostgreSQL and Kafka"

setup:  ## the Python environment, exactly as locked in uv.lock
	@command -v $(UV) >/dev/null || python3 -m pip install -q "uv==$(UV_VERSION)"
	@$(UV) sync --frozen --quiet

stack:  ## a real PostgreSQL and a real Kafka on 127.0.0.1 (deploy/local/stack.sh)
	@deploy/local/stack.sh start

stop:
	@deploy/local/stack.sh stop

status:
	@deploy/local/stack.sh status

topics: setup stack
	@$(WITH_ENV) $(RUN) python -m clr_events.kafka.topics deploy/kafka/topics.toml

run: topics
	@echo "The stack is up: PostgreSQL and Kafka with the declared topics (see .local/env)."
	@echo "The domain services and the public page are not built yet (see README.md)."

lint: setup
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy

fmt: setup
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

test: lint topics
	$(WITH_ENV) $(RUN) pytest -q

test-unit: setup
	$(RUN) pytest -q tests/unit tests/contracts

test-integration: topics
	$(WITH_ENV) $(RUN) pytest -q tests/integration

bench: topics
	$(WITH_ENV) $(RUN) python -m bench.store_bench
