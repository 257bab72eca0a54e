#!/usr/bin/env bash
# odds-service speed. Release build; starts its own Redis and PostgreSQL (scripts/infra.sh with a
# private folder and ports) and every server on free ports; stops exactly what it started.
#
# PEERS=1 (the default): side by side with what a user would run instead, same machine, same run
# (scripts/bench-peers/compare.py): for each count in CONNECTIONS_LIST, WebSocket fan-out of
# odds-service and of Nchan (nginx + libnginx-mod-nchan, one channel per event) under the same
# client (scripts/bench-peers/ws_peer_client.swift) and the same publisher
# (scripts/bench-peers/publish_load.py, RATE updates/s for DURATION s); then REST with wrk against
# odds-service and webdis reading the same Redis hash. Installs nginx, the Nchan module, webdis
# and wrk from apt when missing (scripts/deps.sh bench-peers).
#
#   scripts/bench-odds-service.sh                          # 2,000 / 5,000 / 10,000 clients, 2,000 updates/s, 20 s
#   CONNECTIONS_LIST="200" DURATION=10 scripts/bench-odds-service.sh   # a quick look
#   PARTS=rest scripts/bench-odds-service.sh               # REST against webdis only (PARTS=ws: WebSocket only)
#
# PEERS=0: odds-service alone with ws-bench (CONNECTIONS clients on EVENTS events, RATE updates/s
# published to the Redis broadcast channel) and REST current odds (wrk, keep-alive). Chosen
# automatically when CLIENT or STALLED is set.
#
#   PEERS=0 scripts/bench-odds-service.sh                  # 10,000 clients, 2,000 updates/s, 20 s
#   CONNECTIONS=5000 CLIENT=raw scripts/bench-odds-service.sh
#   CONNECTIONS=1000 STALLED=10 scripts/bench-odds-service.sh   # latency of the others while 10 peers stall
#
# STALLED=N adds N subscribers that stop reading right after subscribing (scripts/
# ws_stalled_clients.py): the figures are then those of the healthy clients with stalled peers on
# the same events, and the server's conflation and slow-consumer closes are printed.
# CLIENT=poll (default): ws-bench's epoll clients, polled every millisecond; CLIENT=raw: NIO
# event-loop clients woken per frame (see PollingClients.swift for why poll is the default).
# BUILD=0 uses the release binaries already in .build/release instead of building them.
# Clients, publisher and server share this machine's cores, so the figures are floors.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [[ -n "${CLIENT:-}" || "${STALLED:-0}" != 0 ]]; then PEERS="${PEERS:-0}"; else PEERS="${PEERS:-1}"; fi
if [[ -n "${CONNECTIONS:-}" ]]; then CONNECTIONS_LIST="${CONNECTIONS_LIST:-$CONNECTIONS}"; fi
CONNECTIONS_LIST="${CONNECTIONS_LIST:-2000 5000 10000}"
CONNECTIONS="${CONNECTIONS:-10000}"
EVENTS="${EVENTS:-100}"
RATE="${RATE:-2000}"
DURATION="${DURATION:-20}"
CLIENT="${CLIENT:-poll}"
STALLED="${STALLED:-0}"
REST_SECONDS="${REST_SECONDS:-10}"
BUILD="${BUILD:-1}"
PARTS="${PARTS:-ws rest}"
BIN="$ROOT/.build/release"
WORK="$(mktemp -d)"
export INFRA_DIR="$WORK/infra" REDIS_PORT="${BENCH_REDIS_PORT:-6396}" POSTGRES_PORT="${BENCH_POSTGRES_PORT:-5446}"
export KAFKA_DEV_BROKER="$BIN/kafka-dev-broker" KAFKA_TOPICS="odds_updates:1"
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    # Up to 15 s to exit (the peers bench stops its own servers and clients on TERM).
    for _ in $(seq 1 150); do
        alive=0
        for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    scripts/infra.sh down >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
# CPU of a process between two tick readings over SECONDS, in % of one core.
cpu_percent() { echo $(( ($2 - $1) * 100 / $(getconf CLK_TCK) / $3 )); }

if ((PEERS)); then PRODUCTS=(odds-service migrate kafka-dev-broker); else PRODUCTS=(odds-service ws-bench migrate kafka-dev-broker); fi
if ((BUILD)); then
    echo "bench-odds-service: release build"
    for product in "${PRODUCTS[@]}"; do
        swift build -c release --product "$product" >"$WORK/build.log" 2>&1 || { cat "$WORK/build.log" >&2; exit 1; }
    done
else
    for product in "${PRODUCTS[@]}"; do
        [[ -x "$BIN/$product" ]] || { echo "bench-odds-service: BUILD=0 but $BIN/$product is missing" >&2; exit 1; }
    done
fi
if ((PEERS)); then
    if ! command -v nginx >/dev/null || ! command -v webdis >/dev/null || ! command -v wrk >/dev/null \
        || [[ ! -f /usr/lib/nginx/modules/ngx_nchan_module.so ]]; then
        scripts/deps.sh bench-peers
    fi
    PEER_CLIENT="$(scripts/bench-peers/build-client.sh)"
