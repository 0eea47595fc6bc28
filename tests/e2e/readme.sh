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
# A fenced block right after `<!-- test: file PATH -->` is a file the
# README has the reader write (a command definition): it is written to
# PATH under the daemon's directory before the daemon starts.  The daemon
# runs there as the README runs it, with relative paths (var/corod.db,
# --commands-dir commands, --secrets-dir secrets, holding the key
# hook-key); tests/progs/webhook-receiver.py, started with that key,
# stands for the README's receiver, and `localhost:8081` is replaced by
# its address.  Then what the README shows of its exec and http tasks is
# checked (state, result, log, and what the receiver got).
#
# Environment: COROD_BIN, COROD_SRCDIR, COROD_TIMEOUT_MULT (see tests/lib);
# COROD_TEST_PG (make check-pg: a PostgreSQL server's URI): the daemon's
# --db is a database of its own there instead of var/corod.db.

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

case $bin in
/*) ;;
*) bin=$PWD/$bin ;;	# the daemon runs in $tmp
esac
tmp=$(mktemp -d "${TMPDIR:-/tmp}/corod-readme-XXXXXX")
pid=
rpid=
cleanup() {
	if [ -n "$rpid" ] && kill -0 "$rpid" 2>/dev/null; then
		kill -TERM "$rpid" 2>/dev/null
		wait "$rpid" 2>/dev/null
	fi
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
# The README's files: the fenced block after each <!-- test: file PATH -->.
mkdir -p "$tmp/commands" "$tmp/secrets"
files=$(awk '
	/^[ \t]*<!--[ \t]*test:[ \t]*file[ \t]+[^ \t]+[ \t]*-->[ \t]*$/ {
		path = $0
		sub(/^[ \t]*<!--[ \t]*test:[ \t]*file[ \t]+/, "", path)
		sub(/[ \t]*-->[ \t]*$/, "", path)
		next
	}
	path != "" && !inblock && /^[ \t]*$/ { next }
	path != "" && !inblock && /^[ \t]*```/ { inblock = 1; next }
	inblock && /^[ \t]*```[ \t]*$/ { inblock = 0; path = ""; next }
	inblock { print path "\t" $0; next }
	{ path = "" }
' "$readme")
if [ -n "$files" ]; then
	while IFS= read -r line; do
		f=${line%%	*}
		case $f in
		/*|*..*|*[!A-Za-z0-9_./-]*)
			echo "Bail out! README: a file outside the directory: $f"
			exit 1
			;;
		esac
		mkdir -p "$tmp/$(dirname "$f")"
		printf '%s\n' "${line#*	}" >>"$tmp/$f"
	done <<FILES
$files
FILES
fi
printf 'whsec_%s\n' "$(head -c 32 /dev/urandom | base64 | tr -d '\n')" \
    >"$tmp/secrets/hook-key"

# The webhook receiver (the README's, on a free port).
rport=
if [ "$have_python" = 1 ]; then
	python3 "$srcdir/tests/progs/webhook-receiver.py" 0 \
	    "$tmp/secrets/hook-key" >"$tmp/receiver.out" 2>&1 </dev/null &
	rpid=$!
	i=0
	while [ $i -lt $((100 * mult)) ]; do
		rport=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' \
		    "$tmp/receiver.out" | head -1)
		[ -n "$rport" ] && break
		kill -0 "$rpid" 2>/dev/null || break
		sleep 0.1
		i=$((i + 1))
	done
	ok "$([ -n "$rport" ]; echo $?)" "the webhook receiver listens" \
	    "$(cat "$tmp/receiver.out")"
fi

# The store: the README's file, or on PostgreSQL a database of its own
# (as tests/lib/corod.py gives each daemon; the server goes with the run).
db=var/corod.db
if [ -n "${COROD_TEST_PG:-}" ]; then
	name=corod_readme_$$
	if ! "${PSQL:-psql}" -qX -v ON_ERROR_STOP=1 "$COROD_TEST_PG" \
	    -c "CREATE DATABASE $name" >/dev/null; then
		echo "Bail out! cannot make a database on $COROD_TEST_PG"
		exit 1
	fi
	base=${COROD_TEST_PG%%\?*}
	db=${base%/*}/$name${COROD_TEST_PG#"$base"}
	echo "# --db $db"
fi

# Where and as the README starts it: relative paths, from its directory.
# shellcheck disable=SC2086
(cd "$tmp" && exec $wrapper "$bin" --listen 127.0.0.1:0 --db "$db" \
    --download-dir var/downloads --commands-dir commands \
    --secrets-dir secrets) >"$tmp/stderr.log" 2>&1 </dev/null &
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
	case $cmd in
	*localhost:8081*|*127.0.0.1:8081*)
		if [ -z "$rport" ]; then
			n=$((n + 1))
			echo "ok $n # SKIP no webhook receiver (python3): $short"
			continue
		fi
		cmd=${cmd//localhost:8081/127.0.0.1:$rport}
		cmd=${cmd//127.0.0.1:8081/127.0.0.1:$rport}
		;;
	esac
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
	# from the source tree, as the README runs tools/ and tests/progs/
	if [ "$have_timeout" = 1 ]; then
		out=$(cd "$srcdir" &&
		    timeout $((60 * mult)) bash -o pipefail -c "$run" 2>&1)
	else
		out=$(cd "$srcdir" && bash -o pipefail -c "$run" 2>&1)
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

# --- what the README shows of exec and http -------------------------------------

# The tasks are found by kind (not by the README's ids) and checked
# against what the README shows: the countdown's output, result and log;
# the webhook's retry after a 503, its answer, and the receiver's view.
if [ "$have_python" = 1 ]; then
	for kind in exec http; do
		printf '%s\n' "$commands" | grep -q "\"kind\":\"$kind\"" || continue
		why=$(python3 - "127.0.0.1:$port" "$kind" "$tmp/receiver.out" \
		    2>&1 <<'PY'
import json, re, sys, urllib.request
base, kind, recv = sys.argv[1], sys.argv[2], sys.argv[3]
def get(path):
    with urllib.request.urlopen("http://%s%s" % (base, path), timeout=30) as r:
        return r.read().decode()
tasks = json.loads(get("/v1/tasks?kind=%s&limit=100" % kind))["tasks"]
if len(tasks) != 1:
    sys.exit("%d %s tasks, the README makes 1" % (len(tasks), kind))
t = json.loads(get("/v1/tasks/%d" % tasks[0]["id"]))
log = get("/v1/tasks/%d/log" % t["id"])
lines = [l.split(" ", 1)[1] for l in log.splitlines() if " " in l]
res = t.get("result") or {}
if kind == "exec":
    want = ["exec countdown scheduled for execution", "3...", "2...",
            "1...", "[stderr] liftoff"]
    if t["state"] != "succeeded":
        sys.exit("state %s: %s" % (t["state"], json.dumps(t)))
    if res.get("exit_code") != 0 or res.get("signal") is not None:
        sys.exit("exit: %s" % json.dumps(res))
    if res.get("output") != {"launched": True}:
        sys.exit("output (the result file): %s" % json.dumps(res))
    if res.get("stdout_tail") != "3...\n2...\n1...\n":
        sys.exit("stdout_tail: %r" % res.get("stdout_tail"))
    for k in ("duration", "cpu_seconds", "max_rss"):
        if not isinstance(res.get(k), (int, float)):
            sys.exit("result.%s: %s" % (k, json.dumps(res)))
    got = [l for l in lines if not l.startswith("started ")]
    if got != want or not any(l.startswith("started /bin/sh (pid ")
                              for l in lines):
        sys.exit("log: %s" % log)
else:
    if t["state"] != "succeeded" or t["attempt"] != 2:
        sys.exit("state %s, attempt %s: %s" % (t["state"], t["attempt"],
                                               json.dumps(t)))
    wid = "corod-%d" % t["id"]
    if res.get("status") != 200 or res.get("json") != {"received": wid}:
        sys.exit("result: %s" % json.dumps(res))
    timings = res.get("timings") or {}
    if sorted(timings) != ["connect", "dns", "first_byte", "tls", "total"]:
        sys.exit("timings: %s" % json.dumps(res))
    pats = [r"POST http://127\.0\.0\.1:\d+/flaky/backup scheduled for execution",
            r"POST: HTTP 503",
            r"attempt 1 failed: http_error: HTTP 503 is not a success status; retrying in \d+\.\d s",
            r"attempt 2 started", r"POST: HTTP 200"]
    if len(lines) != len(pats) or not all(
            re.fullmatch(p, l) for p, l in zip(pats, lines)):
        sys.exit("log: %s" % log)
    with open(recv) as f:
        seen = [l.rstrip("\n") for l in f if not l.startswith("listening")]
    if seen != ["POST /flaky/backup id %s attempt 1 signature ok -> 503" % wid,
                "POST /flaky/backup id %s attempt 2 signature ok -> 200" % wid]:
        sys.exit("the receiver got: %s" % seen)
PY
		)
		ok $? "README: the $kind task is as the README shows it" "$why"
	done
fi

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
