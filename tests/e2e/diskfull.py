#!/usr/bin/env python3
"""diskfull.py -- the database's disk fills up, then has room again.

The database is on a small tmpfs (mounting one needs root: the test is
skipped otherwise) that a filler file fills to the last byte.  Then:

- submissions (single, batch, with an Idempotency-Key) and cancellations
  get 507 problem documents saying the disk is full (with Retry-After),
  never a 201 or 200 that the store does not hold;
- the daemon keeps running and serving reads: health, tasks, lists, logs;
  what was stored before is there, unchanged;
- tasks keep running: a sleep finishes and a counted repeat ticks while
  nothing can be written;
- once the filler is removed, corod recovers by itself: submissions are
  answered 201 again, the state changes and log lines it could not write
  are written (the sleep is stored succeeded, the repeat has every tick,
  the cancellation answered 507 is written too), nothing answered 507
  exists;
- after kill -9 the file passes integrity_check and every task answered
  201 is there.

And a start on a full disk, with a task to recover: corod cannot store
that the task was interrupted, so it exits 1 saying the disk is full
(running it without that record could run it twice unannounced); with
room again it starts and the task runs again, its log saying why.
"""

import os
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from tap import TAP, SkipTest, scaled  # noqa: E402
from corod import Corod, DaemonError, echo, is_problem  # noqa: E402

FINAL = ("succeeded", "failed", "canceled")
KiB = 1024

t = TAP("diskfull", total_timeout=300)


def mount_tmpfs(size):
    """A fresh tmpfs of size bytes; SkipTest where that is impossible."""
    if os.geteuid() != 0:
        raise SkipTest("mounting a small tmpfs needs root")
    mnt = tempfile.mkdtemp(prefix="corod-dbfull-")
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d" % size,
                        "tmpfs", mnt], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    if p.returncode != 0:
        os.rmdir(mnt)
        raise SkipTest("cannot mount a tmpfs here: %s" %
                       p.stdout.decode("utf-8", "replace").strip())
    return mnt


def umount(mnt):
    subprocess.run(["umount", mnt])
    os.rmdir(mnt)


def fill(path):
    """Write path until the file system is full; its size."""
    n = 0
    # unbuffered: a buffer still holding bytes when the disk filled would
    # raise ENOSPC again when the file is closed
    with open(path, "wb", buffering=0) as f:
        chunk = b"\0" * (64 * KiB)
        while True:
            try:
                w = f.write(chunk)
            except OSError:
                break
            if not w:
                break
            n += w
        try:
            os.fsync(f.fileno())
        except OSError:
            pass
    with open(path, "ab", buffering=0) as f:
        while True:
            try:
                f.write(b"\0" * 512)
            except OSError:
                break
    return os.path.getsize(path)


def integrity(path):
    con = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        return [r[0] for r in con.execute("PRAGMA integrity_check")]
    finally:
        con.close()


def is_full_problem(r, desc):
    ok, why = is_problem(r, 507)
    detail = r.body.get("detail", "") if isinstance(r.body, dict) else ""
    t.ok(ok and "full" in detail and
         r.headers.get("retry-after", "").isdigit(),
         "%s: 507, a problem document saying the disk is full, with "
         "Retry-After" % desc, diag=why + "\n" + r.describe())


