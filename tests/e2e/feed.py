#!/usr/bin/env python3
"""feed.py -- the change feed (GET /v1/events, long-polled and as
Server-Sent Events), GET /v1/tasks/{id}/log?follow=1, GET /metrics and the
dashboard (GET /, /dashboard/...) against the real daemon.

The feed: its shape and order, a task's events being its versions,
deleted events, limit/next paging without gap or duplicate, batches and
gather children, since defaulting to "now", wait holding and returning on
the first change, no change lost between polls, since ahead of the feed,
410 past the kept history (--events-kept) and across a restart, bad
queries, many concurrent long polls answered by one change.  Streams:
id/data in order, Last-Event-ID resume, 410 before streaming, keep-alive
comments (watched on a stream open for the whole run), a client that
leaves is dropped.  /metrics is parsed by a strict text-format 0.0.4
parser written here (and `promtool check metrics` when it is installed).
"""

import http.server
import json
import math
import os
import random
import re
import selectors
import shutil
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from tap import TAP, scaled  # noqa: E402
from corod import Corod, check_answer, echo, is_problem, parse_log, \
    sleep  # noqa: E402

FINAL = ("succeeded", "failed", "canceled")
STATES = ("scheduled", "running", "succeeded", "failed", "canceled")
KINDS = ("echo", "sleep", "repeat", "sequence", "gather", "download",
         "exec")
EVENT_KEYS = {"seq", "type", "task", "state", "version"}
# On a shared store (PostgreSQL, COROD_TEST_PG) an event's seq is its
# position in the one order the store gives every node's changes, not the
# task's version (API.md, "Several nodes"), and positions pass over
# changes that are not events (log lines, writes lost to a fence): the
# assertions that take seq for the version, or the positions for
# consecutive numbers, read the version, or the store's positions.
SHARED = bool(os.environ.get("COROD_TEST_PG"))
EVENT_TYPES = ("created", "updated", "deleted")
GONE_TYPE = "urn:corod:problem:events-gone"

t = TAP("feed")
d = Corod(t)


# --- helpers -------------------------------------------------------------------

def problem(r, status, desc, field=None):
    good, why = is_problem(r, status, field)
    return t.ok(good, desc, diag=why + "\n" + r.describe())


def feed(dd, query="", timeout=30, conn=None, headers=None):
    """GET /v1/events?query -> Response."""
    path = "/v1/events" + ("?" + query if query else "")
    return dd.request("GET", path, timeout=timeout, conn=conn,
                      headers=headers)


def feed_ok(dd, query="", timeout=30, conn=None):
    """The body of a 200 answer of GET /v1/events?query (else raise)."""
    r = feed(dd, query, timeout=timeout, conn=conn)
    if r.status != 200 or not isinstance(r.body, dict):
        raise AssertionError("GET /v1/events?%s\n%s" % (query, r.describe()))
    return r.body


def position(dd):
    """The feed's current position (GET /v1/events with no since)."""
    return feed_ok(dd)["next"]


def all_events(dd, since, page=10000, max_pages=100):
    """Every event after since, paging with limit."""
    out = []
    for _ in range(max_pages):
        b = feed_ok(dd, "since=%d&limit=%d" % (since, page))
        out.extend(b["events"])
        if not b["events"]:
            return out
        since = b["next"]
    raise AssertionError("more than %d pages" % max_pages)


def shape_problems(events):
    """What is wrong with the shape of these events (a list of strings)."""
    bad = []
    for e in events:
        if not isinstance(e, dict):
            bad.append("not an object: %r" % (e,))
            continue
        keys = set(e)
        if not EVENT_KEYS <= keys or keys - EVENT_KEYS - {"progress"}:
            bad.append("members %s: %r" % (sorted(keys), e))
        elif not all(isinstance(e[k], int) and not isinstance(e[k], bool)
                     for k in ("seq", "task", "version")):
            bad.append("seq/task/version not integers: %r" % (e,))
        elif e["type"] not in EVENT_TYPES or e["state"] not in STATES:
            bad.append("type or state unknown: %r" % (e,))
        elif not SHARED and e["seq"] != e["version"]:
            bad.append("version != seq: %r" % (e,))
        elif "progress" in e and not isinstance(e["progress"], dict):
            bad.append("progress not an object: %r" % (e,))
    return bad


def increasing(events):
    seqs = [e["seq"] for e in events]
    return all(a < b for a, b in zip(seqs, seqs[1:]))


def of_task(events, task_id):
    return [e for e in events if e["task"] == task_id]


def quiet(seconds=0.3):
    """Let the daemon's 100 ms wake-up of held requests pass."""
    time.sleep(seconds)


def submit_conn(dd, spec, conn):
    r = dd.request("POST", "/v1/tasks", spec, conn=conn)
    if r.status != 201:
        raise AssertionError("POST /v1/tasks\n%s" % r.describe())
    return r.body


# --- raw HTTP, for streams and many concurrent requests ------------------------

