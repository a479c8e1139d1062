"""A STARTTLS client written with Python's socket and ssl modules, for the
StartTlsEcho line protocol (twill_tls::demo): a line in the clear, then
STARTTLS, the handshake on the same socket (verified against CAFILE for
"localhost"), a line inside TLS.

Usage: starttls_client.py PORT CAFILE upgrade|inject
- upgrade: prints the two replies, "PLAIN ..." then "SECURE ...".
- inject: sends "STARTTLS\\n" and a pipelined command in ONE write before
  the go-ahead, then tries the handshake; prints what it read in the clear
  and "handshake=failed: ..." or "handshake=ok".
"""
import socket
import ssl
import sys


def read_line(s):
    got = b""
    while not got.endswith(b"\n"):
        chunk = s.recv(1)
        if not chunk:
            break
        got += chunk
    return got.decode(errors="replace")


def main():
    port, cafile, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    ctx = ssl.create_default_context(cafile=cafile)
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    if mode == "upgrade":
        raw.sendall(b"hello in the clear\n")
        print(read_line(raw).strip())
        raw.sendall(b"STARTTLS\n")
        ok = read_line(raw)
        assert ok == "OK\n", repr(ok)
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"hello inside\n")
            print(read_line(s).strip())
            print("version=" + s.version())
            s.unwrap()
    elif mode == "inject":
        raw.sendall(b"STARTTLS\nRCPT TO:<victim@example>\n")
        clear = b""
        try:
            clear = raw.recv(3)  # the "OK\n", if the server sent it first
        except OSError:
            pass
        print("clear=" + repr(clear))
        try:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(b"after\n")
                print("handshake=ok " + read_line(s).strip())
        except (ssl.SSLError, OSError) as e:
            print("handshake=failed: " + type(e).__name__)
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()
