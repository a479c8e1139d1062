//! The server machine on scripts: message bytes survive unstuffing in any
//! chunking, and each kind of bad input gets the RFC's reply while the
//! session goes on (or closes with 421 where it must).

mod common;

use common::{codes, config, Auto};
use twill_core::testing::{assert_chunking, Sim, Step};
use twill_core::{Close, ConnId, Machine, Open, Output};
use twill_smtp::{Server, ServerConfig, ServerEvent, Violation};

const C: ConnId = ConnId(1);

fn script(parts: &[&[u8]]) -> Vec<Step> {
    let mut v = vec![Step::Accept(C)];
    v.extend(parts.iter().map(|p| Step::Data(C, p.to_vec())));
    v
}

fn messages(events: &[ServerEvent]) -> Vec<twill_smtp::Message> {
    events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Message(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn message_bytes_survive_any_chunking() {
    // 8-bit text, a line at the 998-octet limit, lines starting with dots.
    let mut body = Vec::new();
    body.extend_from_slice("Subject: caf\u{e9}\r\n\r\n".as_bytes());
    body.extend_from_slice(&[b'L'; 998]);
    body.extend_from_slice(b"\r\n.\r\n..\r\n.leading dot\r\n\xff\xfe raw 8-bit\r\n");
    let mut wire = Vec::new();
    let mut stuffed = bytes::BytesMut::new();
    twill_smtp::codec::stuff(&body, &mut stuffed);
    wire.extend_from_slice(
        b"EHLO c\r\nMAIL FROM:<a@x.org> BODY=8BITMIME\r\nRCPT TO:<b@localhost>\r\nDATA\r\n",
    );
    wire.extend_from_slice(&stuffed);
    wire.extend_from_slice(b"QUIT\r\n");
    let trace = assert_chunking(
        || Auto::new(ServerConfig::default(), &[]),
        &script(&[&wire]),
    );
    let m = messages(&trace.events);
    assert_eq!(m.len(), 1);
    assert_eq!(&m[0].data[..], &body[..]);
    assert_eq!(m[0].to, ["b@localhost"]);
    assert_eq!(codes(&trace.sent[&C]), [220, 250, 250, 250, 354, 250, 221]);
}

#[test]
fn bdat_chunks_are_taken_raw() {
    let steps = script(&[
        b"EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<b@localhost>\r\nBDAT 4\r\n.\r\n\r",
        b"BDAT 3 LAST\r\n\n.x",
        b"QUIT\r\n",
    ]);
    let trace = assert_chunking(|| Auto::new(ServerConfig::default(), &[]), &steps);
    let m = messages(&trace.events);
    assert_eq!(&m[0].data[..], b".\r\n\r\n.x");
    assert_eq!(m[0].from, "");
    assert_eq!(codes(&trace.sent[&C]), [220, 250, 250, 250, 250, 250, 221]);
}

#[test]
fn over_long_command_line_gets_500_and_the_session_goes_on() {
    let mut long = vec![b'N'; 5000];
    long.extend_from_slice(b"\r\nNOOP\r\n");
    let trace = assert_chunking(
        || Auto::new(ServerConfig::default(), &[]),
        &script(&[b"EHLO c\r\n", &long]),
    );
    assert_eq!(codes(&trace.sent[&C]), [220, 250, 500, 250]);
    assert!(trace
        .events
        .contains(&ServerEvent::Violation(Violation::LineTooLong)));
}

#[test]
fn a_thousand_recipients_get_452_after_the_limit() {
    let mut s = b"EHLO c\r\nMAIL FROM:<a@x.org>\r\n".to_vec();
    for i in 0..1000 {
        s.extend_from_slice(format!("RCPT TO:<u{i}@localhost>\r\n").as_bytes());
    }
    s.extend_from_slice(b"DATA\r\nhi\r\n.\r\nQUIT\r\n");
    let mut sim = Sim::new(Auto::new(ServerConfig::default(), &[]));
    sim.accept(C);
    sim.data(C, &s);
    let c = codes(&sim.sent[&C]);
    assert_eq!(c.iter().filter(|x| **x == 452).count(), 900);
    assert_eq!(c.iter().filter(|x| **x == 250).count(), 2 + 100 + 1);
    assert_eq!(&c[c.len() - 3..], [354, 250, 221]);
    assert_eq!(messages(&sim.events)[0].to.len(), 100);
}

#[test]
fn no_open_relay_unless_authenticated() {
    let cfg = ServerConfig {
        local_domains: vec!["here.org".into()],
        ..ServerConfig::default()
    };
    let steps = script(&[
        b"EHLO c\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@elsewhere.net>\r\nRCPT TO:<b@HERE.org>\r\nRSET\r\n",
        b"AUTH PLAIN AHUAcA==\r\nMAIL FROM:<u@here.org>\r\nRCPT TO:<b@elsewhere.net>\r\n",
    ]);
    let trace = assert_chunking(|| Auto::new(cfg.clone(), &[("u", "p")]), &steps);
    assert_eq!(
        codes(&trace.sent[&C]),
        [220, 250, 250, 550, 250, 250, 235, 250, 250]
    );
}

#[test]
fn auth_before_starttls_is_refused_where_required() {
    let cfg = ServerConfig {
        starttls: true,
        auth_requires_tls: true,
        ..ServerConfig::default()
    };
    let mut sim = Sim::new(Auto::new(cfg, &[("u", "p")]));
    sim.accept(C);
    sim.data(C, b"EHLO c\r\n");
    let ehlo = sim.sent_text(C);
    assert!(
        ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"),
        "{ehlo}"
    );
    sim.data(C, b"AUTH PLAIN AHUAcA==\r\n");
    assert_eq!(codes(&sim.sent[&C]), [220, 250, 538]);
    // STARTTLS: the go-ahead, then StartTls, and nothing past the command
    // is taken (the TLS layer refuses plaintext sent before the 220).
    let n = sim
        .machine
        .server
        .handle_input(
            sim.clock.now(),
            twill_core::Input::Data {
                conn: C,
                bytes: b"STARTTLS\r\nEHLO injected\r\n",
            },
        )
        .unwrap();
    assert_eq!(n, 10);
    let mut opened = false;
    let mut sent = Vec::new();
    loop {
        match sim.machine.poll_output() {
            Output::Open {
                how: Open::StartTls { .. },
                ..
            } => opened = true,
            Output::Transmit {
                payload: twill_core::Payload::Bytes(b),
                ..
            } => sent.extend_from_slice(&b),
            Output::Wait { .. } => break,
            _ => {}
        }
    }
    assert!(opened);
    assert_eq!(codes(&sent), [220]);
}

#[test]
fn too_many_errors_close_with_421() {
    let cfg = ServerConfig {
        max_errors: 3,
        ..ServerConfig::default()
    };
    let steps = script(&[b"EHLO c\r\nFOO\r\nBAR\r\nMAIL\r\nBAZ\r\nNOOP\r\n"]);
    let trace = assert_chunking(|| Auto::new(cfg.clone(), &[]), &steps);
    assert_eq!(codes(&trace.sent[&C]), [220, 250, 500, 500, 501, 500, 421]);
    assert_eq!(trace.closes, [(C, Close::Graceful)]);
}

#[test]
fn the_answer_to_a_message_waits_for_the_store() {
    let mut sim = Sim::new(Server::new(ServerConfig::default()));
    sim.accept(C);
    sim.data(
        C,
        b"HELO c\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@localhost>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n",
    );
    // Stored? Not yet: no 250 for the message, QUIT still held.
    assert_eq!(codes(&sim.sent[&C]), [220, 250, 250, 250, 354]);
    assert_eq!(sim.held(C), 6);
    sim.machine
        .answer_message(twill_smtp::Delivery::Stored("x".into()))
        .unwrap();
    sim.drain();
    assert_eq!(codes(&sim.sent[&C]), [220, 250, 250, 250, 354, 250, 221]);
    assert!(sim
        .machine
        .answer_message(twill_smtp::Delivery::Stored("x".into()))
        .is_ok());
}

#[test]
fn eof_in_data_stores_nothing() {
    let trace = assert_chunking(
        || Auto::new(ServerConfig::default(), &[]),
        &[
            Step::Accept(C),
            Step::Data(
                C,
                b"HELO c\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@localhost>\r\nDATA\r\npartial\r\n"
                    .to_vec(),
            ),
            Step::Eof(C),
        ],
    );
    assert!(messages(&trace.events).is_empty());
    assert!(trace
        .events
        .contains(&ServerEvent::Violation(Violation::EofInMessage)));
}

#[test]
fn unknown_users_and_bad_sequences() {
    let cfg = config("localhost", &["localhost"], Some(&["alice"]));
    let steps = script(&[
        b"MAIL FROM:<a@x.org>\r\nHELO c\r\nRCPT TO:<alice@localhost>\r\nMAIL FROM:<a@x.org>\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<bob@localhost>\r\nRCPT TO:<Postmaster>\r\nVRFY alice\r\nHELP\r\nMAIL FROM:<x@y> FOO=1\r\n",
    ]);
    let trace = assert_chunking(|| Auto::new(cfg.clone(), &[]), &steps);
    assert_eq!(
        codes(&trace.sent[&C]),
        [220, 503, 250, 503, 250, 503, 550, 250, 252, 214, 503]
    );
}

#[test]
fn commands_pipelined_after_data_are_message_content() {
    // RFC 2920 §3.1: DATA ends a pipelined group; what a client sends
    // after it before the 354 is the message (RFC 5321 §4.1.1.4), not
    // commands — so "RSET" and "QUIT" here are two lines of text, and only
    // the QUIT after the end of data is a command.
    let steps = script(&[
        b"EHLO c\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<b@localhost>\r\nDATA\r\nRSET\r\nQUIT\r\n.\r\nQUIT\r\n",
    ]);
    let trace = assert_chunking(|| Auto::new(ServerConfig::default(), &[]), &steps);
    let m = messages(&trace.events);
    assert_eq!(&m[0].data[..], b"RSET\r\nQUIT\r\n");
    assert_eq!(codes(&trace.sent[&C]), [220, 250, 250, 250, 354, 250, 221]);
}
