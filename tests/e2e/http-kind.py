#!/usr/bin/env python3
"""http-kind.py -- the `http` kind and secrets (API.md, "Kind http", "Secrets
and outbound rules") end to end.

The real daemon calls a real HTTP server on 127.0.0.1 that this test
starts (Python's http.server in a thread): each path answers as the test
configured it (a list of answers used in turn, the last one repeated:
status, headers, body, a delay before answering), and every request it
received is recorded (method, path, headers, body, time).  Checked: every
param, the headers corod sends (Idempotency-Key, User-Agent, Corod-Task,
Corod-Attempt), success / transient / final statuses, Retry-After as
seconds and as a date and its cap (retry-after-max), 3xx kept as the
answer or followed, the answer kept on failure (error.response),
response_max_bytes, a binary body as body_base64, a JSON answer, the
timings, the attempt's timeout as transient, network errors, Standard
Webhooks signing verified here with the spec's own verification (hmac +
base64), secrets sent but never leaked (the database file, its WAL, the
daemon's output and every API answer searched for the secret's bytes),
secret references refused at submission (missing, bad names, no
secrets-dir), and bad input for every param (400 naming the field).
"""

import os
import sys

# Not named http.py: in this directory, first on every test's sys.path,
# that would hide the standard library's http package from all of them.
_HERE = os.path.dirname(os.path.abspath(__file__))

import base64  # noqa: E402
import email.utils
import hashlib  # noqa: E402
import hmac  # noqa: E402
import json  # noqa: E402
import secrets as pysecrets  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from http.server import (BaseHTTPRequestHandler,  # noqa: E402
                         ThreadingHTTPServer)

sys.path.insert(0, os.path.join(_HERE, "..", "lib"))
from tap import TAP, scaled  # noqa: E402
from corod import Corod, free_port, is_problem  # noqa: E402

t = TAP("http-kind")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def _serve(self):
        srv = self.server
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        rec = {"method": self.command, "path": self.path,
               "headers": {k.lower(): v for k, v in self.headers.items()},
               "body": body, "time": time.time()}
        with srv.lock:
            srv.requests.setdefault(self.path, []).append(rec)
            answers = srv.routes.get(self.path)
            if answers is None:
                answers = [(404, {}, b"no route\n", 0)]
            i = len(srv.requests[self.path]) - 1
            status, headers, rbody, delay = answers[min(i, len(answers) - 1)]
        if callable(rbody):
            rbody = rbody(rec)
        if delay:
            time.sleep(delay)
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(rbody)))
        self.end_headers()
        if self.command != "HEAD":
            try:
                self.wfile.write(rbody)
            except (BrokenPipeError, ConnectionResetError):
                pass        # corod gave up (its timeout): expected

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = \
        do_OPTIONS = _serve


class Server:
    """The test's endpoint: route(path, answers), requests(path)."""

    def __init__(self):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.lock = threading.Lock()
        self.httpd.routes = {}
        self.httpd.requests = {}
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       daemon=True)
        self.thread.start()
        t.cleanups.append(self.close)

    def route(self, path, *answers):
        """answers: (status, headers, body[, delay]) used in turn."""
        with self.httpd.lock:
            self.httpd.routes[path] = [a if len(a) == 4 else a + (0,)
                                       for a in answers]

    def requests(self, path):
        with self.httpd.lock:
            return list(self.httpd.requests.get(path, []))

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


srv = Server()
secrets_dir = None
SECRET_VALUE = "s3cr3t-" + pysecrets.token_hex(16)
SIGN_KEY = pysecrets.token_bytes(24)


def setup_secrets(directory):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "api-token"), "w") as f:
        f.write(SECRET_VALUE + "\n")
    with open(os.path.join(directory, "webhook-key"), "w") as f:
        f.write("whsec_" + base64.b64encode(SIGN_KEY).decode() + "\n")
    with open(os.path.join(directory, "not-a-key"), "w") as f:
        f.write("plain words\n")
    with open(os.path.join(directory, "two-lines"), "w") as f:
        f.write("a\nb\n")


