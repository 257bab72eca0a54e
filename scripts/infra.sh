#!/usr/bin/env bash
# Local infrastructure without Docker: Redis, PostgreSQL and the Kafka dev broker on loopback,
# with data and pid files under $INFRA_DIR. `up` is idempotent; `down` stops exactly what `up`
# started (by pid file).
#
#   INFRA_DIR       state folder (default .infra)
#   REDIS_PORT      default 6380 (not 6379, so a system Redis does not collide)
#   POSTGRES_PORT   default 5433 (not 5432, for the same reason)
#   KAFKA_DEV_BROKER  path to the kafka-dev-broker executable (default .build/debug/kafka-dev-broker)
#   KAFKA_TOPICS    topics to pre-create, "name:partitions ..." (default odds_updates:12 odds_updates_dlq:1 odds_feed_status:1)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
INFRA_DIR="${INFRA_DIR:-$ROOT/.infra}"
mkdir -p "$INFRA_DIR"
INFRA_DIR="$(cd "$INFRA_DIR" && pwd)"
REDIS_PORT="${REDIS_PORT:-6380}"
POSTGRES_PORT="${POSTGRES_PORT:-5433}"
POSTGRES_USER_NAME="${POSTGRES_USER_NAME:-odds}"
POSTGRES_PASSWORD="${POSTGRES_PASSWORD:-odds}"
POSTGRES_DB="${POSTGRES_DB:-odds}"
KAFKA_DEV_BROKER="${KAFKA_DEV_BROKER:-$ROOT/.build/debug/kafka-dev-broker}"
KAFKA_TOPICS="${KAFKA_TOPICS:-odds_updates:12 odds_updates_dlq:1 odds_feed_status:1}"

PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
PG_DATA="$INFRA_DIR/postgres/data"
PG_RUN="$INFRA_DIR/postgres/run"
REDIS_DIR="$INFRA_DIR/redis"
KAFKA_ADDR_FILE="$INFRA_DIR/kafka.addr"
KAFKA_PID_FILE="$INFRA_DIR/kafka.pid"

die() { echo "infra: $*" >&2; exit 1; }

