#!/usr/bin/env bash
# Region coverage of wsproto's parse modules by the fuzz targets: optionally
# fuzzes each target for FUZZ_SECONDS (stable, no sanitizer, into
# fuzz/target/corpus/TARGET, as ci/fuzz.sh does), then replays seeds, saved
# regressions and that corpus through coverage builds (`cargo +nightly fuzz
# coverage`) and prints llvm-cov's per-file table for decoder.rs, header.rs,
# handshake/*, deflate.rs, deflate/window.rs, utf8.rs and close.rs, with their
# total.
#   ci/fuzz-coverage.sh                      seeds and the corpus already there
#   FUZZ_SECONDS=240 ci/fuzz-coverage.sh     fuzz 4 minutes per target first
#   SEEDS_ONLY=1 ci/fuzz-coverage.sh         seeds and regressions alone
# Needs cargo-fuzz, a nightly toolchain and the LLVM tools of nightly's LLVM
# version (Debian: apt-get install llvm-22 for LLVM 22; LLVM_BIN overrides).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
seconds=${FUZZ_SECONDS:-0}
llvm_major=$(rustc +nightly -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
LLVM_BIN=${LLVM_BIN:-/usr/lib/llvm-$llvm_major/bin}
if [ ! -x "$LLVM_BIN/llvm-cov" ] || [ ! -x "$LLVM_BIN/llvm-profdata" ]; then
    echo "no llvm-cov/llvm-profdata in $LLVM_BIN: install the LLVM $llvm_major tools (Debian: llvm-$llvm_major) or set LLVM_BIN" >&2
    exit 1
fi
cd fuzz
targets=$(cargo +stable fuzz list)

if [ "$seconds" -gt 0 ]; then
    cargo +stable fuzz build -s none -O
    for target in $targets; do
        case $target in
        handshake_*) args=(-dict=dicts/http.dict -max_len=4096) ;;
        unmask) args=(-max_len=65536) ;;
        *) args=(-dict=dicts/frames.dict -max_len=4096) ;;
        esac
        mkdir -p "target/corpus/$target" "artifacts/$target"
        cargo +stable fuzz run -s none -O "$target" "target/corpus/$target" "seeds/$target" -- \
            "${args[@]}" -max_total_time="$seconds" -artifact_prefix="artifacts/$target/" \
            >"target/coverage-fuzz-$target.log" 2>&1 ||
            echo "$target: the fuzzer stopped early (target/coverage-fuzz-$target.log)" >&2
    done
fi

objects=()
profiles=()
for target in $targets; do
    inputs=("seeds/$target")
    [ -d "regressions/$target" ] && inputs+=("regressions/$target")
    [ -z "${SEEDS_ONLY:-}" ] && [ -d "target/corpus/$target" ] && inputs+=("target/corpus/$target")
    rm -rf "coverage/$target"
    cargo +nightly fuzz coverage -O --llvm-path "$LLVM_BIN" "$target" "${inputs[@]}" \
        >"target/coverage-$target.log" 2>&1 || {
        tail -20 "target/coverage-$target.log" >&2
        exit 1
    }
    objects+=(-object "target/x86_64-unknown-linux-gnu/coverage/x86_64-unknown-linux-gnu/release/$target")
    profiles+=("coverage/$target/coverage.profdata")
done
"$LLVM_BIN/llvm-profdata" merge -sparse "${profiles[@]}" -o coverage/all.profdata

src=$root/crates/wsproto/src
files=("$src/decoder.rs" "$src/header.rs")
for f in "$src"/handshake/*.rs; do
    [ "$(basename "$f")" = tests.rs ] || files+=("$f")
done
files+=("$src/deflate.rs" "$src/deflate/window.rs" "$src/utf8.rs" "$src/close.rs")
# The first object is the positional binary, the others follow -object.
"$LLVM_BIN/llvm-cov" report "${objects[1]}" "${objects[@]:2}" -instr-profile=coverage/all.profdata \
    "${files[@]}" | sed "s|$src/||"
