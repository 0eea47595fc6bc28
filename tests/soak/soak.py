#!/usr/bin/env python3
"""soak.py -- run corod under steady mixed load and check that its memory
and file descriptors stay flat.

    tests/soak/soak.py                  (SOAK_SECONDS=600 by default)
    SOAK_SECONDS=60 tests/soak/soak.py  (make soak runs the 600 s one)

Starts the real daemon (tests/lib/corod.py: COROD_BIN, COROD_WRAPPER and
COROD_TIMEOUT_MULT apply) and a loopback file server (tests/lib/fileserver.py)
to download from, then runs these loops on threads of their own, each on
its own keep-alive connection, until SOAK_SECONDS have passed:

  single     POST one spec: echo (delay 0-2 s), sleep, repeat (count 5),
             sequence, gather (with a download), download (some throttled,
             some cut after part of the body, resumed on the next attempt,
             some checked by sha256)
  batch      POST an array of 20 specs (all or none)
  cancel     POST a long sleep, an endless repeat or a slow download, and
             cancel one submitted 0.3-2 s earlier; cancel recent ids too
  delete     list finished top-level tasks, DELETE them
  list       GET /v1/tasks?limit=100 with If-None-Match (200 or 304), and
             a state filter
  task       GET /v1/tasks/ID (If-None-Match, or ?wait=0.5&version=V) and
             its /log
  follow     GET /v1/tasks/ID/log?follow=1 of a short repeat, to its end
  events     long-poll GET /v1/events?since=N&wait=5
  sse        GET /v1/events as text/event-stream for 10 s, then again
             from its Last-Event-ID
  metrics    GET /metrics and /healthz once a second

The submitters hold off while more than 3000 tasks are in the daemon's
memory (so the load is steady, not a growing backlog); a cleaner removes
finished download files.  Every request has a timeout; every loop stops
at the deadline.

Every SOAK_SAMPLE seconds (default: 5, or SOAK_SECONDS/15 if less) the
daemon's VmRSS (/proc/PID/status) and open descriptors (/proc/PID/fd) are
sampled.  At the end the load stops, what is unfinished is canceled, the
clients close, and the daemon is stopped with SIGTERM.  The checks:

  - RSS flat: the RSS at the end of the load minus the RSS at half time
    (each the median of the samples around that point) is below
    SOAK_RSS_GROWTH_MIB (default 4 MiB: over the second half of the
    10-minute run, about 36,000 tasks and 90,000 requests, a leak of
    120 bytes a task or 50 bytes a request exceeds it, while what grows
    legitimately stays well below it: sqlite's page caches fill as the
    database grows (at most 2 MiB for each of two connections; about
    1 MiB over the second half here), and the event history (5000
    events here) is full long before half time);
  - descriptors flat: once idle again, no more than at the start plus
    SOAK_FD_SLACK (4: a pipe pair the first download opens, and 2),
    not counting two kinds of sockets checked apart: the connections
    libcurl keeps open to the file server, no more than its cache holds
    (4 for each transfer at once, CURLMOPT_MAXCONNECTS' default, times
    max-downloads, 8); and sockets whose connection is gone (in no
    table of /proc/PID/net) that the daemon still holds: none
    (SOAK_DEAD_SOCKETS, 0; up to 5 were left before issue 12: curl
    connections in curl's cache that transfer.c had shut down, taking
    them for another transfer's spoiled one);
  - no 5xx answer and no failed request (timeouts, resets);
  - the daemon exits 0 on SIGTERM and PRAGMA integrity_check says ok.

It prints the samples and the figures (requests per second of each kind,
tasks created and finished) and exits 0 if every check passed.
tests/e2e/soak.py runs it for 45 s as part of make check.
"""

import collections
import http.client
import json
import os
import random
import re
import socket
import sqlite3
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from corod import Corod, net_sockets  # noqa: E402
from fileserver import FileServer, sha256_hex  # noqa: E402
from tap import scaled  # noqa: E402

MIB = 1024 * 1024
# Kinds of request, in the order they are reported.
KINDS = ("single", "batch", "cancel", "delete", "list", "task", "log",
         "follow", "events", "sse", "metrics", "healthz")
