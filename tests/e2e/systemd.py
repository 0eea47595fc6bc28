#!/usr/bin/env python3
"""systemd.py -- corod's systemd integration, without systemd as PID 1.

The notify protocol read from a datagram socket of our own (READY with
the service already answering and interrupted tasks recovered, STATUS,
WATCHDOG with and without WATCHDOG_PID, RELOADING/READY around SIGHUP,
STOPPING, an abstract socket name); a graceful stop answering held
requests and rescheduling running tasks at the next start, and a stop
that overruns stop-timeout; several listeners (TCP, IPv6, unix:) with
stale and busy socket files; socket activation by systemd-socket-activate
on a TCP and a Unix socket at once; the config file and -n; SIGHUP
reloading the live settings only, keeping everything on a bad file and
the flags over the file; STATE_DIRECTORY; a database corod cannot write
refused at start (run as nobody); priority prefixes and log-level; the
unit files through systemd-analyze verify and security.
"""

import hashlib
import http.client
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from tap import TAP, scaled, timeout_mult  # noqa: E402
from corod import (Corod, DaemonError, WaitTimeout, corod_bin,  # noqa: E402
                   echo, free_port, is_problem, sleep)
from fileserver import FileServer, sha256_hex  # noqa: E402

FINAL = ("succeeded", "failed", "canceled")
SRCDIR = os.environ.get("COROD_SRCDIR") or os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))))
UNITDIR = os.path.join(SRCDIR, "systemd")
# What a service manager may have put in our own environment: a daemon
# started here gets only what the test gives it.
SD_VARS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_PID",
           "LISTEN_FDS", "LISTEN_FDNAMES", "STATE_DIRECTORY")
# What systemd-socket-activate must pass on to the daemon besides.
PASS_VARS = ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "LD_PRELOAD",
             "LD_LIBRARY_PATH", "VALGRIND_OPTS")
PRIO_RE = re.compile(r"^<([3-7])>")
INTERRUPTED_RE = (r"interrupted: the daemon stopped during attempt %d; "
                  r"rescheduled")

t = TAP("systemd")


# --- the notify protocol, from the manager's side ----------------------------

class Msg:
    """One datagram: its text, KEY=value fields, sender pid, arrival."""

    def __init__(self, data, pid):
        self.at = time.monotonic()
        self.text = data.decode("utf-8", "replace")
        self.pid = pid
        self.fields = {}
        for line in self.text.split("\n"):
            k, sep, v = line.partition("=")
            if sep:
                self.fields[k] = v

    def __repr__(self):
        return "Msg(%r, pid=%s)" % (self.text, self.pid)


class Notify:
    """An AF_UNIX datagram socket with SO_PASSCRED, as systemd binds for
    NOTIFY_SOCKET; a thread collects what arrives in .msgs."""

    def __init__(self, abstract=False):
        self.dir = tempfile.mkdtemp(prefix="corod-notify-")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        if abstract:
            name = "corod-e2e-%d-%s" % (os.getpid(), os.urandom(4).hex())
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            self.address = os.path.join(self.dir, "notify.sock")
            self.sock.bind(self.address)
        self.sock.settimeout(0.1)
        self.msgs = []
        self.cond = threading.Condition()
        self.closed = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        t.cleanups.append(self.close)

    def _run(self):
        creds = struct.calcsize("iII")
        while not self.closed:
            try:
                data, anc, _, _ = self.sock.recvmsg(
                    4096, socket.CMSG_SPACE(creds))
            except socket.timeout:
                continue
            except OSError:
                return
            pid = None
            for level, kind, cdata in anc:
                if level == socket.SOL_SOCKET and \
                        kind == socket.SCM_CREDENTIALS and \
                        len(cdata) >= creds:
                    pid = struct.unpack("iII", cdata[:creds])[0]
            with self.cond:
                self.msgs.append(Msg(data, pid))
                self.cond.notify_all()

    def env(self, **more):
        e = {"NOTIFY_SOCKET": self.address}
        e.update(more)
        return e

    def texts(self, start=0):
        with self.cond:
            return [m.text for m in self.msgs[start:]]

    def wait(self, pred, timeout, start=0, proc=None, desc="a message"):
        """(index, msg) of the first message from start on with pred(msg);
        WaitTimeout after timeout (scaled) s, DaemonError if proc died."""
        deadline = time.monotonic() + scaled(timeout)
        with self.cond:
            while True:
                for i in range(start, len(self.msgs)):
                    if pred(self.msgs[i]):
                        return i, self.msgs[i]
                if proc is not None and proc.poll() is not None:
                    raise DaemonError("the daemon exited (status %s) before "
                                      "sending %s; got %r" % (
                                          proc.returncode, desc,
                                          [m.text for m in self.msgs[start:]]))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise WaitTimeout("no %s within %.1f s; got %r" % (
                        desc, scaled(timeout),
                        [m.text for m in self.msgs[start:]]))
                self.cond.wait(min(left, 0.1))

    def close(self):
        if self.closed:
            return
        self.closed = True
        self.thread.join(2)
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def is_ready(m):
    return m.fields.get("READY") == "1"


def has_key(key, value=None):
    return lambda m: key in m.fields and (value is None or
                                          m.fields[key] == value)


READY_RE = re.compile(r"^READY=1\nSTATUS=([^\n]+)\nMAINPID=(\d+)$")


# --- HTTP over a Unix socket -------------------------------------------------

class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=scaled(timeout))
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self.unix_path)
        except OSError:
            s.close()
            raise
        self.sock = s


# --- the daemon, with its command line and environment under control ---------

