//! The client machine against the server machine in memory (one virtual
//! clock), and against scripted server lines for what our server does not
//! do (SASL, nick fallback on a busy server, a silent server).

use std::time::Duration;

use bytes::Bytes;
use twill_core::testing::{Pair, Sim};
use twill_core::{Close, ConnId};
use twill_irc::{Client, ClientConfig, ClientEvent, Message, Server};

fn registered(events: &[ClientEvent]) -> Option<String> {
    events.iter().find_map(|e| match e {
        ClientEvent::Registered { nick } => Some(nick.clone()),
        _ => None,
    })
}

#[test]
fn registers_joins_and_tracks_members_against_our_server() {
    let mut p = Pair::new(Client::new(ClientConfig::new("alice")), Server::default());
    p.connect();
    p.run();
    assert_eq!(registered(&p.client.events).as_deref(), Some("alice"));
    assert!(p
        .client
        .machine
        .caps()
        .contains(&"message-tags".to_string()));
    assert!(p.client.machine.caps().contains(&"server-time".to_string()));
    p.client.machine.join("#c", None).unwrap();
    p.client.drain();
    p.run();
    let ch = p.client.machine.channel("#C").expect("joined");
    assert_eq!(
        ch.members
            .values()
            .map(|(n, pre)| format!("{pre}{n}"))
            .collect::<Vec<_>>(),
        ["@alice"]
    );
    // A long message is split at the limit, each piece valid UTF-8.
    let text = "ü".repeat(3000);
    p.client.machine.privmsg("#c", &text).unwrap();
    p.client.drain();
    assert!(
        p.client.machine.pending() > 0,
        "the rate limit holds some back"
    );
    p.advance(Duration::from_secs(10));
    assert_eq!(p.client.machine.pending(), 0);
    // The server relayed nothing (alice is alone) but accepted every
    // piece: no 417 came back.
    assert!(!p
        .client
        .events
        .iter()
        .any(|e| matches!(e, ClientEvent::Message(m) if m.numeric() == Some(417))));
    p.client.machine.quit("bye").unwrap();
    p.client.drain();
    p.run();
    assert!(p.client.events.contains(&ClientEvent::Disconnected));
}

/// A client in a Sim, fed scripted server lines.
fn scripted(cfg: ClientConfig) -> Sim<Client> {
    let mut sim = Sim::new(Client::new(cfg));
    sim.opened(ConnId(1));
    sim
}