def http_task(params, **spec):
    s = {"kind": "http", "params": params}
    s.update(spec)
    return s


def answers_seen(d):
    """Every API answer a user may read for the daemon's tasks."""
    out = []
    for path in ("/v1/tasks?limit=1000", "/v1/events?since=0&limit=1000",
                 "/v1/kinds", "/healthz", "/metrics"):
        out.append(d.request("GET", path).raw)
    r = d.request("GET", "/v1/tasks?limit=1000")
    for task in r.body.get("tasks", []):
        out.append(d.request("GET", "/v1/tasks/%d" % task["id"]).raw)
        out.append(d.request("GET", "/v1/tasks/%d/log" % task["id"]).raw)
    return out


d = None


def daemon():
    global d, secrets_dir
    if d is None:
        d = Corod(t, args=["--retry-after-max", "3"])
        secrets_dir = os.path.join(d.dir, "secrets")
        setup_secrets(secrets_dir)
        d.args += ["--secrets-dir", secrets_dir]
        d.restart()
    return d


def run(spec, states=("succeeded", "failed", "canceled"), timeout=20):
    d = daemon()
    task = d.submit(spec)
    return d.wait_state(task["id"], states, timeout)


@t.test(timeout=60)
def get_and_headers_sent():
    srv.route("/ok", (200, {"Content-Type": "text/plain; charset=utf-8",
                            "ETag": '"v1"', "X-Other": "dropped",
                            "Set-Cookie": "sid=1"}, b"hello\n"))
    task = run(http_task({"url": srv.url("/ok")}))
    t.is_(task["state"], "succeeded", "a GET answered 200 succeeds")
    res = task["result"]
    t.is_(res["status"], 200, "result.status")
    t.is_(res["body"], "hello\n", "result.body as text")
    t.is_(res["body_truncated"], False, "not truncated")
    t.is_(res["headers"].get("content-type"), "text/plain; charset=utf-8",
          "content-type kept, lower-case name")
    t.is_(res["headers"].get("etag"), '"v1"', "etag kept")
    t.ok("x-other" not in res["headers"] and
         "set-cookie" not in res["headers"],
         "other headers and set-cookie are not kept")
    t.ok("json" not in res, "no json for a text answer")
    tm = res["timings"]
    t.ok(all(isinstance(tm[k], (int, float)) for k in
             ("dns", "connect", "first_byte", "total")),
         "timings are numbers", diag=repr(tm))
    t.ok(0 <= tm["dns"] <= tm["connect"] <= tm["first_byte"] <= tm["total"]
         < 20, "timings ordered: dns <= connect <= first_byte <= total",
         diag=repr(tm))
    t.is_(tm["tls"], None, "tls is null on plain http")
    req = srv.requests("/ok")[-1]
    h = req["headers"]
    t.is_(req["method"], "GET", "method GET by default")
    t.is_(h.get("idempotency-key"), "corod-%d" % task["id"],
          "Idempotency-Key: corod-<id>")
    t.ok(h.get("user-agent", "").startswith("corod/"),
         "User-Agent: corod/VERSION", diag=h.get("user-agent"))
    t.is_(h.get("corod-task"), str(task["id"]), "Corod-Task: <id>")
    t.is_(h.get("corod-attempt"), "1", "Corod-Attempt: 1")
    t.is_(req["body"], b"", "no body")