class Daemon(Corod):
    """Corod with:
      env        variables set for the daemon (SD_VARS are cleared first);
      listen     --listen value (None: no --listen flag);
      paths      False: no --db/--download-dir flags;
      port       the TCP port when no "listening on" line will be logged;
      pre        command put in front (systemd-socket-activate, sh -c);
      notify     a Notify: start() waits for READY=1 and calls
                 on_ready(self) at once (before any /healthz poll);
      activate   (port, unix path): the daemon is behind
                 systemd-socket-activate; start() makes the first
                 connection itself (GET /healthz, kept in .first)."""

    def __init__(self, tap, args=(), env=None, listen="127.0.0.1:0",
                 paths=True, port=None, pre=(), notify=None, on_ready=None,
                 activate=None, **kw):
        self.extra_env = dict(env or {})
        self.listen = listen
        self.paths = paths
        self.fixed_port = port
        self.pre = list(pre)
        self.notify = notify
        self.on_ready = on_ready
        self.activate = activate
        self.notify_mark = 0
        self.ready = None           # (index, Msg) of this start's READY=1
        self.ready_result = None    # what on_ready returned
        self.first = None           # activation: the triggering answer
        self.settle = True          # False when notices are not logged
        super().__init__(tap, args=args, **kw)

    def command(self):
        wrapper = self.wrapper()
        cmd = [corod_bin()]
        if self.listen is not None:
            cmd += ["--listen", self.listen]
        if self.paths:
            cmd += ["--db", self.db, "--download-dir", self.download_dir]
        pre = list(self.pre)
        if self.activate is not None:
            # systemd-socket-activate passes on only PATH, TERM, HOME and
            # what -E names.
            env = self._env()
            for k in sorted(set(self.extra_env) | set(PASS_VARS)):
                if k in env:
                    pre += ["-E", "%s=%s" % (k, env[k])]
        return pre + wrapper + cmd + self.args

    def _env(self):
        env = super()._env()
        for k in SD_VARS:
            env.pop(k, None)
        env.update(self.extra_env)
        return env

    def start(self, timeout=10):
        self.ready = None
        self.ready_result = None
        self.first = None
        if self.notify is not None:
            with self.notify.cond:
                self.notify_mark = len(self.notify.msgs)
        super().start(timeout=timeout)
        if self.settle:
            # The reader thread copies the output: wait for the start-up
            # line that follows the listening ones before reading them.
            try:
                self.wait_output(r"^<5>corod \S+ started, database ", 5)
            except WaitTimeout:
                pass            # the checks that read the output say so
        return self

    def _wait_listening(self, deadline, timeout):
        if self.activate is not None:
            port, path = self.activate
            self.wait_output(r"Listening on %s as \d+" % re.escape(path),
                             timeout)
            # The first connection is what makes it exec corod; it waits
            # in the backlog meanwhile.
            c = http.client.HTTPConnection("127.0.0.1", port,
                                           timeout=scaled(10))
            try:
                self.first = self.request("GET", "/healthz", conn=c,
                                          timeout=10)
            finally:
                c.close()
        if self.notify is not None:
            self.ready = self.notify.wait(
                is_ready, max(0.1, (deadline - time.monotonic()) /
                              timeout_mult()),
                start=self.notify_mark, proc=self.proc, desc="READY=1")
            if self.on_ready is not None:
                self.ready_result = self.on_ready(self)
        if self.fixed_port is not None:
            return self.fixed_port
        return super()._wait_listening(deadline, timeout)

    def msgs(self):
        """This start's notify messages."""
        with self.notify.cond:
            return list(self.notify.msgs[self.notify_mark:])

    def unix(self, path, method, url, body=None, headers=None, timeout=10):
        """One request on a fresh connection to the Unix socket path."""
        c = UnixHTTPConnection(path, timeout=timeout)
        try:
            return self.request(method, url, body, headers=headers,
                                timeout=timeout, conn=c)
        finally:
            c.close()

    def tcp(self, port, method, url, body=None, headers=None, timeout=10,
            host="127.0.0.1"):
        """One request on a fresh TCP connection to host:port."""
        c = http.client.HTTPConnection(host, port, timeout=scaled(timeout))
        try:
            return self.request(method, url, body, headers=headers,
                                timeout=timeout, conn=c)
        finally:
            c.close()

    def lines(self, whole=False):
        """The daemon's own output lines (not the harness's "=== start",
        not valgrind's "==PID==")."""
        return [x for x in self.output(whole=whole).splitlines()
                if not x.startswith("=== start") and not x.startswith("==")]

    def listening(self):
        """The addresses of this start's "listening on" lines."""
        return [m.group(1) for m in (re.search(r"listening on (.*)$", x)
                                     for x in self.lines()) if m]

    def hup(self):
        os.kill(self.proc.pid, signal.SIGHUP)

    def wait_exit(self, timeout):
        """The exit status (after the reader has drained), None on
        timeout."""
        return self._wait_exit(timeout)


def run_corod(args, cwd, timeout=10, env=None):
    """corod run to completion: (status, stdout, stderr)."""
    e = dict(os.environ)
    for k in SD_VARS:
        e.pop(k, None)
    e.update(env or {})
    p = subprocess.run([corod_bin()] + list(args), cwd=cwd, env=e,
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=scaled(timeout))
    return (p.returncode, p.stdout.decode("utf-8", "replace"),
            p.stderr.decode("utf-8", "replace"))


def start_on_free_port(d, setup, timeout=10, tries=3):
    """Start d on a port picked by free_port() (setup(port) puts it in
    the command line); another try with another port if someone took it
    meanwhile.  The port."""
    for k in range(tries):
        port = free_port()
        setup(port)
        try:
            d.start(timeout=timeout)
            return port
        except (DaemonError, WaitTimeout):
            if k == tries - 1 or \
                    "Address already in use" not in d.output():
                raise
            t.diag("port %d was taken meanwhile; another one" % port)
    return None


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def wait_until(pred, timeout, desc, interval=0.05):
    """Poll pred() until true (returned); WaitTimeout after timeout s."""
    deadline = time.monotonic() + scaled(timeout)
    last = None
    while True:
        last = pred()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise WaitTimeout("%s not true within %.1f s (last: %r)" % (
                desc, scaled(timeout), last))
        time.sleep(interval)


def running_count(d, ids):
    return sum(1 for i in ids if d.get(i)["state"] == "running")


def ipv6_loopback():
    """Whether [::1] can be bound here (containers often lack IPv6)."""
    if not socket.has_ipv6:
        return False
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        try:
            s.bind(("::1", 0))
        finally:
            s.close()
        return True
    except OSError:
        return False


# --- notify ------------------------------------------------------------------

