#!/usr/bin/env python3
"""bench/workers.py -- external workers (issue 15) side by side with beanstalkd.

corod's side speaks the contract of shared/API.md "External workers":
POST /v1/tasks with kind "external" and a "queue", POST
/v1/queues/{q}/claim {"worker", "max", "lease", "wait"}, POST
/v1/tasks/{id}/complete {"token"}.  A binary without them (a 400 or 404 to
the first external submission, claim or complete, tried once at the start)
gets one "# corod: external workers not available in this binary (...)" line and
its result lines are left out; beanstalkd's are measured all the same.

The peer is Debian's beanstalkd (1.12), the nearest job server in Debian,
started by this script on 127.0.0.1 (a free port) with its binlog in this
script's temporary directory: `beanstalkd -l 127.0.0.1 -p PORT -b DIR -f 0`.

Durability, each side at its most durable setting that still answers:
  corod      the default (--sync full): a submission's 201, a claim's answer
             (the lease is committed first) and a complete's 200 are sent
             after their commit reached the disk; commits that are ready
             together share one fsync (group commit, daemon/commit.c).
  beanstalkd -f 0: every put and every delete is appended to the binlog and
             fsync'd before its reply, one fsync per command (one thread,
             no group commit).  A reserve writes nothing: a reservation is
             not durable (after a restart the job is ready again and its
             TTR forgotten), where corod's claim is a durable lease.
             WORKERS_BS_FSYNC=50 is beanstalkd's own default (fsync at most
             every 50 ms, after the reply).

Sections (WORKERS_SECTIONS, default "rate batch latency hold"), each on a
fresh server:
  rate     WORKERS_N (50000) trivial tasks put beforehand (corod: JSON arrays
           of WORKERS_BATCH external specs {"params":{}}; beanstalkd: puts of
           "{}" pipelined WORKERS_BATCH at a time on one connection; both
           timed and printed as the fill rate), then WORKERS_CONC (32)
           workers, one connection each, claim(max 1) -> complete (corod) /
           reserve-with-timeout 0 -> delete (beanstalkd) until the queue is
           empty: tasks / (first "go" -> last complete).
  batch    the same with corod's claim max WORKERS_BATCH (100), then one
           complete per task.  beanstalkd has no batch reserve: its nearest is
           WORKERS_BATCH reserve-with-timeout 0 commands pipelined on the
           connection (one round trip, each job reserved alone by the server),
           then one delete per job as corod's completes: the same wire shape.
  latency  one worker waiting (corod: a claim held with wait 30; beanstalkd:
           a blocked `reserve`), then one submission (POST /v1/tasks / put):
           time from just before the submission is sent to the first byte of
           the worker's answer; WORKERS_LAT_N (1000) samples, WORKERS_LAT_GAP
           (0.01 s) after the claim is sent so it is held, 20 untimed first.
           Goal p99 <= 5 ms.
  hold     corod only: WORKERS_HOLDERS (10000) claims held (wait 60, claimed
           again when answered) on a queue nothing is submitted to, by one
           child process on raw non-blocking sockets (as bench/polling.py
           holds the feed's long-polls); corod's VmRSS growth, and durable
           single submissions per second (wrk -t2 -c32 -s bench/submit.lua,
           WORKERS_SUBMIT_SECONDS) with them held against the mean of the
           runs before and after.  Goal <= 10 % fewer.

The workers: WORKERS_CONC connections, one per worker, spread over
WORKERS_PROCS (4) client processes; each process drives its connections
from one selector (a worker is a generator: request out, answer in), with a
request writer and answer parser of its own for both protocols (beanstalk's
text lines; HTTP/1.1 keep-alive, Content-Length or chunked).  http.client
in threads costs about 64 us of client CPU per request here, this about
15: on 2 cores shared with the server, http.client rather than the server
would set corod's figure.  Both peers get the same processes and the same
kind of client; the clients' CPU is printed beside the server's.  Even so
an HTTP request with its JSON costs the client about 50 us here: 50,000
completes/s would take more than 2 cores of clients, so on this machine
the batched figure is a lower bound that the clients help set.

Prints result lines and a closing table against the issue's goals.  Small
run to see it work: WORKERS_N=2000 WORKERS_LAT_N=100 WORKERS_HOLDERS=500 \
WORKERS_SUBMIT_SECONDS=2 bench/workers.py
"""

import atexit
import json
import os
import re
import resource
import select
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import (BENCH_DIR, Daemon, comment, die, percentile, result,  # noqa: E402
                 table, verdict)  # noqa: E402

MIB = 1 << 20
N = int(os.environ.get("WORKERS_N", "50000"))
CONC = int(os.environ.get("WORKERS_CONC", "32"))
PROCS = max(1, min(int(os.environ.get("WORKERS_PROCS", "4")), CONC))
BATCH = int(os.environ.get("WORKERS_BATCH", "100"))
LAT_N = int(os.environ.get("WORKERS_LAT_N", "1000"))
LAT_GAP = float(os.environ.get("WORKERS_LAT_GAP", "0.01"))
LAT_WARM = 20
HOLDERS = int(os.environ.get("WORKERS_HOLDERS", "10000"))
HOLD_WAIT = 60
SUBMIT_SECONDS = int(os.environ.get("WORKERS_SUBMIT_SECONDS", "10"))
SECTIONS = os.environ.get("WORKERS_SECTIONS", "rate batch together latency hold") \
    .replace(",", " ").split()
