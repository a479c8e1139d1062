"""Python's ftplib.FTP_TLS against `twill ftp --cert … --key …` (RFC 4217;
tests/ftp.rs starts the server).

usage: ftp_tls_clients.py MODE PORT ROOT CAFILE
  session   FEAT lists AUTH TLS/PBSZ/PROT; AUTH TLS, login, PBSZ 0, PROT P;
            LIST, binary download and upload (passive and active) with the
            bytes compared; PROT C back to clear data; 503/536/504 replies
  inject    a command pipelined behind AUTH TLS is never honoured: the
            connection is refused, and a later session still works
  require   with --require-tls: USER on a plain channel gets 534, a
            transfer before PROT P gets 521; after AUTH TLS + PROT P all
            works
Every check asserts; the script prints "ok" at the end.
"""

import ftplib
import io
import os
import socket
import ssl
import sys

MODE, PORT, ROOT, CAFILE = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
HOST = "localhost"


def context():
    ctx = ssl.create_default_context(cafile=CAFILE)
    return ctx


def tls_session(login=True):
    f = ftplib.FTP_TLS(context=context(), timeout=20)
    f.connect(HOST, PORT)
    if login:
        f.login("alice", "secret")  # sends AUTH TLS first
        assert isinstance(f.sock, ssl.SSLSocket), "control channel not TLS"
    return f


def retr(f, name):
    b = io.BytesIO()
    f.retrbinary("RETR " + name, b.write)
    return b.getvalue()


def expect_error(code, fn, *a):
    try:
        fn(*a)
    except ftplib.all_errors as e:
        assert str(e).startswith(code), f"expected {code}, got {e}"
        return str(e)
    raise AssertionError(f"expected {code}, call succeeded")


def session():
    big = open(os.path.join(ROOT, "big.bin"), "rb").read()
    # FEAT on the plain channel advertises RFC 4217.
    f = ftplib.FTP()
    f.connect(HOST, PORT, timeout=20)
    feat = f.sendcmd("FEAT")
    for line in (" AUTH TLS", " PBSZ", " PROT"):
        assert line in feat.split("\n") or line in feat, feat
    # PBSZ/PROT before AUTH TLS: 503 (RFC 4217 §9).
    expect_error("503", f.sendcmd, "PBSZ 0")
    expect_error("503", f.sendcmd, "PROT P")
    expect_error("504", f.sendcmd, "AUTH KERBEROS_V4")
    f.quit()

    for passive in (True, False):
        f = tls_session()
        expect_error("503", f.sendcmd, "AUTH TLS")  # already TLS
        expect_error("503", f.sendcmd, "PROT P")  # PBSZ first
        f.prot_p()  # PBSZ 0, PROT P
        expect_error("536", f.sendcmd, "PROT S")
        expect_error("504", f.sendcmd, "PROT X")
        f.set_pasv(passive)
        lines = []
        f.retrlines("LIST", lines.append)
        assert any(l.endswith(" big.bin") for l in lines), lines
        got = retr(f, "big.bin")
        assert got == big, f"protected download differs ({len(got)} bytes)"
        data = os.urandom(700_000) + b"end"
        name = f"up-{passive}.bin"
        f.storbinary("STOR " + name, io.BytesIO(data))
        assert open(os.path.join(ROOT, name), "rb").read() == data
        assert retr(f, name) == data
        # Back to clear data connections on the same session.
        f.prot_c()
        assert retr(f, "hello.txt") == b"hello world\n"
        f.quit()
    print("ok")


def inject():
    # AUTH TLS and USER in one segment: the USER must not be answered in
    # the clear, and no TLS session may start carrying it.
    s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
    greeting = b""
    while not greeting.endswith(b"\r\n"):
        greeting += s.recv(1)
    assert greeting.startswith(b"220"), greeting
    s.sendall(b"AUTH TLS\r\nUSER alice\r\n")
    # The server may answer 234 before it aborts; the abort (a reset) can
    # also discard that reply unread. Either way USER is never answered.
    got = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    except ConnectionResetError:
        pass  # a timeout (no close) fails the test
    assert b"331" not in got and b"530" not in got, f"pipelined USER honoured: {got!r}"
    assert got in (b"", b"234 AUTH TLS successful.\r\n"), got
    s.close()
    # Another session still works.
    f = tls_session()
    f.prot_p()
    assert retr(f, "hello.txt") == b"hello world\n"
    f.quit()
    print("ok")


def require():
    f = ftplib.FTP()
    f.connect(HOST, PORT, timeout=20)
    expect_error("534", f.sendcmd, "USER alice")
    expect_error("530", f.sendcmd, "PASS secret")
    f.quit()
    f = tls_session()
    f.set_pasv(True)
    expect_error("521", retr, f, "hello.txt")
    f.prot_p()
    assert retr(f, "hello.txt") == b"hello world\n"
    f.quit()
    print("ok")


{"session": session, "inject": inject, "require": require}[MODE]()
