#!/usr/bin/env python3
"""bench/exec.py -- corod's `exec` kind against xargs and asyncio (issue 14).

The daemon runs commands defined in a commands-dir this script writes into
its temporary directory (true: /bin/true; sleep: /bin/sleep, any
arguments; lines: bench/exec-lines.py run by this Python, any arguments),
with the definitions' defaults (a fresh working directory per attempt).
Sections (EXEC_SECTIONS, default "rate scheduled rss output"):

  rate       EXEC_N (10000) `exec` tasks of /bin/true submitted in JSON-array
             batches of EXEC_BATCH (100) to a daemon started with
             --max-running EXEC_CONC (8): tasks per second from the first
             submission until GET /metrics counts them all finished (every
             one must have succeeded).  corod's CPU (utime + stime, all
             threads, and its loop thread alone) over that run, per task.
             Side by side, the same number of /bin/true runs by
             `xargs -P EXEC_CONC -n 1 /bin/true`, by Python asyncio
             (create_subprocess_exec, stdout and stderr piped and read as
             corod does, asyncio.Semaphore(EXEC_CONC)) and by a serial
             os.posix_spawn + waitpid loop (the spawn's own cost).
  scheduled  the corod run again on a daemon that first took EXEC_SCHEDULED
             (100000) `echo` tasks due in a day, held in memory (--window of
             two days; /healthz in_memory is checked): a spawn must not
             copy the page tables of a big parent.
  rss        EXEC_SLEEPERS (1000) tasks `sleep 60` at once on a daemon with
             --max-running 0 (no limit; exec has no pool of its own): corod's
             VmRSS with all of them running minus its VmRSS idle (after one
             warm-up exec), per task.  Then they are canceled (bounded).
  output     one task running exec-lines.py writing EXEC_OUTPUT_BYTES (1 GB)
             as 80-byte lines: lines per second taken into the log (the
             task's started_at until the client sees it final, which is
             committed after its lines; X-Log-Next must count them all),
             how fast the loop read them (started_at -> finished_at) and
             corod's peak VmRSS meanwhile.  Then durable single submissions
             per second (wrk -t2 -c32 with bench/submit.lua,
             EXEC_SUBMIT_SECONDS, 10 s) on the idle daemon and while the
             same writer's output is being taken in: the loop must not
             starve.  Past EXEC_RSS_LIMIT (4G) the writer's task is canceled.

Prints result lines and a closing table against the issue's goals.
Small runs to see it works:
EXEC_N=1000 EXEC_SCHEDULED=20000 EXEC_SLEEPERS=100 EXEC_OUTPUT_BYTES=400M \
EXEC_SUBMIT_SECONDS=2 bench/exec.py
"""

import atexit
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import (BENCH_DIR, Daemon, comment, die, parse_rfc3339_us, result,  # noqa: E402
                 table, verdict)  # noqa: E402


def env_size(name, default):
    """An integer, with an optional K, M or G (decimal: 1G = 10^9)."""
    v = os.environ.get(name, default).strip()
    mult = {"K": 10**3, "M": 10**6, "G": 10**9}.get(v[-1:].upper(), 1)
    return int(float(v[:-1] if mult > 1 else v) * mult)


N = env_size("EXEC_N", "10000")
BATCH = env_size("EXEC_BATCH", "100")
CONC = env_size("EXEC_CONC", "8")
SCHEDULED = env_size("EXEC_SCHEDULED", "100000")
SLEEPERS = env_size("EXEC_SLEEPERS", "1000")
OUT_BYTES = env_size("EXEC_OUTPUT_BYTES", "1G")
SUBMIT_SECONDS = env_size("EXEC_SUBMIT_SECONDS", "10")
RSS_LIMIT = env_size("EXEC_RSS_LIMIT", "4G")
DEADLINE = float(os.environ.get("EXEC_DEADLINE", "600"))    # per wait
SECTIONS = os.environ.get("EXEC_SECTIONS", "rate scheduled rss output") \
    .replace(",", " ").split()
LINE = 80
TRUE = "/bin/true"

GOAL_PCT_XARGS = 80.0
GOAL_CPU_US = 100.0
GOAL_RSS = 8 * 1024
GOAL_LINES = 200000.0
GOAL_SUBMIT_PCT = 70.0

ROWS = []
_work = tempfile.mkdtemp(prefix="corod-bench-exec.")
atexit.register(shutil.rmtree, _work, True)


