#!/usr/bin/env python3
"""badinput.py -- issue 2's "Bad input" list against the real daemon.

Every malformed request must get a 4xx RFC 9457 problem document
(Content-Type application/problem+json, "status" equal to the HTTP status,
a "detail", and "field" a JSON Pointer naming the field at fault where
there is one).  None of it may crash the daemon or change a stored task:
the tasks stored before are compared after, and the daemon must still
answer and stop with status 0 and no sanitizer report.
"""

import json
import os
import re
import socket
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from tap import TAP, scaled  # noqa: E402
from corod import Corod, check_raw, is_problem, parse_time  # noqa: E402

JSON = {"Content-Type": "application/json"}
MIB = 1024 * 1024

t = TAP("badinput")
d = Corod(t)
accepted = set()        # ids of the valid submissions made on purpose


def echo(msg="x", **kw):
    spec = {"kind": "echo", "params": {"message": msg}}
    spec.update(kw)
    return spec


def problem(r, status, desc, field=None):
    good, why = is_problem(r, status, field)
    return t.ok(good, "%s -> %s%s" % (desc, status if not isinstance(
        status, tuple) else "/".join(map(str, status)),
        " %s" % (field if not isinstance(field, tuple) else
                 " or ".join(field)) if field is not None else ""),
        diag=why + "\n" + r.describe())


def post_raw(body, headers=None, path="/v1/tasks"):
    h = dict(JSON)
    h.update(headers or {})
    return d.request("POST", path, body, headers=h)


def post(spec, headers=None):
    return d.request("POST", "/v1/tasks", spec, headers=headers)


def still_alive(desc):
    r = d.request("GET", "/healthz")
    t.ok(r.status == 200 and d.running(), "the daemon still answers after %s"
         % desc)


# --- the tasks that must not change ------------------------------------------

victims = {}


@t.test(timeout=20)
def store_victims():
    a = d.submit(echo("victim scheduled", delay=3600, name="v1"))
    b = d.submit(echo("victim done"))
    g = d.submit({"kind": "sequence", "params": {"tasks": [echo("c")]},
                  "delay": 3600})
    d.wait_state(b["id"], "succeeded", 5)
    for x in (a, b, g):
        accepted.add(x["id"])
        victims[x["id"]] = d.get(x["id"])
    for c in g["children"]:
        accepted.add(c)
        victims[c] = d.get(c)
    t.is_(len(victims), 4, "stored 4 tasks to compare at the end")


# --- JSON itself -----------------------------------------------------------------

@t.test(timeout=20)
def malformed_json():
    cases = [
        (b'{"kind": "echo",', "truncated JSON"),
        (b'{"kind": "echo", "params": {"message": "x"}', "unclosed object"),
        (b'{kind: echo}', "malformed JSON (bare words)"),
        (b"{'kind': 'echo'}", "single quotes"),
        (b'{"kind": "echo", "params": {"message": "x"},}', "trailing comma"),
        (b'{"kind":"echo","params":{"message":"\xff\xfe"}}',
         "invalid UTF-8 bytes"),
        (b'{"kind":"echo","params":{"message":"\xc0\xaf"}}',
         "overlong UTF-8"),
        (b'{"kind":"echo","params":{"message":"\xed\xa0\x80"}}',
         "UTF-8 surrogate"),
        (b'{"kind":"echo","params":{"message":"a\x00b"}}', "raw NUL in JSON"),
        (b'{"kind":"echo","params":{"message":"\\u0000"}}',
         "escaped NUL (\\u0000) in a string"),
        (b"", "empty body"),
        (b"   ", "whitespace only"),
        (b"5", "top-level number"),
        (b'"echo"', "top-level string"),
        (b"null", "top-level null"),
        (b"true", "top-level boolean"),
        (b"[]", "empty array"),
        (b'{"kind":"echo","params":{"message":NaN}}', "NaN (not JSON)"),
        (b'{"kind":"echo","params":{"message":"x"},"delay":Infinity}',
         "Infinity (not JSON)"),
        (b'{"kind":"echo","params":{"message":"x"}} {"a":1}',
         "two JSON documents"),
        (b'{"kind":"echo","kind":"sleep","params":{"message":"x"}}',
         "duplicate key"),
    ]
    for body, desc in cases:
        r = post_raw(body)
        if desc.startswith("escaped NUL") and r.status == 201:
            # Allowed if the daemon copes (stored as-is, logged escaped).
            accepted.add(r.body["id"])
            t.ok(True, "%s: accepted (escaped in the log)" % desc)
            continue
        problem(r, 400, desc)


# --- the spec's fields -----------------------------------------------------------

