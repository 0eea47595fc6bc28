#!/usr/bin/env bash
# openapi.sh -- the API's description, as TAP: runs tests/e2e/openapi.mjs
# (Node), which lints doc/openapi.yaml with a real OpenAPI 3.1 validator
# (@seriousme/openapi-schema-validator, as pinned in
# tests/package-lock.json: npm ci --prefix tests) and checks that the real
# daemon serves that description at GET /v1/openapi.json.  (That every
# answer of the other end-to-end tests matches the description is checked
# by tests/lib/corod.py, with Python.)
#
# Without node (20 or later) or the validator the test is skipped
# (1..0 # SKIP), as tests/e2e/dashboard.sh is.
#
# Environment: COROD_BIN, COROD_SRCDIR, COROD_TIMEOUT_MULT, COROD_KEEP (see
# tests/lib); COROD_NODE_MODULES (a node_modules directory holding the
# validator).

set -u

here=$(cd "$(dirname "$0")" && pwd)
srcdir=${COROD_SRCDIR:-$(cd "$here/../.." && pwd)}
bin=${COROD_BIN:-$srcdir/daemon/corod}
mult=${COROD_TIMEOUT_MULT:-1}
case $mult in
''|*[!0-9]*) mult=1 ;;	# integers only here
esac
[ "$mult" -ge 1 ] || mult=1

skip() {
	echo "1..0 # SKIP $*"
	exit 0
}

[ -x "$bin" ] || skip "no daemon binary at $bin"
command -v node >/dev/null 2>&1 || skip "node is not installed"
major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null)
case $major in
''|*[!0-9]*) skip "cannot run node" ;;
esac
[ "$major" -ge 20 ] || skip "node $major is too old (20 or later)"

# The validator: tests/node_modules of this tree, or of a tree above it
# (the sanitizer run tests a copy of the sources in build-asan/src).
want=@seriousme/openapi-schema-validator/package.json
mods=
for d in ${COROD_NODE_MODULES:+"$COROD_NODE_MODULES"} "$here/../node_modules" \
    "$srcdir/tests/node_modules"; do
	if [ -f "$d/$want" ]; then
		mods=$d
		break
	fi
done
d=$srcdir
while [ -z "$mods" ] && [ "$d" != / ] && [ -n "$d" ]; do
	d=$(dirname "$d")
	[ -f "$d/tests/node_modules/$want" ] && mods=$d/tests/node_modules
done
[ -n "$mods" ] || skip "no @seriousme/openapi-schema-validator (npm ci --prefix tests)"

limit=$((120 * mult))
runner=
command -v timeout >/dev/null 2>&1 && runner="timeout -k 10 $limit"

out=$(mktemp "${TMPDIR:-/tmp}/corod-openapi-XXXXXX")
trap 'rm -f "$out"' EXIT
COROD_BIN=$bin COROD_SRCDIR=$srcdir COROD_NODE_MODULES=$mods \
    $runner node "$here/openapi.mjs" 2>"$out" </dev/null
rc=$?
if [ "$rc" -ne 0 ] && [ -s "$out" ]; then
	head -40 "$out" | sed 's/^/# stderr: /'
fi
# a run that died before its plan: the driver sees no plan, and fails
exit "$rc"
