#!/usr/bin/env python3
"""schedules.py -- /v1/schedules against the real daemon (doc/API.md,
"Schedules").

CRUD with ETag, If-Match and every 400 naming its field; preview over
Europe/Berlin's and New York's daylight saving transitions, each time
checked against Python's zoneinfo (an independent walk of the minutes);
real firings: `every: 1` about once a second, `* * * * *` once a minute
across a restart whose missed slot fires once under `latest` (this waits
real minutes, bounded); catch_up all and none across a stopped daemon;
overlap skip, queue, replace and allow with sleep tasks; pause, resume,
trigger; kill -9 right after firings never fires a slot twice; schedule
events in the feed carry no "task"; a schedule not due within the window
leaves memory and is still read, changed, triggered and deleted; a worker
token gets 403.  Timing is
checked in rough bounds and order only.
"""

import datetime
import os
import sys
import tempfile
import time
from zoneinfo import ZoneInfo

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from tap import TAP  # noqa: E402
from corod import Corod, echo, is_problem, parse_time, \
    sleep  # noqa: E402

t = TAP("schedules", total_timeout=1500)
UTC = datetime.timezone.utc


def problem(r, status, desc, field=None):
    good, why = is_problem(r, status, field)
    return t.ok(good, desc, diag=why + "\n" + r.describe())


def create(d, body, expect=201):
    r = d.request("POST", "/v1/schedules", body)
    if r.status != expect:
        raise AssertionError("POST /v1/schedules %r\n%s" % (body,
                                                           r.describe()))
    return r.body


def get(d, sid):
    r = d.request("GET", "/v1/schedules/%d" % sid)
    if r.status != 200:
        raise AssertionError("GET /v1/schedules/%d\n%s" % (sid,
                                                          r.describe()))
    return r.body


def fired(d, sid):
    """The tasks schedule sid made, oldest first."""
    tasks = [x for x in d.list_all() if x.get("schedule") and
             x["schedule"]["id"] == sid]
    return sorted(tasks, key=lambda x: x["id"])


def slots(tasks):
    return [parse_time(x["schedule"]["scheduled_for"]) for x in tasks]


def intervals(tasks):
    return [(parse_time(x["started_at"]), parse_time(x["finished_at"]))
            for x in tasks if x.get("started_at") and x.get("finished_at")]


def overlapping(ivs):
    ivs = sorted(ivs)
    return any(b[0] < a[1] - 0.001 for a, b in zip(ivs, ivs[1:]))


# --- an independent next-fire function, from zoneinfo -----------------------

def field_set(spec, lo, hi):
    out = set()
    for part in spec.split(","):
        step = 1
        if "/" in part:
            part, s = part.split("/")
            step = int(s)
        if part == "*":
            a, b = lo, hi
        elif "-" in part:
            a, b = (int(x) for x in part.split("-"))
        else:
            a = b = int(part)
        out.update(range(a, b + 1, step))
    return out


def expected_runs(cron, zone, start, n):
    """The next n firings strictly after start (aware datetime) of a cron
    with '*' in day, month and weekday, by Debian cron's rule: a fixed
    minute and hour fires at the first instant the local clock reads it
    or later (once per day), anything else at every instant whose local
    time matches.  Minute by minute through zoneinfo."""
    tz = ZoneInfo(zone)
    m, h = cron.split()[:2]
    mins, hours = field_set(m, 0, 59), field_set(h, 0, 23)
    fixed = len(mins) == 1 and len(hours) == 1 and "*" not in m + h
    out = []
    u = start.astimezone(UTC).replace(second=0, microsecond=0) + \
        datetime.timedelta(minutes=1)
    if fixed:
        (mm,), (hh,) = mins, hours
        day = start.astimezone(tz).date() - datetime.timedelta(days=1)
        while len(out) < n:
            want = datetime.datetime(day.year, day.month, day.day, hh, mm)
            # the first UTC minute whose local wall time is >= want
            lo = datetime.datetime(day.year, day.month, day.day,
                                   tzinfo=UTC) - datetime.timedelta(days=1)
            x = lo
            while (x.astimezone(tz).replace(tzinfo=None) < want):
                x += datetime.timedelta(minutes=1)
            if x > start:
                out.append(x)
            day += datetime.timedelta(days=1)
        return out
    for _ in range(400 * 24 * 60):
        local = u.astimezone(tz)
        if local.minute in mins and local.hour in hours:
            out.append(u)
            if len(out) == n:
                break
        u += datetime.timedelta(minutes=1)
    return out


