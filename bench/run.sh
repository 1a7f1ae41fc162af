#!/usr/bin/env bash
# Runs one benchmark scenario against each server, in turn, in one go:
# the server pinned to core 0 and the load generator to core 1.
#
#   bench/run.sh idle        [CLIENTS...]   default: 1000 10000 max
#   bench/run.sh broadcast   [CLIENTS...]   default: 1000 10000  (10 ev/s, 100 B)
#   bench/run.sh saturation  [CLIENTS...]   default: 1000 10000  (as fast as acked)
#   bench/run.sh targeted    [CLIENTS...]   default: 1000 10000  (one topic each)
#   bench/run.sh churn       [CLIENTS...]   default: 1000        (steady clients)
#   bench/run.sh isolation   [CLIENTS...]   default: 10000       (with/without a stalled client)
#   bench/run.sh isolation-overflow [CLIENTS...] default: 1000   (the same at 100 ev/s, so the
#                                           stalled client's socket fills and its buffer overflows)
#   bench/run.sh report                     tables on stdout, plot in bench/results/plot.svg
#   bench/run.sh current                    every scenario below at its defaults, one build, into
#                                           bench/results/current.jsonl (~30 min), then
#                                           `report current` (BENCHMARKS.md's tables and plots)
#
# Soak and slow peers (SERVERS default "hub"):
#   bench/run.sh soak      [CLIENTS...] default: 1000   (RATE=10 ev/s, 100 B, DURATION=3600 s;
#                                           CHURN=32 subscribers coming and going, every other one
#                                           resuming with Last-Event-ID; RSS and descriptors sampled
#                                           every SAMPLE=10 s and judged flat or not after WARMUP s,
#                                           default a sixth of the run, at most 300)
#   bench/run.sh slowpeers [CLIENTS...] default: 1000   (RATE=10 ev/s, DURATION=30 s twice: without,
#                                           then with SLOWLORIS=4000 heads that never end and
#                                           STALLED=4000 subscribers that never read; once per
#                                           stream server in STREAM_SERVERS, default "lean hyper";
#                                           TAG=x names the runs slowpeers-lean-x, …)
#
# Scale-out over Redis (SERVERS default "hub hub-redis hub-redis3"):
#   bench/run.sh scaleout      [CLIENTS...] default: 1000   (RATE=100 ev/s, 100 B, 20 s)
#   bench/run.sh scaleout-idle [CLIENTS...] default: 10000  (idle memory per subscriber)
#   bench/run.sh scaleout-rate [CLIENTS...] default: 30     (RATES="1000 3000" ev/s, 10 s each:
#                                           Redis and per-node cost per publish at higher rates)
# hub = one server-hub, log in memory; hub-redis = one server-hub on a Redis
# stream; hub-redis3 = three server-hub processes on one stream, client i on
# node i % 3, every publish made on node 0 (its subscribers are "same node",
# the others' "other node"). Each run starts its own redis-server on a free
# port (--save '' --appendonly no) and stops it after. Pinning: every hub
# process and Redis on core 0, the load generator on core 1.
#
# Publishing over HTTP (SERVERS default "hub nchan baseline floor"): the load
# generator publishes to each server's real publish endpoint, IN_FLIGHT
# keep-alive connections with one request each at a time, round-robin over
# the topics; it reports publishes/s, acknowledgement latency, server CPU
# per publish, publish-to-delivery latency and fairness (how many later
# updates overtook an update on its way to a subscriber):
#   bench/run.sh publish-topics   [CLIENTS...] default: 1000  (a topic per subscriber,
#                                           IN_FLIGHT=8, as fast as acknowledged, DURATION=10 s)
#   bench/run.sh publish-targeted [CLIENTS...] default: 10000 (a topic per subscriber,
#                                           RATE=2000 publishes/s in all, IN_FLIGHT=8, 20 s)
#   bench/run.sh publish-fairness [CLIENTS...] default: 10000 (one topic, IN_FLIGHT=4,
#                                           as fast as acknowledged, 10 s)
#   bench/run.sh report --publish          their tables, the servers side by side
# The hub takes POST /.well-known/mercure (form topic and data) with a
# bearer token the load generator mints with BENCH_JWT_KEY (random per
# invocation unless set; server-hub checks tokens with the same key); nchan
# its publisher location; ssehub, baseline and floor POST /publish?topic=T
# on their port, ssehub-lean on its control port (each the same publish
# call as their schedule's).
#
# nchan (nginx-light + libnginx-mod-nchan; bench/nchan/nginx.conf, one
# worker, filled in and run from a temporary directory, pinned to core 0,
# the worker's RSS and CPU measured) runs in any scenario with SERVERS
# naming it; it cannot publish in process, so the load generator always
# publishes to it over HTTP (in broadcast, at the schedule's rate).
#
# Environment: SERVERS (default "ssehub ssehub-lean baseline floor"; "hub" is
# the Mercure hub, crates/ssehub-server, on port 7405, control 7415; "nchan"
# on 7407), PORT_BASE (default 7400: ssehub on PORT_BASE + 1, baseline + 2,
# floor + 3, ssehub-lean + 4, hub + 5, hub-redis + 6, nchan + 7, hub-redis3
# + 31..33, each control port 10 above), BUILD=0
# (reuse the binaries built last), DURATION (seconds
# of publishing; default 20 for rate scenarios, 10 for max, 20 for churn),
# OUT (default bench/results/results.jsonl), CARGO_TARGET_DIR (default
# target/bench), SERVER_ARGS (extra arguments for every server started, e.g.
# "--keep-alive-s 0" for the lean server; recorded in the note), BENCH_SERIES
# (a file where the server writes, after a fixed-rate run, one line per
# event: sequence number, ms into the run, publish-to-last-write ms).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/bench}
scenario=${1:?usage: bench/run.sh SCENARIO [CLIENTS...]}
shift || true
# `current`: every scenario of BENCHMARKS.md's report, at its defaults, on
# one build, into one file (OUT, default bench/results/current.jsonl; about
# 30 minutes), then the report's tables and plots from it.
if [ "$scenario" = current ]; then
    export OUT=${OUT:-bench/results/current.jsonl}
    "$0" broadcast      # builds once; every later step reuses it
    export BUILD=0
    SERVERS="hub nchan" "$0" broadcast
    for s in idle saturation targeted churn isolation isolation-overflow; do "$0" "$s"; done
    SERVERS="hub nchan" "$0" idle 1000 10000
    for s in publish-topics publish-targeted publish-fairness scaleout scaleout-idle scaleout-rate; do "$0" "$s"; done
    STREAM_SERVERS=lean "$0" slowpeers
    exec "$0" report current
