"""Three clients of the PyPI `irc` package (jaraco/irc) against an IRC
server: register, join, talk, change the topic, kick, private messages,
quit; every message is checked on the other side. Exit 0 = all good.

usage: irc_clients.py HOST PORT
"""
import sys
import time

import irc.client

HOST, PORT = sys.argv[1], int(sys.argv[2])
TIMEOUT = 20.0

reactor = irc.client.Reactor()
seen = {}  # nick -> list of events


def record(conn, event):
    seen.setdefault(conn.nick_for_test, []).append(event)


reactor.add_global_handler("all_events", record, -10)


def connect(nick):
    c = reactor.server().connect(HOST, PORT, nick, ircname="Test " + nick)
    c.nick_for_test = nick
    seen[nick] = []
    return c


def wait_for(nick, pred, what):
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        for i, e in enumerate(seen[nick]):
            if pred(e):
                del seen[nick][: i + 1]
                return e
        reactor.process_once(0.05)
    kinds = [(e.type, e.target, e.arguments) for e in seen[nick]]
    raise SystemExit(f"{nick} never saw {what}; saw {kinds}")


def src(e):
    return irc.client.NickMask(e.source).nick if e.source else None


alice = connect("alice")
wait_for("alice", lambda e: e.type == "welcome", "welcome")
wait_for("alice", lambda e: e.type == "endofmotd" or e.type == "motdstart" or e.type == "nomotd", "motd end")
bob = connect("bob")
wait_for("bob", lambda e: e.type == "welcome", "welcome")
carol = connect("carol")
wait_for("carol", lambda e: e.type == "welcome", "welcome")

alice.join("#twill")
wait_for("alice", lambda e: e.type == "join" and src(e) == "alice", "own join")
wait_for("alice", lambda e: e.type == "namreply" and "@alice" in e.arguments[2], "names with @alice")
bob.join("#twill")
wait_for("bob", lambda e: e.type == "join" and src(e) == "bob", "own join")
wait_for("alice", lambda e: e.type == "join" and src(e) == "bob", "bob joining")
carol.join("#twill")
wait_for("bob", lambda e: e.type == "join" and src(e) == "carol", "carol joining")
wait_for("alice", lambda e: e.type == "join" and src(e) == "carol", "carol joining")

alice.privmsg("#twill", "hello from alice")
for n in ("bob", "carol"):
    wait_for(n, lambda e: e.type == "pubmsg" and src(e) == "alice"
             and e.target == "#twill" and e.arguments == ["hello from alice"], "alice's line")
bob.privmsg("#twill", "hi alice, \u00e9t\u00e9 \u2603")
wait_for("alice", lambda e: e.type == "pubmsg" and src(e) == "bob"
         and e.arguments == ["hi alice, \u00e9t\u00e9 \u2603"], "bob's UTF-8 line")
bob.privmsg("alice", "psst")
wait_for("alice", lambda e: e.type == "privmsg" and src(e) == "bob" and e.arguments == ["psst"], "a private message")
bob.notice("#twill", "a notice")
wait_for("carol", lambda e: e.type == "pubnotice" and e.arguments == ["a notice"], "a notice")
bob.action("#twill", "waves")
wait_for("alice", lambda e: e.type == "action" and src(e) == "bob" and e.arguments == ["waves"], "a CTCP ACTION")

alice.topic("#twill", "all about twill")
for n in ("alice", "bob", "carol"):
    wait_for(n, lambda e: e.type == "topic" and src(e) == "alice"
             and e.arguments == ["all about twill"], "the new topic")
bob.topic("#twill", "bob was here")
wait_for("bob", lambda e: e.type == "chanoprivsneeded", "482 for a non-op topic under +t")

alice.kick("#twill", "bob", "behave")
for n in ("alice", "bob", "carol"):
    wait_for(n, lambda e: e.type == "kick" and src(e) == "alice"
             and e.arguments == ["bob", "behave"], "the kick")
bob.privmsg("#twill", "let me in")
wait_for("bob", lambda e: e.type == "cannotsendtochan", "404 after the kick")

bob.join("#twill")
wait_for("carol", lambda e: e.type == "join" and src(e) == "bob", "bob rejoining")
wait_for("bob", lambda e: e.type == "currenttopic" and e.arguments[1] == "all about twill", "332 on join")
bob.quit("see you")
for n in ("alice", "carol"):
    wait_for(n, lambda e: e.type == "quit" and src(e) == "bob"
             and e.arguments == ["Quit: see you"], "bob's quit")
carol.part("#twill", "later")
wait_for("alice", lambda e: e.type == "part" and src(e) == "carol", "carol's part")
alice.disconnect("done")
carol.disconnect("done")
print("ok")
