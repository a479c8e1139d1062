//! Behaviour of the machines under the simulated driver: limits close one
//! connection only, backpressure pauses and resumes, slow chat readers are
//! dropped, and a Framed client talks to the Echo server over a Pair.

use std::net::SocketAddr;

use twill_basic::chargen::{self, Chargen};
use twill_basic::{
    Chat, ChatEvent, Daytime, DaytimeFormat, Discard, Echo, Error, Framed, FramedEvent,
    FramingError, Lines, Netstring, Prefixed, Qotd, ServiceEvent,
};
use twill_core::testing::{Pair, Sim};
use twill_core::{Close, ConnId, Duration, LimitExceeded, LimitKind, OutputBudget};

const A: ConnId = ConnId(1);
const B: ConnId = ConnId(2);
const C: ConnId = ConnId(3);

fn frames(events: &[FramedEvent], conn: ConnId) -> Vec<Vec<u8>> {
    events
        .iter()
        .filter_map(|e| match e {
            FramedEvent::Frame { conn: c, frame } if *c == conn => Some(frame.to_vec()),
            _ => None,
        })
        .collect()
}

#[test]
fn over_long_line_closes_only_that_connection() {
    let mut sim = Sim::new(Framed::new(Lines::new().max_length(10)));
    sim.auto_closed = false;
    sim.accept(A);
    sim.accept(B);
    sim.data(B, b"hello\n");
    // Eleven bytes and no LF yet: already over the limit.
    sim.data(A, b"0123456789a");
    assert!(sim.events.contains(&FramedEvent::Violation {
        conn: A,
        error: FramingError::Limit(LimitExceeded {
            kind: LimitKind::LineLength,
            max: 10
        }),
    }));
    assert_eq!(sim.closes, vec![(A, Close::Graceful)]);
    // A's later bytes are ignored; B carries on, both ways.
    sim.data(A, b"\nmore\n");
    sim.data(B, b"world\n");
    sim.machine.send(B, b"reply").unwrap();
    sim.drain();
    assert_eq!(frames(&sim.events, A), Vec::<Vec<u8>>::new());
    assert_eq!(
        frames(&sim.events, B),
        vec![b"hello".to_vec(), b"world".to_vec()]
    );
    assert_eq!(sim.sent_text(B), "reply\n");
    assert_eq!(sim.machine.send(A, b"x"), Err(Error::Closing(A)));
    assert!(sim.machine.is_open(B) && !sim.machine.is_open(A));
    sim.closed(A);
    assert!(sim.events.contains(&FramedEvent::Closed { conn: A }));
    assert_eq!(sim.machine.send(A, b"x"), Err(Error::UnknownConn(A)));
}

#[test]
fn framed_refuses_unencodable_frames() {
    let mut sim = Sim::new(Framed::new(Lines::new()));
    sim.accept(A);
    assert_eq!(
        sim.machine.send(A, b"two\nlines"),
        Err(Error::Encode(FramingError::ContainsDelimiter))
    );
    sim.drain();
    assert!(sim.sent.get(&A).map_or(true, |v| v.is_empty()));
    let mut p = Sim::new(Framed::new(Prefixed::u8()));
    p.accept(A);
    assert!(matches!(
        p.machine.send(A, &[0; 300]),
        Err(Error::Encode(FramingError::PrefixOverflow { .. }))
    ));
}

#[test]
fn framed_eof_inside_a_frame_is_a_violation() {
    let mut sim = Sim::new(Framed::new(Netstring::new()));
    sim.accept(A);
    sim.accept(B);
    sim.data(A, b"5:hel");
    sim.eof(A);
    sim.data(B, b"2:ok,");
    sim.eof(B);
    assert!(sim.events.contains(&FramedEvent::Violation {
        conn: A,
        error: FramingError::Truncated { pending: 5 }
    }));
    assert!(sim.events.contains(&FramedEvent::Eof { conn: B }));
    assert_eq!(frames(&sim.events, B), vec![b"ok".to_vec()]);
    // B stays open for the answer until the application closes it.
    sim.machine.send(B, b"bye").unwrap();
    sim.machine.close(B).unwrap();
    sim.drain();
    assert_eq!(sim.sent_text(B), "3:bye,");
    assert_eq!(sim.closes, vec![(A, Close::Graceful), (B, Close::Graceful)]);
}

