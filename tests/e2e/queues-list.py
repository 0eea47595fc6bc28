#!/usr/bin/env python3
"""queues-list.py -- GET /v1/queues and GET /v1/queues/{queue} against the
real daemon: each queue's waiting, running and claimed tasks.

External and echo tasks in several queues, then claims, completions,
failures and cancels: the counts follow.  Waiting is the top-level
scheduled tasks (a group's child waiting for its parent is not), running
every running task (children too), claimed the running external ones.
The counts are the stats thread's (a few seconds old at most, "as_of"
says when), so each expectation is polled for, bounded; "workers_waiting"
(claims held on the queue) is live; "seq", the feed position the counts
include, tells a client whether they include a change it saw.  A queue with nothing unfinished is
not listed, but any valid name answers with zeros; a bad name is 400
naming /path/queue.  Leases held survive a restart and are counted again.
"""

import os
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from tap import TAP, scaled  # noqa: E402
from corod import Corod, TIME_RE, echo, is_problem, parse_time, \
    sleep  # noqa: E402

t = TAP("queues-list")
d = Corod(t)

FAR = 3600      # seconds: tasks that wait while the test looks at them
KEYS = ["name", "paused", "concurrency", "key_concurrency", "rate",
        "version", "waiting", "running", "claimed", "workers_waiting"]


def problem(r, status, desc, field=None):
    good, why = is_problem(r, status, field)
    return t.ok(good, desc, diag=why + "\n" + r.describe())


def ext(queue, params=None, **kw):
    spec = {"kind": "external", "queue": queue, "params": params or {}}
    spec.update(kw)
    return spec


def claim(queue, worker="w", conn=None, **body):
    body["worker"] = worker
    return d.request("POST", "/v1/queues/%s/claim" % queue, body, conn=conn,
                     timeout=body.get("wait", 0) + 30)


def listed():
    r = d.request("GET", "/v1/queues")
    if r.status != 200:
        raise AssertionError("GET /v1/queues: " + r.describe())
    return r.body


def counts(names):
    """{name: (waiting, running, claimed)} of the listed queues in names."""
    return {q["name"]: (q["waiting"], q["running"], q["claimed"])
            for q in listed()["queues"] if q["name"] in names}


def expect(want, desc, timeout=20):
    """Poll until the listed counts of want's queues are want's (a queue
    mapped to None must not be listed)."""
    names = set(want)
    goal = {k: v for k, v in want.items() if v is not None}
    last = {}

    def check():
        last["c"] = counts(names)
        return last["c"] == goal
    try:
        d.wait_for(check, timeout, interval=0.1, desc=desc)
        t.ok(True, desc)
    except AssertionError:
        t.ok(False, desc, diag="want %r\ngot  %r" % (goal, last.get("c")))


def one(name):
    r = d.request("GET", "/v1/queues/" + name)
    if r.status != 200:
        raise AssertionError("GET /v1/queues/%s: %s" % (name, r.describe()))
    return r.body


@t.test(timeout=30)
def shape_and_empty():
    body = d.wait_for(lambda: (lambda b: b if b["as_of"] else None)(
        listed()), 10, desc="a first count")
    t.is_(sorted(body), ["as_of", "queues", "seq"],
          "the list: queues, as_of and seq")
    t.ok(isinstance(body["seq"], int), "seq: the feed position counted")
    t.is_(body["queues"], [], "a new daemon: no queue listed")
    t.like(body["as_of"], "^" + TIME_RE + "$", "as_of: an RFC 3339 time")
    q = one("never-used")
    t.is_(list(q), KEYS + ["as_of", "seq"], "a queue: its fields in order")
    t.is_({k: q[k] for k in KEYS}, {
        "name": "never-used", "paused": False, "concurrency": None,
        "key_concurrency": None, "rate": None, "version": 0, "waiting": 0,
        "running": 0, "claimed": 0, "workers_waiting": 0},
        "a valid name never used: zeros, no limits, version 0")
    t.ok(abs(parse_time(q["as_of"]) - parse_time(body["as_of"])) < 60,
         "... with the same as_of clock")
    r = d.request("HEAD", "/v1/queues")
    t.is_(r.status, 200, "HEAD /v1/queues: 200")
    r = d.request("HEAD", "/v1/queues/x")
    t.is_(r.status, 200, "HEAD /v1/queues/x: 200")


