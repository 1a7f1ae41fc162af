#!/usr/bin/env bash
# Runs the independent-client conformance suites against ssehub's
# `conformance` example: builds it, starts it on 127.0.0.1 with an
# ephemeral port, exports SSE_BASE_URL, runs the node suites (npm
# eventsource, headless Chromium) and the pytest suite (httpx-sse), stops
# the server. Exits non-zero if anything failed. Suites that need an
# example of their own (resume, examples, replicas, …) build and start it
# themselves; replicas.test.mjs runs two `replicas` examples on the shared
# Redis (SSEHUB_TEST_REDIS_URL, default redis://127.0.0.1:6379).
#
# Prerequisites: tests/clients/install.sh (once per machine), redis-cli and
# a running Redis.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

for need in "$here/node_modules/eventsource" "$here/node_modules/playwright-core" "$here/.venv/bin/pytest" /usr/bin/chromium; do
  if [ ! -e "$need" ]; then
    echo "missing $need: run tests/clients/install.sh first" >&2
    exit 2
  fi
done
redis_url="${SSEHUB_TEST_REDIS_URL:-redis://127.0.0.1:6379}"
if [ "$(redis-cli -u "$redis_url" ping 2>/dev/null)" != "PONG" ]; then
  echo "no Redis answering at $redis_url (needed by replicas.test.mjs); is redis-cli installed and redis-server running?" >&2
  exit 2
fi

cd "$root"
cargo build -p ssehub --features axum --example conformance || exit 1
server="${CARGO_TARGET_DIR:-$root/target}/debug/examples/conformance"

server_log=$(mktemp)
"$server" 127.0.0.1:0 >"$server_log" 2>&1 &
server_pid=$!
stop_server() {
  kill "$server_pid" 2>/dev/null
  wait "$server_pid" 2>/dev/null
  rm -f "$server_log"
}
trap stop_server EXIT

# The example's first line is "listening on http://ADDR".
base=""
for _ in $(seq 100); do
  base=$(sed -n '1s#^listening on \(http://127\.0\.0\.1:[0-9]*\)$#\1#p' "$server_log")
  [ -n "$base" ] && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "conformance server died:" >&2
    cat "$server_log" >&2
    exit 1
  fi
  sleep 0.1
done
if [ -z "$base" ]; then
  echo "conformance server did not start within 10 s:" >&2
  cat "$server_log" >&2
  exit 1
fi
export SSE_BASE_URL="$base"
echo "conformance server at $SSE_BASE_URL"

cd "$here"
echo "== node: npm eventsource, headless Chromium"
node --test --test-reporter=spec ./*.test.mjs
node_status=$?
echo "== pytest: httpx-sse"
.venv/bin/pytest -q -p no:cacheprovider
pytest_status=$?

[ "$node_status" = 0 ] && [ "$pytest_status" = 0 ]