@t.test(timeout=30)
def wrong_types():
    cases = [
        ({"kind": 5, "params": {"message": "x"}}, "/kind", "kind 5"),
        ({"kind": None, "params": {"message": "x"}}, "/kind", "kind null"),
        ({"kind": ["echo"], "params": {"message": "x"}}, "/kind",
         "kind an array"),
        ({"kind": "echo", "params": "x"}, "/params", "params \"x\""),
        ({"kind": "echo", "params": [1]}, "/params", "params an array"),
        ({"kind": "echo", "params": None}, "/params", "params null"),
        (echo(delay="1"), "/delay", "delay \"1\""),
        (echo(delay=True), "/delay", "delay true"),
        (echo(max_attempts=1.5), "/max_attempts", "max_attempts 1.5"),
        (echo(max_attempts="2"), "/max_attempts", "max_attempts \"2\""),
        (echo(max_attempts=0), "/max_attempts", "max_attempts 0"),
        (echo(max_attempts=-1), "/max_attempts", "max_attempts -1"),
        (echo(priority="hi"), "/priority", "priority \"hi\""),
        (echo(priority=1.5), "/priority", "priority 1.5"),
        (echo(timeout="x"), "/timeout", "timeout \"x\""),
        (echo(timeout=0), "/timeout", "timeout 0"),
        (echo(timeout=-1), "/timeout", "timeout -1"),
        (echo(name=5), "/name", "name 5"),
        (echo(run_at=12345), "/run_at", "run_at a number"),
        ({"kind": "echo", "params": {"message": 5}}, "/params/message",
         "echo message 5"),
        ({"kind": "echo", "params": {}}, "/params/message",
         "echo without message"),
        ({"kind": "echo", "params": {"message": "x", "extra": 1}},
         "/params/extra", "echo with an unknown param"),
        ({"kind": "sleep", "params": {"seconds": "1"}}, "/params/seconds",
         "sleep seconds \"1\""),
        ({"kind": "sleep", "params": {"seconds": -1}}, "/params/seconds",
         "sleep seconds -1"),
        ({"kind": "sleep", "params": {}}, "/params/seconds",
         "sleep without seconds"),
        ({"kind": "repeat", "params": {"message": "m", "interval": 0}},
         "/params/interval", "repeat interval 0"),
        ({"kind": "repeat", "params": {"message": "m", "interval": -1}},
         "/params/interval", "repeat interval -1"),
        ({"kind": "repeat", "params": {"message": "m", "interval": 1,
                                       "count": 0}},
         "/params/count", "repeat count 0"),
        ({"kind": "repeat", "params": {"message": "m", "interval": 1,
                                       "count": 1.5}},
         "/params/count", "repeat count 1.5"),
        ({"kind": "repeat", "params": {"interval": 1}}, "/params/message",
         "repeat without message"),
        ({"kind": "gather", "params": {"tasks": "x"}}, "/params/tasks",
         "gather tasks \"x\""),
        ({"kind": "gather", "params": {"tasks": []}}, "/params/tasks",
         "gather of no tasks"),
        ({"kind": "gather", "params": {}}, "/params/tasks",
         "gather without tasks"),
        ({"kind": "sequence", "params": {"tasks": [echo()],
                                         "on_failure": "explode"}},
         "/params/on_failure", "sequence on_failure \"explode\""),
        ({"kind": "sequence", "params": {"tasks": [{"kind": "echo",
                                                    "params": {"message": 1}}]}},
         "/params/tasks/0/params/message", "a bad child names its path"),
        ({"kind": "gather", "params": {"tasks": [echo(), echo(delay=-1)]}},
         "/params/tasks/1/delay", "a child's negative delay"),
        ({"kind": "gather", "params": {"tasks": [
            echo(run_at="2030-01-01T00:00:00Z")]}},
         "/params/tasks/0/run_at", "a child with run_at"),
        ({"kind": "gather", "params": {"tasks": [5]}}, "/params/tasks/0",
         "a child that is not an object"),
    ]
    for spec, field, desc in cases:
        problem(post(spec), 400, desc, field)


@t.test(timeout=20)
def kinds_and_fields():
    problem(post({"kind": "nope", "params": {}}), 400, "unknown kind", "/kind")
    problem(post({"kind": "", "params": {}}), 400, "empty kind", "/kind")
    problem(post({"kind": "ECHO", "params": {"message": "x"}}), 400,
            "kind in capitals", "/kind")
    problem(post({"params": {"message": "x"}}), 400, "missing kind", "/kind")
    problem(post({"kind": "echo"}), 400, "missing params", "/params")
    problem(post({}), 400, "empty object", ("/kind", "/params"))
    problem(post(echo(bogus=1)), 400, "unknown top-level field", "/bogus")
    problem(post(echo(**{"a/b~c": 1})), 400,
            "unknown field with / and ~ is escaped in the pointer", "/a~1b~0c")
    problem(post(echo(id=5)), 400, "client-chosen id", "/id")
    problem(post(echo(state="succeeded")), 400, "client-chosen state",
            "/state")


