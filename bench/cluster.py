#!/usr/bin/env python3
"""bench/cluster.py -- corod on PostgreSQL (issue 17): one node and three
nodes on one database, beside one sqlite node, in the same run.

A private PostgreSQL (tests/lib/pg.py: Debian's PostgreSQL 15, initdb and
pg_ctl in a temporary directory, 127.0.0.1 on a free port, fsync on, as
the postgres user when run as root) is started once; every pass gets a
database of its own (CREATE DATABASE, dropped after the pass) and fresh
nodes `corod --listen 127.0.0.1:0 --db postgresql://...` with the default
lease (CLUSTER_LEASE to change).  The sqlite passes start one daemon with
a fresh file, as the other benchmarks do.  Everything runs on this
machine's cores: PostgreSQL, the nodes and the load generators share them.

Sections (CLUSTER_SECTIONS, default "single batch lateness workers
limits failover"), each on sqlite, one PostgreSQL node and three:

  single    durable single submissions/s: wrk -t2 -c32 -s bench/submit.lua
            (one echo due in an hour per POST /v1/tasks) for DURATION s
            against one node; over three nodes, three wrk at once, one per
            node, each -t1 -c32 (CLUSTER_WRK_CONNECTIONS), their rates
            summed: every node gets the connections one node gets alone.
  batch     the same with a JSON array of BATCH (100) specs per request:
            tasks/s = requests/s x BATCH.
  lateness  LATENESS_TASKS (10,000) echo tasks with one run_at (now +
            LATENESS_LEAD, 5 s), submitted in arrays of 500 in turn to each
            node; lateness = started_at - run_at of every task, p50/p99/max
            (as bench/lateness.py).  Goal over three nodes: p99 <= 10 ms.
  workers   CLUSTER_WORKERS_N (30,000) external tasks put beforehand, then
            CLUSTER_WORKERS_CONC (33) workers in three client processes
            (bench/workers.py's client: one selector per process, raw
            HTTP/1.1) claim(max 1) -> complete until their queue is empty.
            Over three nodes each process talks to one node and each node
            was given a third of the tasks (a worker may claim any node's
            tasks through any node: one whose node has none left takes
            the others').
  limits    a queue with concurrency LIMITS_CONC (8): LIMITS_N (2,000)
            sleep tasks of LIMITS_SLEEP (0.02 s) due at once, submitted in
            turn to each node; tasks/s from the first start to the last
            end, beside the ideal (concurrency / sleep), the most that ran
            at once (from the store's started_at/finished_at: never above
            the limit), and over several nodes how often the store said
            no (/metrics' corod_queue_grants*): a slot freed on one node
            is taken on another when that one asks again (every 100 ms).
  failover  three nodes at the default lease (30 s); FAILOVER_KILLS (4)
            times: FAILOVER_TASKS (25) sleep tasks submitted to one node
            and running there, kill -9 of it, then the time from the kill
            to each task's attempt 2 starting on another node (its
            started_at, checked against its "interrupted" log line); a
            fresh node replaces the killed one after the take-over.
            p50/p99/max over all the tasks; bounded to FAILOVER_BUDGET
            (230 s) for the section.  A kill comes at a random point of
            the node's renewal period (0.5 s + up to a third of a lease
            after the tasks run); its leases' end is read from the table
            just before it, and the time from that end to the take-over is
            printed too (pg_failover_after_lease_*: the others look every
            second).

During every rate pass the CPU of corod (per thread), postgres (per
process), wrk and the rest is read from /proc over the middle of the run,
and PostgreSQL's committed transactions and WAL syncs from pg_stat_database
and pg_stat_wal over the whole run; they are printed as comments.  Every
daemon, client and the PostgreSQL server are stopped and their
directories removed at the end, also on failure or Ctrl-C.

Prints `name value unit` result lines and `# ` comments, and a closing
table beside the figures the peers publish for their own hardware.
Without PostgreSQL it prints one "# cluster: PostgreSQL not available"
line and exits 0.  Quick check: DURATION=3 LATENESS_TASKS=2000
CLUSTER_WORKERS_N=3000 CLUSTER_LEASE=3 FAILOVER_KILLS=1 bench/cluster.py
"""

import atexit
import json
import os
import random
import select
import shutil
import subprocess
import sys
import tempfile
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH_DIR)
sys.path.insert(0, os.path.join(os.path.dirname(BENCH_DIR), "tests", "lib"))
import lib  # noqa: E402
from lib import (Daemon, BenchTimeout, comment, die, format_rfc3339_us,  # noqa: E402
                 now_us, parse_rfc3339_us, percentile, result)
import pg as pglib  # noqa: E402  (tests/lib/pg.py)

DURATION = int(os.environ.get("DURATION", "10").rstrip("s"))
SECTIONS = os.environ.get("CLUSTER_SECTIONS",
                          "single batch lateness workers limits failover") \
    .replace(",", " ").split()
NODES = 3
WRK_THREADS = int(os.environ.get("WRK_THREADS", "2"))
WRK_CONNECTIONS = int(os.environ.get("WRK_CONNECTIONS", "32"))
WRK_NODE_CONNECTIONS = int(os.environ.get("CLUSTER_WRK_CONNECTIONS",
                                          str(WRK_CONNECTIONS)))
