#!/usr/bin/env python3
"""bench/repeat-rss.py — memory, CPU and tick lateness of many running repeats.

For each N in REPEAT_COUNTS (default "10000 100000"), on a fresh daemon:
  1. read its RSS (VmRSS of /proc/PID/status) once it answers /healthz;
  2. submit N {"kind":"repeat","params":{"message":"tick","interval":1}}
     in batches of 1000 (JSON array submission);
  3. wait until none is scheduled and all N are listed as running (bounded);
  4. let them tick for REPEAT_TICK (default 20) s; CPU (utime+stime from
     /proc/PID/stat) is measured over the last REPEAT_CPU_WINDOW (default 10) s
     of it, as a fraction of one core; RSS is read at its end;
  5. read the logs of REPEAT_SAMPLE (default 200) random tasks and compare each
     tick's time with the ideal fixed-rate schedule first tick + k x interval.
Prints repeat_rss_per_task_N (bytes), repeat_cpu_N (cores),
repeat_tick_lateness_p99_N (ms), plus p50/max and raw readings as comments.
"""

import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import (Daemon, comment, now_us, parse_rfc3339_us, percentile, result)

COUNTS = [int(x) for x in os.environ.get("REPEAT_COUNTS", "10000 100000").replace(",", " ").split()]
BATCH = int(os.environ.get("REPEAT_BATCH", "1000"))
INTERVAL = float(os.environ.get("REPEAT_INTERVAL", "1"))
TICK = float(os.environ.get("REPEAT_TICK", "20"))
CPU_WINDOW = float(os.environ.get("REPEAT_CPU_WINDOW", "10"))
SAMPLE = int(os.environ.get("REPEAT_SAMPLE", "200"))
WAIT = float(os.environ.get("REPEAT_WAIT", "180"))
NOFILE = int(os.environ["COROD_NOFILE"]) if os.environ.get("COROD_NOFILE") else None
MESSAGE = "tick"