@t.test(timeout=20)
def numbers():
    problem(post(echo(delay=-1)), 400, "negative delay", "/delay")
    problem(post(echo(delay=-0.000001)), 400, "slightly negative delay",
            "/delay")
    problem(post_raw(b'{"kind":"echo","params":{"message":"x"},"delay":1e308}'),
            400, "delay 1e308", "/delay")
    problem(post_raw(b'{"kind":"echo","params":{"message":"x"},"delay":1e400}'),
            400, "delay 1e400 (overflows a double)")
    problem(post_raw(b'{"kind":"echo","params":{"message":"x"},'
                     b'"priority":99999999999999999999999}'),
            400, "priority beyond 64 bits")
    problem(post(echo(priority=10 ** 12)), 400, "priority 10^12", "/priority")
    problem(post(echo(max_attempts=10 ** 9)), 400, "max_attempts 10^9",
            "/max_attempts")
    problem(post(echo(timeout=1e300)), 400, "timeout 1e300", "/timeout")
    problem(post({"kind": "sleep", "params": {"seconds": 1e300}}), 400,
            "sleep 1e300 s", "/params/seconds")
    problem(post({"kind": "repeat", "params": {"message": "m",
                                               "interval": 1e-300}}),
            400, "repeat interval 1e-300", "/params/interval")
    problem(post_raw(b'{"kind":"echo","params":{"message":"x"},"delay":-0}'
                     .replace(b"-0", b"-1e-320")), 400,
            "delay -1e-320 (denormal, negative)", "/delay")


@t.test(timeout=20)
def times():
    problem(post(echo(delay=1, run_at="2030-01-01T00:00:00Z")), 400,
            "delay together with run_at", ("/run_at", "/delay"))
    for bad in ("2026-13-01T00:00:00Z", "yesterday", "2026-02-30T00:00:00Z",
                "2026-01-01", "2026-01-01T25:00:00Z", "2026-01-01T00:00:00",
                "2026-01-01T00:00:60.5Z", "2026-01-01T00:00:00+25:00",
                "2026-01-01 00:00:00Z x", "", "2026-01-01T00:00:00.Z",
                "99999-01-01T00:00:00Z"):
        problem(post(echo(run_at=bad)), 400, "run_at %r" % bad, "/run_at")


@t.test(timeout=30)
def times_at_the_edges():
    # Issue 12 item 9: run_at "9999-12-31T23:59:59-23:59" names an instant
    # in the year 10000 (UTC); it was stored and shown as 0000-00-00...
    # A time is checked as the UTC instant it names: after the epoch (a
    # stored 0 means none) to the end of 9999.
    for bad in ("9999-12-31T23:59:59-23:59",
                "9999-12-31T23:59:59.999999-00:01",
                "9999-12-31T23:30:00-00:30", "1970-01-01T00:00:00+00:01",
                "1970-01-01T00:59:59.999999+01:00",
                "1970-01-01T01:00:00+01:00", "1970-01-01T00:00:00Z",
                "0000-01-01T00:00:00Z"):
        problem(post(echo(run_at=bad)), 400, "run_at %r (outside 1970 to "
                "9999 in UTC)" % bad, "/run_at")
    for given, shown in (
            ("9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999999Z"),
            ("9999-12-31T23:58:59-00:01", "9999-12-31T23:59:59.000000Z"),
            ("9999-12-31T00:00:00+23:59", "9999-12-30T00:01:00.000000Z"),
            ("1969-12-31T23:30:00-01:00", "1970-01-01T00:30:00.000000Z"),
            ("1970-01-01T01:00:00.000001+01:00",
             "1970-01-01T00:00:00.000001Z")):
        r = post(echo(run_at=given))
        got = r.body.get("run_at") if isinstance(r.body, dict) else None
        if r.status == 201:
            accepted.add(r.body["id"])
            got2 = d.get(r.body["id"])["run_at"]
        else:
            got2 = None
        t.ok(r.status == 201 and got == shown and got2 == shown,
             "run_at %r: 201, shown as %s" % (given, shown),
             diag=r.describe())
    # The longest delay, 100 years, ends well inside the range.
    most = 100 * 365 * 86400
    r = post(echo(delay=most))
    ok = r.status == 201
    if ok:
        accepted.add(r.body["id"])
        span = parse_time(r.body["run_at"]) - \
            parse_time(r.body["created_at"])
        ok = abs(span - most) < 0.001
    t.ok(ok, "delay %d (100 years): run_at 100 years on" % most,
         diag=r.describe())
    problem(post(echo(delay=most + 1)), 400, "delay beyond 100 years",
            "/delay")


@t.test(timeout=30)
def tiny_timeout():
    # Issue 12 item 9: "timeout": 1e-7 rounded to 0 µs, which is no
    # timeout at all.  A positive timeout is kept to the microsecond and
    # is at least 1 µs: it is honoured (the attempt times out at its
    # first await).
    r = post({"kind": "sleep", "params": {"seconds": 30}, "timeout": 1e-7})
    t.is_(r.status, 201, "a sleep with timeout 1e-7: 201")
    if r.status != 201:
        return
    accepted.add(r.body["id"])
    t.is_(r.body.get("timeout"), 0.000001, "... its timeout is 1 µs, not "
          "none")
    x = d.wait_state(r.body["id"], ("succeeded", "failed", "canceled"), 10)
    t.ok(x["state"] == "failed" and (x.get("error") or {}).get("code") ==
         "timeout", "... and it fails with error timeout",
         diag=json.dumps(x))
    r = post(echo(timeout=2.6e-6, delay=3600))
    if r.status == 201:
        accepted.add(r.body["id"])
    t.ok(r.status == 201 and r.body.get("timeout") == 0.000003,
         "timeout 2.6e-6: rounded to the nearest µs (3e-6)",
         diag=r.describe())


# --- bodies, content types, origins --------------------------------------------