WRK_TIMEOUT = os.environ.get("WRK_TIMEOUT", "10s")
BATCH = int(os.environ.get("BATCH", "100"))
LAT_N = int(os.environ.get("LATENESS_TASKS", "10000"))
LAT_BATCH = int(os.environ.get("LATENESS_BATCH", "500"))
LAT_LEAD = float(os.environ.get("LATENESS_LEAD", "5"))
LAT_WAIT = float(os.environ.get("LATENESS_WAIT", "120"))
WK_N = int(os.environ.get("CLUSTER_WORKERS_N", "30000"))
WK_CONC = int(os.environ.get("CLUSTER_WORKERS_CONC", "33"))
WK_PROCS = 3
WK_DEADLINE = float(os.environ.get("WORKERS_DEADLINE", "300"))
LIM_N = int(os.environ.get("LIMITS_N", "2000"))
LIM_CONC = int(os.environ.get("LIMITS_CONC", "8"))
LIM_SLEEP = float(os.environ.get("LIMITS_SLEEP", "0.02"))
LIM_WAIT = float(os.environ.get("LIMITS_WAIT", "300"))
FO_KILLS = int(os.environ.get("FAILOVER_KILLS", "4"))
FO_TASKS = int(os.environ.get("FAILOVER_TASKS", "25"))
FO_BUDGET = float(os.environ.get("FAILOVER_BUDGET", "230"))
LEASE = os.environ.get("CLUSTER_LEASE")          # None: corod's default
LEASE_S = float(LEASE) if LEASE else 30.0
GOAL_LATENESS_P99 = 10.0
CLK = os.sysconf("SC_CLK_TCK")

FIG = {}            # result name -> value, for the closing table
_pg = None
_procs = []         # wrk and worker children still running


def _cleanup():
    for p in list(_procs):
        if p.poll() is None:
            p.kill()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass
    lib._cleanup_all()          # the nodes first: they talk to PostgreSQL
    if _pg is not None:
        _pg.close()


atexit.register(_cleanup)       # after lib's: runs before it


def emit(name, value, unit):
    FIG[name] = value
    result(name, value, unit)


# --- PostgreSQL and nodes ---------------------------------------------------
_dbn = [0]


def new_db(tag):
    _dbn[0] += 1
    name = "b%d_%s" % (_dbn[0], tag)
    _pg.psql("CREATE DATABASE %s" % name, db="postgres")
    return name, "postgresql://postgres@127.0.0.1:%d/%s" % (_pg.port, name)


def drop_db(name):
    _pg.psql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % name, db="postgres",
             check=False)


def node_args():
    return ["--lease", LEASE] if LEASE else []


def start_nodes(uri, n):
    return [Daemon(extra_args=node_args(), db=uri).start() for _ in range(n)]


def stop_all(ds):
    for d in ds:
        d.stop()


def node_id(d):
    return d.client().json("GET", "/v1/nodes")["self"]


def pg_counters(db):
    """(transactions committed in db, WAL syncs, WAL bytes) so far."""
    out = _pg.psql("SELECT (SELECT xact_commit FROM pg_stat_database WHERE "
                   "datname = '%s'), wal_sync, wal_bytes FROM pg_stat_wal"
                   % db, db="postgres").strip().split("|")
    return [float(x or 0) for x in out]


# --- /proc readings ---------------------------------------------------------
def _stat(path, with_ppid=False):
    with open(path) as f:
        s = f.read()
    comm = s[s.index("(") + 1:s.rindex(")")]
    f = s[s.rindex(")") + 2:].split()
    if with_ppid:
        return (comm, int(f[11]) + int(f[12])), int(f[1])
    return comm, int(f[11]) + int(f[12])


