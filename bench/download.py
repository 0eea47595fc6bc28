#!/usr/bin/env python3
"""bench/download.py — corod's `download` kind against curl, from a local nginx.

Starts Debian's nginx (NGINX_BIN, default /usr/sbin/nginx) on 127.0.0.1 with a
private generated configuration (daemon off, own pid file, temp dirs and error
log, sendfile on, access_log off, /slow/ throttled with limit_rate), generates
random source files into its root (not timed), and measures, side by side:

  big     one 1 GiB file: `curl -s -o FILE URL` vs one corod download task
          (submission to final state, GET /v1/tasks/{id}?wait=30&version=V);
          DL_RUNS (3) runs each, contenders alternated; medians.
  many    64 files of 16 MiB at once: `curl -s -Z --parallel-max 64` (one
          process), 64 concurrent `curl -s -o` (xargs -P 64), and one corod
          `gather` of 64 downloads (daemon started with --max-downloads 64);
          DL_RUNS runs each, rotated; medians. corod's VmRSS is sampled every
          50 ms during its runs (baseline, peak, growth).
  cancel  DL_CANCEL_TRIALS (20) downloads from /slow/ (1 MiB/s): once running
          with progress, time POST /v1/tasks/{id}/cancel until the task is seen
          `canceled` (the cancel answer, else ?wait= on the next version);
          p50, p99, max.

Every download is checked: size, and sha256 against the source's (corod's
result.sha256 and, with DL_VERIFY=1, the bytes on disk for both contenders).
Curl and corod write to directories on the same filesystem; written files are
removed after each run and the page cache is synced (sync) before each timed
run. Prints result lines and, as comments, raw readings and a table of the
figures against their targets with PASS/MISS.

Each section starts with one untimed curl warm-up. An answer to ?wait= whose
task changed but kept its version (a daemon bug: the waiter is only woken by
its timeout) is warned about and counted; DL_POLL=0.005 waits with plain GETs
5 ms apart instead. Raw readings show corod's created_at -> finished_at and the
CPU used by each contender.

DL_CURL_ONLY=1 runs only the curl half (no daemon needed).
"""

import atexit
import hashlib
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import Daemon, comment, corod_bin, die, parse_rfc3339_us, percentile, result, table, verdict

MIB = 1 << 20
BIG_MIB = int(os.environ.get("DL_BIG_MIB", "1024"))
MANY_FILES = int(os.environ.get("DL_MANY_FILES", "64"))
MANY_MIB = int(os.environ.get("DL_MANY_MIB", "16"))
RUNS = int(os.environ.get("DL_RUNS", "3"))
CANCEL_TRIALS = int(os.environ.get("DL_CANCEL_TRIALS", "20"))
SLOW_RATE = os.environ.get("DL_SLOW_RATE", "1m")
MAX_DOWNLOADS = int(os.environ.get("DL_MAX_DOWNLOADS", str(MANY_FILES)))
TIMEOUT = float(os.environ.get("DL_TIMEOUT", "120"))        # per timed run
SECTIONS = os.environ.get("DL_SECTIONS", "big many cancel").replace(",", " ").split()
CURL_ONLY = os.environ.get("DL_CURL_ONLY", "0") == "1"
VERIFY = os.environ.get("DL_VERIFY", "1") != "0"
SYNC = os.environ.get("DL_SYNC", "")                        # corod --sync, empty: its default
NGINX_BIN = os.environ.get("NGINX_BIN", "/usr/sbin/nginx")
NGINX_WORKERS = os.environ.get("DL_NGINX_WORKERS", "auto")
CURL_BIN = os.environ.get("CURL_BIN", "curl")
WAIT = int(os.environ.get("DL_WAIT", "30"))                 # ?wait=S while waiting for corod
POLL = float(os.environ.get("DL_POLL", "0"))                # > 0: plain GETs this far apart instead
STALE = []                                                  # tasks whose change kept their version
LAST_CPU = [0.0]                                            # CPU seconds of the last timed run