def raw_request(port, path, headers=(), method="GET"):
    """The bytes of one HTTP/1.1 request (Host first, then headers)."""
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: 127.0.0.1:%d" % port]
    lines += ["%s: %s" % h for h in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def parse_raw_response(raw):
    """(status, headers dict lower-case, body bytes) of a complete
    response (chunked or with Content-Length); None if incomplete."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"^HTTP/1\.[01] (\d{3})", lines[0])
    if not m:
        return None
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    if "chunked" in hdrs.get("transfer-encoding", "").lower():
        body = b""
        while True:
            size_line, sep, rest = rest.partition(b"\r\n")
            if not sep:
                return None
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            if len(rest) < size + 2:
                return None
            body += rest[:size]
            rest = rest[size + 2:]
        return int(m.group(1)), hdrs, body
    n = int(hdrs.get("content-length", "0"))
    if len(rest) < n:
        return None
    return int(m.group(1)), hdrs, rest[:n]


class RawStream:
    """A GET on a socket of its own whose answer is read by a thread: the
    body (chunked or not) is decoded as it arrives, each piece with the
    time (monotonic) it arrived.  wait(pred, timeout) waits for pred()."""

    def __init__(self, port, path, headers=()):
        self.path = path
        self.cond = threading.Condition()
        self.status = None
        self.headers = {}
        self.pieces = []            # (time, bytes) of the decoded body
        self.ended = False          # the body's end was seen (last chunk)
        self.eof = False            # the connection closed
        self.error = None
        self._stop = False
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(scaled(5))
        self.sock.connect(("127.0.0.1", port))
        self.opened = time.monotonic()
        self.sock.sendall(raw_request(port, path, headers))
        self.sock.settimeout(0.25)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _recv(self):
        while not self._stop:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError as e:
                if not self._stop:
                    self.error = e
                return b""
            return data
        return b""

    def _run(self):
        buf = b""
        try:
            while b"\r\n\r\n" not in buf:
                data = self._recv()
                if not data:
                    return
                buf += data
            head, _, buf = buf.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            m = re.match(r"^HTTP/1\.[01] (\d{3})", lines[0])
            hdrs = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                hdrs[k.strip().lower()] = v.strip()
            with self.cond:
                self.status = int(m.group(1)) if m else -1
                self.headers = hdrs
                self.cond.notify_all()
            if "chunked" in hdrs.get("transfer-encoding", "").lower():
                self._chunked(buf)
            else:
                left = int(hdrs.get("content-length", "-1"))
                while True:
                    if buf:
                        piece = buf if left < 0 else buf[:left]
                        self._piece(piece)
                        if left >= 0:
                            left -= len(piece)
                    buf = b""
                    if left == 0:
                        with self.cond:
                            self.ended = True
                            self.cond.notify_all()
                        return
                    buf = self._recv()
                    if not buf:
                        return
        except Exception as e:          # recorded, shown by the test
            self.error = e
        finally:
            with self.cond:
                self.eof = True
                self.cond.notify_all()

    def _chunked(self, buf):
        while True:
            while b"\r\n" not in buf:
                data = self._recv()
                if not data:
                    return
                buf += data
            size_line, _, buf = buf.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                with self.cond:
                    self.ended = True
                    self.cond.notify_all()
                return
            while len(buf) < size + 2:
                data = self._recv()
                if not data:
                    if buf:
                        self._piece(buf[:size])
                    return
                buf += data
            self._piece(buf[:size])
            buf = buf[size + 2:]

    def _piece(self, data):
        now = time.monotonic()
        with self.cond:
            self.pieces.append((now, data))
            self._parse(now, data)
            self.cond.notify_all()

    def _parse(self, now, data):
        pass

    def body(self):
        with self.cond:
            return b"".join(p[1] for p in self.pieces)

    def wait(self, pred, timeout):
        """Wait (bounded, scaled) until pred() is true; its value."""
        deadline = time.monotonic() + scaled(timeout)
        with self.cond:
            while True:
                v = pred()
                if v:
                    return v
                left = deadline - time.monotonic()
                if left <= 0:
                    return v
                self.cond.wait(min(left, 0.2))

    def close(self):
        self._stop = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.thread.join(scaled(3))
        try:
            self.sock.close()
        except OSError:
            pass
        # what came is checked against doc/openapi.yaml, as corod.py's
        # request() does for whole answers (SchemaViolation)
        if self.status is not None and self.status > 0:
            check_answer("GET", self.path, self.status, self.headers,
                         self.body())


class SSE(RawStream):
    """An event stream: events (dicts with id, data, event, t) and
    comments ((t, text)) as they arrive."""

    def __init__(self, port, query="", headers=()):
        self.events = []
        self.comments = []
        self.fields = []            # every field line, for the shape check
        self._bytes = b""
        self._cur = {}
        path = "/v1/events" + ("?" + query if query else "")
        RawStream.__init__(self, port, path,
                           (("Accept", "text/event-stream"),) +
                           tuple(headers))

    def _parse(self, now, data):
        self._bytes += data
        while b"\n" in self._bytes:
            raw, self._bytes = self._bytes.split(b"\n", 1)
            line = raw.decode("utf-8")
            if line.endswith("\r"):
                line = line[:-1]
            if line == "":
                if "data" in self._cur or "id" in self._cur or \
                        "event" in self._cur:
                    ev = dict(self._cur)
                    ev["t"] = now
                    self.events.append(ev)
                self._cur = {}
            elif line.startswith(":"):
                self.comments.append((now, line[1:].lstrip(" ")))
            else:
                name, _, value = line.partition(":")
                if value.startswith(" "):
                    value = value[1:]
                self.fields.append(name)
                if name == "data" and "data" in self._cur:
                    self._cur["data"] += "\n" + value
                elif name in ("data", "id", "event", "retry"):
                    self._cur[name] = value

    def feed_events(self):
        """The data of the default (message) events, parsed."""
        with self.cond:
            return [json.loads(e["data"]) for e in self.events
                    if "data" in e and e.get("event", "message") == "message"]

    def ids(self):
        with self.cond:
            return [e.get("id") for e in self.events]

    def count(self):
        with self.cond:
            return len(self.events)


def open_sockets(port, path, n, headers=()):
    """n sockets, each having sent GET path (Connection: close)."""
    req = raw_request(port, path, tuple(headers) + (("Connection", "close"),))
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=scaled(5))
        s.sendall(req)
        s.setblocking(False)
        socks.append(s)
    return socks


def readable_now(socks):
    """The sockets with something to read (or closed) right now."""
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    ready = [k.fileobj for k, _ in sel.select(0)]
    sel.close()
    return ready


def read_answers(socks, timeout):
    """Read every socket to EOF (bounded): a list of (status, headers,
    body, time of completion) or None per socket."""
    deadline = time.monotonic() + scaled(timeout)
    sel = selectors.DefaultSelector()
    bufs = {}
    done = {}
    for s in socks:
        bufs[s] = b""
        sel.register(s, selectors.EVENT_READ)
    left = len(socks)
    while left and time.monotonic() < deadline:
        for key, _ in sel.select(min(0.5, max(0.0, deadline -
                                               time.monotonic()))):
            s = key.fileobj
            try:
                data = s.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if data:
                bufs[s] += data
                parsed = parse_raw_response(bufs[s])
                if parsed is None:
                    continue
            done[s] = parse_raw_response(bufs[s])
            if done[s] is not None:
                done[s] = done[s] + (time.monotonic(),)
            sel.unregister(s)
            left -= 1
    sel.close()
    return [done.get(s) for s in socks]


def close_all(socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


# --- a strict Prometheus text format (0.0.4) parser --------------------------

METRIC_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
FLOAT_RE = re.compile(r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
                      r"(?:[eE][+-]?[0-9]+)?$")
TS_RE = re.compile(r"^-?[0-9]+$")
METRIC_TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


def prom_float(s):
    """A sample value or le: a Go-style float; None if it is not one."""
    if s == "+Inf":
        return math.inf
    if s == "-Inf":
        return -math.inf
    if s == "NaN":
        return math.nan
    if FLOAT_RE.match(s):
        return float(s)
    return None


def help_unescape(s):
    """A HELP docstring unescaped (only backslash-backslash and
    backslash-n are escapes); None if it has another escape."""
    out = []
    i = 0
    while i < len(s):
        if s[i] == "\\":
            nxt = s[i + 1:i + 2]
            if nxt not in ("\\", "n"):
                return None
            out.append("\n" if nxt == "n" else "\\")
            i += 2
            continue
        out.append(s[i])
        i += 1
    return "".join(out)


class Exposition:
    """The parsed exposition: families[name] = {"type", "help",
    "samples": [(sample name, labels dict, value)]}, and errors."""

    def __init__(self, text):
        self.families = {}
        self.order = []
        self.errors = []
        self.series = {}
        self._parse(text)
        self._check()

    def err(self, lineno, msg, line=None):
        self.errors.append("line %s: %s%s" % (
            lineno, msg, "" if line is None else " -- %r" % line[:200]))

    def family(self, name):
        f = self.families.get(name)
        if f is None:
            f = {"type": None, "help": None, "samples": [], "first": None}
            self.families[name] = f
            self.order.append(name)
        return f

    def family_of(self, name):
        for suffix, kinds in (("_bucket", ("histogram",)),
                              ("_sum", ("histogram", "summary")),
                              ("_count", ("histogram", "summary"))):
            base = name[:-len(suffix)]
            if name.endswith(suffix) and base in self.families and \
                    self.families[base]["type"] in kinds:
                return base
        return name

    def _parse(self, text):
        if text and not text.endswith("\n"):
            self.err("end", "the exposition does not end with a newline")
        current = None               # the family whose samples come now
        finished = set()             # families whose samples are over
        for lineno, line in enumerate(text.split("\n")[:-1]
                                      if text.endswith("\n")
                                      else text.split("\n"), 1):
            if line.strip() == "":
                continue
            if line.startswith("#"):
                self._comment(lineno, line, finished, current)
                continue
            parsed = self._sample(lineno, line)
            if parsed is None:
                continue
            name, labels, value = parsed
            fam_name = self.family_of(name)
            if fam_name != current:
                if current is not None:
                    finished.add(current)
                if fam_name in finished:
                    self.err(lineno, "samples of %s are not together" %
                             fam_name, line)
                current = fam_name
            fam = self.family(fam_name)
            if fam["first"] is None:
                fam["first"] = lineno
            key = (name, tuple(sorted(labels.items())))
            if key in self.series:
                self.err(lineno, "duplicate series", line)
            self.series[key] = value
            fam["samples"].append((name, labels, value))

    def _comment(self, lineno, line, finished, current):
        m = re.match(r"^#[ \t]+(HELP|TYPE)[ \t]+(\S+)(?:[ \t]+(.*))?$", line)
        if not m:
            if re.match(r"^#[ \t]*(HELP|TYPE)\b", line):
                self.err(lineno, "malformed HELP/TYPE line", line)
            return                  # any other comment is allowed
        what, name, rest = m.group(1), m.group(2), m.group(3) or ""
        if not METRIC_NAME_RE.fullmatch(name):
            self.err(lineno, "bad metric name %r" % name, line)
        fam = self.family(name)
        if fam["samples"] or name in finished or name == current:
            self.err(lineno, "%s of %s after its samples" % (what, name),
                     line)
        if what == "TYPE":
            if fam["type"] is not None:
                self.err(lineno, "second TYPE for %s" % name, line)
            if rest.strip() not in METRIC_TYPES:
                self.err(lineno, "unknown type %r" % rest, line)
            fam["type"] = rest.strip()
        else:
            if fam["help"] is not None:
                self.err(lineno, "second HELP for %s" % name, line)
            text = help_unescape(rest)
            if text is None:
                self.err(lineno, "bad escape in HELP (only \\\\ and \\n)",
                         line)
            fam["help"] = text

    def _sample(self, lineno, line):
        m = METRIC_NAME_RE.match(line)
        if not m:
            self.err(lineno, "no metric name", line)
            return None
        name = m.group(0)
        pos = m.end()
        labels = {}
        if pos < len(line) and line[pos] == "{":
            pos += 1
            while True:
                while pos < len(line) and line[pos] in " \t":
                    pos += 1
                if pos < len(line) and line[pos] == "}":
                    pos += 1
                    break
                lm = LABEL_NAME_RE.match(line, pos)
                if not lm:
                    self.err(lineno, "bad label name", line)
                    return None
                lname = lm.group(0)
                pos = lm.end()
                while pos < len(line) and line[pos] in " \t":
                    pos += 1
                if line[pos:pos + 2] != '="':
                    self.err(lineno, "label %s: no =\"" % lname, line)
                    return None
                pos += 2
                value = []
                while True:
                    if pos >= len(line):
                        self.err(lineno, "unterminated label value", line)
                        return None
                    c = line[pos]
                    if c == "\\":
                        nxt = line[pos + 1:pos + 2]
                        if nxt not in ("\\", '"', "n"):
                            self.err(lineno, "bad escape \\%s in label "
                                     "value" % nxt, line)
                            return None
                        value.append("\n" if nxt == "n" else nxt)
                        pos += 2
                        continue
                    if c == '"':
                        pos += 1
                        break
                    value.append(c)
                    pos += 1
                if lname in labels:
                    self.err(lineno, "label %s twice" % lname, line)
                if lname.startswith("__"):
                    self.err(lineno, "reserved label name %s" % lname, line)
                labels[lname] = "".join(value)
                while pos < len(line) and line[pos] in " \t":
                    pos += 1
                if pos < len(line) and line[pos] == ",":
                    pos += 1
                    continue
                if pos < len(line) and line[pos] == "}":
                    pos += 1
                    break
                self.err(lineno, "expected , or } after a label", line)
                return None
        rest = line[pos:]
        if not rest[:1] in (" ", "\t"):
            self.err(lineno, "no blank before the value", line)
            return None
        parts = rest.split()
        if len(parts) not in (1, 2):
            self.err(lineno, "expected a value and an optional timestamp",
                     line)
            return None
        value = prom_float(parts[0])
        if value is None:
            self.err(lineno, "bad value %r" % parts[0], line)
            return None
        if len(parts) == 2 and not TS_RE.match(parts[1]):
            self.err(lineno, "bad timestamp %r" % parts[1], line)
            return None
        return name, labels, value

    def _check(self):
        for name in self.order:
            fam = self.families[name]
            typ = fam["type"] or "untyped"
            for sname, labels, value in fam["samples"]:
                if typ in ("counter", "gauge", "untyped") and sname != name:
                    self.err("-", "sample %s in family %s" % (sname, name))
            if typ == "counter":
                if not name.endswith("_total"):
                    self.err("-", "counter %s does not end in _total" % name)
                for sname, labels, value in fam["samples"]:
                    if not (value >= 0) or math.isinf(value):
                        self.err("-", "counter %s%s = %r" % (sname, labels,
                                                             value))
            if typ == "histogram":
                self._check_histogram(name, fam)

    def _check_histogram(self, name, fam):
        groups = {}
        for sname, labels, value in fam["samples"]:
            rest = tuple(sorted((k, v) for k, v in labels.items()
                                if k != "le"))
            g = groups.setdefault(rest, {"buckets": [], "sum": None,
                                         "count": None})
            if sname == name + "_bucket":
                if "le" not in labels:
                    self.err("-", "%s without le" % sname)
                    continue
                le = prom_float(labels["le"])
                if le is None or math.isnan(le):
                    self.err("-", "%s: bad le %r" % (sname, labels["le"]))
                    continue
                g["buckets"].append((le, value))
            elif sname == name + "_sum":
                g["sum"] = value
            elif sname == name + "_count":
                g["count"] = value
            else:
                self.err("-", "sample %s in histogram %s" % (sname, name))
            if sname != name + "_bucket" and "le" in labels:
                self.err("-", "%s with an le label" % sname)
        if not groups:
            self.err("-", "histogram %s has no samples" % name)
        for rest, g in groups.items():
            b = g["buckets"]
            where = "%s%s" % (name, dict(rest) if rest else "")
            les = [x[0] for x in b]
            if not b or les[-1] != math.inf:
                self.err("-", "%s: the last bucket is not le=\"+Inf\"" %
                         where)
            if any(x >= y for x, y in zip(les, les[1:])):
                self.err("-", "%s: le not strictly increasing: %s" %
                         (where, les))
            counts = [x[1] for x in b]
            if any(x > y for x, y in zip(counts, counts[1:])):
                self.err("-", "%s: buckets not cumulative: %s" % (where,
                                                                  counts))
            if any(c < 0 or c != int(c) for c in counts):
                self.err("-", "%s: a bucket is not a count: %s" % (where,
                                                                   counts))
            if g["sum"] is None:
                self.err("-", "%s: no _sum" % where)
            if g["count"] is None:
                self.err("-", "%s: no _count" % where)
            elif b and b[-1][1] != g["count"]:
                self.err("-", "%s: +Inf bucket %r != _count %r" % (
                    where, b[-1][1], g["count"]))

    # --- queries --

    def value(self, name, **labels):
        return self.series.get((name, tuple(sorted(labels.items()))))

    def samples(self, name):
        return [(dict(k[1]), v) for k, v in self.series.items()
                if k[0] == name]


def scrape(dd):
    """(Response, Exposition) of GET /metrics."""
    r = dd.request("GET", "/metrics")
    if r.status != 200 or not isinstance(r.body, str):
        raise AssertionError("GET /metrics\n%s" % r.describe())
    return r, Exposition(r.body)


def metric(dd, name, **labels):
    return scrape(dd)[1].value(name, **labels)


# --- a tiny file server for a download ----------------------------------------

class BlobHandler(http.server.BaseHTTPRequestHandler):
    """GET /blob/SIZE[/slow]: SIZE bytes, 16 KiB every 0.1 s when slow."""
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        m = re.match(r"^/blob/(\d+)(/slow)?$", self.path)
        if not m:
            self.send_error(404)
            return
        size = int(m.group(1))
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size))
        self.send_header("ETag", '"blob-%d"' % size)
        self.end_headers()
        sent = 0
        try:
            while sent < size:
                n = min(16384, size - sent)
                self.wfile.write(bytes((sent + i) & 0xff for i in range(n)))
                self.wfile.flush()
                sent += n
                if m.group(2) and sent < size:
                    time.sleep(0.1)
        except OSError:
            pass

    def log_message(self, fmt, *args):
        pass


class BlobServer:
    def __init__(self):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                     BlobHandler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.1},
                                       daemon=True)
        self.thread.start()

    def url(self, size, slow=False):
        return "http://127.0.0.1:%d/blob/%d%s" % (self.port, size,
                                                  "/slow" if slow else "")

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# --- the feed --------------------------------------------------------------------

@t.test(timeout=20)
def fresh_feed():
    r = feed(d, "since=0")
    t.is_(r.status, 200, "GET /v1/events?since=0 on a fresh daemon: 200")
    t.like(r.headers.get("content-type", ""), r"^application/json",
           "... application/json")
    t.is_(r.body, {"events": [], "next": 0}, "... {\"events\":[],\"next\":0}")
    t.is_(r.headers.get("cache-control"), "no-store", "... no-store")
    t.is_(feed_ok(d), {"events": [], "next": 0},
          "no since (from now) on a fresh daemon: the same")


# A stream open for the whole run, from the start: at the end it must hold
# exactly the polled feed, and its keep-alive comments.
whole_run = SSE(d.port, "since=0")
t.cleanups.insert(0, whole_run.close)


@t.test(timeout=20)
def events_of_an_echo():
    p0 = position(d)
    task = d.submit(echo("feed-1"))
    done = d.wait_state(task["id"], FINAL, 5)
    t.is_(done["state"], "succeeded", "an echo that runs succeeds")
    ev = all_events(d, p0)
    t.is_(shape_problems(ev), [], "each event is {seq,type,task,state,"
          "version(==seq),progress?}")
    t.ok(increasing(ev), "events in increasing seq",
         diag=[e["seq"] for e in ev])
    mine = of_task(ev, task["id"])
    t.is_([(e["type"], e["state"]) for e in mine],
          [("created", "scheduled"), ("updated", "succeeded")],
          "created (scheduled), then updated (succeeded)")
    t.is_([e["version"] for e in mine], [task["version"], done["version"]],
          "their versions are the 201's and the final GET's versions")
    t.is_(ev, mine, "nothing else changed meanwhile")
    b = feed_ok(d, "since=%d" % p0)
    t.is_(b["next"], mine[-1]["seq"], "next is the seq of the last event")
    b2 = feed_ok(d, "since=%d" % b["next"])
    t.ok(b2["events"] == [] and (b2["next"] == b["next"] or SHARED and
                                 b2["next"] > b["next"]),
         "since=next: nothing more, the same next (or, shared, the "
         "position past changes that are not events)", diag=b2)


@t.test(timeout=20)
def events_are_versions():
    p0 = position(d)
    task = d.submit(sleep(0.4))
    seen = [(task["version"], task["state"])]
    deadline = time.monotonic() + scaled(8)
    cur = task
    while cur["state"] not in FINAL and time.monotonic() < deadline:
        r = d.request("GET", "/v1/tasks/%d?wait=2&version=%d" %
                      (task["id"], cur["version"]))
        if r.status != 200:
            break
        cur = r.body
        if (cur["version"], cur["state"]) != seen[-1]:
            seen.append((cur["version"], cur["state"]))
    t.is_(cur["state"], "succeeded", "sleep 0.4 succeeded")
    mine = of_task(all_events(d, p0), task["id"])
    pairs = [(e["version"], e["state"]) for e in mine]
    t.ok(all(s in pairs for s in seen),
         "every version seen by GET ?wait=&version= is an event of the "
         "task, with its state", diag="GET saw %s\nfeed: %s" % (seen, pairs))
    t.is_([e["state"] for e in mine], ["scheduled", "running", "succeeded"],
          "sleep: scheduled, running, succeeded")
    t.is_(pairs[-1] if pairs else None, (cur["version"], cur["state"]),
          "the last event is the task as GET shows it now")


@t.test(timeout=20)
def deleted_events():
    task = d.submit(echo("to delete"))
    done = d.wait_state(task["id"], FINAL, 5)
    grp = d.submit({"kind": "gather", "params": {
        "tasks": [echo("gd1"), echo("gd2")]}})
    gdone = d.wait_state(grp["id"], FINAL, 5)
    p0 = position(d)
    r = d.request("DELETE", "/v1/tasks/%d" % task["id"])
    t.is_(r.status, 204, "DELETE a finished echo: 204")
    ev = all_events(d, p0)
    t.is_(shape_problems(ev), [], "the deleted event's shape")
    t.ok(len(ev) == 1 and ev[0]["type"] == "deleted" and
         ev[0]["task"] == task["id"] and
         ev[0]["version"] > done["version"],
         "one event: deleted, of the task, after its last version",
         diag=ev)
    t.is_(d.request("GET", "/v1/tasks/%d" % task["id"]).status, 404,
          "... and the task is gone")
    p1 = position(d)
    r = d.request("DELETE", "/v1/tasks/%d" % grp["id"])
    t.is_(r.status, 204, "DELETE a finished gather of 2: 204")
    ev = all_events(d, p1)
    t.is_(sorted((e["type"], e["task"]) for e in ev),
          sorted([("deleted", grp["id"])] +
                 [("deleted", c) for c in gdone["children"]]),
          "a deleted event for the gather and each child", )
    t.ok(increasing(ev), "... in increasing seq")


@t.test(timeout=30)
def batch_and_gather_children():
    p0 = position(d)
    tasks = d.submit([echo("batch-%d" % i, 3600) for i in range(5)])
    ev = all_events(d, p0)
    t.is_([(e["type"], e["task"], e["state"]) for e in ev],
          [("created", x["id"], "scheduled") for x in tasks],
          "a batch of 5: one created event per task, in the batch's order")
    t.is_([e["version"] for e in ev], [x["version"] for x in tasks],
          "... each the task's version")
    p1 = position(d)
    g = d.submit({"kind": "gather", "delay": 3600, "params": {
        "tasks": [echo("gc1", 3600), sleep(1), echo("gc3")]}})
    ev = all_events(d, p1)
    t.is_(len(g["children"]), 3, "a gather of 3 children")
    created = {e["task"]: e for e in ev if e["type"] == "created"}
    t.ok(g["id"] in created and all(c in created for c in g["children"]),
         "the gather and each child get a created event", diag=ev)
    t.ok(all(created[c]["state"] == "scheduled" for c in g["children"]
             if c in created), "... children created scheduled")
    t.ok(all(d.get(x)["version"] == created[x]["version"]
             for x in [g["id"]] + g["children"] if x in created),
         "... each with the version GET shows")
    t.ok(increasing(ev), "increasing seq")


@t.test(timeout=40)
def limit_and_paging():
    p0 = position(d)
    tasks = d.submit([echo("page-%d" % i, 3600) for i in range(1000)])
    more = d.submit([echo("page2-%d" % i, 3600) for i in range(237)])
    want = [x["id"] for x in tasks + more]
    full = feed_ok(d, "since=%d&limit=10000" % p0)
    t.is_([e["task"] for e in full["events"]], want,
          "limit=10000: all 1237 created events, in order")
    dflt = feed_ok(d, "since=%d" % p0)
    t.is_(len(dflt["events"]), 1000, "no limit: at most 1000 (the default)")
    t.is_(dflt["next"], dflt["events"][-1]["seq"] if dflt["events"] else None,
          "... next is the seq of the last one returned")
    got = []
    pages = 0
    since = p0
    sizes_ok = True
    while pages < 500:
        b = feed_ok(d, "since=%d&limit=7" % since)
        pages += 1
        if len(b["events"]) > 7:
            sizes_ok = False
        if not b["events"]:
            t.ok(b["next"] == since or SHARED and b["next"] > since,
                 "the empty last page keeps next (or, shared, the "
                 "position past changes that are not events)",
                 diag=(b["next"], since))
            break
        if b["next"] != b["events"][-1]["seq"]:
            sizes_ok = False
        got.extend(b["events"])
        since = b["next"]
    t.ok(sizes_ok, "limit=7: pages of at most 7, next = the last seq")
    t.is_(len(got), len(full["events"]), "paging got as many events (%d "
          "pages)" % pages)
    t.ok(got == full["events"], "paging with next: no gap, no duplicate, "
         "the same events")
    one = feed_ok(d, "since=%d&limit=1" % p0)
    t.is_(one["events"], full["events"][:1], "limit=1: one event")


# --- since, wait ------------------------------------------------------------------

@t.test(timeout=20)
def default_since_is_now():
    quiet()
    lst = d.request("GET", "/v1/tasks?limit=1").body
    b = feed_ok(d)
    t.is_(b["events"], [], "no since: no events (from now)")
    t.is_(b["next"], lst["seq"], "... next = the current position (the "
          "seq GET /v1/tasks reflects)")
    if not SHARED:      # shared: the feed's position is the store's
        t.is_(b["next"], metric(d, "corod_commit_seq"),
              "... = corod_commit_seq")
    t.ok(b["next"] > 0, "... not 0 after changes")


@t.test(timeout=20)
def wait_times_out():
    quiet()
    p = position(d)
    started = time.monotonic()
    b = feed_ok(d, "wait=2")
    took = time.monotonic() - started
    t.between(took, 1.9, 2.0 + scaled(1.0), "wait=2 with nothing new "
              "(no since): held until the timeout")
    t.is_(b, {"events": [], "next": p}, "... empty, next unchanged")
    started = time.monotonic()
    b = feed_ok(d, "since=%d&wait=1" % p)
    took = time.monotonic() - started
    t.between(took, 0.95, 1.0 + scaled(1.0), "since=next&wait=1: held 1 s")
    t.is_(b, {"events": [], "next": p}, "... empty, next unchanged")
    started = time.monotonic()
    b = feed_ok(d, "since=%d&wait=0" % p)
    t.between(time.monotonic() - started, 0, scaled(0.5),
              "wait=0: answered at once")


@t.test(timeout=20)
def wait_returns_on_change():
    quiet()
    p = position(d)
    box = {}

    def later():
        time.sleep(0.5)
        box["at"] = time.monotonic()
        c = d.connection()
        try:
            box["task"] = submit_conn(d, echo("wake", 3600), c)
        finally:
            c.close()
    th = threading.Thread(target=later, daemon=True)
    started = time.monotonic()
    th.start()
    b = feed_ok(d, "since=%d&wait=10" % p, timeout=20)
    answered = time.monotonic()
    th.join(scaled(10))
    t.ok("at" in box and "task" in box, "the other thread submitted")
    if "task" not in box:
        return
    t.between(answered - started, 0.45, 10, "held until the submission")
    t.between(answered - box["at"], 0, scaled(1.0),
              "answered within 1 s of the submission")
    t.ok(b["events"] and b["events"][0]["task"] == box["task"]["id"] and
         b["events"][0]["type"] == "created" and
         b["events"][0]["version"] == box["task"]["version"],
         "... with its created event", diag=b)
    t.is_(b["next"], b["events"][-1]["seq"] if b["events"] else None,
          "... next = its seq")


@t.test(timeout=30)
def wait_is_not_cut_short():
    # API.md: with nothing after since, the request is held until the
    # first change or the timeout.  It must not be answered empty early
    # because some other change was committed just before it arrived
    # (while held requests or streams are waiting to be woken).
    early = []
    for i in range(3):
        quiet()
        p0 = position(d)
        d.submit(echo("cut-%d" % i, 3600))
        b = feed_ok(d, "since=%d" % p0)     # at once: the new event
        started = time.monotonic()
        r = feed_ok(d, "since=%d&wait=2" % b["next"])
        took = time.monotonic() - started
        if took < 1.9 and not r["events"]:
            early.append("after %.3f s: %s" % (took, json.dumps(r)))
    t.ok(not early, "a long poll at the position, right after a commit, "
         "is held for its wait (3 tries; a stream is open)",
         diag="answered early:\n" + "\n".join(early))


@t.test(timeout=60)
def no_change_lost():
    quiet()
    start = position(d)
    lock = threading.Lock()
    created = {}                    # id -> version of the 201
    errors = []
    target = [None]
    polled = []
    polls = {"n": 0, "empty": 0}

    def poller():
        c = d.connection(timeout=20)
        since = start
        deadline = time.monotonic() + scaled(40)
        try:
            while time.monotonic() < deadline:
                r = feed(d, "since=%d&wait=2" % since, conn=c, timeout=20)
                if r.status != 200:
                    errors.append("poll: " + r.describe())
                    return
                polls["n"] += 1
                if not r.body["events"]:
                    polls["empty"] += 1
                polled.extend(r.body["events"])
                since = r.body["next"]
                if target[0] is not None and since >= target[0]:
                    return
            errors.append("poller: deadline")
        except Exception as e:
            errors.append("poller: %r" % e)
        finally:
            c.close()

    def submitter(k):
        c = d.connection()
        rnd = random.Random(k)
        try:
            for burst in range(5):
                for i in range(10):
                    spec = echo("lost-%d-%d-%d" % (k, burst, i)) if i % 3 \
                        else sleep(0.01 * rnd.randint(0, 3))
                    task = submit_conn(d, spec, c)
                    with lock:
                        created[task["id"]] = task["version"]
                time.sleep(rnd.uniform(0, 0.15))
        except Exception as e:
            errors.append("submitter %d: %r" % (k, e))
        finally:
            c.close()

    pt = threading.Thread(target=poller, daemon=True)
    pt.start()
    subs = [threading.Thread(target=submitter, args=(k,), daemon=True)
            for k in range(4)]
    for s in subs:
        s.start()
    for s in subs:
        s.join(scaled(40))
    t.is_(len(created), 200, "4 threads submitted 200 tasks in bursts")
    for tid in list(created):
        d.wait_state(tid, FINAL, 10)
    quiet()
    final = {tid: d.get(tid)["version"] for tid in created}
    target[0] = position(d)
    pt.join(scaled(20))
    t.ok(not pt.is_alive(), "the poller reached the final position")
    t.is_(errors, [], "no errors in the threads")
    truth = all_events(d, start)
    t.ok(increasing(polled), "the polled events are in increasing seq")
    seqs = [e["seq"] for e in polled]
    t.is_(len(seqs), len(set(seqs)), "no event twice")
    t.ok(polled == truth, "the union of the polls is every change since "
         "the start (%d events, %d polls, %d empty)" %
         (len(truth), polls["n"], polls["empty"]),
         diag="polled %d, feed %d; missing: %s" % (
             len(polled), len(truth),
             sorted(set(e["seq"] for e in truth) - set(seqs))[:20]))
    by_task = {}
    for e in polled:
        by_task.setdefault(e["task"], []).append(e)
    missing = [tid for tid in created if tid not in by_task]
    t.is_(missing, [], "every created task is in the polled events")
    bad = [tid for tid, v in created.items() if tid in by_task and (
        by_task[tid][0]["type"] != "created" or
        by_task[tid][0]["version"] != v or
        by_task[tid][-1]["version"] != final[tid] or
        by_task[tid][-1]["state"] not in FINAL or
        sum(1 for e in by_task[tid] if e["type"] == "created") != 1)]
    t.is_(bad[:10], [], "each task: one created event (its 201's version) "
          "first, its final version last")


@t.test(timeout=20)
def since_ahead():
    quiet()
    p = position(d)
    started = time.monotonic()
    b = feed_ok(d, "since=%d&wait=5" % 10 ** 9)
    t.between(time.monotonic() - started, 0, scaled(0.5),
              "since=10**9 (ahead of the feed) with wait=5: answered at once")
    t.is_(b, {"events": [], "next": p}, "... with next = the position")
    b = feed_ok(d, "since=%d&wait=60" % (p + 1))
    t.is_(b, {"events": [], "next": p}, "since=position+1: the same")


@t.test(timeout=20)
def bad_queries():
    for q, field, what in (
            ("since=-1", "/query/since", "since=-1"),
            ("since=abc", "/query/since", "since=abc"),
            ("since=1.5", "/query/since", "since=1.5"),
            ("since=", "/query/since", "since empty"),
            ("wait=61", "/query/wait", "wait=61 (> 60)"),
            ("wait=-1", "/query/wait", "wait=-1"),
            ("wait=x", "/query/wait", "wait=x"),
            ("limit=0", "/query/limit", "limit=0"),
            ("limit=10001", "/query/limit", "limit=10001"),
            ("limit=x", "/query/limit", "limit=x"),
            ("since=0&bogus=1", "/query/bogus", "an unknown parameter"),
    ):
        problem(feed(d, q), 400, "%s: 400 naming %s" % (what, field), field)
    r = feed(d, "wait=61", headers={"Accept": "text/event-stream"})
    problem(r, 400, "wait=61 on a stream request: 400 too, not a stream",
            "/query/wait")
    for q in ("limit=1", "limit=10000", "wait=0", "since=0&limit=10000"):
        t.is_(feed(d, q).status, 200, "%s is accepted" % q)
    # API.md, Conventions: "Durations are seconds (fractions allowed)";
    # GET /v1/tasks/{id}?wait= takes 0.5.
    p = position(d)
    r = feed(d, "since=%d&wait=0.5" % p)
    t.is_(r.status, 200, "wait=0.5 (durations allow fractions) is "
          "accepted", )
    if r.status != 200:
        t.diag(r.describe())


@t.test(timeout=60)
def many_pollers():
    quiet()
    n = 500
    base = metric(d, "corod_event_pollers")
    p = position(d)
    socks = open_sockets(d.port, "/v1/events?since=%d&wait=30" % p, n)
    try:
        got = d.wait_for(lambda: (metric(d, "corod_event_pollers") or 0) >=
                         base + n, 10, interval=0.1,
                         desc="corod_event_pollers to count %d" % n)
        t.is_(got, True, "corod_event_pollers counts all %d held polls" % n)
        t.is_(metric(d, "corod_event_pollers"), base + n,
              "... exactly %d more" % n)
        held = metric(d, "corod_http_held_requests")
        t.ok(held is not None and held >= n,
             "corod_http_held_requests counts them too (%s)" % held)
        t.is_(len(readable_now(socks)), 0, "none of them is answered yet")
        sent = time.monotonic()
        task = d.submit(echo("for the pollers", 3600))
        answers = read_answers(socks, 10)
        ok = [a for a in answers if a is not None and a[0] == 200]
        t.is_(len(ok), n, "one change answers all %d with 200" % n)
        if ok:
            last = max(a[3] for a in ok)
            t.between(last - sent, 0, scaled(2.0),
                      "all answered within 2 s of the submission")
            bodies = set(a[2] for a in ok)
            t.is_(len(bodies), 1, "... all with the same body")
            b = json.loads(ok[0][2].decode())
            # (shared: seq is the store's position, next the event's)
            seq = b["events"][0]["seq"] if SHARED and b["events"] else \
                task["version"]
            t.is_(b, {"events": [{"seq": seq, "type": "created",
                                  "task": task["id"], "state": "scheduled",
                                  "version": task["version"]}],
                      "next": seq},
                  "... the one created event")
        t.ok(d.wait_for(lambda: metric(d, "corod_event_pollers") == base, 5,
                        desc="pollers back to the base"),
             "corod_event_pollers is back to %s" % base)
    finally:
        close_all(socks)
    # Pollers that leave are forgotten.
    quiet()
    p = position(d)
    socks = open_sockets(d.port, "/v1/events?since=%d&wait=30" % p, 20)
    try:
        d.wait_for(lambda: metric(d, "corod_event_pollers") == base + 20, 5,
                   desc="20 more pollers")
    finally:
        close_all(socks)
    gone = False
    try:
        gone = d.wait_for(lambda: metric(d, "corod_event_pollers") == base,
                          5, interval=0.1, desc="pollers gone")
    except AssertionError:
        pass
    t.ok(gone, "20 pollers that closed their connection are dropped "
         "(corod_event_pollers back to %s; now %s)" % (
             base, metric(d, "corod_event_pollers")))


# --- 410: history -----------------------------------------------------------------

@t.test(timeout=60)
def history_gone():
    with Corod(t, args=["--events-kept", "1000"], name="kept1000") as c:
        seen = []
        c.submit([echo("h%d" % i, 3600) for i in range(700)])
        seen.extend(all_events(c, 0))
        c.submit([echo("i%d" % i, 3600) for i in range(500)])
        seen.extend(all_events(c, seen[-1]["seq"]))
        t.is_(len(seen), 1200, "1200 events with --events-kept 1000")
        t.ok(increasing(seen), "... in increasing seq")
        for q in ("since=1", "since=0"):
            r = feed(c, q)
            problem(r, 410, "%s: 410 Gone" % q)
            t.is_((r.body or {}).get("type") if isinstance(r.body, dict)
                  else None, GONE_TYPE, "... type %s" % GONE_TYPE)
        edge = seen[-1001]["seq"]
        b = feed_ok(c, "since=%d&limit=10000" % edge)
        t.ok(b["events"] == seen[-1000:],
             "since = the seq just before the last 1000 events: all 1000")
        r = feed(c, "since=%d" % (edge - 1))
        problem(r, 410, "since one older than that: 410")
        r = feed(c, "since=1&wait=5")
        problem(r, 410, "... with wait too, at once")
        r = feed(c, "", headers={"Accept": "text/event-stream",
                                 "Last-Event-ID": "1"})
        problem(r, 410, "a stream with Last-Event-ID: 1 (older than kept): "
                "410 before streaming")
        r = feed(c, "since=1", headers={"Accept": "text/event-stream"})
        problem(r, 410, "a stream with since=1: 410")
        for bad in ("abc", "-5", "12x", "+7", "99999999999999999999999"):
            r = feed(c, "", headers={"Accept": "text/event-stream",
                                     "Last-Event-ID": bad})
            problem(r, 400, "Last-Event-ID %r: 400 naming the header" % bad,
                    field="/headers/Last-Event-ID")
        s = SSE(c.port, headers=(("Last-Event-ID", str(edge)),))
        try:
            s.wait(lambda: s.count() >= 1000, 10)
            t.is_(s.status, 200, "a stream from Last-Event-ID = that seq: "
                  "200")
            t.ok(s.feed_events()[:1000] == seen[-1000:],
                 "... the last 1000 events")
        finally:
            s.close()

        # restart: none from before the start
        last = seen[-1]["seq"]
        c.restart()
        p = position(c)
        t.ok(p >= last, "after a restart the position continues (%d >= %d)"
             % (p, last))
        t.is_(feed_ok(c, "since=%d" % p), {"events": [], "next": p},
              "since = the position at start: 200, nothing")
        r = feed(c, "since=%d" % (p - 1))
        problem(r, 410, "since = the position at start - 1: 410")
        t.is_(r.body.get("type") if isinstance(r.body, dict) else None,
              GONE_TYPE, "... events-gone")
        r = feed(c, "since=%d" % seen[0]["seq"])
        problem(r, 410, "a since from before the restart: 410")
        r = feed(c, "", headers={"Accept": "text/event-stream",
                                 "Last-Event-ID": str(p - 1)})
        problem(r, 410, "a stream resuming from before the restart: 410")
        task = c.submit(echo("after restart"))
        c.wait_state(task["id"], FINAL, 5)
        ev = feed_ok(c, "since=%d" % p)["events"]
        t.is_([(e["task"], e["type"]) for e in ev],
              [(task["id"], "created"), (task["id"], "updated")],
              "since = the position at start: the new task's events")
        t.ok(ev and ev[0]["seq"] > p, "... after the position")
        t.is_(c.stop(), 0, "exit status 0")


@t.test(timeout=60)
def held_poller_falls_out():
    """A poller held at the feed's end whose position leaves the kept
    history before the fan-out answers it gets 410, not the events after
    the gap (it would miss those in between without knowing)."""
    with Corod(t, args=["--events-kept", "1000", "--max-batch", "2000"],
               name="kept1000b") as c:
        p = position(c)
        socks = open_sockets(c.port, "/v1/events?since=%d&wait=20" % p, 3)
        try:
            c.wait_for(lambda: metric(c, "corod_event_pollers") == 3, 5,
                       desc="3 pollers held")
            # one commit of 1200 events: 200 leave the ring at once
            c.submit([echo("out%d" % i, 3600) for i in range(1200)])
            answers = read_answers(socks, 10)
            got = [a[0] if a is not None else None for a in answers]
            t.is_(got, [410] * 3, "3 held pollers whose since left the kept "
                  "history meanwhile: 410 (got %s)" % got)
            b = json.loads(answers[0][2].decode()) if answers[0] else {}
            t.is_(b.get("type"), GONE_TYPE, "... events-gone")
        finally:
            close_all(socks)
        # behind, but still kept: all of it, from since on, no gap
        p = position(c)
        socks = open_sockets(c.port, "/v1/events?since=%d&wait=20&limit=10000"
                             % p, 2)
        try:
            c.wait_for(lambda: metric(c, "corod_event_pollers") == 2, 5,
                       desc="2 pollers held")
            made = c.submit([echo("in%d" % i, 3600) for i in range(900)])
            answers = read_answers(socks, 10)
            for a in answers:
                ev = json.loads(a[2].decode())["events"] if a else []
                t.is_([e["task"] for e in ev], [m["id"] for m in made],
                      "a held poller still inside the history: all 900 "
                      "events")
        finally:
            close_all(socks)
        t.is_(c.stop(), 0, "exit status 0")


@t.test(timeout=120)
def repolling_pollers_miss_nothing():
    """Pollers that re-poll at every answer while tasks are submitted as
    fast as the clients can: each poller's answers, end to end, hold every
    task created in the stretch they cover; a stretch ends only with a 410
    (the poller then follows from the feed's end, as after a relist)."""
    import bisect
    with Corod(t, args=["--events-kept", "20000"], name="repoll") as c:
        stop = threading.Event()
        lock = threading.Lock()
        created = {}                    # version of a 201 -> task id
        errors = []
        results = []                    # per poller: [(since, next, seqs)]
        gone = [0]

        def poller():
            conn = c.connection(timeout=30)
            stretches = []
            try:
                since = feed_ok(c, conn=conn)["next"]
                for _ in range(100000):
                    if stop.is_set():
                        break
                    r = feed(c, "since=%d&wait=2" % since, conn=conn)
                    if r.status == 410:
                        with lock:
                            gone[0] += 1
                        since = feed_ok(c, conn=conn)["next"]
                        continue
                    if r.status != 200:
                        errors.append("poll: " + r.describe())
                        return
                    seqs = [e["seq"] for e in r.body["events"]]
                    stretches.append((since, r.body["next"], set(seqs)))
                    since = r.body["next"]
            except Exception as e:
                errors.append("poller: %r" % e)
            finally:
                conn.close()
                with lock:
                    results.append(stretches)

        def submitter(k):
            conn = c.connection()
            try:
                for b in range(100000):
                    if stop.is_set():
                        break
                    r = c.request("POST", "/v1/tasks",
                                  [echo("rp-%d-%d-%d" % (k, b, i), 3600)
                                   for i in range(50)], conn=conn)
                    if r.status != 201:
                        errors.append("submit: " + r.describe())
                        return
                    with lock:
                        for task in r.body["tasks"]:
                            created[task["version"]] = task["id"]
            finally:
                conn.close()

        pollers = [threading.Thread(target=poller) for _ in range(40)]
        subs = [threading.Thread(target=submitter, args=(k,))
                for k in range(3)]
        for th in pollers:
            th.start()
        time.sleep(0.5)
        for th in subs:
            th.start()
        time.sleep(scaled(5))
        stop.set()
        for th in subs + pollers:
            th.join(scaled(30))
        t.ok(not any(th.is_alive() for th in subs + pollers),
             "every client thread ended")
        t.is_(errors[:3], [], "no poller or submitter failed (%d errors)"
              % len(errors))
        if SHARED:
            # the created events' positions, from the store
            rows = c.sql(
                "SELECT f.pos + ch.k FROM changes ch JOIN feed_commits f"
                " ON f.xid = ch.xid WHERE ch.object = 0 AND ch.type = 0")
            versions = sorted(r[0] for r in rows)
        else:
            versions = sorted(created)
        missed = 0
        covered = []
        for stretches in results:
            n = 0
            for since, nxt, seqs in stretches:
                lo = bisect.bisect_right(versions, since)
                hi = bisect.bisect_right(versions, nxt)
                n += hi - lo
                missed += sum(1 for v in versions[lo:hi] if v not in seqs)
            covered.append(n)
        t.ok(len(versions) > 1000, "%d tasks created while 40 pollers "
             "re-polled" % len(versions))
        t.ok(len(covered) == 40 and min(covered) > 0,
             "every poller's answers covered created events (%d to %d of "
             "them; %d answers were 410, each poller then following from "
             "the end)" % (min(covered or [0]), max(covered or [0]), gone[0]))
        t.is_(missed, 0, "no poller missed an event inside the stretches "
              "its answers covered")
        t.is_(c.stop(), 0, "exit status 0")


# --- Server-Sent Events -------------------------------------------------------------

@t.test(timeout=30)
def sse_stream():
    quiet()
    p = position(d)
    s = SSE(d.port)
    try:
        s.wait(lambda: s.status is not None and s.pieces, 5)
        t.is_(s.status, 200, "Accept: text/event-stream: 200")
        t.like(s.headers.get("content-type", ""), r"^text/event-stream",
               "Content-Type text/event-stream")
        time.sleep(0.2)
        t.is_(s.count(), 0, "from now: no old events")
        sent = time.monotonic()
        a = d.submit(echo("sse-a"))
        b = d.submit(sleep(0.2))
        d.wait_state(a["id"], FINAL, 5)
        d.wait_state(b["id"], FINAL, 5)
        want = all_events(d, p)
        got = s.wait(lambda: len(s.events) >= len(want) and s.feed_events(),
                     5)
        t.ok(got == want, "the stream carries the feed's %d events, in "
             "order" % len(want), diag="stream: %s\nfeed: %s" % (got, want))
        t.is_(s.ids()[:len(want)], [str(e["seq"]) for e in want],
              "each with id: SEQ")
        t.ok(s.events and s.events[0]["t"] - sent < scaled(1.0),
             "the first arrived within 1 s of the submission")
        t.ok(all(f in ("id", "data", "event", "retry") for f in s.fields),
             "only SSE fields", diag=s.fields)
        t.ok(not s.ended, "the stream stays open")
        mid = want[1]["seq"] if len(want) > 1 else p
    finally:
        s.close()

    # Resume with Last-Event-ID: exactly the events after it.
    r = SSE(d.port, "since=0", headers=(("Last-Event-ID", str(mid)),))
    try:
        after = all_events(d, mid)
        got = r.wait(lambda: len(r.events) >= len(after) and
                     r.feed_events(), 5)
        time.sleep(0.2)
        t.ok(r.feed_events() == after, "Last-Event-ID: %d (with since=0): "
             "exactly the events after %d" % (mid, mid),
             diag="got %s\nwant %s" % (got, after))
    finally:
        r.close()

    # since= starts a stream; limit does not apply.
    r = SSE(d.port, "since=%d&limit=1" % p)
    try:
        want = all_events(d, p)
        got = r.wait(lambda: len(r.events) >= len(want) and
                     r.feed_events(), 5)
        t.ok(len(want) > 1 and got == want, "since=%d&limit=1 on a stream: "
             "every event after since (limit does not apply)" % p,
             diag=got)
    finally:
        r.close()


@t.test(timeout=30)
def sse_client_leaves():
    quiet()
    base = metric(d, "corod_event_streams")
    streams = [SSE(d.port) for _ in range(3)]
    try:
        ok = d.wait_for(lambda: metric(d, "corod_event_streams") ==
                        base + 3, 5, desc="3 more streams")
        t.ok(ok, "corod_event_streams counts 3 open streams (%s + 3)" % base)
    finally:
        for s in streams[:2]:
            s.close()
    gone = False
    try:
        gone = d.wait_for(lambda: metric(d, "corod_event_streams") ==
                          base + 1, 5, interval=0.1, desc="2 streams gone")
    except AssertionError:
        pass
    t.ok(gone, "2 idle streams whose client left are dropped (now %s)" %
         metric(d, "corod_event_streams"))
    # The third one leaves while events are coming.
    streams[2].close()
    for i in range(3):
        d.submit(echo("after leaving %d" % i))
    gone = False
    try:
        gone = d.wait_for(lambda: metric(d, "corod_event_streams") == base,
                          5, interval=0.1, desc="all gone")
    except AssertionError:
        pass
    t.ok(gone, "... and the third, left while events come (now %s)" %
         metric(d, "corod_event_streams"))
    t.is_(d.request("GET", "/healthz").status, 200, "the daemon is fine")


# --- log follow ---------------------------------------------------------------------

@t.test(timeout=30)
def log_follow():
    task = d.submit({"kind": "repeat", "params": {
        "message": "tick", "interval": 0.3, "count": 5}})
    s = RawStream(d.port, "/v1/tasks/%d/log?follow=1" % task["id"])
    try:
        s.wait(lambda: s.ended or s.eof, 10)
        t.is_(s.status, 200, "GET .../log?follow=1: 200")
        t.like(s.headers.get("content-type", ""), r"^text/plain",
               "... text/plain")
        t.ok("x-log-next" not in s.headers, "... no X-Log-Next")
        t.ok(s.ended, "the answer ended (last chunk) once the task was "
             "final", diag="eof %s error %r" % (s.eof, s.error))
        done = d.get(task["id"])
        t.is_(done["state"], "succeeded", "the repeat succeeded")
        # arrival time of each line
        arrivals = []
        text = ""
        for at, piece in s.pieces:
            text += piece.decode("utf-8")
            while "\n" in text:
                line, text = text.split("\n", 1)
                arrivals.append((at, line))
        ticks = [at for at, line in arrivals if line.endswith(" tick")]
        t.is_(len(ticks), 5, "5 tick lines")
        if len(ticks) == 5:
            t.between(ticks[-1] - ticks[0], 0.9, 1.2 + scaled(0.8),
                      "they arrived over ~1.2 s, as written (first to last)")
            gaps = [b - a for a, b in zip(ticks, ticks[1:])]
            t.ok(all(g > 0.1 for g in gaps), "... one by one (gaps %s)" %
                 ["%.2f" % g for g in gaps])
        full = d.request("GET", "/v1/tasks/%d/log" % task["id"])
        t.is_(s.body().decode("utf-8"), full.body,
              "the streamed lines are the log")
        t.ok(all(x[0] is not None for x in parse_log(full.body)),
             "... each with a time")
        if s.pieces:
            t.between(s.pieces[-1][0] - s.opened, 1.2, 1.5 + scaled(1.5),
                      "the answer lasted as long as the task (~1.5 s)")
    finally:
        s.close()

    # follow of a final task: everything, then the end at once
    started = time.monotonic()
    s = RawStream(d.port, "/v1/tasks/%d/log?follow=1&since=2" % task["id"])
    try:
        s.wait(lambda: s.ended or s.eof, 5)
        t.ok(s.ended and time.monotonic() - started < scaled(1.0),
             "follow of a finished task ends at once")
        lines = s.body().decode("utf-8").splitlines()
        t.is_(len(lines), 4, "... since=2 skips 2 lines (4 left)")
    finally:
        s.close()

    # a follower that leaves costs nothing
    quiet()
    base = metric(d, "corod_http_held_requests")
    long = d.submit({"kind": "repeat", "params": {
        "message": "long", "interval": 0.5, "count": 100}})
    s = RawStream(d.port, "/v1/tasks/%d/log?follow=1" % long["id"])
    s.wait(lambda: s.pieces, 5)
    s.close()
    d.cancel(long["id"])
    d.wait_state(long["id"], FINAL, 5)
    gone = False
    try:
        gone = d.wait_for(lambda: metric(d, "corod_http_held_requests") <=
                          base, 5, interval=0.1, desc="held back down")
    except AssertionError:
        pass
    t.ok(gone, "a follower that left is not held any more")


# --- /metrics -------------------------------------------------------------------------

@t.test(timeout=20)
def metrics_parser_selftest():
    good = ('# HELP a_total A \\\\ help\\n.\n# TYPE a_total counter\n'
            'a_total{x="q\\"\\\\\\n",y=""} 1\na_total 2.5e3\n'
            '# TYPE h histogram\nh_bucket{le="0.1"} 1\nh_bucket{le="+Inf"} 2\n'
            'h_sum 0.3\nh_count 2\n# TYPE g gauge\ng -Inf\ng{a="b"} NaN\n')
    e = Exposition(good)
    t.is_(e.errors, [], "a good exposition parses", )
    t.is_(e.value("a_total", x='q"\\\n', y=""), 1.0,
          "label values are unescaped")
    t.is_(e.families["a_total"]["help"], "A \\ help\n.", "HELP unescaped")
    for bad, why in (
            ("a 1", "no newline at the end"),
            ("# TYPE a_total counter\na_total{x=\"\\t\"} 1\n", "bad escape"),
            ("1a 1\n", "bad name"),
            ("a{1x=\"\"} 1\n", "bad label name"),
            ("a 1,5\n", "bad value"),
            ("a 1\na 2\n", "duplicate series"),
            ("a 1\nb 1\na{x=\"1\"} 1\n", "families interleaved"),
            ("a 1\n# TYPE a gauge\n", "TYPE after samples"),
            ("# TYPE c counter\nc 1\n", "counter without _total"),
            ("# TYPE c_total counter\nc_total -1\n", "negative counter"),
            ("# TYPE h histogram\nh_bucket{le=\"1\"} 2\n"
             "h_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
             "histogram not cumulative"),
            ("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
             "histogram without +Inf"),
            ("# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\n"
             "h_count 1\n", "+Inf != _count"),
            ("# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n",
             "no _sum"),
            ("# TYPE a gauge\n# TYPE a gauge\na 1\n", "two TYPE lines"),
            ("a{x=\"1\"} 1 2 3\n", "extra tokens"),
            ("# HELP a bad \\t escape\na 1\n", "bad escape in HELP"),
            ("a{x=\"1\"\n", "unterminated labels"),
    ):
        t.ok(Exposition(bad).errors, "the parser refuses: %s" % why)


@t.test(timeout=20)
def metrics_exposition():
    r, e = scrape(d)
    t.like(r.headers.get("content-type", ""),
           r"^text/plain; *version=0\.0\.4", "Content-Type text/plain; "
           "version=0.0.4")
    t.is_(e.errors, [], "the whole exposition is valid text format 0.0.4 "
          "(strict)")
    untyped = [n for n in e.order if not e.families[n]["type"] or
               not e.families[n]["help"]]
    t.is_(untyped, [], "every family has HELP and TYPE")
    for name, typ in (("corod_tasks", "gauge"),
                      ("corod_tasks_created_total", "counter"),
                      ("corod_tasks_finished_total", "counter"),
                      ("corod_scheduler_lateness_seconds", "histogram"),
                      ("corod_download_bytes_total", "counter"),
                      ("corod_downloads_active", "gauge"),
                      ("corod_http_requests_total", "counter"),
                      ("corod_event_pollers", "gauge"),
                      ("corod_event_streams", "gauge")):
        t.is_((e.families.get(name) or {}).get("type"), typ,
              "%s is a %s" % (name, typ))
    pairs = set((lb.get("kind"), lb.get("state"))
                for lb, _ in e.samples("corod_tasks"))
    t.ok(all((k, s) in pairs for k in KINDS for s in STATES),
         "corod_tasks has every kind x state", diag=sorted(pairs))
    promtool = shutil.which("promtool")
    if promtool is None:
        t.skip("promtool check metrics", "promtool is not installed")
    else:
        p = subprocess.run([promtool, "check", "metrics"], input=r.raw,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=scaled(20))
        t.is_(p.returncode, 0, "promtool check metrics: clean")
        if p.returncode != 0 or p.stdout:
            t.diag(p.stdout.decode("utf-8", "replace"))


def count_by_kind_state(dd):
    counts = {}
    for x in dd.list_all():
        counts[(x["kind"], x["state"])] = counts.get(
            (x["kind"], x["state"]), 0) + 1
    return counts


def metric_counts(e):
    return {(lb["kind"], lb["state"]): v for lb, v in e.samples("corod_tasks")
            if v}


@t.test(timeout=40)
def metrics_task_counters():
    quiet()
    _, e0 = scrape(d)
    ok = d.submit(echo("m-ok"))
    fail = d.submit(sleep(5, timeout=0.2))
    canc = d.submit(sleep(30))
    d.wait_state(canc["id"], "running", 5)
    d.cancel(canc["id"])
    sched = d.submit(sleep(1, delay=3600))
    rep = d.submit({"kind": "repeat", "params": {"message": "r",
                                                  "interval": 0.05,
                                                  "count": 2}})
    for x in (ok, fail, canc, rep):
        d.wait_state(x["id"], FINAL, 10)
    changed = time.monotonic()
    _, e1 = scrape(d)

    def delta(name, **lb):
        return (e1.value(name, **lb) or 0) - (e0.value(name, **lb) or 0)
    t.is_((delta("corod_tasks_created_total", kind="echo"),
           delta("corod_tasks_created_total", kind="sleep"),
           delta("corod_tasks_created_total", kind="repeat")), (1, 3, 1),
          "corod_tasks_created_total: +1 echo, +3 sleep, +1 repeat")
    t.is_((delta("corod_tasks_finished_total", kind="echo",
                 outcome="succeeded"),
           delta("corod_tasks_finished_total", kind="sleep",
                 outcome="failed"),
           delta("corod_tasks_finished_total", kind="sleep",
                 outcome="canceled"),
           delta("corod_tasks_finished_total", kind="sleep",
                 outcome="succeeded"),
           delta("corod_tasks_finished_total", kind="repeat",
                 outcome="succeeded")), (1, 1, 1, 0, 1),
          "corod_tasks_finished_total{outcome}: echo succeeded, sleep failed "
          "and canceled, repeat succeeded")
    c0 = e0.value("corod_scheduler_lateness_seconds_count")
    c1 = e1.value("corod_scheduler_lateness_seconds_count")
    t.ok(c0 is not None and c1 is not None and c1 >= c0 + 4,
         "corod_scheduler_lateness_seconds_count grew by the 4 started "
         "tasks (%s -> %s)" % (c0, c1))
    s0 = e0.value("corod_scheduler_lateness_seconds_sum")
    s1 = e1.value("corod_scheduler_lateness_seconds_sum")
    t.ok(s0 is not None and s1 is not None and s1 >= s0,
         "... its _sum does not shrink")
    t.is_(e1.errors, [], "the exposition is still valid")

    # corod_tasks: counted by a thread every 2 s
    want = count_by_kind_state(d)
    matched = [None]

    def same():
        _, e = scrape(d)
        matched[0] = metric_counts(e)
        return matched[0] == want
    try:
        d.wait_for(same, 6, interval=0.2, desc="corod_tasks = the store")
        ok_counts = True
    except AssertionError:
        ok_counts = False
    took = time.monotonic() - changed
    t.ok(ok_counts, "corod_tasks{kind,state} match the tasks listed",
         diag="metrics %s\nlisted %s" % (sorted(matched[0].items()),
                                         sorted(want.items())))
    t.between(took, 0, scaled(3.5), "... within ~2-3 s of the last change")
    age = metric(d, "corod_tasks_counted_age_seconds")
    t.ok(age is not None and age >= 0, "corod_tasks_counted_age_seconds "
         ">= 0 once counted (%s)" % age)
    d.cancel(sched["id"])


@t.test(timeout=40)
def metrics_http_and_downloads():
    quiet()
    _, e0 = scrape(d)
    t.is_(d.request("GET", "/v1/tasks/999999999").status, 404,
          "GET an unknown task: 404")
    t.is_(d.request("GET", "/no/such/thing").status, 404,
          "GET an unknown path: 404")
    d.submit(echo("one 201", 3600))
    _, e1 = scrape(d)

    def delta(name, **lb):
        return (e1.value(name, **lb) or 0) - (e0.value(name, **lb) or 0)
    t.is_(delta("corod_http_requests_total", route="/v1/tasks/{id}",
                code="404"), 1,
          "corod_http_requests_total{route=\"/v1/tasks/{id}\",code=\"404\"} "
          "+1")
    t.is_(delta("corod_http_requests_total", route="/v1/tasks", code="201"),
          1, "corod_http_requests_total{route=\"/v1/tasks\",code=\"201\"} +1")
    all404 = sum(v for lb, v in e1.samples("corod_http_requests_total")
                 if lb.get("code") == "404") - \
        sum(v for lb, v in e0.samples("corod_http_requests_total")
            if lb.get("code") == "404")
    t.is_(all404, 2, "two 404s counted in all (unknown path included)")
    t.is_(delta("corod_http_requests_total", route="/metrics", code="200"),
          1, "the previous scrape is counted (route /metrics, 200)")
    labels = set(tuple(sorted(lb)) for lb, _ in
                 e1.samples("corod_http_requests_total"))
    t.is_(labels, {("code", "route")}, "labels route and code")

    srv = BlobServer()
    t.cleanups.insert(0, srv.close)
    try:
        size = 16384 * 16
        b0 = e1.value("corod_download_bytes_total")
        p0 = position(d)
        task = d.submit({"kind": "download", "params": {
            "url": srv.url(size, slow=True), "path": "feed-blob.bin"}})
        active = 0
        deadline = time.monotonic() + scaled(10)
        while time.monotonic() < deadline:
            active = max(active, metric(d, "corod_downloads_active") or 0)
            if d.get(task["id"])["state"] in FINAL:
                break
            time.sleep(0.1)
        done = d.wait_state(task["id"], FINAL, 10)
        t.is_(done["state"], "succeeded", "a download from 127.0.0.1 "
              "(%d bytes, ~1.6 s) succeeded" % size)
        t.ok(active >= 1, "corod_downloads_active was >= 1 during it "
             "(max %s)" % active)
        t.is_(metric(d, "corod_downloads_active"), 0,
              "corod_downloads_active is 0 after")
        b1 = metric(d, "corod_download_bytes_total")
        t.is_((b1 or 0) - (b0 or 0), size,
              "corod_download_bytes_total grew by the %d bytes" % size)
        ev = of_task(all_events(d, p0), task["id"])
        prog = [e for e in ev if "progress" in e]
        t.ok(prog and all(isinstance(e["progress"].get("current"), int)
                          for e in prog),
             "its events carry progress {current,...}", diag=ev)
        t.is_(ev[-1].get("progress") if ev else "none", done["progress"],
              "the last event's progress is the task's", )
    finally:
        srv.close()


@t.test(timeout=30)
def metrics_pollers_and_streams():
    quiet()
    base_p = metric(d, "corod_event_pollers")
    base_s = metric(d, "corod_event_streams")
    t.ok(base_s is not None and base_s >= 1,
         "corod_event_streams counts the stream open since the start (%s)" %
         base_s)
    p = position(d)
    socks = open_sockets(d.port, "/v1/events?since=%d&wait=20" % p, 3)
    streams = [SSE(d.port) for _ in range(2)]
    try:
        ok = d.wait_for(lambda: metric(d, "corod_event_pollers") ==
                        base_p + 3 and metric(d, "corod_event_streams") ==
                        base_s + 2, 5, desc="3 pollers and 2 streams")
        t.ok(ok, "3 held polls and 2 streams: corod_event_pollers +3, "
             "corod_event_streams +2")
        _, e = scrape(d)
        t.is_(e.errors, [], "the exposition is valid while they are held")
    finally:
        close_all(socks)
        for s in streams:
            s.close()


# --- the dashboard -----------------------------------------------------------------

def csp_default_self(h):
    for directive in (h or "").split(";"):
        parts = directive.split()
        if parts and parts[0].lower() == "default-src":
            return parts[1:] == ["'self'"]
    return False


@t.test(timeout=20)
def dashboard():
    r = d.request("GET", "/")
    t.is_(r.status, 200, "GET /: 200")
    t.like(r.headers.get("content-type", ""), r"^text/html",
           "... text/html")
    etag = r.headers.get("etag")
    t.like(etag or "", r'^(W/)?"[^"]+"$', "... with an ETag (%s)" % etag)
    t.ok(isinstance(r.body, str) and r.body.lstrip().lower().startswith(
        "<!doctype html"), "... an HTML document")
    t.ok(csp_default_self(r.headers.get("content-security-policy")),
         "Content-Security-Policy with default-src 'self'",
         diag=r.headers.get("content-security-policy"))
    t.is_(r.headers.get("cache-control"), "no-cache", "Cache-Control: "
          "no-cache")
    refs = re.findall(r'(?:src|href)="([^"]*)"', r.body or "")
    t.ok(any(re.match(r"^/?dashboard/app\.js$", x) for x in refs) and
         any(re.match(r"^/?dashboard/style\.css$", x) for x in refs),
         "the page loads /dashboard/app.js and /dashboard/style.css",
         diag=refs)
    t.ok(not [x for x in refs if re.match(r"^(https?:)?//", x)],
         "... and nothing from another origin", diag=refs)

    n = d.request("GET", "/", headers={"If-None-Match": etag})
    t.is_(n.status, 304, "If-None-Match: the ETag -> 304")
    t.is_(n.raw, b"", "... no body")
    t.is_(n.headers.get("etag"), etag, "... the same ETag")
    n = d.request("GET", "/", headers={"If-None-Match": '"x", ' + etag})
    t.is_(n.status, 304, "If-None-Match: a list holding the ETag -> 304")
    n = d.request("GET", "/", headers={"If-None-Match": '"nope"'})
    t.is_(n.status, 200, "If-None-Match: another ETag -> 200")
    h = d.request("HEAD", "/")
    t.ok(h.status == 200 and h.raw == b"" and h.headers.get("etag") == etag,
         "HEAD /: 200, no body, the ETag", diag=h.describe())

    etags = {etag}
    for path, ctype in (("/dashboard/app.js",
                         r"^(text|application)/javascript"),
                        ("/dashboard/style.css", r"^text/css")):
        a = d.request("GET", path)
        t.is_(a.status, 200, "GET %s: 200" % path)
        t.like(a.headers.get("content-type", ""), ctype,
               "... Content-Type %s" % a.headers.get("content-type"))
        t.ok(a.raw, "... not empty")
        t.ok(a.headers.get("etag"), "... with an ETag")
        t.ok(csp_default_self(a.headers.get("content-security-policy")),
             "... and the CSP")
        etags.add(a.headers.get("etag"))
        n = d.request("GET", path, headers={"If-None-Match":
                                            a.headers.get("etag", "")})
        t.is_(n.status, 304, "... If-None-Match -> 304")
    t.is_(len(etags), 3, "three different ETags")

    t.is_(d.request("GET", "/dashboard/x").status, 404,
          "GET /dashboard/x: 404")
    t.is_(d.request("GET", "/dashboard/").status, 404, "GET /dashboard/: 404")
    r = d.request("POST", "/", b"", headers={"Content-Type":
                                            "application/json"})
    t.is_(r.status, 405, "POST /: 405")
    t.like(r.headers.get("allow", ""), r"\bGET\b", "... Allow names GET")


# --- the stream open since the start ---------------------------------------------

@t.test(timeout=60)
def whole_run_stream():
    s = whole_run
    t.is_(s.status, 200, "the stream opened at the start (since=0): 200")
    want = all_events(d, 0)
    got = s.wait(lambda: len(s.events) >= len(want) and s.feed_events(), 10)
    t.is_(len(got or []), len(want), "it got as many events as the feed "
          "holds (%d)" % len(want))
    t.ok(got == want, "... the same events, in order")
    t.is_(s.ids()[:len(want)], [str(e["seq"]) for e in want],
          "... each with id: its seq")
    t.ok(s.error is None and not s.eof, "... still open",
         diag="error %r eof %s" % (s.error, s.eof))
    # keep-alive comments every 15 s: wait (bounded) for two of them
    started = s.opened

    def keepalives():
        return [at for at, c in s.comments if c == "keep-alive"]
    s.wait(lambda: len(keepalives()) >= 2, max(0.0, started + 36 -
                                               time.monotonic()))
    ka = keepalives()
    t.ok(len(ka) >= 1, "': keep-alive' comments arrive (%d in %.0f s)" % (
        len(ka), time.monotonic() - started))
    t.ok(ka and ka[0] - started <= 15 + scaled(2),
         "the first within ~15 s of opening (%.1f s)" %
         ((ka[0] - started) if ka else -1))
    gaps = [b - a for a, b in zip(ka, ka[1:])]
    if not gaps:
        # a tick that finds events to send sends them instead
        t.skip("keep-alives ~15 s apart", "only %d keep-alive seen" %
               len(ka))
    else:
        t.ok(all(abs(g / 15 - round(g / 15)) * 15 < scaled(1.5) and
                 round(g / 15) >= 1 for g in gaps),
             "keep-alives ~15 s apart, or a multiple of it when a tick "
             "had events to send (gaps %s)" % ["%.1f" % g for g in gaps])
    arrivals = [at for at, _ in s.pieces]
    silences = [b - a for a, b in zip([started] + arrivals, arrivals +
                                      [time.monotonic()])]
    t.ok(max(silences) <= 15 + scaled(2),
         "the stream is never silent for more than ~15 s (max %.1f s)" %
         max(silences))


@t.test(timeout=30)
def daemon_stops_cleanly():
    whole_run.close()
    t.ok(d.running(), "the daemon is still running")
    t.is_(d.stop(), 0, "SIGTERM: exit status 0, no sanitizer report")
    d.close()


t.done()
