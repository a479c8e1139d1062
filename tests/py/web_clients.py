"""Python's http.client and urllib against `twill web`.

Usage: web_clients.py PORT ROOT
ROOT holds hello.txt ("hello world\n"), big.bin, sub/ (no index),
site/index.html; ROOT/leak is a symlink to a file outside ROOT whose
content is "TOP SECRET".
"""
import hashlib
import http.client
import os
import socket
import sys
import urllib.error
import urllib.request

port = int(sys.argv[1])
root = sys.argv[2]
base = f"http://127.0.0.1:{port}"
hello = open(os.path.join(root, "hello.txt"), "rb").read()


def check(cond, what):
    if not cond:
        raise SystemExit(f"FAILED: {what}")


# Keep-alive: several requests (GET, HEAD, 404, 405, 304, 206) over one
# connection.
c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
c.request("GET", "/hello.txt")
r = c.getresponse()
body = r.read()
check(r.status == 200 and body == hello, f"GET hello: {r.status} {body!r}")
check(r.getheader("Content-Type") == "text/plain; charset=utf-8", "content type")
etag = r.getheader("ETag")
last_modified = r.getheader("Last-Modified")
check(etag and last_modified, "validators")
first = c.sock.getsockname()

c.request("HEAD", "/hello.txt")
r = c.getresponse()
check(r.status == 200 and r.read() == b"", "HEAD")
check(r.getheader("Content-Length") == str(len(hello)), "HEAD length")

c.request("GET", "/nope.txt")
r = c.getresponse()
r.read()
check(r.status == 404, f"404: {r.status}")

c.request("POST", "/hello.txt", body=b"x=1")
r = c.getresponse()
r.read()
check(r.status == 405 and r.getheader("Allow") == "GET, HEAD", f"405: {r.status}")

c.request("GET", "/hello.txt", headers={"If-None-Match": etag})
r = c.getresponse()
check(r.status == 304 and r.read() == b"", f"If-None-Match: {r.status}")
c.request("GET", "/hello.txt", headers={"If-Modified-Since": last_modified})
r = c.getresponse()
check(r.status == 304 and r.read() == b"", f"If-Modified-Since: {r.status}")
c.request(
    "GET", "/hello.txt", headers={"If-Modified-Since": "Thu, 01 Jan 1970 00:00:00 GMT"}
)
r = c.getresponse()
check(r.status == 200 and r.read() == hello, "old If-Modified-Since")

c.request("GET", "/hello.txt", headers={"Range": "bytes=6-10"})
r = c.getresponse()
check(r.status == 206 and r.read() == b"world", "Range 206")
check(r.getheader("Content-Range") == f"bytes 6-10/{len(hello)}", "Content-Range")
c.request("GET", "/hello.txt", headers={"Range": "bytes=1000-"})
r = c.getresponse()
r.read()
check(r.status == 416, f"416: {r.status}")
check(r.getheader("Content-Range") == f"bytes */{len(hello)}", "416 Content-Range")

c.request("GET", "/sub")
r = c.getresponse()
r.read()
check(r.status == 301 and r.getheader("Location") == "/sub/", "dir redirect")
check(c.sock.getsockname() == first, "the connection was not reused")
c.close()

# Traversal attempts, sent raw (http.client sends the target as given).
for target in [
    "/../leak-target",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/sub/..%2f..%2fetc%2fpasswd",
    "/hello.txt%00.html",
    "/leak",
    "/../../../../../../etc/passwd",
]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", target)
    r = c.getresponse()
    body = r.read()
    check(r.status in (400, 403, 404), f"{target}: {r.status}")
    check(b"TOP SECRET" not in body and b"root:" not in body, f"{target} leaked")
    c.close()

# urllib: a directory redirect is followed to its listing; index.html;
# a multi-MB file arrives byte-exact.
with urllib.request.urlopen(base + "/sub", timeout=10) as r:
    page = r.read().decode()
    check(r.status == 200 and "Index of /sub/" in page, "listing via redirect")
with urllib.request.urlopen(base + "/site/", timeout=10) as r:
    check(r.read() == open(os.path.join(root, "site/index.html"), "rb").read(), "index")
with urllib.request.urlopen(base + "/big.bin", timeout=30) as r:
    got = hashlib.sha256(r.read()).hexdigest()
want = hashlib.sha256(open(os.path.join(root, "big.bin"), "rb").read()).hexdigest()
check(got == want, "big.bin differs")
try:
    urllib.request.urlopen(base + "/missing", timeout=10)
    check(False, "no 404")
except urllib.error.HTTPError as e:
    check(e.code == 404, f"urllib 404: {e.code}")
print("ok")
