//! The server hub under the virtual clock: several clients interleaved in
//! one machine, every reply read back as parsed messages.

use std::time::Duration;

use bytes::Bytes;
use twill_core::testing::Sim;
use twill_core::{Close, ConnId};
use twill_irc::{Message, Server, ServerConfig, ServerEvent};

struct Net {
    sim: Sim<Server>,
    read: std::collections::BTreeMap<ConnId, usize>,
}

impl Net {
    fn new(cfg: ServerConfig) -> Net {
        Net {
            sim: Sim::new(Server::new(cfg)),
            read: Default::default(),
        }
    }

    fn connect(&mut self, id: u64, nick: &str) -> ConnId {
        let c = ConnId(id);
        self.sim.accept(c);
        self.say(c, &format!("NICK {nick}\r\nUSER {nick} 0 * :Real {nick}"));
        let got = self.take(c);
        assert!(got.iter().any(|m| m.numeric() == Some(1)), "{got:?}");
        assert!(got.iter().any(|m| m.numeric() == Some(5)), "{got:?}");
        c
    }

    fn say(&mut self, c: ConnId, lines: &str) {
        let mut s = lines.replace('\n', "\r\n").replace("\r\r\n", "\r\n");
        s.push_str("\r\n");
        self.sim.data(c, s.as_bytes());
    }

    /// Messages sent to `c` since the last call.
    fn take(&mut self, c: ConnId) -> Vec<Message> {
        let all = self.sim.sent.get(&c).cloned().unwrap_or_default();
        let from = self.read.get(&c).copied().unwrap_or(0);
        self.read.insert(c, all.len());
        let text = &all[from..];
        text.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| {
                let l = l.strip_suffix(b"\r").expect("CRLF line ends");
                Message::parse(Bytes::copy_from_slice(l)).expect("server output parses")
            })
            .collect()
    }
}

fn cmds(ms: &[Message]) -> Vec<String> {
    ms.iter()
        .map(|m| {
            let mut s = m.command().to_string();
            for p in m.params() {
                s.push(' ');
                s.push_str(&String::from_utf8_lossy(p));
            }
            s
        })
        .collect()
}

#[test]
fn register_join_talk_topic_kick_quit() {
    let mut n = Net::new(ServerConfig::default());
    let a = n.connect(1, "alice");
    let b = n.connect(2, "bob");
    n.say(a, "JOIN #chat");
    let got = n.take(a);
    assert_eq!(got[0].command(), "JOIN");
    assert_eq!(got[0].source_nick(), Some(&b"alice"[..]));
    assert!(
        cmds(&got).contains(&"353 alice = #chat @alice".to_string()),
        "{got:?}"
    );
    n.say(b, "JOIN #CHAT");
    let got = n.take(a);
    assert_eq!(cmds(&got), ["JOIN #chat"]);
    assert!(cmds(&n.take(b)).contains(&"353 bob = #chat @alice bob".to_string()));

    n.say(a, "PRIVMSG #chat :hello bob");
    assert_eq!(cmds(&n.take(b)), ["PRIVMSG #chat hello bob"]);
    assert!(n.take(a).is_empty(), "no echo without echo-message");

    n.say(b, "TOPIC #chat :bob's topic");
    assert_eq!(n.take(b)[0].numeric(), Some(482), "+t: ops only");
    n.say(a, "TOPIC #chat :the topic");
    assert_eq!(cmds(&n.take(b)), ["TOPIC #chat the topic"]);
    assert_eq!(cmds(&n.take(a)), ["TOPIC #chat the topic"]);
    n.say(b, "TOPIC #chat");
    let got = n.take(b);
    assert_eq!(cmds(&got)[0], "332 bob #chat the topic");

    n.say(b, "KICK #chat alice");
    assert_eq!(n.take(b)[0].numeric(), Some(482));
    n.say(a, "KICK #chat bob :bye now");
    assert_eq!(cmds(&n.take(b)), ["KICK #chat bob bye now"]);
    assert_eq!(cmds(&n.take(a)), ["KICK #chat bob bye now"]);
    n.say(b, "PRIVMSG #chat :still here?");
    assert_eq!(n.take(b)[0].numeric(), Some(404), "+n: not a member");

    n.say(b, "JOIN #chat");
    n.take(a);
    n.take(b);
    n.say(b, "QUIT :gone fishing");
    assert_eq!(cmds(&n.take(a)), ["QUIT Quit: gone fishing"]);
    assert_eq!(n.take(b)[0].command(), "ERROR");
    assert!(n.sim.closes.contains(&(b, Close::Graceful)));
    assert_eq!(n.sim.machine.members("#chat").unwrap(), ["@alice"]);
}

