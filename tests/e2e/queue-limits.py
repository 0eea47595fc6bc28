#!/usr/bin/env python3
"""queue-limits.py -- PATCH /v1/queues/{queue} against the real daemon:
paused, concurrency, key_concurrency with concurrency_key, and rate, live,
durable across restarts and kill -9, for tasks corod runs and for external
tasks that workers claim; waiting_for says which gate holds a task back.

Overlaps are checked from the finished tasks' started_at and finished_at
(no two of one key ever overlap, never more than concurrency at once); the
rate from started_at (never earlier than the bucket allows).  Timing is
used only for order and lower bounds: a gate may let a task go late on a
loaded machine, never early.
"""

import os
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from tap import TAP, scaled  # noqa: E402
from corod import Corod, is_problem, parse_time  # noqa: E402

t = TAP("queue-limits")
d = Corod(t)


def problem(r, status, desc, field=None):
    good, why = is_problem(r, status, field)
    return t.ok(good, desc, diag=why + "\n" + r.describe())


def patch(queue, body, headers=None, expect=200):
    r = d.request("PATCH", "/v1/queues/" + queue, body, headers=headers)
    if r.status != expect:
        raise AssertionError("PATCH %s %r: expected %d\n%s" % (
            queue, body, expect, r.describe()))
    return r


def queue(name):
    r = d.request("GET", "/v1/queues/" + name)
    if r.status != 200:
        raise AssertionError("GET /v1/queues/%s\n%s" % (name, r.describe()))
    return r.body


def sleeper(q, seconds, **kw):
    spec = {"kind": "sleep", "queue": q, "params": {"seconds": seconds}}
    spec.update(kw)
    return spec


def finished(ids, timeout=30):
    """The tasks of ids once all are final."""
    out = {}

    def check():
        for i in ids:
            if i not in out:
                task = d.get(i)
                if task["state"] in ("succeeded", "failed", "canceled"):
                    out[i] = task
        return len(out) == len(ids)
    d.wait_for(check, timeout, interval=0.05, desc="%d tasks final" %
               len(ids))
    return [out[i] for i in ids]


def max_overlap(tasks):
    """The most of tasks running at one instant (from their times)."""
    ev = []
    for task in tasks:
        ev.append((parse_time(task["started_at"]), 1))
        ev.append((parse_time(task["finished_at"]), -1))
    ev.sort(key=lambda e: (e[0], e[1]))     # an end before a start
    n = best = 0
    for _, step in ev:
        n += step
        best = max(best, n)
    return best


def feed_since():
    return d.request("GET", "/v1/tasks?limit=1").body["seq"]


def feed_max(since, groups):
    """Replay the feed after since: the most tasks of one group (a dict
    id -> group) running at once, by the order of the events."""
    events = []
    for _ in range(1000):
        b = d.request("GET", "/v1/events?since=%d" % since).body
        if not b["events"]:
            break
        events += b["events"]
        since = b["next"]
    running, live, best = {}, set(), 0
    for e in events:
        tid = e.get("task")
        if tid not in groups:
            continue
        g = groups[tid]
        if e["state"] == "running" and tid not in live:
            live.add(tid)
            running[g] = running.get(g, 0) + 1
            best = max(best, running[g])
        elif e["state"] in ("succeeded", "failed", "canceled") and \
                tid in live:
            live.discard(tid)
            running[g] -= 1
    return best


def metric(name):
    for line in d.request("GET", "/metrics").body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def waiting_for(task_id):
    return d.get(task_id).get("waiting_for")


def wait_waiting(task_id, why, timeout=10):
    d.wait_for(lambda: waiting_for(task_id) == why, timeout,
               desc="task %d waiting_for %s" % (task_id, why))


@t.test(timeout=20)
def defaults():
    r = d.request("GET", "/v1/queues/fresh")
    t.is_(r.status, 200, "a queue never changed answers")
    b = r.body
    t.ok(b["paused"] is False and b["concurrency"] is None and
         b["key_concurrency"] is None and b["rate"] is None,
         "with the defaults: not paused, no limits", diag=repr(b))
    t.is_(b["version"], 0, "version 0: never changed")
    t.is_(r.headers.get("etag"), '"0"', "ETag \"0\"")


