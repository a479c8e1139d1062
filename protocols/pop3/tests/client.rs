//! The client machine against the server machine over an in-memory pair.

mod common;

use common::{message, Auto};
use twill_core::testing::{Pair, Sim};
use twill_core::{ConnId, Duration};
use twill_pop3::{Client, ClientConfig, ClientEvent, Failure, ServerConfig};

fn cfg(user: &str, pw: &str) -> ClientConfig {
    ClientConfig {
        user: user.into(),
        password: pw.as_bytes().to_vec(),
        ..ClientConfig::default()
    }
}

fn responses(events: &[ClientEvent]) -> Vec<twill_pop3::Response> {
    events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Response { response, .. } => Some(response.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn login_list_retrieve_delete() {
    let server = Auto::from_spec(ServerConfig::default(), "mrose:secret:120,200", &[]);
    let mut p = Pair::new(Client::new(cfg("mrose", "secret")), server);
    p.connect();
    assert!(
        matches!(&p.client.events[0], ClientEvent::Ready { capabilities, .. } if capabilities.iter().any(|c| c == "PIPELINING"))
    );
    let c = &mut p.client.machine;
    c.stat().unwrap();
    c.list().unwrap();
    c.uidl().unwrap();
    c.retr(1).unwrap();
    c.top(2, 0).unwrap();
    c.dele(1).unwrap();
    c.retr(1).unwrap();
    c.quit();
    p.client.drain();
    p.run();
    let r = responses(&p.client.events);
    assert_eq!(r.len(), 7);
    assert_eq!(r[0].numbers(), Some((2, 320)));
    assert_eq!(
        r[1].listing(),
        [(1, "120".to_string()), (2, "200".to_string())]
    );
    assert_eq!(r[2].listing()[1], (2, "uid-2".to_string()));
    assert_eq!(r[3].body.as_deref(), Some(&message(1, 120)[..]));
    assert_eq!(r[4].body.as_deref(), Some(&b"Subject: m2\r\n\r\n"[..]));
    assert!(r[5].ok && !r[6].ok);
    assert_eq!(p.server.machine.removed, ["uid-1"]);
    assert!(p.client.events.contains(&ClientEvent::Closed));
}

#[test]
fn apop_when_the_greeting_offers_it() {
    let server = Auto::from_spec(
        ServerConfig {
            apop: true,
            ..ServerConfig::default()
        },
        "mrose:tanstaaf:40",
        &[],
    );
    let c = ClientConfig {
        apop: true,
        ..cfg("mrose", "tanstaaf")
    };
    let mut p = Pair::new(Client::new(c), server);
    p.connect();
    assert!(matches!(p.client.events[0], ClientEvent::Ready { .. }));
    let cmds = String::from_utf8_lossy(p.client.sent.values().next().unwrap()).into_owned();
    assert!(
        cmds.contains("APOP mrose ") && !cmds.contains("PASS"),
        "{cmds}"
    );
}

#[test]
fn wrong_password_and_locked_maildrop() {
    let server = Auto::from_spec(ServerConfig::default(), "mrose:secret:40", &[]);
    let mut p = Pair::new(Client::new(cfg("mrose", "nope")), server);
    p.connect();
    assert!(
        matches!(&p.client.events[0], ClientEvent::Failed(Failure::Login(t)) if t.starts_with("[AUTH]"))
    );
    let server = Auto::from_spec(ServerConfig::default(), "mrose:secret:40", &["mrose"]);
    let mut p = Pair::new(Client::new(cfg("mrose", "secret")), server);
    p.connect();
    assert!(
        matches!(&p.client.events[0], ClientEvent::Failed(Failure::Login(t)) if t.starts_with("[IN-USE]"))
    );
}

#[test]
fn a_body_split_anywhere_is_unstuffed() {
    let wire: &[u8] =
        b"+OK ready\r\n+OK\r\nUSER\r\n.\r\n+OK\r\n+OK in\r\n+OK 9 octets\r\n..a\r\nb\r\n.\r\n";
    for cut in 1..wire.len() {
        let mut sim = Sim::new(Client::new(ClientConfig {
            stls: false,
            ..cfg("u", "p")
        }));
        sim.opened(ConnId(1));
        sim.machine.retr(1).unwrap();
        sim.drain();
        sim.data(ConnId(1), &wire[..cut]);
        sim.data(ConnId(1), &wire[cut..]);
        let r = responses(&sim.events);
        assert_eq!(r.len(), 1, "cut {cut}: {:?}", sim.events);
        assert_eq!(r[0].body.as_deref(), Some(&b".a\r\nb\r\n"[..]), "cut {cut}");
    }
}

#[test]
fn silence_times_out() {
    let mut sim = Sim::new(Client::new(cfg("u", "p")));
    sim.opened(ConnId(1));
    sim.advance(Duration::from_secs(601));
    assert_eq!(sim.events[0], ClientEvent::Failed(Failure::Timeout));
}