fi
OUT=${OUT:-bench/results/results.jsonl}
case $scenario in
    scaleout*) SERVERS=${SERVERS:-"hub hub-redis hub-redis3"} ;;
    soak|slowpeers) SERVERS=${SERVERS:-hub} ;;
    publish-*) SERVERS=${SERVERS:-"hub nchan baseline floor"} ;;
    *) SERVERS=${SERVERS:-"ssehub ssehub-lean baseline floor"} ;;
esac
PORT_BASE=${PORT_BASE:-7400}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
NCHAN_MODULE=/usr/lib/nginx/modules/ngx_nchan_module.so
if [ "$scenario" != report ] && [[ " $SERVERS " == *" nchan "* ]] \
    && { [ ! -x "$NGINX" ] || [ ! -f "$NCHAN_MODULE" ]; }; then
    echo "nchan needs nginx and its nchan module ($NGINX, $NCHAN_MODULE); install them with" >&2
    echo "  apt-get update && apt-get install -y nginx-light libnginx-mod-nchan" >&2
    echo "then stop the nginx the package starts: service nginx stop (or systemctl disable --now nginx)" >&2
    exit 2
fi
# The hub's HS256 key, which the load generator also signs its publisher
# token with.
export BENCH_JWT_KEY=${BENCH_JWT_KEY:-$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')}
mkdir -p "$(dirname "$OUT")" bench/results/logs
# Thousands of connections each side: every process started here may use
# the hard open-file limit (the binaries raise their own too).
ulimit -n "$(ulimit -Hn)"
# BUILD=0 reuses the binaries as they are: the library changes while others
# work, and one set of numbers should come from one build.
if [ "${BUILD:-1}" != 0 ]; then
    cargo build --release -q -p ssehub-bench
    git log -1 --format=%h -- crates/ssehub > "$CARGO_TARGET_DIR/release/ssehub-rev"
    git status --porcelain crates/ssehub | grep -q . && echo "+uncommitted" >> "$CARGO_TARGET_DIR/release/ssehub-rev"
    git log -1 --format=%h -- crates/ssehub-server > "$CARGO_TARGET_DIR/release/hub-rev"
    git status --porcelain crates/ssehub-server | grep -q . && echo "+uncommitted" >> "$CARGO_TARGET_DIR/release/hub-rev"
fi
BIN=$CARGO_TARGET_DIR/release
REV=$(tr '\n' ' ' < "$BIN/ssehub-rev" 2>/dev/null || echo unknown)
HUB_REV=$(tr '\n' ' ' < "$BIN/hub-rev" 2>/dev/null || echo unknown)

if [ "$scenario" = report ]; then
    if [ "${1:-}" = current ]; then
        # BENCHMARKS.md: its tables on stdout (the newest set of runs of each
        # scenario in bench/results/*.jsonl), its plots in bench/plots/.
        shift
        "$BIN/report" --current bench/results --plots bench/plots "$@"
        exec "$BIN/report" --soak --results bench/results/soak.jsonl --svg bench/plots/soak.svg >/dev/null
    fi
    exec "$BIN/report" --results "$OUT" --svg bench/results/plot.svg "$@"
fi

# Both processes hold one descriptor per connection (plus a few).
max_clients=$(( $(ulimit -Hn) - 200 ))

port_of() {
    local k
    case $1 in ssehub) k=1 ;; baseline) k=2 ;; floor) k=3 ;; ssehub-lean) k=4 ;; hub) k=5 ;; hub-redis) k=6 ;; nchan) k=7 ;; *) k=9 ;; esac
    echo $((PORT_BASE + k))
}

