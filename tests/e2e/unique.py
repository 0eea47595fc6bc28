#!/usr/bin/env python3
"""unique.py -- unique keys on task specs, against the real daemon.

At most one unfinished task holds a key: 32 clients submitting one key at
once get exactly one holder (counted in GET /v1/tasks) and 31 answers as
on_conflict says (reject: 409 naming /unique/key with the holder's
Location; keep: 200 and the holder; replace: 200 and the holder, its
params one of theirs).  Each mode on a scheduled holder; a holder that
ends (succeeds, is canceled) lets the key go; a holder due in an hour
(on disk only, outside the window) still conflicts and is replaced, also
after a restart and after a kill -9; debounce moves run_at but never past
created_at + max_delay, and a task debounced many times runs once; replace
on a running holder makes a successor (201, waiting_for "unique") that
starts only after the holder ended (the change feed's order: the holder's
final state before the successor's running), also across a kill -9 while
the holder runs.  A batch is refused whole if any key is held or a key is
given twice.  Bad input is 400 naming the field, and stores nothing.
The Idempotency-Key is checked first.
"""

import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from tap import TAP  # noqa: E402
from corod import Corod, echo, is_problem, parse_time, sleep  # noqa: E402

t = TAP("unique")
d = Corod(t)

FAR = 3600      # seconds: due beyond the window (60 s): on disk only


def problem(r, status, desc, field=None):
    good, why = is_problem(r, status, field)
    return t.ok(good, desc, diag=why + "\n" + r.describe())


def uspec(kind_spec, key, mode=None, **kw):
    u = {"key": key}
    if mode is not None:
        u["on_conflict"] = mode
    u.update(kw)
    s = dict(kind_spec)
    s["unique"] = u
    return s


def holders(key):
    """The unfinished tasks holding key (waiting successors apart)."""
    return [x for x in d.list_all("state=scheduled,running")
            if (x.get("unique") or {}).get("key") == key and
            x.get("waiting_for") != "unique"]


def post(spec, headers=None, conn=None):
    return d.request("POST", "/v1/tasks", spec, headers=headers, conn=conn)


def storm(spec, n=32, headers=None):
    """n clients, each on its own connection, POST spec at once."""
    out = [None] * n
    gate = threading.Barrier(n)

    def one(i):
        c = d.connection()
        try:
            gate.wait(timeout=10)
            out[i] = post(spec, headers=headers, conn=c)
        except Exception as e:      # noqa: BLE001 (reported below)
            out[i] = e
        finally:
            c.close()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    return out


def feed_since(seq):
    r = d.request("GET", "/v1/events?since=%d" % seq)
    if r.status != 200:
        raise AssertionError(r.describe())
    return r.body["events"]


def seq_now():
    return d.request("GET", "/v1/tasks?limit=1").body["seq"]


@t.test(timeout=60)
def thirty_two_at_once():
    for mode in ("reject", "keep", "replace"):
        key = "storm-" + mode
        spec = uspec(echo("storm", FAR), key, mode)
        res = storm(spec)
        errs = [r for r in res if not hasattr(r, "status")]
        t.ok(not errs, "%s: 32 answers" % mode, diag=repr(errs[:3]))
        if errs:
            continue
        created = [r for r in res if r.status == 201]
        t.is_(len(created), 1, "%s: exactly one 201" % mode)
        if len(created) != 1:
            t.diag("; ".join("%s %s" % (r.status, str(r.body)[:120])
                             for r in res))
            continue
        hid = created[0].body["id"]
        rest = [r for r in res if r is not created[0]]
        if mode == "reject":
            t.ok(all(r.status == 409 and is_problem(r, 409, "/unique/key")[0]
                     and r.headers.get("location") == "/v1/tasks/%d" % hid
                     for r in rest),
                 "reject: 31 × 409 naming /unique/key, Location the holder",
                 diag="; ".join("%s %s" % (r.status, r.headers.get(
                     "location")) for r in rest[:5]))
        else:
            t.ok(all(r.status == 200 and r.body.get("id") == hid
                     for r in rest),
                 "%s: 31 × 200 with the holder" % mode,
                 diag="; ".join("%s %s" % (r.status, str(r.body)[:80])
                                for r in rest[:5]))
        hs = holders(key)
        t.is_([x["id"] for x in hs], [hid],
              "%s: one unfinished task holds the key (GET /v1/tasks)" % mode)
        d.cancel(hid)