#[test]
fn nick_rules() {
    let mut n = Net::new(ServerConfig::default());
    let a = n.connect(1, "alice");
    let c = ConnId(2);
    n.sim.accept(c);
    n.say(c, "NICK ALICE");
    assert_eq!(n.take(c)[0].numeric(), Some(433));
    n.say(c, "NICK 9bad");
    assert_eq!(n.take(c)[0].numeric(), Some(432));
    n.say(c, "PRIVMSG alice :hi");
    assert_eq!(n.take(c)[0].numeric(), Some(451));
    n.say(c, "NICK carol\nUSER c 0 * :C");
    assert_eq!(n.take(c)[0].numeric(), Some(1));
    n.say(a, "JOIN #x");
    n.say(c, "JOIN #x");
    n.take(a);
    n.say(c, "NICK Carol[1]");
    assert_eq!(cmds(&n.take(a)), ["NICK Carol[1]"]);
    assert_eq!(
        n.sim.machine.find_nick("carol{1}"),
        Some(c),
        "rfc1459 folding"
    );
}

#[test]
fn caps_time_tags_and_echo() {
    let mut n = Net::new(ServerConfig::default());
    let a = ConnId(1);
    n.sim.accept(a);
    n.say(a, "CAP LS 302\nNICK alice\nUSER a 0 * :A");
    let got = n.take(a);
    assert_eq!(
        cmds(&got),
        ["CAP * LS echo-message message-tags server-time"]
    );
    n.say(a, "CAP REQ :server-time echo-message message-tags\nCAP END");
    let got = n.take(a);
    assert_eq!(
        cmds(&got)[0],
        "CAP alice ACK server-time echo-message message-tags"
    );
    assert_eq!(got[1].numeric(), Some(1));
    let b = n.connect(2, "bob");
    n.say(a, "JOIN #t");
    n.say(b, "JOIN #t");
    n.take(a);
    n.take(b);
    n.say(a, "@+draft/react=x;+example.com/k=a\\sb PRIVMSG #t :tagged");
    let echo = n.take(a);
    assert_eq!(cmds(&echo), ["PRIVMSG #t tagged"]);
    assert!(echo[0].tag("time").is_some());
    assert_eq!(echo[0].tag("+example.com/k").as_deref(), Some(&b"a b"[..]));
    let plain = n.take(b);
    assert!(!plain[0].has_tags(), "bob asked for no tags: {plain:?}");
    n.say(a, "CAP REQ :bogus");
    assert_eq!(cmds(&n.take(a)), ["CAP alice NAK bogus"]);
}

