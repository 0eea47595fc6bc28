"""fileserver.py -- a fixture HTTP/1.1 server for the download tests.

It runs in the test's own process (a ThreadingHTTPServer on a thread),
listens on 127.0.0.1 at a free port, keeps connections alive, and serves
deterministic content, so a test computes the expected bytes and SHA-256
without storing files:

    with FileServer(tap) as fs:
        url = fs.url("a.bin", size=1000, rate=65536)
        want = sha256_hex("a.bin", 1000)          # version "1"
        ...
        reqs = fs.requests("a.bin")               # what the server saw

URLs
----
Every path is served.  A request's *name* is its path (percent-decoded)
without a leading "/data/" (so "/data/a.bin" is "a.bin", "/other/x" is
"/other/x").  The body is `content(name, size, version)`: the first
`size` bytes of SHAKE-256("corod-fileserver" 0 name 0 version); a smaller
size is a prefix of a larger one.  Per-name counters (for the `*_times`
options below) live as long as the server (`reset()` clears them), so a
test uses names of its own.

Query options, freely combined (n, K, B integers):

  size=N         body length (default 1024)
  version=v      part of the content, the ETag and Last-Modified (default 1)
  version2=v, change_after=n
                 the (n+1)th and later requests for the name (counted from
                 the content stage, see below) get version v instead: the
                 remote file "changes" between attempts
  type=T         Content-Type (default application/octet-stream)
  etag=0         send neither ETag nor Last-Modified; etag=lm only
                 Last-Modified; etag=only only the ETag (default: both)
  cd=F           Content-Disposition: attachment; filename="F"
  norange=1      ignore Range (and If-Range): always 200 with the whole body
  badrange=1     answer a Range with a 206 for the wrong range (bytes 0-)
                 and the whole body [badrange_times=n: the first n such]
  bad416=1       answer a Range (even a satisfiable one) with 416 and
                 `Content-Range: bytes */size` [bad416_times=n: the first
                 n such]
  status=S       answer S with a short text body instead of the file
                 [status_times=n: only the first n requests, then serve]
  fail=n         answer fail_status (default 500) to the first n requests
  redirect=n     a chain of n 302s (absolute Location: the same URL with
                 redirect=n-1, the parameter dropped when it reaches 0)
  location=U     answer 302 with Location: U (any scheme)
  delay=S        seconds to wait before the status line
  rate=B         throttle the body to B bytes/s [rate_times=n: only the
                 first n bodies sent for the name]
  drop=K         after K body bytes (of this answer), reset the connection
                 (SO_LINGER 0 -> RST) after a short pause that lets the
                 client read what was sent; drop_fin=1 closes with a FIN
                 instead [drop_times=n: the first n bodies; default 1]
  lie=N          announce Content-Length N (more than the body), send the
                 body and close (FIN) [lie_times=n: default every time]
  chunked=1      Transfer-Encoding: chunked, no Content-Length
  stall=K        after K body bytes stop sending and hold the connection
                 (until the client leaves, the server stops, or stall_max
                 seconds, default 120); with chunked=1 and K >= size the
                 whole body is sent but not the final chunk, so the client
                 has every byte yet the transfer is not over
                 [stall_times=n: the first n bodies; default every time]

Order of evaluation: redirect/location, then delay, then (the "content
stage": the per-name request counter for change_after counts from here)
status/fail, then the file: Range is honoured as `bytes=N-` or
`bytes=N-M` (206 with Content-Range), If-Range compared exactly with the
ETag or the Last-Modified date (a mismatch ignores Range: 200 with the
whole body), N >= size gives 416 with `Content-Range: bytes */size`.
HEAD is answered like GET without a body.

Records
-------
Every request is recorded as a dict (see `Req`): seq, conn (connection
number), method, path, name, query (dict), headers (dict, lower-case
names), range, if_range, user_agent, status, range_start, sent (body
bytes written), outcome (None while the answer is going;
"complete", "peer_closed", "dropped", "lied", "stalled", "stopped",
"error"), t_start/t_end (time.monotonic()).  `requests(name)`,
`wait_for(pred, timeout)` and `wait_request(...)` read them.
"""

import email.utils
import hashlib
import http.server
import os
import select
import socket
import socketserver
import struct
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import scaled  # noqa: E402

_STREAM_CACHE = {}
_CACHE_LOCK = threading.Lock()


def _stream(name, version, size):
    """At least size bytes of the (name, version) stream (cached)."""
    key = (name, str(version))
    with _CACHE_LOCK:
        have = _STREAM_CACHE.get(key)
        if have is not None and len(have) >= size:
            return have
    n = max(size, 4096)
    data = hashlib.shake_256(b"corod-fileserver\0" + name.encode("utf-8") +
                             b"\0" + str(version).encode("utf-8")).digest(n)
    with _CACHE_LOCK:
        if len(_STREAM_CACHE) > 256:
            _STREAM_CACHE.clear()
        _STREAM_CACHE[key] = data
    return data