def run(n):
    tag = "repeat-rss N=%d" % n
    with Daemon(nofile=NOFILE) as d:
        c = d.client()
        time.sleep(0.5)
        rss0 = d.rss_bytes()
        fds0 = d.open_fds()
        limit = d.nofile_limit()
        comment("%s: corod %s pid %d port %d, RSS at start %d KiB, %d open fds, open-files limit %s"
                % (tag, d.bin, d.pid, d.port, rss0 // 1024, fds0, limit if limit else "unlimited"))

        spec = {"kind": "repeat", "params": {"message": MESSAGE, "interval": INTERVAL}}
        ids = []
        t0 = time.monotonic()
        left = n
        while left > 0:
            k = min(BATCH, left)
            resp = c.json("POST", "/v1/tasks", [spec] * k, expect=(201,))
            got = resp.get("tasks", [])
            if len(got) != k:
                raise RuntimeError("batch of %d answered with %d tasks" % (k, len(got)))
            ids.extend(t["id"] for t in got)
            left -= k
        comment("%s: submitted %d tasks in %.3f s (batches of %d)" % (tag, n, time.monotonic() - t0, BATCH))

        # Wait until nothing is scheduled any more, then count the running ones.
        deadline = time.monotonic() + WAIT
        while True:
            sched = c.json("GET", "/v1/tasks?state=scheduled&limit=1").get("tasks", [])
            if not sched:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("%s: tasks still scheduled after %g s" % (tag, WAIT))
            time.sleep(0.5)
        ended = c.json("GET", "/v1/tasks?state=succeeded,failed,canceled&limit=5").get("tasks", [])
        if ended:
            comment("WARNING: %s: some repeats ended: %s"
                    % (tag, [(t["id"], t["state"], t.get("error")) for t in ended]))
        t_count = time.monotonic()
        running = c.list_all("state=running", deadline=deadline)
        nrun = len(running)
        del running
        comment("%s: %d running after %.3f s from submission start (listing took %.3f s)"
                % (tag, nrun, time.monotonic() - t0, time.monotonic() - t_count))
        if nrun < n:
            comment("WARNING: %s: only %d of %d tasks running" % (tag, nrun, n))

        fds1 = d.open_fds()
        if limit:
            grew = fds1 - fds0
            if fds1 >= 0.8 * limit:
                comment("WARNING: %s: the daemon has %d fds open of its limit %d: raise its open-files "
                        "limit (ulimit -n / LimitNOFILE=, or COROD_NOFILE for this script)" % (tag, fds1, limit))
            elif grew > n // 2 and limit < max(COUNTS) + 1024:
                comment("WARNING: %s: the daemon uses about one fd per running task (%d more) and its "
                        "open-files limit %d is below %d: raise it for the larger runs"
                        % (tag, grew, limit, max(COUNTS) + 1024))
        comment("%s: open fds %d -> %d" % (tag, fds0, fds1))

        t_run = time.monotonic()
        quiet0 = now_us()
        time.sleep(max(0.0, TICK - CPU_WINDOW))
        c0, w0 = d.cpu_seconds(), time.monotonic()
        time.sleep(CPU_WINDOW)
        c1, w1 = d.cpu_seconds(), time.monotonic()
        rss1 = d.rss_bytes()
        quiet1 = now_us()
        cpu = (c1 - c0) / (w1 - w0)
        comment("%s: ticked %.1f s; RSS %d KiB -> %d KiB; CPU %.2f s over %.2f s"
                % (tag, time.monotonic() - t_run, rss0 // 1024, rss1 // 1024, c1 - c0, w1 - w0))
        result("repeat_rss_per_task_%d" % n, "%.0f" % ((rss1 - rss0) / n), "bytes")
        result("repeat_cpu_%d" % n, "%.3f" % cpu, "cores")

        # Tick lateness from sampled logs.
        rnd = random.Random(12345)
        sample = rnd.sample(ids, min(SAMPLE, len(ids)))
        # Ticks are kept only when their ideal time falls in the quiet tick
        # window (after all were running and counted, before the log reads),
        # so submission and listing do not count against the daemon.
        lat_ms = []
        lat_all_ms = []
        lat_start_ms = []
        ticks_per_task = []
        odd = 0
        for tid in sample:
            status, r, raw = c.request("GET", "/v1/tasks/%d/log" % tid)
            if status != 200:
                odd += 1
                continue
            times = []
            for line in raw.decode("utf-8", "replace").splitlines():
                ts, _, text = line.partition(" ")
                if text.strip() == MESSAGE:
                    try:
                        times.append(parse_rfc3339_us(ts))
                    except ValueError:
                        pass
            ticks_per_task.append(len(times))
            for k in range(1, len(times)):
                ideal = times[0] + k * INTERVAL * 1e6
                lat_all_ms.append((times[k] - ideal) / 1000.0)
                if quiet0 <= ideal <= quiet1:
                    lat_ms.append((times[k] - ideal) / 1000.0)
            # Also against the schedule anchored at the task's start: tick k
            # (k >= 1) is due at started_at + k x interval. This one does not
            # hide a late first tick.
            st, r, raw = c.request("GET", "/v1/tasks/%d" % tid)
            if st == 200:
                t = json.loads(raw)
                if t.get("started_at"):
                    s0 = parse_rfc3339_us(t["started_at"])
                    for k, tt in enumerate(times, 1):
                        ideal = s0 + k * INTERVAL * 1e6
                        if quiet0 <= ideal <= quiet1:
                            lat_start_ms.append((tt - ideal) / 1000.0)
        if odd:
            comment("WARNING: %s: %d log reads failed" % (tag, odd))
        if ticks_per_task:
            comment("%s: %d sampled logs, ticks per log min %d / mean %.1f / max %d"
                    % (tag, len(ticks_per_task), min(ticks_per_task),
                       sum(ticks_per_task) / len(ticks_per_task), max(ticks_per_task)))
        if not lat_ms:
            comment("WARNING: %s: no tick lines (text %r) found in the sampled logs" % (tag, MESSAGE))
            return False
        comment("%s: all sampled ticks, also those during submission and listing (%d): lateness vs first tick "
                "+ k x %g s: p50 %.3f ms, p99 %.3f ms, max %.3f ms"
                % (tag, len(lat_all_ms), INTERVAL, percentile(lat_all_ms, 50), percentile(lat_all_ms, 99), max(lat_all_ms)))
        comment("%s: ticks in the %.1f s tick window (%d): lateness vs first tick + k x %g s: p50 %.3f ms, "
                "max %.3f ms, min %.3f ms" % (tag, (quiet1 - quiet0) / 1e6, len(lat_ms), INTERVAL,
                                              percentile(lat_ms, 50), max(lat_ms), min(lat_ms)))
        result("repeat_tick_lateness_p99_%d" % n, "%.3f" % percentile(lat_ms, 99), "ms")
        if lat_start_ms:
            comment("%s: ticks in the tick window, lateness vs started_at + k x %g s over %d ticks: p50 %.3f ms, p99 %.3f ms, "
                    "max %.3f ms, min %.3f ms" % (tag, INTERVAL, len(lat_start_ms), percentile(lat_start_ms, 50),
                                                  percentile(lat_start_ms, 99), max(lat_start_ms), min(lat_start_ms)))
            result("repeat_tick_lateness_vs_start_p99_%d" % n, "%.3f" % percentile(lat_start_ms, 99), "ms")
        return True


def main():
    comment("repeat-rss: N in %s; spec {\"kind\":\"repeat\",\"params\":{\"message\":\"%s\",\"interval\":%g}}, "
            "submitted in batches of %d over one keep-alive connection, default durability"
            % (COUNTS, MESSAGE, INTERVAL, BATCH))
    comment("repeat-rss: tick %g s after all are running; CPU over the last %g s; RSS = VmRSS; "
            "tick lateness from %d random task logs" % (TICK, CPU_WINDOW, SAMPLE))
    ok = True
    for n in COUNTS:
        try:
            ok = run(n) and ok
        except Exception as e:  # report and go on with the next N
            comment("ERROR: repeat-rss N=%d: %s: %s" % (n, type(e).__name__, e))
            ok = False
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
