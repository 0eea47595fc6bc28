#!/usr/bin/env python3
"""workers.py -- external workers against the real daemon: the kind
"external", claims held as long-polls, heartbeat, complete, fail, release,
leases fenced by their token, expiry, cancel through the heartbeat and
cancel-grace, leases that survive kill -9 and restarts, GET /v1/workers,
and bad input.

Workers here are threads, each on a connection of its own: a claim holds
its connection until it is served or its wait is up.  Nothing is timed
but in rough bounds (a wake-up well within its wait); the rates and
latencies are bench/workers.py's.
"""

import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from tap import TAP, scaled  # noqa: E402
from corod import Corod, echo, is_problem, parse_time  # noqa: E402

t = TAP("workers")
d = Corod(t, args=["--cancel-grace", "1.5"])


def problem(r, status, desc, field=None):
    good, why = is_problem(r, status, field)
    return t.ok(good, desc, diag=why + "\n" + r.describe())


def ext(queue, params=None, **kw):
    spec = {"kind": "external", "queue": queue, "params": params or {}}
    spec.update(kw)
    return spec


def claim(queue, worker="w", conn=None, **body):
    body.setdefault("worker", worker)
    wait = body.get("wait", 0)
    return d.request("POST", "/v1/queues/%s/claim" % queue, body,
                     conn=conn, timeout=wait + 30)


def claim_one(queue, **body):
    r = claim(queue, **body)
    if r.status != 200 or len(r.body.get("claims", [])) != 1:
        raise AssertionError("claim on %s: %s" % (queue, r.describe()))
    return r.body["claims"][0]


def call(tid, what, token, **body):
    body["token"] = token
    return d.request("POST", "/v1/tasks/%d/%s" % (tid, what), body)


def log_text(tid):
    return "\n".join(text for _, text in d.log(tid))


@t.test(timeout=30)
def end_to_end():
    task = d.submit(ext("thumbs", {"image": "a.png"}, max_attempts=3))
    t.is_(task["state"], "scheduled", "an external task waits")
    t.is_(task.get("waiting_for"), "worker", "... waiting_for: worker")
    c = claim_one("thumbs", worker="box-2/4711", wait=5)
    t.is_(c["task"]["id"], task["id"], "the claim hands it out")
    t.is_(c["task"]["params"], {"image": "a.png"}, "... with its params")
    t.is_(c["attempt"], 1, "... attempt 1")
    t.is_(c["checkpoint"], None, "... no checkpoint yet")
    t.like(c["token"], r"^[A-Za-z0-9_-]{22}$", "... a 128-bit token")
    got = d.get(task["id"])
    t.is_(got["state"], "running", "claimed: running")
    t.is_(got.get("worker"), "box-2/4711", "... the worker named")
    t.ok("token" not in json.dumps(got), "the token is never shown")
    r = call(task["id"], "heartbeat", c["token"],
             progress={"current": 3, "total": 10, "unit": "items"},
             log=["resizing", "still resizing"])
    t.is_(r.status, 200, "heartbeat: 200")
    t.is_(r.body.get("cancel_requested"), False, "... no cancel")
    t.ok(parse_time(r.body["expires_at"]) >
         parse_time(c["expires_at"]) - 0.001, "... the lease extended")
    t.is_(d.get(task["id"])["progress"],
          {"current": 3, "total": 10, "unit": "items"}, "progress shown")
    r = call(task["id"], "complete", c["token"],
             result={"thumb": "a-128.png"})
    t.is_(r.status, 200, "complete: 200")
    t.is_(r.body.get("state"), "succeeded", "... the task, succeeded")
    t.is_(r.body.get("result"), {"thumb": "a-128.png"}, "... its result")
    log = log_text(task["id"])
    t.like(log, r"claimed by worker box-2/4711", "log: the claim")
    t.like(log, r"resizing\n.*still resizing", "log: the worker's lines")
    t.like(log, r"completed by worker box-2/4711", "log: the completion")
    r = call(task["id"], "complete", c["token"],
             result={"thumb": "a-128.png"})
    t.is_(r.status, 200, "the same complete again: 200 (idempotent)")
    t.is_(r.body.get("version"), d.get(task["id"])["version"],
          "... nothing changed")
    r = call(task["id"], "fail", c["token"], error={"code": "oops"})
    problem(r, 409, "a fail after the complete: 409")
    t.is_(r.body.get("type", "").rsplit(":", 1)[-1], "lease-lost",
          "... lease-lost")
    t.is_(d.get(task["id"])["state"], "succeeded", "... the outcome stands")


