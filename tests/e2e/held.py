#!/usr/bin/env python3
"""held.py -- held requests (long-polls, task waits, streams) on plain
HTTP, which corod serves outside libmicrohttpd, byte by byte on raw
sockets against the real daemon.

The answer's framing (status line, Date, Content-Type, Cache-Control,
Content-Length; chunks for streams; HEAD without a body), keep-alive
after the answer and again after re-polls on the same connection,
HTTP/1.0 and Connection: close (answered, then closed), a big answer
written while the client reads slowly, a stream of a 9 MB backlog to a
slow reader (corod waits for the socket), streams whose clients never
read (closed after connection-timeout), a client that leaves while held
(dropped, counted out), an idle parked connection closed after
connection-timeout, parked connections still counted by
max-connections-per-client, a log follow ending and the connection
reused, HEAD on a stream (the stream's head, no body, ended at once),
200 long-polls answered by one submission and each connection reused,
and SIGTERM answering a held request 503.
"""

import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from tap import TAP, scaled  # noqa: E402
from corod import Corod, check_answer, echo, sleep  # noqa: E402


# On a shared store (PostgreSQL, COROD_TEST_PG) the feed's positions are
# the store's, and pass over changes that are not events (API.md,
# "Several nodes"): the events' positions in (lo, hi] are read from it.
SHARED = bool(os.environ.get("COROD_TEST_PG"))


def positions(d, lo, hi):
    """The feed's events' positions in (lo, hi], in order."""
    if not SHARED:
        return list(range(lo + 1, hi + 1))
    return [r[0] for r in d.sql(
        "SELECT f.pos + ch.k FROM changes ch JOIN feed_commits f"
        " ON f.xid = ch.xid WHERE ch.object <> 3 AND f.pos + ch.k > ?"
        " AND f.pos + ch.k <= ? ORDER BY 1", (lo, hi))]

t = TAP("held")
d = Corod(t, args=["--connection-timeout", "3", "--events-kept", "300000"])


class Raw:
    """One client connection, spoken to by hand."""

    def __init__(self, dd, timeout=20):
        self.s = socket.create_connection(("127.0.0.1", dd.port),
                                          timeout=scaled(timeout))
        self.buf = b""
        self.sent = []          # (method, path) of requests not answered

    def send(self, method, path, version="HTTP/1.1", headers=()):
        self.sent.append((method, path))
        lines = ["%s %s %s" % (method, path, version), "Host: 127.0.0.1"]
        lines += ["%s: %s" % h for h in headers]
        self.s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())

    def _fill(self):
        data = self.s.recv(65536)
        if not data:
            raise EOFError("the server closed the connection")
        self.buf += data

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("latin-1")

    def _take(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def response(self, head=False):
        """(status line, {lower name: value}, body, framing), checked
        against doc/openapi.yaml as corod.py's request() does."""
        got = self._response(head)
        if self.sent:
            method, path = self.sent.pop(0)
            check_answer(method, path, int(got[0].split()[1]), got[1],
                         got[2])
        return got

    def _response(self, head):
        status = self._line()
        headers = {}
        while True:
            line = self._line()
            if line == "":
                break
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        code = int(status.split()[1])
        if head or code in (204, 304):
            return status, headers, b"", "none"
        if "content-length" in headers:
            return status, headers, self._take(int(headers["content-length"])), "length"
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self._line().split(";")[0], 16)
                if size == 0:
                    self._line()
                    return status, headers, body, "chunked"
                body += self._take(size)
                if self._take(2) != b"\r\n":
                    raise ValueError("a chunk without its CRLF")
        while True:
            try:
                self._fill()
            except EOFError:
                body, self.buf = self.buf, b""
                return status, headers, body, "close"

    def closed_by_server(self, timeout):
        """True if the server closes the connection within timeout."""
        self.s.settimeout(scaled(timeout))
        try:
            return self.s.recv(1) == b""
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True

    def close(self):
        self.s.close()


def metric(dd, name):
    r = dd.request("GET", "/metrics")
    for line in r.body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def feed_pos(dd):
    return dd.request("GET", "/v1/events").body["next"]


def held_count(dd):
    return metric(dd, "corod_http_held_requests")


def wait_held(dd, n, timeout=10):
    return d.wait_for(lambda: held_count(dd) == n, timeout=timeout)


