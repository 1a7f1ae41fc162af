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
#
# Environment: SERVERS (default "ssehub ssehub-lean baseline floor"; "hub" is
# the Mercure hub, crates/ssehub-server, on port 7405, control 7415), BUILD=0
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
OUT=${OUT:-bench/results/results.jsonl}
SERVERS=${SERVERS:-"ssehub ssehub-lean baseline floor"}
mkdir -p "$(dirname "$OUT")" bench/results/logs
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

scenario=${1:?usage: bench/run.sh SCENARIO [CLIENTS...]}
shift || true

if [ "$scenario" = report ]; then
    exec "$BIN/report" --results "$OUT" --svg bench/results/plot.svg "$@"
fi

# Both processes hold one descriptor per connection (plus a few).
max_clients=$(( $(ulimit -Hn) - 200 ))

port_of() {
    case $1 in ssehub) echo 7401 ;; baseline) echo 7402 ;; floor) echo 7403 ;; ssehub-lean) echo 7404 ;; hub) echo 7405 ;; *) echo 7409 ;; esac
}

# run_one SERVER LOADGEN-ARGS...: a fresh server for every run, so RSS
# readings start from the same place.
run_one() {
    local server=$1; shift
    local port; port=$(port_of "$server")
    local log=bench/results/logs/$server-$(date +%s).log
    echo "== $server: loadgen $* (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    local control=() path=() note="ssehub ${REV}${SERVER_ARGS:+(server args: $SERVER_ARGS) }"
    if [ "$server" = hub ]; then
        # Mercure subscribers: GET /.well-known/mercure?match=TOPIC.
        path=(--path '/.well-known/mercure?match=')
        note="ssehub ${REV}ssehub-server ${HUB_REV}"
    fi
    if [ "$server" = ssehub-lean ] || [ "$server" = hub ]; then
        # The lean server answers GET only, and the hub's port is the hub's:
        # control requests go to a second port.
        control=(--control "127.0.0.1:$((port + 10))")
        taskset -c 0 "$BIN/server-$server" --addr "127.0.0.1:$port" --control-addr "127.0.0.1:$((port + 10))" ${SERVER_ARGS:-} 2>"$log" &
    else
        taskset -c 0 "$BIN/server-$server" --addr "127.0.0.1:$port" ${SERVER_ARGS:-} 2>"$log" &
    fi
    local spid=$!
    local rc=0
    taskset -c 1 "$BIN/loadgen" --target "127.0.0.1:$port" "${control[@]}" "${path[@]}" --label "$server" --out "$OUT" \
        --note "$note" "$@" >/dev/null || rc=$?
    kill -TERM "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
    [ $rc -eq 0 ] || echo "!! $server: loadgen exited with $rc (server log: $log)" >&2
}


if [ $# -gt 0 ]; then counts="$*"; else
    case $scenario in
        idle) counts="1000 10000 $max_clients" ;;
        churn) counts="1000" ;;
        isolation) counts="10000" ;;
        isolation-overflow) counts="1000" ;;
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
            *) echo "unknown scenario $scenario" >&2; exit 2 ;;
        esac
    done
done
