#!/usr/bin/env bash
# deb.sh -- build corod's Debian package from a clean copy of the
# distributed sources, check it with lintian, and (as root) install it,
# check what it installed, remove and purge it; as TAP, one point per check.
#
#   tests/package/deb.sh [BUILDDIR]        (from a configured tree)
#
# 1. `make distdir` copies the distribution (debian/ included) to
#    BUILDDIR/corod-VERSION (default build-deb/ at the top of the tree,
#    emptied first, kept afterwards): the package is built from what a
#    release holds, not from the configured tree.
# 2. dpkg-source -b and lintian on the .dsc (debian/ itself); then
#    dpkg-buildpackage -us -uc -b in the copy (DEB_BUILD_OPTIONS passes
#    through: tests/run-all.sh sets nocheck, as its suite has already run;
#    without it the package build runs the unit tests), then lintian on
#    the .changes (both .debs and the .buildinfo): no error or warning.
# 3. As root only, and only where no corod package or state is there
#    already (COROD_DEB_INSTALL=no skips it too): dpkg -i; corod
#    --version; every path of PATHS below installed; the conffile
#    registered; corod.service enabled, corod.socket not; systemd-analyze
#    verify on the installed units (systemd need not run: verify loads
#    the units in a manager of its own and checks the programs and man
#    pages they name); the man pages found by man; the installed corod
#    serving the dashboard built into it; dpkg -r (the conffile and the
#    state stay); dpkg -P (nothing left: dpkg -L fails, /etc/corod, the
#    units, their enablement links and the state are gone).  The state
#    is what systemd makes for DynamicUser=yes (/var/lib/corod a link to
#    /var/lib/private/corod), made here by hand when no service ran.  On
#    a machine where systemd runs, the postinst also starts corod.service
#    (127.0.0.1:8080, which makes the state) and the prerm stops it (not
#    tried yet: this machine's PID 1 is not systemd).
#
# Not root: the install checks are reported as skipped (not passed).

set -u

top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$top/build-deb}

# What the package installs, one absolute path a line; each is checked
# in the .deb, after dpkg -i, and gone after dpkg -r (but the conffile)
# and dpkg -P.
PATHS='
/usr/sbin/corod
/usr/bin/corod-worker
/usr/bin/corodctl
/usr/share/bash-completion/completions/corodctl
/lib/systemd/system/corod.service
/lib/systemd/system/corod.socket
/etc/corod/corod.conf
/usr/share/man/man8/corod.8.gz
/usr/share/man/man1/corod-worker.1.gz
/usr/share/man/man1/corodctl.1.gz
/usr/share/doc/corod/copyright
/usr/share/doc/corod/README.md.gz
/usr/share/doc/corod/API.md.gz
/usr/share/doc/corod/examples/corod-exec.conf.example
'
CONFFILE=/etc/corod/corod.conf
# Man pages by name, each found by `man -w` once installed.
MANPAGES='corod.8 corod-worker.1 corodctl.1'

