#!/usr/bin/env python3
"""sockets.py -- descriptor numbers are reused at once: nothing corod
keeps by number may act on a socket it does not own.

Long downloads from nginx (keep-alive, sendfile) run while many short API
connections come and go in every way a connection can end: answered and
closed, answered and reset, idle past connection-timeout (closed by
corod's deadline), a request left unfinished past request-timeout (408),
a long-poll held outside libmicrohttpd and answered, then the connection
handed back for a next request, a held long-poll whose client resets.
Every download must come out whole (its sha256 is the file's), the
daemon must never report a socket closed unnoticed, and once idle it
must hold no socket whose client is gone.

Issue 12: a socket remembered from curl's socket callback was, by the
time its transfer ended, another download's in mid-body; its waiting
bytes looked like a spoiled connection and it was shut down (1 to 7 of
64 concurrent 16 MiB downloads failed "transfer closed with ... bytes
remaining to read").
"""

import os
import random
import socket
import struct
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from tap import TAP, scaled  # noqa: E402
from corod import Corod, net_sockets  # noqa: E402
from nginx import Nginx  # noqa: E402

t = TAP("sockets", total_timeout=600)
MiB = 1 << 20
FINAL = ("succeeded", "failed", "canceled")
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
# The daemon's request-timeout and connection-timeout, stretched with the
# harness's timeouts (valgrind): libmicrohttpd's own idle timeout is the
# connection-timeout, and it must stay well past the request-timeout, or
# it closes an unfinished request before corod's deadline answers it 408.
REQUEST_TIMEOUT = max(1, int(round(scaled(1))))
CONNECTION_TIMEOUT = 3 * REQUEST_TIMEOUT


def reset(s):
    """Close with a RST (SO_LINGER 0)."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def read_answer(s, timeout=10):
    """Read one whole answer (Content-Length framed); its status."""
    s.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        b = s.recv(65536)
        if not b:
            return None
        data += b
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
    while len(body) < length:
        b = s.recv(65536)
        if not b:
            return None
        body += b
    return int(head.split(b" ", 2)[1])


class Churn:
    """Threads opening and ending API connections until stopped; each
    kind of ending counted."""

    KINDS = ("closed", "reset", "idle", "unfinished", "handed back",
             "held reset", "held then idle")

    def __init__(self, port, threads=8, limit=20000):
        self.port = port
        self.stop = threading.Event()
        self.count = {k: 0 for k in self.KINDS}
        self.errors = []
        self.limit = limit
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,),
                                         daemon=True)
                        for i in range(threads)]

    def start(self):
        for th in self.threads:
            th.start()

    def wait_every_kind(self, timeout):
        """Until each kind of ending has happened (or timeout seconds)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end and \
                not all(self.count[k] > 0 for k in self.KINDS):
            time.sleep(0.1)

    def finish(self):
        self.stop.set()
        for th in self.threads:
            th.join(scaled(30))

    def one(self, rng):
        kind = rng.choice(self.KINDS)
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        try:
            if kind == "unfinished":
                s.sendall(b"GET /v1/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A")
                # past request-timeout: a 408, then the close
                st = read_answer(s, timeout=REQUEST_TIMEOUT + scaled(10))
                if st != 408:
                    self.errors.append("unfinished request: %r" % st)
                s.close()
            elif kind in ("handed back", "held then idle", "held reset"):
                wait = "5" if kind == "held reset" else "0.2"
                s.sendall(b"GET /v1/events?since=999999999&wait=" +
                          wait.encode() + b" HTTP/1.1\r\n"
                          b"Host: 127.0.0.1\r\n\r\n")
                if kind == "held reset":
                    time.sleep(rng.random() * 0.3)
                    reset(s)
                    s = None
                else:
                    st = read_answer(s)
                    if st != 200:
                        self.errors.append("long-poll: %r" % st)
                    if kind == "handed back":
                        s.sendall(HEALTHZ)
                        st = read_answer(s)
                        if st != 200:
                            self.errors.append("after a long-poll: %r" % st)
                        reset(s) if rng.random() < 0.5 else s.close()
                        s = None
                    else:
                        time.sleep(CONNECTION_TIMEOUT + 0.2 + rng.random())
                        s.close()
            else:
                s.sendall(HEALTHZ)
                st = read_answer(s)
                if st != 200:
                    self.errors.append("healthz: %r" % st)
                if kind == "reset":
                    reset(s)
                    s = None
                elif kind == "idle":
                    # past connection-timeout: corod closes it
                    s.settimeout(CONNECTION_TIMEOUT + scaled(10))
                    if s.recv(1) != b"":
                        self.errors.append("idle: bytes instead of a close")
                    s.close()
                else:
                    s.close()
            with self.lock:
                self.count[kind] += 1
        except OSError as e:
            self.errors.append("%s: %s" % (kind, e))
        finally:
            if s is not None:
                s.close()

    def run(self, seed):
        rng = random.Random(seed)
        n = 0
        while not self.stop.is_set() and n < self.limit:
            n += 1
            self.one(rng)


