"""The client of benches/ftp_retr.sh: one RETR (or one plain socket
copy) received into a reused 1 MiB buffer; prints MB/s.

usage: ftp_retr.py ftp PORT NAME      anonymous login, TYPE I, PASV, RETR
       ftp_retr.py plain FILE         a sendfile() sender process on CPU 0,
                                      then the same receive loop (the limit)
"""

import ftplib
import os
import socket
import subprocess
import sys
import time

BUF = bytearray(1 << 20)


def drain(sock):
    view = memoryview(BUF)
    n = 0
    while True:
        k = sock.recv_into(view)
        if not k:
            return n
        n += k


def ftp(port, name):
    f = ftplib.FTP()
    f.connect("127.0.0.1", port, timeout=60)
    f.login()
    f.voidcmd("TYPE I")
    t0 = time.perf_counter()
    conn = f.transfercmd("RETR " + name)
    n = drain(conn)
    conn.close()
    f.voidresp()
    dt = time.perf_counter() - t0
    f.quit()
    return n, dt


def plain_serve(path):
    """The sender of the plain copy, in its own process: a thread of the
    receiving process would share its interpreter lock, and lose."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})  # on CPU 0, as every server is
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    print(srv.getsockname()[1], flush=True)
    c, _ = srv.accept()
    with open(path, "rb") as fh:
        c.sendfile(fh)
    c.close()


def plain(path):
    sender = subprocess.Popen(
        [sys.executable, __file__, "plain-serve", path], stdout=subprocess.PIPE, text=True
    )
    port = int(sender.stdout.readline())
    t0 = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", port))
    n = drain(s)
    dt = time.perf_counter() - t0
    s.close()
    sender.wait()
    return n, dt


if sys.argv[1] == "plain-serve":
    plain_serve(sys.argv[2])
    sys.exit(0)
if sys.argv[1] == "ftp":
    n, dt = ftp(int(sys.argv[2]), sys.argv[3])
else:
    n, dt = plain(sys.argv[2])
print(f"{n / dt / 1e6:.0f} {n}")