#[test]
fn framed_writable_after_backpressure() {
    let mut sim = Sim::new(Framed::new(Prefixed::u32()).with_budget(OutputBudget::new(100, 10)));
    sim.auto_sent = false;
    sim.accept(A);
    assert!(sim.machine.is_writable(A));
    sim.machine.send(A, &[1; 150]).unwrap();
    sim.drain();
    assert!(!sim.machine.is_writable(A));
    assert_eq!(sim.machine.pending_output(A), Some(154));
    sim.ack_some(A, 100);
    assert!(!sim.events.contains(&FramedEvent::Writable { conn: A }));
    sim.ack(A);
    assert!(sim.events.contains(&FramedEvent::Writable { conn: A }));
    assert!(sim.machine.is_writable(A));
}

#[test]
fn chargen_produces_only_while_output_drains() {
    let mut sim = Sim::new(Chargen::new());
    sim.auto_sent = false;
    sim.accept(A);
    let high = OutputBudget::default().high;
    let first = sim.unacked(A);
    assert_eq!(first, high, "fills the budget exactly");
    // Nothing acknowledged: nothing more, whatever the client sends.
    sim.data(A, b"ignored");
    sim.advance(Duration::from_secs(10));
    assert_eq!(sim.unacked(A), first);
    // A partial ack above the low-water mark does not restart it.
    sim.ack_some(A, 1000);
    assert_eq!(sim.sent[&A].len(), first);
    // Drained: it produces up to the high-water mark again.
    sim.ack(A);
    assert_eq!(sim.unacked(A), high);
    assert_eq!(sim.sent[&A].len(), 2 * high);
    assert_eq!(sim.held(A), 0, "input is all taken");
    // The stream is the RFC's pattern throughout.
    let all = &sim.sent[&A];
    for (n, line) in all.chunks(chargen::LINE_LEN).enumerate() {
        assert_eq!(line, &chargen::line(n)[..line.len()], "line {n}");
    }
    sim.eof(A);
    assert_eq!(sim.closes, vec![(A, Close::Graceful)]);
}

#[test]
fn chargen_limit_and_datagrams() {
    let mut sim = Sim::new(Chargen::new().with_limit(1000));
    sim.accept(A);
    assert_eq!(sim.sent[&A].len(), 1000);
    assert_eq!(sim.closes, vec![(A, Close::Graceful)]);
    let from: SocketAddr = "192.0.2.7:9".parse().unwrap();
    sim.datagram(ConnId(50), from, b"x");
    sim.datagram(ConnId(50), from, b"y");
    assert_eq!(&sim.datagrams[0].2[..], &chargen::line(0)[..]);
    assert_eq!(&sim.datagrams[1].2[..], &chargen::line(1)[..]);
    let mut r = Sim::new(Chargen::new().with_rng(twill_core::rng::seeded(1)));
    let lens: Vec<usize> = (0..50)
        .map(|_| {
            r.datagram(ConnId(50), from, b"");
            r.datagrams.last().unwrap().2.len()
        })
        .collect();
    assert!(lens.iter().all(|l| *l <= 512));
    assert!(lens.iter().any(|l| *l != lens[0]), "lengths vary: {lens:?}");
}

#[test]
fn echo_short_takes_above_the_budget_and_resumes() {
    let mut sim = Sim::new(Echo::new().with_budget(OutputBudget::new(1000, 100)));
    sim.auto_sent = false;
    sim.accept(A);
    sim.accept(B);
    sim.data(A, &[b'a'; 3000]);
    // Took exactly up to the high-water mark; the driver holds the rest.
    assert_eq!(sim.sent[&A].len(), 1000);
    assert_eq!(sim.held(A), 2000);
    assert!(sim.machine.is_paused(A));
    assert!(sim.events.contains(&ServiceEvent::Paused { conn: A }));
    // More input queues behind, still not taken.
    sim.data(A, &[b'b'; 10]);
    assert_eq!(sim.held(A), 2010);
    // Another connection is unaffected.
    sim.data(B, b"hi");
    assert_eq!(sim.sent_text(B), "hi");
    // Above the low-water mark: still paused.
    sim.ack_some(A, 800);
    assert!(sim.machine.is_paused(A));
    assert_eq!(sim.held(A), 2010);
    // At the low-water mark: Resume, and the driver re-offers.
    sim.ack_some(A, 100);
    assert!(sim.events.contains(&ServiceEvent::Resumed { conn: A }));
    assert_eq!(sim.sent[&A].len(), 1900);
    assert_eq!(sim.held(A), 1110);
    // Drain it all.
    for _ in 0..10 {
        sim.ack(A);
    }
    assert_eq!(sim.held(A), 0);
    let mut want = vec![b'a'; 3000];
    want.extend_from_slice(&[b'b'; 10]);
    assert_eq!(sim.sent[&A], want);
    assert!(sim.closes.is_empty());
}