def dead_sockets(pid):
    """The daemon's sockets in no table of /proc/PID/net: connections
    gone (reset by their peer, or shut down) whose descriptor is held."""
    known = net_sockets(pid)
    dead = 0
    top = "/proc/%d/fd" % pid
    for n in os.listdir(top):
        try:
            link = os.readlink(os.path.join(top, n))
        except OSError:
            continue
        if link.startswith("socket:") and link not in known:
            dead += 1
    return dead


@t.test(timeout=400)
def downloads_whole_while_connections_churn():
    nfiles, rounds, per_round, size = 4, 2, 64, 16 * MiB
    n = rounds * per_round
    with Nginx(t) as ng, \
            Corod(t, args=["--connection-timeout", str(CONNECTION_TIMEOUT),
                           "--request-timeout", str(REQUEST_TIMEOUT)]) as d:
        shas = [ng.create("f%d.bin" % i, size)[0] for i in range(nfiles)]
        churn = Churn(d.port)
        churn.start()
        ids = []
        done = {}
        try:
            # the second batch once every kind of ending has happened (the
            # idle ones last connection-timeout, stretched under the
            # sanitizers and valgrind), so that transfers start and end
            # throughout the churn however slow the daemon
            for r in range(rounds):
                if r > 0:
                    churn.wait_every_kind(scaled(120))
                specs = [{"kind": "download",
                          "params": {"url": ng.url("f%d.bin" % (i % nfiles)),
                                     "path": "o%d-%d.bin" % (r, i)}}
                         for i in range(per_round)]
                a = d.request("POST", "/v1/tasks", specs)
                t.is_(a.status, 201, "batch %d of %d downloads submitted"
                      % (r + 1, per_round))
                ids += [x["id"] for x in a.body["tasks"]]
            deadline = time.monotonic() + scaled(240)
            while time.monotonic() < deadline and len(done) < n:
                for i in ids:
                    if i not in done:
                        x = d.get(i)
                        if x["state"] in FINAL:
                            done[i] = x
                time.sleep(0.2)
        finally:
            churn.finish()
        bad = []
        for k, i in enumerate(ids):
            x = done.get(i)
            want = shas[k % per_round % nfiles]
            if x is None or x["state"] != "succeeded" or \
                    (x["result"] or {}).get("sha256") != want:
                bad.append((i, x and x["state"], x and x["error"]))
        t.is_(bad, [], "every one of the %d downloads of %d MiB is whole"
              % (n, size // MiB))
        t.ok(all(churn.count[k] > 0 for k in Churn.KINDS),
             "every kind of connection ending happened during the downloads",
             diag=repr(churn.count))
        t.diag("connections: %r" % churn.count)
        t.is_(churn.errors[:5], [], "every API connection was answered "
              "as expected")
        t.ok(not d.output(whole=True).count("closed unnoticed"),
             "no connection record outlived its socket")
        # once idle: no socket whose client is gone is still held
        left = None
        end = time.monotonic() + scaled(10)
        while time.monotonic() < end:
            left = dead_sockets(d.pid)
            if left == 0:
                break
            time.sleep(0.2)
        t.is_(left, 0, "no server socket whose client reset it is held "
              "once idle")
        d.stop()


t.done()
