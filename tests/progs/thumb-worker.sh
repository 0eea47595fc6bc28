#!/bin/sh
# thumb-worker.sh -- a program for tools/corod-worker (tests/e2e/worker-tool.py
# and doc/worker-tool.md): reads the task's params as JSON on stdin, writes
# a log line and a PROGRESS line on stderr, prints its result as JSON.
#
# params: "image" (a name), and for the tests "mode" (ok, fail: exit 3,
# garbage: not JSON on stdout, kill: dies of SIGKILL), "hold" (a file to
# wait for before finishing, at most 60 s), "runs" (a file that gets a
# line per run).  The params are read with sed: strings without quotes.
params=$(cat)
field() {
	printf '%s\n' "$params" | sed -n "s/.*\"$1\": *\"\\([^\"]*\\)\".*/\\1/p"
}
image=$(field image)
mode=$(field mode)
hold=$(field hold)
runs=$(field runs)
[ -n "$runs" ] && echo "attempt $COROD_ATTEMPT pid $$" >> "$runs"
echo "thumbnailing $image (task $COROD_TASK_ID, attempt $COROD_ATTEMPT)" >&2
echo 'PROGRESS {"current": 1, "total": 2, "unit": "items"}' >&2
if [ -n "$hold" ]; then
	i=0
	while [ ! -e "$hold" ] && [ "$i" -lt 600 ]; do
		sleep 0.1
		i=$((i + 1))
	done
fi
case "$mode" in
fail)	echo "cannot read $image" >&2; exit 3 ;;
garbage)	echo "this is not JSON" ;;
kill)	kill -KILL $$ ;;
*)	echo 'PROGRESS {"current": 2, "total": 2, "unit": "items"}' >&2
	printf '{"thumb": "%s-128.png", "attempt": %s}\n' "${image%.*}" \
	    "$COROD_ATTEMPT" ;;
esac
