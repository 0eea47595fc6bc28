#!/usr/bin/env python3
"""bench/http-kind.py -- corod's `http` kind against aiohttp and wrk, on nginx.

Starts Debian's nginx (NGINX_BIN, default /usr/sbin/nginx) on 127.0.0.1 with
a private generated configuration whose location /204 answers 204 with no
body (access_log off), and measures, side by side, on that URL:

  corod   HTTP_TASKS (10000) `http` tasks submitted in batches of HTTP_BATCH
          (100) to a daemon started with --max-http-requests HTTP_CONC (64),
          all with one run_at a little after the submissions are in:
          completions per second from that instant until
          corod_tasks_finished_total{kind="http"} (GET /metrics, polled
          every 5 ms) counts them all; every one must have succeeded.  (One
          client's durable submissions are bench/submit-batch.sh's figure.)
  aiohttp the same number of GETs from Python asyncio + aiohttp (Debian's
          python3-aiohttp, run by /usr/bin/python3, DEBIAN_PYTHON; else by
          the Python running this script if it has aiohttp) with HTTP_CONC
          requests in flight on one keep-alive session: requests per second.
  wrk     `wrk -t2 -cHTTP_CONC -dWRK_SECONDS` on the URL: the ceiling.

A peer that is not installed is skipped with a "peer not available"
comment (and its result lines left out); corod's figure is still printed.

Prints result lines (http_corod_rate, http_aiohttp_rate, http_wrk_rate
req/s; http_corod_vs_aiohttp ratio) and a table against the issue's goal
(corod >= 5x aiohttp).  Small runs to see it works:
HTTP_TASKS=200 WRK_SECONDS=1 bench/http-kind.py
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import Daemon, comment, die, result, table, verdict  # noqa: E402

TASKS = int(os.environ.get("HTTP_TASKS", "10000"))
BATCH = int(os.environ.get("HTTP_BATCH", "100"))
CONC = int(os.environ.get("HTTP_CONC", "64"))
WRK_SECONDS = int(os.environ.get("WRK_SECONDS", "10"))
NGINX = os.environ.get("NGINX_BIN", "/usr/sbin/nginx")
PY_DEBIAN = os.environ.get("DEBIAN_PYTHON", "/usr/bin/python3")
DEADLINE = float(os.environ.get("HTTP_DEADLINE", "600"))

NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
{user}
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {dir}/body;
    server {{
        listen 127.0.0.1:{port};
        location = /204 {{ return 204; }}
    }}
}}
"""

AIOHTTP = r"""
import asyncio, sys, time
import aiohttp

async def main(url, n, conc):
    sem = asyncio.Semaphore(conc)
    conn = aiohttp.TCPConnector(limit=conc)
    bad = 0
    async with aiohttp.ClientSession(connector=conn) as s:
        async def one():
            nonlocal bad
            async with sem:
                async with s.get(url) as r:
                    await r.read()
                    if r.status != 204:
                        bad += 1
        t0 = time.monotonic()
        await asyncio.gather(*(one() for _ in range(n)))
        dt = time.monotonic() - t0
    print("%f %d" % (dt, bad))

asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
"""


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start_nginx(d):
    if not os.access(NGINX, os.X_OK):
        die("no nginx at %s (apt-get install nginx-light)" % NGINX)
    port = free_port()
    user = ""
    if os.geteuid() == 0:
        user = "user root root;"
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(NGINX_CONF.format(dir=d, port=port, user=user))
    # -e: the error log before the configuration is read (else the
    # compiled-in /var/log/nginx/error.log, not writable for everyone)
    p = subprocess.Popen([NGINX, "-p", d, "-c", os.path.join(d, "nginx.conf"),
                          "-e", os.path.join(d, "error.log")],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=open(os.path.join(d, "stderr.log"), "wb"))
    import urllib.request
    url = "http://127.0.0.1:%d/204" % port
    for _ in range(100):
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 204:
                    return p, url
        except OSError:
            time.sleep(0.05)
    p.kill()
    die("nginx did not answer on %s" % url)


def finished(client):
    """(succeeded, failed+canceled) http tasks from GET /metrics."""
    status, r, raw = client.request("GET", "/metrics")
    ok = bad = 0
    for m in re.finditer(r'corod_tasks_finished_total\{kind="http",'
                         r'outcome="(\w+)"\} (\d+)', raw.decode()):
        if m.group(1) == "succeeded":
            ok = int(m.group(2))
        else:
            bad += int(m.group(2))
    return ok, bad