@t.test(timeout=60)
def thirty_two_with_one_idempotency_key():
    spec = uspec(echo("storm", FAR), "storm-idem", "reject")
    res = storm(spec, headers={"Idempotency-Key": "storm-idem-1"})
    st = sorted(getattr(r, "status", None) or 0 for r in res)
    t.is_(st, [200] * 31 + [201], "one 201, 31 replays (200), no 409: "
          "the Idempotency-Key is checked first")
    good = [r for r in res if hasattr(r, "body") and
            isinstance(r.body, dict) and "id" in r.body]
    t.is_(len({r.body["id"] for r in good}), 1, "all the same task")
    t.is_(len(holders("storm-idem")), 1, "one holder")
    for r in good[:1]:
        d.cancel(r.body["id"])


@t.test(timeout=30)
def modes_on_a_scheduled_holder():
    a = d.submit(uspec(echo("first", FAR), "m1"))
    t.is_(a.get("unique"), {"key": "m1", "on_conflict": "reject"},
          "the task shows its unique, on_conflict defaulted")
    t.is_(a.get("waiting_for"), "run_at", "a holder waits for its run_at")
    r = post(uspec(echo("second", FAR), "m1"))
    problem(r, 409, "reject (the default): 409", "/unique/key")
    t.is_(r.headers.get("location"), "/v1/tasks/%d" % a["id"],
          "... with the holder's Location")
    t.like(r.body.get("detail", ""), r"task %d" % a["id"],
           "... and the detail names it")
    r = post(uspec(echo("kept", FAR), "m1", "keep"))
    t.ok(r.status == 200 and r.body.get("id") == a["id"] and
         r.body["params"] == {"message": "first"},
         "keep: 200 and the holder, unchanged", diag=r.describe())
    t.is_(r.headers.get("location"), "/v1/tasks/%d" % a["id"],
          "... with its Location")
    seq = seq_now()
    r = post(uspec(echo("replaced", 2 * FAR), "m1", "replace"))
    t.ok(r.status == 200 and r.body.get("id") == a["id"], "replace: 200 "
         "and the holder", diag=r.describe())
    b = d.get(a["id"])
    t.is_(b["params"], {"message": "replaced"}, "... its params replaced")
    t.between(parse_time(b["run_at"]) - parse_time(a["run_at"]),
              FAR - 5, FAR + 5, "... its run_at the new spec's")
    t.ok(b["version"] > a["version"], "... a new version")
    ev = [e for e in feed_since(seq) if e.get("task") == a["id"]]
    t.ok(any(e["type"] == "updated" for e in ev), "... and an event",
         diag=json.dumps(ev))
    t.is_(b.get("unique"), a.get("unique"), "the holder keeps its own "
          "unique")
    before = time.time()
    r = post(uspec(echo("debounced", FAR), "m1", "debounce", debounce=30))
    t.ok(r.status == 200 and r.body.get("id") == a["id"],
         "debounce: 200 and the holder", diag=r.describe())
    b = d.get(a["id"])
    t.is_(b["params"], {"message": "debounced"}, "... its params replaced")
    t.between(parse_time(b["run_at"]) - before, 29, 32,
              "... its run_at now + debounce")
    r = post(uspec(echo("capped", FAR), "m1", "debounce", debounce=300,
                   max_delay=60))
    b = d.get(a["id"])
    t.between(parse_time(b["run_at"]) - parse_time(b["created_at"]),
              59.99, 60.01, "... never later than created_at + max_delay")
    r = post(uspec(sleep(1, delay=FAR), "m1", "replace"))
    problem(r, 409, "replace with another kind: 409 naming /kind", "/kind")
    t.is_(r.headers.get("location"), "/v1/tasks/%d" % a["id"],
          "... with the holder's Location")
    t.is_(len(holders("m1")), 1, "still one holder")
    d.cancel(a["id"])


