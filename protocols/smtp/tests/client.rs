//! The client machine against the server machine over an in-memory pair:
//! pipelined and lock-step sessions, HELO fallback, AUTH, per-recipient
//! results, dot-stuffing that survives, and a timeout.

mod common;

use bytes::Bytes;
use common::{config, Auto};
use twill_core::testing::{Pair, Sim};
use twill_core::{ConnId, Duration};
use twill_smtp::{
    Client, ClientConfig, ClientEvent, Envelope, Failure, ServerConfig, ServerEvent, StartTls,
};

fn envelope(to: &[&str], data: &[u8]) -> Envelope {
    Envelope {
        from: "a@x.org".into(),
        to: to.iter().map(|s| s.to_string()).collect(),
        data: Bytes::copy_from_slice(data),
    }
}

fn sent(events: &[ClientEvent]) -> Vec<twill_smtp::SendResult> {
    events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Sent(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn stored(events: &[ServerEvent]) -> Vec<twill_smtp::Message> {
    events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Message(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

fn session(client: ClientConfig, server: Auto) -> Pair<Client, Auto> {
    let mut p = Pair::new(Client::new(client), server);
    p.connect();
    p
}

#[test]
fn pipelined_envelopes_with_per_recipient_results() {
    let srv = Auto::new(
        config("localhost", &["localhost"], Some(&["alice", "bob"])),
        &[],
    );
    let mut p = session(ClientConfig::default(), srv);
    let body = b"Subject: hi\r\n\r\n.starts with a dot\r\n..two\r\n.\r\nend\r\n";
    p.client
        .machine
        .send_mail(envelope(
            &["alice@localhost", "nobody@localhost", "bob@localhost"],
            body,
        ))
        .unwrap();
    p.client
        .machine
        .send_mail(envelope(&["nobody@localhost"], b"x\r\n"))
        .unwrap();
    p.client.machine.quit();
    p.client.drain();
    p.run();
    let r = sent(&p.client.events);
    assert_eq!(r.len(), 2);
    assert!(r[0].delivered());
    assert_eq!(
        r[0].accepted().collect::<Vec<_>>(),
        ["alice@localhost", "bob@localhost"]
    );
    assert_eq!(r[0].recipients[1].reply.code, 550);
    assert!(!r[1].delivered());
    assert_eq!(r[1].recipients[0].reply.code, 550);
    let m = stored(&p.server.events);
    assert_eq!(m.len(), 1);
    assert_eq!(&m[0].data[..], &body[..]);
    assert!(matches!(
        p.client.events[0],
        ClientEvent::Ready { secured: false, .. }
    ));
    // QUIT went out and both ends closed.
    assert!(p.client.events.contains(&ClientEvent::Closed));
}

#[test]
fn lock_step_without_pipelining_and_helo_fallback() {
    // A server that refuses EHLO: answered like an RFC 821 server.
    struct NoEhlo(Auto);
    impl twill_core::Machine for NoEhlo {
        type Event = ServerEvent;
        type Error = twill_smtp::Error;
        fn handle_input(
            &mut self,
            now: twill_core::Now,
            input: twill_core::Input<'_>,
        ) -> Result<usize, Self::Error> {
            if let twill_core::Input::Data { conn, bytes } = &input {
                if bytes.len() >= 4 && bytes[..4].eq_ignore_ascii_case(b"EHLO") {
                    // Swallow the line and pretend to be old.
                    let n = bytes
                        .iter()
                        .position(|b| *b == b'\n')
                        .map_or(bytes.len(), |k| k + 1);
                    self.0.server.handle_input(
                        now,
                        twill_core::Input::Data {
                            conn: *conn,
                            bytes: b"XEHLO\r\n",
                        },
                    )?;
                    return Ok(n);
                }
            }
            self.0.handle_input(now, input)
        }
        fn handle_timeout(&mut self, now: twill_core::Now) {
            self.0.handle_timeout(now)
        }
        fn poll_output(&mut self) -> twill_core::Output<ServerEvent> {
            self.0.poll_output()
        }
    }
    let srv = NoEhlo(Auto::new(ServerConfig::default(), &[]));
    let mut p = Pair::new(Client::new(ClientConfig::default()), srv);
    p.connect();
    p.client
        .machine
        .send_mail(envelope(&["u@localhost", "v@localhost"], b"one\r\n"))
        .unwrap();
    p.client.machine.quit();
    p.client.drain();
    p.run();
    assert!(
        matches!(&p.client.events[0], ClientEvent::Ready { extensions, .. } if extensions.is_empty())
    );
    let r = sent(&p.client.events);
    assert!(r[0].delivered(), "{r:?}");
    assert_eq!(r[0].accepted().count(), 2);
}

#[test]
fn auth_plain_and_refusal() {
    let srv = || Auto::new(ServerConfig::default(), &[("tim", "pw")]);
    let ok = ClientConfig {
        auth: Some(("tim".into(), b"pw".to_vec())),
        ..ClientConfig::default()
    };
    let mut p = session(ok, srv());
    assert!(matches!(
        p.client.events[0],
        ClientEvent::Ready {
            authenticated: true,
            ..
        }
    ));
    // Authenticated: another domain is accepted.
    p.client
        .machine
        .send_mail(envelope(&["x@elsewhere.example"], b"hi\r\n"))
        .unwrap();
    p.client.drain();
    p.run();
    assert!(sent(&p.client.events)[0].delivered());

    let bad = ClientConfig {
        auth: Some(("tim".into(), b"nope".to_vec())),
        ..ClientConfig::default()
    };
    let p = session(bad, srv());
    assert!(matches!(
        &p.client.events[0],
        ClientEvent::Failed(Failure::Auth(r)) if r.code == 535
    ));
}

#[test]
fn required_starttls_that_is_not_offered_fails() {
    let c = ClientConfig {
        starttls: StartTls::Required,
        ..ClientConfig::default()
    };
    let p = session(c, Auto::new(ServerConfig::default(), &[]));
    assert_eq!(
        p.client.events[0],
        ClientEvent::Failed(Failure::TlsUnavailable)
    );
}

#[test]
fn starttls_when_offered() {
    let mut sim = Sim::new(Client::new(ClientConfig::default()));
    sim.opened(ConnId(1));
    sim.data(ConnId(1), b"220 hi\r\n");
    sim.data(ConnId(1), b"250-hi\r\n250 STARTTLS\r\n");
    sim.data(ConnId(1), b"220 go ahead\r\n");
    assert!(sim
        .opens
        .iter()
        .any(|(_, o)| matches!(o, twill_core::Open::StartTls { .. })));
    assert!(sim.sent_text(ConnId(1)).ends_with("STARTTLS\r\n"));
}

#[test]
fn silence_times_out() {
    let mut sim = Sim::new(Client::new(ClientConfig::default()));
    sim.opened(ConnId(1));
    sim.advance(Duration::from_secs(301));
    assert_eq!(
        sim.events,
        [ClientEvent::Failed(Failure::Timeout), ClientEvent::Closed]
    );
    assert_eq!(sim.closes, [(ConnId(1), twill_core::Close::Abort)]);
}
