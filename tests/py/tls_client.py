"""A TLS client written with Python's ssl module: verifies the server
against a CA file for a given SNI name, offers ALPN protocols, sends a line
and reads it back, then closes with close_notify.

Usage: tls_client.py HOST PORT CAFILE SERVER_NAME [ALPN,ALPN...]
Prints key=value lines: the peer certificate (DER, hex), the negotiated
ALPN protocol, the TLS version and the echoed line.
"""
import socket
import ssl
import sys


def main():
    host, port, cafile, name = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    alpn = sys.argv[5].split(",") if len(sys.argv) > 5 and sys.argv[5] else []
    ctx = ssl.create_default_context(cafile=cafile)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    with socket.create_connection((host, port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=name) as s:
            der = s.getpeercert(binary_form=True)
            s.sendall(b"ping over tls\n")
            got = b""
            while not got.endswith(b"\n"):
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
            out = [
                ("cert", der.hex()),
                ("alpn", s.selected_alpn_protocol() or ""),
                ("version", s.version()),
                ("echo", got.decode().strip()),
            ]
            s.unwrap()
    for k, v in out:
        print(f"{k}={v}")


if __name__ == "__main__":
    main()
