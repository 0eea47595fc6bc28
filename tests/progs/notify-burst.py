# notify-burst.py -- COUNT datagrams to $NOTIFY_SOCKET as fast as the
# socket takes them ("X_COROD_PROGRESS=i/COUNT" and "STATUS=item i"
# each), then "sent" on stdout, then it stays alive (its datagrams are
# placed by its pid) until killed.  tests/unit/test-notify.c runs it
# with python3 (stdlib only).
import os
import socket
import sys
import time

addr = os.environ["NOTIFY_SOCKET"]
if addr.startswith("@"):
    addr = "\0" + addr[1:]
count = int(sys.argv[1])
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
for i in range(1, count + 1):
    s.sendto(("X_COROD_PROGRESS=%d/%d\nSTATUS=item %d" %
              (i, count, i)).encode(), addr)
sys.stdout.write("sent\n")
sys.stdout.flush()
time.sleep(120)
