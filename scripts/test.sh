#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what is missing, builds once, starts Redis,
# PostgreSQL and the Kafka dev broker on free ports in a private folder (never colliding with a
# running demo), runs the contract checks and `swift test`, and stops the infrastructure even
# when tests fail. Every swift test run is watched (scripts/test_watchdog.py); the last line
# counts every test of every run. ODDS_TEST_KEEP_LOGS=1 keeps every child process's log (in
# .test-logs/) for a failure that needs more than the watchdog's tail.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

"$ROOT/scripts/deps.sh"

echo "test: building (debug, with tests)"
swift build --build-tests

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

export INFRA_DIR="$ROOT/.infra-test-$$"
export REDIS_PORT="$(free_port)"
export POSTGRES_PORT="$(free_port)"
export KAFKA_DEV_BROKER="$ROOT/.build/debug/kafka-dev-broker"

export ODDS_TEST_LOG_DIR="$INFRA_DIR/children"
TALLY="$INFRA_DIR/tally"
START_SECONDS=$SECONDS

cleanup() {
    local status=$?
    echo "test: stopping test infrastructure"
    "$ROOT/scripts/infra.sh" down || true
    if [[ -f "$TALLY" ]]; then
        # One closing line for all the runs: tests counted from Swift Testing's own lines.
        read -r passed failed < <(awk '{p += $1; f += $2} END {print p + 0, f + 0}' "$TALLY")
        echo "test: finished in $((SECONDS - START_SECONDS)) s"
        echo "tests: $passed passed, $failed failed"
    fi
    if [[ "${ODDS_TEST_KEEP_LOGS:-}" == 1 && -d "$ODDS_TEST_LOG_DIR" ]]; then
        local kept="$ROOT/.test-logs/$(date +%Y%m%dT%H%M%S)-$$"
        mkdir -p "$ROOT/.test-logs" && mv "$ODDS_TEST_LOG_DIR" "$kept" && echo "test: children's logs kept in $kept"
    fi
    rm -rf "$INFRA_DIR"
    exit $status
}
trap cleanup EXIT INT TERM

"$ROOT/scripts/infra.sh" up
# shellcheck disable=SC1091
source "$INFRA_DIR/env"

export ODDS_TEST_REDIS_ADDR="$REDIS_ADDR"
export ODDS_TEST_POSTGRES_DSN="$POSTGRES_DSN"
export ODDS_TEST_KAFKA_BROKERS="$KAFKA_BROKERS"
export ODDS_TEST_BIN_DIR="$ROOT/.build/debug"
export ODDS_TEST_MIGRATIONS_DIR="$ROOT/migrations"

python3 "$ROOT/scripts/check_contracts.py" | tail -1
python3 "$ROOT/scripts/check_compose.py" | tail -1

# Suites that start real processes (services, brokers, servers) or drive load run one at a
# time, after the rest: on 2 cores, two of them overlapping would make each one's timing
# depend on the other. Everything else (pure logic, short client tests against the shared
# servers) runs in parallel first.
PROCESS_SUITES='^(KafkaTests\.DevBrokerKilledProducerTests|SupplierSimulatorTests\.SupplierProcessTests|OddsIngestTests\.IngestPipelineTests|OddsProcessorTests\.ProcessorIntegrationTests|OddsServiceTests\.(WebSocketTests|RESTTests)|EndToEndTests\.)'

# Each run is watched: no output for TEST_STALL_MINUTES (a test stuck past every bound) stops
# it with the list of running tests and the tail of their children's logs.
run_tests() { # label, swift test arguments...
    local label="$1"; shift
    echo "test: swift test ($label)"
    python3 "$ROOT/scripts/test_watchdog.py" --label "$label" --tally "$TALLY" \
        --stall-minutes "${TEST_STALL_MINUTES:-8}" --total-minutes "${TEST_RUN_MINUTES:-40}" \
        -- swift test --skip-build "$@"
}

status=0
if (($#)); then
    run_tests "selected" "$@" || status=$?
else
    run_tests "parallel suites" --skip "$PROCESS_SUITES" || status=$?
    run_tests "process suites, one at a time" --no-parallel --filter "$PROCESS_SUITES" || status=$?
fi
exit $status