@t.test(timeout=60)
def methods_and_bodies():
    srv.route("/echo", (200, {"Content-Type": "text/plain"}, b"ok"))
    task = run(http_task({"url": srv.url("/echo"), "body": "plain text é",
                          "headers": {"X-One": "1", "x-two": "two"}}))
    t.is_(task["state"], "succeeded", "a POST with body")
    req = srv.requests("/echo")[-1]
    t.is_(req["method"], "POST", "method POST when a body is given")
    t.is_(req["body"], "plain text é".encode(), "the body sent as given")
    t.ok(req["headers"].get("content-type", "").startswith("text/plain"),
         "body: Content-Type text/plain by default",
         diag=req["headers"].get("content-type"))
    t.is_((req["headers"].get("x-one"), req["headers"].get("x-two")),
          ("1", "two"), "headers sent")

    doc = {"a": [1, 2.5, None, True], "b": {"c": "d"}}
    task = run(http_task({"url": srv.url("/echo"), "json": doc,
                          "method": "PUT"}))
    req = srv.requests("/echo")[-1]
    t.is_(req["method"], "PUT", "method PUT")
    t.is_(req["headers"].get("content-type"), "application/json",
          "json: Content-Type application/json")
    t.is_(json.loads(req["body"]), doc, "json: the document sent")

    run(http_task({"url": srv.url("/echo"), "body": "<x/>",
                   "headers": {"Content-Type": "application/xml"}}))
    req = srv.requests("/echo")[-1]
    t.is_(req["headers"].get("content-type"), "application/xml",
          "a body's Content-Type from headers")

    for m in ("DELETE", "PATCH", "OPTIONS", "HEAD", "POST"):
        task = run(http_task({"url": srv.url("/echo"), "method": m}))
        req = srv.requests("/echo")[-1]
        t.is_((task["state"], req["method"]), ("succeeded", m),
              "method %s" % m)
    t.is_(srv.requests("/echo")[-1]["headers"].get("content-length"), "0",
          "a POST without body sends Content-Length: 0")
    task = run(http_task({"url": srv.url("/echo"), "json": None}))
    t.is_(srv.requests("/echo")[-1]["body"], b"null",
          "json: null is sent as null")


@t.test(timeout=60)
def answers_json_binary_truncated():
    srv.route("/json", (200, {"Content-Type": "application/problem+json"},
                        b'{"x": [1, "y"]}'))
    res = run(http_task({"url": srv.url("/json")}))["result"]
    t.is_(res.get("json"), {"x": [1, "y"]}, "a JSON answer: result.json")
    t.is_(res.get("body"), '{"x": [1, "y"]}', "and its text")

    blob = bytes(range(256)) * 4
    srv.route("/bin", (200, {"Content-Type": "application/octet-stream"},
                       blob))
    res = run(http_task({"url": srv.url("/bin")}))["result"]
    t.ok("body" not in res, "a binary answer has no body")
    t.is_(base64.b64decode(res.get("body_base64", "")), blob,
          "body_base64 is the bytes")

    srv.route("/big", (200, {"Content-Type": "text/plain"}, b"x" * 100000))
    res = run(http_task({"url": srv.url("/big")}))["result"]
    t.is_((len(res["body"]), res["body_truncated"], res["body_bytes"]),
          (65536, True, 100000), "64 KiB kept by default, truncated")
    res = run(http_task({"url": srv.url("/big"),
                         "response_max_bytes": 10}))["result"]
    t.is_((res["body"], res["body_truncated"]), ("x" * 10, True),
          "response_max_bytes: 10")
    res = run(http_task({"url": srv.url("/big"),
                         "response_max_bytes": 0}))["result"]
    t.is_((res["body"], res["body_truncated"]), ("", True),
          "response_max_bytes: 0 keeps nothing")
    srv.route("/utf", (200, {"Content-Type": "text/plain"}, "é" .encode() *
                       10))
    res = run(http_task({"url": srv.url("/utf"),
                         "response_max_bytes": 5}))["result"]
    t.is_(res.get("body"), "éé", "a cut in a character keeps text")
    srv.route("/jbig", (200, {"Content-Type": "application/json"},
                        b'["' + b"y" * 100 + b'"]'))
    res = run(http_task({"url": srv.url("/jbig"),
                         "response_max_bytes": 10}))["result"]
    t.ok("json" not in res, "a truncated JSON answer has no json")


