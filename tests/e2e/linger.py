#!/usr/bin/env python3
"""linger.py -- early answers reach clients that write their whole body
before reading (lingering close), within bounds.

Python's http.client (like requests and most libraries) writes a whole
request body before it reads the answer.  corod answers some requests
before their body is read: a Content-Length over max-body (413), a
refusal known from the headers (401) with a body too large to wait for,
framing it refuses (400).  A close with the client's bytes unread makes
the kernel reset the connection, and the client would see "connection
reset" instead of the answer; so corod reads and discards what the client
still sends before closing (held.c), bounded by request-timeout in all,
5 s between reads, 64 MiB, and a quarter of max-connections at once.

Checked: 10 concurrent http.client clients each writing a 9 MB body
(Content-Length and chunked) all read the 413 (max-body 1M), the 401
without a token, the 415 of a wrong type (max-body 16M: the type is
looked at after the size); a framing 400 with 9 MB behind it is the only
answer and nothing behind it is parsed; a refused small body keeps the
connection; a client trickling bytes for ever is closed at request-timeout,
a silent one after 5 s (first); past the count limit the connection is
closed at once (and counted); past 64 MiB discarded too; the connection
count returns to its baseline; a stop while clients linger is quick and
clean.  Over TLS (the session stays in libmicrohttpd, which closes at
once after an early answer) the body is read to its end and discarded
instead, so the same clients read the 413; one that waits for 100
Continue is answered at once.
"""

import http.client
import json
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
from corod import Corod, self_signed_cert  # noqa: E402

t = TAP("linger", total_timeout=900)
MiB = 1 << 20
BIG = 9 * MiB
CLIENTS = 10
TOKEN = "linger-test-token-0123456789abcdef"
BODY = b'{"kind":"echo","params":{"message":"' + b"x" * (BIG - 64) + b'"}}'

tmp = tempfile.mkdtemp(prefix="corod-linger-")
t.cleanups.append(lambda: shutil.rmtree(tmp, True))
TOKEN_FILE = os.path.join(tmp, "tokens")
with open(TOKEN_FILE, "w") as f:
    f.write(TOKEN + "\n")
os.chmod(TOKEN_FILE, 0o600)


def chunks(data, size=65536):
    for i in range(0, len(data), size):
        yield data[i:i + size]


def whole_body_client(port, headers, chunked, out, i, tls=None):
    """http.client as a script uses it: write the whole body, then read."""
    try:
        if tls is not None:
            c = http.client.HTTPSConnection("localhost", port, context=tls,
                                            timeout=scaled(60))
        else:
            c = http.client.HTTPConnection("127.0.0.1", port,
                                           timeout=scaled(60))
        if chunked:
            c.request("POST", "/v1/tasks", body=chunks(BODY), headers=headers,
                      encode_chunked=True)
        else:
            c.request("POST", "/v1/tasks", body=BODY, headers=headers)
        r = c.getresponse()
        raw = r.read()
        out[i] = (r.status, r.getheader("Content-Type"), raw,
                  r.getheader("WWW-Authenticate"))
        c.close()
    except Exception as e:      # a reset: what this is about
        out[i] = e


def crowd(d, headers, chunked, tls=None):
    """CLIENTS clients at once; their results."""
    out = [None] * CLIENTS
    th = [threading.Thread(target=whole_body_client,
                           args=(d.port, headers, chunked, out, i, tls))
          for i in range(CLIENTS)]
    for x in th:
        x.start()
    for x in th:
        x.join()
    return out


def check_crowd(out, status, ptype, what, field=None, detail=None):
    good = 0
    bad = []
    for r in out:
        if isinstance(r, Exception) or r is None:
            bad.append(repr(r))
            continue
        st, ctype, raw, _ = r
        try:
            doc = json.loads(raw)
        except ValueError:
            doc = {}
        if st == status and ctype == "application/problem+json" and \
                doc.get("status") == status and \
                doc.get("type") == "urn:corod:problem:" + ptype and \
                (field is None or doc.get("field") == field) and \
                (detail is None or detail in doc.get("detail", "")):
            good += 1
        else:
            bad.append("%r %r %r" % (st, ctype, raw[:200]))
    t.is_(good, CLIENTS, "%s: %d of %d clients writing 9 MB first read the "
          "%d problem document" % (what, good, CLIENTS, status))
    if bad:
        t.diag("first wrong answers: %s" % bad[:3])


