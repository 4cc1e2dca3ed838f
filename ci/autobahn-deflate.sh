#!/usr/bin/env bash
# The Autobahn compression cases (12.* and 13.*, 216 cases) against the two
# interop servers that negotiate permessage-deflate, Python `websockets` and
# Node `ws` (perMessageDeflate on), with both engines: wstest 25.10.1 and
# wsharness's native engine. For each server and engine it reports the
# verdicts, the wall time, the engine's CPU time and the server's CPU time
# (read from /proc before and after the run), then diffs the two engines
# case by case and each run against the results checked in as
# autobahn/expected/{python-websockets,node-ws}-deflate.json.
#
#   bash ci/autobahn-deflate.sh                  # both servers, both engines
#   SERVERS=python ENGINES=native bash ci/autobahn-deflate.sh
#   JOBS=2 bash ci/autobahn-deflate.sh           # the native engine's --jobs
#   CASES='12.1.*' bash ci/autobahn-deflate.sh    # fewer cases
#
# Exits 1 when a diff finds a difference. It expects what ci/test.sh
# installs: the interop peers (crates/wsproxy/tests/interop: .venv with
# websockets, node_modules with ws), the testsuite's virtualenv (wstest, and
# the test data files the native engine reads), and a release build of
# wsharness. The full wstest runs take long (tens of minutes per server on 2
# cores); the native runs a few minutes each. Results go to
# target/autobahn/deflate-*, the table to target/autobahn/deflate-summary.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=ci/lib.sh
. ci/lib.sh

SERVERS=${SERVERS:-python node}
ENGINES=${ENGINES:-wstest native}
JOBS=${JOBS:-1}
CASES=${CASES:-'12.*,13.*'}
INTEROP=crates/wsproxy/tests/interop
BIN=target/release
OUT=target/autobahn
SUMMARY=$OUT/deflate-summary.md
mkdir -p "$OUT"

[ -x "$BIN/wsharness" ] || cargo build --release -p wsharness

# CPU seconds (user + system) a process has used so far.
cpu_seconds() {
    local stat ticks
    stat=$(cat "/proc/$1/stat")
    stat=${stat##*) }
    # Fields after the command: state is 1st, utime 12th, stime 13th.
    read -r -a f <<<"$stat"
    ticks=$((f[11] + f[12]))
    awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", t / hz }'
}

# The verdict counts of a report directory, as "OK 216" pairs.
counts() {
    python3 - "$1" <<'EOF' 2>/dev/null || echo "?"
import collections, json, sys
index = json.load(open(sys.argv[1] + "/index.json"))
cases = next(iter(index.values()))
b = collections.Counter(c["behavior"] for c in cases.values())
bc = collections.Counter(c["behaviorClose"] for c in cases.values())
fmt = lambda c: ", ".join("%d %s" % (n, k) for k, n in sorted(c.items(), key=lambda kv: -kv[1]))
print("%s | %s" % (fmt(b), fmt(bc)))
EOF
}

FAILED=0
{
    echo "| server | engine | cases | behavior | behaviorClose | wall | engine CPU | server CPU |"
    echo "|---|---|---|---|---|---|---|---|"
} >"$SUMMARY"

for server in $SERVERS; do
    case $server in
    python)
        agent=python-websockets
        start_server python-deflate "$INTEROP/.venv/bin/python" "$INTEROP/peer.py" server
        ;;
    node)
        agent=node-ws
        start_server node-deflate node "$INTEROP/peer.mjs" server
        ;;
    *)
        echo "unknown server $server (python, node)" >&2
        exit 2
        ;;
    esac
    url=$SERVER_URL
    pid=$SERVER_PID
    for engine in $ENGINES; do
        dir=$OUT/deflate-$agent-$engine
        step "$agent, $engine engine: $CASES"
        before=$(cpu_seconds "$pid")
        args=(autobahn run --engine "$engine" --url "$url" --agent "$agent" --cases "$CASES" --out "$dir")
        [ "$engine" = native ] && args+=(--jobs "$JOBS")
        TIMEFORMAT='%R %U %S'
        # wstest's exit code is check's verdict: a failing case is a
        # result here, not an error of the script.
        { time "$BIN/wsharness" "${args[@]}" >"$dir.log" 2>&1 || true; } 2>"$dir.time"
        after=$(cpu_seconds "$pid")
        read -r wall user sys <"$dir.time"
        tail -n 3 "$dir.log"
        server_cpu=$(awk -v a="$after" -v b="$before" 'BEGIN { printf "%.1f", a - b }')
        engine_cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.1f", u + s }')
        cases=$(python3 -c 'import json,sys; print(len(next(iter(json.load(open(sys.argv[1])).values()))))' "$dir/index.json" 2>/dev/null || echo 0)
        echo "| $agent | $engine$([ "$engine" = native ] && echo " --jobs $JOBS") | $cases | $(counts "$dir") | ${wall} s | ${engine_cpu} s | ${server_cpu} s |" >>"$SUMMARY"
        if [ -f "autobahn/expected/$agent-deflate.json" ]; then
            # The cases both have (the checked-in results may hold fewer).
            "$BIN/wsharness" autobahn diff "$dir" "autobahn/expected/$agent-deflate.json" | head -n 3 || FAILED=1
        fi
    done
    if [[ " $ENGINES " == *" wstest "* && " $ENGINES " == *" native "* ]]; then
        step "$agent: native against wstest, case by case"
        "$BIN/wsharness" autobahn diff "$OUT/deflate-$agent-native" "$OUT/deflate-$agent-wstest" --require-all-cases || FAILED=1
    fi
    stop_server "$pid"
done

step "summary ($SUMMARY)"
cat "$SUMMARY"
exit "$FAILED"
