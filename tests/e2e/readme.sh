#!/usr/bin/env bash
# readme.sh -- run the README's curl examples against the real daemon, as TAP.
#
# Convention: a fenced ```sh block of README.md whose fence line comes right
# after an HTML comment `<!-- test: walkthrough -->` (blank lines between
# are allowed) is run; blocks run in the order of the README, as one session
# against one fresh daemon (so task ids are those of the README).  Such a
# block holds client commands only (curl, sleep, ...), one per line, with
# `\` continuations; `#` lines are skipped; if some lines start with `$ `,
# only those are commands (the rest is shown output).  `localhost:8080` and
# `127.0.0.1:8080` are replaced by the test daemon's address.
#
# Each curl command must exit 0 with a 2xx status, and print JSON, or log
# lines ("<RFC 3339 time> <text>") for a /log URL, or nothing for a 204.
# Other commands (sleep) must exit 0.
#
# Environment: COROD_BIN, COROD_SRCDIR, COROD_TIMEOUT_MULT (see tests/lib).

set -u

srcdir=${COROD_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
bin=${COROD_BIN:-$srcdir/daemon/corod}
readme=$srcdir/README.md
mult=${COROD_TIMEOUT_MULT:-1}
case $mult in
''|*[!0-9]*) mult=1 ;;	# integers only here
esac
[ "$mult" -ge 1 ] || mult=1

