#!/usr/bin/env python3
"""bench/keylimit.py — starting tasks under a key limit of 1.

KEYLIMIT_KEYS (10,000) concurrency keys each hold KEYLIMIT_PER_KEY (10)
tasks of one queue whose key_concurrency is 1: `sleep` tasks of
KEYLIMIT_SLEEP (0.01) s, all with one run_at = now + KEYLIMIT_LEAD (15) s,
submitted in batches of 1,000 (JSON arrays).  At run_at the first task of
every key starts; each next one starts when its key's task ends.

Reports tasks started per second (all tasks over the span from the first
start to the last) and the proof that no key ever ran two tasks at once,
two ways:
  feed       a thread follows GET /v1/events from before the submission to
             the end and replays it in seq order: per key, +1 at a task's
             "running" event, -1 at its final one; the most seen at once
             per key, over all keys (a task whose start and end were
             committed together shows no running event and counts 0)
  intervals  every task's [started_at, finished_at) from the store: the
             most overlapping per key (exact)
Both must be 1.
"""

import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import (Daemon, BenchTimeout, comment, die, format_rfc3339_us,
                 now_us, parse_rfc3339_us, result, table, verdict)

KEYS = int(os.environ.get("KEYLIMIT_KEYS", "10000"))
PER_KEY = int(os.environ.get("KEYLIMIT_PER_KEY", "10"))
SLEEP = float(os.environ.get("KEYLIMIT_SLEEP", "0.01"))
LEAD = float(os.environ.get("KEYLIMIT_LEAD", "15"))
WAIT = float(os.environ.get("KEYLIMIT_WAIT", "300"))
BATCH = 1000
FINAL = ("succeeded", "failed", "canceled")


class Feed(threading.Thread):
    """Follows /v1/events from since until stop is set (and it is idle)."""

    def __init__(self, port, since):
        super().__init__(daemon=True)
        from lib import Client
        self.c = Client(port, timeout=90)
        self.since = since
        self.events = []
        self.stop = threading.Event()
        self.error = None

    def run(self):
        try:
            while True:
                b = self.c.json("GET", "/v1/events?since=%d&wait=1&limit=10000"
                                % self.since)
                self.events.extend(b["events"])
                self.since = b["next"]
                if not b["events"] and self.stop.is_set():
                    return
        except Exception as e:      # reported by main
            self.error = e


def feed_max(events, key_of):
    """The most tasks of one key running at once, replaying the feed."""
    running = {}
    live = set()
    best = 0
    nrun = 0
    for e in events:
        tid = e.get("task")
        if tid not in key_of:
            continue
        k = key_of[tid]
        if e.get("state") == "running" and tid not in live:
            live.add(tid)
            nrun += 1
            running[k] = running.get(k, 0) + 1
            best = max(best, running[k])
        elif e.get("state") in FINAL and tid in live:
            live.discard(tid)
            running[k] -= 1
    return best, nrun


def interval_max(tasks, key_of):
    by_key = {}
    for t in tasks:
        by_key.setdefault(key_of[t["id"]], []).append(
            (parse_rfc3339_us(t["started_at"]),
             parse_rfc3339_us(t["finished_at"])))
    best = 0
    for spans in by_key.values():
        ev = sorted([(s, 1) for s, _ in spans] + [(f, -1) for _, f in spans])
        n = 0
        for _, step in ev:
            n += step
            best = max(best, n)
    return best


def main():
    n = KEYS * PER_KEY
    comment("keylimit: %d keys x %d sleep(%g s) tasks, queue key_concurrency 1, "
            "one run_at = now + %g s, batches of %d" % (KEYS, PER_KEY, SLEEP,
                                                       LEAD, BATCH))
    with Daemon(["--events-kept", str(8 * n), "--max-batch", str(BATCH)]) as d:
        c = d.client()
        c.json("PATCH", "/v1/queues/keys", {"key_concurrency": 1})
        since = c.json("GET", "/v1/tasks?limit=1")["seq"]
        feed = Feed(d.port, since)
        feed.start()
        run_at_us = now_us() + int(LEAD * 1e6)
        key_of = {}
        specs = []
        t0 = time.monotonic()
        for i in range(n):
            specs.append({"kind": "sleep", "queue": "keys",
                          "params": {"seconds": SLEEP},
                          "concurrency_key": "k%d" % (i % KEYS),
                          "run_at": format_rfc3339_us(run_at_us)})
            if len(specs) == BATCH or i == n - 1:
                got = c.json("POST", "/v1/tasks", specs, expect=(201,))["tasks"]
                base = i + 1 - len(specs)
                for j, t in enumerate(got):
                    key_of[t["id"]] = (base + j) % KEYS
                specs = []
        comment("keylimit: submitted %d tasks in %.2f s" % (n, time.monotonic() - t0))
        if now_us() > run_at_us:
            comment("WARNING: the submission ended after run_at")
        time.sleep(max(0, (run_at_us - now_us()) / 1e6) + 0.5)
        deadline = time.monotonic() + WAIT
        while c.json("GET", "/v1/tasks?state=scheduled,running&limit=1")["tasks"]:
            if time.monotonic() > deadline:
                raise BenchTimeout("tasks still unfinished after %g s" % WAIT)
            time.sleep(0.5)
        cpu = d.cpu_seconds()
        feed.stop.set()
        feed.join(120)
        if feed.error is not None:
            die("feed: %s" % feed.error)
        tasks = c.list_all("state=succeeded", deadline=time.monotonic() + 300)
        tasks = [t for t in tasks if t["id"] in key_of]
        if len(tasks) != n:
            die("%d of %d tasks succeeded" % (len(tasks), n))
        starts = sorted(parse_rfc3339_us(t["started_at"]) for t in tasks)
        span = (starts[-1] - starts[0]) / 1e6
        rate = (n - 1) / span if span > 0 else float("inf")
        fmax, nrun = feed_max(sorted(feed.events, key=lambda e: e["seq"]),
                              key_of)
        imax = interval_max(tasks, key_of)
        late = (starts[0] - run_at_us) / 1e3
        result("keylimit_started_rate", rate, "tasks/s")
        result("keylimit_span", span, "s")
        result("keylimit_first_start_late", late, "ms")
        result("keylimit_feed_events", len(feed.events), "count")
        result("keylimit_feed_running_seen", nrun, "count")
        result("keylimit_feed_max_per_key", fmax, "count")
        result("keylimit_interval_max_per_key", imax, "count")
        result("keylimit_cpu", cpu, "s")
        table([
            ("tasks started/s (%d keys x %d)" % (KEYS, PER_KEY),
             "%.0f" % rate, "(reported)", "-"),
            ("most running per key, feed (%d running events)" % nrun,
             str(fmax), "1", verdict(fmax == 1)),
            ("most running per key, started/finished", str(imax), "1",
             verdict(imax == 1)),
        ])
        if fmax != 1 or imax != 1:
            sys.exit(1)


if __name__ == "__main__":
    try:
        main()
    except BenchTimeout as e:
        die(str(e))