@t.test(timeout=60)
def success_and_final_statuses():
    srv.route("/404", (404, {"Content-Type": "text/plain"}, b"not here"))
    task = run(http_task({"url": srv.url("/404")}, max_attempts=3))
    e = task.get("error") or {}
    t.is_((task["state"], e.get("code"), e.get("http_status")),
          ("failed", "http_error", 404), "404 fails at once, http_error")
    t.is_(task["attempt"], 1, "a final status is not retried")
    t.is_((e.get("response") or {}).get("body"), "not here",
          "error.response keeps the answer")
    t.is_((e.get("response") or {}).get("status"), 404,
          "error.response.status")
    t.ok("timings" in (e.get("response") or {}), "error.response.timings")
    task = run(http_task({"url": srv.url("/404"),
                          "success_status": [404, 410]}))
    t.is_((task["state"], task["result"]["status"]), ("succeeded", 404),
          "success_status [404, 410] accepts 404")
    srv.route("/200", (200, {}, b""))
    task = run(http_task({"url": srv.url("/200"),
                          "success_status": [201]}))
    t.is_((task["state"], task["error"]["code"],
           task["error"]["http_status"]), ("failed", "http_error", 200),
          "200 outside [201] fails")
    task = run(http_task({"url": srv.url("/200"),
                          "success_status": "2xx"}))
    t.is_(task["state"], "succeeded", "success_status \"2xx\"")


@t.test(timeout=90)
def transient_statuses_and_retry_after():
    for code in (408, 425, 429, 500, 502, 503, 504):
        path = "/t%d" % code
        srv.route(path, (code, {"Retry-After": "0"}, b"busy"),
                  (200, {}, b"fine"))
        task = run(http_task({"url": srv.url(path)}, max_attempts=2))
        t.is_((task["state"], task["attempt"]), ("succeeded", 2),
              "%d is transient: retried, then 200" % code)
    reqs = srv.requests("/t503")
    t.is_([r["headers"].get("corod-attempt") for r in reqs], ["1", "2"],
          "Corod-Attempt counts attempts")
    t.is_(len({r["headers"].get("idempotency-key") for r in reqs}), 1,
          "the same Idempotency-Key on every attempt")

    srv.route("/always503", (503, {"Content-Type": "text/plain"}, b"down"))
    task = run(http_task({"url": srv.url("/always503")}, max_attempts=2))
    e = task.get("error") or {}
    t.is_((task["state"], task["attempt"], e.get("code"),
           e.get("http_status"), (e.get("response") or {}).get("body")),
          ("failed", 2, "http_error", 503, "down"),
          "503 until max_attempts: failed, the last answer kept")

    srv.route("/ra", (429, {"Retry-After": "2"}, b""), (200, {}, b""))
    task = run(http_task({"url": srv.url("/ra")}, max_attempts=2))
    reqs = srv.requests("/ra")
    gap = reqs[1]["time"] - reqs[0]["time"]
    t.is_(task["state"], "succeeded", "Retry-After: 2, then 200")
    t.ok(gap >= 1.9, "the retry waited Retry-After's 2 s", diag=gap)

    when = email.utils.formatdate(time.time() + 3, usegmt=True)
    srv.route("/radate", (503, {"Retry-After": when}, b""), (200, {}, b""))
    task = run(http_task({"url": srv.url("/radate")}, max_attempts=2))
    reqs = srv.requests("/radate")
    gap = reqs[1]["time"] - reqs[0]["time"]
    t.ok(gap >= 1.9, "Retry-After as an HTTP-date is waited for "
         "(3 s, to the second)", diag=gap)

    srv.route("/racap", (503, {"Retry-After": "3600"}, b""), (200, {}, b""))
    task = run(http_task({"url": srv.url("/racap")}, max_attempts=2),
               timeout=30)
    reqs = srv.requests("/racap")
    gap = reqs[1]["time"] - reqs[0]["time"]
    t.is_(task["state"], "succeeded", "Retry-After: 3600 capped")
    t.ok(2.5 <= gap < 15, "by retry-after-max (3 s here)", diag=gap)
    logs = " ".join(x[1] for x in d.log(task["id"]))
    t.ok("retry-after-max" in logs, "the cap is logged", diag=logs)