#[test]
fn echo_half_close_while_paused_still_echoes_everything() {
    let mut sim = Sim::new(Echo::new().with_budget(OutputBudget::new(100, 10)));
    sim.auto_sent = false;
    sim.accept(A);
    sim.data(A, &[7; 500]);
    sim.eof(A);
    // Not closed yet: the driver still holds 400 bytes for us.
    assert!(sim.closes.is_empty());
    for _ in 0..10 {
        sim.ack(A);
    }
    assert_eq!(sim.sent[&A], vec![7; 500]);
    assert_eq!(sim.closes, vec![(A, Close::Graceful)]);
}

#[test]
fn echo_datagrams() {
    let mut sim = Sim::new(Echo::new());
    let from: SocketAddr = "[2001:db8::1]:5000".parse().unwrap();
    sim.datagram(ConnId(9), from, b"ping");
    assert_eq!(sim.datagrams.len(), 1);
    let (sock, to, bytes) = &sim.datagrams[0];
    assert_eq!((*sock, *to, &bytes[..]), (ConnId(9), from, &b"ping"[..]));
}

#[test]
fn discard_daytime_qotd() {
    let mut d = Sim::new(Discard::new());
    d.accept(A);
    d.data(A, b"whatever");
    assert_eq!(d.held(A), 0);
    assert!(!d.sent.contains_key(&A));

    // The simulated clock starts at 2026-01-01T00:00:00Z, a Thursday.
    let mut t = Sim::new(Daytime::new());
    t.accept(A);
    assert_eq!(t.sent_text(A), "Thu, 01 Jan 2026 00:00:00 GMT\r\n");
    assert_eq!(t.closes, vec![(A, Close::Graceful)]);
    let mut t = Sim::new(Daytime::new().with_format(DaytimeFormat::Rfc3339));
    t.advance(Duration::from_secs(3661));
    t.accept(A);
    assert_eq!(t.sent_text(A), "2026-01-01T01:01:01Z\r\n");

    let mut q = Sim::new(Qotd::new(&b"Hello.\r\n"[..]).unwrap());
    q.accept(A);
    assert_eq!(q.sent_text(A), "Hello.\r\n");
    assert_eq!(q.closes, vec![(A, Close::Graceful)]);
    assert_eq!(
        Qotd::new(vec![b'x'; 513]).unwrap_err(),
        Error::QuoteTooLong { len: 513 }
    );
    assert!(Qotd::new(vec![b'x'; 512]).is_ok());
}

#[test]
fn chat_relays_to_the_others() {
    let mut sim = Sim::new(Chat::new());
    for c in [A, B, C] {
        sim.accept(c);
    }
    sim.data(A, b"hello from a\r\n");
    sim.data(B, b"from b, in ");
    sim.data(C, b"from c\n");
    sim.data(B, b"two pieces\n");
    assert_eq!(sim.sent_text(A), "from c\nfrom b, in two pieces\n");
    assert_eq!(sim.sent_text(B), "hello from a\nfrom c\n");
    assert_eq!(sim.sent_text(C), "hello from a\nfrom b, in two pieces\n");
    assert!(sim.events.contains(&ChatEvent::Line {
        conn: A,
        line: bytes::Bytes::from_static(b"hello from a")
    }));
    sim.machine.broadcast(b"notice").unwrap();
    sim.drain();
    assert!(sim.sent_text(C).ends_with("notice\n"));
    // A client that leaves gets nothing more.
    sim.eof(C);
    sim.data(A, b"after c left\n");
    assert!(!sim.sent_text(C).contains("after"));
    assert!(sim.events.contains(&ChatEvent::Left { conn: C }));
    assert_eq!(sim.machine.clients().collect::<Vec<_>>(), vec![A, B]);
}

