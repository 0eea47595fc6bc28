#!/usr/bin/env python3
"""bench/bigbody.py — large answers: /healthz latency while clients read a
big log slowly, and the memory of answers nobody reads (issue 12, item 6).

On a fresh daemon (--max-body 8M):
  1. a repeat with a 64 KiB message and count BIG_TICKS (default 10000:
     a 625 MiB log) runs to its end;
  2. /healthz latency idle: BIG_PROBES (default 100) probes, 20 ms apart;
  3. BIG_READERS (default 4) clients read the whole log the way a client
     pages it (plain GET, then ?since=X-Log-Next until it stops moving), each
     at about BIG_READ_RATE (default 1 MiB/s) with a 64 KiB receive buffer;
     meanwhile /healthz is probed every 20 ms for BIG_PROBE_SECONDS (default
     10): p50, p99, max and the probes of 100 ms or more (a stall delays one
     probe, so the max says more than the p99);
  4. BIG_UNREAD (default 12) clients send a plain GET of the log and read
     nothing (4 KiB receive buffer); the daemon's VmRSS growth once it is
     steady (two readings 0.5 s apart within 1 MiB, at most 30 s), and
     /healthz meanwhile; again with ?max_bytes=16777216 (the largest page;
     a daemon without max_bytes answers 400: n/a);
  5. BIG_LIST_TASKS (default 1000) echo tasks with 60 KB params, and
     BIG_UNREAD unread GET /v1/tasks?limit=1000: the first page's size and
     time, and the RSS growth.
Prints bigbody_* result lines and a summary table.
"""

import http.client
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import (Daemon, comment, percentile, result, table, verdict)

TICKS = int(os.environ.get("BIG_TICKS", "10000"))
READERS = int(os.environ.get("BIG_READERS", "4"))
READ_RATE = float(os.environ.get("BIG_READ_RATE", str(1024 * 1024)))
PROBES = int(os.environ.get("BIG_PROBES", "100"))
PROBE_SECONDS = float(os.environ.get("BIG_PROBE_SECONDS", "10"))
UNREAD = int(os.environ.get("BIG_UNREAD", "12"))
LIST_TASKS = int(os.environ.get("BIG_LIST_TASKS", "1000"))
WAIT = float(os.environ.get("BIG_WAIT", "900"))
LINE = 65536
WHOLE = 16 * 1024 * 1024


def probe(port, stop_at, interval=0.02, count=None):
    """/healthz latencies in ms (a timeout of 30 s counts as 30000)."""
    out = []
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    while (count is None and time.monotonic() < stop_at) or \
            (count is not None and len(out) < count):
        t0 = time.monotonic()
        try:
            c.request("GET", "/healthz")
            r = c.getresponse()
            r.read()
        except (OSError, http.client.HTTPException):
            c.close()
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        out.append((time.monotonic() - t0) * 1000.0)
        time.sleep(interval)
    c.close()
    return out


def reader(port, tid, stop_at, stats):
    """Page through the log at about READ_RATE until stop_at or its end."""
    since = 0
    chunk = 65536
    while time.monotonic() < stop_at:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        c.connect()
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        t0 = time.monotonic()
        c.request("GET", "/v1/tasks/%d/log?since=%d" % (tid, since))
        r = c.getresponse()
        stats["first_byte_ms"].append((time.monotonic() - t0) * 1000.0)
        if r.status != 200:
            stats["errors"] += 1
            c.close()
            return
        nxt = int(r.getheader("X-Log-Next"))
        while time.monotonic() < stop_at:
            data = r.read(chunk)
            if not data:
                break
            stats["bytes"] += len(data)
            time.sleep(len(data) / READ_RATE)
        c.close()
        stats["pages"] += 1
        if nxt == since:
            return
        since = nxt


def unread(port, path, n):
    """n sockets that sent GET path and read nothing."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", port))
        s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" %
                   path).encode())
        socks.append(s)
    return socks


def steady_rss(d, limit=30.0):
    """VmRSS once two readings 0.5 s apart are within 1 MiB."""
    end = time.monotonic() + limit
    last = d.rss_bytes()
    while time.monotonic() < end:
        time.sleep(0.5)
        now = d.rss_bytes()
        if abs(now - last) < 1048576:
            return now
        last = now
    return last


def first_status(socks):
    """The status of the first socket's answer (it is read a little)."""
    socks[0].settimeout(30)
    try:
        line = socks[0].recv(64).split(b"\r\n")[0].decode("latin-1")
        return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def unread_round(d, path, tag, rows):
    base = steady_rss(d, 5)
    t0 = time.monotonic()
    socks = unread(d.port, path, UNREAD)
    lat = probe(d.port, 0, count=20, interval=0.05)
    rss = steady_rss(d)
    took = time.monotonic() - t0
    status = first_status(socks)
    for s in socks:
        s.close()
    time.sleep(1)
    if status != 200:
        comment("%s: %s answered %d: n/a" % (tag, path, status))
        rows.append(("RSS, %d unread %s" % (UNREAD, tag), "n/a (%d)" % status,
                     "-", "-"))
        return
    growth = (rss - base) / 1048576.0
    result("bigbody_unread_%s_rss_growth" % tag, growth, "MiB")
    result("bigbody_unread_%s_healthz_max" % tag, max(lat), "ms")
    comment("%s: RSS %d -> %d KiB over %.1f s; /healthz p50 %.1f ms max "
            "%.1f ms" % (tag, base // 1024, rss // 1024, took,
                         percentile(lat, 50), max(lat)))
    rows.append(("RSS growth, %d unread %s" % (UNREAD, tag),
                 "%.1f MiB" % growth, "a few MiB", verdict(growth < 16)))


