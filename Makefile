# The cluster label registry. `make run` starts the system, `make test` proves it.
SHELL := /bin/bash
UV_VERSION := 0.13.9
export UV_PYTHON_DOWNLOADS := never
UV := uv
RUN := $(UV) run --frozen
WITH_ENV := set -a && source .local/env && set +a &&

.PHONY: help setup stack stop reset status topics browser prometheus run token test test-unit \
	test-integration lint fmt bench chaos schemas schemas-check translations rebuild-projection \
	projections-status dlq-replay backup restore republish migrations

help:
	@echo "make run     PostgreSQL, Kafka, topics and every service (installs what is missing)"
	@echo "make run DEMO=1   the same, with the demo history generated through the APIs"
	@echo "make run SCALE=projections=2,label_decisions=2   several instances of those services"
	@echo "make token ROLE=assessor   a development bearer token"
	@echo "make test    lint (ruff, mypy, import rules) and every test against the real PostgreSQL and Kafka"
	@echo "make chaos   kill -9 each service, the broker and PostgreSQL under load; prove nothing lost (a stack of its own)"
	@echo "make bench   benchmarks of the store, relay, read side and services (durable; bench/README.md)"
	@echo "make stop    stop PostgreSQL and Kafka"
	@echo "make reset   stop them and delete their data (events, read models, topics)"
	@echo "make schemas regenerate schemas/ (JSON Schema, AsyncAPI, golden examples) from the contracts"
	@echo "make rebuild-projection NAME=labels [LANES=2] [PROCESSES=2]   rebuild a read model beside the live one, then swap"
	@echo "make projections-status   generation and lag of every read model"
	@echo "make translations   extract the public page's messages into its catalogues (fr, de)"
	@echo "make dlq-replay GROUP=assessments.reference [DRY=1]   redeliver a group's dead letters to it"
	@echo "make backup [DIR=...]   pg_dump of every schema and a manifest (deploy/runbooks/backup.md)"
	@echo "make restore DIR=... [SCHEMA=...]   restore a backup, verify every chain (services stopped)"
	@echo "make republish   after the Kafka topics were lost: relays and consumers from the start"
	@echo "make migrations   the migration history of every schema"

setup:  ## the Python environment, exactly as locked in uv.lock
	@command -v $(UV) >/dev/null || python3 -m pip install -q "uv==$(UV_VERSION)"
	@$(UV) sync --frozen --quiet

stack:  ## a real PostgreSQL and a real Kafka on 127.0.0.1 (deploy/local/stack.sh)
	@deploy/local/stack.sh start

stop:
	@deploy/local/stack.sh stop

reset:  ## stop PostgreSQL and Kafka and delete their data: the next make run starts empty
	@deploy/local/stack.sh reset

status:
	@deploy/local/stack.sh status

browser:  ## Debian's chromium for the page tests (installed once)
	@deploy/local/stack.sh browser

prometheus:  ## Debian's prometheus (promtool for the alert rule tests, a server for the scrape test)
	@deploy/local/stack.sh prometheus

topics: setup stack
	@$(WITH_ENV) $(RUN) python -m clr_events.kafka.topics deploy/kafka/topics.toml

run: topics  ## the whole system; DEMO=1 adds the demo history, SCALE=projections=2,... instances
	@$(WITH_ENV) $(RUN) python -m clr_dev run $(if $(DEMO),--demo) $(if $(SCALE),--scale $(SCALE))

token: setup  ## a development bearer token: make token ROLE=assessor [SUB=alice]
	@test -f .local/jwt-secret || { echo "no .local/jwt-secret yet: run make run first"; exit 1; }
	@CLR_JWT_SECRET=$$(cat .local/jwt-secret) $(RUN) python -m clr_events.service.auth \
		--sub $(or $(SUB),developer) --role $(or $(ROLE),registry_admin)

lint: setup
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy
	$(RUN) lint-imports
	$(RUN) python -m clr_events.schemas check

fmt: setup
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

test: lint topics browser prometheus
	$(WITH_ENV) $(RUN) pytest -q

test-unit: setup prometheus
	$(RUN) pytest -q tests/unit tests/contracts

test-integration: topics
	$(WITH_ENV) $(RUN) pytest -q tests/integration

chaos: stack  ## the long chaos run, the broker included (make test runs the short one): their own PostgreSQL and Kafka
	$(RUN) python -m tests.chaos.run --full

bench: topics
	$(WITH_ENV) $(RUN) python -m bench.store_bench
	$(WITH_ENV) $(RUN) python -m bench.read_side_bench
	$(WITH_ENV) $(RUN) python -m bench.service_bench
	$(WITH_ENV) $(RUN) python -m bench.as_of_bench
	$(WITH_ENV) $(RUN) python -m bench.webhook_bench
	$(WITH_ENV) $(RUN) python -m bench.tlog_bench
	$(WITH_ENV) $(RUN) python -m bench.observability_bench

schemas: setup  ## regenerate schemas/ from the contracts in events/
	$(RUN) python -m clr_events.schemas write

LOCALES := services/projections/src/projections/locales
translations: setup  ## the public page's messages: extract them, merge them into each catalogue
	$(RUN) pybabel -q extract -F services/projections/babel.cfg -k N_ --no-location --omit-header \
		--sort-output -o $(LOCALES)/messages.pot services/projections
	$(RUN) pybabel -q update -i $(LOCALES)/messages.pot -d $(LOCALES) \
		--ignore-obsolete -w 100

schemas-check: setup
	$(RUN) python -m clr_events.schemas check

rebuild-projection: topics
	@test -n "$(NAME)" || { echo "usage: make rebuild-projection NAME=labels|experts|organisations"; exit 2; }
	$(WITH_ENV) $(RUN) python -m projections rebuild $(NAME) $(if $(LANES),--lanes $(LANES)) $(if $(PROCESSES),--processes $(PROCESSES))

projections-status: topics
	$(WITH_ENV) $(RUN) python -m projections status

dlq-replay: topics  ## redeliver a consumer group's dead letters to it after a fix (DRY=1 lists them)
	@test -n "$(GROUP)" || { echo "usage: make dlq-replay GROUP=<service>.<consumer> [DRY=1]"; exit 2; }
	$(WITH_ENV) $(RUN) python -m clr_events.consumers.dlq replay --group $(GROUP) $(if $(DRY),--dry-run)

BACKUP_DIR = .local/backups/$(shell date -u +%Y%m%dT%H%M%SZ)

backup: stack  ## pg_dump of every schema (stores, checkpoints, read models) and a manifest
	$(WITH_ENV) $(RUN) python -m clr_events.backup backup $(or $(DIR),$(BACKUP_DIR))

restore: stack  ## restore a backup and verify every chain: make restore DIR=.local/backups/<when> [SCHEMA=assessments]
	@test -n "$(DIR)" || { echo "usage: make restore DIR=.local/backups/<when> [SCHEMA=<schema>]"; exit 2; }
	$(WITH_ENV) $(RUN) python -m clr_events.backup restore $(DIR) $(if $(SCHEMA),--schema $(SCHEMA))

republish: topics  ## the topics were lost: create them, relays from position 1, consumers from the start
	$(WITH_ENV) $(RUN) python -m clr_events.backup republish
	$(WITH_ENV) $(RUN) python -m projections forget-offsets

migrations: stack  ## the migration history of every schema
	$(WITH_ENV) $(RUN) python -m clr_events.migrations