#[test]
fn chat_long_line_closes_only_that_client() {
    let mut sim = Sim::new(Chat::new().with_max_line(8));
    sim.auto_closed = false;
    for c in [A, B, C] {
        sim.accept(c);
    }
    sim.data(A, b"way too long for the limit");
    assert!(matches!(
        sim.events.last(),
        Some(ChatEvent::Violation { conn: A, .. })
    ));
    assert_eq!(sim.closes, vec![(A, Close::Graceful)]);
    sim.data(B, b"short\n");
    assert_eq!(sim.sent_text(C), "short\n");
    assert_eq!(sim.sent_text(A), "", "a closing client gets nothing");
}

#[test]
fn chat_drops_a_slow_reader() {
    let mut sim = Sim::new(Chat::new().with_max_queued(1000));
    sim.auto_sent = false;
    sim.auto_closed = false;
    for c in [A, B, C] {
        sim.accept(c);
    }
    let line = [b'x'; 99];
    let mut text = line.to_vec();
    text.push(b'\n');
    // B reads everything, C reads nothing.
    for _ in 0..10 {
        sim.data(A, &text);
        sim.ack(B);
    }
    assert_eq!(sim.machine.pending_output(C), Some(1000));
    assert!(sim.closes.is_empty());
    // One more line would take C past its limit: C is dropped, B is not.
    sim.data(A, &text);
    sim.ack(B);
    assert_eq!(sim.closes, vec![(C, Close::Abort)]);
    assert!(sim.events.contains(&ChatEvent::Overflow {
        conn: C,
        queued: 1000
    }));
    sim.data(A, &text);
    assert_eq!(sim.sent[&B].len(), 1200);
    assert_eq!(sim.sent[&C].len(), 1000);
    sim.closed(C);
    assert_eq!(sim.machine.clients().collect::<Vec<_>>(), vec![A, B]);
}

#[test]
fn framed_client_talks_to_echo_server() {
    let mut pair = Pair::new(Framed::new(Lines::new()), Echo::new());
    let (c, s) = pair.connect();
    assert!(pair.client.events.contains(&FramedEvent::Connected {
        conn: c,
        peer: twill_core::Addr::Unknown
    }));
    for line in [&b"one"[..], b"two", b""] {
        pair.client.machine.send(c, line).unwrap();
    }
    pair.client.drain();
    pair.run();
    assert_eq!(
        frames(&pair.client.events, c),
        vec![b"one".to_vec(), b"two".to_vec(), b"".to_vec()]
    );
    // The client closes; the echo server closes its end after flushing.
    pair.client.machine.close(c).unwrap();
    pair.client.drain();
    pair.run();
    assert!(pair
        .server
        .events
        .contains(&ServiceEvent::Closed { conn: s }));
    assert!(pair
        .client
        .events
        .contains(&FramedEvent::Closed { conn: c }));
}

#[test]
fn framed_netstring_client_and_server() {
    let mut pair = Pair::new(Framed::new(Netstring::new()), Framed::new(Netstring::new()));
    let (c, s) = pair.connect();
    pair.client.machine.send(c, b"hello world!").unwrap();
    pair.client.drain();
    pair.run();
    assert_eq!(
        frames(&pair.server.events, s),
        vec![b"hello world!".to_vec()]
    );
    pair.server.machine.send(s, b"").unwrap();
    pair.server.drain();
    pair.run();
    assert_eq!(frames(&pair.client.events, c), vec![Vec::<u8>::new()]);
}

#[test]
fn framed_connect_asks_the_driver() {
    let mut sim = Sim::new(Framed::new(Lines::new()));
    let id = sim.machine.connect("example.invalid", 7);
    sim.drain();
    assert!(id.is_machine_chosen());
    assert_eq!(sim.opens.len(), 1);
    sim.open_failed(id, twill_core::OpenError::NotFound);
    assert!(sim.events.contains(&FramedEvent::OpenFailed {
        conn: id,
        error: twill_core::OpenError::NotFound
    }));
}
