"""bench/lib.py — shared pieces of the Python benchmarks (stdlib only).

Daemon: starts the real corod binary ($COROD_BIN, default daemon/corod under
the repository root) with --listen 127.0.0.1:0 and a database and download
directory in a fresh temporary directory, reads the port from the
"listening on 127.0.0.1:PORT" line on its stderr, waits for GET /healthz 200.
Stopping it (SIGTERM, SIGKILL after 10 s) removes the temporary directory; this
also happens at interpreter exit and on SIGINT/SIGTERM.

Client: one keep-alive HTTP/1.1 connection to 127.0.0.1 (http.client).
"""

import atexit
import calendar
import http.client
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(BENCH_DIR)


def corod_bin():
    b = os.environ.get("COROD_BIN", "daemon/corod")
    if not os.path.isabs(b):
        b = os.path.join(REPO_ROOT, b)
    return b


def result(name, value, unit):
    """Print one result line: name value unit."""
    if isinstance(value, float):
        value = "%.3f" % value
    print("%s %s %s" % (name, value, unit), flush=True)


def comment(text):
    for line in str(text).splitlines() or [""]:
        print("# " + line, flush=True)


def verdict(ok):
    return "PASS" if ok else "MISS"


def table(rows, header=("figure", "measured", "target", "verdict")):
    """Print rows of (figure, measured, target, verdict) as a Markdown
    table in comments, the closing summary of a benchmark."""
    w = [max(len(r[i]) for r in list(rows) + [header]) for i in range(4)]
    fmt = "| %%-%ds | %%-%ds | %%-%ds | %%-%ds |" % tuple(w)
    comment("")
    comment(fmt % tuple(header))
    comment("|" + "|".join("-" * (x + 2) for x in w) + "|")
    for r in rows:
        comment(fmt % r)


def die(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)
    sys.exit(1)


class BenchTimeout(Exception):
    pass


_live = []


def _cleanup_all():
    for d in list(_live):
        d.stop()


def _on_signal(signum, frame):
    _cleanup_all()
    sys.exit(128 + signum)


atexit.register(_cleanup_all)
signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGINT, _on_signal)


class Daemon:
    def __init__(self, extra_args=(), nofile=None, db=None):
        self.bin = corod_bin()
        self.db = db            # None: TMP/corod.db; else a file or a URI
        if not os.access(self.bin, os.X_OK):
            die("no corod binary at %s (build it, or set COROD_BIN)" % self.bin)
        self.extra_args = list(extra_args)
        self.nofile = nofile
        self.proc = None
        self.tmp = None
        self.port = None

    def _preexec(self):
        if self.nofile:
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            want = self.nofile if hard == resource.RLIM_INFINITY else min(self.nofile, hard)
            if want > soft:
                resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    def start(self, timeout=20.0):
        self.tmp = tempfile.mkdtemp(prefix="corod-bench.")
        os.mkdir(os.path.join(self.tmp, "dl"))
        self.stderr_path = os.path.join(self.tmp, "stderr.log")
        errf = open(self.stderr_path, "wb")
        outf = open(os.path.join(self.tmp, "stdout.log"), "wb")
        args = [self.bin, "--listen", "127.0.0.1:0",
                "--db", self.db or os.path.join(self.tmp, "corod.db"),
                "--download-dir", os.path.join(self.tmp, "dl")] + self.extra_args
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=outf,
                                     stderr=errf, preexec_fn=self._preexec)
        errf.close()
        outf.close()
        _live.append(self)
        deadline = time.monotonic() + timeout
        pat = re.compile(rb"listening on 127\.0\.0\.1:(\d+)")
        while self.port is None:
            with open(self.stderr_path, "rb") as f:
                m = pat.search(f.read())
            if m:
                self.port = int(m.group(1))
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self._fail("did not report its port")
            time.sleep(0.05)
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/healthz")
                r = c.getresponse()
                r.read()
                c.close()
                if r.status == 200:
                    return self
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self._fail("never answered GET /healthz with 200")
            time.sleep(0.05)

    def _fail(self, what):
        tail = ""
        try:
            with open(self.stderr_path, "rb") as f:
                tail = f.read()[-3000:].decode("utf-8", "replace")
        except OSError:
            pass
        self.stop()
        die("corod %s; its stderr:\n%s" % (what, tail))

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                print("bench: corod %d did not stop on SIGTERM within 10 s, killing it"
                      % self.proc.pid, file=sys.stderr)
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self.tmp and os.path.isdir(self.tmp):
            shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp = None
        if self in _live:
            _live.remove(self)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # --- /proc readings -------------------------------------------------
    def rss_bytes(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self):
        """utime + stime of the daemon, in seconds."""
        with open("/proc/%d/stat" % self.pid) as f:
            s = f.read()
        fields = s[s.rindex(")") + 2:].split()
        # fields[0] is field 3 (state); utime is field 14, stime field 15
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def nofile_limit(self):
        with open("/proc/%d/limits" % self.pid) as f:
            for line in f:
                if line.startswith("Max open files"):
                    parts = line.split()
                    soft = parts[3]
                    return None if soft == "unlimited" else int(soft)
        return None

    def open_fds(self):
        return len(os.listdir("/proc/%d/fd" % self.pid))

    def client(self, timeout=60):
        return Client(self.port, timeout)


