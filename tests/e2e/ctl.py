#!/usr/bin/env python3
"""ctl.py -- corodctl, the command-line client, against the real daemon.

Every verb (tasks, schedules, queues, workers) is run as a user runs it and
checked against the API's own answers: key=value is a string and
key:=json JSON (httpie's convention), --json prints the API's document
(parsed, it equals what GET answers), a problem document is one line on
stderr naming the field (exit 1), a connection failure names the URL it
tried (exit 3), usage errors exit 2, wait exits 0/1/2/124 by the task's
end, log -f follows to the end.  Also: a Unix socket (unix:/path), a
token file (and COROD_TOKEN_FILE), colour only on a terminal and never
with NO_COLOR or TERM=dumb, watch in a real pseudo-terminal (a task
appears and changes state; q and SIGTERM quit, the terminal restored),
and the bash completion sourced in bash.

The binary: COROD_CTL (make check sets it), else ctl/corodctl beside
COROD_BIN's directory, else the tree's.  Under valgrind (COROD_WRAPPER)
every corodctl run is under it too and must be clean.
"""

import fcntl
import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from tap import TAP, scaled  # noqa: E402
from corod import Corod, corod_bin, is_valgrind, valgrind_problems, \
    wrapper_args  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
t = TAP("ctl", total_timeout=600)
TMP = tempfile.mkdtemp(prefix="corod-ctl-")
FINAL = ("succeeded", "failed", "canceled")
vg_runs = [0]


def ctl_bin():
    b = os.environ.get("COROD_CTL")
    if b:
        return b
    beside = os.path.join(os.path.dirname(os.path.dirname(
        os.path.abspath(corod_bin()))), "ctl", "corodctl")
    if os.path.exists(beside):
        return beside
    return os.path.join(TOP, "ctl", "corodctl")


def wrapped():
    """The command in front of corodctl (valgrind with a log of its own),
    and that log."""
    if not is_valgrind():
        return [], None
    vg_runs[0] += 1
    log = os.path.join(TMP, "ctl-valgrind.%d.log" % vg_runs[0])
    return wrapper_args(log), log


def check_vg(log, what):
    if log is None:
        return
    probs = valgrind_problems(log)
    t.ok(not probs, "valgrind: corodctl %s is clean" % what,
         diag="\n".join(probs[:30]))


def env_for(extra=None, url=None):
    env = dict(os.environ)
    for k in ("COROD_URL", "COROD_TOKEN_FILE", "NO_COLOR"):
        env.pop(k, None)
    env["TZ"] = "UTC"
    if url is not None:
        env["COROD_URL"] = url
    env.update(extra or {})
    return env


def ctl(d, *args, url=None, env=None, input=None, timeout=30):
    """Run corodctl against d (or url): (exit status, stdout, stderr)."""
    wrap, log = wrapped()
    u = url if url is not None else (d.url if d is not None else None)
    cmd = wrap + [ctl_bin()] + [str(a) for a in args]
    p = subprocess.run(cmd, input=input, capture_output=True, text=True,
                       env=env_for(env, u), timeout=scaled(timeout))
    check_vg(log, " ".join(str(a) for a in args[:3]))
    return p.returncode, p.stdout, p.stderr


def ok_run(d, *args, **kw):
    """ctl() that must exit 0; its stdout."""
    rc, out, err = ctl(d, *args, **kw)
    t.is_(rc, 0, "corodctl %s: exit 0" % " ".join(map(str, args))[:80])
    if rc != 0:
        t.diag("stderr: " + err)
    return out


def api(d, method, path, body=None):
    r = d.request(method, path, body)
    if r.status >= 300:
        raise AssertionError("%s %s: %s" % (method, path, r.describe()))
    return r.body


def wait_final(d, tid, timeout=10):
    d.wait_for(lambda: d.get(tid)["state"] in FINAL, timeout)
    return d.get(tid)


def problem_line(err, status, field):
    """One line on stderr: corodctl: STATUS ...: FIELD: detail."""
    lines = err.strip().split("\n")
    return len(lines) == 1 and \
        re.match(r"^corodctl: %d [a-z -]+: %s: \S" % (status,
                                                      re.escape(field)),
                 lines[0]) is not None


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


d = Corod(t)

# --- the basics --------------------------------------------------------------


