#!/usr/bin/env bash
# Sustained supplier-simulator -> odds-ingest -> Kafka throughput with a zero-loss check, and
# ingest's RSS and CPU at a calm rate. Release build; starts its own kafka-dev-broker, supplier
# and ingest on free ports; stops exactly those processes on exit.
#
#   scripts/bench-feed.sh                       # 20,000/s for 20 s, then 1,000/s for 20 s
#   RATE=30000 SECONDS_HIGH=30 scripts/bench-feed.sh
#
# Zero loss is checked by counting: stream frames the supplier emitted + the snapshot ingest
# starts with = frames ingest read = frames Kafka acknowledged = growth of the odds_updates end
# offsets (kcat -Q). The dev broker keeps only
# ~5 MiB per partition, so the topic is counted by its offsets, not by reading it back.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RATE="${RATE:-20000}"
SECONDS_HIGH="${SECONDS_HIGH:-20}"
CALM_RATE="${CALM_RATE:-1000}"
SECONDS_CALM="${SECONDS_CALM:-20}"
SCRATCH="${SCRATCH:-.build-feed}"
BIN="$ROOT/$SCRATCH/release"
WORK="$(mktemp -d)"
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    sleep 1
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

command -v kcat >/dev/null || { echo "bench-feed: kcat is needed (apt-get install kcat)" >&2; exit 1; }
echo "bench-feed: release build ($SCRATCH)"
for product in kafka-dev-broker supplier-simulator odds-ingest; do
    swift build --scratch-path "$SCRATCH" -c release --product "$product" >"$WORK/build.log" 2>&1 \
        || { cat "$WORK/build.log" >&2; exit 1; }