#[test]
fn channel_modes() {
    let mut n = Net::new(ServerConfig::default());
    let a = n.connect(1, "alice");
    let b = n.connect(2, "bob");
    n.say(a, "JOIN #m\nMODE #m +kl secret 1");
    let got = n.take(a);
    assert!(
        cmds(&got).contains(&"MODE #m +kl secret 1".to_string()),
        "{got:?}"
    );
    n.say(b, "JOIN #m");
    assert_eq!(n.take(b)[0].numeric(), Some(475));
    n.say(b, "JOIN #m secret");
    assert_eq!(n.take(b)[0].numeric(), Some(471));
    n.say(a, "MODE #m -l+i");
    n.take(a);
    n.say(b, "JOIN #m secret");
    assert_eq!(n.take(b)[0].numeric(), Some(473));
    n.say(a, "INVITE bob #m");
    assert_eq!(n.take(a)[0].numeric(), Some(341));
    assert_eq!(cmds(&n.take(b)), ["INVITE bob #m"]);
    n.say(b, "JOIN #m secret");
    assert_eq!(n.take(b)[0].command(), "JOIN");
    n.say(a, "MODE #m +m");
    n.take(a);
    n.take(b);
    n.say(b, "PRIVMSG #m :quiet?");
    assert_eq!(n.take(b)[0].numeric(), Some(404));
    n.say(a, "MODE #m +v bob");
    assert_eq!(cmds(&n.take(b)), ["MODE #m +v bob"]);
    n.take(a);
    n.say(b, "PRIVMSG #m :now I can");
    assert_eq!(cmds(&n.take(a)), ["PRIVMSG #m now I can"]);
    n.say(a, "MODE #m +b bob\nMODE #m b");
    let got = cmds(&n.take(a));
    assert!(got.contains(&"MODE #m +b bob!*@*".to_string()), "{got:?}");
    assert!(got.contains(&"367 alice #m bob!*@*".to_string()), "{got:?}");
    n.say(a, "MODE #m");
    let got = cmds(&n.take(a));
    assert!(got[0].starts_with("324 alice #m +imnt"), "{got:?}");
    n.take(b);
    n.say(b, "MODE #m +x");
    assert_eq!(n.take(b)[0].numeric(), Some(482));
    n.say(a, "MODE #m +x");
    assert_eq!(n.take(a)[0].numeric(), Some(472));
    n.say(a, "MODE alice +i\nMODE bob -i");
    let got = cmds(&n.take(a));
    assert_eq!(got[0], "MODE alice +i");
    assert!(got[1].starts_with("502"));
}

#[test]
fn whois_who_list_names_away_lusers_motd() {
    let cfg = ServerConfig {
        motd: vec!["hello".into()],
        ..Default::default()
    };
    let mut n = Net::new(cfg);
    let a = n.connect(1, "alice");
    let b = n.connect(2, "bob");
    n.say(a, "JOIN #w\nTOPIC #w :words");
    n.say(b, "AWAY :lunch");
    assert_eq!(n.take(b)[0].numeric(), Some(306));
    n.take(a);
    n.say(a, "PRIVMSG bob :hi");
    assert_eq!(cmds(&n.take(a)), ["301 alice bob lunch"]);
    n.say(a, "WHOIS bob");
    let got = n.take(a);
    let codes: Vec<_> = got.iter().filter_map(|m| m.numeric()).collect();
    assert_eq!(codes, [311, 312, 301, 317, 318]);
    n.say(a, "WHO #w\nLIST\nNAMES #w\nLUSERS\nMOTD");
    let got = cmds(&n.take(a));
    assert!(
        got.iter().any(|l| l.starts_with("352 alice #w alice")),
        "{got:?}"
    );
    assert!(got.contains(&"322 alice #w 1 words".to_string()), "{got:?}");
    assert!(got.contains(&"366 alice #w End of /NAMES list.".to_string()));
    assert!(got.iter().any(|l| l.starts_with("251 ")));
    assert!(got.contains(&"372 alice - hello".to_string()));
    n.say(a, "FOO bar");
    assert_eq!(n.take(a)[0].numeric(), Some(421));
}

#[test]
fn registration_and_ping_timeouts() {
    let mut n = Net::new(ServerConfig::default());
    let lazy = ConnId(9);
    n.sim.accept(lazy);
    let a = n.connect(1, "alice");
    n.sim.advance(Duration::from_secs(61));
    assert!(n.sim.closes.contains(&(lazy, Close::Graceful)));
    assert!(n.sim.sent_text(lazy).contains("Registration timeout"));
    n.sim.advance(Duration::from_secs(60));
    assert_eq!(cmds(&n.take(a)), ["PING twill.irc"]);
    n.say(a, "PONG :twill.irc");
    n.sim.advance(Duration::from_secs(100));
    assert!(
        !n.sim.closes.iter().any(|(c, _)| *c == a),
        "answered the ping"
    );
    n.sim.advance(Duration::from_secs(200));
    assert!(n.sim.closes.contains(&(a, Close::Graceful)));
    assert!(n.sim.sent_text(a).contains("Ping timeout"));
}

