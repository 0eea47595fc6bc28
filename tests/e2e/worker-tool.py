#!/usr/bin/env python3
"""worker-tool.py -- tools/corod-worker, the reference external worker
(API.md, "External workers"), end to end: the real daemon, the real tool,
small programs of tests/progs/ (thumb-worker.sh: params on stdin, a log
line and PROGRESS lines on stderr, JSON on stdout; slow-worker.sh: a
checkpoint, then works until stopped, saying so when it gets SIGTERM).

Checked: a task done end to end (the worker named in the running task,
progress seen while it runs, stderr lines in the task log and PROGRESS
lines not, the result equal to the program's JSON); a failing program
retried then failed (exit_3 with the last stderr line); stdout that is
not JSON (bad_output, not retried) and a program killed by a signal
(code killed, signal SIGKILL); a cancel that reaches the program (SIGTERM to it, its
last line in the log, the task canceled); the tool killed with SIGKILL
mid-task (its program dies with it; exactly one re-delivery, to a second
tool, after the 2 s lease, with the first attempt's checkpoint); a tool
stopped (SIGSTOP) past its lease whose program finished meanwhile (its
late complete refused with 409, the result of the re-delivery kept);
--max-tasks with --concurrency; SIGTERM (the running task released, the
attempt not counted; an idle tool leaves at once); a token file
(COROD_TOKEN_FILE) over a Unix socket, and a 401 without one.

Skipped as a whole (1..0 # SKIP) while corod has no claim endpoint
(POST /v1/queues/{queue}/claim answering 404 or 405).
"""

import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
from tap import TAP, scaled  # noqa: E402
from corod import Corod  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("COROD_SRCDIR") or os.path.dirname(os.path.dirname(HERE))
TOOL = os.path.join(SRC, "tools", "corod-worker")
THUMB = os.path.join(SRC, "tests", "progs", "thumb-worker.sh")
SLOW = os.path.join(SRC, "tests", "progs", "slow-worker.sh")

t = TAP("worker-tool", total_timeout=600)
d = Corod(t)

probe = d.request("POST", "/v1/queues/probe/claim",
                  {"worker": "probe", "max": 1, "wait": 0})
if probe.status in (404, 405):
    print("1..0 # SKIP this corod has no external workers "
          "(POST /v1/queues/probe/claim: %d)" % probe.status)
    sys.stdout.flush()
    t._done = True
    d.close()
    sys.exit(0)