PEERS = os.environ.get("WORKERS_PEERS", "corod beanstalkd").replace(",", " ").split()
DEADLINE = float(os.environ.get("WORKERS_DEADLINE", "300"))   # per wait
BS_BIN = os.environ.get("BEANSTALKD_BIN") or shutil.which("beanstalkd") \
    or "/usr/bin/beanstalkd"
BS_FSYNC = os.environ.get("WORKERS_BS_FSYNC", "0")
LEASE = 60          # corod's lease and beanstalkd's TTR: never reached here
QUEUE = b"wbench"

GOAL_RATE = 10000.0
GOAL_BATCH = 50000.0
GOAL_P99_MS = 5.0
GOAL_LOSS = 10.0

ROWS = []
FIG = {}            # (section, peer) -> figure, for the closing table
_work = None


def work_dir():
    global _work
    if _work is None:
        _work = tempfile.mkdtemp(prefix="corod-bench-workers.")
        atexit.register(shutil.rmtree, _work, True)
    return _work


# --- the wire ---------------------------------------------------------------
class Conn:
    """One TCP connection to 127.0.0.1 with a read buffer.  TCP_NODELAY:
    every request is one write, and its answer is awaited."""

    def __init__(self, port, timeout=DEADLINE):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()

    def fill(self):
        data = self.sock.recv(262144)
        if not data:
            raise ConnectionError("connection closed by the server")
        self.buf += data

    def readline(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            self.fill()

    def next(self, parse):
        """The next answer, as parse() cuts it from the buffer."""
        while True:
            r = parse(self.buf)
            if r is not None:
                return r
            self.fill()

    def close(self):
        self.sock.close()


def parse_beanstalk(buf):
    """One reply line (a RESERVED one with its job body, skipped) cut from
    buf, or None while incomplete."""
    i = buf.find(b"\r\n")
    if i < 0:
        return None
    line = bytes(buf[:i])
    end = i + 2
    if line.startswith(b"RESERVED "):
        end += int(line.rsplit(b" ", 1)[1]) + 2
        if len(buf) < end:
            return None
    del buf[:end]
    return line


def parse_http(buf):
    """One HTTP/1.1 answer (status, body) cut from buf, or None while
    incomplete; the body by Content-Length or chunked (without trailers)."""
    h = buf.find(b"\r\n\r\n")
    if h < 0:
        return None
    head = bytes(buf[:h])
    m = _CL.search(head)
    if m:
        end = h + 4 + int(m.group(1))
        if len(buf) < end:
            return None
        r = (int(head[9:12]), bytes(buf[h + 4:end]))
    elif _CHUNKED.search(head):
        pos, body = h + 4, bytearray()
        while True:
            e = buf.find(b"\r\n", pos)
            if e < 0:
                return None
            size = int(bytes(buf[pos:e]).split(b";")[0], 16)
            if size == 0:
                end = e + 4
                if len(buf) < end:
                    return None
                break
            if len(buf) < e + 2 + size + 2:
                return None
            body += buf[e + 2:e + 2 + size]
            pos = e + 2 + size + 2
        r = (int(head[9:12]), bytes(body))
    else:
        end = h + 4
        r = (int(head[9:12]), b"")
    del buf[:end]
    return r


_CL = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.I)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:[ \t]*chunked", re.I)


class Beanstalk(Conn):
    """The beanstalk protocol (doc/protocol.txt): text command lines,
    job bodies counted in bytes."""

    def cmd(self, line, expect):
        self.sock.sendall(line + b"\r\n")
        r = self.readline()
        if not r.startswith(expect):
            raise RuntimeError("beanstalkd: %r -> %r" % (line, r))
        return r

    def watch_only(self, tube):
        self.cmd(b"watch " + tube, b"WATCHING")
        self.cmd(b"ignore default", b"WATCHING")

    def reserved(self):
        """The answer to one reserve: a job id, or None for TIMED_OUT."""
        return reserved_id(self.next(parse_beanstalk))


def reserved_id(line):
    if line.startswith(b"RESERVED "):
        return line.split()[1]
    if line == b"TIMED_OUT":
        return None
    raise RuntimeError("beanstalkd: reserve -> %r" % line)


PUT = b"put 1024 0 %d 2\r\n{}\r\n" % LEASE


class Http(Conn):
    """HTTP/1.1 keep-alive POSTs of JSON, answers read by Content-Length
    (or chunked)."""

    def __init__(self, port, timeout=DEADLINE):
        super().__init__(port, timeout)
        self.head = b"Host: 127.0.0.1:%d\r\nContent-Type: application/json\r\n" % port

    def send_post(self, path, body):
        self.sock.sendall(b"POST %s HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n%s"
                          % (path, self.head, len(body), body))

    def answer(self):
        return self.next(parse_http)

    def post(self, path, body):
        self.send_post(path, body)
        return self.answer()


def problem(body):
    """A problem answer's detail (or the start of the body)."""
    try:
        return json.loads(body).get("detail") or body[:200].decode("utf-8", "replace")
    except (ValueError, AttributeError):
        return body[:200].decode("utf-8", "replace")


def claim_body(worker, maxn, wait):
    return json.dumps({"worker": worker, "max": maxn, "lease": LEASE,
                       "wait": wait}, separators=(",", ":")).encode()


def complete_path_body(claim):
    return (b"/v1/tasks/%d/complete" % claim["task"]["id"],
            json.dumps({"token": claim["token"]}, separators=(",", ":")).encode())