def run_full(d, mnt):
    stored = [d.submit(echo("stored %d" % i, 3600)) for i in range(20)]
    stored.append(d.submit({"kind": "sequence", "params": {"tasks": [
        echo("child a"), echo("child b")]}, "delay": 3600}))
    victim = d.submit(echo("to be canceled while full", 3600))
    snoozer = d.submit({"kind": "sleep", "params": {"seconds": 1.0}})
    ticker = d.submit({"kind": "repeat", "params": {
        "message": "tick", "interval": 0.1, "count": 30}})
    d.wait_state(snoozer["id"], "running", 5)
    d.wait_state(ticker["id"], "running", 5)
    before = {x["id"]: d.get(x["id"]) for x in stored}
    acked = {x["id"]: x for x in stored}

    filler = os.path.join(mnt, "filler")
    size = fill(filler)
    t.ok(size > 0, "the tmpfs is full (filler of %d KiB)" % (size // KiB))

    # The WAL may still have room where a checkpoint let it restart:
    # submit bodies of 60 KiB until the store refuses one.
    refused = []
    r = None
    for i in range(200):
        spec = echo("full %d %s" % (i, "x" * 60000), 3600)
        r = d.request("POST", "/v1/tasks", spec)
        if r.status == 201:
            acked[r.body["id"]] = r.body
            continue
        refused.append(spec["params"]["message"])
        break
    is_full_problem(r, "a submission with the disk full")
    t0 = time.monotonic()
    r = d.request("POST", "/v1/tasks", [echo("batch full 1"),
                                        echo("batch full 2")])
    refused += ["batch full 1", "batch full 2"]
    is_full_problem(r, "a batch")
    t.ok(time.monotonic() - t0 < scaled(1.0),
         "... answered at once while the store is known full (%.2f s)" %
         (time.monotonic() - t0))
    r = d.request("POST", "/v1/tasks", echo("idem full"),
                  headers={"Idempotency-Key": "full-1"})
    refused.append("idem full")
    is_full_problem(r, "a submission with an Idempotency-Key")
    r = d.cancel(victim["id"])
    is_full_problem(r, "a cancellation")

    # Reads go on.
    t.is_(d.request("GET", "/healthz").status, 200, "healthz: 200")
    t.is_({i: d.get(i) for i in before}, before,
          "the tasks stored before are there, unchanged")
    r = d.request("GET", "/v1/tasks?limit=5")
    t.is_(r.status, 200, "the list is served")
    t.is_([x[1] for x in d.log(stored[0]["id"])],
          ['"stored 0" scheduled for execution'], "logs are served")

    # Tasks go on running in memory; the store cannot hear of it yet.
    time.sleep(1.5)
    t.is_(d.get(snoozer["id"])["state"], "running",
          "the sleep that finished while the disk was full is still "
          "running in the store (its end is not written yet)")
    t.ok(d.running(), "the daemon is still running")
    t.like(d.output(), r"disk is full", "its log says the disk is full")

    # Room again: recovery without a restart.
    os.unlink(filler)
    t0 = time.monotonic()
    new = d.wait_for(lambda: (lambda r: r.body if r.status == 201 else None)(
        d.request("POST", "/v1/tasks", echo("room again", 3600))), 5,
        interval=0.2, desc="a submission answered 201")
    acked[new["id"]] = new
    t.ok(True, "with room again a submission is answered 201 after %.1f s"
         % (time.monotonic() - t0))
    x = d.wait_state(snoozer["id"], FINAL, 5)
    t.is_(x["state"], "succeeded", "the sleep's end is written: succeeded")
    x = d.wait_state(ticker["id"], FINAL, 10)
    ticks = [ln[1] for ln in d.log(ticker["id"])].count("tick")
    t.is_((x["state"], ticks), ("succeeded", 30),
          "the repeat succeeded with all 30 ticks logged, those of the "
          "full disk too")
    x = d.get(victim["id"])
    t.is_((x["state"], x["cancel_requested"]), ("canceled", True),
          "the cancellation answered 507 is written once there is room "
          "(API.md: it may be; repeat it to be sure)")
    t.is_(d.cancel(victim["id"]).status, 200, "... and a repeat is 200")
    r = d.request("POST", "/v1/tasks", echo("idem full"),
                  headers={"Idempotency-Key": "full-1"})
    t.is_(r.status, 201, "the Idempotency-Key refused with 507 is free: "
          "201 now")
    acked[r.body["id"]] = r.body
    refused.remove("idem full")

    everything = d.list_all()
    msgs = [x["params"].get("message") for x in everything]
    t.is_([m for m in refused if m in msgs], [],
          "no submission answered 507 is stored")
    d.kill9()
    t.is_(integrity(d.db), ["ok"], "after kill -9: integrity_check ok")
    d.start()
    got = {}
    for i in acked:
        r = d.request("GET", "/v1/tasks/%d" % i)
        got[i] = r.status
    t.is_([i for i, s in got.items() if s != 200], [],
          "every task answered 201 (%d) is there after a restart" %
          len(acked))
    t.is_(d.stop(), 0, "SIGTERM: exit status 0")


@t.test(timeout=120)
def database_disk_full():
    mnt = mount_tmpfs(8 * 1024 * 1024)
    try:
        with Corod(t, name="dbfull", db=os.path.join(mnt, "corod.db")) as d:
            run_full(d, mnt)
    finally:
        umount(mnt)



@t.test(timeout=120)
def start_with_the_disk_full():
    mnt = mount_tmpfs(4 * 1024 * 1024)
    try:
        with Corod(t, name="startfull",
                   db=os.path.join(mnt, "corod.db")) as d:
            r = d.submit({"kind": "repeat", "params": {"message": "tick",
                                                        "interval": 0.2}})
            d.wait_state(r["id"], "running", 5)
            d.kill9()
            filler = os.path.join(mnt, "filler")
            fill(filler)
            try:
                d.start()
                t.fail("corod started on a full disk with a task to "
                       "recover")
            except DaemonError as e:
                t.ok("status 1" in str(e) and "disk holding the database "
                     "is full" in str(e), "it exits 1 saying the disk "
                     "is full", diag=str(e)[-1500:])
            t.is_(integrity(d.db), ["ok"], "the file passes "
                  "integrity_check")
            os.unlink(filler)
            d.start()
            x = d.wait_for(lambda: (lambda y: y if y["state"] == "running"
                                    and y["attempt"] == 2 else None)(
                d.get(r["id"])), 5, desc="the repeat running again")
            t.ok(x is not None, "with room again it starts, and the "
                 "repeat runs again (attempt 2)")
            t.ok(any(ln[1].startswith("interrupted:")
                     for ln in d.log(r["id"])),
                 "... its log says it was interrupted")
            t.is_(d.stop(), 0, "SIGTERM: exit status 0")
    finally:
        umount(mnt)


t.done()