def metrics(d):
    r = d.request("GET", "/metrics")
    if r.status != 200:
        raise AssertionError("GET /metrics: %s" % r.describe())
    body = r.body if isinstance(r.body, str) else r.raw.decode()
    out = {}
    for line in body.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        name, value = line.rsplit(" ", 1)
        out[name] = float(value)
    return out


def wait_metric(d, name, want, timeout, desc):
    deadline = time.monotonic() + scaled(timeout)
    got = None
    while time.monotonic() < deadline:
        got = metrics(d).get(name)
        if got == want:
            break
        time.sleep(0.05)
    t.is_(got, want, desc)
    return got == want


def read_head(s, timeout=10):
    """Read an answer's head and its Content-Length body: (status, raw)."""
    s.settimeout(scaled(timeout))
    data = b""
    while b"\r\n\r\n" not in data:
        b = s.recv(65536)
        if not b:
            break
        data += b
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(rest) < length:
        b = s.recv(65536)
        if not b:
            break
        rest += b
    status = int(head.split(b" ")[1]) if head.startswith(b"HTTP/") else 0
    return status, head + b"\r\n\r\n" + rest


def open_early(port, length=100 * MiB, first=b"x" * 1000, token=True):
    """A POST announcing length bytes, its first bytes sent; its 413 read."""
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /v1/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\n"
              b"Content-Type: application/json\r\n" +
              (b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
               if token else b"") +
              b"Content-Length: %d\r\n\r\n" % length + first)
    status, _ = read_head(s)
    return s, status


def closed_by_server(s, budget):
    """Send a byte now and then (up to budget s) until the server's
    reset says it closed; True if it did."""
    deadline = time.monotonic() + budget
    while time.monotonic() < deadline:
        try:
            s.send(b"y")
        except OSError:
            return True
        time.sleep(0.05)
    return False


# --- daemon A: max-body 1M, a token -------------------------------------------

da = Corod(t, args=["--max-body", "1M", "--token-file", TOKEN_FILE],
           name="linger-a")
da.token = TOKEN
AUTH = {"Authorization": "Bearer " + TOKEN,
        "Content-Type": "application/json"}


@t.test(timeout=120)
def baseline_a():
    global BASE_A
    BASE_A = metrics(da)["corod_http_connections"]
    t.ok(BASE_A >= 1, "baseline: %d connection(s) open" % BASE_A)


@t.test(timeout=240)
def whole_body_413():
    for chunked in (False, True):
        how = "chunked" if chunked else "Content-Length"
        check_crowd(crowd(da, AUTH, chunked), 413, "body-too-large",
                    "413, " + how, detail="1048576")
    wait_metric(da, "corod_http_connections", BASE_A, 30,
                "the connection count is back to its baseline")
    wait_metric(da, "corod_http_connections_lingering", 0, 30,
                "... none lingering")


@t.test(timeout=240)
def whole_body_401():
    for chunked in (False, True):
        how = "chunked" if chunked else "Content-Length"
        out = crowd(da, {"Content-Type": "application/json"}, chunked)
        check_crowd(out, 401, "unauthorized", "401 without a token, " + how,
                    field="/headers/Authorization")
        t.ok(all(not isinstance(r, Exception) and r[3] is not None and
                 r[3].startswith("Bearer") for r in out),
             "... each with its WWW-Authenticate challenge")
    out = crowd(da, {"Content-Type": "application/json",
                     "Authorization": "Bearer wrong-token"}, False)
    check_crowd(out, 401, "unauthorized", "401 for a wrong token")
    wait_metric(da, "corod_http_connections", BASE_A, 30,
                "the connection count is back to its baseline")
    t.is_(len(da.request("GET", "/v1/tasks").body["tasks"]), 0,
          "nothing was stored")