def commands_dir():
    d = os.path.join(_work, "commands")
    if os.path.isdir(d):
        return d
    os.mkdir(d)
    defs = {
        "true": "path = %s\n" % TRUE,
        "sleep": "path = /bin/sleep\nallow-args = any\n",
        "lines": 'path = "%s"\narg = "%s"\nallow-args = any\n' % (
            sys.executable, os.path.join(BENCH_DIR, "exec-lines.py")),
    }
    for name, text in defs.items():
        with open(os.path.join(d, name + ".conf"), "w") as f:
            f.write(text)
    return d


def daemon(args, nofile=None):
    """Not started: `with daemon(...) as d` starts it."""
    return Daemon(["--commands-dir", commands_dir()] + list(args),
                  nofile=nofile)


# --- /metrics and /proc --------------------------------------------------
def metrics(c):
    status, r, raw = c.request("GET", "/metrics")
    if status != 200:
        die("GET /metrics -> %d" % status)
    return raw.decode()


def finished_exec(c):
    """{outcome: count} of exec tasks finished since start."""
    out = {}
    for m in re.finditer(r'corod_tasks_finished_total\{kind="exec",'
                         r'outcome="(\w+)"\} (\d+)', metrics(c)):
        out[m.group(1)] = int(m.group(2))
    return out


def running(c):
    m = re.search(r"^corod_tasks_running (\S+)$", metrics(c), re.M)
    return int(float(m.group(1))) if m else -1


def thread_cpu(pid, tid):
    """utime + stime of one thread, in seconds."""
    with open("/proc/%d/task/%d/stat" % (pid, tid)) as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def wait_for(what, pred, limit=DEADLINE, step=0.02):
    t0 = time.monotonic()
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() - t0 > limit:
            die("%s: not within %g s" % (what, limit))
        time.sleep(step)


def submit(c, specs, batch=BATCH):
    """POST specs in arrays of `batch`; the ids."""
    ids = []
    for i in range(0, len(specs), batch):
        body = c.json("POST", "/v1/tasks", specs[i:i + batch], expect=(201,))
        ids.extend(t["id"] for t in body["tasks"])
    return ids


def warm_up(c):
    """One exec, so the first spawn's one-time costs are not measured."""
    before = sum(finished_exec(c).values())
    submit(c, [{"kind": "exec", "params": {"command": "true"}}])
    wait_for("warm-up exec", lambda: sum(finished_exec(c).values()) > before)


# --- corod: N /bin/true --------------------------------------------------
def corod_rate(d, tag):
    """Submit N true tasks in batches, wait until all finished; tasks/s,
    and corod's CPU (all threads, loop thread) per task in µs."""
    c = d.client()
    warm_up(c)
    base = finished_exec(c)
    spec = {"kind": "exec", "params": {"command": "true"}}
    body = json.dumps([spec] * BATCH, separators=(",", ":")).encode()
    last = json.dumps([spec] * (N % BATCH or BATCH), separators=(",", ":")).encode()
    cpu0, loop0 = d.cpu_seconds(), thread_cpu(d.pid, d.pid)
    t0 = time.monotonic()
    sent = 0
    while sent < N:
        n = min(BATCH, N - sent)
        status, r, raw = c.request("POST", "/v1/tasks", body if n == BATCH else last)
        if status != 201:
            die("%s: POST /v1/tasks -> %d: %s" % (tag, status, raw[:300]))
        sent += n
    t_sub = time.monotonic() - t0

    def done():
        f = finished_exec(c)
        n_done = sum(f.values()) - sum(base.values())
        return f if n_done >= N else None
    f = wait_for("%s: %d exec tasks finished" % (tag, N), done, step=0.05)
    dt = time.monotonic() - t0
    cpu, loop = d.cpu_seconds() - cpu0, thread_cpu(d.pid, d.pid) - loop0
    ok = f.get("succeeded", 0) - base.get("succeeded", 0)
    comment("%s: %d tasks submitted in %.3f s (batches of %d), all finished "
            "in %.3f s, %d succeeded; corod CPU %.2f s (loop thread %.2f s), "
            "%.2f cores" % (tag, N, t_sub, BATCH, dt, ok, cpu, loop, cpu / dt))
    if ok != N:
        die("%s: %d of %d exec tasks did not succeed: %s" % (tag, N - ok, N, f))
    c.close()
    return N / dt, cpu / N * 1e6, loop / N * 1e6


