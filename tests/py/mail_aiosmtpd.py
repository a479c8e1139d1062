"""`twill sendmail` (the twill-smtp client machine) against aiosmtpd.

usage: mail_aiosmtpd.py TWILL_BIN CERT KEY
Starts aiosmtpd on an ephemeral loopback port (STARTTLS with CERT/KEY,
AUTH PLAIN/LOGIN for alice:secret, `nobody@` refused), runs twill sendmail
against it in several ways and checks what aiosmtpd received. Prints one
line per check.
"""
import asyncio
import os
import ssl
import subprocess
import sys
import tempfile

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

twill, cert, key = sys.argv[1], sys.argv[2], sys.argv[3]
received = []


class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        received.append(
            {
                "from": envelope.mail_from,
                "to": list(envelope.rcpt_tos),
                "content": envelope.content,
                "tls": session.ssl is not None,
                "auth": session.authenticated,
                "options": list(envelope.mail_options),
            }
        )
        return "250 2.0.0 stored"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"alice" and auth_data.password == b"secret"
    return AuthResult(success=ok, handled=False)


async def main():
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(
            Handler(),
            hostname="peer.example",
            tls_context=ctx,
            authenticator=authenticator,
            auth_require_tls=True,
            enable_SMTPUTF8=True,
        ),
        "127.0.0.1",
        0,
    )
    port = server.sockets[0].getsockname()[1]

    async def sendmail(args, message, env=None):
        p = await asyncio.create_subprocess_exec(
            twill, "sendmail", "--server", f"tcp:127.0.0.1:{port}", "--ca", cert, *args,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=dict(os.environ, **(env or {})),
        )
        out, err = await asyncio.wait_for(p.communicate(message), 30)
        return p.returncode, err.decode(errors="replace")

    # 1. Plain (STARTTLS offered, so used), LF endings converted, dots
    # stuffed, 8-bit carried, one recipient refused: exit 1, per-recipient
    # lines.
    body = "Subject: one\n\n.dot line\n..two dots\n.\ncaf\u00e9\n".encode()
    code, err = await sendmail(["--from", "a@x.org", "--to", "b@y.org", "--to", "nobody@y.org"], body)
    assert code == 1, (code, err)
    assert "sent to b@y.org: 250" in err and "NOT sent to nobody@y.org: 550" in err, err
    r = received.pop()
    assert r["to"] == ["b@y.org"] and r["from"] == "a@x.org", r
    assert r["content"] == body.replace(b"\n", b"\r\n"), r["content"]
    assert r["tls"], "STARTTLS was offered and not used"
    assert "BODY=8BITMIME" in r["options"], r["options"]
    print("plain ok")

    # 2. AUTH over STARTTLS, password from the environment.
    code, err = await sendmail(
        ["--from", "alice@x.org", "--to", "c@y.org", "--auth", "alice"],
        b"Subject: two\r\n\r\nhi\r\n",
        {"TWILL_PASSWORD": "secret"},
    )
    assert code == 0, (code, err)
    r = received.pop()
    assert r["auth"] and r["tls"] and r["to"] == ["c@y.org"], r
    print("auth ok")

    # 3. A wrong password fails the session: exit 1, nothing received.
    with tempfile.NamedTemporaryFile("w", delete=False) as f:
        f.write("wrong\n")
    code, err = await sendmail(
        ["--from", "alice@x.org", "--to", "c@y.org", "--auth", "alice", "--password-file", f.name],
        b"x\r\n",
    )
    os.unlink(f.name)
    assert code == 1 and "Auth" in err, (code, err)
    assert received == []
    print("bad auth ok")

    # 4. Without STARTTLS the message still goes (in the clear).
    code, err = await sendmail(["--from", "a@x.org", "--to", "d@y.org", "--starttls", "never"], b"plain\r\n")
    assert code == 0, (code, err)
    assert not received.pop()["tls"]
    print("no tls ok")
    server.close()


asyncio.run(main())
