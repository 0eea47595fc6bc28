#!/bin/sh
# dash-live.sh MODE ARG... -- what tests/e2e/dashboard.mjs runs through
# kind exec, so that the page can be watched while the program runs:
#
#	live GO1 GO2	lines on stdout and stderr, a STATUS= (systemd-notify,
#			no count), then waits for the file GO1; more lines,
#			then waits for GO2 (each wait at most 60 s) and exits 0
#			with a result file
#	many N		N lines at once (every tenth on stderr)
set -f

# wait for the file $1: at most 600 times 0.1 s
wait_for() {
	i=0
	while [ ! -e "$1" ]; do
		[ "$i" -lt 600 ] || { echo "no $1 after 60 s" >&2; exit 3; }
		sleep 0.1
		i=$((i + 1))
	done
}

case "$1" in
live)
	echo "out 1: starting"
	echo "err 1: a warning" >&2
	systemd-notify "STATUS=halfway there" || exit 3
	sleep 0.2
	echo "out 2: working"
	echo "err 2: another warning" >&2
	wait_for "$2"
	echo "out 3: after go"
	echo "err 3: late warning" >&2
	wait_for "$3"
	printf '{"lines": 6}' > "$COROD_RESULT_FILE"
	echo "out 4: done"
	;;
many)
	i=1
	while [ "$i" -le "$2" ]; do
		if [ $((i % 10)) -eq 0 ]; then
			echo "line $i" >&2
		else
			echo "line $i"
		fi
		i=$((i + 1))
	done
	;;
*)	echo "unknown mode $1" >&2; exit 2 ;;
esac