BACKLOG = 3000          # tasks in the daemon's memory before submitters wait


def env_num(name, default):
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return float(default)


class Stats:
    """Counts per request kind, shared by the loops."""

    def __init__(self):
        self.lock = threading.Lock()
        self.count = collections.Counter()
        self.status = collections.defaultdict(collections.Counter)
        self.failures = []          # (kind, what) of 5xx and failed requests
        self.nfail = 0
        self.tasks_submitted = 0
        self.sse_events = 0
        self.long_poll_events = 0

    def add(self, kind, status):
        with self.lock:
            self.count[kind] += 1
            self.status[kind][status] += 1

    def fail(self, kind, what):
        with self.lock:
            self.nfail += 1
            if len(self.failures) < 20:
                self.failures.append((kind, what))

    def total(self):
        with self.lock:
            return sum(self.count.values())


class Client:
    """One keep-alive connection of a loop; every request is bounded."""

    def __init__(self, port, stats, timeout=30):
        self.port = port
        self.stats = stats
        self.timeout = scaled(timeout)
        self.conn = None

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(self, kind, method, path, body=None, headers=None,
                ok=(200,)):
        """(status, headers, parsed body); None if the request failed.
        A status not in ok is a failure if it is 5xx, else counted."""
        hdrs = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(
                    "127.0.0.1", self.port, timeout=self.timeout)
            reused = self.conn.sock is not None
            try:
                self.conn.request(method, path, body=data, headers=hdrs)
                r = self.conn.getresponse()
                raw = r.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError,
                    ConnectionResetError) as e:
                # The server may close an idle keep-alive connection
                # between two requests: once more, on a fresh one.
                self.close()
                if attempt == 0 and reused:
                    continue
                self.stats.fail(kind, "%s %s: %r" % (method, path, e))
                return None
            except (OSError, http.client.HTTPException) as e:
                self.close()
                self.stats.fail(kind, "%s %s: %r" % (method, path, e))
                return None
        if r.will_close:
            self.close()
        self.stats.add(kind, r.status)
        if r.status >= 500:
            self.stats.fail(kind, "%s %s: %d %s" % (
                method, path, r.status, raw[:200]))
        parsed = None
        if raw and "json" in r.getheader("Content-Type", ""):
            try:
                parsed = json.loads(raw)
            except ValueError:
                self.stats.fail(kind, "%s %s: not JSON" % (method, path))
        elif raw:
            parsed = raw
        elif r.status not in ok:
            self.stats.fail(kind, "%s %s: unexpected %d %s" % (
                method, path, r.status, raw[:200]))
        return r.status, {k.lower(): v for k, v in r.getheaders()}, parsed


