#!/usr/bin/env bash
# dashboard.sh -- the web dashboard in a real browser, as TAP: runs
# tests/e2e/dashboard.mjs (Node, playwright-core, Debian's Chromium) against
# the real daemon on 127.0.0.1, and makes sure that neither the daemon nor
# the browser outlives it, whatever happens.
#
# Needs: node >= 20, Chromium (apt-get install chromium), and playwright-core
# as pinned in tests/package-lock.json (npm ci --prefix tests; it never
# downloads a browser).  Without them the test is skipped (1..0 # SKIP).
# The exec steps run tests/progs/dash-live.sh, which needs systemd-notify
# (as tests/e2e/exec.py does).
#
# Environment: COROD_BIN, COROD_SRCDIR, COROD_TIMEOUT_MULT, COROD_KEEP (see
# tests/lib); COROD_CHROMIUM (default /usr/bin/chromium); COROD_NODE_MODULES
# (a node_modules directory holding playwright-core); COROD_ARTIFACTS (where
# the screenshots go; default $TMPDIR/corod-dashboard-artifacts);
# COROD_UPDATE_SCREENSHOT=1 copies the README's screenshot to
# doc/dashboard.png.

set -u

here=$(cd "$(dirname "$0")" && pwd)
srcdir=${COROD_SRCDIR:-$(cd "$here/../.." && pwd)}
bin=${COROD_BIN:-$srcdir/daemon/corod}
chromium=${COROD_CHROMIUM:-/usr/bin/chromium}
mult=${COROD_TIMEOUT_MULT:-1}
case $mult in
''|*[!0-9]*) mult=1 ;;	# integers only here
esac
[ "$mult" -ge 1 ] || mult=1

skip() {
	echo "1..0 # SKIP $*"
	exit 0
}

# --- what it needs -------------------------------------------------------------

[ -x "$bin" ] || skip "no daemon binary at $bin"
command -v node >/dev/null 2>&1 || skip "node is not installed"
major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null)
case $major in
''|*[!0-9]*) skip "cannot run node" ;;
esac
[ "$major" -ge 20 ] || skip "node $major is too old for playwright-core (20 or later)"
[ -x "$chromium" ] || skip "no Chromium at $chromium (apt-get install chromium)"

# playwright-core: tests/node_modules of this tree, or of a tree above it
# (the sanitizer run tests a copy of the sources in build-asan/src).
pw=
for d in ${COROD_NODE_MODULES:+"$COROD_NODE_MODULES"} "$here/../node_modules" \
    "$srcdir/tests/node_modules"; do
	if [ -f "$d/playwright-core/package.json" ]; then
		pw=$d/playwright-core
		break
	fi
done
d=$srcdir
while [ -z "$pw" ] && [ "$d" != / ] && [ -n "$d" ]; do
	d=$(dirname "$d")
	[ -f "$d/tests/node_modules/playwright-core/package.json" ] &&
	    pw=$d/tests/node_modules/playwright-core
done
[ -n "$pw" ] || skip "no playwright-core (npm ci --prefix tests)"

# --- run it, and clean up after it -----------------------------------------------

tmp=$(mktemp -d "${TMPDIR:-/tmp}/corod-dashboard-XXXXXX")
failed=1

# The pids dashboard.mjs wrote: the daemon gets SIGTERM, then SIGKILL; the
# browser (a process group of its own) SIGKILL.
cleanup() {
	local what pid i
	if [ -f "$tmp/pids" ]; then
		while read -r what pid; do
			kill -0 "$pid" 2>/dev/null || continue
			case $what in
			daemon)
				kill -TERM "$pid" 2>/dev/null
				i=0
				while kill -0 "$pid" 2>/dev/null && [ $i -lt $((50 * mult)) ]; do
					sleep 0.1
					i=$((i + 1))
				done
				kill -KILL "$pid" 2>/dev/null
				;;
			*)
				kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
				;;
			esac
		done <"$tmp/pids"
	fi
	if [ "$failed" -ne 0 ] || [ "${COROD_KEEP:-0}" = 1 ]; then
		echo "# kept $tmp"
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT
trap 'echo "Bail out! interrupted"; exit 2' INT TERM

limit=$((180 * mult))
runner=
command -v timeout >/dev/null 2>&1 && runner="timeout -k 10 $limit"

# Pass the TAP through, noting the last test number and whether a plan came,
# so that a run that dies half-way still ends in a well-formed TAP stream.
last=0
plan=
while IFS= read -r line; do
	printf '%s\n' "$line"
	case $line in
	ok\ [0-9]*|not\ ok\ [0-9]*)
		num=${line#ok }
		num=${num#not ok }
		num=${num%% *}
		last=$num
		;;
	1..[0-9]*)
		plan=$line
		;;
	esac
done < <(
	COROD_BIN=$bin COROD_SRCDIR=$srcdir COROD_CHROMIUM=$chromium \
	COROD_PLAYWRIGHT=$pw COROD_DASHBOARD_TMP=$tmp \
	    $runner node "$here/dashboard.mjs" 2>"$tmp/node.err" </dev/null
	echo $? >"$tmp/rc"
)
rc=$(cat "$tmp/rc" 2>/dev/null || echo 1)

if [ -z "$plan" ]; then
	last=$((last + 1))
	echo "not ok $last - dashboard.mjs ended early (status $rc${runner:+; $limit s limit})"
	sed 's/^/# /' "$tmp/node.err" | tail -30
	echo "1..$last"
	exit 1
fi
if [ -s "$tmp/node.err" ]; then
	grep -v 'unexpected operator' "$tmp/node.err" | head -20 | sed 's/^/# stderr: /'
fi
[ "$rc" -eq 0 ] && failed=0
exit "$rc"
