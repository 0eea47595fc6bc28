#!/usr/bin/env python3
"""download.py -- the `download` kind (API.md, "Downloads") end to end.

The real daemon downloads from two servers on 127.0.0.1 that the test
starts: tests/lib/fileserver.py (in this process: deterministic content,
throttling, dropped connections, failures, redirects, Range/If-Range,
every request recorded) and Debian's nginx (tests/lib/nginx.py: big files
and many at once).  Checked: results and files on disk (sizes from 0 bytes
to 256 MiB), 64 downloads at once and the max-downloads slots, progress,
redirects, HTTP errors and retries, resume after a dropped connection,
after kill -9 and after SIGTERM (Range + If-Range), servers that ignore
ranges or change the file, cancel, checksums, validation at submission,
path confinement against symlinks, overwrite, default names, request
headers, max_bytes, a complete .part answered 416, bad responses, the
low-speed limit.  From issue 12: starting over from byte 0 while the
hasher reads the kept bytes, names that are not UTF-8, a .part that is a
hard link, headers kept from another origin after a redirect, a trickle
under the default low-speed limit, the download directory removed, the
rate after a restart.

Where API.md leaves something open the test follows its wording and says
so in a comment ("ambiguous:").
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from tap import TAP, scaled, timeout_mult  # noqa: E402
from corod import (Corod, corod_bin, free_port, is_problem,  # noqa: E402
                   parse_time)
from fileserver import (FileServer, content, etag_of,  # noqa: E402
                        last_modified_of, sha256_hex)
from nginx import Nginx  # noqa: E402

FINAL = ("succeeded", "failed", "canceled")
EMPTY_SHA = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
KiB = 1024
MiB = 1024 * 1024

t = TAP("download", total_timeout=600)
fs = FileServer(t)


# --- helpers -------------------------------------------------------------------

def dl(url, spec=None, **params):
    """A download spec: params as keywords, other members in spec."""
    p = {"url": url}
    p.update(params)
    s = {"kind": "download", "params": p}
    if spec:
        s.update(spec)
    return s


def problem(r, status, desc, field=None):
    good, why = is_problem(r, status, field)
    return t.ok(good, desc, diag=why + "\n" + r.describe())


def wait_all(d, ids, timeout):
    """Wait until every task is final; {id: task}."""
    out = {}
    deadline = time.monotonic() + scaled(timeout)
    for i in ids:
        # wait_state scales its timeout itself: give it unscaled seconds.
        left = max(0.1, deadline - time.monotonic()) / timeout_mult()
        out[i] = d.wait_state(i, FINAL, left)
    return out


def logtext(d, task_id):
    return "\n".join(x[1] for x in d.log(task_id))


def files_under(root):
    """Relative paths of every non-directory entry under root (symlinks
    not followed), sorted."""
    out = []
    for base, dirs, files in os.walk(root):
        for n in files:
            out.append(os.path.relpath(os.path.join(base, n), root))
        for n in dirs:
            p = os.path.join(base, n)
            if os.path.islink(p):
                out.append(os.path.relpath(p, root))
    return sorted(out)


def part_files(d):
    return [p for p in files_under(d.download_dir) if p.endswith(".part")]


def read(path):
    with open(path, "rb") as f:
        return f.read()


def sha_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(4 * MiB)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def size_or_none(path):
    try:
        return os.lstat(path).st_size
    except OSError:
        return None


def check_result(d, task, desc, path, data=None, sha=None, size=None,
                 url=None, ctype="application/octet-stream", status=200):
    """The task succeeded with this result and the file holds exactly the
    expected bytes (data, or sha and size for big files)."""
    if data is not None:
        sha = hashlib.sha256(data).hexdigest()
        size = len(data)
    r = task.get("result") or {}
    t.is_(task.get("state"), "succeeded", "%s: succeeded" % desc) or \
        t.diag(json.dumps(task)[:1500])
    want = {"path": path, "bytes": size, "sha256": sha}
    if status is not None:
        want["http_status"] = status
    if ctype is not None:
        want["content_type"] = ctype
    if url is not None:
        want["url"] = url
    t.is_({k: r.get(k) for k in want}, want, "%s: the result" % desc)
    t.is_(sorted(k for k in r if k in ("path", "bytes", "sha256",
                                       "http_status", "content_type",
                                       "url")),
          ["bytes", "content_type", "http_status", "path", "sha256", "url"],
          "%s: the result has every documented member" % desc)
    full = os.path.join(d.download_dir, path)
    if data is not None:
        got = read(full) if os.path.isfile(full) else None
        t.ok(got == data, "%s: the file is byte-identical (%d bytes)" %
             (desc, size), diag="on disk: %s bytes" %
             (None if got is None else len(got)))
    else:
        got = sha_file(full) if os.path.isfile(full) else None
        t.ok(got == sha and size_or_none(full) == size,
             "%s: the file on disk has the sha256 and size (%d)" %
             (desc, size), diag="on disk: %s, %s bytes" %
             (got, size_or_none(full)))
    t.ok(not os.path.islink(full), "%s: a regular file, not a symlink" % desc)


def no_part_left(d, desc):
    p = part_files(d)
    t.is_(p, [], "%s: no .part file left" % desc)


def has_line(d, task_id, regex, desc):
    text = logtext(d, task_id)
    return t.ok(re.search(regex, text) is not None, desc,
                diag="log of task %d:\n%s" % (task_id, text[-3000:]))


def raw_log(d, task_id):
    """The log answer's bytes (r.raw), and whether they are UTF-8."""
    r = d.request("GET", "/v1/tasks/%d/log" % task_id)
    try:
        r.raw.decode("utf-8")
        return r.raw, True
    except UnicodeDecodeError:
        return r.raw, False


def range_start(rec):
    m = re.match(r"^bytes=(\d+)-$", rec.get("range") or "")
    return int(m.group(1)) if m else None


def stop_ok(d):
    t.is_(d.stop(), 0, "SIGTERM: exit status 0")


# --- the daemon has the kind ------------------------------------------------------