#[test]
fn long_lines_get_417_and_the_client_stays() {
    let mut n = Net::new(ServerConfig::default());
    let a = n.connect(1, "alice");
    let long = format!("PRIVMSG alice :{}", "x".repeat(600));
    n.say(a, &long);
    assert_eq!(n.take(a)[0].numeric(), Some(417));
    let huge = format!("PRIVMSG alice :{}", "x".repeat(20_000));
    n.say(a, &huge);
    n.say(a, "PING :still");
    let got = cmds(&n.take(a));
    assert_eq!(got.last().unwrap(), "PONG twill.irc still", "{got:?}");
    assert!(got[0].starts_with("417"));
}

#[test]
fn flood_is_throttled_not_dropped() {
    let mut n = Net::new(ServerConfig::default());
    let a = n.connect(1, "alice");
    let b = n.connect(2, "bob");
    n.take(a);
    let mut flood = String::new();
    for i in 0..200 {
        flood.push_str(&format!("PRIVMSG bob :{i}\r\n"));
    }
    n.sim.data(a, flood.as_bytes());
    let first = n.take(b).len();
    assert!(first < 30, "a burst, not the whole flood: {first}");
    assert!(n.sim.held(a) > 0, "the rest waits in the driver");
    assert!(n
        .sim
        .events
        .iter()
        .any(|e| matches!(e, ServerEvent::Throttled { conn } if *conn == a)));
    n.sim.advance(Duration::from_secs(60));
    let rest = n.take(b);
    assert_eq!(first + rest.len(), 200, "every line delivered in the end");
    assert_eq!(cmds(&rest).last().unwrap(), "PRIVMSG bob 199");
}

#[test]
fn a_client_that_never_reads_is_dropped() {
    let cfg = ServerConfig {
        max_queued: 4096,
        flood_burst: 10_000,
        ..Default::default()
    };
    let mut n = Net::new(cfg);
    let a = n.connect(1, "alice");
    let deaf = n.connect(2, "deaf");
    let c = n.connect(3, "carol");
    for x in [a, deaf, c] {
        n.say(x, "JOIN #f");
    }
    n.sim.auto_sent = false;
    n.sim.ack(a);
    n.sim.ack(c);
    for i in 0..100 {
        n.say(
            a,
            &format!("PRIVMSG #f :message number {i} with some padding to fill"),
        );
        n.sim.ack(a);
        n.sim.ack(c);
    }
    assert!(n.sim.closes.contains(&(deaf, Close::Abort)));
    assert!(n
        .sim
        .events
        .iter()
        .any(|e| matches!(e, ServerEvent::Overflow { conn, .. } if *conn == deaf)));
    let got = cmds(&n.take(c));
    assert_eq!(
        got.iter().filter(|l| l.starts_with("PRIVMSG")).count(),
        100,
        "carol got everything"
    );
    assert!(
        got.contains(&"QUIT Max SendQ exceeded".to_string()),
        "{got:?}"
    );
}

#[test]
fn chunking_does_not_matter() {
    let script = "CAP LS 302\r\nNICK a\r\nUSER a 0 * :A\r\nCAP END\r\nJOIN #c\r\nTOPIC #c :t\r\nPART #c :bye\r\nQUIT\r\n";
    let mut whole = Sim::new(Server::default());
    whole.accept(ConnId(1));
    whole.data(ConnId(1), script.as_bytes());
    let mut bytewise = Sim::new(Server::default());
    bytewise.accept(ConnId(1));
    for b in script.as_bytes() {
        bytewise.data(ConnId(1), &[*b]);
    }
    assert_eq!(whole.sent, bytewise.sent);
    assert!(whole.sent_text(ConnId(1)).contains("PART #c :bye"));
}

