#!/bin/sh
# tests/fuzz/run.sh -- run the libFuzzer harnesses (make fuzz, fuzz-long,
# fuzz-regress call it).
#
#   run.sh run SECONDS SRCDIR WORKDIR BINDIR HARNESS...
#	each harness for SECONDS, from a copy of SRCDIR/corpus/HARNESS in
#	WORKDIR/HARNESS/corpus (the seeds in the tree are not changed), with
#	SRCDIR/HARNESS.dict and the flags of SRCDIR/HARNESS.options; a crash,
#	leak or timeout leaves its input in WORKDIR/HARNESS/.  FUZZ_FLAGS
#	adds libFuzzer flags.
#   run.sh regress 0 SRCDIR WORKDIR BINDIR HARNESS...
#	each harness once over each of its seeds.
#
# One line per harness, "PASS: NAME ..." with its executions or "FAIL:
# NAME ..." followed by the end of its log; exits 1 if any failed.
set -u

mode=$1 seconds=$2 src=$3 work=$4 bin=$5
shift 5
status=0

for h in "$@"; do
	dir=$work/$h
	[ "$mode" = regress ] && dir=$work/regress/$h
	rm -rf "$dir"
	mkdir -p "$dir/corpus" || exit 2
	log=$dir/log
	dict=
	[ -f "$src/$h.dict" ] && dict=-dict=$src/$h.dict
	# HARNESS.options: "name = value" lines are libFuzzer flags
	opts=
	if [ -f "$src/$h.options" ]; then
		opts=$(sed -n 's/^\([a-z_]*\) *= *\([^ ]*\) *$/-\1=\2/p' \
		    "$src/$h.options")
	fi
	if [ "$mode" = regress ]; then
		# shellcheck disable=SC2086
		"$bin/$h" $dict -artifact_prefix="$dir/" \
		    "$src/corpus/$h"/* >"$log" 2>&1
		rc=$?
		n=$(find "$src/corpus/$h" -type f | wc -l)
		if [ $rc -eq 0 ]; then
			echo "PASS: $h: $n seeds"
		else
			echo "FAIL: $h: a seed fails (exit $rc), $log:"
			tail -40 "$log"
			status=1
		fi
		continue
	fi
	cp "$src/corpus/$h"/* "$dir/corpus/" || exit 2
	start=$(date +%s)
	# shellcheck disable=SC2086
	"$bin/$h" $dict $opts -max_total_time="$seconds" -timeout=10 \
	    -print_final_stats=1 -artifact_prefix="$dir/" ${FUZZ_FLAGS:-} \
	    "$dir/corpus" >"$log" 2>&1
	rc=$?
	took=$(( $(date +%s) - start ))
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
	files=$(find "$dir/corpus" -type f | wc -l)
	if [ $rc -eq 0 ] && [ -n "$execs" ]; then
		echo "PASS: $h: ${execs} executions in ${took} s" \
		    "(${rate}/s), corpus $files files"
	else
		echo "FAIL: $h: exit $rc after ${took} s, ${execs:-?}" \
		    "executions; input in $dir/, log $log:"
		tail -60 "$log"
		status=1
	fi
done
exit $status
