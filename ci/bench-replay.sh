#!/usr/bin/env bash
# How closely `wsharness replay` keeps the recorded pacing: starts wsecho
# and wsproxy (--format json --max-preview all) on 127.0.0.1, records one
# connection of `wsharness bench --rate` through the proxy (messages at a
# steady RATE per second), also captured with --pcap, then replays the
# recording (the JSON log, and the pcapng capture at --speed 1) against
# wsecho at --speed 1 and 2 and prints how late each frame went out against its
# recorded time (p50, p99, max) and whether the answers matched. The aim is
# every frame within 10 ms at --speed 1 on a quiet machine. Numbers, not
# assertions.
#
#   ci/bench-replay.sh
#   RATE=100 DURATION=10 ci/bench-replay.sh
#   PROFILE=debug ci/bench-replay.sh     (debug binaries, to try the script)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=ci/lib.sh
. ci/lib.sh

PROFILE=${PROFILE:-release}
step "$PROFILE build"
if [ "$PROFILE" = release ]; then
    cargo build --release -p wsecho -p wsproxy -p wsharness
else
    cargo build -p wsecho -p wsproxy -p wsharness
fi
BIN=${CARGO_TARGET_DIR:-target}/$PROFILE

step "wsecho, and wsproxy recording in front of it"
start_server wsecho "$BIN/wsecho" --listen 127.0.0.1:0 --quiet
ECHO_URL=$SERVER_URL
LOG="$CI_TMP/session.jsonl"
start_server wsproxy "$BIN/wsproxy" --listen 127.0.0.1:0 --upstream "$ECHO_URL" \
    --format json --max-preview all --log "$LOG" --pcap "$CI_TMP/session.pcapng"
PROXY_URL=$SERVER_URL
PROXY_PID=$SERVER_PID

step "record: one connection, ${RATE:-50} msg/s for ${DURATION:-5} s"
"$BIN/wsharness" bench --url "$PROXY_URL" --conns 1 --rate "${RATE:-50}" --duration "${DURATION:-5}" \
    --warmup 0.2 --json >"$CI_TMP/record.json" || true
# SIGTERM: the proxy drains and writes the rest of its log.
stop_server "$PROXY_PID"
echo "recorded $(grep -c '"event":"frame"' "$LOG") frames"

step "replay against wsecho"
for run in "log 1" "log 2" "pcapng 1"; do
    read -r kind speed <<<"$run"
    recording=$LOG
    [ "$kind" = pcapng ] && recording=$CI_TMP/session.pcapng
    "$BIN/wsharness" replay "$recording" --url "$ECHO_URL" --speed "$speed" --json >"$CI_TMP/replay-$kind-$speed.json" || true
    python3 - "$CI_TMP/replay-$kind-$speed.json" "$speed" "$kind" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
t = r["timing"]
print(f"{sys.argv[3]:6} --speed {sys.argv[2]}: {t['frames']} frames, late by p50 {t['late_us_p50']} µs, "
      f"p99 {t['late_us_p99']} µs, max {t['late_us_max']} µs "
      f"({'within' if t['late_us_max'] <= 10_000 else 'NOT within'} 10 ms); "
      f"answers {'match' if r['matched'] else 'differ: ' + str(len(r['differences']))}")
PY
done