def post_big_raw(length, expect_continue=False):
    """POST /v1/tasks with Content-Length: length over a raw socket, as a
    careful client does: send the headers, give the server a moment to
    answer early (it may refuse before the body), else send the body;
    then read the answer.  Returns the answer's bytes."""
    s = socket.create_connection(("127.0.0.1", d.port), timeout=scaled(10))
    head = ("POST /v1/tasks HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
            "Content-Type: application/json\r\nContent-Length: %d\r\n%s"
            "\r\n" % (d.port, length,
                       "Expect: 100-continue\r\n" if expect_continue else ""))
    out = b""
    try:
        s.sendall(head.encode())
        s.settimeout(scaled(1))
        try:
            out = s.recv(65536)
        except socket.timeout:
            out = b""
        if out.startswith(b"HTTP/1.1 100"):
            out = out.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in out \
                else b""
        if not out:
            body = b'{"kind":"echo","params":{"message":"x"}}'
            body += b" " * (length - len(body))
            try:
                s.sendall(body)
            except OSError:
                pass
        s.settimeout(scaled(5))
        for _ in range(100):
            if b"\r\n\r\n" in out:
                break
            try:
                chunk = s.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    finally:
        s.close()
    return check_raw(head.encode(), out)


@t.test(timeout=60)
def body_too_large():
    for expect in (False, True):
        out = post_big_raw(MIB + 10, expect_continue=expect)
        head, _, body = out.partition(b"\r\n\r\n")
        t.ok(head.startswith(b"HTTP/1.1 413") and
             b"application/problem+json" in head.lower() and
             b'"status":413' in body.replace(b" ", b""),
             "body over 1 MiB with Content-Length%s -> 413 problem" %
             (" and Expect: 100-continue" if expect else ""),
             diag=out[:600].decode("latin-1"))
    still_alive("a 413")

    def chunks():
        yield b'{"kind":"echo","params":{"message":"'
        for _ in range(40):
            yield b"x" * 32768
        yield b'"}}'
    try:
        r = d.request("POST", "/v1/tasks", chunks(), headers=JSON)
        problem(r, 413, "body over 1 MiB, chunked (no Content-Length)")
    except OSError as e:
        t.fail("chunked body over 1 MiB: connection error %r instead of a "
               "413" % e)
    d._reset_conn()
    big = {"kind": "echo", "params": {"message": "y" * (MIB - 200)}}
    r = post(big)
    t.ok(r.status in (201, 400),
         "a body just under 1 MiB is read (201, or 400 for the message's "
         "own limit): %d" % r.status, diag=r.describe()[:400])
    if r.status == 201:
        accepted.add(r.body["id"])
    still_alive("huge bodies")


@t.test(timeout=30)
def max_body_option():
    with Corod(t, args=["--max-body", "2048"], name="maxbody") as m:
        small = {"kind": "echo", "params": {"message": "s" * 1500}}
        r = m.request("POST", "/v1/tasks", small)
        t.is_(r.status, 201, "--max-body 2048: a 1.5 KB body is accepted")
        large = {"kind": "echo", "params": {"message": "l" * 3000}}
        r = m.request("POST", "/v1/tasks", large)
        good, why = is_problem(r, 413)
        t.ok(good, "--max-body 2048: a 3 KB body -> 413", diag=why)
        m._reset_conn()

        def chunks():
            for _ in range(4):
                yield b"[" + b" " * 1000
        r = m.request("POST", "/v1/tasks", chunks(), headers=JSON)
        good, why = is_problem(r, 413)
        t.ok(good, "--max-body 2048: 4 KB chunked -> 413", diag=why)
        t.is_(m.stop(), 0, "exit status 0")


@t.test(timeout=20)
def content_types():
    body = json.dumps(echo()).encode()
    problem(post_raw(body, {"Content-Type": "text/plain"}), 415,
            "Content-Type text/plain")
    problem(post_raw(b"kind=echo&params=x",
                     {"Content-Type": "application/x-www-form-urlencoded"}),
            415, "a form post (application/x-www-form-urlencoded)")
    problem(post_raw(b"--b\r\nContent-Disposition: form-data; name=kind\r\n"
                     b"\r\necho\r\n--b--\r\n",
                     {"Content-Type": "multipart/form-data; boundary=b"}),
            415, "a form post (multipart/form-data)")
    r = d.request("POST", "/v1/tasks", body, headers={})
    problem(r, 415, "no Content-Type at all")
    problem(post_raw(body, {"Content-Type": "application/jsonx"}), 415,
            "Content-Type application/jsonx")
    problem(post_raw(body, {"Content-Type": "text/json"}), 415,
            "Content-Type text/json")