@t.test(timeout=30)
def a_final_holder_lets_go():
    a = d.submit(uspec(echo("now"), "rel"))
    d.wait_state(a["id"], "succeeded")
    b = d.submit(uspec(echo("again", FAR), "rel"))
    t.ok(b["id"] != a["id"], "a succeeded holder lets the key go: 201")
    t.is_(d.get(a["id"]).get("unique"), {"key": "rel",
                                         "on_conflict": "reject"},
          "the ended task still shows its unique")
    t.is_(d.cancel(b["id"]).status, 200, "cancel the holder")
    c = d.submit(uspec(echo("third", FAR), "rel"))
    t.ok(c["id"] != b["id"], "a canceled holder lets it go too")
    r = d.request("DELETE", "/v1/tasks/%d" % a["id"])
    t.is_(r.status, 204, "an ended holder can be deleted")
    d.cancel(c["id"])


@t.test(timeout=60)
def on_disk_only_and_restarts():
    a = d.submit(uspec(echo("far", FAR), "disk"))
    d.submit(echo("filler", 1))
    r = post(uspec(echo("x", FAR), "disk"))
    problem(r, 409, "a holder due in an hour (on disk only) conflicts",
            "/unique/key")
    r = post(uspec(echo("y", FAR + 60), "disk", "replace"))
    t.ok(r.status == 200 and r.body.get("id") == a["id"] and
         r.body["params"] == {"message": "y"},
         "... and is replaced from disk", diag=r.describe())
    d.restart()
    r = post(uspec(echo("z", FAR), "disk"))
    problem(r, 409, "after a restart: still held", "/unique/key")
    t.is_(r.headers.get("location"), "/v1/tasks/%d" % a["id"],
          "... by the same task")
    d.restart(kill=True)
    r = post(uspec(echo("z", FAR), "disk", "keep"))
    t.ok(r.status == 200 and r.body.get("id") == a["id"],
         "after a kill -9: still held (keep answers it)", diag=r.describe())
    # one just submitted, then kill -9 at once: answered means held
    b = d.submit(uspec(echo("k9", FAR), "disk2"))
    d.restart(kill=True)
    r = post(uspec(echo("k9b", FAR), "disk2"))
    problem(r, 409, "a holder answered just before a kill -9 holds the key",
            "/unique/key")
    t.is_(r.headers.get("location"), "/v1/tasks/%d" % b["id"],
          "... it is the one answered")
    for x in (a, b):
        d.cancel(x["id"])


@t.test(timeout=60)
def debounce_runs_once():
    spec = uspec(echo("tick"), "deb", "debounce", debounce=1, max_delay=2)
    first = d.submit(spec)
    ids = {first["id"]}
    end = time.monotonic() + 3.5
    n = 0
    while time.monotonic() < end and n < 100:
        r = post(spec)
        if r.status in (200, 201):
            ids.add(r.body["id"])
        n += 1
        time.sleep(0.25)
    t.between(parse_time(first["run_at"]) - parse_time(first["created_at"]),
              0.999, 1.001, "the first submission is due debounce after it")
    x = d.wait_state(first["id"], "succeeded", timeout=10)
    created = parse_time(x["created_at"])
    t.between(parse_time(x["run_at"]) - created, 0, 2.001,
              "debounced %d times: run_at within max_delay of its first "
              "submission" % n)
    t.ok(parse_time(x["started_at"]) - created < 2 + 1.5,
         "it started soon after max_delay, not pushed further",
         diag=json.dumps(x))
    ran = [y for y in d.list_all("kind=echo")
           if (y.get("unique") or {}).get("key") == "deb" and
           y["state"] == "succeeded"]
    t.ok(1 <= len(ran) <= 3, "debouncing ran it a few times, not %d" % n,
         diag="%d runs" % len(ran))
    t.ok(len([y for y in ran if y["id"] == first["id"]]) == 1,
         "the first one ran once")