EXTERNAL = {"kind": "external", "queue": QUEUE.decode(), "params": {}}


# --- beanstalkd ---------------------------------------------------------------
def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Beanstalkd:
    """Debian's beanstalkd on 127.0.0.1, binlog in this script's temporary
    directory; stopped (SIGTERM, SIGKILL after 5 s) and its binlog removed
    by stop(), also at exit."""

    def __init__(self):
        self.proc = None
        self.dir = None
        atexit.register(self.stop)

    def start(self):
        for attempt in range(3):
            self.dir = tempfile.mkdtemp(prefix="bs.", dir=work_dir())
            binlog = os.path.join(self.dir, "binlog")
            os.mkdir(binlog)
            self.port = free_port()
            fsync = ["-F"] if BS_FSYNC == "never" else ["-f", BS_FSYNC]
            self.args = [BS_BIN, "-l", "127.0.0.1", "-p", str(self.port),
                         "-b", binlog] + fsync
            log = open(os.path.join(self.dir, "log"), "wb")
            self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log)
            log.close()
            t_end = time.monotonic() + 10
            while self.proc.poll() is None and time.monotonic() < t_end:
                try:
                    socket.create_connection(("127.0.0.1", self.port), 1).close()
                    return self
                except OSError:
                    time.sleep(0.02)
            with open(os.path.join(self.dir, "log"), "rb") as f:
                tail = f.read()[-1000:].decode("utf-8", "replace")
            self.stop()
            comment("beanstalkd did not listen (attempt %d): %s" % (attempt + 1, tail))
        die("beanstalkd would not start: %s" % " ".join(self.args))

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    @property
    def pid(self):
        return self.proc.pid

    def cpu_seconds(self):
        return proc_cpu(self.proc.pid)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def proc_cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- fills ------------------------------------------------------------------
def fill_beanstalkd(port, n):
    """n puts of "{}" into the tube, BATCH pipelined at a time; seconds."""
    c = Beanstalk(port)
    c.cmd(b"use " + QUEUE, b"USING")
    t0 = time.monotonic()
    left = n
    while left > 0:
        k = min(BATCH, left)
        c.sock.sendall(PUT * k)
        for _ in range(k):
            r = c.readline()
            if not r.startswith(b"INSERTED "):
                die("beanstalkd: put -> %r" % r)
        left -= k
    dt = time.monotonic() - t0
    c.close()
    return dt


def fill_corod(port, n):
    """n external tasks in JSON arrays of BATCH; seconds."""
    c = Http(port)
    full = json.dumps([EXTERNAL] * BATCH, separators=(",", ":")).encode()
    t0 = time.monotonic()
    left = n
    while left > 0:
        k = min(BATCH, left)
        body = full if k == BATCH else json.dumps([EXTERNAL] * k).encode()
        st, b = c.post(b"/v1/tasks", body)
        if st != 201:
            die("corod: POST /v1/tasks -> %d: %s" % (st, problem(b)))
        left -= k
    dt = time.monotonic() - t0
    c.close()
    return dt


# --- the worker child ----------------------------------------------------------
# A worker is a generator: it yields (request bytes, number of answers it
# waits for) and is sent the list of those answers.  One child process
# drives its workers' connections from one selector, so a request costs
# the client a parse and two system calls, not a thread switch.

def bs_worker(st, maxn):
    """reserve-with-timeout 0 (maxn of them pipelined) -> delete each, until
    one times out (the tube is empty)."""
    reserve = b"reserve-with-timeout 0\r\n" * maxn
    while True:
        replies = yield reserve, maxn
        st["rounds"] += 1
        ids = [reserved_id(r) for r in replies]
        for jid in ids:
            if jid is None:
                continue
            (r,) = yield b"delete %s\r\n" % jid, 1
            if r == b"DELETED":
                st["done"] += 1
                st["last"] = time.monotonic()
            else:
                st["errors"] += 1
                st["error"] = st["error"] or "delete -> %r" % r
        if None in ids:
            return


def corod_worker(st, maxn, name, port, together=False):
    """claim (max maxn, wait 0) -> complete each (together: all of a claim
    in one POST /v1/queues/{q}/complete), until a claim is empty."""
    host = b"Host: 127.0.0.1:%d\r\nContent-Type: application/json\r\n" % port

    def post(path, body):
        return (b"POST %s HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n%s"
                % (path, host, len(body), body), 1)

    claim = post(b"/v1/queues/%s/claim" % QUEUE, claim_body(name, maxn, 0))
    while True:
        ((code, b),) = yield claim
        st["rounds"] += 1
        if code != 200:
            st["errors"] += 1
            st["error"] = st["error"] or "claim -> %d: %s" % (code, problem(b))
            return
        claims = json.loads(b)["claims"]
        if not claims:
            return
        if together:
            body = json.dumps({"tasks": [{"id": cl["task"]["id"],
                                          "token": cl["token"]}
                                         for cl in claims]},
                              separators=(",", ":")).encode()
            ((code, b),) = yield post(b"/v1/queues/%s/complete" % QUEUE, body)
            if code == 200:
                ok = sum(1 for x in json.loads(b)["tasks"]
                         if x["status"] == 200)
                st["done"] += ok
                st["errors"] += len(claims) - ok
                st["last"] = time.monotonic()
            else:
                st["errors"] += len(claims)
                st["error"] = st["error"] or "complete -> %d: %s" % (code, problem(b))
            continue
        for cl in claims:
            ((code, b),) = yield post(*complete_path_body(cl))
            if code == 200:
                st["done"] += 1
                st["last"] = time.monotonic()
            else:
                st["errors"] += 1
                st["error"] = st["error"] or "complete -> %d: %s" % (code, problem(b))