@t.test(timeout=30)
def empty_and_new_queues():
    r = claim("nobody-here", wait=0)
    t.is_(r.status, 200, "a claim on a queue nobody used: 200")
    t.is_(r.body, {"claims": []}, "... no claims")
    t0 = time.monotonic()
    r = claim("nobody-here", wait=1)
    took = time.monotonic() - t0
    t.is_(r.body, {"claims": []}, "wait 1: no claims")
    t.ok(took >= 0.9, "... after about its wait (%.2f s)" % took)
    r = claim("thumbs", wait=0)
    t.is_(r.body, {"claims": []}, "the other queue's tasks are not given")


@t.test(timeout=30)
def wake_up():
    box = {}

    def worker():
        box["r"] = claim("wake", conn=d.connection(), wait=20)
        box["at"] = time.monotonic()

    th = threading.Thread(target=worker)
    th.start()
    time.sleep(0.3)
    sent = time.monotonic()
    task = d.submit(ext("wake"))
    th.join(scaled(25))
    r = box.get("r")
    t.ok(r is not None and r.status == 200 and
         len(r.body["claims"]) == 1 and
         r.body["claims"][0]["task"]["id"] == task["id"],
         "a waiting claim gets the task submitted",
         diag=r.describe() if r else "no answer")
    took = box.get("at", 1e9) - sent
    t.ok(took < scaled(2), "... long before its wait is up (%.3f s)" % took)
    if r is not None and r.status == 200 and r.body["claims"]:
        call(task["id"], "complete", r.body["claims"][0]["token"])


@t.test(timeout=60)
def fair_over_twenty():
    n = 20
    got = [None] * n
    ready = threading.Barrier(n + 1)

    def worker(i):
        conn = d.connection()
        ready.wait()
        got[i] = claim("fair", worker="fair-%d" % i, conn=conn, wait=20)

    ths = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for th in ths:
        th.start()
    ready.wait()
    time.sleep(0.5)
    tasks = d.submit([ext("fair", {"n": i}) for i in range(n)])
    for th in ths:
        th.join(scaled(30))
    counts = [len(r.body["claims"]) if r is not None and r.status == 200
              else -1 for r in got]
    t.is_(counts, [1] * n, "20 waiting workers get one task each")
    ids = sorted(c["task"]["id"] for r in got if r is not None
                 and r.status == 200 for c in r.body["claims"])
    t.is_(ids, sorted(x["id"] for x in tasks), "... every task, once")
    for r in got:
        for c in (r.body["claims"] if r is not None and r.status == 200
                  else []):
            call(c["task"]["id"], "complete", c["token"])


@t.test(timeout=30)
def priority_then_age_and_batch():
    low = d.submit(ext("prio", {"p": "low"}))
    hi1 = d.submit(ext("prio", {"p": "hi1"}, priority=5))
    hi2 = d.submit(ext("prio", {"p": "hi2"}, priority=5))
    r = claim("prio", max=3)
    order = [c["task"]["id"] for c in r.body["claims"]]
    t.is_(order, [hi1["id"], hi2["id"], low["id"]],
          "max 3: priority first, then age")
    for c in r.body["claims"]:
        call(c["task"]["id"], "complete", c["token"])
    many = d.submit([ext("batch", {"i": i}) for i in range(150)])
    r1 = claim("batch", max=100)
    r2 = claim("batch", max=100)
    t.is_(len(r1.body["claims"]), 100, "max 100: a hundred")
    t.is_(len(r2.body["claims"]), 50, "... then the fifty left")
    got = [c["task"]["id"] for c in r1.body["claims"] + r2.body["claims"]]
    t.is_(got, [x["id"] for x in many], "... in the order they came")
    tokens = set(c["token"] for c in r1.body["claims"] + r2.body["claims"])
    t.is_(len(tokens), 150, "... each its own token")
    for c in r1.body["claims"] + r2.body["claims"]:
        call(c["task"]["id"], "complete", c["token"])


