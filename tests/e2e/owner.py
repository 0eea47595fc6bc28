#!/usr/bin/env python3
"""owner.py -- one corod per database file (issue 13).

Two daemons on one sqlite file used to both start, hand out the same ids
and answer every submission 503 ("UNIQUE constraint failed: tasks.id");
at start both would rerun the same interrupted tasks.  Now the first
holds a lock on "<db>.lock" for its life, and:

- a second corod started on the same file exits non-zero within seconds,
  naming the first's pid and the path, without touching the file: the
  first still serves, and its data is intact;
- the lock dies with its process: after a kill -9 of the first (the lock
  file left behind) a new corod starts on the file and recovers the task
  the first was running;
- two corods on two different files run side by side.
"""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from tap import TAP, scaled  # noqa: E402
from corod import sqlite_only, Corod, corod_bin, echo, sleep, wrapper_args  # noqa: E402

FINAL = ("succeeded", "failed", "canceled")

t = TAP("owner", total_timeout=300)


def second_start(db, cwd, seconds=10):
    """corod on db as a second daemon: (status, output, seconds taken);
    status None if it was still running after seconds (then killed)."""
    cmd = wrapper_args() + [corod_bin(), "--listen", "127.0.0.1:0",
                            "--db", db, "--download-dir",
                            os.path.join(cwd, "dl2")]
    began = time.monotonic()
    p = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = p.communicate(timeout=scaled(seconds))
        rc = p.returncode
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
        rc = None
    return rc, out.decode("utf-8", "replace"), time.monotonic() - began


def file_state(db):
    """What a second start must not change: the database files' sizes
    and modification times."""
    state = {}
    for side in ("", "-wal", "-shm"):
        try:
            st = os.stat(db + side)
            state[side] = (st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            state[side] = None
    return state


@t.test(timeout=120)
def second_daemon_refused():
    sqlite_only("the lock file of an sqlite store")
    with Corod(t, name="first") as d:
        kept = d.submit(echo("kept", 3600, name="kept"))
        done = d.submit(echo("done"))
        d.wait_state(done["id"], "succeeded", 5)
        before = file_state(d.db)
        with open(d.db + ".lock") as f:
            t.is_(f.read().strip(), str(d.pid),
                  "the lock file beside the database holds the first's pid")

        rc, out, took = second_start(d.db, d.dir)
        t.ok(rc not in (None, 0), "a second corod on the same file exits "
             "non-zero (status %s)" % rc, diag=out[-2000:])
        t.ok(took < scaled(5), "... within seconds (%.2f s)" % took)
        t.ok("pid %d" % d.pid in out and d.db in out,
             "its message names the first's pid and the path",
             diag=out[-2000:])
        t.ok("listening on" not in out and "started" not in out,
             "it never listened or said started", diag=out[-2000:])
        t.is_(file_state(d.db), before, "the database files are untouched "
              "(sizes and mtimes)")

        t.ok(d.running(), "the first is still running")
        again = d.get(kept["id"])
        t.ok(again["state"] == "scheduled" and again["name"] == "kept",
             "the first still serves its data")
        x = d.submit(echo("after"))
        t.ok(x["id"] > done["id"], "... and takes submissions with new ids "
             "(%d)" % x["id"])
        t.is_(d.wait_state(x["id"], "succeeded", 5)["state"], "succeeded",
              "... and runs them")
        t.is_(d.stop(), 0, "the first stops cleanly (exit 0)")


@t.test(timeout=120)
def kill9_leaves_no_lock():
    sqlite_only("the lock file of an sqlite store")
    with Corod(t, name="killed") as d:
        s = d.submit(sleep(30, name="long"))
        d.wait_state(s["id"], "running", 5)
        first_pid = d.pid
        d.kill9()
        t.ok(os.path.exists(d.db + ".lock"), "a kill -9 leaves the lock "
             "file behind")
        d.start()
        t.ok(d.pid != first_pid, "a new corod starts on the file (its lock "
             "died with the killed one)")
        with open(d.db + ".lock") as f:
            t.is_(f.read().strip(), str(d.pid), "the lock file now holds "
                  "the new pid")
        got = d.get(s["id"])
        t.ok(got["state"] in ("scheduled", "running"),
             "the interrupted task is recovered (%s)" % got["state"])
        lines = [text for _, text in d.log(s["id"])]
        t.ok(any("interrupted" in x for x in lines),
             "its log says it was interrupted", diag="\n".join(lines[-10:]))
        c = d.cancel(s["id"])
        t.ok(c.status in (200, 202), "and it is this daemon's to cancel "
             "(%d)" % c.status)
        t.ok(d.wait_state(s["id"], FINAL, 10)["state"] == "canceled",
             "canceled")
        t.is_(d.stop(), 0, "stops cleanly")


@t.test(timeout=120)
def two_files_side_by_side():
    sqlite_only("the lock file of an sqlite store")
    with Corod(t, name="a") as a, Corod(t, name="b") as b:
        xa = a.submit(echo("in a"))
        xb = b.submit(echo("in b"))
        t.is_(a.wait_state(xa["id"], "succeeded", 5)["state"], "succeeded",
              "a corod on one file runs its task")
        t.is_(b.wait_state(xb["id"], "succeeded", 5)["state"], "succeeded",
              "another on another file runs its own beside it")
        t.is_(a.stop(), 0, "the first stops cleanly")
        t.is_(b.stop(), 0, "the second too")


t.done()
