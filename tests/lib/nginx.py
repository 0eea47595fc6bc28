"""nginx.py -- Debian's nginx on 127.0.0.1 as a fast file server for the
download tests.

    with Nginx(tap) as ng:             # skips (SkipTest) if there is no nginx
        path = ng.create("big.bin", 256 << 20)    # -> (sha256 hex, size)
        url = ng.url("big.bin")                   # plain, full speed
        url = ng.url("big.bin", slow=True)        # limit_rate per connection

A private configuration in a temporary directory: its own pid file, lock
file, error log (DIR/error.log, also given with -e so nothing goes to the
system's), access log (DIR/access.log, with the Range header), temp
paths, `daemon off` (the master is our child), `sendfile on`, a port
picked free (retried a few times if another process takes it first).
The document root is DIR/root; /slow/ serves the same files with
`limit_rate` (default 2m per connection).  stop() sends SIGQUIT (graceful)
and waits; SIGKILL after the timeout.  Run as root, the workers run as
root too (`user root`), since the temporary directory is private.

Environment: NGINX_BIN (default /usr/sbin/nginx, else nginx in PATH).
"""

import grp
import hashlib
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


def nginx_bin():
    b = os.environ.get("NGINX_BIN")
    if b:
        return b
    if os.access("/usr/sbin/nginx", os.X_OK):
        return "/usr/sbin/nginx"
    return shutil.which("nginx")


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


CONF = """\
daemon off;
master_process on;
worker_processes 2;
pid {dir}/nginx.pid;
lock_file {dir}/nginx.lock;
error_log {dir}/error.log warn;
{user}
events {{
    worker_connections 1024;
}}
http {{
    types {{
        application/octet-stream bin;
        text/plain txt;
    }}
    default_type application/octet-stream;
    log_format ranges '$remote_addr "$request" $status $body_bytes_sent '
                      '"$http_range" "$http_if_range" "$http_user_agent"';
    access_log {dir}/access.log ranges;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 30;
    keepalive_requests 10000;
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        root {dir}/root;
        location / {{
        }}
        location /slow/ {{
            alias {dir}/root/;
            limit_rate {slow_rate};
        }}
    }}
}}
"""


class Nginx:
    def __init__(self, tap=None, slow_rate="2m", start=True):
        self.tap = tap
        self.slow_rate = slow_rate
        self.bin = nginx_bin()
        if not self.bin:
            raise SkipTest("no nginx (apt-get install nginx-light)")
        self.dir = tempfile.mkdtemp(prefix="corod-nginx-")
        self.root = os.path.join(self.dir, "root")
        os.makedirs(self.root)
        os.makedirs(os.path.join(self.dir, "tmp"))
        self.conf = os.path.join(self.dir, "nginx.conf")
        self.error_log = os.path.join(self.dir, "error.log")
        self.proc = None
        self.port = None
        self.closed = False
        if tap is not None and self.close not in tap.cleanups:
            tap.cleanups.append(self.close)
        if start:
            self.start()

    def _write_conf(self, port):
        user = ""
        if os.geteuid() == 0:
            user = "user %s %s;" % (pwd.getpwuid(0).pw_name,
                                    grp.getgrgid(os.getegid()).gr_name)
        with open(self.conf, "w") as f:
            f.write(CONF.format(dir=self.dir, port=port, user=user,
                                slow_rate=self.slow_rate))

    def start(self, timeout=10):
        last = ""
        for _ in range(5):
            port = _free_port()
            self._write_conf(port)
            out = open(os.path.join(self.dir, "stderr.log"), "ab")
            self.proc = subprocess.Popen(
                [self.bin, "-p", self.dir + "/", "-c", self.conf,
                 "-e", self.error_log],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                cwd=self.dir)
            out.close()
            deadline = time.monotonic() + scaled(timeout)
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    s = socket.create_connection(("127.0.0.1", port),
                                                 timeout=1)
                    s.close()
                    self.port = port
                    return self
                except OSError:
                    time.sleep(0.05)
            last = self._tail()
            if self.proc.poll() is None:
                self._kill()
                break
            if "Address already in use" not in last:
                break
        raise RuntimeError("nginx did not start:\n" + last)

    def _tail(self, n=30):
        text = ""
        for name in ("stderr.log", "error.log"):
            try:
                with open(os.path.join(self.dir, name), "rb") as f:
                    text += f.read().decode("utf-8", "replace")
            except OSError:
                pass
        return "\n".join(text.splitlines()[-n:])

    def _kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(scaled(10))
            except subprocess.TimeoutExpired:
                pass

    def url(self, name, slow=False):
        return "http://127.0.0.1:%d/%s%s" % (self.port,
                                             "slow/" if slow else "", name)

    def create(self, name, size, chunk=1 << 20):
        """A file of size random bytes in the root; (sha256 hex, size)."""
        path = os.path.join(self.root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        h = hashlib.sha256()
        left = size
        with open(path, "wb") as f:
            while left > 0:
                b = os.urandom(min(chunk, left))
                h.update(b)
                f.write(b)
                left -= len(b)
        return h.hexdigest(), size

    def access_log(self):
        try:
            with open(os.path.join(self.dir, "access.log"), "r",
                      errors="replace") as f:
                return f.read().splitlines()
        except OSError:
            return []

    def stop(self, timeout=10):
        """SIGQUIT (graceful shutdown), SIGKILL after timeout; the exit
        status (None if it had to be killed)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        try:
            self.proc.send_signal(signal.SIGQUIT)
        except OSError:
            pass
        try:
            return self.proc.wait(scaled(timeout))
        except subprocess.TimeoutExpired:
            self._kill()
            return None

    def close(self, keep=False):
        if self.closed:
            return
        self.closed = True
        self.stop()
        failed = keep or (self.tap is not None and self.tap.failed)
        if failed or os.environ.get("COROD_KEEP") == "1":
            if self.tap is not None:
                self.tap.diag("nginx: kept %s; error log tail:\n%s" %
                              (self.dir, self._tail(10)))
            # Keep the logs, not the (big) files.
            shutil.rmtree(self.root, ignore_errors=True)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(keep=exc_type is not None)
        return False