@t.test(timeout=60)
def replace_a_running_holder():
    seq = seq_now()
    a = d.submit(uspec(sleep(1.5), "run", "replace"))
    d.wait_state(a["id"], "running")
    r = post(uspec(sleep(0.2), "run", "replace"))
    t.is_(r.status, 201, "replace on a running holder: 201, a successor")
    s = r.body
    t.is_(s.get("waiting_for"), "unique", "... waiting for the holder")
    r = post(uspec(sleep(0.3), "run", "replace"))
    t.ok(r.status == 200 and r.body.get("id") == s["id"] and
         r.body["params"] == {"seconds": 0.3},
         "another replace changes the successor (200)", diag=r.describe())
    r = post(uspec(sleep(0.3), "run", "keep"))
    t.ok(r.status == 200 and r.body.get("id") == a["id"],
         "keep answers the holder, not the successor", diag=r.describe())
    t.is_(d.get(s["id"])["state"], "scheduled", "the successor has not "
          "started while the holder runs")
    d.wait_state(s["id"], "succeeded", timeout=15)
    t.is_(d.get(a["id"])["state"], "succeeded", "the holder ran to its end")
    ev = feed_since(seq)
    a_end = [e["seq"] for e in ev if e["task"] == a["id"] and
             e["state"] == "succeeded"]
    s_run = [e["seq"] for e in ev if e["task"] == s["id"] and
             e["state"] == "running"]
    t.ok(a_end and s_run and min(s_run) > max(a_end),
         "the feed: the holder succeeded before the successor ran",
         diag="holder end %s, successor running %s" % (a_end, s_run))
    x = d.get(s["id"])
    t.ok(parse_time(x["started_at"]) >= parse_time(
        d.get(a["id"])["finished_at"]),
         "the successor started after the holder finished")
    t.is_(len(holders("run")), 0, "nothing holds the key in the end")
    # a successor canceled while it waits: the holder goes on alone
    a = d.submit(uspec(sleep(1), "run2", "debounce", debounce=0))
    d.wait_state(a["id"], "running")
    r = post(uspec(sleep(0.1), "run2", "debounce", debounce=0))
    t.is_(r.status, 201, "debounce on a running holder: a successor too")
    t.is_(d.cancel(r.body["id"]).status, 200, "the successor canceled")
    d.wait_state(a["id"], "succeeded", timeout=10)
    c = d.submit(uspec(echo("free", FAR), "run2"))
    t.ok(c["id"] not in (a["id"], r.body["id"]), "and the key is free")
    d.cancel(c["id"])


@t.test(timeout=60)
def successor_across_kill9():
    a = d.submit(uspec(sleep(2), "k9run", "replace"))
    d.wait_state(a["id"], "running")
    s = d.submit(uspec(sleep(0.1), "k9run", "replace"))
    d.restart(kill=True)
    x = d.get(s["id"])
    t.ok(x["state"] == "scheduled" and x["waiting_for"] == "unique",
         "after a kill -9 the successor still waits", diag=json.dumps(x))
    d.wait_state(s["id"], "succeeded", timeout=20)
    h = d.get(a["id"])
    t.is_(h["state"], "succeeded", "the interrupted holder ran again and "
          "ended")
    t.ok(parse_time(d.get(s["id"])["started_at"]) >=
         parse_time(h["finished_at"]),
         "then the successor ran")


@t.test(timeout=30)
def batches():
    a = d.submit(uspec(echo("held", FAR), "b1"))
    r = post([echo("free", FAR), uspec(echo("x", FAR), "b1", "keep")])
    problem(r, 409, "a batch with a held key: 409, whatever on_conflict",
            "/1/unique/key")
    t.is_(r.headers.get("location"), "/v1/tasks/%d" % a["id"],
          "... Location the holder")
    r = post([uspec(echo("x", FAR), "b2"), uspec(echo("y", FAR), "b2")])
    problem(r, 400, "a key twice in a batch: 400", "/1/unique/key")
    tasks = d.submit([uspec(echo("x", FAR), "b3"), uspec(echo("y", FAR),
                                                         "b4"),
                      echo("z", FAR)])
    t.is_(len(tasks), 3, "a batch of free keys: created")
    t.is_(len(holders("b3")) + len(holders("b4")), 2, "each holds its key")
    t.is_(holders("b2"), [], "nothing of the refused batches was stored")
    for x in tasks + [a]:
        d.cancel(x["id"])


