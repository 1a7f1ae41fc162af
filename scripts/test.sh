#!/usr/bin/env bash
# Runs every test of the project: Rust unit, integration, property and doc
# tests, then the independent-client suites (npm eventsource, Python
# httpx-sse, headless Chromium), installing what those need first
# (tests/clients/install.sh: idempotent, a few seconds once installed).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo nextest run --workspace --all-features --no-fail-fast
cargo test --workspace --all-features --doc

bash tests/clients/install.sh
bash tests/clients/run.sh
