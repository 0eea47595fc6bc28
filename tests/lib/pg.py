"""pg.py -- a private PostgreSQL 15 (Debian's) for the tests of the
PostgreSQL backend, in a temporary directory.

    pg = Postgres(tap)              # skips (SkipTest) without PostgreSQL
    pg.start()
    uri = pg.uri                    # postgresql://postgres@127.0.0.1:PORT/corod
    pg.psql("SELECT 1")             # -> stdout text (unaligned, no header)
    pg.stop(); pg.start()           # an outage (pg_ctl stop -m fast)
    pg.kill()                       # SIGKILL the postmaster (a crash)
    pg.restart()
    pg.close()                      # stop -m immediate, remove the dir

    python3 tests/lib/pg.py start DIR   # prints the URI; DIR is made
    python3 tests/lib/pg.py stop DIR [fast|immediate]   (default fast)

initdb -A trust -U postgres --no-sync -E UTF8 --locale=C into DIR/data,
the socket in DIR (-k), TCP on 127.0.0.1 only, a free port (kept in
DIR/port, so that a restart or the CLI's stop finds it), the server's log
in DIR/postgres.log, and a database "corod".  fsync stays on (what the
durability tests measure) unless fsync=False.  As root, every server
program runs as the postgres user (runuser), which owns DIR.

Environment: PG_BINDIR (default /usr/lib/postgresql/15/bin, else
`pg_config --bindir`), PSQL (default /usr/bin/psql), COROD_KEEP=1 keeps
the directory.
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import SkipTest, scaled  # noqa: E402


def pg_bindir():
    d = os.environ.get("PG_BINDIR")
    if d:
        return d if os.access(os.path.join(d, "postgres"), os.X_OK) else None
    if os.access("/usr/lib/postgresql/15/bin/postgres", os.X_OK):
        return "/usr/lib/postgresql/15/bin"
    cfg = shutil.which("pg_config")
    if cfg:
        try:
            d = subprocess.run([cfg, "--bindir"], capture_output=True,
                               text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None
        if os.access(os.path.join(d, "postgres"), os.X_OK):
            return d
    return None


def psql_bin():
    p = os.environ.get("PSQL")
    if p:
        return p if os.access(p, os.X_OK) else None
    if os.access("/usr/bin/psql", os.X_OK):
        return "/usr/bin/psql"
    return shutil.which("psql")


def available():
    return pg_bindir() is not None and psql_bin() is not None


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Postgres:
    def __init__(self, tap=None, dir=None, fsync=True, start=False):
        self.tap = tap
        self.bindir = pg_bindir()
        self.psql_path = psql_bin()
        if self.bindir is None or self.psql_path is None:
            raise SkipTest("no PostgreSQL (apt-get install postgresql-15)")
        self.fsync = fsync
        self.root = os.getuid() == 0
        self.own_dir = dir is None
        self.dir = dir or tempfile.mkdtemp(prefix="corod-pg-")
        os.makedirs(self.dir, exist_ok=True)
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "postgres.log")
        self.port = self._read_port()
        self.closed = False
        if self.root:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            os.chmod(self.dir, 0o700)
        if tap is not None and self.close not in tap.cleanups:
            tap.cleanups.append(self.close)
        if start:
            self.start()

    @property
    def uri(self):
        return "postgresql://postgres@127.0.0.1:%d/corod" % self.port

    def _read_port(self):
        try:
            with open(os.path.join(self.dir, "port")) as f:
                return int(f.read())
        except (OSError, ValueError):
            return None

    def _cmd(self, argv):
        if self.root:
            return ["runuser", "-u", "postgres", "--"] + argv
        return argv

    def _run(self, argv, timeout=60, check=True):
        r = subprocess.run(self._cmd(argv), stdin=subprocess.DEVNULL,
                           capture_output=True, text=True,
                           timeout=scaled(timeout), cwd=self.dir)
        if check and r.returncode != 0:
            raise RuntimeError("%s failed (%d):\n%s%s\n%s" % (
                " ".join(argv), r.returncode, r.stdout, r.stderr,
                self.tail()))
        return r

    def _bin(self, name):
        return os.path.join(self.bindir, name)

    def initdb(self):
        self._run([self._bin("initdb"), "-D", self.data, "-A", "trust",
                   "-U", "postgres", "--no-sync", "-E", "UTF8",
                   "--locale=C"], timeout=120)

    def start(self, timeout=60):
        """initdb (the first time), pg_ctl -w start, createdb corod."""
        fresh = not os.path.exists(os.path.join(self.data, "PG_VERSION"))
        if fresh:
            self.initdb()
        if self.port is None:
            self.port = _free_port()
            with open(os.path.join(self.dir, "port"), "w") as f:
                f.write("%d\n" % self.port)
        # several daemons of 6 connections each, and the tests' psql
        opts = ("-k %s -c listen_addresses=127.0.0.1 -p %d -c fsync=%s "
                "-c max_connections=400" % (
                    self.dir, self.port, "on" if self.fsync else "off"))
        self._run([self._bin("pg_ctl"), "-D", self.data, "-l", self.log,
                   "-w", "-t", str(int(scaled(timeout))), "-o", opts,
                   "start"], timeout=timeout + 10)
        if fresh:
            self._run([self._bin("createdb"), "-h", self.dir, "-p",
                       str(self.port), "-U", "postgres", "corod"])
        return self

    def stop(self, mode="fast", timeout=60):
        """pg_ctl stop -m mode (fast: clients are cut off, a clean end)."""
        if not self.running():
            return
        self._run([self._bin("pg_ctl"), "-D", self.data, "-w", "-t",
                   str(int(scaled(timeout))), "-m", mode, "stop"],
                  timeout=timeout + 10, check=False)

    def restart(self):
        self.stop()
        return self.start()

    def pid(self):
        """The postmaster's pid, or None."""
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                return int(f.readline())
        except (OSError, ValueError):
            return None

    def running(self):
        pid = self.pid()
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
            return True
        except OSError:
            return False

    def _children(self, pid):
        kids = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    stat = f.read()
            except OSError:
                continue
            # "pid (comm) state ppid ...": comm may hold spaces
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(d))
        return kids

    def kill(self):
        """SIGKILL the postmaster and its processes (a crash of the
        server's machine, as the clients see it); start() recovers."""
        pid = self.pid()
        if pid is None:
            return
        pids = [pid] + self._children(pid)
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        deadline = time.monotonic() + scaled(10)
        for p in pids:
            while time.monotonic() < deadline:
                try:
                    os.kill(p, 0)
                except OSError:
                    break
                time.sleep(0.02)

    def psql(self, sql, db="corod", check=True):
        """Run SQL with psql; its output (unaligned, tuples only)."""
        r = subprocess.run(
            [self.psql_path, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
             "-d", db, "-c", sql],
            stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=scaled(60))
        if check and r.returncode != 0:
            raise RuntimeError("psql failed: %s\n%s" % (sql, r.stderr))
        return r.stdout

    def tail(self, n=20):
        try:
            with open(self.log, errors="replace") as f:
                return "\n".join(f.read().splitlines()[-n:])
        except OSError:
            return ""

    def close(self, keep=False):
        if self.closed:
            return
        self.closed = True
        self.stop(mode="immediate")
        failed = keep or (self.tap is not None and self.tap.failed)
        if failed or os.environ.get("COROD_KEEP") == "1":
            if self.tap is not None:
                self.tap.diag("postgres: kept %s; log tail:\n%s" %
                              (self.dir, self.tail(10)))
        elif self.own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(keep=exc_type is not None)
        return False


def main(argv):
    usage = "usage: pg.py start DIR [--no-fsync] | stop DIR [fast|immediate]"
    if len(argv) < 3 or argv[1] not in ("start", "stop"):
        print(usage, file=sys.stderr)
        return 2
    if not available():
        print("pg.py: no PostgreSQL", file=sys.stderr)
        return 77
    pg = Postgres(dir=argv[2], fsync="--no-fsync" not in argv[3:])
    if argv[1] == "start":
        pg.start()
        print(pg.uri)
    else:
        pg.stop(mode=argv[3] if len(argv) > 3 else "fast")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
