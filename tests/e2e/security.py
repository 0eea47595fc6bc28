#!/usr/bin/env python3
"""security.py -- tokens, TLS and the limits, against the real daemon.

Bearer tokens from token-file (401 with a WWW-Authenticate challenge,
several tokens, rotation by SIGHUP, a bad reload keeping the tokens in
use, /healthz and the dashboard's files open, /metrics guarded unless
metrics-public); the file checks at start; no non-loopback listener
without a token unless insecure-no-auth; HTTPS with tls-cert/tls-key
(python's ssl and real curl); max-tasks (429, nothing stored),
retention-count; connections per client (429) and in total (503);
request-timeout against clients that send a byte at a time (408), while
long-polls and idle keep-alive connections are left alone.
"""

import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from tap import TAP, scaled  # noqa: E402
from corod import Corod, check_raw, corod_bin, echo, is_problem, \
    self_signed_cert  # noqa: E402

t = TAP("security")

TOKEN1 = "first-token-5f0c3a9e7d21b486"
TOKEN2 = "second-token-0b9e44c1d7a2f315"


def write(path, text, mode=0o600):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def run_corod(args, cwd, timeout=10):
    """corod run to completion: (status, output)."""
    try:
        p = subprocess.run([corod_bin()] + list(args), cwd=cwd,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=scaled(timeout))
    except subprocess.TimeoutExpired:
        return None, "still running after %s s" % timeout
    return p.returncode, p.stdout.decode("utf-8", "replace")


def problem(r, status, desc, field=None):
    good, why = is_problem(r, status, field)
    return t.ok(good, desc, diag=why + "\n" + r.describe())


def read_answer_once(s, timeout=10):
    """One answer (head and Content-Length body), without waiting for
    the connection to close."""
    s.settimeout(scaled(timeout))
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                return data
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        m = re.search(rb"(?im)^content-length: *(\d+)", head)
        want = int(m.group(1)) if m else 0
        while len(rest) < want:
            chunk = s.recv(65536)
            if not chunk:
                break
            rest += chunk
        return check_raw(None, head + b"\r\n\r\n" + rest)
    except OSError:
        return data


def metric(d, name):
    r = d.request("GET", "/metrics")
    m = re.search(r"^%s (\S+)$" % re.escape(name), r.body or "", re.M)
    return float(m.group(1)) if m else None


# --- tokens ------------------------------------------------------------------

