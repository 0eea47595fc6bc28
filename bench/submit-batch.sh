#!/usr/bin/env bash
# bench/submit-batch.sh — batched submissions: tasks per second.
#
# wrk, 2 threads, 32 keep-alive connections, DURATION seconds (default 10),
# each request POST /v1/tasks with a JSON array of BATCH (default 100) echo
# specs due in an hour (built once by bench/submit.lua), default durability.
# Prints: submit_batch_rate (requests/s), submit_batch_tasks_rate
# (requests/s x BATCH), latency p50/p99 per request, non-2xx count.
set -u
. "$(dirname "$0")/lib.sh"

DURATION=${DURATION:-10}
DURATION=${DURATION%s}
BATCH=${BATCH:-100}
# UNIQUE=unique: each spec with a unique key of its own; UNIQUE=dynamic:
# bodies built per request the same way, without keys (to compare with)
UNIQUE=${UNIQUE:-}

echo "# submit-batch: wrk -t$WRK_THREADS -c$WRK_CONNECTIONS -d${DURATION}s --timeout $WRK_TIMEOUT --latency -s bench/submit.lua -- $BATCH (keep-alive)"
echo "# submit-batch: body a JSON array of $BATCH x {\"kind\":\"echo\",\"params\":{\"message\":\"bench\"},\"delay\":3600}, POST /v1/tasks, default durability"
echo "# submit-batch: corod $COROD_BIN, fresh database, loopback 127.0.0.1, $(nproc) cores"

status=0
start_daemon
run_wrk submit_batch "${DURATION}s" "$BATCH" $UNIQUE || status=1
if [ -n "$WRK_RATE" ]; then
    awk -v r="$WRK_RATE" -v b="$BATCH" 'BEGIN { printf "submit_batch_tasks_rate %.0f tasks/s\n", r * b }'
fi
stop_daemon
exit $status