class Client:
    """A keep-alive HTTP/1.1 client to the daemon; reconnects once on a broken connection."""

    def __init__(self, port, timeout=60):
        self.port = port
        self.timeout = timeout
        self.conn = None

    def request(self, method, path, body=None, headers=None):
        h = dict(headers or {})
        data = None
        if body is not None:
            data = body if isinstance(body, (bytes, str)) else json.dumps(body, separators=(",", ":"))
            if isinstance(data, str):
                data = data.encode()
            h.setdefault("Content-Type", "application/json")
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, body=data, headers=h)
                r = self.conn.getresponse()
                raw = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return r.status, r, raw
            except (http.client.HTTPException, ConnectionError, BrokenPipeError):
                self.conn.close()
                self.conn = None
                if attempt == 1 or method not in ("GET", "HEAD"):
                    raise

    def json(self, method, path, body=None, expect=(200, 201)):
        status, r, raw = self.request(method, path, body)
        if status not in expect:
            raise RuntimeError("%s %s -> %d: %s" % (method, path, status, raw[:500].decode("utf-8", "replace")))
        return json.loads(raw)

    def list_all(self, query, deadline=None, limit=1000):
        """All tasks of GET /v1/tasks?QUERY, following next_cursor."""
        tasks = []
        cursor = None
        while True:
            q = "/v1/tasks?%s&limit=%d" % (query, limit)
            if cursor:
                q += "&cursor=" + urlquote(cursor)
            page = self.json("GET", q)
            tasks.extend(page.get("tasks", []))
            cursor = page.get("next_cursor")
            if not cursor:
                return tasks
            if deadline is not None and time.monotonic() > deadline:
                raise BenchTimeout("listing %s" % query)

    def close(self):
        if self.conn:
            self.conn.close()
            self.conn = None


def urlquote(s):
    from urllib.parse import quote
    return quote(str(s), safe="")


# --- times ---------------------------------------------------------------
_RFC3339 = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|z|[+-]\d{2}:\d{2})$")


def parse_rfc3339_us(s):
    """RFC 3339 time -> integer microseconds since the epoch (exact)."""
    m = _RFC3339.match(s)
    if not m:
        raise ValueError("not an RFC 3339 time: %r" % (s,))
    y, mo, d, hh, mi, ss = (int(m.group(i)) for i in range(1, 7))
    frac = (m.group(7) or "")
    us = int((frac + "000000")[:6]) if frac else 0
    secs = calendar.timegm((y, mo, d, hh, mi, ss, 0, 0, 0))
    tz = m.group(8)
    if tz not in ("Z", "z"):
        sign = 1 if tz[0] == "+" else -1
        secs -= sign * (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60)
    return secs * 1000000 + us


def format_rfc3339_us(epoch_us):
    secs, us = divmod(int(epoch_us), 1000000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + ".%06dZ" % us


def now_us():
    return time.time_ns() // 1000


def percentile(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    v = sorted(values)
    if not v:
        raise ValueError("no values")
    k = max(0, min(len(v) - 1, int(-(-p * len(v) // 100)) - 1))
    return v[k]