#[test]
fn ping_and_pong_are_not_charged_to_the_flood_bucket() {
    let mut n = Net::new(ServerConfig::default());
    let a = n.connect(1, "alice");
    let b = n.connect(2, "bob");
    n.take(a);
    // 100 PINGs and PONGs (a lag meter, answers to the server), then a
    // full burst of real lines: nothing is throttled.
    let mut s = String::new();
    for i in 0..50 {
        s.push_str(&format!("PING :lag{i}\r\nPONG :twill.irc\r\n"));
    }
    s.push_str("@+x=y :alice ping :tagged\r\n");
    // The burst is 20 lines; NICK and USER took two.
    for i in 0..18 {
        s.push_str(&format!("PRIVMSG bob :{i}\r\n"));
    }
    n.sim.data(a, s.as_bytes());
    let pongs = n.take(a);
    assert_eq!(pongs.len(), 51, "every PING answered at once");
    assert_eq!(cmds(&pongs).last().unwrap(), "PONG twill.irc tagged");
    assert_eq!(n.take(b).len(), 18, "the burst is untouched");
    assert_eq!(n.sim.held(a), 0);
    assert!(!n
        .sim
        .events
        .iter()
        .any(|e| matches!(e, ServerEvent::Throttled { .. })));
}

#[test]
fn a_throttled_client_answering_pings_is_never_timed_out() {
    let cfg = ServerConfig {
        ping_interval: Duration::from_secs(10),
        ping_timeout: Duration::from_secs(5),
        ..Default::default()
    };
    let mut n = Net::new(cfg);
    let a = n.connect(1, "alice");
    let b = n.connect(2, "bob");
    // 500 lines take 100 s of throttled reading, ten ping intervals; a
    // PONG and a PING wait in the middle of them.
    let mut s = String::new();
    for i in 0..500 {
        if i == 250 {
            s.push_str("PONG :twill.irc\r\nPING :mid\r\n");
        }
        s.push_str(&format!("PRIVMSG bob :{i}\r\n"));
    }
    n.sim.data(a, s.as_bytes());
    n.take(a);
    for _ in 0..100 {
        n.sim.advance(Duration::from_secs(1));
        n.sim.ack(a);
        n.sim.ack(b);
        b_answers_pings(&mut n, b);
    }
    assert!(
        !n.sim.closes.iter().any(|(c, _)| *c == a),
        "{}",
        n.sim.sent_text(a)
    );
    assert_eq!(
        cmds(&n.take(b))
            .iter()
            .filter(|l| l.starts_with("PRIVMSG"))
            .count(),
        500
    );
    assert!(cmds(&n.take(a)).contains(&"PONG twill.irc mid".to_string()));
    // Once idle, the usual liveness check applies again.
    assert_eq!(n.sim.held(a), 0);
    n.sim.advance(Duration::from_secs(16));
    assert!(n.sim.closes.contains(&(a, Close::Graceful)));
}

/// Bob answers the server's PINGs so only alice is under test.
fn b_answers_pings(n: &mut Net, b: ConnId) {
    if n.sim.sent_text(b).matches("PING ").count() > n.read.get(&ConnId(99)).copied().unwrap_or(0) {
        n.read
            .insert(ConnId(99), n.sim.sent_text(b).matches("PING ").count());
        n.say(b, "PONG :twill.irc");
    }
}

#[test]
fn names_without_a_channel_lists_everyone_visible() {
    let mut n = Net::new(ServerConfig::default());
    let a = n.connect(1, "alice");
    let b = n.connect(2, "bob");
    let c = n.connect(3, "carol");
    let d = n.connect(4, "dave");
    n.say(a, "JOIN #one\nJOIN #two");
    n.say(b, "JOIN #two");
    n.say(d, "MODE dave +i");
    n.say(c, "MODE carol +i\nJOIN #one");
    n.take(a);
    n.take(b);
    n.say(b, "NAMES");
    let got = cmds(&n.take(b));
    assert_eq!(
        got,
        [
            "353 bob = #one @alice",
            "353 bob = #two @alice bob",
            "366 bob * End of /NAMES list."
        ],
        "carol (+i) is hidden from outsiders, dave (+i, no channel) too"
    );
    n.say(a, "NAMES");
    let got = cmds(&n.take(a));
    assert_eq!(got[0], "353 alice = #one @alice carol", "{got:?}");
    n.say(d, "MODE dave -i\nNAMES");
    let got = cmds(&n.take(d));
    assert!(got.contains(&"353 dave * * dave".to_string()), "{got:?}");
    assert_eq!(got.last().unwrap(), "366 dave * End of /NAMES list.");
    n.say(b, "NAMES #one\nWHO #one");
    let got = cmds(&n.take(b));
    assert_eq!(got[0], "353 bob = #one @alice");
    assert_eq!(
        got.iter().filter(|l| l.starts_with("352")).count(),
        1,
        "WHO hides +i members from outsiders too: {got:?}"
    );
}

