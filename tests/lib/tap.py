"""tap.py -- a small TAP producer for corod's end-to-end tests.

    from tap import TAP
    t = TAP("walkthrough")
    @t.test(timeout=20)
    def echo_with_delay():
        t.ok(cond, "what was checked")
        t.is_(got, want, "what was compared")
    t.done()

Every check prints one TAP line.  A test function that raises becomes a
`not ok` line with the traceback as `#` comments, and the next test runs.
Each test has a watchdog (SIGALRM, raising inside the test) and the whole
script has one more (a thread that bails out and kills the daemons it was
told about), so a wedged daemon or socket never hangs `make check`.

Timeouts are multiplied by COROD_TIMEOUT_MULT (default 1), for sanitizer
and valgrind runs.  The plan is printed at the end ("1..N"), which the
automake TAP driver accepts.
"""

import os
import signal
import sys
import threading
import time
import traceback


def timeout_mult():
    """COROD_TIMEOUT_MULT as a float >= 1 (bad values count as 1)."""
    try:
        m = float(os.environ.get("COROD_TIMEOUT_MULT", "1"))
    except ValueError:
        return 1.0
    return m if m >= 1 else 1.0


def scaled(seconds):
    """A timeout stretched by COROD_TIMEOUT_MULT."""
    return seconds * timeout_mult()


class TestTimeout(Exception):
    """Raised inside a test whose watchdog expired."""


class SkipTest(Exception):
    """Raise from a test to skip the rest of it: `ok N # SKIP reason`."""


class TAP:
    def __init__(self, name=None, total_timeout=900):
        self.name = name or os.path.basename(sys.argv[0])
        self.n = 0
        self.failed = 0
        self.failures = []
        self.current = None
        self.cleanups = []          # called on bail-out (kill daemons)
        self._lock = threading.Lock()
        self._done = False
        # Unbuffered-ish output: the driver and a human both see progress.
        try:
            sys.stdout.reconfigure(line_buffering=True)
        except AttributeError:
            pass
        self._start_total_watchdog(scaled(total_timeout))

    # --- output ------------------------------------------------------------

    def _emit(self, line):
        with self._lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def diag(self, msg):
        """Comment lines (shown in the test's .log)."""
        text = str(msg)
        lines = text.splitlines() or [""]
        with self._lock:
            for line in lines:
                sys.stdout.write("# " + line + "\n")
            sys.stdout.flush()

    @staticmethod
    def _clean(desc):
        # A description must stay on one line and must not look like a
        # directive ('#') to the driver.
        desc = " ".join(str(desc).split())
        return desc.replace("#", "\\#")

    def ok(self, cond, desc="", diag=None):
        """One test point; returns bool(cond)."""
        with self._lock:
            self.n += 1
            n = self.n
        prefix = "%s: " % self.current if self.current else ""
        d = self._clean(prefix + desc)
        if cond:
            self._emit("ok %d - %s" % (n, d))
        else:
            self.failed += 1
            self.failures.append(d)
            self._emit("not ok %d - %s" % (n, d))
            if diag is not None:
                self.diag(diag)
        return bool(cond)

    def is_(self, got, want, desc=""):
        """ok(got == want) with both shown on failure."""
        return self.ok(got == want, desc,
                       diag="     got: %r\n    want: %r" % (got, want))

    eq = is_

    def isnt(self, got, unwanted, desc=""):
        return self.ok(got != unwanted, desc,
                       diag="     got: %r\n    must differ from it" % (got,))

    def between(self, got, lo, hi, desc=""):
        """ok(lo <= got <= hi)."""
        cond = got is not None and lo <= got <= hi
        return self.ok(cond, "%s (%s in [%s, %s])" % (
            desc, _fmt(got), _fmt(lo), _fmt(hi)))

    def like(self, got, regex, desc=""):
        import re
        cond = isinstance(got, str) and re.search(regex, got) is not None
        return self.ok(cond, desc, diag="     got: %r\n    want: /%s/" %
                       (got, regex))

    def skip(self, desc, reason):
        with self._lock:
            self.n += 1
            n = self.n
        self._emit("ok %d - %s # SKIP %s" % (n, self._clean(desc),
                                              self._clean(reason)))

    def fail(self, desc, diag=None):
        return self.ok(False, desc, diag=diag)

    # --- tests with a watchdog -----------------------------------------------

    def test(self, timeout=60, name=None):
        """Decorator: run the function now as one test with a watchdog."""
        def deco(fn):
            self.run(fn, timeout=timeout, name=name or fn.__name__)
            return fn
        return deco

    def run(self, fn, timeout=60, name=None, args=()):
        """Run fn(*args); an exception or the watchdog gives a not ok."""
        name = name or getattr(fn, "__name__", "test")
        only = os.environ.get("TAP_ONLY")     # by hand: TAP_ONLY=a,b
        if only and name not in only.split(","):
            return
        limit = scaled(timeout)
        self.current = name
        self.diag("--- %s (timeout %.0f s)" % (name, limit))
        started = time.monotonic()

        def on_alarm(signum, frame):
            raise TestTimeout("watchdog: %s took more than %.0f s" %
                              (name, limit))

        old = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, limit)
        try:
            fn(*args)
        except SkipTest as e:
            signal.setitimer(signal.ITIMER_REAL, 0)
            self.skip(name, str(e) or "skipped")
        except BaseException as e:     # KeyboardInterrupt too: report it
            signal.setitimer(signal.ITIMER_REAL, 0)
            if isinstance(e, (SystemExit,)):
                raise
            self.ok(False, "raised %s: %s" % (type(e).__name__,
                                             str(e).splitlines()[0]
                                             if str(e) else ""),
                    diag=traceback.format_exc())
            if isinstance(e, KeyboardInterrupt):
                self.done()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
            self.diag("--- %s: %.2f s" % (name, time.monotonic() - started))
            self.current = None

    # --- the end -------------------------------------------------------------

    def _start_total_watchdog(self, limit):
        def bail():
            if self._done:
                return
            self._emit("Bail out! %s: the whole script took more than "
                       "%.0f s" % (self.name, limit))
            for fn in list(self.cleanups):
                try:
                    fn()
                except Exception:
                    pass
            os._exit(2)
        t = threading.Timer(limit, bail)
        t.daemon = True
        t.start()
        self._watchdog = t

    def done(self):
        """Print the plan and exit: 0 if every point passed, else 1."""
        self._done = True
        self._watchdog.cancel()
        for fn in list(self.cleanups):
            try:
                fn()
            except Exception as e:
                self.ok(False, "cleanup raised %s: %s" % (type(e).__name__, e),
                        diag=traceback.format_exc())
        self._emit("1..%d" % self.n)
        if self.failed:
            self.diag("%d of %d failed:" % (self.failed, self.n))
            for f in self.failures:
                self.diag("  " + f)
        sys.stdout.flush()
        sys.exit(1 if self.failed else 0)


def _fmt(v):
    if isinstance(v, float):
        return "%.3f" % v
    return repr(v)
