#!/usr/bin/env python3
"""durability.py -- kill -9 and restart against the real daemon.

Every answered submission is there after a restart, an answered
cancellation never runs, a running task interrupted by the kill is
rescheduled with a log line saying so (its attempt counted), delayed
tasks still run at about their time, a burst of concurrent submissions
killed mid-way loses no task that got its 201, SIGTERM exits 0 (with tasks
in every state the scheduler holds: armed, in a retry's backoff, due and
waiting for a slot, running, groups with children) and the database
passes sqlite's integrity check.
"""

import http.client
import json
import os
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from tap import TAP, scaled  # noqa: E402
from corod import Corod, parse_time, echo, free_port  # noqa: E402
from fileserver import FileServer  # noqa: E402

FINAL = ("succeeded", "failed", "canceled")

t = TAP("durability")


def integrity(db):
    """sqlite3's PRAGMA integrity_check on a (stopped) daemon's file."""
    if db.startswith(("postgresql://", "postgres://")):
        t.skip("PRAGMA integrity_check", "the store is PostgreSQL")
        return
    cli = shutil.which("sqlite3")
    if cli is None:
        t.skip("PRAGMA integrity_check", "no sqlite3 command-line tool")
        return
    p = subprocess.run([cli, db, "PRAGMA integrity_check;"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=scaled(60))
    out = p.stdout.decode("utf-8", "replace").strip()
    t.ok(p.returncode == 0 and out == "ok",
         "PRAGMA integrity_check: ok", diag=out[:2000])


@t.test(timeout=60)
def answered_submissions_survive():
    with Corod(t, name="submissions") as d:
        one = d.submit(echo("one", 3600, name="n1"))
        batch = d.submit([echo("b%d" % i, 3600) for i in range(5)])
        grp = d.submit({"kind": "sequence", "params": {"tasks": [
            echo("s1", 3600), echo("s2")]}, "delay": 3600})
        done = d.submit(echo("done"))
        d.wait_state(done["id"], "succeeded", 5)
        ids = [one["id"]] + [x["id"] for x in batch] + [grp["id"]] + \
            grp["children"] + [done["id"]]
        before = {i: d.get(i) for i in ids}
        logs = {i: d.request("GET", "/v1/tasks/%d/log" % i).body for i in ids}
        d.kill9()
        d.start()
        after = {}
        for i in ids:
            r = d.request("GET", "/v1/tasks/%d" % i)
            after[i] = r.body if r.status == 200 else r.status
        t.is_(after, before, "after kill -9 and restart every answered task "
              "is there, unchanged (%d tasks)" % len(ids))
        t.is_({i: d.request("GET", "/v1/tasks/%d/log" % i).body for i in ids},
              logs, "... and so are their logs")
        nxt = d.submit(echo("after restart", 3600))
        t.ok(nxt["id"] > max(ids), "ids keep growing after a restart "
             "(%d > %d)" % (nxt["id"], max(ids)))
        r = d.request("POST", "/v1/tasks", echo("idem", 3600),
                      headers={"Idempotency-Key": "dur-1"})
        d.kill9()
        d.start()
        r2 = d.request("POST", "/v1/tasks", echo("idem", 3600),
                       headers={"Idempotency-Key": "dur-1"})
        t.ok(r.status == 201 and r2.status == 200 and
             r2.body.get("id") == r.body.get("id"),
             "an Idempotency-Key survives kill -9", diag=r2.describe())
        t.is_(d.stop(), 0, "SIGTERM: exit status 0")
        integrity(d.db)


@t.test(timeout=60)
def answered_cancel_never_runs():
    with Corod(t, name="cancel") as d:
        a = d.submit(echo("must never run", 1.5))
        g = d.submit({"kind": "gather", "params": {"tasks": [
            echo("child never runs")]}, "delay": 1.5})
        r = d.cancel(a["id"])
        t.is_(r.status, 200, "cancel of a delayed task: 200")
        r = d.cancel(g["id"])
        t.is_(r.status, 200, "cancel of a delayed gather: 200")
        d.kill9()
        d.start()
        time.sleep(2.5)
        x = d.get(a["id"])
        t.is_((x["state"], x["started_at"], x["attempt"]),
              ("canceled", None, 0),
              "after kill -9, restart and its run_at: still canceled, "
              "never started")
        t.ok(not any(line[1] == "must never run" for line in d.log(a["id"])),
             "... and its message was never logged")
        gg = d.get(g["id"])
        t.is_([gg["state"]] + [d.get(k)["state"] for k in gg["children"]],
              ["canceled", "canceled"], "the canceled gather and its child "
              "stay canceled")
        d.kill9()
        d.start()
        t.is_(d.get(a["id"])["state"], "canceled", "... across a second "
              "restart too")
        t.is_(d.stop(), 0, "SIGTERM: exit status 0")


@t.test(timeout=60)
def interrupted_task_is_rescheduled():
    with Corod(t, name="interrupted") as d:
        r = d.submit({"kind": "repeat", "params": {"message": "tick",
                                                    "interval": 0.2}})
        s = d.submit({"kind": "sleep", "params": {"seconds": 1.5}})
        d.wait_for(lambda: sum(1 for x in d.log(r["id"]) if x[1] == "tick")
                   >= 2, 5, desc="two ticks")
        x = d.get(r["id"])
        t.is_((x["state"], x["attempt"]), ("running", 1),
              "the repeat runs, attempt 1")
        t.is_(d.get(s["id"])["state"], "running", "the sleep runs")
        d.kill9()
        d.start()
        x = d.wait_for(lambda: (lambda y: y if y["state"] == "running" and
                                y["attempt"] >= 2 else None)(d.get(r["id"])),
                       5, desc="repeat running again")
        t.is_(x["attempt"], 2, "after kill -9 the repeat runs again, "
              "attempt 2")
        log = [line[1] for line in d.log(r["id"])]
        t.ok(any("interrupted" in line for line in log),
             "its log has an 'interrupted' line", diag=log)
        ticks_before = sum(1 for line in log if line == "tick")
        d.wait_for(lambda: sum(1 for y in d.log(r["id"]) if y[1] == "tick")
                   > ticks_before, 5, desc="a new tick")
        t.ok(True, "it ticks again after the restart")
        y = d.wait_state(s["id"], FINAL, 10)
        t.is_((y["state"], y["attempt"]), ("succeeded", 2),
              "the interrupted sleep ran again and succeeded (attempt 2)")
        t.ok(any("interrupted" in line[1] for line in d.log(s["id"])),
             "... its log says it was interrupted")
        c = d.cancel(r["id"])
        t.is_(c.status, 202, "the restarted repeat can be canceled: 202")
        t.is_(d.wait_state(r["id"], FINAL, 5)["state"], "canceled",
              "... and ends canceled")
        t.is_(d.stop(), 0, "SIGTERM: exit status 0")


@t.test(timeout=60)
def cancel_in_flight_survives_kill():
    # A cancel answered 202 is stored (cancel_requested) before the task
    # has unwound; a kill -9 in between must not undo it.  The window is
    # too short to hit on purpose, so the store is put in that state by
    # hand: a running repeat and a running gather (with a running child)
    # killed, then given the flag a committed 202 leaves.
    with Corod(t, name="cancel-in-flight") as d:
        r = d.submit({"kind": "repeat", "params": {"message": "tick",
                                                    "interval": 0.2}})
        g = d.submit({"kind": "gather", "params": {"tasks": [
            {"kind": "sleep", "params": {"seconds": 30}},
            {"kind": "echo", "params": {"message": "later"}, "delay": 30}]}})
        d.wait_for(lambda: d.get(r["id"])["state"] == "running" and
                   d.get(g["id"])["state"] == "running", 5,
                   desc="both running")
        kids = d.get(g["id"])["children"]
        d.wait_for(lambda: d.get(kids[0])["state"] == "running", 5,
                   desc="the gather's sleep running")
        d.kill9()
        d.sql("UPDATE tasks SET cancel_requested = 1 WHERE id IN (?, ?)",
              (r["id"], g["id"]))
        d.start()
        x = d.wait_state(r["id"], FINAL, 5)
        t.is_(x["state"], "canceled", "a repeat cancelled (202) just before "
              "a kill -9 ends canceled, not rescheduled")
        y = d.wait_state(g["id"], FINAL, 5)
        t.is_(y["state"], "canceled", "... and so does a gather")
        t.is_([d.wait_state(k, FINAL, 5)["state"] for k in kids],
              ["canceled", "canceled"], "... with its running and its "
              "waiting child")
        log = [line[1] for line in d.log(r["id"])]
        t.ok(any("interrupted" in line for line in log) and
             log[-1] == "canceled", "the repeat's log: interrupted, then "
             "canceled", diag=log)
        t.is_(d.stop(), 0, "SIGTERM: exit status 0")


@t.test(timeout=60)
def delayed_tasks_run_after_restart():
    with Corod(t, name="delayed") as d:
        a = d.submit(echo("later", 3))
        g = d.submit({"kind": "sequence", "params": {"tasks": [
            echo("first", 0.5), echo("second", 0.5)]}, "delay": 2})
        time.sleep(1)
        d.kill9()
        d.start()
        x = d.wait_state(a["id"], FINAL, 10)
        t.is_(x["state"], "succeeded", "a delayed echo runs after the restart")
        t.between(parse_time(x["started_at"]) - parse_time(x["run_at"]),
                  -0.001, 1.0, "... at about its run_at")
        t.ok(any(line[1] == "later" for line in d.log(a["id"])),
             "... and logs its message")
        y = d.wait_state(g["id"], FINAL, 10)
        t.is_(y["state"], "succeeded", "a delayed sequence runs too")
        t.is_([d.get(k)["state"] for k in y["children"]],
              ["succeeded", "succeeded"], "... with its children")
        # A restart while a sequence is between its children.
        g2 = d.submit({"kind": "sequence", "params": {"tasks": [
            echo("a"), echo("b", 1.5), echo("c")]}})
        d.wait_for(lambda: d.get(g2["children"][0])["state"] == "succeeded",
                   5, desc="first child done")
        d.kill9()
        d.start()
        z = d.wait_state(g2["id"], FINAL, 15)
        t.is_([z["state"]] + [d.get(k)["state"] for k in z["children"]],
              ["succeeded"] * 4, "a sequence killed between children "
              "finishes after the restart")
        first = d.log(z["children"][0])
        t.is_(sum(1 for line in first if line[1] == "a"), 1,
              "... its finished first child did not run again")
        t.is_(d.stop(), 0, "SIGTERM: exit status 0")


@t.test(timeout=90)
def burst_killed_midway():
    with Corod(t, name="burst") as d:
        got = [[] for _ in range(8)]
        errors = [0] * 8
        stop = threading.Event()
        deadline = time.monotonic() + scaled(3)

        def worker(k):
            c = d.connection(timeout=10)
            body = None
            n = 0
            try:
                while not stop.is_set() and time.monotonic() < deadline \
                        and n < 100000:
                    n += 1
                    spec = echo("burst %d/%d" % (k, n), 3600)
                    body = json.dumps(spec)
                    try:
                        c.request("POST", "/v1/tasks", body=body, headers={
                            "Content-Type": "application/json"})
                        r = c.getresponse()
                        data = r.read()
                    except (OSError, http.client.HTTPException):
                        errors[k] += 1
                        return      # the daemon is gone
                    if r.status == 201:
                        task = json.loads(data)
                        got[k].append((task["id"], spec["params"]["message"]))
            finally:
                c.close()

        threads = [threading.Thread(target=worker, args=(k,), daemon=True)
                   for k in range(8)]
        for th in threads:
            th.start()
        time.sleep(1.0)
        d.kill9()
        stop.set()
        for th in threads:
            th.join(scaled(15))
        t.ok(not any(th.is_alive() for th in threads),
             "all 8 submitting threads ended")
        answered = [x for g in got for x in g]
        t.ok(len(answered) > 0, "%d submissions were answered 201 before "
             "the kill" % len(answered))
        t.ok(sum(errors) > 0 or time.monotonic() >= deadline,
             "the kill hit the burst mid-way (%d clients cut off)" %
             sum(errors))
        d.start()
        lost = []
        wrong = []
        for i, msg in answered:
            r = d.request("GET", "/v1/tasks/%d" % i)
            if r.status != 200:
                lost.append(i)
            elif r.body["params"]["message"] != msg:
                wrong.append(i)
        t.is_(lost, [], "every task answered 201 exists after the restart")
        t.is_(wrong, [], "... each with the spec that was submitted")
        t.is_(len(set(i for i, _ in answered)), len(answered),
              "no id was given twice")
        everything = d.list_all()
        ids = [x["id"] for x in everything]
        t.is_(len(ids), len(set(ids)), "the list has no duplicate ids")
        t.ok(len(ids) >= len(answered), "the list holds at least the "
             "answered tasks (%d >= %d)" % (len(ids), len(answered)))
        t.is_(d.stop(), 0, "SIGTERM: exit status 0")
        integrity(d.db)


@t.test(timeout=60)
def sigterm_and_restart():
    with Corod(t, name="sigterm") as d:
        a = d.submit(echo("kept", 3600))
        r = d.submit({"kind": "repeat", "params": {"message": "m",
                                                    "interval": 0.1}})
        d.wait_state(r["id"], "running", 5)
        t0 = time.monotonic()
        t.is_(d.stop(), 0, "SIGTERM with a running task: exit status 0")
        t.between(time.monotonic() - t0, 0, 5.0, "... promptly")
        d.start()
        t.is_(d.get(a["id"])["state"], "scheduled", "restart after SIGTERM: "
              "the scheduled task is there")
        x = d.wait_for(lambda: (lambda y: y if y["state"] == "running" and
                                y["attempt"] >= 2 else None)(d.get(r["id"])),
                       5, desc="repeat running again")
        t.ok(x is not None, "the repeat that was running is running again")
        d.cancel(r["id"])
        d.wait_state(r["id"], FINAL, 5)
        t.is_(d.stop(), 0, "SIGTERM again: exit status 0")
        d.start()
        t.is_(d.request("GET", "/healthz").status, 200,
              "a third start works")
        t.is_(d.stop(), 0, "exit status 0")
        integrity(d.db)


def metric(d, name):
    """A metric's value from GET /metrics (None if absent)."""
    r = d.request("GET", "/metrics")
    for line in (r.body or "").splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def log_texts(d, task_id):
    return [x for _, x in d.log(task_id)]


@t.test(timeout=180)
def sigterm_with_tasks_in_every_state():
    # Issue 12 item 2: a graceful stop with a task armed in the due heap,
    # in a retry's backoff or due and waiting for a slot crashed in the
    # teardown (the scheduler freed its heaps while tasks were still
    # flagged as in them); stop() asserts exit 0 and no sanitizer report.
    with FileServer(t) as fs, \
            Corod(t, name="every-state", args=["--max-running", "5",
                                               "--max-downloads", "1"]) as d:
        refused = free_port()
        # In backoff: a download from a port nobody listens on (a
        # transient failure); after its fourth attempt it waits 6-10 s.
        b = d.submit({"kind": "download", "params": {
            "url": "http://127.0.0.1:%d/refused.bin" % refused},
            "max_attempts": 8})
        d.wait_for(lambda: any(x.startswith("attempt 4 failed")
                               for x in log_texts(d, b["id"])), 30,
                   desc="the fourth attempt failed")
        # Running, holding the 5 running slots: a repeat, a sequence's
        # first child, a gather's two children, a download that stalls
        # (holding the one download slot).
        r = d.submit({"kind": "repeat", "params": {"message": "tick",
                                                    "interval": 0.2}})
        s = d.submit({"kind": "sequence", "params": {"tasks": [
            {"kind": "sleep", "params": {"seconds": 60}},
            echo("after the sleep")]}})
        g = d.submit({"kind": "gather", "params": {"tasks": [
            {"kind": "sleep", "params": {"seconds": 60}},
            {"kind": "sleep", "params": {"seconds": 60}}]}})
        d1 = d.submit({"kind": "download", "params": {
            "url": fs.url("stall.bin", size=1 << 20, stall=4096),
            "path": "stall.bin"}})
        for x in (r, s, g, d1):
            d.wait_state(x["id"], "running", 10)
        d.wait_state(s["children"][0], "running", 10)
        for c in g["children"]:
            d.wait_state(c, "running", 10)
        # Armed (inside the window), and due but waiting for a slot: an
        # echo and a download.
        a = d.submit(echo("armed", 30))
        e = d.submit(echo("due, no slot"))
        d2 = d.submit({"kind": "download", "params": {
            "url": fs.url("small.bin", size=5000), "path": "small.bin"}})
        waiting = d.wait_for(lambda: metric(d, "corod_tasks_waiting_for_"
                                            "slot") == 2, 5,
                             desc="two due tasks waiting for a slot")
        t.ok(waiting, "before the stop: two due tasks wait for a slot")
        now = time.time()
        bt = d.get(b["id"])
        t.ok(bt["state"] == "scheduled" and bt["attempt"] == 4 and
             parse_time(bt["run_at"]) > now,
             "before the stop: the download is in its retry backoff",
             diag=json.dumps(bt))
        at = d.get(a["id"])
        t.ok(at["state"] == "scheduled" and parse_time(at["run_at"]) > now,
             "before the stop: the delayed echo is armed")
        for x in (e, d2):
            xt = d.get(x["id"])
            t.ok(xt["state"] == "scheduled" and
                 parse_time(xt["run_at"]) <= now,
                 "before the stop: task %d is due and not started" % x["id"],
                 diag=json.dumps(xt))
        ids = [b["id"], r["id"], s["id"], g["id"], d1["id"], a["id"],
               e["id"], d2["id"]] + s["children"] + g["children"]

        for round_ in (1, 2):
            before = {i: d.get(i) for i in ids}
            logs = {i: log_texts(d, i) for i in ids}
            t.is_(d.stop(), 0, "stop %d: SIGTERM with tasks armed, in "
                  "backoff, waiting for slots, running: exit 0" % round_)
            d.start()
            after = {i: d.get(i) for i in ids}
            bad = []
            for i in ids:
                x, y = before[i], after[i]
                for k in ("kind", "params", "created_at", "parent",
                          "max_attempts", "priority"):
                    if x.get(k) != y.get(k):
                        bad.append("%d: %s %r -> %r" % (i, k, x.get(k),
                                                        y.get(k)))
                if y["version"] < x["version"]:
                    bad.append("%d: version went back" % i)
                if y["attempt"] < x["attempt"]:
                    bad.append("%d: attempt went back" % i)
                if log_texts(d, i)[:len(logs[i])] != logs[i]:
                    bad.append("%d: log lost lines" % i)
                if x["state"] in FINAL and y != x:
                    bad.append("%d: a final task changed" % i)
            t.is_(bad, [], "stop %d: after the restart every task is there "
                  "with its data and log" % round_)
            at = d.get(a["id"])
            t.ok(at["state"] == "scheduled" and
                 at["run_at"] == before[a["id"]]["run_at"],
                 "stop %d: the armed echo keeps its run_at" % round_)
            # Continuing: the repeat runs again as a new attempt.
            att = before[r["id"]]["attempt"]
            d.wait_for(lambda: (lambda y: y["state"] == "running" and
                                y["attempt"] == att + 1)(d.get(r["id"])),
                       10, desc="the repeat running again")
            t.ok(True, "stop %d: the repeat runs again (attempt %d)" %
                 (round_, att + 1))
            t.ok(any("interrupted" in x for x in log_texts(d, r["id"])),
                 "stop %d: its log says it was interrupted" % round_)
            for c in g["children"] + [s["children"][0], d1["id"]]:
                d.wait_state(c, "running", 10)
            t.ok(True, "stop %d: the groups' children and the stalled "
                 "download run again" % round_)
        # The echo that waited for a slot ran once the daemon was back.
        t.is_(d.wait_state(e["id"], FINAL, 10)["state"], "succeeded",
              "the due echo ran after the restart")
        # Free the slots: the waiting download runs and completes.
        for x in (r, s, g, d1, b):
            d.cancel(x["id"])
        for x in (r, s, g, d1):
            t.is_(d.wait_state(x["id"], FINAL, 10)["state"], "canceled",
                  "task %d (%s) canceled" % (x["id"], x["kind"]))
        t.is_(d.wait_state(d2["id"], FINAL, 20)["state"], "succeeded",
              "the download that waited for the slot completed")
        t.is_(d.stop(), 0, "a last SIGTERM: exit 0")
        integrity(d.db)


t.done()