@t.test(timeout=30)
def version_and_usage():
    rc, out, _ = ctl(None, "--version")
    want = subprocess.run([corod_bin(), "--version"], capture_output=True,
                          text=True).stdout.split()[-1]
    t.is_((rc, out.strip()), (0, "corodctl " + want),
          "--version prints the package's version (the daemon's)")
    rc, out, _ = ctl(None, "--help")
    t.ok(rc == 0 and "submit KIND" in out and "schedules add" in out and
         "queues set" in out, "--help lists the verbs")
    for args, why in ((), "no verb"),\
            (("frobnicate",), "an unknown verb"),\
            (("ls", "--bogus"), "an unknown option"),\
            (("ls", "--delay", "1"), "another verb's option"),\
            (("show",), "a missing id"),\
            (("show", "1", "2"), "too many arguments"),\
            (("show", "abc"), "an id that is not one"),\
            (("submit", "echo", "message"), "an argument not key=value"),\
            (("submit", "echo", "n:={bad"), "key:= with bad JSON"),\
            (("submit", "echo", "--delay", "soon"), "--delay not a number"),\
            (("wait", "1", "--timeout", "x"), "wait --timeout not seconds"),\
            (("schedules", "add", "echo"), "add without --cron/--every"),\
            (("queues", "set", "q", "rate=fast"), "a bad rate"):
        rc, out, err = ctl(d, *args)
        t.ok(rc == 2 and err.startswith("corodctl: ") and "usage:" in err,
             "usage error (%s): exit 2, a line and the usage" % why,
             diag="rc %s\n%s" % (rc, err))


@t.test(timeout=30)
def submit_params():
    out = ok_run(d, "submit", "echo", "message=Hello!", "--delay", "0.2")
    tid = int(out.strip())
    task = wait_final(d, tid)
    t.is_((task["params"], task["state"], task["delay"]),
          ({"message": "Hello!"}, "succeeded", 0.2),
          "submit echo message=Hello! --delay 0.2: prints the id; the "
          "params and delay as given")
    out = ok_run(d, "submit", "repeat", "message=Message from worker",
                 "interval:=0.1", "count:=2", "--name", "worker")
    task = d.get(int(out))
    t.is_((task["params"], task["name"]),
          ({"message": "Message from worker", "interval": 0.1, "count": 2},
           "worker"), "key:=json is JSON (numbers), key=value a string")
    out = ok_run(d, "submit", "external", "message:=\"quoted\"",
                 "x:=[1,{\"a\":null}]", "--queue", "q-one", "--priority", "-5",
                 "--max-attempts", "3", "--timeout", "10",
                 "--concurrency-key", "k1", "--unique", "u-1",
                 "--on-conflict", "keep", "--delay", "3600")
    rc, _, err = ctl(d, "submit", "echo", "message=a", "x:=1")
    t.ok(rc == 1 and problem_line(err, 400, "/params/x"),
         "an unknown param: 400 line naming /params/x, exit 1", diag=err)
    task = d.get(int(out))
    t.is_(task["params"], {"message": "quoted", "x": [1, {"a": None}]},
          "key:=json: any JSON (a string, an array)")
    t.is_((task["queue"], task["priority"], task["max_attempts"],
           task["timeout"], task["concurrency_key"], task["unique"]["key"],
           task["unique"]["on_conflict"]),
          ("q-one", -5, 3, 10, "k1", "u-1", "keep"),
          "the spec's options land in its members")
    rc, _, err = ctl(d, "submit", "repeat", "message=m", "interval=1")
    t.ok(rc == 1 and problem_line(err, 400, "/params/interval"),
         "interval=1 is a string: exit 1, one line naming /params/interval",
         diag=err)
    t.like(err, r"^corodctl: 400 invalid field: /params/interval: ",
           "... as 'corodctl: 400 invalid field: /params/interval: ...'")
    rc, _, err = ctl(d, "submit", "echo", "message=x", "--priority", "1.5")
    t.is_(rc, 2, "--priority 1.5: not an integer, usage error")

    # A whole spec, a batch, from a file and from stdin.
    path = os.path.join(TMP, "batch.json")
    with open(path, "w") as f:
        json.dump([{"kind": "echo", "params": {"message": "a"}},
                   {"kind": "sleep", "params": {"seconds": 0}}], f)
    out = ok_run(d, "submit", "-f", path)
    ids = [int(x) for x in out.split()]
    t.ok(len(ids) == 2 and [d.get(i)["kind"] for i in ids] ==
         ["echo", "sleep"], "submit -f FILE with an array: both ids")
    out = ok_run(d, "submit", "-f", "-", "--name", "from-stdin",
                 input='{"kind": "echo", "params": {"message": "in"}}')
    t.is_(d.get(int(out))["name"], "from-stdin",
          "submit -f - reads stdin; options apply to the object")
    rc, out, err = ctl(d, "--json", "submit", "sleep", "seconds:=0")
    doc = json.loads(out)
    t.ok(rc == 0 and doc["kind"] == "sleep" and isinstance(doc["id"], int),
         "--json submit prints the task")
    rc, _, err = ctl(d, "submit", "echo", "message=i", "--idempotency-key",
                     "key-1")
    rc2, out2, _ = ctl(d, "submit", "echo", "message=i", "--idempotency-key",
                       "key-1")
    t.ok(rc == 0 and rc2 == 0, "--idempotency-key: a repeat answers 200")