@t.test(timeout=60)
def redirects():
    srv.route("/r1", (302, {"Location": "/ok2"}, b"moved"))
    srv.route("/ok2", (200, {"Content-Type": "text/plain"}, b"here"))
    task = run(http_task({"url": srv.url("/r1")}, max_attempts=3))
    e = task.get("error") or {}
    t.is_((task["state"], e.get("code"), e.get("http_status"),
           task["attempt"]), ("failed", "http_error", 302, 1),
          "max_redirects 0: a 302 is the answer (not a success)")
    t.is_(((e.get("response") or {}).get("headers") or {}).get("location"),
          "/ok2", "its Location is in error.response.headers")
    task = run(http_task({"url": srv.url("/r1"),
                          "success_status": [302]}))
    t.is_((task["state"], task["result"]["status"]), ("succeeded", 302),
          "a 302 in success_status succeeds")
    n = len(srv.requests("/ok2"))
    task = run(http_task({"url": srv.url("/r1"), "max_redirects": 1,
                          "headers": {"X-Key": "k"}}))
    t.is_((task["state"], task["result"]["status"], task["result"]["body"]),
          ("succeeded", 200, "here"), "max_redirects 1: followed")
    t.is_(task["result"].get("url"), srv.url("/ok2"), "result.url")
    t.is_(len(srv.requests("/ok2")), n + 1, "the target was called")
    t.is_(srv.requests("/ok2")[-1]["headers"].get("x-key"), "k",
          "same origin: the params' headers are sent on")
    srv.route("/loop", (302, {"Location": "/loop"}, b""))
    task = run(http_task({"url": srv.url("/loop"), "max_redirects": 3}))
    t.is_((task["state"], task["error"]["code"]),
          ("failed", "too_many_redirects"), "a redirect loop ends")
    t.is_(len(srv.requests("/loop")), 4, "after max_redirects + 1 requests")
    srv.route("/r303", (303, {"Location": "/ok2"}, b""))
    task = run(http_task({"url": srv.url("/r303"), "body": "x",
                          "max_redirects": 1}))
    t.is_((task["state"], srv.requests("/ok2")[-1]["method"],
           srv.requests("/ok2")[-1]["body"]), ("succeeded", "GET", b""),
          "303 after a POST: a GET without body")
    srv.route("/r307", (307, {"Location": "/ok2"}, b""))
    task = run(http_task({"url": srv.url("/r307"), "body": "x",
                          "max_redirects": 1}))
    t.is_((srv.requests("/ok2")[-1]["method"],
           srv.requests("/ok2")[-1]["body"]), ("POST", b"x"),
          "307: method and body kept")
    other = Server()
    other.route("/far", (200, {}, b"far"))
    srv.route("/away", (302, {"Location": other.url("/far")}, b""))
    task = run(http_task({"url": srv.url("/away"), "max_redirects": 1,
                          "headers": {"X-Key": "k"}}))
    t.is_(task["state"], "succeeded", "a redirect to another origin")
    t.ok("x-key" not in other.requests("/far")[-1]["headers"],
         "the params' headers are not sent to another origin")
    srv.route("/badloc", (302, {"Location": "ftp://x/y"}, b""))
    task = run(http_task({"url": srv.url("/badloc"), "max_redirects": 1}))
    t.is_((task["state"], task["error"]["code"]),
          ("failed", "bad_redirect"), "a redirect to ftp is refused")


@t.test(timeout=90)
def timeout_and_network():
    srv.route("/slow", (200, {}, b"late", 4), (200, {}, b"late", 4))
    task = run(http_task({"url": srv.url("/slow")}, timeout=1,
                         max_attempts=2), timeout=30)
    t.is_((task["state"], task["error"]["code"], task["attempt"]),
          ("failed", "timeout", 2),
          "the attempt's timeout is transient (retried), then final")
    t.is_(len(srv.requests("/slow")), 2, "two attempts were sent")
    port = free_port()
    task = run(http_task({"url": "http://127.0.0.1:%d/x" % port},
                         max_attempts=2), timeout=30)
    t.is_((task["state"], task["error"]["code"], task["attempt"]),
          ("failed", "network", 2),
          "a refused connection is a network error, retried")


