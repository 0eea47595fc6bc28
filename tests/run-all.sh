#!/usr/bin/env bash
# tests/run-all.sh -- build corod and run the whole test suite twice: a
# normal build with -Werror, then an AddressSanitizer+UBSan build; between
# them the end-to-end tests once more on PostgreSQL and once more with the
# daemon under valgrind; then the fuzz harnesses briefly, then the Debian
# package's checks; end with one line "N passed, N failed" (test points of
# all of them) and a non-zero exit status if anything failed or did not
# build.
#
#   ./tests/run-all.sh            (from anywhere; JOBS=N for make -jN)
#
# 1. In the tree: autoreconf -fi && ./configure --enable-werror && make &&
#    make -jJOBS check.
# 1b. make -jJOBS check-valgrind in the same build: the end-to-end tests
#    with every daemon under valgrind memcheck, each failing on an error
#    or a definite leak (about 23 minutes one script at a time on 2 cores
#    since the daemon links libpq; JOBS at once, as make check, to keep
#    CI inside its hour).  VALGRIND=no skips it.
# 1c. Before 1b: make -jJOBS check-pg in the same build, the single node's
#    end-to-end tests once more with every daemon on PostgreSQL (a private
#    server; what needs an sqlite file skips; about 10 minutes on 2 cores).
#    PostgreSQL must be installed: COROD_REQUIRE_PG=1 (below) makes its
#    absence a failure, not a skip.
# 2. Sanitizers, out of tree: `make distdir` copies the distributed sources
#    to build-asan/src (configure refuses a VPATH build of a source tree
#    that is itself configured, and the in-tree build of step 1 is what the
#    README's run command uses), then build-asan/obj runs
#    ../src/configure --enable-werror --enable-sanitizers && make &&
#    make -jJOBS check, with every harness timeout stretched (COROD_TIMEOUT_MULT).
#    This also checks that the distribution holds what the build needs.
# 3. Fuzzing, out of tree the same way (build-fuzz/src, build-fuzz/obj):
#    CC=clang ../src/configure --enable-fuzzing && make && make fuzz, each
#    libFuzzer harness for FUZZ_SECONDS (default 30) from its seed corpus;
#    each harness is one test point, passed if it ran its time without a
#    crash.  `make fuzz-long` (an hour each) is not run here.
# 4. The Debian package: tests/package/deb.sh builds it from a copy of
#    the distribution (build-deb/, `make distdir`, so not from the tree
#    configured by step 1) with DEB_BUILD_OPTIONS=nocheck (the suite has
#    run), runs lintian, and as root installs, checks, removes and purges
#    it (about 20 s); one point per check, its skips (not root) counted
#    neither passed nor failed.
#
# A failing test's log (its last 100 lines) is printed after its run.

set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 2
jobs=${JOBS:-2}
passed=0
failed=0
status=0

say() { printf '\n==> %s\n' "$*"; }

# Add the counts of a build directory's test-suite.log (or the log named
# second); a missing log is one failure (the suite did not run).
count() {
	local log=$1/${2:-test-suite.log} p f e x
	if [ ! -f "$log" ]; then
		echo "run-all: no $log: the tests did not run" >&2
		failed=$((failed + 1))
		return
	fi
	p=$(sed -n 's/^# PASS: *\([0-9][0-9]*\).*/\1/p' "$log" | head -1)
	f=$(sed -n 's/^# FAIL: *\([0-9][0-9]*\).*/\1/p' "$log" | head -1)
	e=$(sed -n 's/^# ERROR: *\([0-9][0-9]*\).*/\1/p' "$log" | head -1)
	x=$(sed -n 's/^# XPASS: *\([0-9][0-9]*\).*/\1/p' "$log" | head -1)
	passed=$((passed + ${p:-0}))
	failed=$((failed + ${f:-0} + ${e:-0} + ${x:-0}))
	if [ -z "$p$f$e$x" ]; then
		echo "run-all: cannot read the counts of $log" >&2
		failed=$((failed + 1))
	fi
}

# Print the tail of every failing test's log under a build directory, and
# keep its failing points for the recap at the end (CI shows only the tail
# of the output, so that is where they must be named).
show_failures() {
	local trs
	find "$1" -name '*.trs' -newer "$2" 2>/dev/null | sort |
	while IFS= read -r trs; do
		if grep -Eq '^:global-test-result: (FAIL|ERROR|XPASS)' "$trs"; then
			printf '\n---- %s (last 100 lines) ----\n' "${trs%.trs}.log"
			tail -100 "${trs%.trs}.log"
			{ grep -E '^(not ok|Bail out)' "${trs%.trs}.log" ||
			  grep -E '^:test-result: (ERROR|XPASS)' "$trs" ||
			  echo "no point failed: see its log"; } 2>/dev/null |
			    sed "s|^|[$3] ${trs%.trs}: |" | cut -c1-300 >>"$recap"
		fi
	done
}

# the PostgreSQL tests start their own server: here it must be installed
# (install-deps --test), so a missing one fails rather than skips
export COROD_REQUIRE_PG=${COROD_REQUIRE_PG:-1}

stamp=$(mktemp "${TMPDIR:-/tmp}/corod-run-all.XXXXXX")
recap=$(mktemp "${TMPDIR:-/tmp}/corod-run-all.XXXXXX")
trap 'rm -f "$stamp" "$recap"' EXIT

