#!/usr/bin/env bash
# Builds every fuzz target on stable without a sanitizer and runs each for a
# bounded time, failing on any crash. Prints "fuzz: N passed, M failed" and,
# per target, exec/s and libFuzzer's final coverage (cov, ft).
#   FUZZ_SECONDS=30 ci/fuzz.sh            (default 30 s per target)
set -uo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${FUZZ_SECONDS:-30}
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked || exit 1
fi
cd fuzz
cargo +stable fuzz build -s none -O || exit 1
passed=0
failed=0
report=()
for target in $(cargo +stable fuzz list); do
    case $target in
    handshake_*|proxy_session) dict=dicts/http.dict max_len=4096 ;;
    unmask) dict="" max_len=65536 ;;
    capture_read) dict="" max_len=16384 ;;
    *) dict=dicts/frames.dict max_len=4096 ;;
    esac
    corpus="target/corpus/$target"
    mkdir -p "$corpus" "artifacts/$target"
    log="target/fuzz-$target.log"
    args=(-max_total_time="$SECONDS_PER_TARGET" -max_len="$max_len" -print_final_stats=1 -artifact_prefix="artifacts/$target/")
    [ -n "$dict" ] && args+=(-dict="$dict")
    if cargo +stable fuzz run -s none -O "$target" "$corpus" "seeds/$target" -- "${args[@]}" >"$log" 2>&1; then
        passed=$((passed + 1))
        verdict=ok
    else
        failed=$((failed + 1))
        verdict=FAILED
        tail -40 "$log"
    fi
    execs=$(grep -o 'exec/s: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)
    report+=("$(printf '%-24s %-6s %8s exec/s  %s' "$target" "$verdict" "${execs:-?}" "${cov:-}")")
done
printf '%s\n' "${report[@]}"
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
