#!/bin/sh
# exec-do.sh MODE [ARG] -- what tests/e2e/exec.py runs through kind exec:
# one small behaviour per mode (output, exit statuses, signals, the
# result file, attempts).
case "$1" in
mixed)	# stdout and stderr interleaved, a line over 16 KiB, no final newline
	echo out1
	echo err1 >&2
	echo out2
	head -c 20000 /dev/zero | tr '\0' x
	echo
	printf 'last without newline'
	;;
slow)	# $2 lines, one every 0.3 s
	i=0
	while [ "$i" -lt "$2" ]; do
		echo "tick $i"
		i=$((i + 1))
		sleep 0.3
	done
	;;
exit)	exit "$2" ;;
signal)	kill -"$2" $$ ;;
tempfail)	# EX_TEMPFAIL until attempt $2
	[ "$COROD_ATTEMPT" -ge "$2" ] || { echo "attempt $COROD_ATTEMPT: not yet"; exit 75; }
	echo "attempt $COROD_ATTEMPT: done"
	;;
result)	printf '%s' "$2" > "$COROD_RESULT_FILE" ;;
cat)	cat ;;
hash)	# the SHA-256 of variable $2's value: shows it came, without its bytes
	printf '%s' "$(printenv "$2")" | sha256sum | cut -d' ' -f1 ;;
first-slow)	# attempt 1 runs until killed (its pid in $2), later ones end
	if [ "$COROD_ATTEMPT" = 1 ]; then
		echo $$ >> "$2"
		while :; do sleep 0.1; done
	fi
	echo "attempt $COROD_ATTEMPT: done"
	;;
seq)	# $2 numbered lines as fast as seq writes them, and on stderr
	# every 1000th ($3 = err)
	if [ "$3" = err ]; then
		seq 1 "$2" | awk '{ print; if ($1 % 1000 == 0) print "e" $1 > "/dev/stderr" }'
	else
		seq 1 "$2"
	fi
	;;
forever)	# every attempt runs until killed (its pid in $2)
	echo $$ >> "$2"
	while :; do sleep 0.1; done
	;;
print)	# what the program was given
	shift
	for a in "$@"; do echo "arg=$a"; done
	echo "cwd=$(pwd)"
	echo "nofile=$(ulimit -n)"
	grep NoNewPrivs /proc/$$/status
	echo "fds=$(ls /proc/self/fd | sort -n | tr '\n' ' ')"
	echo "stat=$(cut -d" " -f1,5,6 /proc/$$/stat)"
	;;
*)	echo "unknown mode $1" >&2; exit 2 ;;
esac
