"""A `websockets` (PyPI) server for `twill ws` and the client machine.

Usage: websocket_server.py [CERT KEY] | --echo. Prints its port, then
serves one client:
greets with "path: …" and "ext: …" (the negotiated extensions), answers
"big" with 200000 × "b" and anything else with "echo: " + it, and prints
"closed CODE" when the client has gone. Stops by itself after 60 s.

With --echo it is the reference server of the Autobahn-like suite in
tests/websocket.rs instead: it echoes every message to any number of
clients (16 MiB message limit) until killed or 120 s have passed.
"""
import ssl
import sys
import threading

from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.sync.server import serve

ctx = None
echo = sys.argv[1:] == ["--echo"]
if len(sys.argv) == 3:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[1], sys.argv[2])


def echo_handler(ws):
    for msg in ws:
        ws.send(msg)


def handler(ws):
    try:
        ws.send("path: " + ws.request.path)
        ws.send("ext: " + (ws.response.headers.get("Sec-WebSocket-Extensions") or "none"))
        for msg in ws:
            if msg == "big":
                ws.send("b" * 200000)
            else:
                ws.send("echo: " + (msg if isinstance(msg, str) else msg.hex()))
    finally:
        print(f"closed {ws.close_code}", flush=True)
        threading.Thread(target=server.shutdown).start()


if echo:
    server = serve(echo_handler, "127.0.0.1", 0, max_size=16 << 20)
else:
    # Full 32 KiB windows both ways (websockets' default limits the
    # client to 4 KiB, under which twill sends uncompressed), so the
    # client's compressor is exercised too.
    server = serve(
        handler,
        "127.0.0.1",
        0,
        ssl=ctx,
        max_size=None,
        compression=None,
        extensions=[ServerPerMessageDeflateFactory()],
    )
with server:
    print(server.socket.getsockname()[1], flush=True)
    timer = threading.Timer(120 if echo else 60, server.shutdown)
    timer.daemon = True  # never keeps the process alive after a session
    timer.start()
    server.serve_forever()
