#!/usr/bin/env python3
"""bench/polling.py — reads and long-polls against a store of 1,000,000 tasks.

  fill   Starts corod with --sync normal on a database in this script's own
         temporary directory and submits POLL_TASKS (1,000,000) tasks as JSON
         arrays of POLL_FILL_BATCH (1000) specs over POLL_FILL_CONNS (4)
         keep-alive connections.  In every batch one spec in POLL_RUN_EVERY
         (10) is due at once (alternately an echo and a `sleep 0`: they run and
         end `succeeded`), the others are echoes due in a day (they stay
         `scheduled`, in the database only).  Timed: to the last 201, and until
         every task due at once has finished.  The daemon is stopped; the
         database file is reused by every later daemon of the run and removed
         at the end.
  etag   A daemon (default durability) on that database.  wrk with
         bench/polling.lua in "etag" mode: each wrk thread sends If-None-Match
         with the ETag it got first, so every later answer is a 304.
         GET /v1/tasks?limit=100, then GET /v1/tasks/{id} (a task mid-table).
  list   wrk, plain GETs (full 200 answers): GET /v1/tasks?limit=100,
         ?state=succeeded&kind=echo&limit=100, and a page deep in the list
         (&cursor= 90 % of the way from the newest task to the oldest).
         Each etag/list figure is the median of POLL_RUNS (3) wrk runs.
  poll   Held requests opened on raw non-blocking sockets by one child process
         of this script (selectors), POLL_POLLERS (10,000) of them, while wrk
         sends durable single submissions (bench/submit.lua, as in
         submit-single.sh).  On fresh daemons (same database):
         A. submissions; 10,000 GET /v1/tasks/{id}?wait=60&version=V held on
            tasks the submissions do not touch (held, never woken): RSS and
            submissions; closed; submissions again.
         B. submissions; 10,000 GET /v1/events?since=POS&wait=60: daemon VmRSS
            before and with them held; the wake-up fan-out (one submission
            answers all of them, each re-polls at once: time from the 201 to
            the first and the last answer, daemon CPU until all are held
            again), POLL_FANOUT_TRIALS (5) times; submissions while each
            poller, once answered, re-polls at once with since=next (the
            realistic case: throughput, answers and events delivered, peak
            RSS); submissions while they are answered once and then just hold
            their idle connection.
         C. submissions.
         A loss is against the mean of the two submission runs around it
         (A's two for the task waits, B's first and C for the feed).

Prints result lines `name value unit`, raw readings as `# ` comments and a
closing table of the figures against their targets with PASS/MISS (a MISS does
not change the exit status; a failed section does).  POLL_PERF=all (or a comma
list of result-name prefixes, e.g. poll_etag_task,poll_fanout) runs
`perf record -g -p DAEMON` during those runs and prints the top symbols.
"""

import json
import os
import re
import resource
import selectors
import shutil
import signal
import statistics
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import BENCH_DIR, Daemon, Client, comment, die, result, table, verdict  # noqa: E402

MIB = 1 << 20
N_TASKS = int(os.environ.get("POLL_TASKS", "1000000"))
FILL_BATCH = int(os.environ.get("POLL_FILL_BATCH", "1000"))
FILL_CONNS = int(os.environ.get("POLL_FILL_CONNS", "4"))
RUN_EVERY = int(os.environ.get("POLL_RUN_EVERY", "10"))       # 0: none runs
FILL_LIMIT = float(os.environ.get("POLL_FILL_LIMIT", "110"))  # seconds, the whole fill
DURATION = int(os.environ.get("DURATION", "10").rstrip("s"))
WRK_THREADS = int(os.environ.get("WRK_THREADS", "2"))
WRK_CONNECTIONS = int(os.environ.get("WRK_CONNECTIONS", "32"))
WRK_TIMEOUT = os.environ.get("WRK_TIMEOUT", "10s")
POLLERS = int(os.environ.get("POLL_POLLERS", "10000"))
POLL_WAIT = int(os.environ.get("POLL_WAIT", "60"))
POLL_LIMIT = os.environ.get("POLL_EVENTS_LIMIT", "")           # &limit= of the pollers; empty: default
RUNS = int(os.environ.get("POLL_RUNS", "3"))                  # wrk runs per read figure (median)
FANOUT_TRIALS = int(os.environ.get("POLL_FANOUT_TRIALS", "5"))
SECTIONS = os.environ.get("POLL_SECTIONS", "etag list poll").replace(",", " ").split()
# perf record -g the daemon during these runs (comma list of result-name prefixes, e.g.
# poll_etag_task,poll_submit_repolling; "all" for every run)
PERF = [x for x in os.environ.get("POLL_PERF", "").replace(",", " ").split() if x not in ("0", "")]
PERF_DIR = os.environ.get("POLL_PERF_DIR", "")                 # keep the perf.data files there
PERF_ARGS = os.environ.get("POLL_PERF_ARGS", "-g").split()      # e.g. "--call-graph dwarf"

TARGET_304 = 50000.0
TARGET_LIST = 5000.0
TARGET_RSS_MIB = 64.0
TARGET_SUBMIT_LOSS = 10.0      # % of submission throughput
TARGET_REPOLL_LOSS = 30.0      # ... with pollers re-polling at every answer (issue 18)
FILL_BOUND = 120.0

DELAYED = '{"kind":"echo","params":{"message":"fill"},"delay":86400}'
RUN_ECHO = '{"kind":"echo","params":{"message":"fill"}}'
RUN_SLEEP = '{"kind":"sleep","params":{"seconds":0}}'

_work = None


def cleanup_work():
    global _work
    if _work and os.path.isdir(_work):
        shutil.rmtree(_work, ignore_errors=True)
    _work = None