def jitter_of(sid, slot_us, jitter_us):
    """The daemon's jitter of a slot (splitmix64 of id and slot), µs."""
    m = (1 << 64) - 1
    z = ((sid * 0x9e3779b97f4a7c15) & m) ^ slot_us
    z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & m
    z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & m
    z ^= z >> 31
    return z % jitter_us


def offset_of(s):
    """'+02:00' of an RFC 3339 string, as minutes."""
    sign = 1 if s[-6] == "+" else -1
    return sign * (int(s[-5:-3]) * 60 + int(s[-2:]))


# --- CRUD and bad input -----------------------------------------------------

@t.test(timeout=60)
def crud():
    with Corod(t, name="sched-crud") as d:
        body = {"name": "nightly", "cron": "30 2 * * *",
                "time_zone": "Europe/Berlin",
                "task": echo("good night"), "jitter": 5}
        r = d.request("POST", "/v1/schedules", body)
        t.is_(r.status, 201, "POST: 201")
        s = r.body
        t.is_(r.headers.get("location"), "/v1/schedules/%d" % s["id"],
              "... Location names it")
        t.is_(r.headers.get("etag"), '"%d"' % s["version"],
              "... ETag is its version")
        for k in ("id", "name", "cron", "every", "time_zone", "task",
                  "overlap", "catch_up", "starting_deadline", "jitter",
                  "paused", "start_at", "end_at", "next_runs", "last_run",
                  "missed", "skipped", "created_at", "version"):
            t.ok(k in s, "the answer has %s" % k)
        t.is_((s["overlap"], s["catch_up"], s["paused"], s["every"]),
              ("skip", "latest", False, None), "defaults: skip, latest, "
              "not paused, no every")
        t.is_(len(s["next_runs"]), 5, "next_runs: five")
        t.ok(all(x.endswith(("+01:00", "+02:00")) and "T02:30:00" in x
                 or "T03:00:00+02:00" in x for x in s["next_runs"]),
             "... at 02:30 Berlin time, with Berlin's offset: %s" %
             s["next_runs"][0])
        t.is_((s["last_run"], s["missed"], s["skipped"]),
              (None, {"count": 0, "last": None}, {"count": 0, "last": None}),
              "no run yet, nothing missed or skipped")
        sid = s["id"]
        r = d.request("GET", "/v1/schedules/%d" % sid,
                      headers={"If-None-Match": '"%d"' % s["version"]})
        t.is_(r.status, 304, "If-None-Match with its version: 304")
        r = d.request("PATCH", "/v1/schedules/%d" % sid, {"paused": True},
                      headers={"If-Match": '"%d"' % (s["version"] + 100)})
        problem(r, 412, "PATCH with a stale If-Match: 412",
                "/headers/If-Match")
        r = d.request("PATCH", "/v1/schedules/%d" % sid,
                      {"cron": "0 4 * * *", "name": None},
                      headers={"If-Match": '"%d"' % s["version"]})
        t.is_(r.status, 200, "PATCH with its version: 200")
        p = r.body
        t.ok(p["version"] > s["version"] and p["cron"] == "0 4 * * *" and
             p["name"] is None and p["jitter"] == 5,
             "... the members given replaced, the others kept")
        t.ok("T04:00:00" in p["next_runs"][0], "... next_runs follow it")
        r = d.request("PATCH", "/v1/schedules/%d" % sid, {"every": 60})
        t.ok(r.status == 200 and r.body["cron"] is None and
             r.body["every"] == 60, "every replaces cron in a PATCH")
        second = create(d, {"every": 3600, "task": echo("b")})
        third = create(d, {"every": 3600, "task": echo("c")})
        r = d.request("GET", "/v1/schedules?limit=2")
        t.ok(r.status == 200 and [x["id"] for x in r.body["schedules"]] ==
             [third["id"], second["id"]] and r.body["next_cursor"],
             "list: newest first, two, a cursor")
        r = d.request("GET", "/v1/schedules?limit=2&cursor=" +
                      r.body["next_cursor"])
        t.ok(r.status == 200 and [x["id"] for x in r.body["schedules"]] ==
             [sid] and r.body["next_cursor"] is None, "... then the rest")
        r = d.request("DELETE", "/v1/schedules/%d" % second["id"],
                      headers={"If-Match": '"1"'})
        problem(r, 412, "DELETE with a stale If-Match: 412")
        r = d.request("DELETE", "/v1/schedules/%d" % second["id"])
        t.is_(r.status, 204, "DELETE: 204")
        r = d.request("GET", "/v1/schedules/%d" % second["id"])
        problem(r, 404, "then GET: 404")
        r = d.request("GET", "/v1/schedules/999999")
        problem(r, 404, "an unknown id: 404")
        r = d.request("POST", "/v1/schedules/999999/trigger")
        problem(r, 404, "trigger of an unknown id: 404")
        r = d.request("GET", "/v1/schedules/abc")
        problem(r, 400, "a schedule id that is not a number: 400",
                "/path/id")

        good = {"cron": "* * * * *", "task": echo("x")}
        bad = [
            ({"cron": "61 * * * *", "task": echo("x")}, "/cron",
             "minute"),
            ({"cron": "0 0 30 2 *", "task": echo("x")}, "/cron", None),
            ({"cron": "* * *", "task": echo("x")}, "/cron", None),
            ({"cron": 5, "task": echo("x")}, "/cron", None),
            (dict(good, time_zone="Mars/Olympus"), "/time_zone", "Mars"),
            (dict(good, time_zone="europe/berlin"), "/time_zone", None),
            ({"cron": "* * * * *", "task": {"kind": "nope"}},
             "/task/kind", None),
            ({"cron": "* * * * *", "task": {"kind": "sleep",
                                            "params": {"seconds": -1}}},
             "/task/params/seconds", None),
            (dict(good, task=dict(echo("x"), run_at="2030-01-01T00:00:00Z")),
             "/task/run_at", None),
            ({"cron": "* * * * *"}, "/task", None),
            ({"cron": "* * * * *", "every": 5, "task": echo("x")},
             "/every", None),
            ({"task": echo("x")}, "/cron", None),
            ({"every": 0, "task": echo("x")}, "/every", None),
            ({"every": -3, "task": echo("x")}, "/every", None),
            ({"every": "5", "task": echo("x")}, "/every", None),
            (dict(good, overlap="sometimes"), "/overlap", None),
            (dict(good, catch_up="most"), "/catch_up", None),
            (dict(good, starting_deadline=0), "/starting_deadline", None),
            (dict(good, jitter=-1), "/jitter", None),
            (dict(good, paused="yes"), "/paused", None),
            (dict(good, start_at="tomorrow"), "/start_at", None),
            (dict(good, start_at="2030-01-02T00:00:00Z",
                  end_at="2030-01-01T00:00:00Z"), "/end_at", None),
            (dict(good, colour="blue"), "/colour", None),
        ]
        for b, field, word in bad:
            r = d.request("POST", "/v1/schedules", b)
            ok = problem(r, 400, "400 naming %s for %s" % (field,
                                                          str(b)[:60]),
                         field)
            if ok and word:
                t.ok(word in r.body.get("detail", ""),
                     "... the detail says why: %s" % r.body.get("detail"))
        r = d.request("POST", "/v1/schedules", "[1]",
                      headers={"Content-Type": "application/json"})
        problem(r, 400, "a body that is not an object: 400")
        r = d.request("PATCH", "/v1/schedules/%d" % sid,
                      {"time_zone": "Nowhere/Land"})
        problem(r, 400, "a PATCH with an unknown zone: 400", "/time_zone")
        t.is_(get(d, sid)["time_zone"], "Europe/Berlin",
              "... and nothing changed")
        for q, field in (("cron=*%20*%20*&count=3", "/query/cron"),
                         ("every=0", "/query/every"),
                         ("cron=*%20*%20*%20*%20*&every=5", "/query/every"),
                         ("", "/query/cron"),
                         ("cron=*%20*%20*%20*%20*&count=0", "/query/count"),
                         ("cron=*%20*%20*%20*%20*&count=101",
                          "/query/count"),
                         ("cron=*%20*%20*%20*%20*&time_zone=X/Y",
                          "/query/time_zone"),
                         ("cron=*%20*%20*%20*%20*&from=yesterday",
                          "/query/from")):
            r = d.request("GET", "/v1/schedules/preview?" + q)
            problem(r, 400, "preview ?%s: 400" % q, field)


