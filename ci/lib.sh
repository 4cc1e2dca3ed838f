# Helpers for ci/*.sh: start servers on 127.0.0.1 port 0, wait for their
# "listening on ws://ADDR" line (never sleep), and stop them on exit, even
# when a step fails.

CI_TMP="${CI_TMP:-$(mktemp -d -t wstoolkit-ci.XXXXXX)}"
CI_PIDS=()

ci_cleanup() {
    local pid
    for pid in "${CI_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${CI_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    CI_PIDS=()
}
trap ci_cleanup EXIT INT TERM

step() { printf '\n==> %s\n' "$*"; }

# start_server NAME CMD [ARGS...]
# Starts CMD with its stderr logged to $CI_TMP/NAME.log, waits up to 60 s for
# its "listening on ws://ADDR" line, and sets SERVER_URL and SERVER_PID.
start_server() {
    local name=$1
    shift
    local fifo="$CI_TMP/$name.fifo" log="$CI_TMP/$name.log" line fd
    rm -f "$fifo"
    mkfifo "$fifo"
    "$@" 2>"$fifo" &
    SERVER_PID=$!
    CI_PIDS+=("$SERVER_PID")
    exec {fd}<"$fifo"
    SERVER_URL=""
    while IFS= read -r -t 60 -u "$fd" line; do
        printf '%s\n' "$line" >>"$log"
        case $line in
        "listening on "*)
            SERVER_URL=${line#listening on }
            break
            ;;
        esac
    done
    # Keep draining the server's stderr so it never blocks on a full pipe.
    cat <&"$fd" >>"$log" &
    CI_PIDS+=("$!")
    exec {fd}<&-
    if [ -z "$SERVER_URL" ]; then
        echo "error: $name did not announce its address within 60 s; its log:" >&2
        cat "$log" >&2
        return 1
    fi
    echo "$name: $SERVER_URL (pid $SERVER_PID)"
}

# stop_server PID: SIGTERM, and wait for it.
stop_server() {
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
