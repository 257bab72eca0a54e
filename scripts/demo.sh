#!/usr/bin/env bash
# make demo: install what is missing, build, start Redis/PostgreSQL/the Kafka dev broker and the
# four services, wait until each is ready, then show odds changing live in the terminal
# (odds-watch) and on http://127.0.0.1:8080/. Ctrl-C stops everything this script started
# (infrastructure it found already running is left running).
#
#   DEMO_SECONDS   run the watcher this long, then stop (default: until Ctrl-C)
#   DEMO_RATE      supplier updates per second (default 50)
#   DEMO_EVENTS    generated events (default 6)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export INFRA_DIR="${INFRA_DIR:-$ROOT/.infra}"
DEMO_DIR="$ROOT/.demo"
LOGS="$DEMO_DIR/logs"
BIN="$ROOT/.build/debug"
RATE="${DEMO_RATE:-50}"
EVENTS="${DEMO_EVENTS:-6}"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
say() { printf 'demo: %s\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# name → "public-port metrics-port" (0: none)
declare -A PORTS=([supplier-simulator]="8081 9094" [odds-ingest]="0 9096" [odds-processor]="0 9097" [odds-service]="8080 9095")
ORDER=(supplier-simulator odds-ingest odds-processor odds-service)
STARTED_INFRA=0
PIDS=()

cleanup() {
    local status=$?
    trap - EXIT INT TERM HUP
    trap '' PIPE  # the terminal or pipe may be gone; stopping must still finish
    set +e
    if ((${#PIDS[@]})); then
        step "stopping the services"
        for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill -TERM "${PIDS[$i]}" 2>/dev/null || true; done
        for pid in "${PIDS[@]}"; do
            for ((t = 0; t < 100; t++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
        done
        say "services stopped (logs kept in $LOGS)"
    fi
    if ((STARTED_INFRA)); then
        step "stopping the local infrastructure"
        # Captured, then printed: a closed terminal/pipe must not cut the shutdown short.
        local stopped
        stopped="$(scripts/infra.sh down 2>&1)"
        printf '%s\n' "$stopped"
    else
        say "infrastructure was already running before the demo; left running (make infra-down stops it)"
    fi
    exit "$status"
}

step "1/5 dependencies (apt and PyPI packages, installed only when missing)"
scripts/deps.sh

step "2/5 building (debug; the first build of the dependency set takes several minutes)"
swift build 2>&1 | grep -v --line-buffered 'swift-distributed-tracing' \
    | grep -E --line-buffered '^\[[0-9]+/[0-9]+\] (Compiling|Linking)|error|warning: |Build ' \
    | awk '/^\[/ { if (++n % 40 != 0 && $0 !~ /Linking/) next } { print; fflush() }'
test "${PIPESTATUS[0]}" -eq 0 || die "build failed (run swift build to see every message)"
for product in kafka-dev-broker migrate "${ORDER[@]}" odds-watch; do
    [[ -x "$BIN/$product" ]] || die "missing $BIN/$product after the build"
done

for name in "${ORDER[@]}"; do
    for port in ${PORTS[$name]}; do
        if [[ $port != 0 ]] && port_in_use "$port"; then
            die "port $port (for $name) is in use: stop what holds it (e.g. a previous demo: pkill -f .build/debug/$name) and retry"
        fi
    done
done

trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'exit 129' HUP
trap 'exit 141' PIPE

step "3/5 local infrastructure (Redis, PostgreSQL, Kafka dev broker) and migrations"
if scripts/infra.sh status >/dev/null 2>&1; then
    say "already running:"
    scripts/infra.sh status
else
    STARTED_INFRA=1
    KAFKA_DEV_BROKER="$BIN/kafka-dev-broker" scripts/infra.sh up
fi
# shellcheck disable=SC1091
source "$INFRA_DIR/env"
LOG_FORMAT=text "$BIN/migrate" --dir migrations

step "4/5 starting the four services (logs in $LOGS)"
mkdir -p "$LOGS"
start() { # name env...
    local name=$1; shift
    env LOG_FORMAT=text "$@" "$BIN/$name" >"$LOGS/$name.log" 2>&1 </dev/null &
    PIDS+=($!)
    say "$name started (pid $!)"
}
start supplier-simulator SUPPLIER_RATE="$RATE" SUPPLIER_EVENTS="$EVENTS"
start odds-ingest SUPPLIER_WS_URL=ws://127.0.0.1:8081/ws KAFKA_BROKERS="$KAFKA_BROKERS"
start odds-processor KAFKA_BROKERS="$KAFKA_BROKERS" REDIS_ADDR="$REDIS_ADDR" POSTGRES_DSN="$POSTGRES_DSN"
start odds-service REDIS_ADDR="$REDIS_ADDR" POSTGRES_DSN="$POSTGRES_DSN"

for i in "${!ORDER[@]}"; do
    name=${ORDER[$i]}
    metrics=${PORTS[$name]#* }
    printf 'demo: waiting for %s to be ready (http://127.0.0.1:%s/readyz) ' "$name" "$metrics"
    for ((t = 0; t < 600; t++)); do
        if ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
            echo; tail -20 "$LOGS/$name.log" >&2
            die "$name exited during start-up (log above, full log in $LOGS/$name.log)"
        fi
        if curl -fsS "http://127.0.0.1:$metrics/readyz" >/dev/null 2>&1; then echo "ready"; continue 2; fi
        ((t % 10 == 0)) && printf '.'
        sleep 0.1
    done
    echo; curl -sS "http://127.0.0.1:$metrics/readyz" >&2 || true
    die "$name not ready after 60 s (log: $LOGS/$name.log)"
done

step "5/5 live odds"
cat <<TEXT
  page:      http://127.0.0.1:8080/           (live table in a browser)
  REST:      curl -s http://127.0.0.1:8080/v1/events
             curl -s http://127.0.0.1:8080/v1/events/<event_id>/odds
  WebSocket: ws://127.0.0.1:8080/ws/odds      {"type":"subscribe","eventId":"<event_id>"}
  metrics:   supplier :9094  odds-service :9095  ingest :9096  processor :9097  (/metrics, /readyz)
  logs:      $LOGS/
  Ctrl-C stops everything the demo started.
TEXT
sleep 1
if [[ -n "${DEMO_SECONDS:-}" ]]; then
    "$BIN/odds-watch" --url http://127.0.0.1:8080 --seconds "$DEMO_SECONDS" --lines
else
    "$BIN/odds-watch" --url http://127.0.0.1:8080 || true
fi
