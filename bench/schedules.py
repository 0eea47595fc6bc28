#!/usr/bin/env python3
"""bench/schedules.py — 10,000 schedules firing every minute.

Creates SCHED_N (10,000) schedules `* * * * *` (UTC), each firing an echo
task, through POST /v1/schedules on one keep-alive connection, then lets
SCHED_MINUTES (2) whole minutes go by (from the first minute boundary
after the creation) and reports:
  lateness   started_at - scheduled_for of every task the schedules fired
             in the measured minutes: p50, p99, max (goal: p99 <= 10 ms)
  firings    how many fired per minute (goal: SCHED_N each, none twice)
  cpu        the daemon's CPU seconds per measured minute (utime + stime)
  rss        the daemon's resident memory growth per schedule, from before
             the creation to just after it, before any firing (goal:
             <= 1 KiB; schedules not due soon stay on disk); and after the
             measured minutes (the tasks the firings made are in it: malloc
             keeps their pages)
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import (Daemon, comment, die, parse_rfc3339_us, percentile, result,
                 table, verdict)

N = int(os.environ.get("SCHED_N", "10000"))
MINUTES = int(os.environ.get("SCHED_MINUTES", "2"))


def sleep_until(epoch):
    while True:
        left = epoch - time.time()
        if left <= 0:
            return
        time.sleep(min(left, 1.0))


def main():
    comment("schedules: %d schedules `* * * * *` UTC, each firing an echo; "
            "%d measured minutes" % (N, MINUTES))
    # the window of due tasks and the feed do not matter here; the stats
    # thread's counts would add a constant CPU cost to both sides
    with Daemon() as d:
        c = d.client()
        time.sleep(1.0)
        # create them within one minute, before its firing
        if time.time() % 60 > 20:
            sleep_until((int(time.time()) // 60 + 1) * 60 + 1)
        minute = int(time.time()) // 60
        rss0 = d.rss_bytes()
        t0 = time.monotonic()
        for i in range(N):
            c.json("POST", "/v1/schedules", {
                "name": "s%d" % i, "cron": "* * * * *",
                "task": {"kind": "echo", "params": {"message": "tick"}}},
                expect=(201,))
        comment("schedules: created %d in %.1f s" % (N, time.monotonic() - t0))
        rss1 = d.rss_bytes()
        if int(time.time()) // 60 != minute:
            comment("WARNING: the creation crossed a minute: the RSS figure "
                    "includes a firing")
        # the first whole minute after the creation, plus the measured ones
        first = (int(time.time()) // 60 + 1) * 60
        if first - time.time() < 5:
            first += 60
        sleep_until(first)
        cpu0 = d.cpu_seconds()
        sleep_until(first + 60 * MINUTES)
        cpu1 = d.cpu_seconds()
        time.sleep(5)               # the last minute's firings finish
        rss2 = d.rss_bytes()
        tasks = c.list_all("state=succeeded", deadline=time.monotonic() + 300)
        late = []
        per_slot = {}
        seen = set()
        dup = 0
        for t in tasks:
            s = t.get("schedule")
            if not s:
                continue
            slot = parse_rfc3339_us(s["scheduled_for"])
            if not (first * 10**6 <= slot < (first + 60 * MINUTES) * 10**6):
                continue
            key = (s["id"], slot)
            if key in seen:
                dup += 1
            seen.add(key)
            per_slot[slot] = per_slot.get(slot, 0) + 1
            late.append((parse_rfc3339_us(t["started_at"]) - slot) / 1e3)
        if not late:
            die("no firing in the measured minutes")
        late.sort()
        p50, p99, mx = percentile(late, 50), percentile(late, 99), late[-1]
        cpu_min = (cpu1 - cpu0) / MINUTES
        rss_per = (rss1 - rss0) / N
        rss_fired = (rss2 - rss0) / N
        result("schedules_lateness_p50", p50, "ms")
        result("schedules_lateness_p99", p99, "ms")
        result("schedules_lateness_max", mx, "ms")
        result("schedules_firings_per_minute_min", min(per_slot.values()),
               "count")
        result("schedules_firings_twice", dup, "count")
        result("schedules_cpu_per_minute", cpu_min, "s")
        result("schedules_rss_per_schedule", rss_per, "bytes")
        result("schedules_rss_per_schedule_after_firings", rss_fired,
               "bytes")
        table([
            ("firing lateness p99", "%.2f ms" % p99, "<= 10 ms",
             verdict(p99 <= 10)),
            ("firings per minute (min over %d)" % MINUTES,
             str(min(per_slot.values())), str(N),
             verdict(min(per_slot.values()) == N and len(per_slot) ==
                     MINUTES)),
            ("slots fired twice", str(dup), "0", verdict(dup == 0)),
            ("CPU per minute", "%.2f s" % cpu_min, "(reported)", "-"),
            ("RSS per schedule", "%.0f B" % rss_per, "<= 1024 B",
             verdict(rss_per <= 1024)),
        ])


if __name__ == "__main__":
    main()