@t.test(timeout=60)
def long_poll_framing_and_keep_alive():
    c = Raw(d)
    pos = feed_pos(d)
    c.send("GET", "/v1/events?since=%d&wait=20" % pos)
    t.ok(wait_held(d, 1), "the long-poll is held")
    task = d.submit(echo("held"))
    status, h, body, framing = c.response()
    t.is_(status, "HTTP/1.1 200 OK", "answered 200 on the change")
    t.is_(framing, "length", "... with a Content-Length")
    t.is_(h.get("content-type"), "application/json", "... Content-Type")
    t.is_(h.get("cache-control"), "no-store", "... Cache-Control: no-store")
    t.ok(h.get("date", "").endswith(" GMT"), "... a Date (%r)" % h.get("date"))
    t.ok("connection" not in h, "... no Connection: close")
    ev = json.loads(body)
    t.ok(any(e["task"] == task["id"] for e in ev["events"]),
         "the body is the feed with the new task's event")
    for i in range(3):
        c.send("GET", "/v1/events?since=%d&wait=20" % ev["next"])
        t.ok(wait_held(d, 1), "re-poll %d on the same connection is held" % (i + 1))
        d.submit(echo("again %d" % i))
        status, h, body, _ = c.response()
        ev = json.loads(body)
        t.ok(status.endswith("200 OK") and ev["events"],
             "... and answered with the next events")
    c.send("GET", "/v1/events?since=%d&wait=0.3" % ev["next"])
    status, h, body, _ = c.response()
    t.is_(json.loads(body)["events"], [], "a wait that times out: no events")
    c.send("GET", "/healthz")
    status, h, body, _ = c.response()
    t.is_(status, "HTTP/1.1 200 OK", "then a plain request on the connection")
    c.close()


@t.test(timeout=60)
def task_wait_and_head():
    task = d.submit(echo("later", delay=60))
    c = Raw(d)
    c.send("GET", "/v1/tasks/%d?wait=20&version=%d" % (task["id"], task["version"]))
    t.ok(wait_held(d, 1), "a task wait is held")
    d.cancel(task["id"])
    status, h, body, _ = c.response()
    got = json.loads(body)
    t.is_((status, got["state"]), ("HTTP/1.1 200 OK", "canceled"),
          "answered with the canceled task")
    t.ok(h.get("etag"), "... with its ETag")
    task2 = d.submit(echo("later", delay=60))
    c.send("HEAD", "/v1/tasks/%d?wait=20&version=%d" % (task2["id"], task2["version"]))
    t.ok(wait_held(d, 1), "a HEAD task wait is held too")
    d.cancel(task2["id"])
    status, h, body, _ = c.response(head=True)
    t.ok(status.endswith("200 OK") and int(h.get("content-length", "0")) > 0,
         "HEAD: 200 with the Content-Length of the body not sent")
    c.send("GET", "/v1/tasks/%d" % task2["id"])
    status, h, body, _ = c.response()
    t.is_(json.loads(body)["state"], "canceled",
          "the next answer on the connection starts where HEAD's head ended")
    c.close()


@t.test(timeout=60)
def close_after_answer():
    for version, hdrs, desc in (("HTTP/1.0", (), "HTTP/1.0"),
                                ("HTTP/1.1", (("Connection", "close"),),
                                 "Connection: close")):
        c = Raw(d)
        c.send("GET", "/v1/events?since=%d&wait=20" % feed_pos(d), version, hdrs)
        t.ok(wait_held(d, 1), "%s: held" % desc)
        d.submit(echo("x"))
        status, h, body, _ = c.response()
        t.is_(h.get("connection", "").lower(), "close",
              "%s: answered with Connection: close" % desc)
        t.ok(json.loads(body)["events"], "%s: ... and the events" % desc)
        t.ok(c.closed_by_server(5), "%s: then the connection is closed" % desc)
        c.close()


@t.test(timeout=60)
def big_answer_slow_reader():
    pos = feed_pos(d)
    d.submit([echo("bulk %d" % i) for i in range(500)])
    d.wait_for(lambda: feed_pos(d) >= pos + 1000, timeout=20)
    c = Raw(d)
    c.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.send("GET", "/v1/events?since=%d&wait=20&limit=10000" % pos)
    time.sleep(1.0)     # the answer fills the socket; corod waits to write
    status, h, body, _ = c.response()
    ev = json.loads(body)
    t.ok(len(body) > 60000, "a %d-byte answer" % len(body))
    t.ok(len(ev["events"]) >= 1000 and
         [e["seq"] for e in ev["events"]] == positions(d, pos, ev["next"]),
         "read slowly, it arrives whole and in order (%d events)" % len(ev["events"]))
    c.send("GET", "/healthz")
    t.is_(c.response()[0], "HTTP/1.1 200 OK", "the connection goes on after it")
    c.close()


def sse_open(dd, since, rcvbuf=None):
    """A raw event stream from since; its headers read."""
    c = Raw(dd)
    if rcvbuf:
        c.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    c.send("GET", "/v1/events?since=%d" % since,
           headers=(("Accept", "text/event-stream"),))
    while c._line() != "":
        pass
    return c


def sse_chunk(c):
    size = int(c._line(), 16)
    data = c._take(size)
    c._take(2)
    return data


