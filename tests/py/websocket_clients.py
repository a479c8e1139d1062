"""Python's `websockets` (PyPI) as client of `twill web --websocket-echo`.

Usage: websocket_clients.py PORT PATH. Exits non-zero on the first failure.
"""
import socket
import sys

from websockets.sync.client import connect
from websockets.exceptions import ConnectionClosed

port, path = int(sys.argv[1]), sys.argv[2]
url = f"ws://127.0.0.1:{port}{path}"


def check(cond, what):
    if not cond:
        raise SystemExit(f"FAIL: {what}")


# Compressed (websockets offers permessage-deflate by default).
with connect(url, max_size=None, open_timeout=10, close_timeout=10) as ws:
    ext = ws.response.headers.get("Sec-WebSocket-Extensions", "")
    check("permessage-deflate" in ext, f"deflate negotiated, got {ext!r}")
    for msg in ["hello", "κόσμε 𝄞", "", "x" * 70000]:
        ws.send(msg)
        check(ws.recv(timeout=10) == msg, f"text echo of {len(msg)} chars")
    blob = bytes(range(256)) * 4096  # 1 MiB
    ws.send(blob)
    check(ws.recv(timeout=10) == blob, "1 MiB binary echo")
    # A fragmented message (an iterable is sent as fragments).
    ws.send(["frag", "ment", "ed"])
    check(ws.recv(timeout=10) == "fragmented", "fragmented echo")
    pong = ws.ping(b"are you there")
    check(pong.wait(10), "pong to our ping")
    ws.close(code=1000, reason="bye")
    check(ws.close_code == 1000, f"close code {ws.close_code}")

# Uncompressed, many small messages.
with connect(url, compression=None, open_timeout=10) as ws:
    check("Sec-WebSocket-Extensions" not in ws.response.headers, "no extension")
    for i in range(500):
        ws.send(f"m{i}")
    for i in range(500):
        check(ws.recv(timeout=10) == f"m{i}", f"message {i} in order")

# The server closes with 1009 on a message over its limit? Not at its
# defaults (64 MiB); instead check it fails the connection on a protocol
# error: an unmasked frame over a raw socket after a real handshake.
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(
    f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
)
head = b""
while b"\r\n\r\n" not in head:
    head += s.recv(4096)
check(head.startswith(b"HTTP/1.1 101"), f"101, got {head[:40]!r}")
check(b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head, "RFC 6455 accept value")
s.sendall(b"\x81\x05Hello")  # unmasked: a protocol error
rest = head.split(b"\r\n\r\n", 1)[1]
while len(rest) < 4:
    chunk = s.recv(4096)
    if not chunk:
        break
    rest += chunk
check(rest[:1] == b"\x88" and rest[2:4] == b"\x03\xea", f"close 1002, got {rest[:8]!r}")
s.close()

# A wrong version is answered 426 with Sec-WebSocket-Version: 13.
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(
    f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n".encode()
)
resp = s.recv(4096)
check(resp.startswith(b"HTTP/1.1 426"), f"426, got {resp[:40]!r}")
check(b"Sec-WebSocket-Version: 13" in resp, "version header in the 426")
s.close()
print("ok")