TARGET_PCT = 90.0
TARGET_RSS_MIB = 32.0
TARGET_CANCEL_P99_MS = 50.0
FINAL = ("succeeded", "failed", "canceled")


class Failure(Exception):
    pass


# --- cleanup: nginx, child processes, the work directory ---------------------
_work = None
_nginx = None
_procs = []


def _killpg(p):
    try:
        os.killpg(p.pid, signal.SIGKILL)      # its own session: curl, or xargs and its curls
    except ProcessLookupError:
        pass
    try:
        p.wait(5)
    except subprocess.TimeoutExpired:
        pass


def _children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def stop_nginx():
    """SIGQUIT (graceful; worker_shutdown_timeout 5s bounds it), then SIGTERM, then SIGKILL."""
    global _nginx
    p = _nginx
    _nginx = None
    if p is None or p.poll() is not None:
        return
    workers = _children(p.pid)
    for sig, wait in ((signal.SIGQUIT, 10), (signal.SIGTERM, 5)):
        try:
            p.send_signal(sig)
            p.wait(wait)
            return
        except subprocess.TimeoutExpired:
            print("bench: nginx %d did not stop on %s within %d s" % (p.pid, sig.name, wait), file=sys.stderr)
    for w in workers + [p.pid]:
        try:
            os.kill(w, signal.SIGKILL)
        except ProcessLookupError:
            pass
    p.wait()


def cleanup():
    for p in list(_procs):
        _killpg(p)
    stop_nginx()
    global _work
    if _work and os.path.isdir(_work):
        shutil.rmtree(_work, ignore_errors=True)
    _work = None


atexit.register(cleanup)


# --- helpers -----------------------------------------------------------------
def median(xs):
    return statistics.median(xs)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(4 * MIB)
            if not b:
                return h.hexdigest()
            h.update(b)


def gen_file(path, nbytes):
    """Random content (os.urandom), returns its sha256."""
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = nbytes
        while left:
            b = os.urandom(min(16 * MIB, left))
            h.update(b)
            f.write(b)
            left -= len(b)
    os.chmod(path, 0o644)
    return h.hexdigest()


def check_file(path, size, sha, who):
    try:
        got = os.path.getsize(path)
    except OSError as e:
        raise Failure("%s: %s" % (who, e))
    if got != size:
        raise Failure("%s: %s has %d bytes, expected %d" % (who, path, got, size))
    if VERIFY and sha256_file(path) != sha:
        raise Failure("%s: %s has the wrong sha256" % (who, path))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run_cmd(argv, stdin_data=None, timeout=TIMEOUT):
    """Runs argv in its own session; returns wall seconds from spawn to exit
    (its CPU seconds, and its waited-for children's, in LAST_CPU)."""
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    _procs.append(p)
    try:
        _, err = p.communicate(stdin_data, timeout=timeout)
    except subprocess.TimeoutExpired:
        _killpg(p)
        raise Failure("%s ... did not finish within %g s" % (" ".join(argv[:4]), timeout))
    finally:
        if p in _procs:
            _procs.remove(p)
    dt = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    LAST_CPU[0] = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    if p.returncode != 0:
        raise Failure("%s ... exited with status %d: %s"
                      % (" ".join(argv[:4]), p.returncode, err.decode("utf-8", "replace")[-500:]))
    return dt


def fresh_dir(path):
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)


def settle():
    """Outside the timings: write back what earlier runs left dirty."""
    os.sync()
    time.sleep(0.2)


