#!/usr/bin/env python3
"""scopes.py -- worker tokens ("TOKEN worker:QUEUE ..."), real daemon.

A full token is served everywhere.  A worker token is refused (403, a
problem of type "forbidden") on every route but a task's reads: no
submission, list, change feed, kinds, metrics, cancel or delete; it reads
the tasks of its queues (the task and its log, 200) and no other's (403,
also for a revalidation or a long-poll), a missing task staying 404.  Bad
lines refuse the file at start and at a reload, naming file:line.  A
reload (SIGHUP) changes a token's scope for the next requests, while a
request held across it keeps the scope it came with.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from tap import TAP, scaled  # noqa: E402
from corod import Corod, corod_bin, echo, is_problem, sleep  # noqa: E402

t = TAP("scopes")

FULL = "full-token-3c1f9a0e5b7d2468"
WORKER = "worker-token-8e2b6d0f4a1c3957"
OTHER = "other-worker-5a7c9e1b3d0f2468"


def write(path, text, mode=0o600):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def auth(token):
    return {"Authorization": "Bearer " + token}


def forbidden(r, desc):
    """r is a 403 problem whose type ends in "forbidden"."""
    good, why = is_problem(r, 403)
    typ = r.body.get("type", "") if isinstance(r.body, dict) else ""
    if good and not str(typ).endswith("forbidden"):
        good, why = False, "type %r" % typ
    return t.ok(good, desc, diag=why + "\n" + r.describe())


def run_corod(args, cwd, timeout=10):
    """corod run to completion: (status, output)."""
    try:
        p = subprocess.run([corod_bin()] + list(args), cwd=cwd,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=scaled(timeout))
    except subprocess.TimeoutExpired:
        return None, "still running after %s s" % timeout
    return p.returncode, p.stdout.decode("utf-8", "replace")


def held_requests(d):
    r = d.request("GET", "/metrics", headers=auth(FULL))
    m = re.search(r"^corod_http_held_requests (\S+)$", r.body or "", re.M)
    return float(m.group(1)) if m else 0


@t.test(timeout=120)
def worker_token():
    tmp = tempfile.mkdtemp(prefix="corod-scope-")
    try:
        tf = os.path.join(tmp, "tokens")
        write(tf, "# the operator, and a worker of q1\n%s\n"
              "%s worker:q1\n%s worker:q2 q3\n" % (FULL, WORKER, OTHER))
        with Corod(t, args=["--token-file", tf], name="scopes") as d:
            d.token = FULL
            one = d.submit(echo("in q1", queue="q1"))
            two = d.submit(echo("in q2", queue="q2"))
            for task in (one, two):
                d.wait_state(task["id"], ("succeeded",), 10)
            t.is_(d.request("GET", "/v1/tasks").status, 200,
                  "the full token lists")
            t.is_(d.request("GET", "/v1/events?since=0&wait=0").status, 200,
                  "... reads the change feed")
            t.is_(d.request("GET", "/v1/kinds").status, 200,
                  "... and the kinds")
            t.is_(d.request("GET", "/metrics").status, 200,
                  "... and /metrics")
            t.is_(d.request("GET", "/v1/tasks/%d" % two["id"]).status, 200,
                  "... and a task of any queue")
            d.token = None

            w = auth(WORKER)
            r = d.request("POST", "/v1/tasks", echo("no", queue="q1"),
                          headers=w)
            forbidden(r, "a worker token may not submit, even to its queue")
            t.ok("worker token" in r.body.get("detail", "") and
                 "q1" in r.body.get("detail", ""),
                 "... the detail names it a worker token and its queue",
                 diag=r.describe())
            forbidden(d.request("GET", "/v1/tasks", headers=w),
                      "... nor list the tasks")
            forbidden(d.request("GET", "/v1/tasks?queue=q1", headers=w),
                      "... not even its queue's")
            forbidden(d.request("GET", "/v1/events?since=0&wait=0",
                                headers=w), "... nor read the change feed")
            forbidden(d.request("GET", "/v1/kinds", headers=w),
                      "... nor the kinds")
            forbidden(d.request("GET", "/metrics", headers=w),
                      "... nor /metrics")
            forbidden(d.request("POST", "/v1/tasks/%d/cancel" % one["id"],
                                headers=w), "... nor cancel its queue's task")
            forbidden(d.request("DELETE", "/v1/tasks/%d" % one["id"],
                                headers=w), "... nor delete it")
            r = d.request("GET", "/v1/tasks", headers=auth(FULL))
            t.is_(sorted(x["id"] for x in r.body["tasks"]),
                  sorted([one["id"], two["id"]]),
                  "nothing was stored or deleted by it")
            t.is_(d.request("GET", "/healthz", headers=w).status, 200,
                  "/healthz is anyone's")

            r = d.request("GET", "/v1/tasks/%d" % one["id"], headers=w)
            t.ok(r.status == 200 and r.body.get("queue") == "q1",
                 "it reads a task of q1", diag=r.describe())
            t.is_(d.request("HEAD", "/v1/tasks/%d" % one["id"],
                            headers=w).status, 200, "... HEAD too")
            r = d.request("GET", "/v1/tasks/%d/log" % one["id"], headers=w)
            t.ok(r.status == 200 and "in q1" in (r.body or ""),
                 "... and its log", diag=r.describe())

            path = "/v1/tasks/%d" % two["id"]
            r = d.request("GET", path, headers=w)
            forbidden(r, "a task of q2: 403")
            t.ok("in q2" not in r.raw.decode("utf-8", "replace") and
                 "q2" not in r.body.get("detail", ""),
                 "... telling nothing of it (not even its queue)",
                 diag=r.describe())
            forbidden(d.request("GET", path + "/log", headers=w),
                      "... nor its log")
            r = d.request("HEAD", path, headers=w)
            t.ok(r.status == 403 and r.headers.get("content-type", "")
                 .startswith("application/problem+json"),
                 "... HEAD too (a problem's head)", diag=r.describe())
            etag = d.request("GET", path, headers=auth(FULL)).headers["etag"]
            h = dict(w)
            h["If-None-Match"] = etag
            forbidden(d.request("GET", path, headers=h),
                      "... and a revalidation with its ETag (not 304)")
            version = int(etag.strip('"'))
            forbidden(d.request("GET", "%s?wait=30&version=%d" %
                                (path, version), headers=w),
                      "... and a long-poll on it, at once")
            r = d.request("GET", path, headers=auth(OTHER))
            t.is_(r.status, 200, "the worker token of q2 and q3 reads it")

            for p in ("/v1/tasks/987654", "/v1/tasks/987654/log"):
                r = d.request("GET", p, headers=w)
                good, why = is_problem(r, 404)
                t.ok(good, "a missing task: 404 (%s)" % p, diag=why)
            r = d.request("GET", "/v1/tasks/%d" % one["id"],
                          headers=auth(WORKER + "x"))
            good, why = is_problem(r, 401)
            t.ok(good, "a wrong token is still 401", diag=why)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@t.test(timeout=120)
def reload_scopes():
    tmp = tempfile.mkdtemp(prefix="corod-scope-")
    try:
        tf = os.path.join(tmp, "tokens")
        write(tf, "%s\n%s worker:q1\n" % (FULL, WORKER))
        with Corod(t, args=["--token-file", tf], name="reload") as d:
            d.token = FULL
            one = d.submit(sleep(60, queue="q1"))
            two = d.submit(echo("in q2", queue="q2"))
            d.wait_state(one["id"], ("running",), 10)
            d.wait_state(two["id"], ("succeeded",), 10)
            d.token = None
            w = auth(WORKER)

            # A long-poll of the worker on its q1 task, held across a
            # reload that takes q1 from the token: it keeps its scope.
            version = d.request("GET", "/v1/tasks/%d" % one["id"],
                                headers=w).body["version"]
            held = {}

            def poll():
                c = d.connection()
                try:
                    held["r"] = d.request(
                        "GET", "/v1/tasks/%d?wait=30&version=%d" %
                        (one["id"], version), headers=w, conn=c,
                        timeout=60)
                except Exception as e:  # reported below
                    held["error"] = repr(e)
                finally:
                    c.close()

            th = threading.Thread(target=poll, daemon=True)
            th.start()
            d.wait_for(lambda: held_requests(d) >= 1, 10,
                       desc="the long-poll is held")

            write(tf, "%s\n%s worker:q2\n" % (FULL, WORKER))
            os.kill(d.pid, signal.SIGHUP)
            d.wait_output(r"reload: tokens read from", 10)
            forbidden(d.request("GET", "/v1/tasks/%d" % one["id"],
                                headers=w),
                      "after a reload to worker:q2, its q1 task: 403")
            t.is_(d.request("GET", "/v1/tasks/%d" % two["id"],
                            headers=w).status, 200, "... its q2 task: 200")

            r = d.request("POST", "/v1/tasks/%d/cancel" % one["id"],
                          headers=auth(FULL))
            t.ok(r.status in (200, 202), "the full token cancels the q1 "
                 "task", diag=r.describe())
            th.join(scaled(30))
            r = held.get("r")
            t.ok(r is not None and r.status == 200 and
                 r.body.get("version", 0) > version,
                 "the long-poll held across the reload is answered with "
                 "the task (its scope was q1 when it came)",
                 diag=held.get("error") or (r.describe() if r else "none"))

            # A bad line: the reload is refused, the scopes in use kept.
            write(tf, "%s\n%s worker:\n" % (FULL, WORKER))
            os.kill(d.pid, signal.SIGHUP)
            line = d.wait_output(r"tokens in use are kept", 10)
            t.ok(re.search(r"tokens:2: worker: names no queue", line),
                 "a reload with worker: and no queue is refused, naming "
                 "file:line", diag=line)
            forbidden(d.request("GET", "/v1/tasks/%d" % one["id"],
                                headers=w), "... the scope in use is kept")

            write(tf, "%s\n%s\n" % (FULL, WORKER))
            os.kill(d.pid, signal.SIGHUP)
            d.wait_for(lambda: d.output().count("reload: tokens read "
                                                "from") >= 2, 10,
                       desc="the second good reload")
            t.is_(d.request("GET", "/v1/tasks", headers=w).status, 200,
                  "a reload without the scope: the token is a full one")
            t.is_(d.request("GET", "/v1/tasks/%d" % one["id"],
                            headers=w).status, 200, "... it reads any task")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@t.test(timeout=60)
def bad_lines():
    tmp = tempfile.mkdtemp(prefix="corod-scope-")
    try:
        tf = os.path.join(tmp, "tokens")
        cases = [
            ("worker: without a queue", "%s worker:\n" % WORKER,
             r"tokens:1: worker: names no queue"),
            ("a bad queue name", "%s\n%s worker:q1 Mail\n" % (FULL, WORKER),
             r'tokens:2: "Mail" is not a queue name'),
            ("a queue name too long", "%s worker:%s\n" % (WORKER, "q" * 65),
             r"tokens:1: .* is not a queue name"),
            ("an unknown scope", "# ops\n%s admin\n" % FULL,
             r"tokens:2: a blank after the token, then not worker:"),
            ("a token on two lines", "%s\n%s worker:q1\n" % (FULL, FULL),
             r"tokens:2: the same token as line 1"),
        ]
        for desc, text, want in cases:
            write(tf, text)
            rc, out = run_corod(["-n", "--token-file", tf], tmp)
            t.ok(rc == 2 and re.search(want, out) is not None,
                 "%s: refused (exit 2), naming file:line" % desc,
                 diag="rc %s: %s" % (rc, out))
        write(tf, "# ops\n%s admin\n" % FULL)
        rc, out = run_corod(["-n", "--token-file", tf], tmp)
        t.ok("admin" not in out and FULL not in out,
             "... the unknown scope is not echoed (it may be half a token)",
             diag=out)
        write(tf, "%s\n%s worker:q1 q2\n" % (FULL, WORKER))
        rc, out = run_corod(["-n", "--token-file", tf], tmp)
        t.ok(rc == 0, "a good scoped file passes -n", diag=out)
        # A real start with a bad file: refused before it serves.
        write(tf, "%s worker:\n" % WORKER)
        rc, out = run_corod(["--listen", "127.0.0.1:0",
                             "--db", os.path.join(tmp, "c.db"),
                             "--token-file", tf], tmp)
        t.ok(rc == 2 and "tokens:1:" in out,
             "a start with a bad line: exit 2 naming file:line", diag=out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


t.done()