check_port_value() { # name value
    [[ "$2" =~ ^[0-9]+$ ]] && (("$2" >= 1 && "$2" <= 65535)) || die "$1=$2 is not a valid port (1-65535)"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pid_alive() { [[ -f "$1" ]] && kill -0 "$(head -1 "$1")" 2>/dev/null; }

# PostgreSQL refuses to run as root: as root, its commands run as the `postgres` user.
as_pg() {
    if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

wait_for() { # description seconds command...
    local what="$1" seconds="$2"; shift 2
    for ((i = 0; i < seconds * 10; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    die "$what did not become ready in ${seconds}s"
}

redis_up() {
    if pid_alive "$REDIS_DIR/redis.pid"; then echo "redis: already running on 127.0.0.1:$REDIS_PORT"; return; fi
    port_in_use "$REDIS_PORT" && die "port $REDIS_PORT for Redis is already in use by another process; set REDIS_PORT to a free port"
    mkdir -p "$REDIS_DIR"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --daemonize yes --dir "$REDIS_DIR" \
        --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log" \
        --save "" --appendonly yes >/dev/null || die "redis-server failed to start; see $REDIS_DIR/redis.log"
    wait_for "Redis on port $REDIS_PORT" 10 redis-cli -p "$REDIS_PORT" ping
    echo "redis: ready at 127.0.0.1:$REDIS_PORT            (redis-cli -p $REDIS_PORT ping)"
}

postgres_up() {
    [[ -n "$PG_BIN" ]] || die "PostgreSQL server binaries not found; run make deps"
    if pid_alive "$PG_DATA/postmaster.pid"; then echo "postgres: already running on 127.0.0.1:$POSTGRES_PORT"; return; fi
    port_in_use "$POSTGRES_PORT" && die "port $POSTGRES_PORT for PostgreSQL is already in use by another process; set POSTGRES_PORT to a free port"
    mkdir -p "$PG_DATA" "$PG_RUN"
    if [[ $(id -u) -eq 0 ]]; then
        chown -R postgres:postgres "$INFRA_DIR/postgres"
        # The postgres user must be able to reach the data folder.
        local dir="$INFRA_DIR"
        while [[ "$dir" != "/" ]]; do chmod o+x "$dir" 2>/dev/null || true; dir="$(dirname "$dir")"; done
    fi
    chmod 700 "$PG_DATA"
    if [[ ! -f "$PG_DATA/PG_VERSION" ]]; then
        as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
            -E UTF8 --locale=C.UTF-8 >"$INFRA_DIR/postgres/initdb.log" 2>&1 \
            || die "initdb failed; see $INFRA_DIR/postgres/initdb.log"
    fi
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$INFRA_DIR/postgres/postgres.log" -w -t 30 \
        -o "-p $POSTGRES_PORT -k $PG_RUN -c listen_addresses=127.0.0.1" start >/dev/null \
        || die "PostgreSQL failed to start; see $INFRA_DIR/postgres/postgres.log"
    local psql=(as_pg psql -h "$PG_RUN" -p "$POSTGRES_PORT" -U postgres -v ON_ERROR_STOP=1 -qtA)
    if [[ "$("${psql[@]}" -d postgres -c "SELECT 1 FROM pg_roles WHERE rolname = '$POSTGRES_USER_NAME'")" != "1" ]]; then
        "${psql[@]}" -d postgres -c "CREATE ROLE \"$POSTGRES_USER_NAME\" LOGIN CREATEDB PASSWORD '$POSTGRES_PASSWORD'" >/dev/null
    fi
    if [[ "$("${psql[@]}" -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$POSTGRES_DB'")" != "1" ]]; then
        "${psql[@]}" -d postgres -c "CREATE DATABASE \"$POSTGRES_DB\" OWNER \"$POSTGRES_USER_NAME\"" >/dev/null
    fi
    wait_for "PostgreSQL on port $POSTGRES_PORT" 30 env PGPASSWORD="$POSTGRES_PASSWORD" \
        psql -h 127.0.0.1 -p "$POSTGRES_PORT" -U "$POSTGRES_USER_NAME" -d "$POSTGRES_DB" -qtAc "SELECT 1"
    echo "postgres: ready at $(postgres_dsn_masked)   (psql $(postgres_dsn_masked))"
}

postgres_dsn() { echo "postgres://$POSTGRES_USER_NAME:$POSTGRES_PASSWORD@127.0.0.1:$POSTGRES_PORT/$POSTGRES_DB"; }
postgres_dsn_masked() { echo "postgres://$POSTGRES_USER_NAME:***@127.0.0.1:$POSTGRES_PORT/$POSTGRES_DB"; }

kafka_up() {
    if pid_alive "$KAFKA_PID_FILE" && [[ -s "$KAFKA_ADDR_FILE" ]]; then
        echo "kafka: already running at $(cat "$KAFKA_ADDR_FILE")"; return
    fi
    [[ -x "$KAFKA_DEV_BROKER" ]] || die "kafka-dev-broker not built at $KAFKA_DEV_BROKER; run make build"
    rm -f "$KAFKA_ADDR_FILE"
    # KAFKA_DEV_BROKER_ARGS: e.g. --no-long-poll (the bare mock, for comparisons).
    local args=(--address-file "$KAFKA_ADDR_FILE" ${KAFKA_DEV_BROKER_ARGS:-})
    for topic in $KAFKA_TOPICS; do args+=(--topic "$topic"); done
    nohup "$KAFKA_DEV_BROKER" "${args[@]}" >"$INFRA_DIR/kafka.log" 2>&1 </dev/null &
    echo $! >"$KAFKA_PID_FILE"
    wait_for "kafka-dev-broker" 15 test -s "$KAFKA_ADDR_FILE"
    echo "kafka: ready at $(cat "$KAFKA_ADDR_FILE")   (kcat -b $(cat "$KAFKA_ADDR_FILE") -L)  [librdkafka mock cluster behind a long-poll front, in memory${KAFKA_DEV_BROKER_ARGS:+; $KAFKA_DEV_BROKER_ARGS}]"
}

stop_pid_file() { # name pidfile
    if pid_alive "$2"; then
        local pid; pid="$(head -1 "$2")"
        kill "$pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
        echo "$1: stopped (pid $pid)"
    else
        echo "$1: not running"
    fi
    rm -f "$2"
}

up() {
    check_port_value REDIS_PORT "$REDIS_PORT"
    check_port_value POSTGRES_PORT "$POSTGRES_PORT"
    command -v redis-server >/dev/null || die "redis-server not installed; run make deps"
    redis_up
    postgres_up
    kafka_up
    write_env
}

# A sourceable file with the addresses, for make targets, tests and people.
write_env() {
    cat >"$INFRA_DIR/env" <<ENV
export REDIS_ADDR=127.0.0.1:$REDIS_PORT
export POSTGRES_DSN=$(postgres_dsn)
export KAFKA_BROKERS=$(cat "$KAFKA_ADDR_FILE")
# Extra librdkafka consumer properties for odds-processor (none needed: the dev broker answers
# a waiting fetch as soon as data arrives, as Kafka does).
export KAFKA_CONSUMER_PROPERTIES="\${KAFKA_CONSUMER_PROPERTIES:-}"
ENV
}

down() {
    stop_pid_file kafka "$KAFKA_PID_FILE"
    rm -f "$KAFKA_ADDR_FILE"
    if pid_alive "$PG_DATA/postmaster.pid"; then
        as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 30 stop >/dev/null && echo "postgres: stopped"
    else
        echo "postgres: not running"
    fi
    if pid_alive "$REDIS_DIR/redis.pid"; then
        stop_pid_file redis "$REDIS_DIR/redis.pid"
    else
        echo "redis: not running"
    fi
    rm -f "$INFRA_DIR/env"
}

status() {
    local healthy=0
    if pid_alive "$REDIS_DIR/redis.pid" && redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
        echo "redis:    up   127.0.0.1:$REDIS_PORT"
    else echo "redis:    down"; healthy=1; fi
    if pid_alive "$PG_DATA/postmaster.pid" && PGPASSWORD="$POSTGRES_PASSWORD" psql -h 127.0.0.1 -p "$POSTGRES_PORT" \
        -U "$POSTGRES_USER_NAME" -d "$POSTGRES_DB" -qtAc "SELECT 1" >/dev/null 2>&1; then
        echo "postgres: up   $(postgres_dsn_masked)"
    else echo "postgres: down"; healthy=1; fi
    if pid_alive "$KAFKA_PID_FILE" && [[ -s "$KAFKA_ADDR_FILE" ]]; then
        echo "kafka:    up   $(cat "$KAFKA_ADDR_FILE") (dev broker, pid $(cat "$KAFKA_PID_FILE"))"
    else echo "kafka:    down"; healthy=1; fi
    return $healthy
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    env) cat "$INFRA_DIR/env" ;;
    *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