# --- preview across daylight saving transitions -----------------------------

@t.test(timeout=120)
def preview_dst():
    with Corod(t, name="sched-preview") as d:
        cases = [
            ("30 2 * * *", "Europe/Berlin", "2026-03-27T12:00:00Z", 4),
            ("30 2 * * *", "Europe/Berlin", "2026-10-23T12:00:00Z", 4),
            ("0 * * * *", "Europe/Berlin", "2026-03-28T23:30:00Z", 5),
            ("0 * * * *", "Europe/Berlin", "2026-10-24T23:30:00Z", 5),
            ("*/15 * * * *", "Europe/Berlin", "2026-03-29T00:40:00Z", 6),
            ("*/15 * * * *", "Europe/Berlin", "2026-10-25T00:40:00Z", 8),
            ("30 1 * * *", "America/New_York", "2026-11-01T00:00:00Z", 3),
            ("30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z", 3),
            ("0 12 * * *", "UTC", "2026-01-01T00:00:00Z", 3),
        ]
        for cron, zone, frm, n in cases:
            r = d.request("GET", "/v1/schedules/preview?cron=%s&time_zone="
                          "%s&from=%s&count=%d" % (cron.replace(" ", "%20"),
                                                   zone, frm, n))
            if not t.is_(r.status, 200, "preview %s in %s" % (cron, zone)):
                t.diag(r.describe())
                continue
            runs = r.body["runs"]
            start = datetime.datetime.fromisoformat(frm.replace("Z",
                                                                "+00:00"))
            want = expected_runs(cron, zone, start, n)
            got = [datetime.datetime.fromisoformat(x) for x in runs]
            t.is_([g.astimezone(UTC) for g in got], want,
                  "... the instants zoneinfo gives, from %s" % frm)
            tz = ZoneInfo(zone)
            t.ok(all(offset_of(x) == int(g.astimezone(tz).utcoffset()
                                         .total_seconds() // 60)
                     for x, g in zip(runs, got)),
                 "... each with the zone's offset at that instant")
            t.diag("%s %s: %s" % (zone, cron, " ".join(runs)))
        r = d.request("GET", "/v1/schedules/preview?every=90&from="
                      "2026-01-01T00:00:00Z&count=3")
        t.is_(r.body.get("runs"), ["2026-01-01T00:01:30+00:00",
                                   "2026-01-01T00:03:00+00:00",
                                   "2026-01-01T00:04:30+00:00"],
              "every 90: from + 90 s, + 180 s ...")
        r = d.request("GET", "/v1/schedules/preview?cron=@daily&count=100")
        t.is_(len(r.body.get("runs", [])), 100, "count 100 is allowed")


# --- real firings ---------------------------------------------------------

@t.test(timeout=60)
def every_second():
    with Corod(t, name="sched-every") as d:
        s = create(d, {"every": 1, "task": echo("tick")})
        time.sleep(4.5)
        tasks = fired(d, s["id"])
        t.between(len(tasks), 3, 6, "every 1: about one task a second "
                  "over 4.5 s (%d)" % len(tasks))
        sl = slots(tasks)
        t.ok(all(abs((b - a) - 1) < 1e-6 for a, b in zip(sl, sl[1:])),
             "... slots exactly one second apart")
        t.ok(all(abs(parse_time(x["run_at"]) - y) < 1e-6
                 for x, y in zip(tasks, sl)),
             "... each due at its slot (no jitter)")
        d.wait_for(lambda: get(d, s["id"])["last_run"] and
                   get(d, s["id"])["last_run"]["state"] == "succeeded", 5,
                   desc="last_run succeeded")
        t.ok(True, "last_run says succeeded")


@t.test(timeout=330)
def minute_across_restart():
    with Corod(t, name="sched-minute") as d:
        s = create(d, {"cron": "* * * * *", "task": echo("minute")})
        # (a firing is made a second ahead: wait for its task to end, or
        # the slot missed while down would be skipped behind it)
        d.wait_for(lambda: [x for x in fired(d, s["id"])
                            if x["state"] == "succeeded"], 75, interval=0.5,
                   desc="the first firing")
        first = slots(fired(d, s["id"]))[0]
        d.stop()
        # down across the next minute's slot
        while time.time() < first + 60 + 3:
            time.sleep(0.2)
        d.start()
        d.wait_for(lambda: len(fired(d, s["id"])) >= 2, 10, interval=0.2,
                   desc="the missed slot fired at start")
        sl = slots(fired(d, s["id"]))
        t.is_(sl[:2], [first, first + 60], "the slot missed while down "
              "fired once at start (latest)")
        d.wait_for(lambda: len(fired(d, s["id"])) >= 3, 75, interval=0.5,
                   desc="the next minute")
        time.sleep(1)
        sl = slots(fired(d, s["id"]))
        t.is_(sl[:3], [first, first + 60, first + 120],
              "then the next minute: one firing per minute, none twice")
        t.is_(len(sl), len(set(sl)), "no slot fired twice")
        t.is_(get(d, s["id"])["missed"]["count"], 0, "nothing missed")


@t.test(timeout=90)
def catch_up_modes():
    with Corod(t, name="sched-catchup") as d:
        a = create(d, {"every": 1, "catch_up": "all", "task": echo("a")})
        n = create(d, {"every": 1, "catch_up": "none", "task": echo("n")})
        la = create(d, {"every": 1, "catch_up": "latest",
                        "starting_deadline": 30, "task": echo("l")})
        time.sleep(1.5)
        d.stop()
        down = time.time()
        time.sleep(4)
        d.start()
        back = time.time()
        time.sleep(0.8)
        ta, tn, tl = (fired(d, x["id"]) for x in (a, n, la))
        sa, sn, sl = slots(ta), slots(tn), slots(tl)
        gap_a = [x for x in sa if down < x < back]
        gap_n = [x for x in sn if down < x < back]
        gap_l = [x for x in sl if down < x < back]
        t.between(len(gap_a), 3, 5, "all: the slots missed while down "
                  "fired (%d)" % len(gap_a))
        t.ok(all(abs((y - x) - 1) < 1e-6 for x, y in zip(sa, sa[1:])),
             "... in order, none left out, none twice")
        t.is_(len(gap_n), 0, "none: no slot of the downtime fired")
        mn = get(d, n["id"])["missed"]
        t.between(mn["count"], 3, 5, "... each counted missed (%d)" %
                  mn["count"])
        t.ok(mn["last"] is not None and down < parse_time(mn["last"]) < back,
             "... the last one named")
        t.is_(len(gap_l), 1, "latest: one slot of the downtime fired")
        t.between(get(d, la["id"])["missed"]["count"], 2, 4,
                  "... the others counted missed")


# --- overlap ----------------------------------------------------------------

@t.test(timeout=120)
def overlap_modes():
    with Corod(t, name="sched-overlap") as d:
        ids = {}
        for mode in ("skip", "queue", "replace", "allow"):
            ids[mode] = create(d, {"every": 1, "overlap": mode,
                                   "task": sleep(2.5)})["id"]
        time.sleep(7.5)
        for sid in ids.values():
            d.request("POST", "/v1/schedules/%d/pause" % sid)
        time.sleep(3.5)
        sk = fired(d, ids["skip"])
        t.ok(not overlapping(intervals(sk)), "skip: its tasks never ran "
             "at once")
        t.ok(get(d, ids["skip"])["skipped"]["count"] >= 2,
             "... the slots in between counted in skipped (%d)" %
             get(d, ids["skip"])["skipped"]["count"])
        t.ok(all(x["state"] == "succeeded" for x in sk), "... and all ran "
             "to their end")
        qu = fired(d, ids["queue"])
        t.ok(not overlapping(intervals(qu)), "queue: never at once")
        t.ok(len(qu) >= 3, "queue: a waiting slot ran after the one before "
             "(%d tasks)" % len(qu))
        if len(qu) >= 2:
            gaps = [parse_time(b["started_at"]) - parse_time(a["finished_at"])
                    for a, b in zip(qu, qu[1:])]
            t.ok(min(gaps) < 0.5, "... right after the task before it ended "
                 "(gap %.3f s)" % min(gaps))
        rp = fired(d, ids["replace"])
        t.ok(sum(1 for x in rp if x["state"] == "canceled") >= 2,
             "replace: the running task is canceled by the next firing")
        t.ok(not overlapping(intervals([x for x in rp
                                        if x["state"] == "succeeded"])),
             "... (what ran to its end did not run at once)")
        al = fired(d, ids["allow"])
        t.ok(overlapping(intervals(al)), "allow: tasks ran at once")
        t.ok(len(al) >= 6, "... one per slot (%d)" % len(al))


@t.test(timeout=60)
def pause_drops_queued():
    with Corod(t, name="sched-pause-queue") as d:
        sid = create(d, {"every": 1, "overlap": "queue",
                         "task": sleep(3)})["id"]
        s = d.wait_for(lambda: get(d, sid)["queued_slot"] and get(d, sid),
                       5, desc="a slot queued")
        t.ok(parse_time(s["queued_slot"]) is not None, "queue: a slot waits "
             "(queued_slot %s)" % s["queued_slot"])
        r = d.request("POST", "/v1/schedules/%d/pause" % sid)
        t.ok(r.status == 200 and r.body["queued_slot"] is None and
             r.body["skipped"]["last"] == s["queued_slot"],
             "pause drops the waiting slot, counted in skipped")
        time.sleep(3.5)
        t.is_(len(fired(d, sid)), 1, "... it never runs")


# --- pause, resume, trigger, events -----------------------------------------

@t.test(timeout=60)
def pause_resume_trigger():
    with Corod(t, name="sched-pause") as d:
        s = create(d, {"every": 1, "task": echo("p")})
        d.wait_for(lambda: fired(d, s["id"]), 5, desc="a firing")
        r = d.request("POST", "/v1/schedules/%d/pause" % s["id"])
        t.ok(r.status == 200 and r.body["paused"] and
             r.body["next_runs"] == [], "pause: 200, no next runs")
        n = len(fired(d, s["id"]))
        time.sleep(2.5)
        t.is_(len(fired(d, s["id"])), n, "nothing fires while paused")
        r = d.request("POST", "/v1/schedules/%d/trigger" % s["id"])
        t.is_(r.status, 201, "trigger: 201")
        t.ok(r.body.get("schedule", {}).get("id") == s["id"] and
             r.headers.get("location") == "/v1/tasks/%d" % r.body["id"],
             "... the task, carrying its schedule, Location naming it")
        d.wait_state(r.body["id"], "succeeded", 5)
        # (the schedule hears of the task's commit as the daemon handles
        # it, a moment after a read can see it)
        lr = d.wait_for(lambda: (get(d, s["id"])["last_run"] or {}).get(
            "state") == "succeeded" and get(d, s["id"])["last_run"], 5,
            desc="last_run succeeded")
        t.ok(lr["task"] == r.body["id"] and lr["state"] == "succeeded",
             "last_run is the triggered task, succeeded")
        r = d.request("POST", "/v1/schedules/%d/resume" % s["id"])
        t.ok(r.status == 200 and not r.body["paused"] and
             len(r.body["next_runs"]) == 5, "resume: 200, next runs again")
        before = time.time()
        d.wait_for(lambda: any(x > before for x in slots(fired(d, s["id"]))),
                   5, desc="a firing after resume")
        sl = slots(fired(d, s["id"]))
        t.ok(not any(before - 3.5 < x < before - 0.1 and
                     x not in sl[:n] for x in sl[n:-1] if x < before - 1.1),
             "resumed: the paused slots are not owed")
        r = d.request("GET", "/v1/events?since=0&limit=10000")
        evs = [e for e in r.body["events"] if "schedule" in e]
        t.ok(evs and all("task" not in e and e["schedule"] == s["id"] and
                         e["type"] in ("created", "updated") and
                         # (a shared store's seq is its position)
                         (e["version"] == e["seq"] or
                          os.environ.get("COROD_TEST_PG"))
                         for e in evs),
             "the feed carries the schedule's changes, without \"task\"")
        t.is_(evs[0]["type"], "created", "... the first one created")
        d.request("DELETE", "/v1/schedules/%d" % s["id"])
        time.sleep(0.3)
        r = d.request("GET", "/v1/events?since=%d" % evs[-1]["seq"])
        t.ok(any(e.get("schedule") == s["id"] and e["type"] == "deleted"
                 for e in r.body["events"]), "... and its deletion")


# --- kill -9 right after firings: no slot twice -----------------------------

@t.test(timeout=90)
def kill9_no_double():
    with Corod(t, name="sched-kill9") as d:
        s = create(d, {"every": 1, "task": echo("k")})
        for i in range(4):
            d.wait_for(lambda: len(fired(d, s["id"])) > i, 5,
                       desc="a firing")
            # right after a firing is answered committed
            time.sleep(0.02 + 0.1 * i)
            d.kill9()
            d.start()
        time.sleep(1.5)
        tasks = fired(d, s["id"])
        sl = slots(tasks)
        t.is_(len(sl), len(set(sl)), "after four kill -9s: no slot fired "
              "twice (%d tasks)" % len(sl))
        t.ok(all(b > a for a, b in zip(sl, sl[1:])),
             "... slots only move forward")


# --- start_at, end_at, jitter, a refused submission ------------------------

@t.test(timeout=60)
def bounds_jitter_refused():
    with Corod(t, args=["--max-tasks", "3"], name="sched-bounds") as d:
        now = time.time()
        start = datetime.datetime.fromtimestamp(int(now) + 2, UTC)
        end = start + datetime.timedelta(seconds=2)
        s = create(d, {"every": 1, "task": echo("b"),
                       "start_at": start.isoformat().replace("+00:00", "Z"),
                       "end_at": end.isoformat().replace("+00:00", "Z")})
        t.is_([parse_time(x) for x in s["next_runs"]],
              [start.timestamp() + k for k in range(3)],
              "next_runs: start_at itself, then every second, up to end_at")
        d.wait_for(lambda: get(d, s["id"])["next_runs"] == [], 8,
                   desc="the schedule ended")
        time.sleep(0.5)
        sl = slots(fired(d, s["id"]))
        t.is_(sl, [start.timestamp() + k for k in range(3)],
              "it fired at start_at .. end_at, then no more")
        # max-tasks 3 is reached: the next firings are refused, counted
        j = create(d, {"every": 1, "jitter": 0.5, "task": echo("j")})
        d.wait_for(lambda: get(d, j["id"])["missed"]["count"] >= 2, 8,
                   desc="refused firings counted missed")
        t.ok(d.running(), "a refused firing is missed, the daemon goes on")
        t.ok(fired(d, j["id"]) == [], "... and nothing of them is stored")
        t.ok("max-tasks" in d.output() or "stores at most" in d.output(),
             "... the log says why")
        r = d.request("POST", "/v1/schedules/%d/trigger" % j["id"])
        problem(r, 429, "a trigger over max-tasks: 429")
    with Corod(t, name="sched-jitter") as d:
        j = create(d, {"every": 1, "jitter": 0.5, "overlap": "allow",
                       "task": echo("j")})
        time.sleep(4)
        tasks = fired(d, j["id"])
        off = [parse_time(x["run_at"]) - y for x, y in zip(tasks,
                                                          slots(tasks))]
        t.ok(len(off) >= 2 and all(0 <= x < 0.5 for x in off),
             "jitter: each due within [slot, slot + 0.5 s): %s" %
             ["%.3f" % x for x in off])
        t.ok(len(set(round(x, 6) for x in off)) > 1,
             "... not the same for every slot")
        t.is_([round(x * 1e6) for x in off],
              [jitter_of(j["id"], round(y * 1e6), 500000)
               for y in slots(tasks)],
              "... a hash of the schedule and the slot: the same slot "
              "always gets the same jitter")


# --- only the schedules due soon are in memory ------------------------------

def metric(d, name):
    r = d.request("GET", "/metrics")
    for line in (r.body or "").splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


@t.test(timeout=90)
def window():
    with Corod(t, args=["--window", "2"], name="sched-window") as d:
        far = create(d, {"every": 3600, "task": echo("far")})
        near = create(d, {"every": 4, "task": echo("near")})
        d.wait_for(lambda: metric(d, "corod_schedules_in_memory") == 1, 5,
                   desc="the far one left memory")
        t.is_(metric(d, "corod_schedules"), 2, "both stored, one in memory "
              "(window 2 s)")
        g = get(d, far["id"])
        t.ok(g["version"] == far["version"] and g["next_runs"] ==
             far["next_runs"], "GET of one not in memory: as stored")
        r = d.request("GET", "/v1/schedules/%d" % far["id"],
                      headers={"If-None-Match": '"%d"' % far["version"]})
        t.is_(r.status, 304, "... 304 with its version")
        r = d.request("GET", "/v1/schedules")
        t.is_([x["id"] for x in r.body.get("schedules", [])],
              [near["id"], far["id"]], "the list has both")
        r = d.request("PATCH", "/v1/schedules/%d" % far["id"],
                      {"name": "renamed"},
                      headers={"If-Match": '"%d"' % far["version"]})
        t.ok(r.status == 200 and r.body["name"] == "renamed",
             "PATCH of one not in memory (If-Match checked): 200")
        r = d.request("POST", "/v1/schedules/%d/trigger" % far["id"])
        t.is_(r.status, 201, "trigger of one not in memory: 201")
        d.wait_state(r.body["id"], "succeeded", 5)
        d.wait_for(lambda: metric(d, "corod_schedules_in_memory") == 1, 5,
                   desc="it left memory again")
        d.wait_for(lambda: (get(d, far["id"])["last_run"] or {}).get(
            "state") == "succeeded", 5, desc="last_run read with the row")
        t.ok(True, "read from the store: last_run's state is its task's")
        time.sleep(9)
        sl = slots(fired(d, near["id"]))
        t.ok(len(sl) >= 2 and all(abs((b - a) - 4) < 1e-6
                                  for a, b in zip(sl, sl[1:])),
             "every 4 with a 2 s window: it leaves and comes back, and "
             "fires every slot (%d)" % len(sl))
        d.restart()
        t.is_(metric(d, "corod_schedules"), 2, "after a restart: counted")
        r = d.request("DELETE", "/v1/schedules/%d" % far["id"])
        t.is_(r.status, 204, "DELETE of one not in memory: 204")
        r = d.request("GET", "/v1/schedules/%d" % far["id"])
        problem(r, 404, "then 404")
        t.is_(metric(d, "corod_schedules"), 1, "one left")


# --- a worker token may not use schedules -----------------------------------

@t.test(timeout=30)
def worker_forbidden():
    tmp = tempfile.mkdtemp(prefix="corod-sched-")
    tf = os.path.join(tmp, "tokens")
    with open(tf, "w") as f:
        f.write("full-token-0123456789abcdef\n"
                "worker-token-0123456789abcdef worker:q1\n")
    os.chmod(tf, 0o600)
    with Corod(t, args=["--token-file", tf], name="sched-scope") as d:
        d.token = "full-token-0123456789abcdef"
        s = create(d, {"every": 3600, "task": echo("x")})
        d.token = "worker-token-0123456789abcdef"
        for m, p, b in (("GET", "/v1/schedules", None),
                        ("POST", "/v1/schedules", {"every": 5,
                                                   "task": echo("y")}),
                        ("GET", "/v1/schedules/%d" % s["id"], None),
                        ("POST", "/v1/schedules/%d/trigger" % s["id"], None),
                        ("GET", "/v1/schedules/preview?cron=@daily", None)):
            r = d.request(m, p, b)
            problem(r, 403, "a worker token: %s %s is 403" % (m, p))
    os.unlink(tf)
    os.rmdir(tmp)


t.done()