@t.test(timeout=60)
def tokens():
    tmp = tempfile.mkdtemp(prefix="corod-tok-")
    try:
        tf = os.path.join(tmp, "tokens")
        write(tf, "# two, for a rotation\n%s\n  %s  \n" % (TOKEN1, TOKEN2))
        with Corod(t, args=["--token-file", tf], name="tokens") as d:
            r = d.request("GET", "/v1/tasks")
            problem(r, 401, "GET /v1/tasks without a token: 401",
                    "/headers/Authorization")
            t.is_(r.headers.get("www-authenticate"), 'Bearer realm="corod"',
                  "... with a Bearer challenge")
            r = d.request("GET", "/v1/tasks",
                          headers={"Authorization": "Bearer nope-nope"})
            problem(r, 401, "a wrong token: 401")
            t.ok('error="invalid_token"' in
                 r.headers.get("www-authenticate", ""),
                 "... error=\"invalid_token\"")
            r = d.request("GET", "/v1/tasks",
                          headers={"Authorization": "Bearer " + TOKEN1[:-1]})
            problem(r, 401, "a token missing its last character: 401")
            r = d.request("GET", "/v1/tasks", headers={
                "Authorization": "Basic " + "eDp5"})
            problem(r, 401, "another scheme: 401")
            for tok, which in ((TOKEN1, "first"), (TOKEN2, "second")):
                r = d.request("GET", "/v1/tasks", headers={
                    "Authorization": "Bearer " + tok})
                t.is_(r.status, 200, "the %s token: 200" % which)
            r = d.request("POST", "/v1/tasks", echo("no token"))
            problem(r, 401, "POST without a token: 401, nothing stored")
            r = d.request("GET", "/v1/nonsense")
            problem(r, 401, "an unknown /v1/ path without a token: 401 "
                    "(nothing learnt about the API)")
            r = d.request("GET", "/v1/events?since=0&wait=0")
            problem(r, 401, "the change feed needs a token")
            for path in ("/healthz", "/", "/dashboard/app.js"):
                t.is_(d.request("GET", path).status, 200,
                      "%s needs none" % path)
            problem(d.request("GET", "/metrics"), 401,
                    "/metrics without a token: 401")

            d.token = TOKEN2
            task = d.submit(echo("with a token"))
            d.wait_for(lambda: d.get(task["id"])["state"] == "succeeded", 10)
            t.ok(True, "a task submitted and run with a token")
            r = d.request("GET", "/v1/tasks")
            t.is_([x["id"] for x in r.body["tasks"]], [task["id"]],
                  "only that task is stored")
            t.is_(d.request("GET", "/metrics").status, 200,
                  "/metrics with a token: 200")
            d.token = None

            # Rotation: the file now holds only a third token.
            token3 = "third-token-77aa19c3e05d2b64"
            write(tf, token3 + "\n")
            os.kill(d.pid, signal.SIGHUP)
            d.wait_output(r"reload: tokens read from", 10)
            h = {"Authorization": "Bearer " + TOKEN1}
            problem(d.request("GET", "/v1/tasks", headers=h), 401,
                    "after SIGHUP the rotated-out token: 401")
            h = {"Authorization": "Bearer " + token3}
            t.is_(d.request("GET", "/v1/tasks", headers=h).status, 200,
                  "... and the new one: 200")
            # A reload that cannot read the file keeps what is in use.
            os.chmod(tf, 0o644)
            os.kill(d.pid, signal.SIGHUP)
            line = d.wait_output(r"tokens in use are kept", 10)
            t.ok("0644" in line, "a reload of a world-readable file is "
                 "refused, saying why", diag=line)
            t.is_(d.request("GET", "/v1/tasks", headers=h).status, 200,
                  "... and the tokens in use still work")

        os.chmod(tf, 0o600)
        with Corod(t, args=["--token-file", tf, "--metrics-public"],
                   name="metrics-public") as d:
            t.is_(d.request("GET", "/metrics").status, 200,
                  "metrics-public: /metrics without a token")
            problem(d.request("GET", "/v1/tasks"), 401,
                    "... while /v1/ still needs one")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@t.test(timeout=60)