@t.test(timeout=20)
def patch_answers():
    r = patch("p1", {"paused": True, "concurrency": 3,
                     "key_concurrency": 1, "rate": {"limit": 5, "per": 2}})
    b = r.body
    t.ok(b["name"] == "p1" and b["paused"] is True and
         b["concurrency"] == 3 and b["key_concurrency"] == 1 and
         b["rate"] == {"limit": 5, "per": 2}, "PATCH answers the new "
         "settings", diag=repr(b))
    t.ok(b["version"] > 0, "with a version")
    t.is_(r.headers.get("etag"), '"%d"' % b["version"], "as the ETag")
    t.is_(queue("p1"), dict(queue("p1")), "GET shows them")
    r2 = patch("p1", {"concurrency": None, "rate": {"limit": 1, "per": 0.25}})
    t.ok(r2.body["concurrency"] is None and r2.body["paused"] is True and
         r2.body["key_concurrency"] == 1 and
         r2.body["rate"] == {"limit": 1, "per": 0.25},
         "a second PATCH changes only what it names (null: no limit)",
         diag=repr(r2.body))
    t.ok(r2.body["version"] > b["version"], "the version grows")
    names = [q["name"] for q in d.request("GET", "/v1/queues").body["queues"]]
    t.ok("p1" in names, "a queue with settings is listed without tasks",
         diag=repr(names))
    patch("p1", {"paused": False, "key_concurrency": None, "rate": None})


@t.test(timeout=20)
def evented():
    since = feed_since()
    v = patch("ev", {"paused": True}).body["version"]
    b = d.request("GET", "/v1/events?since=%d" % since).body
    mine = [e for e in b["events"] if e.get("queue") == "ev"]
    t.is_(mine, [{"seq": v, "type": "updated", "queue": "ev", "version": v}],
          "a PATCH is one event in the feed: the queue, its version as seq")
    patch("ev", {"paused": False})


@t.test(timeout=20)
def if_match():
    v = patch("im", {"concurrency": 2}).body["version"]
    r = d.request("PATCH", "/v1/queues/im", {"concurrency": 5},
                  headers={"If-Match": '"%d"' % (v + 1000)})
    problem(r, 412, "If-Match of another version: 412", "/headers/If-Match")
    t.is_(queue("im")["concurrency"], 2, "... nothing changed")
    r = d.request("PATCH", "/v1/queues/im", {"concurrency": 5},
                  headers={"If-Match": '"%d"' % v})
    t.is_(r.status, 200, "If-Match of the version: 200")
    t.is_(queue("im")["concurrency"], 5, "... changed")


@t.test(timeout=60)
def concurrency_bounds():
    patch("c2", {"concurrency": 2})
    since = feed_since()
    ids = [d.submit(sleeper("c2", 0.4))["id"] for _ in range(6)]
    d.wait_for(lambda: any(waiting_for(i) == "queue_concurrency"
                           for i in ids), 10,
               desc="one waits for the queue's concurrency")
    t.ok(True, "waiting_for: queue_concurrency while 2 run")
    tasks = finished(ids)
    t.ok(all(x["state"] == "succeeded" for x in tasks), "all 6 succeeded")
    t.is_(max_overlap(tasks), 2, "never more than 2 ran at once (and 2 did)")
    t.ok(feed_max(since, {i: 0 for i in ids}) <= 2, "... as the feed tells "
         "it: an end comes before the start it makes room for")


@t.test(timeout=60)
def pause_and_resume():
    run = d.submit(sleeper("pz", 1.0))
    d.wait_state(run["id"], "running")
    patch("pz", {"paused": True})
    e = d.submit({"kind": "echo", "queue": "pz",
                  "params": {"message": "held"}})
    seq = d.submit({"kind": "sequence", "queue": "pz", "params": {
        "tasks": [{"kind": "echo", "params": {"message": "a"}}]}})
    wait_waiting(e["id"], "queue_paused")
    t.ok(True, "a task of a paused queue waits: queue_paused")
    wait_waiting(seq["id"], "queue_paused")
    t.ok(True, "... a group too")
    t.ok(metric("corod_queue_tasks_held") >= 2, "/metrics counts the tasks "
         "held back by their queue")
    t.ok(metric("corod_queues_paused") >= 1, "... and the paused queues")
    done = d.wait_state(run["id"], ("succeeded", "failed", "canceled"))
    t.is_(done["state"], "succeeded", "the task running when paused ran on")
    t.is_(d.get(e["id"])["state"], "scheduled", "the held one did not start")
    patch("pz", {"paused": False})
    t.is_(d.wait_state(e["id"], "succeeded")["state"], "succeeded",
          "resumed: it runs")
    t.is_(d.wait_state(seq["id"], "succeeded")["state"], "succeeded",
          "... and the group")


