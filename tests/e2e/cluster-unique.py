#!/usr/bin/env python3
"""cluster-unique.py -- unique keys across nodes on one PostgreSQL
(API.md, "Unique tasks" and "Several nodes").

Three nodes on a private PostgreSQL (tests/lib/pg.py; skipped without
it, failed with COROD_REQUIRE_PG=1, as cluster.py).  In rounds, for each
on_conflict mode, six clients (two per node) send a spec with the same
new unique key at once; the holder is either scheduled (an echo due in a
few seconds) or running (a sleep, due now).  Then:

- every answer is one API.md allows for the mode: reject 201 or 409
  with the Location of a task made in the round; keep 201 or 200 with
  such a task; replace and debounce 201 (the holder, or a successor),
  200 with such a task, or 409 unique-conflict naming a holder another
  node holds (API.md, "Several nodes": only the node holding a holder
  changes it) -- never 503 nor 500, and every node still serves;
- at no sample of the store did two unfinished tasks hold a key: no
  unfinished task with a "unique" neither holds its key nor waits as a
  successor, and no key has two tasks running;
- nothing answered 201 is lost: every such task is in the store and
  ends succeeded; the runs of the tasks of one key never overlap
  (started_at/finished_at), and no key stays held or waited for.

Then what a node that lost the race leaves (groups_batches_idempotency:
a sequence's children, a batch, Idempotency-Keys: nothing), and where
replace and debounce change a holder (replace_where_held: on the node
holding it, or when no node holds it; 409 naming the node elsewhere; a
successor only behind a holder running on the same node).
"""

import json
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from tap import TAP, scaled  # noqa: E402
from corod import Corod  # noqa: E402
from pg import Postgres, available  # noqa: E402

LEASE = 3.0
MODES = ("reject", "keep", "replace", "debounce")
ROUNDS = 6                  # per mode: even ones scheduled, odd ones running
CLIENTS_PER_NODE = 2

t = TAP("cluster-unique", total_timeout=600)
if not available():
    if os.environ.get("COROD_REQUIRE_PG") == "1":
        t.fail("PostgreSQL is not installed (COROD_REQUIRE_PG=1)")
    else:
        t.skip("cluster-unique", "PostgreSQL is not installed")
    t.done()

pg = Postgres(t)
pg.start()
t.cleanups.append(pg.close)


def node(name):
    return Corod(t, name=name, db=pg.uri, args=["--lease", str(LEASE)])


def spec(mode, key, running, n):
    u = {"key": key, "on_conflict": mode}
    if mode == "debounce":
        u["debounce"] = 0.3
    if running:
        return {"kind": "sleep", "params": {"seconds": 1}, "unique": u}
    return {"kind": "echo", "params": {"message": "m%d" % n}, "delay": 1.5,
            "unique": u}


class Sampler(threading.Thread):
    """Reads the store every 0.1 s while the rounds run (bounded)."""

    def __init__(self, d):
        super().__init__(daemon=True)
        self.d = d
        self.stop = threading.Event()
        self.bad = []
        self.samples = 0

    def run(self):
        deadline = time.monotonic() + scaled(300)
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                loose = self.d.sql(
                    "SELECT 'loose', id FROM tasks WHERE state IN (0, 1)"
                    " AND unique_spec IS NOT NULL AND ukey IS NULL AND"
                    " uwait IS NULL UNION ALL SELECT 'twice', count(*)"
                    " FROM tasks WHERE state = 1 AND unique_spec IS NOT"
                    " NULL GROUP BY unique_spec::json->>'key'"
                    " HAVING count(*) > 1")
                twice = [x for x in loose if x[0] == "twice"]
                loose = [x for x in loose if x[0] == "loose"]
            except Exception as e:  # noqa: BLE001 (reported, not raised)
                self.bad.append("sql: %s" % e)
                break
            self.samples += 1
            if loose:
                self.bad.append("unfinished tasks with a unique key that "
                                "neither hold it nor wait: %r" % loose)
            if twice:
                self.bad.append("a key with two tasks running: %r" % twice)
            self.stop.wait(0.1)