@t.test(timeout=30)
def worker_leaves_mid_wait():
    s = socket.create_connection(("127.0.0.1", d.port))
    body = json.dumps({"worker": "leaver", "wait": 30}).encode()
    hdr = ("POST /v1/queues/leave/claim HTTP/1.1\r\nHost: 127.0.0.1\r\n"
           "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
           % len(body)).encode()
    s.sendall(hdr + body)
    time.sleep(0.3)
    s.close()
    time.sleep(0.3)
    task = d.submit(ext("leave"))
    time.sleep(0.3)
    got = d.get(task["id"])
    t.is_(got["state"], "scheduled", "a worker that left leases nothing")
    t.is_(got["attempt"], 0, "... no attempt counted")
    c = claim_one("leave", worker="stayer")
    t.is_((c["task"]["id"], c["attempt"]), (task["id"], 1),
          "the next worker gets it, attempt 1")
    call(task["id"], "complete", c["token"])


@t.test(timeout=40)
def expiry_retry_and_fencing():
    task = d.submit(ext("exp", max_attempts=2))
    c1 = claim_one("exp", worker="slow", lease=1)
    d.wait_for(lambda: d.get(task["id"])["state"] == "scheduled",
               scaled(10), desc="the lease expires")
    got = d.get(task["id"])
    t.is_(got["attempt"], 1, "expired: attempt 1 counted, retried")
    t.like(log_text(task["id"]), r"lease_expired", "log: lease_expired")
    r = call(task["id"], "complete", c1["token"], result={"late": True})
    problem(r, 409, "complete after the expiry: 409")
    t.is_(r.body.get("type", "").rsplit(":", 1)[-1], "lease-lost",
          "... lease-lost")
    t.is_(d.get(task["id"])["result"], None, "... the result not applied")
    t.like(log_text(task["id"]), r"late complete discarded.*\"late\":true",
           "... but logged")
    d.wait_for(lambda: d.get(task["id"])["waiting_for"] == "worker",
               scaled(10), desc="the retry is due")
    c2 = claim_one("exp", worker="slow2", lease=1)
    t.is_(c2["attempt"], 2, "the retry: attempt 2")
    r = call(task["id"], "heartbeat", c1["token"])
    problem(r, 409, "the first token cannot heartbeat the second lease")
    d.wait_for(lambda: d.get(task["id"])["state"] == "failed", scaled(10),
               desc="attempt 2 expires too")
    got = d.get(task["id"])
    t.is_(got["error"]["code"], "lease_expired", "out of attempts: failed, "
          "lease_expired")


