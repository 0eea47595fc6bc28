#!/usr/bin/env python3
"""walkthrough.py -- the seed walk-through of API.md against the real daemon.

echo with delays and their log lines, gather ~2 s, sequence ~3 s, a repeat
worker cancelled at 3.5 s after three messages, sleep, parents and
children, on_failure cancel/continue with a child that times out.

Timing bounds are correctness bounds (did the delay happen, did the group
wait for its children), deliberately generous; they are not performance
goals.  Times are taken from the task's own timestamps where possible.
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from tap import TAP  # noqa: E402
from corod import Corod, TIME_RE, parse_time, echo, sleep  # noqa: E402

FINAL = ("succeeded", "failed", "canceled")

t = TAP("walkthrough")
d = Corod(t)


def ts(task, field):
    return parse_time(task.get(field))


def span(task, a, b):
    """task[b] - task[a] in seconds (None if either is missing)."""
    x, y = ts(task, a), ts(task, b)
    return None if x is None or y is None else y - x


def result_entries(result):
    """The per-child list of a group's result ({"tasks": [...]}, or the
    list itself)."""
    if isinstance(result, dict):
        for key in ("tasks", "children", "results"):
            if isinstance(result.get(key), list):
                return result[key]
    if isinstance(result, list):
        return result
    return None


@t.test(timeout=30)
def echo_with_delays():
    t0 = time.time()
    a = d.submit(echo("Hello!", 1))
    b = d.submit(echo("Hi!", 2))
    t.is_(a["state"], "scheduled", "echo delay 1 is scheduled at once")
    t.between(span(a, "created_at", "run_at"), 0.999, 1.001,
              "run_at = created_at + delay 1")
    t.between(span(b, "created_at", "run_at"), 1.999, 2.001,
              "run_at = created_at + delay 2")
    a = d.wait_state(a["id"], FINAL, 10)
    b = d.wait_state(b["id"], FINAL, 10)
    t.is_(a["state"], "succeeded", "echo Hello! succeeded")
    t.is_(b["state"], "succeeded", "echo Hi! succeeded")
    t.is_(a["result"], {"message": "Hello!"}, "result is {message}")
    t.is_(a["attempt"], 1, "one attempt")
    t.between(span(a, "run_at", "started_at"), -0.001, 0.5,
              "Hello! started at its run_at")
    t.ok(ts(a, "finished_at") is not None and
         ts(a, "finished_at") >= ts(a, "started_at"),
         "finished_at >= started_at")

    r = d.request("GET", "/v1/tasks/%d/log" % a["id"])
    t.like(r.headers.get("content-type", ""), r"^text/plain",
           "log is text/plain")
    lines = r.body.rstrip("\n").split("\n") if isinstance(r.body, str) else []
    t.ok(len(lines) == 2 and all(re.match("^" + TIME_RE + " .", x)
                                 for x in lines),
         "log lines are '<RFC 3339 us Z> <text>'", diag=r.body)
    la, lb = d.log(a["id"]), d.log(b["id"])
    t.is_([x[1] for x in la], ['"Hello!" scheduled for execution', "Hello!"],
          "log of the Hello! task")
    t.is_([x[1] for x in lb], ['"Hi!" scheduled for execution', "Hi!"],
          "log of the Hi! task")
    if len(la) == 2 and len(lb) == 2:
        t.between(la[1][0] - la[0][0], 0.8, 1.8,
                  "Hello! logged about 1 s after it was scheduled")
        t.between(lb[1][0] - lb[0][0], 1.8, 2.8,
                  "Hi! logged about 2 s after it was scheduled")
        t.between(la[0][0] - t0, -2.0, 2.0,
                  "the scheduled line is stamped at submission (same clock)")
        merged = [x[1] for x in sorted(la + lb, key=lambda x: x[0])]
        t.is_(merged, ['"Hello!" scheduled for execution',
                       '"Hi!" scheduled for execution', "Hello!", "Hi!"],
              "across both logs, in time order, as in API.md")


def group_check(kind, bounds):
    g = d.submit({"kind": kind, "params": {"tasks": [echo("Hello!", 1),
                                                      echo("Hi!", 2)]}})
    t.is_(g["kind"], kind, "%s submitted" % kind)
    kids = g.get("children") or []
    t.ok(isinstance(kids, list) and len(kids) == 2 and
         all(isinstance(k, int) for k in kids),
         "%s lists its 2 children's ids at submission" % kind, diag=g)
    g = d.wait_state(g["id"], FINAL, 15)
    t.is_(g["state"], "succeeded", "%s succeeded" % kind)
    t.between(span(g, "created_at", "finished_at"), bounds[0], bounds[1],
              "%s finished about %d s after submission" % (kind, bounds[0] + 0.2))
    kids = g.get("children") or []
    children = [d.get(k) for k in kids]
    t.is_([c["parent"] for c in children], [g["id"]] * len(children),
          "each child's parent is the %s" % kind)
    t.is_([c["state"] for c in children], ["succeeded", "succeeded"],
          "both children succeeded")
    t.is_([c["params"]["message"] for c in children], ["Hello!", "Hi!"],
          "children in the order given")
    entries = result_entries(g.get("result"))
    t.ok(entries is not None and len(entries) == 2, "%s result lists its "
         "children" % kind, diag=g.get("result"))
    if entries is not None and len(entries) == 2:
        t.is_([e.get("id") for e in entries], kids, "... their ids")
        t.is_([e.get("state") for e in entries], ["succeeded"] * 2,
              "... their states")
        t.is_([e.get("result") for e in entries],
              [{"message": "Hello!"}, {"message": "Hi!"}], "... their results")
    r = d.request("GET", "/v1/tasks?parent=%d" % g["id"])
    t.is_(sorted(x["id"] for x in r.body.get("tasks", [])) if r.status == 200
          else r.status, sorted(kids), "GET /v1/tasks?parent= lists them")
    top = d.request("GET", "/v1/tasks?limit=1000").body["tasks"]
    t.ok(any(x["id"] == g["id"] and x["parent"] is None for x in top),
         "the %s itself has parent null" % kind)
    return g, children


@t.test(timeout=40)
def gather_about_2s():
    g, (c1, c2) = group_check("gather", (1.8, 3.5))
    # Concurrent: both children start together, when the gather starts.
    t.between(abs(ts(c1, "started_at") - ts(c2, "started_at")) - 1.0, -0.3,
              0.5, "gather's children ran concurrently (delays 1 and 2 "
              "from the same start)")
    lc = d.log(c1["id"])
    t.ok(len(lc) >= 2 and lc[-1][1] == "Hello!" and
         "scheduled for execution" in lc[0][1],
         "a child's log: scheduled, then its message", diag=lc)


@t.test(timeout=40)
def sequence_about_3s():
    g, (c1, c2) = group_check("sequence", (2.8, 4.5))
    t.ok(ts(c2, "started_at") >= ts(c1, "finished_at"),
         "sequence: the second child started after the first finished")
    t.between(ts(c2, "started_at") - ts(c1, "finished_at"), 1.8, 2.8,
              "its delay 2 counts from the end of the first")


@t.test(timeout=40)
def repeat_cancelled_at_3_5s():
    t0 = time.monotonic()
    msg = "Message from worker"
    r = d.submit({"kind": "repeat", "params": {"message": msg,
                                                "interval": 1}})
    d.wait_state(r["id"], "running", 5)
    left = t0 + 3.5 - time.monotonic()
    if left > 0:
        time.sleep(left)
    c = d.cancel(r["id"])
    t.is_(c.status, 202, "cancel of the running worker at 3.5 s: 202")
    if c.status in (200, 202):
        t.ok(c.body.get("cancel_requested") is True,
             "the 202 answer says cancel_requested", diag=c.body)
    r = d.wait_state(r["id"], FINAL, 5)
    t.is_(r["state"], "canceled", "the worker ends canceled")
    t.is_(r["cancel_requested"], True, "cancel_requested is true")
    log = d.log(r["id"])
    msgs = [x for x in log if x[1] == msg]
    t.is_(len(msgs), 3, "exactly three messages", )
    t.ok(len(log) > 0 and "scheduled for execution" in log[0][1],
         "first line: scheduled for execution", diag=log)
    last_msg = max((i for i, x in enumerate(log) if x[1] == msg), default=-1)
    after = [x[1] for x in log[last_msg + 1:]]
    t.ok(last_msg >= 0 and any("cancel" in x.lower() for x in after),
         "a cancel line after the last message", diag=after)
    start = ts(r, "started_at")
    if len(msgs) == 3 and start is not None:
        offs = [m[0] - start for m in msgs]
        t.ok(all(k + 1 - 0.2 <= o <= k + 1 + 0.6 for k, o in enumerate(offs)),
             "messages about 1, 2, 3 s after start (%s)" %
             ", ".join("%.2f" % o for o in offs))
    t.between(span(r, "created_at", "finished_at"), 3.3, 4.5,
              "ended soon after the cancel at 3.5 s")
    t.ok(r.get("error") is None, "a canceled task has no error", diag=r)


@t.test(timeout=30)
def repeat_with_count():
    r = d.submit({"kind": "repeat", "params": {"message": "tick",
                                                "interval": 0.2, "count": 3}})
    r = d.wait_state(r["id"], FINAL, 10)
    t.is_(r["state"], "succeeded", "repeat with count 3 succeeds")
    ticks = [x for x in d.log(r["id"]) if x[1] == "tick"]
    t.is_(len(ticks), 3, "... after three messages")
    t.between(span(r, "started_at", "finished_at"), 0.5, 1.5,
              "... at its interval (0.2 s)")


@t.test(timeout=30)
def sleep_kind():
    s = d.submit(sleep(1))
    z = d.submit(sleep(0))
    f = d.submit(sleep(0.25))
    s = d.wait_state(s["id"], FINAL, 10)
    z = d.wait_state(z["id"], FINAL, 10)
    f = d.wait_state(f["id"], FINAL, 10)
    t.is_([s["state"], z["state"], f["state"]], ["succeeded"] * 3,
          "sleep 1, 0 and 0.25 succeed")
    t.between(span(s, "started_at", "finished_at"), 0.9, 2.0,
              "sleep 1 takes about 1 s")
    t.between(span(f, "started_at", "finished_at"), 0.2, 1.2,
              "sleep 0.25 takes about 0.25 s")
    t.between(span(z, "started_at", "finished_at"), 0, 0.5,
              "sleep 0 ends at once")


@t.test(timeout=30)
def timeout_fails_with_code_timeout():
    s = d.submit(sleep(5, timeout=0.5))
    s = d.wait_state(s["id"], FINAL, 10)
    t.is_(s["state"], "failed", "sleep 5 with timeout 0.5 fails")
    err = s.get("error") or {}
    t.is_(err.get("code"), "timeout", "... with error code timeout")
    t.ok(isinstance(err.get("message"), str) and err.get("message"),
         "... and an error message", diag=s)
    t.between(span(s, "started_at", "finished_at"), 0.4, 1.5,
              "... when the timeout expired")
    log = [x[1] for x in d.log(s["id"])]
    t.ok(any("timeout" in x for x in log), "the log says timeout", diag=log)


@t.test(timeout=40)
def on_failure_cancel():
    for kind in ("sequence", "gather"):
        g = d.submit({"kind": kind, "params": {"tasks": [
            sleep(5, timeout=0.5), sleep(3) if kind == "gather"
            else echo("after")]}})
        g = d.wait_state(g["id"], FINAL, 10)
        t.is_(g["state"], "failed", "%s (on_failure default) fails when a "
              "child times out" % kind)
        t.ok(isinstance(g.get("error"), dict) and g["error"].get("code"),
             "... with an error", diag=g)
        t.between(span(g, "created_at", "finished_at"), 0.4, 2.5,
                  "... at once, without waiting for the rest")
        c1, c2 = [d.get(k) for k in g["children"]]
        t.is_((c1["state"], (c1.get("error") or {}).get("code")),
              ("failed", "timeout"), "the first child failed with timeout")
        t.is_(c2["state"], "canceled", "the unfinished rest was canceled")
        if kind == "sequence":
            t.is_(c2["started_at"], None, "... and the next one never ran")
            t.ok(not any(x[1] == "after" for x in d.log(c2["id"])),
                 "... and never logged its message")
        entries = result_entries(g.get("result")) or []
        t.is_([e.get("state") for e in entries], ["failed", "canceled"],
              "the failed %s's result lists the children's states" % kind)


@t.test(timeout=40)
def on_failure_continue():
    for kind in ("sequence", "gather"):
        g = d.submit({"kind": kind, "params": {
            "on_failure": "continue",
            "tasks": [sleep(5, timeout=0.5), echo("still runs", 0.5)]}})
        g = d.wait_state(g["id"], FINAL, 10)
        t.is_(g["state"], "failed", "%s on_failure continue fails at the "
              "end" % kind)
        c1, c2 = [d.get(k) for k in g["children"]]
        t.is_(c1["state"], "failed", "... its first child failed")
        t.is_(c2["state"], "succeeded", "... the other still ran and "
              "succeeded")
        t.ok(ts(g, "finished_at") >= ts(c2, "finished_at"),
             "... and the parent ended after it")
        entries = result_entries(g.get("result")) or []
        t.is_([e.get("state") for e in entries], ["failed", "succeeded"],
              "... its result lists both states")


@t.test(timeout=30)
def cancel_parent_cancels_children():
    g = d.submit({"kind": "gather", "params": {"tasks": [sleep(30),
                                                          sleep(30)]}})
    d.wait_state(g["id"], "running", 5)
    d.wait_for(lambda: all(d.get(k)["state"] == "running"
                           for k in g["children"]), 5,
               desc="children running")
    c = d.cancel(g["id"])
    t.ok(c.status in (200, 202), "cancel of a running gather: %d" % c.status)
    g = d.wait_state(g["id"], FINAL, 5)
    t.is_(g["state"], "canceled", "the gather ends canceled")
    t.is_([d.get(k)["state"] for k in g["children"]],
          ["canceled", "canceled"], "its running children were canceled")
    s = d.submit({"kind": "sequence", "params": {"tasks": [sleep(30),
                                                            echo("x")]},
                  "delay": 60})
    c = d.cancel(s["id"])
    t.is_(c.status, 200, "cancel of a scheduled sequence: 200")
    t.is_([d.get(k)["state"] for k in s["children"]],
          ["canceled", "canceled"], "its children are canceled with it")


@t.test(timeout=20)
def daemon_stops_cleanly():
    t.ok(d.running(), "the daemon is still running")
    t.is_(d.stop(), 0, "SIGTERM: exit status 0, no sanitizer report")
    d.close()


t.done()
