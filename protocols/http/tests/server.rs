//! The server machine under `Sim` with a virtual clock.

use bytes::Bytes;
use twill_core::testing::Sim;
use twill_core::{Close, ConnId, Duration};
use twill_http::{BodyKind, Server, ServerConfig, ServerEvent};

const C: ConnId = ConnId(1);

fn sim() -> Sim<Server> {
    let mut s = Sim::new(Server::new(ServerConfig::default()));
    s.accept(C);
    s
}

/// Answers every request with its target as the body.
fn answer_all(s: &mut Sim<Server>) {
    let reqs: Vec<_> = s
        .events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Request(r) => Some((r.id, r.head.target().to_string())),
            _ => None,
        })
        .collect();
    for (id, t) in reqs {
        if s.machine.is_open(id) && !s.machine.has_responded(id) {
            s.machine
                .respond_full(id, 200, &[], Bytes::from(t.into_bytes()))
                .unwrap();
        }
    }
    s.drain();
}

#[test]
fn simple_get() {
    let mut s = sim();
    s.data(C, b"GET /hi HTTP/1.1\r\nHost: x\r\n\r\n");
    answer_all(&mut s);
    let text = s.sent_text(C);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\nDate: "), "{text}");
    assert!(text.ends_with("Content-Length: 3\r\n\r\n/hi"), "{text}");
    assert!(s.closes.is_empty());
}

#[test]
fn http10_closes() {
    let mut s = sim();
    s.data(C, b"GET / HTTP/1.0\r\n\r\n");
    answer_all(&mut s);
    assert!(s.sent_text(C).contains("Connection: close\r\n"));
    assert_eq!(s.closes, vec![(C, Close::Graceful)]);
}

#[test]
fn idle_timeout_closes() {
    let mut s = sim();
    s.advance(Duration::from_secs(61));
    assert_eq!(s.closes, vec![(C, Close::Graceful)]);
    assert!(s.sent_text(C).is_empty());
    let _ = BodyKind::Empty;
}