@t.test(timeout=60)
def ls_show_json():
    ids = [int(ok_run(d, "submit", "echo", "message=ls%d" % i).strip())
           for i in range(3)]
    for i in ids:
        wait_final(d, i)
    rc, out, _ = ctl(d, "--json", "ls")
    mine = json.loads(out)
    api_doc = api(d, "GET", "/v1/tasks?limit=1000")
    t.is_(mine, api_doc, "ls --json equals GET /v1/tasks (one document)")
    rc, out, _ = ctl(d, "ls", "--json", "--state", "succeeded", "--kind",
                     "echo", "--limit", "2")
    doc = json.loads(out)
    t.ok(len(doc["tasks"]) == 2 and all(x["kind"] == "echo" and
         x["state"] == "succeeded" for x in doc["tasks"]),
         "ls --state --kind --limit 2 (global --json after the verb)")
    out = ok_run(d, "ls", "--limit", "3")
    lines = out.rstrip("\n").split("\n")
    t.ok(re.match(r"^ID +STATE +KIND +NAME +QUEUE +CREATED +INFO$",
                  lines[0]) is not None and len(lines) == 4,
         "ls: a header and one aligned line per task", diag=out)
    t.like(lines[1], r"^%d +succeeded +echo +- +default +\d{4}-\d\d-\d\d "
           r"\d\d:\d\d:\d\d$" % ids[2], "... newest first, a local time")
    t.ok(all(len(x) == len(x.rstrip()) for x in lines),
         "... no trailing blanks")
    rc, out, _ = ctl(d, "--json", "show", ids[0])
    t.is_(json.loads(out), d.get(ids[0]), "show --json equals GET")
    out = ok_run(d, "show", ids[0])
    t.ok(re.search(r"^state: +succeeded$", out, re.M) and
         re.search(r"^params: +\{\"message\":\"ls0\"\}$", out, re.M) and
         re.search(r"^finished_at: +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+$",
                   out, re.M), "show: one field a line, times local",
         diag=out)
    rc, _, err = ctl(d, "show", "999999")
    t.ok(rc == 1 and err.startswith("corodctl: 404 "),
         "show of an unknown id: 404 line, exit 1", diag=err)


@t.test(timeout=120)
def ls_pages():
    """Past one page (1000), ls follows next_cursor; --limit stops."""
    with Corod(t, name="pages") as p:
        for _ in range(2):
            p.submit([{"kind": "echo", "params": {"message": "p"},
                       "delay": 3600}] * 600, expect=201)
        rc, out, _ = ctl(p, "--json", "ls")
        doc = json.loads(out)
        ids = [x["id"] for x in doc["tasks"]]
        t.ok(rc == 0 and len(ids) == 1200 and len(set(ids)) == 1200 and
             ids == sorted(ids, reverse=True) and
             doc["next_cursor"] is None,
             "ls without --limit: all 1200 tasks over two pages")
        rc, out, _ = ctl(p, "--json", "ls", "--limit", "1100")
        doc = json.loads(out)
        t.ok(len(doc["tasks"]) == 1100 and doc["next_cursor"] is not None,
             "ls --limit 1100: 1100 tasks, the next cursor kept")
        out = ok_run(p, "ls")
        t.is_(len(out.rstrip("\n").split("\n")), 1201,
              "ls: 1200 lines and the header")


@t.test(timeout=60)
def log_and_follow():
    tid = int(ok_run(d, "submit", "echo", "message=line one").strip())
    wait_final(d, tid)
    out = ok_run(d, "log", tid)
    t.is_(out, d.request("GET", "/v1/tasks/%d/log" % tid).body,
          "log ID prints the log as the API sends it")
    tid = int(ok_run(d, "submit", "repeat", "message=tick",
                     "interval:=0.3", "count:=3").strip())
    started = time.monotonic()
    rc, out, _ = ctl(d, "log", tid, "-f")
    took = time.monotonic() - started
    ticks = [x for x in out.split("\n") if x.endswith(" tick")]
    t.ok(rc == 0 and len(ticks) == 3 and d.get(tid)["state"] == "succeeded",
         "log -f follows until the task ends (3 ticks), exit 0",
         diag=out)
    t.between(took, 0.5, scaled(20), "... it waited for the ticks")
    rc, out, _ = ctl(d, "log", tid, "--follow")
    t.is_(rc, 0, "log --follow of a finished task ends at once")
    rc, _, err = ctl(d, "log", "999999", "-f")
    t.ok(rc == 1 and err.startswith("corodctl: 404"),
         "log -f of an unknown task: 404, exit 1", diag=err)


