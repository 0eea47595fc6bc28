#!/usr/bin/env bash
# bench/run-all.sh — run every benchmark in sequence, print all result lines.
# Each benchmark starts (and stops) its own daemon; see bench/README.md.
# Environment: COROD_BIN, DURATION, BATCH, LATENESS_*, REPEAT_*, DL_*, POLL_*, BIG_*,
# EXEC_*, HTTP_*, WORKERS_*, BEANSTALKD_BIN, WRK_SECONDS, CLUSTER_*, FAILOVER_*,
# PG_BINDIR are passed on. cluster.py (PostgreSQL) prints a "# cluster:
# PostgreSQL not available" line and is skipped without PostgreSQL.
set -u
cd "$(dirname "$0")" || exit 1
status=0
for b in submit-single.sh submit-batch.sh lateness.py repeat-rss.py download.py polling.py bigbody.py \
         exec.py http-kind.py workers.py queues.sh keylimit.py schedules.py cluster.py; do
    echo "# ---- bench/$b"
    # bounded: the repeat run at 100,000 is the longest (a few minutes)
    timeout --kill-after=30 1800 "./$b"
    rc=$?
    if [ $rc -ne 0 ]; then
        echo "# bench/$b exited with status $rc"
        status=1
    fi
done
exit $status
