#!/bin/sh
# exec-group.sh PIDFILE [ignore] -- a program with a grandchild that
# ignores SIGTERM (and, with "ignore", ignoring it itself); both write
# their pids to PIDFILE, then run until killed.
pidfile=$1
sh -c 'trap "" TERM; echo $$ >> "$1"; while :; do sleep 0.1; done' \
    grandchild "$pidfile" &
[ "$2" = ignore ] && trap '' TERM
echo $$ >> "$pidfile"
echo started
while :; do sleep 0.1; done
