#!/usr/bin/env bash
# bench/queues.sh — submissions with many queues and concurrency keys in use,
# against the single-queue figure of the same run.
#
# Four wrk passes (bench/submit-queues.lua, WRK_THREADS x WRK_CONNECTIONS,
# DURATION seconds each), each on a fresh daemon:
#   single_stored  echo specs due in an hour, no queue, no key
#   keyed_stored   the same naming one of QUEUES_N queues (1,000) and one of
#                  QUEUES_KEYS keys (100,000) in turn (other keys than those
#                  held, so that a task due now runs), on a daemon whose
#                  QUEUES_N queues have key_concurrency 1 and concurrency
#                  2 x QUEUES_KEYS (a limit, never reached), and holds QUEUES_KEYS keys in use: as
#                  many `sleep` tasks running, one per key, spread over the
#                  queues (submitted before the pass, in batches)
#   single_due     echo specs due now (each runs at once), no queue, no key
#   keyed_due      due now, keyed as keyed_stored, on a daemon set up the same
#                  way: every start and end passes its queue's gates and
#                  counts its key
# Prints NAME_rate, _latency_p50, _latency_p99, _errors for each pass, the
# ratios keyed/single (goal: >= 0.90) and the daemon's RSS with the keys
# in use.
set -u
. "$(dirname "$0")/lib.sh"

DURATION=${DURATION:-10}
DURATION=${DURATION%s}
QUEUES_N=${QUEUES_N:-1000}
QUEUES_KEYS=${QUEUES_KEYS:-100000}
export WRK_SCRIPT=submit-queues.lua

echo "# queues: wrk -t$WRK_THREADS -c$WRK_CONNECTIONS -d${DURATION}s --latency -s bench/submit-queues.lua (keep-alive), POST /v1/tasks, one echo spec a request"
echo "# queues: $QUEUES_N queues, $QUEUES_KEYS concurrency keys in use (a running sleep each); corod $COROD_BIN, fresh database per pass, $(nproc) cores"

status=0

# The keys in use: the queues' settings, then one running sleep per key.
setup_keys() {
	local i b n=0 running
	for ((i = 0; i < QUEUES_N; i++)); do
		curl -s -o /dev/null -X PATCH --json \
		    "{\"key_concurrency\":1,\"concurrency\":$((QUEUES_KEYS * 2))}" \
		    "$DAEMON_URL/v1/queues/q$i" || return 1
	done
	for ((b = 0; b < QUEUES_KEYS; b += 1000)); do
		awk -v b="$b" -v k="$QUEUES_KEYS" -v q="$QUEUES_N" 'BEGIN {
			printf "["
			for (i = b; i < b + 1000 && i < k; i++)
				printf "%s{\"kind\":\"sleep\",\"params\":{\"seconds\":3600},\"queue\":\"q%d\",\"concurrency_key\":\"k%d\"}",
				    (i > b ? "," : ""), i % q, i
			printf "]" }' >"$DAEMON_TMP/batch.json"
		curl -s -o /dev/null -w '%{http_code}' --json @"$DAEMON_TMP/batch.json" \
		    "$DAEMON_URL/v1/tasks" | grep -q '^201$' || return 1
	done
	for i in $(seq 600); do
		running=$(curl -s "$DAEMON_URL/metrics" |
		    awk '$1 ~ /^corod_tasks_running/ {print $2}' | head -n1)
		[ "${running%.*}" = "$QUEUES_KEYS" ] && break
		sleep 0.1
	done
	echo "# queues: $running sleep tasks running, $(awk '/^VmRSS/ {print $2}' /proc/$DAEMON_PID/status) KiB RSS"
}

pass() {	# pass NAME DELAY KEYED
	start_daemon
	if [ "$3" = 1 ]; then
		setup_keys || { echo "# queues: setup failed"; status=1; }
		run_wrk "queues_$1" "${DURATION}s" "$QUEUES_N:$QUEUES_KEYS:$2" || status=1
	else
		run_wrk "queues_$1" "${DURATION}s" "0:0:$2" || status=1
	fi
	eval "rate_$1=\$WRK_RATE"
	echo "queues_rss_$1 $(awk '/^VmRSS/ {print $2}' /proc/$DAEMON_PID/status) KiB"
	stop_daemon
}

pass single_stored 3600 0
pass keyed_stored 3600 1
pass single_due 0 0
pass keyed_due 0 1

ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "nan" }'
}
echo "queues_keyed_stored_ratio $(ratio "${rate_keyed_stored:-0}" "${rate_single_stored:-0}") x"
echo "queues_keyed_due_ratio $(ratio "${rate_keyed_due:-0}" "${rate_single_due:-0}") x"
exit $status
