"""Twisted's SMTP server for benches/mail_load.sh: `twisted.mail.smtp`'s
ESMTP protocol and factory, storing each message in a Maildir with
Python's `mailbox.Maildir` (what aiosmtpd's Mailbox handler does, so the
two Python peers store alike; neither fsyncs).

Why not `twist mail -d localhost=DIR -u load=pw`: with Twisted 26.10 on
Python 3 that plugin is broken three ways: `--user` hands DirDBM a `str`
key ("DirDBM key must be bytes"), `--maildirdbmdomain` registers the
domain under a `str` name so every RCPT (a `bytes` domain) gets 550, and
`MaildirDirdbmDomain.startMessage` joins its `bytes` root with `"tmp"`
("Can't mix strings and bytes in path components", 550 after DATA). The
protocol code below it is the same.

    python twisted_mail.py PORT DIR
"""

import mailbox
import sys

from zope.interface import implementer

from twisted.internet import defer, endpoints, reactor
from twisted.mail import smtp


@implementer(smtp.IMessage)
class Message:
    def __init__(self, box):
        self.box = box
        self.lines = []

    def lineReceived(self, line):
        self.lines.append(line)

    def eomReceived(self):
        self.lines.append(b"")
        self.box.add(b"\n".join(self.lines))
        return defer.succeed(None)

    def connectionLost(self):
        self.lines = []


@implementer(smtp.IMessageDelivery)
class Delivery:
    def __init__(self, box):
        self.box = box

    def receivedHeader(self, helo, origin, recipients):
        return b"Received: from " + helo[0] + b" by localhost (Twisted)"

    def validateFrom(self, helo, origin):
        return origin

    def validateTo(self, user):
        if user.dest.local == b"load" and user.dest.domain == b"localhost":
            return lambda: Message(self.box)
        raise smtp.SMTPBadRcpt(user)


class Factory(smtp.SMTPFactory):
    protocol = smtp.ESMTP

    def __init__(self, delivery):
        super().__init__()
        self.domain = b"localhost"
        self.delivery = delivery

    def buildProtocol(self, addr):
        p = super().buildProtocol(addr)
        p.delivery = self.delivery
        return p


def main():
    port, root = int(sys.argv[1]), sys.argv[2]
    factory = Factory(Delivery(mailbox.Maildir(root, create=True)))
    endpoints.TCP4ServerEndpoint(reactor, port, interface="127.0.0.1").listen(factory)
    reactor.run()


if __name__ == "__main__":
    main()