@t.test(timeout=30)
def idempotency_first():
    spec = uspec(echo("idem", FAR), "idem")
    h = {"Idempotency-Key": "unique-idem-1"}
    a = d.submit(spec, headers=h)
    r = post(spec, headers=h)
    t.ok(r.status == 200 and r.body.get("id") == a["id"],
         "the same Idempotency-Key replays (200), not a 409",
         diag=r.describe())
    r = post(spec, headers={"Idempotency-Key": "unique-idem-2"})
    problem(r, 409, "another Idempotency-Key: the unique key decides",
            "/unique/key")
    h3 = {"Idempotency-Key": "unique-idem-3"}
    spec3 = uspec(echo("idem3", FAR), "idem", "debounce", debounce=100)
    r = post(spec3, headers=h3)
    t.ok(r.status == 200 and r.body.get("id") == a["id"], "a debounce "
         "answered with the holder", diag=r.describe())
    v = d.get(a["id"])["version"]
    r = post(spec3, headers=h3)
    t.ok(r.status == 200 and r.body.get("id") == a["id"] and
         d.get(a["id"])["version"] == v,
         "its repeat replays, without debouncing again", diag=r.describe())
    d.cancel(a["id"])


@t.test(timeout=30)
def bad_input():
    base = echo("bad", FAR)
    cases = [
        ("not an object", "x", "/unique"),
        ("an array", [], "/unique"),
        ("no key", {}, "/unique/key"),
        ("key a number", {"key": 7}, "/unique/key"),
        ("key empty", {"key": ""}, "/unique/key"),
        ("key of 257 bytes", {"key": "k" * 257}, "/unique/key"),
        ("on_conflict unknown", {"key": "k", "on_conflict": "merge"},
         "/unique/on_conflict"),
        ("on_conflict a number", {"key": "k", "on_conflict": 1},
         "/unique/on_conflict"),
        ("debounce missing", {"key": "k", "on_conflict": "debounce"},
         "/unique/debounce"),
        ("debounce negative", {"key": "k", "on_conflict": "debounce",
                               "debounce": -1}, "/unique/debounce"),
        ("debounce a string", {"key": "k", "on_conflict": "debounce",
                               "debounce": "5"}, "/unique/debounce"),
        ("debounce with reject", {"key": "k", "debounce": 5},
         "/unique/debounce"),
        ("max_delay without debounce", {"key": "k", "on_conflict": "keep",
                                        "max_delay": 5},
         "/unique/max_delay"),
        ("max_delay zero", {"key": "k", "on_conflict": "debounce",
                            "debounce": 1, "max_delay": 0},
         "/unique/max_delay"),
        ("an unknown member", {"key": "k", "ttl": 5}, "/unique/ttl"),
    ]
    for desc, u, field in cases:
        s = dict(base)
        s["unique"] = u
        problem(post(s), 400, "unique %s: 400" % desc, field)
    kid = uspec(echo("kid"), "kid")
    r = post({"kind": "sequence", "params": {"tasks": [echo("a"), kid]}})
    problem(r, 400, "unique on a child: 400", "/params/tasks/1/unique")
    r = post(uspec({"kind": "gather", "params": {"tasks": [echo("a")]}},
                   "grp", "replace"))
    problem(r, 400, "replace on a group: 400", "/unique/on_conflict")
    g = d.submit(uspec({"kind": "gather", "delay": FAR,
                        "params": {"tasks": [echo("a")]}}, "grp", "keep"))
    t.ok(g.get("unique", {}).get("key") == "grp", "keep on a group is fine")
    d.cancel(g["id"])
    left = [x for x in d.list_all("state=scheduled")
            if (x.get("unique") or {}).get("key") == "k"]
    t.is_(left, [], "nothing was stored")
    s = dict(base)
    s["unique"] = None
    x = d.submit(s)
    t.is_(x.get("unique"), None, "unique null: none")
    d.cancel(x["id"])


t.done()
