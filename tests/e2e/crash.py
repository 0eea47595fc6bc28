#!/usr/bin/env python3
"""crash.py -- kill -9 during heavy submission and cancellation load.

CRASH_ROUNDS rounds (default 20) on one database: corod starts, several
client threads submit (single specs and batches of echo, sleep, repeat,
sequence, gather and a few throttled downloads, some with an
Idempotency-Key, some repeating one) and cancel tasks they were answered
for, as fast as they can, for a random 0.3-1.5 s; then corod gets
SIGKILL mid-load.  Every answer is recorded.  Before each restart the
file must pass PRAGMA integrity_check (python's sqlite3, read-only);
after it:

- every task answered 201 (or 200 for a repeated Idempotency-Key) is
  there, with the kind, params, name, delay and parent it was submitted
  with (children of groups too);
- every answered cancellation holds: a task answered 200 or 202 is
  canceled (a body that reached its end before an await is answered
  409, doc/API.md) and never scheduled or running again;
- an Idempotency-Key answered once names the same task ever after.

At the end corod runs until every task is final, and then for every task
in the store: no attempt without a reason (attempt <= 1 + the number of
"interrupted:" lines in its log, since every spec has max_attempts 1),
an echo logged its message at most once (exactly once if it succeeded,
never if its cancel was answered 200), a repeat with a count that
succeeded logged exactly count ticks (one interrupted and rescheduled
keeps its count; more would be a tick run twice), a succeeded group has
only succeeded children, a download that succeeded has the right bytes
(resumed across kills) and none failed; no .part file is left.

CRASH_SEED fixes the random choices (the seed used is printed).
"""

import hashlib
import http.client
import json
import os
import random
import sqlite3
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from tap import TAP, scaled  # noqa: E402
from corod import Corod  # noqa: E402
from fileserver import FileServer, sha256_hex  # noqa: E402

FINAL = ("succeeded", "failed", "canceled")
THREADS = 6

DL_SIZE = 96 * 1024
DL_RATE = 256 * 1024        # bytes/s: a download takes about 0.4 s

t = TAP("crash", total_timeout=600)
fs = FileServer(t)
ROUNDS = int(os.environ.get("CRASH_ROUNDS", "20"))
SEED = int(os.environ.get("CRASH_SEED") or random.randrange(1 << 30))
t.diag("CRASH_ROUNDS=%d CRASH_SEED=%d" % (ROUNDS, SEED))


