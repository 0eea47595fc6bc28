"""corod.py -- start the real corod binary for an end-to-end test and talk
to it over HTTP on 127.0.0.1.

    d = Corod(tap, args=["--max-running", "1"])
    status, headers, body = d.request("POST", "/v1/tasks", {"kind": ...})
    task = d.submit({"kind": "echo", "params": {"message": "hi"}})
    d.wait_for(lambda: d.get(task["id"])["state"] == "succeeded", 5)
    d.kill9(); d.restart()
    d.stop()                      # SIGTERM, exit code must be 0

The daemon gets `--listen 127.0.0.1:0 --db DIR/corod.db --download-dir
DIR/dl` in a fresh temporary directory; its bound port is read from the
"listening on 127.0.0.1:PORT" line of its stderr, then GET /healthz is
polled until 200.  A daemon that dies during start-up fails at once with
its stderr in the message.  Its stdout and stderr go to DIR/stderr.log
(kept, with the database, only when a test failed; its tail is then
printed as TAP comments).  Sanitizer reports in it fail the test.

Under valgrind (COROD_WRAPPER starting with "valgrind"), each start gets
its own --log-file=DIR/valgrind.N.log, read when that process has ended:
after a SIGTERM (stop(), restart(), close()) it must say "ERROR SUMMARY:
0 errors" and lose no bytes definitely; after a SIGKILL (kill9(), which
leaves no summary and no leak check) it must hold no error report.  A
report fails the test (DaemonError from stop() and kill9(), a failed
point from close()).

Every answer request() reads is checked against doc/openapi.yaml
(tests/lib/openapi.py: the operation, its status, content type and body
schema); one the description does not allow raises SchemaViolation (an
AssertionError naming the request, the status and the schema error) and
fails the test, and close() fails once more for all of them, in case a
test swallowed the exception.  check_raw() does the same for an answer
read from a raw socket.

Environment:
  COROD_BIN            the binary (default: daemon/corod of the tree)
  COROD_TIMEOUT_MULT   multiply every timeout (sanitizers, valgrind)
  COROD_WRAPPER        command put in front of the binary, e.g. "valgrind"
                       (make check-valgrind sets it, see above)
  COROD_KEEP           1: keep every temporary directory
  COROD_NO_OPENAPI_CHECK  1: do not check answers against the description
                       (without it, missing PyYAML or jsonschema is an error)
  COROD_TEST_PG        a PostgreSQL URI (tests/lib/pg.py's): each daemon
                       given no db of its own gets a fresh database on that
                       server instead of an sqlite file (dropped at close),
                       to run the single-node suite on the PostgreSQL
                       backend; a test that needs an sqlite file calls
                       sqlite_only(why), which skips it there
"""

import http.client
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import scaled, SkipTest  # noqa: E402
import openapi  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))

SANITIZER_PATTERNS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
    "WARNING: ThreadSanitizer",
    "ERROR: UndefinedBehaviorSanitizer",
)

TIME_RE = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"
TIME_RE_FULL = re.compile("^" + TIME_RE + "$")


def corod_bin():
    b = os.environ.get("COROD_BIN")
    if b:
        return b
    return os.path.join(TOP, "daemon", "corod")


class DaemonError(Exception):
    """The daemon died, did not start, or misbehaved at the process level."""


class SchemaViolation(AssertionError):
    """An answer the description (doc/openapi.yaml) does not allow."""


class WaitTimeout(AssertionError):
    """wait_for's condition did not come true in time."""


class Response(tuple):
    """(status, headers, body) with .raw (bytes) and .reason besides.

    headers: dict with lower-case names (repeated headers joined by ", ").
    body: parsed JSON if the answer says JSON, else text (None if empty).
    """

    def __new__(cls, status, headers, body, raw, reason=""):
        r = tuple.__new__(cls, (status, headers, body))
        r.raw = raw
        r.reason = reason
        return r

    @property
    def status(self):
        return self[0]

    @property
    def headers(self):
        return self[1]

    @property
    def body(self):
        return self[2]

    def describe(self):
        """For diagnostics: status, headers and the start of the body."""
        text = self.raw[:2000].decode("utf-8", "replace")
        hdrs = "\n".join("  %s: %s" % kv for kv in sorted(self[1].items()))
        return "HTTP %s %s\n%s\n%s" % (self[0], self.reason, hdrs, text)


def echo(msg, delay=None, **kw):
    """An echo task spec."""
    spec = {"kind": "echo", "params": {"message": msg}}
    if delay is not None:
        spec["delay"] = delay
    spec.update(kw)
    return spec


