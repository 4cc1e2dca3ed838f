#!/usr/bin/env bash
# Benchmarks: starts on 127.0.0.1 wsecho (both engines), wsproxy in front of
# wsecho (every frame logged as JSON to a file), tokio-tungstenite's own
# example echo loop (read.try_filter(...).forward(write)), and
# when available nginx and websocat (`cargo install websocat`) in front of
# wsecho, socat as a plain TCP relay in front of wsecho (the cost of a
# hop with no inspection), a Node `ws` and a Python `websockets` echo server; runs
# `wsharness bench compare` over them and writes the table to
# bench/results/compare.md.
#
#   ci/bench.sh                 # the comparison (about 5 minutes)
#   ci/bench.sh --idle 1000     # memory per idle connection instead
#   ROUNDS=5 DURATION=5s ci/bench.sh
#
# Latency runs keep the other core busy with a lowest-priority spinner
# (waking an idle virtual CPU costs ~30 µs). Numbers, not assertions.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=ci/lib.sh
. ci/lib.sh

IDLE=""
if [ "${1:-}" = "--idle" ]; then
    IDLE=${2:?"--idle needs a number of connections"}
fi
OUT=bench/results
mkdir -p "$OUT"

step "release build"
cargo build --release -p wsecho -p wsproxy -p wsharness --bins --example tt_echo
BIN=target/release

step "peers"
if command -v node >/dev/null && [ ! -d bench/node/node_modules/ws ]; then
    (cd bench/node && npm ci --no-audit --no-fund --silent) || echo "Node ws unavailable; skipping it"
fi
if [ ! -x bench/.venv/bin/python ]; then
    python3 -m venv bench/.venv && bench/.venv/bin/pip install -q -r bench/requirements.txt ||
        echo "Python websockets unavailable; skipping it"
fi

step "servers"
TARGETS=()
PIDS=()
start_server wsecho "$BIN/wsecho" --listen 127.0.0.1:0 --quiet
ECHO_URL=$SERVER_URL
TARGETS+=("wsecho=$SERVER_URL@$SERVER_PID")
start_server wsecho-tt "$BIN/wsecho" --listen 127.0.0.1:0 --quiet --engine tokio-tungstenite
TARGETS+=("wsecho --engine tokio-tungstenite=$SERVER_URL@$SERVER_PID")
start_server tt-echo "$BIN/examples/tt_echo"
TARGETS+=("tokio-tungstenite example=$SERVER_URL@$SERVER_PID")
start_server wsproxy "$BIN/wsproxy" --listen 127.0.0.1:0 --upstream "$ECHO_URL" --format json --log "$OUT/wsproxy-events.jsonl"
TARGETS+=("wsproxy→wsecho=$SERVER_URL@$SERVER_PID")
# The recording outputs (issue 15): the proxy with its event output off,
# with --pcap alone, and with --pcap and the JSON log. The captures (GBs)
# are removed after the run.
CAPTURES=$(mktemp -d)
OFF=(--messages-only --max-preview 0 --log /dev/null)
start_server wsproxy-off "$BIN/wsproxy" --listen 127.0.0.1:0 --upstream "$ECHO_URL" "${OFF[@]}"
TARGETS+=("wsproxy(output off)=$SERVER_URL@$SERVER_PID")
start_server wsproxy-none "$BIN/wsproxy" --listen 127.0.0.1:0 --upstream "$ECHO_URL" --format none
TARGETS+=("wsproxy --format none=$SERVER_URL@$SERVER_PID")
start_server wsproxy-pcap "$BIN/wsproxy" --listen 127.0.0.1:0 --upstream "$ECHO_URL" "${OFF[@]}" --pcap "$CAPTURES/a.pcapng"
TARGETS+=("wsproxy --pcap=$SERVER_URL@$SERVER_PID")
start_server wsproxy-pcap-json "$BIN/wsproxy" --listen 127.0.0.1:0 --upstream "$ECHO_URL" --format json \
    --log "$CAPTURES/b.jsonl" --pcap "$CAPTURES/b.pcapng"