@t.test(timeout=60)
def counts_follow():
    img = [d.submit(ext("img", {"n": i})) for i in range(3)]
    mail = [d.submit(ext("mail")) for _ in range(2)]
    mail += [d.submit(echo("later", FAR, queue="mail")) for _ in range(2)]
    slow = d.submit(sleep(FAR, queue="slow"))
    # a sequence: itself and its first child run, the second waits for
    # its parent, not in the queue
    seq = d.submit({"kind": "sequence", "queue": "seq", "params": {"tasks": [
        sleep(FAR), sleep(FAR)]}})
    # one delayed: the parent waits, its children do not count
    later = d.submit({"kind": "sequence", "queue": "seq", "delay": FAR,
                      "params": {"tasks": [echo("a"), echo("b")]}})
    d.wait_state(slow["id"], "running")
    expect({"img": (3, 0, 0), "mail": (4, 0, 0), "slow": (0, 1, 0),
            "seq": (1, 2, 0), "default": None},
           "submitted: img 3 waiting, mail 4 (external and delayed echo), "
           "slow 1 running, seq 1 waiting and 2 running")
    names = [q["name"] for q in listed()["queues"]]
    t.is_(names, sorted(names), "listed by name")

    r = claim("img", worker="w1", max=2)
    got = r.body.get("claims", [])
    t.is_(len(got), 2, "a worker claims two of img")
    expect({"img": (1, 2, 2), "mail": (4, 0, 0)},
           "img: 1 waiting, 2 running, 2 claimed")
    q = one("img")
    t.is_((q["waiting"], q["running"], q["claimed"]), (1, 2, 2),
          "GET /v1/queues/img says the same")
    m = claim("mail", worker="w2").body["claims"][0]
    expect({"mail": (3, 1, 1)}, "mail: one claimed, the echo tasks still "
           "waiting")

    r = d.request("POST", "/v1/tasks/%d/complete" % got[0]["task"]["id"],
                  {"token": got[0]["token"], "result": {}})
    t.is_(r.status, 200, "one img task completed")
    r = d.request("POST", "/v1/tasks/%d/fail" % got[1]["task"]["id"],
                  {"token": got[1]["token"],
                   "error": {"code": "bad", "retry": False}})
    t.is_(r.status, 200, "the other failed for good")
    expect({"img": (1, 0, 0)}, "img: finished tasks leave the counts")
    r = d.request("POST", "/v1/tasks/%d/release" % m["task"]["id"],
                  {"token": m["token"]})
    t.is_(r.status, 200, "the mail task released")
    expect({"mail": (4, 0, 0)}, "mail: released, it waits again")

    for x in img + mail + [slow, seq, later]:
        d.cancel(x["id"])
    expect({"img": None, "mail": None, "slow": None, "seq": None},
           "all canceled: no queue listed")
    q = one("img")
    t.is_((q["waiting"], q["running"], q["claimed"]), (0, 0, 0),
          "img still answers by name, zeros")