fi
scripts/infra.sh up >/dev/null
# shellcheck disable=SC1091
source "$INFRA_DIR/env"
"$BIN/migrate" >/dev/null 2>&1 || { echo "bench-odds-service: migrate failed" >&2; exit 1; }

if ((PEERS)); then
    echo "bench-odds-service: odds-service vs Nchan (WebSocket, $CONNECTIONS_LIST connections, $RATE updates/s, $DURATION s)" \
         "and vs webdis (REST)"
    python3 scripts/bench-peers/compare.py --bin "$BIN" --client "$PEER_CLIENT" --work "$WORK/peers" \
        --connections "$CONNECTIONS_LIST" --events "$EVENTS" --rate "$RATE" --duration "$DURATION" \
        --rest-seconds "$REST_SECONDS" $([[ " $PARTS " == *" ws "* ]] || echo --skip-ws) \
        $([[ " $PARTS " == *" rest "* ]] || echo --skip-rest) &
    PIDS+=("$!")
    status=0
    wait "$!" || status=$?
    exit "$status"
fi

HTTP_PORT=$(free_port)
METRICS_PORT=$(free_port)
HTTP_PORT=$HTTP_PORT METRICS_PORT=$METRICS_PORT LOG_LEVEL=warning WS_MAX_CONNECTIONS=$((CONNECTIONS + 1000)) \
    "$BIN/odds-service" >"$WORK/odds-service.log" 2>&1 &
SERVICE=$!
PIDS+=("$SERVICE")
for _ in $(seq 1 100); do curl -sf "localhost:$METRICS_PORT/readyz" >/dev/null && break; sleep 0.1; done
curl -sf "localhost:$METRICS_PORT/readyz" >/dev/null || { cat "$WORK/odds-service.log" >&2; exit 1; }

echo "bench-odds-service: $CONNECTIONS WebSocket clients ($CLIENT) on $EVENTS events, $RATE updates/s for $DURATION s"
"$BIN/ws-bench" --role clients --client "$CLIENT" --url "ws://127.0.0.1:$HTTP_PORT/ws/odds" --connections "$CONNECTIONS" \
    --events "$EVENTS" --rate "$RATE" --duration "$DURATION" --service-pid "$SERVICE" >"$WORK/clients.log" 2>&1 &
CLIENTS=$!
PIDS+=("$CLIENTS")
for _ in $(seq 1 120); do grep -q 'subscribed' "$WORK/clients.log" && break; sleep 1; done
grep 'subscribed' "$WORK/clients.log" || { cat "$WORK/clients.log" >&2; exit 1; }
if ((STALLED > 0)); then
    python3 scripts/ws_stalled_clients.py --port "$HTTP_PORT" --count "$STALLED" --events "$EVENTS" \
        --seconds $((DURATION + 30)) >"$WORK/stalled.log" 2>&1 &
    PIDS+=("$!")
    for _ in $(seq 1 60); do grep -q 'subscribed' "$WORK/stalled.log" && break; sleep 0.5; done
    grep 'subscribed' "$WORK/stalled.log" || { cat "$WORK/stalled.log" >&2; exit 1; }
fi
service_before=$(cpu_ticks "$SERVICE")
clients_before=$(cpu_ticks "$CLIENTS")
# The publisher is its own process so that the clients cannot starve it.
"$BIN/ws-bench" --role publisher --events "$EVENTS" --rate "$RATE" --duration "$DURATION" >"$WORK/publisher.log" 2>&1
echo "CPU while publishing: odds-service $(cpu_percent "$service_before" "$(cpu_ticks "$SERVICE")" "$DURATION") % of one core," \
     "clients $(cpu_percent "$clients_before" "$(cpu_ticks "$CLIENTS")" "$DURATION") %"
wait "$CLIENTS" || true
sed -n '/ws-bench results/,$p' "$WORK/clients.log"
if ((STALLED > 0)); then
    metrics=$(curl -sf "localhost:$METRICS_PORT/metrics")
    echo "stalled peers: $STALLED; server conflated $(awk '/^odds_ws_conflated_total /{print $2}' <<<"$metrics") updates," \
         "closed $(awk '/^odds_ws_slow_closes_total /{print $2}' <<<"$metrics") slow consumers"
fi

if command -v wrk >/dev/null; then
    echo "REST GET /v1/events/BENCH_1/odds, keep-alive, $REST_SECONDS s per run:"
    wrk -t1 -c64 -d3s "http://127.0.0.1:$HTTP_PORT/v1/events/BENCH_1/odds" >/dev/null  # warm-up
    for connections in 32 64; do
        wrk -t1 -c"$connections" -d"${REST_SECONDS}s" --latency "http://127.0.0.1:$HTTP_PORT/v1/events/BENCH_1/odds" \
            | awk -v c="$connections" '/^ +50%/{p50=$2} /^ +99%/{p99=$2} /Requests\/sec/{rps=$2} /Non-2xx/{bad=$NF}
                  END {printf "  %d connections: %s req/s, p50 %s, p99 %s%s\n", c, rps, p50, p99, (bad ? ", non-2xx " bad : "")}'
    done
else
    echo "REST: wrk not installed (apt-get install wrk); skipped"
fi
