"""permessage-deflate with small LZ77 windows and no context takeover,
with Python's `websockets` (PyPI) as the peer.

Usage:
  websocket_windows.py client PORT PATH   client of `twill web --websocket-echo`
  websocket_windows.py server             prints its port, then serves
                                          `twill ws` (see below)

Client mode, for each window setting: negotiates it, sends compressible
messages whose repeats lie both inside and outside the window, checks each
echo, and checks that twill's echoes arrived compressed (RSV1) — except
with server_max_window_bits=8, which zlib cannot produce, where they must
arrive uncompressed. Exits non-zero on the first failure, prints "ok".

Server mode: asks the client for server_max_window_bits=9 and
client_max_window_bits=9 with no context takeover both ways, echoes every
message, and after the client has gone prints "compressed N of M" (how
many of the client's messages had RSV1 set) and the negotiated header.
Stops by itself after 60 s.
"""
import sys
import threading

from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import Opcode


def check(cond, what):
    if not cond:
        raise SystemExit(f"FAIL: {what}")


def count_rsv1(ws):
    """Wraps the connection's deflate extension to count compressed frames."""
    ext = ws.protocol.extensions[0]
    counts = {"rsv1": 0, "data": 0}
    decode = ext.decode

    def counting(frame, *args, **kwargs):
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
            counts["data"] += 1
            counts["rsv1"] += int(frame.rsv1)
        return decode(frame, *args, **kwargs)

    ext.decode = counting
    return counts


# Repeats 300 bytes apart (inside every window) and 20 KB apart (outside
# the small ones).
BLOCK = "".join(chr(97 + (i * 7) % 26) for i in range(300))
BIG = "".join(chr(65 + (i * 13) % 26) for i in range(20000))
MESSAGES = [BLOCK * 3, BIG + BLOCK + BIG, "κόσμε " * 500, BLOCK]


def client(port, path):
    from websockets.sync.client import connect

    url = f"ws://127.0.0.1:{port}{path}"
    settings = [
        dict(server_max_window_bits=9, client_max_window_bits=9),
        dict(server_max_window_bits=10, client_max_window_bits=12,
             server_no_context_takeover=True, client_no_context_takeover=True),
        dict(server_max_window_bits=12, client_max_window_bits=9, client_no_context_takeover=True),
        dict(server_max_window_bits=15, client_max_window_bits=True, server_no_context_takeover=True),
        dict(server_max_window_bits=8, client_max_window_bits=9),
    ]
    for s in settings:
        factory = ClientPerMessageDeflateFactory(compress_settings={"memLevel": 5}, **s)
        with connect(url, extensions=[factory], compression=None, max_size=None, open_timeout=10) as ws:
            ext = ws.response.headers.get("Sec-WebSocket-Extensions", "")
            check(ext.startswith("permessage-deflate"), f"{s}: deflate negotiated, got {ext!r}")
            smwb = s["server_max_window_bits"]
            if smwb < 15:
                check(f"server_max_window_bits={smwb}" in ext, f"{s}: {ext!r}")
            cmwb = s["client_max_window_bits"]
            if cmwb is not True:
                check(f"client_max_window_bits={cmwb}" in ext, f"{s}: {ext!r}")
            counts = count_rsv1(ws)
            for _ in range(2):
                for m in MESSAGES:
                    ws.send(m)
                    check(ws.recv(timeout=10) == m, f"{s}: echo of {len(m)} chars")
            n = counts["data"]
            if smwb == 8:
                check(counts["rsv1"] == 0, f"{s}: uncompressed with 8 bits, {counts}")
            else:
                check(counts["rsv1"] == n and n == 2 * len(MESSAGES), f"{s}: compressed echoes, {counts}")
            ws.close()
    print("ok")


def server():
    from websockets.sync.server import serve

    # Counted from the extension's creation: the connection's reader may
    # decode the first frame before the handler runs, so wrapping the
    # extension in the handler (as the client does) would miss it.
    counts = {"rsv1": 0, "data": 0}

    class CountingFactory(ServerPerMessageDeflateFactory):
        def process_request_params(self, params, accepted_extensions):
            response, ext = super().process_request_params(params, accepted_extensions)
            decode = ext.decode

            def counting(frame, *args, **kwargs):
                if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
                    counts["data"] += 1
                    counts["rsv1"] += int(frame.rsv1)
                return decode(frame, *args, **kwargs)

            ext.decode = counting
            return response, ext

    def handler(ws):
        try:
            for msg in ws:
                ws.send(msg)
        finally:
            ext = ws.response.headers.get("Sec-WebSocket-Extensions") or "none"
            print(f"compressed {counts['rsv1']} of {counts['data']}; {ext}", flush=True)
            threading.Thread(target=srv.shutdown).start()

    factory = CountingFactory(
        server_no_context_takeover=True,
        client_no_context_takeover=True,
        server_max_window_bits=9,
        client_max_window_bits=9,
        require_client_max_window_bits=True,
    )
    global srv
    srv = serve(handler, "127.0.0.1", 0, compression=None, extensions=[factory], max_size=None)
    with srv:
        print(srv.socket.getsockname()[1], flush=True)
        timer = threading.Timer(60, srv.shutdown)
        timer.daemon = True
        timer.start()
        srv.serve_forever()


if sys.argv[1] == "client":
    client(int(sys.argv[2]), sys.argv[3])
else:
    server()
