"""Python's http.client and urllib against the hello/echo demo handler.

Usage: http_clients.py PORT
"""
import http.client
import sys
import urllib.request

port = int(sys.argv[1])


def check(cond, what):
    if not cond:
        raise SystemExit(f"FAILED: {what}")


# Keep-alive: several requests over one connection.
c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
c.request("GET", "/")
r = c.getresponse()
check(r.status == 200 and r.read() == b"hello, world\n", "GET /")
check(r.getheader("Date"), "Date header")
first = c.sock.getsockname()

c.request("HEAD", "/")
r = c.getresponse()
check(r.status == 200 and r.read() == b"", "HEAD")
check(r.getheader("Content-Length") == "13", "HEAD length")

c.request("GET", "/nope")
r = c.getresponse()
check(r.status == 404 and r.read() == b"not found\n", "404")

# A Content-Length upload echoed.
data = bytes(range(256)) * 1000
c.request("POST", "/echo", body=data)
r = c.getresponse()
check(r.status == 200 and r.read() == data, "echo with Content-Length")


# A chunked upload (http.client encodes an iterable body in chunks).
def pieces():
    for i in range(100):
        yield (b"%05d," % i) * 100


c.request("POST", "/echo", body=pieces(), encode_chunked=True,
          headers={"Transfer-Encoding": "chunked"})
r = c.getresponse()
got = r.read()
check(r.status == 200 and got == b"".join(pieces()), f"chunked echo: {len(got)}")
check(r.getheader("Transfer-Encoding") == "chunked", "chunked answer")
check(c.sock.getsockname() == first, "one connection for all requests")
c.close()

# HTTP/1.0 (urllib speaks 1.1; http.client can be told to speak 1.0).
class C10(http.client.HTTPConnection):
    _http_vsn = 10
    _http_vsn_str = "HTTP/1.0"


c = C10("127.0.0.1", port, timeout=10)
c.request("GET", "/")
r = c.getresponse()
check(r.version == 11 and r.read() == b"hello, world\n", "HTTP/1.0 request")
check(r.getheader("Connection") == "close", "1.0 closes")
c.close()

with urllib.request.urlopen(f"http://127.0.0.1:{port}/hello", timeout=10) as r:
    check(r.read() == b"hello, world\n", "urllib")

print("ok")