def worker_child(cfg):
    """cfg["workers"] workers of one peer, each on a connection of its own,
    made before "ready"; they start on "go" (stdin) and run until the queue
    is empty; one JSON line of counts back."""
    peer, port, maxn = cfg["peer"], cfg["port"], cfg["max"]
    st = {"done": 0, "errors": 0, "rounds": 0, "last": 0.0, "error": None}
    sel = selectors.DefaultSelector()
    conns = []
    for i in range(cfg["workers"]):
        if peer == "beanstalkd":
            c = Beanstalk(port)
            c.watch_only(QUEUE)
            c.gen, c.parse = bs_worker(st, maxn), parse_beanstalk
        else:
            c = Http(port)
            c.gen = corod_worker(st, maxn, "wbench/%d-%d" % (os.getpid(), i), port,
                                 cfg.get("together", False))
            c.parse = parse_http
        c.got = []
        conns.append(c)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    if sys.stdin.readline().strip() != "go":
        return
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t_end = time.monotonic() + DEADLINE

    def advance(c, answers):
        """Send the worker its answers, write its next request; False once
        it has ended."""
        try:
            req, c.want = c.gen.send(answers)
            c.sock.sendall(req)
            return True
        except StopIteration:
            return False
        except Exception as e:
            st["errors"] += 1
            st["error"] = st["error"] or "%s: %s" % (type(e).__name__, e)
            return False

    live = 0
    for c in conns:
        if advance(c, None):
            sel.register(c.sock, selectors.EVENT_READ, c)
            live += 1
    while live and time.monotonic() < t_end:
        for key, _ in sel.select(1.0):
            c = key.data
            try:
                c.fill()
                while True:
                    r = c.parse(c.buf)
                    if r is None:
                        break
                    c.got.append(r)
                    if len(c.got) == c.want:
                        got, c.got = c.got, []
                        if not advance(c, got):
                            raise StopIteration
            except StopIteration:
                sel.unregister(c.sock)
                live -= 1
            except Exception as e:
                st["errors"] += 1
                st["error"] = st["error"] or "%s: %s" % (type(e).__name__, e)
                sel.unregister(c.sock)
                live -= 1
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    st["cpu"] = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    st["unfinished"] = live
    sys.stdout.write(json.dumps(st) + "\n")
    sys.stdout.flush()


def read_line(p, t_end, what):
    """A line from a child's stdout, bounded in time."""
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


def run_workers(peer, server, maxn, tag, together=False):
    """CONC workers over PROCS client processes until the queue is empty:
    (tasks done, seconds from go to the last complete)."""
    kids = []
    finished = False
    try:
        for i in range(PROCS):
            k = CONC // PROCS + (1 if i < CONC % PROCS else 0)
            cfg = {"peer": peer, "port": server.port, "workers": k, "max": maxn,
                   "together": together}
            kids.append(subprocess.Popen([sys.executable, os.path.abspath(__file__),
                                          "--worker-child", json.dumps(cfg)],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE))
        t_end = time.monotonic() + 60
        for p in kids:
            if read_line(p, t_end, tag).strip() != "ready":
                raise RuntimeError("%s: a client process was not ready" % tag)
        cpu0 = server.cpu_seconds()
        t0 = time.monotonic()
        for p in kids:
            p.stdin.write(b"go\n")
            p.stdin.flush()
        t_end = t0 + DEADLINE + 10
        outs = [json.loads(read_line(p, t_end, tag)) for p in kids]
        wall = time.monotonic() - t0
        cpu = server.cpu_seconds() - cpu0
        finished = True
    finally:
        # they exit once they have answered; on a failure or a signal
        # they are stopped at once
        for p in kids:
            if p.poll() is None:
                try:
                    p.wait(5 if finished else 0)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
    done = sum(o["done"] for o in outs)
    errors = sum(o["errors"] for o in outs)
    dt = max(o["last"] for o in outs) - t0
    comment("%s: %d workers in %d processes: %d done, %d errors, %d %s, "
            "last done at %.3f s (all clients returned at %.3f s); server CPU "
            "%.2f cores, clients %.2f cores" % (
                tag, CONC, len(kids), done, errors, sum(o["rounds"] for o in outs),
                "reserve round trips" if peer == "beanstalkd" else "claims",
                dt, wall, cpu / wall, sum(o["cpu"] for o in outs) / wall))
    firsterr = next((o["error"] for o in outs if o["error"]), None)
    if firsterr:
        comment("WARNING: %s: first error: %s" % (tag, firsterr))
    if sum(o["unfinished"] for o in outs):
        comment("WARNING: %s: %d workers still ran after %g s"
                % (tag, sum(o["unfinished"] for o in outs), DEADLINE))
    if done != N:
        comment("WARNING: %s: %d of %d tasks done: the rate is over those"
                % (tag, done, N))
    return done, dt


# --- corod ------------------------------------------------------------------
Corod = Daemon


