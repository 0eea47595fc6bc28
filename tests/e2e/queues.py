#!/usr/bin/env python3
"""queues.py -- the queue every task spec names (or "default"), against the
real daemon.

A task without a queue is in "default", whatever its kind; one named is
kept and shown; a group's children are in the group's queue unless they
name their own, at any depth.  Bad names (empty, 65 characters, upper
case, a slash, a space, non-ASCII, a number, null, an array) are 400
naming /queue, or /params/tasks/N/queue inside a group, and store
nothing, in a batch too.  GET /v1/tasks?queue= lists one queue (with
state, kind and parent filters and the cursor); a bad name there is 400
naming /query/queue.  The queue is part of the body an Idempotency-Key
hashes.  Queues survive a restart and a kill -9, and a file from before
queues (schema version 2, made from a new one with sqlite3) is upgraded
at start, its tasks in "default".
"""

import os
import sqlite3
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from tap import TAP  # noqa: E402
from corod import sqlite_only, Corod, echo, is_problem, sleep  # noqa: E402

t = TAP("queues")
d = Corod(t)

FAR = 3600      # seconds: tasks that wait while the test looks at them


def problem(r, status, desc, field=None):
    good, why = is_problem(r, status, field)
    return t.ok(good, desc, diag=why + "\n" + r.describe())


def ids(tasks):
    return [x["id"] for x in tasks]


@t.test(timeout=20)
def default_and_given():
    a = d.submit(echo("q", FAR))
    t.is_(a.get("queue"), "default", "no queue: \"default\"")
    t.is_(d.get(a["id"]).get("queue"), "default", "... read back the same")
    b = d.submit(echo("q", FAR, queue="thumbs"))
    t.is_(b.get("queue"), "thumbs", "a queue given is kept")
    name = "a.b_c-9" + "x" * 57
    c = d.submit(echo("q", FAR, queue=name))
    t.is_(c.get("queue"), name, "64 characters of [a-z0-9_.-]")
    dl = d.submit({"kind": "download", "delay": FAR,
                   "params": {"url": "http://127.0.0.1:9/x"}})
    t.is_(dl.get("queue"), "default", "a download without one: \"default\" "
          "too (max-downloads bounds it in any queue)")
    for x in (a, b, c, dl):
        d.cancel(x["id"])


@t.test(timeout=20)
def bad_values():
    before = len(d.list_all())
    cases = [
        ("", "empty"),
        ("x" * 65, "65 characters"),
        ("Thumbs", "upper case"),
        ("a/b", "a slash"),
        ("a b", "a space"),
        (".", "\".\" (a path segment of its own)"),
        ("..", "\"..\""),
        ("caf\u00e9", "non-ASCII"),
        (7, "a number"),
        (None, "null"),
        (["a"], "an array"),
    ]
    for value, why in cases:
        r = d.request("POST", "/v1/tasks", echo("bad", FAR, queue=value))
        problem(r, 400, "queue %s: 400 naming /queue" % why, "/queue")
    r = d.request("POST", "/v1/tasks", [echo("ok", FAR),
                                        echo("bad", FAR, queue="A")])
    problem(r, 400, "in a batch: 400 naming /1/queue", "/1/queue")
    r = d.request("POST", "/v1/tasks", {
        "kind": "sequence", "queue": "fine", "params": {"tasks": [
            echo("a"), echo("b", queue="no/slash")]}})
    problem(r, 400, "a group's child: 400 naming /params/tasks/1/queue",
            "/params/tasks/1/queue")
    t.is_(len(d.list_all()), before, "nothing was stored")


@t.test(timeout=20)
def children():
    g = d.submit({"kind": "gather", "queue": "grp", "delay": FAR,
                  "params": {"tasks": [
                      echo("inherits"),
                      echo("own", queue="mine"),
                      {"kind": "sequence", "params": {"tasks": [
                          echo("deep")]}},
                      {"kind": "sequence", "queue": "sub", "params": {
                          "tasks": [echo("deep2")]}}]}})
    kids = [d.get(k) for k in g["children"]]
    t.is_([k.get("queue") for k in kids], ["grp", "mine", "grp", "sub"],
          "children: the parent's queue unless they name their own")
    t.is_([d.get(k).get("queue") for k in kids[2]["children"] +
           kids[3]["children"]], ["grp", "sub"],
          "grandchildren: their own parent's")
    top = d.submit({"kind": "sequence", "delay": FAR, "params": {"tasks": [
        echo("x")]}})
    t.is_(d.get(top["children"][0]).get("queue"), "default",
          "a child of a group in \"default\": \"default\"")
    d.cancel(g["id"])
    d.cancel(top["id"])