def sleep(seconds, **kw):
    """A sleep task spec."""
    spec = {"kind": "sleep", "params": {"seconds": seconds}}
    spec.update(kw)
    return spec


def parse_time(s):
    """RFC 3339 (Z or offset, optional fraction) -> float seconds since the
    epoch, exact to the microsecond; None if it is not one."""
    if not isinstance(s, str):
        return None
    m = re.match(r"^(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(\.\d+)?"
                 r"([Zz]|[+-]\d\d:\d\d)$", s)
    if not m:
        return None
    import calendar
    y, mo, d, h, mi, sec = (int(m.group(i)) for i in range(1, 7))
    frac = m.group(7) or ""
    us = int((frac[1:] + "000000")[:6]) if frac else 0
    try:
        t = calendar.timegm((y, mo, d, h, mi, sec, 0, 0, 0))
    except (ValueError, OverflowError):
        return None
    tz = m.group(8)
    if tz not in ("Z", "z"):
        sign = 1 if tz[0] == "+" else -1
        t -= sign * (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60)
    return t + us / 1e6


def format_time(t, offset_minutes=0):
    """float epoch seconds -> RFC 3339 with µs, in UTC ('Z') or at an
    offset given in minutes."""
    us = int(round(t * 1e6))
    secs, frac = divmod(us, 1000000)
    secs += offset_minutes * 60
    tm = time.gmtime(secs)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", tm) + ".%06d" % frac
    if offset_minutes == 0:
        return base + "Z"
    sign = "+" if offset_minutes > 0 else "-"
    o = abs(offset_minutes)
    return base + "%s%02d:%02d" % (sign, o // 60, o % 60)


def parse_log(text):
    """A log body -> list of (epoch seconds, text); lines that do not
    start with a time give (None, line)."""
    out = []
    for line in (text or "").split("\n"):
        if line == "":
            continue
        m = re.match("^(" + TIME_RE + ") (.*)$", line)
        if m:
            out.append((parse_time(m.group(1)), m.group(2)))
        else:
            out.append((None, line))
    return out


def wrapper_args(log_path=None):
    """COROD_WRAPPER as a list; a valgrind wrapper gets --log-file=log_path
    (unless it names one itself)."""
    w = shlex.split(os.environ.get("COROD_WRAPPER", ""))
    if log_path and is_valgrind(w) and \
            not any(a.startswith("--log-file") for a in w):
        w = w[:1] + ["--log-file=" + log_path] + w[1:]
    return w


def is_valgrind(wrapper=None):
    """Whether the wrapper (default: COROD_WRAPPER) runs valgrind."""
    if wrapper is None:
        wrapper = shlex.split(os.environ.get("COROD_WRAPPER", ""))
    return bool(wrapper) and os.path.basename(wrapper[0]) == "valgrind"


# The first line of a valgrind error report is followed by its stack;
# these stacks are not errors.
VALGRIND_NOT_ERRORS = ("Process terminating with default action",
                       "Warning:", "WARNING:")
VG_LINE = re.compile(r"^==\d+== ?(.*)$")


def valgrind_problems(path, killed=False):
    """What a valgrind log reports against its process: a list of strings,
    empty when it is clean.  With killed (SIGKILL: valgrind wrote no
    summary), any error report in it; otherwise the summary must say 0
    errors and 0 bytes definitely lost."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = [m.group(1) for m in map(VG_LINE.match, f) if m]
    except OSError as e:
        return ["no valgrind log %s: %s" % (path, e)]
    out = []
    # Error reports: a line that is followed by "   at 0x..." / "   by".
    for i in range(1, len(lines)):
        if re.match(r"^\s+at 0x", lines[i]) and lines[i - 1].strip() and \
                not lines[i - 1].startswith(" ") and \
                not lines[i - 1].startswith(VALGRIND_NOT_ERRORS) and \
                "are still reachable" not in lines[i - 1] and \
                "are possibly lost" not in lines[i - 1] and \
                "are indirectly lost" not in lines[i - 1]:
            out.append(lines[i - 1].strip())
    if killed:
        return out
    summary = [x for x in lines if x.startswith("ERROR SUMMARY:")]
    if not summary:
        out.append("no ERROR SUMMARY line (valgrind did not finish)")
    elif not summary[-1].startswith("ERROR SUMMARY: 0 errors"):
        out.append(summary[-1])
    for x in lines:
        m = re.search(r"definitely lost: ([\d,]+) bytes", x)
        if m and m.group(1) != "0":
            out.append(x.strip())
    return out


_pg_count = [0]


def pg_database_new(uri):
    """A new empty database on the server of uri; its URI."""
    _pg_count[0] += 1
    name = "corod_%d_%d" % (os.getpid(), _pg_count[0])
    base, _, rest = uri.rpartition("/")
    subprocess.run(["psql", "-qX", "-v", "ON_ERROR_STOP=1", uri, "-c",
                    "CREATE DATABASE %s" % name], check=True,
                   stdout=subprocess.DEVNULL)
    query = ("?" + rest.split("?", 1)[1]) if "?" in rest else ""
    return "%s/%s%s" % (base, name, query)


def pg_database_drop(uri):
    """Drop a database pg_database_new made (its sessions ended)."""
    base, _, rest = uri.rpartition("/")
    name = rest.split("?", 1)[0]
    admin = base + "/postgres"
    subprocess.run(["psql", "-qX", admin, "-c",
                    "DROP DATABASE IF EXISTS %s WITH (FORCE)" % name],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def sqlite_only(why):
    """Skip the rest of a test that needs an sqlite file when the suite
    runs on PostgreSQL (COROD_TEST_PG)."""
    if os.environ.get("COROD_TEST_PG"):
        raise SkipTest("needs an sqlite file: %s" % why)


class Corod:
    """One corod process (restartable) on its own temporary directory."""

    live = []       # every started instance, for the bail-out cleanup

    def __init__(self, tap=None, args=(), db=None, start=True, name="corod"):
        self.tap = tap
        self.args = list(args)
        self.name = name
        self.dir = tempfile.mkdtemp(prefix="corod-e2e-")
        self.pg_db = None               # a database made for this one
        if db is None and os.environ.get("COROD_TEST_PG"):
            db = pg_database_new(os.environ["COROD_TEST_PG"])
            self.pg_db = db
        self.db = db or os.path.join(self.dir, "corod.db")
        self.download_dir = os.path.join(self.dir, "dl")
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        self.proc = None
        self.port = None
        self.conn = None
        self.starts = 0
        self.closed = False
        # Sent as "Authorization: Bearer ..." unless a request has its own.
        self.token = None
        # An ssl.SSLContext: talk HTTPS (the daemon has tls-cert).
        self.tls = None
        self._log_offset = 0           # where this process's output begins
        self._reader = None
        self._lines = []
        self._cond = threading.Condition()
        self.valgrind_log = None       # this start's log, under valgrind
        self._vg_unchecked = []        # logs of ended starts not yet read
        self.vg_read = [0, 0]          # logs read: [after SIGTERM, SIGKILL]
        self.violations = []           # answers doc/openapi.yaml refuses
        self._vg_status = {}           # log -> exit status of its process
        Corod.live.append(self)
        if tap is not None and self._cleanup_all not in tap.cleanups:
            tap.cleanups.append(self._cleanup_all)
        if start:
            self.start()

    # --- process ---------------------------------------------------------------

    def wrapper(self):
        """COROD_WRAPPER for the next start (with a log file of its own
        under valgrind)."""
        if is_valgrind():
            self.valgrind_log = os.path.join(self.dir, "valgrind.%d.log" %
                                             (self.starts + 1))
        return wrapper_args(self.valgrind_log)

    def command(self):
        wrapper = self.wrapper()
        return wrapper + [corod_bin(), "--listen", "127.0.0.1:0",
                          "--db", self.db,
                          "--download-dir", self.download_dir] + self.args

    def _env(self):
        env = dict(os.environ)
        # Report everything, keep running after a UBSan report (it is found
        # in stderr), exit non-zero on leaks.
        env.setdefault("ASAN_OPTIONS",
                       "detect_leaks=1:abort_on_error=0:"
                       "detect_stack_use_after_return=1")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        return env

    def _read_output(self, pipe, out):
        """Copy the child's output to the file and to self._lines."""
        try:
            for raw in iter(pipe.readline, b""):
                out.write(raw)
                out.flush()
                line = raw.decode("utf-8", "replace").rstrip("\n")
                with self._cond:
                    self._lines.append(line)
                    self._cond.notify_all()
        finally:
            with self._cond:
                self._lines.append(None)        # EOF marker
                self._cond.notify_all()
            pipe.close()

    def start(self, timeout=10):
        """Start the binary and wait until it answers GET /healthz 200."""
        if self.proc is not None and self.proc.poll() is None:
            raise DaemonError("already running")
        b = corod_bin()
        if not os.path.exists(b):
            raise DaemonError("no daemon binary at %s (set COROD_BIN or "
                              "build it)" % b)
        out = open(self.stderr_path, "ab")
        self._log_offset = out.tell()
        if self.proc is not None and self.valgrind_log:
            self._vg_status[self.valgrind_log] = self.proc.returncode
        self.valgrind_log = None
        cmd = self.command()
        if self.valgrind_log:
            self._vg_unchecked.append(self.valgrind_log)
        out.write(("=== start %d: %s\n" % (self.starts + 1,
                                            " ".join(cmd))).encode())
        out.flush()
        with self._cond:
            self._lines = []
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT,
                                     env=self._env(), cwd=self.dir)
        self.starts += 1
        self._reader = threading.Thread(target=self._read_output,
                                        args=(self.proc.stdout, out),
                                        daemon=True)
        self._reader.start()

        deadline = time.monotonic() + scaled(timeout)
        port = self._wait_listening(deadline, timeout)
        self.port = port
        self._reset_conn()
        # Poll /healthz until 200.
        last = None
        while True:
            if self.proc.poll() is not None:
                raise DaemonError("corod exited (status %s) while starting:"
                                  "\n%s" % (self.proc.returncode,
                                            self.output_tail()))
            try:
                r = self.request("GET", "/healthz", timeout=2)
                last = r
                if r.status == 200:
                    return self
            except (OSError, http.client.HTTPException) as e:
                last = e
                self._reset_conn()
            if time.monotonic() > deadline:
                raise DaemonError("GET /healthz not 200 within %.0f s: %r" %
                                  (scaled(timeout), last))
            time.sleep(0.05)

    def _wait_listening(self, deadline, timeout):
        """The port of the 'listening on 127.0.0.1:PORT' line."""
        pat = re.compile(r"listening on 127\.0\.0\.1:(\d+)")
        seen = 0
        while True:
            with self._cond:
                lines = self._lines[seen:]
                seen += len(lines)
                if not lines:
                    self._cond.wait(0.1)
            for line in lines:
                if line is None:
                    break
                m = pat.search(line)
                if m:
                    return int(m.group(1))
            if None in lines or self.proc.poll() is not None:
                self._wait_exit(2)
                raise DaemonError("corod exited (status %s) before "
                                  "listening:\n%s" % (self.proc.returncode,
                                                      self.output_tail()))
            if time.monotonic() > deadline:
                self._kill_hard()
                raise DaemonError("no 'listening on 127.0.0.1:PORT' line "
                                  "within %.0f s:\n%s" % (
                                      scaled(timeout), self.output_tail()))

    # --- the store, behind the daemon's back ---------------------------------

    def is_pg(self):
        return self.db.startswith(("postgresql://", "postgres://"))

    def sql(self, query, args=()):
        """Run one statement on the daemon's store: its sqlite file, or
        its PostgreSQL database (COROD_TEST_PG; psql, search_path corod,
        ? placeholders filled in as literals).  The rows as tuples; from
        PostgreSQL integers come back as int, NULL as None, the rest as
        str."""
        if not self.is_pg():
            import sqlite3
            con = sqlite3.connect(self.db, timeout=scaled(10))
            try:
                rows = con.execute(query, args).fetchall()
                con.commit()
                return rows
            finally:
                con.close()
        parts = query.split("?")
        if len(parts) != len(args) + 1:
            raise ValueError("%d placeholders, %d args" % (len(parts) - 1,
                                                           len(args)))
        q = parts[0]
        for a, rest in zip(args, parts[1:]):
            if a is None:
                q += "NULL"
            elif isinstance(a, bool) or isinstance(a, int):
                q += str(int(a))
            else:
                q += "'" + str(a).replace("'", "''") + "'"
            q += rest
        env = dict(os.environ, PGOPTIONS="-c search_path=corod")
        p = subprocess.run(["psql", "-qAtX", "-v", "ON_ERROR_STOP=1",
                            "-F", "\x1f", "-R", "\x1e", "-P",
                            "null=\x01", self.db, "-c", q], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=scaled(30))
        if p.returncode != 0:
            raise DaemonError("psql: %s" % p.stderr.decode()[:500])
        rows = []
        for rec in p.stdout.decode("utf-8").split("\x1e"):
            rec = rec.rstrip("\n")
            if rec == "":
                continue
            row = []
            for v in rec.split("\x1f"):
                if v == "\x01":
                    row.append(None)
                elif re.match(r"^-?\d+$", v):
                    row.append(int(v))
                else:
                    row.append(v)
            rows.append(tuple(row))
        return rows

    @property
    def pid(self):
        return self.proc.pid if self.proc is not None else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _wait_exit(self, timeout):
        try:
            rc = self.proc.wait(timeout=scaled(timeout))
        except subprocess.TimeoutExpired:
            return None
        if self._reader is not None:
            self._reader.join(scaled(5))
        return rc

    def _kill_hard(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.kill()
            except OSError:
                pass
            self._wait_exit(10)

    def kill9(self):
        """SIGKILL the daemon and reap it (no chance to clean up)."""
        self._close_conn()
        if self.proc is None or self.proc.poll() is not None:
            raise DaemonError("kill9: the daemon is not running (status %s)"
                              % (self.proc.returncode if self.proc else None))
        os.kill(self.proc.pid, signal.SIGKILL)
        self._wait_exit(10)
        self.check_sanitizers()
        self.check_valgrind(killed=True)

    def stop(self, timeout=15, check=True):
        """SIGTERM and wait; returns the exit status.  With check, a
        status other than 0 or a sanitizer report raises DaemonError."""
        self._close_conn()
        if self.proc is None:
            raise DaemonError("stop: never started")
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        rc = self._wait_exit(timeout)
        if rc is None:
            self._kill_hard()
            raise DaemonError("corod did not exit within %.0f s of SIGTERM "
                              "(killed):\n%s" % (scaled(timeout),
                                                 self.output_tail()))
        if check:
            self.check_sanitizers()
            self.check_valgrind()
            if rc != 0:
                raise DaemonError("corod exited with status %d after "
                                  "SIGTERM:\n%s" % (rc, self.output_tail()))
        return rc

    def restart(self, kill=False, timeout=10):
        """Stop (SIGTERM, or SIGKILL with kill) if running, start again on
        the same database; the port may change."""
        if self.running():
            if kill:
                self.kill9()
            else:
                self.stop()
        return self.start(timeout=timeout)

    def close(self, keep=False):
        """Teardown: stop if running (SIGTERM, then SIGKILL); keep the
        directory only if a test failed, keep is set (or COROD_KEEP=1)."""
        if self.closed:
            return
        self.closed = True
        self._close_conn()
        if self.running():
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except OSError:
                pass
            if self._wait_exit(15) is None:
                self._kill_hard()
        if self.violations and self.tap is not None:
            self.tap.fail("%s: %d answers do not match doc/openapi.yaml" %
                          (self.name, len(self.violations)),
                          diag="\n".join(self.violations[:20]))
        vg = self.valgrind_reports()
        if vg and self.tap is not None:
            self.tap.fail("%s: valgrind report" % self.name,
                          diag="\n".join(vg[:40]))
        if self.tap is not None and any(self.vg_read):
            self.tap.diag("%s: valgrind logs read: %d with the leak check "
                          "(SIGTERM), %d errors only (SIGKILL)" % (
                              self.name, self.vg_read[0], self.vg_read[1]))
        failed = keep or (self.tap is not None and self.tap.failed)
        reports = self.sanitizer_reports() + vg
        if failed or reports or os.environ.get("COROD_KEEP") == "1":
            if self.tap is not None:
                self.tap.diag("%s: kept %s; the tail of its output:" %
                              (self.name, self.dir))
                self.tap.diag(self.output_tail(60, whole=True))
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        if self.pg_db is not None:
            pg_database_drop(self.pg_db)
            self.pg_db = None
        if self in Corod.live:
            Corod.live.remove(self)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        # An exception on its way out is a failed test: keep the evidence.
        self.close(keep=exc_type is not None)
        return False

    @staticmethod
    def _cleanup_all():
        for d in list(Corod.live):
            try:
                d.close()
            except Exception:
                if d.proc is not None and d.proc.poll() is None:
                    d.proc.kill()

    # --- output ------------------------------------------------------------

    def output(self, whole=False):
        """The daemon's stdout+stderr (this start only unless whole)."""
        try:
            with open(self.stderr_path, "rb") as f:
                if not whole:
                    f.seek(self._log_offset)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def output_tail(self, n=40, whole=False):
        lines = self.output(whole=whole).splitlines()
        return "\n".join(lines[-n:])

    def sanitizer_reports(self):
        """Lines of the whole output that are sanitizer reports."""
        return [line for line in self.output(whole=True).splitlines()
                if any(p in line for p in SANITIZER_PATTERNS)]

    def valgrind_reports(self, killed=False):
        """Problems in the valgrind logs of the starts that have ended and
        were not read yet (each log is read once); [] if not under
        valgrind.  A process that ended by SIGKILL is read as killed."""
        out = []
        running = self.proc is not None and self.proc.poll() is None
        for path in list(self._vg_unchecked):
            if running and path == self.valgrind_log:
                continue
            self._vg_unchecked.remove(path)
            if path == self.valgrind_log and self.proc is not None:
                status = self.proc.returncode
            else:
                status = self._vg_status.get(path)
            k = killed or status == -signal.SIGKILL
            self.vg_read[k] += 1
            for p in valgrind_problems(path, killed=k):
                out.append("%s: %s" % (os.path.basename(path), p))
        return out

    def check_valgrind(self, killed=False):
        r = self.valgrind_reports(killed=killed)
        if r:
            raise DaemonError("valgrind report against corod (logs in %s):"
                              "\n%s" % (self.dir, "\n".join(r[:40])))

    def check_sanitizers(self):
        r = self.sanitizer_reports()
        if r:
            raise DaemonError("sanitizer report in corod's stderr:\n" +
                              "\n".join(r[:20]) + "\n---\n" +
                              self.output_tail(80, whole=True))

    def wait_output(self, regex, timeout=5):
        """Wait for a line of this start's output matching regex."""
        pat = re.compile(regex)
        deadline = time.monotonic() + scaled(timeout)
        with self._cond:
            while True:
                for line in self._lines:
                    if line is not None and pat.search(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or None in self._lines:
                    raise WaitTimeout("no output line matching /%s/" % regex)
                self._cond.wait(min(left, 0.2))

    # --- HTTP ----------------------------------------------------------------

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    @property
    def url(self):
        return "%s://127.0.0.1:%d" % ("https" if self.tls else "http",
                                      self.port)

    def _reset_conn(self):
        self._close_conn()
        self.conn = self.connection()

    def _close_conn(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
        self.conn = None

    def connection(self, timeout=30):
        """A new connection of its own (for threads, raw tests)."""
        if self.tls is not None:
            return http.client.HTTPSConnection("127.0.0.1", self.port,
                                               timeout=scaled(timeout),
                                               context=self.tls)
        return http.client.HTTPConnection("127.0.0.1", self.port,
                                          timeout=scaled(timeout))

    def request(self, method, path, body=None, headers=None, timeout=30,
                conn=None):
        """One request over the persistent connection (or conn).

        body: None, bytes/str (sent as is; give the Content-Type), an
        iterable of bytes (sent chunked), or anything else (sent as JSON
        with Content-Type: application/json).  Returns a Response.
        """
        hdrs = dict(headers or {})
        if self.token is not None and \
                not any(k.lower() == "authorization" for k in hdrs):
            hdrs["Authorization"] = "Bearer " + self.token
        data = body
        if body is not None and not isinstance(body, (bytes, bytearray, str)) \
                and not hasattr(body, "__next__"):
            data = json.dumps(body).encode()
            if not any(k.lower() == "content-type" for k in hdrs):
                hdrs["Content-Type"] = "application/json"
        elif isinstance(body, str):
            data = body.encode()
        own = conn is not None
        for attempt in (0, 1):
            c = conn if own else self.conn
            if c is None:
                self._reset_conn()
                c = self.conn
            c.timeout = scaled(timeout)
            if c.sock is not None:
                c.sock.settimeout(scaled(timeout))
            reused = c.sock is not None
            try:
                c.request(method, path, body=data, headers=hdrs,
                          encode_chunked=hasattr(data, "__next__"))
                r = c.getresponse()
                raw = r.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError,
                    ConnectionResetError):
                # The server closed an idle keep-alive connection under us:
                # once, on a fresh one (not for streamed bodies).
                c.close()
                if own or not reused or attempt == 1 or \
                        hasattr(data, "__next__"):
                    raise
                self._reset_conn()
                continue
            except BaseException:
                c.close()
                raise
        headers_out = {}
        for k, v in r.getheaders():
            k = k.lower()
            headers_out[k] = headers_out[k] + ", " + v if k in headers_out \
                else v
        ctype = headers_out.get("content-type", "")
        parsed = None
        if raw:
            if "json" in ctype:
                try:
                    parsed = json.loads(raw.decode("utf-8"))
                except (ValueError, UnicodeDecodeError):
                    parsed = raw.decode("utf-8", "replace")
            else:
                parsed = raw.decode("utf-8", "replace")
        if r.will_close and not own:
            self._close_conn()
        resp = Response(r.status, headers_out, parsed, raw, r.reason)
        self.check_answer(method, path, resp)
        return resp

    def check_answer(self, method, path, resp):
        """Fail (SchemaViolation) unless doc/openapi.yaml allows this
        answer to this request (tests/lib/openapi.py); kept for close()
        too, in case a test swallowed the exception."""
        why = openapi.check(method, path, resp.status, resp.headers,
                            resp.raw)
        if why:
            self.violations.extend(why)
            raise SchemaViolation("the answer does not match "
                                  "doc/openapi.yaml:\n  " +
                                  "\n  ".join(why) + "\n" +
                                  resp.describe()[:1500])

    # --- API helpers ---------------------------------------------------------

    def submit(self, spec, headers=None, expect=201):
        """POST a spec (or a list of specs); the task (or the list) on the
        expected status, AssertionError (with the answer) otherwise."""
        r = self.request("POST", "/v1/tasks", spec, headers=headers)
        if r.status != expect:
            raise AssertionError("POST /v1/tasks %s: expected %s\n%s" % (
                json.dumps(spec)[:300], expect, r.describe()))
        if isinstance(spec, list) and isinstance(r.body, dict):
            return r.body.get("tasks")
        return r.body

    def get(self, task_id):
        """GET /v1/tasks/{id} -> the task (AssertionError unless 200)."""
        r = self.request("GET", "/v1/tasks/%d" % task_id)
        if r.status != 200:
            raise AssertionError("GET /v1/tasks/%d\n%s" % (task_id,
                                                          r.describe()))
        return r.body

    def log(self, task_id, since=None):
        """The task's log as a list of (epoch seconds, text)."""
        path = "/v1/tasks/%d/log" % task_id
        if since is not None:
            path += "?since=%d" % since
        r = self.request("GET", path)
        if r.status != 200:
            raise AssertionError("GET %s\n%s" % (path, r.describe()))
        return parse_log(r.body if isinstance(r.body, str) else "")

    def cancel(self, task_id, headers=None):
        return self.request("POST", "/v1/tasks/%d/cancel" % task_id,
                            headers=headers)

    def wait_for(self, predicate, timeout=10, interval=0.05, desc=None):
        """Poll predicate() until it returns something true (returned);
        WaitTimeout after timeout (scaled) seconds.  Also fails at once if
        the daemon died."""
        deadline = time.monotonic() + scaled(timeout)
        polls = 0
        last = None
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise DaemonError("corod died (status %s) while waiting "
                                  "for %s:\n%s" % (self.proc.returncode,
                                                   desc or "a condition",
                                                   self.output_tail()))
            last = predicate()
            polls += 1
            if last:
                return last
            if time.monotonic() >= deadline or polls > 100000:
                raise WaitTimeout("%s not true within %.1f s (last: %r)" % (
                    desc or "condition", scaled(timeout), last))
            time.sleep(interval)

    def wait_state(self, task_id, states, timeout=10):
        """Wait until the task is in one of states (a str or a tuple);
        returns the task."""
        if isinstance(states, str):
            states = (states,)
        holder = {}

        def check():
            t = self.get(task_id)
            holder["t"] = t
            return t if t.get("state") in states else None
        try:
            return self.wait_for(check, timeout,
                                 desc="task %d in %s" % (task_id, states))
        except WaitTimeout:
            raise WaitTimeout("task %d not in %s within %.1f s; it is %s" % (
                task_id, states, scaled(timeout),
                json.dumps(holder.get("t"))[:800]))

    def list_all(self, query="", limit=1000, max_pages=1000):
        """Every task of GET /v1/tasks?query, following next_cursor."""
        out = []
        cursor = None
        for _ in range(max_pages):
            q = "limit=%d" % limit
            if query:
                q += "&" + query
            if cursor:
                q += "&cursor=" + cursor
            r = self.request("GET", "/v1/tasks?" + q)
            if r.status != 200:
                raise AssertionError("GET /v1/tasks?%s\n%s" % (q,
                                                              r.describe()))
            out.extend(r.body["tasks"])
            cursor = r.body.get("next_cursor")
            if not cursor:
                return out
        raise AssertionError("more than %d pages" % max_pages)


def self_signed_cert(directory):
    """A self-signed certificate for localhost and 127.0.0.1 (openssl, EC
    P-256, 2 days) in directory: (cert path, key path), the key mode 0600;
    None and openssl's output if it failed."""
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    p = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out",
         cert, "-days", "2", "-subj", "/CN=localhost", "-addext",
         "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        universal_newlines=True)
    if p.returncode != 0:
        return None, p.stdout
    os.chmod(key, 0o600)
    return (cert, key), None


def rss_meaningless():
    """Why the daemon's RSS says nothing of corod's own memory, or None:
    an AddressSanitizer build (its quarantine holds freed memory) or a
    daemon under COROD_WRAPPER (valgrind)."""
    if os.environ.get("COROD_WRAPPER"):
        return "the daemon runs under COROD_WRAPPER"
    try:
        with open(corod_bin(), "rb") as f:
            if b"__asan_init" in f.read():
                return "an AddressSanitizer build (its quarantine holds " \
                       "freed memory)"
    except OSError:
        pass
    return None


def net_sockets(pid):
    """The sockets in the tables of /proc/PID/net (tcp, tcp6, unix, udp,
    udp6), as readlink shows them ("socket:[INODE]"), each with its table
    and its remote address column (tcp, udp: "HEXADDR:HEXPORT")."""
    found = {}
    for name in ("tcp", "tcp6", "unix", "udp", "udp6"):
        try:
            with open("/proc/%d/net/%s" % (pid, name)) as f:
                rows = f.readlines()[1:]
        except OSError:
            continue
        for row in rows:
            col = row.split()
            if name == "unix":
                found["socket:[%s]" % col[6]] = (name, None)
            else:
                found["socket:[%s]" % col[9]] = (name, col[2])
    return found


def free_port():
    """A port that was free a moment ago (for tests that need one)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def raw_answers(out):
    """The answers in bytes read from a socket: (status, headers with
    lower-case names, body) for each whole one (Content-Length or chunked
    body), in order."""
    answers = []
    while out:
        m = re.match(rb"HTTP/1\.[01] (\d\d\d)[^\r\n]*\r\n", out)
        head, sep, rest = out.partition(b"\r\n\r\n")
        if not m or not sep:
            break
        headers = {}
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.decode("latin-1").partition(":")
            k = k.strip().lower()
            v = v.strip()
            headers[k] = headers[k] + ", " + v if k in headers else v
        if "chunked" in headers.get("transfer-encoding", ""):
            body = b""
            while True:
                size, nl, rest = rest.partition(b"\r\n")
                try:
                    n = int(size.split(b";")[0], 16)
                except ValueError:
                    return answers
                if not nl or n == 0:
                    break
                body += rest[:n]
                rest = rest[n + 2:]
            rest = rest.partition(b"\r\n")[2]
        else:
            n = int(headers.get("content-length", "0") or 0)
            if len(rest) < n:
                break
            body, rest = rest[:n], rest[n:]
        answers.append((int(m.group(1)), headers, body))
        out = rest
    return answers


def check_answer(method, path, status, headers, body):
    """Check an answer read by a test's own client (headers with
    lower-case names, the body decoded from its framing, maybe cut short
    when a stream was closed) against doc/openapi.yaml; SchemaViolation
    if it does not match."""
    why = openapi.check(method, path, status, headers, body)
    if why:
        raise SchemaViolation("the answer does not match doc/openapi.yaml:"
                              "\n  " + "\n  ".join(why) + "\n" +
                              repr(body[:1500]))


def check_raw(request, out):
    """Check the first answer in out (bytes read from a raw socket)
    against doc/openapi.yaml, as request() does for its answers: by the
    request line of request (bytes), or when there is none (or it cannot
    be read), only as a problem document.  SchemaViolation if it does not
    match; returns out."""
    answers = raw_answers(out)
    if not answers:
        return out
    status, headers, body = answers[0]
    m = re.match(rb"([A-Z]+) (/\S*) HTTP/1\.[01]\r\n", request or b"")
    method = m.group(1).decode() if m else None
    path = m.group(2).decode("latin-1") if m else None
    why = openapi.check(method, path, status, headers, body)
    if why:
        raise SchemaViolation("the answer does not match doc/openapi.yaml:"
                              "\n  " + "\n  ".join(why) + "\n" +
                              repr(out[:1500]))
    return out


def is_problem(r, status, field=None):
    """(bool, why) whether r is a problem document with this status (and
    field, a JSON Pointer, if given; a tuple accepts any of several)."""
    why = []
    statuses = status if isinstance(status, tuple) else (status,)
    if r.status not in statuses:
        why.append("status %s, want %s" % (r.status, status))
    ctype = r.headers.get("content-type", "")
    if not ctype.startswith("application/problem+json"):
        why.append("content-type %r" % ctype)
    b = r.body
    if not isinstance(b, dict):
        why.append("body is not a JSON object")
    else:
        if b.get("status") != r.status:
            why.append("body status %r != %s" % (b.get("status"), r.status))
        if not isinstance(b.get("detail"), str) or not b.get("detail"):
            why.append("no detail")
        if not isinstance(b.get("title"), str):
            why.append("no title")
        if "type" not in b:
            why.append("no type")
        if field is not None:
            want = field if isinstance(field, tuple) else (field,)
            if b.get("field") not in want:
                why.append("field %r, want %s" % (b.get("field"),
                                                  " or ".join(map(repr, want))))
    return (not why, "; ".join(why))


if __name__ == "__main__":
    # Smoke use: python3 corod.py -> start, print the address, stop.
    d = Corod(None)
    print("corod on", d.url)
    print(d.request("GET", "/healthz"))
    print("stop:", d.stop())
    d.close()