# --- the peers -----------------------------------------------------------
ASYNCIO = r"""
import asyncio, sys, time

async def main(prog, n, conc):
    sem = asyncio.Semaphore(conc)
    bad = 0
    async def one():
        nonlocal bad
        async with sem:
            p = await asyncio.create_subprocess_exec(
                prog, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            await p.communicate()
            if p.returncode != 0:
                bad += 1
    t0 = time.monotonic()
    await asyncio.gather(*(one() for _ in range(n)))
    print("%f %d" % (time.monotonic() - t0, bad))

asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
"""

SPAWN = r"""
import os, sys, time
prog, n = sys.argv[1], int(sys.argv[2])
bad = 0
t0 = time.monotonic()
for _ in range(n):
    pid = os.posix_spawn(prog, [prog], {})
    if os.waitpid(pid, 0)[1] != 0:
        bad += 1
print("%f %d" % (time.monotonic() - t0, bad))
"""


def children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def peer_python(tag, code, args):
    cpu0 = children_cpu()
    out = subprocess.run([sys.executable, "-c", code] + [str(a) for a in args],
                         capture_output=True, text=True, timeout=DEADLINE)
    if out.returncode != 0:
        die("%s failed:\n%s" % (tag, out.stderr[-2000:]))
    dt, bad = out.stdout.split()
    dt = float(dt)
    comment("%s: %d runs of %s in %.3f s, %s failed; CPU (its own and its "
            "children's) %.2f s" % (tag, N, TRUE, dt, bad, children_cpu() - cpu0))
    if int(bad):
        die("%s: %s runs failed" % (tag, bad))
    return N / dt


def peer_xargs():
    cpu0 = children_cpu()
    t0 = time.monotonic()
    p = subprocess.run(["xargs", "-P", str(CONC), "-n", "1", TRUE],
                       input=b"x\n" * N, stdout=subprocess.DEVNULL,
                       timeout=DEADLINE)
    dt = time.monotonic() - t0
    if p.returncode != 0:
        die("xargs exited with status %d" % p.returncode)
    comment("xargs -P %d -n 1 %s: %d runs in %.3f s; CPU (xargs and its "
            "children) %.2f s" % (CONC, TRUE, N, dt, children_cpu() - cpu0))
    return N / dt


# --- sections ------------------------------------------------------------
def sec_rate():
    comment("rate: %d x %s, corod --max-running %d, peers %d at a time"
            % (N, TRUE, CONC, CONC))
    with daemon(["--max-running", str(CONC)]) as d:
        r_corod, cpu_us, loop_us = corod_rate(d, "corod")
    r_xargs = peer_xargs()
    r_aio = peer_python("asyncio create_subprocess_exec, Semaphore(%d), "
                        "output piped" % CONC, ASYNCIO, [TRUE, N, CONC])
    r_spawn = peer_python("serial posix_spawn + waitpid", SPAWN, [TRUE, N])
    result("exec_corod_rate", r_corod, "tasks/s")
    result("exec_xargs_rate", r_xargs, "tasks/s")
    result("exec_asyncio_rate", r_aio, "tasks/s")
    result("exec_posix_spawn_serial_rate", r_spawn, "tasks/s")
    pct = r_corod / r_xargs * 100
    result("exec_corod_pct_of_xargs", pct, "%")
    result("exec_corod_vs_asyncio", r_corod / r_aio, "x")
    result("exec_cpu_per_task", cpu_us, "us")
    result("exec_loop_cpu_per_task", loop_us, "us")
    ROWS.append(("exec /bin/true, tasks/s", "%.0f (xargs %.0f, asyncio %.0f)"
                 % (r_corod, r_xargs, r_aio), ">= 80 % of xargs, > asyncio",
                 verdict(pct >= GOAL_PCT_XARGS and r_corod > r_aio)))
    ROWS.append(("loop CPU per exec task", "%.0f us (all threads %.0f us)"
                 % (loop_us, cpu_us), "<= 100 us", verdict(loop_us <= GOAL_CPU_US)))
    return r_corod