class Ledger:
    """What corod answered, across all rounds (threads share it)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.specs = {}         # id -> the spec it was submitted with
        self.parent = {}        # id -> parent id (children)
        self.round_of = {}      # id -> round it was answered in
        self.cancels = {}       # id -> set of answered statuses (200/202)
        self.cancel_round = {}  # id -> the last round a cancel was answered
        self.cancel_409 = 0
        self.keys = {}          # Idempotency-Key -> (body, top-level ids)
        self.recent = []        # ids to pick cancel targets from
        self.bad = []           # answers that break the contract
        self.submitted = 0      # 201 answers
        self.idem_repeats = 0   # 200 answers to a repeated key

    def add(self, task, spec, rnd, parent=None):
        """Record an answered task (and its children, in order)."""
        tid = task["id"]
        self.specs[tid] = spec
        self.round_of[tid] = rnd
        if parent is not None:
            self.parent[tid] = parent
        self.recent.append(tid)
        kids = task.get("children") or []
        specs = (spec.get("params") or {}).get("tasks") or []
        if spec["kind"] in ("sequence", "gather"):
            if len(kids) != len(specs):
                self.bad.append("task %d: %d children answered, %d "
                                "submitted" % (tid, len(kids), len(specs)))
            for cid, cspec in zip(kids, specs):
                self.specs[cid] = cspec
                self.parent[cid] = tid
                self.round_of[cid] = rnd
                self.recent.append(cid)
        if len(self.recent) > 400:
            del self.recent[:200]


L = Ledger()


def gen_spec(rng, tag):
    """A spec with unique messages under tag (max_attempts 1 throughout)."""
    x = rng.random()
    delay = rng.choice([None, None, 0, 0.05, 0.2, 0.6, 1.5])
    if x < 0.02:
        # throttled, so that kills land mid-transfer (resumed after)
        name = "dl-%s.bin" % tag
        s = {"kind": "download", "params": {
            "url": fs.url(name, size=DL_SIZE, rate=DL_RATE),
            "path": "crash/" + name}}
    elif x < 0.40:
        s = {"kind": "echo", "params": {"message": "m " + tag}}
    elif x < 0.55:
        s = {"kind": "sleep", "params": {"seconds": rng.choice(
            [0.05, 0.2, 0.4])}}
    elif x < 0.70:
        s = {"kind": "repeat", "params": {"message": "tick " + tag,
                                          "interval": 0.05,
                                          "count": rng.randint(2, 6)}}
    elif x < 0.75:
        # until canceled (the end cancels the ones left)
        s = {"kind": "repeat", "params": {"message": "tick " + tag,
                                          "interval": 0.1}}
    else:
        kids = []
        for k in range(rng.randint(1, 3)):
            c = rng.random()
            if c < 0.6:
                kid = {"kind": "echo", "params": {"message": "m %s/%d" %
                                                  (tag, k)}}
            elif c < 0.8:
                kid = {"kind": "sleep", "params": {"seconds": 0.1}}
            else:
                kid = {"kind": "repeat", "params": {
                    "message": "tick %s/%d" % (tag, k), "interval": 0.05,
                    "count": 3}}
            if rng.random() < 0.4:
                kid["delay"] = rng.choice([0.05, 0.2])
            kids.append(kid)
        s = {"kind": rng.choice(["sequence", "gather"]),
             "params": {"tasks": kids}}
    if delay is not None:
        s["delay"] = delay
    if rng.random() < 0.2:
        s["name"] = "n " + tag
    return s


def client(d, rnd, k, stop, errors):
    """One client: submit and cancel until the daemon is gone or stop."""
    rng = random.Random(SEED * 1000003 + rnd * 101 + k)
    c = d.connection(timeout=10)
    n = 0
    my_keys = []
    hdr = {"Content-Type": "application/json"}
    try:
        while not stop.is_set():
            n += 1
            tag = "r%d.c%d.%d" % (rnd, k, n)
            x = rng.random()
            key = None
            if x < 0.55:
                spec = gen_spec(rng, tag)
                body = json.dumps(spec)
            elif x < 0.68:
                spec = [gen_spec(rng, "%s.%d" % (tag, i))
                        for i in range(rng.randint(2, 5))]
                body = json.dumps(spec)
            elif x < 0.75:
                if my_keys and rng.random() < 0.5:
                    key = rng.choice(my_keys)
                    body = L.keys[key][0]
                    spec = json.loads(body)
                else:
                    key = "key-" + tag
                    spec = gen_spec(rng, tag)
                    body = json.dumps(spec)
            else:
                with L.lock:
                    target = rng.choice(L.recent) if L.recent else None
                if target is None:
                    continue
                try:
                    c.request("POST", "/v1/tasks/%d/cancel" % target,
                              headers={"Content-Length": "0"})
                    r = c.getresponse()
                    r.read()
                except (OSError, http.client.HTTPException):
                    errors[k] += 1
                    return
                with L.lock:
                    if r.status in (200, 202):
                        L.cancels.setdefault(target, set()).add(r.status)
                        L.cancel_round[target] = rnd
                    elif r.status == 409:
                        L.cancel_409 += 1
                    else:
                        L.bad.append("cancel of answered task %d: %d" %
                                     (target, r.status))
                continue
            h = dict(hdr)
            if key is not None:
                h["Idempotency-Key"] = key
            try:
                c.request("POST", "/v1/tasks", body=body, headers=h)
                r = c.getresponse()
                data = r.read()
            except (OSError, http.client.HTTPException):
                errors[k] += 1
                return
            if r.status not in (200, 201):
                with L.lock:
                    L.bad.append("POST %s: %d %s" % (body[:200], r.status,
                                                     data[:300]))
                continue
            ans = json.loads(data)
            tasks = ans["tasks"] if isinstance(spec, list) else [ans]
            specs = spec if isinstance(spec, list) else [spec]
            with L.lock:
                if key is not None and key in L.keys:
                    L.idem_repeats += 1
                    if [x["id"] for x in tasks] != L.keys[key][1] or \
                            r.status != 200:
                        L.bad.append("key %s answered %d %s, first %s" % (
                            key, r.status, [x["id"] for x in tasks],
                            L.keys[key][1]))
                    continue
                if r.status != 201:
                    L.bad.append("POST without a known key: %d" % r.status)
                    continue
                L.submitted += 1
                if len(tasks) != len(specs):
                    L.bad.append("%d tasks answered for %d specs" %
                                 (len(tasks), len(specs)))
                for task, s in zip(tasks, specs):
                    L.add(task, s, rnd)
                if key is not None:
                    L.keys[key] = (body, [x["id"] for x in tasks])
                    my_keys.append(key)
    finally:
        c.close()


def integrity(path):
    """PRAGMA integrity_check, read-only (after the kill, before a restart:
    the WAL is read but nothing is written or checkpointed)."""
    con = sqlite3.connect("file:%s?mode=ro" % path, uri=True,
                          timeout=scaled(10))
    try:
        return [r[0] for r in con.execute("PRAGMA integrity_check")]
    finally:
        con.close()


def same_spec(task, spec, parent):
    """Differences between a stored task and what was submitted."""
    why = []
    for f in ("kind", "params"):
        if task.get(f) != spec.get(f):
            why.append("%s %r != %r" % (f, task.get(f), spec.get(f)))
    if task.get("name") != spec.get("name"):
        why.append("name %r != %r" % (task.get("name"), spec.get("name")))
    # a delay of 0 is shown as none (API.md: "delay appears when the spec
    # had one"; 0 is rendered like no delay)
    if (spec.get("delay") or None) != task.get("delay"):
        why.append("delay %r != %r" % (task.get("delay"), spec["delay"]))
    if task.get("parent") != parent:
        why.append("parent %r != %r" % (task.get("parent"), parent))
    if task.get("max_attempts") != 1:
        why.append("max_attempts %r" % task.get("max_attempts"))
    return why


def list_from(d, lowest):
    """The stored tasks with ids >= lowest (and a few older): the list is
    newest first, so paging stops once it reaches lowest."""
    out = {}
    cursor = None
    while True:
        q = "/v1/tasks?limit=1000" + ("&cursor=" + cursor if cursor else "")
        r = d.request("GET", q)
        if r.status != 200:
            raise AssertionError("GET %s\n%s" % (q, r.describe()))
        for x in r.body["tasks"]:
            out[x["id"]] = x
        cursor = r.body.get("next_cursor")
        if not cursor or not r.body["tasks"] or \
                r.body["tasks"][-1]["id"] < lowest:
            return out


def check_store(d, rnd):
    """After a restart: the answered tasks and cancellations hold (those
    answered in round rnd; every one if rnd is None)."""
    lost, wrong, cancel_bad = [], [], []
    with L.lock:
        items = [(i, s) for i, s in L.specs.items()
                 if rnd is None or L.round_of[i] == rnd]
        cancels = {i: s for i, s in L.cancels.items()
                   if rnd is None or L.cancel_round[i] == rnd}
    lowest = min([i for i, _ in items] + list(cancels) + [1 << 62])
    everything = d.list_all() if rnd is None else list_from(d, lowest)
    everything = {x["id"]: x for x in everything} \
        if isinstance(everything, list) else everything
    for tid, spec in items:
        x = everything.get(tid)
        if x is None:
            lost.append(tid)
            continue
        why = same_spec(x, spec, L.parent.get(tid))
        if why:
            wrong.append((tid, why))
    for tid, sts in cancels.items():
        x = everything.get(tid)
        if x is None:
            continue        # counted as lost above
        if 200 in sts and x["state"] != "canceled":
            cancel_bad.append((tid, "200", x["state"]))
        elif x["state"] != "canceled":
            # a 202 promises the task is unwound (a body that finished
            # first is answered 409), across a kill too
            cancel_bad.append((tid, "202", x["state"]))
        elif not x["cancel_requested"] and x["state"] == "canceled" and \
                L.parent.get(tid) is None:
            cancel_bad.append((tid, "no cancel_requested", x["state"]))
    ok = t.ok(not lost and not wrong and not cancel_bad,
              "round %s: all %d answered tasks are there with their specs; "
              "all %d answered cancellations hold" % (
                  rnd or "(all)", len(items), len(cancels)),
              diag="lost: %s\nwrong: %s\ncancels: %s" % (
                  lost[:20], wrong[:10], cancel_bad[:20]))
    return ok, everything


def integrity_ok(d, desc):
    """The file passes integrity_check (a point); on PostgreSQL
    (COROD_TEST_PG) there is no file: the point is skipped."""
    if d.is_pg():
        t.skip(desc, "the store is PostgreSQL")
        return True
    return t.is_(integrity(d.db), ["ok"], desc)


def stored_logs(d):
    """Every task's log lines (texts, in order), read from the stopped
    daemon's file: tens of thousands of logs in one query instead of one
    request each."""
    logs = {}
    if d.is_pg():
        rows = d.sql("SELECT task, convert_from(text, 'UTF8') FROM logs "
                     "ORDER BY task, n")
    else:
        con = sqlite3.connect("file:%s?mode=ro" % d.db, uri=True,
                              timeout=scaled(10))
        try:
            rows = con.execute("SELECT task, text FROM logs "
                               "ORDER BY task, n").fetchall()
        finally:
            con.close()
    for task, text in rows:
        logs.setdefault(task, []).append(text)
    return logs


@t.test(timeout=500)
def kill9_under_load():
    stats = {"kills_midway": 0, "interrupted": 0}
    with Corod(t, name="crash") as d:
        rng = random.Random(SEED)
        all_ok = True
        for rnd in range(1, ROUNDS + 1):
            stop = threading.Event()
            errors = [0] * THREADS
            before = L.submitted
            threads = [threading.Thread(target=client,
                                        args=(d, rnd, k, stop, errors),
                                        daemon=True)
                       for k in range(THREADS)]
            for th in threads:
                th.start()
            time.sleep(rng.uniform(0.3, 1.5))
            d.kill9()
            stop.set()
            for th in threads:
                th.join(scaled(15))
            if any(th.is_alive() for th in threads):
                t.fail("round %d: a client thread hangs" % rnd)
                return
            if sum(errors):
                stats["kills_midway"] += 1
            if not integrity_ok(d, "round %d: integrity_check after "
                                "kill -9 (%d submissions answered this "
                                "round)" % (rnd, L.submitted - before)):
                return
            d.start()
            ok, _ = check_store(d, rnd)
            all_ok = all_ok and ok
            if not ok:
                break
            with L.lock:
                if L.bad:
                    t.fail("round %d: answers that break the contract" %
                           rnd, diag="\n".join(L.bad[:20]))
                    return
        t.ok(stats["kills_midway"] >= ROUNDS // 2,
             "the kill cut clients off mid-request in %d of %d rounds" %
             (stats["kills_midway"], ROUNDS))
        t.ok(L.submitted > 0 and len(L.cancels) > 0,
             "answered: %d submissions (%d tasks), %d repeated keys, "
             "%d cancellations (%d answered 409)" % (
                 L.submitted, len(L.specs), L.idem_repeats,
                 len(L.cancels), L.cancel_409))
        if not all_ok:
            return

        # The keys still name their tasks.
        keys = list(L.keys.items())
        rng.shuffle(keys)
        wrong = []
        for key, (body, ids) in keys[:200]:
            r = d.request("POST", "/v1/tasks", body=body, headers={
                "Content-Type": "application/json", "Idempotency-Key": key})
            got = None
            if r.status == 200:
                b = r.body
                got = [x["id"] for x in b["tasks"]] if "tasks" in b \
                    else [b["id"]]
            if r.status != 200 or got != ids:
                wrong.append((key, r.status, got, ids))
        t.is_(wrong, [], "%d Idempotency-Keys, sent again after the last "
              "restart: 200 with the first tasks" % min(200, len(keys)))

        # Let every task end: cancel the endless ones, wait.
        def unfinished():
            return [x for x in d.list_all("state=scheduled,running")]
        for x in unfinished():
            if x["kind"] == "repeat" and "count" not in x["params"] and \
                    x["parent"] is None:
                r = d.cancel(x["id"])
                if r.status in (200, 202):
                    L.cancels.setdefault(x["id"], set()).add(r.status)
                    L.cancel_round[x["id"]] = None
        d.wait_for(lambda: not unfinished(), 30, interval=0.2,
                   desc="every task final")
        _, everything = check_store(d, None)

        t.is_(d.stop(), 0, "SIGTERM: exit status 0")
        integrity_ok(d, "integrity_check at the end")
        logs = stored_logs(d)
        problems = []
        echoes = repeats = downloads = 0
        for tid, x in sorted(everything.items()):
            lines = logs.get(tid, [])
            intr = sum(1 for ln in lines if ln.startswith("interrupted:"))
            if intr:
                stats["interrupted"] += 1
            if x["attempt"] > 1 + intr:
                problems.append((tid, "attempt %d with %d interrupted "
                                 "lines" % (x["attempt"], intr)))
            if x["kind"] == "echo":
                n = lines.count(x["params"]["message"])
                want = 1 if x["state"] == "succeeded" else 0
                if n != want:
                    problems.append((tid, "echo %s logged %d times" %
                                     (x["state"], n)))
                echoes += 1
            elif x["kind"] == "repeat" and "count" in x["params"]:
                n = lines.count(x["params"]["message"])
                cnt = x["params"]["count"]
                if (x["state"] == "succeeded" and n != cnt) or n > cnt:
                    problems.append((tid, "repeat of %d %s with %d ticks" %
                                     (cnt, x["state"], n)))
                repeats += 1
            elif x["kind"] == "download":
                name = x["params"]["path"][len("crash/"):]
                on_disk = os.path.join(d.download_dir, x["params"]["path"])
                if x["state"] == "succeeded":
                    want = sha256_hex(name, DL_SIZE)
                    got = (x["result"] or {}).get("sha256")
                    have = None
                    if os.path.isfile(on_disk):
                        with open(on_disk, "rb") as f:
                            have = hashlib.sha256(f.read()).hexdigest()
                    if got != want or have != want:
                        problems.append((tid, "download sha256 %s, file %s"
                                         % (got, have)))
                elif x["state"] == "failed":
                    problems.append((tid, "download failed: %s" %
                                     x["error"]))
                downloads += 1
            elif x["kind"] in ("sequence", "gather") and \
                    x["state"] == "succeeded":
                states = [everything[c]["state"] for c in x["children"]
                          if c in everything]
                if states != ["succeeded"] * len(x["children"]):
                    problems.append((tid, "succeeded with children %s" %
                                     states))
        t.is_(problems[:30], [], "no task ran twice without being "
              "interrupted (%d tasks, %d echoes, %d counted repeats, %d "
              "downloads (succeeded ones with the right bytes), %d "
              "interrupted and rescheduled)" % (
                  len(everything), echoes, repeats, downloads,
                  stats["interrupted"]))
        parts = []
        for root, _, files in os.walk(d.download_dir):
            parts.extend(f for f in files if f.endswith(".part"))
        t.is_(parts, [], "no .part file is left once every task is final")


t.done()
