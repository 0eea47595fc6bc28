#!/usr/bin/env python3
"""exec.py -- the `exec` kind (API.md, "Kind exec") end to end.

The real daemon runs real programs: /usr/bin/env and the small shell
scripts of tests/progs/ (exec-do.sh: one behaviour per mode; exec-group.sh:
a program with a grandchild that ignores SIGTERM), defined as commands in
a commands-dir the test writes.  Checked: exec off by default; every
definition key refused with FILE:LINE when bad (corod -n exits 2), and a
SIGHUP that rereads the directory (a bad file keeps the old set);
refusals at submission naming the field (undefined command, arguments,
patterns, variables, every param's bad values); the environment built
(not inherited); arguments, cwd, rlimits, no_new_privs, descriptors,
session; stdin; output live through ?follow=1; stderr marking and long
lines split; every exit mapping and exit 75 retried; timeout and
timeout-max; cancel with a SIGTERM-ignoring grandchild (no process left,
checked in /proc); stop-grace's SIGKILL; the result file; kill -9 of
corod mid-program then restart (the old group killed, the attempt
interrupted, rerun only with retry-on-interrupt); a graceful stop.
"""

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from tap import TAP, scaled  # noqa: E402
from corod import Corod, corod_bin, is_problem, is_valgrind  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("COROD_SRCDIR") or os.path.dirname(os.path.dirname(HERE))
PROGS = os.path.join(SRC, "tests", "progs")
DO = os.path.join(PROGS, "exec-do.sh")
GROUP = os.path.join(PROGS, "exec-group.sh")
NOTIFY = os.path.join(PROGS, "sd-notify.sh")
FINAL = ("succeeded", "failed", "canceled")

t = TAP("exec", total_timeout=600)

# A variable of the test's own environment: the programs must not see it.
os.environ["COROD_EXEC_LEAK_CHECK"] = "leaked"


def write_commands(directory, defs):
    """defs: name -> definition text; written as NAME.conf."""
    os.makedirs(directory, exist_ok=True)
    for name, text in defs.items():
        with open(os.path.join(directory, name + ".conf"), "w") as f:
            f.write(text)


COMMANDS = {
    "env": "path = /usr/bin/env\nenv = FIXED=from-definition\n"
           "env = LANG=C\nenv-allow = GREETING\nenv-allow = OTHER\n",
    "do": "path = %s\nallow-args = any\nstop-grace = 2\n" % DO,
    "pat": "path = %s\narg = print\nallow-args = patterns\n"
           "allow-arg = ^--since=[0-9-]+$   # dates\n"
           "allow-arg = \"a#b\"\n" % DO,
    "none": "path = %s\narg = print\n" % DO,
    # valgrind refuses a child's setrlimit of RLIMIT_NOFILE (EPERM), so
    # under it the limit is left out and its check skipped
    "print": "path = %s\narg = print\narg = fixed one\nallow-args = any\n"
             "cwd = /\n%s" % (DO, "" if is_valgrind() else
                              "limit-nofile = 64\n"),
    "short": "path = %s\nallow-args = any\ntimeout-max = 1\n"
             "stop-grace = 1\n" % DO,
    "group": "path = %s\nallow-args = any\nstop-grace = 1\n" % GROUP,
    "retry": "path = %s\nallow-args = any\nretry-on-interrupt = yes\n"
             "stop-grace = 1\n" % DO,
    "notify": "path = %s\nallow-args = any\nstop-grace = 1\n" % NOTIFY,
    "notify-max": "path = %s\nallow-args = any\nstop-grace = 1\n"
                  "timeout-max = 2\n" % NOTIFY,
}


def wait_reloaded(d, n, regex, timeout=10):
    """Wait for the n-th output line matching regex."""
    import re
    pat = re.compile(regex)
    end = time.monotonic() + scaled(timeout)
    while time.monotonic() < end:
        if sum(1 for ln in d.output().splitlines() if pat.search(ln)) >= n:
            return
        time.sleep(0.05)
    raise AssertionError("no %d lines matching %s" % (n, regex))


def start(extra=(), commands=COMMANDS):
    d = Corod(t, start=False)
    cdir = os.path.join(d.dir, "commands")
    write_commands(cdir, commands)
    d.args = ["--commands-dir", cdir] + list(extra)
    d.commands_dir = cdir
    d.start()
    return d


def run(d, params, spec=None, states=FINAL, timeout=20):
    s = {"kind": "exec", "params": params}
    s.update(spec or {})
    task = d.submit(s)
    return d.wait_state(task["id"], states, timeout=timeout)


def log_texts(d, tid):
    """The log's texts, without their times."""
    return [text for (_, text) in d.log(tid)]


def problem(r, status, field):
    return is_problem(r, status, field)[0]


def refused(d, params, field, desc, detail=None):
    r = d.request("POST", "/v1/tasks", {"kind": "exec", "params": params})
    t.ok(problem(r, 400, field), desc,
         diag="%s %s" % (r.status, r.body))
    if detail is not None and r.status == 400:
        t.like(r.body.get("detail", ""), detail, desc + ": detail")


def pid_alive(pid):
    """Is pid a live (non-zombie) process?"""
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return False
    return st.rsplit(")", 1)[1].split()[0] != "Z"


def pid_exists(pid):
    return os.path.exists("/proc/%d" % pid)


def read_pids(path, n, timeout=10):
    end = time.monotonic() + scaled(timeout)
    while time.monotonic() < end:
        try:
            with open(path) as f:
                pids = [int(x) for x in f.read().split()]
            if len(pids) >= n:
                return pids
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError("%s: fewer than %d pids" % (path, n))


