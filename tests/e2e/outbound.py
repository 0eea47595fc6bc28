#!/usr/bin/env python3
"""outbound.py -- outbound rules and the redaction of inline credentials
(API.md, "Secrets and outbound rules") end to end.

Only loopback is reachable here, so loopback aliases stand in for the
networks: Linux routes all of 127.0.0.0/8 to lo, so a file server bound
to 127.0.0.1 and another bound to 127.0.0.2 are two destinations, and
outbound-deny = 127.0.0.2/32 denies one of them.  Checked: a denied
address fails destination_denied at once (final: attempt 1 of 3, the
server never asked), a redirect from an allowed server to a denied one,
outbound-allow inside a denied range, the built-in denials (169.254.169.254
and an IPv6 link-local literal fail without a connection), bad lists
refused at start (exit 2 naming the setting) and at a reload (nothing
changed), a reload that changes the lists (a connection kept by curl
from before is not a way around it), and that corod takes no proxy from
http_proxy.  Redaction: a download carrying Authorization, Cookie and
Proxy-Authorization headers shows "<redacted>" in every answer (201,
GET, ?wait=, the list, an Idempotency-Key replay, the log, the change
feed) and its stderr at debug level never has the values, while the
server it downloads from receives them and the store keeps them.  The
same for a password in a URL's userinfo (http://user:PASSWORD@host/),
of a download, an http task and a gather holding one: shown as
http://<redacted>@host/ in the params and the result's url, nowhere in
GET, the list, ?wait=, the log or the feed; the server got it.
"""

import base64
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from tap import TAP, scaled  # noqa: E402
from corod import Corod, corod_bin  # noqa: E402
from fileserver import FileServer  # noqa: E402

FINAL = ("succeeded", "failed", "canceled")

t = TAP("outbound", total_timeout=300)
fs1 = FileServer(t, host="127.0.0.1")
fs2 = FileServer(t, host="127.0.0.2")


def dl(url, **params):
    p = {"url": url}
    p.update(params)
    return {"kind": "download", "params": p, "max_attempts": 3}


def run_corod(args, timeout=10):
    """corod run to completion: (status, output)."""
    try:
        p = subprocess.run([corod_bin()] + list(args),
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=scaled(timeout))
    except subprocess.TimeoutExpired:
        return None, "still running after %s s" % timeout
    return p.returncode, p.stdout.decode("utf-8", "replace")


def denied(d, task, desc, addr):
    """task failed destination_denied on its first attempt, naming addr."""
    e = task.get("error") or {}
    t.ok(task["state"] == "failed" and
         e.get("code") == "destination_denied" and
         addr in (e.get("message") or "") and task["attempt"] == 1,
         desc, diag=json.dumps(task))


def write_config(path, text):
    with open(path, "w") as f:
        f.write(text)


@t.test(timeout=60)
def deny_list():
    with Corod(t, args=["--outbound-deny", "127.0.0.2/32"]) as d:
        before = len(fs2.requests())
        x = d.submit(dl(fs2.url("denied.bin"), path="denied.bin"))
        x = d.wait_state(x["id"], FINAL, 20)
        denied(d, x, "a download to a denied address: destination_denied, "
               "final at attempt 1 of 3", "127.0.0.2")
        t.ok("outbound-deny 127.0.0.2/32" in x["error"]["message"],
             "the message names the rule", diag=x["error"]["message"])
        t.is_(len(fs2.requests()), before, "the denied server was never "
              "asked")
        log = d.log(x["id"])
        t.ok("retry" not in json.dumps(log).lower(), "no retry in its log",
             diag=json.dumps(log))
        # the allowed server works under the same rules
        y = d.submit(dl(fs1.url("allowed.bin"), path="allowed.bin"))
        y = d.wait_state(y["id"], FINAL, 20)
        t.is_(y["state"], "succeeded", "the allowed address: succeeded")
        # a redirect from the allowed server to the denied one
        target = fs2.url("redirected.bin")
        z = d.submit(dl(fs1.url("to-denied.bin", location=target),
                        path="redirected.bin", max_redirects=3))
        z = d.wait_state(z["id"], FINAL, 20)
        denied(d, z, "a redirect to a denied address: destination_denied",
               "127.0.0.2")
        t.is_(len(fs1.requests("to-denied.bin")), 1,
              "the allowed server answered the redirect")
        t.is_(len(fs2.requests("redirected.bin")), 0,
              "the denied server was never asked")
        # the same through the http kind: curl follows nothing itself,
        # corod does, and each hop's address is checked
        target = fs2.url("http-redirected")
        h = d.submit({"kind": "http", "max_attempts": 3, "params": {
            "url": fs1.url("http-to-denied", location=target),
            "max_redirects": 3}})
        h = d.wait_state(h["id"], FINAL, 20)
        denied(d, h, "http: a 302 from the allowed server to a denied "
               "address: destination_denied, final at attempt 1 of 3",
               "127.0.0.2")
        t.is_(len(fs1.requests("http-to-denied")), 1,
              "http: the allowed server answered the redirect once")
        t.is_(len(fs2.requests("http-redirected")), 0,
              "http: the denied server was never asked")


