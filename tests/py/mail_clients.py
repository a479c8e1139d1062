"""smtplib and poplib against `twill mail`: send to two users, retrieve,
delete, and check that every message's bytes survive exactly.

usage: mail_clients.py SMTP_PORT POP3_PORT MODE
MODE roundtrip: the full round trip (prints one line per check).
MODE errors: bad input from smtplib's low-level API gets the RFC's codes.
"""
import poplib
import smtplib
import sys

HOST = "127.0.0.1"
smtp_port, pop3_port, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]


def messages():
    # 8-bit text, a line of 998 octets (the limit), lines starting with a
    # dot (stuffed by smtplib, unstuffed by the server, stuffed again by
    # POP3, unstuffed by poplib), an empty line, a lone dot line.
    long_line = b"L" * 998
    a = (
        b"From: sender@example.org\r\nTo: alice@localhost\r\nSubject: one\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        + "caf\u00e9 na\u00efve \u00fcber \u2603\r\n".encode("utf-8")
        + long_line + b"\r\n"
        + b".leading dot\r\n..two dots\r\n.\r\n\r\n\x80\xff raw high bytes\r\nend\r\n"
    )
    b = (
        b"From: sender@example.org\r\nTo: alice@localhost, bob@localhost\r\nSubject: two\r\n\r\n"
        b"to both of you\r\n.\r\n"
    )
    return a, b


def pop_all(user, password):
    p = poplib.POP3(HOST, pop3_port, timeout=10)
    p.user(user)
    p.pass_(password)
    count, size = p.stat()
    got = []
    uidl = p.uidl()[1]
    assert len(uidl) == count, uidl
    for i in range(1, count + 1):
        resp, lines, octets = p.retr(i)
        assert resp.startswith(b"+OK"), resp
        got.append(b"\r\n".join(lines) + b"\r\n")
        top = p.top(i, 0)[1]
        assert b"" in top, top  # the header ends with an empty line
        assert top[-1] == b"", top
    listed = sum(int(x.split()[1]) for x in p.list()[1])
    assert listed == size, (listed, size)
    for i in range(1, count + 1):
        p.dele(i)
    p.quit()
    return got


def check_stored(stored, sent):
    # The server puts Return-Path and Received lines in front; everything
    # the client sent follows byte for byte.
    assert stored.startswith(b"Return-Path: <sender@example.org>\r\nReceived: from "), stored[:80]
    assert stored.endswith(sent), (stored[-200:], sent[-200:])
    return True


def roundtrip():
    a, b = messages()
    with smtplib.SMTP(HOST, smtp_port, timeout=10) as s:
        code, _ = s.ehlo("client.example.org")
        assert code == 250
        for ext in ("pipelining", "8bitmime", "size", "smtputf8", "chunking", "enhancedstatuscodes"):
            assert s.has_extn(ext), ext
        refused = s.sendmail("sender@example.org", ["alice@localhost"], a, mail_options=["BODY=8BITMIME"])
        assert refused == {}, refused
        refused = s.sendmail("sender@example.org", ["alice@localhost", "BOB@localhost"], b)
        assert refused == {}, refused
        # One unknown user among two: per-recipient results.
        refused = s.sendmail("sender@example.org", ["bob@localhost", "nobody@localhost"], b)
        assert list(refused) == ["nobody@localhost"] and refused["nobody@localhost"][0] == 550, refused
        # No open relay.
        try:
            s.sendmail("sender@example.org", ["x@elsewhere.example"], b)
            raise AssertionError("relayed")
        except smtplib.SMTPRecipientsRefused as e:
            assert e.recipients["x@elsewhere.example"][0] == 550
    print("sent")

    alice = pop_all("alice", "alice-pw")
    assert len(alice) == 2, len(alice)
    check_stored(alice[0], a)
    check_stored(alice[1], b)
    print("alice ok")
    bob = pop_all("bob", "bob-pw")
    assert len(bob) == 2, len(bob)
    check_stored(bob[0], b)
    check_stored(bob[1], b)
    print("bob ok")
    # Deleted in UPDATE: nothing left.
    assert pop_all("alice", "alice-pw") == []
    print("deleted ok")
    try:
        pop_all("alice", "wrong")
        raise AssertionError("logged in with a wrong password")
    except poplib.error_proto as e:
        assert b"[AUTH]" in e.args[0], e
    print("bad password ok")


