#!/bin/sh
# slow-worker.sh -- a long program for tools/corod-worker
# (tests/e2e/worker-tool.py): writes its pid, a checkpoint, then works (in
# steps of 0.1 s, at most 60 s) until it is stopped, unless its attempt is
# at least "until_attempt"; then prints the checkpoint it was handed.  On
# SIGTERM it says so on stderr and in "termfile", and exits 143.
#
# params: "pidfile", "runs", "termfile" (paths), "until_attempt" (string).
params=$(cat)
field() {
	printf '%s\n' "$params" | sed -n "s/.*\"$1\": *\"\\([^\"]*\\)\".*/\\1/p"
}
pidfile=$(field pidfile)
runs=$(field runs)
termfile=$(field termfile)
until=$(field until_attempt)
trap 'echo "got SIGTERM" >&2; [ -n "$termfile" ] && echo TERM > "$termfile"; exit 143' TERM
[ -n "$runs" ] && echo "attempt $COROD_ATTEMPT" >> "$runs"
if [ -n "$until" ] && [ "$COROD_ATTEMPT" -ge "$until" ]; then
	printf '{"attempt": %s, "checkpoint": %s}\n' "$COROD_ATTEMPT" \
	    "${COROD_CHECKPOINT:-null}"
	exit 0
fi
echo "CHECKPOINT {\"step\": $COROD_ATTEMPT}" >&2
echo "checkpoint $COROD_ATTEMPT written" >&2
[ -n "$pidfile" ] && echo $$ > "$pidfile"
i=0
while [ "$i" -lt 600 ]; do
	sleep 0.1
	i=$((i + 1))
done
echo "not stopped in 60 s" >&2
exit 1