done

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
metric() { # metric URL NAME -> value (sum over label sets when NAME ends with '{')
    curl -sf "$1/metrics" | awk -v name="$2" 'index($0, name) == 1 { sum += $NF } END { printf "%d\n", sum }'
}
calc() { awk "BEGIN { printf \"%.3f\", $1 }"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
rss_kib() { awk '/VmRSS/ { print $2 }' "/proc/$1/status"; }
wait_http() { for _ in $(seq 1 150); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done; echo "bench-feed: $1 never answered" >&2; return 1; }
topic_total() {
    local args=()
    for p in $(seq 0 11); do args+=(-t "odds_updates:$p:-1"); done
    kcat -b "$BROKERS" -Q "${args[@]}" | awk '{ sum += $NF } END { print sum }'
}

"$BIN/kafka-dev-broker" --topic odds_updates:12 --topic odds_updates_dlq:1 --topic odds_feed_status:1 --address-file "$WORK/kafka.addr" >"$WORK/broker.log" 2>&1 &
PIDS+=($!); disown $!
for _ in $(seq 1 100); do [ -s "$WORK/kafka.addr" ] && break; sleep 0.1; done
BROKERS="$(cat "$WORK/kafka.addr")"

run_phase() { # run_phase RATE SECONDS LABEL
    local rate="$1" seconds="$2" label="$3"
    local sup_http sup_metrics ing_metrics
    sup_http="$(free_port)"; sup_metrics="$(free_port)"; ing_metrics="$(free_port)"
    local before_topic; before_topic="$(topic_total)"

    LOG_LEVEL=warning HTTP_HOST=127.0.0.1 METRICS_PORT="$ing_metrics" KAFKA_BROKERS="$BROKERS" \
        SUPPLIER_WS_URL="ws://127.0.0.1:$sup_http/ws" "$BIN/odds-ingest" >"$WORK/ingest-$label.log" 2>&1 &
    local ingest=$!; PIDS+=("$ingest"); disown "$ingest"
    wait_http "http://127.0.0.1:$ing_metrics/healthz"
    LOG_LEVEL=info LOG_FORMAT=text HTTP_HOST=127.0.0.1 HTTP_PORT="$sup_http" METRICS_PORT="$sup_metrics" SUPPLIER_RATE="$rate" \
        "$BIN/supplier-simulator" >"$WORK/supplier-$label.log" 2>&1 &
    local supplier=$!; PIDS+=("$supplier"); disown "$supplier"
    wait_http "http://127.0.0.1:$sup_metrics/readyz"

    local ingest_url="http://127.0.0.1:$ing_metrics"
    sleep 3  # warm-up: connect, first batches, caches
    local t0 p0 c0 c0s t1 p1 c1 c1s rss_peak=0 rss
    t0="$(date +%s.%N)"; p0="$(metric "$ingest_url" odds_ingest_published_total)"
    c0="$(cpu_ticks "$ingest")"; c0s="$(cpu_ticks "$supplier")"
    for _ in $(seq 1 "$seconds"); do
        sleep 1
        rss="$(rss_kib "$ingest")"; [ "$rss" -gt "$rss_peak" ] && rss_peak="$rss"
    done
    t1="$(date +%s.%N)"; p1="$(metric "$ingest_url" odds_ingest_published_total)"
    c1="$(cpu_ticks "$ingest")"; c1s="$(cpu_ticks "$supplier")"

    # Graceful supplier stop: it writes what is buffered, then closes; ingest publishes it all.
    kill -TERM "$supplier"
    while kill -0 "$supplier" 2>/dev/null; do sleep 0.1; done
    local emitted received published dlq snapshot
    emitted="$(grep -h 'frames_emitted=' "$WORK/supplier-$label.log" | sed 's/.*frames_emitted=\([0-9]*\).*/\1/' | tail -1)"
    if [ -z "$emitted" ]; then emitted="unknown"; fi
    for _ in $(seq 1 600); do
        received="$(metric "$ingest_url" odds_ingest_received_total)"
        published="$(metric "$ingest_url" odds_ingest_published_total)"
        dlq="$(metric "$ingest_url" 'odds_dlq_total{')"
        [ "$received" -gt 0 ] && [ "$received" -eq "$((published + dlq))" ] && break
        sleep 0.1
    done
    # Ingest starts with a snapshot of every market (odds-feed/2), read besides the stream frames.
    snapshot="$(metric "$ingest_url" odds_ingest_snapshot_frames_total)"
    local topic; topic="$(( $(topic_total) - before_topic ))"
    local ticks; ticks="$(getconf CLK_TCK)"
    local elapsed; elapsed="$(calc "$t1 - $t0")"
    printf '\n== %s: target %s updates/s for %s s (release build, %s cores)\n' "$label" "$rate" "$seconds" "$(nproc)"
    printf '   sustained ingest->Kafka throughput: %.0f updates/s (acknowledged by Kafka)\n' "$(calc "($p1 - $p0) / $elapsed")"
    printf '   ingest CPU: %.0f%% of one core   supplier CPU: %.0f%% of one core\n' \
        "$(calc "100 * ($c1 - $c0) / $ticks / $elapsed")" "$(calc "100 * ($c1s - $c0s) / $ticks / $elapsed")"
    printf '   ingest RSS: %s KiB now, %s KiB peak during the run\n' "$(rss_kib "$ingest")" "$rss_peak"
    printf '   zero-loss check: supplier emitted %s stream frames (+%s snapshot), ingest read %s, Kafka acknowledged %s (+%s DLQ), odds_updates grew by %s\n' \
        "$emitted" "$snapshot" "$received" "$published" "$dlq" "$topic"
    local slow; slow="$(grep -c 'feed client too slow' "$WORK/supplier-$label.log" || true)"
    if [ "$slow" -gt 0 ]; then
        echo "   the supplier disconnected ingest $slow time(s) as too slow (its buffer overflowed): ingest could not keep up with this rate"
    fi
    if [ "$emitted" != unknown ] && [ "$((emitted + snapshot))" -eq "$received" ] && [ "$received" -eq "$((published + dlq))" ] && [ "$topic" -eq "$published" ]; then
        echo "   zero loss: yes"
    else
        echo "   zero loss: NO" ; LOSS=1
    fi
    kill -TERM "$ingest"
    while kill -0 "$ingest" 2>/dev/null; do sleep 0.1; done
}

LOSS=0
run_phase "$RATE" "$SECONDS_HIGH" "high-rate"
run_phase "$CALM_RATE" "$SECONDS_CALM" "calm-rate"
exit "$LOSS"
