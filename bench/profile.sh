#!/usr/bin/env bash
# Profiles one server during one scenario, for the findings in BENCHMARKS.md.
#
#   bench/profile.sh perf    SERVER LOADGEN-ARGS...   # CPU: perf (cpu-clock, kernel + user), server pinned to core 0
#   bench/profile.sh massif  SERVER LOADGEN-ARGS...   # heap by allocation site (valgrind massif)
#   bench/profile.sh callgrind SERVER LOADGEN-ARGS... # user-space instructions by function (valgrind callgrind)
#   bench/profile.sh perf-dwarf SERVER LOADGEN-ARGS... # perf with DWARF call graphs (the release build has no
#                                                      # frame pointers); inclusive shares: bench/perf-tree.py
#
# Output goes to bench/results/profile/. Example:
#   bench/profile.sh perf ssehub --scenario broadcast --clients 10000 --mode rate --rate 10 --duration 20
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/bench}
tool=${1:?tool}; server=${2:?server}; shift 2
# BUILD=0 profiles the binaries as they are (another build's, copied).
[ "${BUILD:-1}" != 0 ] && cargo build --release -q -p ssehub-bench
BIN=$CARGO_TARGET_DIR/release
dir=bench/results/profile; mkdir -p "$dir"
tag=$server-$tool-$(date +%s)
port=7411
extra=(); lg=()
if [ "$server" = ssehub-lean ] || [ "$server" = hub ]; then
    # The lean server answers GET only, and the hub's port is the hub's:
    # control requests go to a second port.
    extra=(--control-addr 127.0.0.1:7421); lg=(--control 127.0.0.1:7421)
fi
if [ "$server" = hub ]; then
    lg+=(--path '/.well-known/mercure?match=')
fi
case $tool in
    perf)
        taskset -c 0 perf record -q -e cpu-clock -F 997 -g -o "$dir/$tag.perf.data" \
            "$BIN/server-$server" --addr 127.0.0.1:$port "${extra[@]}" 2>"$dir/$tag.server.log" & ;;
    perf-dwarf)
        taskset -c 0 perf record -q -e cpu-clock -F 499 --call-graph dwarf,32768 -o "$dir/$tag.perf.data" \
            "$BIN/server-$server" --addr 127.0.0.1:$port "${extra[@]}" 2>"$dir/$tag.server.log" & ;;
    massif)
        taskset -c 0 valgrind --tool=massif --massif-out-file="$dir/$tag.massif" \
            "$BIN/server-$server" --addr 127.0.0.1:$port "${extra[@]}" 2>"$dir/$tag.server.log" & ;;
    callgrind)
        taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$dir/$tag.callgrind" \
            "$BIN/server-$server" --addr 127.0.0.1:$port "${extra[@]}" 2>"$dir/$tag.server.log" & ;;
    *) echo "unknown tool $tool" >&2; exit 2 ;;
esac
wrapper=$!
taskset -c 1 "$BIN/loadgen" --target 127.0.0.1:$port "${lg[@]}" --label "$server-$tool" --out "$dir/$tag.jsonl" "$@" >/dev/null || true
# SIGTERM the server itself (the child of perf / valgrind), then wait for the tool to write its output.
spid=$(pgrep -P "$wrapper" -f "server-$server" || true)
kill -TERM "${spid:-$wrapper}" 2>/dev/null || true
wait "$wrapper" 2>/dev/null || true
echo "$dir/$tag"