@t.test(timeout=20)
def origins():
    body = json.dumps(echo("origin")).encode()
    evil = {"Origin": "http://evil.example"}
    problem(post_raw(body, evil), 403, "cross-origin POST")
    problem(post_raw(body, {"Origin": "null"}), 403, "POST with Origin null")
    problem(post_raw(body, {"Origin": "http://127.0.0.1:1"}), 403,
            "POST from another port of 127.0.0.1")
    s = d.submit(echo("origin victim", delay=3600))
    accepted.add(s["id"])
    problem(d.request("POST", "/v1/tasks/%d/cancel" % s["id"], headers=evil),
            403, "cross-origin cancel")
    problem(d.request("DELETE", "/v1/tasks/%d" % s["id"], headers=evil), 403,
            "cross-origin DELETE")
    t.is_(d.get(s["id"])["state"], "scheduled",
          "the task survived the cross-origin requests")
    r = post_raw(body, {"Origin": "http://127.0.0.1:%d" % d.port})
    t.is_(r.status, 201, "same-origin POST (Origin http://127.0.0.1:PORT): 201")
    if r.status == 201:
        accepted.add(r.body["id"])
    r = d.request("GET", "/v1/tasks/%d" % s["id"], headers=evil)
    t.is_(r.status, 200, "a cross-origin GET (not state-changing): 200")
    t.ok("access-control-allow-origin" not in r.headers,
         "... without granting CORS")


# --- paths, methods, ids, queries ----------------------------------------------

@t.test(timeout=20)
def paths_and_methods():
    for p in ("/nope", "/v1", "/v1/", "/v1/nope", "/v2/tasks",
              "/v1/tasks/1/nope", "/v1/tasks/1/cancel/x", "/v1/taskss",
              "/healthz/x", "/v1/tasks//1", "/%00", "/v1/tasks/1/log/"):
        problem(d.request("GET", p), 404, "GET %s" % p)
    s = d.submit(echo("methods", delay=3600))
    accepted.add(s["id"])
    i = s["id"]
    cases = [
        ("PUT", "/v1/tasks", ("GET", "POST")),
        ("DELETE", "/v1/tasks", ("GET", "POST")),
        ("PATCH", "/v1/tasks", ("GET", "POST")),
        ("PUT", "/v1/tasks/%d" % i, ("GET", "DELETE")),
        ("POST", "/v1/tasks/%d" % i, ("GET", "DELETE")),
        ("PATCH", "/v1/tasks/%d" % i, ("GET", "DELETE")),
        ("GET", "/v1/tasks/%d/cancel" % i, ("POST",)),
        ("DELETE", "/v1/tasks/%d/cancel" % i, ("POST",)),
        ("POST", "/v1/tasks/%d/log" % i, ("GET",)),
        ("DELETE", "/v1/tasks/%d/log" % i, ("GET",)),
        ("POST", "/healthz", ("GET",)),
        ("BREW", "/v1/tasks", ("GET", "POST")),
    ]
    for method, path, allow in cases:
        r = d.request(method, path)
        good, why = is_problem(r, 405)
        got = {m.strip() for m in r.headers.get("allow", "").split(",")}
        t.ok(good and set(allow) <= got,
             "%s %s -> 405 with Allow: %s" % (method, path, ", ".join(allow)),
             diag=why + "\n" + r.describe())
    t.is_(d.get(i)["state"], "scheduled", "the task is untouched")


@t.test(timeout=20)
def bad_ids():
    for bad in ("abc", "0", "-1", "99999999999999999999999", "1.5", "1e3",
                "+1", "0x10", "%201", "01x"):
        for method, suffix in (("GET", ""), ("POST", "/cancel"),
                               ("DELETE", ""), ("GET", "/log")):
            r = d.request(method, "/v1/tasks/%s%s" % (bad, suffix))
            problem(r, 400, "%s /v1/tasks/%s%s" % (method, bad, suffix),
                    "/path/id")
    for method, suffix in (("GET", ""), ("POST", "/cancel"), ("DELETE", ""),
                           ("GET", "/log")):
        problem(d.request(method, "/v1/tasks/987654321%s" % suffix), 404,
                "%s of an unknown id" % method)
        # A NUL (%00) in the path must not alias /v1/tasks/1: a 400 or 404,
        # never task 1 itself.
        problem(d.request(method, "/v1/tasks/1%%00%s" % suffix), (400, 404),
                "%s /v1/tasks/1%%00%s (a NUL after the id)" % (method, suffix))


@t.test(timeout=20)
def bad_queries():
    cases = [
        ("/v1/tasks?limit=0", "/query/limit"),
        ("/v1/tasks?limit=100000", "/query/limit"),
        ("/v1/tasks?limit=abc", "/query/limit"),
        ("/v1/tasks?limit=-5", "/query/limit"),
        ("/v1/tasks?limit=", "/query/limit"),
        ("/v1/tasks?limit=99999999999999999999999", "/query/limit"),
        ("/v1/tasks?state=bogus", "/query/state"),
        ("/v1/tasks?state=scheduled,bogus", "/query/state"),
        ("/v1/tasks?state=", "/query/state"),
        ("/v1/tasks?cursor=garbage", "/query/cursor"),
        ("/v1/tasks?cursor=", "/query/cursor"),
        ("/v1/tasks?kind=nope", "/query/kind"),
        ("/v1/tasks?parent=abc", "/query/parent"),
        ("/v1/tasks?parent=-1", "/query/parent"),
        ("/v1/tasks?unknown=1", "/query/unknown"),
        ("/v1/tasks/1?wait=abc&version=1", "/query/wait"),
        ("/v1/tasks/1?wait=1000&version=1", "/query/wait"),
        ("/v1/tasks/1?wait=-1&version=1", "/query/wait"),
        ("/v1/tasks/1?version=abc", "/query/version"),
        ("/v1/tasks/1?bogus=1", "/query/bogus"),
        ("/v1/tasks/1/log?since=-1", "/query/since"),
        ("/v1/tasks/1/log?since=abc", "/query/since"),
        ("/v1/tasks/1/log?follow=yes", "/query/follow"),
    ]
    for path, field in cases:
        problem(d.request("GET", path), 400, "GET %s" % path, field)
    problem(d.request("POST", "/v1/tasks?x=1", echo(), headers=JSON), 400,
            "POST /v1/tasks?x=1", "/query/x")