class DbDaemon(Daemon):
    """corod on the shared database file (a later --db wins over lib's)."""

    def __init__(self, db, extra_args=()):
        super().__init__(list(extra_args) + ["--db", db])
        self.db = db

    def start(self, timeout=60.0):
        t0 = time.monotonic()
        super().start(timeout)
        self.start_s = time.monotonic() - t0
        if os.path.exists(os.path.join(self.tmp, "corod.db")):
            die("corod did not take the last --db (it opened %s)" % os.path.join(self.tmp, "corod.db"))
        return self


def metrics(c):
    """GET /metrics -> {name{labels}: float}."""
    st, r, raw = c.request("GET", "/metrics")
    out = {}
    if st != 200:
        return out
    for line in raw.decode("utf-8", "replace").splitlines():
        if not line or line[0] == "#":
            continue
        k, _, v = line.rpartition(" ")
        try:
            out[k] = float(v)
        except ValueError:
            pass
    return out


def thread_cpu(pid):
    """{tid: (comm, cpu seconds)} of a process's threads."""
    out = {}
    tck = os.sysconf("SC_CLK_TCK")
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for tid in tids:
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                s = f.read()
        except OSError:
            continue
        comm = s[s.index("(") + 1:s.rindex(")")]
        fields = s[s.rindex(")") + 2:].split()
        out[int(tid)] = (comm, (int(fields[11]) + int(fields[12])) / tck)
    return out