@t.test(timeout=60)
def cancel_rm():
    tid = int(ok_run(d, "submit", "echo", "message=later", "--delay",
                     "3600").strip())
    rc, _, err = ctl(d, "rm", tid)
    t.ok(rc == 1 and err.startswith("corodctl: 409 "),
         "rm of an unfinished task: 409 line, exit 1", diag=err)
    v = d.get(tid)["version"]
    rc, _, err = ctl(d, "cancel", tid, "--if-match", v + 1000)
    t.ok(rc == 1 and problem_line(err, 412, "/headers/If-Match"),
         "cancel --if-match another version: 412 naming If-Match",
         diag=err)
    out = ok_run(d, "cancel", tid, "--if-match", v)
    t.is_((out, d.get(tid)["state"]), ("%d canceled\n" % tid, "canceled"),
          "cancel of a scheduled task: canceled")
    tid2 = int(ok_run(d, "submit", "repeat", "message=r", "interval:=5")
               .strip())
    d.wait_for(lambda: d.get(tid2)["state"] == "running", 5)
    rc, out, _ = ctl(d, "--json", "cancel", tid2)
    t.ok(rc == 0 and json.loads(out)["cancel_requested"] is True,
         "cancel --json of a running one: the task, cancel requested")
    done = int(ok_run(d, "submit", "echo", "message=x").strip())
    wait_final(d, done)
    rc, _, err = ctl(d, "cancel", done)
    t.ok(rc == 1 and err.startswith("corodctl: 409 already finished"),
         "cancel of a succeeded task: 409 line, exit 1", diag=err)
    rc, out, _ = ctl(d, "rm", done)
    t.ok(rc == 0 and out == "" and
         d.request("GET", "/v1/tasks/%d" % done).status == 404,
         "rm of a finished task: gone, silent, exit 0")
    rc, _, err = ctl(d, "rm", done)
    t.ok(rc == 1 and err.startswith("corodctl: 404 "),
         "rm again: 404, exit 1")


@t.test(timeout=60)
def wait_exit_codes():
    tid = int(ok_run(d, "submit", "echo", "message=w", "--delay", "0.5")
              .strip())
    started = time.monotonic()
    rc, out, _ = ctl(d, "wait", tid)
    t.ok(rc == 0 and out == "%d succeeded\n" % tid and
         d.get(tid)["state"] == "succeeded",
         "wait for a task that succeeds: exit 0 once it has", diag=out)
    t.between(time.monotonic() - started, 0.3, scaled(20),
              "... it waited for it")
    tid = int(ok_run(d, "submit", "sleep", "seconds:=30", "--timeout",
                     "0.2").strip())
    rc, out, _ = ctl(d, "wait", tid)
    t.ok(rc == 1 and d.get(tid)["state"] == "failed",
         "a task that fails (timeout): exit 1", diag=out)
    tid = int(ok_run(d, "submit", "repeat", "message=r", "interval:=0.1")
              .strip())
    rc, _, err = ctl(d, "wait", tid, "--timeout", "0.5")
    t.ok(rc == 124 and "still" in err, "wait --timeout 0.5 of a repeat: "
         "exit 124", diag=err)
    proc = subprocess.Popen([ctl_bin(), "wait", str(tid), "--json"],
                            stdout=subprocess.PIPE, text=True,
                            env=env_for(url=d.url))
    time.sleep(0.3)
    api(d, "POST", "/v1/tasks/%d/cancel" % tid)
    out, _ = proc.communicate(timeout=scaled(20))
    t.ok(proc.returncode == 2 and json.loads(out)["state"] == "canceled",
         "a task canceled while waited for: exit 2, --json the task")
    rc, _, err = ctl(d, "wait", "999999")
    t.ok(rc == 1 and err.startswith("corodctl: 404"),
         "wait for an unknown task: 404, exit 1")


