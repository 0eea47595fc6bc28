#!/bin/sh
# with-pg.sh -- run a command with a private PostgreSQL server:
#
#	tests/unit/with-pg.sh tests/unit/test-pg-conn
#
# Starts one with tests/lib/pg.py in a temporary directory, exports
# COROD_TEST_PG (its URI), COROD_TEST_PGDIR (pg.py's directory) and
# COROD_TEST_PGPY (pg.py itself: outage tests run "pg.py stop DIR" and
# "pg.py start DIR"), runs "$@", stops the server (also when the command
# fails or is interrupted) and exits with the command's status.  Without PostgreSQL: 77 (automake's skip), or a
# failure if COROD_REQUIRE_PG=1.

here=$(cd "$(dirname "$0")" && pwd)
pgpy="$here/../lib/pg.py"
python=/usr/bin/python3
[ -x "$python" ] || python=python3

if ! "$python" -c "import sys; sys.path.insert(0, '$here/../lib');
import pg; sys.exit(0 if pg.available() else 1)"; then
	if [ "${COROD_REQUIRE_PG:-0}" = 1 ]; then
		echo "with-pg.sh: no PostgreSQL, and COROD_REQUIRE_PG=1" >&2
		exit 1
	fi
	echo "1..0 # SKIP no PostgreSQL"
	exit 77
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/corod-pg.XXXXXX") || exit 1
# shellcheck disable=SC2317  # run by the trap
cleanup() {
	"$python" "$pgpy" stop "$dir" immediate >/dev/null 2>&1
	if [ "${COROD_KEEP:-0}" = 1 ]; then
		echo "with-pg.sh: kept $dir" >&2
	else
		rm -rf "$dir"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if ! uri=$("$python" "$pgpy" start "$dir"); then
	echo "with-pg.sh: PostgreSQL did not start" >&2
	cat "$dir/postgres.log" >&2 2>/dev/null
	exit 1
fi
COROD_TEST_PG=$uri
COROD_TEST_PGDIR=$dir
COROD_TEST_PGPY=$pgpy
export COROD_TEST_PG COROD_TEST_PGDIR COROD_TEST_PGPY
"$@"
status=$?
exit $status
