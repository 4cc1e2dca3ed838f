#!/usr/bin/env bash
# How closely `wsharness bench --rate` keeps its schedule: starts wsecho on
# 127.0.0.1, runs the open-loop bench at 1,000 and 10,000 msg/s, and prints
# the target next to the rate achieved in the measured window, how late the
# generator wrote (behind schedule) and the round trips it measured. The
# aim is the target within 2 %. Numbers, not assertions.
#
#   ci/bench-rate.sh
#   RATES="1000 10000 50000" CONNS=10 DURATION=10 ci/bench-rate.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=ci/lib.sh
. ci/lib.sh

step "release build"
cargo build --release -p wsecho -p wsharness
BIN=${CARGO_TARGET_DIR:-target}/release

step "wsecho"
start_server wsecho "$BIN/wsecho" --listen 127.0.0.1:0 --quiet

step "open-loop rate accuracy (${CONNS:-10} connections, ${DURATION:-10} s each after a 1 s warm-up)"
for rate in ${RATES:-1000 10000}; do
    # Exit status 1 means errors in the run; they are printed, not fatal here.
    "$BIN/wsharness" bench --url "$SERVER_URL" --conns "${CONNS:-10}" --rate "$rate" \
        --duration "${DURATION:-10}" --warmup 1 --json >"$CI_TMP/rate-$rate.json" || true
    python3 - "$CI_TMP/rate-$rate.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
rate, rtt = r["rate"], r["rtt_us"]
t, a = rate["target_per_sec"], rate["achieved_per_sec"]
print(f"target {t:>8.0f} msg/s  achieved {a:>10.1f} msg/s ({(a / t - 1) * 100:+.2f} %)  "
      f"behind schedule p50 {rate['behind_us']['p50']} µs p99 {rate['behind_us']['p99']} µs  "
      f"unsent {rate['unsent']}  echoes {r['messages_per_sec']:.1f}/s  "
      f"round trip p50 {rtt['p50']} µs p99 {rtt['p99']} µs  errors {r['error_count']}")
PY
done