n=0
failed=0
ok() {	# ok COND-STATUS DESCRIPTION [DIAG]
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $n - $2"
	else
		failed=$((failed + 1))
		echo "not ok $n - $2"
		if [ $# -ge 3 ] && [ -n "$3" ]; then
			printf '%s\n' "$3" | head -40 | sed 's/^/# /'
		fi
	fi
}

# --- the commands ----------------------------------------------------------------

if [ ! -f "$readme" ]; then
	echo "1..0 # SKIP no README.md"
	exit 0
fi

# One command per output line (continuations joined), blocks in order.
commands=$(awk '
	function flush() { if (cmd != "") { print cmd; cmd = "" } }
	/^[ \t]*<!--[ \t]*test:[ \t]*walkthrough[ \t]*-->[ \t]*$/ {
		marked = 1; next
	}
	marked && /^[ \t]*$/ { next }
	marked && /^[ \t]*```(sh|bash|shell|console)[ \t]*$/ {
		inblock = 1; marked = 0; nlines = 0; prompt = 0; next
	}
	{ marked = 0 }
	inblock && /^[ \t]*```[ \t]*$/ {
		inblock = 0
		for (i = 1; i <= nlines; i++) {
			l = lines[i]
			if (prompt) {
				if (cont) { l = l }
				else if (l ~ /^\$ /) { sub(/^\$ /, "", l) }
				else continue
			}
			if (!cont && (l ~ /^[ \t]*#/ || l ~ /^[ \t]*$/))
				continue
			if (l ~ /\\$/) {
				sub(/\\$/, "", l); cmd = cmd l " "; cont = 1
			} else {
				cmd = cmd l; cont = 0; flush()
			}
		}
		flush(); cont = 0
		next
	}
	inblock {
		lines[++nlines] = $0
		if ($0 ~ /^\$ /) prompt = 1
	}
' "$readme")

if [ -z "$commands" ]; then
	echo "1..0 # SKIP no README examples (no <!-- test: walkthrough --> block)"
	exit 0
fi
if ! command -v curl >/dev/null 2>&1; then
	echo "1..0 # SKIP curl is not installed"
	exit 0
fi
if printf '%s\n' "$commands" | grep -q -- '--json' &&
    ! curl --help all 2>/dev/null | grep -q -- '--json'; then
	echo "1..0 # SKIP this curl has no --json (curl >= 7.82 needed)"
	exit 0
fi
if [ ! -x "$bin" ]; then
	echo "1..0 # SKIP no daemon binary at $bin"
	exit 0
fi
have_python=0
command -v python3 >/dev/null 2>&1 && have_python=1
have_timeout=0
command -v timeout >/dev/null 2>&1 && have_timeout=1

# --- the daemon ----------------------------------------------------------------

tmp=$(mktemp -d "${TMPDIR:-/tmp}/corod-readme-XXXXXX")
pid=
cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt $((100 * mult)) ]; do
			sleep 0.1
			i=$((i + 1))
		done
		kill -KILL "$pid" 2>/dev/null
	fi
	if [ "$failed" -ne 0 ] || [ "${COROD_KEEP:-0}" = 1 ]; then
		echo "# kept $tmp; the tail of the daemon's output:"
		tail -40 "$tmp/stderr.log" 2>/dev/null | sed 's/^/# /'
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT
trap 'echo "Bail out! interrupted"; exit 2' INT TERM

: "${ASAN_OPTIONS:=detect_leaks=1:abort_on_error=0}"
export ASAN_OPTIONS
# COROD_WRAPPER goes in front of the daemon (split on blanks); a valgrind
# one writes its report to a file of ours, read after the stop.
wrapper=${COROD_WRAPPER:-}
vglog=
case $wrapper in
valgrind|valgrind\ *|*/valgrind|*/valgrind\ *)
	vglog=$tmp/valgrind.log
	set -- $wrapper
	first=$1
	shift
	wrapper="$first --log-file=$vglog $*"
	;;
esac
# shellcheck disable=SC2086
$wrapper "$bin" --listen 127.0.0.1:0 --db "$tmp/corod.db" \
    --download-dir "$tmp/dl" >"$tmp/stderr.log" 2>&1 </dev/null &
pid=$!

port=
i=0
while [ $i -lt $((100 * mult)) ]; do
	port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' \
	    "$tmp/stderr.log" | head -1)
	[ -n "$port" ] && break
	if ! kill -0 "$pid" 2>/dev/null; then
		break
	fi
	sleep 0.1
	i=$((i + 1))
done
if [ -z "$port" ]; then
	echo "Bail out! corod did not start (no 'listening on' line):"
	sed 's/^/# /' "$tmp/stderr.log"
	failed=1
	exit 1
fi
i=0
code=
while [ $i -lt $((100 * mult)) ]; do
	code=$(curl -s -o /dev/null -w '%{http_code}' \
	    "http://127.0.0.1:$port/healthz" 2>/dev/null)
	[ "$code" = 200 ] && break
	sleep 0.1
	i=$((i + 1))
done
ok "$([ "$code" = 200 ]; echo $?)" "corod answers GET /healthz on 127.0.0.1:$port"

# --- run them ----------------------------------------------------------------------

timefmt='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z '
while IFS= read -r cmd; do
	cmd=${cmd//localhost:8080/127.0.0.1:$port}
	cmd=${cmd//127.0.0.1:8080/127.0.0.1:$port}
	short=$(printf '%s' "$cmd" | cut -c1-100)
	run=$cmd
	is_curl=0
	case $cmd in
	curl\ *)
		is_curl=1
		case $cmd in
		*'|'*) ;;	# a pipeline: exit status only
		*) run="curl -w '\\n@@status %{http_code}\\n' ${cmd#curl }" ;;
		esac
		;;
	esac
	if [ "$have_timeout" = 1 ]; then
		out=$(timeout $((60 * mult)) bash -o pipefail -c "$run" 2>&1)
	else
		out=$(bash -o pipefail -c "$run" 2>&1)
	fi
	rc=$?
	if [ "$is_curl" = 0 ]; then
		ok $rc "README: $short" "$out"
		continue
	fi
	status=$(printf '%s\n' "$out" | sed -n 's/^@@status \([0-9]*\)$/\1/p' |
	    tail -1)
	body=$(printf '%s\n' "$out" | grep -v '^@@status ')
	why=
	if [ $rc -ne 0 ]; then
		why="curl exited $rc"
	elif [ -n "$status" ] && [ "${status#2}" = "$status" ]; then
		why="HTTP status $status"
	elif [ -z "$status" ]; then
		:	# a pipeline: its exit status was all we could check
	elif [ -z "$body" ]; then
		[ "$status" = 204 ] || why="empty body with status $status"
	else
		# the URL asked for is the command's last word
		case ${cmd##* } in
		*/log|*/log\?*|*/log\'|*/log\")
			bad=$(printf '%s\n' "$body" | grep -Ev "$timefmt" |
			    grep -v '^$' | head -3)
			[ -z "$bad" ] || why="not log lines: $bad"
			;;
		*)
			if [ "$have_python" = 1 ] && ! printf '%s' "$body" |
			    python3 -c 'import json,sys; json.load(sys.stdin)' \
			    2>/dev/null; then
				why="the output is not JSON"
			fi
			;;
		esac
	fi
	ok "$([ -z "$why" ]; echo $?)" \
	    "README: $short${status:+ -> $status}${why:+ ($why)}" "$out"
done <<EOF
$commands
EOF

# --- and stop ----------------------------------------------------------------------

kill -TERM "$pid" 2>/dev/null
i=0
while kill -0 "$pid" 2>/dev/null && [ $i -lt $((150 * mult)) ]; do
	sleep 0.1
	i=$((i + 1))
done
if kill -0 "$pid" 2>/dev/null; then
	ok 1 "corod exits after SIGTERM" "still running after $((15 * mult)) s"
else
	wait "$pid"
	rc=$?
	ok $rc "corod exits 0 after SIGTERM (status $rc)"
fi
pid=
reports=$(grep -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' \
    "$tmp/stderr.log" | head -5)
ok "$([ -z "$reports" ]; echo $?)" "no sanitizer report in corod's output" \
    "$reports"
if [ -n "$vglog" ]; then
	summary=$(grep -E 'ERROR SUMMARY:|definitely lost:' "$vglog" 2>/dev/null)
	bad=0
	printf '%s\n' "$summary" | grep -q 'ERROR SUMMARY: 0 errors' || bad=1
	printf '%s\n' "$summary" | grep -q 'definitely lost: [1-9]' && bad=1
	ok $bad "valgrind: 0 errors, nothing definitely lost" \
	    "$(grep -v '^==[0-9]*== *$' "$vglog" 2>/dev/null | tail -60)"
fi

echo "1..$n"
[ "$failed" -eq 0 ]
