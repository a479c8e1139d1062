"""A `websockets` (PyPI) server for `twill ws` and the client machine.

Usage: websocket_server.py [CERT KEY]. Prints its port, then serves one client:
greets with "path: …" and "ext: …" (the negotiated extensions), answers
"big" with 200000 × "b" and anything else with "echo: " + it, and prints
"closed CODE" when the client has gone. Stops by itself after 60 s.
"""
import ssl
import sys
import threading

from websockets.sync.server import serve

ctx = None
if len(sys.argv) == 3:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[1], sys.argv[2])


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


with serve(handler, "127.0.0.1", 0, ssl=ctx, max_size=None) as server:
    print(server.socket.getsockname()[1], flush=True)
    timer = threading.Timer(60, server.shutdown)
    timer.daemon = True  # never keeps the process alive after a session
    timer.start()
    server.serve_forever()
