#!/usr/bin/env bash
# The fuzzingserver's parity gate for clients: each client driver runs
# against wstest 25.10.1's fuzzingserver and against wsharness's own
# (`wsharness autobahn client --engine wstest|native`); the two runs are
# diffed case by case, and each with the results checked in as
# autobahn/expected/clients/CLIENT.json. Prints a table of verdicts and
# wall times (target/autobahn/clients-summary.md).
#
#   bash ci/autobahn-clients.sh                          # every client, both engines
#   CLIENTS='python node' ENGINES=native bash ci/autobahn-clients.sh
#
# Clients: broken-unmasked, broken-unchecked (crates/wsbroken), tokio-tungstenite
# (crates/wsharness/examples/tt_autobahn_client.rs), wsproto (our own:
# crates/wsharness/examples/wsproto_autobahn_client.rs), python (websockets
# 17.4) and node (ws 8.23.0), the last three offering permessage-deflate.
# Every client runs all 517 cases; SUBSET=1 runs the clients that compress
# on families 1-7, 9, 10 and ci/test.sh's 72-case compression subset
# instead. Expects what ci/test.sh installs (the interop peers, the
# testsuite's virtualenv, with wstest's C accelerators). Exits 1 on any
# difference.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=ci/lib.sh
. ci/lib.sh

CLIENTS=${CLIENTS:-broken-unmasked broken-unchecked tokio-tungstenite wsproto python node}
ENGINES=${ENGINES:-wstest native}
INTEROP=$PWD/crates/wsproxy/tests/interop
BIN=$PWD/target/release
OUT=target/autobahn/clients
SUMMARY=target/autobahn/clients-summary.md
COMPRESSION_SUBSET="1.*,2.*,3.*,4.*,5.*,6.*,7.*,9.*,10.*,12.?.1,12.?.2,12.?.3,12.?.4,12.?.5,12.?.6,13.?.1,13.?.2,13.?.3,13.?.4,13.?.5,13.?.6"
mkdir -p "$OUT"

cargo build --release -p wsharness -p wsbroken --bins --example tt_autobahn_client --example wsproto_autobahn_client

driver() {
    case $1 in
    broken-unmasked) echo "$BIN/wsbroken --client-flaw unmasked" ;;
    broken-unchecked) echo "$BIN/wsbroken --client-flaw unchecked" ;;
    tokio-tungstenite) echo "$BIN/examples/tt_autobahn_client" ;;
    wsproto) echo "$BIN/examples/wsproto_autobahn_client" ;;
    python) echo "$INTEROP/.venv/bin/python $PWD/autobahn/clients/websockets_client.py" ;;
    node) echo "node $PWD/autobahn/clients/ws_client.cjs" ;;
    *) echo "unknown client $1" >&2; exit 2 ;;
    esac
}
cases() {
    case $1 in
    wsproto | python | node) [ "${SUBSET:-0}" = 1 ] && echo "$COMPRESSION_SUBSET" || echo "*" ;;
    *) echo "*" ;;
    esac
}
agent() {
    case $1 in
    python) echo python-websockets ;;
    node) echo node-ws ;;
    *) echo "$1" ;;
    esac
}

printf '| client | engine | cases | wall | verdicts |\n|---|---|---|---|---|\n' >"$SUMMARY"
status=0
for client in $CLIENTS; do
    for engine in $ENGINES; do
        dir="$OUT/$client-$engine"
        rm -rf "$dir"
        start=$(date +%s.%N)
        # Exit 1 is a verdict (failing cases), not an error.
        AUTOBAHN_AGENT=$(agent "$client") NODE_PATH="$INTEROP/node_modules" \
            "$BIN/wsharness" autobahn client --engine "$engine" --cases "$(cases "$client")" --out "$dir" \
            --cmd "$(driver "$client")" >"$dir.log" 2>&1 || [ $? -eq 1 ] || { tail -20 "$dir.log"; status=1; continue; }
        wall=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f s", e - s }')
        verdicts=$(python3 -c 'import json,sys,collections
d=json.load(open(sys.argv[1]))
c=collections.Counter(v["behavior"] for a in d.values() for v in a.values())
print(", ".join(f"{n} {k}" for k, n in c.most_common()))' "$dir/index.json")
        label=$([ "$(cases "$client")" = "*" ] && echo "all 517" || echo "1-7, 9, 10 and 72 of 12/13")
        echo "| $client | $engine | $label | $wall | $verdicts |" >>"$SUMMARY"
        echo "$client, $engine: $wall; $verdicts"
        "$BIN/wsharness" autobahn diff "$dir" "autobahn/expected/clients/$(agent "$client").json" --require-all-cases || status=1
    done
    if [ -d "$OUT/$client-wstest" ] && [ -d "$OUT/$client-native" ]; then
        "$BIN/wsharness" autobahn diff "$OUT/$client-native" "$OUT/$client-wstest" --require-all-cases || status=1
    fi
done
cat "$SUMMARY"
exit $status
