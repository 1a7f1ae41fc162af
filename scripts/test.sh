#!/usr/bin/env bash
# Runs every test of the project: Rust unit, integration, property and doc
# tests, then the independent-client suites (npm eventsource, Python
# httpx-sse, headless Chromium) when their tools are installed
# (scripts/install-test-deps.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo nextest run --workspace --all-features --no-fail-fast
cargo test --workspace --all-features --doc

if [ -x tests/clients/run.sh ]; then
    bash tests/clients/run.sh
fi