def corod_probe():
    """None if this corod has external workers, else why not (the answer to
    the first external submission or claim that was a 400 or 404)."""
    with Corod() as d:
        c = Http(d.port)
        q = b"wbench-probe"
        st, b = c.post(b"/v1/tasks", json.dumps(
            {"kind": "external", "queue": q.decode(), "params": {}}).encode())
        if st in (400, 404):
            return "POST /v1/tasks {\"kind\": \"external\", \"queue\": ...} -> %d: %s" % (st, problem(b))
        if st != 201:
            die("corod: external submission -> %d: %s" % (st, problem(b)))
        st, b = c.post(b"/v1/queues/%s/claim" % q, claim_body("wbench/probe", 1, 1))
        if st in (400, 404):
            return "POST /v1/queues/{queue}/claim -> %d: %s" % (st, problem(b))
        claims = json.loads(b).get("claims") if st == 200 else None
        if not claims:
            die("corod: claim of the probe task -> %d: %s" % (st, b[:300]))
        st, b = c.post(*complete_path_body(claims[0]))
        if st in (400, 404):
            return "POST /v1/tasks/{id}/complete -> %d: %s" % (st, problem(b))
        if st != 200:
            die("corod: complete of the probe task -> %d: %s" % (st, problem(b)))
        c.close()
    return None


def server(peer, **kw):
    """Not started: `with server(...) as s` starts it."""
    if peer == "beanstalkd":
        return Beanstalkd()
    return Corod(**kw)


def describe(peer, s):
    if peer == "beanstalkd":
        return "beanstalkd pid %d port %d: %s" % (s.pid, s.port, " ".join(s.args))
    return "corod pid %d port %d, default durability" % (s.pid, s.port)


# --- sections -------------------------------------------------------------------
def sec_throughput(peers, sec):
    maxn = 1 if sec == "rate" else BATCH
    together = sec == "together"
    if together:
        # beanstalkd deletes one job per command: its figure is "batch"'s
        peers = [p for p in peers if p == "corod"]
        comment("---- %s: %d tasks put beforehand, %d workers, claim max %d -> "
                "one POST /v1/queues/{q}/complete for the claim's tasks"
                % (sec, N, CONC, maxn))
    else:
        comment("---- %s: %d tasks put beforehand, %d workers, %s" % (
            sec, N, CONC, "claim max 1 -> complete / reserve-with-timeout 0 -> delete"
            if maxn == 1 else "claim max %d -> complete each / %d pipelined "
            "reserve-with-timeout 0 -> delete each" % (maxn, maxn)))
    for peer in peers:
        tag = "workers_%s%s" % (peer, {"rate": "", "batch": "_batch",
                                       "together": "_batch_together"}[sec])
        with server(peer) as s:
            comment("%s: %s" % (tag, describe(peer, s)))
            if peer == "beanstalkd":
                t_fill = fill_beanstalkd(s.port, N)
                how = "puts pipelined %d at a time on one connection" % BATCH
            else:
                t_fill = fill_corod(s.port, N)
                how = "JSON arrays of %d on one connection" % BATCH
            comment("%s: fill: %d tasks in %.2f s = %.0f tasks/s (%s)"
                    % (tag, N, t_fill, N / t_fill, how))
            done, dt = run_workers(peer, s, maxn, tag, together)
        if sec == "rate":
            result("workers_%s_fill_rate" % peer, N / t_fill, "tasks/s")
        rate = done / dt
        result("%s_rate" % tag, rate, "tasks/s")
        FIG[(sec, peer)] = rate
    if ("corod" in peers and "beanstalkd" in peers):
        result("workers_corod_vs_beanstalkd%s" % ("" if sec == "rate" else "_batch"),
               FIG[(sec, "corod")] / FIG[(sec, "beanstalkd")], "x")
    if together and ("batch", "beanstalkd") in FIG and ("together", "corod") in FIG:
        result("workers_corod_together_vs_beanstalkd_batch",
               FIG[("together", "corod")] / FIG[("batch", "beanstalkd")], "x")


def latency_beanstalkd(s):
    w = Beanstalk(s.port)
    w.watch_only(b"lat")
    p = Beanstalk(s.port)
    p.cmd(b"use lat", b"USING")
    samples, acks = [], []
    for i in range(LAT_WARM + LAT_N):
        w.sock.sendall(b"reserve-with-timeout 30\r\n")
        time.sleep(LAT_GAP)
        t0 = time.perf_counter()
        p.sock.sendall(PUT)
        t_claim, t_ack = wait_both(w.sock, p.sock, t0)
        jid = w.reserved()
        if jid is None:
            die("latency: beanstalkd's reserve timed out")
        if not p.readline().startswith(b"INSERTED"):
            die("latency: beanstalkd's put failed")
        w.cmd(b"delete %s" % jid, b"DELETED")
        if i >= LAT_WARM:
            samples.append(t_claim)
            acks.append(t_ack)
    w.close()
    p.close()
    return samples, acks


def latency_corod(s):
    w = Http(s.port)
    p = Http(s.port)
    path = b"/v1/queues/lat/claim"
    body = claim_body("wbench/lat", 1, 30)
    spec = json.dumps({"kind": "external", "queue": "lat", "params": {}}).encode()
    samples, acks = [], []
    for i in range(LAT_WARM + LAT_N):
        w.send_post(path, body)
        time.sleep(LAT_GAP)
        t0 = time.perf_counter()
        p.send_post(b"/v1/tasks", spec)
        t_claim, t_ack = wait_both(w.sock, p.sock, t0)
        st, b = w.answer()
        claims = json.loads(b).get("claims") if st == 200 else None
        if not claims:
            die("latency: corod's held claim -> %d: %s" % (st, b[:300]))
        st2, b2 = p.answer()
        if st2 != 201:
            die("latency: corod's submission -> %d: %s" % (st2, problem(b2)))
        st, b = p.post(*complete_path_body(claims[0]))
        if st != 200:
            die("latency: complete -> %d: %s" % (st, problem(b)))
        if i >= LAT_WARM:
            samples.append(t_claim)
            acks.append(t_ack)
    w.close()
    p.close()
    return samples, acks