@t.test(timeout=30)
def connection_failures():
    port = free_port()
    url = "http://127.0.0.1:%d" % port
    rc, _, err = ctl(None, "ls", url=url)
    t.ok(rc == 3 and err.strip() == "corodctl: cannot connect to %s: "
         "Connection refused" % url,
         "nobody listening: exit 3, naming the URL and the reason",
         diag=err)
    rc, _, err = ctl(None, "--url", url, "show", "1")
    t.ok(rc == 3 and url in err, "--url is what is tried too", diag=err)
    sock = os.path.join(TMP, "nobody.sock")
    rc, _, err = ctl(None, "ls", url="unix:" + sock)
    t.ok(rc == 3 and ("cannot connect to unix:" + sock) in err,
         "a unix socket nobody listens on: exit 3, named", diag=err)
    rc, _, err = ctl(None, "ls", url="ftp://x")
    t.is_(rc, 2, "a URL of another scheme: usage error")
    # A server that is not corod (no problem document): still one line.
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def answer():
        c, _ = srv.accept()
        c.recv(65536)
        c.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\n"
                  b"Content-Length: 5\r\nConnection: close\r\n\r\n<b/>\n")
        c.close()
    import threading
    th = threading.Thread(target=answer, daemon=True)
    th.start()
    rc, _, err = ctl(None, "ls", url="http://127.0.0.1:%d" %
                     srv.getsockname()[1])
    th.join(5)
    srv.close()
    t.ok(rc == 1 and err.startswith("corodctl: 502") and
         err.count("\n") == 1, "a 502 without a problem document: one "
         "line, exit 1", diag=err)


@t.test(timeout=60)
def unix_socket_and_token():
    sock = os.path.join(TMP, "api.sock")
    tf = os.path.join(TMP, "tokens")
    with open(tf, "w") as f:
        f.write("# corod's own token file works too\n"
                "ctl-token-0123456789abcdef\n")
    mine = os.path.join(TMP, "my-token")
    with open(mine, "w") as f:
        f.write("ctl-token-0123456789abcdef\n")
    os.chmod(tf, 0o600)
    with Corod(t, args=["--listen", "127.0.0.1:0,unix:" + sock,
                        "--token-file", tf], name="token") as p:
        p.token = "ctl-token-0123456789abcdef"
        rc, _, err = ctl(p, "ls")
        t.ok(rc == 1 and problem_line(err, 401, "/headers/Authorization"),
             "no token: 401 line naming /headers/Authorization, exit 1",
             diag=err)
        rc, out, _ = ctl(p, "--token-file", mine, "submit", "echo",
                         "message=t")
        t.ok(rc == 0 and p.get(int(out))["kind"] == "echo",
             "--token-file FILE: sent as Bearer, accepted")
        rc, out, _ = ctl(p, "ls", "--json", env={"COROD_TOKEN_FILE": tf})
        t.ok(rc == 0 and len(json.loads(out)["tasks"]) == 1,
             "COROD_TOKEN_FILE (corod's own file, a comment first)")
        rc, out, _ = ctl(None, "--token-file", mine, "--json", "ls",
                         url="unix:" + sock)
        t.ok(rc == 0 and len(json.loads(out)["tasks"]) == 1,
             "--url unix:/path: the API over the Unix socket")
        rc, out, _ = ctl(None, "--json", "ls", env={
            "COROD_URL": "unix:" + sock, "COROD_TOKEN_FILE": mine})
        t.ok(rc == 0 and len(json.loads(out)["tasks"]) == 1,
             "COROD_URL=unix:/path")
        rc, _, err = ctl(p, "--token-file", os.path.join(TMP, "none"), "ls")
        t.ok(rc == 2 and "token file" in err,
             "a token file that cannot be read: exit 2", diag=err)


def pty_run(args, env, rows=30, cols=140):
    """corodctl args on a new pseudo-terminal: (pid, master fd)."""
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execve(ctl_bin(), [ctl_bin()] + args, env)
        finally:
            os._exit(127)
    fcntl.ioctl(fd, termios.TIOCSWINSZ,
                struct.pack("HHHH", rows, cols, 0, 0))
    return pid, fd


def pty_read(fd, until, timeout):
    """Read from fd until until(text) or timeout; the text."""
    buf = b""
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            buf += data
            if until(buf.decode("utf-8", "replace")):
                break
    return buf.decode("utf-8", "replace")


def pty_wait(pid, fd, timeout=10):
    """Drain fd until pid exits: (exit status or None, rest of output)."""
    out = ""
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        out += pty_read(fd, lambda s: False, 0.2)
        wpid, status = os.waitpid(pid, os.WNOHANG)
        if wpid == pid:
            out += pty_read(fd, lambda s: False, 0.2)
            return os.waitstatus_to_exitcode(status), out
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None, out


def plain(s):
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", s)


