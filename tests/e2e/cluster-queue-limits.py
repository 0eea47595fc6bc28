#!/usr/bin/env python3
"""cluster-queue-limits.py -- queue limits across nodes on one PostgreSQL
(issue 17: "queue limits, key limits and unique tasks hold across nodes
(enforced in the claiming transaction, not per node)").

Three nodes on one private PostgreSQL (tests/lib/pg.py).  Tasks are
submitted to all of them at once; afterwards the store's started_at and
finished_at say how many ran at once, and when each started:

  limits_across_nodes	concurrency 1 and key_concurrency 1, set on node 1
			before the others start: never two at once
  concurrency_two	concurrency 2 set on node 2 while the nodes run
			(heard through the feed): never three at once, and
			two at once (the limit is used, not just kept)
  rate_across_nodes	rate 2 per second shared by the three nodes: the
			starts of 12 tasks spread over about 5 s
  external_claims	external tasks of a queue with concurrency 1,
			claimed by workers through nodes 2 and 3: never two
			claimed at once, every one completed
  holder_killed		kill -9 of the node running a concurrency-1 task:
			it runs again elsewhere after the lease, the
			others after it, never two at once
  stopped_waiting	a graceful stop, and a restart, of a node whose
			tasks of limited queues are running, refused by the
			store and waiting at its gates: it exits cleanly,
			the others run its tasks, never two at once
"""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from tap import TAP, scaled  # noqa: E402
from corod import Corod  # noqa: E402
from pg import Postgres, available  # noqa: E402

LEASE = 3.0
PER_NODE = 3
FINAL = ("succeeded", "failed", "canceled")

t = TAP("cluster-queue-limits", total_timeout=600)
if not available():
    t.skip("cluster-queue-limits", "PostgreSQL is not installed")
    t.done()

pg = Postgres(t)
pg.start()
t.cleanups.append(pg.close)


def node(name):
    return Corod(t, name=name, db=pg.uri, args=["--lease", str(LEASE)])


def runs_of(d, ids):
    """(id, started_at, finished_at) of the tasks ids, from the store."""
    return d.sql("SELECT id, started_at, finished_at FROM tasks"
                 " WHERE id = ANY(?::bigint[])",
                 ("{" + ",".join(map(str, ids)) + "}",))


def most_at_once(rows):
    """The most runs [started_at, finished_at) that overlap at a moment."""
    ev = []
    for _, s, f in rows:
        if s and f:
            ev.append((s, 1))
            ev.append((f, -1))
    ev.sort(key=lambda e: (e[0], e[1]))   # an end before a start at once
    n = best = 0
    for _, d in ev:
        n += d
        best = max(best, n)
    return best


def metric(d, name):
    for line in d.request("GET", "/metrics").body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def settle(ns):
    """Let the nodes count each other (a renewal) before the load."""
    time.sleep(LEASE / 3 + 0.5)


def wait_all(d, ids, what):
    for x in ids:
        got = d.get(x)
        try:
            got = d.wait_state(x, FINAL, timeout=scaled(90))
        except Exception:       # (what the store says of it, then fail)
            got["store"] = d.sql("SELECT owner, node, lease_until, fence,"
                                 " attempt, grant_attempt FROM tasks"
                                 " WHERE id = ?", (x,))
        t.ok(got["state"] == "succeeded", "%s: task %d succeeded" % (what, x),
             diag=repr(got))


@t.test(timeout=240)
def limits_across_nodes():
    n1 = node("q1")
    r = n1.request("PATCH", "/v1/queues/one", {"concurrency": 1})
    t.is_(r.status, 200, "queue one: concurrency 1")
    r = n1.request("PATCH", "/v1/queues/keyed", {"key_concurrency": 1})
    t.is_(r.status, 200, "queue keyed: key_concurrency 1")
    ns = [n1, node("q2"), node("q3")]
    settle(ns)
    ids = {"one": [], "keyed": [], "other": []}
    for _ in range(PER_NODE):
        for d in ns:
            ids["one"].append(d.submit({"kind": "sleep", "queue": "one",
                                        "params": {"seconds": 0.5}})["id"])
            ids["keyed"].append(d.submit({
                "kind": "sleep", "queue": "keyed", "concurrency_key": "k",
                "params": {"seconds": 0.5}})["id"])
            # another key of the same queue is not held back by "k"
            ids["other"].append(d.submit({
                "kind": "sleep", "queue": "keyed",
                "concurrency_key": "k-%s" % d.name,
                "params": {"seconds": 0.5}})["id"])
    for q, xs in ids.items():
        wait_all(n1, xs, q)
    for q in ("one", "keyed"):
        rows = runs_of(n1, ids[q])
        t.is_(most_at_once(rows), 1, "queue %s: never two at once across "
              "nodes (%d tasks, submitted to 3 nodes)" % (q, len(rows)))
    refused = sum(metric(d, "corod_queue_grants_refused_total") for d in ns)
    asked = sum(metric(d, "corod_queue_grants_total") for d in ns)
    t.ok(asked >= len(ids["one"]) + len(ids["keyed"]) and refused > 0,
         "the nodes asked the store (%d starts asked, %d refused: another "
         "node held the slot)" % (asked, refused))
    rows = runs_of(n1, ids["other"])
    t.ok(most_at_once(rows) >= 2, "three other keys of the queue ran side "
         "by side (key_concurrency is per key)",
         diag="at most %d at once" % most_at_once(rows))
    for d in ns:
        d.close()