def bench_corod(url):
    with Daemon(["--max-http-requests", str(CONC)], nofile=65536) as d:
        c = d.client()
        spec = {"kind": "http", "params": {"url": url, "method": "GET",
                                           "success_status": [204]}}
        # All due at one instant after the submissions are in: what is
        # measured is running them, not one client's submission pipeline
        # (which bench/submit-batch.sh measures).
        lead = max(2.0, TASKS / 5000.0)
        due_wall = time.time() + lead
        spec["run_at"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(
            due_wall)) + (".%06dZ" % int((due_wall % 1) * 1e6))
        t0 = time.monotonic()
        due = t0 + lead
        sent = 0
        while sent < TASKS:
            n = min(BATCH, TASKS - sent)
            c.json("POST", "/v1/tasks", [spec] * n)
            sent += n
        t_sub = time.monotonic() - t0
        if t_sub >= lead:
            die("the submissions took %.3f s, past the due time %.3f s "
                "ahead" % (t_sub, lead))
        while True:
            ok, bad = finished(c)
            if ok + bad >= TASKS:
                break
            if time.monotonic() - t0 > DEADLINE:
                die("corod finished %d of %d within %g s" % (ok + bad, TASKS,
                                                            DEADLINE))
            time.sleep(0.005)
        dt = time.monotonic() - due
        comment("corod: %d tasks submitted in %.3f s (batches of %d), all "
                "due %.3f s after the first; all finished %.3f s after "
                "that (%d succeeded, %d not); cpu %.2f s" % (
                    TASKS, t_sub, BATCH, lead, dt, ok, bad,
                    d.cpu_seconds()))
        if bad:
            die("%d http tasks did not succeed" % bad)
        c.close()
        return TASKS / dt


def aiohttp_python():
    """A Python that has aiohttp: Debian's, else the one running this."""
    for py in (PY_DEBIAN, sys.executable):
        if py and os.access(py, os.X_OK) and subprocess.run(
                [py, "-c", "import aiohttp"], stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL).returncode == 0:
            return py
    return None


def bench_aiohttp(url):
    """req/s, or None when no Python here has aiohttp."""
    py = aiohttp_python()
    if py is None:
        comment("aiohttp peer not available: neither %s nor %s imports "
                "aiohttp (apt-get install python3-aiohttp)"
                % (PY_DEBIAN, sys.executable))
        return None
    out = subprocess.run([py, "-c", AIOHTTP, url, str(TASKS),
                          str(CONC)], capture_output=True, text=True,
                         timeout=DEADLINE)
    if out.returncode != 0:
        die("aiohttp client failed:\n" + out.stderr[-2000:])
    dt, bad = out.stdout.split()
    comment("aiohttp (%s): %d GETs in %s s, %s not 204" % (py, TASKS, dt, bad))
    return TASKS / float(dt)


def bench_wrk(url):
    """req/s, or None without wrk."""
    if shutil.which("wrk") is None:
        comment("wrk peer not available: no wrk in PATH (apt-get install wrk)")
        return None
    out = subprocess.run(["wrk", "-t2", "-c%d" % CONC, "-d%ds" % WRK_SECONDS,
                          url], capture_output=True, text=True,
                         timeout=WRK_SECONDS + 60)
    comment("wrk:\n" + out.stdout)
    m = re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)
    if not m:
        die("wrk said nothing usable:\n" + out.stdout + out.stderr)
    return float(m.group(1))


def main():
    d = tempfile.mkdtemp(prefix="corod-bench-nginx.")
    ng = None
    try:
        ng, url = start_nginx(d)
        comment("tasks %d, batch %d, concurrency %d, url %s" % (TASKS, BATCH,
                                                               CONC, url))
        r_corod = bench_corod(url)
        r_aio = bench_aiohttp(url)
        r_wrk = bench_wrk(url)
        result("http_corod_rate", r_corod, "req/s")
        if r_aio is not None:
            result("http_aiohttp_rate", r_aio, "req/s")
        if r_wrk is not None:
            result("http_wrk_rate", r_wrk, "req/s")
        rows = []
        if r_aio is not None:
            result("http_corod_vs_aiohttp", r_corod / r_aio, "x")
            rows.append(("corod http tasks/s", "%.0f" % r_corod,
                         ">= 5x aiohttp (%.0f)" % (5 * r_aio),
                         verdict(r_corod >= 5 * r_aio)))
        else:
            rows.append(("corod http tasks/s", "%.0f" % r_corod,
                         ">= 5x aiohttp", "aiohttp peer not available"))
        rows.append(("wrk (ceiling) req/s",
                     "%.0f" % r_wrk if r_wrk is not None else
                     "wrk peer not available", "-", "-"))
        table(rows)
    finally:
        if ng is not None:
            ng.terminate()
            try:
                ng.wait(10)
            except subprocess.TimeoutExpired:
                ng.kill()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