@t.test(timeout=30)
def complete_many():
    tasks = d.submit([ext("many", {"i": i}) for i in range(4)])
    other = d.submit(ext("many-other"))
    r = claim("many", max=4)
    cl = r.body["claims"]
    t.is_(len(cl), 4, "four claimed")
    oc = claim_one("many-other")
    items = [{"id": cl[0]["task"]["id"], "token": cl[0]["token"],
              "result": {"n": 0}},
             {"id": cl[1]["task"]["id"], "token": cl[1]["token"]},
             {"id": cl[2]["task"]["id"], "token": "C" * 22,
              "result": "late"},
             {"id": 999999, "token": "D" * 22},
             {"id": other["id"], "token": oc["token"]}]
    r = d.request("POST", "/v1/queues/many/complete", {"tasks": items})
    t.is_(r.status, 200, "POST /v1/queues/many/complete: 200")
    got = [(x["id"], x["status"]) for x in r.body.get("tasks", [])]
    t.is_(got, [(cl[0]["task"]["id"], 200), (cl[1]["task"]["id"], 200),
                (cl[2]["task"]["id"], 409), (999999, 404),
                (other["id"], 409)],
          "each item answered in order: done, done, lease-lost, missing, "
          "another queue's")
    t.is_([x.get("type", "").rsplit(":", 1)[-1]
           for x in r.body["tasks"][2:]],
          ["lease-lost", "not-found", "other-queue"], "... with its type")
    t.is_(r.body["tasks"][0].get("state"), "succeeded", "... the state")
    t.is_(d.get(cl[0]["task"]["id"])["result"], {"n": 0},
          "the result stored")
    t.is_(d.get(cl[2]["task"]["id"])["state"], "running",
          "the wrong token's task is untouched")
    t.is_(d.get(other["id"])["state"], "running",
          "... and the other queue's")
    r2 = d.request("POST", "/v1/queues/many/complete", {"tasks": items[:2]})
    t.is_([x["status"] for x in r2.body.get("tasks", [])], [200, 200],
          "the same completions again: 200 (idempotent)")
    for c in cl[2:]:
        call(c["task"]["id"], "complete", c["token"])
    call(other["id"], "complete", oc["token"])
    t.is_(len(tasks), 4, "(four submitted)")
    for body, field in (({"tasks": []}, "/tasks"),
                        ({"tasks": [{"id": 1}] * 1001}, "/tasks"),
                        ({}, "/tasks"),
                        ({"tasks": [{"token": "x"}]}, "/tasks/0/id"),
                        ({"tasks": [{"id": 1}]}, "/tasks/0/token"),
                        ({"tasks": [{"id": 1, "token": "x"},
                                    {"id": 1, "token": "y"}]}, "/tasks/1/id"),
                        ({"tasks": [{"id": 1, "token": "x", "why": 1}]},
                         "/tasks/0/why"),
                        ({"tasks": [5]}, "/tasks/0")):
        r = d.request("POST", "/v1/queues/many/complete", body)
        problem(r, 400, "complete-many bad input: 400 naming %s" % field,
                field)


@t.test(timeout=30)
def in_a_sequence():
    seq = d.submit({"kind": "sequence", "params": {"tasks": [
        ext("seq", {"step": 1}), ext("seq", {"step": 2}),
        echo("after the workers")]}})
    c1 = claim_one("seq", wait=5)
    t.is_(c1["task"]["params"], {"step": 1}, "a sequence's first external "
          "child is claimable")
    t.is_(c1["task"]["parent"], seq["id"], "... as its child")
    r = claim("seq")
    t.is_(r.body, {"claims": []}, "the second waits for the first")
    call(c1["task"]["id"], "complete", c1["token"], result=1)
    c2 = claim_one("seq", wait=5)
    t.is_(c2["task"]["params"], {"step": 2}, "then the second")
    call(c2["task"]["id"], "complete", c2["token"], result=2)
    done = d.wait_state(seq["id"], ("succeeded", "failed", "canceled"), 10)
    t.is_(done["state"], "succeeded", "the sequence succeeds")
    g = d.submit({"kind": "gather", "params": {"tasks": [
        ext("gat"), ext("gat")]}})
    c = claim_one("gat", wait=5)
    d.cancel(g["id"])
    r = call(c["task"]["id"], "heartbeat", c["token"])
    t.is_(r.body.get("cancel_requested"), True,
          "a canceled gather's claimed child hears it")
    call(c["task"]["id"], "fail", c["token"],
         error={"code": "canceled", "message": "parent canceled"})
    done = d.wait_state(g["id"], ("succeeded", "failed", "canceled"), 10)
    t.is_(done["state"], "canceled", "the gather ends canceled")
    t.is_(claim("gat").body, {"claims": []},
          "its unclaimed child is no longer claimable")