@t.test(timeout=60)
def allow_inside_deny():
    with Corod(t, args=["--outbound-deny", "127.0.0.0/8",
                        "--outbound-allow", "127.0.0.1/32"]) as d:
        a = d.submit(dl(fs1.url("in-allow.bin"), path="in-allow.bin"))
        a = d.wait_state(a["id"], FINAL, 20)
        t.is_(a["state"], "succeeded",
              "an address in outbound-allow inside a denied range: allowed")
        b = d.submit(dl(fs2.url("in-deny.bin"), path="in-deny.bin"))
        b = d.wait_state(b["id"], FINAL, 20)
        denied(d, b, "its neighbour in the range: denied", "127.0.0.2")


@t.test(timeout=60)
def builtin_denials():
    with Corod(t) as d:
        cases = [
            ("http://169.254.169.254/latest/meta-data/", "169.254.169.254",
             "the cloud metadata address"),
            ("http://[fe80::1]/x", "fe80::1", "an IPv6 link-local literal"),
            ("http://224.0.0.1/x", "224.0.0.1", "a multicast address"),
            ("http://0.0.0.0:%d/x" % fs1.port, "0.0.0.0",
             "the unspecified address (Linux would connect it to lo)"),
            ("http://[::ffff:169.254.169.254]/x", "169.254.169.254",
             "a v4-mapped link-local address"),
        ]
        for i, (url, addr, desc) in enumerate(cases):
            started = time.monotonic()
            x = d.submit(dl(url, path="builtin-%d.bin" % i,
                            connect_timeout=30))
            x = d.wait_state(x["id"], FINAL, 20)
            took = time.monotonic() - started
            denied(d, x, "%s is denied by default" % desc, addr)
            # the connect timeout is 30 s: a refusal this fast never
            # waited on a connection (the check comes before the socket)
            t.ok(took < scaled(10), "%s: refused without a connection "
                 "attempt (%.2f s)" % (desc, took))
    with Corod(t, args=["--outbound-allow", "0.0.0.0/8"]) as d:
        x = d.submit(dl("http://0.0.0.0:%d/data/unspec.bin" % fs1.port,
                        path="unspec.bin"))
        x = d.wait_state(x["id"], FINAL, 20)
        t.is_(x["state"], "succeeded", "outbound-allow lifts a built-in "
              "denial (0.0.0.0 reaches lo)")


@t.test(timeout=60)
def no_proxy_from_environment():
    # A proxy on 127.0.0.1 would make every request go there: the denied
    # address would then never be checked.  corod must not take it.
    old = {k: os.environ.get(k) for k in ("http_proxy", "HTTP_PROXY",
                                           "all_proxy", "ALL_PROXY")}
    os.environ["http_proxy"] = fs1.base
    os.environ["ALL_PROXY"] = fs1.base
    try:
        d = Corod(t, args=["--outbound-deny", "127.0.0.2/32"])
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    with d:
        before = len(fs1.requests())
        x = d.submit(dl(fs2.url("via-proxy.bin"), path="via-proxy.bin"))
        x = d.wait_state(x["id"], FINAL, 20)
        denied(d, x, "http_proxy in the environment: no way around the "
               "rules", "127.0.0.2")
        t.is_(len(fs1.requests()), before, "the 'proxy' was not used")


@t.test(timeout=60)
def bad_lists():
    cases = [
        (["--outbound-deny", "10.0.0.0/33"], "outbound-deny", "prefix"),
        (["--outbound-deny", "127.0.0.1/8"], "outbound-deny", "bits"),
        (["--outbound-allow", "not-an-address"], "outbound-allow",
         "not-an-address"),
        (["--outbound-allow", "::1/129"], "outbound-allow", "prefix"),
        (["--outbound-deny", "10.0.0.0/8; 1.2.3.4"], "outbound-deny",
         "10.0.0.0/8;"),
    ]
    for args, name, word in cases:
        rc, out = run_corod(["-n"] + args)
        t.ok(rc == 2 and name in out and word in out,
             "%s %s: exit 2 naming the setting" % (name, args[1]),
             diag="rc %s: %s" % (rc, out))
    rc, out = run_corod(["-n", "--outbound-deny", "10.0.0.0/8, fd00::/8 "
                         "192.168.0.0/16", "--outbound-allow", ""])
    t.ok(rc == 0, "a good list: configuration OK", diag=out)