def wait_both(wsock, psock, t0):
    """Milliseconds from t0 until the worker's socket and the submitter's
    became readable (the first byte of each answer)."""
    t_w = t_p = None
    t_end = time.monotonic() + 30
    while t_w is None or t_p is None:
        left = t_end - time.monotonic()
        if left <= 0:
            die("latency: no answer within 30 s")
        socks = [x for x, t in ((wsock, t_w), (psock, t_p)) if t is None]
        r, _, _ = select.select(socks, [], [], left)
        now = time.perf_counter()
        if wsock in r:
            t_w = (now - t0) * 1e3
        if psock in r:
            t_p = (now - t0) * 1e3
    return t_w, t_p


def sec_latency(peers):
    comment("---- latency: one worker waiting, one submission at a time, %d "
            "samples (%d untimed first), the claim held %g s before each"
            % (LAT_N, LAT_WARM, LAT_GAP))
    for peer in peers:
        tag = "workers_%s_latency" % peer
        with server(peer) as s:
            comment("%s: %s" % (tag, describe(peer, s)))
            f = latency_beanstalkd if peer == "beanstalkd" else latency_corod
            samples, acks = f(s)
        p50, p99, mx = (percentile(samples, 50), percentile(samples, 99),
                        max(samples))
        comment("%s: submission -> worker's answer p50 %.3f ms, p99 %.3f ms, "
                "max %.3f ms; the submission's own answer p50 %.3f ms, p99 "
                "%.3f ms" % (tag, p50, p99, mx, percentile(acks, 50),
                             percentile(acks, 99)))
        result("%s_p50" % tag, p50, "ms")
        result("%s_p99" % tag, p99, "ms")
        result("%s_max" % tag, mx, "ms")
        FIG[("latency", peer)] = (p50, p99)


