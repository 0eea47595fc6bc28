# bench/lib.sh — shared pieces of the shell benchmarks (sourced, not run).
#
# start_daemon [extra corod args...]
#   Starts the real corod binary ($COROD_BIN, default daemon/corod under the
#   repository root) on 127.0.0.1 with a free port, a database and a download
#   directory in a fresh temporary directory, waits for the "listening on
#   127.0.0.1:PORT" line on its stderr and for GET /healthz to answer 200.
#   Sets DAEMON_PID, DAEMON_PORT, DAEMON_URL, DAEMON_TMP.
# stop_daemon
#   SIGTERM (then SIGKILL after 10 s), removes the temporary directory.
#   Installed as an EXIT/INT/TERM trap by start_daemon, so a benchmark that
#   fails or is interrupted still cleans up.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$BENCH_DIR/.." && pwd)
COROD_BIN=${COROD_BIN:-$REPO_ROOT/daemon/corod}
case $COROD_BIN in /*) ;; *) COROD_BIN=$REPO_ROOT/$COROD_BIN ;; esac

DAEMON_PID=
DAEMON_PORT=
DAEMON_URL=
DAEMON_TMP=

bench_die() { echo "bench: $*" >&2; exit 1; }

stop_daemon() {
    if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
        kill -TERM "$DAEMON_PID" 2>/dev/null
        local i
        for i in $(seq 100); do
            kill -0 "$DAEMON_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$DAEMON_PID" 2>/dev/null; then
            echo "bench: corod $DAEMON_PID did not stop on SIGTERM within 10 s, killing it" >&2
            kill -KILL "$DAEMON_PID" 2>/dev/null
        fi
        wait "$DAEMON_PID" 2>/dev/null
    fi
    DAEMON_PID=
    if [ -n "$DAEMON_TMP" ] && [ -d "$DAEMON_TMP" ]; then
        rm -rf "$DAEMON_TMP"
    fi
    DAEMON_TMP=
}

_bench_trap() { stop_daemon; }

start_daemon() {
    [ -x "$COROD_BIN" ] || bench_die "no corod binary at $COROD_BIN (build it, or set COROD_BIN)"
    DAEMON_TMP=$(mktemp -d "${TMPDIR:-/tmp}/corod-bench.XXXXXX") || bench_die "mktemp failed"
    trap _bench_trap EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    mkdir -p "$DAEMON_TMP/dl"
    "$COROD_BIN" --listen 127.0.0.1:0 --db "$DAEMON_TMP/corod.db" \
        --download-dir "$DAEMON_TMP/dl" "$@" \
        >"$DAEMON_TMP/stdout.log" 2>"$DAEMON_TMP/stderr.log" </dev/null &
    DAEMON_PID=$!
    local i
    DAEMON_PORT=
    for i in $(seq 200); do          # up to 20 s for the listening line
        DAEMON_PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' \
                      "$DAEMON_TMP/stderr.log" | head -n1)
        [ -n "$DAEMON_PORT" ] && break
        kill -0 "$DAEMON_PID" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$DAEMON_PORT" ]; then
        echo "bench: corod did not report its port; its stderr:" >&2
        tail -n 20 "$DAEMON_TMP/stderr.log" >&2
        exit 1
    fi
    DAEMON_URL=http://127.0.0.1:$DAEMON_PORT
    for i in $(seq 200); do          # up to 20 s for /healthz
        if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$DAEMON_URL/healthz")" = 200 ]; then
            return 0
        fi
        kill -0 "$DAEMON_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "bench: corod on $DAEMON_URL never answered GET /healthz with 200; its stderr:" >&2
    tail -n 20 "$DAEMON_TMP/stderr.log" >&2
    exit 1
}

# wrk_to_ms VALUE — wrk prints times as 812.00us, 1.23ms, 2.01s, 1.00m
wrk_to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000;
        else if (u == "m") n *= 60000; else if (u == "h") n *= 3600000;
        printf "%.3f", n }'
}

# run_wrk NAME DURATION LUA_ARGS... — runs wrk against $DAEMON_URL/v1/tasks
# with bench/submit.lua (or bench/$WRK_SCRIPT) and prints NAME_rate, NAME_latency_p50/p99 and
# NAME_errors result lines; the raw wrk output is kept in $DAEMON_TMP/wrk.out.
# Also sets WRK_RATE (requests/s) for callers that derive more figures.
WRK_THREADS=${WRK_THREADS:-2}
WRK_CONNECTIONS=${WRK_CONNECTIONS:-32}
WRK_TIMEOUT=${WRK_TIMEOUT:-10s}
WRK_RATE=
run_wrk() {
    local name=$1 duration=$2; shift 2
    local out=$DAEMON_TMP/wrk.out
    local secs=${duration%s}
    timeout --kill-after=5 $((secs + 60)) \
        wrk -t"$WRK_THREADS" -c"$WRK_CONNECTIONS" -d"$duration" --timeout "$WRK_TIMEOUT" --latency \
            -s "$BENCH_DIR/${WRK_SCRIPT:-submit.lua}" "$DAEMON_URL/v1/tasks" -- "$@" >"$out" 2>&1
    local rc=$?
    if [ $rc -ne 0 ]; then
        echo "# wrk exited with status $rc; its output:"
        sed 's/^/#   /' "$out"
    fi
    WRK_RATE=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    local p50 p99 errs sockerr
    p50=$(awk '$1 == "50%" {print $2}' "$out")
    p99=$(awk '$1 == "99%" {print $2}' "$out")
    errs=$(awk '$1 == "lua_non2xx" {print $2}' "$out")
    sockerr=$(sed -n 's/^ *Socket errors: *//p' "$out")
    [ -n "$sockerr" ] && echo "# wrk socket errors: $sockerr"
    sed -n 's/^ *\([0-9][0-9]* requests in .*\)$/# wrk: \1/p' "$out"
    [ -n "$WRK_RATE" ] && echo "${name}_rate $WRK_RATE req/s"
    [ -n "$p50" ] && echo "${name}_latency_p50 $(wrk_to_ms "$p50") ms"
    [ -n "$p99" ] && echo "${name}_latency_p99 $(wrk_to_ms "$p99") ms"
    [ -n "$errs" ] && echo "${name}_errors $errs count"
    [ -n "$WRK_RATE" ]
}
