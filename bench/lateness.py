#!/usr/bin/env python3
"""bench/lateness.py — timer lateness of many tasks due at the same moment.

Submits LATENESS_TASKS (default 10,000) echo tasks, all with the same
run_at = now + LATENESS_LEAD (default 5) s, in batches of 500 through the JSON
array submission, waits until all of them have succeeded (listing
state=succeeded with cursor paging; bounded to 120 s), and reports
lateness = started_at - run_at over all tasks: p50, p99 and max in ms.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import (Daemon, BenchTimeout, comment, die, format_rfc3339_us, now_us,
                 parse_rfc3339_us, percentile, result)

N = int(os.environ.get("LATENESS_TASKS", "10000"))
BATCH = int(os.environ.get("LATENESS_BATCH", "500"))
LEAD = float(os.environ.get("LATENESS_LEAD", "5"))
WAIT = float(os.environ.get("LATENESS_WAIT", "120"))


def main():
    comment("lateness: %d echo tasks, one run_at = now + %g s, submitted in batches of %d "
            "(POST /v1/tasks JSON array, one keep-alive connection), default durability" % (N, LEAD, BATCH))
    comment("lateness: wait for all succeeded (GET /v1/tasks?state=succeeded&limit=1000, cursor paging), "
            "bounded to %g s; lateness = started_at - run_at" % WAIT)
    with Daemon() as d:
        c = d.client()
        run_at_us = now_us() + int(LEAD * 1e6)
        run_at = format_rfc3339_us(run_at_us)
        comment("lateness: corod %s pid %d port %d, run_at %s" % (d.bin, d.pid, d.port, run_at))
        spec = {"kind": "echo", "params": {"message": "due"}, "run_at": run_at}
        ids = set()
        t0 = time.monotonic()
        left = N
        while left > 0:
            n = min(BATCH, left)
            resp = c.json("POST", "/v1/tasks", [spec] * n, expect=(201,))
            got = resp.get("tasks", [])
            if len(got) != n:
                die("batch of %d answered with %d tasks" % (n, len(got)))
            ids.update(t["id"] for t in got)
            left -= n
        submit_s = time.monotonic() - t0
        comment("lateness: submission of %d tasks took %.3f s" % (N, submit_s))
        if now_us() > run_at_us:
            comment("WARNING: submission ended after run_at: lateness includes submission time")

        # Sleep until due (plus a little, so polling does not compete with the
        # burst being measured), then poll cheaply until nothing is scheduled
        # or running, then list the succeeded tasks once.
        wait_s = (run_at_us - now_us()) / 1e6 + 0.5
        if wait_s > 0:
            time.sleep(wait_s)
        deadline = time.monotonic() + WAIT
        while True:
            pending = c.json("GET", "/v1/tasks?state=scheduled,running&limit=1").get("tasks", [])
            if not pending or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        done = {}
        while True:
            try:
                tasks = c.list_all("state=succeeded", deadline=deadline + 30)
            except BenchTimeout:
                tasks = []
            done = {t["id"]: t for t in tasks if t["id"] in ids}
            if len(done) >= N:
                break
            if time.monotonic() > deadline:
                bad = c.json("GET", "/v1/tasks?state=failed,canceled&limit=5")
                comment("lateness: only %d of %d succeeded after %g s; failed/canceled sample: %s"
                        % (len(done), N, WAIT, [(t["id"], t["state"], t.get("error")) for t in bad.get("tasks", [])]))
                break
            time.sleep(1)

        if not done:
            die("no task succeeded")
        lat_ms = []
        for t in done.values():
            if not t.get("started_at") or not t.get("run_at"):
                continue
            lat_ms.append((parse_rfc3339_us(t["started_at"]) - parse_rfc3339_us(t["run_at"])) / 1000.0)
        early = sum(1 for x in lat_ms if x < 0)
        if early:
            comment("WARNING: %d tasks started before their run_at (earliest by %.3f ms): a scheduler bug"
                    % (early, -min(lat_ms)))
        comment("lateness: %d tasks measured, min %.3f ms" % (len(lat_ms), min(lat_ms)))
        result("lateness_p50", percentile(lat_ms, 50), "ms")
        result("lateness_p99", percentile(lat_ms, 99), "ms")
        result("lateness_max", max(lat_ms), "ms")
        if len(done) < N:
            result("lateness_unfinished", N - len(done), "count")
            sys.exit(1)


if __name__ == "__main__":
    main()