def snapshot(node_pids):
    """CPU ticks of every process, of the nodes' threads, and /proc/stat."""
    procs, ppid = {}, {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                procs[int(d)], ppid[int(d)] = _stat("/proc/%s/stat" % d, True)
            except (OSError, ValueError):
                pass
    threads = {}
    for pid in node_pids:
        try:
            for t in os.listdir("/proc/%d/task" % pid):
                threads[(pid, int(t))] = _stat("/proc/%d/task/%s/stat" % (pid, t))
        except (OSError, ValueError):
            pass
    with open("/proc/stat") as f:
        machine = [int(x) for x in f.readline().split()[1:]]
    return {"procs": procs, "ppid": ppid, "threads": threads, "machine": machine,
            "t": time.monotonic()}


def _title(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").strip().decode("utf-8", "replace")[:60]
    except OSError:
        return "?"


def cpu_report(tag, s0, s1, node_pids):
    wall = s1["t"] - s0["t"]
    if wall <= 0:
        return

    def cores(ticks):
        return ticks / CLK / wall

    groups = {"corod": 0, "postgres": 0, "wrk": 0, "python3": 0, "other": 0}
    pgs = []
    mine = _pg.pid() if _pg is not None else None
    for pid, (comm, t1) in s1["procs"].items():
        c0 = s0["procs"].get(pid)      # a kworker's comm changes: by pid
        d = t1 - (c0[1] if c0 else 0)
        if pid in node_pids:
            groups["corod"] += d
        elif comm == "postgres" and (pid == mine or s1["ppid"].get(pid) == mine):
            groups["postgres"] += d
            pgs.append((d, pid))
        elif comm == "wrk":
            groups["wrk"] += d
        elif comm.startswith("python"):
            groups["python3"] += d
        else:
            groups["other"] += d
    # the nodes' threads are not named: the loop is the main thread, the
    # busiest other one is the writer when submissions are measured
    th = {"loop": 0, "busiest other thread": 0, "the rest": 0}
    per = {}
    for (pid, tid), (comm, t1) in s1["threads"].items():
        c0 = s0["threads"].get((pid, tid))
        d = t1 - (c0[1] if c0 else 0)
        if tid == pid:
            th["loop"] += d
        else:
            per.setdefault(pid, []).append(d)
    for v in per.values():
        v.sort(reverse=True)
        th["busiest other thread"] += v[0]
        th["the rest"] += sum(v[1:])
    m = [b - a for a, b in zip(s0["machine"], s1["machine"])]
    # user nice system idle iowait irq softirq steal
    idle, iowait, steal = m[3], m[4], m[7]
    busy = sum(m[:7]) - idle - iowait
    pgs.sort(reverse=True)
    comment("%s cpu over %.1f s (cores; %d cores in all): corod %.2f (threads: %s), "
            "this PostgreSQL %.2f, wrk %.2f, python (any) %.2f, other processes %.2f; machine busy "
            "%.2f (of it softirq %.2f, and %.2f in processes that came and went: "
            "other builds, psql), idle %.2f, iowait %.2f, steal %.2f" % (
                tag, wall, os.cpu_count(), cores(groups["corod"]),
                ", ".join("%s %.2f" % (k, cores(v)) for k, v in th.items()),
                cores(groups["postgres"]), cores(groups["wrk"]),
                cores(groups["python3"]), cores(groups["other"]),
                cores(busy), cores(m[6]),
                max(0.0, cores(busy - m[5] - m[6] - sum(groups.values()))),
                cores(idle), cores(iowait), cores(steal)))
    if pgs:
        comment("%s busiest postgres processes: %s" % (tag, "; ".join(
            "%.2f %s" % (cores(d), _title(pid)) for d, pid in pgs[:4] if d > 0)))


# --- what the database's backends do ------------------------------------------
SAMPLE_EVERY = 0.05


def start_sampler(db, seconds, path):
    """One psql reading pg_stat_activity of db's client backends every
    SAMPLE_EVERY s for `seconds`, after a second's warm-up, into path."""
    n = int(seconds / SAMPLE_EVERY)
    q = ("SELECT 's', pid, state, coalesce(wait_event_type, '-'), "
         "coalesce(wait_event, '-'), left(query, 12) FROM pg_stat_activity "
         "WHERE datname = '%s' AND backend_type = 'client backend' AND "
         "pid <> pg_backend_pid(); SELECT pg_sleep(%g);\n" % (db, SAMPLE_EVERY))
    script = "SELECT pg_sleep(1);\n" + q * n
    f = open(path, "wb")
    p = subprocess.Popen([_pg.psql_path, "-X", "-q", "-A", "-t", "-h", "127.0.0.1",
                          "-p", str(_pg.port), "-U", "postgres", "-d", db],
                         stdin=subprocess.PIPE, stdout=f, stderr=subprocess.DEVNULL)
    f.close()
    _procs.append(p)
    p.stdin.write(script.encode())
    p.stdin.close()
    return p, path, n


def activity_report(tag, sampler):
    """The writers' backends (those whose last statement is an INSERT or
    UPDATE: each node's batch connection) as sampled: how often running a
    statement (and on what waiting), how often idle waiting for the node."""
    p, path, n = sampler
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    _procs.remove(p)
    rows = []
    with open(path, errors="replace") as f:
        for line in f:
            w = line.rstrip("\n").split("|")
            if len(w) >= 6 and w[0] == "s":
                rows.append(w[1:])
    writers = {r[0] for r in rows if r[4].startswith(("INSERT", "UPDATE", "WITH"))}
    if not rows or not writers:
        return
    counts = {}
    total = 0
    for pid, state, wtype, wevent, query in rows:
        if pid not in writers:
            continue
        total += 1
        key = "idle (waiting for the node)" if state.startswith("idle") else \
            "active" + ("" if wtype == "-" else " waiting %s/%s" % (wtype, wevent))
        counts[key] = counts.get(key, 0) + 1
    comment("%s: the %d writer backend(s), sampled %d times each (pg_stat_activity every "
            "%g s): %s" % (tag, len(writers), total // len(writers), SAMPLE_EVERY, ", ".join(
                "%s %.0f%%" % (k, 100.0 * v / total)
                for k, v in sorted(counts.items(), key=lambda x: -x[1]))))


# --- wrk ----------------------------------------------------------------------
def wrk_to_ms(v):
    for unit, mult in (("us", 0.001), ("ms", 1.0), ("s", 1000.0), ("m", 60000.0),
                       ("h", 3600000.0)):
        if v.endswith(unit):
            return float(v[:-len(unit)]) * mult
    return float(v)


def parse_wrk(text):
    r = {"rate": None, "p50": None, "p99": None, "errors": 0, "sockerr": None,
         "requests": None}
    for line in text.splitlines():
        w = line.split()
        if line.startswith("Requests/sec:"):
            r["rate"] = float(w[1])
        elif w[:1] == ["50%"]:
            r["p50"] = wrk_to_ms(w[1])
        elif w[:1] == ["99%"]:
            r["p99"] = wrk_to_ms(w[1])
        elif w[:1] == ["lua_non2xx"]:
            r["errors"] = int(w[1])
        elif line.strip().startswith("Socket errors:"):
            r["sockerr"] = line.strip()
        elif "requests in" in line:
            r["requests"] = line.strip()
    return r


def run_wrks(ds, batch, tag, db=None):
    """One wrk per daemon at once for DURATION s; CPU over the middle of the
    run.  -> list of parsed outputs."""
    threads = WRK_THREADS if len(ds) == 1 else 1
    conns = WRK_CONNECTIONS if len(ds) == 1 else WRK_NODE_CONNECTIONS
    comment("%s: %d x wrk -t%d -c%d -d%ds --timeout %s --latency -s bench/submit.lua "
            "-- %d (one per node, at once)" % (tag, len(ds), threads, conns, DURATION,
                                             WRK_TIMEOUT, batch))
    pids = {d.pid for d in ds}
    before = pg_counters(db) if db else None
    outs, procs = [], []
    tmp = tempfile.mkdtemp(prefix="corod-bench-wrk.")
    sampler = None
    try:
        if db and DURATION >= 3:
            sampler = start_sampler(db, DURATION - 2, os.path.join(tmp, "activity"))
        for i, d in enumerate(ds):
            path = os.path.join(tmp, "wrk%d.out" % i)
            f = open(path, "wb")
            p = subprocess.Popen(
                ["wrk",
                 "-t%d" % threads, "-c%d" % conns, "-d%ds" % DURATION,
                 "--timeout", WRK_TIMEOUT, "--latency",
                 "-s", os.path.join(BENCH_DIR, "submit.lua"),
                 "http://127.0.0.1:%d/v1/tasks" % d.port, "--", str(batch)],
                stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT)
            f.close()
            _procs.append(p)
            procs.append((p, path))
        t0 = time.monotonic()
        s0 = s1 = None
        if DURATION >= 3:
            time.sleep(1)
            s0 = snapshot(pids)
            time.sleep(max(0.5, DURATION - 2))
            s1 = snapshot(pids)
        for p, path in procs:
            try:
                p.wait(max(1, DURATION + 70 - (time.monotonic() - t0)))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            _procs.remove(p)
            with open(path, errors="replace") as f:
                text = f.read()
            r = parse_wrk(text)
            if p.returncode != 0 or r["rate"] is None:
                comment("%s: wrk exited with status %s; its output:" % (tag, p.returncode))
                comment("  " + text.replace("\n", "\n  "))
            outs.append(r)
        if sampler is not None:
            activity_report(tag, sampler)
            sampler = None
    finally:
        if sampler is not None and sampler[0].poll() is None:
            sampler[0].kill()
            sampler[0].wait()
        for p, _ in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    for i, r in enumerate(outs):
        comment("%s: node %d: wrk: %s; %s req/s, p50 %s ms, p99 %s ms, %d non-2xx%s"
                % (tag, i + 1, r["requests"], r["rate"], r["p50"], r["p99"], r["errors"],
                   ", " + r["sockerr"] if r["sockerr"] else ""))
    if s0 and s1:
        cpu_report(tag, s0, s1, pids)
    if db:
        time.sleep(1.2)         # backends report their counts within a second
        after = pg_counters(db)
        reqs = sum(r["rate"] or 0 for r in outs) * DURATION
        xacts = after[0] - before[0]
        syncs = after[1] - before[1]
        comment("%s: postgres: %.0f transactions committed in the database "
                "(%.0f/s, reads included), %.0f WAL syncs (%.0f/s), %.1f MiB of WAL; "
                "about %.1f tasks per transaction" % (
                    tag, xacts, xacts / DURATION, syncs, syncs / DURATION,
                    (after[2] - before[2]) / 1048576.0,
                    reqs * max(batch, 1) / xacts if xacts else 0))
    return outs


def sec_rate(kind):
    batch = BATCH if kind == "batch" else 0
    mult = max(batch, 1)
    comment("---- %s: %s, body %s {\"kind\":\"echo\",\"params\":{\"message\":\"bench\"},"
            "\"delay\":3600}, POST /v1/tasks, default durability (a 201 after the "
            "commit is on disk: sqlite synchronous=FULL, PostgreSQL fsync on)" % (
                kind, "durable single submissions" if not batch else
                "batched submissions, %d tasks a request" % batch,
                "one" if not batch else "a JSON array of %d x" % batch))
    base = "submit_single" if not batch else "submit_batch"

    def emit_all(prefix, suffix, outs):
        rate = sum(r["rate"] or 0 for r in outs)
        if batch:
            emit("%s%s_tasks_rate%s" % (prefix, base, suffix), rate * mult, "tasks/s")
            emit("%s%s_rate%s" % (prefix, base, suffix), rate, "req/s")
        else:
            emit("%s%s_rate%s" % (prefix, base, suffix), rate, "req/s")
        if all(r["p50"] is not None for r in outs):
            emit("%s%s_latency_p50%s" % (prefix, base, suffix),
                 max(r["p50"] for r in outs), "ms")
            emit("%s%s_latency_p99%s" % (prefix, base, suffix),
                 max(r["p99"] for r in outs), "ms")
        emit("%s%s_errors%s" % (prefix, base, suffix), sum(r["errors"] for r in outs),
             "count")

    with Daemon() as d:
        tag = "sqlite_%s" % base
        comment("%s: corod pid %d, sqlite file" % (tag, d.pid))
        emit_all("sqlite_", "", run_wrks([d], batch, tag))
    for n in (1, NODES):
        name, uri = new_db("%s%d" % (kind, n))
        ds = start_nodes(uri, n)
        suffix = "_1node" if n == 1 else "_%dnodes" % n
        tag = "pg_%s%s" % (base, suffix)
        comment("%s: %d node(s) (pids %s) on %s" % (tag, n, " ".join(str(d.pid) for d in ds), uri))
        try:
            emit_all("pg_", suffix, run_wrks(ds, batch, tag, db=name))
        finally:
            stop_all(ds)
            drop_db(name)
    if len(SECTIONS) > 1 and kind == "single" and NODES > 1:
        comment("%s: three nodes on %d cores: the nodes, their wrk and PostgreSQL share "
                "them, so three nodes cannot add cores, only concurrency at the database"
                % (kind, os.cpu_count()))


# --- lateness -----------------------------------------------------------------
def lateness(ds, tag, suffix):
    clients = [d.client() for d in ds]
    run_at_us = now_us() + int(LAT_LEAD * 1e6)
    run_at = format_rfc3339_us(run_at_us)
    spec = {"kind": "echo", "params": {"message": "due"}, "run_at": run_at}
    ids = set()
    via = {}            # id -> the node it was submitted to (which holds it)
    t0 = time.monotonic()
    left, i = LAT_N, 0
    while left > 0:
        n = min(LAT_BATCH, left)
        got = clients[i % len(clients)].json("POST", "/v1/tasks", [spec] * n,
                                             expect=(201,)).get("tasks", [])
        if len(got) != n:
            die("%s: a batch of %d answered with %d tasks" % (tag, n, len(got)))
        ids.update(t["id"] for t in got)
        for t in got:
            via[t["id"]] = i % len(clients)
        left -= n
        i += 1
    comment("%s: %d tasks submitted in %.3f s in arrays of %d to %d node(s) in turn, "
            "run_at %s" % (tag, LAT_N, time.monotonic() - t0, LAT_BATCH, len(ds), run_at))
    if now_us() > run_at_us:
        comment("WARNING: %s: submission ended after run_at: lateness includes it" % tag)
    pids = {d.pid for d in ds}
    s0 = snapshot(pids)
    wait_s = (run_at_us - now_us()) / 1e6 + 0.5
    if wait_s > 0:
        time.sleep(wait_s)
    c = clients[0]
    deadline = time.monotonic() + LAT_WAIT
    while True:
        pending = c.json("GET", "/v1/tasks?state=scheduled,running&limit=1").get("tasks", [])
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    s1 = snapshot(pids)
    done = {}
    while True:
        try:
            tasks = c.list_all("state=succeeded", deadline=deadline + 30)
        except BenchTimeout:
            tasks = []
        done = {t["id"]: t for t in tasks if t["id"] in ids}
        if len(done) >= LAT_N or time.monotonic() > deadline:
            break
        time.sleep(1)
    for x in clients:
        x.close()
    cpu_report(tag + " (from the submission's end to all done)", s0, s1, pids)
    lat = [(parse_rfc3339_us(t["started_at"]) - parse_rfc3339_us(t["run_at"])) / 1000.0
           for t in done.values() if t.get("started_at") and t.get("run_at")]
    if not lat:
        comment("WARNING: %s: no task succeeded" % tag)
        return
    early = sum(1 for x in lat if x < 0)
    if early:
        comment("WARNING: %s: %d tasks started before their run_at (earliest by %.3f ms)"
                % (tag, early, -min(lat)))
    comment("%s: %d tasks measured, min %.3f ms, p90 %.3f ms, %d over %g ms"
            % (tag, len(lat), min(lat), percentile(lat, 90),
               sum(1 for x in lat if x > GOAL_LATENESS_P99), GOAL_LATENESS_P99))
    if len(ds) > 1:
        # a task due within the window is held by the node it was
        # submitted to, which fires it
        for k in range(len(ds)):
            mine = [(parse_rfc3339_us(t["started_at"]) - parse_rfc3339_us(t["run_at"]))
                    / 1000.0 for t in done.values() if via.get(t["id"]) == k
                    and t.get("started_at")]
            if mine:
                comment("%s: submitted to node %d: %d tasks, p50 %.3f ms, p99 %.3f ms, "
                        "max %.3f ms" % (tag, k + 1, len(mine), percentile(mine, 50),
                                        percentile(mine, 99), max(mine)))
    p = tag.split("_")[0]
    emit("%s_lateness_p50%s" % (p, suffix), percentile(lat, 50), "ms")
    emit("%s_lateness_p99%s" % (p, suffix), percentile(lat, 99), "ms")
    emit("%s_lateness_max%s" % (p, suffix), max(lat), "ms")
    if len(done) < LAT_N:
        emit("%s_lateness_unfinished%s" % (p, suffix), LAT_N - len(done), "count")


def sec_lateness():
    comment("---- lateness: %d echo tasks due at one run_at (now + %g s), "
            "lateness = started_at - run_at; goal over three nodes p99 <= %g ms"
            % (LAT_N, LAT_LEAD, GOAL_LATENESS_P99))
    with Daemon() as d:
        lateness([d], "sqlite_lateness", "")
    for n in (1, NODES):
        name, uri = new_db("late%d" % n)
        ds = start_nodes(uri, n)
        suffix = "_1node" if n == 1 else "_%dnodes" % n
        try:
            lateness(ds, "pg_lateness" + suffix, suffix)
        finally:
            stop_all(ds)
            drop_db(name)


# --- external workers -----------------------------------------------------------
EXTERNAL = {"kind": "external", "queue": "wbench", "params": {}}


def fill_external(d, n):
    c = d.client()
    left = n
    while left > 0:
        k = min(100, left)
        c.json("POST", "/v1/tasks", [EXTERNAL] * k, expect=(201,))
        left -= k
    c.close()


def read_line(p, t_end, what):
    while True:
        left = t_end - time.monotonic()
        if left <= 0:
            raise RuntimeError("%s: no answer from a client process in time" % what)
        r, _, _ = select.select([p.stdout], [], [], left)
        if r:
            line = p.stdout.readline()
            if not line:
                raise RuntimeError("%s: a client process died" % what)
            return line.decode()


def workers(ds, tag, suffix):
    shares = [WK_N // len(ds) + (1 if i < WK_N % len(ds) else 0) for i in range(len(ds))]
    t0 = time.monotonic()
    for d, k in zip(ds, shares):
        fill_external(d, k)
    fill = time.monotonic() - t0
    comment("%s: fill: %d external tasks (queue wbench) in %.2f s = %.0f tasks/s, "
            "arrays of 100, %s" % (tag, WK_N, fill, WK_N / fill,
                                   "a share to each node" if len(ds) > 1 else "one node"))
    env = dict(os.environ, WORKERS_DEADLINE=str(WK_DEADLINE))
    kids = []
    pids = {d.pid for d in ds}
    try:
        for i in range(WK_PROCS):
            d = ds[i % len(ds)]
            k = WK_CONC // WK_PROCS + (1 if i < WK_CONC % WK_PROCS else 0)
            cfg = {"peer": "corod", "port": d.port, "workers": k, "max": 1,
                   "together": False}
            p = subprocess.Popen([sys.executable, os.path.join(BENCH_DIR, "workers.py"),
                                  "--worker-child", json.dumps(cfg)], env=env,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            _procs.append(p)
            kids.append(p)
        t_end = time.monotonic() + 60
        for p in kids:
            if read_line(p, t_end, tag).strip() != "ready":
                raise RuntimeError("%s: a client process was not ready" % tag)
        s0 = snapshot(pids)
        t0 = time.monotonic()
        for p in kids:
            p.stdin.write(b"go\n")
            p.stdin.flush()
        outs = [json.loads(read_line(p, t0 + WK_DEADLINE + 10, tag)) for p in kids]
        s1 = snapshot(pids)
    finally:
        for p in kids:
            if p.poll() is None:
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            if p in _procs:
                _procs.remove(p)
    done = sum(o["done"] for o in outs)
    dt = max(o["last"] for o in outs) - t0
    comment("%s: %d workers in %d processes (%s): %d done, %d errors, %d claims, "
            "last done at %.3f s" % (
                tag, WK_CONC, WK_PROCS, "one process per node" if len(ds) > 1
                else "all on the one node", done, sum(o["errors"] for o in outs),
                sum(o["rounds"] for o in outs), dt))
    for i, o in enumerate(outs):
        if len(ds) > 1:
            comment("%s: process %d (node %d): %d done, last at %.3f s" % (
                tag, i + 1, i % len(ds) + 1, o["done"], o["last"] - t0))
        if o["error"]:
            comment("WARNING: %s: first error: %s" % (tag, o["error"]))
    cpu_report(tag, s0, s1, pids)
    left = ds[0].client().json("GET", "/v1/tasks?state=scheduled&limit=5").get("tasks", [])
    if done != WK_N or left:
        comment("WARNING: %s: %d of %d done, %s still scheduled" % (
            tag, done, WK_N, "some" if left else "none"))
    emit("%s_workers_rate%s" % (tag.split("_")[0], suffix), done / dt if dt > 0 else 0,
         "tasks/s")


def sec_workers():
    comment("---- workers: %d external tasks put beforehand, %d workers claim(max 1, "
            "wait 0) -> complete until their queue is empty (bench/workers.py's client)"
            % (WK_N, WK_CONC))
    comment("workers: over three nodes each node is given a third of the tasks and "
            "one client process of %d workers (a worker may claim any node's tasks "
            "through its node)" % (WK_CONC // WK_PROCS))
    with Daemon() as d:
        workers([d], "sqlite_workers", "")
    for n in (1, NODES):
        name, uri = new_db("work%d" % n)
        ds = start_nodes(uri, n)
        suffix = "_1node" if n == 1 else "_%dnodes" % n
        try:
            workers(ds, "pg_workers" + suffix, suffix)
        finally:
            stop_all(ds)
            drop_db(name)


# --- a queue with a concurrency limit -------------------------------------------
def metric_of(c, name):
    st, _, raw = c.request("GET", "/metrics")
    for line in raw.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def limits(ds, tag, suffix):
    cs = [d.client() for d in ds]
    cs[0].json("PATCH", "/v1/queues/lim", {"concurrency": LIM_CONC})
    time.sleep(1.5 if len(ds) > 1 else 0)     # heard by every node
    run_at = format_rfc3339_us(now_us() + 2000000)
    spec = {"kind": "sleep", "queue": "lim", "run_at": run_at,
            "params": {"seconds": LIM_SLEEP}}
    ids, left, i = [], LIM_N, 0
    while left > 0:
        k = min(100, left)
        got = cs[i % len(cs)].json("POST", "/v1/tasks", [spec] * k,
                                   expect=(201,))
        ids += [x["id"] for x in got["tasks"]]
        left -= k
        i += 1
    deadline = time.monotonic() + LIM_WAIT
    while time.monotonic() < deadline:
        b = cs[0].json("GET", "/v1/tasks?state=scheduled,running&limit=1")
        if not b["tasks"]:
            break
        time.sleep(0.25)
    rows = [(parse_rfc3339_us(t["started_at"]), parse_rfc3339_us(t["finished_at"]))
            for t in cs[0].list_all("kind=sleep", deadline=deadline)
            if t["state"] == "succeeded"]
    if len(rows) != LIM_N:
        comment("WARNING: %s: %d of %d succeeded in %g s" % (tag, len(rows), LIM_N,
                                                             LIM_WAIT))
    if not rows:
        return
    ev = sorted([(a, 1) for a, _ in rows] + [(b, -1) for _, b in rows])
    n = most = 0
    for _, x in ev:
        n += x
        most = max(most, n)
    span = (max(b for _, b in rows) - min(a for a, _ in rows)) / 1e6
    busy = sum(b - a for a, b in rows) / 1e6
    asked = sum(metric_of(c, "corod_queue_grants_total") for c in cs)
    refused = sum(metric_of(c, "corod_queue_grants_refused_total") for c in cs)
    comment("%s: %d tasks of %g s, concurrency %d: %.2f s from the first start to "
            "the last end; at most %d at once; the slots busy %.0f %% of the time; "
            "%d starts asked of the store, %d refused" % (
                tag, len(rows), LIM_SLEEP, LIM_CONC, span, most,
                100.0 * busy / (LIM_CONC * span) if span > 0 else 0, asked, refused))
    if most > LIM_CONC:
        comment("WARNING: %s: %d ran at once, above the limit %d" % (tag, most,
                                                                    LIM_CONC))
    emit("%s_limited_rate%s" % (tag.split("_")[0], suffix), len(rows) / span,
         "tasks/s")
    for c in cs:
        c.close()


def sec_limits():
    comment("---- limits: a queue with concurrency %d, %d sleep tasks of %g s due at "
            "once (ideal %.0f tasks/s)" % (LIM_CONC, LIM_N, LIM_SLEEP,
                                          LIM_CONC / LIM_SLEEP))
    with Daemon() as d:
        limits([d], "sqlite_limits", "")
    for n in (1, NODES):
        name, uri = new_db("lim%d" % n)
        ds = start_nodes(uri, n)
        suffix = "_1node" if n == 1 else "_%dnodes" % n
        try:
            limits(ds, "pg_limits" + suffix, suffix)
        finally:
            stop_all(ds)
            drop_db(name)


# --- failover -------------------------------------------------------------------
def log_lines(c, tid):
    st, _, raw = c.request("GET", "/v1/tasks/%d/log" % tid)
    out = []
    if st != 200:
        return out
    for line in raw.decode("utf-8", "replace").splitlines():
        t, _, text = line.partition(" ")
        try:
            out.append((parse_rfc3339_us(t) / 1e6, text))
        except ValueError:
            pass
    return out


def sec_failover():
    comment("---- failover: three nodes, lease %s s; %d x: %d sleep tasks running on one "
            "node, kill -9 of it, time from the kill to each task's attempt 2 started on "
            "another node; bounded to %g s" % (
                LEASE or "30 (the default)", FO_KILLS, FO_TASKS, FO_BUDGET))
    comment("failover: a node renews its leases every third of a lease, so a kill "
            "lands 2/3 to 3/3 of a lease before they end; the others look for "
            "ended leases every second")
    name, uri = new_db("failover")
    t_end = time.monotonic() + FO_BUDGET
    ds = start_nodes(uri, NODES)
    samples, missed, by_log, after_lease = [], 0, [], []
    spec = {"kind": "sleep", "params": {"seconds": 3600}}
    try:
        for k in range(FO_KILLS):
            if time.monotonic() + LEASE_S * 4 / 3 + 15 > t_end:
                comment("failover: stopped after %d kills (the section's time bound)" % k)
                break
            vi = k % len(ds)
            victim = ds[vi]
            others = [d for d in ds if d is not victim]
            vid = node_id(victim)
            cv = victim.client()
            tasks = cv.json("POST", "/v1/tasks", [spec] * FO_TASKS, expect=(201,))["tasks"]
            ids = {t["id"] for t in tasks}
            dl = time.monotonic() + 20
            while True:
                run = [t for t in cv.list_all("state=running") if t["id"] in ids]
                if len(run) == len(ids) and all(t.get("node") == vid for t in run):
                    break
                if time.monotonic() > dl:
                    die("failover: the %d tasks did not all run on node %d in 20 s "
                        "(%d running there)" % (len(ids), vid,
                                               sum(1 for t in run if t.get("node") == vid)))
                time.sleep(0.1)
            cv.close()
            # a kill at any point of the node's renewal period (every third
            # of a lease): its leases end 2/3 to 3/3 of a lease later
            time.sleep(0.5 + random.uniform(0, LEASE_S / 3))
            ends = _pg.psql("SELECT min(lease_until), max(lease_until) FROM "
                            "corod.tasks WHERE id IN (%s)" % ",".join(map(str, ids)),
                            db=name).strip().split("|")
            t_kill = time.time()
            victim.proc.kill()
            victim.proc.wait()
            c = others[0].client()
            seen = {}
            dl = time.monotonic() + LEASE_S * 1.5 + 30
            while len(seen) < len(ids) and time.monotonic() < dl:
                for t in c.list_all("state=running"):
                    if t["id"] in ids and t["id"] not in seen and \
                            t.get("attempt", 0) >= 2 and t.get("node") != vid:
                        seen[t["id"]] = t
                time.sleep(0.2)
            observed = time.time() - t_kill
            try:
                lease_end = [int(x) / 1e6 - t_kill for x in ends]    # µs
            except ValueError:
                lease_end = None
            for tid in ids:
                if tid not in seen:
                    missed += 1
                    continue
                t = c.json("GET", "/v1/tasks/%d" % tid)
                took = parse_rfc3339_us(t["started_at"]) / 1e6 - t_kill
                samples.append(took)
                if lease_end is not None:
                    after_lease.append(took - lease_end[1])
                inter = [x[0] for x in log_lines(c, tid) if x[1].startswith("interrupted:")]
                if inter:
                    by_log.append(inter[-1] - t_kill)
            where = {}
            for t in seen.values():
                where[t.get("node")] = where.get(t.get("node"), 0) + 1
            comment("failover: kill %d of node %d (pid %d): its leases ended %s after the "
                    "kill; %d of %d tasks running again elsewhere (%s), all seen within %.1f s"
                    % (k + 1, vid, victim.pid if victim.proc else 0,
                       "%.2f to %.2f s" % tuple(lease_end) if lease_end else "(unknown)",
                       len(seen), len(ids),
                       ", ".join("%d on node %s" % (v, n) for n, v in sorted(where.items())),
                       observed))
            for tid in ids:
                c.request("POST", "/v1/tasks/%d/cancel" % tid)
            c.close()
            victim.stop()
            ds[vi] = Daemon(extra_args=node_args(), db=uri).start()
    finally:
        stop_all(ds)
        drop_db(name)
    if samples:
        comment("failover: %d tasks taken over; from the kill to attempt 2's started_at: "
                "min %.3f s; to the 'interrupted' log line: p50 %.3f s, max %.3f s" % (
                    len(samples), min(samples),
                    percentile(by_log, 50) if by_log else -1,
                    max(by_log) if by_log else -1))
        emit("pg_failover_p50", percentile(samples, 50), "s")
        emit("pg_failover_p99", percentile(samples, 99), "s")
        emit("pg_failover_max", max(samples), "s")
    if after_lease:
        emit("pg_failover_after_lease_p50", percentile(after_lease, 50), "s")
        emit("pg_failover_after_lease_max", max(after_lease), "s")
    emit("pg_failover_tasks", len(samples), "count")
    emit("pg_failover_missed", missed, "count")


# --- the disk ---------------------------------------------------------------------
def fsync_probe(d, seconds=1.0):
    """8 KiB written and fdatasync'd again and again in d for a second: what
    one commit's flush costs on this disk at the least."""
    path = os.path.join(d, "fsync-probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    buf = os.urandom(8192)
    n = 0
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < seconds:
            os.pwrite(fd, buf, 0)
            os.fdatasync(fd)
            n += 1
    finally:
        os.close(fd)
        os.unlink(path)
    dt = time.monotonic() - t0
    comment("disk: %d x (8 KiB pwrite + fdatasync) in %.2f s = %.0f/s, %.3f ms each "
            "(the floor under one durable commit, on the filesystem of %s)"
            % (n, dt, n / dt, dt / n * 1000, d))


def closing_table():
    def f(name, unit="", fmt="%.0f"):
        v = FIG.get(name)
        return (fmt % v + unit) if v is not None else "—"

    rows = [
        ("single submissions/s", f("sqlite_submit_single_rate"),
         f("pg_submit_single_rate_1node"), f("pg_submit_single_rate_3nodes"),
         "River ~46k jobs/s, Graphile ~15.6k/s, Oban ~16.7k/s"),
        ("batched tasks/s (100 a request)", f("sqlite_submit_batch_tasks_rate"),
         f("pg_submit_batch_tasks_rate_1node"), f("pg_submit_batch_tasks_rate_3nodes"),
         "Graphile ~184k/s batched"),
        ("lateness p99 ms, 10,000 due at once (goal <= 10)",
         f("sqlite_lateness_p99", "", "%.1f"), f("pg_lateness_p99_1node", "", "%.1f"),
         f("pg_lateness_p99_3nodes", "", "%.1f"), "—"),
        ("workers claim->complete tasks/s", f("sqlite_workers_rate"),
         f("pg_workers_rate_1node"), f("pg_workers_rate_3nodes"), "—"),
        ("failover p50 / p99 s (lease %g s)" % LEASE_S, "—", "—",
         "%s / %s" % (f("pg_failover_p50", "", "%.1f"), f("pg_failover_p99", "", "%.1f")),
         "—"),
    ]
    hdr = ("figure", "sqlite", "pg 1 node", "pg 3 nodes", "peers (their own hardware)")
    w = [max(len(r[i]) for r in rows + [hdr]) for i in range(5)]
    fmt = "| " + " | ".join("%%-%ds" % x for x in w) + " |"
    comment("")
    comment(fmt % hdr)
    comment("|" + "|".join("-" * (x + 2) for x in w) + "|")
    for r in rows:
        comment(fmt % r)
    v = FIG.get("pg_lateness_p99_3nodes")
    if v is not None:
        comment("lateness over three nodes: p99 %.1f ms, goal <= %g ms: %s"
                % (v, GOAL_LATENESS_P99, lib.verdict(v <= GOAL_LATENESS_P99)))


def main():
    global _pg
    if not pglib.available():
        comment("cluster: PostgreSQL not available (no postgres/psql; apt-get install "
                "postgresql-15): skipped")
        return
    if not os.access(lib.corod_bin(), os.X_OK):
        die("no corod binary at %s (build it, or set COROD_BIN)" % lib.corod_bin())
    _pg = pglib.Postgres()
    t0 = time.monotonic()
    _pg.start()
    ver = _pg.psql("SHOW server_version", db="postgres").strip()
    comment("cluster: PostgreSQL %s on 127.0.0.1:%d (fsync on, synchronous_commit on, "
            "max_connections 400, the rest Debian's defaults) in %s, started in %.1f s"
            % (ver, _pg.port, _pg.dir, time.monotonic() - t0))
    comment("cluster: corod %s; nodes with --lease %s; %d cores shared by PostgreSQL, "
            "the nodes and the load generators (and whatever else runs here)"
            % (lib.corod_bin(), LEASE or "default (30)", os.cpu_count()))
    fsync_probe(_pg.dir)
    for sec in SECTIONS:
        if sec in ("single", "batch"):
            sec_rate(sec)
        elif sec == "lateness":
            sec_lateness()
        elif sec == "workers":
            sec_workers()
        elif sec == "limits":
            sec_limits()
        elif sec == "failover":
            sec_failover()
        else:
            die("unknown section %r (single batch lateness workers limits "
                "failover)" % sec)
    closing_table()


if __name__ == "__main__":
    main()
