#!/usr/bin/env bash
# Runs every test of the project: Rust unit, integration, property and doc
# tests, then the independent-client suites (npm eventsource, Python
# httpx-sse, headless Chromium), installing what those need first
# (tests/clients/install.sh: idempotent, a few seconds once installed).
set -euo pipefail
cd "$(dirname "$0")/.."

# cargo-nextest runs the test binaries in parallel processes (each test in
# its own), which the suites with servers, Redis and SIGKILL rely on for
# isolation; a machine without it falls back to cargo test (same tests,
# threads of one process per binary).
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --all-features --no-fail-fast
else
    echo "cargo-nextest not installed: running cargo test (cargo install cargo-nextest --locked for the usual runner)" >&2
    cargo test --workspace --all-features --no-fail-fast --lib --bins --tests --examples
fi
cargo test --workspace --all-features --doc

# The loom models of the library's concurrent core (outlet state machine,
# channel log + watermark; crates/ssehub/src/sync.rs): ~25 s, in a target
# directory of their own since the cfg changes every crate's flags (its
# first build compiles the dependencies again, a few minutes).
RUSTFLAGS="--cfg ssehub_loom" CARGO_TARGET_DIR=target/loom \
    cargo test -p ssehub --lib --release loom

bash tests/clients/install.sh
bash tests/clients/run.sh
