"""Python's ftplib against `twill ftp` (tests/ftp.rs starts the server).

usage: ftp_clients.py MODE PORT ROOT
  session   login, PWD/CWD/MKD/RMD, LIST/NLST/MLSD/MLST, binary and ASCII
            upload and download, REST resume, APPE, rename, delete, SIZE,
            MDTM, STAT, in passive (EPSV and PASV) and active mode
  anonymous anonymous login is read-only
  hostile   path escapes, a bounce PORT, a foreign data connection, a
            10,000-character command, ABOR mid-transfer, a failed-login
            delay: each refused or handled while a second session keeps
            working
Every check asserts; the script prints "ok" at the end.
"""

import ftplib
import io
import os
import socket
import sys
import threading
import time

MODE, PORT, ROOT = sys.argv[1], int(sys.argv[2]), sys.argv[3]
HOST = "127.0.0.1"


def connect(user="alice", password="secret"):
    f = ftplib.FTP()
    f.connect(HOST, PORT, timeout=20)
    assert f.getwelcome().startswith("220"), f.getwelcome()
    if user:
        f.login(user, password)
    return f


def retr(f, name, rest=None):
    b = io.BytesIO()
    f.retrbinary("RETR " + name, b.write, rest=rest)
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
    for passive, epsv in [(True, True), (True, False), (False, False)]:
        f = connect()
        f.set_pasv(passive)
        # ftplib uses EPSV only on IPv6; force it to test both.
        if passive and epsv:
            f.makepasv = lambda: (HOST, ftplib.parse229(f.sendcmd("EPSV"), (HOST, PORT))[1])
        tag = f"{'pasv' if passive else 'port'}{'-epsv' if epsv else ''}"
        assert f.pwd() == "/"
        # Downloads: binary exact, and resumed from an offset.
        assert retr(f, "big.bin") == big, tag
        assert retr(f, "big.bin", rest=1_000_000) == big[1_000_000:], tag
        assert f.size("big.bin") == len(big)
        assert f.sendcmd("MDTM big.bin").startswith("213 20")
        # Listings.
        assert sorted(f.nlst()) == ["big.bin", "hello.txt", "leak", "sub", "unix.txt"] or \
            sorted(f.nlst()) == ["big.bin", "hello.txt", "sub", "unix.txt"], f.nlst()
        lines = []
        f.retrlines("LIST", lines.append)
        assert any(l.startswith("d") and l.endswith(" sub") for l in lines), lines
        assert any(l.endswith(" big.bin") and str(len(big)) in l for l in lines), lines
        facts = dict(f.mlsd())
        assert facts["big.bin"]["size"] == str(len(big)) and facts["big.bin"]["type"] == "file"
        assert facts["sub"]["type"] == "dir"
        assert "size=12;" in f.sendcmd("MLST hello.txt")
        # ASCII: LF on disk, CRLF on the wire; retrlines strips it.
        got = []
        f.retrlines("RETR unix.txt", got.append)
        assert got == ["one", "two", "three"], got
        raw = io.BytesIO()
        f.voidcmd("TYPE A")
        conn = f.transfercmd("RETR unix.txt")
        while True:
            d = conn.recv(65536)
            if not d:
                break
            raw.write(d)
        conn.close()
        f.voidresp()
        assert raw.getvalue() == b"one\r\ntwo\r\nthree\r\n", raw.getvalue()
        # Uploads: binary, ASCII (CRLF → LF on disk), resumed, appended.
        name = f"up-{tag}.bin"
        data = os.urandom(2_500_000)
        f.storbinary("STOR " + name, io.BytesIO(data))
        assert open(os.path.join(ROOT, name), "rb").read() == data
        f.storlines("STOR " + name + ".txt", io.BytesIO(b"a\r\nb\r\nc\r\n"))
        assert open(os.path.join(ROOT, name + ".txt"), "rb").read() == b"a\nb\nc\n"
        part = f"part-{tag}.bin"
        f.storbinary("STOR " + part, io.BytesIO(data[:700_000]))
        f.storbinary("STOR " + part, io.BytesIO(data[700_000:]), rest=700_000)
        assert open(os.path.join(ROOT, part), "rb").read() == data
        f.storbinary("APPE " + part, io.BytesIO(b"tail"))
        assert open(os.path.join(ROOT, part), "rb").read() == data + b"tail"
        # Directories, rename, delete.
        d = f"dir-{tag}"
        assert f.mkd(d) == "/" + d
        f.cwd(d)
        assert f.pwd() == "/" + d
        f.storbinary("STOR inner.bin", io.BytesIO(b"inner"))
        f.cwd("..")
        f.rename(f"{d}/inner.bin", f"{d}/moved.bin")
        assert open(os.path.join(ROOT, d, "moved.bin"), "rb").read() == b"inner"
        expect_error("550", f.rmd, d)  # not empty
        f.delete(f"{d}/moved.bin")
        f.rmd(d)
        assert not os.path.exists(os.path.join(ROOT, d))
        f.rename(name, name + ".renamed")
        f.delete(name + ".renamed")
        f.delete(name + ".txt")
        f.delete(part)
        expect_error("550", f.delete, "no-such-file")
        expect_error("550", f.cwd, "no-such-dir")
        expect_error("503", f.sendcmd, "RNTO x")
        assert f.sendcmd("STAT").startswith("211")
        assert "hello.txt" in f.sendcmd("STAT /")
        assert f.sendcmd("NOOP").startswith("200")
        assert f.sendcmd("SYST").startswith("215")
        assert f.sendcmd("OPTS UTF8 ON").startswith("200")
        assert f.sendcmd("MODE S").startswith("200")
        assert f.sendcmd("STRU F").startswith("200")
        expect_error("504", f.sendcmd, "MODE B")
        f.quit()


