#!/usr/bin/env bash
# Coverage-guided fuzzing of nof1's parsers on the stable toolchain.
#
#   fuzz/run.sh [MINUTES] [TARGET...]
#
# Builds the targets with libFuzzer's coverage instrumentation (the flags
# cargo-fuzz passes with `--sanitizer none`, all accepted by stable rustc),
# then runs each TARGET (default: all) for MINUTES (default 5) from its
# corpus in fuzz/corpus/TARGET, seeded with fuzz/regressions/TARGET (checked
# in: earlier crashes and real inputs). New crashes land in
# fuzz/artifacts/TARGET/; copy each into fuzz/regressions/TARGET/ once fixed:
# `cargo test -p nof1-cli --test never_lose fuzz_regressions` replays them.
# With cargo-fuzz installed, `cargo fuzz run TARGET -s none` is equivalent.
set -euo pipefail
cd "$(dirname "$0")"
minutes=${1:-5}
shift || true
if [ "$#" -gt 0 ]; then targets=("$@"); else targets=(table_reader model_bytes model_payload); fi
export RUSTFLAGS="${RUSTFLAGS:-} -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# An explicit --target keeps the instrumentation off build scripts and proc
# macros (which run on the host and are not linked with libFuzzer).
target=$(rustc -vV | sed -n 's/^host: //p')
cargo build --release --bins --target "$target"
bin="target/$target/release"
mkdir -p logs
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    echo "== $t: ${minutes} min" >&2
    "$bin/$t" -max_total_time=$((minutes * 60)) -print_final_stats=1 \
        -artifact_prefix="artifacts/$t/" -timeout=10 -rss_limit_mb=2048 \
        "corpus/$t" "regressions/$t" 2>&1 | tee "logs/$t.log" | grep -E "^#[0-9]+ +(DONE|INITED)|stat::|==ERROR|panicked" >&2 || true
    grep -E "stat::number_of_executed_units" "logs/$t.log" | sed "s/^/$t: /"
done
