#!/usr/bin/env bash
# Builds the fuzz targets on the stable toolchain (libFuzzer, SanitizerCoverage through plain
# codegen flags, no sanitizers) and runs each one for a bounded time.
#
#   bash fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     (defaults: 60 s, every target)
#
# Corpora grow in fuzz/corpora/<target>/ (git-ignored), seeded from fuzz/seeds/<target>/.
# On a crash, timeout or out-of-memory, the input is minimised (bounded), copied to
# fuzz/regressions/<target>/ and printed, the other targets still run, and the script
# exits 1. Environment: FUZZ_JOBS (targets at a time, default 1), FUZZ_TARGET_DIR,
# FUZZ_MINIMIZE_SECONDS (default 60), and FUZZ_WITH_CARGO_FUZZ=1 to build with `cargo +nightly fuzz build` instead (needs cargo-fuzz
# and a nightly toolchain; it builds into fuzz/target).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
seconds=${1:-60}
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(token path config cookie)
minimize_seconds=${FUZZ_MINIMIZE_SECONDS:-60}

host=$(rustc -vV | sed -n 's/^host: //p')
# FUZZ_TARGET_DIR: where the instrumented build goes (default fuzz/target). Pointing it at a
# directory that outlives the checkout (CI) turns the first build (4-10 minutes on 2 cores)
# into a rebuild of the gateway crate only.
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$here/target}"
started=$(date +%s)
if [ "${FUZZ_WITH_CARGO_FUZZ:-0}" = 1 ]; then
    (cd "$here/.." && cargo +nightly fuzz build --release --debug-assertions)
    CARGO_TARGET_DIR="$here/target" # where cargo-fuzz builds
else
    # --target keeps these flags off build scripts and proc macros, which are not linked
    # against libFuzzer. -Cpasses/-Cllvm-args are stable codegen options.
    RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
-Cdebug-assertions -Coverflow-checks" \
        cargo build --manifest-path "$here/Cargo.toml" --release --target "$host" --bins
fi
echo "fuzz: build took $(($(date +%s) - started)) s"

# Fuzzes one target; prints to stdout and returns non-zero (after saving the minimised
# input) when it found a crash.
fuzz_one() {
    local target=$1
    local binary="$CARGO_TARGET_DIR/$host/release/$target"
    local corpus="$here/corpora/$target" artifacts="$here/artifacts/$target"
    mkdir -p "$corpus" "$artifacts" "$here/regressions/$target"
    local dict=()
    [ -f "$here/dicts/$target.dict" ] && dict=(-dict="$here/dicts/$target.dict")
    echo "fuzz: $target for ${seconds} s"
    local status=0
    # libFuzzer's NEW/REDUCE lines are dropped from the output: thousands per run.
    "$binary" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len=8192 \
        -print_final_stats=1 -artifact_prefix="$artifacts/" "${dict[@]}" \
        "$corpus" "$here/seeds/$target" "$here/regressions/$target" \
        >"$artifacts/last-run.log" 2>&1 || status=$?
    grep -v -E '^#[0-9]+[[:space:]]+(NEW|REDUCE) ' "$artifacts/last-run.log" || true
    [ "$status" -eq 0 ] && return 0
    # The newest artifact is the one this run wrote.
    local artifact
    artifact=$(ls -t "$artifacts"/crash-* "$artifacts"/timeout-* "$artifacts"/oom-* \
        "$artifacts"/leak-* 2>/dev/null | head -n 1 || true)
    if [ -z "$artifact" ]; then
        echo "fuzz: $target exited with $status and left no artifact"
        return 1
    fi
    local name minimized
    name=$(basename "$artifact")
    minimized="$artifacts/minimized-$name"
    "$binary" -minimize_crash=1 -max_total_time="$minimize_seconds" -timeout=10 \
        -rss_limit_mb=2048 -exact_artifact_path="$minimized" "$artifact" >/dev/null 2>&1 || true
    [ -s "$minimized" ] || minimized=$artifact
    cp "$minimized" "$here/regressions/$target/$name"
    echo "fuzz: $target FAILED; minimised input saved as fuzz/regressions/$target/$name:"
    od -A d -c "$here/regressions/$target/$name" | head -n 40
    echo "fuzz: reproduce with: $binary $here/regressions/$target/$name"
    return 1
}

# FUZZ_JOBS targets at a time (default 1; 2 suits a 2-core CI machine). Each job's output
# is printed whole when it ends.
jobs_max=${FUZZ_JOBS:-1}
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
running=()
failed=()
reap() {
    local still=() target
    for target in "${running[@]}"; do
        if [ -f "$logs/$target.status" ]; then
            cat "$logs/$target.log"
            [ "$(cat "$logs/$target.status")" = 0 ] || failed+=("$target")
        else
            still+=("$target")
        fi
    done
    running=("${still[@]}")
}
for target in "${targets[@]}"; do
    while [ ${#running[@]} -ge "$jobs_max" ]; do
        sleep 1
        reap
    done
    (
        status=0
        fuzz_one "$target" >"$logs/$target.log" 2>&1 || status=$?
        echo "$status" >"$logs/$target.status"
    ) &
    running+=("$target")
done
while [ ${#running[@]} -gt 0 ]; do
    sleep 1
    reap
done

echo "fuzz: done in $(($(date +%s) - started)) s"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: FAILED targets: ${failed[*]}" >&2
    exit 1
fi
