#!/usr/bin/env bash
# The project's one test command: everything CI checks, in order.
# Runs on a fresh machine as root with only the package registries reachable;
# installs what it needs and starts (and stops) every server its tests use,
# on 127.0.0.1 only.
#
# It needs: bash 4.4 or later, Rust (cargo), python3 with venv, node and
# npm, network to crates.io, PyPI and npm, a CPython 2.7 for the Autobahn
# testsuite, and Chromium, Firefox ESR and tshark (installed with apt-get
# when run as root on Debian). It checks for them first and says what is missing; `cargo test
# --workspace` alone needs none of them.
set -euo pipefail
# {fd} redirections need bash 4.1, empty arrays under `set -u` 4.4.
if ((BASH_VERSINFO[0] < 4 || (BASH_VERSINFO[0] == 4 && BASH_VERSINFO[1] < 4))); then
    echo "ci/test.sh: needs bash 4.4 or later, this is $BASH_VERSION (on macOS: brew install bash, then run it with that bash)" >&2
    exit 1
fi
cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# shellcheck source=ci/lib.sh
. ci/lib.sh

step "preflight: what this script needs and cannot install itself"
MISSING=()
for tool in cargo python3 node npm; do
    command -v "$tool" >/dev/null || MISSING+=("$tool")
done
if command -v python3 >/dev/null && ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    MISSING+=("python3's venv module (Debian: python3-venv)")
fi
# The Autobahn testsuite runs on Python 2.7 only; wsharness looks for it
# the same way.
PY27=""
for candidate in "${WSHARNESS_PYTHON2:-}" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/2.7*/bin/python python2.7 python2; do
    if [ -n "$candidate" ] && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (2, 7))' 2>/dev/null; then
        PY27=$candidate
        break
    fi
done
[ -n "$PY27" ] || MISSING+=("CPython 2.7 for the Autobahn testsuite (pyenv install 2.7.18, or set WSHARNESS_PYTHON2=/path/to/python2.7)")
if ! command -v chromium >/dev/null; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        echo "chromium: not installed; the browser step installs it with apt-get"
    elif command -v apt-get >/dev/null; then
        MISSING+=("chromium (apt-get install chromium needs root: run this script as root, or install it first)")
    else
        MISSING+=("chromium: no apt-get here (not Debian); install Chromium with your package manager so that 'chromium' is on the PATH")
    fi
fi
if [ -z "${FIREFOX:-}" ] && ! command -v firefox-esr >/dev/null; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        echo "firefox-esr: not installed; the browser step installs it with apt-get"
    else
        MISSING+=("firefox-esr (the live view's browser test runs in Firefox too; apt-get install firefox-esr as root, or set FIREFOX=/path/to/firefox)")
    fi
fi
if ! command -v tshark >/dev/null || ! command -v tcpdump >/dev/null; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        echo "tshark, tcpdump: not installed; the capture step installs them with apt-get"
    else
        MISSING+=("tshark and tcpdump (to check wsproxy --pcap captures and read tcpdump's; apt-get install tshark tcpdump as root)")
    fi