@t.test(timeout=30)
def heartbeat_extends():
    task = d.submit(ext("hb"))
    c = claim_one("hb", lease=1)
    last = parse_time(c["expires_at"])
    ok = True
    for _ in range(8):
        time.sleep(0.4)
        r = call(task["id"], "heartbeat", c["token"])
        ok = ok and r.status == 200 and parse_time(r.body["expires_at"]) \
            >= last
        if r.status == 200:
            last = parse_time(r.body["expires_at"])
    t.ok(ok, "heartbeats every 0.4 s keep a 1 s lease for 3 s")
    t.is_(d.get(task["id"])["state"], "running", "... still running")
    r = call(task["id"], "heartbeat", c["token"], lease=5)
    t.ok(parse_time(r.body["expires_at"]) - time.time() > 3,
         "a heartbeat may set a longer lease")
    r = call(task["id"], "complete", c["token"])
    t.is_(r.body.get("state"), "succeeded", "then complete")


@t.test(timeout=40)
def checkpoint_reaches_next_attempt():
    task = d.submit(ext("cp", max_attempts=3))
    c = claim_one("cp")
    r = call(task["id"], "heartbeat", c["token"], checkpoint={"page": 7})
    t.is_(r.status, 200, "heartbeat with a checkpoint")
    r = call(task["id"], "fail", c["token"],
             error={"code": "flaky", "message": "try again"},
             retry_after=0.2)
    t.is_(r.status, 200, "fail (retry): 200")
    t.is_(r.body.get("state"), "scheduled", "... waiting again")
    d.wait_for(lambda: d.get(task["id"])["waiting_for"] == "worker",
               scaled(10), desc="the retry is due")
    c2 = claim_one("cp")
    t.is_(c2["attempt"], 2, "attempt 2")
    t.is_(c2["checkpoint"], {"page": 7}, "... gets attempt 1's checkpoint")
    r = call(task["id"], "fail", c2["token"],
             error={"code": "bad_input", "message": "no such image",
                    "image": "a.png"}, retry=False)
    t.is_(r.body.get("state"), "failed", "fail without retry: failed")
    t.is_(r.body.get("error"), {"code": "bad_input",
                                "message": "no such image",
                                "image": "a.png"},
          "... with the worker's error")
    r = call(task["id"], "fail", c2["token"],
             error={"code": "bad_input", "message": "no such image"},
             retry=False)
    t.is_(r.status, 200, "the same fail again: 200")


@t.test(timeout=30)
def cancel_through_heartbeat():
    task = d.submit(ext("cx"))
    c = claim_one("cx")
    r = d.cancel(task["id"])
    t.is_(r.status, 202, "cancel of a claimed task: 202")
    r = call(task["id"], "heartbeat", c["token"])
    t.is_(r.body.get("cancel_requested"), True,
          "the next heartbeat says cancel_requested")
    r = call(task["id"], "fail", c["token"],
             error={"code": "canceled", "message": "stopped on request"})
    t.is_(r.body.get("state"), "canceled", "the worker stops: canceled")
    t.like(log_text(task["id"]), r"stopped on request", "log: its reason")


@t.test(timeout=30)
def cancel_grace_revokes():
    task = d.submit(ext("cg"))
    c = claim_one("cg", lease=30)
    d.cancel(task["id"])
    d.wait_for(lambda: d.get(task["id"])["state"] == "canceled",
               scaled(10), desc="revoked after cancel-grace (1.5 s)")
    t.like(log_text(task["id"]), r"revoked", "log: the lease revoked")
    r = call(task["id"], "complete", c["token"], result=1)
    problem(r, 409, "a complete after the revoke: 409")
    t.is_(d.get(task["id"])["state"], "canceled", "... still canceled")


@t.test(timeout=30)
def complete_wins_the_race():
    task = d.submit(ext("race"))
    c = claim_one("race")
    d.cancel(task["id"])
    r = call(task["id"], "complete", c["token"], result="done")
    t.is_(r.status, 200, "a complete during the grace: 200")
    t.is_(r.body.get("state"), "succeeded", "... its outcome is kept")