def round_of(ns, mode, key, running):
    """Six clients at once; their (node, status, body, location)."""
    clients = [d for d in ns for _ in range(CLIENTS_PER_NODE)]
    barrier = threading.Barrier(len(clients))
    out = [None] * len(clients)

    def client(i, d):
        c = d.connection(timeout=30)
        try:
            barrier.wait(timeout=scaled(10))
            r = d.request("POST", "/v1/tasks", spec(mode, key, running, i),
                          conn=c)
            out[i] = (d.name, r.status, r.body, r.headers.get("location"))
        except Exception as e:  # noqa: BLE001
            out[i] = (d.name, None, repr(e), None)
        finally:
            c.close()

    th = [threading.Thread(target=client, args=(i, d), daemon=True)
          for i, d in enumerate(clients)]
    for x in th:
        x.start()
    for x in th:
        x.join(scaled(60))
    return out


def check_round(mode, key, answers, created):
    """Each answer against API.md; the ids answered 201 go to created."""
    made = {a[2]["id"] for a in answers if a[1] == 201}
    created.update(made)
    bad = []
    for name, status, body, loc in answers:
        if status == 201:
            continue
        holder = None
        if loc is not None and loc.startswith("/v1/tasks/"):
            holder = int(loc.rsplit("/", 1)[1])
        if status == 409 and isinstance(body, dict) and \
                body.get("type", "").endswith(":unique-conflict") and \
                holder in made and (mode == "reject" or
                                    "node" in body.get("detail", "")):
            continue
        if status == 200 and mode != "reject" and \
                isinstance(body, dict) and body.get("id") in made:
            continue
        bad.append((name, status, body if status != 201 else None, loc))
    t.ok(not bad and made, "%s %s: %d answers, %d created, all allowed"
         % (mode, key, len(answers), len(made)),
         diag="%r\ncreated %r" % (bad, sorted(made)))
    return [a for a in answers if a[1] in (500, 503, None)]


@t.test(timeout=420)
def same_key_on_three_nodes():
    ns = [node("u%d" % i) for i in (1, 2, 3)]
    time.sleep(LEASE / 3 + 0.5)         # the nodes count each other up
    sampler = Sampler(ns[0])
    sampler.start()
    created = set()
    failures = []
    for mode in MODES:
        for rnd in range(ROUNDS):
            key = "k-%s-%d" % (mode, rnd)
            answers = round_of(ns, mode, key, rnd % 2 == 1)
            failures += check_round(mode, key, answers, created)
            if failures:
                break
        if failures:
            break
    t.ok(not failures, "no 503, no 500, no client error",
         diag=repr(failures[:5]))
    for d in ns:
        r = d.request("POST", "/v1/tasks", {"kind": "echo",
                                            "params": {"message": "up"}})
        t.ok(r.status == 201, "%s still serves: %d" % (d.name, r.status),
             diag=d.output_tail(20))
    # everything created ends, and ends succeeded
    deadline = time.monotonic() + scaled(60)
    left = set(created)
    while left and time.monotonic() < deadline:
        rows = ns[0].sql("SELECT id FROM tasks WHERE state IN (0, 1) AND"
                         " id = ANY(?::bigint[])",
                         ("{" + ",".join(map(str, left)) + "}",))
        left = {r[0] for r in rows}
        if left:
            time.sleep(0.2)
    sampler.stop.set()
    sampler.join(scaled(30))
    t.ok(sampler.samples >= 3 and not sampler.bad,
         "%d samples of the store: at most one holder of a key, never two "
         "running" % sampler.samples, diag="\n".join(sampler.bad[:5]))
    t.ok(not left, "every task answered 201 ended", diag=repr(left))
    ids = "{" + ",".join(map(str, created)) + "}"
    rows = ns[0].sql("SELECT id, state, unique_spec, started_at, finished_at"
                     " FROM tasks WHERE id = ANY(?::bigint[])", (ids,))
    got = {r[0]: r for r in rows}
    t.is_(sorted(set(created) - set(got)), [],
          "every task answered 201 is in the store (%d)" % len(created))
    t.ok(all(r[1] == 2 for r in rows), "and succeeded",
         diag=repr([r[:2] for r in rows if r[1] != 2]))
    runs = {}
    for r in rows:
        if r[3] is not None and r[4] is not None:
            runs.setdefault(json.loads(r[2])["key"], []).append(
                (r[3], r[4], r[0]))
    overlap = []
    for k, v in runs.items():
        v.sort()
        for a, b in zip(v, v[1:]):
            if b[0] < a[1]:
                overlap.append((k, a, b))
    t.ok(not overlap, "the runs of one key never overlap (%d keys)" %
         len(runs), diag=repr(overlap[:5]))
    rows = ns[0].sql("SELECT id, ukey, uwait FROM tasks WHERE ukey IS NOT"
                     " NULL OR uwait IS NOT NULL")
    t.is_(rows, [], "no key is held or waited for at the end")
    retaken = 0
    for d in ns:
        out = d.output()
        t.ok("tasks_ukey" not in out and "writing to the store failed"
             not in out, "%s: no batch failed (no unique violation)" %
             d.name, diag=d.output_tail(10))
        retaken += len(re.findall(r"another node holds its unique key",
                                  out))
    # (a race: how often a node lost it varies; said, not asserted)
    t.ok(True, "submissions that lost the race and were admitted again: "
         "%d" % retaken)
    for d in ns:
        d.close()


