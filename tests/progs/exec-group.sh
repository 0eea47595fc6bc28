#!/bin/sh
# exec-group.sh PIDFILE [ignore|-] [setsid] -- a program with a grandchild
# that ignores SIGTERM (with "ignore", the program ignores it too; with
# "setsid", the grandchild leaves the process group for a session of its
# own, so that only a cgroup reaches it); both write their pids to
# PIDFILE, then run until killed.
pidfile=$1
grandchild='trap "" TERM; echo $$ >> "$1"; while :; do sleep 0.1; done'
if [ "$3" = setsid ]; then
	setsid sh -c "$grandchild" grandchild "$pidfile" &
else
	sh -c "$grandchild" grandchild "$pidfile" &
fi
[ "$2" = ignore ] && trap '' TERM
echo $$ >> "$pidfile"
echo started
while :; do sleep 0.1; done