def wait_gone(pids, exists=pid_exists, timeout=10):
    end = time.monotonic() + scaled(timeout)
    while time.monotonic() < end:
        if not any(exists(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


# --- definitions -------------------------------------------------------------

@t.test(timeout=60)
def exec_off_by_default():
    d = Corod(t)
    r = d.request("POST", "/v1/tasks", {"kind": "exec", "params": {
        "command": "env"}})
    t.ok(problem(r, 400, "/params/command"), "exec is off without "
         "commands-dir", diag=r.body)
    t.like(r.body.get("detail", ""), "exec is off", "the detail says so")
    kinds = d.request("GET", "/v1/kinds").body
    t.ok(any(k["name"] == "exec" for k in kinds["kinds"]),
         "GET /v1/kinds lists exec")
    d.close()


BAD_DEFS = [
    ("missing path", "arg = x\n", r"bad\.conf: path is required"),
    ("relative path", "path = bin/true\n", r"bad\.conf:1: path must be absolute"),
    ("no such path", "path = /nonexistent/prog\n", r"bad\.conf:1: path .*not an executable"),
    ("path not executable", "path = %PLAIN%\n",
     r"bad\.conf:1: path .*not an executable"),
    ("path twice", "path = /bin/true\npath = /bin/true\n", r"bad\.conf:2: path is given twice"),
    ("allow-args", "path = /bin/true\nallow-args = some\n", r"bad\.conf:2: allow-args must be"),
    ("allow-arg regex", "path = /bin/true\nallow-args = patterns\nallow-arg = a(\n", r"bad\.conf:3: allow-arg 'a\('"),
    ("allow-arg empty", "path = /bin/true\nallow-args = patterns\nallow-arg =\n", r"bad\.conf:3: allow-arg needs"),
    ("patterns without allow-arg", "path = /bin/true\nallow-args = patterns\n", r"bad\.conf: allow-args = patterns needs"),
    ("allow-arg without patterns", "path = /bin/true\nallow-arg = x\n", r"bad\.conf: allow-arg is given"),
    ("env without =", "path = /bin/true\nenv = NAME\n", r"bad\.conf:2: env must be NAME=value"),
    ("env bad name", "path = /bin/true\nenv = 1X=a\n", r"bad\.conf:2: env must be"),
    ("env reserved", "path = /bin/true\nenv = COROD_TASK_ID=1\n", r"bad\.conf:2: env: COROD_TASK_ID is set by corod"),
    ("env-allow bad name", "path = /bin/true\nenv-allow = A-B\n", r"bad\.conf:2: env-allow must be"),
    ("env-allow reserved", "path = /bin/true\nenv-allow = NOTIFY_SOCKET\n", r"bad\.conf:2: env-allow: NOTIFY_SOCKET"),
    ("cwd relative", "path = /bin/true\ncwd = tmp\n", r"bad\.conf:2: cwd must be absolute"),
    ("cwd missing", "path = /bin/true\ncwd = /nonexistent\n", r"bad\.conf:2: cwd /nonexistent is not a directory"),
    ("stop-signal", "path = /bin/true\nstop-signal = SIGNOPE\n", r"bad\.conf:2: stop-signal: unknown"),
    ("stop-grace", "path = /bin/true\nstop-grace = -1\n", r"bad\.conf:2: stop-grace must be"),
    ("stop-grace text", "path = /bin/true\nstop-grace = soon\n", r"bad\.conf:2: stop-grace must be"),
    ("timeout-max 0", "path = /bin/true\ntimeout-max = 0\n", r"bad\.conf:2: timeout-max must be"),
    ("retry-on-interrupt", "path = /bin/true\nretry-on-interrupt = maybe\n", r"bad\.conf:2: retry-on-interrupt must be"),
    ("limit-nofile", "path = /bin/true\nlimit-nofile = many\n", r"bad\.conf:2: limit-nofile must be"),
    ("limit-as", "path = /bin/true\nlimit-as = 1X\n", r"bad\.conf:2: limit-as must be"),
    ("limit-cpu", "path = /bin/true\nlimit-cpu = -5\n", r"bad\.conf:2: limit-cpu must be"),
    ("limit-fsize", "path = /bin/true\nlimit-fsize = 10Q\n", r"bad\.conf:2: limit-fsize must be"),
    ("limit-nproc", "path = /bin/true\nlimit-nproc = 1.5\n", r"bad\.conf:2: limit-nproc must be"),
    ("memory-max", "path = /bin/true\nmemory-max = 0\n", r"bad\.conf:2: memory-max must be"),
    ("pids-max", "path = /bin/true\npids-max = lots\n", r"bad\.conf:2: pids-max must be"),
    ("unknown key", "path = /bin/true\nshell = yes\n", r"bad\.conf:2: unknown key 'shell'"),
    ("no =", "path = /bin/true\njust words\n", r"bad\.conf:2: expected 'key = value'"),
]


@t.test(timeout=120)
def bad_definitions():
    base = Corod(t, start=False)
    for i, (desc, text, want) in enumerate(BAD_DEFS):
        cdir = os.path.join(base.dir, "bad%d" % i)
        plain = os.path.join(base.dir, "plain-file")
        with open(plain, "w") as f:
            f.write("#!/bin/sh\n")
        os.chmod(plain, 0o644)
        write_commands(cdir, {"ok": "path = /bin/true\n",
                              "bad": text.replace("%PLAIN%", plain)})
        p = subprocess.run([corod_bin(), "-n", "--commands-dir", cdir,
                            "--db", os.path.join(base.dir, "x.db")],
                           capture_output=True, text=True,
                           timeout=scaled(20))
        t.is_(p.returncode, 2, "bad definition (%s): exit 2" % desc)
        t.like(p.stderr, want, "bad definition (%s): says where" % desc)
    cdir = os.path.join(base.dir, "badname")
    write_commands(cdir, {"bad name": "path = /bin/true\n"})
    p = subprocess.run([corod_bin(), "-n", "--commands-dir", cdir],
                       capture_output=True, text=True, timeout=scaled(20))
    t.is_(p.returncode, 2, "a file name that is no command name: exit 2")
    p = subprocess.run([corod_bin(), "-n", "--commands-dir",
                        os.path.join(base.dir, "nonexistent")],
                       capture_output=True, text=True, timeout=scaled(20))
    t.is_(p.returncode, 2, "a commands-dir that does not exist: exit 2")
    cdir = os.path.join(base.dir, "good")
    write_commands(cdir, COMMANDS)
    with open(os.path.join(cdir, "README"), "w") as f:
        f.write("not a definition\n")
    p = subprocess.run([corod_bin(), "-n", "--commands-dir", cdir],
                       capture_output=True, text=True, timeout=scaled(20))
    t.is_(p.returncode, 0, "the test's definitions pass -n (other files "
          "ignored)", )
    base.close()


@t.test(timeout=60)
def sighup_rereads():
    d = start(commands={"one": "path = /bin/true\n"})
    r = d.request("POST", "/v1/tasks", {"kind": "exec", "params": {
        "command": "two"}})
    t.ok(problem(r, 400, "/params/command"), "two is not defined yet")
    write_commands(d.commands_dir, {"two": "path = /bin/true\n"})
    os.kill(d.pid, signal.SIGHUP)
    wait_reloaded(d, 1, r"reload: 2 commands defined")
    task = run(d, {"command": "two"})
    t.is_(task["state"], "succeeded", "after SIGHUP the new command runs")
    write_commands(d.commands_dir, {"three": "path = /bin/true\n",
                                    "broken": "path = relative\n"})
    os.kill(d.pid, signal.SIGHUP)
    wait_reloaded(d, 1, r"commands not changed: .*broken\.conf:1")
    task = run(d, {"command": "two"})
    t.is_(task["state"], "succeeded", "a bad file on SIGHUP keeps the old "
          "set")
    r = d.request("POST", "/v1/tasks", {"kind": "exec", "params": {
        "command": "three"}})
    t.ok(problem(r, 400, "/params/command"), "and none of the new one")
    os.unlink(os.path.join(d.commands_dir, "broken.conf"))
    os.unlink(os.path.join(d.commands_dir, "two.conf"))
    os.kill(d.pid, signal.SIGHUP)
    wait_reloaded(d, 2, r"reload: 2 commands defined")
    r = d.request("POST", "/v1/tasks", {"kind": "exec", "params": {
        "command": "two"}})
    t.ok(problem(r, 400, "/params/command"), "a removed definition is "
         "gone after SIGHUP")
    d.close()


# --- one daemon for most tests ----------------------------------------------

D = start()


@t.test(timeout=60)
def refusals():
    refused(D, {"command": "nope"}, "/params/command", "undefined command",
            "no command \"nope\"")
    refused(D, {"command": "none", "args": ["x"]}, "/params/args/0",
            "a command taking no arguments", "takes no arguments")
    refused(D, {"command": "pat", "args": ["--since=2026-01-01", "a#b",
                                           "--since=x"]},
            "/params/args/2", "an argument matching no pattern")
    refused(D, {"command": "pat", "args": ["x--since=1"]}, "/params/args/0",
            "patterns match the whole argument")
    refused(D, {"command": "env", "env": {"GREETING": "a", "PATH": "/x"}},
            "/params/env/PATH", "a variable the command does not allow")
    refused(D, {"command": 5}, "/params/command", "command not a string")
    refused(D, {}, "/params/command", "command missing")
    refused(D, {"command": "do", "args": "x"}, "/params/args",
            "args not an array")
    refused(D, {"command": "do", "args": ["a", 1]}, "/params/args/1",
            "an argument not a string")
    refused(D, {"command": "env", "env": []}, "/params/env",
            "env not an object")
    refused(D, {"command": "env", "env": {"GREETING": 1}},
            "/params/env/GREETING", "a variable's value not a string")
    refused(D, {"command": "env", "env": {"1BAD": "x"}},
            "/params/env/1BAD", "a bad variable name")
    refused(D, {"command": "env", "env": {"GREETING": {"secret": "s"}}},
            "/params/env/GREETING/secret", "a secret value without "
            "secrets-dir", "not configured")
    refused(D, {"command": "do", "stdin": 5}, "/params/stdin",
            "stdin not a string")
    refused(D, {"command": "do", "stdin": "x" * 65537}, "/params/stdin",
            "stdin over 64 KiB")
    refused(D, {"command": "do", "shell": "yes"}, "/params/shell",
            "an unknown param")
    refused(D, {"command": "/bin/true"}, "/params/command",
            "a path without exec-allow-any-path")


@t.test(timeout=60)
def environment_built():
    task = run(D, {"command": "env", "env": {"GREETING": "hello"}},
               {"timeout": 30})
    t.is_(task["state"], "succeeded", "env ran")
    env = dict(ln.split("=", 1) for ln in
               task["result"]["stdout_tail"].splitlines())
    t.is_(sorted(env), sorted([
        "PATH", "HOME", "LANG", "FIXED", "GREETING", "COROD_TASK_ID",
        "COROD_ATTEMPT", "COROD_RUN_ID", "COROD_DEADLINE",
        "COROD_RESULT_FILE", "NOTIFY_SOCKET"]),
        "exactly the built variables (nothing inherited)")
    t.like(env.get("NOTIFY_SOCKET", ""), r"^@corod/\d+/%d/" % task["id"],
           "NOTIFY_SOCKET: the task's own socket, abstract")
    t.is_(env.get("GREETING"), "hello", "the client's variable")
    t.is_(env.get("FIXED"), "from-definition", "the definition's variable")
    t.is_(env.get("LANG"), "C", "the definition overrides LANG")
    t.is_(env.get("PATH"), "/usr/local/bin:/usr/bin:/bin", "a fixed PATH")
    t.is_(env.get("COROD_TASK_ID"), str(task["id"]), "COROD_TASK_ID")
    t.is_(env.get("COROD_ATTEMPT"), "1", "COROD_ATTEMPT")
    t.like(env.get("COROD_RUN_ID", ""), r"^%d\.1\.[0-9a-f]{16}$" % task["id"],
           "COROD_RUN_ID: the task, the attempt, 64 random bits")
    t.like(env.get("COROD_DEADLINE", ""), r"^\d{4}-\d\d-\d\dT[0-9:.]+Z$",
           "COROD_DEADLINE with a timeout is RFC 3339")
    t.ok(env.get("COROD_RESULT_FILE", "").startswith(D.dir),
         "COROD_RESULT_FILE under corod's state directory")
    t.ok("COROD_EXEC_LEAK_CHECK" not in env, "corod's environment is not "
         "inherited")
    task = run(D, {"command": "env"})
    env = dict(ln.split("=", 1) for ln in
               task["result"]["stdout_tail"].splitlines())
    t.is_(env.get("COROD_DEADLINE"), "", "no timeout: COROD_DEADLINE empty")
    # removed by corod's run-directory thread once the attempt ends
    t.ok(wait_gone([os.path.dirname(env["COROD_RESULT_FILE"])],
                   exists=os.path.exists),
         "the run directory is removed after")


@t.test(timeout=60)
def process_setup():
    task = run(D, {"command": "print", "args": ["client arg", "--x"]})
    t.is_(task["state"], "succeeded", "print ran")
    out = task["result"]["stdout_tail"].splitlines()
    args = [ln[4:] for ln in out if ln.startswith("arg=")]
    t.is_(args, ["fixed one", "client arg", "--x"], "argv: fixed args then "
          "the client's, no shell splitting")
    t.ok("cwd=/" in out, "cwd from the definition", diag=out)
    if is_valgrind():
        t.skip("limit-nofile applied", "valgrind refuses RLIMIT_NOFILE")
    else:
        t.ok("nofile=64" in out, "limit-nofile applied", diag=out)
    t.ok(any(ln.startswith("NoNewPrivs:") and ln.endswith("1")
             for ln in out), "no_new_privs set", diag=out)
    fds = [ln for ln in out if ln.startswith("fds=")][0].split("=")[1].split()
    t.ok(set(fds) <= {"0", "1", "2", "3"}, "only 0-2 inherited (3: ls's "
         "own)", diag=fds)
    stat = [ln for ln in out if ln.startswith("stat=")][0].split("=")[1]
    pid, pgrp, sid = stat.split()
    t.ok(pid == pgrp == sid, "its own session and process group",
         diag=stat)
    task = run(D, {"command": "pat", "args": ["--since=2026-01-01",
                                              "a#b"]})
    t.is_(task["state"], "succeeded", "arguments matching the patterns run")
    task = run(D, {"command": "do", "args": ["print"]})
    cwd = [ln for ln in task["result"]["stdout_tail"].splitlines()
           if ln.startswith("cwd=")][0][4:]
    t.ok(cwd.startswith(D.dir) and cwd.endswith("/work"),
         "no cwd: a fresh directory per task", diag=cwd)
    t.ok(wait_gone([cwd], exists=os.path.exists), "removed after")


@t.test(timeout=180)
def fast_output_capped():
    """A program writing far faster than the store takes lines: the log
    keeps the head and the tail exactly (every kept line in order, none
    lost, none twice), the marker counts what went, the numbers run on,
    and corod answers other requests meanwhile."""
    import re
    d = start(extra=["--log-lines", "1000"])
    n = 300000
    task = d.submit({"kind": "exec", "params": {
        "command": "do", "args": ["seq", str(n), "err"]}})
    answered = 0
    while d.get(task["id"])["state"] not in FINAL:
        r = d.request("GET", "/healthz")
        answered += r.status == 200
        time.sleep(0.01)
    t.ok(answered > 0, "corod answered while taking the output (%d)"
         % answered)
    task = d.wait_state(task["id"], FINAL, timeout=60)
    t.is_(task["state"], "succeeded", "the writer succeeded")
    r = d.request("GET", "/v1/tasks/%d/log" % task["id"])
    texts = [x.split(" ", 1)[1] for x in r.body.splitlines()]
    nxt = int(r.headers.get("x-log-next", "0"))
    marks = [i for i, x in enumerate(texts) if " lines dropped (" in x]
    t.is_(len(marks), 1, "one marker line")
    m = marks[0] if marks else 0
    t.is_(len(texts), 1001, "the log holds log-lines lines and the marker")
    head, tail = texts[:m], texts[m + 1:]
    t.is_(len(head), 250, "the head: a quarter")
    # the head: corod's first lines, then 1, 2, 3 ... in order
    nums = [x for x in head if re.match(r"^\d+$", x)]
    t.ok(nums == [str(i) for i in range(1, len(nums) + 1)] and
         len(nums) > 200, "the head's output lines are the first, in order",
         diag=head[:8])
    out = [x for x in tail if re.match(r"^\d+$", x)]
    errs = [x for x in tail if x.startswith("[stderr] e")]
    t.ok(out and out[-1] == str(n) and
         out == [str(i) for i in range(int(out[0]), n + 1)],
         "the tail's output lines are the last, in order, none missing",
         diag=(out[:3], out[-3:]))
    t.ok(all(int(e[10:]) % 1000 == 0 for e in errs),
         "stderr lines marked in the tail", diag=errs[:5])
    mm = re.match(r"^\[(\d+) lines dropped \((\d+) to (\d+)\)",
                  texts[m]) if marks else None
    t.ok(mm is not None and int(mm.group(1)) ==
         int(mm.group(3)) - int(mm.group(2)) + 1 and
         int(mm.group(2)) == 250 and int(mm.group(3)) == nxt - 751,
         "the marker: lines 250 to next-751 went, counted",
         diag=(texts[m] if marks else None, nxt))
    t.ok(nxt >= n + n // 1000, "the numbers count every line written "
         "(%d)" % nxt)
    d.close()


@t.test(timeout=60)
def stdin_given():
    text = "line one\nline two ü\n"
    text += "z" * (65536 - len(text.encode()))
    task = run(D, {"command": "do", "args": ["cat"], "stdin": text})
    t.is_(task["state"], "succeeded", "cat ran")
    t.is_(task["result"]["stdout_tail"], text[-4096:],
          "stdout_tail: the last 4 KiB of what it was given")
    lines = log_texts(D, task["id"])
    t.ok("line one" in lines and "line two ü" in lines,
         "stdin's lines came back through stdout into the log")
    task = run(D, {"command": "do", "args": ["cat"]})
    t.is_((task["state"], task["result"]["stdout_tail"]), ("succeeded", ""),
          "no stdin: /dev/null")


@t.test(timeout=60)
def output_lines():
    task = run(D, {"command": "do", "args": ["mixed"]})
    lines = log_texts(D, task["id"])
    t.ok("out1" in lines and "out2" in lines, "stdout lines as they are")
    t.ok("[stderr] err1" in lines, "stderr lines marked [stderr]")
    xs = [ln for ln in lines if ln and set(ln) == {"x"}]
    t.is_([len(x) for x in xs], [16384, 20000 - 16384],
          "a line over 16 KiB is split")
    t.ok("last without newline" in lines, "a last line without newline "
         "is kept")


@t.test(timeout=60)
def follow_live():
    task = D.submit({"kind": "exec", "params": {"command": "do",
                                                "args": ["slow", "8"]}})
    conn = socket.create_connection(("127.0.0.1", D.port),
                                    timeout=scaled(20))
    conn.sendall(("GET /v1/tasks/%d/log?follow=1 HTTP/1.1\r\nHost: "
                  "127.0.0.1\r\n\r\n" % task["id"]).encode())
    buf = b""
    while b"tick 1" not in buf:
        chunk = conn.recv(4096)
        if not chunk:
            break
        buf += chunk
    state = D.get(task["id"])["state"]
    t.ok(b"tick 1" in buf, "a line came through follow")
    t.is_(state, "running", "while the program still runs")
    conn.close()
    D.wait_state(task["id"], FINAL, timeout=20)


@t.test(timeout=90)
def exit_mapping():
    task = run(D, {"command": "do", "args": ["exit", "0"]})
    r = task["result"]
    t.is_((task["state"], r["exit_code"], r["signal"], r["output"]),
          ("succeeded", 0, None, None), "exit 0 succeeds")
    t.ok(all(k in r for k in ("duration", "cpu_seconds", "max_rss",
                              "stdout_tail", "output")),
         "the result's members", diag=r)
    t.ok(r["duration"] >= 0 and r["cpu_seconds"] >= 0 and r["max_rss"] > 0,
         "duration, cpu_seconds and max_rss measured", diag=r)
    task = run(D, {"command": "do", "args": ["exit", "3"]},
               {"max_attempts": 3})
    t.is_((task["state"], task["error"]["code"], task["attempt"]),
          ("failed", "exit_status", 1), "exit 3 fails exit_status, not "
          "retried")
    t.like(task["error"]["message"], "status 3", "the message says 3")
    task = run(D, {"command": "do", "args": ["exit", "75"]})
    t.is_((task["state"], task["error"]["code"]), ("failed", "exit_status"),
          "exit 75 without attempts left fails")
    task = run(D, {"command": "do", "args": ["tempfail", "2"]},
               {"max_attempts": 3}, timeout=30)
    t.is_((task["state"], task["attempt"]), ("succeeded", 2),
          "exit 75 is retried, and the retry succeeds")
    t.like(task["result"]["stdout_tail"], "attempt 2: done",
           "COROD_ATTEMPT counts")
    task = run(D, {"command": "do", "args": ["signal", "KILL"]})
    t.is_((task["state"], task["error"]["code"]), ("failed", "signaled"),
          "killed by a signal: signaled")
    t.like(task["error"]["message"], "SIGKILL", "names the signal")
    task = run(D, {"command": "do", "args": ["signal", "TERM"]},
               {"max_attempts": 2})
    t.is_((task["state"], task["error"]["code"], task["attempt"]),
          ("failed", "signaled", 1), "signaled is final")


@t.test(timeout=60)
def spawn_failed():
    d = start(extra=["--exec-allow-any-path"], commands={})
    d.wait_output("exec-allow-any-path is on", timeout=5)
    t.ok(True, "exec-allow-any-path is logged as a warning at start")
    task = run(d, {"command": "/nonexistent/program"}, {"max_attempts": 3})
    t.is_((task["state"], task["error"]["code"], task["attempt"]),
          ("failed", "spawn_failed", 1), "a program that cannot start: "
          "spawn_failed, final")
    t.like(task["error"]["message"], "No such file or directory",
           "with the errno text")
    task = run(d, {"command": "/usr/bin/env", "args": ["true"]})
    t.is_(task["state"], "succeeded", "any absolute path runs, with "
          "arguments")
    refused(d, {"command": "/usr/bin/env", "env": {"X": "1"}},
            "/params/env/X", "no client variables for a bare path")
    refused(d, {"command": "relative"}, "/params/command",
            "a relative name still needs a definition")
    d.close()


@t.test(timeout=60)
def timeouts():
    task = run(D, {"command": "do", "args": ["slow", "100"]},
               {"timeout": 1})
    t.is_((task["state"], task["error"]["code"]), ("failed", "timeout"),
          "the task's timeout stops the program")
    lines = log_texts(D, task["id"])
    t.ok(any(ln.startswith("stopping: SIGTERM to process group")
             for ln in lines), "stop-signal to the group logged", diag=lines)
    task = run(D, {"command": "short", "args": ["slow", "100"]},
               {"timeout": 100})
    t.is_((task["state"], task["error"]["code"]), ("failed", "timeout"),
          "a timeout above timeout-max is cut to it")
    t.like(task["error"]["message"], "timeout-max of 1 s", "says which")
    task = run(D, {"command": "short", "args": ["slow", "100"]})
    t.is_((task["state"], task["error"]["code"]), ("failed", "timeout"),
          "no timeout: timeout-max applies")


@t.test(timeout=60)
def cancel_group():
    pidfile = os.path.join(D.dir, "group.pids")
    task = D.submit({"kind": "exec", "params": {"command": "group",
                                                "args": [pidfile]}})
    pids = read_pids(pidfile, 2)
    t.ok(all(pid_alive(p) for p in pids), "program and grandchild run")
    r = D.cancel(task["id"])
    t.is_(r.status, 202, "cancel accepted")
    task = D.wait_state(task["id"], FINAL, timeout=20)
    t.is_(task["state"], "canceled", "canceled")
    t.ok(wait_gone(pids), "no process of the program is left (not even a "
         "zombie: corod reaps as subreaper)",
         diag=[(p, pid_exists(p)) for p in pids])
    lines = log_texts(D, task["id"])
    t.ok(any(ln.startswith("stopping: SIGTERM") for ln in lines),
         "the stop is logged")

    pidfile = os.path.join(D.dir, "group2.pids")
    task = D.submit({"kind": "exec", "params": {"command": "group",
                                                "args": [pidfile, "ignore"]}})
    pids = read_pids(pidfile, 2)
    D.cancel(task["id"])
    task = D.wait_state(task["id"], FINAL, timeout=20)
    lines = log_texts(D, task["id"])
    t.ok(any(ln.startswith("stop-grace of 1 s over: SIGKILL to process "
                           "group") for ln in lines),
         "a program ignoring SIGTERM: SIGKILL after stop-grace", diag=lines)
    t.is_(task["state"], "canceled", "canceled")
    t.ok(wait_gone(pids), "nothing left")


@t.test(timeout=90)
def sd_notify():
    """A program written for systemd talks to its task through
    NOTIFY_SOCKET (systemd-notify(1) in tests/progs/sd-notify.sh)."""
    task = run(D, {"command": "notify", "args": [
        "STATUS=copying,X_COROD_PROGRESS=5/10", "sleep 0.3",
        "STATUS=almost,X_COROD_PROGRESS=9/10"]})
    t.is_(task["state"], "succeeded", "STATUS and progress: succeeded")
    p = task.get("progress") or {}
    t.ok(p.get("message") == "almost" and p.get("current") == 9 and
         p.get("total") == 10, "progress: the last STATUS and count",
         diag=p)
    lines = log_texts(D, task["id"])
    t.ok("status: copying" in lines and "status: almost" in lines,
         "each STATUS is a log line", diag=lines)

    task = run(D, {"command": "notify", "args": [
        "EXTEND_TIMEOUT_USEC=4000000", "sleep 2"]}, {"timeout": 1})
    t.ok(task["state"] == "succeeded", "EXTEND_TIMEOUT_USEC: a 1 s timeout "
         "extended by the program, which runs 2 s", diag=task.get("error"))
    task = run(D, {"command": "notify-max", "args": [
        "EXTEND_TIMEOUT_USEC=60000000", "sleep 10"]}, {"timeout": 1})
    t.is_((task["state"], (task.get("error") or {}).get("code")),
          ("failed", "timeout"), "... never past the command's "
          "timeout-max (2 s)")
    t.ok(task["finished_at"] and task["started_at"],
         "it has its times")

    env = run(D, {"command": "notify", "args": ["sleep 0"],
                  "watchdog": 0.5})
    t.is_(env["state"], "succeeded", "a program that ends before its "
          "watchdog: succeeded")
    task = run(D, {"command": "notify", "args": ["ping 8 0.1"],
                   "watchdog": 1})
    t.ok(task["state"] == "succeeded", "WATCHDOG=1 often enough: "
         "succeeded", diag=task.get("error"))
    task = run(D, {"command": "notify", "args": ["ping 2 0.1", "sleep 10"],
                   "watchdog": 0.5}, {"max_attempts": 1})
    t.is_((task["state"], (task.get("error") or {}).get("code")),
          ("failed", "watchdog"), "silent past params.watchdog: stopped, "
          "error watchdog")
    lines = log_texts(D, task["id"])
    t.ok(any(ln.startswith("stopping: SIGTERM") for ln in lines),
         "... through the stop protocol", diag=lines)
    task = run(D, {"command": "notify", "args": ["WATCHDOG=trigger",
                                                 "sleep 10"],
                   "watchdog": 30}, {"max_attempts": 1})
    t.is_((task["state"], (task.get("error") or {}).get("code")),
          ("failed", "watchdog"), "WATCHDOG=trigger: stopped at once")
    for bad in (0, -1, "1", True, 1e12):
        refused(D, {"command": "notify", "watchdog": bad},
                "/params/watchdog", "watchdog %r: 400 naming the field" %
                (bad,))


@t.test(timeout=60)
def env_secrets():
    """A variable's value from a secret file: read when the program
    starts, never in the task, its log, the database or corod's output."""
    d = Corod(t, start=False, name="secrets")
    cdir = os.path.join(d.dir, "commands")
    sdir = os.path.join(d.dir, "secrets")
    os.makedirs(sdir)
    value = "s3cr3t-%d-value" % os.getpid()
    with open(os.path.join(sdir, "token"), "w") as f:
        f.write(value + "\n")
    write_commands(cdir, {"env": COMMANDS["env"],
                          "hash": "path = %s\narg = hash\narg = GREETING\n"
                                  "env-allow = GREETING\n" % DO})
    d.args = ["--commands-dir", cdir, "--secrets-dir", sdir]
    d.start()
    try:
        r = d.request("POST", "/v1/tasks", {"kind": "exec", "params": {
            "command": "hash", "env": {"GREETING": {"secret": "token"}}}})
        t.is_(r.status, 201, "a secret reference for an allowed variable")
        x = d.wait_state(r.body["id"], FINAL, 20)
        t.is_((x.get("result") or {}).get("stdout_tail", "").strip(),
              hashlib.sha256(value.encode()).hexdigest(),
              "the program gets the secret's bytes (its trailing newline "
              "dropped)")
        answers = json.dumps(r.body) + json.dumps(x)
        t.ok(value not in answers, "the task as answered names the "
             "secret, never its bytes")
        t.is_(x["params"]["env"]["GREETING"], {"secret": "token"},
              "params keep the reference")
        for bad, field in (({"secret": "nope"}, "/params/env/GREETING/secret"),
                           ({"secret": "../token"},
                            "/params/env/GREETING/secret"),
                           ({"secret": 1}, "/params/env/GREETING"),
                           ({"secret": "token", "x": 1},
                            "/params/env/GREETING")):
            rr = d.request("POST", "/v1/tasks", {"kind": "exec", "params": {
                "command": "env", "env": {"GREETING": bad}}})
            t.ok(problem(rr, 400, field), "secret %r: 400 naming %s" %
                 (bad, field), diag="%s %s" % (rr.status, rr.body))
        # gone between submission and start: the attempt fails, says why
        with open(os.path.join(sdir, "later"), "w") as f:
            f.write("x")
        r = d.request("POST", "/v1/tasks", {"kind": "exec", "delay": 1,
                                            "params": {"command": "env",
                                                       "env": {"GREETING": {
                                                           "secret":
                                                           "later"}}}})
        t.is_(r.status, 201, "a secret present at submission")
        os.unlink(os.path.join(sdir, "later"))
        x = d.wait_state(r.body["id"], FINAL, 20)
        t.is_((x["state"], (x.get("error") or {}).get("code")),
              ("failed", "secret_unavailable"), "removed before the start: "
              "failed secret_unavailable")
        d.stop()
        leaked = []
        for root, _, files in os.walk(d.dir):
            for name in files:
                path = os.path.join(root, name)
                try:
                    with open(path, "rb") as f:
                        if value.encode() in f.read() and \
                           not path.startswith(sdir):
                            leaked.append(path)
                except OSError:
                    pass
        t.is_(leaked, [], "the secret's bytes are in no file of corod's "
              "(database, WAL, output) but the secret's own")
    finally:
        d.close()


@t.test(timeout=60)
def result_file():
    task = run(D, {"command": "do", "args": ["result",
                                             '{"rows": 3, "ok": true}']})
    t.is_(task["result"]["output"], {"rows": 3, "ok": True},
          "COROD_RESULT_FILE's JSON in result.output")
    task = run(D, {"command": "do", "args": ["result", "not json"]})
    t.is_((task["state"], task["result"]["output"]), ("succeeded", None),
          "invalid JSON: output null, the outcome unchanged")
    t.ok(any(ln.startswith("result file ignored: not valid JSON")
             for ln in log_texts(D, task["id"])), "and a log line says why")
    task = run(D, {"command": "do", "args": ["result", "[1, 2]"]})
    t.is_(task["result"]["output"], [1, 2], "any JSON value")


@t.test(timeout=30)
def healthz_mode():
    h = D.request("GET", "/healthz").body
    t.ok(h.get("exec_cgroup") in ("none", "delegated"), "/healthz says "
         "the exec cgroup mode", diag=h)
    t.ok(D.wait_output(r"exec: (no delegated cgroup|delegated cgroup)"),
         "the log says it too")


D.close()


def cgroup2_parent():
    """A cgroup v2 directory this test may make children in, or None."""
    mnt = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if " - cgroup2 " in line:
                mnt = line.split()[4]
                break
    if mnt is None:
        return None
    path = "/"
    with open("/proc/self/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                path = line[3:].strip()
    d = os.path.normpath(mnt + "/" + path)
    return d if os.access(d, os.W_OK) else None


@t.test(timeout=60)
def cgroup_delegated():
    """corod in a cgroup marked delegated (as systemd's Delegate=yes does):
    a cgroup per attempt, and cgroup.kill reaches a grandchild that left
    the process group."""
    parent = cgroup2_parent()
    if parent is None:
        t.skip("cgroup_delegated", "no writable cgroup v2 here")
        return
    cg = os.path.join(parent, "corod-e2e-%d" % os.getpid())
    try:
        os.mkdir(cg)
        os.setxattr(cg, "trusted.delegate", b"1")
    except OSError as e:
        if os.path.isdir(cg):
            os.rmdir(cg)
        t.skip("cgroup_delegated", "cannot make a delegated cgroup: %s" % e)
        return
    d = Corod(t, start=False)
    cdir = os.path.join(d.dir, "commands")
    write_commands(cdir, {"group": "path = %s\nallow-args = any\n"
                          "stop-grace = 1\npids-max = 100\n" % GROUP})
    d.args = ["--commands-dir", cdir]
    plain = d.command
    d.command = lambda: ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && '
                         'exec "$@"', cg] + plain()
    try:
        d.start()
        d.wait_output(r"exec: delegated cgroup " + cg)
        t.is_(d.request("GET", "/healthz").body.get("exec_cgroup"),
              "delegated", "/healthz: delegated")
        pidfile = os.path.join(d.dir, "cg.pids")
        task = d.submit({"kind": "exec", "params": {
            "command": "group", "args": [pidfile, "-", "setsid"]}})
        pids = read_pids(pidfile, 2)
        tcg = os.path.join(cg, "task-%d.1" % task["id"])
        with open(os.path.join(tcg, "cgroup.procs")) as f:
            inside = [int(x) for x in f.read().split()]
        t.ok(all(p in inside for p in pids), "the program and its "
             "grandchild are in the attempt's cgroup", diag=(pids, inside))
        try:
            with open(os.path.join(tcg, "pids.max")) as f:
                pids_max = f.read().strip()
        except OSError:
            pids_max = None
        d.cancel(task["id"])
        task = d.wait_state(task["id"], FINAL, timeout=20)
        t.is_(task["state"], "canceled", "canceled")
        t.ok(wait_gone(pids), "the grandchild that left the process group "
             "is gone too (cgroup.kill)",
             diag=[(p, pid_exists(p)) for p in pids])
        t.ok(wait_gone([tcg], exists=os.path.exists), "the attempt's "
             "cgroup is removed")
        lines = log_texts(d, task["id"])
        if pids_max is not None:
            t.is_(pids_max, "100", "pids.max from the definition's pids-max")
        else:
            t.ok(any("pids-max not applied" in ln for ln in lines),
                 "no pids controller delegated: pids-max not applied, "
                 "logged", diag=lines)
    finally:
        d.close()
        for sub in ("corod",):
            try:
                os.rmdir(os.path.join(cg, sub))
            except OSError:
                pass
        try:
            os.rmdir(cg)
        except OSError as e:
            t.diag("could not remove %s: %s" % (cg, e))


# --- restarts -----------------------------------------------------------------

def checkpoint_of(d, tid):
    """(checkpoint, attempt) of a task, read from the store."""
    rows = d.sql("SELECT checkpoint, attempt FROM tasks WHERE id = ?",
                 (tid,))
    return rows[0] if rows else None


def wait_checkpoint(d, tid, timeout=10):
    """Wait until the running attempt's program is on disk (its pid in
    the task's checkpoint, committed).  A kill -9 before that commit,
    after the program started, is kill9_at_spawn's case."""
    def committed():
        row = checkpoint_of(d, tid)
        return row is not None and row[0] is not None and '"pid"' in row[0]
    d.wait_for(committed, timeout, desc="task %d's program committed" % tid)


def retried_after_kill9(d, pidfile, committed, desc):
    """A retry-on-interrupt command whose attempt 1 runs until killed:
    kill -9 corod once the program runs (and, if committed, once its pid
    is on disk), restart; attempt 2 runs, once, after the old one died."""
    task = d.submit({"kind": "exec", "params": {
        "command": "retry", "args": ["first-slow", pidfile]}})
    pids = read_pids(pidfile, 1, timeout=20)
    if committed:
        wait_checkpoint(d, task["id"])
    d.kill9()
    d.restart()
    task = d.wait_state(task["id"], FINAL, timeout=20)
    t.is_((task["state"], task["attempt"]), ("succeeded", 2),
          desc + ": the attempt runs again as attempt 2")
    t.like(task["result"]["stdout_tail"], "attempt 2: done",
           desc + ": as attempt 2")
    t.ok(wait_gone(pids, exists=pid_alive), desc + ": the old program is "
         "gone")
    t.is_(len(read_pids(pidfile, 1)), 1, desc + ": attempt 1 ran once")


@t.test(timeout=120)
def kill9_restart():
    d = start()
    pidfile = os.path.join(d.dir, "k.pids")
    task = d.submit({"kind": "exec", "params": {"command": "group",
                                                "args": [pidfile]}},
                    )
    pids = read_pids(pidfile, 2)
    wait_checkpoint(d, task["id"])
    d.kill9()
    t.ok(all(pid_alive(p) for p in pids), "the program outlives corod's "
         "kill -9")
    d.restart()
    task = d.wait_state(task["id"], FINAL, timeout=20)
    t.is_((task["state"], task["error"]["code"]), ("failed", "interrupted"),
          "the attempt is interrupted; not rerun without "
          "retry-on-interrupt")
    t.ok(wait_gone(pids, exists=pid_alive), "its group was killed at start",
         diag=[(p, pid_alive(p)) for p in pids])
    lines = log_texts(d, task["id"])
    t.ok(any("still runs: SIGKILL to process group" in ln for ln in lines),
         "logged", diag=lines)

    pidfile = os.path.join(d.dir, "r.pids")
    retried_after_kill9(d, pidfile, True, "with retry-on-interrupt")

    # a pid that is another process's now is never killed
    other = subprocess.Popen(["sleep", "30"])
    try:
        task = d.submit({"kind": "exec", "params": {"command": "retry",
                                                    "args": ["first-slow",
                                                             pidfile]}})
        d.wait_for(lambda: d.get(task["id"])["state"] == "running", 10)
        d.kill9()
        d.sql("UPDATE tasks SET checkpoint = ? WHERE id = ?", (
            json.dumps({"pid": other.pid, "pgid": other.pid,
                        "start_time": 1, "attempt": 1}), task["id"]))
        d.restart()
        d.wait_state(task["id"], FINAL, timeout=20)
        t.ok(other.poll() is None, "a pid with another start time is not "
             "killed")
    finally:
        other.kill()
        other.wait()
        for p in read_pids(pidfile, 1):
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
    d.close()


@t.test(timeout=180)
def kill9_at_spawn():
    """kill -9 the moment the program exists, whether or not its pid is
    committed yet: the attempt was on disk before the spawn, so the
    restart neither runs it again beside the old program nor loses it."""
    d = start()
    for i in range(3):
        pidfile = os.path.join(d.dir, "s%d.pids" % i)
        task = d.submit({"kind": "exec", "params": {
            "command": "group", "args": [pidfile, "-", "setsid"]}})
        pids = read_pids(pidfile, 2, timeout=20)
        d.kill9()
        cp = checkpoint_of(d, task["id"])
        t.ok(cp is not None and cp[0] is not None and
             '"run_id"' in cp[0] and cp[1] == 1,
             "round %d: the attempt was on disk before its program ran"
             % i, diag=cp)
        t.ok(all(pid_alive(p) for p in pids), "round %d: the program and "
             "its grandchild (in a session of its own) outlive corod" % i)
        d.restart()
        task = d.wait_state(task["id"], FINAL, timeout=20)
        t.is_((task["state"], (task.get("error") or {}).get("code")),
              ("failed", "interrupted"),
              "round %d: interrupted, not run again" % i)
        t.ok(wait_gone(pids, exists=pid_alive), "round %d: both killed at "
             "start, the grandchild outside the group by its COROD_RUN_ID"
             % i, diag=[(p, pid_alive(p)) for p in pids])
        lines = log_texts(d, task["id"])
        t.ok(any("found by COROD_RUN_ID=%d.1." % task["id"] in ln
                 for ln in lines), "round %d: logged" % i, diag=lines)
        # the pid file has the program's and its grandchild's pids: a
        # second program would add two more.  (Its "started" line may be
        # missing: the kill can come before that line's commit.)
        t.is_(len(read_pids(pidfile, 2)), 2, "round %d: one program "
              "started in all" % i)
        t.ok(sum(1 for ln in lines if ln.startswith("started ")) <= 1,
             "round %d: at most one started line" % i, diag=lines)

    # with retry-on-interrupt: attempt 2 runs, once, after the old one died
    retried_after_kill9(d, os.path.join(d.dir, "sr.pids"), False,
                        "retry-on-interrupt at spawn")

    # interrupted again and again: counted as attempts, rerun at least
    # once, then failed (no crash loop)
    pidfile = os.path.join(d.dir, "loop.pids")
    task = d.submit({"kind": "exec", "params": {
        "command": "retry", "args": ["forever", pidfile]}})
    for n in (1, 2):
        pids = read_pids(pidfile, n, timeout=20)
        d.kill9()
        d.restart()
    task = d.wait_state(task["id"], FINAL, timeout=20)
    t.is_((task["state"], task["error"]["code"], task["attempt"]),
          ("failed", "interrupted", 3), "interrupted twice with max_attempts "
          "1: rerun once, then failed")
    t.like(task["error"]["message"], "max_attempts 1", "the error says why")
    t.ok(wait_gone(pids, exists=pid_alive), "no program left")
    t.is_(len(read_pids(pidfile, 2)), 2, "two programs ran in all")

    # a cancel while the start is being written ends it, nothing spawned
    pidfile = os.path.join(d.dir, "c.pids")
    task = d.submit({"kind": "exec", "params": {"command": "group",
                                                "args": [pidfile]}})
    d.cancel(task["id"])
    task = d.wait_state(task["id"], FINAL, timeout=20)
    t.is_(task["state"], "canceled", "canceled at once")
    if not os.path.exists(pidfile):
        t.ok(True, "canceled before its program started")
    else:
        t.ok(wait_gone(read_pids(pidfile, 1), exists=pid_alive),
             "or started and stopped")
    d.close()


@t.test(timeout=120)
def leftovers_swept():
    """What an earlier corod left in exec/ (a crash: run directories of its
    own, of a corod with the same pid, of an older layout) is removed once
    exec runs again; a fresh directory per attempt meanwhile."""
    d = start()
    task = run(d, {"command": "do", "args": ["print"]})
    t.is_(task["state"], "succeeded", "a first program ran")
    cwd = [ln for ln in task["result"]["stdout_tail"].splitlines()
           if ln.startswith("cwd=")][0][4:]
    base = os.path.dirname(os.path.dirname(cwd))
    d.kill9()
    pid = os.path.basename(os.path.dirname(cwd)).split("-")[1].split(".")[0]
    left = [os.path.join(base, n) for n in
            ("run-%s-0" % pid, "run-1.1-3", "17.1")]
    for p in left:
        os.makedirs(os.path.join(p, "work", "sub"), exist_ok=True)
        with open(os.path.join(p, "work", "sub", "junk"), "w") as f:
            f.write("x")
    d.restart()
    task = run(d, {"command": "do", "args": ["print"]})
    t.is_(task["state"], "succeeded", "a program runs after the restart")
    new = [ln for ln in task["result"]["stdout_tail"].splitlines()
           if ln.startswith("cwd=")][0][4:]
    t.ok(new not in [os.path.join(p, "work") for p in left],
         "in a directory of its own", diag=new)
    t.ok(wait_gone(left, exists=os.path.exists), "the earlier corod's "
         "leftovers are removed", diag=[p for p in left
                                        if os.path.exists(p)])
    d.close()


@t.test(timeout=120)
def lost_claim():
    """Another owner takes the running task's claim (its fencing token
    changed behind corod's back): corod's next write of it is refused, and
    its program is stopped, not left running for nobody."""
    import sqlite3
    d = start()
    args = ["STATUS=first"]
    for i in range(60):
        args += ["sleep 0.25", "STATUS=tick %d" % i]
    task = d.submit({"kind": "exec", "params": {"command": "notify",
                                                "args": args}})
    wait_checkpoint(d, task["id"])
    pid = json.loads(checkpoint_of(d, task["id"])[0])["pid"]
    t.ok(pid_alive(pid), "the program runs")
    d.sql("UPDATE tasks SET owner = 'elsewhere/1/1', fence = fence + 1 "
          "WHERE id = ?", (task["id"],))
    t.ok(wait_gone([pid], exists=pid_alive), "its program is stopped once "
         "corod learns the claim is lost")
    d.wait_output(r"task %d: its claim was lost" % task["id"])
    t.ok(True, "logged")
    owner, state = d.sql("SELECT owner, state FROM tasks WHERE id = ?",
                         (task["id"],))[0]
    t.is_(owner, "elsewhere/1/1", "the other owner's claim is not "
          "overwritten")
    d.close()


@t.test(timeout=120)
def graceful_stop():
    d = start(extra=["--stop-timeout", "20"])
    pidfile = os.path.join(d.dir, "g.pids")
    task = d.submit({"kind": "exec", "params": {"command": "group",
                                                "args": [pidfile]}})
    pids = read_pids(pidfile, 2)
    d.wait_for(lambda: d.get(task["id"])["state"] == "running", 10)
    d.stop()
    t.ok(True, "corod stopped (exit 0) with a program running")
    t.ok(wait_gone(pids, exists=pid_alive), "the program and its group "
         "were stopped", diag=[(p, pid_alive(p)) for p in pids])
    d.restart()
    task = d.wait_state(task["id"], FINAL, timeout=20)
    t.is_((task["state"], task["error"]["code"]), ("failed", "interrupted"),
          "after the restart the attempt is interrupted")
    lines = log_texts(d, task["id"])
    t.ok(any(ln.startswith("corod is stopping: SIGTERM to process group")
             for ln in lines), "the stop is in the task's log", diag=lines)
    d.close()


t.done()
