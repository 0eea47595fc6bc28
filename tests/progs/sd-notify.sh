#!/bin/sh
# sd-notify.sh -- a program written for a systemd service: it tells its
# service manager how it is doing with systemd-notify(1), as told by its
# arguments, in order (tests/unit/test-notify.c runs it):
#
#	KEY=value[,KEY=value...]	one datagram (systemd-notify waits
#					for the receiver, its barrier)
#	sleep SECONDS			sleep
#	ping N SECONDS			WATCHDOG=1 N times, SECONDS apart
#	big BYTES			STATUS= of BYTES characters x
#	exit N				exit N now
#
# It exits 0 after the last argument.
set -f
for a in "$@"; do
	case $a in
	sleep\ *)
		sleep "${a#sleep }" ;;
	ping\ *)
		set -- ${a#ping }
		i=0
		while [ "$i" -lt "$1" ]; do
			systemd-notify WATCHDOG=1 || exit 3
			sleep "$2"
			i=$((i + 1))
		done ;;
	big\ *)
		x=$(head -c "${a#big }" /dev/zero | tr '\0' x)
		systemd-notify "STATUS=$x" || exit 3 ;;
	exit\ *)
		exit "${a#exit }" ;;
	*)
		old=$IFS
		IFS=,
		systemd-notify $a || exit 3
		IFS=$old ;;
	esac
done
exit 0
