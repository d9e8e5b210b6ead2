#!/usr/bin/env bash
# Local infrastructure for Utilis: PostgreSQL 15, Redis 7 and a single-node KRaft Apache Kafka 4.1 broker,
# run as plain background processes whose data, logs and pid files live under .local/ (git-ignored).
#
# Usage: scripts/infra.sh install|start|stop|status|reset|createdb NAME...
#   install   install what is missing (apt: postgresql, redis-server, java, maven, prometheus for promtool;
#             Maven: Kafka jars)
#   start     start what is not running (idempotent; waits until each component answers)
#   stop      stop what start started (by pid files); data is kept
#   status    one line per component
#   reset     stop, then delete the data of PostgreSQL, Redis and Kafka (the Kafka jars are kept)
#   createdb  create the named databases if missing (PostgreSQL must be running)
#
# Environment (defaults avoid a system PostgreSQL/Redis/Kafka on the usual ports):
#   UTILIS_LOCAL_DIR              <repo>/.local
#   UTILIS_PG_PORT                55432
#   UTILIS_REDIS_PORT             56379
#   UTILIS_KAFKA_PORT             59092
#   UTILIS_KAFKA_CONTROLLER_PORT  59093
#   UTILIS_PG_FAST=1              fsync/synchronous_commit/full_page_writes off (tests only: unsafe on crash)
#   UTILIS_PYTHON                 Python with aiokafka for the Kafka readiness check (default <repo>/.venv/bin/python;
#                                 without one the check uses Kafka's own TopicCommand)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL_DIR="${UTILIS_LOCAL_DIR:-$REPO_ROOT/.local}"
mkdir -p "$LOCAL_DIR"
LOCAL_DIR="$(cd "$LOCAL_DIR" && pwd)"

PG_PORT="${UTILIS_PG_PORT:-55432}"
REDIS_PORT="${UTILIS_REDIS_PORT:-56379}"
KAFKA_PORT="${UTILIS_KAFKA_PORT:-59092}"
KAFKA_CONTROLLER_PORT="${UTILIS_KAFKA_CONTROLLER_PORT:-59093}"

PG_BIN="/usr/lib/postgresql/15/bin"
PG_DIR="$LOCAL_DIR/pg"
PG_DATA="$PG_DIR/data"
PG_LOG_DIR="$PG_DIR/log"
PG_SOCK_DIR="$PG_DIR/run"

REDIS_DIR="$LOCAL_DIR/redis"
REDIS_PID="$REDIS_DIR/redis.pid"

KAFKA_SRC="$REPO_ROOT/scripts/kafka"
KAFKA_DIR="$LOCAL_DIR/kafka"
KAFKA_LIBS="$KAFKA_DIR/libs"
KAFKA_MARKER="$KAFKA_LIBS/.installed"
KAFKA_DATA="$KAFKA_DIR/data"
KAFKA_LOGS="$KAFKA_DIR/logs"
KAFKA_PROPS="$KAFKA_DIR/server.properties"
KAFKA_PID="$KAFKA_DIR/kafka.pid"
KAFKA_READY_TIMEOUT=90

log() { printf '[infra] %s\n' "$*" >&2; }
die() { printf '[infra] ERROR: %s\n' "$*" >&2; exit 1; }