def anonymous():
    f = connect("anonymous", "guest@example.com")
    assert retr(f, "hello.txt") == b"hello world\n"
    expect_error("550", f.storbinary, "STOR x.bin", io.BytesIO(b"x"))
    expect_error("550", f.delete, "hello.txt")
    expect_error("550", f.mkd, "newdir")
    expect_error("550", f.sendcmd, "RNFR hello.txt")
    assert not os.path.exists(os.path.join(ROOT, "x.bin"))
    f.quit()


def hostile():
    # A second, well-behaved session runs throughout and must never fail.
    stop = threading.Event()
    errors = []
    rounds = [0]

    def steady():
        try:
            g = connect()
            while not stop.is_set():
                assert retr(g, "hello.txt") == b"hello world\n"
                rounds[0] += 1
            g.quit()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    t = threading.Thread(target=steady)
    t.start()
    try:
        hostile_steps()
    finally:
        stop.set()
        t.join()
    assert not errors, errors
    assert rounds[0] > 0


def hostile_steps():
    f = connect()
    # Path escapes: lexical .. stays in the root; a symlink out is refused.
    expect_error("550", retr, f, "../../../../etc/passwd")
    expect_error("550", retr, f, "/../secret")
    expect_error("550", retr, f, "leak")
    f.cwd("/../../..")  # .. above the root is the root
    assert f.pwd() == "/"
    f.cwd("sub/../../../sub")
    assert f.pwd() == "/sub"
    f.cwd("/")
    expect_error("550", f.size, "sub/../../secret")
    # The FTP bounce: PORT/EPRT to another host or a privileged port.
    expect_error("500", f.sendcmd, "PORT 10,1,2,3,4,1")
    expect_error("500", f.sendcmd, "EPRT |1|10.1.2.3|1025|")
    expect_error("500", f.sendcmd, "PORT 127,0,0,1,0,25")
    expect_error("501", f.sendcmd, "PORT 1,2,3")
    # A data connection from a foreign address (127.0.0.2) is refused;
    # the client's own connection still works afterwards.
    resp = f.sendcmd("PASV")
    host, port = ftplib.parse227(resp)
    intruder = socket.socket()
    intruder.bind(("127.0.0.2", 0))
    intruder.settimeout(5)
    try:
        # The reset may already be there when connect() looks (a timed
        # connect is a non-blocking one plus SO_ERROR).
        intruder.connect((host, port))
        got = intruder.recv(10)
    except ConnectionResetError:
        got = b""
    assert got == b"", got
    intruder.close()
    time.sleep(0.1)
    conn = socket.create_connection((host, port), timeout=10)
    f.sendcmd("TYPE I")
    f.putcmd("RETR hello.txt")
    assert f.getresp().startswith(("125", "150"))
    body = b""
    while True:
        d = conn.recv(4096)
        if not d:
            break
        body += d
    conn.close()
    assert f.getresp().startswith("226")
    assert body == b"hello world\n", body
    # A 10,000-character command: 500, and the session carries on.
    expect_error("500", f.sendcmd, "NOOP " + "x" * 10_000)
    assert f.sendcmd("NOOP").startswith("200")
    # ABOR mid-transfer: 426 then 226, and the session carries on.
    conn = f.transfercmd("RETR big.bin")
    conn.recv(1000)
    f.sock.sendall(b"ABOR\r\n")
    # Either the transfer was cut (426, then 226 for the ABOR) or, if the
    # kernel buffers took the whole file first, it completed (226) and
    # the ABOR found nothing to abort (225).
    lines = []
    while True:
        line = f.getline()
        lines.append(line)
        if line.startswith("225") or (line.startswith("226") and "ABOR" in line):
            break
    conn.close()
    assert lines[0].startswith(("426", "226")), lines
    assert retr(f, "hello.txt") == b"hello world\n"
    f.quit()
    # Failed logins: each 530 comes after a growing delay; the third failure
    # closes the connection with 421.
    h = connect(user=None)
    t0 = time.monotonic()
    expect_error("530", h.login, "alice", "wrong")
    assert time.monotonic() - t0 >= 0.9
    expect_error("530", h.login, "alice", "wrong")
    assert time.monotonic() - t0 >= 2.8
    expect_error("421", h.login, "alice", "wrong")
    h.close()


def login():
    # argv: login PORT ROOT USER PASSWORD; a wrong password must fail.
    user, password = sys.argv[4], sys.argv[5]
    f = connect(user, password)
    assert retr(f, "hello.txt") == b"hello world\n"
    f.quit()
    g = connect(user=None)
    expect_error("530", g.login, user, password + "x")
    g.close()


{"session": session, "anonymous": anonymous, "hostile": hostile, "login": login}[MODE]()
print("ok")