@t.test(timeout=60)
def nesting_and_limits():
    deep = b"[" * 10000 + b"]" * 10000
    problem(post_raw(deep), 400, "10,000 nested arrays")
    deep_obj = b'{"a":' * 10000 + b"1" + b"}" * 10000
    problem(post_raw(deep_obj), 400, "10,000 nested objects")
    inner = {"x": 1}
    for _ in range(100):
        inner = {"x": inner}
    problem(post({"kind": "echo", "params": {"message": "m", "deep": inner}}),
            400, "100 levels deep inside params")

    def nest(depth):
        spec = echo("leaf")
        for _ in range(depth):
            spec = {"kind": "gather", "params": {"tasks": [spec]}}
        return spec
    r = post(nest(3))
    t.is_(r.status, 201, "gather nested 3 deep is fine")
    if r.status == 201:
        todo = [r.body["id"]]
        for _ in range(100):        # the gather and all its descendants
            if not todo:
                break
            i = todo.pop()
            accepted.add(i)
            todo.extend(d.get(i)["children"])
    problem(post(nest(20)), 400, "gather nested 20 deep (over the limit)")
    problem(post(nest(200)), 400, "gather nested 200 deep")
    many = {"kind": "gather", "params": {"tasks": [echo(str(i))
                                                   for i in range(1001)]}}
    problem(post(many), 400, "a group with 1001 children", "/params/tasks")
    problem(post([echo(str(i)) for i in range(1001)]), 400,
            "a batch of 1001 specs")
    problem(post([echo("ok"), 5]), 400, "a batch with a non-object element",
            "/1")
    problem(post(echo("m" * 70000)), 400, "an echo message of 70,000 bytes",
            "/params/message")
    problem(post(echo(name="n" * 300)), 400, "a name of 300 bytes", "/name")
    problem(post(echo(), headers={"Idempotency-Key": "k" * 300}), 400,
            "an Idempotency-Key of 300 bytes")
    problem(post(echo(), headers={"Idempotency-Key": ""}), 400,
            "an empty Idempotency-Key")
    still_alive("deep nesting and limits")


@t.test(timeout=20)
def download_bad_url():
    for url in ("file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://x",
                "not a url", "http://", ""):
        r = post({"kind": "download", "params": {"url": url}})
        good, why = is_problem(r, 400)
        field = r.body.get("field") if isinstance(r.body, dict) else None
        t.ok(good and field in ("/kind", "/params/url"),
             "download url %r -> 400 (unknown kind or bad url): field %r" %
             (url, field), diag=why + "\n" + r.describe())


# --- the connection level ----------------------------------------------------------

def raw_exchange(data, read_timeout=5):
    """Send bytes on a fresh socket; whatever comes back (maybe b'')."""
    s = socket.create_connection(("127.0.0.1", d.port), timeout=scaled(5))
    out = b""
    try:
        try:
            s.sendall(data)
        except OSError:
            pass
        s.settimeout(scaled(read_timeout))
        while len(out) < 1 << 20:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    finally:
        s.close()
    return check_raw(data, out)


@t.test(timeout=90)
def garbage_on_the_wire():
    cases = [
        (b"GARBAGE\r\n\r\n", "GARBAGE request line"),
        (b"\x00\x01\x02\xff\r\n\r\n", "binary bytes"),
        (b"GET / HTTP/9.9\r\n\r\n", "HTTP/9.9"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200000 +
         b"\r\n\r\n", "an oversized header (200 KB)"),
        (b"GET /" + b"a" * 100000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
         "a 100 KB request line"),
        (b"POST /v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/"
         b"json\r\nContent-Length: 100\r\n\r\n{\"kind\"",
         "a body shorter than its Content-Length, then close"),
        (b"POST /v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/"
         b"json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
         "a bad chunk size"),
        (b"POST /v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/"
         b"json\r\nContent-Length: -5\r\n\r\n", "a negative Content-Length"),
        (b"POST /v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/"
         b"json\r\nContent-Length: 99999999999999999999\r\n\r\n",
         "a huge Content-Length"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\n" +
         b"".join(b"X-H%d: v\r\n" % i for i in range(2000)) + b"\r\n",
         "2000 headers"),
        (b"GET /healthz HTTP/1.1\r\nHost: x", "a request cut off mid-header"),
    ]
    for data, desc in cases:
        try:
            out = raw_exchange(data, read_timeout=2)
        except OSError as e:
            out = ("(connection error %r)" % e).encode()
        status = out[:12].decode("latin-1", "replace")
        t.ok(not out.startswith(b"HTTP/1.1 500") and
             not out.startswith(b"HTTP/1.0 500"),
             "%s: no 500 (%r)" % (desc, status))
        still_alive(desc)
    # A client that connects and says nothing, next to a working one.
    idle = socket.create_connection(("127.0.0.1", d.port), timeout=scaled(5))
    try:
        still_alive("an idle connection is open")
    finally:
        idle.close()