def has_download_kind():
    try:
        p = subprocess.run([corod_bin(), "--help"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=scaled(20))
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, repr(e)
    out = p.stdout.decode("utf-8", "replace")
    return "max-downloads" in out, out


good, why = has_download_kind()
if not t.ok(good, "corod --help lists --max-downloads (the download kind "
            "is built in)", diag=why[-2000:]):
    t.done()


# --- results and files --------------------------------------------------------------

@t.test(timeout=40)
def sizes_from_the_fileserver():
    with Corod(t, name="sizes") as d:
        cases = [
            ("zero.bin", 0, {}, "application/octet-stream"),
            ("small.txt", 1000, {"type": "text/plain"}, "text/plain"),
            ("one-mib.bin", MiB, {}, "application/octet-stream"),
        ]
        specs = []
        urls = []
        for name, size, opts, _ in cases:
            u = fs.url(name, size=size, **opts)
            urls.append(u)
            path = "sub/dir/" + name if size == MiB else name
            specs.append(dl(u, path=path))
        tasks = d.submit(specs)
        got = wait_all(d, [x["id"] for x in tasks], 20)
        for (name, size, _, ctype), u, x, spec in zip(cases, urls, tasks,
                                                      specs):
            check_result(d, got[x["id"]], "%s (%d bytes)" % (name, size),
                         spec["params"]["path"], data=content(name, size),
                         url=u, ctype=ctype)
        t.is_(got[tasks[0]["id"]]["result"].get("sha256"), EMPTY_SHA,
              "the 0-byte file's sha256 is that of nothing")
        t.ok(os.path.isdir(os.path.join(d.download_dir, "sub", "dir")),
             "missing directories of the path were created")
        no_part_left(d, "after three downloads")
        t.is_(files_under(d.download_dir),
              sorted(["zero.bin", "small.txt", "sub/dir/one-mib.bin"]),
              "the download directory holds just the three files")
        x = d.get(tasks[2]["id"])
        t.is_((x["attempt"], x["error"]), (1, None),
              "attempt 1, no error")
        stop_ok(d)


@t.test(timeout=150)
def large_file_from_nginx():
    size = 256 * MiB
    with Nginx(t) as ng, Corod(t, name="large") as d:
        sha, _ = ng.create("big.bin", size)
        task = d.submit(dl(ng.url("big.bin"), path="big.bin"))
        worst = 0.0
        totals = set()
        polls = 0
        deadline = time.monotonic() + scaled(90)
        x = task
        while time.monotonic() < deadline and polls < 100000:
            polls += 1
            t0 = time.monotonic()
            h = d.request("GET", "/healthz", timeout=10)
            worst = max(worst, time.monotonic() - t0)
            if h.status != 200:
                t.fail("GET /healthz during the transfer: %d" % h.status)
                break
            x = d.get(task["id"])
            if x["progress"]:
                totals.add(x["progress"].get("total"))
            if x["state"] in FINAL:
                break
            time.sleep(0.05)
        x = d.wait_state(task["id"], FINAL, 5)
        check_result(d, x, "256 MiB from nginx", "big.bin", sha=sha,
                     size=size, url=ng.url("big.bin"))
        t.ok(worst < scaled(1.0), "GET /healthz kept answering during the "
             "transfer (slowest %.3f s of %d)" % (worst, polls))
        t.ok(totals <= {size}, "progress total, when shown, is the size",
             diag=repr(totals))
        no_part_left(d, "256 MiB")
        stop_ok(d)


@t.test(timeout=90)
def sixty_four_at_once():
    n, size = 64, 4 * MiB
    with Nginx(t, slow_rate="1m") as ng, \
            Corod(t, args=["--max-downloads", "64"], name="64") as d:
        shas = [ng.create("f%02d.bin" % i, size)[0] for i in range(n)]
        kids = []
        for i in range(n):
            p = {"path": "g/%02d.bin" % i}
            if i % 2 == 0:
                p["sha256"] = shas[i]     # half verified as they finish
            kids.append(dl(ng.url("f%02d.bin" % i, slow=True), **p))
        g = d.submit({"kind": "gather", "params": {"tasks": kids}})
        peak = 0
        deadline = time.monotonic() + scaled(60)
        polls = 0
        while time.monotonic() < deadline and polls < 10000:
            polls += 1
            r = d.request("GET", "/v1/tasks?parent=%d&state=running&limit=1000"
                          % g["id"])
            peak = max(peak, len(r.body["tasks"]))
            if d.get(g["id"])["state"] in FINAL:
                break
            time.sleep(0.1)
        x = d.wait_state(g["id"], FINAL, 10)
        t.is_(x["state"], "succeeded", "the gather of 64 downloads succeeded")
        t.is_(peak, 64, "all 64 ran at once (--max-downloads 64; each is "
              "throttled by nginx to 1 MB/s)")
        bad = []
        for i, k in enumerate(x["children"]):
            c = d.get(k)
            r = c.get("result") or {}
            f = os.path.join(d.download_dir, "g/%02d.bin" % i)
            if c["state"] != "succeeded" or r.get("sha256") != shas[i] or \
                    r.get("bytes") != size or r.get("path") != "g/%02d.bin" % i \
                    or size_or_none(f) != size or sha_file(f) != shas[i]:
                bad.append((i, c["state"], r, c.get("error")))
        t.is_(bad, [], "every child's result and file are right")
        no_part_left(d, "64 downloads")
        stop_ok(d)


@t.test(timeout=60)
def two_download_slots():
    with Corod(t, args=["--max-downloads", "2"], name="slots") as d:
        # Two slow ones take both slots, then four short ones queue up with
        # priorities: they must wait, at most two run at once, and they
        # start by priority.
        first = d.submit([dl(fs.url("slot-%s.bin" % k, size=192 * KiB,
                                    rate=128 * KiB), path="slot-%s.bin" % k)
                          for k in "ab"])
        for x in first:
            d.wait_state(x["id"], "running", 5)
        prios = [0, 5, 10, 1]
        rest = d.submit([dl(fs.url("slot-c%d.bin" % p, size=64 * KiB,
                                   rate=128 * KiB), {"priority": p},
                            path="slot-c%d.bin" % p) for p in prios])
        ids = [x["id"] for x in first + rest]
        seen_states = []
        max_running = 0
        deadline = time.monotonic() + scaled(30)
        polls = 0
        while time.monotonic() < deadline and polls < 10000:
            polls += 1
            # one list is one read of the store: a consistent snapshot
            # (separate GETs could see a task still running and the one
            # that took its slot already running)
            r = d.request("GET", "/v1/tasks?kind=download&limit=1000")
            by_id = {x["id"]: x["state"] for x in r.body["tasks"]}
            st = [by_id.get(i) for i in ids]
            seen_states.append(st)
            max_running = max(max_running, st.count("running"))
            if all(s in FINAL for s in st):
                break
            time.sleep(0.05)
        t.is_(seen_states[0][2:], ["scheduled"] * 4,
              "while two run, the other four are scheduled")
        t.ok(max_running <= 2, "never more than 2 running at once (max %d "
             "in %d polls)" % (max_running, polls))
        # The same seen from the server: overlapping requests.
        fs.wait_for(lambda rs: all(r["outcome"] for r in rs
                                   if r["name"].startswith("slot-")), 5,
                    desc="every slot- request answered")
        recs = [r for r in fs.requests() if r["name"].startswith("slot-")]
        events = sorted([(r["t_start"], 1) for r in recs] +
                        [(r["t_end"] or time.monotonic(), -1) for r in recs])
        cur = peak = 0
        for _, e in events:
            cur += e
            peak = max(peak, cur)
        t.ok(peak <= 2, "the server never saw more than 2 transfers at once "
             "(%d)" % peak)
        got = wait_all(d, ids, 10)
        t.is_([got[i]["state"] for i in ids], ["succeeded"] * 6,
              "all six succeeded")
        order = sorted(rest, key=lambda x: got[x["id"]]["started_at"] or "")
        t.is_([x["priority"] for x in order], [10, 5, 1, 0],
              "the queued ones started by priority")
        for k in "ab":
            check_result(d, got[first["ab".index(k)]["id"]], "slot-%s" % k,
                         "slot-%s.bin" % k,
                         data=content("slot-%s.bin" % k, 192 * KiB),
                         url=fs.url("slot-%s.bin" % k, size=192 * KiB,
                                    rate=128 * KiB))
        stop_ok(d)


# --- progress ---------------------------------------------------------------------

@t.test(timeout=40)
def progress_while_running():
    size, rate = MiB, 256 * KiB
    with Corod(t, name="progress") as d:
        u = fs.url("progress.bin", size=size, rate=rate)
        task = d.submit(dl(u, path="progress.bin"))
        samples = []
        deadline = time.monotonic() + scaled(20)
        polls = 0
        t_first = None
        while time.monotonic() < deadline and polls < 2000:
            polls += 1
            x = d.get(task["id"])
            if x["state"] == "running" and x["progress"] is not None:
                if t_first is None:
                    t_first = time.monotonic()
                samples.append((time.monotonic(), x["version"],
                                x["progress"]))
            if x["state"] in FINAL:
                break
            time.sleep(0.1)
        t_last = time.monotonic()
        x = d.wait_state(task["id"], FINAL, 5)
        t.ok(len(samples) >= 5, "progress shown while running (%d samples)"
             % len(samples))
        if not samples:
            return
        bad_keys = [p for _, _, p in samples
                    if sorted(p) != ["current", "rate", "total", "unit"]]
        t.is_(bad_keys[:3], [], "progress is {current, total, unit, rate}")
        t.ok(all(p.get("unit") == "bytes" for _, _, p in samples),
             "unit is \"bytes\"")
        t.ok(all(p.get("total") == size for _, _, p in samples),
             "total is the size (%d)" % size,
             diag=repr(sorted(set(p.get("total") for _, _, p in samples))))
        cur = [p.get("current") for _, _, p in samples]
        t.ok(all(isinstance(c, int) and 0 <= c <= size for c in cur),
             "0 <= current <= total", diag=repr(cur))
        t.ok(all(a <= b for a, b in zip(cur, cur[1:])),
             "current never goes back", diag=repr(cur))
        distinct = sorted(set(cur))
        t.ok(len(distinct) >= 3, "current grows (%d distinct values)" %
             len(distinct))
        span = max(1.0, t_last - t_first)
        t.ok(len(distinct) <= span * 2.5 + 3,
             "updated about once a second, not per chunk (%d values in "
             "%.1f s)" % (len(distinct), span))
        rates = [p.get("rate") for _, _, p in samples]
        t.ok(all(isinstance(r, (int, float)) and r >= 0 for r in rates),
             "rate is a number >= 0", diag=repr(rates))
        late = [r for (ts, _, p), r in zip(samples, rates)
                if ts - t_first >= 1.5]
        t.ok(late and rate / 4 <= late[-1] <= rate * 4,
             "rate is about the throttled %d bytes/s (%r)" %
             (rate, late[-1] if late else None))
        changed = [(a, b) for a, b in zip(samples, samples[1:])
                   if a[2] != b[2] and a[1] == b[1]]
        t.is_(changed, [], "each progress change comes with a new version")
        check_result(d, x, "throttled 1 MiB", "progress.bin",
                     data=content("progress.bin", size), url=u)

        # ?wait=&version= wakes up with the next progress report.
        u2 = fs.url("progress-wait.bin", size=size, rate=rate)
        task = d.submit(dl(u2, path="progress-wait.bin"))
        x = d.wait_for(lambda: (lambda y: y if y["progress"] else None)(
            d.get(task["id"])), 10, desc="a first progress")
        t0 = time.monotonic()
        r = d.request("GET", "/v1/tasks/%d?wait=10&version=%d" %
                      (task["id"], x["version"]), timeout=20)
        el = time.monotonic() - t0
        t.ok(r.status == 200 and r.body["version"] != x["version"] and
             el < scaled(3.0), "a long poll on the version returns with the next "
             "update (%.2f s)" % el, diag=r.describe())
        d.cancel(task["id"])
        d.wait_state(task["id"], FINAL, 5)
        stop_ok(d)


# --- redirects ----------------------------------------------------------------------

@t.test(timeout=30)
def redirects():
    with Corod(t, name="redirects") as d:
        final = fs.url("redir.bin", size=5000)
        a = d.submit(dl(fs.url("redir.bin", size=5000, redirect=3),
                        path="redir.bin"))
        b = d.submit(dl(fs.url("redir-many.bin", size=5000, redirect=3),
                        {"max_attempts": 3}, path="redir-many.bin",
                        max_redirects=2))
        c = d.submit(dl(fs.url("redir-zero.bin", size=5000, redirect=1),
                        path="redir-zero.bin", max_redirects=0))
        e = d.submit(dl(fs.url("redir-ftp.bin", location="ftp://127.0.0.1:%d/x"
                               % free_port()), path="redir-ftp.bin"))
        f = d.submit(dl(fs.url("redir-file.bin", location="file:///etc/hostname"),
                        path="redir-file.bin"))
        got = wait_all(d, [x["id"] for x in (a, b, c, e, f)], 15)
        check_result(d, got[a["id"]], "3 redirects", "redir.bin",
                     data=content("redir.bin", 5000), url=final)
        t.is_(len(fs.requests("redir.bin")), 4,
              "the server saw 3 redirects and the final request")
        x = got[b["id"]]
        t.is_((x["state"], (x["error"] or {}).get("code"), x["attempt"]),
              ("failed", "too_many_redirects", 1),
              "3 redirects with max_redirects 2: failed too_many_redirects, "
              "not retried")
        x = got[c["id"]]
        t.is_((x["state"], (x["error"] or {}).get("code")),
              ("failed", "too_many_redirects"),
              "a redirect with max_redirects 0: too_many_redirects")
        # ambiguous: API.md says redirects stay on http/https but names no
        # code for a redirect elsewhere; only the failure is checked.
        for x, what in ((got[e["id"]], "ftp://"), (got[f["id"]], "file://")):
            t.is_(x["state"], "failed", "a redirect to %s fails (%s)" %
                  (what, json.dumps(x["error"])))
        t.is_(files_under(d.download_dir), ["redir.bin"],
              "only the successful download left a file")
        stop_ok(d)


@t.test(timeout=40)
def redirect_to_another_origin_drops_headers():
    """Issue 12 item 9: the params' headers followed a redirect to another
    host.  They go to url's origin only now (scheme, host and port, as curl
    compares them for Authorization and Cookie): a second fileserver on
    another port of 127.0.0.1 is another origin.  corod's own Range and
    If-Range still go wherever the redirect leads."""
    hdrs = {"X-Secret": "s3cret", "Authorization": "Bearer t0ken",
            "User-Agent": "custom-agent/1.0"}
    with FileServer(t) as fs2, Corod(t, name="redir-headers") as d:
        t.ok(fs2.port != fs.port, "two servers: ports %d and %d" %
             (fs.port, fs2.port))
        # to another origin
        far = fs2.url("far.bin", size=3000)
        a = d.submit(dl(fs.url("to-far.bin", location=far), path="far.bin",
                        headers=hdrs))
        # within the origin
        b = d.submit(dl(fs.url("near.bin", size=3000, redirect=2),
                        path="near.bin", headers=hdrs))
        # away and back: the first origin gets them again
        back = fs.url("back.bin", size=3000)
        c = d.submit(dl(fs.url("go.bin", location=fs2.url(
            "via.bin", location=back)), path="back.bin", headers=hdrs))
        # resuming across a redirect to another origin
        k = 100000
        far2 = fs2.url("far-resume.bin", size=300000, drop=k)
        e = d.submit(dl(fs.url("to-far-resume.bin", location=far2),
                        {"max_attempts": 2}, path="far-resume.bin",
                        headers=hdrs))
        got = wait_all(d, [x["id"] for x in (a, b, c, e)], 20)
        for x, name in ((a, "far.bin"), (b, "near.bin"), (c, "back.bin"),
                        (e, "far-resume.bin")):
            t.is_(got[x["id"]]["state"], "succeeded", "%s succeeded" % name)

        def seen(rs):
            return [(r["headers"].get("x-secret"),
                     r["headers"].get("authorization"), r["user_agent"])
                    for r in rs]
        mine = ("s3cret", "Bearer t0ken", "custom-agent/1.0")
        first = seen(fs.requests("to-far.bin"))
        t.is_(first, [mine], "the first server got the headers")
        other = seen(fs2.requests("far.bin"))
        t.is_([h[:2] for h in other], [(None, None)],
              "the server on another port got none of them")
        t.like(other[0][2] if other else "", r"^corod/",
               "... and corod's own User-Agent")
        t.is_(seen(fs.requests("near.bin")), [mine] * 3,
              "a redirect within the origin keeps them (3 requests)")
        t.is_([h[0] for h in seen(fs.requests("go.bin")) +
               seen(fs2.requests("via.bin")) + seen(fs.requests("back.bin"))],
              ["s3cret", None, "s3cret"],
              "away and back: the first origin gets them again")
        reqs = fs2.requests("far-resume.bin")
        t.is_([(r["range"], r["if_range"], r["headers"].get("x-secret"))
               for r in reqs],
              [(None, None, None),
               ("bytes=%d-" % k, etag_of("far-resume.bin", 300000), None)],
              "resuming: Range and If-Range follow the redirect, the "
              "params' headers do not")
        t.is_(got[e["id"]]["attempt"], 2, "... resumed on attempt 2")
        t.is_(got[e["id"]]["result"]["url"], far2,
              "... the result's url is where the redirect led")
        stop_ok(d)


@t.test(timeout=30)
def bad_redirect_not_utf8():
    """A Location that is neither a URL nor UTF-8 (Latin-1 bytes): the task
    fails bad_redirect quoting it, and its error and log are UTF-8 (issue
    12 item 7b: log text is always UTF-8; the bytes that are not are
    escaped as \\xNN in the log, U+FFFD in the error)."""
    with Corod(t, name="bad-redirect") as d:
        # the fileserver sends the header in Latin-1: \xff is one byte
        u = fs.url("bad-loc.bin", location="http://h\u00ff st:99999/x")
        a = d.submit(dl(u, path="bad-loc.bin"))
        x = d.wait_state(a["id"], FINAL, 10)
        t.is_((x["state"], (x["error"] or {}).get("code")),
              ("failed", "bad_redirect"), "failed bad_redirect")
        t.like((x["error"] or {}).get("message", ""), "h\ufffd st",
               "the message quotes the Location, U+FFFD for the byte")
        raw, good = raw_log(d, a["id"])
        t.ok(good, "the log is UTF-8", diag=repr(raw[-600:]))
        t.ok(b"h\\xff st" in raw, "... the byte escaped as \\xff",
             diag=repr(raw[-600:]))
        stop_ok(d)


# --- HTTP errors and retries -----------------------------------------------------------

@t.test(timeout=40)
def http_errors_and_retries():
    with Corod(t, name="http-errors") as d:
        a = d.submit(dl(fs.url("e404.bin", status=404), {"max_attempts": 3},
                        path="e404.bin"))
        b = d.submit(dl(fs.url("e500.bin", size=3000, fail=2),
                        {"max_attempts": 3}, path="e500.bin"))
        c = d.submit(dl(fs.url("e429.bin", size=3000, fail=1, fail_status=429),
                        {"max_attempts": 2}, path="e429.bin"))
        e = d.submit(dl(fs.url("e503.bin", fail=5, fail_status=503),
                        {"max_attempts": 2}, path="e503.bin"))
        got = wait_all(d, [x["id"] for x in (a, b, c, e)], 25)
        x = got[a["id"]]
        err = x["error"] or {}
        t.is_((x["state"], err.get("code"), err.get("http_status"),
               x["attempt"]), ("failed", "http_error", 404, 1),
              "404: failed http_error, http_status 404, attempt 1 of 3")
        t.is_(len(fs.requests("e404.bin")), 1, "... one request only")
        no_part_left(d, "404")
        x = got[b["id"]]
        t.is_((x["state"], x["attempt"]), ("succeeded", 3),
              "500 twice, then 200: succeeded on attempt 3")
        check_result(d, x, "after two 500s", "e500.bin",
                     data=content("e500.bin", 3000),
                     url=fs.url("e500.bin", size=3000, fail=2))
        has_line(d, b["id"], r"attempt 1 failed: .*; retrying in [0-9.]+ ?s",
                 "log: attempt 1 failed ...; retrying in X s")
        has_line(d, b["id"], r"attempt 2 failed: .*; retrying in [0-9.]+ ?s",
                 "log: attempt 2 failed ...; retrying in X s")
        reqs = fs.requests("e500.bin")
        t.is_([r["status"] for r in reqs], [500, 500, 200],
              "the server answered 500, 500, 200")
        if len(reqs) == 3:
            gaps = [reqs[1]["t_start"] - reqs[0]["t_end"],
                    reqs[2]["t_start"] - reqs[1]["t_end"]]
            t.ok(0.7 <= gaps[0] <= scaled(1.25) + 0.3 and
                 1.45 <= gaps[1] <= scaled(2.5) + 0.3,
                 "backoff about 1 s then 2 s (±25 %%): %.2f, %.2f" %
                 tuple(gaps))
        x = got[c["id"]]
        t.is_((x["state"], x["attempt"]), ("succeeded", 2),
              "429 is retried: succeeded on attempt 2")
        x = got[e["id"]]
        err = x["error"] or {}
        t.is_((x["state"], err.get("code"), err.get("http_status"),
               x["attempt"]), ("failed", "http_error", 503, 2),
              "503 on every attempt: failed http_error 503 after 2 attempts")
        stop_ok(d)


# --- resume ---------------------------------------------------------------------------

@t.test(timeout=40)
def dropped_connection_resumes():
    size, k = MiB, 300000
    with Corod(t, name="drop") as d:
        cases = [
            # (name, options, validator the server sends)
            ("drop-rst.bin", {}, "etag"),
            ("drop-fin.bin", {"drop_fin": 1}, "etag"),
            ("drop-lm.bin", {"etag": "lm"}, "lm"),
        ]
        tasks = []
        for name, opts, _ in cases:
            u = fs.url(name, size=size, drop=k, **opts)
            tasks.append((u, d.submit(dl(u, {"max_attempts": 2},
                                         path=name))))
        got = wait_all(d, [x["id"] for _, x in tasks], 20)
        for (name, opts, val), (u, task) in zip(cases, tasks):
            x = got[task["id"]]
            check_result(d, x, name, name, data=content(name, size), url=u,
                         status=None)
            t.is_(x["attempt"], 2, "%s: on attempt 2" % name)
            reqs = fs.requests(name)
            want_ir = etag_of(name, size) if val == "etag" else \
                last_modified_of(name, size)
            second = reqs[1] if len(reqs) > 1 else {}
            t.is_((len(reqs), reqs[0]["outcome"] if reqs else None,
                   second.get("range"), second.get("if_range"),
                   second.get("status")),
                  (2, "dropped", "bytes=%d-" % k, want_ir, 206),
                  "%s: the second request asked for the rest: Range bytes="
                  "%d- and If-Range the %s; answered 206" %
                  (name, k, "ETag" if val == "etag" else "Last-Modified"))
            has_line(d, task["id"], r"resuming at byte %d\b" % k,
                     "%s: log says 'resuming at byte %d'" % (name, k))
            has_line(d, task["id"], r"attempt 1 failed: .*retrying in",
                     "%s: log says attempt 1 failed and is retried" % name)
        no_part_left(d, "after the resumed downloads")

        # No ETag nor Last-Modified: cannot resume safely, starts over.
        u = fs.url("drop-none.bin", size=size, drop=k, etag=0)
        task = d.submit(dl(u, {"max_attempts": 2}, path="drop-none.bin"))
        x = d.wait_state(task["id"], FINAL, 15)
        check_result(d, x, "no validators", "drop-none.bin",
                     data=content("drop-none.bin", size), url=u)
        reqs = fs.requests("drop-none.bin")
        t.ok(len(reqs) == 2 and reqs[1]["range"] is None,
             "without ETag/Last-Modified the retry asks for the whole body "
             "(no Range)", diag=repr([(r["range"], r["if_range"])
                                      for r in reqs]))
        stop_ok(d)


@t.test(timeout=30)
def range_ignored_or_file_changed():
    size, k = MiB, 300000
    with Corod(t, name="restart-over") as d:
        u1 = fs.url("norange.bin", size=size, drop=k, norange=1)
        a = d.submit(dl(u1, {"max_attempts": 2}, path="norange.bin"))
        u2 = fs.url("changed.bin", size=size, drop=k, version=1, version2=2,
                    change_after=1)
        b = d.submit(dl(u2, {"max_attempts": 2}, path="changed.bin"))
        got = wait_all(d, [a["id"], b["id"]], 20)
        # ambiguous: "starts over from byte 0 (logged)" gives no wording;
        # any of these phrasings is taken.
        over = r"(?i)start(s|ed|ing)? (over|again)|from byte 0\b|" \
               r"from the (start|beginning)|restart"

        check_result(d, got[a["id"]], "Range ignored (200 on resume)",
                     "norange.bin", data=content("norange.bin", size), url=u1)
        reqs = fs.requests("norange.bin")
        t.is_([(r["range"], r["status"]) for r in reqs],
              [(None, 200), ("bytes=%d-" % k, 200)],
              "the retry asked for a range and got a 200")
        has_line(d, a["id"], over, "log says it started over")

        x = got[b["id"]]
        new = content("changed.bin", size, "2")
        old = content("changed.bin", size, "1")
        check_result(d, x, "the remote file changed", "changed.bin",
                     data=new, url=u2)
        on_disk = read(os.path.join(d.download_dir, "changed.bin")) \
            if os.path.isfile(os.path.join(d.download_dir, "changed.bin")) \
            else b""
        t.ok(on_disk[:k] != old[:k],
             "... the old version's first bytes were not kept (no splice)")
        reqs = fs.requests("changed.bin")
        t.is_([(r["range"], r["if_range"], r["status"]) for r in reqs],
              [(None, None, 200),
               ("bytes=%d-" % k, etag_of("changed.bin", size, "1"), 200)],
              "the retry sent If-Range with the old ETag and got the new "
              "file (200)")
        has_line(d, b["id"], over, "log says it started over")
        no_part_left(d, "after starting over")
        stop_ok(d)


@t.test(timeout=150)
def restart_from_zero_while_hashing():
    """Issue 12 item 3: a retry that must start over from byte 0 while the
    hasher still reads the bytes the attempt kept.  The .part was truncated
    before the hash was reset; the hasher read 0 bytes, ended the job with
    an error, and the body waited for the digest for ever (running, slot
    and path held).  Every way of starting over is taken here: a 200 to
    the range (range ignored), the file changed (If-Range mismatch), a 416
    that does not match the .part, and a 206 for another range.  A big
    kept part makes the hasher still busy when the answer arrives."""
    size = 64 * MiB
    k = size * 95 // 100
    cases = [
        # (name, options, what the retry's first answer is)
        ("over-norange.bin", {"norange": 1}, 200),
        ("over-changed.bin", {"version": 1, "version2": 2,
                              "change_after": 1}, 200),
        ("over-416.bin", {"bad416": 1, "bad416_times": 1}, 416),
        ("over-206.bin", {"badrange": 1, "badrange_times": 1}, 206),
    ]
    with Corod(t, name="restart-hash") as d:
        tasks = []
        for name, opts, _ in cases:
            u = fs.url(name, size=size, drop=k, **opts)
            tasks.append(d.submit(dl(u, {"max_attempts": 3}, path=name)))
        try:
            got = wait_all(d, [x["id"] for x in tasks], 60)
        except AssertionError as e:
            t.fail("every download that started over ends: %s" % e)
            for x in tasks:
                y = d.get(x["id"])
                t.diag("task %d: %s, log:\n%s" % (
                    x["id"], y["state"], logtext(d, x["id"])[-1500:]))
                d.cancel(x["id"])
            return
        for (name, opts, first), task in zip(cases, tasks):
            x = got[task["id"]]
            version = "2" if "version2" in opts else "1"
            t.is_((x["state"], x["attempt"]), ("succeeded", 2),
                  "%s: succeeded on attempt 2" % name) or \
                t.diag(json.dumps(x)[:1500] + "\n" +
                       logtext(d, task["id"])[-2000:])
            t.is_((x["result"] or {}).get("sha256"),
                  sha256_hex(name, size, version),
                  "%s: the sha256 is the whole file's" % name)
            full = os.path.join(d.download_dir, name)
            t.ok(os.path.isfile(full) and size_or_none(full) == size and
                 sha_file(full) == sha256_hex(name, size, version),
                 "%s: the file on disk is whole" % name)
            reqs = fs.requests(name)
            t.is_([r["status"] for r in reqs[1:2]], [first],
                  "%s: the retry's ranged request got a %d" % (name, first))
            has_line(d, task["id"], r"starting over from byte 0",
                     "%s: the log says it started over" % name)
        no_part_left(d, "after starting over")
        stop_ok(d)


@t.test(timeout=60)
def kill9_resumes():
    size = 2 * MiB
    with Corod(t, name="kill9") as d:
        u = fs.url("k9.bin", size=size, rate=256 * KiB, rate_times=1)
        task = d.submit(dl(u, path="k9.bin", sha256=sha256_hex("k9.bin", size)))
        part = os.path.join(d.download_dir, "k9.bin.part")
        d.wait_for(lambda: (size_or_none(part) or 0) >= 300 * KiB, 10,
                   desc="300 KiB in the .part file")
        t.is_(d.get(task["id"])["state"], "running", "the download runs")
        d.kill9()
        kept = size_or_none(part)
        t.ok(kept is not None and 0 < kept < size,
             "after kill -9 the .part file holds %s bytes" % kept)
        first = fs.requests("k9.bin")[0]
        fs.wait_outcome(first["seq"], 5)
        d.start()
        x = d.wait_state(task["id"], FINAL, 20)
        check_result(d, x, "resumed after kill -9", "k9.bin",
                     data=content("k9.bin", size), url=u, status=None)
        t.is_(x["attempt"], 2, "the restart counted as attempt 2")
        reqs = fs.requests("k9.bin")
        second = reqs[1] if len(reqs) > 1 else {}
        n = range_start(second)
        # ambiguous: N is "the rest" of the .part; a daemon may resume
        # from a smaller, verified offset, never from more than it kept.
        t.ok(len(reqs) == 2 and n is not None and 0 < n <= kept and
             second.get("if_range") == etag_of("k9.bin", size) and
             second.get("status") == 206,
             "after the restart: Range bytes=%s- (kept %s) with If-Range "
             "the ETag, answered 206" % (n, kept),
             diag=repr([(r["range"], r["if_range"], r["status"])
                        for r in reqs]))
        has_line(d, task["id"], r"interrupted",
                 "log says the attempt was interrupted")
        has_line(d, task["id"], r"resuming at byte %s\b" % n,
                 "log says 'resuming at byte %s'" % n)
        no_part_left(d, "after the resume")
        stop_ok(d)


@t.test(timeout=60)
def sigterm_resumes():
    size = 2 * MiB
    with Corod(t, name="sigterm") as d:
        u = fs.url("term.bin", size=size, rate=256 * KiB, rate_times=1)
        task = d.submit(dl(u, path="term.bin"))
        part = os.path.join(d.download_dir, "term.bin.part")
        d.wait_for(lambda: (size_or_none(part) or 0) >= 200 * KiB, 10,
                   desc="200 KiB in the .part file")
        t0 = time.monotonic()
        t.is_(d.stop(), 0, "SIGTERM during a download: exit status 0")
        t.between(time.monotonic() - t0, 0, 5.0, "... promptly")
        kept = size_or_none(part)
        t.ok(kept is not None and kept > 0,
             "the .part file is kept (%s bytes)" % kept)
        d.start()
        x = d.wait_state(task["id"], FINAL, 20)
        check_result(d, x, "resumed after SIGTERM", "term.bin",
                     data=content("term.bin", size), url=u, status=None)
        reqs = fs.requests("term.bin")
        n = range_start(reqs[1]) if len(reqs) > 1 else None
        t.ok(n is not None and 0 < n <= (kept or 0),
             "after the restart it asked for the rest (Range bytes=%s-)" % n)
        stop_ok(d)


def checkpointed(d, task_id):
    """Whether the task's resume state is in the store."""
    rows = d.sql("SELECT checkpoint FROM tasks WHERE id = ?", (task_id,))
    return bool(rows) and rows[0][0] is not None


@t.test(timeout=60)
def complete_part_answered_416():
    # A .part holding every byte while the transfer is not over: a chunked
    # answer whose last chunk never comes (the fileserver's stall).  Then
    # kill -9; the restart asks for bytes=SIZE- and gets a 416 whose length
    # matches the .part: "a complete file: it is verified, not failed".
    # ambiguous: with chunked encoding the first answer announced no
    # length; API.md does not make resume depend on one.
    size = 200000
    with Corod(t, name="416") as d:
        u = fs.url("full.bin", size=size, chunked=1, stall=size, stall_times=1)
        task = d.submit(dl(u, path="full.bin",
                           sha256=sha256_hex("full.bin", size)))
        part = os.path.join(d.download_dir, "full.bin.part")
        try:
            d.wait_for(lambda: size_or_none(part) == size, 10,
                       desc="every byte in the .part file")
            # the resume point is committed after the headers, and may
            # come after the bytes (under valgrind it does)
            d.wait_for(lambda: checkpointed(d, task["id"]), 10,
                       desc="the resume point stored")
        except AssertionError as e:
            t.fail("the .part file did not get every byte: %s" % e)
            return
        d.kill9()
        d.start()
        x = d.wait_state(task["id"], FINAL, 15)
        check_result(d, x, "complete .part + 416", "full.bin",
                     data=content("full.bin", size), url=u, status=None)
        reqs = fs.requests("full.bin")
        t.is_([(r["range"], r["status"]) for r in reqs[1:]],
              [("bytes=%d-" % size, 416)],
              "the restart asked for bytes=%d- and got a 416" % size)
        no_part_left(d, "416")
        stop_ok(d)


# --- cancel -------------------------------------------------------------------------

@t.test(timeout=30)
def cancel_slow_transfer():
    size = 4 * MiB
    with Corod(t, name="cancel") as d:
        u = fs.url("cancel.bin", size=size, rate=128 * KiB)
        task = d.submit(dl(u, path="cancel.bin"))
        part = os.path.join(d.download_dir, "cancel.bin.part")
        d.wait_for(lambda: (size_or_none(part) or 0) >= 100 * KiB, 10,
                   desc="100 KiB in the .part file")
        rec = fs.requests("cancel.bin")[0]
        t0 = time.monotonic()
        r = d.cancel(task["id"])
        t.ok(r.status in (200, 202), "cancel of a running download: %d" %
             r.status)
        x = d.wait_state(task["id"], FINAL, 5)
        el = time.monotonic() - t0
        t.is_(x["state"], "canceled", "it ends canceled")
        t.ok(el < scaled(2.0), "... quickly (%.2f s)" % el)
        try:
            closed = fs.wait_outcome(rec["seq"], 3)
            t.is_(closed["outcome"], "peer_closed",
                  "the server saw the connection closed")
            t.ok(closed["t_end"] - t0 < scaled(3.0),
                 "... %.2f s after the cancel" % (closed["t_end"] - t0))
            t.ok(closed["sent"] < size, "... mid-body (%d of %d bytes "
                 "sent)" % (closed["sent"], size))
        except AssertionError as e:
            t.fail("the server's connection was not closed: %s" % e)
        try:
            d.wait_for(lambda: size_or_none(part) is None, 2,
                       desc=".part removed")
            t.ok(True, "the .part file is removed")
        except AssertionError:
            t.fail("the .part file is removed (still %s bytes)" %
                   size_or_none(part))
        t.is_(files_under(d.download_dir), [], "nothing is left on disk")
        has_line(d, task["id"], r"cancel requested", "log: cancel requested")
        has_line(d, task["id"], r"(?m)canceled$", "log: canceled")
        stop_ok(d)


@t.test(timeout=30)
def path_in_use():
    with Corod(t, name="in-use") as d:
        u = fs.url("inuse.bin", size=MiB, rate=512 * KiB)
        a = d.submit(dl(u, path="same.bin"))
        d.wait_state(a["id"], "running", 5)
        b = d.submit(dl(fs.url("inuse2.bin", size=1000), path="same.bin",
                        overwrite=True))
        x = d.wait_state(b["id"], FINAL, 5)
        t.is_((x["state"], (x["error"] or {}).get("code")),
              ("failed", "path_in_use"),
              "a second download to the same path while the first runs: "
              "failed path_in_use")
        y = d.wait_state(a["id"], FINAL, 10)
        check_result(d, y, "the first one", "same.bin",
                     data=content("inuse.bin", MiB), url=u)
        stop_ok(d)


# --- checksums -----------------------------------------------------------------------

@t.test(timeout=20)
def checksums():
    with Corod(t, name="sha") as d:
        size = 100000
        u = fs.url("sum.bin", size=size)
        a = d.submit(dl(u, path="good.bin", sha256=sha256_hex("sum.bin", size)))
        wrong = sha256_hex("sum.bin", size, "other")
        b = d.submit(dl(u, {"max_attempts": 3}, path="bad.bin", sha256=wrong))
        got = wait_all(d, [a["id"], b["id"]], 10)
        check_result(d, got[a["id"]], "the right sha256", "good.bin",
                     data=content("sum.bin", size), url=u)
        x = got[b["id"]]
        t.is_((x["state"], (x["error"] or {}).get("code"), x["attempt"]),
              ("failed", "checksum_mismatch", 1),
              "a wrong sha256: failed checksum_mismatch, not retried")
        t.is_(files_under(d.download_dir), ["good.bin"],
              "nothing of the mismatched download is left (no file, no "
              ".part)")
        stop_ok(d)


# --- validation at submission ----------------------------------------------------------

@t.test(timeout=30)
def refused_at_submission():
    with Corod(t, name="validation") as d:
        ok_url = fs.url("never.bin", size=10)
        accepted = []

        def post(spec):
            # A delay, so that anything wrongly accepted never runs (the
            # daemon may run as root: "/etc/passwd" must stay a string).
            spec = dict(spec)
            spec["delay"] = 3600
            r = d.request("POST", "/v1/tasks", spec)
            if r.status == 201:
                accepted.append(r.body["id"])
            return r

        def bad(params, field, desc):
            p = {"url": ok_url}
            p.update(params)
            if params.get("url", 0) is None:
                del p["url"]
            problem(post({"kind": "download", "params": p}), 400, desc,
                    field)

        goods = []

        def good(params, desc):
            p = {"url": ok_url}
            p.update(params)
            r = post({"kind": "download", "params": p})
            goods.append(r.status)
            t.is_(r.status, 201, desc) or t.diag(r.describe())

        P = "/params/path"
        for path in ("../x", "/etc/passwd", "a/../../x", "a//b", "./a",
                     "x.part", "a/b.part", ".", "..", "a/.", "a/..", "a/",
                     "", "a\x01b", "a\nb", "a\tb", "\x1b[31m", "a\x7fb"):
            # ambiguous: DEL (0x7f) is taken as a control character.
            bad({"path": path}, P, "path %s -> 400 %s" % (json.dumps(path),
                                                          P))
        bad({"path": 5}, P, "path 5 (not a string)")
        bad({"path": "a" * 256}, P, "a path component of 256 bytes")
        long_ok = "/".join(["a" * 255, "b" * 255, "c" * 255, "d" * 254, "e"])
        bad({"path": long_ok + "e"}, P, "a path of 1025 bytes")

        U = "/params/url"
        for url in ("file:///etc/passwd", "ftp://127.0.0.1/x",
                    "gopher://127.0.0.1/x", "http://", "https://",
                    "http:///x", "127.0.0.1/x", "", "mailto:a@b",
                    "javascript:alert(1)"):
            bad({"url": url}, U, "url %s -> 400 %s" % (json.dumps(url), U))
        for v, what in ((5, "a number"), (["http://x/"], "an array"),
                        ({"u": 1}, "an object"), (True, "true")):
            bad({"url": v}, U, "url %s" % what)
        bad({"url": None}, U, "no url")
        base = fs.base + "/data/"
        bad({"url": base + "a" * (9000 - len(base))}, U, "a 9000-byte url")
        bad({"url": base + "a" * (8193 - len(base))}, U, "an 8193-byte url")

        S = "/params/sha256"
        for v, what in (("a" * 63, "63 hex digits"), ("a" * 65,
                                                      "65 hex digits"),
                        ("g" * 64, "64 non-hex characters"),
                        ("", "empty"), (5, "a number")):
            bad({"sha256": v}, S, "sha256 %s" % what)

        H = "/params/headers"
        for name, val, field, what in (
                ("X-A", "a\r\nX-Injected: 1", H + "/X-A", "value with CR LF"),
                ("X-A", "a\nb", H + "/X-A", "value with LF"),
                ("X-A", "a\rb", H + "/X-A", "value with CR"),
                ("X-A", 5, H + "/X-A", "value a number"),
                ("Range", "bytes=0-", H + "/Range", "Range"),
                ("If-Range", '"x"', H + "/If-Range", "If-Range"),
                # ambiguous: header names are case-insensitive, so "range"
                # is the same header as "Range".
                ("range", "bytes=0-", H + "/range", "range (lower case)"),
                ("Bad Name", "x", (H + "/Bad Name", H), "a name with a space"),
                ("a:b", "x", (H + "/a:b", H), "a name with a colon"),
                ("a/b", "x", (H + "/a~1b", H), "a name with a slash"),
                ("", "x", (H + "/", H), "an empty name")):
            bad({"headers": {name: val}}, field, "header %s -> 400" % what)
        bad({"headers": "X-A: b"}, H, "headers a string")
        bad({"headers": ["X-A", "b"]}, H, "headers an array")
        bad({"headers": {"X-H%d" % i: "v" for i in range(65)}}, H,
            "65 headers")

        for k, v in (("overwrite", "yes"), ("overwrite", 1),
                     ("max_bytes", 0), ("max_bytes", -1), ("max_bytes", 1.5),
                     ("max_bytes", "10"), ("connect_timeout", 0),
                     ("connect_timeout", -1), ("connect_timeout", "5"),
                     ("low_speed_limit", "1"), ("low_speed_time", "60"),
                     ("max_redirects", 21), ("max_redirects", -1),
                     ("max_redirects", 1.5), ("max_redirects", "3")):
            bad({k: v}, "/params/" + k, "%s %s" % (k, json.dumps(v)))
        bad({"bogus": 1}, "/params/bogus", "an unknown param")
        bad({"Url": ok_url}, "/params/Url", "a param in the wrong case")

        # Batches: the first bad element is reported with its index.
        r = d.request("POST", "/v1/tasks", [
            dl(ok_url, {"delay": 3600}),
            dl(ok_url, {"delay": 3600}, path="../x")])
        problem(r, 400, "a batch with a bad path names it",
                "/1/params/path")
        r = d.request("POST", "/v1/tasks", {"kind": "gather", "params": {
            "tasks": [dl("ftp://127.0.0.1/x")]}, "delay": 3600})
        problem(r, 400, "a gather child with a bad url names it",
                "/params/tasks/0/params/url")
        t.is_(accepted, [], "none of these was accepted")
        for i in accepted:
            d.cancel(i)

        # What is allowed.
        n0 = len(d.list_all())
        good({"path": long_ok}, "a path of 1024 bytes, components of 255")
        good({"path": "...", "headers": {}}, "path \"...\" (not \"..\")")
        good({"path": ".hidden/a.partial"}, "path \".hidden/a.partial\"")
        good({"url": base + "a" * (8192 - len(base))}, "an 8192-byte url")
        good({"headers": {"X-H%d" % i: "v" for i in range(64)}},
             "64 headers")
        good({"headers": {"User-Agent": "x/1", "X-Empty": ""}},
             "a User-Agent and an empty value")
        good({"max_redirects": 0, "max_bytes": 1, "overwrite": True,
              "connect_timeout": 0.5, "low_speed_limit": 10,
              "low_speed_time": 2, "sha256": "0" * 64},
             "every optional param")
        good({"max_redirects": 20}, "max_redirects 20")
        t.is_(len(d.list_all()) - n0, goods.count(201),
              "the good ones are stored")
        for x in d.list_all():
            if x["state"] not in FINAL:
                d.cancel(x["id"])
        t.is_(files_under(d.download_dir), [], "nothing was downloaded")
        t.is_(fs.requests("never.bin"), [], "nothing was fetched")
        stop_ok(d)


# --- the download directory -------------------------------------------------------------

@t.test(timeout=40)
def symlinks_and_overwrite():
    outside = tempfile.mkdtemp(prefix="corod-outside-")
    try:
        with Corod(t, name="confine") as d:
            dd = d.download_dir
            os.makedirs(dd, exist_ok=True)
            u = fs.url("conf.bin", size=5000)
            new = content("conf.bin", 5000)

            # A directory component that is a symlink leading out.
            os.symlink(outside, os.path.join(dd, "evil"))
            os.makedirs(os.path.join(dd, "sub"))
            os.symlink(outside, os.path.join(dd, "sub", "evil2"))
            a = d.submit(dl(u, path="evil/x"))
            b = d.submit(dl(u, path="sub/evil2/deeper/x"))
            for x, p in ((a, "evil/x"), (b, "sub/evil2/deeper/x")):
                y = d.wait_state(x["id"], FINAL, 10)
                t.is_((y["state"], (y["error"] or {}).get("code")),
                      ("failed", "io_error"),
                      "path %s through a symlink to a directory outside: "
                      "failed io_error" % p)
            t.is_(os.listdir(outside), [], "nothing was written outside")

            # A symlink at the .part name.
            precious = os.path.join(outside, "precious")
            with open(precious, "wb") as f:
                f.write(b"precious\n")
            planted = os.path.join(dd, "victim.part")
            os.symlink(precious, planted)
            c = d.submit(dl(u, path="victim"))
            y = d.wait_state(c["id"], FINAL, 10)
            t.is_(read(precious), b"precious\n",
                  "a symlink at <path>.part is not written through (the "
                  "task %s: %s)" % (y["state"], json.dumps(y["error"])))
            if y["state"] == "succeeded":
                t.is_(read(os.path.join(dd, "victim")), new,
                      "... the file is right")
            # ambiguous: whether a failed task removes a .part symlink it
            # did not make; either it is gone or still points where it did.
            t.ok(not os.path.lexists(planted) or
                 (os.path.islink(planted) and
                  os.readlink(planted) == precious),
                 "... the planted symlink was not written through")
            if os.path.lexists(planted):
                os.unlink(planted)

            # A symlink at the path itself, overwrite: replaced, not
            # followed.
            keep = os.path.join(outside, "keep.txt")
            with open(keep, "wb") as f:
                f.write(b"keep\n")
            os.symlink(keep, os.path.join(dd, "link"))
            e = d.submit(dl(u, path="link", overwrite=True))
            y = d.wait_state(e["id"], FINAL, 10)
            check_result(d, y, "a symlink at the path with overwrite",
                         "link", data=new, url=u)
            t.is_(read(keep), b"keep\n", "... the symlink's target is "
                  "untouched")

            # An existing file.
            old = os.path.join(dd, "old.txt")
            with open(old, "wb") as f:
                f.write(b"old content\n")
            u2 = fs.url("exists.bin", size=5000)
            g = d.submit(dl(u2, {"max_attempts": 3}, path="old.txt"))
            y = d.wait_state(g["id"], FINAL, 10)
            t.is_((y["state"], (y["error"] or {}).get("code"), y["attempt"]),
                  ("failed", "exists", 1),
                  "an existing file without overwrite: failed exists")
            t.is_(read(old), b"old content\n", "... the old content is intact")
            # "fails the task exists before any byte is fetched": taken
            # as no request at all.
            t.is_(fs.requests("exists.bin"), [],
                  "... and nothing was fetched")
            h = d.submit(dl(u2, path="old.txt", overwrite=True))
            y = d.wait_state(h["id"], FINAL, 10)
            check_result(d, y, "overwrite true", "old.txt",
                         data=content("exists.bin", 5000), url=u2)
            no_part_left(d, "symlinks and overwrite")
            stop_ok(d)
    finally:
        shutil.rmtree(outside, ignore_errors=True)


@t.test(timeout=40)
def part_hard_link():
    """Issue 12 item 9: a .part planted as a hard link to another file was
    truncated and written in place.  Now the .part is created with O_EXCL,
    and an existing one with another name (st_nlink != 1) fails the task,
    final, io_error, leaving the other file as it was: on a first attempt
    (which would empty it) and on a retry (which would resume into it)."""
    with Corod(t, name="hardlink") as d:
        dd = d.download_dir
        os.makedirs(dd, exist_ok=True)
        precious = os.path.join(d.dir, "precious")
        with open(precious, "wb") as f:
            f.write(b"precious bytes\n" * 100)
        before = read(precious)

        # a first attempt: the .part would be emptied
        os.link(precious, os.path.join(dd, "first.bin.part"))
        a = d.submit(dl(fs.url("hl-first.bin", size=5000),
                        {"max_attempts": 3}, path="first.bin"))
        x = d.wait_state(a["id"], FINAL, 10)
        t.is_((x["state"], (x["error"] or {}).get("code"), x["attempt"]),
              ("failed", "io_error", 1),
              "a .part that is a hard link: failed io_error, not retried")
        t.like((x["error"] or {}).get("message", ""), r"hard link",
               "... the message says it is a hard link")
        t.ok(read(precious) == before, "... the linked file is untouched")
        t.is_(fs.requests("hl-first.bin"), [], "... and nothing was fetched")

        # a retry: the .part would be resumed into
        k = 3000
        b = d.submit(dl(fs.url("hl-retry.bin", size=10000, drop=k),
                        {"max_attempts": 2}, path="retry.bin"))
        part = os.path.join(dd, "retry.bin.part")
        d.wait_for(lambda: re.search(r"retrying in", logtext(d, b["id"])),
                   10, desc="attempt 1 failed and waits for its retry")
        t.is_(size_or_none(part), k, "attempt 1 kept %d bytes" % k)
        os.unlink(part)
        os.link(precious, part)
        x = d.wait_state(b["id"], FINAL, 10)
        t.is_((x["state"], (x["error"] or {}).get("code"), x["attempt"]),
              ("failed", "io_error", 2),
              "a kept .part replaced by a hard link before the retry: "
              "failed io_error on attempt 2")
        t.ok(read(precious) == before, "... the linked file is untouched")
        t.is_(len(fs.requests("hl-retry.bin")), 1,
              "... and the retry fetched nothing")
        stop_ok(d)


@t.test(timeout=30)
def download_dir_removed():
    """Issue 12 item 9: the download directory removed while the daemon
    runs is made again when a download starts (it failed io_error)."""
    with Corod(t, name="dir-removed") as d:
        dd = d.download_dir
        a = d.submit(dl(fs.url("dir-a.bin", size=1000), path="dir-a.bin"))
        x = d.wait_state(a["id"], FINAL, 10)
        t.is_(x["state"], "succeeded", "a first download")
        shutil.rmtree(dd)
        t.ok(not os.path.exists(dd), "the download directory is removed")
        b = d.submit(dl(fs.url("dir-b.bin", size=1000), path="sub/b.bin"))
        x = d.wait_state(b["id"], FINAL, 10)
        check_result(d, x, "a given path after the directory was removed",
                     "sub/b.bin", data=content("dir-b.bin", 1000),
                     status=None)
        shutil.rmtree(dd, ignore_errors=True)
        c = d.submit(dl(fs.url("dir-c.bin", size=1000)))
        x = d.wait_state(c["id"], FINAL, 10)
        check_result(d, x, "a default name after the directory was removed",
                     "dir-c.bin", data=content("dir-c.bin", 1000),
                     status=None)
        t.ok(re.search(r"download directory .* was missing",
                       d.output(whole=True)) is not None,
             "the daemon's log says it made the directory again",
             diag=d.output_tail(20))
        stop_ok(d)


@t.test(timeout=40)
def rate_after_restart_from_zero():
    """Issue 12 item 9: progress "rate" went negative after a restart
    from byte 0 (bytes now minus the bytes at the last mark, taken before
    the truncation).  Every progress event of the task is read back from
    the change feed."""
    size, k, rate = MiB, 700 * KiB, 256 * KiB
    with Corod(t, name="rate") as d:
        u = fs.url("rate-norange.bin", size=size, drop=k, norange=1,
                   rate=rate)
        a = d.submit(dl(u, {"max_attempts": 2}, path="rate.bin"))
        x = d.wait_state(a["id"], FINAL, 30)
        t.is_((x["state"], x["attempt"]), ("succeeded", 2),
              "a throttled download restarted from byte 0 on attempt 2")
        r = d.request("GET", "/v1/events?since=0&limit=10000")
        evs = [e for e in (r.body or {}).get("events", [])
               if e.get("task") == a["id"] and e.get("progress")]
        rates = [e["progress"].get("rate") for e in evs]
        cur = [e["progress"].get("current") for e in evs]
        t.ok(len(evs) >= 4, "progress events seen (%d)" % len(evs))
        t.ok(any(b < a_ for a_, b in zip(cur, cur[1:])),
             "current went back to the start once (a restart)",
             diag=repr(cur))
        t.ok(all(isinstance(v, (int, float)) and v >= 0 for v in rates),
             "rate is never negative", diag=repr(list(zip(cur, rates))))
        stop_ok(d)


@t.test(timeout=40)
def default_names():
    with Corod(t, name="names") as d:
        dd = d.download_dir
        os.makedirs(dd, exist_ok=True)

        def run(url, desc):
            x = d.submit(dl(url))
            y = d.wait_state(x["id"], FINAL, 10)
            t.is_(y["state"], "succeeded", "%s: succeeded" % desc) or \
                t.diag(json.dumps(y)[:1000])
            return (y.get("result") or {}).get("path")

        p = run(fs.url("cd-name", size=100, cd="report.pdf"),
                "Content-Disposition")
        t.is_(p, "report.pdf", "the name comes from Content-Disposition")
        t.is_(read(os.path.join(dd, "report.pdf")) if p else None,
              content("cd-name", 100), "... with the content")
        u = fs.url("dir/file.bin", size=200)
        t.is_(run(u, "URL"), "file.bin",
              "without it, the URL path's last segment (the query is no "
              "part of it)")
        t.is_(run(u, "again"), "file.bin.1", "a second time: file.bin.1")
        t.is_(run(u, "third"), "file.bin.2", "a third time: file.bin.2")
        t.ok(all(read(os.path.join(dd, n)) == content("dir/file.bin", 200)
                 for n in ("file.bin", "file.bin.1", "file.bin.2")
                 if os.path.isfile(os.path.join(dd, n))),
             "... each holds the content")
        with open(os.path.join(dd, "taken.bin"), "wb") as f:
            f.write(b"mine\n")
        t.is_(run(fs.url("taken.bin", size=50), "taken"), "taken.bin.1",
              "a name taken by another file gets .1")
        t.is_(read(os.path.join(dd, "taken.bin")), b"mine\n",
              "... the other file is untouched")
        esc = "cd-escape-%d-%d.txt" % (os.getpid(), int(time.time()))
        p = run(fs.url("cd-evil", size=100, cd="../../" + esc),
                "Content-Disposition ../../")
        t.is_(p, esc, "a Content-Disposition with ../../ keeps the base name")
        outside = [os.path.join(d.dir, esc),
                   os.path.join(os.path.dirname(d.dir), esc),
                   os.path.join(os.path.dirname(os.path.dirname(d.dir)), esc)]
        t.is_([x for x in outside if os.path.lexists(x)], [],
              "... nothing was written outside the download directory")
        for x in outside:
            if os.path.lexists(x) and os.path.isfile(x):
                os.unlink(x)
        t.is_(run(fs.url("cd-dirs", size=10, cd="a/b/c.txt"),
                  "Content-Disposition a/b/c.txt"), "c.txt",
              "a Content-Disposition with directories keeps the base name")
        t.is_(run(fs.url_path("/nameless/", size=10), "no name"),
              "download", "a URL ending in / gives \"download\"")
        t.is_(part_files(d), [], "no .part file left")
        stop_ok(d)


@t.test(timeout=40)
def names_not_utf8():
    """Issue 12 item 7b: a Latin-1 Content-Disposition and a URL whose last
    segment is not UTF-8 once decoded.  The task used to succeed with
    "result": null (the result could not be made JSON), no checkpoint,
    a new name each retry and orphan .part files; the log was not UTF-8.
    Names are UTF-8 now: filename= that is not UTF-8 is read as
    ISO-8859-1, bytes of the URL that are not UTF-8 become U+FFFD
    (API.md, "path"); filename*= and escaped quotes are decoded."""
    size, k = 300000, 100000
    with Corod(t, name="names-utf8") as d:
        dd = d.download_dir
        # the fileserver sends header values in Latin-1: é is one byte 0xe9
        u1 = fs.url("latin1-cd", size=size, cd="r\u00e9sum\u00e9.pdf",
                    drop=k)
        a = d.submit(dl(u1, {"max_attempts": 2}))
        u2 = fs.base + "/data/x%ff.bin?size=1000"
        b = d.submit(dl(u2))
        u3 = fs.url("quoted-cd", size=100, cd='a"b.txt')
        c = d.submit(dl(u3))
        got = wait_all(d, [a["id"], b["id"], c["id"]], 20)

        x = got[a["id"]]
        want = "r\u00e9sum\u00e9.pdf"
        t.is_((x["state"], x["attempt"], (x["result"] or {}).get("path")),
              ("succeeded", 2, want),
              "Latin-1 filename=: succeeded on attempt 2 with the name "
              "read as ISO-8859-1 (%s)" % ascii(want)) or \
            t.diag(json.dumps(x)[:1500])
        full = os.path.join(dd, want)
        t.ok(os.path.isfile(full) and read(full) == content("latin1-cd", size),
             "... the file is there under that (UTF-8) name, whole",
             diag=repr(os.listdir(dd)))
        reqs = fs.requests("latin1-cd")
        t.is_([r["range"] for r in reqs], [None, "bytes=%d-" % k],
              "... the retry resumed the same .part (it was checkpointed)")
        raw, good = raw_log(d, a["id"])
        t.ok(good, "... its log is UTF-8", diag=repr(raw[-600:]))

        x = got[b["id"]]
        want = "x\ufffd.bin"
        t.is_((x["state"], (x["result"] or {}).get("path")),
              ("succeeded", want),
              "URL x%ff.bin: succeeded, the byte that is not UTF-8 is "
              "U+FFFD") or t.diag(json.dumps(x)[:1500])
        t.ok(os.path.isfile(os.path.join(dd, want)),
             "... the file is there under that name",
             diag=repr(os.listdir(dd)))
        raw, good = raw_log(d, b["id"])
        t.ok(good, "... its log is UTF-8", diag=repr(raw[-600:]))

        x = got[c["id"]]
        t.is_((x["state"], (x["result"] or {}).get("path")),
              ("succeeded", 'a"b.txt'),
              'filename="a\\"b.txt": the escaped quote is unescaped')
        t.is_(part_files(d), [], "no .part file left")
        stop_ok(d)


# --- request headers ---------------------------------------------------------------------

@t.test(timeout=20)
def request_headers():
    with Corod(t, name="headers") as d:
        a = d.submit(dl(fs.url("hdr-a.bin", size=100), path="a.bin",
                        headers={"X-Corod-Test": "hello world",
                                 "Accept": "application/x-test",
                                 "Authorization": "Bearer t0ken"}))
        b = d.submit(dl(fs.url("hdr-b.bin", size=100), path="b.bin",
                        headers={"User-Agent": "custom-agent/1.0"}))
        wait_all(d, [a["id"], b["id"]], 10)
        ra = fs.requests("hdr-a.bin")
        rb = fs.requests("hdr-b.bin")
        h = ra[0]["headers"] if ra else {}
        t.is_((h.get("x-corod-test"), h.get("accept"),
               h.get("authorization")),
              ("hello world", "application/x-test", "Bearer t0ken"),
              "the custom headers arrived")
        t.like(h.get("user-agent"), r"^corod/\S+",
               "the default User-Agent is corod/VERSION")
        t.is_(rb[0]["user_agent"] if rb else None, "custom-agent/1.0",
              "a User-Agent header replaces corod's")
        t.is_((d.get(a["id"])["state"], d.get(b["id"])["state"]),
              ("succeeded", "succeeded"), "both succeeded")
        stop_ok(d)


# --- limits and failures ---------------------------------------------------------------------

@t.test(timeout=30)
def max_bytes():
    with Corod(t, name="max-bytes") as d:
        a = d.submit(dl(fs.url("big-ann.bin", size=10000), {"max_attempts": 3},
                        path="a.bin", max_bytes=5000))
        b = d.submit(dl(fs.url("big-chunk.bin", size=100000, chunked=1),
                        {"max_attempts": 3}, path="b.bin", max_bytes=5000))
        u = fs.url("exact.bin", size=5000)
        c = d.submit(dl(u, path="c.bin", max_bytes=5000))
        got = wait_all(d, [a["id"], b["id"], c["id"]], 10)
        for x, what in ((got[a["id"]], "announced (Content-Length 10000)"),
                        (got[b["id"]], "received (chunked, 100000 bytes)")):
            t.is_((x["state"], (x["error"] or {}).get("code"), x["attempt"]),
                  ("failed", "too_large", 1),
                  "a body beyond max_bytes 5000, %s: too_large, not retried"
                  % what)
        check_result(d, got[c["id"]], "exactly max_bytes", "c.bin",
                     data=content("exact.bin", 5000), url=u)
        t.is_(files_under(d.download_dir), ["c.bin"],
              "the too large ones left nothing")
        stop_ok(d)


@t.test(timeout=40)
def bad_responses_and_network():
    with Corod(t, name="bad-response") as d:
        # ambiguous: a body shorter than its Content-Length, closed with a
        # FIN, is both "dropped mid-body" (network) and "a body shorter than
        # announced" (bad_response); the latter is the more specific.
        a = d.submit(dl(fs.url("lie.bin", size=1000, lie=5000), path="lie.bin"))
        b = d.submit(dl(fs.url("badrange.bin", size=MiB, drop=300000,
                               badrange=1), {"max_attempts": 2},
                        path="badrange.bin"))
        c = d.submit(dl("http://127.0.0.1:%d/refused" % free_port(),
                        path="refused.bin"))
        f = d.submit(dl(fs.url("always206.bin", size=1000, status=206),
                        path="always206.bin"))
        # No body byte at all: slower than 1000 bytes/s from the start.
        # ambiguous: how "slower than" is measured (libcurl averages over
        # a window of a few seconds) makes the time after a burst of bytes
        # open; with none it is not.
        e = d.submit(dl(fs.url("stall.bin", size=100000, stall=0),
                        path="stall.bin", low_speed_limit=1000,
                        low_speed_time=1))
        got = wait_all(d, [x["id"] for x in (a, b, c, e, f)], 20)
        x = got[a["id"]]
        t.is_((x["state"], (x["error"] or {}).get("code")),
              ("failed", "bad_response"),
              "a body shorter than its Content-Length: bad_response")
        x = got[b["id"]]
        reqs = fs.requests("badrange.bin")
        t.is_([(r["range"], r["status"]) for r in reqs],
              [(None, 200), ("bytes=300000-", 206), (None, 200)],
              "a 206 for another range: corod starts over without a range")
        t.is_((x["state"], x["attempt"]), ("succeeded", 2),
              "... and the file is complete on attempt 2")
        t.is_((x["result"] or {}).get("sha256"),
              sha256_hex("badrange.bin", MiB), "... and right")
        t.like(logtext(d, b["id"]),
               r"does not fit bytes 300000-: starting over",
               "... and the log says it started over")
        x = got[f["id"]]
        t.is_((x["state"], (x["error"] or {}).get("code"), x["attempt"]),
              ("failed", "bad_response", 1),
              "206 to requests without a range, three times: bad_response")
        x = got[c["id"]]
        t.is_((x["state"], (x["error"] or {}).get("code")),
              ("failed", "network"), "connection refused: network")
        x = got[e["id"]]
        t.is_((x["state"], (x["error"] or {}).get("code")),
              ("failed", "network"),
              "slower than low_speed_limit for low_speed_time: network")
        if x["started_at"] and x["finished_at"]:
            el = parse_time(x["finished_at"]) - parse_time(x["started_at"])
            t.between(el, 0.5, scaled(5.0), "... after about 1 s")
        r = fs.requests("stall.bin")
        if r:
            try:
                fs.wait_outcome(r[0]["seq"], 3)
                t.ok(True, "... and its connection was closed")
            except AssertionError as err:
                t.fail("... and its connection was closed: %s" % err)
        left = [p for x, p in ((a, "lie.bin"), (b, "badrange.bin"),
                               (c, "refused.bin"), (e, "stall.bin"),
                               (f, "always206.bin"))
                if got[x["id"]]["state"] == "failed"
                for p in (p, p + ".part")
                if os.path.lexists(os.path.join(d.download_dir, p))]
        t.is_(left, [], "the final failures left no file and no .part")
        stop_ok(d)


@t.test(timeout=40)
def trickle_default_low_speed_limit():
    """Issue 12 item 9: a server trickling 1 byte/s held a download slot
    for ever with the default low_speed_limit (1 byte/s: never slower).
    The default is 1024 bytes/s now (API.md); the window is shortened
    here with low_speed_time so the test stays short."""
    with Corod(t, name="trickle") as d:
        u = fs.url("trickle.bin", size=1000, rate=1)
        a = d.submit(dl(u, path="trickle.bin", low_speed_time=2))
        x = d.wait_state(a["id"], FINAL, 20)
        t.is_((x["state"], (x["error"] or {}).get("code")),
              ("failed", "network"),
              "1 byte/s with the default limit over 2 s: failed network")
        el = None
        if x.get("started_at") and x.get("finished_at"):
            el = parse_time(x["finished_at"]) - parse_time(x["started_at"])
        t.ok(el is not None and el < scaled(10),
             "... after a few seconds (%s s)" % el)
        reqs = fs.requests("trickle.bin")
        t.ok(reqs and 0 < reqs[0]["sent"] < 100,
             "... while the server was trickling (%s bytes sent)" %
             (reqs[0]["sent"] if reqs else None))
        t.ok(not os.path.lexists(os.path.join(d.download_dir,
                                              "trickle.bin.part")),
             "... and the final failure left no .part")
        # an explicit lower limit still lets it run
        b = d.submit(dl(fs.url("trickle2.bin", size=4, rate=1),
                        path="trickle2.bin", low_speed_limit=1,
                        low_speed_time=30))
        x = d.wait_state(b["id"], FINAL, 20)
        t.is_(x["state"], "succeeded",
              "with low_speed_limit 1 the same trickle of 4 bytes succeeds")
        stop_ok(d)


@t.test(timeout=60)
def disk_full():
    """No space left: the task fails disk_full (final, even with attempts
    left), its partial file is removed, and once there is room again the
    next download works.  The download directory is a 2 MiB tmpfs, which
    needs root (CI runs as root)."""
    if os.geteuid() != 0:
        t.skip("disk_full", "mounting a small tmpfs needs root")
        return
    mnt = tempfile.mkdtemp(prefix="corod-full-")
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs",
                        mnt], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    if p.returncode != 0:
        os.rmdir(mnt)
        t.skip("disk_full", "cannot mount a tmpfs here: %s" %
               p.stdout.decode("utf-8", "replace").strip())
        return
    try:
        with Corod(t, name="disk-full",
                   args=["--download-dir", mnt]) as d:
            big = d.submit(dl(fs.url("full.bin", size=4 * MiB),
                              {"max_attempts": 3}, path="full.bin"))
            x = d.wait_state(big["id"], FINAL, 15)
            t.is_((x["state"], (x["error"] or {}).get("code"),
                   x["attempt"]), ("failed", "disk_full", 1),
                  "4 MiB into 2 MiB: failed disk_full on attempt 1 of 3")
            t.like((x["error"] or {}).get("message", ""), r"no space",
                   "... saying there is no space")
            t.is_(sorted(os.listdir(mnt)), [],
                  "... and the partial file is removed")
            small = d.submit(dl(fs.url("fits.bin", size=MiB),
                                path="fits.bin"))
            x = d.wait_state(small["id"], FINAL, 15)
            t.is_((x["state"], (x["result"] or {}).get("sha256")),
                  ("succeeded", sha256_hex("fits.bin", MiB)),
                  "with room again, a 1 MiB download succeeds")
            stop_ok(d)
    finally:
        subprocess.run(["umount", mnt])
        os.rmdir(mnt)


t.done()