# The subscriber ports of a configuration's nodes (control on port + 10).
ports_of() {
    case $1 in hub-redis3) echo $((PORT_BASE + 31)) $((PORT_BASE + 32)) $((PORT_BASE + 33)) ;; *) port_of "$1" ;; esac
}

# start_nchan PORT LOG: nginx with bench/nchan/nginx.conf filled in, in a
# temporary directory, on core 0; sets NCHAN_PID (the master), NCHAN_WORKER
# (its one worker, the process measured) and NCHAN_DIR.
start_nchan() {
    NCHAN_DIR=$(mktemp -d /tmp/bench-nchan.XXXXXX)
    sed -e "s#@DIR@#$NCHAN_DIR#g" -e "s#@PORT@#$1#g" -e "s#@NOFILE@#$(ulimit -Hn)#g" \
        bench/nchan/nginx.conf > "$NCHAN_DIR/nginx.conf"
    taskset -c 0 "$NGINX" -c "$NCHAN_DIR/nginx.conf" -p "$NCHAN_DIR" -e "$NCHAN_DIR/error.log" >"$2" 2>&1 &
    NCHAN_PID=$!
    STARTED+=("$NCHAN_PID")
    local i
    for i in $(seq 200); do
        NCHAN_WORKER=$(awk '{print $1}' "/proc/$NCHAN_PID/task/$NCHAN_PID/children" 2>/dev/null || true)
        [ -n "$NCHAN_WORKER" ] && return 0
        kill -0 "$NCHAN_PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "!! nginx did not start (logs: $2, $NCHAN_DIR/error.log)" >&2
    return 1
}

# The load generator's HTTP publishing arguments for SERVER on PORT.
publish_args() {
    case $1 in
        hub|hub-redis|hub-redis3) echo "--publish-http 127.0.0.1:$2 --publish-style mercure" ;;
        ssehub-lean) echo "--publish-http 127.0.0.1:$(($2 + 10)) --publish-path /publish?topic=" ;;
        *) echo "--publish-http 127.0.0.1:$2 --publish-path /publish?topic=" ;;
    esac
}