#[test]
fn tagmsg_goes_to_message_tags_clients_only() {
    let mut n = Net::new(ServerConfig::default());
    let a = ConnId(1);
    n.sim.accept(a);
    n.say(
        a,
        "CAP REQ :message-tags echo-message\nNICK alice\nUSER a 0 * :A\nCAP END",
    );
    let t = ConnId(2);
    n.sim.accept(t);
    n.say(t, "CAP REQ message-tags\nNICK tom\nUSER t 0 * :T\nCAP END");
    let b = n.connect(3, "bob");
    for x in [a, t, b] {
        n.say(x, "JOIN #t");
    }
    n.take(a);
    n.take(t);
    n.take(b);
    n.say(a, "@+typing=active TAGMSG #t");
    let got = n.take(t);
    assert_eq!(cmds(&got), ["TAGMSG #t"]);
    assert_eq!(got[0].tag("+typing").as_deref(), Some(&b"active"[..]));
    assert!(n.take(b).is_empty(), "bob has no message-tags");
    assert_eq!(cmds(&n.take(a)), ["TAGMSG #t"], "echo-message");
    n.say(a, "@+typing=paused TAGMSG tom\nTAGMSG #nowhere");
    assert_eq!(cmds(&n.take(t)), ["TAGMSG tom"]);
    let got = n.take(a);
    assert_eq!(got.last().unwrap().numeric(), Some(401));
}

#[test]
fn a_zero_flood_interval_turns_throttling_off() {
    let cfg = ServerConfig {
        flood_interval: Duration::ZERO,
        ..Default::default()
    };
    let mut n = Net::new(cfg);
    let a = n.connect(1, "alice");
    let b = n.connect(2, "bob");
    let mut flood = String::new();
    for i in 0..1000 {
        flood.push_str(&format!("PRIVMSG bob :{i}\r\n"));
    }
    n.sim.data(a, flood.as_bytes());
    assert_eq!(n.take(b).len(), 1000, "all at once");
    assert_eq!(n.sim.held(a), 0);
}

#[test]
fn resume_only_when_the_driver_kept_bytes() {
    use twill_core::{Addr, Input, ListenerId, Machine, Now, Output};
    let mut m = Server::default();
    let mut now = Now::default();
    let c = ConnId(1);
    let drain = |m: &mut Server| {
        let mut resumes = 0;
        loop {
            match m.poll_output() {
                Output::Wait { .. } => return resumes,
                Output::Resume { .. } => resumes += 1,
                _ => {}
            }
        }
    };
    let input = |m: &mut Server, now: Now, i: Input<'_>| m.handle_input(now, i).unwrap();
    input(
        &mut m,
        now,
        Input::Accepted {
            conn: c,
            listener: ListenerId(0),
            local: Addr::Unknown,
            peer: Addr::Unknown,
        },
    );
    // The burst plus one line, all complete: the last is held inside the
    // machine, so everything offered is taken.
    let mut s = String::from("NICK a\r\nUSER a 0 * :A\r\n");
    for i in 0..19 {
        s.push_str(&format!("PRIVMSG a :{i}\r\n"));
    }
    assert_eq!(
        input(
            &mut m,
            now,
            Input::Data {
                conn: c,
                bytes: s.as_bytes()
            }
        ),
        s.len()
    );
    drain(&mut m);
    now = now.after(Duration::from_secs(1));
    m.handle_timeout(now);
    assert_eq!(drain(&mut m), 0, "nothing was left with the driver");
    // Now over the limit with bytes to spare: a short take, then Resume.
    let more = "PRIVMSG a :x\r\n".repeat(30);
    let taken = input(
        &mut m,
        now,
        Input::Data {
            conn: c,
            bytes: more.as_bytes(),
        },
    );
    assert!(taken < more.len());
    drain(&mut m);
    now = now.after(Duration::from_secs(1));
    m.handle_timeout(now);
    assert_eq!(drain(&mut m), 1);
}