def sec_scheduled(r_plain):
    comment("scheduled: %d echo tasks due in a day held in memory, then the "
            "rate run" % SCHEDULED)
    with daemon(["--max-running", str(CONC), "--window", "172800",
                 "--window-max", str(max(SCHEDULED, 100000))]) as d:
        c = d.client()
        rss0 = d.rss_bytes()
        t0 = time.monotonic()
        spec = {"kind": "echo", "params": {"message": "later"}, "delay": 86400}
        body = json.dumps([spec] * 1000, separators=(",", ":")).encode()
        left = SCHEDULED
        while left > 0:
            n = min(1000, left)
            status, r, raw = c.request("POST", "/v1/tasks", body if n == 1000 else
                                       json.dumps([spec] * n))
            if status != 201:
                die("scheduled: POST -> %d: %s" % (status, raw[:300]))
            left -= n
        h = c.json("GET", "/healthz")
        comment("scheduled: %d submitted in %.2f s; /healthz in_memory %s; "
                "RSS %.1f -> %.1f MiB" % (SCHEDULED, time.monotonic() - t0,
                                          h.get("in_memory"), rss0 / 2**20,
                                          d.rss_bytes() / 2**20))
        if (h.get("in_memory") or 0) < SCHEDULED:
            comment("WARNING: only %s of %d scheduled tasks in memory"
                    % (h.get("in_memory"), SCHEDULED))
        c.close()
        r, cpu_us, loop_us = corod_rate(d, "corod with %d scheduled" % SCHEDULED)
    result("exec_corod_rate_scheduled_%d" % SCHEDULED, r, "tasks/s")
    result("exec_loop_cpu_per_task_scheduled_%d" % SCHEDULED, loop_us, "us")
    if r_plain:
        result("exec_corod_rate_scheduled_pct", r / r_plain * 100, "%")
        ROWS.append(("rate with %d scheduled" % SCHEDULED, "%.0f tasks/s "
                     "(%.0f %% of without)" % (r, r / r_plain * 100),
                     "no drop (>= 90 %)", verdict(r / r_plain >= 0.9)))


def sec_rss():
    comment("rss: %d x sleep 60 at once, corod --max-running 0" % SLEEPERS)
    with daemon(["--max-running", "0"], nofile=65536) as d:
        c = d.client()
        warm_up(c)
        time.sleep(0.5)
        idle = d.rss_bytes()
        spec = {"kind": "exec", "params": {"command": "sleep", "args": ["60"]}}
        t0 = time.monotonic()
        ids = submit(c, [spec] * SLEEPERS)
        wait_for("rss: %d running" % SLEEPERS, lambda: running(c) >= SLEEPERS,
                 limit=120, step=0.1)
        t_run = time.monotonic() - t0
        time.sleep(1.0)
        full = d.rss_bytes()
        time.sleep(0.5)
        full = max(full, d.rss_bytes())
        nkids = len(children(d.pid))
        per = (full - idle) / SLEEPERS
        comment("rss: all %d running %.2f s after the first submission (%d "
                "child processes, %d fds open); VmRSS idle %.2f MiB, with "
                "them running %.2f MiB" % (SLEEPERS, t_run, nkids, d.open_fds(),
                                           idle / 2**20, full / 2**20))
        t0 = time.monotonic()
        for tid in ids:
            status, r, raw = c.request("POST", "/v1/tasks/%d/cancel" % tid)
            if status not in (200, 202):
                comment("WARNING: cancel %d -> %d" % (tid, status))
        wait_for("rss: cancel of %d" % SLEEPERS,
                 lambda: running(c) == 0 and not children(d.pid), limit=60, step=0.1)
        comment("rss: %d canceled, none running and no child left, in %.2f s; "
                "VmRSS after %.2f MiB" % (SLEEPERS, time.monotonic() - t0,
                                          d.rss_bytes() / 2**20))
        c.close()
    result("exec_rss_idle", idle / 2**20, "MiB")
    result("exec_rss_running_%d" % SLEEPERS, full / 2**20, "MiB")
    result("exec_rss_per_running_%d" % SLEEPERS, per, "bytes")
    ROWS.append(("RSS per running exec (%d)" % SLEEPERS, "%.0f bytes" % per,
                 "<= 8 KiB", verdict(per <= GOAL_RSS)))


def log_next(c, tid, since=0):
    """X-Log-Next once the log is read to its end from `since`: every line
    ever written (dropped ones included).  A since past the end answers
    itself, so the log is paged from a number known to exist; the cap
    keeps at most log-lines (10,000) of them, a page or two."""
    for _ in range(1000):
        status, r, raw = c.request("GET", "/v1/tasks/%d/log?since=%d"
                                   "&max_bytes=16777216" % (tid, since))
        v = r.getheader("X-Log-Next")
        if status != 200 or v is None:
            die("GET /v1/tasks/%d/log?since=%d -> %d, X-Log-Next %s"
                % (tid, since, status, v))
        if int(v) == since:
            return since
        since = int(v)
    die("the log of task %d did not end within 1000 pages" % tid)