def verify_webhook(key, headers, body):
    """The Standard Webhooks verification, as the spec writes it."""
    msg_id = headers["webhook-id"]
    ts = headers["webhook-timestamp"]
    if abs(time.time() - int(ts)) > 300:
        return False
    signed = ("%s.%s." % (msg_id, ts)).encode() + body
    expected = base64.b64encode(hmac.new(key, signed,
                                         hashlib.sha256).digest()).decode()
    for sig in headers["webhook-signature"].split(" "):
        version, _, value = sig.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return True
    return False


@t.test(timeout=60)
def signing():
    daemon()
    srv.route("/hook", (503, {"Retry-After": "0"}, b""), (200, {}, b""))
    task = run(http_task({"url": srv.url("/hook"), "json": {"event": "x"},
                          "sign": {"secret": "webhook-key"}},
                         max_attempts=2))
    t.is_(task["state"], "succeeded", "a signed webhook")
    reqs = srv.requests("/hook")
    for r in reqs:
        t.ok(verify_webhook(SIGN_KEY, r["headers"], r["body"]),
             "attempt %s: the signature verifies" %
             r["headers"].get("corod-attempt"), diag=r["headers"])
    t.is_({r["headers"]["webhook-id"] for r in reqs},
          {"corod-%d" % task["id"]}, "webhook-id stable across attempts")
    bad = dict(reqs[-1]["headers"])
    t.ok(not verify_webhook(SIGN_KEY, bad, reqs[-1]["body"] + b" "),
         "a changed body does not verify")
    t.ok(not verify_webhook(b"other key", bad, reqs[-1]["body"]),
         "another key does not verify")
    srv.route("/hookget", (200, {}, b""))
    run(http_task({"url": srv.url("/hookget"),
                   "sign": {"secret": "webhook-key"}}))
    r = srv.requests("/hookget")[-1]
    t.ok(verify_webhook(SIGN_KEY, r["headers"], b""),
         "a GET is signed over an empty body")
    task = run(http_task({"url": srv.url("/hookget"),
                          "sign": {"secret": "not-a-key"}}))
    t.is_((task["state"], task["error"]["code"]),
          ("failed", "secret_invalid"), "a secret that is no key fails")


@t.test(timeout=90)
def secrets_sent_never_leaked():
    d = daemon()
    srv.route("/auth", (200, {}, b"ok"))
    task = run(http_task({"url": srv.url("/auth"),
                          "headers": {"Authorization-Token":
                                      {"secret": "api-token"}}}))
    t.is_(task["state"], "succeeded", "a header from a secret")
    t.is_(srv.requests("/auth")[-1]["headers"].get("authorization-token"),
          SECRET_VALUE, "its value sent (the trailing newline dropped)")
    t.is_(task["params"]["headers"]["Authorization-Token"],
          {"secret": "api-token"}, "params show the reference only")
    # the download kind takes them too
    srv.route("/file", (200, {}, b"content"))
    dl = d.submit({"kind": "download", "params": {
        "url": srv.url("/file"), "path": "f.bin",
        "headers": {"X-Token": {"secret": "api-token"}}}})
    dl = d.wait_state(dl["id"], ("succeeded", "failed"), 20)
    t.is_(dl["state"], "succeeded", "a download with a secret header")
    t.is_(srv.requests("/file")[-1]["headers"].get("x-token"), SECRET_VALUE,
          "the download sent the secret's value")
    task = run(http_task({"url": srv.url("/auth"),
                          "headers": {"X-T": {"secret": "two-lines"}}}))
    t.is_((task["state"], task["error"]["code"]),
          ("failed", "secret_unavailable"),
          "a secret of two lines is not a header value")
    # removed after submission: the attempt fails, naming it
    path = os.path.join(secrets_dir, "gone")
    with open(path, "w") as f:
        f.write("x")
    task = d.submit(http_task({"url": srv.url("/auth"),
                               "headers": {"X-G": {"secret": "gone"}}},
                              delay=1))
    os.unlink(path)
    task = d.wait_state(task["id"], ("succeeded", "failed"), 20)
    t.is_((task["state"], task["error"]["code"]),
          ("failed", "secret_unavailable"),
          "a secret removed before the run fails the task")
    t.ok("gone" in task["error"]["message"], "naming it",
         diag=task["error"]["message"])

    needle = SECRET_VALUE.encode()
    key_b64 = base64.b64encode(SIGN_KEY)
    found = []
    for a in answers_seen(d):
        if needle in a or key_b64 in a:
            found.append(a[:200])
    t.is_(found, [], "no API answer holds a secret's bytes")
    d.stop()
    for name in os.listdir(d.dir):
        p = os.path.join(d.dir, name)
        if not os.path.isfile(p) or name.startswith("valgrind"):
            continue
        with open(p, "rb") as f:
            data = f.read()
        t.ok(needle not in data and key_b64 not in data,
             "%s holds no secret's bytes" % name)
    if d.is_pg():
        # the store is a PostgreSQL database: its rows, searched
        rows = d.sql("SELECT concat_ws(' ', params, progress, result, "
                     "error, checkpoint) FROM tasks") + d.sql(
            "SELECT encode(text, 'escape') FROM logs")
        data = "\n".join(str(r[0]) for r in rows).encode()
        t.ok(needle not in data and key_b64 not in data and len(rows) > 0,
             "the PostgreSQL rows (%d) hold no secret's bytes" % len(rows))
    else:
        t.ok(any(n.startswith("corod.db") for n in os.listdir(d.dir)),
             "the database files were searched")
    d.start()