class Tool:
    """One corod-worker process; its stderr in a file of the daemon's
    directory (kept with it when a test failed)."""

    live = []
    count = 0

    def __init__(self, args, program, url=None, env=None, name=None):
        Tool.count += 1
        self.name = name or "tool%d" % Tool.count
        self.path = os.path.join(d.dir, "%s.stderr" % self.name)
        self.err = open(self.path, "wb")
        e = dict(os.environ)
        e.pop("COROD_URL", None)
        e.pop("COROD_TOKEN_FILE", None)
        e.update(env or {})
        cmd = [sys.executable, TOOL, "--url", url or d.url,
               "--name", "test/" + self.name] + list(args) + ["--"] + \
            list(program)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=self.err, stderr=self.err,
                                     env=e)
        Tool.live.append(self)

    def stderr(self):
        with open(self.path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def wait(self, timeout=30):
        """The exit status, None if still running after timeout."""
        try:
            return self.proc.wait(timeout=scaled(timeout))
        except subprocess.TimeoutExpired:
            return None

    def signal(self, sig):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.err.close()
        if self in Tool.live:
            Tool.live.remove(self)

    def check_exit(self, want=0, timeout=30, desc="the tool exits"):
        rc = self.wait(timeout)
        t.is_(rc, want, "%s (status %s)" % (desc, want))
        if rc != want:
            t.diag("%s's stderr:\n%s" % (self.name, self.stderr()[-3000:]))
        return rc


def kill_tools():
    for x in list(Tool.live):
        x.close()


t.cleanups.insert(0, kill_tools)


def submit(queue, params, **kw):
    spec = {"kind": "external", "queue": queue, "params": params}
    spec.update(kw)
    return d.submit(spec)


def texts(tid):
    return [text for (_, text) in d.log(tid)]


def in_log(tid, needle):
    return any(needle in x for x in texts(tid))


def tmp(name):
    return os.path.join(d.dir, name)


def lines_of(path):
    try:
        with open(path) as f:
            return f.read().splitlines()
    except OSError:
        return []


def wait_file(path, n=1, timeout=20):
    """Wait until path has at least n lines; its lines."""
    return d.wait_for(lambda: len(lines_of(path)) >= n and lines_of(path),
                      timeout, desc="%d lines in %s" % (n, path))


def pid_alive(pid):
    """A live (non-zombie) process?"""
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return False
    return st.rsplit(")", 1)[1].split()[0] != "Z"


def touch(path):
    with open(path, "w"):
        pass


@t.test(timeout=60)
def end_to_end():
    hold = tmp("e2e.hold")
    tool = Tool(["--queue", "thumbs", "--lease", "3", "--max-tasks", "1"],
                [THUMB])
    task = submit("thumbs", {"image": "a.png", "hold": hold})
    tid = task["id"]
    run = d.wait_state(tid, "running", timeout=20)
    t.is_(run.get("worker"), "test/" + tool.name,
          "the running task names the worker (--name)")
    got = d.wait_for(lambda: d.get(tid).get("progress"), 20,
                     desc="progress while it runs")
    t.is_((got.get("current"), got.get("total"), got.get("unit")),
          (1, 2, "items"), "a PROGRESS line became the task's progress")
    touch(hold)
    done = d.wait_state(tid, ("succeeded", "failed", "canceled"), 20)
    t.is_(done["state"], "succeeded", "the task succeeded")
    t.is_(done["result"], {"thumb": "a-128.png", "attempt": 1},
          "its result is the program's stdout JSON")
    t.is_(done["attempt"], 1, "one attempt")
    log = texts(tid)
    want = "thumbnailing a.png (task %d, attempt 1)" % tid
    t.ok(any(want in x for x in log), "the program's stderr line is in "
         "the task log", diag="\n".join(log))
    t.ok(not any("PROGRESS" in x for x in log), "PROGRESS lines are not "
         "log lines", diag="\n".join(log))
    tool.check_exit(0, desc="--max-tasks 1: the tool exits after one task")
    tool.close()


@t.test(timeout=90)
def failing_retried_then_failed():
    runs = tmp("fail.runs")
    tool = Tool(["--queue", "fails", "--lease", "3", "--max-tasks", "2"],
                [THUMB])
    task = submit("fails", {"image": "b.png", "mode": "fail",
                            "runs": runs}, max_attempts=2)
    done = d.wait_state(task["id"], ("succeeded", "failed", "canceled"), 40)
    t.is_(done["state"], "failed", "exit 3 twice: failed")
    t.is_(done["attempt"], 2, "after max_attempts (2) attempts")
    err = done.get("error") or {}
    t.is_(err.get("code"), "exit_3", "error code exit_3")
    t.is_(err.get("message"), "cannot read b.png",
          "the message is the program's last stderr line")
    t.is_(len(lines_of(runs)), 2, "the program ran twice")
    log = texts(task["id"])
    for n in (1, 2):
        want = "thumbnailing b.png (task %d, attempt %d)" % (task["id"], n)
        t.ok(any(want in x for x in log), "attempt %d's stderr line is in "
             "the log" % n, diag="\n".join(log))
    tool.check_exit(0)
    tool.close()


@t.test(timeout=60)
def bad_output_and_signal():
    tool = Tool(["--queue", "bad", "--lease", "3", "--max-tasks", "2"],
                [THUMB])
    a = submit("bad", {"image": "c.png", "mode": "garbage"}, max_attempts=3)
    a = d.wait_state(a["id"], ("succeeded", "failed", "canceled"), 20)
    t.is_(a["state"], "failed", "stdout not JSON: failed")
    t.is_((a.get("error") or {}).get("code"), "bad_output",
          "error code bad_output")
    t.is_(a["attempt"], 1, "not retried although max_attempts is 3")
    b = submit("bad", {"image": "d.png", "mode": "kill"})
    b = d.wait_state(b["id"], ("succeeded", "failed", "canceled"), 20)
    t.is_(b["state"], "failed", "killed by a signal: failed")
    t.is_(((b.get("error") or {}).get("code"),
           (b.get("error") or {}).get("signal")), ("killed", "SIGKILL"),
          "error code killed, signal SIGKILL")
    tool.check_exit(0)
    tool.close()


@t.test(timeout=60)
def cancel_reaches_the_program():
    pidfile, term = tmp("cancel.pid"), tmp("cancel.term")
    tool = Tool(["--queue", "cx", "--lease", "3", "--max-tasks", "1"],
                [SLOW])
    task = submit("cx", {"pidfile": pidfile, "termfile": term,
                         "until_attempt": "99"})
    pid = int(wait_file(pidfile)[0])
    t.ok(pid_alive(pid), "the program runs")
    r = d.cancel(task["id"])
    t.is_(r.status, 202, "cancel of a claimed task: 202")
    done = d.wait_state(task["id"], ("succeeded", "failed", "canceled"), 30)
    t.is_(done["state"], "canceled", "the task ends canceled")
    t.is_(lines_of(term), ["TERM"], "the program got SIGTERM")
    d.wait_for(lambda: not pid_alive(pid), 15, desc="the program gone")
    t.ok(True, "the program is gone")
    t.ok("cancel requested" in tool.stderr(), "the tool says why it stopped "
         "the program", diag=tool.stderr()[-2000:])
    t.ok(in_log(task["id"], "got SIGTERM"), "the program's last stderr line "
         "reached the log before the task ended",
         diag="\n".join(texts(task["id"])))
    tool.check_exit(0)
    tool.close()


@t.test(timeout=90)
def tool_killed_mid_task():
    pidfile, runs = tmp("k9.pid"), tmp("k9.runs")
    one = Tool(["--queue", "k9", "--lease", "2"], [SLOW])
    task = submit("k9", {"pidfile": pidfile, "runs": runs,
                         "until_attempt": "2"}, max_attempts=3)
    tid = task["id"]
    pid = int(wait_file(pidfile)[0])
    # the checkpoint is sent with (or before) the line written after it
    d.wait_for(lambda: in_log(tid, "checkpoint 1 written"), 20,
               desc="the first attempt's line in the log")
    one.signal(signal.SIGKILL)
    one.wait(10)
    d.wait_for(lambda: not pid_alive(pid), 10,
               desc="the program dies with its tool")
    t.ok(True, "the program died with the tool (no orphan works on)")
    two = Tool(["--queue", "k9", "--lease", "2", "--max-tasks", "1"], [SLOW])
    done = d.wait_state(tid, ("succeeded", "failed", "canceled"), 40)
    t.is_(done["state"], "succeeded", "the second tool finished it")
    t.is_(done["attempt"], 2, "attempt 2: the lease expired once")
    t.is_(done["result"], {"attempt": 2, "checkpoint": {"step": 1}},
          "the second attempt got the first one's checkpoint")
    t.is_(lines_of(runs), ["attempt 1", "attempt 2"],
          "exactly one re-delivery")
    log = texts(tid)
    t.ok(any(re.search(r"lease.?expired", x) for x in log),
         "the log says the lease expired", diag="\n".join(log))
    two.check_exit(0)
    one.close()
    two.close()


@t.test(timeout=90)
def late_complete_refused():
    hold, runs = tmp("late.hold"), tmp("late.runs")
    one = Tool(["--queue", "late", "--lease", "2", "--max-tasks", "1"],
               [THUMB])
    task = submit("late", {"image": "e.png", "hold": hold, "runs": runs},
                  max_attempts=3)
    tid = task["id"]
    pid = int(wait_file(runs)[0].split()[3])
    d.wait_for(lambda: in_log(tid, "thumbnailing e.png"), 20,
               desc="the first attempt's line in the log")
    # The tool freezes (a long pause, a partition); its program finishes
    # meanwhile, its lease runs out and a second tool does the task.
    one.signal(signal.SIGSTOP)
    touch(hold)
    d.wait_for(lambda: not pid_alive(pid), 20,
               desc="the first program finished")
    two = Tool(["--queue", "late", "--lease", "2", "--max-tasks", "1"],
               [THUMB])
    done = d.wait_state(tid, ("succeeded", "failed", "canceled"), 40)
    t.is_(done["state"], "succeeded", "the re-delivery succeeded")
    t.is_(done["result"], {"thumb": "e-128.png", "attempt": 2},
          "with the second attempt's result")
    two.check_exit(0)
    before = len(texts(tid))
    one.signal(signal.SIGCONT)
    one.check_exit(0, desc="the first tool goes on (and ends: --max-tasks)")
    err = one.stderr()
    t.ok(re.search(r"complete refused: 409", err),
         "its late complete was refused with 409", diag=err[-3000:])
    after = d.get(tid)
    t.is_((after["state"], after["result"], after["attempt"]),
          ("succeeded", {"thumb": "e-128.png", "attempt": 2}, 2),
          "the task keeps the second attempt's outcome")
    # where corod logs it: the task log, or its own
    log = texts(tid)
    t.ok(len(log) > before or
         re.search(r"(?i)task %d\b.*(late|lease.lost|stale|409)" % tid,
                   d.output()),
         "corod logged the late call it discarded",
         diag="\n".join(log))
    one.close()
    two.close()


@t.test(timeout=60)
def max_tasks_and_concurrency():
    hold, runs = tmp("mt.hold"), tmp("mt.runs")
    tool = Tool(["--queue", "mt", "--lease", "3", "--max-tasks", "2",
                 "--concurrency", "2"], [THUMB])
    tasks = [submit("mt", {"image": "m%d.png" % i, "hold": hold,
                           "runs": runs}) for i in range(3)]
    wait_file(runs, 2)
    t.ok(True, "two programs run at once (--concurrency 2)")
    touch(hold)
    tool.check_exit(0, desc="--max-tasks 2: the tool exits after two")
    states = sorted(d.get(x["id"])["state"] for x in tasks)
    t.is_(states, ["scheduled", "succeeded", "succeeded"],
          "two tasks done, the third left waiting")
    t.is_(len(lines_of(runs)), 2, "two programs ran")
    for x in tasks:
        d.cancel(x["id"])
    tool.close()


@t.test(timeout=90)
def sigterm_releases():
    runs = tmp("rel.runs")
    one = Tool(["--queue", "rel", "--lease", "2"], [THUMB])
    task = submit("rel", {"image": "r.png", "hold": tmp("rel.never"),
                          "runs": runs}, max_attempts=1)
    tid = task["id"]
    wait_file(runs)
    d.wait_state(tid, "running", 10)
    one.signal(signal.SIGTERM)
    one.check_exit(0, timeout=30, desc="SIGTERM: the tool exits once the "
                   "lease's time has passed")
    err = one.stderr()
    t.ok("released" in err, "it released the task", diag=err[-2000:])
    back = d.get(tid)
    t.is_(back["state"], "scheduled", "the task waits again")
    two = Tool(["--queue", "rel", "--lease", "2", "--max-tasks", "1"],
               [THUMB])
    touch(tmp("rel.never"))
    done = d.wait_state(tid, ("succeeded", "failed", "canceled"), 20)
    t.is_(done["state"], "succeeded",
          "with max_attempts 1 it still runs again (a release is no "
          "attempt)")
    t.is_((done.get("result") or {}).get("attempt"), 1,
          "the next claim is attempt 1 again")
    two.check_exit(0)
    # An idle tool (held in a claim) leaves at once, claiming nothing.
    idle = Tool(["--queue", "idle", "--lease", "2"], [THUMB])
    d.wait_for(lambda: "claiming from queue idle" in idle.stderr(), 10,
               desc="the idle tool started")
    time.sleep(0.5)      # let its claim reach corod and be held
    idle.signal(signal.SIGTERM)
    idle.check_exit(0, timeout=40, desc="an idle tool exits on SIGTERM")
    later = submit("idle", {"image": "i.png"})
    t.is_(d.get(later["id"])["state"], "scheduled",
          "a task submitted after it left is not leased to it")
    d.cancel(later["id"])
    for x in (one, two, idle):
        x.close()


@t.test(timeout=90)
def token_file_and_unix_socket():
    with Corod(t, start=False, name="tokens") as c:
        tf = os.path.join(c.dir, "tokens")
        with open(tf, "w") as f:
            f.write("# the worker reads the first token\n"
                    "worker-tool-test-token-0123456789\n")
        os.chmod(tf, 0o600)
        sock = os.path.join(c.dir, "corod.sock")
        c.args = ["--token-file", tf,
                  "--listen", "127.0.0.1:0,unix:" + sock]
        c.start()
        c.token = "worker-tool-test-token-0123456789"
        task = c.submit({"kind": "external", "queue": "tok",
                         "params": {"image": "t.png"}})
        ok = Tool(["--queue", "tok", "--lease", "3", "--max-tasks", "1"],
                  [THUMB], url="unix:" + sock,
                  env={"COROD_TOKEN_FILE": tf})
        done = c.wait_state(task["id"], ("succeeded", "failed", "canceled"),
                            20)
        t.is_(done["state"], "succeeded", "COROD_TOKEN_FILE, unix:PATH: "
              "the task is done")
        t.is_(done["result"], {"thumb": "t-128.png", "attempt": 1},
              "with the program's result")
        ok.check_exit(0)
        bad = Tool(["--queue", "tok"], [THUMB], url=c.url)
        bad.check_exit(2, desc="no token: the tool stops with status 2")
        err = bad.stderr()
        t.ok(re.search(r"claim: 401 .*\S", err), "and says the 401 on one "
             "line", diag=err[-2000:])
        ok.close()
        bad.close()


if os.path.exists(TOOL):
    r = subprocess.run([sys.executable, TOOL, "--help"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    t.ok(r.returncode == 0 and "PROGRAM" in r.stdout, "--help works",
         diag=r.stdout)
d.close()
t.done()