# A free TCP port on 127.0.0.1 for the run's private Redis.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# What this script started, stopped on any exit (by pid, nothing else).
STARTED=()
cleanup() {
    local p
    for p in "${STARTED[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${STARTED[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_redis LOG: a private redis-server on core 0, no persistence; sets
# REDIS_PORT and REDIS_PID.
start_redis() {
    REDIS_PORT=$(free_port)
    taskset -c 0 /usr/bin/redis-server --port "$REDIS_PORT" --bind 127.0.0.1 \
        --save '' --appendonly no --daemonize no >"$1" 2>&1 &
    REDIS_PID=$!
    STARTED+=("$REDIS_PID")
    local i
    for i in $(seq 100); do
        [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] && return 0
        kill -0 "$REDIS_PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "!! redis-server did not start (log: $1)" >&2
    return 1
}

stop_pids() {
    local p
    for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "$@"; do wait "$p" 2>/dev/null || true; done
}

# run_one SERVER LOADGEN-ARGS...: a fresh server (and Redis) for every
# run, so RSS readings start from the same place.
run_one() {
    local server=$1; shift
    local ports; ports=$(ports_of "$server")
    local stamp; stamp=$(date +%s)
    local log=bench/results/logs/$server-$stamp
    echo "== $server: loadgen $* (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    local control=() path=() redis=() transport=() note="ssehub ${REV}${SERVER_ARGS:+(server args: $SERVER_ARGS) }"
    local bin=server-$server
    case $server in
        hub|hub-redis|hub-redis3)
            bin=server-hub
            # Mercure subscribers: GET /.well-known/mercure?match=TOPIC.
            path=(--path '/.well-known/mercure?match=')
            note="ssehub ${REV}ssehub-server ${HUB_REV}${SERVER_ARGS:+ (server args: $SERVER_ARGS)}" ;;
    esac
    case $server in
        hub-redis|hub-redis3)
            start_redis "$log.redis.log" || return 0
            transport=(--transport "redis://127.0.0.1:$REDIS_PORT" --transport-stream "bench-$stamp-$RANDOM")
            redis=(--redis "127.0.0.1:$REDIS_PORT")
            note="$note; redis $(redis-cli -p "$REDIS_PORT" info server | tr -d '\r' | sed -n 's/^redis_version://p'), nodes and redis on core 0, loadgen on core 1" ;;
    esac
    local spids=() targets="" controls="" k=0 port pub=()
    # HTTP_PUBLISH=1 (the publish-* scenarios), and nchan always: the load
    # generator publishes over HTTP to the first node.
    if [ -n "${HTTP_PUBLISH:-}" ] || [ "$server" = nchan ]; then
        read -r -a pub <<< "$(publish_args "$server" "${ports%% *}")"
        note="$note; published over HTTP by the load generator"
    fi
    if [ "$server" = nchan ]; then
        ports=""
        port=$(port_of nchan)
        start_nchan "$port" "$log.0.log" || { stop_pids "$NCHAN_PID"; STARTED=(); return 0; }
        spids+=("$NCHAN_PID")
        targets=127.0.0.1:$port
        control=(--control "127.0.0.1:$port" --nchan-status --pid "$NCHAN_WORKER")
        note="nchan $("$NGINX" -V 2>&1 | sed -n 's/^nginx version: //p'), $(dpkg-query -W -f='libnginx-mod-nchan ${Version}' libnginx-mod-nchan 2>/dev/null || echo 'nchan module'); one worker (its RSS and CPU measured); published over HTTP by the load generator"
    fi
    for port in $ports; do
        targets+="${targets:+,}127.0.0.1:$port"
        controls+="${controls:+,}127.0.0.1:$((port + 10))"
        if [ "$bin" = server-ssehub-lean ] || [ "$bin" = server-hub ]; then
            # The lean server answers GET only, and the hub's port is the hub's:
            # control requests go to a second port.
            taskset -c 0 "$BIN/$bin" --addr "127.0.0.1:$port" --control-addr "127.0.0.1:$((port + 10))" \
                "${transport[@]}" ${SERVER_ARGS:-} 2>"$log.$k.log" &
        else
            taskset -c 0 "$BIN/$bin" --addr "127.0.0.1:$port" ${SERVER_ARGS:-} 2>"$log.$k.log" &
        fi
        spids+=($!)
        STARTED+=($!)
        k=$((k + 1))
    done
    if [ "$bin" = server-ssehub-lean ] || [ "$bin" = server-hub ]; then
        control=(--control "$controls")
    fi
    local rc=0
    taskset -c 1 "$BIN/loadgen" --target "$targets" "${control[@]}" "${path[@]}" "${redis[@]}" "${pub[@]}" --label "$server" --out "$OUT" \
        --note "$note" "$@" >/dev/null || rc=$?
    stop_pids "${spids[@]}"
    if [ "$server" = nchan ]; then
        cp "$NCHAN_DIR/error.log" "$log.nginx-error.log" 2>/dev/null || true
        rm -rf "$NCHAN_DIR"
    fi
    [ ${#redis[@]} -eq 0 ] || stop_pids "$REDIS_PID"
    # All stopped and waited for: nothing for the exit trap to stop (a pid
    # may be reused once its process is gone).
    STARTED=()
    [ $rc -eq 0 ] || echo "!! $server: loadgen exited with $rc (server logs: $log.*)" >&2
}

if [ $# -gt 0 ]; then counts="$*"; else
    case $scenario in
        idle) counts="1000 10000 $max_clients" ;;
        churn) counts="1000" ;;
        isolation) counts="10000" ;;
        isolation-overflow) counts="1000" ;;
        scaleout) counts="1000" ;;
        scaleout-idle) counts="10000" ;;
        scaleout-rate) counts="30" ;;
        soak|slowpeers) counts="1000" ;;
        publish-topics) counts="1000" ;;
        publish-targeted|publish-fairness) counts="10000" ;;
        *) counts="1000 10000" ;;
    esac