def proc_cpu(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return 0.0
    fields = s[s.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


class CpuWindow:
    """Daemon CPU (loop thread = the main thread, and the rest) over a window."""

    def __init__(self, d, extra_pids=()):
        self.d = d
        self.extra = list(extra_pids)

    def __enter__(self):
        self.t0 = time.monotonic()
        self.th0 = thread_cpu(self.d.pid)
        self.x0 = [proc_cpu(p) for p in self.extra]
        self.ch0 = children_cpu()
        return self

    def __exit__(self, *exc):
        self.wall = time.monotonic() - self.t0
        th1 = thread_cpu(self.d.pid)
        self.loop = th1.get(self.d.pid, ("", 0))[1] - self.th0.get(self.d.pid, ("", 0))[1]
        self.total = sum(v[1] for v in th1.values()) - sum(v[1] for v in self.th0.values())
        self.others = self.total - self.loop
        self.extra_cpu = [proc_cpu(p) - x for p, x in zip(self.extra, self.x0)]
        self.children = children_cpu() - self.ch0

    def describe(self):
        w = self.wall or 1e-9
        s = "daemon %.2f cores (loop thread %.2f, others %.2f)" % (self.total / w, self.loop / w, self.others / w)
        if self.extra_cpu:
            s += ", pollers %.2f cores" % (self.extra_cpu[0] / w)
        if self.children > 0:
            s += ", reaped children (wrk) %.2f cores" % (self.children / w)
        return s + " over %.2f s" % w


class RssSampler(threading.Thread):
    def __init__(self, d, every=0.1):
        super().__init__(daemon=True)
        self.d, self.every, self.peak, self.stop_ev = d, every, 0, threading.Event()

    def run(self):
        while not self.stop_ev.is_set():
            try:
                self.peak = max(self.peak, self.d.rss_bytes())
            except Exception:
                pass
            self.stop_ev.wait(self.every)

    def stop(self):
        self.stop_ev.set()
        self.join()
        return self.peak


# --- perf ---------------------------------------------------------------------
def perf_start(d, tag):
    """perf record the daemon from now until perf_report (POLL_PERF selects the runs)."""
    if not PERF or not ("all" in PERF or any(tag.startswith(x) for x in PERF)):
        return None
    if not shutil.which("perf"):
        comment("POLL_PERF: no perf on PATH")
        return None
    data = os.path.join(PERF_DIR or _work, "perf-%s.data" % tag)
    p = subprocess.Popen(["perf", "record"] + PERF_ARGS + ["-o", data, "-p", str(d.pid)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.2)
    return (p, data, tag, d.pid, time.monotonic())


def perf_report(h):
    if h is None:
        return
    p, data, tag, pid, t0 = h
    secs = time.monotonic() - t0
    p.send_signal(signal.SIGINT)
    try:
        p.wait(60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    for sort, title in (("dso,symbol", "self, by object and symbol"), ("dso", "self, by object")):
        rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", sort,
                              "-g", "none", "--percent-limit", "1.5"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        lines = [l.strip() for l in rep.stdout.decode("utf-8", "replace").splitlines()
                 if l.strip() and not l.startswith("#")]
        comment("%s: perf record %s -p %d (%.1f s), %s:" % (tag, " ".join(PERF_ARGS), pid, secs, title))
        for l in lines[:22]:
            comment("  " + l)
    if not PERF_DIR:
        os.unlink(data)


# --- wrk ---------------------------------------------------------------------
def wrk_ms(v):
    m = re.match(r"^([0-9.]+)(us|ms|s|m)$", v)
    if not m:
        return None
    x = float(m.group(1))
    return x * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}[m.group(2)]


def run_wrk(url, script, args=(), duration=None):
    """wrk with a Lua script -> dict(rate, p50, p99, lua lines, raw)."""
    duration = duration or DURATION
    cmd = ["wrk", "-t%d" % WRK_THREADS, "-c%d" % WRK_CONNECTIONS, "-d%ds" % duration,
           "--timeout", WRK_TIMEOUT, "--latency", "-s", os.path.join(BENCH_DIR, script), url]
    if args:
        cmd += ["--"] + list(args)
    p = subprocess.run(["timeout", "--kill-after=5", str(duration + 60)] + cmd,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = p.stdout.decode("utf-8", "replace")
    r = {"raw": out, "rc": p.returncode, "rate": None, "p50": None, "p99": None, "lua": {}}
    for line in out.splitlines():
        s = line.strip()
        if s.startswith("Requests/sec:"):
            r["rate"] = float(s.split()[1])
        elif s.startswith("50%"):
            r["p50"] = wrk_ms(s.split()[1])
        elif s.startswith("99%"):
            r["p99"] = wrk_ms(s.split()[1])
        elif s.startswith("lua_"):
            k, _, v = s.partition(" ")
            r["lua"].setdefault(k, []).append(v)
        elif s.startswith("Socket errors:"):
            r["sockerr"] = s
        elif "requests in" in s:
            r["total"] = s
    if p.returncode != 0 or r["rate"] is None:
        comment("wrk exited with status %d; its output:" % p.returncode)
        comment("  " + out.replace("\n", "\n  "))
    return r


def lua_status(r, code):
    for v in r["lua"].get("lua_status", []):
        parts = v.split()
        if parts[0] == str(code):
            return int(parts[1])
    return 0


def wrk_comments(tag, r):
    comment("%s: wrk %s%s" % (tag, r.get("total", "?"), "; " + r["sockerr"] if "sockerr" in r else ""))
    st = ", ".join(v for v in r["lua"].get("lua_status", []))
    if st:
        comment("%s: answers by status: %s" % (tag, st))


# --- the fill ------------------------------------------------------------------
def fill(db):
    d = DbDaemon(db, ["--sync", "normal"])
    d.start()
    comment("fill: corod pid %d port %d, --sync normal, db %s" % (d.pid, d.port, db))
    nbatches = -(-N_TASKS // FILL_BATCH)
    bodies = {}

    def body(i):
        n = min(FILL_BATCH, N_TASKS - i * FILL_BATCH)
        if n not in bodies:
            specs = []
            k = 0
            for j in range(n):
                if RUN_EVERY > 0 and j % RUN_EVERY == RUN_EVERY - 1:
                    specs.append(RUN_ECHO if k % 2 == 0 else RUN_SLEEP)
                    k += 1
                else:
                    specs.append(DELAYED)
            bodies[n] = (("[" + ",".join(specs) + "]").encode(), k)
        data, k = bodies[n]
        return data, n, k

    lock = threading.Lock()
    state = {"next": 0, "err": None, "run": 0, "submitted": 0, "waits": []}
    deadline = time.monotonic() + FILL_LIMIT

    def worker():
        c = d.client(timeout=60)
        while True:
            with lock:
                i = state["next"]
                if i >= nbatches or state["err"] or time.monotonic() > deadline:
                    break
                state["next"] += 1
                data, n, run = body(i)
            try:
                st, r, raw = c.request("POST", "/v1/tasks", data, {"Content-Type": "application/json"})
            except Exception as e:
                st, raw = -1, str(e).encode()
            if st != 201:
                with lock:
                    state["err"] = "batch %d -> %s: %s" % (i, st, raw[:300].decode("utf-8", "replace"))
                break
            keep = None
            if len(state["waits"]) < POLLERS:
                # ids and versions of tasks nobody touches, for the held ?wait= requests
                keep = [(t["id"], t["version"]) for t in json.loads(raw)["tasks"] if t.get("delay") == 86400]
            with lock:
                state["submitted"] += n
                state["run"] += run
                if keep and len(state["waits"]) < POLLERS:
                    state["waits"].extend(keep[:POLLERS - len(state["waits"])])
        c.close()

    t0 = time.monotonic()
    ths = [threading.Thread(target=worker) for _ in range(FILL_CONNS)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    t_sub = time.monotonic() - t0
    if state["err"]:
        d.stop()
        raise RuntimeError("fill: " + state["err"])
    if state["submitted"] < N_TASKS:
        d.stop()
        raise RuntimeError("fill: only %d of %d tasks submitted within %g s (POLL_FILL_LIMIT)"
                           % (state["submitted"], N_TASKS, FILL_LIMIT))
    comment("fill: %d tasks in %d batches of %d over %d connections: last 201 after %.2f s; "
            "%d due at once (one spec in %d of every batch, half echo, half sleep 0), %d echo due in a day"
            % (state["submitted"], nbatches, FILL_BATCH, FILL_CONNS, t_sub, state["run"], RUN_EVERY,
               state["submitted"] - state["run"]))
    # until every task due at once has finished
    c = d.client()
    fin = 0.0
    while True:
        m = metrics(c)
        fin = sum(v for k, v in m.items() if k.startswith("corod_tasks_finished_total{"))
        if fin >= state["run"] or time.monotonic() > deadline + 10:
            break
        time.sleep(0.1)
    t_all = time.monotonic() - t0
    if fin < state["run"]:
        comment("WARNING: fill: only %d of %d tasks due at once finished after %.1f s" % (fin, state["run"], t_all))
    c.close()
    d.stop()
    size = sum(os.path.getsize(db + sfx) for sfx in ("", "-wal", "-shm") if os.path.exists(db + sfx))
    comment("fill: all %d due ones finished %.2f s after the first submission; daemon stopped; "
            "database %.0f MiB" % (fin, t_all, size / MIB))
    return {"submit_s": t_sub, "all_s": t_all, "n": state["submitted"], "run": state["run"],
            "waits": state["waits"], "db_mib": size / MIB}


# --- sections 1 and 2 ------------------------------------------------------------
def wrk_read(d, tag, path, etag, rows, target):
    """POLL_RUNS wrk runs of GET path; the figures are those of the median run (by rate)."""
    url = "http://127.0.0.1:%d%s" % (d.port, path)
    c = d.client()
    st, resp, raw = c.request("GET", path)
    c.close()
    comment("%s: GET %s -> %d, %d bytes, ETag %s" % (tag, path, st, len(raw), resp.getheader("ETag")))
    ok_code = 304 if etag else 200
    runs = []
    for i in range(RUNS):
        ph = perf_start(d, tag) if i == 0 else None
        with CpuWindow(d) as cw:
            r = run_wrk(url, "polling.lua", ["etag"] if etag else [])
        perf_report(ph)
        if r["rate"] is None:
            raise RuntimeError("%s: wrk gave no rate" % tag)
        r["n_ok"] = lua_status(r, ok_code)
        r["n_all"] = sum(int(v.split()[1]) for v in r["lua"].get("lua_status", []))
        wrk_comments("%s run %d" % (tag, i + 1), r)
        comment("%s run %d: %.0f req/s, p50 %.3f ms, p99 %.3f ms; %s"
                % (tag, i + 1, r["rate"], r["p50"], r["p99"], cw.describe()))
        if etag:
            comment("%s run %d: ETag seen first by the threads %s (%s threads saw another)"
                    % (tag, i + 1, (r["lua"].get("lua_etag") or ["-"])[0], (r["lua"].get("lua_etags") or ["?"])[0]))
            if r["n_all"] and r["n_ok"] < 0.99 * r["n_all"]:
                comment("WARNING: %s: only %d of %d answers were 304: the ETag changed during the run"
                        % (tag, r["n_ok"], r["n_all"]))
        elif r["n_ok"] != r["n_all"]:
            comment("WARNING: %s: %d of %d answers were not 200" % (tag, r["n_all"] - r["n_ok"], r["n_all"]))
        runs.append(r)
    rates = sorted(x["rate"] for x in runs)
    r = sorted(runs, key=lambda x: x["rate"])[len(runs) // 2]
    bad = sum(x["n_all"] - x["n_ok"] for x in runs)
    result("%s_rate" % tag, "%.2f" % r["rate"], "req/s")
    result("%s_latency_p50" % tag, "%.3f" % r["p50"], "ms")
    result("%s_latency_p99" % tag, "%.3f" % r["p99"], "ms")
    result("%s_%s" % (tag, "non304" if etag else "non200"), bad, "count")
    label = "%s GET %s" % ("304 for" if etag else "200 for", path)
    spread = " (runs %s)" % "/".join("%.0f" % x for x in rates) if len(runs) > 1 else ""
    rows.append((label, "%.0f req/s, p99 %.2f ms%s" % (r["rate"], r["p99"], spread), ">= %s/s" % fmt_int(target),
                 verdict(r["rate"] >= target and r["n_ok"] >= 0.99 * max(r["n_all"], 1))))
    return r


def fmt_int(x):
    return "{:,}".format(int(x))


def section_reads(d, fillinfo, sections, rows):
    c = d.client()
    first = c.json("GET", "/v1/tasks?limit=100")
    newest = first["tasks"][0]["id"]
    cur = first["next_cursor"]
    if cur != "c%d" % first["tasks"][-1]["id"]:
        raise RuntimeError("next_cursor %r is not c<id of the last task>: cannot point a cursor deep" % cur)
    mid_id = fillinfo["waits"][len(fillinfo["waits"]) // 2][0] if fillinfo["waits"] else newest // 2
    # a task in the middle of the table that nothing changes (a scheduled echo)
    mid = c.json("GET", "/v1/tasks/%d" % (newest // 2))
    if mid.get("state") == "scheduled":
        mid_id = mid["id"]
    deep = max(2, newest // 10)          # 90 % of the way from the newest to the oldest
    c.close()
    if "etag" in sections:
        comment("---- etag: If-None-Match with the ETag the thread got first (bench/polling.lua etag)")
        wrk_read(d, "poll_etag_list", "/v1/tasks?limit=100", True, rows, TARGET_304)
        wrk_read(d, "poll_etag_task", "/v1/tasks/%d" % mid_id, True, rows, TARGET_304)
    if "list" in sections:
        comment("---- list: plain GETs, full 200 answers")
        wrk_read(d, "poll_list", "/v1/tasks?limit=100", False, rows, TARGET_LIST)
        wrk_read(d, "poll_list_filtered", "/v1/tasks?state=succeeded&kind=echo&limit=100", False, rows, TARGET_LIST)
        wrk_read(d, "poll_list_deep", "/v1/tasks?limit=100&cursor=c%d" % deep, False, rows, TARGET_LIST)


# --- section 3: the pollers ---------------------------------------------------------
class Pollers:
    """The poller child process (this script with --poller-child)."""

    def __init__(self, port):
        self.p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--poller-child", str(port)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    @property
    def pid(self):
        return self.p.pid

    def cmd(self, **kw):
        self.p.stdin.write((json.dumps(kw) + "\n").encode())
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError("the poller child died")
        return json.loads(line)

    def stop(self):
        if self.p.poll() is None:
            try:
                self.cmd(cmd="quit")
            except Exception:
                pass
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def wait_held(c, pol, n, gauge, timeout=60.0):
    """Until the child has n requests out and the daemon's gauge shows n held."""
    deadline = time.monotonic() + timeout
    held = 0
    while time.monotonic() < deadline:
        s = pol.cmd(cmd="stats")
        held = metrics(c).get(gauge, 0) if gauge else s["outstanding"]
        if s["outstanding"] >= n and held >= n:
            return s, held
        time.sleep(0.1)
    s = pol.cmd(cmd="stats")
    raise RuntimeError("only %d of %d held after %g s (child: %s)" % (held, n, timeout, s))


def submit_run(d, tag, pol=None):
    url = "http://127.0.0.1:%d/v1/tasks" % d.port
    if pol:
        pol.cmd(cmd="stats", reset=True)
    rs = RssSampler(d)
    rs.start()
    ph = perf_start(d, tag)
    with CpuWindow(d, [pol.pid] if pol else []) as cw:
        r = run_wrk(url, "submit.lua")
    peak = rs.stop()
    wrk_comments(tag, r)
    comment("%s: %s; daemon RSS peak %.1f MiB" % (tag, cw.describe(), peak / MIB))
    if r["rate"] is None:
        raise RuntimeError("%s: wrk gave no rate" % tag)
    errs = int((r["lua"].get("lua_non2xx") or ["0"])[0])
    if errs:
        comment("WARNING: %s: %d answers were not 2xx" % (tag, errs))
    st = None
    if pol:
        st = pol.cmd(cmd="stats")
        w = cw.wall or 1e-9
        comment("%s: pollers: %d answers (%.0f/s), %d events delivered (%.0f/s), %.1f MiB received, "
                "%d re-polls sent, %d closed, %d errors, statuses %s"
                % (tag, st["answers"], st["answers"] / w, st["events"], st["events"] / w, st["bytes"] / MIB,
                   st["sent"], st["closed"], st["errors"], st["status"]))
        if st["answers"] and st["sent"]:
            comment("%s: daemon CPU per poller answer (incl. taking its re-poll) %.1f us; body %.0f bytes, "
                    "%.1f events per answer on average"
                    % (tag, cw.total / st["answers"] * 1e6, st["bytes"] / st["answers"], st["events"] / st["answers"]))
    perf_report(ph)
    result("%s_rate" % tag, "%.2f" % r["rate"], "req/s")
    result("%s_latency_p99" % tag, "%.3f" % r["p99"], "ms")
    return r, cw, st, peak


def poll_daemon(db, what):
    """A fresh daemon on the filled database for one part of the poll section."""
    d = DbDaemon(db, ["--max-connections", str(POLLERS + 1024),
                       "--max-connections-per-client", "0"])
    d.start()
    comment("poll: %s: corod pid %d port %d (fresh, same database), VmRSS %.1f MiB, open-files limit %s"
            % (what, d.pid, d.port, d.rss_bytes() / MIB, d.nofile_limit()))
    return d


def section_poll(db, fillinfo, rows):
    comment("---- poll: %d held requests from one process (raw sockets, selectors); durable single "
            "submissions with wrk and bench/submit.lua" % POLLERS)
    res = {}
    med = statistics.median
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < POLLERS + 64:
        comment("WARNING: the hard open-files limit %d is below %d pollers + 64: the poller process "
                "cannot open them all (raise it, or set POLL_POLLERS)" % (hard, POLLERS))

    # 1. no pollers, then held requests that the submissions do not wake:
    #    GET /v1/tasks/{id}?wait=60&version=V on scheduled tasks due in a day
    d = poll_daemon(db, "baseline and held task waits")
    c = d.client()
    pol = None
    try:
        base1, _, _, _ = submit_run(d, "poll_submit_base_1")
        waits = fillinfo["waits"][:POLLERS]
        if len(waits) < POLLERS:
            comment("WARNING: only %d untouched tasks known: skipping the held task waits" % len(waits))
        else:
            pol = Pollers(d.port)
            paths = ["/v1/tasks/%d?wait=%d&version=%d" % (tid, POLL_WAIT, v) for tid, v in waits]
            time.sleep(1)
            rss2 = d.rss_bytes()
            pol.cmd(cmd="open", paths=paths, n=POLLERS, kind="task", repoll=True)
            s, held = wait_held(c, pol, POLLERS, "corod_http_held_requests")
            time.sleep(1)
            rss3 = d.rss_bytes()
            comment("poll: %d GET /v1/tasks/{id}?wait=%d&version=V held (corod_http_held_requests %d); "
                    "VmRSS %.1f -> %.1f MiB" % (POLLERS, POLL_WAIT, held, rss2 / MIB, rss3 / MIB))
            result("poll_rss_task_waits_growth", "%.1f" % ((rss3 - rss2) / MIB), "MiB")
            res["task_rss"] = (rss2, rss3)
            r_tw, cw_tw, st_tw, _ = submit_run(d, "poll_submit_task_waits", pol)
            res["task"] = (r_tw, cw_tw, st_tw)
            if st_tw["answers"]:
                comment("WARNING: %d of the held task waits were answered during the run" % st_tw["answers"])
            pol.stop()
            pol = None
            time.sleep(1)
            base2, _, _, _ = submit_run(d, "poll_submit_base_2")
            res["task_ref"] = (base1["rate"], base2["rate"])
    finally:
        if pol:
            pol.stop()
        c.close()
        d.stop()

    # 2. the change feed's long-polls, on a fresh daemon
    d = poll_daemon(db, "feed long-polls")
    c = d.client()
    pol = Pollers(d.port)
    try:
        base3, _, _, _ = submit_run(d, "poll_submit_base_3")
        pos = c.json("GET", "/v1/events")["next"]
        path = "/v1/events?since=%d&wait=%d%s" % (pos, POLL_WAIT, "&limit=" + POLL_LIMIT if POLL_LIMIT else "")
        time.sleep(1)
        rss0 = d.rss_bytes()
        fds0 = d.open_fds()
        t0 = time.monotonic()
        o = pol.cmd(cmd="open", paths=[path], n=POLLERS, kind="events", repoll=True)
        s, held = wait_held(c, pol, POLLERS, "corod_event_pollers")
        t_open = time.monotonic() - t0
        time.sleep(1)
        rss1 = d.rss_bytes()
        comment("poll: %d GET %s connected (%d connect errors) and held in %.2f s (corod_event_pollers %d, "
                "fds %d -> %d); VmRSS %.1f -> %.1f MiB"
                % (o["opened"], path, o["errors"], t_open, held, fds0, d.open_fds(), rss0 / MIB, rss1 / MIB))
        grow = (rss1 - rss0) / MIB
        result("poll_rss_before", "%.1f" % (rss0 / MIB), "MiB")
        result("poll_rss_held", "%.1f" % (rss1 / MIB), "MiB")
        result("poll_rss_growth", "%.1f" % grow, "MiB")
        result("poll_rss_per_poller", "%.0f" % ((rss1 - rss0) / POLLERS), "bytes")
        rows.append(("daemon RSS with %s feed long-polls held" % fmt_int(POLLERS),
                     "%.1f -> %.1f MiB (+%.1f MiB, %.0f B each)"
                     % (rss0 / MIB, rss1 / MIB, grow, (rss1 - rss0) / POLLERS),
                     "growth < %g MiB" % TARGET_RSS_MIB, verdict(grow < TARGET_RSS_MIB)))
        if "task_rss" in res:
            a0, a1 = res["task_rss"]
            g = (a1 - a0) / MIB
            rows.append(("daemon RSS with %s task ?wait= held" % fmt_int(POLLERS),
                         "%.1f -> %.1f MiB (+%.1f MiB, %.0f B each)" % (a0 / MIB, a1 / MIB, g, (a1 - a0) / POLLERS),
                         "growth < %g MiB" % TARGET_RSS_MIB, verdict(g < TARGET_RSS_MIB)))

        # the wake-up fan-out: one submission answers all; they re-poll at once
        first, last, cpu = [], [], []
        spec = json.loads(DELAYED)
        ph = perf_start(d, "poll_fanout")
        for i in range(FANOUT_TRIALS):
            pol.cmd(cmd="stats", reset=True)
            with CpuWindow(d) as cw:
                t0 = time.monotonic()
                c.json("POST", "/v1/tasks", spec, expect=(201,))
                t_ack = time.monotonic()
                deadline = t0 + 60
                while True:
                    s = pol.cmd(cmd="stats")
                    if s["answers"] >= POLLERS or time.monotonic() > deadline:
                        break
                    time.sleep(0.005)
                s, _ = wait_held(c, pol, POLLERS, "corod_event_pollers")
            if s["answers"] < POLLERS:
                raise RuntimeError("fan-out: only %d of %d pollers answered" % (s["answers"], POLLERS))
            first.append((s["t_first"] - t_ack) * 1e3)
            last.append((s["t_last"] - t_ack) * 1e3)
            cpu.append(cw.total)
            comment("fan-out %d: 201 after %.1f ms; then first poller answered after %.1f ms, last after %.1f ms; "
                    "all re-held %.1f ms after the POST; daemon CPU %.0f ms (loop thread %.0f ms)"
                    % (i + 1, (t_ack - t0) * 1e3, first[-1], last[-1], cw.wall * 1e3, cw.total * 1e3, cw.loop * 1e3))
        perf_report(ph)
        time.sleep(1)
        rss_w = d.rss_bytes()
        g = (rss_w - rss0) / MIB
        comment("poll: VmRSS with the %d held again after %d wake-ups (each answered and re-polled on its "
                "keep-alive connection) %.1f MiB" % (POLLERS, FANOUT_TRIALS, rss_w / MIB))
        result("poll_rss_held_rewoken", "%.1f" % (rss_w / MIB), "MiB")
        result("poll_rss_growth_rewoken", "%.1f" % g, "MiB")
        rows.append(("daemon RSS with %s feed long-polls held again after %d wake-ups" % (fmt_int(POLLERS), FANOUT_TRIALS),
                     "%.1f -> %.1f MiB (+%.1f MiB, %.0f B each)" % (rss0 / MIB, rss_w / MIB, g, (rss_w - rss0) / POLLERS),
                     "growth < %g MiB" % TARGET_RSS_MIB, verdict(g < TARGET_RSS_MIB)))
        spread = [l - f for f, l in zip(first, last)]
        result("poll_fanout_first_answer", "%.1f" % med(first), "ms")
        result("poll_fanout_last_answer", "%.1f" % med(last), "ms")
        result("poll_fanout_spread", "%.1f" % med(spread), "ms")
        result("poll_fanout_daemon_cpu", "%.1f" % (med(cpu) * 1e3), "ms")
        result("poll_fanout_cpu_per_poller", "%.1f" % (med(cpu) / POLLERS * 1e6), "us")
        rows.append(("wake-up fan-out: 1 submission, %s held (median of %d)" % (fmt_int(POLLERS), FANOUT_TRIALS),
                     "after its 201: first answer %.0f ms, last %.0f ms; daemon CPU %.0f ms = %.1f us per poller "
                     "(answer + re-poll)" % (med(first), med(last), med(cpu) * 1e3, med(cpu) / POLLERS * 1e6), "", ""))

        # submissions with re-polling pollers (the realistic case)
        r_re, cw_re, st_re, peak_re = submit_run(d, "poll_submit_repolling", pol)
        res["repoll"] = (r_re, cw_re, st_re)
        result("poll_rss_peak_repolling", "%.1f" % (peak_re / MIB), "MiB")
        # behind by many pages after the run, the pollers skip to the feed's
        # end (as one answered 410 does) and are held again
        pol.cmd(cmd="mode", repoll=True, jump=True)
        wait_held(c, pol, POLLERS, "corod_event_pollers")
        # pollers that, once answered, just hold their (idle) connection
        pol.cmd(cmd="mode", repoll=False)
        r_once, cw_once, st_once, peak_once = submit_run(d, "poll_submit_answered_once", pol)
        res["once"] = (r_once, cw_once, st_once)
        comment("poll: after the run %d connections still open, %d closed by the daemon; VmRSS %.1f MiB"
                % (POLLERS - st_once["closed"], st_once["closed"], d.rss_bytes() / MIB))
    finally:
        pol.stop()
        c.close()
        d.stop()

    # 3. no pollers again, on a fresh daemon
    d = poll_daemon(db, "baseline again")
    try:
        base4, _, _, _ = submit_run(d, "poll_submit_base_4")
    finally:
        d.stop()
    res["feed_ref"] = (base3["rate"], base4["rate"])
    allb = [base1["rate"], base3["rate"], base4["rate"]] + ([res["task_ref"][1]] if "task_ref" in res else [])
    result("poll_submit_base_rate", "%.2f" % med(allb), "req/s")
    rows.append(("durable single submissions, no pollers (median)", "%.0f req/s (runs %s)"
                 % (med(allb), "/".join("%.0f" % x for x in allb)), "", ""))
    for key, ref, tag, label in (("task", "task_ref", "task_waits", "held task ?wait= (not woken)"),
                                 ("repoll", "feed_ref", "repolling", "feed long-polls re-polling at once (since=next)"),
                                 ("once", "feed_ref", "answered_once", "feed long-polls answered once, then idle")):
        if key not in res:
            continue
        r, cw, st = res[key]
        base = sum(res[ref]) / 2
        loss = (1 - r["rate"] / base) * 100
        result("poll_submit_loss_%s" % tag, "%.1f" % loss, "%")
        extra = ""
        if st and st["answers"]:
            extra = "; %.0f answers/s, %.0f events/s to pollers" % (st["answers"] / cw.wall, st["events"] / cw.wall)
        if key == "repoll":
            extra += "; daemon RSS peak %.0f MiB" % (peak_re / MIB)
        target = TARGET_REPOLL_LOSS if key == "repoll" else TARGET_SUBMIT_LOSS
        rows.append(("submissions with %s %s" % (fmt_int(POLLERS), label),
                     "%.0f req/s = %+.1f %% of %.0f without%s" % (r["rate"], -loss, base, extra),
                     "< %g %% less" % target, verdict(loss < target)))


# --- the poller child ------------------------------------------------------------------
def poller_child(port):
    """Holds long-polls on raw non-blocking sockets; commands on stdin, JSON answers on stdout."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    sel = selectors.DefaultSelector()
    sel.register(sys.stdin.fileno(), selectors.EVENT_READ, None)
    conns = {}
    st = {"repoll": True, "kind": "events"}
    stats = {}

    def reset():
        stats.update(answers=0, bytes=0, events=0, sent=0, closed=0, errors=0, t_first=None, t_last=None,
                     status={})

    reset()
    host = b"Host: 127.0.0.1:%d\r\n" % port

    class Conn:
        __slots__ = ("sock", "path", "inbuf", "out", "busy", "connected", "wreg", "jump")

    def request(cn):
        cn.out = b"GET " + cn.path + b" HTTP/1.1\r\n" + host + b"\r\n"
        cn.busy = True
        stats["sent"] += 1
        flush(cn)

    def flush(cn):
        try:
            n = cn.sock.send(cn.out)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError:
            drop(cn, True)
            return
        cn.out = cn.out[n:]
        if cn.out:
            sel.modify(cn.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, cn)
        elif not cn.wreg:
            return
        else:
            sel.modify(cn.sock, selectors.EVENT_READ, cn)
        cn.wreg = bool(cn.out)

    def drop(cn, err):
        if err:
            stats["errors"] += 1
        else:
            stats["closed"] += 1
        try:
            sel.unregister(cn.sock)
        except (KeyError, ValueError):
            pass
        cn.sock.close()
        conns.pop(id(cn), None)

    def answered(cn, code, body):
        now = time.monotonic()
        stats["answers"] += 1
        stats["bytes"] += len(body)
        stats["status"][str(code)] = stats["status"].get(str(code), 0) + 1
        if stats["t_first"] is None:
            stats["t_first"] = now
        stats["t_last"] = now
        cn.busy = False
        if st["kind"] == "events":
            stats["events"] += body.count(b'"seq":')
            i = body.rfind(b'"next":')
            nxt = None
            if code == 410 or cn.jump:
                # a client that fell out of the kept history lists again:
                # since past the end is answered at once with next = the end
                nxt = b"9223372036854775807"
                cn.jump = False
            elif code == 200 and i >= 0:
                j = i + 7
                k = j
                while k < len(body) and 48 <= body[k] <= 57:
                    k += 1
                nxt = body[j:k]
            if nxt is not None:
                q = cn.path.index(b"since=") + 6
                e = cn.path.find(b"&", q)
                cn.path = cn.path[:q] + nxt + (cn.path[e:] if e >= 0 else b"")
        if st["repoll"]:
            request(cn)

    def readable(cn):
        try:
            data = cn.sock.recv(1 << 18)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            drop(cn, True)
            return
        if not data:
            drop(cn, False)
            return
        cn.inbuf += data
        while True:
            h = cn.inbuf.find(b"\r\n\r\n")
            if h < 0:
                return
            head = bytes(cn.inbuf[:h])
            try:
                code = int(head[9:12])
            except ValueError:
                drop(cn, True)
                return
            m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
            clen = int(m.group(1)) if m else 0
            if len(cn.inbuf) < h + 4 + clen:
                return
            body = bytes(cn.inbuf[h + 4:h + 4 + clen])
            del cn.inbuf[:h + 4 + clen]
            answered(cn, code, body)

    def open_all(paths, n):
        opened = errors = 0
        wave = 500
        i = 0
        while i < n:
            for _ in range(min(wave, n - i)):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                cn = Conn()
                cn.sock, cn.path, cn.inbuf, cn.out, cn.busy = s, paths[i % len(paths)].encode(), bytearray(), b"", False
                cn.connected = False
                cn.wreg = True
                cn.jump = False
                rc = s.connect_ex(("127.0.0.1", port))
                i += 1
                if rc not in (0, 115):          # EINPROGRESS
                    errors += 1
                    s.close()
                    continue
                conns[id(cn)] = cn
                sel.register(s, selectors.EVENT_WRITE, cn)
                opened += 1
            # let this wave connect and send before the next
            t_end = time.monotonic() + 5
            while time.monotonic() < t_end and any(not c.connected for c in conns.values()):
                step(0.05, False)
        return opened, errors

    def step(timeout, with_stdin=True):
        for key, ev in sel.select(timeout):
            cn = key.data
            if cn is None:
                if with_stdin:
                    return True
                continue
            if id(cn) not in conns:
                continue
            if not cn.connected:
                if ev & selectors.EVENT_WRITE:
                    err = cn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        drop(cn, True)
                        continue
                    cn.connected = True
                    request(cn)
                continue
            if ev & selectors.EVENT_WRITE and cn.out:
                flush(cn)
            if ev & selectors.EVENT_READ:
                readable(cn)
        return False

    def reply(obj):
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    stdin = sys.stdin.buffer
    while True:
        if not step(0.5):
            continue
        line = stdin.readline()
        if not line:
            break
        msg = json.loads(line)
        cmd = msg.get("cmd")
        if cmd == "open":
            st["kind"] = msg.get("kind", "events")
            st["repoll"] = msg.get("repoll", True)
            reset()
            o, e = open_all(msg["paths"], msg["n"])
            reply({"opened": o, "errors": e})
        elif cmd == "mode":
            st["repoll"] = msg["repoll"]
            if msg.get("jump"):
                for cn in conns.values():
                    cn.jump = True
            reply({"ok": True})
        elif cmd == "stats":
            out = dict(stats)
            out["outstanding"] = sum(1 for c in conns.values() if c.busy)
            out["open"] = len(conns)
            reply(out)
            if msg.get("reset"):
                reset()
        elif cmd == "close":
            for cn in list(conns.values()):
                try:
                    sel.unregister(cn.sock)
                except (KeyError, ValueError):
                    pass
                cn.sock.close()
            conns.clear()
            reply({"ok": True})
        elif cmd == "quit":
            reply({"ok": True})
            break


# --- main -----------------------------------------------------------------------------
def main():
    global _work
    if len(sys.argv) == 3 and sys.argv[1] == "--poller-child":
        poller_child(int(sys.argv[2]))
        return
    if not shutil.which("wrk"):
        die("wrk not found (apt-get install wrk)")
    _work = tempfile.mkdtemp(prefix="corod-bench-poll.")
    import atexit
    atexit.register(cleanup_work)
    db = os.path.join(_work, "corod.db")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    comment("polling: %d tasks; wrk -t%d -c%d -d%ds --timeout %s --latency; %d pollers; sections %s; "
            "loopback 127.0.0.1, %d cores; open-files limit %d/%d"
            % (N_TASKS, WRK_THREADS, WRK_CONNECTIONS, DURATION, WRK_TIMEOUT, POLLERS, " ".join(SECTIONS),
               os.cpu_count(), soft, hard))
    rows = []
    failed = []
    try:
        fi = fill(db)
    except Exception as e:
        comment("FAILED: fill: %s: %s" % (type(e).__name__, e))
        sys.exit(1)
    result("poll_fill_s", "%.2f" % fi["submit_s"], "s")
    result("poll_fill_rate", "%.0f" % (fi["n"] / fi["submit_s"]), "tasks/s")
    result("poll_fill_all_finished_s", "%.2f" % fi["all_s"], "s")
    rows.append(("fill: %s tasks, batches of %d, --sync normal" % (fmt_int(fi["n"]), FILL_BATCH),
                 "%.1f s = %.0f tasks/s (the %s due at once finished at %.1f s)"
                 % (fi["submit_s"], fi["n"] / fi["submit_s"], fmt_int(fi["run"]), fi["all_s"]),
                 "< %g s (bound)" % FILL_BOUND, verdict(fi["all_s"] < FILL_BOUND)))

    try:
        if "etag" in SECTIONS or "list" in SECTIONS:
            d = DbDaemon(db)
            try:
                d.start()
                comment("polling: corod pid %d port %d on the filled database, default durability; "
                        "started (to /healthz 200) in %.2f s; VmRSS %.1f MiB"
                        % (d.pid, d.port, d.start_s, d.rss_bytes() / MIB))
                result("poll_daemon_start_s", "%.2f" % d.start_s, "s")
                c = d.client()
                deadline = time.monotonic() + 60
                m = {}
                while time.monotonic() < deadline:
                    m = metrics(c)
                    if m.get("corod_tasks_counted_age_seconds", -1) >= 0:
                        break
                    time.sleep(0.5)
                counts = {k[len("corod_tasks"):]: int(v) for k, v in m.items()
                          if k.startswith("corod_tasks{") and v > 0}
                comment("polling: the store holds %s" % ", ".join("%s %d" % kv for kv in sorted(counts.items())))
                c.close()
                section_reads(d, fi, SECTIONS, rows)
            except Exception as e:
                comment("FAILED: reads: %s: %s" % (type(e).__name__, e))
                failed.append("reads")
            finally:
                d.stop()
        if "poll" in SECTIONS:
            try:
                section_poll(db, fi, rows)
            except Exception as e:
                comment("FAILED: poll: %s: %s" % (type(e).__name__, e))
                failed.append("poll")
    finally:
        cleanup_work()

    for s in failed:
        rows.append(("section %s" % s, "FAILED (see above)", "", "MISS"))
    table(rows)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