def content(name, size, version="1"):
    """The body served for name at size (and version)."""
    if size == 0:
        return b""
    return _stream(name, version, size)[:size]


def sha256_hex(name, size, version="1"):
    return hashlib.sha256(content(name, size, version)).hexdigest()


def etag_of(name, size, version="1"):
    h = hashlib.sha256(("%s\0%s\0%d" % (name, version, size)).encode())
    return '"%s"' % h.hexdigest()[:20]


def last_modified_of(name, size, version="1"):
    h = hashlib.sha256(("lm\0%s\0%s\0%d" % (name, version, size)).encode())
    t = 1600000000 + int(h.hexdigest()[:6], 16)
    return email.utils.formatdate(t, usegmt=True)


def name_of(path):
    p = urllib.parse.unquote(path)
    if p.startswith("/data/"):
        return p[len("/data/"):]
    return p


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def handle_error(self, request, client_address):
        # A client resetting an idle keep-alive connection is normal here.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class FileServer:
    """The server (started by the constructor); stop() or use `with`."""

    def __init__(self, tap=None, host="127.0.0.1"):
        self.tap = tap
        self.host = host
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._reqs = []
        self._counters = {}
        self._conn_seq = 0
        self._live = set()
        self.stopping = threading.Event()
        owner = self

        class Handler(_Handler):
            fs = owner

        self.httpd = _Server((host, 0), Handler)
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever,
                                        kwargs={"poll_interval": 0.1},
                                        daemon=True)
        self._thread.start()
        if tap is not None and self.stop not in tap.cleanups:
            tap.cleanups.append(self.stop)

    # --- URLs --------------------------------------------------------------

    @property
    def base(self):
        return "http://%s:%d" % (self.host, self.port)

    def url(self, name, **query):
        """URL of /data/<name> with the options as query parameters
        (name is percent-encoded; '/' kept)."""
        return self.url_path("/data/" + name, **query)

    def url_path(self, path, **query):
        u = self.base + urllib.parse.quote(path, safe="/")
        if query:
            u += "?" + urllib.parse.urlencode(
                [(k, str(v)) for k, v in query.items()])
        return u

    # --- records -------------------------------------------------------------

    def _count(self, name, what):
        """Increment and return the per-name counter `what` (1-based)."""
        with self._lock:
            k = (name, what)
            self._counters[k] = self._counters.get(k, 0) + 1
            return self._counters[k]

    def _peek_count(self, name, what):
        with self._lock:
            return self._counters.get((name, what), 0)

    def _record(self, rec):
        with self._cond:
            rec["seq"] = len(self._reqs) + 1
            self._reqs.append(rec)
            self._cond.notify_all()

    def _update(self, rec, **kw):
        with self._cond:
            rec.update(kw)
            self._cond.notify_all()

    def requests(self, name=None, method=None):
        """Copies of the records (of one name), oldest first."""
        with self._lock:
            out = [dict(r) for r in self._reqs
                   if (name is None or r["name"] == name) and
                   (method is None or r["method"] == method)]
        return out

    def wait_for(self, pred, timeout=10, desc="condition"):
        """Wait until pred(records) is true (returned); AssertionError
        after timeout (scaled)."""
        deadline = time.monotonic() + scaled(timeout)
        with self._cond:
            while True:
                v = pred([dict(r) for r in self._reqs])
                if v:
                    return v
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("fileserver: %s not true within "
                                         "%.1f s" % (desc, scaled(timeout)))
                self._cond.wait(min(left, 0.1))

    def wait_request(self, name, n=1, timeout=10):
        """Wait for the nth request for name; returns its record."""
        def pred(rs):
            mine = [r for r in rs if r["name"] == name]
            return mine[n - 1] if len(mine) >= n else None
        return self.wait_for(pred, timeout, "request %d for %r" % (n, name))

    def wait_outcome(self, seq, timeout=10):
        """Wait until request seq has an outcome; returns its record."""
        def pred(rs):
            r = rs[seq - 1] if len(rs) >= seq else None
            return r if r is not None and r["outcome"] is not None else None
        return self.wait_for(pred, timeout, "an outcome for request %d" % seq)

    def reset(self):
        with self._lock:
            self._reqs = []
            self._counters = {}

    # --- stop -------------------------------------------------------------

    def stop(self):
        if self.stopping.is_set():
            return
        self.stopping.set()
        self.httpd.shutdown()
        with self._lock:
            live = list(self._live)
        for s in live:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.httpd.server_close()
        self._thread.join(scaled(5))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