@t.test(timeout=60)
def key_concurrency():
    patch("kq", {"key_concurrency": 1})
    since = feed_since()
    keys = ["a", "a", "a", "b", "b", "c"]
    ids = [d.submit(sleeper("kq", 0.4, concurrency_key=k))["id"]
           for k in keys]
    d.wait_for(lambda: any(waiting_for(i) == "key_concurrency"
                           for i in ids), 10,
               desc="one waits for its key")
    t.ok(True, "waiting_for: key_concurrency")
    tasks = finished(ids)
    t.ok(all(x["state"] == "succeeded" for x in tasks), "all succeeded")
    for k in "abc":
        mine = [x for x, kk in zip(tasks, keys) if kk == k]
        t.is_(max_overlap(mine), 1, "key %s: never two at once" % k)
    t.ok(max_overlap(tasks) >= 2, "different keys ran side by side")
    t.is_(feed_max(since, dict(zip(ids, keys))), 1, "the feed never shows "
          "two of one key running")
    t.is_(tasks[0]["concurrency_key"], "a", "the task shows its key")
    plain = d.submit(sleeper("kq", 0))
    t.is_(plain["concurrency_key"], None, "... null without one")
    t.is_(d.wait_state(plain["id"], "succeeded")["state"], "succeeded",
          "a task without a key is not held by key limits")


@t.test(timeout=60)
def rate_limit():
    patch("rq", {"rate": {"limit": 2, "per": 1}})
    ids = [d.submit({"kind": "echo", "queue": "rq",
                     "params": {"message": str(i)}})["id"] for i in range(6)]
    d.wait_for(lambda: any(waiting_for(i) == "rate_limit" for i in ids), 10,
               desc="one waits for the rate")
    t.ok(True, "waiting_for: rate_limit")
    tasks = finished(ids)
    starts = sorted(parse_time(x["started_at"]) for x in tasks)
    # a full bucket of 2, then one every 0.5 s: the 6th no sooner than
    # 2 s after the first (a little slack for clock rounding)
    t.ok(starts[5] - starts[0] >= 1.95, "6 starts at 2 per second take at "
         "least 2 s (took %.2f s)" % (starts[5] - starts[0]))
    # started_at is taken a little after the token (a few µs, more under
    # valgrind): a window of 0.95 s, not 1, for the bound
    worst = max(sum(1 for s in starts if a <= s < a + 0.95) for a in starts)
    t.ok(worst <= 3, "no second holds more than 3 starts (the bucket's 2 "
         "and one refill; %d)" % worst)


@t.test(timeout=60)
def live_lowering():
    ids = [d.submit(sleeper("lo", 0.6))["id"] for _ in range(3)]
    for i in ids:
        d.wait_state(i, "running")
    patch("lo", {"concurrency": 1})
    later = [d.submit(sleeper("lo", 0.2))["id"] for _ in range(2)]
    tasks = finished(ids + later)
    first_end = max(parse_time(x["finished_at"]) for x in tasks[:3])
    t.ok(all(parse_time(x["started_at"]) >= first_end for x in tasks[3:]),
         "lowered to 1 while 3 run: nothing starts until all 3 ended")
    t.is_(max_overlap(tasks[3:]), 1, "... then one at a time")


@t.test(timeout=60)
def external_claims():
    patch("xq", {"concurrency": 1})
    ids = [d.submit({"kind": "external", "queue": "xq",
                     "params": {"n": i}})["id"] for i in range(3)]
    r = d.request("POST", "/v1/queues/xq/claim", {"worker": "w", "max": 3})
    got = r.body["claims"]
    t.is_(len(got), 1, "concurrency 1: a claim of 3 gets 1")
    t.is_(waiting_for(ids[1]), "queue_concurrency",
          "the others wait for the queue's concurrency")
    r = d.request("POST", "/v1/queues/xq/claim",
                  {"worker": "w", "max": 3, "wait": 0.3})
    t.is_(len(r.body["claims"]), 0, "a second claim gets none")
    c = got[0]
    d.request("POST", "/v1/tasks/%d/complete" % c["task"]["id"],
              {"token": c["token"], "result": {}})
    r = d.request("POST", "/v1/queues/xq/claim", {"worker": "w", "max": 3,
                                                  "wait": 5})
    t.is_(len(r.body["claims"]), 1, "completed: the next claim gets one")
    c2 = r.body["claims"][0]
    patch("xq", {"paused": True, "concurrency": None})
    d.request("POST", "/v1/tasks/%d/complete" % c2["task"]["id"],
              {"token": c2["token"], "result": {}})
    r = d.request("POST", "/v1/queues/xq/claim",
                  {"worker": "w", "wait": 0.3})
    t.is_(len(r.body["claims"]), 0, "paused: a claim gets nothing")
    t.is_(waiting_for(ids[2]), "queue_paused", "... the task says why")
    box = {}

    def waiter():
        box["r"] = d.request("POST", "/v1/queues/xq/claim",
                             {"worker": "w2", "wait": 10},
                             conn=d.connection())
    th = threading.Thread(target=waiter)
    th.start()
    d.wait_for(lambda: queue("xq")["workers_waiting"] == 1, 5,
               desc="the claim waits")
    patch("xq", {"paused": False})
    th.join(scaled(15))
    got = box.get("r")
    t.ok(got is not None and len(got.body["claims"]) == 1,
         "resumed: the waiting claim is served at once",
         diag=got.describe() if got is not None else "no answer")
    if got is not None and got.body["claims"]:
        c = got.body["claims"][0]
        d.request("POST", "/v1/tasks/%d/complete" % c["task"]["id"],
                  {"token": c["token"], "result": {}})


