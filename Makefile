# Odds pipeline — every entry point a person or CI uses.
SHELL := /bin/bash
.DEFAULT_GOAL := help

INFRA_DIR ?= $(CURDIR)/.infra
export INFRA_DIR
# Addresses of the running local infrastructure (written by `make infra-up`).
INFRA_ENV = if [ -f "$(INFRA_DIR)/env" ]; then source "$(INFRA_DIR)/env"; fi

.PHONY: help demo test deps build release infra-up infra-down infra-status migrate migrate-status \
        supplier ingest processor odds watch bench bench-fetch-wait bench-clients bench-feed bench-odds-service bench-processor bench-suspension check-contracts clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

demo: ## Main job: install, build, start infrastructure + the four services, show odds live (Ctrl-C stops all)
	@scripts/demo.sh

test: ## Run every test (installs what is missing, starts and stops its own infrastructure)
	@scripts/test.sh

deps: ## Install missing apt/PyPI packages (no-op when all are present)
	@scripts/deps.sh

build: ## Debug build of every executable
	swift build

release: ## Release build of every executable
	swift build -c release

infra-up: ## Start Redis, PostgreSQL and the Kafka dev broker on loopback (idempotent)
	@test -x .build/debug/kafka-dev-broker || swift build --product kafka-dev-broker
	@scripts/infra.sh up

infra-down: ## Stop exactly what infra-up started
	@scripts/infra.sh down

infra-status: ## Show what is running and where
	@scripts/infra.sh status

migrate: ## Apply pending PostgreSQL migrations to the local database
	@test -x .build/debug/migrate || swift build --product migrate
	@$(INFRA_ENV); .build/debug/migrate --dir migrations

migrate-status: ## Show applied and pending migrations
	@$(INFRA_ENV); .build/debug/migrate --dir migrations --status

supplier: ## Run the supplier simulator with local defaults (ws://127.0.0.1:8081/ws, metrics :9094)
	@test -x .build/debug/supplier-simulator || swift build --product supplier-simulator
	LOG_FORMAT=$${LOG_FORMAT:-text} .build/debug/supplier-simulator

ingest: ## Run odds-ingest against the local supplier and the dev broker (metrics :9096)
	@test -x .build/debug/odds-ingest || swift build --product odds-ingest
	@$(INFRA_ENV); LOG_FORMAT=$${LOG_FORMAT:-text} .build/debug/odds-ingest

processor: ## Run odds-processor against the local infrastructure (metrics/health on :9097)
	@test -x .build/debug/odds-processor || swift build --product odds-processor
	@$(INFRA_ENV); LOG_FORMAT=$${LOG_FORMAT:-text} .build/debug/odds-processor

odds: ## Run odds-service (REST + WebSocket on :8080, health/metrics on :9095) against the local infrastructure
	@test -x .build/debug/odds-service || swift build --product odds-service
	@$(INFRA_ENV); LOG_FORMAT=$${LOG_FORMAT:-text} .build/debug/odds-service

watch: ## Live odds table in the terminal from a running odds-service (odds-watch)
	@test -x .build/debug/odds-watch || swift build --product odds-watch
	.build/debug/odds-watch $(WATCH_ARGS)

bench: ## End-to-end benchmark: throughput with zero loss, latency at 100/1k/10k per s, CPU/RSS (release; own infrastructure)
	scripts/bench_e2e.py $(BENCH_ARGS)

bench-fetch-wait: ## fetch.wait.max.ms against idle/1,000/s CPU and latency: bare mock (1, 5, 10, 50 ms), then with the long-poll front (50, 500 ms)
	scripts/bench_e2e.py --no-long-poll --fetch-wait-sweep $${MOCK_FETCH_WAITS:-1,5,10,50} $(BENCH_ARGS)
	scripts/bench_e2e.py --skip-build --fetch-wait-sweep $${FRONT_FETCH_WAITS:-50,500} $(BENCH_ARGS)

bench-feed: ## Supplier -> ingest -> Kafka throughput with zero-loss check (release; own broker)
	scripts/bench-feed.sh

bench-odds-service: ## odds-service beside Nchan (2,000/5,000/10,000 WebSocket clients at 2,000 updates/s) and webdis (REST with wrk) (release; own infrastructure)
	scripts/bench-odds-service.sh

bench-suspension: ## Time from a silent supplier (SIGSTOP) to the suspension at 1,000 subscribers, and back (release; own infrastructure)
	python3 scripts/bench_suspension.py

bench-processor: ## Processor throughput on a pre-filled topic (release; own infrastructure)
	scripts/bench_processor.py

bench-clients: ## Kafka and Redis client throughput (release build; starts its own servers)
	swift build -c release --product kafka-bench
	swift build -c release --product redis-bench
	.build/release/kafka-bench
	.build/release/redis-bench

check-contracts: ## JSON Schema vs examples, AsyncAPI/OpenAPI parse, compose file check
	python3 scripts/check_contracts.py
	python3 scripts/check_compose.py

clean: ## Remove build output and local infrastructure state (stops it first)
	-@scripts/infra.sh down
	rm -rf .build .infra .infra-test-*