@t.test(timeout=120)
def stream_to_slow_readers():
    pos = feed_pos(d)
    batch = [echo("z") for _ in range(1000)]
    for _ in range(50):
        d.submit(batch, expect=201)
    d.wait_for(lambda: feed_pos(d) >= pos + 100000, timeout=60)
    end = feed_pos(d)
    # more than the socket buffers hold: corod waits for the reader
    slow = sse_open(d, pos, rcvbuf=65536)
    time.sleep(1.0)
    want = positions(d, pos, end)
    got, ids = b"", []
    while not ids or ids[-1] < want[-1]:
        got += sse_chunk(slow)
        while b"\n\n" in got:
            ev, got = got.split(b"\n\n", 1)
            for line in ev.split(b"\n"):
                if line.startswith(b"id: "):
                    ids.append(int(line[4:]))
    t.ok(ids == want,
         "a slow reader gets all %d events of a %d-byte backlog, in order"
         % (len(ids), (end - pos) * 90),
         diag="got %d ids, want %d; first differing: %r" % (
             len(ids), len(want), next(((a, b) for a, b in zip(ids, want)
                                        if a != b), None)))
    slow.close()
    # and readers that stop reading are closed after connection-timeout
    before = metric(d, "corod_http_connections")
    stuck = [sse_open(d, pos, rcvbuf=4096) for _ in range(3)]
    t.ok(d.wait_for(lambda: metric(d, "corod_http_connections") == before + 3,
                    timeout=10), "three streams whose clients never read")
    t.ok(d.wait_for(lambda: metric(d, "corod_http_connections") == before,
                    timeout=scaled(15)),
         "are closed when corod could write nothing for connection-timeout")
    t.is_(held_count(d), 0, "none is held any more")
    t.ok(d.wait_output(r"read nothing for 3 s", timeout=5),
         "the log says why")
    for c in stuck:
        c.close()


@t.test(timeout=60)
def client_leaves_while_held():
    before = metric(d, "corod_http_connections")
    cs = []
    for i in range(5):
        c = Raw(d)
        c.send("GET", "/v1/events?since=%d&wait=30" % feed_pos(d))
        cs.append(c)
    t.ok(wait_held(d, 5), "five long-polls held")
    for c in cs[:3]:
        c.close()
    cs[3].s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    cs[3].close()       # a reset
    t.ok(wait_held(d, 1), "the four that left (one with a reset) are dropped")
    t.ok(d.wait_for(lambda: metric(d, "corod_http_connections") == before + 1,
                    timeout=10), "... and their connections counted out")
    d.submit(echo("y"))
    status, h, body, _ = cs[4].response()
    t.ok(json.loads(body)["events"], "the one left is answered")
    cs[4].close()


@t.test(timeout=60)
def parked_connection_idles_out():
    c = Raw(d)
    c.send("GET", "/v1/events?since=%d&wait=20" % feed_pos(d))
    t.ok(wait_held(d, 1), "held")
    d.submit(echo("idle"))
    c.response()
    t0 = time.monotonic()
    closed = c.closed_by_server(15)
    el = time.monotonic() - t0
    t.ok(closed, "the answered connection, left idle, is closed")
    t.between(el, 2.0, scaled(8), "after about connection-timeout (3 s)")
    c.close()


@t.test(timeout=60)
def log_follow_ends_and_connection_goes_on():
    task = d.submit({"kind": "repeat", "params": {"message": "tick", "interval": 0.2, "count": 4}})
    c = Raw(d)
    c.send("GET", "/v1/tasks/%d/log?follow=1" % task["id"])
    status, h, body, framing = c.response()
    t.is_((status, framing), ("HTTP/1.1 200 OK", "chunked"),
          "a followed log is chunked")
    lines = body.decode().splitlines()
    t.is_(sum(1 for ln in lines if ln.endswith(" tick")), 4,
          "it streams the four ticks and ends with the task")
    c.send("GET", "/v1/tasks/%d" % task["id"])
    status, h, body, _ = c.response()
    t.is_(json.loads(body)["state"], "succeeded", "then the connection takes the next request")
    c.close()
    c = Raw(d)
    task = d.submit(sleep(0.5))
    c.send("GET", "/v1/tasks/%d/log?follow=1" % task["id"], "HTTP/1.0")
    status, h, body, framing = c.response()
    t.is_(framing, "close", "HTTP/1.0: the stream is not chunked, it ends with the connection")
    t.ok(b"scheduled" in body or b"sleep" in body or body, "... with the log (%d bytes)" % len(body))
    c.close()