def errors():
    # Another client, connected all along, must be served afterwards.
    other = smtplib.SMTP(HOST, smtp_port, timeout=10)
    other.ehlo("other")
    s = smtplib.SMTP(HOST, smtp_port, timeout=10)
    s.ehlo("c")
    # An over-long command line.
    s.putcmd("NOOP " + "x" * 5000)
    assert s.getreply()[0] == 500
    # A body over SIZE, announced: refused before any data.
    assert s.mail("sender@example.org", ["SIZE=999999999"])[0] == 552
    # 1000 recipients: 100 accepted, the rest 452.
    assert s.mail("sender@example.org")[0] == 250
    codes = [s.rcpt("alice@localhost")[0] for _ in range(1000)]
    assert codes.count(250) == 100 and codes.count(452) == 900, (codes.count(250), codes.count(452))
    # A bare LF in DATA: the message is refused.
    s.putcmd("DATA")
    assert s.getreply()[0] == 354
    s.send(b"Subject: x\r\n\r\nbare\nLF\r\n.\r\n")
    assert s.getreply()[0] == 550
    # The session goes on.
    assert s.noop()[0] == 250
    # Commands pipelined after DATA (RFC 2920 §3.1: DATA ends a group)
    # are message content, not commands: the QUIT below is a body line.
    assert s.mail("sender@example.org")[0] == 250
    assert s.rcpt("bob@localhost")[0] == 250
    s.send(b"DATA\r\nQUIT\r\n")
    assert s.getreply()[0] == 354
    s.send(b".\r\n")
    assert s.getreply()[0] == 250
    assert s.noop()[0] == 250
    s.quit()
    assert other.noop()[0] == 250
    assert other.sendmail("a@example.org", ["alice@localhost"], b"Subject: ok\r\n\r\nok\r\n") == {}
    other.quit()
    print("errors ok")


def tls():
    import ssl
    ctx = ssl.create_default_context(cafile=sys.argv[4])
    s = smtplib.SMTP(HOST, smtp_port, timeout=10)
    s.ehlo("c")
    assert s.has_extn("starttls") and not s.has_extn("auth")
    # AUTH before STARTTLS where TLS is required: 538 (RFC 4954 §4).
    assert s.docmd("AUTH", "PLAIN AGFsaWNlAGFsaWNlLXB3")[0] == 538
    s.starttls(context=ctx)
    s.ehlo("c")
    assert s.has_extn("auth") and not s.has_extn("starttls")
    try:
        s.login("alice", "wrong")
        raise AssertionError("wrong password accepted")
    except smtplib.SMTPAuthenticationError as e:
        assert e.smtp_code == 535
    s.login("alice", "alice-pw")
    # Authenticated: mail for another domain is accepted (queued, no relay).
    assert s.sendmail("alice@localhost", ["bob@localhost", "x@elsewhere.example"], b"Subject: s\r\n\r\nsecret\r\n") == {}
    s.quit()
    p = poplib.POP3(HOST, pop3_port, timeout=10)
    assert "STLS" in p.capa(), p.capa()
    try:
        p.user("bob")
        raise AssertionError("USER accepted in the clear")
    except poplib.error_proto:
        pass
    p.stls(context=ctx)
    p.user("bob")
    p.pass_("bob-pw")
    lines = p.retr(1)[1]
    assert lines[-1] == b"secret", lines
    p.quit()
    print("tls ok")


{"roundtrip": roundtrip, "errors": errors, "tls": tls}[mode]()