def _int(q, k, default=None):
    try:
        return int(q[k])
    except (KeyError, ValueError):
        return default


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "corod-fileserver/1"
    sys_version = ""
    timeout = 30                 # an idle keep-alive connection ends
    fs = None                    # set by FileServer

    def log_message(self, fmt, *args):
        pass

    def version_string(self):
        return self.server_version

    def setup(self):
        super().setup()
        with self.fs._lock:
            self.fs._conn_seq += 1
            self.conn_id = self.fs._conn_seq
            self.fs._live.add(self.connection)

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass
        with self.fs._lock:
            self.fs._live.discard(self.connection)

    def do_GET(self):
        self._serve(head=False)

    def do_HEAD(self):
        self._serve(head=True)

    # --- helpers -------------------------------------------------------------

    def _peer_closed(self):
        """True if the client closed its end (EOF or reset)."""
        try:
            r, _, _ = select.select([self.connection], [], [], 0)
            if not r:
                return False
            data = self.connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            return data == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def _simple(self, rec, status, body=b"", headers=()):
        body = body if isinstance(body, bytes) else body.encode()
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.fs._update(rec, status=status, outcome="complete",
                        t_end=time.monotonic())

    def _reset(self):
        """Close with a RST."""
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close_connection = True
        try:
            self.rfile.close()      # drop makefile's reference to the fd
        except OSError:
            pass
        try:
            self.connection.close()
        except OSError:
            pass

    def _wait_or_closed(self, seconds):
        """Sleep up to seconds; 'peer_closed' / 'stopped' or None."""
        end = time.monotonic() + seconds
        while True:
            if self.fs.stopping.is_set():
                return "stopped"
            if self._peer_closed():
                return "peer_closed"
            left = end - time.monotonic()
            if left <= 0:
                return None
            time.sleep(min(left, 0.05))

    # --- the answer ----------------------------------------------------------

    def _serve(self, head):
        fs = self.fs
        parsed = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
        name = name_of(parsed.path)
        hdrs = {k.lower(): v for k, v in self.headers.items()}
        rec = {
            "seq": None, "conn": self.conn_id, "method": self.command,
            "path": self.path, "name": name, "query": q, "headers": hdrs,
            "range": hdrs.get("range"), "if_range": hdrs.get("if-range"),
            "user_agent": hdrs.get("user-agent"), "status": None,
            "range_start": None, "sent": 0, "outcome": None,
            "t_start": time.monotonic(), "t_end": None,
        }
        fs._record(rec)
        try:
            self._answer(rec, q, name, head, parsed)
        except (BrokenPipeError, ConnectionResetError):
            fs._update(rec, outcome="peer_closed", t_end=time.monotonic())
            self.close_connection = True
        except (OSError, ValueError) as e:
            fs._update(rec, outcome="error", error=repr(e),
                       t_end=time.monotonic())
            self.close_connection = True

    def _answer(self, rec, q, name, head, parsed):
        fs = self.fs
        # Redirects.
        n = _int(q, "redirect", 0)
        if n > 0:
            q2 = [(k, v) for k, v in urllib.parse.parse_qsl(
                parsed.query, keep_blank_values=True) if k != "redirect"]
            if n - 1 > 0:
                q2.append(("redirect", str(n - 1)))
            loc = fs.base + parsed.path + ("?" + urllib.parse.urlencode(q2)
                                           if q2 else "")
            self._simple(rec, 302, "redirect\n", [("Location", loc)])
            return
        if "location" in q:
            self._simple(rec, 302, "redirect\n", [("Location", q["location"])])
            return
        if "delay" in q:
            why = self._wait_or_closed(float(q["delay"]))
            if why:
                fs._update(rec, outcome=why, t_end=time.monotonic())
                self.close_connection = True
                return
        k = fs._count(name, "content")
        # Errors.
        if "status" in q:
            times = _int(q, "status_times")
            if times is None or fs._count(name, "status") <= times:
                st = int(q["status"])
                self._simple(rec, st, "status %d\n" % st)
                return
        if _int(q, "fail", 0) > 0 and fs._count(name, "fail") <= int(q["fail"]):
            st = _int(q, "fail_status", 500)
            self._simple(rec, st, "failing on purpose\n")
            return

        size = _int(q, "size", 1024)
        version = q.get("version", "1")
        if "version2" in q and k > _int(q, "change_after", 0):
            version = q["version2"]
        data = content(name, size, version)
        etag = etag_of(name, size, version)
        lm = last_modified_of(name, size, version)
        mode = q.get("etag", "1")
        send_etag = mode in ("1", "only")
        send_lm = mode in ("1", "lm")

        # Range.
        start = None
        rng = self.headers.get("Range")
        if rng and q.get("norange") != "1":
            ir = self.headers.get("If-Range")
            ok = True
            if ir is not None:
                ok = (send_etag and ir == etag) or (send_lm and ir == lm)
            if ok:
                spec = rng.strip()
                if spec.startswith("bytes=") and "," not in spec:
                    a, _, b = spec[6:].partition("-")
                    try:
                        s = int(a)
                        e = int(b) if b.strip() else None
                        if s >= 0 and (e is None or e >= s):
                            start = (s, size - 1 if e is None
                                     else min(e, size - 1))
                    except ValueError:
                        start = None
        status = 200
        body = data
        extra = []
        if start is not None:
            s, e = start
            if s < size and q.get("bad416") == "1" and (
                    _int(q, "bad416_times") is None or
                    fs._count(name, "bad416") <= _int(q, "bad416_times")):
                s = size
            if s >= size:
                self._simple(rec, 416, "", [("Content-Range",
                                             "bytes */%d" % size)] +
                             ([("ETag", etag)] if send_etag else []))
                fs._update(rec, range_start=s)
                return
            if q.get("badrange") == "1" and (
                    _int(q, "badrange_times") is None or
                    fs._count(name, "badrange") <= _int(q, "badrange_times")):
                s, e = 0, size - 1
            status = 206
            body = data[s:e + 1]
            extra.append(("Content-Range", "bytes %d-%d/%d" % (s, e, size)))
            fs._update(rec, range_start=start[0])

        chunked = q.get("chunked") == "1"
        lie = _int(q, "lie")
        if lie is not None:
            times = _int(q, "lie_times")
            if times is not None and fs._count(name, "lie") > times:
                lie = None
        self.send_response(status)
        self.send_header("Content-Type", q.get("type",
                                               "application/octet-stream"))
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length",
                             str(lie if lie is not None else len(body)))
        if send_etag:
            self.send_header("ETag", etag)
        if send_lm:
            self.send_header("Last-Modified", lm)
        if q.get("norange") != "1":
            self.send_header("Accept-Ranges", "bytes")
        if "cd" in q:
            fn = q["cd"].replace("\\", "\\\\").replace('"', '\\"')
            self.send_header("Content-Disposition",
                             'attachment; filename="%s"' % fn)
        for kv in extra:
            self.send_header(*kv)
        self.end_headers()
        fs._update(rec, status=status)
        if head:
            fs._update(rec, outcome="complete", t_end=time.monotonic())
            return

        # Which body options apply to this answer.
        def once(opt, default_times):
            if opt not in q:
                return None
            times = _int(q, opt + "_times", default_times)
            if times is not None and fs._count(name, opt) > times:
                return None
            return q[opt]

        rate = once("rate", None)
        rate = int(rate) if rate is not None else None
        drop = once("drop", 1)
        drop = int(drop) if drop is not None else None
        stall = once("stall", None)
        stall = int(stall) if stall is not None else None
        outcome = self._send_body(rec, body, rate, drop, stall, chunked,
                                  q.get("drop_fin") == "1",
                                  float(q.get("stall_max", 120)))
        if outcome == "complete" and lie is not None:
            outcome = "lied"
            self.close_connection = True
        if outcome != "complete":
            self.close_connection = True
        fs._update(rec, outcome=outcome, t_end=time.monotonic())

    def _send_body(self, rec, body, rate, drop, stall, chunked, drop_fin,
                   stall_max):
        fs = self.fs
        total = len(body)
        pos = 0
        t0 = time.monotonic()
        chunk = 65536
        if rate:
            # about 20 writes a second; a slow rate is a trickle of
            # small writes (rate=1: a byte a second), not rare bursts
            chunk = max(1, min(65536, rate // 20))
        sock = self.connection

        def send(b):
            if chunked:
                sock.sendall(b"%x\r\n" % len(b) + b + b"\r\n")
            else:
                sock.sendall(b)

        def do_stall():
            why = self._wait_or_closed(stall_max)
            return why or "stalled"

        while True:
            if fs.stopping.is_set():
                return "stopped"
            if drop is not None and pos >= drop and pos < total:
                why = self._wait_or_closed(0.2)
                if why:
                    return why
                if drop_fin:
                    self.close_connection = True
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                else:
                    self._reset()
                return "dropped"
            if stall is not None and pos >= stall and \
                    (pos < total or chunked):
                return do_stall()
            if pos >= total:
                break
            n = min(chunk, total - pos)
            if drop is not None and drop > pos:
                n = min(n, drop - pos)
            if stall is not None and stall > pos:
                n = min(n, stall - pos)
            if rate:
                due = t0 + pos / rate
                while True:
                    left = due - time.monotonic()
                    if left <= 0:
                        break
                    why = self._wait_or_closed(min(left, 0.05))
                    if why:
                        return why
            if self._peer_closed():
                return "peer_closed"
            send(body[pos:pos + n])
            pos += n
            fs._update(rec, sent=pos)
        if chunked:
            sock.sendall(b"0\r\n\r\n")
        return "complete"