# --- 1. the normal build, in the tree ------------------------------------------

say "build (in tree, --enable-werror)"
rm -f test-suite.log
if autoreconf -fi && ./configure --enable-werror && make -j"$jobs"; then
	say "make -j$jobs check"
	# the tests are independent (each daemon on its own port and
	# directory) and several wait on real time (schedules.py on whole
	# minutes): $jobs at once keeps the run well inside CI's hour
	make -j"$jobs" check || status=1
	count .
	show_failures . "$stamp" plain
	say "make -j$jobs check-pg"
	rm -f test-suite-pg.log
	pstamp=$(mktemp "${TMPDIR:-/tmp}/corod-run-all.XXXXXX")
	make -j"$jobs" check-pg || status=1
	count . test-suite-pg.log
	show_failures . "$pstamp" check-pg
	rm -f "$pstamp"
	if [ "${VALGRIND:-yes}" = no ]; then
		say "make check-valgrind: skipped (VALGRIND=no)"
	elif command -v valgrind >/dev/null 2>&1; then
		say "make check-valgrind"
		rm -f test-suite-valgrind.log
		vstamp=$(mktemp "${TMPDIR:-/tmp}/corod-run-all.XXXXXX")
		make -j"$jobs" check-valgrind || status=1
		count . test-suite-valgrind.log
		show_failures . "$vstamp" valgrind
		rm -f "$vstamp"
	else
		echo "run-all: valgrind is not installed (VALGRIND=no to skip)" >&2
		failed=$((failed + 1))
		status=1
	fi
else
	echo "run-all: the normal build failed" >&2
	failed=$((failed + 1))
	status=1
fi

# --- 2. the sanitizer build, out of tree ------------------------------------------

say "build (out of tree, --enable-sanitizers)"
asan=$top/build-asan
rm -rf "$asan"
mkdir -p "$asan/obj"
if [ -f Makefile ] &&
    make distdir distdir="corod-asan-src" >/dev/null &&
    mv corod-asan-src "$asan/src" &&
    (cd "$asan/obj" && ../src/configure --enable-werror --enable-sanitizers &&
     make -j"$jobs"); then
	say "make check (sanitizers)"
	(cd "$asan/obj" &&
	 COROD_TIMEOUT_MULT=${COROD_TIMEOUT_MULT:-3} \
	 make -j"$jobs" check) || status=1
	count "$asan/obj"
	show_failures "$asan/obj" "$stamp" sanitizers
else
	echo "run-all: the sanitizer build failed" >&2
	failed=$((failed + 1))
	status=1
fi

# --- 3. the fuzz harnesses, briefly, out of tree -------------------------------

say "build (out of tree, CC=clang --enable-fuzzing)"
fuzz=$top/build-fuzz
rm -rf "$fuzz"
mkdir -p "$fuzz/obj"
if [ -f Makefile ] &&
    make distdir distdir="corod-fuzz-src" >/dev/null &&
    mv corod-fuzz-src "$fuzz/src" &&
    (cd "$fuzz/obj" && CC=clang ../src/configure --enable-fuzzing &&
     make -j"$jobs"); then
	say "make fuzz (${FUZZ_SECONDS:-30} s per harness)"
	(cd "$fuzz/obj" && make fuzz FUZZ_SECONDS="${FUZZ_SECONDS:-30}") |
	    tee "$fuzz/fuzz.log"
	[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
	p=$(grep -c '^PASS: fuzz-' "$fuzz/fuzz.log")
	f=$(grep -c '^FAIL: fuzz-' "$fuzz/fuzz.log")
	grep '^FAIL: fuzz-' "$fuzz/fuzz.log" | sed 's/^/[fuzz] /' >>"$recap"
	passed=$((passed + p))
	failed=$((failed + f))
	if [ $((p + f)) -eq 0 ]; then
		echo "run-all: make fuzz ran no harness" >&2
		failed=$((failed + 1))
	fi
else
	echo "run-all: the fuzzing build failed" >&2
	failed=$((failed + 1))
	status=1
fi

# --- 4. the Debian package -------------------------------------------------------

say "Debian package (tests/package/deb.sh)"
if [ -f Makefile ]; then
	DEB_BUILD_OPTIONS=nocheck ./tests/package/deb.sh "$top/build-deb" |
	    tee "$top/deb.log"
	[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
	p=$(grep -Ec '^ok [0-9]+' "$top/deb.log")
	s=$(grep -Ec '^ok [0-9]+ .*# SKIP' "$top/deb.log")
	f=$(grep -Ec '^not ok [0-9]+' "$top/deb.log")
	grep -E '^not ok [0-9]+' "$top/deb.log" | sed 's/^/[deb] /' >>"$recap"
	passed=$((passed + p - s))
	failed=$((failed + f))
	if [ $((p + f)) -eq 0 ]; then
		echo "run-all: tests/package/deb.sh checked nothing" >&2
		failed=$((failed + 1))
	fi
else
	echo "run-all: no configured tree for the package build" >&2
	failed=$((failed + 1))
	status=1
fi

echo
if [ -s "$recap" ]; then
	echo "what failed:"
	sort -u "$recap"
	echo
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$status" -eq 0 ]