@t.test(timeout=60)
def refused_small_body_keeps_connection():
    c = http.client.HTTPConnection("127.0.0.1", da.port, timeout=scaled(10))
    c.request("POST", "/v1/tasks", body=b'{"kind":"echo"}',
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    r.read()
    t.is_(r.status, 401, "a small body without a token: 401")
    t.isnt((r.getheader("Connection") or "").lower(), "close",
           "... without closing the connection (the body is read, "
           "discarded)")
    c.request("GET", "/healthz")
    r = c.getresponse()
    r.read()
    t.is_(r.status, 200, "... the next request on it is answered")
    c.close()


@t.test(timeout=120)
def framing_400_with_body():
    # Content-Length with Transfer-Encoding: refused at once; the 9 MB
    # behind it (requests, had they been parsed) are never read as such.
    s = socket.create_connection(("127.0.0.1", da.port))
    smuggled = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    body = smuggled * (BIG // len(smuggled))
    err = None
    try:
        s.sendall(b"POST /v1/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n"
                  b"\r\n" % len(body) + body)
    except OSError as e:
        err = e
    t.ok(err is None, "a framing error: the client wrote its 9 MB (%r)" % err)
    s.settimeout(scaled(10))
    data = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    except OSError as e:
        t.diag("recv: %r" % e)
    s.close()
    t.ok(data.startswith(b"HTTP/1.1 400 "), "... and read the 400")
    t.is_(data.count(b"HTTP/1.1 "), 1,
          "... its only answer: nothing behind it was parsed")
    t.ok(b"Connection: close" in data, "... which says Connection: close")


@t.test(timeout=60)
def stop_a():
    wait_metric(da, "corod_http_connections", BASE_A, 30,
                "connections back to the baseline before the stop")
    da.stop()
    t.ok(True, "daemon A stopped cleanly")


# --- daemon B: max-body 16M, the type after the size --------------------------

@t.test(timeout=240)
def whole_body_415():
    d = Corod(t, args=["--max-body", "16M", "--token-file", TOKEN_FILE],
              name="linger-b")
    d.token = TOKEN
    try:
        hdrs = {"Authorization": "Bearer " + TOKEN,
                "Content-Type": "text/plain"}
        for chunked in (False, True):
            how = "chunked" if chunked else "Content-Length"
            check_crowd(crowd(d, hdrs, chunked), 415,
                        "unsupported-media-type", "415 for text/plain, " + how,
                        detail="text/plain")
        t.is_(len(d.request("GET", "/v1/tasks").body["tasks"]), 0,
              "nothing was stored")
        d.stop()
    finally:
        d.close()


# --- TLS: the body read to its end instead -----------------------------------

@t.test(timeout=240)
def whole_body_tls():
    # MHD keeps a TLS session; it cannot linger (it closes at once after
    # an early answer), so the body is read, discarded, and answered then.
    tls_tmp = tempfile.mkdtemp(prefix="corod-linger-tls-")
    try:
        made, why = self_signed_cert(tls_tmp)
        if made is None:
            t.skip("TLS", "openssl failed: %s" % why)
            return
        cert, key = made
        d = Corod(t, args=["--max-body", "1M", "--tls-cert", cert,
                           "--tls-key", key], name="linger-tls", start=False)
        d.tls = ssl.create_default_context(cafile=cert)
        d.start()
        try:
            for chunked in (False, True):
                how = "chunked" if chunked else "Content-Length"
                out = crowd(d, {"Content-Type": "application/json"}, chunked,
                            tls=d.tls)
                check_crowd(out, 413, "body-too-large", "TLS, 413, " + how,
                            detail="1048576")
            # A client waiting for 100 Continue is answered at once.
            raw = socket.create_connection(("127.0.0.1", d.port))
            s = d.tls.wrap_socket(raw, server_hostname="localhost")
            s.sendall(b"POST /v1/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      b"Content-Type: application/json\r\n"
                      b"Expect: 100-continue\r\n"
                      b"Content-Length: %d\r\n\r\n" % BIG)
            status, _ = read_head(s)
            t.is_(status, 413, "TLS, Expect: 100-continue: 413 before the "
                  "body is sent")
            s.close()
            d.stop()
        finally:
            d.close()
    finally:
        shutil.rmtree(tls_tmp, True)


# --- daemon C: the bounds -----------------------------------------------------

# request-timeout bounds a lingering connection in all; 5 s (fixed) between
# reads.  It is well above the 5 s, so that the two are told apart.
RT = max(8, int(round(scaled(8))))
dc = Corod(t, args=["--max-body", "1M", "--token-file", TOKEN_FILE,
                    "--request-timeout", str(RT),
                    "--connection-timeout", str(3 * RT),
                    "--max-connections", "24"], name="linger-c")
dc.token = TOKEN
LIMIT = 24 // 4


@t.test(timeout=60)
def baseline_c():
    global BASE_C
    BASE_C = metrics(dc)["corod_http_connections"]
    t.ok(BASE_C >= 1, "baseline: %d connection(s) open" % BASE_C)


@t.test(timeout=120)
def trickle_and_silence():
    trickler, st1 = open_early(dc.port)
    silent, st2 = open_early(dc.port)
    start = time.monotonic()
    t.ok(st1 == 413 and st2 == 413, "two clients announcing 100 MB read "
         "their 413 at once")
    wait_metric(dc, "corod_http_connections_lingering", 2, 10,
                "... both linger")
    closed = {}
    stop = threading.Event()

    def trickle():
        while not stop.is_set():
            try:
                trickler.send(b"z" * 100)
            except OSError:
                closed["trickler"] = time.monotonic() - start
                return
            time.sleep(0.25)

    th = threading.Thread(target=trickle)
    th.start()
    deadline = time.monotonic() + RT + scaled(15)
    seen_one = None
    while time.monotonic() < deadline and "trickler" not in closed:
        n = metrics(dc)["corod_http_connections_lingering"]
        if n == 1 and seen_one is None:
            seen_one = time.monotonic() - start
        time.sleep(0.1)
    stop.set()
    th.join()
    t.ok(seen_one is not None and seen_one < RT,
         "the silent client is closed first (after %s s; 5 s between "
         "reads)" % (None if seen_one is None else round(seen_one, 1)))
    t.ok(seen_one is not None and seen_one > 3,
         "... not before about 5 s")
    got = closed.get("trickler")
    t.ok(got is not None and RT - 1 <= got <= RT + scaled(10),
         "the client trickling bytes for ever is closed at request-timeout "
         "(%s s; request-timeout %d s)" %
         (None if got is None else round(got, 1), RT))
    trickler.close()
    silent.close()
    wait_metric(dc, "corod_http_connections_lingering", 0, 10,
                "none lingering")
    wait_metric(dc, "corod_http_connections", BASE_C, 10,
                "the connection count is back to its baseline")


@t.test(timeout=120)
def count_limit():
    before = metrics(dc)["corod_http_linger_refused_total"]
    socks = []
    for i in range(LIMIT):
        s, st = open_early(dc.port)
        socks.append(s)
    wait_metric(dc, "corod_http_connections_lingering", LIMIT, 10,
                "%d clients linger (a quarter of max-connections 24)" % LIMIT)
    extra, st = open_early(dc.port)
    t.is_(st, 413, "one more reads its 413 too")
    t.ok(closed_by_server(extra, scaled(3)),
         "... but is closed at once, not lingering")
    extra.close()
    m = metrics(dc)
    t.is_(m["corod_http_connections_lingering"], LIMIT,
          "still %d lingering" % LIMIT)
    t.is_(m["corod_http_linger_refused_total"], before + 1,
          "corod_http_linger_refused_total counts it")
    for s in socks:
        s.close()
    wait_metric(dc, "corod_http_connections_lingering", 0, 10,
                "their clients closed: none lingering")
    wait_metric(dc, "corod_http_connections", BASE_C, 10,
                "the connection count is back to its baseline")


@t.test(timeout=120)
def byte_bound():
    s, st = open_early(dc.port, length=1024 * MiB)
    t.is_(st, 413, "a client announcing 1 GiB reads its 413")
    sent = 0
    chunk = b"w" * MiB
    err = None
    s.settimeout(scaled(10))
    try:
        while sent < 512 * MiB:
            s.sendall(chunk)
            sent += len(chunk)
    except OSError as e:
        err = e
    s.close()
    t.ok(err is not None and 64 * MiB <= sent < 128 * MiB,
         "... and is closed once 64 MiB were discarded (%d MiB sent, %r)" %
         (sent // MiB, err))
    wait_metric(dc, "corod_http_connections", BASE_C, 10,
                "the connection count is back to its baseline")


@t.test(timeout=120)
def stop_while_lingering():
    socks = [open_early(dc.port)[0] for i in range(LIMIT)]
    wait_metric(dc, "corod_http_connections_lingering", LIMIT, 10,
                "%d clients linger" % LIMIT)
    t0 = time.monotonic()
    dc.stop()
    took = time.monotonic() - t0
    t.ok(took < RT / 2, "SIGTERM while they linger: a clean exit in %.1f s "
         "(request-timeout %d s)" % (took, RT))
    gone = 0
    for s in socks:
        if closed_by_server(s, scaled(2)):
            gone += 1
        s.close()
    t.is_(gone, LIMIT, "... their connections are closed")


da.close()
dc.close()
t.done()
