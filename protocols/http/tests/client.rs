//! The client machine against the server machine over an in-memory `Pair`
//! with a virtual clock: keep-alive reuse, every response framing, HEAD /
//! 204 / 304 rules, streamed request bodies, pipelining, upgrade.

use bytes::Bytes;
use twill_core::testing::{Pair, Sim};
use twill_core::{Close, ConnId, Output};
use twill_http::{
    BodyKind, Client, ClientConfig, ClientEvent, Error, RequestId, Server, ServerEvent,
};

type P = Pair<Client, Server>;

/// Answers every open request on the server side as `f` says.
fn serve(p: &mut P, mut f: impl FnMut(&mut Server, &twill_http::Request)) {
    let reqs: Vec<_> = p
        .server
        .events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Request(r) => Some(r.clone()),
            _ => None,
        })
        .collect();
    for r in reqs {
        if p.server.machine.is_open(r.id) && !p.server.machine.has_responded(r.id) {
            f(&mut p.server.machine, &r);
        }
    }
    p.server.drain();
    p.run();
}

fn body_of(events: &[ClientEvent], id: RequestId) -> Vec<u8> {
    events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Body { id: i, data } if *i == id => Some(data.to_vec()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn ended(events: &[ClientEvent], id: RequestId) -> bool {
    events
        .iter()
        .any(|e| matches!(e, ClientEvent::BodyEnd { id: i, .. } if *i == id))
}

fn status_of(events: &[ClientEvent], id: RequestId) -> Option<u16> {
    events.iter().find_map(|e| match e {
        ClientEvent::Response { id: i, head, .. } if *i == id => Some(head.status()),
        _ => None,
    })
}

fn pair() -> (P, ConnId) {
    let mut p = Pair::new(Client::default(), Server::default());
    let (c, _) = p.connect();
    (p, c)
}

#[test]
fn keep_alive_reuse() {
    let (mut p, c) = pair();
    for i in 0..3 {
        let id = p
            .client
            .machine
            .request(c, "GET", &format!("/{i}"), &[], BodyKind::Empty)
            .unwrap();
        // One request at a time without pipelining.
        assert!(p
            .client
            .machine
            .request(c, "GET", "/x", &[], BodyKind::Empty)
            .is_err());
        p.client.drain();
        p.run();
        serve(&mut p, |s, r| {
            s.respond_full(r.id, 200, &[], Bytes::from(r.head.target().to_string()))
                .unwrap()
        });
        assert_eq!(body_of(&p.client.events, id), format!("/{i}").as_bytes());
        assert!(ended(&p.client.events, id));
        assert!(p.client.machine.is_idle(c));
    }
    assert!(p.client.closes.is_empty() && p.server.closes.is_empty());
    let idles = p
        .client
        .events
        .iter()
        .filter(|e| matches!(e, ClientEvent::Idle { .. }))
        .count();
    assert_eq!(idles, 3);
}

#[test]
fn every_response_framing() {
    let (mut p, c) = pair();
    let cases: [(&str, u16, BodyKind, &[u8]); 5] = [
        ("GET", 200, BodyKind::Chunked, b"chunked body"),
        ("GET", 200, BodyKind::Length(6), b"length"),
        ("HEAD", 200, BodyKind::Length(6), b""),
        ("GET", 204, BodyKind::Empty, b""),
        ("GET", 304, BodyKind::Length(99), b""),
    ];
    for (method, status, kind, body) in cases {
        let id = p
            .client
            .machine
            .request(c, method, "/", &[], BodyKind::Empty)
            .unwrap();
        p.client.drain();
        p.run();
        serve(&mut p, |s, r| {
            s.respond(r.id, status, &[], kind).unwrap();
            if !body.is_empty() {
                s.send_body(r.id, Bytes::copy_from_slice(body)).unwrap();
            }
            if s.is_open(r.id) {
                s.finish(r.id, &[]).unwrap();
            }
        });
        assert_eq!(
            status_of(&p.client.events, id),
            Some(status),
            "{method} {status}"
        );
        assert_eq!(body_of(&p.client.events, id), body, "{method} {status}");
        assert!(ended(&p.client.events, id), "{method} {status}");
        assert!(p.client.machine.is_idle(c), "{method} {status}");
    }
}

#[test]
fn close_delimited_response_ends_at_eof() {
    let mut s: Sim<Client> = Sim::new(Client::default());
    let c = ConnId(1);
    s.opened(c);
    let id = s
        .machine
        .request(c, "GET", "/", &[], BodyKind::Empty)
        .unwrap();
    s.drain();
    s.data(c, b"HTTP/1.0 200 OK\r\n\r\nuntil ");
    s.data(c, b"the end");
    assert!(!ended(&s.events, id));
    s.eof(c);
    assert_eq!(body_of(&s.events, id), b"until the end");
    assert!(ended(&s.events, id));
    assert_eq!(s.closes, vec![(c, Close::Graceful)]);
}

#[test]
fn streamed_chunked_upload() {
    let (mut p, c) = pair();
    let id = p
        .client
        .machine
        .request(c, "POST", "/up", &[], BodyKind::Chunked)
        .unwrap();
    for piece in ["one ", "two ", "three"] {
        p.client
            .machine
            .send_body(id, Bytes::from_static(piece.as_bytes()))
            .unwrap();
        p.client.drain();
        p.run();
    }
    p.client.machine.finish(id, &[("X-Count", "3")]).unwrap();
    p.client.drain();
    p.run();
    let got: Vec<u8> = p
        .server
        .events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Body { data, .. } => Some(data.to_vec()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(got, b"one two three");
    assert!(p.server.events.iter().any(|e| matches!(e,
        ServerEvent::BodyEnd { trailers, .. } if trailers.get("x-count") == Some(&b"3"[..]))));
    serve(&mut p, |s, r| {
        s.respond_full(r.id, 201, &[], Bytes::new()).unwrap()
    });
    assert_eq!(status_of(&p.client.events, id), Some(201));
    assert!(p.client.machine.is_idle(c));
}

#[test]
fn expect_continue_round_trip() {
    let (mut p, c) = pair();
    let id = p
        .client
        .machine
        .request(
            c,
            "PUT",
            "/f",
            &[("Expect", "100-continue")],
            BodyKind::Length(4),
        )
        .unwrap();
    p.client.drain();
    p.run();
    let sid = p
        .server
        .events
        .iter()
        .find_map(|e| match e {
            ServerEvent::Request(r) => Some(r.id),
            _ => None,
        })
        .unwrap();
    p.server.machine.send_continue(sid).unwrap();
    p.server.drain();
    p.run();
    assert!(p.client.events.iter().any(|e| matches!(e,
        ClientEvent::Informational { id: i, head } if *i == id && head.status() == 100)));
    p.client
        .machine
        .send_body(id, Bytes::from_static(b"data"))
        .unwrap();
    p.client.machine.finish(id, &[]).unwrap();
    p.client.drain();
    p.run();
    serve(&mut p, |s, r| {
        s.respond_full(r.id, 204, &[], Bytes::new()).unwrap()
    });
    assert_eq!(status_of(&p.client.events, id), Some(204));
    assert!(p.client.machine.is_idle(c));
}

#[test]
fn pipelined_requests_opt_in() {
    let mut p = Pair::new(
        Client::new(ClientConfig {
            pipelining: true,
            ..ClientConfig::default()
        }),
        Server::default(),
    );
    let (c, _) = p.connect();
    let ids: Vec<_> = (0..3)
        .map(|i| {
            p.client
                .machine
                .request(c, "GET", &format!("/{i}"), &[], BodyKind::Empty)
                .unwrap()
        })
        .collect();
    p.client.drain();
    p.run();
    serve(&mut p, |s, r| {
        s.respond_full(r.id, 200, &[], Bytes::from(r.head.target().to_string()))
            .unwrap()
    });
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(body_of(&p.client.events, *id), format!("/{i}").as_bytes());
    }
}

#[test]
fn connection_close_response_is_not_reused() {
    let (mut p, c) = pair();
    let id = p
        .client
        .machine
        .request(c, "GET", "/", &[], BodyKind::Empty)
        .unwrap();
    p.client.drain();
    p.run();
    serve(&mut p, |s, r| {
        s.respond_full(
            r.id,
            200,
            &[("Connection", "close")],
            Bytes::from_static(b"x"),
        )
        .unwrap()
    });
    assert!(ended(&p.client.events, id));
    assert!(!p.client.machine.is_idle(c));
    assert!(p
        .client
        .events
        .iter()
        .any(|e| matches!(e, ClientEvent::Closed { .. })));
}

#[test]
fn upgrade_response_hands_over() {
    let (mut p, c) = pair();
    let id = p
        .client
        .machine
        .request(
            c,
            "GET",
            "/ws",
            &[("Upgrade", "shout"), ("Connection", "upgrade")],
            BodyKind::Empty,
        )
        .unwrap();
    p.client.drain();
    p.run();
    let sid = p
        .server
        .events
        .iter()
        .find_map(|e| match e {
            ServerEvent::Request(r) if r.upgrade => Some(r.id),
            _ => None,
        })
        .unwrap();
    p.server
        .machine
        .accept_upgrade(sid, &[("Upgrade", "shout")])
        .unwrap();
    p.server.drain();
    p.run();
    let (head, rest) = p
        .client
        .events
        .iter()
        .find_map(|e| match e {
            ClientEvent::Upgraded {
                id: i, head, rest, ..
            } if *i == id => Some((head.clone(), rest.clone())),
            _ => None,
        })
        .expect("upgraded");
    assert_eq!(head.status(), 101);
    assert!(rest.is_empty());
    assert!(matches!(
        p.client
            .machine
            .request(c, "GET", "/", &[], BodyKind::Empty),
        Err(Error::UnknownConn(_))
    ));
}

#[test]
fn connect_queues_until_opened() {
    let mut s: Sim<Client> = Sim::new(Client::default());
    let c = s.machine.connect("example.com", 8080);
    let id = s
        .machine
        .request(c, "GET", "/", &[], BodyKind::Empty)
        .unwrap();
    s.drain();
    assert!(s.sent_text(c).is_empty());
    assert_eq!(s.opens.len(), 1);
    s.opened(c);
    let t = s.sent_text(c);
    assert!(
        t.starts_with("GET / HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: twill\r\n\r\n"),
        "{t}"
    );
    let _ = id;
    let _: Option<Output<()>> = None;
}

#[test]
fn bad_response_is_a_violation() {
    let mut s: Sim<Client> = Sim::new(Client::default());
    let c = ConnId(1);
    s.opened(c);
    let id = s
        .machine
        .request(c, "GET", "/", &[], BodyKind::Empty)
        .unwrap();
    s.drain();
    s.data(
        c,
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    );
    assert!(s
        .events
        .iter()
        .any(|e| matches!(e, ClientEvent::Violation { .. })));
    assert!(s.events.iter().any(|e| *e == ClientEvent::Aborted { id }));
    assert_eq!(s.closes, vec![(c, Close::Graceful)]);
}

#[test]
fn response_timeout_fails_a_silent_server_but_not_a_slow_one() {
    use twill_core::Duration;
    let cfg = ClientConfig {
        response_timeout: Some(Duration::from_secs(5)),
        ..ClientConfig::default()
    };
    let mut p = Pair::new(Client::new(cfg), Server::default());
    let (c, _) = p.connect();
    // No request outstanding: an idle connection does not time out (30 s
    // stays below the server's own idle timeout).
    p.advance(Duration::from_secs(30));
    assert!(p.client.closes.is_empty());

    // The server answers, but only after 4 s: in time.
    let id = p
        .client
        .machine
        .request(c, "GET", "/slow", &[], BodyKind::Empty)
        .unwrap();
    p.client.drain();
    p.run();
    p.advance(Duration::from_secs(4));
    serve(&mut p, |s, r| {
        s.respond_full(r.id, 200, &[], Bytes::from_static(b"late"))
            .unwrap();
    });
    assert_eq!(body_of(&p.client.events, id), b"late");
    assert!(p.client.closes.is_empty());

    // Now the server never answers: 5 s later the request fails.
    let id = p
        .client
        .machine
        .request(c, "GET", "/never", &[], BodyKind::Empty)
        .unwrap();
    p.client.drain();
    p.run();
    p.advance(Duration::from_millis(4999));
    assert!(p.client.closes.is_empty(), "not yet");
    p.advance(Duration::from_millis(1));
    assert!(p.client.events.iter().any(|e| matches!(
        e,
        ClientEvent::Violation {
            error: twill_http::ProtocolError::ResponseTimeout,
            ..
        }
    )));
    assert!(p
        .client
        .events
        .iter()
        .any(|e| matches!(e, ClientEvent::Aborted { id: i } if *i == id)));
    assert_eq!(p.client.closes.len(), 1);
}

// --- Expect: 100-continue ---------------------------------------------------

fn expecting() -> (Sim<Client>, ConnId, RequestId) {
    let mut s: Sim<Client> = Sim::new(Client::default());
    let c = ConnId(1);
    s.opened(c);
    let id = s
        .machine
        .request(
            c,
            "PUT",
            "/up",
            &[("Expect", "100-continue")],
            BodyKind::Length(5),
        )
        .unwrap();
    s.machine
        .send_body(id, Bytes::from_static(b"hello"))
        .unwrap();
    s.machine.finish(id, &[]).unwrap();
    s.drain();
    (s, c, id)
}

#[test]
fn body_waits_for_100_continue() {
    let (mut s, c, _) = expecting();
    let t = s.sent_text(c);
    assert!(t.ends_with("\r\n\r\n") && !t.contains("hello"), "{t}");
    s.data(c, b"HTTP/1.1 100 Continue\r\n\r\n");
    assert!(s.sent_text(c).ends_with("\r\n\r\nhello"));
}

#[test]
fn body_goes_anyway_after_the_continue_timeout() {
    let (mut s, c, _) = expecting();
    s.advance(twill_core::Duration::from_millis(900));
    assert!(!s.sent_text(c).contains("hello"), "not before the timeout");
    s.advance(twill_core::Duration::from_millis(200));
    assert!(s.sent_text(c).ends_with("hello"));
}

#[test]
fn final_response_before_100_drops_the_body_and_the_connection() {
    let (mut s, c, id) = expecting();
    s.data(
        c,
        b"HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(status_of(&s.events, id), Some(417));
    s.advance(twill_core::Duration::from_secs(5));
    assert!(!s.sent_text(c).contains("hello"), "the body is never sent");
    assert!(!s.machine.is_idle(c), "not reused");
    assert!(s.closes.iter().any(|(cc, _)| *cc == c));
}