@t.test(timeout=90)
def reload_lists():
    d = Corod(t, start=False)
    conf = os.path.join(d.dir, "corod.conf")
    write_config(conf, "outbound-deny = 127.0.0.2/32\n")
    d.args = ["--config", conf]
    d.start()
    with d:
        x = d.submit(dl(fs2.url("reload-1.bin"), path="reload-1.bin"))
        denied(d, d.wait_state(x["id"], FINAL, 20),
               "before the reload: denied", "127.0.0.2")
        y = d.submit(dl(fs1.url("reload-keep.bin"), path="reload-keep.bin"))
        t.is_(d.wait_state(y["id"], FINAL, 20)["state"], "succeeded",
              "127.0.0.1 allowed (curl keeps its connection)")
        # a bad list: the reload changes nothing
        write_config(conf, "outbound-deny = 127.0.0.300/32\n")
        os.kill(d.pid, signal.SIGHUP)
        line = d.wait_output(r"reload failed", 10)
        t.ok("outbound-deny" in line, "a bad list at a reload is refused "
             "naming the setting", diag=line)
        x = d.submit(dl(fs2.url("reload-2.bin"), path="reload-2.bin"))
        denied(d, d.wait_state(x["id"], FINAL, 20),
               "after the refused reload: still denied", "127.0.0.2")
        # the lists swapped: 127.0.0.2 allowed, 127.0.0.1 denied
        write_config(conf, "outbound-deny = 127.0.0.1/32\n")
        os.kill(d.pid, signal.SIGHUP)
        d.wait_output(r"reload: outbound-deny changed", 10)
        x = d.submit(dl(fs2.url("reload-3.bin"), path="reload-3.bin"))
        t.is_(d.wait_state(x["id"], FINAL, 20)["state"], "succeeded",
              "after the reload: 127.0.0.2 allowed")
        before = len(fs1.requests())
        y = d.submit(dl(fs1.url("reload-4.bin"), path="reload-4.bin"))
        denied(d, d.wait_state(y["id"], FINAL, 20),
               "after the reload: 127.0.0.1 denied, though curl kept a "
               "connection to it", "127.0.0.1")
        t.is_(len(fs1.requests()), before, "no request reached it")
        # outbound-allow at a reload
        write_config(conf, "outbound-deny = 127.0.0.0/8\n"
                     "outbound-allow = 127.0.0.1\n")
        os.kill(d.pid, signal.SIGHUP)
        d.wait_output(r"reload: outbound-allow changed", 10)
        y = d.submit(dl(fs1.url("reload-5.bin"), path="reload-5.bin"))
        t.is_(d.wait_state(y["id"], FINAL, 20)["state"], "succeeded",
              "outbound-allow added at a reload: allowed")


SECRETS = {
    "Authorization": "Bearer tok-9f3a61c0d2e84b17",
    "cookie": "sid=ck-51b8e0aa73c4d692",
    "PROXY-AUTHORIZATION": "Basic cHgtN2QyZTkxYjBmNGEz",
}


def leaks(text):
    return [v for v in SECRETS.values() if v in text]