fi

for n in $counts; do
    [ "$n" = max ] && n=$max_clients
    for server in $SERVERS; do
        case $scenario in
            idle)
                run_one "$server" --scenario idle --clients "$n" --mode idle ;;
            broadcast)
                run_one "$server" --scenario broadcast --clients "$n" --mode rate --rate 10 --size 100 --duration "${DURATION:-20}" ;;
            saturation)
                run_one "$server" --scenario saturation --clients "$n" --mode max --burst 1 --size 100 --duration "${DURATION:-10}" ;;
            targeted)
                run_one "$server" --scenario targeted --clients "$n" --targeted --mode max --burst 1 --size 100 --duration "${DURATION:-10}" ;;
            churn)
                run_one "$server" --scenario churn --clients "$n" --mode churn --duration "${DURATION:-20}" ;;
            isolation)
                for stalled in 0 1; do
                    run_one "$server" --scenario isolation --clients "$n" --stalled "$stalled" --mode rate --rate 10 --size 100 --duration "${DURATION:-30}"
                done ;;
            isolation-overflow)
                for stalled in 0 1; do
                    run_one "$server" --scenario isolation-overflow --clients "$n" --stalled "$stalled" --mode rate --rate 100 --size 100 --duration "${DURATION:-30}"
                done ;;
            scaleout)
                run_one "$server" --scenario scaleout --clients "$n" --mode rate --rate "${RATE:-100}" --size 100 --duration "${DURATION:-20}" ;;
            scaleout-idle)
                run_one "$server" --scenario scaleout-idle --clients "$n" --mode idle ;;
            scaleout-rate)
                for rate in ${RATES:-1000 3000}; do
                    run_one "$server" --scenario "scaleout-rate-$rate" --clients "$n" --mode rate --rate "$rate" --size 100 --duration "${DURATION:-10}"
                done ;;
            soak)
                run_one "$server" --scenario soak --clients "$n" --mode soak --rate "${RATE:-10}" --size 100 \
                    --duration "${DURATION:-3600}" --churn-concurrency "${CHURN:-32}" --sample-every "${SAMPLE:-10}" \
                    ${WARMUP:+--warmup "$WARMUP"} ;;
            slowpeers)
                for ss in ${STREAM_SERVERS:-lean hyper}; do
                    SERVER_ARGS="${SERVER_ARGS:+$SERVER_ARGS }--stream-server $ss" \
                        run_one "$server" --scenario "slowpeers-$ss${TAG:+-$TAG}" --clients "$n" --mode peers --rate "${RATE:-10}" --size 100 \
                        --duration "${DURATION:-30}" --slowloris "${SLOWLORIS:-4000}" --stalled "${STALLED:-4000}" --sample-every 1
                done ;;
            publish-topics)
                HTTP_PUBLISH=1 run_one "$server" --scenario publish-topics --clients "$n" --targeted --mode max \
                    --in-flight "${IN_FLIGHT:-8}" --size 100 --duration "${DURATION:-10}" ;;
            publish-targeted)
                HTTP_PUBLISH=1 run_one "$server" --scenario publish-targeted --clients "$n" --targeted --mode rate \
                    --rate "${RATE:-2000}" --in-flight "${IN_FLIGHT:-8}" --size 100 --duration "${DURATION:-20}" ;;
            publish-fairness)
                HTTP_PUBLISH=1 run_one "$server" --scenario publish-fairness --clients "$n" --mode max \
                    --in-flight "${IN_FLIGHT:-4}" --size 100 --duration "${DURATION:-10}" ;;
            *) echo "unknown scenario $scenario" >&2; exit 2 ;;
        esac
    done
done
