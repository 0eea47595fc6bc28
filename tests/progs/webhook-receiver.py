#!/usr/bin/env python3
"""webhook-receiver.py -- a small webhook endpoint, for the README's example
and tests/e2e/readme.sh: it verifies Standard Webhooks signatures the way
the spec says a receiver must, independently of corod, and says what it
got.

usage: webhook-receiver.py PORT [KEY-FILE]

Listens on 127.0.0.1:PORT (0: any free port; the first line printed is
"listening on 127.0.0.1:N").  KEY-FILE holds the signing key as corod's
secret does ("whsec_" and base64).  Every request is answered, and printed
as one line:

    POST /hooks/backup id corod-14 attempt 1 signature ok -> 200

A request with a signature that does not verify (or a timestamp more than
5 minutes off) is answered 401; without KEY-FILE signatures are not
checked ("signature -").  Under /flaky/, the first request of each
webhook-id is answered 503 with Retry-After: 2, later ones normally, to
show corod's retries.  A good answer is JSON: {"received": ID}.

Standard library only; stops on SIGINT or SIGTERM.
"""

import base64
import hashlib
import hmac
import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOLERANCE = 300     # seconds a timestamp may be off, as the spec suggests


def load_key(path):
    with open(path) as f:
        text = f.read().strip()
    if not text.startswith("whsec_"):
        sys.exit("%s: not a whsec_ key" % path)
    return base64.b64decode(text[len("whsec_"):])


def verify(key, headers, body):
    """'ok', or why not: the spec's verification, constant-time compare."""
    wid = headers.get("webhook-id")
    ts = headers.get("webhook-timestamp")
    sigs = headers.get("webhook-signature")
    if not wid or not ts or not sigs:
        return "missing"
    try:
        if abs(time.time() - int(ts)) > TOLERANCE:
            return "stale"
    except ValueError:
        return "bad-timestamp"
    signed = wid.encode() + b"." + ts.encode() + b"." + body
    want = base64.b64encode(hmac.new(key, signed,
                                     hashlib.sha256).digest()).decode()
    for sig in sigs.split():
        version, _, value = sig.partition(",")
        if version == "v1" and hmac.compare_digest(value, want):
            return "ok"
    return "bad"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def answer(self, status, body, extra=()):
        data = json.dumps(body).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def serve(self):
        srv = self.server
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n > 0 else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        wid = headers.get("webhook-id") or headers.get("idempotency-key") \
            or "-"
        sig = verify(srv.key, headers, body) if srv.key is not None else "-"
        with srv.lock:
            srv.seen[wid] = srv.seen.get(wid, 0) + 1
            first = srv.seen[wid] == 1
        if sig not in ("ok", "-"):
            status, out, extra = 401, {"error": "signature " + sig}, ()
        elif self.path.startswith("/flaky/") and first:
            status, out = 503, {"error": "busy, try again"}
            extra = (("Retry-After", "2"),)
        else:
            status, out, extra = 200, {"received": wid}, ()
        print("%s %s id %s attempt %s signature %s -> %d" % (
            self.command, self.path, wid,
            headers.get("corod-attempt", "-"), sig, status), flush=True)
        self.answer(status, out, extra)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = serve


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: webhook-receiver.py PORT [KEY-FILE]")
    httpd = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    httpd.daemon_threads = True
    httpd.key = load_key(sys.argv[2]) if len(sys.argv) == 3 else None
    httpd.lock = threading.Lock()
    httpd.seen = {}
    print("listening on 127.0.0.1:%d" % httpd.server_address[1], flush=True)

    def stop(signum, frame):
        # shutdown() waits for serve_forever: not from its own thread
        threading.Thread(target=httpd.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    httpd.serve_forever(poll_interval=0.2)
    httpd.server_close()


if __name__ == "__main__":
    main()