@t.test(timeout=30)
def list_filter():
    q = "lq-%d" % os.getpid()
    a = d.submit(echo("a", FAR, queue=q))
    b = d.submit(sleep(0, queue=q))
    c = d.submit(echo("c", FAR, queue=q + "-other"))
    e = d.submit(echo("e", FAR))
    d.wait_state(b["id"], "succeeded")
    got = d.list_all("queue=" + q)
    t.is_(ids(got), [b["id"], a["id"]], "?queue= lists that queue only, "
          "newest first")
    t.ok(all(x["queue"] == q for x in got), "... each task in it")
    t.is_(ids(d.list_all("queue=%s&state=scheduled" % q)), [a["id"]],
          "with state=scheduled")
    t.is_(ids(d.list_all("queue=%s&state=scheduled,succeeded" % q)),
          [b["id"], a["id"]], "with two states")
    t.is_(ids(d.list_all("queue=%s&kind=sleep" % q)), [b["id"]],
          "with kind=sleep")
    t.is_(ids(d.list_all("queue=%s&parent=none" % q)), [b["id"], a["id"]],
          "with parent=none")
    t.is_(ids(d.list_all("queue=%s" % q, limit=1)), [b["id"], a["id"]],
          "paged by one through the cursor")
    t.is_(d.list_all("queue=nobody-uses-this"), [],
          "a valid queue nobody named: an empty list")
    t.ok(e["id"] in ids(d.list_all("queue=default")),
         "queue=default lists the tasks sent without one")
    for bad in ("", "A", "a%2Fb", "x" * 65, "%C3%A9"):
        r = d.request("GET", "/v1/tasks?queue=" + bad)
        problem(r, 400, "?queue=%s: 400 naming /query/queue" % bad[:12],
                "/query/queue")
    for x in (a, c, e):
        d.cancel(x["id"])


@t.test(timeout=20)
def idempotency():
    key = {"Idempotency-Key": "q-%d" % os.getpid()}
    a = d.request("POST", "/v1/tasks", echo("i", FAR, queue="one"),
                  headers=key)
    t.is_(a.status, 201, "keyed submission: 201")
    b = d.request("POST", "/v1/tasks", echo("i", FAR, queue="one"),
                  headers=key)
    t.ok(b.status == 200 and b.body.get("id") == a.body.get("id"),
         "the same key and queue: 200, the first task", diag=b.describe())
    c = d.request("POST", "/v1/tasks", echo("i", FAR, queue="two"),
                  headers=key)
    problem(c, 422, "the same key with another queue: 422")
    d.cancel(a.body["id"])


@t.test(timeout=60)
def restart_and_upgrade():
    a = d.submit(echo("r", FAR, queue="keep"))
    g = d.submit({"kind": "sequence", "queue": "grp2", "delay": FAR,
                  "params": {"tasks": [echo("k")]}})
    d.restart()
    t.is_(d.get(a["id"]).get("queue"), "keep", "a queue survives a restart")
    t.is_(d.get(g["children"][0]).get("queue"), "grp2", "... a child's too")
    d.restart(kill=True)
    t.is_(ids(d.list_all("queue=keep")), [a["id"]],
          "... and a kill -9, listed by it")

    # A file from before queues: version 2, as the previous release wrote.
    sqlite_only("the rest writes an older sqlite schema into the file")
    d.stop()
    con = sqlite3.connect(d.db)
    try:
        con.executescript("DROP TABLE schedules; DROP INDEX tasks_schedule;"
                          " ALTER TABLE tasks DROP COLUMN schedule;"
                          " ALTER TABLE tasks DROP COLUMN scheduled_for;"
                          " ALTER TABLE tombstones DROP COLUMN schedule;"
                          " DROP INDEX tasks_ukey; DROP INDEX tasks_uwait;"
                          " ALTER TABLE tasks DROP COLUMN unique_spec;"
                          " ALTER TABLE tasks DROP COLUMN ukey;"
                          " ALTER TABLE tasks DROP COLUMN uwait;"
                          " DROP TABLE queues;"
                          " ALTER TABLE tasks DROP COLUMN ckey;"
                          " ALTER TABLE tasks DROP COLUMN worker;"
                          " ALTER TABLE tasks DROP COLUMN wtoken;"
                          " ALTER TABLE tasks DROP COLUMN wlease;"
                          " ALTER TABLE tasks DROP COLUMN wlease_until;"
                          " ALTER TABLE tasks DROP COLUMN wend;"
                          " DROP INDEX tasks_queue;"
                          " ALTER TABLE tasks DROP COLUMN queue;"
                          " PRAGMA user_version = 2;")
        version = con.execute("PRAGMA user_version").fetchone()[0]
    finally:
        con.close()
    t.is_(version, 2, "made a version 2 file (no queue column)")
    d.start()
    t.is_([d.get(x).get("queue") for x in (a["id"], g["id"])],
          ["default", "default"], "upgraded at start: its tasks in "
          "\"default\"")
    t.ok(a["id"] in ids(d.list_all("queue=default")),
         "... and listed there")
    con = sqlite3.connect(d.db)
    try:
        version = con.execute("PRAGMA user_version").fetchone()[0]
    finally:
        con.close()
    t.ok(version >= 3, "the file is at version %d" % version)
    n = d.submit(echo("new", FAR, queue="after"))
    t.is_(d.get(n["id"]).get("queue"), "after",
          "a new task names its queue on the upgraded file")
    for x in (a, g, n):
        d.cancel(x["id"])


t.done()
