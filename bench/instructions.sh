#!/usr/bin/env bash
# User-space instructions per publish of one server in publish-topics (1k
# topics, 8 publishes in flight, over HTTP), counted by callgrind: a figure
# the VM's noise cannot move, for A/B tests of the publish path.
#
#   bench/instructions.sh SERVER     # hub, floor, baseline, ssehub-lean
#
# `bench/profile.sh callgrind` runs the server twice, with the load
# generator publishing for SHORT (3) and LONG (9) seconds; start-up and the
# subscribers' connections cost the same in both, so the difference in
# instructions over the difference in publishes is the cost of one. The
# callgrind files (for callgrind_annotate) stay in bench/results/profile/.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/bench}
server=${1:?server}
[ "${BUILD:-1}" != 0 ] && cargo build --release -q -p ssehub-bench
# The hub checks the tokens the load generator mints with this key.
export BENCH_JWT_KEY=${BENCH_JWT_KEY:-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')}
# Where bench/profile.sh puts the server (and, for the lean server, the
# control port that takes its publishes).
case $server in
    hub) publish=(--publish-http 127.0.0.1:7411 --publish-style mercure) ;;
    ssehub-lean) publish=(--publish-http 127.0.0.1:7421 --publish-path '/publish?topic=') ;;
    *) publish=(--publish-http 127.0.0.1:7411 --publish-path '/publish?topic=') ;;
esac

# run SECONDS: prints "PUBLISHES INSTRUCTIONS" of one run.
run() {
    local tag
    tag=$(BUILD=0 bench/profile.sh callgrind "$server" --scenario publish-topics --clients 1000 \
        --targeted --mode max --in-flight 8 --size 100 --duration "$1" "${publish[@]}" | tail -n 1)
    python3 - "$tag" <<'PY'
import json, sys
tag = sys.argv[1]
published = json.loads(open(tag + ".jsonl").read().splitlines()[-1])["published"]
totals = [l for l in open(tag + ".callgrind") if l.startswith(("summary:", "totals:"))]
print(published, int(totals[-1].split()[1]))
PY
    # Only the figure is kept (and the callgrind file, which git ignores).
    rm -f "$tag.jsonl" "$tag.server.log"
}

read -r p1 i1 < <(run "${SHORT:-3}")
read -r p2 i2 < <(run "${LONG:-9}")
echo "$server: $(( (i2 - i1) / (p2 - p1) )) instructions per publish ($p1 and $p2 publishes)"