# --- framing that RFC 9112 says to refuse -----------------------------------------

def exchange_until_closed(data, read_timeout=5):
    """Send bytes on a fresh socket: (what came back, whether the server
    closed the connection before read_timeout)."""
    s = socket.create_connection(("127.0.0.1", d.port), timeout=scaled(5))
    out = b""
    closed = False
    try:
        try:
            s.sendall(data)
        except OSError:
            pass
        s.settimeout(scaled(read_timeout))
        while len(out) < 1 << 20:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except OSError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            out += chunk
    finally:
        s.close()
    return check_raw(data, out), closed


def status_lines(out):
    """The statuses of the answers in out, in order (each answer's head
    read, its Content-Length body skipped)."""
    statuses = []
    while out:
        m = re.match(rb"HTTP/1\.[01] (\d\d\d) ", out)
        head, sep, rest = out.partition(b"\r\n\r\n")
        if not m or not sep:
            statuses.append(b"?")
            break
        statuses.append(m.group(1))
        n = re.search(rb"(?im)^content-length: *(\d+)", head)
        out = rest[int(n.group(1)) if n else 0:]
    return statuses


def smuggled_post():
    """A request that would store a task if it were ever read."""
    body = json.dumps(echo("smuggled")).encode()
    return (b"POST /v1/tasks HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: "
            b"application/json\r\nContent-Length: %d\r\n\r\n%s" %
            (d.port, len(body), body))