@t.test(timeout=60)
def secret_refs_refused():
    d = daemon()
    url = srv.url("/auth")
    cases = [
        ({"X-A": {"secret": "missing"}}, "/params/headers/X-A/secret",
         "in secrets-dir"),
        ({"X-A": {"secret": "../x"}}, "/params/headers/X-A/secret", None),
        ({"X-A": {"secret": "a/b"}}, "/params/headers/X-A/secret", None),
        ({"X-A": {"secret": ""}}, "/params/headers/X-A/secret", None),
        ({"X-A": {"secret": ".."}}, "/params/headers/X-A/secret", None),
        ({"X-A": {"secret": "."}}, "/params/headers/X-A/secret", None),
        ({"X-A": {"secret": "x" * 129}}, "/params/headers/X-A/secret", None),
        ({"X-A": {"secret": 5}}, "/params/headers/X-A", None),
        ({"X-A": {"secret": "api-token", "x": 1}}, "/params/headers/X-A",
         None),
        ({"X-A": {"name": "api-token"}}, "/params/headers/X-A", None),
    ]
    for headers, field, word in cases:
        r = d.request("POST", "/v1/tasks", http_task({"url": url,
                                                      "headers": headers}))
        ok, why = is_problem(r, 400, field)
        t.ok(ok and (word is None or word in r.body.get("detail", "")),
             "headers %s: 400 at %s" % (json.dumps(headers)[:60], field),
             diag="%s\n%s" % (why, r.describe()))
    os.mkdir(os.path.join(secrets_dir, "adir"))
    r = d.request("POST", "/v1/tasks", http_task({"url": url, "sign": {
        "secret": "adir"}}))
    t.ok(is_problem(r, 400, "/params/sign/secret")[0],
         "a directory is no secret", diag=r.describe())
    r = d.request("POST", "/v1/tasks", http_task({"url": url, "sign": {
        "secret": "missing"}}))
    t.ok(is_problem(r, 400, "/params/sign/secret")[0],
         "sign: a missing secret is 400", diag=r.describe())
    r = d.request("POST", "/v1/tasks", {"kind": "download", "params": {
        "url": url, "headers": {"X-A": {"secret": "missing"}}}})
    t.ok(is_problem(r, 400, "/params/headers/X-A/secret")[0],
         "download: a missing secret is 400", diag=r.describe())
    bare = Corod(t)
    r = bare.request("POST", "/v1/tasks", http_task({"url": url,
                                                     "headers": {
        "X-A": {"secret": "api-token"}}}))
    ok, why = is_problem(r, 400, "/params/headers/X-A/secret")
    t.ok(ok and "secrets-dir" in r.body.get("detail", ""),
         "no secrets-dir: 400 saying so", diag=r.describe())
    bare.stop()


