#!/usr/bin/env python3
"""badserver.py -- downloads from servers that misbehave at the socket level.

download.py covers what tests/lib/fileserver.py can do (dropped
connections that resume, a body shorter than its Content-Length, a
stall after the headers, refused connections).  Here a small raw-socket
server in this process does what an HTTP server library will not:

- accept and never answer (not even a status line): the low-speed limit
  ends the attempt (network, retried), the task's timeout too (timeout),
  and a cancel ends it at once and closes the connection;
- never accept (a full listen backlog): connect_timeout (network);
- reset the connection (RST) before any header: network, retried, and
  the retry succeeds;
- reset it mid-body on the last attempt: network, nothing left on disk;
- announce a Content-Length and send fewer bytes, then close (FIN): the
  retry asks for the rest (Range + If-Range) and the file is complete;
- send more bytes than its Content-Length: the body is what was
  announced (RFC 9112 6.3: the rest is not part of the message), the
  task succeeds with exactly those bytes, and the next download from the
  server does not get the rest as its answer (the connection is not
  reused);
- answer something that is not HTTP: bad_response, retried (a redirect
  to another scheme stays bad_redirect).

And two states between attempts: a download canceled while it waits for
its retry loses its .part; one whose file was put in place just before
a kill -9 (the state made by hand, checkpoint included) succeeds with
that file on its next attempt.
"""

import hashlib
import json
import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from tap import TAP, scaled  # noqa: E402
from corod import Corod, parse_time  # noqa: E402

FINAL = ("succeeded", "failed", "canceled")

t = TAP("badserver", total_timeout=300)


def body_of(name, size):
    """Deterministic content for name."""
    return hashlib.shake_256(name.encode()).digest(size)