@t.test(timeout=30)
def release():
    task = d.submit(ext("rel", max_attempts=1))
    c = claim_one("rel")
    r = call(task["id"], "release", c["token"])
    t.is_(r.status, 200, "release: 200")
    t.is_((r.body.get("state"), r.body.get("attempt")), ("scheduled", 0),
          "... waiting again, the attempt not counted")
    r = call(task["id"], "release", c["token"])
    t.is_(r.status, 200, "the same release again: 200")
    c2 = claim_one("rel")
    t.is_(c2["attempt"], 1, "the next claim: attempt 1 (of max 1)")
    r = call(task["id"], "release", c2["token"], delay=30)
    t.is_(r.body.get("waiting_for"), "run_at", "release with a delay: "
          "waiting for its time")
    r = claim("rel")
    t.is_(r.body, {"claims": []}, "... not claimable before")
    d.cancel(task["id"])


@t.test(timeout=60)
def leases_survive_kill9_and_restart():
    task = d.submit(ext("dur"))
    c = claim_one("dur", lease=30)
    call(task["id"], "heartbeat", c["token"], checkpoint={"at": 1})
    d.kill9()
    d.restart()
    got = d.get(task["id"])
    t.is_(got["state"], "running", "after kill -9: still running")
    t.is_(got["attempt"], 1, "... the same attempt")
    r = call(task["id"], "heartbeat", c["token"])
    t.is_(r.status, 200, "the worker's heartbeat works after the restart")
    d.restart()
    r = call(task["id"], "complete", c["token"], result="ok")
    t.is_(r.status, 200, "... and its complete, after a graceful restart")
    t.is_(r.body.get("state"), "succeeded", "... succeeded")
    t.like(log_text(task["id"]), r"lease of worker w goes on",
           "log: the lease went on")
    # one that expired while corod was down ends as it would have
    task = d.submit(ext("dur", max_attempts=1))
    c = claim_one("dur", lease=1)
    d.stop()
    time.sleep(1.5)
    d.start()
    d.wait_for(lambda: d.get(task["id"])["state"] == "failed", scaled(10),
               desc="the lease that ran out while down expires")
    t.is_(d.get(task["id"])["error"]["code"], "lease_expired",
          "... lease_expired")


@t.test(timeout=30)
def timeout_revokes():
    task = d.submit(ext("to", timeout=1, max_attempts=1))
    claim_one("to", lease=30)
    d.wait_for(lambda: d.get(task["id"])["state"] == "failed", scaled(10),
               desc="the attempt's timeout")
    t.is_(d.get(task["id"])["error"]["code"], "timeout", "timeout: failed")


@t.test(timeout=30)
def workers_listed():
    claim("seen-a", worker="box-9/1")
    claim("seen-b", worker="box-9/1")
    r = d.request("GET", "/v1/workers")
    t.is_(r.status, 200, "GET /v1/workers: 200")
    names = {w["name"]: w for w in r.body["workers"]}
    t.is_(names.get("box-9/1", {}).get("queues"), ["seen-a", "seen-b"],
          "a worker seen, with the queues it claimed from")
    task = d.submit(ext("list"))
    c = claim_one("list", worker="lister")
    w = {x["name"]: x for x in d.request("GET", "/v1/workers").body[
        "workers"]}.get("lister", {})
    t.is_(w.get("claims"), 1, "... the leases it holds")
    call(task["id"], "complete", c["token"])
    w = {x["name"]: x for x in d.request("GET", "/v1/workers").body[
        "workers"]}.get("lister", {})
    t.is_(w.get("claims"), 0, "... none once complete")


