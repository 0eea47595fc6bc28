#!/usr/bin/env python3
"""bench/schedules.py -- 10,000 schedules every minute (issue 16).

Creates SCHED_N (default 10,000) `* * * * *` schedules of an echo task
(POST /v1/schedules, SCHED_CONNS keep-alive connections in parallel),
reads the daemon's RSS before and after (VmRSS, /proc), waits for the next
whole minute to fire them all, and reports:
  - schedule_rss_per_schedule: (RSS after creating - before) / N, bytes;
  - schedule_lateness_p50/_p99/_max: started_at - scheduled_for of the
    tasks of that minute, ms;
  - schedule_fired_ahead: how long before the minute the last of its
    tasks was created (schedules fire up to a second ahead when nothing
    can change the outcome), ms;
  - schedule_rss_after_firing_per_schedule: the same after the firing
    (the tasks of the minute have come and gone: malloc's high water);
  - schedule_cpu_per_minute: CPU seconds (user + system) the daemon spent
    over the minute that fired them.
Bounded: creation at most 300 s, the wait for the tasks 120 s.
"""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import (Daemon, comment, die, parse_rfc3339_us, percentile,
                 result)  # noqa: E402

N = int(os.environ.get("SCHED_N", "10000"))
CONNS = int(os.environ.get("SCHED_CONNS", "8"))


def rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick


def main():
    comment("schedules: %d `* * * * *` echo schedules over %d connections"
            % (N, CONNS))
    with Daemon() as d:
        base = rss(d.pid)
        spec = {"cron": "* * * * *",
                "task": {"kind": "echo", "params": {"message": "tick"}}}
        errors = []

        def creator(k):
            c = d.client()
            try:
                for _ in range(k):
                    c.json("POST", "/v1/schedules", spec, expect=(201,))
            except Exception as e:  # noqa: BLE001
                errors.append(str(e))
        # start right after a minute, so creation ends before the next
        while time.time() % 60 > 5:
            time.sleep(0.2)
        t0 = time.monotonic()
        threads = [threading.Thread(target=creator, args=(
            N // CONNS + (1 if i < N % CONNS else 0),)) for i in range(CONNS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(300)
        if errors:
            die("creating schedules: %s" % errors[0])
        made = time.monotonic() - t0
        after = rss(d.pid)
        comment("schedules: created in %.1f s; RSS %.1f MiB -> %.1f MiB"
                % (made, base / 2**20, after / 2**20))
        result("schedule_rss_per_schedule", (after - base) / N, "bytes")
        minute = (int(time.time()) // 60 + 1) * 60
        c0 = None
        while time.time() < minute - 1:
            time.sleep(0.2)
        c0 = cpu(d.pid)
        time.sleep(59)
        c1 = cpu(d.pid)
        c = d.client()
        deadline = time.monotonic() + 120
        while True:
            tasks = [t for t in c.list_all("state=succeeded")
                     if t.get("schedule") and
                     parse_rfc3339_us(t["schedule"]["scheduled_for"]) ==
                     minute * 1000000]
            if len(tasks) >= N or time.monotonic() > deadline:
                break
            time.sleep(1)
        if not tasks:
            die("no task of the minute succeeded")
        lat = [(parse_rfc3339_us(t["started_at"]) -
                parse_rfc3339_us(t["schedule"]["scheduled_for"])) / 1000.0
               for t in tasks]
        ahead = (minute * 1000000 -
                 max(parse_rfc3339_us(t["created_at"]) for t in tasks)) / 1000.0
        comment("schedules: %d tasks of the minute %d succeeded" %
                (len(tasks), minute))
        result("schedule_lateness_p50", percentile(lat, 50), "ms")
        result("schedule_lateness_p99", percentile(lat, 99), "ms")
        result("schedule_lateness_max", max(lat), "ms")
        result("schedule_fired_ahead", ahead, "ms")
        result("schedule_cpu_per_minute", c1 - c0, "s")
        result("schedule_rss_after_firing_per_schedule",
               (rss(d.pid) - base) / N, "bytes")
        if len(tasks) < N:
            result("schedule_unfired", N - len(tasks), "count")
            sys.exit(1)


if __name__ == "__main__":
    main()