def main():
    rows = []
    with Daemon(extra_args=["--max-body", "8M", "--connection-timeout",
                            "120"]) as d:
        c = d.client(timeout=120)
        comment("bigbody: corod %s pid %d port %d; %d ticks of %d bytes"
                % (d.bin, d.pid, d.port, TICKS, LINE))
        t0 = time.monotonic()
        task = c.json("POST", "/v1/tasks", {"kind": "repeat", "params": {
            "message": "x" * LINE, "interval": 0.001, "count": TICKS}})
        tid = task["id"]
        while c.json("GET", "/v1/tasks/%d" % tid)["state"] != "succeeded":
            if time.monotonic() - t0 > WAIT:
                raise RuntimeError("the repeat did not end within %d s" % WAIT)
            time.sleep(0.5)
        comment("the log of %d MiB was written in %.1f s; RSS %d KiB" %
                (TICKS * (LINE + 29) >> 20, time.monotonic() - t0,
                 d.rss_bytes() // 1024))

        idle = probe(d.port, 0, count=PROBES)
        result("bigbody_healthz_idle_p99", percentile(idle, 99), "ms")

        stats = [{"bytes": 0, "pages": 0, "errors": 0, "first_byte_ms": []}
                 for _ in range(READERS)]
        stop_at = time.monotonic() + PROBE_SECONDS
        th = [threading.Thread(target=reader, args=(d.port, tid, stop_at, s))
              for s in stats]
        for x in th:
            x.start()
        time.sleep(0.2)
        rss0 = d.rss_bytes()
        lat = probe(d.port, stop_at)
        rss1 = d.rss_bytes()
        for x in th:
            x.join(180)
        p50, p99, mx = percentile(lat, 50), percentile(lat, 99), max(lat)
        result("bigbody_healthz_readers_p50", p50, "ms")
        result("bigbody_healthz_readers_p99", p99, "ms")
        result("bigbody_healthz_readers_max", mx, "ms")
        # A stall delays one probe, not many: count the slow ones too.
        slow = sum(1 for x in lat if x >= 100)
        result("bigbody_healthz_readers_over_100ms", slow, "probes")
        got = sum(s["bytes"] for s in stats)
        result("bigbody_readers_rate", got / PROBE_SECONDS / 1048576.0,
               "MiB/s")
        fb = [x for s in stats for x in s["first_byte_ms"]]
        comment("%d readers, %.1f s: %d probes; %d MiB read in %d pages, "
                "%d errors; time to a page's headers p50 %.1f ms max %.1f ms;"
                " RSS %d -> %d KiB" % (
                    READERS, PROBE_SECONDS, len(lat), got >> 20,
                    sum(s["pages"] for s in stats),
                    sum(s["errors"] for s in stats),
                    percentile(fb, 50) if fb else 0, max(fb) if fb else 0,
                    rss0 // 1024, rss1 // 1024))
        rows.append(("/healthz idle p99", "%.1f ms" % percentile(idle, 99),
                     "-", "-"))
        rows.append(("/healthz p99, %d slow readers" % READERS,
                     "%.1f ms (max %.1f)" % (p99, mx), "< 100 ms",
                     verdict(mx < 100)))

        unread_round(d, "/v1/tasks/%d/log" % tid, "page", rows)
        unread_round(d, "/v1/tasks/%d/log?max_bytes=%d" % (tid, WHOLE),
                     "whole", rows)

        if LIST_TASKS > 0:
            msg = "p" * 60000
            left = LIST_TASKS
            while left > 0:
                k = min(100, left)
                c.json("POST", "/v1/tasks", [{"kind": "echo", "params": {
                    "message": msg}, "delay": 3600}] * k)
                left -= k
            t0 = time.monotonic()
            status, r, raw = c.request("GET", "/v1/tasks?limit=1000")
            took = (time.monotonic() - t0) * 1000.0
            page = json.loads(raw)
            result("bigbody_list_page_bytes", len(raw), "bytes")
            result("bigbody_list_page_ms", took, "ms")
            comment("GET /v1/tasks?limit=1000 over %d tasks of 60 KB params:"
                    " %d tasks, %d bytes, %.1f ms, next_cursor %s" % (
                        LIST_TASKS, len(page["tasks"]), len(raw), took,
                        page["next_cursor"]))
            unread_round(d, "/v1/tasks?limit=1000", "list", rows)
        c.close()
    table(rows)


if __name__ == "__main__":
    main()