fn said(sim: &mut Sim<Client>) -> Vec<String> {
    sim.take_outbox()
        .iter()
        .flat_map(|(_, b)| {
            String::from_utf8_lossy(b)
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn cap_sasl_plain_and_nick_fallback() {
    let mut cfg = ClientConfig::new("bob");
    cfg.sasl = Some(("bob".into(), "sesame".into()));
    let mut sim = scripted(cfg);
    assert_eq!(
        said(&mut sim),
        ["CAP LS 302", "NICK bob", "USER bob 0 * :bob"]
    );
    sim.data(
        ConnId(1),
        b":s CAP * LS * :multi-prefix sasl=PLAIN,EXTERNAL\r\n",
    );
    assert!(said(&mut sim).is_empty(), "waits for the last LS line");
    sim.data(
        ConnId(1),
        b":s CAP * LS :server-time\r\n:s 433 * bob :Nickname is already in use\r\n",
    );
    assert_eq!(
        said(&mut sim),
        ["CAP REQ :server-time multi-prefix sasl", "NICK bob_"]
    );
    sim.data(
        ConnId(1),
        b":s CAP bob_ ACK :multi-prefix server-time sasl\r\n",
    );
    assert_eq!(said(&mut sim), ["AUTHENTICATE PLAIN"]);
    sim.data(ConnId(1), b"AUTHENTICATE +\r\n");
    assert_eq!(said(&mut sim), ["AUTHENTICATE Ym9iAGJvYgBzZXNhbWU="]);
    sim.data(
        ConnId(1),
        b":s 900 bob_ bob_!b@h bob :You are now logged in\r\n:s 903 bob_ :SASL ok\r\n",
    );
    assert_eq!(said(&mut sim), ["CAP END"]);
    assert!(sim.events.contains(&ClientEvent::Sasl { success: true }));
    sim.data(ConnId(1), b":s 001 bob_ :Welcome bob_!b@h\r\nPING :abc\r\n");
    assert_eq!(said(&mut sim), ["PONG abc"]);
    assert_eq!(registered(&sim.events).as_deref(), Some("bob_"));
}

#[test]
fn no_cap_server_and_ping_timeout() {
    let mut sim = scripted(ClientConfig::new("carol"));
    said(&mut sim);
    // An old server: no CAP at all, straight to the welcome.
    sim.data(
        ConnId(1),
        b":old 421 carol CAP :Unknown command\r\n:old 001 carol :Hi\r\n",
    );
    assert_eq!(registered(&sim.events).as_deref(), Some("carol"));
    sim.advance(Duration::from_secs(121));
    assert_eq!(said(&mut sim), ["PING twill"]);
    sim.advance(Duration::from_secs(61));
    assert!(sim.events.contains(&ClientEvent::PingTimeout));
    assert!(sim.closes.contains(&(ConnId(1), Close::Abort)));
}

#[test]
fn tracks_kicks_quits_nicks_and_modes() {
    let mut sim = scripted(ClientConfig::new("me"));
    sim.data(
        ConnId(1),
        b":s 001 me :Welcome\r\n:s 005 me PREFIX=(ov)@+ CHANMODES=b,k,l,imnt :are supported\r\n\
:me!u@h JOIN #x\r\n:s 353 me = #x :me @op +v\r\n:s 366 me #x :End\r\n\
:new!u@h JOIN #x\r\n:op!u@h MODE #x +o-v+k new v key\r\n:v!u@h NICK vee\r\n:new!u@h QUIT :bye\r\n",
    );
    let ch = sim.machine.channel("#x").unwrap();
    let mut m: Vec<String> = ch
        .members
        .values()
        .map(|(n, p)| format!("{p}{n}"))
        .collect();
    m.sort();
    assert_eq!(m, ["@op", "me", "vee"]);
    sim.data(ConnId(1), b":op!u@h KICK #x me :out\r\n");
    assert!(sim.machine.channel("#x").is_none());
    // Every message is also handed to the application.
    assert!(sim
        .events
        .iter()
        .any(|e| matches!(e, ClientEvent::Message(m) if m.is("KICK"))));
}

#[test]
fn commands_cannot_inject_lines() {
    let mut sim = scripted(ClientConfig::new("me"));
    assert!(sim.machine.privmsg("#x", "hi\r\nQUIT").is_err());
    assert!(sim.machine.join("#x y", None).is_err());
    assert!(sim.machine.raw("PRIVMSG #x :a\r\nQUIT").is_err());
    let _ = Message::parse(Bytes::from_static(b"PING x")).unwrap();
}

#[test]
fn a_second_names_reply_replaces_the_member_list() {
    let mut sim = scripted(ClientConfig::new("me"));
    sim.data(
        ConnId(1),
        b":s 001 me :Welcome\r\n:me!u@h JOIN #x\r\n:s 353 me = #x :me @a\r\n\
:s 353 me = #x :b c\r\n:s 366 me #x :End\r\n",
    );
    assert_eq!(sim.machine.channel("#x").unwrap().members.len(), 4);
    // b and c left without our seeing it (e.g. a netsplit); NAMES again.
    sim.data(
        ConnId(1),
        b":s 353 me = #x :me\r\n:s 353 me = #x :@a\r\n:s 366 me #x :End\r\n",
    );
    let mut m: Vec<String> = sim
        .machine
        .channel("#x")
        .unwrap()
        .members
        .values()
        .map(|(n, p)| format!("{p}{n}"))
        .collect();
    m.sort();
    assert_eq!(m, ["@a", "me"]);
}

#[test]
fn cap_new_del_and_sasl_mechanisms() {
    let mut cfg = ClientConfig::new("bob");
    cfg.sasl = Some(("bob".into(), "pw".into()));
    let mut sim = scripted(cfg);
    said(&mut sim);
    // The server offers SASL, but not PLAIN: not requested.
    sim.data(ConnId(1), b":s CAP * LS :sasl=EXTERNAL message-tags\r\n");
    assert_eq!(said(&mut sim), ["CAP REQ message-tags"]);
    sim.data(
        ConnId(1),
        b":s CAP bob ACK message-tags\r\n:s 001 bob :Welcome\r\n",
    );
    assert_eq!(said(&mut sim), ["CAP END"]);
    assert_eq!(sim.machine.caps(), ["message-tags"]);
    // cap-notify: server-time appears (we want it), a stranger too.
    sim.data(ConnId(1), b":s CAP bob NEW :server-time draft/foo\r\n");
    assert_eq!(said(&mut sim), ["CAP REQ server-time"]);
    sim.data(ConnId(1), b":s CAP bob ACK server-time\r\n");
    assert!(said(&mut sim).is_empty(), "no second CAP END");
    assert_eq!(sim.machine.caps(), ["message-tags", "server-time"]);
    sim.data(ConnId(1), b":s CAP bob DEL :message-tags\r\n");
    assert_eq!(sim.machine.caps(), ["server-time"]);
}

#[test]
fn answers_ctcp_version_ping_and_clientinfo() {
    let mut sim = scripted(ClientConfig::new("me"));
    sim.data(ConnId(1), b":s 001 me :Welcome\r\n");
    said(&mut sim);
    sim.data(
        ConnId(1),
        b":al!u@h PRIVMSG me :\x01VERSION\x01\r\n:al!u@h PRIVMSG me :\x01PING 1234\x01\r\n\
:al!u@h PRIVMSG me :\x01CLIENTINFO\x01\r\n:al!u@h PRIVMSG #chan :\x01VERSION\x01\r\n\
:al!u@h NOTICE me :\x01VERSION x\x01\r\n:al!u@h PRIVMSG me :\x01FINGER\x01\r\n",
    );
    let got = said(&mut sim);
    assert_eq!(
        got,
        [
            concat!(
                "NOTICE al :\x01VERSION twill-irc ",
                env!("CARGO_PKG_VERSION"),
                "\x01"
            ),
            "NOTICE al :\x01PING 1234\x01",
            "NOTICE al :\x01CLIENTINFO ACTION CLIENTINFO PING VERSION\x01",
        ],
        "channel CTCPs, NOTICEs and unknown requests get no answer"
    );
    // A flood of requests: the answers are rate-limited, and those that
    // find lines already waiting are dropped.
    let mut flood = Vec::new();
    for i in 0..100 {
        flood.extend_from_slice(format!(":al!u@h PRIVMSG me :\x01PING {i}\x01\r\n").as_bytes());
    }
    sim.data(ConnId(1), &flood);
    let answered = said(&mut sim).len();
    assert!(answered <= 5, "{answered} answers at once");
    assert!(sim.machine.pending() <= 1);
}