@t.test(timeout=60)
def external_keys():
    patch("xk", {"key_concurrency": 1})
    a1 = d.submit({"kind": "external", "queue": "xk", "params": {},
                   "concurrency_key": "k"})
    a2 = d.submit({"kind": "external", "queue": "xk", "params": {},
                   "concurrency_key": "k"})
    b1 = d.submit({"kind": "external", "queue": "xk", "params": {},
                   "concurrency_key": "other"})
    r = d.request("POST", "/v1/queues/xk/claim", {"worker": "w", "max": 3})
    got = sorted(c["task"]["id"] for c in r.body["claims"])
    t.is_(got, sorted([a1["id"], b1["id"]]), "one per key is claimed")
    t.is_(waiting_for(a2["id"]), "key_concurrency", "the second of key k "
          "waits for its key")
    for c in r.body["claims"]:
        if c["task"]["id"] == a1["id"]:
            d.request("POST", "/v1/tasks/%d/fail" % a1["id"],
                      {"token": c["token"], "error": {"code": "x",
                                                      "message": "x"}})
        else:
            d.request("POST", "/v1/tasks/%d/complete" % c["task"]["id"],
                      {"token": c["token"], "result": {}})
    r = d.request("POST", "/v1/queues/xk/claim", {"worker": "w", "wait": 5})
    t.ok(len(r.body["claims"]) == 1 and
         r.body["claims"][0]["task"]["id"] == a2["id"],
         "its key free again: the second is claimed", diag=r.describe())
    for c in r.body["claims"]:
        d.request("POST", "/v1/tasks/%d/complete" % c["task"]["id"],
                  {"token": c["token"], "result": {}})


@t.test(timeout=90)
def durable_and_held_across_restarts():
    patch("dur", {"paused": True, "concurrency": 2, "key_concurrency": 1,
                  "rate": {"limit": 100, "per": 60}})
    before = queue("dur")
    e = d.submit({"kind": "echo", "queue": "dur",
                  "params": {"message": "after restart"}})
    wait_waiting(e["id"], "queue_paused")
    d.restart()
    after = queue("dur")
    for k in ("paused", "concurrency", "key_concurrency", "rate",
              "version"):
        t.is_(after[k], before[k], "after a restart: %s kept" % k)
    wait_waiting(e["id"], "queue_paused")
    t.ok(True, "the held task still waits")
    patch("dur", {"concurrency": 1})
    d.kill9()
    d.restart()
    t.is_(queue("dur")["concurrency"], 1, "an answered PATCH survives "
          "kill -9")
    patch("dur", {"paused": False})
    t.is_(d.wait_state(e["id"], "succeeded")["state"], "succeeded",
          "resumed after the restarts: it runs")


@t.test(timeout=60)
def restart_with_gated_work():
    patch("rg", {"concurrency": 1})
    ids = [d.submit(sleeper("rg", 0.5))["id"] for _ in range(3)]
    d.wait_state(ids[0], "running")
    wait_waiting(ids[1], "queue_concurrency")
    d.restart()
    tasks = finished(ids, timeout=40)
    t.ok(all(x["state"] == "succeeded" for x in tasks),
         "stopped with one running and two gated: all ran after the start",
         diag=repr([x["state"] for x in tasks]))
    t.is_(max_overlap(tasks), 1, "... one at a time, across the restart")