def token_file_checks():
    tmp = tempfile.mkdtemp(prefix="corod-tok-")
    try:
        tf = os.path.join(tmp, "tokens")
        cases = [
            ("a missing file", None, 0o600, r"No such file"),
            ("a world-readable file", TOKEN1 + "\n", 0o644, r"mode 0644"),
            ("a group-writable file", TOKEN1 + "\n", 0o660, r"mode 0660"),
            ("a file without a token", "# none\n\n", 0o600, r"no token"),
            ("a token with a blank", "two words\n", 0o600, r"tokens:1:"),
        ]
        for desc, text, mode, want in cases:
            if os.path.exists(tf):
                os.unlink(tf)
            if text is not None:
                write(tf, text, mode)
            rc, out = run_corod(["-n", "--token-file", tf], tmp)
            t.ok(rc == 2 and re.search(want, out) is not None,
                 "token-file %s: exit 2 saying why" % desc,
                 diag="rc %s: %s" % (rc, out))
        write(tf, "short\n", 0o600)
        rc, out = run_corod(["-n", "--token-file", tf], tmp)
        t.ok(rc == 0 and "easy to guess" in out,
             "a short token is taken with a warning", diag=out)
        if os.geteuid() == 0:
            t.skip("a file corod cannot read", "running as root")
        else:
            write(tf, TOKEN1 + "\n", 0o000)
            rc, out = run_corod(["-n", "--token-file", tf], tmp)
            t.ok(rc == 2 and "Permission denied" in out,
                 "an unreadable file: exit 2", diag=out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@t.test(timeout=60)
def exposed_needs_token():
    tmp = tempfile.mkdtemp(prefix="corod-exp-")
    try:
        db = os.path.join(tmp, "c.db")
        for listen in ("0.0.0.0:0", "*:0", "127.0.0.1:0,0.0.0.0:0"):
            rc, out = run_corod(["--listen", listen, "--db", db], tmp)
            t.ok(rc not in (0, None) and "no token-file is set" in out,
                 "listen %s without a token: refused at start" % listen,
                 diag="rc %s: %s" % (rc, out))
        tf = os.path.join(tmp, "tokens")
        write(tf, TOKEN1 + "\n")
        with Corod(t, args=["--listen", "127.0.0.1:0,0.0.0.0:0",
                            "--token-file", tf], name="exposed") as d:
            t.ok("without tokens" not in d.output(),
                 "with a token, 0.0.0.0 is served without a warning")
            problem(d.request("GET", "/v1/tasks"), 401,
                    "... and asks for the token")
        with Corod(t, args=["--listen", "127.0.0.1:0,0.0.0.0:0",
                            "--insecure-no-auth"], name="insecure") as d:
            t.ok(re.search(r"without tokens \(insecure-no-auth\)",
                           d.output()) is not None,
                 "insecure-no-auth serves 0.0.0.0, with a warning")
            t.is_(d.request("GET", "/v1/tasks").status, 200,
                  "... and no token is asked")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- DNS rebinding: the Host header -------------------------------------------

def rebinding(d, host):
    """What a page on host, rebound to corod's address, gets: its POST (as
    its own origin) and its GET."""
    h = {"Host": host, "Origin": "http://" + host}
    post = d.request("POST", "/v1/tasks", echo("rebound"), headers=h)
    get = d.request("GET", "/v1/tasks", headers={"Host": host})
    return post, get


def unix_get(path, host, url="/v1/tasks"):
    """GET url over a Unix socket with this Host: the status."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(scaled(10))
    try:
        s.connect(path)
        s.sendall(b"GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n"
                  b"\r\n" % (url.encode(), host.encode()))
        got = read_answer_once(s)
    finally:
        s.close()
    m = re.match(rb"HTTP/1\.1 (\d+) ", got)
    return int(m.group(1)) if m else got[:100]


@t.test(timeout=90)
def host_check():
    tmp = tempfile.mkdtemp(prefix="corod-host-")
    try:
        sock = os.path.join(tmp, "api.sock")
        conf = os.path.join(tmp, "corod.conf")
        write(conf, "# no allow-host yet\n")
        with Corod(t, args=["--config", conf, "--listen",
                            "127.0.0.1:0,unix:" + sock], name="host") as d:
            evil = "rebind.attacker.example:%d" % d.port
            post, get = rebinding(d, evil)
            problem(post, 421, "a rebinding page's POST (Origin = its Host): "
                    "421", "/headers/Host")
            t.ok(evil in post.body.get("detail", "") and
                 post.body.get("type", "").endswith("host-not-allowed"),
                 "... host-not-allowed, naming the host",
                 diag=post.describe())
            problem(get, 421, "... and its GET /v1/tasks: 421")
            for path in ("/", "/healthz", "/metrics", "/v1/nothing"):
                r = d.request("GET", path, headers={"Host": evil})
                problem(r, 421, "GET %s with that Host: 421" % path)
            r = d.request("GET", "/v1/tasks")
            t.is_(r.body["tasks"], [], "nothing was stored")
            for host in ("127.0.0.1:%d" % d.port, "localhost:%d" % d.port,
                         "localhost", "app.localhost:%d" % d.port,
                         "[::1]:%d" % d.port, "10.0.0.5:%d" % d.port):
                r = d.request("GET", "/v1/tasks", headers={"Host": host})
                t.is_(r.status, 200, "Host: %s is served" % host)
            r = d.request("POST", "/v1/tasks", echo("local"), headers={
                "Host": "localhost:%d" % d.port,
                "Origin": "http://localhost:%d" % d.port})
            t.is_(r.status, 201, "the dashboard's POST on localhost: 201")
            t.is_(d.request("GET", "/").status, 200,
                  "the dashboard on 127.0.0.1 still loads")
            t.is_(unix_get(sock, "rebind.attacker.example"), 200,
                  "on the Unix socket any Host is served")
            # allow-host, live: a reload takes it.
            write(conf, "allow-host = corod.test, .corp.test\n")
            os.kill(d.pid, signal.SIGHUP)
            d.wait_output(r"reload: allow-host changed", 10)
            for host, want in (("corod.test:%d" % d.port, 200),
                               ("CoroD.Test", 200),
                               ("corp.test", 200), ("a.b.corp.test", 200),
                               ("xcorp.test", 421), (evil, 421),
                               ("localhost", 200)):
                r = d.request("GET", "/v1/tasks", headers={"Host": host})
                t.is_(r.status, want, "after the reload, allow-host "
                      "corod.test, .corp.test: Host %s: %d" % (host, want))
            write(conf, "allow-host = *\n")
            os.kill(d.pid, signal.SIGHUP)
            d.wait_for(lambda: d.output().count("reload: allow-host "
                                                "changed") >= 2, 10)
            t.is_(rebinding(d, evil)[1].status, 200,
                  "allow-host *: any Host (behind a proxy)")
        with Corod(t, args=["--allow-host", "corod.test"],
                   name="host-flag") as d:
            t.is_(d.request("GET", "/v1/tasks", headers={
                "Host": "corod.test:%d" % d.port}).status, 200,
                "--allow-host on the command line")
            problem(d.request("GET", "/v1/tasks", headers={
                "Host": "other.test"}), 421, "... and only that name")
        tf = os.path.join(tmp, "tokens")
        write(tf, TOKEN1 + "\n")
        with Corod(t, args=["--token-file", tf], name="host-token") as d:
            d.token = TOKEN1
            t.is_(rebinding(d, "corod.test")[1].status, 200,
                  "with a token, any Host (the token protects)")
            problem(d.request("GET", "/v1/tasks", headers={
                "Host": "corod.test", "Authorization": "Bearer x"}), 401,
                "... and a wrong token is still 401")
        with Corod(t, args=["--token-file", tf, "--allow-host", "corod.test"],
                   name="host-token-list") as d:
            d.token = TOKEN1
            t.is_(d.request("GET", "/v1/tasks", headers={
                "Host": "corod.test"}).status, 200,
                "a token and allow-host: a listed name")
            problem(d.request("GET", "/v1/tasks", headers={
                "Host": "other.test"}), 421,
                "... another name: 421 (allow-host applies with tokens too)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- TLS ---------------------------------------------------------------------

@t.test(timeout=90)
def tls():
    if shutil.which("openssl") is None:
        t.skip("HTTPS", "no openssl command to make a certificate")
        return
    tmp = tempfile.mkdtemp(prefix="corod-tls-")
    try:
        made, why = self_signed_cert(tmp)
        if made is None:
            t.ok(False, "openssl made a certificate", diag=why)
            return
        cert, key = made
        tf = os.path.join(tmp, "tokens")
        write(tf, TOKEN1 + "\n")
        with Corod(t, args=["--tls-cert", cert, "--tls-key", key,
                            "--token-file", tf], start=False,
                   name="tls") as d:
            ctx = ssl.create_default_context(cafile=cert)
            d.tls = ctx
            d.token = TOKEN1
            d.start()
            r = d.request("GET", "/healthz")
            t.is_(r.status, 200, "GET /healthz over HTTPS")
            task = d.submit(echo("over TLS"))
            d.wait_for(lambda: d.get(task["id"])["state"] == "succeeded", 10)
            t.ok(True, "a task submitted and followed over HTTPS")
            r = d.request("GET", "/v1/tasks/%d?wait=0.2&version=%d" %
                          (task["id"], d.get(task["id"])["version"]))
            t.is_(r.status, 200, "a long-poll over HTTPS times out with 200")
            if shutil.which("curl"):
                p = subprocess.run(
                    ["curl", "-sS", "--cacert", cert, "-H",
                     "Authorization: Bearer " + TOKEN1,
                     "https://localhost:%d/v1/tasks/%d" % (d.port,
                                                           task["id"])],
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                    timeout=scaled(20))
                out = p.stdout.decode("utf-8", "replace")
                t.ok(p.returncode == 0 and
                     json.loads(out or "{}").get("state") == "succeeded",
                     "curl --cacert reads the task over HTTPS", diag=out)
            else:
                t.skip("curl over HTTPS", "no curl")
            # Plain HTTP to the TLS port gets no HTTP answer.
            s = socket.create_connection(("127.0.0.1", d.port),
                                         timeout=scaled(5))
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                got = s.recv(100)
            except OSError:
                got = b""
            s.close()
            t.ok(not got.startswith(b"HTTP/1.1 200"),
                 "plain HTTP on the HTTPS port is not served", diag=repr(got))
            t.is_(d.request("GET", "/healthz").status, 200,
                  "... and HTTPS still is")
        db = os.path.join(tmp, "c.db")
        os.chmod(key, 0o644)
        rc, out = run_corod(["--listen", "127.0.0.1:0", "--db", db,
                             "--tls-cert", cert, "--tls-key", key], tmp)
        t.ok(rc not in (0, None) and "key.pem: mode 0644" in out,
             "a world-readable key is refused", diag="rc %s: %s" % (rc, out))
        os.chmod(key, 0o600)
        rc, out = run_corod(["--listen", "127.0.0.1:0", "--db", db,
                             "--tls-cert", cert], tmp)
        t.ok(rc not in (0, None) and "both tls-cert and tls-key" in out,
             "a certificate without a key is refused", diag=out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- stored tasks ------------------------------------------------------------

@t.test(timeout=60)
def max_tasks():
    with Corod(t, args=["--max-tasks", "6"], name="max-tasks") as d:
        ids = [d.submit(echo("t%d" % i))["id"] for i in range(3)]
        seq = {"kind": "sequence", "params": {"tasks": [
            echo("a"), echo("b")]}}
        d.submit(seq)
        t.ok(True, "6 tasks stored (3 echoes, a sequence of 2)")
        r = d.request("POST", "/v1/tasks", echo("one too many"))
        problem(r, 429, "the 7th task: 429")
        t.ok(r.body.get("type", "").endswith("too-many-tasks") and
             "max-tasks" in r.body.get("detail", ""),
             "... too-many-tasks, naming max-tasks", diag=r.describe())
        t.ok(int(r.headers.get("retry-after", "0")) > 0,
             "... with Retry-After")
        r = d.request("POST", "/v1/tasks", [echo("x"), echo("y")])
        problem(r, 429, "a batch over the bound: 429")
        r = d.request("GET", "/v1/tasks")
        t.is_(len(r.body["tasks"]), 6, "nothing of them was stored (6 "
              "tasks listed)")
        d.wait_for(lambda: d.get(ids[0])["state"] == "succeeded", 10)
        t.is_(d.request("DELETE", "/v1/tasks/%d" % ids[0]).status, 204,
              "delete one")
        r = d.request("POST", "/v1/tasks", echo("room again"))
        t.is_(r.status, 201, "then one more fits")
        r = d.request("POST", "/v1/tasks", echo("full again"))
        t.is_(r.status, 429, "... and the next is refused again")
        t.is_(metric(d, "corod_tasks_stored"), 6.0,
              "corod_tasks_stored says 6")
        d.restart()
        r = d.request("POST", "/v1/tasks", echo("after a restart"))
        t.is_(r.status, 429, "after a restart the count is read back")


@t.test(timeout=60)
def retention_count():
    with Corod(t, name="retention-count") as d:
        ids = [d.submit(echo("r%d" % i))["id"] for i in range(5)]
        g = d.submit({"kind": "gather", "params": {"tasks": [
            echo("c1"), echo("c2")]}})
        d.wait_for(lambda: all(d.get(i)["state"] == "succeeded"
                               for i in ids + [g["id"]]), 10)
        newest = d.submit(echo("newest"))
        d.wait_for(lambda: d.get(newest["id"])["state"] == "succeeded", 10)
        d.args = ["--retention-count", "2"]
        d.restart()
        d.wait_output(r"retention: deleting \d+ finished tasks", 10)

        def top():
            return [x["id"] for x in d.request("GET", "/v1/tasks").body[
                "tasks"] if x["parent"] is None]
        d.wait_for(lambda: len(top()) == 2, 10)
        left = top()
        t.is_(left, [newest["id"], g["id"]], "retention-count 2 keeps the "
              "two newest finished tasks")
        kids = d.get(g["id"])["children"]
        t.ok(all(d.request("GET", "/v1/tasks/%d" % k).status == 200
                 for k in kids), "... with the children of the kept group")
        t.ok(all(d.request("GET", "/v1/tasks/%d" % i).status == 404
                 for i in ids), "... and the older ones are gone")


# --- the body limit and a reload ------------------------------------------

def post_begun(d, framing):
    """A socket on which the headers of a POST /v1/tasks were sent and
    taken: corod said 100 Continue, so the request has begun (and has
    its limits) before anything that follows."""
    s = socket.create_connection(("127.0.0.1", d.port), timeout=scaled(10))
    s.sendall(b"POST /v1/tasks HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
              b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
              b"%s\r\n\r\n" % (d.port, framing))
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = s.recv(1)
        if not chunk:
            break
        got += chunk
    t.ok(got.startswith(b"HTTP/1.1 100 "), "... the headers are taken (100 "
         "Continue)", diag=repr(got))
    return s


def reloaded(d, n):
    """Wait for the n-th "reload: max-body changed" of this start."""
    d.wait_for(lambda: d.output().count("reload: max-body changed") >= n, 10,
               desc="reload %d" % n)


@t.test(timeout=60)
def max_body_reload():
    # A request keeps the max-body it started with: lowering it by SIGHUP
    # while a body comes in once wrote past the (shrunk) buffer (SIGSEGV;
    # ASan: heap-buffer-overflow in http_append).
    tmp = tempfile.mkdtemp(prefix="corod-body-")
    try:
        conf = os.path.join(tmp, "corod.conf")
        write(conf, "max-body = 1M\n")
        with Corod(t, args=["--config", conf], name="max-body") as d:
            spec = json.dumps(echo("padded")).encode()
            body = spec + b" " * (100000 - len(spec))
            s = post_begun(d, b"Content-Length: %d" % len(body))
            s.sendall(body[:5000])
            write(conf, "max-body = 1K\n")
            os.kill(d.pid, signal.SIGHUP)
            reloaded(d, 1)
            s.sendall(body[5000:])
            got = read_answer_once(s)
            s.close()
            t.ok(got.startswith(b"HTTP/1.1 201 "), "a 100 KB upload begun "
                 "under max-body 1M and finished after a reload to 1K: "
                 "201 (its own limit)", diag=repr(got[:300]))
            t.ok(d.running(), "... and corod is still running")
            r = d.request("POST", "/v1/tasks", body[:5000])
            problem(r, 413, "a 5 KB body sent after the reload: 413")
            t.ok("1024 bytes" in (r.body or {}).get("detail", ""),
                 "... naming the new limit", diag=r.describe())
            r = d.request("GET", "/v1/tasks")
            t.is_([x["params"]["message"] for x in r.body["tasks"]],
                  ["padded"], "only the upload begun before it was stored")
            # ... and the other way: raised during a chunked upload (no
            # Content-Length to refuse early), the request keeps 1K.
            body = spec + b" " * (2000 - len(spec))
            s = post_begun(d, b"Transfer-Encoding: chunked")
            s.sendall(b"%x\r\n%s\r\n" % (500, body[:500]))
            write(conf, "max-body = 1M\n")
            os.kill(d.pid, signal.SIGHUP)
            reloaded(d, 2)
            s.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (1500, body[500:]))
            got = read_answer_once(s)
            s.close()
            t.ok(got.startswith(b"HTTP/1.1 413 "), "a 2 KB chunked body begun "
                 "under 1K, the limit raised to 1M meanwhile: 413 (its own "
                 "limit)", diag=repr(got[:300]))
            t.is_(len(d.request("GET", "/v1/tasks").body["tasks"]), 1,
                  "... nothing more was stored")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- connections -------------------------------------------------------------

def read_answer(s, timeout=5):
    """What the server sends until it closes (or timeout)."""
    s.settimeout(scaled(timeout))
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    return check_raw(None, data)


@t.test(timeout=60)
def connection_limits():
    with Corod(t, args=["--max-connections-per-client", "4"],
               name="per-client") as d:
        d._close_conn()
        time.sleep(0.3)         # until corod has seen it close
        held = [socket.create_connection(("127.0.0.1", d.port))
                for _ in range(4)]
        time.sleep(0.2)
        s = socket.create_connection(("127.0.0.1", d.port))
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        got = read_answer(s)
        s.close()
        t.ok(got.startswith(b"HTTP/1.1 429 ") and b"Retry-After: 1" in got
             and b"too-many-connections" in got,
             "the 5th connection from one address: 429 problem, "
             "Retry-After", diag=repr(got[:400]))
        held.pop().close()
        time.sleep(0.2)
        t.is_(d.request("GET", "/healthz").status, 200,
              "one closed: a new one is served")
        for s in held:
            s.close()
        d._close_conn()
        time.sleep(0.2)
        t.ok((metric(d, 'corod_http_connections_refused_total'
                     '{limit="client"}') or 0) >= 1,
             "corod_http_connections_refused_total{limit=\"client\"} counts "
             "it")

    with Corod(t, args=["--max-connections", "3"], name="total") as d:
        d._close_conn()
        time.sleep(0.3)         # until corod has seen it close
        held = [socket.create_connection(("127.0.0.1", d.port))
                for _ in range(3)]
        time.sleep(0.2)
        s = socket.create_connection(("127.0.0.1", d.port))
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        got = read_answer(s)
        s.close()
        t.ok(got.startswith(b"HTTP/1.1 503 "), "past max-connections: 503",
             diag=repr(got[:300]))
        for s in held:
            s.close()
        time.sleep(0.2)
        t.is_(d.request("GET", "/healthz").status, 200,
              "with them closed: served again")


@t.test(timeout=90)
def slow_clients():
    with Corod(t, args=["--request-timeout", "1", "--connection-timeout",
                        "5"], name="slow") as d:
        # Headers a line at a time, never finished.
        s = socket.create_connection(("127.0.0.1", d.port))
        start = time.monotonic()
        s.sendall(b"GET /healthz HTTP/1.1\r\n")
        ended = None
        for i in range(int(scaled(20))):
            try:
                s.sendall(b"X-Slow-%d: y\r\n" % i)
            except OSError:
                ended = time.monotonic() - start
                break
            time.sleep(0.25)
        got = read_answer(s, 5)
        if ended is None:
            ended = time.monotonic() - start
        s.close()
        t.ok(got.startswith(b"HTTP/1.1 408 ") or ended < scaled(6),
             "headers sent a line at a time: closed with 408 after the "
             "request-timeout (%.1f s)" % ended, diag=repr(got[:200]))
        t.ok(ended >= 0.9, "... not before it")

        # A body slower than the timeout.
        s = socket.create_connection(("127.0.0.1", d.port))
        start = time.monotonic()
        s.sendall(b"POST /v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: "
                  b"application/json\r\nContent-Length: 200\r\n\r\n{\"k")
        got = read_answer(s, scaled(10))
        took = time.monotonic() - start
        s.close()
        t.ok(got.startswith(b"HTTP/1.1 408 "), "a body that stops coming: "
             "408 (%.1f s)" % took, diag=repr(got[:200]))

        # A connection that says nothing.
        s = socket.create_connection(("127.0.0.1", d.port))
        start = time.monotonic()
        got = read_answer(s, scaled(10))
        took = time.monotonic() - start
        s.close()
        t.ok(got == b"" and took < scaled(6), "a silent connection is closed "
             "(%.1f s)" % took, diag=repr(got[:200]))

        # A long-poll is not a slow request: it is answered at its time.
        task = d.submit(echo("poll me"))
        d.wait_for(lambda: d.get(task["id"])["state"] == "succeeded", 10)
        v = d.get(task["id"])["version"]
        c = d.connection()
        start = time.monotonic()
        c.request("GET", "/v1/tasks/%d?wait=2.5&version=%d" % (task["id"], v))
        r = c.getresponse()
        r.read()
        took = time.monotonic() - start
        t.ok(r.status == 200 and took >= 2.3,
             "a 2.5 s long-poll outlives a 1 s request-timeout (%.1f s)" %
             took)
        # An idle keep-alive connection waits for connection-timeout.
        time.sleep(2)
        c.request("GET", "/healthz")
        r = c.getresponse()
        r.read()
        t.is_(r.status, 200, "the same connection, idle for 2 s, serves "
              "the next request")
        c.close()
        t.ok((metric(d, "corod_http_request_timeouts_total") or 0) >= 2,
             "corod_http_request_timeouts_total counts the slow ones")
        t.is_(d.request("GET", "/healthz").status, 200,
              "the daemon still answers")


t.done()