@t.test(timeout=60)
def colour():
    tid = int(ok_run(d, "submit", "echo", "message=c").strip())
    wait_final(d, tid)
    rc, out, _ = ctl(d, "ls", env={"TERM": "xterm"})
    t.ok(rc == 0 and "\x1b[" not in out, "through a pipe: no colour")
    for extra, want, why in (({"TERM": "xterm"}, True, "on a terminal"),
                             ({"TERM": "xterm", "NO_COLOR": "1"}, False,
                              "with NO_COLOR"),
                             ({"TERM": "dumb"}, False, "with TERM=dumb")):
        env = env_for(extra, d.url)
        pid, fd = pty_run(["ls", "--limit", "1"], env)
        status, out = pty_wait(pid, fd)
        os.close(fd)
        has = "\x1b[32m" in out and "\x1b[1m" in out
        t.ok(status == 0 and has == want and
             ("succeeded" in out), "%s: %s" % (why, "colour (bold header, "
                                                "green succeeded)" if want
                                                else "no colour"),
             diag=repr(out[:400]))


@t.test(timeout=90)
def watch_on_a_pty():
    env = env_for({"TERM": "xterm"}, d.url)
    pid, fd = pty_run(["watch"], env)
    try:
        out = pty_read(fd, lambda s: "STATE" in s and "(q to quit)" in s, 10)
        t.ok("\x1b[?1049h" in out and "STATE" in out,
             "watch: the alternate screen and the table's header")
        # Due later than the redraw can take, even under valgrind.
        tid = d.submit({"kind": "echo", "params": {"message": "watched"},
                        "delay": scaled(1.5)})["id"]
        row = re.compile(r"(^|\n)%d +scheduled " % tid)
        out = pty_read(fd, lambda s: row.search(plain(s).replace(
            "\r", "")), 10)
        t.ok(row.search(plain(out).replace("\r", "")),
             "a task submitted appears, scheduled", diag=repr(out[-600:]))
        row = re.compile(r"(^|\n)%d +succeeded " % tid)
        out = pty_read(fd, lambda s: row.search(plain(s).replace(
            "\r", "")), 20)
        t.ok(row.search(plain(out).replace("\r", "")),
             "... then succeeded, without a key pressed",
             diag=repr(out[-600:]))
        os.write(fd, b"q")
        status, out = pty_wait(pid, fd)
        t.is_(status, 0, "q quits, exit 0")
        t.ok(out.endswith("\x1b[?25h\x1b[?1049l") or
             "\x1b[?1049l" in out, "... the screen and cursor restored",
             diag=repr(out[-200:]))
        attrs = termios.tcgetattr(fd)
        t.ok(attrs[3] & termios.ECHO and attrs[3] & termios.ICANON,
             "... the terminal's modes restored (echo, canonical)")
    finally:
        os.close(fd)
    pid, fd = pty_run(["watch", "--state", "succeeded"], env, rows=8)

    def rows_of(text):
        """The task rows of the last frame drawn."""
        frame = plain(text.split("\x1b[H")[-1]).replace("\r", "")
        return len([x for x in frame.split("\n")
                    if re.match(r"^\d+ +succeeded ", x)])
    try:
        out = pty_read(fd, lambda s: rows_of(s) == 6, 10)
        t.is_(rows_of(out), 6, "8 rows: a title, a header, 6 tasks")
        fcntl.ioctl(fd, termios.TIOCSWINSZ,
                    struct.pack("HHHH", 14, 140, 0, 0))
        os.kill(pid, signal.SIGWINCH)
        out = pty_read(fd, lambda s: rows_of(s) == 12, 10)
        t.is_(rows_of(out), 12, "resized to 14 rows (SIGWINCH): 12 tasks")
        os.kill(pid, signal.SIGTERM)
        status, out = pty_wait(pid, fd)
        t.ok(status == 0 and "\x1b[?1049l" in out,
             "SIGTERM: exit 0, the screen restored")
    finally:
        os.close(fd)
    rc, _, err = ctl(d, "watch")
    t.ok(rc == 2 and "terminal" in err, "watch through a pipe: usage "
         "error, exit 2")


