#!/usr/bin/env python3
"""bigbody.py -- large answers: a log of 64 KiB lines, a list of tasks with
large params.

A plain GET of a big log answers a page bounded by bytes (1 MiB, or
?max_bytes=) that says where to resume (X-Log-Next); paging by bytes
returns every line exactly once, in order, and the pages put together are
the whole log (the same bytes as ?follow=1 on the finished task); one line
is always sent even if it is larger than max_bytes; a small log keeps its
Content-Length.  GET /v1/tasks?limit=1000 over tasks of 64 KiB params ends
its page early by bytes and gives next_cursor, and following the cursors
lists every task exactly once.  While four clients read the whole log
slowly, /healthz keeps answering (a rough bound, not a timing goal), and
twelve clients that ask for a 16 MiB page and read nothing cost the daemon
little memory (its VmRSS, a rough bound): the pages are produced as the
sockets drain, not built whole.  Over TLS (the stream stays in
libmicrohttpd) the pages are the same; a graceful stop while a page is
read closes it without its last chunk, so it cannot pass for the whole.
"""

import os
import shutil
import socket
import ssl
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from tap import TAP, scaled  # noqa: E402
from corod import Corod, rss_meaningless, self_signed_cert  # noqa: E402

LINE = 65536                # the repeat message: the largest line allowed
TICKS = 320                 # about 20 MiB of log
PAGE_DEFAULT = 1024 * 1024
PAGE_MAX = 16 * 1024 * 1024  # the largest max_bytes

t = TAP("bigbody")
d = Corod(t, args=["--max-body", "4M", "--connection-timeout", "30"])


def vmrss(pid):
    """The process's VmRSS in bytes."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS for %d" % pid)


def big_task():
    """A finished repeat with TICKS lines of LINE bytes (made once)."""
    if not hasattr(big_task, "id"):
        task = d.submit({"kind": "repeat", "params": {
            "message": "x" * LINE, "interval": 0.001, "count": TICKS}})
        d.wait_state(task["id"], ("succeeded",), timeout=60)
        big_task.id = task["id"]
    return big_task.id


def log_page(tid, since, max_bytes=None):
    path = "/v1/tasks/%d/log?since=%d" % (tid, since)
    if max_bytes is not None:
        path += "&max_bytes=%d" % max_bytes
    r = d.request("GET", path, timeout=60)
    if r.status != 200:
        raise AssertionError("GET %s\n%s" % (path, r.describe()))
    return r


def split_lines(raw):
    """The lines of a log body (each with its newline)."""
    out = raw.split(b"\n")
    if out[-1] != b"":
        raise AssertionError("the body does not end with a newline")
    return [x + b"\n" for x in out[:-1]]


def slow_reader(port, path, seconds, got, rcvbuf=16384):
    """Read an answer at about 256 KiB/s for seconds, then leave."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(scaled(5))
    try:
        s.connect(("127.0.0.1", port))
        s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" %
                   path).encode())
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            data = s.recv(16384)
            if not data:
                break
            got.append(len(data))
            time.sleep(0.06)
    finally:
        s.close()


@t.test(timeout=120)
def plain_get_is_a_page():
    tid = big_task()
    r = log_page(tid, 0)
    nxt = int(r.headers["x-log-next"])
    lines = split_lines(r.raw)
    t.ok(0 < nxt < TICKS, "a plain GET of a %d MiB log answers a page "
         "(X-Log-Next %d)" % (TICKS * LINE >> 20, nxt))
    t.ok(len(r.raw) <= PAGE_DEFAULT, "... of at most 1 MiB (%d bytes)" %
         len(r.raw))
    t.ok(len(r.raw) > PAGE_DEFAULT - LINE - 100,
         "... filled to within a line of it")
    t.is_(len(lines), nxt, "... holding lines 0 to X-Log-Next - 1")
    one = log_page(tid, 5, max_bytes=1)
    t.ok(one.headers["x-log-next"] == "6" and
         len(split_lines(one.raw)) == 1 and len(one.raw) > LINE,
         "max_bytes smaller than a line: that one line, X-Log-Next 6")
    for bad in ("0", "-1", "x", str(PAGE_MAX + 1)):
        r = d.request("GET", "/v1/tasks/%d/log?max_bytes=%s" % (tid, bad))
        t.is_(r.status, 400, "max_bytes=%s: 400" % bad)
    small = d.submit({"kind": "echo", "params": {"message": "small"}})
    d.wait_state(small["id"], ("succeeded",))
    r = d.request("GET", "/v1/tasks/%d/log" % small["id"])
    t.ok(r.status == 200 and "content-length" in r.headers and
         r.headers.get("x-log-next") == str(len(split_lines(r.raw))),
         "a small log: one answer with its Content-Length, as before")


