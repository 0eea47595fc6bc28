"""stallproxy.py -- a TCP proxy on 127.0.0.1 that can stop forwarding.

    p = StallProxy(target_port)       # listens on 127.0.0.1:p.port
    p.stall()                         # connections stay open, no byte moves
    p.resume()                        # bytes flow again (what waited too)
    p.cut()                           # every connection closed at once
    p.close()

For the network stall a node of corod must survive: its database
connections go through the proxy, which, stalled, neither forwards nor
closes anything, as a partitioned network does (no RST, no FIN: the
client's writes fill buffers and its reads wait).  New connections are
accepted but not connected onward while stalled.  One thread, select().
"""

import select
import socket
import threading


class StallProxy:
    def __init__(self, target_port, target_host="127.0.0.1"):
        self.target = (target_host, target_port)
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(128)
        self.port = self.lsock.getsockname()[1]
        self.stalled = False
        self.pairs = {}             # socket -> its peer
        self.pending = []           # accepted while stalled
        self.lock = threading.Lock()
        self.wake_r, self.wake_w = socket.socketpair()
        self.done = False
        self.accepted = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _wake(self):
        try:
            self.wake_w.send(b"x")
        except OSError:
            pass

    def stall(self):
        with self.lock:
            self.stalled = True
        self._wake()

    def resume(self):
        with self.lock:
            self.stalled = False
        self._wake()

    def cut(self):
        """Close every connection (both sides) now."""
        with self.lock:
            socks = list(self.pairs) + self.pending
            self.pairs.clear()
            self.pending = []
        for s in socks:
            try:
                s.close()
            except OSError:
                pass
        self._wake()

    def close(self):
        self.done = True
        self._wake()
        self.thread.join(5)
        self.cut()
        self.lsock.close()

    def _connect(self, client):
        try:
            up = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        up.setblocking(False)
        client.setblocking(False)
        self.pairs[client] = up
        self.pairs[up] = client

    def _drop(self, s):
        peer = self.pairs.pop(s, None)
        if peer is not None:
            self.pairs.pop(peer, None)
            peer.close()
        s.close()

    def _run(self):
        while not self.done:
            with self.lock:
                stalled = self.stalled
                if not stalled and self.pending:
                    pend, self.pending = self.pending, []
                else:
                    pend = []
                for c in pend:
                    self._connect(c)
                rlist = [self.lsock, self.wake_r]
                if not stalled:
                    rlist += list(self.pairs)
            try:
                ready, _, _ = select.select(rlist, [], [], 0.5)
            except (OSError, ValueError):
                continue
            for s in ready:
                if s is self.wake_r:
                    self.wake_r.recv(4096)
                    continue
                if s is self.lsock:
                    c, _ = self.lsock.accept()
                    self.accepted += 1
                    with self.lock:
                        if self.stalled:
                            self.pending.append(c)
                        else:
                            self._connect(c)
                    continue
                with self.lock:
                    if self.stalled or s not in self.pairs:
                        continue
                    peer = self.pairs[s]
                    try:
                        data = s.recv(65536)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        data = b""
                    if not data:
                        self._drop(s)
                        continue
                    try:
                        peer.setblocking(True)
                        peer.sendall(data)
                        peer.setblocking(False)
                    except OSError:
                        self._drop(s)