class Soak:
    def __init__(self, seconds, out=print):
        self.seconds = seconds
        self.out = out
        self.stats = Stats()
        self.stop_ev = threading.Event()
        self.recent = collections.deque(maxlen=2000)   # (id, version)
        self.targets = collections.deque(maxlen=500)   # (id, submitted at)
        self.in_memory = 0
        self.seq = 0
        self.lock = threading.Lock()
        self.samples = []
        self.rng = random.Random(1)
        self.d = None
        self.fs = None

    # --- specs --------------------------------------------------------------

    def _n(self):
        with self.lock:
            self.seq += 1
            return self.seq

    def download_spec(self, rng):
        n = self._n()
        size = rng.choice((4096, 65536, 262144))
        name = "soak-%d.bin" % (size // 4096 % 7)
        q = {"size": size}
        spec = {"kind": "download", "params": {"path": "soak/%d.bin" % n},
                "max_attempts": 3}
        r = rng.random()
        if r < 0.2:
            name = "drop-%d.bin" % n       # cut once, resumed
            q["drop"] = size // 2
        elif r < 0.3:
            q["rate"] = 1 << 20
        if rng.random() < 0.5:
            spec["params"]["sha256"] = sha256_hex(name, size)
        spec["params"]["url"] = self.fs.url(name, **q)
        return spec

    def spec(self, rng):
        r = rng.random()
        msg = "soak %d" % self._n()
        if r < 0.35:
            return {"kind": "echo", "params": {"message": msg},
                    "delay": rng.choice((0, 0, 0.5, 2))}
        if r < 0.55:
            return {"kind": "sleep",
                    "params": {"seconds": rng.choice((0.05, 0.2, 1))}}
        if r < 0.65:
            return {"kind": "repeat", "params": {
                "message": msg, "interval": 0.2, "count": 5}}
        if r < 0.75:
            return {"kind": "sequence", "params": {"tasks": [
                {"kind": "echo", "params": {"message": msg}},
                {"kind": "sleep", "params": {"seconds": 0.1}},
                {"kind": "echo", "params": {"message": msg}}]}}
        if r < 0.85:
            return {"kind": "gather", "params": {"tasks": [
                {"kind": "echo", "params": {"message": msg}},
                {"kind": "sleep", "params": {"seconds": 0.2}},
                self.download_spec(rng)]}}
        return self.download_spec(rng)

    def target_spec(self, rng):
        """Something that runs until canceled."""
        r = rng.random()
        if r < 0.4:
            return {"kind": "sleep", "params": {"seconds": 30}}
        if r < 0.8:
            return {"kind": "repeat", "params": {"message": "until canceled",
                                                 "interval": 0.5}}
        return {"kind": "download", "params": {
            "url": self.fs.url("slow.bin", size=4 << 20, rate=256 << 10),
            "path": "soak/slow-%d.bin" % self._n()}}

    def remember(self, tasks):
        for t in tasks:
            self.recent.append((t["id"], t.get("version")))

    # --- the loops ------------------------------------------------------------

    def loop(self, name, pause, body):
        """Run body(client, rng) every pause seconds until the deadline."""
        def run():
            c = Client(self.d.port, self.stats)
            rng = random.Random(name)
            try:
                while not self.stop_ev.is_set():
                    try:
                        body(c, rng)
                    except Exception as e:      # a bug of ours: report it
                        self.stats.fail(name, "loop raised %r" % e)
                        c.close()
                        self.stop_ev.wait(1)
                    self.stop_ev.wait(pause)
            finally:
                c.close()
        t = threading.Thread(target=run, name=name, daemon=True)
        t.start()
        return t

    def backlogged(self):
        return self.in_memory > BACKLOG

    def do_single(self, c, rng):
        if self.backlogged():
            return
        r = c.request("single", "POST", "/v1/tasks", self.spec(rng),
                      ok=(201,))
        if r and r[0] == 201:
            self.stats.tasks_submitted += 1
            self.remember([r[2]])

    def do_batch(self, c, rng):
        if self.backlogged():
            return
        specs = [self.spec(rng) for _ in range(20)]
        r = c.request("batch", "POST", "/v1/tasks", specs, ok=(201,))
        if r and r[0] == 201:
            self.stats.tasks_submitted += len(specs)
            self.remember(r[2]["tasks"])

    def do_cancel(self, c, rng):
        r = c.request("cancel", "POST", "/v1/tasks", self.target_spec(rng),
                      ok=(201,))
        if r and r[0] == 201:
            self.stats.tasks_submitted += 1
            self.targets.append((r[2]["id"], time.monotonic(),
                                 rng.uniform(0.3, 2)))
        now = time.monotonic()
        while self.targets and now - self.targets[0][1] > self.targets[0][2]:
            tid = self.targets.popleft()[0]
            c.request("cancel", "POST", "/v1/tasks/%d/cancel" % tid,
                      ok=(200, 202))
        if self.recent and rng.random() < 0.3:
            tid = rng.choice(self.recent)[0]
            c.request("cancel", "POST", "/v1/tasks/%d/cancel" % tid,
                      ok=(200, 202, 404, 409))

    def do_delete(self, c, rng):
        r = c.request("delete", "GET", "/v1/tasks?state=succeeded,failed,"
                      "canceled&parent=none&limit=25")
        if not r or r[0] != 200:
            return
        for t in r[2]["tasks"]:
            if self.stop_ev.is_set():
                break
            c.request("delete", "DELETE", "/v1/tasks/%d" % t["id"],
                      ok=(204, 404, 409))

    def do_list(self, c, rng, state={}):
        q = "/v1/tasks?limit=100"
        if rng.random() < 0.3:
            q += "&state=running,scheduled"
        h = {}
        if q in state:
            h["If-None-Match"] = state[q]
        r = c.request("list", "GET", q, headers=h, ok=(200, 304))
        if r and r[0] == 200 and "etag" in r[1]:
            state[q] = r[1]["etag"]

    def do_task(self, c, rng, etags={}):
        if not self.recent:
            return
        tid, version = rng.choice(self.recent)
        r = rng.random()
        if r < 0.4 and tid in etags:
            c.request("task", "GET", "/v1/tasks/%d" % tid,
                      headers={"If-None-Match": etags[tid]},
                      ok=(200, 304, 404))
        elif r < 0.6 and version:
            c.request("task", "GET", "/v1/tasks/%d?wait=0.5&version=%d" % (
                tid, version), ok=(200, 404))
        elif r < 0.8:
            c.request("log", "GET", "/v1/tasks/%d/log" % tid, ok=(200, 404))
        else:
            res = c.request("task", "GET", "/v1/tasks/%d" % tid,
                            ok=(200, 404))
            if res and res[0] == 200 and "etag" in res[1]:
                if len(etags) > 5000:
                    etags.clear()
                etags[tid] = res[1]["etag"]

    def do_follow(self, c, rng):
        r = c.request("follow", "POST", "/v1/tasks", {
            "kind": "repeat", "params": {"message": "followed",
                                         "interval": 0.1, "count": 5}},
            ok=(201,))
        if not r or r[0] != 201:
            return
        self.stats.tasks_submitted += 1
        # The answer ends when the task does (about 0.5 s).
        res = c.request("follow", "GET", "/v1/tasks/%d/log?follow=1" %
                        r[2]["id"])
        if res and res[0] == 200:
            lines = [x for x in res[2].split(b"\n")
                     if x.endswith(b"Z followed")]
            if len(lines) != 5:
                self.stats.fail("follow", "%d lines followed, not 5" %
                                len(lines))

    def do_events(self, c, rng, pos={}):
        q = "/v1/events?wait=5"
        if "next" in pos:
            q += "&since=%d" % pos["next"]
        r = c.request("events", "GET", q, ok=(200, 410))
        if r and r[0] == 200:
            pos["next"] = r[2]["next"]
            self.stats.long_poll_events += len(r[2]["events"])
        elif r and r[0] == 410:
            pos.pop("next", None)

    def do_sse(self, c, rng, pos={}):
        """One stream of about 10 s on a connection of its own."""
        s = socket.create_connection(("127.0.0.1", self.d.port),
                                     timeout=scaled(20))
        try:
            hdr = "GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" \
                  "Accept: text/event-stream\r\n" % self.d.port
            if "last" in pos:
                hdr += "Last-Event-ID: %d\r\n" % pos["last"]
            s.sendall((hdr + "\r\n").encode())
            f = s.makefile("rb")
            status = f.readline().split()
            code = int(status[1]) if len(status) > 1 else 0
            self.stats.add("sse", code)
            if code not in (200, 410):
                self.stats.fail("sse", "status %d" % code)
            if code != 200:
                pos.pop("last", None)
                return
            end = time.monotonic() + 10
            while time.monotonic() < end and not self.stop_ev.is_set():
                line = f.readline()
                if not line:
                    self.stats.fail("sse", "the stream ended")
                    break
                m = re.match(rb"^id: (\d+)", line)
                if m:
                    pos["last"] = int(m.group(1))
                    self.stats.sse_events += 1
        except OSError as e:
            self.stats.fail("sse", repr(e))
        finally:
            s.close()

    def do_metrics(self, c, rng):
        c.request("metrics", "GET", "/metrics")
        r = c.request("healthz", "GET", "/healthz")
        if r and r[0] == 200:
            self.in_memory = r[2]["in_memory"]

    def clean_downloads(self):
        """Remove finished download files (not .part) older than 5 s."""
        top = os.path.join(self.d.download_dir, "soak")
        while not self.stop_ev.wait(2):
            try:
                names = os.listdir(top)
            except OSError:
                continue
            now = time.time()
            for n in names:
                p = os.path.join(top, n)
                try:
                    if not n.endswith(".part") and \
                            now - os.stat(p).st_mtime > 5:
                        os.unlink(p)
                except OSError:
                    pass
            self.fs.reset()

    # --- measurement --------------------------------------------------------

    def sample(self, t0):
        pid = self.d.pid
        mem = {}
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                    mem[k] = int(v.split()[0]) * 1024
        rss = mem["VmRSS"]
        fds = len(os.listdir("/proc/%d/fd" % pid))
        s = {"t": time.monotonic() - t0, "rss": rss, "fds": fds,
             "anon": mem.get("RssAnon", 0), "file": mem.get("RssFile", 0),
             "shmem": mem.get("RssShmem", 0),
             "requests": self.stats.total(), "in_memory": self.in_memory,
             "tasks": self.stats.tasks_submitted}
        self.samples.append(s)
        return s

    def fd_kinds(self):
        """The daemon's descriptors by kind: "to the file server" (its
        TCP connections to our download server, told by the remote port
        in /proc/PID/net/tcp), socket, pipe, anon_inode:..., or the
        file's path."""
        pid = self.d.pid
        in_table = net_sockets(pid)
        to_fs = set(k for k, (table, remote) in in_table.items()
                    if table.startswith("tcp") and
                    remote.endswith(":%04X" % self.fs.port))
        kinds = collections.Counter()
        top = "/proc/%d/fd" % pid
        for n in os.listdir(top):
            try:
                t = os.readlink(os.path.join(top, n))
            except OSError:
                continue
            if t in to_fs:
                kinds["to the file server"] += 1
            elif t.startswith("socket:") and t not in in_table:
                # TCP gone (the peer reset it), the descriptor not closed
                kinds["socket without a connection"] += 1
            else:
                kinds[re.sub(r":\[\d+\]$", "", t)] += 1
        return kinds

    def metric_sum(self, text, name):
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def idle(self, c, timeout):
        """Cancel what is unfinished, wait until nothing is scheduled or
        running; True if that happened in time."""
        deadline = time.monotonic() + scaled(timeout)
        while time.monotonic() < deadline:
            r = c.request("final", "GET", "/v1/tasks?state=scheduled,running"
                          "&parent=none&limit=1000")
            if r is None or r[0] != 200:
                return False
            if not r[2]["tasks"]:
                return True
            for t in r[2]["tasks"]:
                c.request("final", "POST", "/v1/tasks/%d/cancel" % t["id"],
                          ok=(200, 202, 409))
            time.sleep(0.5)
        return False

    def last_download(self, c, timeout):
        r = c.request("final", "POST", "/v1/tasks", {
            "kind": "download", "params": {
                "url": self.fs.url("last.bin", size=1024),
                "path": "soak/last.bin"}}, ok=(201,))
        if r is None or r[0] != 201:
            return False
        deadline = time.monotonic() + scaled(timeout)
        while time.monotonic() < deadline:
            t = c.request("final", "GET", "/v1/tasks/%d" % r[2]["id"])
            if t is None or t[0] != 200:
                return False
            if t[2]["state"] in ("succeeded", "failed", "canceled"):
                return t[2]["state"] == "succeeded"
            time.sleep(0.1)
        return False

    # --- the run ----------------------------------------------------------

    def run(self):
        """Run the soak; returns a list of (ok, description, diag)."""
        checks = []
        self.fs = FileServer()
        self.d = Corod(None, name="soak", args=["--events-kept", "5000"])
        try:
            return self._run(checks)
        finally:
            self.stop_ev.set()
            self.d.close()
            self.fs.stop()

    def _run(self, checks):
        out = self.out
        period = env_num("SOAK_SAMPLE", min(5.0, max(1.0, self.seconds / 15)))
        time.sleep(scaled(1))
        t0 = time.monotonic()
        base = self.sample(t0)
        base_kinds = self.fd_kinds()
        loops = [
            ("single", 0.01, self.do_single),
            ("batch", 0.5, self.do_batch),
            ("cancel", 0.2, self.do_cancel),
            ("delete", 1.0, self.do_delete),
            ("list", 0.02, self.do_list),
            ("task", 0.01, self.do_task),
            ("follow", 1.0, self.do_follow),
            ("events", 0.0, self.do_events),
            ("sse", 0.5, self.do_sse),
            ("metrics", 1.0, self.do_metrics),
        ]
        threads = [self.loop(n, p, b) for n, p, b in loops]
        cleaner = threading.Thread(target=self.clean_downloads, daemon=True)
        cleaner.start()
        end = t0 + self.seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(period, left))
            if self.d.proc.poll() is not None:
                checks.append((False, "the daemon died during the load "
                               "(status %s)" % self.d.proc.returncode,
                               self.d.output_tail(40)))
                return checks
            self.sample(t0)
        loaded = list(self.samples)
        c = Client(self.d.port, self.stats)
        r = c.request("metrics", "GET", "/metrics")
        metrics = r[2].decode() if r and r[0] == 200 else ""
        self.stop_ev.set()
        for t in threads + [cleaner]:
            t.join(scaled(40))
        stuck = [t.name for t in threads if t.is_alive()]
        checks.append((not stuck, "every load loop ended (stuck: %s)" %
                       (", ".join(stuck) or "none"), None))
        quiet = self.idle(c, 60)
        checks.append((quiet, "the daemon is idle after the load", None))
        # One last download: starting a transfer makes libcurl drop the
        # connections of its cache that the server closed meanwhile.
        checks.append((self.last_download(c, 30),
                       "a download after the load succeeds", None))
        c.close()
        # Idle descriptors: the clients are gone; give the daemon a moment
        # to see them close.
        time.sleep(scaled(2))
        after = []
        for _ in range(3):
            after.append(self.sample(t0))
            time.sleep(0.5)
        idle_kinds = self.fd_kinds()

        # --- the figures -----------------------------------------------------
        out("samples (t in s; RSS and its anonymous, file and shared "
            "memory parts in MiB; open descriptors; requests/s since the "
            "previous sample; tasks in memory):")
        out("%8s %7s %7s %7s %7s %5s %7s %7s" % (
            "t", "rss", "anon", "file", "shmem", "fds", "req/s", "in_mem"))
        prev = None
        for s in self.samples:
            rate = ((s["requests"] - prev["requests"]) /
                    max(s["t"] - prev["t"], 1e-9)) if prev else 0.0
            out("%8.1f %7.1f %7.1f %7.1f %7.1f %5d %7.0f %7d" % (
                s["t"], s["rss"] / MIB, s["anon"] / MIB, s["file"] / MIB,
                s["shmem"] / MIB, s["fds"], rate, s["in_memory"]))
            prev = s
        dur = loaded[-1]["t"] if loaded else self.seconds

        def median(xs):
            xs = sorted(xs)
            return xs[len(xs) // 2] if xs else 0

        half = [s["rss"] for s in loaded if 0.4 * dur <= s["t"] <= 0.6 * dur]
        last = [s["rss"] for s in loaded if s["t"] >= 0.9 * dur]
        rss_half = median(half or [loaded[len(loaded) // 2]["rss"]])
        rss_end = median(last or [loaded[-1]["rss"]])
        growth = rss_end - rss_half
        bound = env_num("SOAK_RSS_GROWTH_MIB", 4) * MIB
        fd_slack = int(env_num("SOAK_FD_SLACK", 4))
        fd_idle = min(s["fds"] for s in after)
        # libcurl keeps finished connections in a cache of up to 4 per
        # transfer at once (CURLMOPT_MAXCONNECTS), max-downloads is 8.
        fs_conns = idle_kinds["to the file server"]
        fs_bound = 4 * 8
        # Sockets whose connection is gone that the daemon still holds.
        dead = idle_kinds["socket without a connection"]
        dead_bound = int(env_num("SOAK_DEAD_SOCKETS", 0))
        fd_other = sum(idle_kinds.values()) - fs_conns - dead
        fd_other_base = sum(base_kinds.values()) - \
            base_kinds["to the file server"] - \
            base_kinds["socket without a connection"]
        fd_max = max(s["fds"] for s in loaded)
        out("")
        out("figures over %.0f s of load:" % dur)
        out("  rss_start %.1f MiB, rss_half %.1f MiB (after warm-up), "
            "rss_end %.1f MiB, growth over the second half %+.2f MiB "
            "(bound %.1f), after the load %.1f MiB" % (
                base["rss"] / MIB, rss_half / MIB, rss_end / MIB,
                growth / MIB, bound / MIB, after[-1]["rss"] / MIB))
        out("  fds_start %d, fds_max under load %d, fds_idle_after %d: "
            "%d connections to the file server (bound %d), %d sockets "
            "without a connection (bound %d), %d others (bound %d)" % (
                base["fds"], fd_max, fd_idle, fs_conns, fs_bound, dead,
                dead_bound, fd_other, fd_other_base + fd_slack))
        diff = ["%s %+d" % (k, idle_kinds[k] - base_kinds[k])
                for k in sorted(set(base_kinds) | set(idle_kinds))
                if idle_kinds[k] != base_kinds[k]]
        out("  descriptors idle after vs start: %s" % (", ".join(diff) or
                                                        "the same"))
        st = self.stats
        for k in KINDS:
            if st.count[k]:
                out("  %-8s %8d requests %8.1f/s  %s" % (
                    k, st.count[k], st.count[k] / dur,
                    " ".join("%s:%d" % kv for kv in
                             sorted(st.status[k].items(),
                                    key=lambda kv: str(kv[0])))))
        out("  tasks submitted %d (%.1f/s); created %d, finished %d "
            "(corod_tasks_*_total); events: long-poll %d, sse %d" % (
                st.tasks_submitted, st.tasks_submitted / dur,
                self.metric_sum(metrics, "corod_tasks_created_total"),
                self.metric_sum(metrics, "corod_tasks_finished_total"),
                st.long_poll_events, st.sse_events))
        out("  requests in all %d (%.0f/s)" % (st.total(), st.total() / dur))
        try:
            out("  database %.1f MiB (+ WAL %.1f MiB) at the end: sqlite's "
                "page caches (2 MiB a connection, two connections) fill as "
                "it grows" % (os.path.getsize(self.d.db) / MIB,
                              os.path.getsize(self.d.db + "-wal") / MIB))
        except OSError:
            pass

        # --- the checks ------------------------------------------------------
        checks.append((growth < bound,
                       "RSS growth over the second half %.2f MiB < %.1f MiB"
                       % (growth / MIB, bound / MIB), None))
        checks.append((fd_other <= fd_other_base + fd_slack,
                       "open descriptors when idle again, but for sockets: "
                       "%d <= %d at the start + %d" % (
                           fd_other, fd_other_base, fd_slack), None))
        checks.append((dead <= dead_bound,
                       "sockets whose connection is gone, still open "
                       "when idle: %d <= %d" % (dead, dead_bound), None))
        checks.append((fs_conns <= fs_bound,
                       "connections libcurl keeps to the file server when "
                       "idle: %d <= %d" % (fs_conns, fs_bound), None))
        kinds_seen = [k for k in KINDS if st.count[k] == 0 and k != "final"]
        checks.append((not kinds_seen, "every kind of request was made "
                       "(missing: %s)" % (", ".join(kinds_seen) or "none"),
                       None))
        checks.append((st.nfail == 0, "no 5xx answer and no failed request "
                       "(%d)" % st.nfail,
                       "\n".join("%s: %s" % f for f in st.failures)))
        rc = self.d.stop(timeout=30, check=False)
        checks.append((rc == 0, "SIGTERM: exit status %s" % rc,
                       self.d.output_tail(20)))
        db = sqlite3.connect(self.d.db)
        try:
            ic = db.execute("PRAGMA integrity_check").fetchall()
        finally:
            db.close()
        checks.append((ic == [("ok",)], "PRAGMA integrity_check: %s" %
                       ic[:3], None))
        return checks


def main():
    seconds = env_num("SOAK_SECONDS", 600)
    checks = Soak(seconds).run()
    failed = 0
    print("")
    for ok, desc, diag in checks:
        print("%s %s" % ("PASS" if ok else "FAIL", desc))
        if not ok:
            failed += 1
            if diag:
                print("  " + diag.replace("\n", "\n  "))
    print("soak: %d of %d checks failed" % (failed, len(checks)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