n=0
failed=0
skipped=0
ok() {	# ok STATUS DESCRIPTION [DIAG]
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $n - $2"
	else
		failed=$((failed + 1))
		echo "not ok $n - $2"
		if [ $# -ge 3 ] && [ -n "$3" ]; then
			printf '%s\n' "$3" | tail -60 | sed 's/^/# /'
		fi
	fi
}
skip() {	# skip DESCRIPTION REASON
	n=$((n + 1))
	skipped=$((skipped + 1))
	echo "ok $n - $1 # SKIP $2"
}
diag() {
	printf '%s\n' "$@" | sed 's/^/# /'
}
finish() {
	echo "1..$n"
	diag "$((n - failed - skipped)) passed, $failed failed, $skipped skipped"
	[ "$failed" -eq 0 ]
	exit
}
# A failed point, and the rest of the checks given up.
bail() {
	ok 1 "$*"
	echo "Bail out! $*"
	finish
}

cd "$top" || bail "cannot cd to $top"
[ -f Makefile ] || bail "no Makefile in $top: configure the tree first"
version=$(sed -n 's/^PACKAGE_VERSION = //p' Makefile)
arch=$(dpkg --print-architecture)
[ -n "$version" ] && [ -n "$arch" ] || bail "no PACKAGE_VERSION or architecture"
src=$build/corod-$version
deb=$build/corod_${version}_$arch.deb
changes=$build/corod_${version}_$arch.changes

# --- 1. the distributed sources ----------------------------------------------

rm -rf "$build"
mkdir -p "$build"
out=$(make distdir distdir="$src" 2>&1)
ok $? "make distdir into $src" "$out"
[ -f "$src/debian/rules" ] || bail "the distribution holds no debian/rules"
cv=$(cd "$src" && dpkg-parsechangelog -S Version 2>&1)
[ "$cv" = "$version" ]
ok $? "debian/changelog's version ($cv) is configure's ($version)"

# The source package too (3.0 (native): the distribution is its tarball),
# made before the build leaves its files in the tree, for lintian's
# checks of debian/ itself.
out=$(cd "$build" && dpkg-source -b "corod-$version" 2>&1)
ok $? "dpkg-source -b: corod_$version.dsc" "$out"
lint=$(lintian --info --display-info --pedantic "$build/corod_$version.dsc" \
    2>&1 | grep -v '^running with root privileges is not recommended!$')
diag "lintian on the .dsc: ${lint:-(no output)}"
tags=$(printf '%s\n' "$lint" | grep -E '^[EW]: ')
[ -z "$tags" ] && [ -f "$build/corod_$version.dsc" ]
ok $? "lintian on the source package: no error and no warning" "$tags"

# --- 2. build and lint -------------------------------------------------------

diag "dpkg-buildpackage -us -uc -b (DEB_BUILD_OPTIONS=${DEB_BUILD_OPTIONS:-})"
start=$(date +%s)
(cd "$src" && dpkg-buildpackage -us -uc -b) >"$build/build.log" 2>&1
st=$?
ok $st "dpkg-buildpackage -us -uc -b ($(($(date +%s) - start)) s)" \
    "$(tail -40 "$build/build.log")"
[ -f "$deb" ]
ok $? "it made $(basename "$deb")" "$(ls "$build")"
[ -f "$deb" ] || bail "no package to check"

contents=$(dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's|^\.||')
for p in $PATHS; do
	printf '%s\n' "$contents" | grep -qxF "$p"
	ok $? "the .deb holds $p"
done
dpkg-deb -I "$deb" conffiles 2>/dev/null | grep -qxF "$CONFFILE"
ok $? "the .deb lists $CONFFILE as a conffile" \
    "$(dpkg-deb -I "$deb" conffiles 2>&1)"

lint=$(lintian --info --display-info --pedantic "$changes" 2>&1 |
    grep -v '^running with root privileges is not recommended!$')
diag "lintian --info --display-info --pedantic: ${lint:-(no output)}"
tags=$(printf '%s\n' "$lint" | grep -E '^[EW]: ')
[ -z "$tags" ] && [ -f "$changes" ]
ok $? "lintian: no error and no warning" "$tags"

# Every override says why: a comment line right above it.
ovr=$top/debian/corod.lintian-overrides
bare=$(awk '/^[ \t]*#/ { c = 1; next } /^[ \t]*$/ { c = 0; next }
	!c { print } { c = 1 }' "$ovr" 2>&1)
[ -f "$ovr" ] && [ -z "$bare" ]
ok $? "every lintian override has a comment above it" "$bare"

# --- 3. install, remove, purge (root) ----------------------------------------

installs="install, remove and purge checks"
why=""
if [ "$(id -u)" -ne 0 ]; then
	why="not root"
elif [ "${COROD_DEB_INSTALL:-yes}" = no ]; then
	why="COROD_DEB_INSTALL=no"
elif dpkg-query -W -f '${Status}' corod 2>/dev/null | grep -q .; then
	why="a corod package is on this machine already"
elif [ -e /var/lib/corod ] || [ -e /var/lib/private/corod ] ||
    [ -e /etc/corod ]; then
	why="corod's state or settings are on this machine already"
fi
if [ -n "$why" ]; then
	echo "# $installs skipped: $why"
	skip "$installs" "$why"
	finish
fi

# Leave the machine as it was, whatever fails.
made_private=no
cleanup() {
	if dpkg-query -W -f '${Status}' corod 2>/dev/null | grep -q .; then
		dpkg -P corod >/dev/null 2>&1
	fi
	rm -rf /var/lib/corod /var/lib/private/corod
	[ "$made_private" = yes ] && rmdir /var/lib/private 2>/dev/null
	[ -n "${pid:-}" ] && kill "$pid" 2>/dev/null
	[ -n "${run:-}" ] && rm -rf "$run"
}
trap cleanup EXIT

out=$(dpkg -i "$deb" 2>&1)
ok $? "dpkg -i $(basename "$deb")" "$out"
st=$(dpkg-query -W -f '${Status}' corod 2>&1)
[ "$st" = "install ok installed" ]
ok $? "dpkg-query: $st"
out=$(/usr/sbin/corod --version 2>&1)
[ "$out" = "corod $version" ]
ok $? "corod --version: $out"
out=$(/usr/bin/corodctl --version 2>&1)
[ "$out" = "corodctl $version" ]
ok $? "corodctl --version: $out"
for p in $PATHS; do
	[ -e "$p" ]
	ok $? "installed: $p"
done
reg=$(dpkg-query --showformat '${Conffiles}' -W corod 2>&1)
sum=$(md5sum "$CONFFILE" 2>/dev/null | cut -d' ' -f1)
printf '%s\n' "$reg" | grep -qE "^ $CONFFILE $sum\$"
ok $? "dpkg-query \${Conffiles}: $CONFFILE with its md5sum" "$reg"
[ -L /etc/systemd/system/multi-user.target.wants/corod.service ]
ok $? "corod.service enabled (multi-user.target.wants)"
[ ! -e /etc/systemd/system/sockets.target.wants/corod.socket ]
ok $? "corod.socket not enabled"

# verify wants every man page named by Documentation= (man-db), and the
# ExecStart and ExecReload programs, installed.
out=$(systemd-analyze verify /lib/systemd/system/corod.service \
    /lib/systemd/system/corod.socket 2>&1)
st=$?
[ "$st" -eq 0 ] && [ -z "$out" ]
ok $? "systemd-analyze verify corod.service corod.socket: exit 0, no output" \
    "exit $st: $out"
for m in $MANPAGES; do
	out=$(man -w "${m##*.}" "${m%.*}" 2>&1)
	[ "$out" = "/usr/share/man/man${m##*.}/$m.gz" ]
	ok $? "man -w ${m##*.} ${m%.*}: $out"
done

# The dashboard is built into the binary: the installed corod serves it.
run=$(mktemp -d "${TMPDIR:-/tmp}/corod-deb-run.XXXXXX")
port=$(/usr/bin/python3 -c 'import socket; s = socket.socket();
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
/usr/sbin/corod --listen "127.0.0.1:$port" --db "$run/corod.db" \
    --download-dir "$run/downloads" >"$run/corod.log" 2>&1 &
pid=$!
page=""
for _ in $(seq 50); do
	page=$(curl -sf "http://127.0.0.1:$port/" 2>/dev/null) && break
	sleep 0.1
done
printf '%s' "$page" | grep -qi '<html'
ok $? "the installed corod serves the dashboard at / (built in)" \
    "$(cat "$run/corod.log")"
kill "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
pid=""

# The state: systemd's own where it ran corod.service (the postinst
# starts it), else made as systemd makes it for the dynamic user.
if [ ! -e /var/lib/corod ]; then
	[ -d /var/lib/private ] || made_private=yes
	mkdir -p -m 0700 /var/lib/private
	mkdir -p /var/lib/private/corod/downloads
	: >/var/lib/private/corod/corod.db
	ln -s private/corod /var/lib/corod
fi

out=$(dpkg -r corod 2>&1)
ok $? "dpkg -r corod" "$out"
st=$(dpkg-query -W -f '${Status}' corod 2>&1)
[ "$st" = "deinstall ok config-files" ]
ok $? "after dpkg -r: $st"
left=""
for p in $PATHS; do
	[ "$p" = "$CONFFILE" ] && continue
	[ -e "$p" ] && left="$left $p"
done
[ -z "$left" ]
ok $? "after dpkg -r: every file gone but the conffile" "left:$left"
[ -f "$CONFFILE" ]
ok $? "after dpkg -r: $CONFFILE kept"
[ -d /var/lib/corod/ ]
ok $? "after dpkg -r: the state (/var/lib/corod) kept"

out=$(dpkg -P corod 2>&1)
ok $? "dpkg -P corod" "$out"
out=$(dpkg -L corod 2>&1)
[ $? -ne 0 ]
ok $? "after dpkg -P: dpkg -L corod fails" "$out"
[ ! -e /etc/corod ]
ok $? "after dpkg -P: /etc/corod gone" "$(ls -la /etc/corod 2>&1)"
left=""
for p in $PATHS; do
	[ -e "$p" ] && left="$left $p"
done
[ -z "$left" ]
ok $? "after dpkg -P: every file gone" "left:$left"
units=$(find /lib/systemd/system /usr/lib/systemd/system /etc/systemd/system \
    /var/lib/systemd/deb-systemd-helper-enabled \
    /var/lib/systemd/deb-systemd-helper-masked \
    -name 'corod*' 2>/dev/null)
[ -z "$units" ]
ok $? "after dpkg -P: no unit, enablement link or state of deb-systemd-helper" \
    "$units"
[ ! -e /var/lib/corod ] && [ ! -e /var/lib/private/corod ]
ok $? "after dpkg -P: the state gone (/var/lib/corod, /var/lib/private/corod)"

finish