def ids_of(body):
    if isinstance(body, dict) and "tasks" in body:
        return [x["id"] for x in body["tasks"]]
    return [body.get("id")] if isinstance(body, dict) else None


@t.test(timeout=240)
def groups_batches_idempotency():
    """What a node that lost the race leaves: nothing.  A sequence with
    a key (its children are rows too), a batch of two keys, each client
    with an Idempotency-Key of its own: afterwards no row without its
    parent, every idempotency key answers a task that exists (its own
    201, or the holder), and asked again the same request answers the
    same holder."""
    ns = [node("g%d" % i) for i in (1, 2, 3)]
    time.sleep(LEASE / 3 + 0.5)
    bad, created, sent = [], set(), []
    for rnd in range(8):
        key = "g-%d" % rnd
        if rnd % 2 == 0:
            body = {"kind": "sequence", "delay": 1, "unique": {
                "key": key, "on_conflict": "keep" if rnd % 4 else "reject"},
                "params": {"tasks": [
                    {"kind": "echo", "params": {"message": "a"}},
                    {"kind": "echo", "params": {"message": "b"}}]}}
        else:
            body = [{"kind": "echo", "params": {"message": "x"}, "delay": 1,
                     "unique": {"key": key + "-a"}},
                    {"kind": "echo", "params": {"message": "y"}, "delay": 1,
                     "unique": {"key": key + "-b"}}]
        clients = [d for d in ns for _ in range(CLIENTS_PER_NODE)]
        barrier = threading.Barrier(len(clients))
        out = [None] * len(clients)

        def client(i, d, body=body, key=key):
            c = d.connection(timeout=30)
            hdr = {"Idempotency-Key": "%s-c%d" % (key, i)}
            try:
                barrier.wait(timeout=scaled(10))
                r = d.request("POST", "/v1/tasks", body, headers=hdr,
                              conn=c)
                out[i] = (d, hdr, r.status, r.body, r.headers.get(
                    "location"))
            except Exception as e:  # noqa: BLE001
                out[i] = (d, hdr, None, repr(e), None)
            finally:
                c.close()

        th = [threading.Thread(target=client, args=(i, d), daemon=True)
              for i, d in enumerate(clients)]
        for x in th:
            x.start()
        for x in th:
            x.join(scaled(60))
        wins = [o for o in out if o[2] == 201]
        if len(wins) != 1 or any(o[2] not in (200, 201, 409) for o in out):
            bad.append((key, [(o[0].name, o[2], o[3]) for o in out]))
        for o in wins:
            created.update(ids_of(o[3]))
        sent.append((body, out))
    t.ok(not bad, "each round: one 201, the others 200 or 409",
         diag=repr(bad[:3]))
    orphans = ns[0].sql("SELECT id FROM tasks AS c WHERE parent IS NOT"
                        " NULL AND NOT EXISTS (SELECT 1 FROM tasks AS p"
                        " WHERE p.id = c.parent)")
    t.is_(orphans, [], "no row without its parent (a lost sequence's "
          "children went with it)")
    lines = ns[0].sql("SELECT count(*) FROM logs WHERE NOT EXISTS (SELECT"
                      " 1 FROM tasks WHERE tasks.id = logs.task)")
    t.is_(lines[0][0], 0, "no log line without its task")
    ghosts = []
    for k, ids in ns[0].sql("SELECT key, ids FROM idempotency"):
        v = json.loads(ids)
        for i in (v["tasks"] if isinstance(v, dict) else v):
            if not ns[0].sql("SELECT 1 FROM tasks WHERE id = ?", (i,)):
                ghosts.append((k, i))
    t.is_(ghosts, [], "every idempotency key names tasks that exist")
    rows = ns[0].sql("SELECT id FROM tasks WHERE id = ANY(?::bigint[])",
                     ("{" + ",".join(map(str, created)) + "}",))
    t.is_(len(rows), len(created), "every task answered 201 is stored")
    again = []
    for body, out in sent:
        for d, hdr, status, b, loc in out:
            r = d.request("POST", "/v1/tasks", body, headers=hdr)
            if status == 201:
                # a replay: the same tasks (200 or 201 as API.md says)
                ok = r.status in (200, 201) and ids_of(r.body) == \
                    ids_of(b)
            else:
                # evaluated again: the holder may have ended since
                ok = r.status in (200, 201, 409)
            if not ok:
                again.append((d.name, status, r.status, r.body))
    t.ok(not again, "the same requests again (same Idempotency-Key): "
         "their first tasks, or the holder", diag=repr(again[:3]))
    retaken = sum(len(re.findall(r"another node holds its unique key",
                                 d.output())) for d in ns)
    t.ok(True, "submissions taken back and admitted again: %d" % retaken)
    for d in ns:
        d.close()


