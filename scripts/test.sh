#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what is missing, builds once, starts Redis,
# PostgreSQL and the Kafka dev broker on free ports in a private folder (never colliding with a
# running demo), runs the contract checks and `swift test`, and stops the infrastructure even
# when tests fail.
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

cleanup() {
    local status=$?
    echo "test: stopping test infrastructure"
    "$ROOT/scripts/infra.sh" down || true
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

echo "test: swift test"
swift test --skip-build "$@"