@t.test(timeout=180)
def paging_by_bytes_returns_every_line_once():
    tid = big_task()
    whole = d.request("GET", "/v1/tasks/%d/log?follow=1" % tid, timeout=60)
    wlines = split_lines(whole.raw)
    total = len(wlines)
    t.ok(whole.status == 200 and total == TICKS + 1,
         "?follow=1 on the finished task: the whole log (%d lines, %d bytes)"
         % (total, len(whole.raw)))
    for max_bytes in (300000, LINE // 2, 2 * 1024 * 1024, PAGE_MAX):
        since, pages, got, sizes_ok, starts_ok = 0, 0, [], True, True
        while pages < 10 * total:
            r = log_page(tid, since, max_bytes=max_bytes)
            nxt = int(r.headers["x-log-next"])
            page = split_lines(r.raw) if r.raw else []
            if len(page) != nxt - since:
                starts_ok = False
            if len(r.raw) > max_bytes and len(page) != 1:
                sizes_ok = False
            got += page
            pages += 1
            if nxt == since:
                break
            since = nxt
        t.ok(got == wlines, "max_bytes=%d: %d pages hold every line "
             "exactly once, in order" % (max_bytes, pages),
             diag="%d lines paged, %d in the log" % (len(got), total))
        t.ok(sizes_ok, "... each page within max_bytes, or one line")
        t.ok(starts_ok, "... each page ends at its X-Log-Next")


@t.test(timeout=120)
def healthz_answers_while_slow_readers_read():
    tid = big_task()
    got = [[] for _ in range(4)]
    path = "/v1/tasks/%d/log?max_bytes=%d" % (tid, PAGE_MAX)
    th = [threading.Thread(target=slow_reader, args=(d.port, path, 4, g))
          for g in got]
    for x in th:
        x.start()
    time.sleep(0.3)
    worst = 0.0
    answered = 0
    for _ in range(20):
        t0 = time.monotonic()
        r = d.request("GET", "/healthz", timeout=10)
        worst = max(worst, time.monotonic() - t0)
        answered += r.status == 200
        time.sleep(0.1)
    for x in th:
        x.join(scaled(30))
    t.is_(answered, 20, "/healthz answers 200 while 4 clients read the "
          "log slowly")
    t.ok(worst < scaled(2), "... every time within 2 s (worst %.3f s)" %
         worst)
    t.ok(all(sum(g) > 0 for g in got), "... and every reader got bytes")
    t.is_(d.request("GET", "/v1/tasks/%d/log?since=%d" % (tid, TICKS)
                    ).status, 200, "the daemon serves the log after they "
          "left")


@t.test(timeout=120)
def unread_answers_cost_little_memory():
    why = rss_meaningless()
    if not os.path.exists("/proc/self/status") or why:
        t.skip("RSS of 12 unread whole-log answers",
               why or "no /proc to read RSS from")
        return
    tid = big_task()
    d.request("GET", "/v1/tasks/%d/log?since=%d" % (tid, TICKS))
    before = vmrss(d.pid)
    socks = []
    try:
        for _ in range(12):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.settimeout(scaled(10))
            s.connect(("127.0.0.1", d.port))
            s.sendall(("GET /v1/tasks/%d/log?max_bytes=%d HTTP/1.1\r\n"
                       "Host: 127.0.0.1\r\n\r\n" % (tid, PAGE_MAX)).encode())
            socks.append(s)
        # Each answer is taken as far as its socket takes it.
        time.sleep(1.5)
        h = d.request("GET", "/healthz", timeout=10)
        after = vmrss(d.pid)
        growth = (after - before) / 1048576.0
        t.is_(h.status, 200, "/healthz answers with 12 unread answers of "
              "%d MiB each" % (PAGE_MAX >> 20))
        t.ok(growth < 40, "... which cost the daemon %.1f MiB of RSS "
             "(bound 40; the answers are %d MiB)" % (growth,
                                                     12 * PAGE_MAX >> 20))
        first = socks[0].recv(4096)
        t.ok(first.startswith(b"HTTP/1.1 200"), "... and are being answered")
    finally:
        for s in socks:
            s.close()
    t.ok(d.wait_for(lambda: d.request("GET", "/healthz").status == 200, 5),
         "the daemon answers after they left")


@t.test(timeout=180)
def task_list_pages_by_bytes():
    msg = "p" * 65000
    ids = []
    for _ in range(8):
        batch = d.submit([{"kind": "echo", "params": {"message": msg},
                           "delay": 3600} for _ in range(12)])
        ids += [x["id"] for x in batch]
    r = d.request("GET", "/v1/tasks?limit=1000", timeout=60)
    n = len(r.body["tasks"])
    t.ok(r.status == 200 and 0 < n < len(ids) and
         r.body["next_cursor"] is not None,
         "limit=1000 over %d tasks of 64 KiB params: a page of %d, "
         "with next_cursor" % (len(ids), n))
    t.ok(len(r.raw) < 1024 * 1024 + 70000,
         "... of at most 1 MiB and one task (%d bytes)" % len(r.raw))
    seen, cursor, pages = [], None, 0
    while pages < 200:
        q = "/v1/tasks?limit=1000" + ("&cursor=" + cursor if cursor else "")
        r = d.request("GET", q, timeout=60)
        if r.status != 200:
            break
        seen += [x["id"] for x in r.body["tasks"]]
        pages += 1
        cursor = r.body["next_cursor"]
        if cursor is None:
            break
    want = set(ids) | {big_task()}
    t.ok(len(seen) == len(set(seen)) and want <= set(seen) and
         seen == sorted(seen, reverse=True),
         "following next_cursor lists every task exactly once, newest "
         "first (%d pages)" % pages,
         diag="%d listed, %d distinct" % (len(seen), len(set(seen))))
    r = d.request("GET", "/v1/tasks?limit=5")
    t.is_(len(r.body["tasks"]), 5, "a small limit is kept as it is")


@t.test(timeout=120)
def pages_over_tls():
    """Over TLS the stream stays in libmicrohttpd: the same pages."""
    if shutil.which("openssl") is None:
        t.skip("log pages over HTTPS", "no openssl command")
        return
    tmp = tempfile.mkdtemp(prefix="corod-bigtls-")
    try:
        made, why = self_signed_cert(tmp)
        if made is None:
            t.ok(False, "openssl made a certificate", diag=why)
            return
        cert, key = made
        with Corod(t, args=["--tls-cert", cert, "--tls-key", key],
                   start=False, name="tls") as dt:
            dt.tls = ssl.create_default_context(cafile=cert)
            dt.start()
            task = dt.submit({"kind": "repeat", "params": {
                "message": "t" * LINE, "interval": 0.001, "count": 40}})
            dt.wait_state(task["id"], ("succeeded",), timeout=30)
            path = "/v1/tasks/%d/log" % task["id"]
            whole = dt.request("GET", path + "?follow=1", timeout=60)
            since, got, pages = 0, b"", 0
            while pages < 200:
                r = dt.request("GET", path + "?since=%d&max_bytes=300000" %
                               since, timeout=60)
                nxt = int(r.headers["x-log-next"])
                got += r.raw
                pages += 1
                if nxt == since:
                    break
                since = nxt
            t.ok(r.status == 200 and got == whole.raw and
                 len(whole.raw) > 40 * LINE,
                 "over HTTPS, %d pages of 300000 bytes are the whole log"
                 % pages)
            r = dt.request("GET", path, timeout=60)
            t.ok(r.status == 200 and r.headers["x-log-next"] == "16" and
                 "content-length" not in r.headers,
                 "... and a plain GET a streamed 1 MiB page")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@t.test(timeout=120)
def a_stop_cuts_a_page_short():
    """A graceful stop in the middle of a page: the client reading it must
    see it cut (no last chunk), not take it for the whole page."""
    tid = big_task()
    s = socket.create_connection(("127.0.0.1", d.port), timeout=scaled(20))
    s.sendall(("GET /v1/tasks/%d/log?max_bytes=%d HTTP/1.1\r\n"
               "Host: 127.0.0.1\r\n\r\n" % (tid, PAGE_MAX)).encode())
    got = []

    def read_all():
        try:
            while True:
                data = s.recv(65536)
                if not data:
                    break
                got.append(data)
                time.sleep(0.01)
        except OSError:
            pass
    th = threading.Thread(target=read_all)
    th.start()
    time.sleep(0.3)
    d.stop()
    th.join(scaled(30))
    s.close()
    raw = b"".join(got)
    t.ok(raw.startswith(b"HTTP/1.1 200") and
         b"transfer-encoding: chunked" in raw[:1000].lower(),
         "a 16 MiB page is streamed in chunks")
    t.ok(len(raw) < PAGE_MAX and not raw.endswith(b"\r\n0\r\n\r\n"),
         "a stop while it is read closes it without the last chunk "
         "(%d bytes got)" % len(raw))


t.done()