@t.test(timeout=90)
def redaction():
    with Corod(t, args=["--log-level", "debug"]) as d:
        headers = dict(SECRETS)
        headers["X-Trace"] = "visible-1234"
        spec = dl(fs1.url("redact.bin"), path="redact.bin", headers=headers)
        r = d.request("POST", "/v1/tasks", spec,
                      headers={"Idempotency-Key": "redact-1"})
        t.is_(r.status, 201, "submitted")
        task = r.body
        tid = task["id"]
        answers = {"201": r.raw}
        shown = task["params"]["headers"]
        t.ok(shown.get("Authorization") == "<redacted>" and
             shown.get("cookie") == "<redacted>" and
             shown.get("PROXY-AUTHORIZATION") == "<redacted>" and
             shown.get("X-Trace") == "visible-1234",
             "the 201 shows the three as <redacted>, other headers as "
             "they are", diag=json.dumps(shown))
        done = d.wait_state(tid, FINAL, 20)
        t.is_(done["state"], "succeeded", "the download ran")
        reqs = fs1.requests("redact.bin")
        got = reqs[-1]["headers"] if reqs else {}
        t.ok(got.get("authorization") == SECRETS["Authorization"] and
             got.get("cookie") == SECRETS["cookie"] and
             got.get("proxy-authorization") ==
             SECRETS["PROXY-AUTHORIZATION"],
             "the server received the values", diag=json.dumps(got))
        r = d.request("GET", "/v1/tasks/%d" % tid)
        answers["GET"] = r.raw
        r = d.request("GET", "/v1/tasks/%d?wait=1&version=%d" %
                      (tid, done["version"] - 1))
        answers["?wait="] = r.raw
        r = d.request("GET", "/v1/tasks?limit=100")
        answers["list"] = r.raw
        t.ok(any(x["id"] == tid for x in r.body["tasks"]), "listed")
        r = d.request("POST", "/v1/tasks", spec,
                      headers={"Idempotency-Key": "redact-1"})
        answers["replay"] = r.raw
        t.is_(r.status, 200, "the replayed submission: 200")
        answers["log"] = d.request("GET", "/v1/tasks/%d/log" % tid).raw
        answers["events"] = d.request("GET", "/v1/events?since=0").raw
        answers["dashboard"] = d.request("GET", "/").raw
        for name, raw in answers.items():
            text = raw.decode("utf-8", "replace") if isinstance(
                raw, bytes) else str(raw)
            t.ok(not leaks(text), "%s: no value shown" % name,
                 diag=text[:2000])
            if name in ("201", "GET", "?wait=", "list", "replay"):
                t.ok(text.count("<redacted>") >= 3,
                     "%s: <redacted> shown" % name, diag=text[:2000])
        # stored as given: the store has them (needed to run again)
        d.stop()
        params = d.sql("SELECT params FROM tasks WHERE id = ?",
                       (tid,))[0][0]
        t.ok(SECRETS["Authorization"] in params, "stored as given")
        out = d.output(whole=True)
        t.ok(not leaks(out), "stderr (debug level) never has the values",
             diag=out[-2000:])
        t.ok("redact.bin" in out or len(out) > 0, "stderr was read")


USERINFO_PW = "pw-e81c4a09f7b2d3"


@t.test(timeout=90)
def userinfo_redaction():
    with Corod(t, args=["--log-level", "debug"]) as d:
        def with_userinfo(url):
            return url.replace("http://", "http://alice:%s@" % USERINFO_PW, 1)
        specs = [
            dl(with_userinfo(fs1.url("userinfo.bin")), path="userinfo.bin"),
            {"kind": "http", "params": {
                "url": with_userinfo(fs1.url("userinfo-http"))}},
            {"kind": "gather", "params": {"tasks": [
                dl(with_userinfo(fs1.url("userinfo-child.bin")),
                   path="userinfo-child.bin")]}},
        ]
        answers = {}
        ids = []
        for i, spec in enumerate(specs):
            r = d.request("POST", "/v1/tasks", spec)
            t.is_(r.status, 201, "submitted %s" % spec["kind"])
            answers["201 %d" % i] = r.raw
            ids.append(r.body["id"])
        shown = json.loads(answers["201 0"])["params"]["url"]
        t.ok(shown.startswith("http://<redacted>@127.0.0.1:"),
             "the url is shown with <redacted> for its userinfo",
             diag=shown)
        done = [d.wait_state(i, FINAL, 20) for i in ids]
        t.ok(all(x["state"] == "succeeded" for x in done),
             "the three ran", diag=json.dumps(done)[:2000])
        reqs = fs1.requests("userinfo.bin")
        auth = reqs[-1]["headers"].get("authorization", "") if reqs else ""
        t.is_(auth, "Basic " + base64.b64encode(
            ("alice:" + USERINFO_PW).encode()).decode(),
            "the server received the credentials (Basic)")
        t.ok((done[0].get("result") or {}).get("url", "").startswith(
             "http://<redacted>@"), "the download's result url redacted",
             diag=json.dumps(done[0].get("result")))
        for tid in ids + [x for g in done for x in g["children"]]:
            answers["GET %d" % tid] = d.request(
                "GET", "/v1/tasks/%d" % tid).raw
            answers["?wait= %d" % tid] = d.request(
                "GET", "/v1/tasks/%d?wait=1&version=1" % tid).raw
            answers["log %d" % tid] = d.request(
                "GET", "/v1/tasks/%d/log" % tid).raw
        answers["list"] = d.request("GET", "/v1/tasks?limit=100").raw
        answers["events"] = d.request("GET", "/v1/events?since=0").raw
        answers = {k: v.decode("utf-8", "replace") if isinstance(
            v, bytes) else str(v) for k, v in answers.items()}
        for name, text in answers.items():
            t.ok(USERINFO_PW not in text, "%s: no password" % name,
                 diag=text[:2000])
        t.ok("<redacted>@" in answers["list"], "the list shows <redacted>@")
        log = answers["log %d" % ids[0]]
        t.ok("http://<redacted>@" in log, "the log names the url redacted",
             diag=log)
        d.stop()
        out = d.output(whole=True)
        t.ok(USERINFO_PW not in out, "stderr (debug level) never has the "
             "password", diag=out[-2000:])


t.done()
