#!/usr/bin/env bash
# User-space instructions per publish of one server in publish-topics (1k
# topics, 8 publishes in flight, over HTTP), counted by callgrind: a figure
# the VM's noise cannot move, for A/B tests of the publish path.
#
#   bench/instructions.sh SERVER     # hub, floor, baseline, ssehub-lean
#
# The server runs under `valgrind --tool=callgrind` twice, with the load
# generator publishing for SHORT (3) and LONG (9) seconds; start-up and the
# subscribers' connections cost the same in both, so the difference in
# instructions over the difference in publishes is the cost of one. Output
# (and the callgrind files, for callgrind_annotate) in bench/results/profile/.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/bench}
server=${1:?server}
[ "${BUILD:-1}" != 0 ] && cargo build --release -q -p ssehub-bench
BIN=$CARGO_TARGET_DIR/release
dir=bench/results/profile; mkdir -p "$dir"
export BENCH_JWT_KEY=${BENCH_JWT_KEY:-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')}
port=7411
extra=(); lg=()
case $server in
    hub) extra=(--control-addr 127.0.0.1:7421)
         lg=(--control 127.0.0.1:7421 --path '/.well-known/mercure?match=' --publish-http 127.0.0.1:$port --publish-style mercure) ;;
    ssehub-lean) extra=(--control-addr 127.0.0.1:7421)
         lg=(--control 127.0.0.1:7421 --publish-http 127.0.0.1:7421 --publish-path '/publish?topic=') ;;
    *) lg=(--publish-http 127.0.0.1:$port --publish-path '/publish?topic=') ;;
esac

# run SECONDS: prints "PUBLISHES INSTRUCTIONS" of one run.
run() {
    local tag; tag=$dir/$server-instructions-$1s-$(date +%s)
    taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$tag.callgrind" \
        "$BIN/server-$server" --addr 127.0.0.1:$port "${extra[@]}" 2>"$tag.server.log" &
    local wrapper=$!
    sleep 3  # valgrind's start-up
    taskset -c 1 "$BIN/loadgen" --target 127.0.0.1:$port "${lg[@]}" --label "$server-instructions" \
        --out "$tag.jsonl" --scenario publish-topics --clients 1000 --targeted --mode max \
        --in-flight 8 --size 100 --duration "$1" >/dev/null 2>"$tag.loadgen.log"
    local spid; spid=$(pgrep -P "$wrapper" -f "server-$server" || true)
    kill -TERM "${spid:-$wrapper}" 2>/dev/null || true
    wait "$wrapper" 2>/dev/null || true
    python3 - "$tag" <<'PY'
import json, sys
tag = sys.argv[1]
published = json.loads(open(tag + ".jsonl").read().splitlines()[-1])["published"]
totals = [l for l in open(tag + ".callgrind") if l.startswith(("summary:", "totals:"))]
print(published, int(totals[-1].split()[1]))
PY
}

read -r p1 i1 < <(run "${SHORT:-3}")
read -r p2 i2 < <(run "${LONG:-9}")
echo "$server: $(( (i2 - i1) / (p2 - p1) )) instructions per publish ($p1 and $p2 publishes)"