@t.test(timeout=240)
def concurrency_two():
    ns = [node("c%d" % i) for i in (1, 2, 3)]
    settle(ns)
    r = ns[1].request("PATCH", "/v1/queues/two", {"concurrency": 2})
    t.is_(r.status, 200, "queue two: concurrency 2, set on node 2")
    # heard by the other nodes through the feed
    deadline = time.time() + scaled(10)
    while time.time() < deadline:
        if all(d.request("GET", "/v1/queues/two").body.get("concurrency") == 2
               for d in ns):
            break
        time.sleep(0.05)
    t.ok(all(d.request("GET", "/v1/queues/two").body.get("concurrency") == 2
             for d in ns), "every node says concurrency 2")
    ids = []
    for _ in range(4):
        for d in ns:
            ids.append(d.submit({"kind": "sleep", "queue": "two",
                                 "params": {"seconds": 0.6}})["id"])
    # while they run, every node's view of the queue counts only its own
    wait_all(ns[0], ids, "two")
    rows = runs_of(ns[0], ids)
    t.is_(most_at_once(rows), 2, "queue two: two at once at most, and two "
          "at once (12 tasks over 3 nodes)")
    for d in ns:
        d.close()


@t.test(timeout=240)
def rate_across_nodes():
    ns = [node("r%d" % i) for i in (1, 2, 3)]
    r = ns[0].request("PATCH", "/v1/queues/slow",
                      {"rate": {"limit": 2, "per": 1}})
    t.is_(r.status, 200, "queue slow: 2 starts a second")
    settle(ns)
    ids = []
    for _ in range(4):
        for d in ns:
            ids.append(d.submit({"kind": "echo", "queue": "slow",
                                 "params": {"message": "x"}})["id"])
    wait_all(ns[0], ids, "slow")
    starts = sorted(s for _, s, _ in runs_of(ns[0], ids))
    # a bucket of 2 tokens, 2 more a second: the store's yeses come at
    # most 4 in any second, and 12 take at least (12 - 2) / 2 = 5 s.
    # Three buckets of their own would start 6 at once and all 12 in
    # about 2 s.  (A start follows its yes by the answer's way back,
    # longer on a loaded machine: a margin of one start, and of 1 s.)
    span = (starts[-1] - starts[0]) / 1e6
    t.ok(span >= 4.0, "12 starts shared 2 a second across 3 nodes: they "
         "took %.2f s (at least 5 s less a margin)" % span)
    worst = max(sum(1 for y in starts if x <= y < x + 1000000)
                for x in starts)
    t.ok(worst <= 5, "at most 4 starts in any second (bucket of 2 plus 2 "
         "a second; 5 with the margin): %d" % worst)
    for d in ns:
        d.close()


def ext_claim(d, queue, worker, conn=None, **body):
    body["worker"] = worker
    return d.request("POST", "/v1/queues/%s/claim" % queue, body,
                     timeout=body.get("wait", 0) + 30, conn=conn)