@t.test(timeout=60)
def waiting_claims():
    box = {}

    def worker():
        box["r"] = claim("idle", worker="sleeper", conn=d.connection(),
                         wait=20)

    th = threading.Thread(target=worker)
    th.start()
    try:
        q = d.wait_for(lambda: [x for x in listed()["queues"]
                                if x["name"] == "idle"], 10,
                       desc="idle listed")[0]
        t.is_((q["waiting"], q["running"], q["claimed"],
               q["workers_waiting"]), (0, 0, 0, 1),
              "a queue with only a waiting claim is listed: "
              "workers_waiting 1")
        t.is_(one("idle")["workers_waiting"], 1, "... and by name")
        task = d.submit(ext("idle"))
    finally:
        th.join(scaled(30))
    r = box.get("r")
    t.ok(r is not None and r.status == 200 and
         r.body["claims"][0]["task"]["id"] == task["id"],
         "the claim is served", diag=r.describe() if r else "no answer")
    t.is_(one("idle")["workers_waiting"], 0, "no claim waits now")
    expect({"idle": (0, 1, 1)}, "idle: 1 running, 1 claimed")
    c = r.body["claims"][0]
    d.request("POST", "/v1/tasks/%d/complete" % task["id"],
              {"token": c["token"], "result": {}})
    expect({"idle": None}, "completed: idle no longer listed")


@t.test(timeout=30)
def seq_says_included():
    since = d.request("GET", "/v1/events").body["next"]
    task = d.submit(ext("seqq"))
    # the submission's seq as a client sees it: its event's.  Not a
    # list's seq: on PostgreSQL that is where the node has read the feed
    # to, which may not have reached the node's own last commit yet
    pos = d.wait_for(lambda: next(
        (e["seq"] for e in d.request("GET", "/v1/events?since=%d" % since)
         .body["events"] if e.get("task") == task["id"]), None),
        20, interval=0.1, desc="the submission's event")
    body = d.wait_for(lambda: (lambda b: b if b["seq"] >= pos else None)(
        listed()), 20, interval=0.1, desc="counts at seq %d" % pos)
    got = [q for q in body["queues"] if q["name"] == "seqq"]
    t.ok(len(got) == 1 and got[0]["waiting"] == 1, "an answer whose seq "
         "reaches the submission's includes it", diag=repr(body))
    d.cancel(task["id"])


@t.test(timeout=60)
def restart_keeps_claims():
    task = d.submit(ext("kept"))
    d.submit(ext("kept"))
    c = claim("kept", worker="w3", lease=FAR).body["claims"][0]
    t.is_(c["task"]["id"], task["id"], "claimed with a long lease")
    expect({"kept": (1, 1, 1)}, "before: 1 waiting, 1 claimed")
    d.restart()
    expect({"kept": (1, 1, 1)}, "after a restart: the same")
    d.kill9()
    d.restart()
    expect({"kept": (1, 1, 1)}, "after kill -9: the same")


@t.test(timeout=30)
def bad_names():
    for bad, what in (("UPPER", "upper case"), ("a%20b", "a space"),
                      ("x" * 65, "65 characters"), ("%C3%A9", "non-ASCII"),
                      ("a%00b", "a NUL"), ("a,b", "a comma")):
        r = d.request("GET", "/v1/queues/" + bad)
        problem(r, 400, "GET /v1/queues/%s: 400 (%s)" % (bad[:12], what),
                "/path/queue")
    r = d.request("GET", "/v1/queues/" + "x" * 64)
    t.is_(r.status, 200, "64 characters: 200")
    r = d.request("GET", "/v1/queues/a/b")
    t.is_(r.status, 404, "/v1/queues/a/b: 404")
    r = d.request("GET", "/v1/queues/a%2Fb")
    t.is_(r.status, 404, "/v1/queues/a%2Fb: 404 (decoded before routing)")
    r = d.request("GET", "/v1/queues/")
    t.is_(r.status, 404, "/v1/queues/: 404 (no trailing slash)")
    r = d.request("GET", "/v1/queues?state=running")
    problem(r, 400, "a query parameter: 400", "/query/state")
    r = d.request("GET", "/v1/queues/img?x=1")
    problem(r, 400, "... on one queue too", "/query/x")
    r = d.request("POST", "/v1/queues/img", {"paused": True})
    t.is_(r.status, 405, "POST /v1/queues/img: 405")
    r = d.request("DELETE", "/v1/queues/img")
    t.is_(r.status, 405, "DELETE /v1/queues/img: 405")


t.done()
d.close()