# --- nginx -------------------------------------------------------------------
NGINX_CONF = """\
# generated by bench/download.py
daemon off;
master_process on;
worker_processes %(workers)s;
pid "%(dir)s/nginx.pid";
error_log "%(dir)s/error.log" warn;
worker_shutdown_timeout 5s;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    server_tokens off;
    default_type application/octet-stream;
    client_body_temp_path "%(dir)s/tmp/body";
    proxy_temp_path "%(dir)s/tmp/proxy";
    fastcgi_temp_path "%(dir)s/tmp/fastcgi";
    uwsgi_temp_path "%(dir)s/tmp/uwsgi";
    scgi_temp_path "%(dir)s/tmp/scgi";
    server {
        listen 127.0.0.1:%(port)d;
        root "%(www)s";
        location /slow/ {
            alias "%(www)s/";
            limit_rate %(rate)s;
        }
    }
}
"""


def start_nginx(work, www, probe):
    global _nginx
    ndir = os.path.join(work, "nginx")
    os.makedirs(os.path.join(ndir, "tmp"), exist_ok=True)
    conf = os.path.join(ndir, "nginx.conf")
    errlog = os.path.join(ndir, "error.log")
    for attempt in range(5):
        port = free_port()
        with open(conf, "w") as f:
            f.write(NGINX_CONF % {"dir": ndir, "www": www, "port": port, "rate": SLOW_RATE,
                                  "workers": NGINX_WORKERS})
        p = subprocess.Popen([NGINX_BIN, "-p", ndir + "/", "-c", conf, "-e", errlog],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=open(os.path.join(ndir, "stderr.log"), "wb"),
                             start_new_session=True)
        _nginx = p
        deadline = time.monotonic() + 10
        url = "http://127.0.0.1:%d/%s" % (port, probe)
        while time.monotonic() < deadline and p.poll() is None:
            try:
                req = urllib.request.Request(url, method="HEAD")
                with urllib.request.urlopen(req, timeout=2) as r:
                    if r.status == 200:
                        return port
            except OSError:
                pass
            time.sleep(0.05)
        log = ""
        for name in ("error.log", "stderr.log"):
            try:
                with open(os.path.join(ndir, name), errors="replace") as f:
                    log += f.read()[-2000:]
            except OSError:
                pass
        stop_nginx()
        if "Address already in use" not in log:
            die("nginx did not serve %s; its log:\n%s" % (url, log))
    die("nginx could not bind a free port in 5 attempts")