@t.test(timeout=60)
def queues_and_workers():
    out = ok_run(d, "queues", "set", "thumbs", "concurrency=2",
                 "key_concurrency=1", "rate=10/60")
    q = api(d, "GET", "/v1/queues/thumbs")
    t.is_((q["concurrency"], q["key_concurrency"], q["rate"]),
          (2, 1, {"limit": 10, "per": 60}),
          "queues set concurrency=2 key_concurrency=1 rate=10/60")
    t.ok(re.search(r"^thumbs +no +2 +1 +10/60s ", out, re.M),
         "... prints the queue", diag=out)
    ok_run(d, "queues", "pause", "thumbs", "--if-match", q["version"])
    t.is_(api(d, "GET", "/v1/queues/thumbs")["paused"], True,
          "queues pause --if-match its version")
    rc, _, err = ctl(d, "queues", "resume", "thumbs", "--if-match", "1")
    t.ok(rc == 1 and problem_line(err, 412, "/headers/If-Match"),
         "resume with a stale version: 412 line naming If-Match", diag=err)
    ok_run(d, "queues", "resume", "thumbs")
    ok_run(d, "queues", "set", "thumbs", "concurrency=none", "rate=none",
           "key_concurrency:=null")
    q = api(d, "GET", "/v1/queues/thumbs")
    t.is_((q["paused"], q["concurrency"], q["key_concurrency"], q["rate"]),
          (False, None, None, None), "resume; set ...=none clears")
    rc, _, err = ctl(d, "queues", "set", "thumbs", "concurrency=0")
    t.ok(rc == 1 and problem_line(err, 400, "/concurrency"),
         "concurrency=0: 400 line naming /concurrency", diag=err)
    out = ok_run(d, "queue", "show", "thumbs")
    t.ok(re.search(r"thumbs", out), "the singular noun works too: queue "
         "show", diag=out)
    rc, out, _ = ctl(d, "schedule", "ls")
    t.is_(rc, 0, "... schedule ls")
    rc, _, err = ctl(d, "queues", "show", "Bad Name")
    t.ok(rc == 1 and problem_line(err, 400, "/path/queue"),
         "a bad queue name: 400 naming /path/queue", diag=err)
    rc, out, _ = ctl(d, "--json", "queues", "show", "thumbs")
    t.is_(json.loads(out)["name"], "thumbs", "queues show --json")
    rc, out, _ = ctl(d, "--json", "queues")
    want = api(d, "GET", "/v1/queues")
    got = json.loads(out)
    t.is_([x["name"] for x in got["queues"]],
          [x["name"] for x in want["queues"]],
          "queues --json: the API's list")
    out = ok_run(d, "queues", "ls")
    t.like(out, r"^NAME +PAUSED +CONCURRENCY +KEY_CONC +RATE +WAITING",
           "queues ls: a table")

    d.submit({"kind": "external", "queue": "jobs", "params": {}})
    r = d.request("POST", "/v1/queues/jobs/claim",
                  {"worker": "box-1/42", "wait": 5}, timeout=35)
    t.is_(len(r.body["claims"]), 1, "a worker claimed a task")
    rc, out, _ = ctl(d, "--json", "workers")
    t.is_(json.loads(out), api(d, "GET", "/v1/workers"),
          "workers --json equals GET /v1/workers")
    out = ok_run(d, "workers", "ls")
    t.like(out, r"\nbox-1/42 +jobs +1 +1 +\d{4}-", "workers ls: a table")
    c = r.body["claims"][0]
    api(d, "POST", "/v1/tasks/%d/complete" % c["task"]["id"],
        {"token": c["token"]})
    rc, out, _ = ctl(d, "--json", "nodes")
    got = json.loads(out)
    t.is_([n["id"] for n in got["nodes"]], [1],
          "nodes --json: the one node of an sqlite store")
    out = ok_run(d, "nodes")
    t.like(out, r"^ID +HOST +PID +STATE +STARTED +LAST_SEEN +RUNNING +SELF"
           r"\n1 +\S+ +%d +up +" % d.pid, "nodes: a table of this one")