# True if something accepts TCP connections on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pid_alive PIDFILE PATTERN: the pid file names a live process whose command line contains PATTERN
# (guards against a recycled pid). Prints the pid.
pid_alive() {
    local pidfile="$1" pattern="$2" pid
    [[ -s "$pidfile" ]] || return 1
    pid="$(head -n1 "$pidfile" | tr -dc '0-9')"
    [[ -n "$pid" ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$pattern" || return 1
    printf '%s\n' "$pid"
}

# stop_pid NAME PIDFILE PATTERN: SIGTERM, wait up to 30 s, then SIGKILL. Removes the pid file.
stop_pid() {
    local name="$1" pidfile="$2" pattern="$3" pid i
    if ! pid="$(pid_alive "$pidfile" "$pattern")"; then
        [[ -e "$pidfile" ]] && { log "$name: removing stale pid file"; rm -f "$pidfile"; }
        log "$name: not running"
        return 0
    fi
    log "$name: stopping pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name: still alive after 30 s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.5
    fi
    rm -f "$pidfile"
}

# Run a command as the postgres user when we are root (PostgreSQL refuses to run as root).
as_pg() {
    if [[ $EUID -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# ---------------------------------------------------------------------------------------------- install

# The Debian package `prometheus` is installed for promtool only: its server must not run here (nothing
# needs it, and it would take port 9090 and a share of the 2 cores). Stop and disable it if apt started it.
prometheus_server_off() {
    if command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
        systemctl disable --now prometheus >/dev/null 2>&1 || true
    elif [[ -x /etc/init.d/prometheus ]]; then
        /etc/init.d/prometheus stop >/dev/null 2>&1 || true
        command -v update-rc.d >/dev/null && update-rc.d prometheus disable >/dev/null 2>&1 || true
    fi
    log "prometheus: installed for promtool; its server is stopped and disabled"
}

cmd_install() {
    local pkgs=()
    [[ -x "$PG_BIN/postgres" && -x "$PG_BIN/initdb" ]] || pkgs+=(postgresql)
    command -v redis-server >/dev/null && command -v redis-cli >/dev/null || pkgs+=(redis-server)
    command -v java >/dev/null || pkgs+=(openjdk-17-jre-headless)
    command -v mvn >/dev/null || pkgs+=(maven)
    # promtool (make check-observability: `promtool check rules` / `test rules`) comes with the server.
    command -v promtool >/dev/null || pkgs+=(prometheus)
    if ((${#pkgs[@]})); then
        [[ $EUID -eq 0 ]] || die "need root to apt-get install ${pkgs[*]}"
        log "apt-get install ${pkgs[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
        if [[ " ${pkgs[*]} " == *" prometheus "* ]]; then prometheus_server_off; fi
    else
        log "apt packages: nothing to install"
    fi

    # The marker records the pom's checksum: editing the pom triggers a fresh copy.
    local want
    want="$(sha256sum "$KAFKA_SRC/pom.xml" | cut -d' ' -f1)"
    if [[ -f "$KAFKA_MARKER" && "$(cat "$KAFKA_MARKER")" == "$want" ]]; then
        log "kafka jars: already in $KAFKA_LIBS"
    else
        log "kafka jars: mvn dependency:copy-dependencies -> $KAFKA_LIBS"
        rm -rf "$KAFKA_LIBS"
        mkdir -p "$KAFKA_LIBS"
        mvn -B -q -Dstyle.color=never -f "$KAFKA_SRC/pom.xml" dependency:copy-dependencies -DoutputDirectory="$KAFKA_LIBS"
        ls "$KAFKA_LIBS"/kafka_2.13-*.jar >/dev/null 2>&1 || die "maven did not deliver the kafka jars"
        printf '%s\n' "$want" >"$KAFKA_MARKER"
    fi
}

# ------------------------------------------------------------------------------------------- postgres

# The postgres user must be able to traverse every directory above .local/pg. A repo under a
# root-only directory (e.g. /root, or a 0700 /work) would block it: add o+x (search, not read) on those
# directories only, and say so.
pg_fix_traversal() {
    [[ $EUID -eq 0 ]] || return 0
    local d="$PG_DIR" dirs=()
    while [[ "$d" != "/" ]]; do
        d="$(dirname "$d")"
        dirs=("$d" "${dirs[@]}")
    done
    for d in "${dirs[@]}"; do
        if ! runuser -u postgres -- test -x "$d"; then
            log "postgres: chmod o+x $d (the postgres user must traverse it to reach $PG_DIR)"
            chmod o+x "$d"
        fi
    done
}

pg_running() { as_pg "$PG_BIN/pg_ctl" status -D "$PG_DATA" >/dev/null 2>&1; }
pg_pid() { head -n1 "$PG_DATA/postmaster.pid" 2>/dev/null || true; }

pg_start() {
    [[ -x "$PG_BIN/pg_ctl" ]] || die "PostgreSQL 15 not installed: run scripts/infra.sh install"
    if [[ -d "$PG_DATA" ]] && pg_running; then
        if "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; then
            log "postgres: already running (pid $(pg_pid), port $PG_PORT)"
            return 0
        fi
        die "postgres: running from $PG_DATA (pid $(pg_pid)) but not answering on port $PG_PORT (started with another UTILIS_PG_PORT?)"
    fi
    port_open "$PG_PORT" && die "postgres: port $PG_PORT is taken by another process (set UTILIS_PG_PORT)"

    mkdir -p "$PG_DIR"
    pg_fix_traversal
    if [[ $EUID -eq 0 ]]; then
        install -d -o postgres -g postgres -m 700 "$PG_DATA" "$PG_LOG_DIR"
        install -d -o postgres -g postgres -m 755 "$PG_SOCK_DIR"
    else
        install -d -m 700 "$PG_DATA" "$PG_LOG_DIR"
        install -d -m 755 "$PG_SOCK_DIR"
    fi
    if [[ ! -f "$PG_DATA/PG_VERSION" ]]; then
        log "postgres: initdb $PG_DATA"
        as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U app --auth=trust -E UTF8 --locale=C.UTF-8 >"$PG_LOG_DIR/initdb.log" 2>&1 ||
            { cat "$PG_LOG_DIR/initdb.log" >&2; die "postgres: initdb failed"; }
    fi

    # A Unix socket path is limited to 107 bytes; fall back to /tmp for a deeply nested checkout.
    local sock_dir="$PG_SOCK_DIR"
    if ((${#sock_dir} > 90)); then
        sock_dir="/tmp/utilis-pg-$PG_PORT"
        install -d -m 1777 "$sock_dir"
    fi
    local opts="-p $PG_PORT -c listen_addresses=127.0.0.1 -k '$sock_dir'"
    # Sized for a 2-core box running the services, Redis, Kafka and Locust beside it.
    opts+=" -c max_connections=300 -c shared_buffers=128MB -c work_mem=4MB -c max_wal_size=1GB"
    if [[ "${UTILIS_PG_FAST:-0}" == "1" ]]; then
        opts+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    fi
    log "postgres: starting on 127.0.0.1:$PG_PORT"
    if ! as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG_DIR/postgres.log" -w -t 60 -o "$opts" start >/dev/null; then
        tail -n 30 "$PG_LOG_DIR/postgres.log" >&2 || true
        die "postgres: did not start"
    fi
}

pg_stop() {
    if [[ -d "$PG_DATA" ]] && pg_running; then
        log "postgres: stopping pid $(pg_pid)"
        as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null
    else
        log "postgres: not running"
    fi
}

pg_status() {
    if [[ -d "$PG_DATA" ]] && pg_running; then
        if "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; then
            echo "postgres  running  pid=$(pg_pid) port=$PG_PORT"
        else
            echo "postgres  running  pid=$(pg_pid) NOT answering on port $PG_PORT"
        fi
    else
        echo "postgres  stopped"
    fi
}

cmd_createdb() {
    (($#)) || die "usage: scripts/infra.sh createdb NAME..."
    local name exists
    for name in "$@"; do
        [[ "$name" =~ ^[a-z_][a-z0-9_]*$ ]] || die "createdb: invalid database name '$name' (use [a-z0-9_])"
        exists="$("$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U app -d postgres -v ON_ERROR_STOP=1 -tAc \
            "SELECT 1 FROM pg_database WHERE datname = '$name'")"
        if [[ "$exists" == "1" ]]; then
            log "createdb: $name exists"
        else
            "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U app -d postgres -v ON_ERROR_STOP=1 -qc \
                "CREATE DATABASE \"$name\" OWNER app ENCODING 'UTF8' TEMPLATE template0"
            log "createdb: created $name"
        fi
    done
}

# ---------------------------------------------------------------------------------------------- redis

redis_answers() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; }

redis_start() {
    command -v redis-server >/dev/null || die "redis-server not installed: run scripts/infra.sh install"
    local pid i
    if pid="$(pid_alive "$REDIS_PID" redis-server)"; then
        redis_answers || die "redis: pid $pid alive but not answering on port $REDIS_PORT"
        log "redis: already running (pid $pid, port $REDIS_PORT)"
        return 0
    fi
    [[ -e "$REDIS_PID" ]] && { log "redis: removing stale pid file"; rm -f "$REDIS_PID"; }
    port_open "$REDIS_PORT" && die "redis: port $REDIS_PORT is taken by another process (set UTILIS_REDIS_PORT)"
    mkdir -p "$REDIS_DIR"
    log "redis: starting on 127.0.0.1:$REDIS_PORT"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --daemonize yes --dir "$REDIS_DIR" \
        --pidfile "$REDIS_PID" --logfile "$REDIS_DIR/redis.log" --save '' --appendonly no
    for ((i = 0; i < 100; i++)); do
        redis_answers && [[ -s "$REDIS_PID" ]] && return 0
        sleep 0.1
    done
    tail -n 20 "$REDIS_DIR/redis.log" >&2 || true
    die "redis: did not answer within 10 s"
}

redis_status() {
    local pid
    if pid="$(pid_alive "$REDIS_PID" redis-server)"; then
        if redis_answers; then
            echo "redis     running  pid=$pid port=$REDIS_PORT"
        else
            echo "redis     running  pid=$pid NOT answering on port $REDIS_PORT"
        fi
    else
        echo "redis     stopped"
    fi
}

# ---------------------------------------------------------------------------------------------- kafka

kafka_java() {
    # Kafka CLI tools: short-lived JVMs, so C1 only (faster start), logging to tools.log.
    java -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -cp "$KAFKA_LIBS/*" \
        -Dlog4j2.configurationFile="$KAFKA_SRC/log4j2.properties" -Dkafka.logs.dir="$KAFKA_LOGS" \
        -Dkafka.log.file=tools.log "$@"
}

kafka_write_props() {
    cat >"$KAFKA_PROPS" <<EOF
# Generated by scripts/infra.sh on each start; edit the script, not this file.
# Single combined KRaft node (Kafka 4.x has no ZooKeeper mode).
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DATA

num.partitions=1
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=false
delete.topic.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0

num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=168
log.segment.bytes=104857600
log.retention.check.interval.ms=300000
EOF
}

# One readiness probe: list topics with a real client.
kafka_probe() {
    local py="${UTILIS_PYTHON:-$REPO_ROOT/.venv/bin/python}"
    if [[ -x "$py" ]] && "$py" -c 'import aiokafka' 2>/dev/null; then
        "$py" - "127.0.0.1:$KAFKA_PORT" <<'EOF' >/dev/null 2>&1
import asyncio, sys
from aiokafka.admin import AIOKafkaAdminClient

async def main() -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=sys.argv[1], request_timeout_ms=5000)
    try:
        await asyncio.wait_for(admin.start(), 5)
        await asyncio.wait_for(admin.list_topics(), 5)
    finally:
        await admin.close()

asyncio.run(main())
EOF
    else
        timeout 30 java -Xmx128m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -cp "$KAFKA_LIBS/*" \
            -Dlog4j2.configurationFile="$KAFKA_SRC/log4j2.properties" -Dkafka.logs.dir="$KAFKA_LOGS" \
            -Dkafka.log.file=tools.log org.apache.kafka.tools.TopicCommand \
            --bootstrap-server "127.0.0.1:$KAFKA_PORT" --list >/dev/null 2>&1
    fi
}

kafka_start() {
    [[ -f "$KAFKA_MARKER" ]] || die "kafka jars missing: run scripts/infra.sh install"
    local pid
    if pid="$(pid_alive "$KAFKA_PID" kafka.Kafka)"; then
        log "kafka: already running (pid $pid, port $KAFKA_PORT)"
        kafka_wait_ready "$pid"
        return 0
    fi
    [[ -e "$KAFKA_PID" ]] && { log "kafka: removing stale pid file"; rm -f "$KAFKA_PID"; }
    local port
    for port in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
        port_open "$port" && die "kafka: port $port is taken by another process (set UTILIS_KAFKA_PORT / UTILIS_KAFKA_CONTROLLER_PORT)"
    done
    mkdir -p "$KAFKA_DATA" "$KAFKA_LOGS"
    kafka_write_props
    if [[ ! -f "$KAFKA_DATA/meta.properties" ]]; then
        local cluster_id
        cluster_id="$(kafka_java kafka.tools.StorageTool random-uuid)"
        log "kafka: formatting $KAFKA_DATA (cluster id $cluster_id)"
        kafka_java kafka.tools.StorageTool format -t "$cluster_id" -c "$KAFKA_PROPS" >"$KAFKA_LOGS/format.log" 2>&1 ||
            { cat "$KAFKA_LOGS/format.log" >&2; die "kafka: storage format failed"; }
    fi
    log "kafka: starting on 127.0.0.1:$KAFKA_PORT (controller $KAFKA_CONTROLLER_PORT)"
    # setsid: own session, so that a terminal's Ctrl-C or a job-group kill of the caller does not reach it.
    setsid nohup java -Xmx512m -Xms256m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
        -Djava.awt.headless=true -cp "$KAFKA_LIBS/*" \
        -Dlog4j2.configurationFile="$KAFKA_SRC/log4j2.properties" -Dkafka.logs.dir="$KAFKA_LOGS" \
        kafka.Kafka "$KAFKA_PROPS" </dev/null >>"$KAFKA_LOGS/kafka.out" 2>&1 &
    pid=$!
    printf '%s\n' "$pid" >"$KAFKA_PID"
    kafka_wait_ready "$pid"
}

kafka_wait_ready() {
    local pid="$1" deadline=$((SECONDS + KAFKA_READY_TIMEOUT))
    while ((SECONDS < deadline)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$KAFKA_PID"
            kafka_fail "kafka: process $pid exited during startup"
        fi
        if port_open "$KAFKA_PORT" && kafka_probe; then
            log "kafka: ready (pid $pid, port $KAFKA_PORT)"
            return 0
        fi
        sleep 0.5
    done
    kafka_fail "kafka: not ready after ${KAFKA_READY_TIMEOUT} s (still running as pid $pid; see $KAFKA_LOGS)"
}

kafka_fail() {
    log "---- tail of $KAFKA_LOGS/server.log"
    tail -n 40 "$KAFKA_LOGS/server.log" >&2 2>/dev/null || true
    log "---- tail of $KAFKA_LOGS/kafka.out"
    tail -n 20 "$KAFKA_LOGS/kafka.out" >&2 2>/dev/null || true
    die "$1"
}

kafka_status() {
    local pid
    if pid="$(pid_alive "$KAFKA_PID" kafka.Kafka)"; then
        if port_open "$KAFKA_PORT"; then
            echo "kafka     running  pid=$pid port=$KAFKA_PORT controller=$KAFKA_CONTROLLER_PORT"
        else
            echo "kafka     running  pid=$pid NOT listening on port $KAFKA_PORT (starting?)"
        fi
    else
        echo "kafka     stopped"
    fi
}

# ------------------------------------------------------------------------------------------- commands

cmd_start() {
    pg_start
    redis_start
    kafka_start
}

cmd_stop() {
    stop_pid kafka "$KAFKA_PID" kafka.Kafka
    stop_pid redis "$REDIS_PID" redis-server
    pg_stop
}

cmd_status() {
    pg_status
    redis_status
    kafka_status
}

cmd_reset() {
    cmd_stop
    log "reset: deleting $PG_DIR $REDIS_DIR $KAFKA_DATA (keeping $KAFKA_LIBS)"
    rm -rf "$PG_DIR" "$REDIS_DIR" "$KAFKA_DATA"
}

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
    exit 2
}

main() {
    local cmd="${1:-}"
    (($#)) && shift
    case "$cmd" in
        install) cmd_install ;;
        start) cmd_start ;;
        stop) cmd_stop ;;
        status) cmd_status ;;
        reset) cmd_reset ;;
        createdb) cmd_createdb "$@" ;;
        *) usage ;;
    esac
}

main "$@"