class RssPeak(threading.Thread):
    """corod's peak VmRSS, sampled every 50 ms until stopped.  Past
    EXEC_RSS_LIMIT the task `tid` is canceled (on a connection of its
    own): output the loop takes faster than the store commits it waits in
    memory, and a big run must not take the machine's memory."""

    def __init__(self, d, tid=None):
        super().__init__(daemon=True)
        self.d, self.tid, self.exceeded = d, tid, False
        self.peak, self.halt = d.rss_bytes(), threading.Event()
        self.start()

    def run(self):
        while not self.halt.wait(0.05):
            try:
                self.peak = max(self.peak, self.d.rss_bytes())
            except (OSError, RuntimeError):
                return
            if self.peak > RSS_LIMIT and self.tid is not None and not self.exceeded:
                self.exceeded = True
                c = self.d.client()
                c.request("POST", "/v1/tasks/%d/cancel" % self.tid)
                c.close()

    def stop(self):
        self.halt.set()
        self.join()
        if self.exceeded:
            comment("WARNING: corod's VmRSS passed EXEC_RSS_LIMIT (%.0f MiB): "
                    "task %d canceled" % (RSS_LIMIT / 2**20, self.tid))
        return self.peak


def writer_alone(lines):
    """exec-lines.py into wc -l: the writer's own speed, lines/s."""
    t0 = time.monotonic()
    w = subprocess.Popen([sys.executable, os.path.join(BENCH_DIR, "exec-lines.py"),
                          str(lines)], stdout=subprocess.PIPE)
    out = subprocess.run(["wc", "-l"], stdin=w.stdout, capture_output=True,
                         timeout=DEADLINE)
    w.stdout.close()
    w.wait()
    dt = time.monotonic() - t0
    if int(out.stdout.split()[0]) != lines:
        die("exec-lines.py wrote %s lines, not %d" % (out.stdout.split()[0], lines))
    return lines / dt