@t.test(timeout=30)
def metrics():
    def metric(text, name):
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    before = d.request("GET", "/metrics").body
    task = d.submit(ext("met"))
    c = claim_one("met")
    call(task["id"], "complete", c["token"])
    call(task["id"], "fail", c["token"], error={"code": "late"})
    task = d.submit(ext("met", max_attempts=1))
    claim_one("met", lease=1)
    d.wait_for(lambda: d.get(task["id"])["state"] == "failed", scaled(10),
               desc="a lease expires")
    text = d.request("GET", "/metrics").body
    t.is_(metric(text, "corod_worker_claims_total") -
          metric(before, "corod_worker_claims_total"), 2,
          "corod_worker_claims_total counts the claims")
    t.is_(metric(text, "corod_worker_late_calls_total") -
          metric(before, "corod_worker_late_calls_total"), 1,
          "corod_worker_late_calls_total counts the late fail")
    t.is_(metric(text, "corod_worker_leases_expired_total") -
          metric(before, "corod_worker_leases_expired_total"), 1,
          "corod_worker_leases_expired_total counts the expiry")
    t.ok(metric(text, "corod_worker_claims_waiting") == 0 and
         metric(text, "corod_worker_tasks_ready") is not None,
         "the waiting claims and ready tasks are gauges")
    t.is_(metric(text, "corod_worker_claim_wait_seconds_count") -
          metric(before, "corod_worker_claim_wait_seconds_count"), 2,
          "the claim wait histogram counts the claims")


@t.test(timeout=60)
def scoped_tokens():
    full, mine = "full-token-0d9c8b7a6f5e4d3c", "worker-token-1a2b3c4d5e6f7a8b"
    tmp = tempfile.mkdtemp(prefix="corod-wscope-")
    try:
        tf = os.path.join(tmp, "tokens")
        with open(tf, "w") as f:
            f.write("%s\n%s worker:q1\n" % (full, mine))
        os.chmod(tf, 0o600)
        with Corod(t, args=["--token-file", tf], name="wscope") as s:
            s.token = full
            a = s.submit(ext("q1"))
            b = s.submit(ext("q2"))
            s.token = mine
            r = s.request("POST", "/v1/queues/q2/claim", {"worker": "x"})
            problem(r, 403, "a worker token of q1 may not claim from q2")
            r = s.request("POST", "/v1/queues/q1/claim", {"worker": "x"})
            t.is_([c["task"]["id"] for c in r.body.get("claims", [])],
                  [a["id"]], "... it claims from q1")
            tok = r.body["claims"][0]["token"]
            s.token = full
            r = s.request("POST", "/v1/queues/q2/claim", {"worker": "y"})
            tok2 = r.body["claims"][0]["token"]
            s.token = mine
            r = s.request("POST", "/v1/tasks/%d/heartbeat" % b["id"],
                          {"token": tok2})
            problem(r, 403, "... may not heartbeat a q2 task, even with its "
                    "lease's token")
            r = s.request("POST", "/v1/tasks/%d/complete" % b["id"],
                          {"token": tok2})
            problem(r, 403, "... nor complete it")
            r = s.request("GET", "/v1/tasks/%d" % b["id"])
            problem(r, 403, "... nor read it")
            for path in ("/v1/workers", "/v1/tasks"):
                problem(s.request("GET", path), 403,
                        "... nor GET %s" % path)
            r = s.request("POST", "/v1/tasks/%d/heartbeat" % a["id"],
                          {"token": tok})
            t.is_(r.status, 200, "it heartbeats its q1 task")
            r = s.request("POST", "/v1/tasks/%d/complete" % a["id"],
                          {"token": tok})
            t.is_(r.body.get("state"), "succeeded", "... and completes it")
            s.token = full
            t.is_(s.get(b["id"])["state"], "running",
                  "the q2 task is untouched")
            t.is_(s.request("GET", "/v1/workers").status, 200,
                  "the full token lists the workers")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@t.test(timeout=30)