TARGETS+=("wsproxy --pcap + JSON=$SERVER_URL@$SERVER_PID")
if command -v nginx >/dev/null; then
    NGINX_DIR=$(mktemp -d)
    NGINX_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    sed "s|@LISTEN@|127.0.0.1:$NGINX_PORT|; s|@UPSTREAM@|${ECHO_URL#ws://}|; s|@DIR@|$NGINX_DIR|g" \
        bench/nginx.conf.template >"$NGINX_DIR/nginx.conf"
    # nginx prints nothing when ready; wrap it so it announces itself once
    # its port accepts connections.
    start_server nginx bash -c "nginx -c '$NGINX_DIR/nginx.conf' -p '$NGINX_DIR' & pid=\$!; \
        until (exec 3<>/dev/tcp/127.0.0.1/$NGINX_PORT) 2>/dev/null; do kill -0 \$pid || exit 1; done; \
        echo 'listening on ws://127.0.0.1:$NGINX_PORT' >&2; trap 'kill \$pid' TERM; wait \$pid"
    TARGETS+=("nginx→wsecho=$SERVER_URL")
fi
if command -v websocat >/dev/null; then
    # websocat as a WebSocket reverse proxy in front of wsecho (it re-frames
    # messages; with its default 64 KiB buffer it splits 1 MiB messages, so
    # the buffer is raised). Like nginx it prints nothing when ready.
    WS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    start_server websocat bash -c "websocat --binary --exit-on-eof --buffer-size 4194304 ws-l:127.0.0.1:$WS_PORT '$ECHO_URL' & pid=\$!; \
        until (exec 3<>/dev/tcp/127.0.0.1/$WS_PORT) 2>/dev/null; do kill -0 \$pid || exit 1; done; \
        echo 'listening on ws://127.0.0.1:$WS_PORT' >&2; trap 'kill \$pid' TERM; wait \$pid"
    TARGETS+=("websocat→wsecho=$SERVER_URL")
fi
if command -v socat >/dev/null; then
    # socat as a plain TCP relay (no WebSocket inspection, no log), with a
    # 256 KiB buffer like wsproxy's: what one more process hop costs here
    # before any inspecting or logging. One process per connection (fork).
    SOCAT_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    start_server socat bash -c "socat -b 262144 TCP4-LISTEN:$SOCAT_PORT,bind=127.0.0.1,reuseaddr,fork,nodelay TCP4:${ECHO_URL#ws://},nodelay & pid=\$!; \
        until (exec 3<>/dev/tcp/127.0.0.1/$SOCAT_PORT) 2>/dev/null; do kill -0 \$pid || exit 1; done; \
        echo 'listening on ws://127.0.0.1:$SOCAT_PORT' >&2; trap 'kill \$pid' TERM; wait \$pid"
    TARGETS+=("socat(tcp)→wsecho=$SERVER_URL")
fi
if [ -d bench/node/node_modules/ws ]; then
    start_server node-ws node bench/node/echo.js
    TARGETS+=("node-ws=$SERVER_URL@$SERVER_PID")
fi
if [ -x bench/.venv/bin/python ] && bench/.venv/bin/python -c 'import websockets' 2>/dev/null; then
    start_server python-websockets bench/.venv/bin/python bench/echo_websockets.py
    TARGETS+=("python-websockets=$SERVER_URL@$SERVER_PID")
fi

if [ -n "$IDLE" ]; then
    step "memory per idle connection ($IDLE connections each)"
    : >"$OUT/idle.txt"
    for t in "${TARGETS[@]}"; do
        name=${t%%=*}
        rest=${t#*=}
        case $rest in *@*) ;; *) echo "$name: no PID to sample, skipped"; continue ;; esac
        "$BIN/wsharness" bench idle --url "${rest%@*}" --pid "${rest##*@}" --conns "$IDLE" | sed "s|^|$name: |" | tee -a "$OUT/idle.txt"
    done
    rm -rf "$CAPTURES"
    exit 0
fi

step "compare (${ROUNDS:-3} rounds, ${DURATION:-3s} per run)"
{
    echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores ($(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)),"
    echo "load generator on one thread; ratios against the first column, measured in the same run."
    echo
    "$BIN/wsharness" bench compare --rounds "${ROUNDS:-3}" --duration "${DURATION:-3s}" "${TARGETS[@]}"
} | tee "$OUT/compare.md"
rm -rf "$CAPTURES"