fi
if ((${#MISSING[@]} > 0)); then
    echo "ci/test.sh: cannot run everything; missing:" >&2
    printf '  - %s\n' "${MISSING[@]}" >&2
    echo "The quick path needs only Rust: cargo test --workspace (it skips the interop peers, Autobahn, the browser test and fuzzing)." >&2
    exit 1
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "interop peers: Python websockets and Node ws (for wsproxy's interop tests)"
INTEROP=crates/wsproxy/tests/interop
if ! "$INTEROP/.venv/bin/python" -c 'import websockets' 2>/dev/null; then
    python3 -m venv "$INTEROP/.venv"
    "$INTEROP/.venv/bin/pip" install -q -r "$INTEROP/requirements.txt"
fi
(cd "$INTEROP" && npm ci --no-audit --no-fund --silent)
# A missing peer fails the interop tests here instead of skipping them;
# wsharness's bench tests use the same Python (its TLS server).
export WSTOOLKIT_REQUIRE_INTEROP=1
# The native engine's compression cases read the testsuite's test data files
# from its virtualenv, created before cargo test (below).
export WSTOOLKIT_REQUIRE_TESTDATA=1
export WSTOOLKIT_PYTHON="$ROOT/$INTEROP/.venv/bin/python"

step "tshark and tcpdump: Wireshark's dissectors judge wsproxy --pcap captures, tcpdump's are read back (in cargo test)"
if ! command -v tshark >/dev/null || ! command -v tcpdump >/dev/null; then
    apt-get update -qq
    # Noninteractive: the question about capturing as non-root is answered no.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tshark tcpdump >/dev/null
fi
tshark --version | sed -n 1p
tcpdump --version | sed -n 1p
# A missing tshark or tcpdump fails the capture tests here instead of
# skipping them.
export WSTOOLKIT_REQUIRE_TSHARK=1

step "the Autobahn testsuite's virtualenv (wstest, and the test data files the native engine reads)"
AUTOBAHN_VENV=$(cargo run -q -p wsharness -- autobahn setup)
# wstest's C accelerators (wsaccel: UTF-8 validation and masking) cut its CPU
# on the compression cases about sixfold; the full suite against wsecho
# (permessage-deflate on) below needs them to fit in CI's time.
"$AUTOBAHN_VENV/bin/python" -c 'import wsaccel.utf8validator, wsaccel.xormask'
# The tests that need the testsuite (the Docker stand-in, wstest's
# fuzzingserver against the native one) fail here instead of skipping.
export WSTOOLKIT_REQUIRE_AUTOBAHN=1

step "cargo test --workspace"
cargo test --workspace --no-fail-fast 2>&1

step "cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

step "release build"
cargo build --release -p wsecho -p wsharness -p wsproxy
# The reference echo server: tokio-tungstenite's own example loop.
cargo build --release -p wsharness --example tt_echo
BIN=target/release

step "Autobahn fuzzingclient, full suite (with compression), against wsecho, then the native engine"
# wsecho's default engine (wsproto, permessage-deflate on): all 517 cases by
# wstest (about 8 minutes here with its C accelerators; most of it the 216
# compression cases), diffed with wstest's results checked in; then by the
# native engine against the same server, diffed with that run.
start_server wsecho "$BIN/wsecho" --listen 127.0.0.1:0 --quiet
ECHO_PID=$SERVER_PID
ECHO_URL=$SERVER_URL
"$BIN/wsharness" autobahn run --engine wstest --url "$ECHO_URL" --agent wsecho --out target/autobahn/wsecho
"$BIN/wsharness" autobahn diff target/autobahn/wsecho autobahn/expected/wsecho.json --require-all-cases
env PATH=/nonexistent "$BIN/wsharness" autobahn run --engine native --jobs 8 --url "$ECHO_URL" --agent wsecho \
    --out target/autobahn/wsecho-native
"$BIN/wsharness" autobahn diff target/autobahn/wsecho-native target/autobahn/wsecho --require-all-cases

step "Autobahn, native engine, full suite through wsproxy to wsecho (every compressed message inflated)"
# Four cases at a time: proxy-log matches each connection to its case by
# its Sec-WebSocket-Key.
start_server wsproxy "$BIN/wsproxy" --listen 127.0.0.1:0 --upstream "$ECHO_URL" --format json --log target/autobahn/wsproxy.jsonl
PROXY_PID=$SERVER_PID
env PATH=/nonexistent "$BIN/wsharness" autobahn run --engine native --jobs 4 --url "$SERVER_URL" --agent wsecho \
    --out target/autobahn/wsproxy
# Case for case the same results as wstest's direct run…
"$BIN/wsharness" autobahn diff target/autobahn/wsproxy target/autobahn/wsecho --require-all-cases
stop_server "$PROXY_PID"
# …and violations reported in exactly the cases that send bad frames on
# purpose; a compressed message the proxy could not inflate would be one.
"$BIN/wsharness" autobahn proxy-log target/autobahn/wsproxy target/autobahn/wsproxy.jsonl \
    --expected autobahn/expected/wsproxy-violations.txt
stop_server "$ECHO_PID"

step "Autobahn, native engine, full suite against wsecho --engine tokio-tungstenite"
# wstest's results for this engine are checked in (all 517 cases; 216
# UNIMPLEMENTED: it declines permessage-deflate); the run above shows the
# native engine's verdicts are wstest's.
start_server wsecho-tt "$BIN/wsecho" --listen 127.0.0.1:0 --quiet --engine tokio-tungstenite
TT_ENGINE_PID=$SERVER_PID
env PATH=/nonexistent "$BIN/wsharness" autobahn run --engine native --jobs 8 --url "$SERVER_URL" \
    --agent wsecho-tokio-tungstenite --out target/autobahn/wsecho-tokio-tungstenite-native
"$BIN/wsharness" autobahn diff target/autobahn/wsecho-tokio-tungstenite-native \
    autobahn/expected/wsecho-tokio-tungstenite.json --require-all-cases
stop_server "$TT_ENGINE_PID"

# Against Python and Node, a representative subset of 12.* and 13.*: every
# group, with the six smallest message sizes (16 B to 1 KiB; 72 cases).
# Those servers compress slowly themselves; the full set against them is
# ci/autobahn-deflate.sh (see the README).
DEFLATE_CASES=${DEFLATE_CASES:-"12.?.1,12.?.2,12.?.3,12.?.4,12.?.5,12.?.6,13.?.1,13.?.2,13.?.3,13.?.4,13.?.5,13.?.6"}

step "Autobahn, native engine, full suite against tokio-tungstenite's example echo server"
# wstest's results for this server are checked in (all 517 cases; no
# compression in tokio-tungstenite, so 216 UNIMPLEMENTED by design). Left
# out: 3.4, 4.1.5 and 4.2.5, whose verdict here is timing (OK when the
# example's write half flushes the echo before its read half fails on the
# broken frame that follows, NON-STRICT when not; both seen in CI).
start_server tt-echo "$BIN/examples/tt_echo" 127.0.0.1:0
TT_PID=$SERVER_PID
env PATH=/nonexistent "$BIN/wsharness" autobahn run --engine native --jobs 8 --url "$SERVER_URL" --agent tokio-tungstenite \
    --exclude '3.4,4.1.5,4.2.5' --out target/autobahn/tokio-tungstenite-native
"$BIN/wsharness" autobahn diff target/autobahn/tokio-tungstenite-native autobahn/expected/tokio-tungstenite.json
stop_server "$TT_PID"

step "Autobahn compression cases against Python websockets, direct and through wsproxy"
start_server python-echo "$INTEROP/.venv/bin/python" "$INTEROP/peer.py" server
PY_PID=$SERVER_PID
PY_URL=$SERVER_URL
"$BIN/wsharness" autobahn run --engine wstest --url "$PY_URL" --agent python-websockets --cases "$DEFLATE_CASES" --out target/autobahn/python
# Against wstest's results checked in: were compression no longer
# negotiated, every case would turn UNIMPLEMENTED, which check accepts.
"$BIN/wsharness" autobahn diff target/autobahn/python autobahn/expected/python-websockets-deflate.json
start_server wsproxy-deflate "$BIN/wsproxy" --listen 127.0.0.1:0 --upstream "$PY_URL" --format json --log target/autobahn/wsproxy-deflate.jsonl
PROXY_PID=$SERVER_PID
"$BIN/wsharness" autobahn run --engine wstest --url "$SERVER_URL" --agent python-websockets --cases "$DEFLATE_CASES" --out target/autobahn/wsproxy-deflate
"$BIN/wsharness" autobahn diff target/autobahn/wsproxy-deflate target/autobahn/python --require-all-cases
stop_server "$PROXY_PID"
# Every compressed message inflated, no violation in any case.
"$BIN/wsharness" autobahn proxy-log target/autobahn/wsproxy-deflate target/autobahn/wsproxy-deflate.jsonl \
    --expected autobahn/expected/wsproxy-deflate-violations.txt

step "Autobahn, native engine, the compression cases against Python websockets and Node ws, with nothing on the PATH"
# The same subset, diffed with wstest's results checked in
# (autobahn/expected/*-deflate.json) and, against Python, with this run's
# wstest. Bounded: under a minute each on 2 cores, most of it the servers'
# own compression. All 216 cases, with both engines and their wall and CPU
# times: ci/autobahn-deflate.sh (the README reports its results).
timeout 600 env PATH=/nonexistent "$BIN/wsharness" autobahn run --engine native --jobs 2 --url "$PY_URL" \
    --agent python-websockets --cases "$DEFLATE_CASES" --out target/autobahn/python-native
"$BIN/wsharness" autobahn diff target/autobahn/python-native autobahn/expected/python-websockets-deflate.json
"$BIN/wsharness" autobahn diff target/autobahn/python-native target/autobahn/python --require-all-cases
stop_server "$PY_PID"
start_server node-echo node "$INTEROP/peer.mjs" server
NODE_PID=$SERVER_PID
timeout 600 env PATH=/nonexistent "$BIN/wsharness" autobahn run --engine native --jobs 2 --url "$SERVER_URL" \
    --agent node-ws --cases "$DEFLATE_CASES" --out target/autobahn/node-native
"$BIN/wsharness" autobahn diff target/autobahn/node-native autobahn/expected/node-ws-deflate.json
stop_server "$NODE_PID"

step "Autobahn for clients: wsharness's fuzzingserver against broken clients, tokio-tungstenite's and our own"
# All 517 cases each (ours with permessage-deflate: about 3 minutes of it).
# wstest's results for each client are checked in (autobahn/expected/clients);
# the broken clients' runs must fail (exit 1) with exactly wstest's verdicts.
# The Python and Node clients, with both fuzzingservers: ci/autobahn-clients.sh.
cargo build --release -p wsbroken -p wsharness --bins --example tt_autobahn_client --example wsproto_autobahn_client
CLIENTS_OUT=target/autobahn/clients
mkdir -p "$CLIENTS_OUT"
# autobahn_client ENGINE NAME EXPECTED_EXIT CASES DRIVER...: one run, its
# exit code checked, its verdicts diffed with wstest's.
autobahn_client() {
    local engine=$1 name=$2 want=$3 cases=$4 rc=0
    shift 4
    timeout 900 env PATH="$([ "$engine" = native ] && echo /nonexistent || echo "$PATH")" \
        "$BIN/wsharness" autobahn client --engine "$engine" --cases "$cases" --out "$CLIENTS_OUT/$name-$engine" \
        -- "$@" >"$CLIENTS_OUT/$name-$engine.log" 2>&1 || rc=$?
    if [ "$rc" -ne "$want" ]; then
        tail -30 "$CLIENTS_OUT/$name-$engine.log"
        echo "error: autobahn client ($engine) for $name exited $rc, expected $want" >&2
        return 1
    fi
    sed -n '/^category/,/^Total/p' "$CLIENTS_OUT/$name-$engine.log"
    "$BIN/wsharness" autobahn diff "$CLIENTS_OUT/$name-$engine" "autobahn/expected/clients/$name.json" --require-all-cases
}
autobahn_client native broken-unmasked 1 '*' "$BIN/wsbroken" --client-flaw unmasked
autobahn_client native broken-unchecked 1 '*' "$BIN/wsbroken" --client-flaw unchecked
autobahn_client native tokio-tungstenite 0 '*' "$BIN/examples/tt_autobahn_client"
autobahn_client native wsproto 0 '*' "$BIN/examples/wsproto_autobahn_client"
# wstest's fuzzingserver once, to catch drift between it and the results.
autobahn_client wstest broken-unmasked 1 '*' "$BIN/wsbroken" --client-flaw unmasked

step "browser end to end: headless Chromium through wsproxy to its embedded echo server (and its --har)"
if ! command -v chromium >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
(cd crates/wsproxy/tests/browser && npm ci --no-audit --no-fund --silent)
rm -f "$ROOT/target/e2e.har"
start_server wsproxy-e2e "$BIN/wsproxy" --listen 127.0.0.1:0 --format json --log "$ROOT/target/e2e-events.jsonl" \
    --har "$ROOT/target/e2e.har"
# Also: the HAR validates (har-validator) and its messages are what
# Chromium reports through the DevTools protocol.
(cd crates/wsproxy/tests/browser && node demo.mjs "http://${SERVER_URL#ws://}/" "$ROOT/target/e2e-events.jsonl" "$ROOT/target/e2e.har")
stop_server "$SERVER_PID"

step "browser: the native Autobahn engine's index.html (wsecho's run and the compression run against Python websockets)"
(cd crates/wsproxy/tests/browser && node autobahn_report.mjs "$ROOT/target/autobahn/wsecho-native" "$ROOT/target/autobahn-wsecho.png")
(cd crates/wsproxy/tests/browser && node autobahn_report.mjs "$ROOT/target/autobahn/python-native" "$ROOT/target/autobahn-python.png")

step "browser end to end: the live view (--ui) of the demo page's and raw clients' traffic, in Chromium and Firefox"
if [ -z "${FIREFOX:-}" ] && ! command -v firefox-esr >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq firefox-esr >/dev/null
fi
"${FIREFOX:-firefox-esr}" --version
# The same checks in each browser, each against a fresh proxy; the view's
# pcapng download is read back with this build's `wsproxy read`.
for browser in chromium firefox; do
    start_server "wsproxy-ui-$browser" "$BIN/wsproxy" --listen 127.0.0.1:0 --ui 127.0.0.1:0 --log /dev/null
    UI_PID=$SERVER_PID
    # wsproxy prints the view's URL before its "listening on" line.
    UI_URL=$(sed -n 's/^wsproxy: live view at //p' "$CI_TMP/wsproxy-ui-$browser.log" | head -n 1)
    [ -n "$UI_URL" ] || { echo "error: wsproxy did not print the live view's URL; its log:" >&2; cat "$CI_TMP/wsproxy-ui-$browser.log" >&2; exit 1; }
    (cd crates/wsproxy/tests/browser && WSPROXY="$ROOT/$BIN/wsproxy" node ui.mjs "http://${SERVER_URL#ws://}/" "$UI_URL" "$ROOT/target" "$browser")
    stop_server "$UI_PID"
done

step "fuzz targets (stable, no sanitizer, ${FUZZ_SECONDS:-30} s each)"
FUZZ_SECONDS=${FUZZ_SECONDS:-30} bash ci/fuzz.sh

step "all checks passed"
