"""A pyftpdlib server for tests/ftp.rs: serves ROOT to alice/secret (full
rights) and anonymous (read-only) on 127.0.0.1, an ephemeral port printed
on stdout; stops when stdin closes. With "no-epsv" it does not know EPSV
(so a client must fall back to PASV). With "tls CERT KEY" it is
pyftpdlib's TLS_FTPHandler (RFC 4217, pyopenssl) requiring AUTH TLS on the
control connection and PROT P on data connections.

usage: ftp_pyftpdlib.py ROOT [no-epsv | tls CERT KEY]
"""

import sys
import threading

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer

root = sys.argv[1]
auth = DummyAuthorizer()
auth.add_user("alice", "secret", root, perm="elradfmwMT")
auth.add_anonymous(root)


class Handler(FTPHandler):
    authorizer = auth
    proto_cmds = dict(FTPHandler.proto_cmds)


if len(sys.argv) > 2 and sys.argv[2] == "no-epsv":
    del Handler.proto_cmds["EPSV"]
    del Handler.proto_cmds["EPRT"]

if len(sys.argv) > 4 and sys.argv[2] == "tls":
    from pyftpdlib.handlers import TLS_FTPHandler

    class Handler(TLS_FTPHandler):
        authorizer = auth
        certfile = sys.argv[3]
        keyfile = sys.argv[4]
        tls_control_required = True
        tls_data_required = True

server = FTPServer(("127.0.0.1", 0), Handler)
print(server.address[1], flush=True)


def watch_stdin():
    sys.stdin.read()
    server.close_all()


threading.Thread(target=watch_stdin, daemon=True).start()
server.serve_forever(timeout=0.2, blocking=True, handle_exit=False)