class RawServer:
    """Accepts on 127.0.0.1; the n-th request for a path gets the n-th
    behaviour of its script (the last one repeats).  Every connection is
    recorded: path, range, if_range, what was done, t_start, t_end and
    how it ended ('peer_closed' when the client closed it)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.scripts = {}
        self.counts = {}
        self.records = []
        self.lock = threading.Condition()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()
        t.cleanups.append(self.stop)

    def url(self, path, *script):
        self.scripts[path] = list(script)
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def requests(self, path):
        with self.lock:
            return [r for r in self.records if r["path"] == path]

    def wait(self, pred, timeout, desc):
        deadline = time.monotonic() + scaled(timeout)
        with self.lock:
            while not pred(self.records):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("server: %s not within %.1f s" %
                                         (desc, scaled(timeout)))
                self.lock.wait(left)

    def stop(self):
        self.stopping.set()
        try:
            self.sock.close()
        except OSError:
            pass

    def _accept(self):
        while not self.stopping.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,),
                             daemon=True).start()

    def _update(self, rec, **kw):
        with self.lock:
            rec.update(kw)
            self.lock.notify_all()

    def _serve(self, c):
        rec = {"path": None, "t_start": time.monotonic(), "t_end": None,
               "outcome": None, "range": None, "if_range": None}
        try:
            head = b""
            c.settimeout(scaled(10))
            while b"\r\n\r\n" not in head:
                b = c.recv(4096)
                if not b:
                    return
                head += b
            lines = head.split(b"\r\n")
            path = lines[0].split(b" ")[1].decode()
            hdrs = {}
            for ln in lines[1:]:
                if b":" in ln:
                    k, v = ln.split(b":", 1)
                    hdrs[k.strip().lower().decode()] = v.strip().decode()
            with self.lock:
                n = self.counts.get(path, 0)
                self.counts[path] = n + 1
                script = self.scripts.get(path, [("status", 404)])
                action = script[min(n, len(script) - 1)]
                rec.update(path=path, range=hdrs.get("range"),
                           if_range=hdrs.get("if-range"), action=action[0])
                self.records.append(rec)
                self.lock.notify_all()
            outcome = getattr(self, "_do_" + action[0])(c, path, hdrs,
                                                        *action[1:])
            self._update(rec, outcome=outcome, t_end=time.monotonic())
        except OSError as e:
            self._update(rec, outcome="error: %s" % e,
                         t_end=time.monotonic())
        finally:
            try:
                c.close()
            except OSError:
                pass

    # --- behaviours (each returns the outcome) -----------------------------

    def _wait_peer(self, c, limit):
        """Hold the connection until the client closes it."""
        c.settimeout(0.05)
        end = time.monotonic() + limit
        while time.monotonic() < end and not self.stopping.is_set():
            try:
                if c.recv(4096) == b"":
                    return "peer_closed"
            except socket.timeout:
                continue
            except OSError:
                return "peer_closed"
        return "held"

    def _rst(self, c):
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                     struct.pack("ii", 1, 0))
        c.close()

    def _head(self, c, status, length, extra=()):
        h = ["HTTP/1.1 %s" % status,
             "Content-Type: application/octet-stream",
             "ETag: \"v1\"", "Accept-Ranges: bytes"]
        if length is not None:
            h.append("Content-Length: %d" % length)
        h.extend(extra)
        c.sendall(("\r\n".join(h) + "\r\n\r\n").encode())

    def _do_hang(self, c, path, hdrs):
        return self._wait_peer(c, 120)

    def _do_rst(self, c, path, hdrs):
        self._rst(c)
        return "reset"

    def _do_ok(self, c, path, hdrs, size):
        """The file, honouring Range: bytes=N- with If-Range "v1"."""
        data = body_of(path, size)
        rng = hdrs.get("range")
        if rng and rng.startswith("bytes=") and rng.endswith("-") and \
                hdrs.get("if-range") in (None, "\"v1\""):
            start = int(rng[6:-1])
            self._head(c, "206 Partial Content", size - start,
                       ["Content-Range: bytes %d-%d/%d" %
                        (start, size - 1, size)])
            c.sendall(data[start:])
        else:
            self._head(c, "200 OK", size)
            c.sendall(data)
        return "complete"

    def _do_rst_mid(self, c, path, hdrs, size, k):
        self._head(c, "200 OK", size)
        c.sendall(body_of(path, size)[:k])
        time.sleep(0.2)             # let the client read those bytes
        self._rst(c)
        return "reset"

    def _do_stall(self, c, path, hdrs, size, k):
        """Announce size, send k bytes, then hold the connection."""
        self._head(c, "200 OK", size)
        c.sendall(body_of(path, size)[:k])
        return self._wait_peer(c, 120)

    def _do_less(self, c, path, hdrs, size, k):
        """Announce size, send k bytes, close with a FIN."""
        self._head(c, "200 OK", size)
        c.sendall(body_of(path, size)[:k])
        time.sleep(0.1)
        c.shutdown(socket.SHUT_RDWR)
        return "lied"

    def _do_more(self, c, path, hdrs, size, extra):
        """Announce size, send size + extra bytes, close."""
        self._head(c, "200 OK", size)
        c.sendall(body_of(path, size + extra))
        time.sleep(0.1)
        c.shutdown(socket.SHUT_RDWR)
        return "sent more"

    def _do_junk(self, c, path, hdrs):
        """Something that is not HTTP, then close."""
        c.sendall(b"SSH-2.0-OpenSSH_9.2\r\nProtocol mismatch.\r\n")
        time.sleep(0.1)
        c.shutdown(socket.SHUT_RDWR)
        return "junk"

    def _do_redirect(self, c, path, hdrs, location):
        self._head(c, "302 Found", 0, ["Location: " + location])
        return "redirect"

    def _do_bighead(self, c, path, hdrs, lines, width):
        """A 200 whose headers are `lines` headers of `width` bytes each
        (one of 200 KB, or many that add up), then a short body."""
        extra = ["X-Big-%d: %s" % (i, "b" * width) for i in range(lines)]
        self._head(c, "200 OK", 5, extra)
        c.sendall(b"hello")
        return "complete"

    def _do_status(self, c, path, hdrs, status):
        self._head(c, "%d X" % status, 0)
        return "status"


srv = RawServer()


def dl(url, path, spec=None, **params):
    p = {"url": url, "path": path}
    p.update(params)
    s = {"kind": "download", "params": p}
    s.update(spec or {})
    return s


def err(x):
    return (x.get("error") or {}).get("code")


def logtext(d, tid):
    return "\n".join(line[1] for line in d.log(tid))


def left_on_disk(d):
    out = []
    for root, _, files in os.walk(d.download_dir):
        out.extend(os.path.relpath(os.path.join(root, f), d.download_dir)
                   for f in files)
    return sorted(out)


def elapsed(x):
    if not x.get("started_at") or not x.get("finished_at"):
        return None
    return parse_time(x["finished_at"]) - parse_time(x["started_at"])


@t.test(timeout=60)
def server_never_answers():
    with Corod(t, name="hang") as d:
        # The low-speed limit covers the wait for the status line too.
        a = d.submit(dl(srv.url("/hang-ls", ("hang",)), "hang-ls.bin",
                        {"max_attempts": 2}, low_speed_limit=1,
                        low_speed_time=1))
        # The task's timeout ends a hung attempt as well.
        b = d.submit(dl(srv.url("/hang-to", ("hang",)), "hang-to.bin",
                        {"timeout": 1}))
        # Default limits (60 s): only a cancel ends it.
        c = d.submit(dl(srv.url("/hang-cancel", ("hang",)),
                        "hang-cancel.bin"))
        srv.wait(lambda rs: any(r["path"] == "/hang-cancel" for r in rs), 5,
                 "the request of the download to cancel")
        time.sleep(0.3)
        t0 = time.monotonic()
        r = d.cancel(c["id"])
        t.ok(r.status in (200, 202), "cancel of a download waiting for a "
             "status line: %d" % r.status)
        x = d.wait_state(c["id"], FINAL, 3)
        t.is_(x["state"], "canceled", "... it ends canceled (%.2f s)" %
              (time.monotonic() - t0))
        srv.wait(lambda rs: srv.requests("/hang-cancel")[0]["outcome"]
                 is not None, 3, "the canceled connection closed")
        t.is_(srv.requests("/hang-cancel")[0]["outcome"], "peer_closed",
              "... and its connection is closed")

        x = d.wait_state(a["id"], FINAL, 15)
        t.is_((x["state"], err(x), x["attempt"]), ("failed", "network", 2),
              "no status line within low_speed_time 1 s: network, retried, "
              "failed on attempt 2 of 2")
        reqs = srv.requests("/hang-ls")
        t.is_([r["outcome"] for r in reqs], ["peer_closed", "peer_closed"],
              "... two connections, each closed by corod")
        held = [r["t_end"] - r["t_start"] for r in reqs if r["t_end"]]
        t.ok(len(held) == 2 and all(0.8 <= h <= scaled(3.5) for h in held),
             "... each after about 1 s (%s)" %
             ", ".join("%.2f" % h for h in held))
        t.like(logtext(d, a["id"]), r"attempt 1 failed: .*retrying in",
               "... the log says attempt 1 failed and is retried")
        x = d.wait_state(b["id"], FINAL, 10)
        t.is_((x["state"], err(x)), ("failed", "timeout"),
              "no status line within the task's timeout of 1 s: timeout")
        t.between(elapsed(x), 0.9, scaled(2.5), "... after about 1 s")
        t.is_(left_on_disk(d), [], "nothing is left on disk")
        t.is_(d.stop(), 0, "SIGTERM: exit status 0")


@t.test(timeout=60)
def server_never_accepts():
    # A listening socket that never accepts, its backlog filled by this
    # test: corod's SYNs are dropped and its connect waits.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(0)
    port = s.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):
            f = socket.socket()
            f.setblocking(False)
            try:
                f.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            fillers.append(f)
        time.sleep(0.2)
        probe = socket.socket()
        probe.settimeout(0.5)
        try:
            probe.connect(("127.0.0.1", port))
            full = False
        except (socket.timeout, OSError):
            full = True
        probe.close()
        if not full:
            t.skip("connect_timeout", "the listen backlog does not fill "
                   "here")
            return
        with Corod(t, name="no-accept") as d:
            a = d.submit(dl("http://127.0.0.1:%d/x" % port, "x.bin",
                            {"max_attempts": 2}, connect_timeout=0.5))
            x = d.wait_state(a["id"], FINAL, 15)
            t.is_((x["state"], err(x), x["attempt"]),
                  ("failed", "network", 2),
                  "a connect that never completes: network after "
                  "connect_timeout, retried once")
            t.like((x["error"] or {}).get("message", ""),
                   r"(?i)time",
                   "... the message says it timed out")
            t.between(elapsed(x), 0.4, scaled(3.0),
                      "... the last attempt took about 0.5 s")
            t.is_(d.stop(), 0, "SIGTERM: exit status 0")
    finally:
        for f in fillers:
            f.close()
        s.close()


@t.test(timeout=60)
def resets():
    size = 300000
    with Corod(t, name="reset") as d:
        a = d.submit(dl(srv.url("/rst-head", ("rst",), ("ok", size)),
                        "rst-head.bin", {"max_attempts": 2}))
        b = d.submit(dl(srv.url("/rst-head-1", ("rst",)), "rst-head-1.bin"))
        c = d.submit(dl(srv.url("/rst-mid", ("rst_mid", size, 100000)),
                        "rst-mid.bin"))
        e = d.submit(dl(srv.url("/rst-mid-2", ("rst_mid", size, 100000),
                                ("ok", size)), "rst-mid-2.bin",
                        {"max_attempts": 2}))
        got = {i: d.wait_state(i, FINAL, 15)
               for i in (a["id"], b["id"], c["id"], e["id"])}
        x = got[a["id"]]
        t.is_((x["state"], x["attempt"]), ("succeeded", 2),
              "a reset before any header is retried: succeeded on "
              "attempt 2")
        t.is_((x["result"] or {}).get("sha256"),
              hashlib.sha256(body_of("/rst-head", size)).hexdigest(),
              "... with the right bytes")
        t.like(logtext(d, a["id"]), r"attempt 1 failed: .*retrying",
               "... the log says attempt 1 failed")
        x = got[b["id"]]
        t.is_((x["state"], err(x), x["attempt"]), ("failed", "network", 1),
              "a reset before any header on the only attempt: network")
        x = got[c["id"]]
        t.is_((x["state"], err(x), x["attempt"]), ("failed", "network", 1),
              "a reset after 100000 of 300000 bytes on the only attempt: "
              "network")
        x = got[e["id"]]
        reqs = srv.requests("/rst-mid-2")
        t.is_([(r["range"], r["if_range"]) for r in reqs],
              [(None, None), ("bytes=100000-", "\"v1\"")],
              "a reset mid-body is resumed from the bytes received "
              "(Range bytes=100000-, If-Range the ETag)")
        t.is_((x["state"], (x["result"] or {}).get("sha256")),
              ("succeeded",
               hashlib.sha256(body_of("/rst-mid-2", size)).hexdigest()),
              "... and the file is complete and right")
        t.is_(left_on_disk(d), ["rst-head.bin", "rst-mid-2.bin"],
              "the failed ones left no file and no .part")
        t.is_(d.stop(), 0, "SIGTERM: exit status 0")


@t.test(timeout=60)
def cancel_while_waiting_to_retry():
    """A reset mid-body keeps the .part for the retry; canceled during the
    backoff (scheduled, not running), the .part goes as it does for a
    running download."""
    size = 300000
    with Corod(t, name="cancel-backoff") as d:
        a = d.submit(dl(srv.url("/backoff", ("rst_mid", size, 100000),
                                ("ok", size)), "backoff.bin",
                        {"max_attempts": 3}))
        d.wait_for(lambda: (lambda x: x["state"] == "scheduled" and
                            x["attempt"] == 1)(d.get(a["id"])), 10,
                   desc="attempt 1 failed, waiting for its retry")
        part = os.path.join(d.download_dir, "backoff.bin.part")
        t.ok(os.path.exists(part), "the .part is kept for the retry (%s "
             "bytes)" % (os.path.getsize(part) if os.path.exists(part)
                         else None))
        r = d.cancel(a["id"])
        t.is_((r.status, r.body.get("state")), (200, "canceled"),
              "cancel during the backoff: 200 canceled")
        t.is_(left_on_disk(d), [], "the .part is removed")
        t.like(logtext(d, a["id"]), r"removed backoff\.bin\.part",
               "... and the log says so")
        t.is_(len(srv.requests("/backoff")), 1, "no second request")
        t.is_(d.stop(), 0, "SIGTERM: exit status 0")


@t.test(timeout=60)
def placed_before_a_crash():
    """The state a kill -9 leaves between putting the file in place and
    storing the success (made here by hand: corod is killed mid-body, the
    file is put at its path, the .part removed and the checkpoint given
    the record corod writes before its rename): the next attempt succeeds
    with the file instead of failing 'exists'."""
    size = 50000
    with Corod(t, name="placed") as d:
        a = d.submit(dl(srv.url("/placed", ("stall", size, 1000)),
                        "placed.bin"))
        part = os.path.join(d.download_dir, "placed.bin.part")
        d.wait_for(lambda: os.path.exists(part) and
                   os.path.getsize(part) == 1000, 5, desc="1000 bytes in")

        def checkpointed():
            rows = d.sql("SELECT checkpoint FROM tasks WHERE id = ?",
                         (a["id"],))
            return bool(rows) and rows[0][0] is not None
        # the checkpoint is committed after the headers, maybe after bytes
        d.wait_for(checkpointed, 5, desc="the checkpoint stored")
        d.kill9()
        data = body_of("/placed", size)
        with open(os.path.join(d.download_dir, "placed.bin"), "wb") as f:
            f.write(data)
        os.unlink(part)
        sha = hashlib.sha256(data).hexdigest()
        (ck,) = d.sql("SELECT checkpoint FROM tasks WHERE id = ?",
                      (a["id"],))[0]
        ck = json.loads(ck)
        ck["placed"] = {"sha256": sha, "bytes": size,
                        "http_status": 200, "url": a["params"]["url"]}
        d.sql("UPDATE tasks SET checkpoint = ? WHERE id = ?",
              (json.dumps(ck), a["id"]))
        d.start()
        x = d.wait_state(a["id"], FINAL, 5)
        res = x["result"] or {}
        t.is_((x["state"], x["attempt"], res.get("sha256"),
               res.get("bytes")), ("succeeded", 2, sha, size),
              "the file found in place is the task's success (attempt 2)")
        t.like(logtext(d, a["id"]), r"placed\.bin was put in place before "
               r"the daemon stopped", "... and the log says so")
        t.is_(len(srv.requests("/placed")), 1, "... without a second "
              "request")
        t.is_(left_on_disk(d), ["placed.bin"], "the file stays, nothing "
              "else is left")
        t.is_(d.stop(), 0, "SIGTERM: exit status 0")


@t.test(timeout=60)
def lengths_that_lie():
    size = 200000
    with Corod(t, name="lengths") as d:
        a = d.submit(dl(srv.url("/less", ("less", size, 50000),
                                ("ok", size)), "less.bin",
                        {"max_attempts": 2}))
        b = d.submit(dl(srv.url("/less-1", ("less", size, 50000)),
                        "less-1.bin"))
        c = d.submit(dl(srv.url("/more", ("more", size, 5000)), "more.bin"))
        got = {i: d.wait_state(i, FINAL, 15)
               for i in (a["id"], b["id"], c["id"])}
        x = got[a["id"]]
        reqs = srv.requests("/less")
        t.is_([(r["range"], r["if_range"]) for r in reqs],
              [(None, None), ("bytes=50000-", "\"v1\"")],
              "a body shorter than its Content-Length: the retry asks for "
              "the rest")
        t.is_((x["state"], x["attempt"],
               (x["result"] or {}).get("sha256")),
              ("succeeded", 2,
               hashlib.sha256(body_of("/less", size)).hexdigest()),
              "... and the file is complete and right on attempt 2")
        t.like(logtext(d, a["id"]), r"attempt 1 failed: .*retrying",
               "... the log says attempt 1 failed")
        x = got[b["id"]]
        t.is_((x["state"], err(x)), ("failed", "bad_response"),
              "... on the only attempt: bad_response")
        x = got[c["id"]]
        res = x["result"] or {}
        t.is_((x["state"], res.get("bytes"), res.get("sha256")),
              ("succeeded", size,
               hashlib.sha256(body_of("/more", size)).hexdigest()),
              "more bytes than the Content-Length: the announced %d bytes "
              "are the file" % size)
        t.is_(left_on_disk(d), ["less.bin", "more.bin"],
              "the failed one left no file and no .part")
        t.is_(d.stop(), 0, "SIGTERM: exit status 0")


@t.test(timeout=60)
def not_http():
    size = 5000
    with Corod(t, name="not-http") as d:
        a = d.submit(dl(srv.url("/junk", ("junk",), ("ok", size)),
                        "junk.bin", {"max_attempts": 2}))
        b = d.submit(dl(srv.url("/junk-1", ("junk",)), "junk-1.bin"))
        c = d.submit(dl(srv.url("/to-ftp", ("redirect", "ftp://127.0.0.1/x")),
                        "to-ftp.bin", {"max_attempts": 2}))
        got = {i: d.wait_state(i, FINAL, 10)
               for i in (a["id"], b["id"], c["id"])}
        x = got[a["id"]]
        t.is_((x["state"], x["attempt"]), ("succeeded", 2),
              "an answer that is not HTTP is retried: succeeded on attempt 2")
        x = got[b["id"]]
        t.is_((x["state"], err(x), x["attempt"]),
              ("failed", "bad_response", 1),
              "... on the only attempt: bad_response")
        t.like((x["error"] or {}).get("message", ""), r"not HTTP",
               "... saying the answer is not HTTP")
        x = got[c["id"]]
        t.is_((x["state"], err(x), x["attempt"]),
              ("failed", "bad_redirect", 1),
              "a redirect to ftp:// is still bad_redirect, not retried")
        t.is_(d.stop(), 0, "SIGTERM: exit status 0")


@t.test(timeout=60)
def huge_response_headers():
    """Issue 12 item 9: an answer with a 200 KB header failed as
    "network: Out of memory" (libcurl's refusal of a header line over
    100 KB) and was retried; it is a final bad_response now, and so are
    headers that add up to more than 100 KiB in many lines (which
    libcurl would take)."""
    with Corod(t, name="bighead") as d:
        a = d.submit(dl(srv.url("/big-one", ("bighead", 1, 200000)),
                        "big-one.bin", {"max_attempts": 3}))
        b = d.submit(dl(srv.url("/big-many", ("bighead", 200, 1000)),
                        "big-many.bin", {"max_attempts": 3}))
        c = d.submit(dl(srv.url("/big-fine", ("bighead", 20, 1000)),
                        "big-fine.bin", {"max_attempts": 3}))
        got = {i: d.wait_state(i, FINAL, 10)
               for i in (a["id"], b["id"], c["id"])}
        for x, what, path in ((got[a["id"]], "one 200 KB header", "/big-one"),
                              (got[b["id"]], "200 headers of 1 KB",
                               "/big-many")):
            t.is_((x["state"], err(x), x["attempt"]),
                  ("failed", "bad_response", 1),
                  "%s: bad_response on attempt 1 of 3 (final)" % what) or \
                t.diag(json.dumps(x["error"]))
            t.like((x["error"] or {}).get("message", ""), r"headers",
                   "... the message speaks of the headers")
            t.is_(len(srv.requests(path)), 1, "... asked once")
        x = got[c["id"]]
        t.is_((x["state"], (x["result"] or {}).get("bytes")),
              ("succeeded", 5), "20 KB of headers are fine")
        t.is_(left_on_disk(d), ["big-fine.bin"],
              "the failed ones left nothing on disk")
        t.is_(d.stop(), 0, "SIGTERM: exit status 0")


@t.test(timeout=60)
def excess_bytes_do_not_reach_the_next_download():
    """The bytes past a Content-Length stay unread in the socket; a
    connection with them must not be reused for the next request to the
    same server (whose answer they would become)."""
    size = 100000
    with Corod(t, name="excess") as d:
        for n, extra in enumerate((5000, 1)):
            a = d.submit(dl(srv.url("/more-%d" % n, ("more", size, extra)),
                            "more-%d.bin" % n))
            x = d.wait_state(a["id"], FINAL, 10)
            t.is_((x["state"], (x["result"] or {}).get("bytes")),
                  ("succeeded", size), "%d bytes past the Content-Length: "
                  "succeeded with %d bytes" % (extra, size))
            b = d.submit(dl(srv.url("/next-%d" % n, ("ok", 1000)),
                            "next-%d.bin" % n))
            x = d.wait_state(b["id"], FINAL, 10)
            t.is_((x["state"], x["error"], len(srv.requests("/next-%d" % n))),
                  ("succeeded", None, 1), "... the next download from the "
                  "server gets its own answer")
        t.is_(d.stop(), 0, "SIGTERM: exit status 0")


t.done()
