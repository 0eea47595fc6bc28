#!/usr/bin/env python3
"""deferred.py -- end-to-end tests again with a store that answers later.

sqlite answers every read at once, before the read op returns; a backend
on the network (PostgreSQL) answers in a later turn of the loop.  With
COROD_TEST_DEFER_READS=1 the daemon's sqlite backend holds each answer of
the loop's reads until a later turn (db/db.c), so every continuation in
api/, admission, the scheduler and housekeeping runs the way it will on
such a backend.  This runs a set of the end-to-end tests that way and
reports them as one TAP stream: each point renumbered, named after its
test.  A test that does not finish, or ends without its plan, is a
failed point.
"""
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# Those that read the most through the store: every endpoint, the
# walk-through, held requests (waits, follows), a kill -9 and recovery,
# big pages of a log streamed while the client reads, unique keys (their
# holder read from the store while other submissions of the key wait).
TESTS = ["endpoints.py", "walkthrough.py", "held.py", "crash.py",
         "bigbody.py", "unique.py"]
# Each test bounds itself; this only turns a hang into a failure.
LIMIT = 900 * max(1, int(os.environ.get("COROD_TIMEOUT_MULT", "1") or 1))

POINT = re.compile(r"^(not ok|ok)\s+\d+\s*(?:-\s*)?(.*)$")
PLAN = re.compile(r"^1\.\.(\d+)")


def main():
    env = dict(os.environ, COROD_TEST_DEFER_READS="1")
    n = 0
    failed = 0
    for name in TESTS:
        try:
            out = subprocess.run([sys.executable, os.path.join(HERE, name)],
                                 env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, timeout=LIMIT,
                                 text=True, errors="replace").stdout
            why = None
        except subprocess.TimeoutExpired as e:
            out = e.stdout or ""
            if isinstance(out, bytes):
                out = out.decode("utf-8", "replace")
            why = "did not end within %d s" % LIMIT
        planned = None
        seen = 0
        for line in out.splitlines():
            m = POINT.match(line)
            if m:
                n += 1
                seen += 1
                if m.group(1) == "not ok":
                    failed += 1
                print("%s %d - deferred %s: %s" % (m.group(1), n,
                      name[:-3], m.group(2)), flush=True)
                continue
            m = PLAN.match(line)
            if m:
                planned = int(m.group(1))
                continue
            print("# " + line if not line.startswith("#") else line)
        if why is None and planned != seen:
            why = "ran %d points of its plan %s" % (seen, planned)
        if why is not None:
            n += 1
            failed += 1
            print("not ok %d - deferred %s: %s" % (n, name[:-3], why))
    print("1..%d" % n)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