@t.test(timeout=120)
def framing_refused():
    # Each was shown to smuggle a second request through libmicrohttpd
    # 0.9.75; now the first is answered in the headers phase and the
    # connection closed with it, so the second is never read.
    sm = smuggled_post()
    host = b"Host: 127.0.0.1:%d\r\n" % d.port
    post = b"POST /v1/tasks HTTP/1.1\r\n" + host + \
        b"Content-Type: application/json\r\n"
    cases = [
        ("Content-Length with Transfer-Encoding", 400,
         post + b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"0\r\n\r\n" % (5 + len(sm)) + sm),
        ("two different Content-Length", 400,
         post + b"Content-Length: 0\r\nContent-Length: %d\r\n\r\n" % len(sm)
         + sm),
        ("two equal Content-Length", 400,
         post + b"Content-Length: 0\r\nContent-Length: 0\r\n\r\n" + sm),
        ("'Content-Length : N' (a space before the colon)", 400,
         post + b"Content-Length : %d\r\n\r\n" % len(sm) + sm),
        ("'Content-Length\\t: N' (a tab before the colon)", 400,
         post + b"Content-Length\t: %d\r\n\r\n" % len(sm) + sm),
        ("Transfer-Encoding: identity", 400,
         post + b"Transfer-Encoding: identity\r\n\r\n" + sm),
        ("Transfer-Encoding: gzip, chunked", 400,
         post + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n" + sm),
        ("Transfer-Encoding: chunked, chunked", 400,
         post + b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n" + sm),
        ("two Transfer-Encoding: chunked fields", 400,
         post + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked"
         b"\r\n\r\n0\r\n\r\n" + sm),
        ("Transfer-Encoding in HTTP/1.0", 400,
         b"POST /v1/tasks HTTP/1.0\r\n" + host + b"Content-Type: application"
         b"/json\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + sm),
        ("an HTTP/1.1 request without Host", 400,
         b"GET /healthz HTTP/1.1\r\n\r\n" + sm),
        ("two Host fields", 400,
         b"GET /healthz HTTP/1.1\r\n" + host + host + b"\r\n" + sm),
        ("a NUL in a header value", 400,
         b"GET /healthz HTTP/1.1\r\n" + host + b"X-Note: a\x00b\r\n\r\n" + sm),
        ("a NUL in Content-Length", 400,
         post + b"Content-Length: 0\x00%d\r\n\r\n" % len(sm) + sm),
        ("a folded Transfer-Encoding (obs-fold)", 400,
         post + b"Content-Length: 0\r\nTransfer-Encoding:\r\n chunked\r\n"
         b"\r\n0\r\n\r\n" + sm),
    ]
    for desc, status, data in cases:
        out, closed = exchange_until_closed(data)
        head = out.split(b"\r\n\r\n", 1)[0]
        t.ok(out.startswith(b"HTTP/1.1 %d " % status) and
             b"application/problem+json" in head,
             "%s: %d problem" % (desc, status), diag=repr(out[:400]))
        t.ok(closed and len(status_lines(out)) == 1 and
             b"smuggled" not in out and b"Connection: close" in head,
             "... Connection: close, closed; the request behind it is not "
             "answered", diag=repr(out[:1000]))
    r = d.request("GET", "/v1/tasks?limit=1000")
    t.is_([x["id"] for x in r.body["tasks"]
           if x["params"].get("message") == "smuggled"], [],
          "no smuggled request stored a task")
    # The same request behind a well-framed one is read (so the checks
    # above can see an answer to it): keep-alive and pipelining still work.
    ok_get = b"GET /healthz HTTP/1.1\r\n" + host + b"\r\n"
    out, _ = exchange_until_closed(ok_get + b"GET /v1/tasks/1/nope HTTP/1.1"
                                   b"\r\n" + host + b"Connection: close\r\n"
                                   b"\r\n")
    t.ok(status_lines(out) == [b"200", b"404"],
         "a well-framed request: the one behind it is answered too",
         diag=repr(out[:600]))
    out, _ = exchange_until_closed(post + b"Transfer-Encoding: Chunked\r\n"
                                   b"Connection: close\r\n\r\n2\r\n[]\r\n"
                                   b"0\r\n\r\n")
    t.ok(out.startswith(b"HTTP/1.1 400 ") and
         b"the array of task specs is empty" in out,
         "Transfer-Encoding: Chunked (any case): the body is read (the "
         "endpoint's 400 for [])", diag=repr(out[:300]))
    for desc, data in (
            ("an HTTP/1.0 request without Host",
             b"GET /healthz HTTP/1.0\r\n\r\n"),
            ("a header name with every token character",
             b"GET /healthz HTTP/1.1\r\n" + host +
             b"X-!#$%&'*+-.^_`|~09az: y\r\n\r\n"),
            ("a value with blanks around it",
             b"GET /healthz HTTP/1.1\r\n" + host + b"X-Pad: \t a b \t\r\n\r\n"),
            ("an empty value", b"GET /healthz HTTP/1.1\r\n" + host +
             b"X-Empty:\r\nX-Empty2: \r\n\r\n")):
        out, _ = exchange_until_closed(data, read_timeout=2)
        t.ok(not out.startswith(b"HTTP/1.1 400 ") and
             not out.startswith(b"HTTP/1.1 501 ") and
             out.startswith((b"HTTP/1.1 200 ", b"HTTP/1.0 200 ",
                             b"HTTP/1.1 201 ")),
             "%s: accepted" % desc, diag=repr(out[:300]))
    still_alive("the framing cases")


# --- a client that half-closes after its request ----------------------------------

def half_closed(method, path, body=None):
    """Send one request, shut down the sending side (HTTP allows it), read
    until the server closes: (status, parsed JSON body or None, raw)."""
    s = socket.create_connection(("127.0.0.1", d.port), timeout=scaled(10))
    data = b"%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % (
        method.encode(), path.encode(), d.port)
    if body is not None:
        data += b"Content-Type: application/json\r\nContent-Length: %d\r\n" \
            % len(body)
    s.sendall(data + b"\r\n" + (body or b""))
    s.shutdown(socket.SHUT_WR)
    out = b""
    try:
        while len(out) < 1 << 20:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except OSError:
        pass
    s.close()
    m = re.match(rb"HTTP/1\.1 (\d+) ", out)
    head, _, rest = out.partition(b"\r\n\r\n")
    try:
        parsed = json.loads(rest) if rest else None
    except ValueError:
        parsed = None
    return (int(m.group(1)) if m else None), parsed, out


@t.test(timeout=60)
def half_closed_client():
    # A submission held for its commit once saw the half-close as the
    # client leaving: the task was stored and never answered.
    for i in range(5):
        st, body, raw = half_closed("POST", "/v1/tasks", json.dumps(
            echo("half-closed %d" % i, delay=3600)).encode())
        ok = st == 201 and isinstance(body, dict) and "id" in body
        if ok:
            accepted.add(body["id"])
        t.ok(ok, "POST, then shutdown(SHUT_WR): the 201 still comes (%d)"
             % i, diag=repr(raw[:300]))
        if ok:
            t.is_(d.get(body["id"])["params"]["message"],
                  "half-closed %d" % i, "... and the task it names exists")
    tid = body["id"] if isinstance(body, dict) and "id" in body else 0
    st, body, raw = half_closed("POST", "/v1/tasks/%d/cancel" % tid)
    t.ok(st == 200 and isinstance(body, dict) and
         body.get("state") == "canceled",
         "a cancel, half-closed: 200, canceled", diag=repr(raw[:300]))
    st, body, raw = half_closed("DELETE", "/v1/tasks/%d" % tid)
    t.is_(st, 204, "a delete, half-closed: 204")
    t.is_(d.request("GET", "/v1/tasks/%d" % tid).status, 404,
          "... and the task is gone")
    accepted.discard(tid)
    st, body, raw = half_closed("POST", "/v1/tasks", b"{")
    t.is_(st, 400, "a bad submission, half-closed: its 400")
    st, body, raw = half_closed("GET", "/healthz")
    t.is_(st, 200, "a GET, half-closed: 200")


# --- nothing changed ------------------------------------------------------------

@t.test(timeout=30)
def nothing_changed():
    still_alive("all of the bad input")
    for i, before in sorted(victims.items()):
        now = d.get(i)
        t.is_(now, before, "task %d is unchanged" % i)
    every = d.list_all()
    extra = sorted(x["id"] for x in every if x["id"] not in accepted)
    t.is_(extra, [], "no task was stored by a rejected request")
    t.is_(d.stop(), 0, "SIGTERM: exit status 0, no sanitizer report")
    d.close()


t.done()