@t.test(timeout=60)
def bad_input():
    d = daemon()
    url = srv.url("/ok")
    cases = [
        ({}, "/params/url"),
        ({"url": 5}, "/params/url"),
        ({"url": "ftp://127.0.0.1/x"}, "/params/url"),
        ({"url": "not a url"}, "/params/url"),
        ({"url": "http:///x"}, "/params/url"),
        ({"url": url, "method": "FETCH"}, "/params/method"),
        ({"url": url, "method": "get"}, "/params/method"),
        ({"url": url, "method": 5}, "/params/method"),
        ({"url": url, "headers": "x"}, "/params/headers"),
        ({"url": url, "headers": ["x"]}, "/params/headers"),
        ({"url": url, "headers": {"Host": "x"}}, "/params/headers/Host"),
        ({"url": url, "headers": {"idempotency-key": "x"}},
         "/params/headers/idempotency-key"),
        ({"url": url, "headers": {"Corod-Attempt": "x"}},
         "/params/headers/Corod-Attempt"),
        ({"url": url, "headers": {"Webhook-Signature": "x"}},
         "/params/headers/Webhook-Signature"),
        ({"url": url, "headers": {"User-Agent": "x"}},
         "/params/headers/User-Agent"),
        ({"url": url, "headers": {"X-A": "a\r\nB: c"}}, "/params/headers/X-A"),
        ({"url": url, "headers": {"X A": "a"}}, "/params/headers/X A"),
        ({"url": url, "headers": {"X-A": 5}}, "/params/headers/X-A"),
        ({"url": url, "body": 5}, "/params/body"),
        ({"url": url, "body": "a", "json": {}}, "/params/json"),
        ({"url": url, "json": {}, "headers": {"content-type": "text/x"}},
         "/params/headers/content-type"),
        ({"url": url, "method": "HEAD", "body": "x"}, "/params/method"),
        ({"url": url, "success_status": "3xx"}, "/params/success_status"),
        ({"url": url, "success_status": 200}, "/params/success_status"),
        ({"url": url, "success_status": []}, "/params/success_status"),
        ({"url": url, "success_status": [99]}, "/params/success_status/0"),
        ({"url": url, "success_status": [200, 600]},
         "/params/success_status/1"),
        ({"url": url, "success_status": ["200"]},
         "/params/success_status/0"),
        ({"url": url, "success_status": list(range(200, 265))},
         "/params/success_status"),
        ({"url": url, "max_redirects": -1}, "/params/max_redirects"),
        ({"url": url, "max_redirects": 21}, "/params/max_redirects"),
        ({"url": url, "max_redirects": "3"}, "/params/max_redirects"),
        ({"url": url, "max_redirects": 1.5}, "/params/max_redirects"),
        ({"url": url, "response_max_bytes": -1},
         "/params/response_max_bytes"),
        ({"url": url, "response_max_bytes": 10 ** 12},
         "/params/response_max_bytes"),
        ({"url": url, "response_max_bytes": "64K"},
         "/params/response_max_bytes"),
        ({"url": url, "sign": "webhook-key"}, "/params/sign"),
        ({"url": url, "sign": {"secret": 5}}, "/params/sign"),
        ({"url": url, "bogus": 1}, "/params/bogus"),
    ]
    for params, field in cases:
        r = d.request("POST", "/v1/tasks", http_task(params))
        ok, why = is_problem(r, 400, field)
        t.ok(ok, "%s: 400 at %s" % (json.dumps(params)[:70], field),
             diag="%s\n%s" % (why, r.describe()))


@t.test(timeout=30)
def kinds_listed():
    d = daemon()
    r = d.request("GET", "/v1/kinds")
    k = [k for k in r.body["kinds"] if k["name"] == "http"]
    t.is_(len(k), 1, "GET /v1/kinds lists http")
    names = [p["name"] for p in k[0]["params"]] if k else []
    t.is_(names, ["url", "method", "headers", "body", "json",
                  "success_status", "max_redirects", "response_max_bytes",
                  "sign"], "with its params")


t.done()
