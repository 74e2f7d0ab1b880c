#!/usr/bin/env bash
# Coverage-guided fuzzing of nof1's parsers on the stable toolchain.
#
#   fuzz/run.sh [MINUTES] [TARGET...]
#
# Builds the targets with libFuzzer's coverage instrumentation (the flags
# cargo-fuzz passes with `--sanitizer none`, all accepted by stable rustc;
# a C++ compiler builds libFuzzer itself), then runs each TARGET (default:
# every file in fuzz_targets/) for MINUTES (default 5) from its corpus in
# fuzz/corpus/TARGET, seeded with fuzz/regressions/TARGET (checked in: real
# inputs and earlier crashes). Runs are seeded: FUZZ_SEED (default 1) is
# libFuzzer's -seed. New crashes land in fuzz/artifacts/TARGET/; once fixed,
# copy each into fuzz/regressions/TARGET/ (keep it small):
# `cargo test -p nof1-cli --test never_lose fuzz_regressions_replay` replays
# them through the same checks (fuzz/checks.rs). Prints, per target, the
# executions run and the crash files found. With cargo-fuzz installed,
# `cargo fuzz run TARGET -s none` is equivalent.
set -euo pipefail
cd "$(dirname "$0")"
minutes=${1:-5}
shift || true
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    targets=()
    for f in fuzz_targets/*.rs; do targets+=("$(basename "$f" .rs)"); done
fi
seed=${FUZZ_SEED:-1}
export RUSTFLAGS="${RUSTFLAGS:-} -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# An explicit --target keeps the instrumentation off build scripts and proc
# macros (which run on the host and are not linked with libFuzzer).
target=$(rustc -vV | sed -n 's/^host: //p')
cargo build --release --bins --target "$target"
bin="${CARGO_TARGET_DIR:-target}/$target/release"
mkdir -p logs
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    echo "== $t: ${minutes} min, seed $seed" >&2
    # libFuzzer exits non-zero on a crash; the summary below reports it.
    "$bin/$t" -seed="$seed" -max_total_time=$((minutes * 60)) -print_final_stats=1 \
        -artifact_prefix="artifacts/$t/" -timeout=10 -rss_limit_mb=2048 \
        "corpus/$t" "regressions/$t" >"logs/$t.log" 2>&1 || true
    grep -E "^#[0-9]+[[:space:]]+(INITED|DONE)|==ERROR|panicked at|SUMMARY" "logs/$t.log" >&2 || true
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "logs/$t.log" | tail -1)
    crashes=$(find "artifacts/$t" -type f | wc -l)
    echo "$t: executions ${execs:-?}, crash files ${crashes} (artifacts/$t/)"
done
