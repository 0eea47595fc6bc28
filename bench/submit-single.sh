#!/usr/bin/env bash
# bench/submit-single.sh — durable single submissions per second.
#
# wrk, 2 threads, 32 keep-alive connections, DURATION seconds (default 10),
# each request POST /v1/tasks with one echo spec due in an hour
# (bench/submit.lua). First pass with the default durability
# (synchronous=FULL: a 201 means the task reached the disk), second pass on a
# fresh daemon started with --sync normal.
# Prints: submit_single_rate, _latency_p50, _latency_p99, _errors, and the
# same for the sync-normal pass with the suffix _sync_normal.
set -u
. "$(dirname "$0")/lib.sh"

DURATION=${DURATION:-10}
DURATION=${DURATION%s}

echo "# submit-single: wrk -t$WRK_THREADS -c$WRK_CONNECTIONS -d${DURATION}s --timeout $WRK_TIMEOUT --latency -s bench/submit.lua (keep-alive)"
echo '# submit-single: body {"kind":"echo","params":{"message":"bench"},"delay":3600}, Content-Type: application/json, POST /v1/tasks'
echo "# submit-single: corod $COROD_BIN, fresh database per pass, loopback 127.0.0.1, $(nproc) cores"

status=0

echo "# submit-single: pass 1, default durability"
start_daemon
run_wrk submit_single "${DURATION}s" 0 || status=1
stop_daemon

echo "# submit-single: pass 2, --sync normal"
start_daemon --sync normal
if out=$(run_wrk submit_single_sync_normal "${DURATION}s" 0); then :; else status=1; fi
# name the rate as the issue/brief does: submit_single_rate_sync_normal
printf '%s\n' "$out" | sed -e 's/^submit_single_sync_normal_rate /submit_single_rate_sync_normal /' \
    -e 's/^submit_single_sync_normal_latency_\(p[0-9]*\) /submit_single_latency_\1_sync_normal /' \
    -e 's/^submit_single_sync_normal_errors /submit_single_errors_sync_normal /'
stop_daemon
exit $status