# --- hold: 10,000 claims held --------------------------------------------------------
def holder_child(port):
    """Holds claims on raw non-blocking sockets, claiming again whenever one
    is answered; commands on stdin, JSON answers on stdout."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    sel = selectors.DefaultSelector()
    sel.register(sys.stdin.fileno(), selectors.EVENT_READ, None)
    conns = {}
    st = {"answers": 0, "claimed": 0, "errors": 0, "closed": 0, "status": {}}

    def request(i):
        body = claim_body("wbench/hold-%d" % i, 1, HOLD_WAIT)
        return (b"POST /v1/queues/wbench-idle/claim HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (port, len(body), body))

    class H:
        __slots__ = ("sock", "buf", "out", "connected", "busy", "req")

    def drop(h, err):
        st["errors" if err else "closed"] += 1
        try:
            sel.unregister(h.sock)
        except (KeyError, ValueError):
            pass
        h.sock.close()
        conns.pop(id(h), None)

    def send(h):
        if not h.out:
            h.out, h.busy = h.req, True
        try:
            n = h.sock.send(h.out)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError:
            drop(h, True)
            return
        h.out = h.out[n:]
        sel.modify(h.sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if h.out else 0), h)

    def readable(h):
        try:
            data = h.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            drop(h, True)
            return
        if not data:
            drop(h, False)
            return
        h.buf += data
        while True:
            e = h.buf.find(b"\r\n\r\n")
            if e < 0:
                return
            m = _CL.search(bytes(h.buf[:e]))
            n = int(m.group(1)) if m else 0
            if len(h.buf) < e + 4 + n:
                return
            code = bytes(h.buf[9:12]).decode()
            b = bytes(h.buf[e + 4:e + 4 + n])
            del h.buf[:e + 4 + n]
            st["answers"] += 1
            st["status"][code] = st["status"].get(code, 0) + 1
            if b'"token"' in b:
                st["claimed"] += 1
            h.busy = False
            if code == "200":       # an error answered again at once would spin
                send(h)

    def step(timeout):
        """True when stdin has a command."""
        cmd = False
        for key, ev in sel.select(timeout):
            h = key.data
            if h is None:
                cmd = True
                continue
            if id(h) not in conns:
                continue
            if not h.connected:
                if h.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    drop(h, True)
                    continue
                h.connected = True
                send(h)
                continue
            if ev & selectors.EVENT_WRITE and h.out:
                send(h)
            if ev & selectors.EVENT_READ:
                readable(h)
        return cmd

    def open_all(n):
        opened = errors = 0
        while opened + errors < n:
            for _ in range(min(500, n - opened - errors)):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                rc = s.connect_ex(("127.0.0.1", port))
                if rc not in (0, 115):          # EINPROGRESS
                    errors += 1
                    s.close()
                    continue
                h = H()
                h.sock, h.buf, h.out, h.connected, h.busy = s, bytearray(), b"", False, False
                h.req = request(len(conns))
                conns[id(h)] = h
                sel.register(s, selectors.EVENT_WRITE, h)
                opened += 1
            t_end = time.monotonic() + 5     # this wave connects before the next
            while time.monotonic() < t_end and any(not h.connected for h in conns.values()):
                step(0.05)
        return opened, errors

    def reply(obj):
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    while True:
        if not step(0.5):
            continue
        line = sys.stdin.readline()
        if not line:
            break
        msg = json.loads(line)
        if msg["cmd"] == "open":
            o, e = open_all(msg["n"])
            reply({"opened": o, "errors": e})
        elif msg["cmd"] == "stats":
            out = dict(st)
            out["open"] = len(conns)
            out["held"] = sum(1 for h in conns.values() if h.busy and not h.out)
            reply(out)
        elif msg["cmd"] == "quit":
            for h in list(conns.values()):
                h.sock.close()
            reply({"ok": True})
            break


class Holders:
    def __init__(self, port):
        self.p = subprocess.Popen([sys.executable, os.path.abspath(__file__),
                                   "--holder-child", str(port)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    @property
    def pid(self):
        return self.p.pid

    def cmd(self, timeout=120, **kw):
        self.p.stdin.write((json.dumps(kw) + "\n").encode())
        self.p.stdin.flush()
        return json.loads(read_line(self.p, time.monotonic() + timeout, "holders"))

    def stop(self):
        if self.p.poll() is None:
            try:
                self.cmd(cmd="quit", timeout=10)
            except Exception:
                pass
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def waiting_gauge(port):
    """corod's gauge of workers waiting on claims, if /metrics has one whose
    name says so: (name, value), else None."""
    c = Http(port)
    c.sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    st, b = c.answer()
    c.close()
    found = {}
    for line in b.decode("utf-8", "replace").splitlines():
        m = re.match(r"^(corod_\w*(?:worker|claim)\w*)(\{[^}]*\})? (\S+)$", line)
        if m and "wait" in m.group(1) and not re.search(
                r"_(bucket|sum|count|total|seconds)$", m.group(1)):
            found[m.group(1)] = found.get(m.group(1), 0.0) + float(m.group(3))
    return next(iter(found.items()), None)


def run_wrk(port):
    cmd = ["wrk", "-t2", "-c32", "-d%ds" % SUBMIT_SECONDS, "--timeout", "10s",
           "-s", os.path.join(BENCH_DIR, "submit.lua"),
           "http://127.0.0.1:%d/v1/tasks" % port]
    p = subprocess.run(["timeout", "--kill-after=5", str(SUBMIT_SECONDS + 60)] + cmd,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = p.stdout.decode("utf-8", "replace")
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if p.returncode != 0 or not m:
        die("wrk exited with status %d:\n%s" % (p.returncode, out))
    summary = "%s req/s" % m.group(1)
    for pat in (r"\d+ requests in [^\n]*", r"Socket errors:[^\n]*", r"lua_non2xx \d+"):
        x = re.search(pat, out)
        if x:
            summary += ", " + x.group(0).strip()
    return float(m.group(1)), summary


def sec_hold():
    comment("---- hold: %d claims held (wait %d) by one process on raw sockets; "
            "durable single submissions with wrk -t2 -c32 -d%ds -s submit.lua"
            % (HOLDERS, HOLD_WAIT, SUBMIT_SECONDS))
    if shutil.which("wrk") is None:
        comment("wrk not available (apt-get install wrk): hold not measured")
        ROWS.append(("submissions with %d claims held" % HOLDERS,
                     "wrk not available", "<= 10 % fewer", "-"))
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < HOLDERS + 64:
        comment("WARNING: the hard open-files limit %d is below %d holders + 64"
                % (hard, HOLDERS))
    with Corod(["--max-connections", str(HOLDERS + 1024),
                "--max-connections-per-client", "0"], nofile=65536) as d:
        comment("hold: %s" % describe("corod", d))
        base1, s1 = run_wrk(d.port)
        comment("hold: no claims held: %s" % s1)
        time.sleep(1)
        rss0 = d.rss_bytes()
        hol = Holders(d.port)
        try:
            t0 = time.monotonic()
            o = hol.cmd(cmd="open", n=HOLDERS)
            t_end = time.monotonic() + 60
            while True:
                s = hol.cmd(cmd="stats")
                if s["held"] >= HOLDERS:
                    break
                if time.monotonic() > t_end:
                    die("hold: only %d of %d claims sent and unanswered after "
                        "60 s (holders: %s)" % (s["held"], HOLDERS, s))
                time.sleep(0.2)
            # and corod holds them all, if it has a gauge that says so
            t_end = time.monotonic() + 10
            g = waiting_gauge(d.port)
            while g is not None and g[1] < HOLDERS and time.monotonic() < t_end:
                time.sleep(0.2)
                g = waiting_gauge(d.port)
            if g is not None and g[1] < HOLDERS:
                comment("WARNING: hold: corod's %s says %d, not %d" % (g[0], g[1], HOLDERS))
            t_open = time.monotonic() - t0
            time.sleep(1)
            rss1 = d.rss_bytes()
            comment("hold: %d connected (%d connect errors), %d claims sent and "
                    "unanswered after %.2f s; corod's gauge %s; VmRSS %.1f -> "
                    "%.1f MiB" % (o["opened"], o["errors"], s["held"], t_open,
                                  "%s %d" % g if g else "(none found in /metrics)",
                                  rss0 / MIB, rss1 / MIB))
            cpu0, hcpu0 = d.cpu_seconds(), proc_cpu(hol.pid)
            held, sh = run_wrk(d.port)
            s = hol.cmd(cmd="stats")
            comment("hold: %d claims held: %s; the holders saw %d answers (%d "
                    "with a task), %d errors, %d closed, statuses %s; holders' "
                    "CPU %.2f s" % (HOLDERS, sh, s["answers"], s["claimed"],
                                    s["errors"], s["closed"], s["status"],
                                    proc_cpu(hol.pid) - hcpu0))
            if s["claimed"]:
                comment("WARNING: hold: %d held claims got a task" % s["claimed"])
        finally:
            hol.stop()
        time.sleep(1)
        base2, s2 = run_wrk(d.port)
        comment("hold: after the holders closed: %s" % s2)
    base = (base1 + base2) / 2
    loss = (1 - held / base) * 100
    grow = (rss1 - rss0) / MIB
    result("workers_hold_rss_growth", grow, "MiB")
    result("workers_hold_rss_per_worker", (rss1 - rss0) / HOLDERS, "bytes")
    result("workers_hold_submit_base_rate", base, "req/s")
    result("workers_hold_submit_rate", held, "req/s")
    result("workers_hold_submit_loss", loss, "%")
    ROWS.append(("RSS with %d claims held" % HOLDERS,
                 "+%.1f MiB (%.0f B each)" % (grow, (rss1 - rss0) / HOLDERS),
                 "(feed's long-polls: < 64 MiB)", "-"))
    ROWS.append(("submissions with %d claims held" % HOLDERS,
                 "%.0f req/s = %+.1f %% of %.0f without" % (held, -loss, base),
                 "<= 10 % fewer", verdict(loss <= GOAL_LOSS)))


# --- the table -------------------------------------------------------------------
def rows(corod_off):
    def both(sec, fmt):
        parts = []
        for peer in ("corod", "beanstalkd"):
            if (sec, peer) in FIG:
                parts.append("%s %s" % (peer, fmt(FIG[(sec, peer)])))
            elif peer == "corod" and corod_off and peer in PEERS:
                parts.append("corod n/a")
        return ", ".join(parts)

    def v(sec, ok):
        return verdict(ok(FIG[(sec, "corod")])) if (sec, "corod") in FIG else "-"

    out = []
    if "rate" in SECTIONS:
        out.append(("claim(max 1) -> complete, %d workers" % CONC,
                    both("rate", lambda x: "%.0f/s" % x), ">= 10,000/s",
                    v("rate", lambda x: x >= GOAL_RATE)))
    if "batch" in SECTIONS:
        out.append(("claim(max %d) -> complete each, %d workers" % (BATCH, CONC),
                    both("batch", lambda x: "%.0f/s" % x), ">= 50,000/s",
                    v("batch", lambda x: x >= GOAL_BATCH)))
    if "together" in SECTIONS:
        out.append(("claim(max %d) -> one complete for all, %d workers"
                    % (BATCH, CONC),
                    "corod %s" % ("%.0f/s" % FIG[("together", "corod")]
                                  if ("together", "corod") in FIG else "n/a"),
                    ">= 50,000/s",
                    v("together", lambda x: x >= GOAL_BATCH)))
    if "latency" in SECTIONS:
        out.append(("submit -> claimed, one worker waiting",
                    both("latency", lambda x: "p50 %.2f p99 %.2f ms" % x),
                    "p99 <= 5 ms", v("latency", lambda x: x[1] <= GOAL_P99_MS)))
    if "hold" in SECTIONS and corod_off and "corod" in PEERS:
        out.append(("%d claims held" % HOLDERS, "corod n/a", "<= 10 % fewer "
                    "submissions", "-"))
    return out + ROWS


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--worker-child":
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        worker_child(json.loads(sys.argv[2]))
        return
    if len(sys.argv) == 3 and sys.argv[1] == "--holder-child":
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        holder_child(int(sys.argv[2]))
        return
    for s in SECTIONS:
        if s not in ("rate", "batch", "together", "latency", "hold"):
            die("unknown section %r in WORKERS_SECTIONS" % s)
    for p in PEERS:
        if p not in ("corod", "beanstalkd"):
            die("unknown peer %r in WORKERS_PEERS" % p)
    comment("workers: sections %s; peers %s; N %d, %d workers in %d client "
            "processes, batch %d, %d latency samples, %d holders; %d cores"
            % (" ".join(SECTIONS), " ".join(PEERS), N, CONC, PROCS, BATCH,
               LAT_N, HOLDERS, os.cpu_count()))
    peers = list(PEERS)
    corod_off = None
    if "corod" in peers:
        corod_off = corod_probe()
        if corod_off:
            comment("corod: external workers not available in this binary (%s): "
                    "corod's lines skipped" % corod_off)
            peers.remove("corod")
    if "beanstalkd" in peers and not os.access(BS_BIN, os.X_OK):
        comment("beanstalkd peer not available (%s; apt-get install beanstalkd): "
                "its lines skipped" % BS_BIN)
        peers.remove("beanstalkd")
    if "beanstalkd" in peers:
        v = subprocess.run([BS_BIN, "-v"], capture_output=True, text=True, timeout=10)
        comment("beanstalkd: %s, binlog fsync %s" % (
            v.stdout.strip() or v.stderr.strip(),
            "on every write before the reply (-f 0)" if BS_FSYNC == "0"
            else "-f %s" % BS_FSYNC))
    for sec in ("rate", "batch", "together"):
        if sec in SECTIONS and peers:
            sec_throughput(peers, sec)
    if "latency" in SECTIONS and peers:
        sec_latency(peers)
    if "hold" in SECTIONS and "corod" in peers:
        sec_hold()
    table(rows(corod_off))


if __name__ == "__main__":
    main()