def run_wrk(port, seconds):
    """wrk with bench/submit.lua: {rate, summary}."""
    cmd = ["wrk", "-t2", "-c32", "-d%ds" % seconds, "--timeout", "10s",
           "-s", os.path.join(BENCH_DIR, "submit.lua"),
           "http://127.0.0.1:%d/v1/tasks" % port]
    p = subprocess.run(["timeout", "--kill-after=5", str(seconds + 60)] + cmd,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = p.stdout.decode("utf-8", "replace")
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if p.returncode != 0 or not m:
        die("wrk exited with status %d:\n%s" % (p.returncode, out))
    summary = "%s req/s" % m.group(1)
    for pat in (r"\d+ requests in [^\n]*", r"Socket errors:[^\n]*",
                r"lua_non2xx \d+"):
        x = re.search(pat, out)
        if x:
            summary += ", " + x.group(0).strip()
    return {"rate": float(m.group(1)), "summary": summary}


def sec_output():
    lines = OUT_BYTES // LINE
    comment("output: exec-lines.py writing %d lines of %d bytes (%.2f GB); "
            "the writer alone into wc -l: %.0f lines/s"
            % (lines, LINE, lines * LINE / 1e9, writer_alone(lines)))
    with daemon([], nofile=65536) as d:
        c = d.client()
        warm_up(c)
        spec = {"kind": "exec", "params": {"command": "lines",
                                           "args": [str(lines)]}}
        rss0 = d.rss_bytes()
        cpu0, loop0 = d.cpu_seconds(), thread_cpu(d.pid, d.pid)
        t0 = time.monotonic()
        task = c.json("POST", "/v1/tasks", spec, expect=(201,))
        tid = task["id"]
        peak = RssPeak(d, tid)
        while task["state"] not in ("succeeded", "failed", "canceled"):
            if time.monotonic() - t0 > DEADLINE:
                die("output: task %d still %s after %g s" % (tid, task["state"], DEADLINE))
            task = c.json("GET", "/v1/tasks/%d?wait=30&version=%d" % (tid, task["version"]))
        t_final = time.time()
        wall = time.monotonic() - t0
        cpu, loop = d.cpu_seconds() - cpu0, thread_cpu(d.pid, d.pid) - loop0
        rss_peak = peak.stop()
        if task["state"] != "succeeded":
            die("output: task %d %s: %s" % (tid, task["state"], task.get("error")))
        started = parse_rfc3339_us(task["started_at"]) / 1e6
        ran = parse_rfc3339_us(task["finished_at"]) / 1e6 - started
        dt = t_final - started
        nlog = log_next(c, tid)
        comment("output: task %d: started_at -> finished_at %.3f s (the "
                "program ran and its output was read), started_at -> final "
                "state seen %.3f s (the lines committed), submission -> final "
                "%.3f s; its log counts %d lines (the program's %d and "
                "corod's own); corod CPU %.2f s (loop thread %.2f s); VmRSS "
                "%.1f MiB before, peak %.1f MiB"
                % (tid, ran, dt, wall, nlog, lines, cpu, loop, rss0 / 2**20,
                   rss_peak / 2**20))
        if nlog < lines:
            die("output: the log counts %d lines, fewer than the %d written" % (nlog, lines))
        rate = lines / dt
        result("exec_output_lines_rate", rate, "lines/s")
        result("exec_output_mibps", lines * LINE / dt / 2**20, "MiB/s")
        result("exec_output_read_rate", lines / ran, "lines/s")
        result("exec_output_rss_growth", (rss_peak - rss0) / 2**20, "MiB")
        ROWS.append(("output lines into the log", "%.0f lines/s" % rate,
                     ">= 200,000/s", verdict(rate >= GOAL_LINES)))

        if shutil.which("wrk") is None:
            comment("wrk not available (apt-get install wrk): submissions "
                    "during output not measured")
            ROWS.append(("submissions during output", "wrk not available",
                         ">= 70 % of idle", "-"))
            return
        idle = run_wrk(d.port, SUBMIT_SECONDS)
        # The same writer again; wrk once its output is flowing.
        task = c.json("POST", "/v1/tasks", spec, expect=(201,))
        tid = task["id"]
        peak = RssPeak(d, tid)
        wait_for("output: writer running", lambda: log_next(c, tid) > 10000,
                 limit=30, step=0.1)
        n0, t0 = log_next(c, tid), time.monotonic()
        busy = run_wrk(d.port, SUBMIT_SECONDS)
        alive = bool(children(d.pid))
        n1, t1 = log_next(c, tid, n0), time.monotonic()
        task = c.json("GET", "/v1/tasks/%d" % tid)
        ingesting = task["state"] == "running"
        if task["state"] not in ("succeeded", "failed", "canceled"):
            c.request("POST", "/v1/tasks/%d/cancel" % tid)
        wait_for("output: second writer final", lambda: c.json(
            "GET", "/v1/tasks/%d" % tid)["state"] in ("succeeded", "failed", "canceled"),
            step=0.1)
        rss_peak2 = peak.stop()
        during = (n1 - n0) / (t1 - t0)
        comment("output: wrk -t2 -c32 -d%ds -s submit.lua (durable single "
                "submissions): idle %s; while the writer wrote %s; %.0f lines/s "
                "committed to its log meanwhile; at wrk's end the program %s "
                "and the task was %s; VmRSS peak %.1f MiB"
                % (SUBMIT_SECONDS, idle["summary"], busy["summary"], during,
                   "still ran" if alive else "had exited", task["state"],
                   rss_peak2 / 2**20))
        if not ingesting:
            comment("WARNING: the task ended before wrk did: raise "
                    "EXEC_OUTPUT_BYTES or lower EXEC_SUBMIT_SECONDS")
        c.close()
    idle, busy = idle["rate"], busy["rate"]
    pct = busy / idle * 100
    result("exec_submit_idle_rate", idle, "req/s")
    result("exec_submit_during_output_rate", busy, "req/s")
    result("exec_submit_during_output_pct", pct, "%")
    result("exec_output_lines_rate_during_submits", during, "lines/s")
    ROWS.append(("submissions during output", "%.0f req/s (%.0f %% of idle "
                 "%.0f)" % (busy, pct, idle), ">= 70 % of idle",
                 verdict(pct >= GOAL_SUBMIT_PCT)))


def main():
    for s in SECTIONS:
        if s not in ("rate", "scheduled", "rss", "output"):
            die("unknown section %r in EXEC_SECTIONS" % s)
    comment("corod exec bench: sections %s; N %d, batch %d, concurrency %d"
            % (" ".join(SECTIONS), N, BATCH, CONC))
    r_plain = None
    if "rate" in SECTIONS:
        r_plain = sec_rate()
    if "scheduled" in SECTIONS:
        sec_scheduled(r_plain)
    if "rss" in SECTIONS:
        sec_rss()
    if "output" in SECTIONS:
        sec_output()
    table(ROWS)


if __name__ == "__main__":
    main()