@t.test(timeout=60)
def notify_protocol():
    with Notify() as n, Daemon(t, name="notify", start=False) as d:
        usock = os.path.join(d.dir, "api.sock")
        d.listen = "127.0.0.1:0,unix:" + usock
        # A first run leaves a task running in the store.
        d.start()
        rep = d.submit({"kind": "repeat", "params": {"message": "tick",
                                                      "interval": 0.2}})
        d.wait_state(rep["id"], "running", 5)
        d.kill9()

        def probe(dd):
            # At READY=1, at once, before anything else asks: the
            # listener answers and the interrupted task is recovered.
            h = dd.unix(usock, "GET", "/healthz", timeout=5)
            lg = dd.unix(usock, "GET", "/v1/tasks/%d/log" % rep["id"],
                         timeout=5)
            # The TCP port: its line was written before READY=1 was sent.
            line = dd.wait_output(r"listening on 127\.0\.0\.1:\d+", 2)
            port = int(re.search(r":(\d+)", line).group(1))
            return h, lg, dd.tcp(port, "GET", "/healthz", timeout=5)

        d.notify = n
        d.on_ready = probe
        d.extra_env = n.env(WATCHDOG_USEC="400000")
        d.start()
        h, lg, tcp = d.ready_result
        t.is_(h.status, 200, "GET /healthz over the Unix socket right "
              "when READY=1 arrives: 200")
        t.like(lg.body if isinstance(lg.body, str) else "",
               INTERRUPTED_RE % 1, "... and the task running at the kill "
               "already has its 'interrupted' log line (recovered before "
               "READY)")
        t.is_(tcp.status, 200, "... and over TCP, right after: 200")

        i, ready = d.ready
        m = READY_RE.match(ready.text)
        t.ok(m is not None, "the datagram is READY=1\\nSTATUS=<one "
             "line>\\nMAINPID=<pid>", diag=repr(ready.text))
        t.is_(m and int(m.group(2)), d.pid, "MAINPID is the daemon's pid")
        t.is_(ready.pid, d.pid, "SCM_CREDENTIALS: sent by the daemon")
        t.is_([x.text for x in d.msgs()[:i - d.notify_mark]], [],
              "READY=1 is the first datagram of the start")
        ready_status = m.group(1) if m else None
        t.diag("STATUS at READY: %s" % ready_status)

        # The watchdog: WATCHDOG_USEC=400000 -> a ping every 0.2 s.
        wd_start = i + 1
        n.wait(lambda x: sum(1 for y in n.msgs[wd_start:]
                             if y.text == "WATCHDOG=1") >= 5, 5,
               start=wd_start, proc=d.proc, desc="5 WATCHDOG=1")
        pings = [x.at for x in n.msgs[wd_start:] if x.text == "WATCHDOG=1"]
        gaps = sorted(b - a for a, b in zip(pings, pings[1:]))
        median = gaps[len(gaps) // 2]
        t.between(median, 0.15, 0.2 * timeout_mult() + 0.1,
                  "WATCHDOG=1 every WATCHDOG_USEC/2 (median gap, s)")
        t.ok(all(x.pid == d.pid for x in n.msgs[wd_start:]
                 if x.text == "WATCHDOG=1"), "... each from the daemon")

        # STATUS changes: a running sleep changes the summary, and the
        # new one is sent within the 5 s refresh.
        s = d.submit(sleep(30))
        d.wait_state(s["id"], "running", 5)
        changed_at = time.monotonic()
        _, st = n.wait(lambda x: set(x.fields) == {"STATUS"} and
                       x.fields["STATUS"] != ready_status, 8,
                       start=d.ready[0] + 1, proc=d.proc,
                       desc="a new STATUS=")
        t.ok("\n" not in st.text.strip() and st.fields["STATUS"],
             "a STATUS=<one line> update after tasks start running: %r" %
             st.fields["STATUS"])
        t.between(st.at - changed_at, 0, scaled(5) + 1.5,
                  "... within the 5 s refresh (s)")

        # SIGHUP: RELOADING=1, then READY=1 with STATUS and MAINPID.
        mark = len(n.msgs)
        d.hup()
        ri, _ = n.wait(has_key("RELOADING", "1"), 5, start=mark,
                       proc=d.proc, desc="RELOADING=1")
        ai, again = n.wait(is_ready, 5, start=ri + 1, proc=d.proc,
                           desc="READY=1 after RELOADING=1")
        m2 = READY_RE.match(again.text)
        t.ok(m2 is not None and int(m2.group(2)) == d.pid,
             "SIGHUP: RELOADING=1, then READY=1\\nSTATUS=...\\nMAINPID=pid",
             diag=repr(again.text))
        t.is_(d.request("GET", "/healthz").status, 200,
              "... and it still serves")
        t.is_(d.cancel(s["id"]).status, 202, "cancel the sleep: 202")
        d.cancel(rep["id"])

        # Only a changed STATUS is sent.
        statuses = []
        for x in d.msgs():
            if "STATUS" in x.fields:
                statuses.append((set(x.fields) == {"STATUS"},
                                 x.fields["STATUS"]))
        repeats = [b for a, b in zip(statuses, statuses[1:])
                   if b[0] and b[1] == a[1]]
        t.is_(repeats, [], "no STATUS=-only datagram repeats the status "
              "before it")

        # SIGTERM: STOPPING=1, exit 0, nothing after it.
        mark = len(n.msgs)
        rc = d.stop()
        t.is_(rc, 0, "SIGTERM: exit status 0")
        after = n.texts(mark)
        t.ok("STOPPING=1" in after, "STOPPING=1 was sent",
             diag=repr(after))
        if "STOPPING=1" in after:
            tail = after[after.index("STOPPING=1") + 1:]
            t.ok(not any("READY=1" in x for x in tail),
                 "no READY=1 after STOPPING=1", diag=repr(tail))
        t.ok(not os.path.exists(usock), "the Unix socket file is removed "
             "at exit")


@t.test(timeout=40)
def notify_variants():
    # An abstract socket; WATCHDOG_PID names another process: no pings.
    with Notify(abstract=True) as n:
        with Daemon(t, name="abstract", notify=n, env=n.env(
                WATCHDOG_USEC="200000",
                WATCHDOG_PID=str(os.getpid()))) as d:
            i, r = d.ready
            t.ok(READY_RE.match(r.text) and r.pid == d.pid,
                 "NOTIFY_SOCKET=@abstract: READY=1 from the daemon",
                 diag=repr(r.text))
            time.sleep(1.0)
            got = [x.text for x in d.msgs() if x.text == "WATCHDOG=1"]
            t.is_(len(got), 0, "WATCHDOG_PID of another process: no "
                  "WATCHDOG=1 in 1 s (WATCHDOG_USEC=200000)")
            mark = len(n.msgs)
            t.is_(d.stop(), 0, "SIGTERM: exit status 0")
            t.ok("STOPPING=1" in n.texts(mark), "STOPPING=1 on the "
                 "abstract socket")

    # WATCHDOG_PID equal to the daemon's pid (sh exports $$, then execs).
    with Notify() as n:
        with Daemon(t, name="watchdog-pid", notify=n,
                    pre=["sh", "-c", 'WATCHDOG_PID=$$; export WATCHDOG_PID;'
                         ' exec "$@"', "sh"],
                    env=n.env(WATCHDOG_USEC="200000")) as d:
            i, r = d.ready
            n.wait(lambda x: sum(1 for y in n.msgs[i + 1:]
                                 if y.text == "WATCHDOG=1") >= 3, 3,
                   start=i + 1, proc=d.proc, desc="3 WATCHDOG=1")
            t.ok(True, "WATCHDOG_PID equal to its pid: WATCHDOG=1 pings")
            t.is_(r.pid, d.pid, "... from the daemon (the pid sh exec'd)")
            t.is_(d.stop(), 0, "SIGTERM: exit status 0")

    # No NOTIFY_SOCKET (but WATCHDOG_USEC): it just works, no warnings.
    with Daemon(t, name="no-notify", env={"WATCHDOG_USEC": "200000"}) as d:
        x = d.submit(echo("plain"))
        t.is_(d.wait_state(x["id"], FINAL, 5)["state"], "succeeded",
              "without NOTIFY_SOCKET it serves and runs tasks")
        t.is_(d.stop(), 0, "... and exits 0 on SIGTERM")
        bad = [x for x in d.lines() if re.match(r"^<[34]>", x)]
        t.is_(bad, [], "... with no warning or error logged")

    # A NOTIFY_SOCKET that is not a Unix socket path: warned, ignored.
    with Daemon(t, name="bad-notify",
                env={"NOTIFY_SOCKET": "relative/notify"}) as d:
        t.is_(d.request("GET", "/healthz").status, 200,
              "NOTIFY_SOCKET=relative/notify: it still starts and serves")
        t.ok(any(x.startswith("<4>") and "NOTIFY_SOCKET" in x
                 for x in d.lines()), "... with a warning naming it",
             diag="\n".join(d.lines()))
        t.is_(d.stop(), 0, "... and exits 0")


# --- a graceful stop ---------------------------------------------------------

@t.test(timeout=60)
def graceful_stop():
    with Daemon(t, name="graceful", start=False) as d:
        usock = os.path.join(d.dir, "api.sock")
        d.listen = "127.0.0.1:0,unix:" + usock
        d.start()
        rep = d.submit({"kind": "repeat", "params": {"message": "tick",
                                                      "interval": 0.2}})
        slp = d.submit(sleep(4))
        later = d.submit(echo("later", 3600))
        d.wait_state(slp["id"], "running", 5)
        d.wait_for(lambda: sum(1 for x in d.log(rep["id"]) if x[1] == "tick")
                   >= 2, 5, desc="two ticks")

        held = {}

        def long_wait():
            c = d.connection(timeout=40)
            t0 = time.monotonic()
            try:
                r = d.request("GET", "/v1/tasks/%d?wait=30&version=%d" % (
                    later["id"], later["version"]), conn=c, timeout=40)
                held["wait"] = (r, time.monotonic())
            except Exception as e:      # noqa: BLE001 -- reported below
                held["wait"] = (e, time.monotonic())
            finally:
                held["wait_t0"] = t0
                c.close()

        def follow():
            c = UnixHTTPConnection(usock, timeout=40)
            got = b""
            try:
                c.request("GET", "/v1/tasks/%d/log?follow=1" % rep["id"])
                r = c.getresponse()
                held["follow_status"] = r.status
                while True:
                    chunk = r.read1(65536)
                    if not chunk:
                        break
                    got += chunk
                    held["follow_bytes"] = len(got)
                held["follow"] = ("ended", got, time.monotonic())
            except Exception as e:      # noqa: BLE001 -- reported below
                held["follow"] = (e, got, time.monotonic())
            finally:
                c.close()

        threads = [threading.Thread(target=long_wait, daemon=True),
                   threading.Thread(target=follow, daemon=True)]
        for th in threads:
            th.start()
        wait_until(lambda: held.get("follow_bytes", 0) > 0, 5,
                   "the follow streams")
        time.sleep(0.3)
        t.ok("wait" not in held and "follow" not in held,
             "a long wait and a log follow are held")
        t0 = time.monotonic()
        rc = d.stop()
        stop_took = time.monotonic() - t0
        for th in threads:
            th.join(scaled(10))
        t.is_(rc, 0, "SIGTERM with running tasks and held requests: exit 0")
        t.between(stop_took, 0, scaled(5), "... well within the 10 s "
                  "stop-timeout (s)")
        w, w_at = held.get("wait", (None, None))
        if isinstance(w, tuple):
            good, why = (w.status == 200 and w.body.get("id") ==
                         later["id"]), ""
            if w.status == 503:
                good, why = is_problem(w, 503)
            t.ok(good, "the held long wait was answered (HTTP %s) at the "
                 "stop, not cut off" % w.status, diag=why + "\n" +
                 w.describe())
            t.between(w_at - t0, 0, stop_took + 1.0,
                      "... as the daemon stopped, not after its 30 s (s)")
        else:
            t.fail("the held long wait was answered at the stop, not cut "
                   "off", diag=repr(w))
        f = held.get("follow", (None, b"", None))
        t.ok(f[0] == "ended", "the held log follow ended cleanly (chunked "
             "end, no truncation)", diag=repr(f[0]))
        t.ok(b" tick" in f[1], "... after streaming the worker's ticks")
        t.ok(not os.path.exists(usock), "the Unix socket file is removed")
        t.ok(any("corod stopped" in x for x in d.lines()),
             "'corod stopped' logged")

        # The next start reschedules what was running.
        d.start()
        x = d.wait_for(lambda: (lambda y: y if y["state"] == "running" and
                                y["attempt"] >= 2 else None)(d.get(rep["id"])),
                       5, desc="repeat running again")
        t.is_(x["attempt"], 2, "after the restart the repeat runs again, "
              "attempt 2")
        log = [line[1] for line in d.log(rep["id"])]
        t.ok(any(re.search(INTERRUPTED_RE % 1, line) for line in log),
             "its log says 'interrupted: the daemon stopped during attempt "
             "1; rescheduled'", diag="\n".join(log[-10:]))
        ticks = sum(1 for line in log if line == "tick")
        d.wait_for(lambda: sum(1 for y in d.log(rep["id"]) if y[1] == "tick")
                   > ticks, 5, desc="a new tick")
        t.ok(True, "... and it ticks again")
        y = d.wait_state(slp["id"], FINAL, 10)
        t.is_((y["state"], y["attempt"]), ("succeeded", 2),
              "the interrupted sleep ran again and succeeded, attempt 2")
        t.ok(any(re.search(INTERRUPTED_RE % 1, line[1])
                 for line in d.log(slp["id"])),
             "... its log has the 'interrupted' line too")
        t.is_(d.get(later["id"])["state"], "scheduled",
              "the delayed task is still scheduled")
        d.cancel(rep["id"])
        d.wait_state(rep["id"], FINAL, 5)
        t.is_(d.stop(), 0, "SIGTERM: exit status 0")


@t.test(timeout=30)
def stop_timeout_overrun():
    # A stop-timeout of 10 µs cannot be met: the process must not hang or
    # claim success.
    with Daemon(t, name="stop-timeout", args=["--stop-timeout",
                                              "0.00001"]) as d:
        later = d.submit(echo("later", 3600))
        c = d.connection(timeout=20)
        c.request("GET", "/v1/tasks/%d?wait=30&version=%d" % (
            later["id"], later["version"]))
        time.sleep(0.3)
        os.kill(d.pid, signal.SIGTERM)
        rc = d.wait_exit(10)
        c.close()
        t.ok(rc is not None and rc != 0, "a stop longer than stop-timeout: "
             "a non-zero exit status (%r)" % (rc,))
        t.ok(any(x.startswith("<3>") and "stop-timeout" in x
                 for x in d.lines()), "... with an error naming "
             "stop-timeout", diag="\n".join(d.lines()[-10:]))


# --- listeners ---------------------------------------------------------------

@t.test(timeout=40)
def listeners():
    with Daemon(t, name="listeners", start=False) as d:
        usock = os.path.join(d.dir, "api.sock")
        # A stale socket file: bound, then its owner went away.
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(usock)
        s.close()
        t.ok(os.path.exists(usock), "a stale socket file is there")
        v6 = ipv6_loopback()
        d.listen = "127.0.0.1:0, 127.0.0.1:0,unix:" + usock + \
            (",[::1]:0" if v6 else "")
        d.start()
        addrs = d.listening()
        tcp = [int(m.group(1)) for m in
               (re.match(r"^127\.0\.0\.1:(\d+)$", a) for a in addrs) if m]
        t.ok(len(set(tcp)) == 2, "two 'listening on 127.0.0.1:PORT' lines "
             "with distinct ports", diag=repr(addrs))
        t.ok("unix:" + usock in addrs, "'listening on unix:%s'" % usock,
             diag=repr(addrs))
        for p in tcp:
            t.is_(d.tcp(p, "GET", "/healthz").status, 200,
                  "GET /healthz on 127.0.0.1:%d: 200" % p)
        r = d.unix(usock, "GET", "/healthz")
        t.is_(r.status, 200, "GET /healthz over the Unix socket that "
              "replaced the stale file: 200")
        made = d.unix(usock, "POST", "/v1/tasks", echo("over unix", 3600))
        t.is_(made.status, 201, "a submission over the Unix socket: 201")
        if v6:
            six = [int(m.group(1)) for m in
                   (re.match(r"^\[::1\]:(\d+)$", a) for a in addrs) if m]
            t.ok(len(six) == 1, "'listening on [::1]:PORT'",
                 diag=repr(addrs))
            if six and made.status == 201:
                g = d.tcp(six[0], "GET", "/v1/tasks/%d" % made.body["id"],
                          host="::1")
                t.ok(g.status == 200 and g.body["params"]["message"] ==
                     "over unix", "... read back over [::1]",
                     diag=g.describe())
        else:
            t.skip("[::1]:0 listener", "this host cannot bind ::1")
        if tcp and made.status == 201:
            g = d.tcp(tcp[1], "GET", "/v1/tasks/%d" % made.body["id"])
            t.ok(g.status == 200 and g.body["params"]["message"] ==
                 "over unix", "... read back over the second TCP listener",
                 diag=g.describe())

        # A second corod on the same socket path: refused, file kept.
        with Daemon(t, name="busy", listen="127.0.0.1:0,unix:" + usock,
                    start=False) as e:
            try:
                e.start(timeout=10)
                t.fail("a second corod on a Unix socket in use fails to "
                       "start")
            except DaemonError:
                rc = e.wait_exit(5)
                t.is_(rc, 1, "a second corod on a Unix socket in use: "
                      "exit status 1")
                t.ok(any("in use" in x and usock in x for x in e.lines()),
                     "... saying the socket is in use",
                     diag="\n".join(e.lines()))
        t.is_(d.unix(usock, "GET", "/healthz").status, 200,
              "the first one still serves on its socket")

        # A path that is not a socket: refused, untouched.
        reg = os.path.join(d.dir, "not-a-socket")
        write(reg, "precious\n")
        with Daemon(t, name="not-socket", listen="unix:" + reg,
                    start=False) as e:
            try:
                e.start(timeout=10)
                t.fail("unix: on a regular file fails to start")
            except DaemonError:
                t.is_(e.wait_exit(5), 1, "unix: on a regular file: exit 1")
        with open(reg) as f:
            t.is_(f.read(), "precious\n", "... and the file is untouched")

        t.is_(d.stop(), 0, "SIGTERM: exit status 0")
        t.ok(not os.path.exists(usock), "the socket file is removed at "
             "exit")


# --- socket activation -------------------------------------------------------

@t.test(timeout=40)
def socket_activation():
    tool = shutil.which("systemd-socket-activate")
    if tool is None:
        t.fail("systemd-socket-activate is installed (package systemd)")
        return
    with Notify() as n, Daemon(t, name="activation", start=False) as d:
        usock = os.path.join(d.dir, "api.sock")
        ignored = os.path.join(d.dir, "ignored.sock")
        d.listen = "unix:" + ignored
        d.notify = n
        d.extra_env = n.env()

        def on_port(p):
            d.pre = [tool, "-l", "127.0.0.1:%d" % p, "-l", usock,
                     "--fdname=http:unix"]
            d.fixed_port = p
            d.activate = (p, usock)
        port = start_on_free_port(d, on_port, timeout=15)
        t.ok(d.first is not None and d.first.status == 200,
             "the first connection (it starts corod) gets GET /healthz 200",
             diag=d.first.describe() if d.first is not None else None)
        out = d.lines()
        t.ok(any(re.search(r"serving the 2 sockets passed by systemd", x)
                 for x in out), "'serving the 2 socket(s) passed by "
             "systemd' logged", diag="\n".join(out))
        addrs = d.listening()
        t.ok(any(a.startswith("127.0.0.1:%d" % port) and "http" in a
                 for a in addrs) and
             any(a.startswith("unix:" + usock) and "unix" in a[5:]
                 for a in addrs),
             "listening on both passed sockets, with their names",
             diag=repr(addrs))
        t.ok(not os.path.exists(ignored), "--listen is ignored (%s not "
             "created)" % os.path.basename(ignored))
        i, r = d.ready
        m = READY_RE.match(r.text)
        t.ok(m is not None and int(m.group(2)) == d.pid and r.pid == d.pid,
             "READY=1 with MAINPID the activated process's pid",
             diag=repr(r.text))

        a = d.tcp(port, "POST", "/v1/tasks", echo("via tcp"))
        t.is_(a.status, 201, "a submission over TCP: 201")
        b = d.unix(usock, "POST", "/v1/tasks", echo("via unix"))
        t.is_(b.status, 201, "a submission over the Unix socket: 201")
        if a.status == 201 and b.status == 201:
            ga = d.unix(usock, "GET", "/v1/tasks/%d" % a.body["id"])
            t.ok(ga.status == 200 and ga.body["params"]["message"] ==
                 "via tcp", "the TCP submission read back over the Unix "
                 "socket", diag=ga.describe())
            gb = d.tcp(port, "GET", "/v1/tasks/%d" % b.body["id"])
            t.ok(gb.status == 200 and gb.body["params"]["message"] ==
                 "via unix", "the Unix submission read back over TCP",
                 diag=gb.describe())
            done = d.wait_state(b.body["id"], FINAL, 5)
            t.is_(done["state"], "succeeded", "... and it ran")
        t.is_(d.stop(), 0, "SIGTERM: exit status 0")
        t.ok(os.path.exists(usock), "the passed Unix socket is left to its "
             "owner (the socket unit), not removed")

    # LISTEN_PID of another process: the variables are not for us.
    with Daemon(t, name="listen-pid", env={"LISTEN_PID": str(os.getpid()),
                                           "LISTEN_FDS": "1"}) as d:
        t.is_(d.request("GET", "/healthz").status, 200,
              "LISTEN_PID of another process: --listen is used")
        t.ok(not any("passed by systemd" in x for x in d.lines()),
             "... and no passed socket is claimed")
        t.is_(d.stop(), 0, "SIGTERM: exit status 0")


# --- the config file ---------------------------------------------------------

def help_options():
    """{name: default} from corod --help ('none' is an empty default)."""
    rc, out, err = run_corod(["--help"], cwd=tempfile.gettempdir())
    opts = {}
    for line in out.splitlines():
        m = re.match(r"^\s+--([a-z0-9-]+)(?: VALUE|\[=yes\|no\])\s.*"
                     r"\(default: (.*)\)$", line)
        if m:
            opts[m.group(1)] = "" if m.group(2) == "none" else m.group(2)
    return rc, opts


@t.test(timeout=40)
def config_file():
    tmp = tempfile.mkdtemp(prefix="corod-conf-")
    try:
        good = os.path.join(tmp, "good.conf")
        write(good, "# a comment\n\nmax-running = 2\n  log-level=debug  "
              "# trailing comment\nmax-body = 64K\nallow-origin = \n")
        rc, out, err = run_corod(["-n", "-c", good], tmp)
        t.ok(rc == 0 and out.strip() == "configuration OK",
             "-n -c a good file: 'configuration OK', exit 0",
             diag="rc %s\nstdout %r\nstderr %r" % (rc, out, err))
        rc, out, err = run_corod(["--check", "--config", good,
                                  "--max-running", "5"], tmp)
        t.ok(rc == 0 and "configuration OK" in out,
             "--check --config with flags too: OK",
             diag="rc %s\nstdout %r\nstderr %r" % (rc, out, err))

        start_errs = []
        cases = [
            ("unknown key", "max-running = 2\n# c\nno-such-key = 1\n", 3),
            ("bad value", "log-level = info\nmax-running = lots\n", 2),
            ("out of range", "max-body = 10\n", 1),
            ("bad sync", "\n\n\n\nsync = sometimes\n", 5),
            # seconds with a range: the lease (1..3600)
            ("lease out of range", "lease = 0\n", 1),
            ("lease too long", "\nlease = 3601\n", 2),
            # a pool's limit, a setting made from the kind table
            ("pool limit out of range", "max-downloads = 0\n", 1),
            ("pool limit not a number", "max-running = 2\n"
             "max-downloads = many\n", 2),
        ]
        for what, text, line in cases:
            path = os.path.join(tmp, "bad.conf")
            write(path, text)
            rc, out, err = run_corod(["-n", "-c", path], tmp)
            t.ok(rc == 2 and "%s:%d" % (path, line) in err,
                 "-n, %s on line %d: exit 2, stderr names FILE:%d" % (
                     what, line, line),
                 diag="rc %s\nstdout %r\nstderr %r" % (rc, out, err))
            rc, out, err = run_corod(["-c", path, "--listen", "127.0.0.1:0",
                                      "--db", os.path.join(tmp, "x.db"),
                                      "--download-dir",
                                      os.path.join(tmp, "dl")], tmp)
            t.ok(rc == 2 and "%s:%d" % (path, line) in err,
                 "starting with it: exit 2, stderr names FILE:%d" % line,
                 diag="rc %s\nstdout %r\nstderr %r" % (rc, out, err))
            start_errs.append(err)
        t.ok(not os.path.exists(os.path.join(tmp, "x.db")),
             "... and no database was created")
        # Under systemd stderr is the journal: the error of a start that
        # a bad file stopped must carry its priority like every line.
        unprefixed = [x for e in start_errs for x in e.splitlines()
                      if not PRIO_RE.match(x)]
        t.is_(unprefixed, [], "the configuration error of a start has a "
              "priority prefix (<3>) like every stderr line")
        rc, out, err = run_corod(["-n", "-c", os.path.join(tmp, "missing")],
                                 tmp)
        t.ok(rc == 2 and "missing" in err, "a missing config file: exit 2 "
             "naming it", diag="rc %s\nstderr %r" % (rc, err))
        rc, out, err = run_corod(["-n", "--max-running", "x"], tmp)
        t.is_(rc, 2, "a bad flag value: exit 2")
        for v in ("x", "0", "100001", "-1"):
            rc, out, err = run_corod(["-n", "--max-downloads", v], tmp)
            t.ok(rc == 2 and "max-downloads" in err,
                 "--max-downloads %s: exit 2, naming the setting" % v,
                 diag="rc %s\nstderr %r" % (rc, err))
        rc, out, err = run_corod(["-n", "--no-such-flag", "1"], tmp)
        t.is_(rc, 2, "an unknown flag: exit 2")

        # The example file: valid as is and with every setting uncommented,
        # and it documents every option with its default.
        example = os.path.join(UNITDIR, "corod.conf")
        rc, out, err = run_corod(["-n", "-c", example], tmp)
        t.ok(rc == 0 and "configuration OK" in out,
             "systemd/corod.conf passes -n as is",
             diag="rc %s\nstdout %r\nstderr %r" % (rc, out, err))
        with open(example) as f:
            text = f.read()
        listed = {}
        lines = []
        for line in text.splitlines():
            m = re.match(r"^#([a-z0-9-]+)\s*=\s*(.*)$", line)
            if m:
                listed[m.group(1)] = m.group(2).strip()
                line = line[1:]
            lines.append(line)
        uncommented = os.path.join(tmp, "uncommented.conf")
        write(uncommented, "\n".join(lines) + "\n")
        rc, out, err = run_corod(["-n", "-c", uncommented], tmp)
        t.ok(rc == 0 and "configuration OK" in out,
             "... and with its %d '#key = value' lines uncommented" %
             len(listed), diag="rc %s\nstdout %r\nstderr %r" % (rc, out,
                                                                 err))
        hrc, opts = help_options()
        t.ok(hrc == 0 and len(opts) >= 15, "--help lists the options (%d)"
             % len(opts))
        missing = sorted(set(opts) - set(listed))
        t.is_(missing, [], "every option of --help is in corod.conf")
        extra = sorted(set(listed) - set(opts))
        t.is_(extra, [], "corod.conf has no key --help does not know")
        wrong = {k: (listed[k], opts[k]) for k in opts
                 if k in listed and listed[k] != opts[k]}
        t.is_(wrong, {}, "corod.conf lists the defaults of --help")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- SIGHUP ------------------------------------------------------------------

@t.test(timeout=60)
def reload_config():
    with Notify() as n, Daemon(t, name="reload", start=False) as d:
        conf = os.path.join(d.dir, "corod.conf")
        write(conf, "max-body = 1K\nmax-running = 1\nmax-batch = 50\n"
              "log-level = info\n")
        d.args = ["-c", conf, "--max-batch", "2"]
        d.notify = n
        d.extra_env = n.env()
        d.start()
        big = echo("x" * 2048)

        def reload_and_wait(desc):
            mark = len(n.msgs)
            d.hup()
            ri, _ = n.wait(has_key("RELOADING", "1"), 5, start=mark,
                           proc=d.proc, desc="RELOADING=1 (%s)" % desc)
            n.wait(is_ready, 5, start=ri + 1, proc=d.proc,
                   desc="READY=1 (%s)" % desc)
            return True

        r = d.request("POST", "/v1/tasks", big)
        t.is_(r.status, 413, "max-body = 1K in the file: a 2 KB "
              "submission gets 413")
        r = d.request("POST", "/v1/tasks", [echo("a"), echo("b"),
                                            echo("c")])
        t.is_(r.status, 400, "--max-batch 2 over the file's 50: a batch "
              "of 3 is refused")
        sleeps = [d.submit(sleep(30))["id"] for _ in range(3)]
        time.sleep(0.7)
        t.is_(running_count(d, sleeps), 1, "max-running = 1: one of three "
              "sleeps runs")

        write(conf, "max-body = 1M\nmax-running = 3\nmax-batch = 100\n"
              "log-level = info\n"
              "listen = 127.0.0.1:1\n"
              "max-connections = 1\nconnection-timeout = 5\nwindow = 30\n"
              "window-max = 10\nmax-downloads-per-host = 2\nsync = normal\n"
              "stop-timeout = 3\n")
        mark_out = len(d.lines())
        reload_and_wait("good file")
        t.ok(True, "SIGHUP: RELOADING=1, then READY=1")
        try:
            d.wait_output(r"reload: stop-timeout changed", 5)
        except WaitTimeout:
            pass                # the checks below say what is missing
        r = d.request("POST", "/v1/tasks", big)
        t.is_(r.status, 201, "max-body raised to 1M: the 2 KB submission "
              "now gets 201")
        d.wait_for(lambda: running_count(d, sleeps) == 3, 3,
                   desc="three sleeps running")
        t.ok(True, "max-running raised to 3: all three sleeps run")
        r = d.request("POST", "/v1/tasks", [echo("a"), echo("b"),
                                            echo("c")])
        t.is_(r.status, 400, "the flag --max-batch 2 still wins over the "
              "reloaded file (batch of 3 refused)")
        out = d.lines()[mark_out:]
        for key in ("max-body", "max-running"):
            t.ok(any(re.search(r"reload: %s changed$" % key, x) for x in out),
                 "logged 'reload: %s changed'" % key, diag="\n".join(out))
        for key in ("max-connections", "connection-timeout", "window",
                    "window-max", "max-downloads-per-host", "sync",
                    "stop-timeout"):
            t.ok(any(("reload: %s changed; it takes effect at the next "
                      "start" % key) in x for x in out),
                 "non-live %s: 'takes effect at the next start'" % key,
                 diag="\n".join(out))
        t.ok(not any("reload: listen changed" in x or
                     "reload: max-batch changed" in x for x in out),
             "listen and max-batch, given as flags, did not change")
        # max-connections = 1 is not applied: two connections at once.
        c1 = d.connection(timeout=5)
        c2 = d.connection(timeout=5)
        try:
            r1 = d.request("GET", "/healthz", conn=c1, timeout=5)
            r2 = d.request("GET", "/healthz", conn=c2, timeout=5)
            r3 = d.request("GET", "/healthz", conn=c1, timeout=5)
            t.ok((r1.status, r2.status, r3.status) == (200, 200, 200),
                 "max-connections = 1 is not applied: two connections "
                 "at once are served")
        finally:
            c1.close()
            c2.close()

        # A file with an error changes nothing (not even its good lines).
        write(conf, "max-body = 1K\nmax-running = 4\nno-such-key = 1\n")
        mark_out = len(d.lines())
        reload_and_wait("bad file")
        t.ok(True, "a bad file: RELOADING=1 and READY=1 all the same")
        try:
            d.wait_output(r"reload failed", 5)
        except WaitTimeout:
            pass
        out = d.lines()[mark_out:]
        fail = [x for x in out if "reload failed, nothing changed" in x]
        t.ok(fail and ("%s:3" % conf) in fail[0],
             "'reload failed, nothing changed' naming FILE:3",
             diag="\n".join(out))
        t.ok(not any("reload: max-body changed" in x for x in out),
             "... max-body was not touched")
        r = d.request("POST", "/v1/tasks", big)
        t.is_(r.status, 201, "... the 2 KB submission still gets 201")
        extra = d.submit(sleep(30))["id"]
        d.wait_state(extra, "scheduled", 2)
        time.sleep(0.5)
        t.is_(d.get(extra)["state"], "scheduled",
              "... max-running is still 3, not the file's 4 (a fourth "
              "sleep waits)")
        t.is_(d.request("GET", "/healthz").status, 200, "... it serves")

        # A pool's limit out of range: refused the same way.
        write(conf, "max-body = 1K\nmax-downloads = 0\n")
        mark_out = len(d.lines())
        reload_and_wait("bad pool limit")
        try:
            # this reload's line, not the one before it
            d.wait_for(lambda: any("reload failed" in x
                                   for x in d.lines()[mark_out:]), 5,
                       desc="a second 'reload failed' line")
        except WaitTimeout:
            pass
        out = d.lines()[mark_out:]
        fail = [x for x in out if "reload failed, nothing changed" in x]
        t.ok(fail and ("%s:2" % conf) in fail[0] and
             "max-downloads" in fail[0],
             "max-downloads = 0: 'reload failed, nothing changed' naming "
             "FILE:2 and the setting", diag="\n".join(out))
        t.ok(not any("changed" in x and "reload failed" not in x
                     for x in out), "... nothing was changed")
        for i in sleeps + [extra]:
            d.cancel(i)
        t.is_(d.stop(), 0, "SIGTERM: exit status 0")


# --- STATE_DIRECTORY ---------------------------------------------------------

@t.test(timeout=40)
def state_directory():
    with FileServer(t) as fs, Daemon(t, name="state", paths=False,
                                     start=False) as d:
        state = os.path.join(d.dir, "state")
        os.mkdir(state, 0o750)
        d.extra_env = {"STATE_DIRECTORY": state}
        d.start()
        db = os.path.join(state, "corod.db")
        t.ok(os.path.isfile(db), "$STATE_DIRECTORY/corod.db is the database")
        t.ok(any(x.endswith("started, database " + db) for x in d.lines()),
             "... and the start-up line names it",
             diag="\n".join(d.lines()))
        t.ok(os.path.isdir(os.path.join(state, "downloads")),
             "$STATE_DIRECTORY/downloads exists")
        url = fs.url("state.bin", size=5000)
        task = d.submit({"kind": "download", "params": {"url": url}})
        x = d.wait_state(task["id"], FINAL, 10)
        t.is_(x["state"], "succeeded", "a download succeeds")
        path = os.path.join(state, "downloads",
                            (x.get("result") or {}).get("path", "?"))
        ok = False
        if os.path.isfile(path):
            with open(path, "rb") as f:
                ok = hashlib.sha256(f.read()).hexdigest() == \
                    sha256_hex("state.bin", 5000)
        t.ok(ok, "... into $STATE_DIRECTORY/downloads", diag=path)
        t.ok(not os.path.exists(os.path.join(d.dir, "var")),
             "nothing under the relative default var/")
        t.is_(d.stop(), 0, "SIGTERM: exit status 0")
        d.start()
        t.is_(d.get(task["id"])["state"], "succeeded",
              "a restart finds the task in the same database")
        t.is_(d.stop(), 0, "SIGTERM: exit status 0")
        # A flag still wins over the state directory.
        d.args = ["--db", os.path.join(d.dir, "flag.db")]
        d.start()
        t.ok(os.path.isfile(os.path.join(d.dir, "flag.db")),
             "--db given: it is used, not $STATE_DIRECTORY/corod.db")
        t.is_(d.request("GET", "/v1/tasks/%d" % task["id"]).status, 404,
              "... (a fresh database)")
        t.is_(d.stop(), 0, "SIGTERM: exit status 0")


# --- a database corod cannot write ----------------------------------------

def as_other_user():
    """A command prefix that runs a program as a user file modes apply to:
    [] when not root; setpriv to nobody when root (root writes a mode
    0444 file anyway); None when neither works."""
    if os.geteuid() != 0:
        return []
    sp = shutil.which("setpriv")
    if sp is None:
        return None
    return [sp, "--reuid=65534", "--regid=65534", "--clear-groups"]


def run_briefly(cmd, cwd, seconds):
    """Run cmd (output joined) for at most seconds: (status, output), the
    status None if it was still running (then stopped by SIGTERM)."""
    e = dict(os.environ)
    for k in SD_VARS:
        e.pop(k, None)
    p = subprocess.Popen(cmd, cwd=cwd, env=e, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = p.communicate(timeout=scaled(seconds))
        rc = p.returncode
    except subprocess.TimeoutExpired:
        p.terminate()
        try:
            out, _ = p.communicate(timeout=scaled(15))
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
        rc = None
    return rc, out.decode("utf-8", "replace")


@t.test(timeout=90)
def unwritable_database():
    # Issue 12 item 7: a database file of mode 0444 in a writable
    # directory started, said READY and answered every submission 503 for
    # ever: sqlite opens a file it may not write for reading only, without
    # an error.  A start must refuse it, as it refuses a read-only
    # directory, and also -wal/-shm files it cannot write.
    pre = as_other_user()
    if pre is None:
        t.skip("an unwritable database is refused", "running as root "
               "without setpriv (util-linux): root writes a read-only file")
        return
    base = tempfile.mkdtemp(prefix="corod-e2e-ro-")
    try:
        os.chmod(base, 0o755)
        state = os.path.join(base, "state")
        os.mkdir(state, 0o755)
        if pre:
            os.chown(state, 65534, 65534)
        db = os.path.join(state, "corod.db")
        cmd = pre + [corod_bin(), "--listen", "127.0.0.1:0", "--db", db,
                     "--download-dir", os.path.join(state, "dl")]
        rc, out = run_briefly(pre + [corod_bin(), "--version"], base, 10)
        if rc != 0:
            t.skip("an unwritable database is refused", "the binary does "
                   "not run as %s: %s" % ("nobody" if pre else "us",
                                          out.strip()[:200]))
            return

        def starts(desc):
            rc, out = run_briefly(cmd, base, 3)
            t.ok(rc is None and "started, database " + db in out,
                 desc, diag="status %s\n%s" % (rc, out[-2000:]))

        def refused(desc, want):
            rc, out = run_briefly(cmd, base, 10)
            t.ok(rc not in (None, 0) and want in out and db in out and
                 "listening on" not in out and "started" not in out,
                 desc, diag="status %s\n%s" % (rc, out[-2000:]))

        starts("a writable database: corod starts (as %s)" %
               ("nobody" if pre else "this user"))
        os.chmod(db, 0o444)
        refused("the file mode 0444: refused at start, saying why",
                "the file is read-only")
        os.chmod(db, 0o644)
        for side in ("-wal", "-shm"):
            for x in ("-wal", "-shm"):
                if os.path.exists(db + x):
                    os.unlink(db + x)
            with open(db + side, "w"):
                pass
            if pre:
                os.chown(db + side, 65534, 65534)
            os.chmod(db + side, 0o444)
            refused("a %s file it cannot write: refused" % side,
                    "cannot write it")
            os.unlink(db + side)
        os.chmod(state, 0o555)
        refused("a read-only directory: refused", "cannot write it")
        os.chmod(state, 0o755)
        starts("everything writable again: it starts")
    finally:
        shutil.rmtree(base, ignore_errors=True)


# --- logging -----------------------------------------------------------------

@t.test(timeout=40)
def logging_levels():
    with Daemon(t, name="log-debug", args=["--log-level", "debug"]) as d:
        x = d.submit(echo("logged"))
        d.wait_state(x["id"], FINAL, 5)
        d.request("GET", "/v1/tasks/999999")
        d.hup()
        d.wait_output(r"SIGHUP", 5)
        t.is_(d.stop(), 0, "--log-level debug: exit 0")
        lines = d.lines()
        bad = [y for y in lines if not PRIO_RE.match(y)]
        levels = sorted(set(PRIO_RE.match(y).group(1) for y in lines
                            if PRIO_RE.match(y)))
        t.is_(bad, [], "every stderr line starts with <3>..<7> (%d lines, "
              "levels %s)" % (len(lines), ",".join(levels)))
        t.ok("7" in levels and "6" in levels and "5" in levels,
             "debug shows <7>, <6> and <5> lines")

    with Daemon(t, name="log-warning", args=["--log-level", "warning"],
                start=False) as d:
        d.settle = False

        def on_port(p):
            d.listen = "127.0.0.1:%d" % p
            d.fixed_port = p
        start_on_free_port(d, on_port)
        x = d.submit(echo("quiet"))
        d.wait_state(x["id"], FINAL, 5)
        d.hup()
        time.sleep(0.3)
        t.is_(d.request("GET", "/healthz").status, 200, "--log-level "
              "warning: it serves")
        t.is_(d.stop(), 0, "... and exits 0")
        lines = d.lines()
        shown = [y for y in lines if not re.match(r"^<[34]>", y)]
        t.is_(shown, [], "--log-level warning: no <5>, <6> or <7> line "
              "(start, listening, SIGHUP, stop)")

    # log-level is live: a reload to warning hides the notices from then on.
    with Notify() as n, Daemon(t, name="log-reload", start=False) as d:
        conf = os.path.join(d.dir, "corod.conf")
        write(conf, "log-level = info\n")
        d.args = ["-c", conf]
        d.notify = n
        d.extra_env = n.env()
        d.start()
        t.ok(any(y.startswith("<6>listening on") for y in d.lines()),
             "log-level = info: '<6>listening on' shown")
        write(conf, "log-level = warning\n")
        mark = len(n.msgs)
        d.hup()
        n.wait(is_ready, 5, start=mark, proc=d.proc, desc="READY=1")
        d.wait_output(r"reload: log-level changed", 2)
        after = len(d.lines())
        mark = len(n.msgs)
        d.hup()
        n.wait(is_ready, 5, start=mark, proc=d.proc, desc="READY=1")
        t.is_(d.stop(), 0, "exit 0")
        late = [y for y in d.lines()[after:] if not re.match(r"^<[34]>", y)]
        t.is_(late, [], "after a reload to log-level = warning: no more "
              "<5>/<6> lines (the next SIGHUP, the stop)")


# --- the unit files ----------------------------------------------------------

def unit_keys(path):
    """{key: [values]} over all sections of a unit file."""
    keys = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;[":
                continue
            k, sep, v = line.partition("=")
            if sep:
                keys.setdefault(k.strip(), []).append(v.strip())
    return keys


@t.test(timeout=60)
def unit_files():
    tmp = tempfile.mkdtemp(prefix="corod-units-")
    try:
        with open(os.path.join(UNITDIR, "corod.service.in")) as f:
            text = f.read()
        sbindir = os.path.dirname(os.path.abspath(corod_bin()))
        unit = text.replace("@sbindir@", sbindir).replace("@sysconfdir@",
                                                          "/etc")
        t.is_(re.findall(r"@[A-Za-z_]+@", unit), [],
             "no @placeholder@ is left after substituting @sbindir@ and "
             "@sysconfdir@")
        service = os.path.join(tmp, "corod.service")
        write(service, unit)
        shutil.copy(os.path.join(UNITDIR, "corod.socket"), tmp)

        keys = unit_keys(service)
        t.is_(keys.get("Type"), ["notify"], "Type=notify")
        t.ok(keys.get("WatchdogSec"), "WatchdogSec= is set (%s)" %
             keys.get("WatchdogSec"))
        t.ok(keys.get("ExecReload"), "ExecReload= is set (%s)" %
             keys.get("ExecReload"))
        t.ok(any("HUP" in v for v in keys.get("ExecReload", [])),
             "... and sends SIGHUP")
        t.is_(keys.get("StateDirectory"), ["corod"], "StateDirectory=corod")
        t.ok(keys.get("DynamicUser") in (["yes"], ["true"], ["1"], ["on"]),
             "DynamicUser=yes (%s)" % keys.get("DynamicUser"))
        start = (keys.get("ExecStart") or [""])[0]
        t.ok(start.startswith(os.path.join(sbindir, "corod") + " ") and
             "/etc/corod/corod.conf" in start,
             "ExecStart runs %s/corod with /etc/corod/corod.conf" % sbindir,
             diag=start)
        sock = unit_keys(os.path.join(tmp, "corod.socket"))
        streams = sock.get("ListenStream", [])
        t.ok(any(re.match(r"^(\[[0-9a-fA-F:.]+\]|[0-9.]+)?:?\d+$", v)
                 for v in streams),
             "corod.socket has a TCP ListenStream", diag=repr(streams))
        t.ok(any(v.startswith("/") for v in streams),
             "corod.socket has a Unix ListenStream", diag=repr(streams))

        analyze = shutil.which("systemd-analyze")
        if analyze is None:
            t.fail("systemd-analyze is installed (package systemd)")
            return
        p = subprocess.run([analyze, "verify", "--man=no", "corod.service",
                            "corod.socket"], cwd=tmp,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=scaled(30))
        out = (p.stdout + p.stderr).decode("utf-8", "replace")
        t.ok(p.returncode == 0 and out.strip() == "",
             "systemd-analyze verify --man=no corod.service corod.socket: "
             "exit 0 and no output", diag="rc %d\n%s" % (p.returncode, out))

        # The check catches what it must: a typo is printed, exit 0.
        write(os.path.join(tmp, "typo.service"),
              unit.replace("Type=notify", "Type=notiffy"))
        p = subprocess.run([analyze, "verify", "--man=no", "typo.service"],
                           cwd=tmp, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=scaled(30))
        t.ok((p.stdout + p.stderr).strip() != b"",
             "(a unit with Type=notiffy does print something: the "
             "no-output check is meaningful)")

        p = subprocess.run([analyze, "security", "--offline=true",
                            "corod.service"], cwd=tmp,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=scaled(30))
        out = (p.stdout + p.stderr).decode("utf-8", "replace")
        m = re.search(r"Overall exposure level for corod\.service: "
                      r"([0-9.]+)", out)
        score = float(m.group(1)) if m else None
        t.ok(p.returncode == 0 and m is not None,
             "systemd-analyze security --offline=true: an overall "
             "exposure level", diag="rc %d\n%s" % (p.returncode, out[-3000:]))
        if score is not None:
            t.diag("overall exposure level for corod.service: %.1f" % score)
            t.between(score, 0.0, 2.0, "exposure level at most 2.0")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


t.done()