@t.test(timeout=240)
def external_claims():
    ns = [node("e%d" % i) for i in (1, 2, 3)]
    r = ns[0].request("PATCH", "/v1/queues/ext1", {"concurrency": 1})
    t.is_(r.status, 200, "queue ext1: concurrency 1")
    settle(ns)
    n = 8
    ids = [ns[0].submit({"kind": "external", "queue": "ext1",
                         "params": {"i": i}})["id"] for i in range(n)]
    lock = threading.Lock()
    spans, errors, done = [], [], set()

    def worker(d, name):
        conn = d.connection()
        deadline = time.time() + scaled(90)
        while time.time() < deadline:
            with lock:
                if len(done) >= n:
                    return
            r = ext_claim(d, "ext1", name, conn=conn, max=5, wait=1)
            if r.status != 200:
                with lock:
                    errors.append(r.describe())
                time.sleep(0.1)
                continue
            for c in r.body["claims"]:
                t0 = time.time()
                time.sleep(0.3)
                tid = c["task"]["id"]
                r2 = d.request("POST", "/v1/tasks/%d/complete" % tid,
                               {"token": c["token"], "result": {}},
                               conn=conn)
                with lock:
                    spans.append((t0, time.time(), tid, name))
                    if r2.status == 200:
                        done.add(tid)
                    else:
                        errors.append(r2.describe())

    ths = [threading.Thread(target=worker, args=(d, "%s-w%d" % (d.name, k)))
           for d in ns[1:] for k in range(2)]
    for th in ths:
        th.start()
    for th in ths:
        th.join(scaled(120))
    t.is_(errors, [], "no claim or complete failed")
    t.is_(sorted(done), sorted(ids), "all %d claimed and completed" % n)
    # a worker holds a task from its claim's answer to its complete's:
    # the store's started_at/finished_at bound that from outside
    rows = runs_of(ns[0], ids)
    t.is_(most_at_once(rows), 1, "never two of queue ext1 claimed at once "
          "(4 workers on 2 nodes, concurrency 1)")
    for d in ns:
        d.close()


@t.test(timeout=300)
def holder_killed():
    ns = [node("k%d" % i) for i in (1, 2, 3)]
    r = ns[0].request("PATCH", "/v1/queues/solo", {"concurrency": 1})
    t.is_(r.status, 200, "queue solo: concurrency 1")
    settle(ns)
    first = ns[0].submit({"kind": "sleep", "queue": "solo",
                          "params": {"seconds": 2}})["id"]
    got = ns[0].wait_state(first, ("running",), timeout=scaled(10))
    t.is_(got["state"], "running", "the first runs on node 1")
    rest = []
    for d in ns[1:]:
        for _ in range(2):
            rest.append(d.submit({"kind": "sleep", "queue": "solo",
                                  "params": {"seconds": 0.3}})["id"])
    time.sleep(0.5)
    running = ns[1].sql("SELECT count(*) FROM tasks WHERE queue = 'solo'"
                        " AND state = 1")[0][0]
    t.is_(running, 1, "while it runs, nodes 2 and 3 start none of theirs")
    ns[0].kill9()
    wait_all(ns[1], [first] + rest, "solo")
    rows = runs_of(ns[1], [first] + rest)
    t.is_(most_at_once(rows), 1, "never two at once, the task taken back "
          "from the dead node included")
    att = ns[1].get(first)
    t.is_(att.get("attempt"), 2, "the killed node's task ran again, once")
    for d in ns[1:]:
        d.close()
    ns[0].close()


@t.test(timeout=300)
def stopped_waiting():
    ns = [node("s%d" % i) for i in (1, 2, 3)]
    r = ns[0].request("PATCH", "/v1/queues/one2", {"concurrency": 1})
    t.is_(r.status, 200, "queue one2: concurrency 1")
    r = ns[0].request("PATCH", "/v1/queues/k2", {"key_concurrency": 1})
    t.is_(r.status, 200, "queue k2: key_concurrency 1")
    settle(ns)
    ids = []
    for _ in range(4):
        for d in ns:
            ids.append(d.submit({"kind": "sleep", "queue": "one2",
                                 "params": {"seconds": 0.3}})["id"])
            ids.append(d.submit({"kind": "sleep", "queue": "k2",
                                 "concurrency_key": "k",
                                 "params": {"seconds": 0.3}})["id"])
    time.sleep(0.4)
    # node 2 stops with its tasks in every state (running, refused,
    # waiting at a gate, maybe asking the store), and comes back
    rc = ns[1].stop()
    t.is_(rc, 0, "node 2 stops cleanly with tasks waiting for the store")
    ns[1].start()
    wait_all(ns[0], ids, "one2/k2")
    for q, part in (("one2", ids[0::2]), ("k2", ids[1::2])):
        t.is_(most_at_once(runs_of(ns[0], part)), 1, "queue %s: never two "
              "at once, through a stop and a restart of a node" % q)
    for d in ns:
        d.close()


t.done()