@t.test(timeout=60)
def schedules():
    out = ok_run(d, "schedules", "add", "--cron", "30 2 * * *",
                 "--time-zone", "Europe/Berlin", "--name", "nightly",
                 "--overlap", "queue", "echo", "message=night",
                 "--task-name", "night-echo", "--priority", "2")
    sid = int(out)
    s = api(d, "GET", "/v1/schedules/%d" % sid)
    t.is_((s["cron"], s["time_zone"], s["name"], s["overlap"],
           s["task"]), ("30 2 * * *", "Europe/Berlin", "nightly", "queue",
                        {"kind": "echo", "params": {"message": "night"},
                         "name": "night-echo", "priority": 2}),
          "schedules add: the rule, its options, the task from KIND "
          "key=value")
    rc, out, _ = ctl(d, "--json", "schedules", "show", sid)
    t.is_(json.loads(out), api(d, "GET", "/v1/schedules/%d" % sid),
          "schedules show --json equals GET")
    rc, out, _ = ctl(d, "--json", "schedules")
    t.is_(json.loads(out), api(d, "GET", "/v1/schedules?limit=1000"),
          "schedules (ls) --json equals GET /v1/schedules")
    out = ok_run(d, "schedules", "ls")
    t.like(out, r"\n%d +nightly +30 2 \* \* \* +Europe/Berlin +no +"
           r"\d{4}-\d\d-\d\d 0[01]:30:00 +-\n" % sid,
           "schedules ls: a table, the next run in local time (UTC here)")
    out = ok_run(d, "schedules", "pause", sid)
    t.ok(out == "%d paused\n" % sid and
         api(d, "GET", "/v1/schedules/%d" % sid)["paused"],
         "schedules pause")
    ok_run(d, "schedules", "resume", sid)
    t.is_(api(d, "GET", "/v1/schedules/%d" % sid)["paused"], False,
          "schedules resume")
    tid = int(ok_run(d, "schedules", "trigger", sid))
    t.is_(d.get(tid)["schedule"]["id"], sid,
          "schedules trigger: prints the task fired now")
    out = ok_run(d, "schedules", "preview", "--cron", "30 2 * * *",
                 "--tz", "Europe/Berlin", "--count", "3", "--from",
                 "2026-03-27T00:00:00Z")
    t.is_([x.split()[0] for x in out.strip().split("\n")],
          ["2026-03-27T02:30:00+01:00", "2026-03-28T02:30:00+01:00",
           "2026-03-29T03:00:00+02:00"],
          "schedules preview: the slots, across the spring-forward gap")
    rc, _, err = ctl(d, "schedules", "add", "--cron", "0 0 30 2 *", "echo",
                     "message=x")
    t.ok(rc == 1 and problem_line(err, 400, "/cron"),
         "a cron that never fires: 400 line naming /cron", diag=err)
    rc, _, err = ctl(d, "schedules", "add", "--every", "60", "echo",
                     "message:=5")
    t.ok(rc == 1 and problem_line(err, 400, "/task/params/message"),
         "a bad task: named under /task", diag=err)
    path = os.path.join(TMP, "sched.json")
    with open(path, "w") as f:
        json.dump({"every": 3600, "task": {"kind": "sleep",
                                           "params": {"seconds": 0}},
                   "paused": True}, f)
    sid2 = int(ok_run(d, "schedules", "add", "-f", path))
    t.is_(api(d, "GET", "/v1/schedules/%d" % sid2)["every"], 3600,
          "schedules add -f FILE")
    v = api(d, "GET", "/v1/schedules/%d" % sid2)["version"]
    rc, _, err = ctl(d, "schedules", "rm", sid2, "--if-match", v + 1000)
    t.ok(rc == 1 and "412" in err, "schedules rm --if-match stale: 412")
    ok_run(d, "schedules", "rm", sid2, "--if-match", v)
    ok_run(d, "schedules", "rm", sid)
    t.is_(d.request("GET", "/v1/schedules/%d" % sid).status, 404,
          "schedules rm: gone")


@t.test(timeout=30)
def completion():
    comp = os.path.join(os.environ.get("COROD_SRCDIR", TOP), "ctl",
                        "completion", "corodctl")
    bash = shutil.which("bash")
    if bash is None:
        t.skip("bash completion", "no bash")
        return

    def complete(*words):
        script = ('source "$1"; shift; COMP_WORDS=("$@"); '
                  'COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _corodctl; '
                  'printf "%s\\n" "${COMPREPLY[@]}"')
        p = subprocess.run([bash, "--norc", "-c", script, "x", comp] +
                           list(words), capture_output=True, text=True,
                           timeout=10)
        return sorted(x for x in p.stdout.split("\n") if x)

    t.is_(complete("corodctl", "s"), ["schedules", "show", "submit"],
          "completes verbs")
    t.is_(complete("corodctl", "--url", "x", "wa"), ["wait", "watch"],
          "... after a global option and its value")
    t.is_(complete("corodctl", "schedules", "p"), ["pause", "preview"],
          "... a noun's verbs")
    t.is_(complete("corodctl", "submit", "echo", "--de"),
          ["--debounce", "--delay"], "completes a verb's options")
    t.is_(complete("corodctl", "ls", "--state", "running,s"),
          ["running,scheduled", "running,succeeded"],
          "... and a --state list")
    p = subprocess.run([bash, "--norc", "-c", 'source "$1"; complete -p '
                        'corodctl', "x", comp], capture_output=True,
                       text=True, timeout=10)
    t.like(p.stdout, r"complete -F _corodctl corodctl",
           "the file registers the function for corodctl")


d.close()
shutil.rmtree(TMP, ignore_errors=True)
t.done()