@t.test(timeout=30)
def bad_input():
    v = patch("bad", {"concurrency": 7}).body["version"]
    cases = [
        ({"paused": "yes"}, "/paused"),
        ({"paused": 1}, "/paused"),
        ({"concurrency": 0}, "/concurrency"),
        ({"concurrency": -1}, "/concurrency"),
        ({"concurrency": 1.5}, "/concurrency"),
        ({"concurrency": "2"}, "/concurrency"),
        ({"concurrency": 1000001}, "/concurrency"),
        ({"concurrency": 1e20}, "/concurrency"),
        ({"key_concurrency": 0}, "/key_concurrency"),
        ({"key_concurrency": True}, "/key_concurrency"),
        ({"rate": "10/s"}, "/rate"),
        ({"rate": {}}, "/rate/limit"),
        ({"rate": {"limit": 1}}, "/rate/per"),
        ({"rate": {"per": 1}}, "/rate/limit"),
        ({"rate": {"limit": 0, "per": 1}}, "/rate/limit"),
        ({"rate": {"limit": 1, "per": 0}}, "/rate/per"),
        ({"rate": {"limit": 1, "per": -1}}, "/rate/per"),
        ({"rate": {"limit": 1, "per": 1e300}}, "/rate/per"),
        ({"rate": {"limit": 1, "per": 1, "burst": 3}}, "/rate/burst"),
        ({"max": 3}, "/max"),
        ({"name": "other"}, "/name"),
    ]
    for body, field in cases:
        r = d.request("PATCH", "/v1/queues/bad", body)
        problem(r, 400, "PATCH %s: 400 naming %s" % (
            str(body)[:50], field), field)
    r = d.request("PATCH", "/v1/queues/bad", "{not json",
                  headers={"Content-Type": "application/json"})
    problem(r, 400, "malformed JSON: 400")
    r = d.request("PATCH", "/v1/queues/bad", '{"concurrency": %d}' % 2 ** 63,
                  headers={"Content-Type": "application/json"})
    problem(r, 400, "an integer beyond 64 bits: 400")
    r = d.request("PATCH", "/v1/queues/bad", [1, 2])
    problem(r, 400, "an array: 400")
    r = d.request("PATCH", "/v1/queues/bad", b"",
                  headers={"Content-Type": "application/json"})
    problem(r, 400, "an empty body: 400")
    r = d.request("PATCH", "/v1/queues/bad", "paused=true",
                  headers={"Content-Type": "application/x-www-form-"
                           "urlencoded"})
    problem(r, 415, "a form: 415")
    r = d.request("PATCH", "/v1/queues/BAD", {"paused": True})
    problem(r, 400, "a bad queue name: 400", "/path/queue")
    r = d.request("PATCH", "/v1/queues/..", {"paused": True})
    problem(r, 400, "\"..\" as a queue name: 400", "/path/queue")
    r = d.request("PATCH", "/v1/queues/bad?x=1", {"paused": True})
    problem(r, 400, "a query parameter: 400", "/query/x")
    b = queue("bad")
    t.ok(b["version"] == v and b["concurrency"] == 7 and
         b["paused"] is False, "nothing changed by the bad requests",
         diag=repr(b))


@t.test(timeout=30)
def bad_keys():
    for key, why in (("", "empty"), ("k" * 257, "257 bytes"), (7, "a number"),
                     ({"a": 1}, "an object")):
        r = d.request("POST", "/v1/tasks", {
            "kind": "echo", "params": {"message": "x"},
            "concurrency_key": key})
        problem(r, 400, "concurrency_key %s: 400" % why, "/concurrency_key")
    r = d.request("POST", "/v1/tasks", {
        "kind": "echo", "params": {"message": "x"},
        "concurrency_key": "a\u0000b"})
    problem(r, 400, "a key with a NUL: 400 (the body is refused)")
    r = d.request("POST", "/v1/tasks", {
        "kind": "sequence", "concurrency_key": "g", "params": {"tasks": [
            {"kind": "echo", "params": {"message": "x"}}]}})
    problem(r, 400, "on a group: 400 (it runs no work itself)",
            "/concurrency_key")
    r = d.request("POST", "/v1/tasks", {
        "kind": "sequence", "params": {"tasks": [
            {"kind": "echo", "params": {"message": "x"},
             "concurrency_key": "k" * 256}]}})
    t.is_(r.status, 201, "256 bytes on a group's child: 201")
    r = d.request("POST", "/v1/tasks", {
        "kind": "echo", "params": {"message": "x"}, "concurrency_key": None})
    t.ok(r.status == 201 and r.body["concurrency_key"] is None,
         "null: none", diag=r.describe())


t.done()
d.close()