# --- corod -------------------------------------------------------------------
def corod_has_downloads(binary):
    try:
        out = subprocess.run([binary, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             timeout=10).stdout.decode("utf-8", "replace")
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--max-downloads" in out


def start_corod():
    args = ["--max-downloads", str(MAX_DOWNLOADS)]
    if SYNC:
        args += ["--sync", SYNC]
    d = Daemon(args).start()
    time.sleep(0.3)
    return d


def wait_task(c, task, deadline, until=lambda t: t["state"] in FINAL):
    """GET /v1/tasks/{id}?wait=..&version=V (or, with DL_POLL, plain GETs that
    far apart) until `until(task)`; the task as last seen."""
    first = True
    while not until(task):
        if task["state"] in FINAL:
            raise Failure("task %d ended %s: %s" % (task["id"], task["state"], task.get("error")))
        left = deadline - time.monotonic()
        if left <= 0:
            raise Failure("task %d still %s (progress %s) at the deadline"
                          % (task["id"], task["state"], task.get("progress")))
        if POLL > 0:
            if not first:
                time.sleep(POLL)
            new = c.json("GET", "/v1/tasks/%d" % task["id"])
        else:
            w = max(1, min(WAIT, int(left)))
            new = c.json("GET", "/v1/tasks/%d?wait=%d&version=%d" % (task["id"], w, task["version"]))
            if new["version"] == task["version"] and (new["state"] != task["state"]
                                                      or new.get("progress") != task.get("progress")):
                STALE.append(task["id"])
                comment("WARNING: task %d changed (%s -> %s) but kept version %d, so ?wait=%d&version=%d "
                        "answered only at its timeout" % (task["id"], task["state"], new["state"],
                                                          new["version"], w, new["version"]))
        task = new
        first = False
    return task


def server_s(task):
    """created_at -> finished_at, as corod recorded them."""
    try:
        return (parse_rfc3339_us(task["finished_at"]) - parse_rfc3339_us(task["created_at"])) / 1e6
    except (KeyError, TypeError, ValueError):
        return float("nan")


def cancel_quietly(c, tid):
    try:
        c.request("POST", "/v1/tasks/%d/cancel" % tid)
    except Exception:
        pass


def check_corod_task(c, d, task, size, sha, who):
    if task["state"] != "succeeded":
        raise Failure("%s: task %d %s: %s" % (who, task["id"], task["state"], task.get("error")))
    res = task.get("result") or {}
    if res.get("bytes") != size:
        raise Failure("%s: task %d result.bytes %r, expected %d" % (who, task["id"], res.get("bytes"), size))
    if res.get("sha256") != sha:
        raise Failure("%s: task %d result.sha256 %r differs from the source's %s"
                      % (who, task["id"], res.get("sha256"), sha))
    if res.get("http_status") != 200:
        raise Failure("%s: task %d result.http_status %r" % (who, task["id"], res.get("http_status")))
    check_file(os.path.join(d.tmp, "dl", res["path"]), size, sha, "%s task %d" % (who, task["id"]))


def corod_run(c, d, spec):
    """Submit one spec, wait until final; (seconds from submission to final, task)."""
    deadline = time.monotonic() + TIMEOUT
    cpu0 = d.cpu_seconds()
    t0 = time.monotonic()
    task = c.json("POST", "/v1/tasks", spec, expect=(201,))
    try:
        task = wait_task(c, task, deadline)
    except Failure:
        cancel_quietly(c, task["id"])
        raise
    dt = time.monotonic() - t0
    LAST_CPU[0] = d.cpu_seconds() - cpu0
    return dt, task


class RssSampler(threading.Thread):
    def __init__(self, pid, interval=0.05):
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.samples = []
        self._stop_ev = threading.Event()

    def read(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return None

    def run(self):
        while True:
            try:
                v = self.read()
            except OSError:
                return
            if v is not None:
                self.samples.append(v)
            if self._stop_ev.wait(self.interval):
                return

    def start(self):
        self.samples.append(self.read())      # the baseline, before the submission
        super().start()
        return self

    def stop(self):
        self._stop_ev.set()
        self.join()
        try:
            self.samples.append(self.read())
        except OSError:
            pass
        return self.samples


# --- the sections ------------------------------------------------------------
def section_big(env):
    size = BIG_MIB * MIB
    sha = env["big_sha"]
    url = env["base"] + "/big.bin"
    out = os.path.join(env["work"], "out")
    times = {"curl": [], "corod": []}
    d = c = None
    order = ["curl", "corod"] if env["corod"] else ["curl"]
    if env["corod"]:
        d = start_corod()
        c = d.client(timeout=60)
        comment("big: corod %s pid %d port %d, args %s"
                % (d.bin, d.pid, d.port, " ".join(d.extra_args)))
    try:
        settle()
        fresh_dir(out)
        dt = run_cmd([CURL_BIN, "-s", "-o", os.path.join(out, "warm.bin"), url])
        shutil.rmtree(out, ignore_errors=True)
        comment("big: warm-up (untimed) curl %.3f s" % dt)
        for run in range(RUNS):
            for who in (order if run % 2 == 0 else order[::-1]):
                settle()
                if who == "curl":
                    fresh_dir(out)
                    path = os.path.join(out, "big.bin")
                    dt = run_cmd([CURL_BIN, "-s", "-o", path, url])
                    check_file(path, size, sha, "curl")
                    os.unlink(path)
                else:
                    spec = {"kind": "download", "params": {"url": url, "path": "big-%d.bin" % run}}
                    dt, task = corod_run(c, d, spec)
                    check_corod_task(c, d, task, size, sha, "corod")
                    os.unlink(os.path.join(d.tmp, "dl", task["result"]["path"]))
                times[who].append(dt)
                comment("big: run %d %-5s %.3f s  %.1f MiB/s  cpu %.2f s (%.2f cores)%s"
                        % (run + 1, who, dt, BIG_MIB / dt, LAST_CPU[0], LAST_CPU[0] / dt,
                        "  (corod's created_at -> finished_at %.3f s)" % server_s(task) if who == "corod" else ""))
    finally:
        if d:
            d.stop()
    return times


def section_many(env):
    size = MANY_MIB * MIB
    urls = ["%s/many/f%02d.bin" % (env["base"], i) for i in range(MANY_FILES)]
    shas = env["many_sha"]
    out = os.path.join(env["work"], "out")
    times = {"curl_parallel": [], "curl_xargs": [], "corod": []}
    order = ["curl_parallel", "curl_xargs"] + (["corod"] if env["corod"] else [])
    rss = {"runs": []}
    d = c = None
    if env["corod"]:
        d = start_corod()
        c = d.client(timeout=60)
        comment("many: corod %s pid %d port %d, args %s"
                % (d.bin, d.pid, d.port, " ".join(d.extra_args)))
        rss["start"] = d.rss_bytes()
    try:
        settle()
        fresh_dir(out)
        argv = [CURL_BIN, "-s", "-Z", "--parallel-max", str(MANY_FILES)]
        for i, u in enumerate(urls):
            argv += ["-o", os.path.join(out, "w%02d.bin" % i), u]
        dt = run_cmd(argv)
        shutil.rmtree(out, ignore_errors=True)
        comment("many: warm-up (untimed) curl -Z %.3f s" % dt)
        for run in range(RUNS):
            k = run % len(order)
            for who in order[k:] + order[:k]:
                settle()
                if who.startswith("curl"):
                    fresh_dir(out)
                    paths = [os.path.join(out, "f%02d.bin" % i) for i in range(MANY_FILES)]
                    if who == "curl_parallel":
                        argv = [CURL_BIN, "-s", "-Z", "--parallel-max", str(MANY_FILES)]
                        for p, u in zip(paths, urls):
                            argv += ["-o", p, u]
                        dt = run_cmd(argv)
                    else:
                        lines = "".join("%s\n%s\n" % (p, u) for p, u in zip(paths, urls))
                        dt = run_cmd(["xargs", "-d", "\\n", "-n", "2", "-P", str(MANY_FILES),
                                      CURL_BIN, "-s", "-o"], stdin_data=lines.encode())
                    for i, p in enumerate(paths):
                        check_file(p, size, shas[i], who)
                    shutil.rmtree(out, ignore_errors=True)
                else:
                    kids = [{"kind": "download",
                             "params": {"url": u, "path": "many-%d/f%02d.bin" % (run, i)}}
                            for i, u in enumerate(urls)]
                    spec = {"kind": "gather", "params": {"tasks": kids}}
                    sampler = RssSampler(d.pid).start()
                    try:
                        dt, task = corod_run(c, d, spec)
                    finally:
                        samples = sampler.stop()
                    rss["runs"].append((samples[0], max(samples), samples[-1], len(samples)))
                    check_gather(c, d, task, size, shas)
                    shutil.rmtree(os.path.join(d.tmp, "dl", "many-%d" % run), ignore_errors=True)
                times[who].append(dt)
                extra = ""
                if who == "corod":
                    b, pk, e, n = rss["runs"][-1]
                    extra = ("  (created_at -> finished_at %.3f s; RSS %.1f -> peak %.1f -> %.1f MiB, %d samples)"
                             % (server_s(task), b / MIB, pk / MIB, e / MIB, n))
                comment("many: run %d %-13s %.3f s  %.1f MiB/s  cpu %.2f s (%.2f cores)%s"
                        % (run + 1, who, dt, MANY_FILES * MANY_MIB / dt, LAST_CPU[0], LAST_CPU[0] / dt, extra))
        if d:
            rss["end"] = d.rss_bytes()
    finally:
        if d:
            env["many_daemon"] = d          # reused by the cancel section
    return times, rss


def check_gather(c, d, task, size, shas):
    kids = task.get("children") or []
    ids = [k["id"] if isinstance(k, dict) else int(k) for k in kids]
    if len(ids) != MANY_FILES:
        raise Failure("gather %d (%s) has %d children, expected %d"
                      % (task["id"], task["state"], len(ids), MANY_FILES))
    bad = []
    for i, cid in enumerate(ids):
        child = c.json("GET", "/v1/tasks/%d" % cid)
        try:
            # children are in spec order: child i downloaded many/fNN.bin
            check_corod_task(c, d, child, size, shas[i], "corod child %d" % i)
        except Failure as e:
            bad.append(str(e))
    if task["state"] != "succeeded" or bad:
        raise Failure("gather %d %s (%s); %d children bad: %s"
                      % (task["id"], task["state"], task.get("error"), len(bad), "; ".join(bad[:3])))


def section_cancel(env):
    d = env.get("many_daemon")
    if d is None:
        d = start_corod()
        env["many_daemon"] = d
    c = d.client(timeout=60)
    url = env["base"] + "/slow/big.bin"
    comment("cancel: corod pid %d, %d downloads of %s (limit_rate %s)" % (d.pid, CANCEL_TRIALS, url, SLOW_RATE))
    lat = []
    at_answer = 0
    for i in range(CANCEL_TRIALS):
        spec = {"kind": "download", "params": {"url": url, "path": "cancel/c%02d.bin" % i}}
        task = c.json("POST", "/v1/tasks", spec, expect=(201,))
        try:
            task = wait_task(c, task, time.monotonic() + 30,
                             until=lambda t: t["state"] == "running" and (t.get("progress") or {}).get("current", 0) > 0)
        except Failure:
            cancel_quietly(c, task["id"])
            raise
        at_bytes = task["progress"]["current"]
        t0 = time.monotonic()
        status, _, raw = c.request("POST", "/v1/tasks/%d/cancel" % task["id"])
        t1 = time.monotonic()
        if status not in (200, 202):
            raise Failure("cancel of task %d -> %d: %s" % (task["id"], status, raw[:300]))
        task = json.loads(raw)
        in_answer = task["state"] == "canceled"
        if in_answer:
            at_answer += 1
        else:
            task = wait_task(c, task, t0 + 10, until=lambda t: t["state"] == "canceled")
            t1 = time.monotonic()
        lat.append((t1 - t0) * 1000)
        comment("cancel: trial %2d task %d at %d bytes: %.3f ms%s"
                % (i + 1, task["id"], at_bytes, lat[-1],
                   " (canceled in the answer)" if in_answer else ""))
    time.sleep(0.5)
    left = []
    cdir = os.path.join(d.tmp, "dl", "cancel")
    if os.path.isdir(cdir):
        left = sorted(os.listdir(cdir))
    comment("cancel: %d of %d answers already said canceled; files left in dl/cancel: %s"
            % (at_answer, CANCEL_TRIALS, left if left else "none"))
    if left:
        comment("WARNING: a canceled download left files behind: %s" % left)
    return lat


# --- report ------------------------------------------------------------------
def big_label():
    return "1 GiB" if BIG_MIB == 1024 else "%d MiB" % BIG_MIB


def main():
    global _work
    sections = [s for s in SECTIONS if s in ("big", "many", "cancel")]
    use_corod = not CURL_ONLY
    if use_corod:
        b = corod_bin()
        if not os.access(b, os.X_OK):
            die("no corod binary at %s (build it, or set COROD_BIN; DL_CURL_ONLY=1 for the curl half)" % b)
        if not corod_has_downloads(b):
            die("%s has no download kind (no --max-downloads in --help); DL_CURL_ONLY=1 runs the curl half" % b)
    elif "cancel" in sections:
        sections.remove("cancel")
    for tool in (NGINX_BIN, CURL_BIN, "xargs"):
        if not shutil.which(tool):
            die("%s not found" % tool)

    _work = tempfile.mkdtemp(prefix="corod-bench-dl.")
    os.chmod(_work, 0o755)                      # nginx workers run as another user when we are root
    www = os.path.join(_work, "www")
    os.makedirs(os.path.join(www, "many"))
    for p in (www, os.path.join(www, "many")):
        os.chmod(p, 0o755)

    env = {"work": _work, "corod": use_corod}
    comment("download: %s, %s; sections %s; %d runs; %s"
            % (subprocess.run([NGINX_BIN, "-v"], stderr=subprocess.PIPE).stderr.decode().strip(),
               " ".join(subprocess.run([CURL_BIN, "--version"], stdout=subprocess.PIPE).stdout.decode().split()[:2]),
               " ".join(sections), RUNS,
               "corod %s" % corod_bin() if use_corod else "curl only (DL_CURL_ONLY=1)"))
    t0 = time.monotonic()
    if "big" in sections or "cancel" in sections:
        env["big_sha"] = gen_file(os.path.join(www, "big.bin"), BIG_MIB * MIB)
    if "many" in sections:
        env["many_sha"] = [gen_file(os.path.join(www, "many", "f%02d.bin" % i), MANY_MIB * MIB)
                           for i in range(MANY_FILES)]
    os.sync()
    comment("download: generated the sources (random) in %.1f s under %s" % (time.monotonic() - t0, www))
    probe = "big.bin" if "big_sha" in env else "many/f00.bin"
    port = start_nginx(_work, www, probe)
    env["base"] = "http://127.0.0.1:%d" % port
    comment("download: nginx %s pid %d on %s (worker_processes %s, sendfile on, access_log off, /slow/ limit_rate %s)"
            % (NGINX_BIN, _nginx.pid, env["base"], NGINX_WORKERS, SLOW_RATE))
    if use_corod:
        # corod's download dir and curl's output dir must be on the same filesystem
        probe_d = tempfile.mkdtemp(prefix="corod-bench.")
        same = os.stat(probe_d).st_dev == os.stat(_work).st_dev
        os.rmdir(probe_d)
        comment("download: curl writes under %s/out, corod under its own %s/corod-bench.*/dl: %s filesystem"
                % (_work, tempfile.gettempdir(), "same" if same else "NOT the same"))

    failed = []
    figs = {}
    for s in sections:
        comment("---- %s" % s)
        try:
            if s == "big":
                figs["big"] = section_big(env)
            elif s == "many":
                figs["many"], figs["rss"] = section_many(env)
            elif s == "cancel":
                figs["cancel"] = section_cancel(env)
        except Exception as e:          # Failure, or an unexpected answer from corod
            comment("FAILED: %s: %s: %s" % (s, type(e).__name__, e))
            failed.append(s)
    d = env.pop("many_daemon", None)
    if d:
        d.stop()

    rows = []       # (figure, measured, target, verdict)
    if "big" in figs:
        t = figs["big"]
        cs = median(t["curl"])
        result("download_big_curl_s", cs, "s")
        result("download_big_curl_mibps", BIG_MIB / cs, "MiB/s")
        rows.append(("%s, one file: curl -s -o" % big_label(), "%.3f s  %7.1f MiB/s" % (cs, BIG_MIB / cs), "", ""))
        if t["corod"]:
            ks = median(t["corod"])
            pct = cs / ks * 100
            result("download_big_corod_s", ks, "s")
            result("download_big_corod_mibps", BIG_MIB / ks, "MiB/s")
            result("download_big_corod_pct_of_curl", pct, "%")
            rows.append(("%s, one file: corod download" % big_label(), "%.3f s  %7.1f MiB/s  = %5.1f %% of curl"
                         % (ks, BIG_MIB / ks, pct), ">= %g %% of curl" % TARGET_PCT, verdict(pct >= TARGET_PCT)))
    if "many" in figs:
        t = figs["many"]
        tot = MANY_FILES * MANY_MIB
        med = {k: median(v) for k, v in t.items() if v}
        for k, label in (("curl_parallel", "curl -Z --parallel-max %d" % MANY_FILES),
                         ("curl_xargs", "%d x curl -o (xargs -P %d)" % (MANY_FILES, MANY_FILES))):
            result("download_many_%s_s" % k, med[k], "s")
            result("download_many_%s_mibps" % k, tot / med[k], "MiB/s")
            rows.append(("%d x %d MiB: %s" % (MANY_FILES, MANY_MIB, label),
                         "%.3f s  %7.1f MiB/s" % (med[k], tot / med[k]), "", ""))
        if "corod" in med:
            ks = med["corod"]
            result("download_many_corod_s", ks, "s")
            result("download_many_corod_mibps", tot / ks, "MiB/s")
            for k, label in (("curl_parallel", "curl -Z"), ("curl_xargs", "xargs curl")):
                pct = med[k] / ks * 100
                result("download_many_corod_pct_of_%s" % k, pct, "%")
                rows.append(("%d x %d MiB: corod gather vs %s" % (MANY_FILES, MANY_MIB, label),
                             "%.3f s  %7.1f MiB/s  = %5.1f %% of %s" % (ks, tot / ks, pct, label),
                             ">= %g %% of curl" % TARGET_PCT, verdict(pct >= TARGET_PCT)))
    rss = figs.get("rss")
    if rss and rss["runs"]:
        base = rss["runs"][0][0]
        peak = max(r[1] for r in rss["runs"])
        growth = (peak - base) / MIB
        comment("rss: at daemon start %.1f MiB, before the first run %.1f, peak %.1f, after the last run %.1f MiB"
                % (rss["start"] / MIB, base / MIB, peak / MIB, rss.get("end", 0) / MIB))
        result("download_rss_baseline", base / MIB, "MiB")
        result("download_rss_peak", peak / MIB, "MiB")
        result("download_rss_growth", growth, "MiB")
        rows.append(("corod RSS during %d x %d MiB (%d runs)" % (MANY_FILES, MANY_MIB, len(rss["runs"])),
                     "baseline %.1f, peak %.1f, growth %.1f MiB" % (base / MIB, peak / MIB, growth),
                     "growth < %g MiB" % TARGET_RSS_MIB, verdict(growth < TARGET_RSS_MIB)))
    if figs.get("cancel"):
        lat = figs["cancel"]
        p50, p99, mx = percentile(lat, 50), percentile(lat, 99), max(lat)
        result("download_cancel_p50", p50, "ms")
        result("download_cancel_p99", p99, "ms")
        result("download_cancel_max", mx, "ms")
        rows.append(("cancel -> canceled (%d, running at %s/s)" % (len(lat), SLOW_RATE),
                     "p50 %.1f  p99 %.1f  max %.1f ms" % (p50, p99, mx),
                     "p99 < %g ms" % TARGET_CANCEL_P99_MS, verdict(p99 < TARGET_CANCEL_P99_MS)))
    if STALE:
        result("download_wait_stale", len(STALE), "count")
        rows.append(("?wait= answers at timeout (change, same version)",
                     "%d (tasks %s)" % (len(STALE), " ".join(map(str, sorted(set(STALE))[:8]))),
                     "0", "MISS"))
    if POLL > 0:
        rows.append(("corod waited for by", "plain GETs every %g s (DL_POLL), not ?wait=" % POLL, "", ""))
    if not use_corod:
        rows.append(("corod rows", "not run (DL_CURL_ONLY=1)", "", ""))
    for s in failed:
        rows.append(("section %s" % s, "FAILED (see above)", "", "MISS"))

    if rows:
        table(rows, ("figure (median of %d runs)" % RUNS, "measured", "target", "verdict"))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
