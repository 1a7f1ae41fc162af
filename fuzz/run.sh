#!/usr/bin/env bash
# Runs every fuzz target (or those named as arguments) for a fixed time
# budget each, one after the other, on a kept corpus, and prints a summary.
#
#   fuzz/run.sh                  # every target, BUDGET seconds each
#   BUDGET=120 fuzz/run.sh publish matcher
#   ASAN=1 fuzz/run.sh parser    # AddressSanitizer (RUSTC_BOOTSTRAP on stable)
#
# The corpus of a target lives in fuzz/corpus/<target> (git-ignored) and
# grows from run to run; the committed seeds of fuzz/seeds/<target> are
# copied into it first (never over a file already there). A finding
# (crash, timeout, out-of-memory) is saved under fuzz/artifacts/<target>/;
# the script exits 1 when any target has one.
set -euo pipefail

BUDGET=${BUDGET:-60}
INPUT_TIMEOUT=${TIMEOUT:-10}    # seconds one input may take before it is a finding
RSS_LIMIT_MB=${RSS_LIMIT_MB:-2048}

fuzz_dir=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$fuzz_dir")
cd "$root"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

sanitizer=(--sanitizer none)
if [[ ${ASAN:-0} == 1 ]]; then
    # -Zsanitizer needs nightly features, which RUSTC_BOOTSTRAP unlocks on stable.
    export RUSTC_BOOTSTRAP=1
    sanitizer=()
fi

if (($# > 0)); then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

echo "building ${#targets[@]} targets" >&2
cargo fuzz build -O "${sanitizer[@]}" >&2

logs="$fuzz_dir/logs"
mkdir -p "$logs"
rows=()
failed=0
for target in "${targets[@]}"; do
    corpus="$fuzz_dir/corpus/$target"
    artifacts="$fuzz_dir/artifacts/$target"
    mkdir -p "$corpus" "$artifacts"
    if [[ -d "$fuzz_dir/seeds/$target" ]]; then
        cp -n "$fuzz_dir/seeds/$target"/* "$corpus"/ 2>/dev/null || true
    fi
    before=$(find "$artifacts" -type f | wc -l)
    log="$logs/$target.log"
    echo "fuzzing $target for ${BUDGET}s (log: ${log#"$root"/})" >&2
    start=$(date +%s)
    status=0
    cargo fuzz run "$target" -O "${sanitizer[@]}" "$corpus" -- \
        -max_total_time="$BUDGET" -timeout="$INPUT_TIMEOUT" -rss_limit_mb="$RSS_LIMIT_MB" \
        -print_final_stats=1 >"$log" 2>&1 || status=$?
    elapsed=$(($(date +%s) - start))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    findings=$(($(find "$artifacts" -type f | wc -l) - before))
    if ((status != 0 && findings == 0)); then
        # libFuzzer failed without saving an input (it could not start, say).
        findings="error($status)"
    fi
    if [[ $findings != 0 ]]; then
        failed=1
        grep -m 1 -E "panicked at|ERROR: libFuzzer|SUMMARY" "$log" >&2 || true
    fi
    rows+=("$target|${execs:-?}|${elapsed}s|$(find "$corpus" -type f | wc -l)|$findings")
done

printf '\n%-14s %14s %8s %8s %9s\n' target executions time corpus findings
for row in "${rows[@]}"; do
    IFS='|' read -r target execs time size findings <<<"$row"
    printf '%-14s %14s %8s %8s %9s\n' "$target" "$execs" "$time" "$size" "$findings"
done
exit "$failed"