def node_id(d):
    return d.request("GET", "/v1/nodes").body["self"]


@t.test(timeout=120)
def replace_where_held():
    """replace and debounce of a holder: changed on the node holding it
    or when no node holds it; 409 naming the node elsewhere."""
    a, b = node("ra"), node("rb")
    ida = node_id(a)

    def sub(d, key, params, mode="replace", **kw):
        u = {"key": key, "on_conflict": mode}
        if mode == "debounce":
            u["debounce"] = 30
        spec = dict({"kind": "echo", "params": params, "unique": u}, **kw)
        return d.request("POST", "/v1/tasks", spec)

    # armed on node a (due within its window): node a holds it
    r = sub(a, "held", {"message": "one"}, delay=20)
    t.is_(r.status, 201, "a holder due in 20 s, on node a")
    h = r.body["id"]
    for mode in ("replace", "debounce"):
        r = sub(b, "held", {"message": "two"}, mode=mode, delay=20)
        t.ok(r.status == 409 and r.headers.get("location") ==
             "/v1/tasks/%d" % h and ("node %d" % ida) in
             r.body.get("detail", ""), "%s on node b: 409, the holder's "
             "Location, the detail names node a" % mode,
             diag=r.describe()[:600])
    r = sub(a, "held", {"message": "three"}, delay=20)
    t.ok(r.status == 200 and r.body["id"] == h and
         r.body["params"] == {"message": "three"},
         "replace on node a (holding it): 200, changed", diag=r.describe())
    # due beyond the windows: no node holds it, any node changes it
    r = sub(a, "free", {"message": "one"}, delay=3600)
    t.is_(r.status, 201, "a holder due in an hour")
    f = r.body["id"]
    r = sub(b, "free", {"message": "two"}, delay=3600)
    t.ok(r.status == 200 and r.body["id"] == f and
         r.body["params"] == {"message": "two"},
         "replace on node b of a holder no node holds: 200, changed",
         diag=r.describe())
    got = a.get(f)
    t.is_(got["params"], {"message": "two"}, "node a reads the change")
    # running on node a: a successor there, 409 on node b
    r = a.request("POST", "/v1/tasks", {
        "kind": "sleep", "params": {"seconds": 3},
        "unique": {"key": "run", "on_conflict": "replace"}})
    run = r.body["id"]
    a.wait_state(run, "running")
    r = b.request("POST", "/v1/tasks", {
        "kind": "sleep", "params": {"seconds": 0},
        "unique": {"key": "run", "on_conflict": "replace"}})
    t.ok(r.status == 409 and "running on node %d" % ida in
         r.body.get("detail", ""), "replace on node b of a holder running "
         "on node a: 409", diag=r.describe()[:600])
    r = a.request("POST", "/v1/tasks", {
        "kind": "sleep", "params": {"seconds": 0},
        "unique": {"key": "run", "on_conflict": "replace"}})
    t.ok(r.status == 201 and r.body["waiting_for"] == "unique",
         "on node a: 201, a successor", diag=r.describe()[:600])
    succ = r.body["id"]
    got = a.wait_state(succ, ("succeeded", "failed", "canceled"), timeout=20)
    t.is_(got["state"], "succeeded", "the successor ran after its holder")
    t.ok(got["started_at"] >= a.get(run)["finished_at"],
         "... once the holder had ended")
    for d in (a, b):
        d.close()


t.done()