@t.test(timeout=60)
def sse_is_chunked():
    c = Raw(d)
    c.send("GET", "/v1/events?since=%d" % feed_pos(d), headers=(("Accept", "text/event-stream"),))
    status = c._line()
    headers = {}
    while True:
        line = c._line()
        if not line:
            break
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    t.is_((status, headers.get("transfer-encoding"), headers.get("content-type")),
          ("HTTP/1.1 200 OK", "chunked", "text/event-stream"),
          "an event stream: 200, chunked, text/event-stream")
    task = d.submit(echo("sse"))
    got = b""
    deadline = time.monotonic() + scaled(10)
    while b'"task":%d' % task["id"] not in got and time.monotonic() < deadline:
        got += sse_chunk(c)
    t.ok(b'"task":%d' % task["id"] in got, "the new task's event arrives in a chunk")
    c.close()


@t.test(timeout=60)
def head_on_streams():
    # HEAD once got the non-stream answer's head (JSON, Content-Length,
    # X-Log-Next): it must be the stream's, with no body, and end at once.
    task = d.submit({"kind": "repeat", "params": {"message": "tick",
                                                   "interval": 0.5}})
    cases = (("the SSE feed", "/v1/events",
              [("Accept", "text/event-stream")]),
             ("a log follow", "/v1/tasks/%d/log?follow=1" % task["id"], []))
    for desc, path, hdrs in cases:
        g = Raw(d)
        g.send("GET", path, headers=hdrs)
        _, gh, _, _ = g.response(head=True)
        g.close()
        c = Raw(d)
        c.send("HEAD", path, headers=hdrs)
        status, h, _, _ = c.response(head=True)
        t.is_(status, "HTTP/1.1 200 OK", "HEAD on %s: 200" % desc)
        gh.pop("date", None)
        h.pop("date", None)
        t.is_(h, gh, "... the same head as the GET's (%s, chunked)" %
              gh.get("content-type"))
        c.send("GET", "/healthz")
        status, _, body, _ = c.response()
        t.ok(status == "HTTP/1.1 200 OK" and b'"ok"' in body,
             "... no body, and it ended: the connection serves the next "
             "request", diag=repr(body[:200]))
        c.close()
    t.is_(d.cancel(task["id"]).status in (200, 202), True,
          "the repeat is canceled")
    t.ok(wait_held(d, 0), "nothing is left held")


@t.test(timeout=90)
def many_long_polls_one_change():
    n = 200
    pos = feed_pos(d)
    cs = [Raw(d) for _ in range(n)]
    for c in cs:
        c.send("GET", "/v1/events?since=%d&wait=30" % pos)
    t.ok(wait_held(d, n, timeout=20), "%d long-polls held" % n)
    d.submit(echo("all"))
    ok = 0
    for c in cs:
        status, h, body, _ = c.response()
        ok += status.endswith("200 OK") and bool(json.loads(body)["events"])
    t.is_(ok, n, "one submission answers all %d" % n)
    for c in cs:
        c.send("GET", "/healthz")
    again = sum(1 for c in cs if c.response()[0] == "HTTP/1.1 200 OK")
    t.is_(again, n, "each connection then takes its next request")
    for c in cs:
        c.close()


@t.test(timeout=60)
def parked_connections_count_per_client():
    e = Corod(t, args=["--max-connections-per-client", "2"], name="limited")
    try:
        e._close_conn()         # the harness's own connection
        time.sleep(0.2)
        cs = []
        for _ in range(2):
            c = Raw(e)
            c.send("GET", "/v1/events")
            pos = json.loads(c.response()[2])["next"]
            c.send("GET", "/v1/events?since=%d&wait=0.2" % pos)
            c.response()
            cs.append(c)
        third = Raw(e)
        third.send("GET", "/healthz")
        status = third.response()[0]
        t.ok(status.startswith("HTTP/1.1 429"),
             "two answered long-poll connections kept alive still count: "
             "a third gets 429 (%s)" % status)
        third.close()
        for c in cs:
            c.close()
    finally:
        t.is_(e.stop(), 0, "that daemon stops cleanly")
        e.close()


@t.test(timeout=60)
def sigterm_answers_held_503():
    c = Raw(d)
    c.send("GET", "/v1/events?since=%d&wait=30" % feed_pos(d))
    t.ok(wait_held(d, 1), "a long-poll held")
    box = {}

    def read():
        try:
            box["r"] = c.response()
        except Exception as ex:
            box["e"] = ex
    th = threading.Thread(target=read)
    th.start()
    code = d.stop()
    th.join(scaled(10))
    status, h, body, _ = box.get("r", ("", {}, b"", ""))
    t.ok(status.startswith("HTTP/1.1 503"), "SIGTERM answers it 503 (%s %s)" % (status, box.get("e", "")))
    t.is_(h.get("connection", "").lower(), "close", "... with Connection: close")
    t.is_(code, 0, "exit status 0, no sanitizer report")
    c.close()
    d.close()


t.done()