def bad_input():
    before = d.list_all()
    cases = [
        ("/v1/queues/Bad!/claim", {"worker": "x"}, "/path/queue",
         "a bad queue name"),
        ("/v1/queues/q/claim", {}, "/worker", "no worker"),
        ("/v1/queues/q/claim", {"worker": ""}, "/worker", "an empty worker"),
        ("/v1/queues/q/claim", {"worker": 5}, "/worker", "a number worker"),
        ("/v1/queues/q/claim", {"worker": "x", "wait": 61}, "/wait",
         "wait over 60"),
        ("/v1/queues/q/claim", {"worker": "x", "wait": -1}, "/wait",
         "a negative wait"),
        ("/v1/queues/q/claim", {"worker": "x", "lease": -5}, "/lease",
         "a negative lease"),
        ("/v1/queues/q/claim", {"worker": "x", "lease": 1e12}, "/lease",
         "a huge lease"),
        ("/v1/queues/q/claim", {"worker": "x", "lease": "30"}, "/lease",
         "a string lease"),
        ("/v1/queues/q/claim", {"worker": "x", "max": 0}, "/max", "max 0"),
        ("/v1/queues/q/claim", {"worker": "x", "max": 101}, "/max",
         "max 101"),
        ("/v1/queues/q/claim", {"worker": "x", "max": 1.5}, "/max",
         "a fractional max"),
        ("/v1/queues/q/claim", {"worker": "x", "color": 1}, "/color",
         "an unknown field"),
        ("/v1/queues/q/claim", [1], None, "an array body"),
        ("/v1/tasks/1/heartbeat", {}, "/token", "no token"),
        ("/v1/tasks/1/heartbeat", {"token": 7}, "/token", "a number token"),
        ("/v1/tasks/1/heartbeat", {"token": "x", "lease": 0}, "/lease",
         "a zero lease"),
        ("/v1/tasks/1/heartbeat", {"token": "x", "log": "line"}, "/log",
         "log not an array"),
        ("/v1/tasks/1/heartbeat", {"token": "x", "log": ["a", 2]}, "/log/1",
         "a log line not a string"),
        ("/v1/tasks/1/heartbeat", {"token": "x", "progress": 3},
         "/progress", "progress not an object"),
        ("/v1/tasks/1/fail", {"token": "x"}, "/error", "fail without error"),
        ("/v1/tasks/1/fail", {"token": "x", "error": {"code": "Bad Code"}},
         "/error/code", "a bad error code"),
        ("/v1/tasks/1/fail", {"token": "x", "error": {"code": "e"},
                              "retry": "yes"}, "/retry", "retry a string"),
        ("/v1/tasks/1/fail", {"token": "x", "error": {"code": "e"},
                              "retry_after": -1}, "/retry_after",
         "a negative retry_after"),
        ("/v1/tasks/1/release", {"token": "x", "delay": -1}, "/delay",
         "a negative delay"),
        ("/v1/tasks/1/complete", {"token": "x", "extra": 1}, "/extra",
         "an unknown field in complete"),
    ]
    for path, body, field, why in cases:
        r = d.request("POST", path, body)
        problem(r, 400, "%s: 400 naming %s" % (why, field or "the body"),
                field)
    r = d.request("POST", "/v1/queues/q/claim", "{not json",
                  headers={"Content-Type": "application/json"})
    problem(r, 400, "malformed JSON: 400")
    r = d.request("POST", "/v1/tasks", ext("q", params=[1, 2]))
    problem(r, 400, "params not an object: 400 naming /params", "/params")
    r = call(999999, "complete", "A" * 22)
    problem(r, 404, "a task that does not exist: 404")
    e = d.submit(echo("not external", 3600))
    r = call(e["id"], "complete", "A" * 22)
    problem(r, 409, "complete of an echo task: 409")
    task = d.submit(ext("badtok"))
    c = claim_one("badtok")
    r = call(task["id"], "complete", "B" * 22, result=1)
    problem(r, 409, "a wrong token: 409 lease-lost")
    r = call(task["id"], "complete", "short", result=1)
    problem(r, 409, "a token of the wrong length: 409")
    t.is_(d.get(task["id"])["state"], "running", "... the lease holds")
    call(task["id"], "complete", c["token"])
    d.cancel(e["id"])
    after = d.list_all()
    t.is_(len(after), len(before) + 2, "bad input stored nothing")


t.done()
d.close()
