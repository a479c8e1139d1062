//! The server machine under `Sim` with the virtual clock: keep-alive,
//! HTTP/1.0, pipelining answered in order, 100-continue, HEAD, 1xx,
//! streamed bodies with backpressure, timeouts, upgrade hand-over.

use bytes::Bytes;
use twill_core::switch::{Handover, Switch, SwitchEvent};
use twill_core::testing::Sim;
use twill_core::{Close, ConnId, Duration, Input, Machine, Now, OutQueue, Output, OutputBudget};
use twill_http::{BodyKind, Error, ProtocolError, RequestId, Server, ServerConfig, ServerEvent};

const C: ConnId = ConnId(1);

fn sim_with(cfg: ServerConfig) -> Sim<Server> {
    let mut s = Sim::new(Server::new(cfg));
    s.accept(C);
    s
}

/// The default configuration but closing at once after an error reply
/// (lingering has its own test).
fn sim() -> Sim<Server> {
    sim_with(ServerConfig {
        linger: Duration::ZERO,
        ..ServerConfig::default()
    })
}

fn requests(s: &Sim<Server>) -> Vec<(RequestId, String)> {
    s.events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Request(r) => Some((r.id, r.head.target().to_string())),
            _ => None,
        })
        .collect()
}

/// Answers every open request with its target as the body, newest first
/// (the machine must still send them in request order).
fn answer_all(s: &mut Sim<Server>) {
    let mut reqs = requests(s);
    reqs.reverse();
    for (id, t) in reqs {
        if s.machine.is_open(id) && !s.machine.has_responded(id) {
            s.machine
                .respond_full(id, 200, &[], Bytes::from(t.into_bytes()))
                .unwrap();
        }
    }
    s.drain();
}

/// The bodies of the responses sent, in order (all Content-Length framed).
fn bodies(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("\r\n\r\n") {
        let head = &rest[..i];
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .map_or(0, |v| v.parse().unwrap());
        out.push(rest[i + 4..i + 4 + len].to_string());
        rest = &rest[i + 4 + len..];
    }
    out
}

#[test]
fn simple_get_keeps_alive() {
    let mut s = sim();
    s.data(C, b"GET /hi HTTP/1.1\r\nHost: x\r\n\r\n");
    answer_all(&mut s);
    let text = s.sent_text(C);
    assert!(
        text.starts_with("HTTP/1.1 200 OK\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\n"),
        "{text}"
    );
    assert!(text.ends_with("Content-Length: 3\r\n\r\n/hi"), "{text}");
    assert!(s.closes.is_empty());
    assert!(s
        .events
        .iter()
        .any(|e| matches!(e, ServerEvent::ResponseDone { .. })));
}

#[test]
fn http10_closes_unless_keep_alive() {
    let mut s = sim();
    s.data(C, b"GET / HTTP/1.0\r\n\r\n");
    answer_all(&mut s);
    let text = s.sent_text(C);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("Connection: close\r\n"));
    assert_eq!(s.closes, vec![(C, Close::Graceful)]);

    let mut s = sim();
    s.data(C, b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    answer_all(&mut s);
    assert!(s.sent_text(C).contains("Connection: keep-alive\r\n"));
    assert!(s.closes.is_empty());
}

#[test]
fn connection_close_is_honoured() {
    let mut s = sim();
    s.data(
        C,
        b"GET /a HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n",
    );
    answer_all(&mut s);
    assert_eq!(bodies(&s.sent_text(C)), vec!["/a"]);
    assert_eq!(requests(&s).len(), 1, "nothing is read after a close");
    assert_eq!(s.closes, vec![(C, Close::Graceful)]);
}

#[test]
fn a_later_close_answered_first_does_not_close_earlier_answers() {
    let mut s = sim();
    s.data(
        C,
        b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\nGET /3 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(requests(&s).len(), 3);
    // answer_all answers newest first: /3 (close) before /1 and /2.
    answer_all(&mut s);
    let text = s.sent_text(C);
    assert_eq!(bodies(&text), vec!["/1", "/2", "/3"]);
    assert_eq!(text.matches("Connection: close").count(), 1, "{text}");
    assert!(
        text.rfind("Connection: close") > text.rfind("\r\n\r\n/2"),
        "{text}"
    );
    assert_eq!(s.closes, vec![(C, Close::Graceful)]);
}

#[test]
fn three_pipelined_requests_in_one_read_answered_in_order() {
    let mut s = sim();
    s.data(
        C,
        b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\nGET /3 HTTP/1.1\r\nHost: h\r\n\r\n",
    );
    assert_eq!(requests(&s).len(), 3);
    answer_all(&mut s);
    assert_eq!(bodies(&s.sent_text(C)), vec!["/1", "/2", "/3"]);
    assert!(s.closes.is_empty());
}

#[test]
fn pipelining_is_bounded() {
    let mut s = sim_with(ServerConfig {
        max_pipelined: 2,
        ..ServerConfig::default()
    });
    let one = b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n";
    let many: Vec<u8> = one.iter().copied().cycle().take(one.len() * 5).collect();
    s.data(C, &many);
    assert_eq!(requests(&s).len(), 2);
    s.data(C, one);
    assert!(s.held(C) > 0, "the driver holds the rest");
    // Answering lets the machine read on, two at a time.
    for _ in 0..4 {
        answer_all(&mut s);
    }
    assert_eq!(requests(&s).len(), 6);
    assert_eq!(bodies(&s.sent_text(C)).len(), 6);
    assert_eq!(s.held(C), 0);
}

#[test]
fn expect_continue() {
    let mut s = sim();
    s.data(
        C,
        b"PUT /f HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    );
    let (id, _) = requests(&s)[0].clone();
    let ServerEvent::Request(r) = &s.events[1] else {
        panic!("{:?}", s.events)
    };
    assert!(r.expect_continue);
    assert!(
        s.sent_text(C).is_empty(),
        "no 100 until the app wants the body"
    );
    s.machine.send_continue(id).unwrap();
    s.drain();
    assert_eq!(s.sent_text(C), "HTTP/1.1 100 Continue\r\n\r\n");
    s.data(C, b"hello");
    assert!(s
        .events
        .iter()
        .any(|e| matches!(e, ServerEvent::Body { data, .. } if &data[..] == b"hello")));
    s.machine.respond_full(id, 201, &[], Bytes::new()).unwrap();
    s.drain();
    assert!(s.sent_text(C).contains("HTTP/1.1 201 Created\r\n"));
    assert!(s.closes.is_empty());
}

#[test]
fn expect_continue_refused_closes() {
    let mut s = sim();
    s.data(
        C,
        b"PUT /f HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    );
    let (id, _) = requests(&s)[0].clone();
    s.machine.respond_full(id, 417, &[], Bytes::new()).unwrap();
    s.drain();
    let t = s.sent_text(C);
    assert!(t.starts_with("HTTP/1.1 417 "), "{t}");
    assert!(t.contains("Connection: close\r\n"));
    assert_eq!(s.closes, vec![(C, Close::Graceful)]);
}

#[test]
fn head_sends_no_body() {
    let mut s = sim();
    s.data(C, b"HEAD /abc HTTP/1.1\r\nHost: h\r\n\r\n");
    answer_all(&mut s);
    let t = s.sent_text(C);
    assert!(t.ends_with("Content-Length: 4\r\n\r\n"), "{t}");
}

#[test]
fn informational_then_final() {
    let mut s = sim();
    s.data(C, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    let (id, _) = requests(&s)[0].clone();
    s.machine
        .send_informational(id, 103, &[("Link", "</s.css>; rel=preload")])
        .unwrap();
    assert_eq!(
        s.machine.send_informational(id, 101, &[]),
        Err(Error::BadStatus(101))
    );
    s.machine.respond(id, 204, &[], BodyKind::Empty).unwrap();
    s.drain();
    let t = s.sent_text(C);
    assert!(t.starts_with("HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 204 No Content\r\n"), "{t}");
    assert!(!t.contains("Content-Length"), "{t}");
}

#[test]
fn application_misuse_is_err() {
    let mut s = sim();
    s.data(C, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    let (id, _) = requests(&s)[0].clone();
    assert_eq!(
        s.machine
            .respond(id, 200, &[("Content-Length", "3")], BodyKind::Empty),
        Err(Error::FramingHeader("Content-Length"))
    );
    assert!(matches!(
        s.machine
            .respond(id, 200, &[("X", "a\r\nInjected: 1")], BodyKind::Empty),
        Err(Error::InvalidHeader(_))
    ));
    s.machine
        .respond(id, 200, &[], BodyKind::Length(3))
        .unwrap();
    assert_eq!(
        s.machine.send_body(id, Bytes::from_static(b"abcd")),
        Err(Error::BodyTooLong)
    );
    s.machine.send_body(id, Bytes::from_static(b"ab")).unwrap();
    assert_eq!(s.machine.finish(id, &[]), Err(Error::BodyTooShort));
    s.machine.send_body(id, Bytes::from_static(b"c")).unwrap();
    s.machine.finish(id, &[]).unwrap();
    assert!(matches!(
        s.machine.finish(id, &[]),
        Err(Error::UnknownRequest(_))
    ));
}

#[test]
fn chunked_request_and_chunked_response_with_trailers() {
    let mut s = sim();
    s.data(
        C,
        b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nX-Check: 1\r\n\r\n",
    );
    let (id, _) = requests(&s)[0].clone();
    let body: Vec<u8> = s
        .events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Body { data, .. } => Some(data.to_vec()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(body, b"hello world");
    assert!(s.events.iter().any(|e| matches!(e,
        ServerEvent::BodyEnd { trailers, .. } if trailers.get("x-check") == Some(&b"1"[..]))));
    s.machine.respond(id, 200, &[], BodyKind::Chunked).unwrap();
    s.machine
        .send_body(id, Bytes::from_static(b"hello world"))
        .unwrap();
    s.machine.finish(id, &[("X-Sum", "abc")]).unwrap();
    s.drain();
    let t = s.sent_text(C);
    assert!(
        t.ends_with(
            "Transfer-Encoding: chunked\r\n\r\nb\r\nhello world\r\n0\r\nX-Sum: abc\r\n\r\n"
        ),
        "{t}"
    );
}

#[test]
fn chunked_to_http10_is_close_delimited() {
    let mut s = sim();
    s.data(C, b"GET / HTTP/1.0\r\n\r\n");
    let (id, _) = requests(&s)[0].clone();
    s.machine.respond(id, 200, &[], BodyKind::Chunked).unwrap();
    s.machine.send_body(id, Bytes::from_static(b"abc")).unwrap();
    s.machine.finish(id, &[]).unwrap();
    s.drain();
    let t = s.sent_text(C);
    assert!(t.ends_with("Connection: close\r\n\r\nabc"), "{t}");
    assert_eq!(s.closes, vec![(C, Close::Graceful)]);
}

#[test]
fn streamed_response_waits_for_writable() {
    let mut s = sim_with(ServerConfig {
        budget: OutputBudget::new(1000, 100),
        ..ServerConfig::default()
    });
    s.auto_sent = false;
    s.data(C, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    let (id, _) = requests(&s)[0].clone();
    s.machine.respond(id, 200, &[], BodyKind::Chunked).unwrap();
    s.drain();
    assert!(s.machine.is_writable(id));
    s.machine
        .send_body(id, Bytes::from(vec![b'x'; 2000]))
        .unwrap();
    s.drain();
    assert!(!s.machine.is_writable(id));
    // The peer does not read: pipelined input is not taken either.
    s.data(C, b"GET /2 HTTP/1.1\r\nHost: h\r\n\r\n");
    assert!(s.held(C) > 0);
    s.ack(C);
    assert!(s.events.iter().any(|e| *e == ServerEvent::Writable { id }));
    assert!(s.machine.is_writable(id));
    s.machine.finish(id, &[]).unwrap();
    s.drain();
    s.ack(C);
    assert_eq!(requests(&s).len(), 2, "reading resumed");
    assert_eq!(s.held(C), 0);
}

#[test]
fn flush_reports_are_wanted_only_where_they_change_something() {
    let mut s = sim_with(ServerConfig {
        budget: OutputBudget::new(1000, 100),
        ..ServerConfig::default()
    });
    // Small keep-alive answers: the flushes of under 100 bytes (the
    // low-water mark) are declined and their count kept for later.
    s.data(C, b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n");
    answer_all(&mut s);
    assert!(!s.machine.wants_sent(C));
    let declined = s.machine.pending_output(C).unwrap();
    assert!(declined > 0 && declined <= 100, "{declined}");
    // Past the low-water mark the next flush is reported, with all the
    // bytes declined before it: the count is exact again.
    s.data(C, b"GET /b HTTP/1.1\r\nHost: h\r\n\r\n");
    let (id, _) = requests(&s)[1].clone();
    s.machine
        .respond_full(id, 200, &[], Bytes::from(vec![b'y'; 300]))
        .unwrap();
    s.drain();
    assert_eq!(s.machine.pending_output(C), Some(0));
    assert_eq!(bodies(&s.sent_text(C)).len(), 2);
    // A response waiting for room wants every report.
    s.auto_sent = false;
    s.data(C, b"GET /c HTTP/1.1\r\nHost: h\r\n\r\n");
    let (id, _) = requests(&s)[2].clone();
    s.machine.respond(id, 200, &[], BodyKind::Chunked).unwrap();
    s.machine
        .send_body(id, Bytes::from(vec![b'x'; 2000]))
        .unwrap();
    s.drain();
    assert!(s.machine.wants_sent(C));
    s.ack(C);
    assert!(s.events.iter().any(|e| *e == ServerEvent::Writable { id }));
}

#[test]
fn paused_body_is_a_short_take() {
    let mut s = sim();
    s.data(
        C,
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc",
    );
    let (id, _) = requests(&s)[0].clone();
    s.machine.pause_body(id).unwrap();
    s.data(C, b"defghij");
    assert_eq!(s.held(C), 7);
    s.machine.resume_body(id).unwrap();
    s.drain();
    assert_eq!(s.held(C), 0);
    assert!(s
        .events
        .iter()
        .any(|e| matches!(e, ServerEvent::BodyEnd { .. })));
}

#[test]
fn header_timeout_gives_408() {
    let mut s = sim();
    s.data(C, b"GET / HTTP/1.1\r\nHost: h\r\n");
    s.advance(Duration::from_secs(29));
    assert!(s.closes.is_empty());
    s.advance(Duration::from_secs(2));
    let t = s.sent_text(C);
    assert!(t.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{t}");
    assert_eq!(s.closes, vec![(C, Close::Graceful)]);
}

#[test]
fn stalled_request_body_gets_408() {
    let mut s = sim();
    s.data(
        C,
        b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc",
    );
    // Progress restarts the timer.
    s.advance(Duration::from_secs(50));
    s.data(C, b"de");
    s.advance(Duration::from_secs(50));
    assert!(s.closes.is_empty(), "a body that moves is not stalled");
    // Paused by the application: not the client's fault.
    let (id, _) = requests(&s)[0].clone();
    s.machine.pause_body(id).unwrap();
    s.drain();
    s.advance(Duration::from_secs(300));
    assert!(
        s.closes.is_empty(),
        "no timeout while the app pauses the body"
    );
    s.machine.resume_body(id).unwrap();
    s.drain();
    s.advance(Duration::from_secs(59));
    assert!(s.closes.is_empty(), "the timer restarts at the resume");
    s.advance(Duration::from_secs(2));
    let t = s.sent_text(C);
    assert!(t.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{t}");
    assert_eq!(s.closes, vec![(C, Close::Graceful)]);
    assert!(s.events.iter().any(|e| matches!(
        e,
        ServerEvent::Violation {
            error: ProtocolError::BodyTimeout,
            status: Some(408),
            ..
        }
    )));
}

#[test]
fn stalled_body_after_the_response_began_just_closes() {
    let mut s = sim();
    s.data(
        C,
        b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc",
    );
    let (id, _) = requests(&s)[0].clone();
    s.machine.respond(id, 200, &[], BodyKind::Chunked).unwrap();
    s.drain();
    s.advance(Duration::from_secs(61));
    assert_eq!(s.closes, vec![(C, Close::Graceful)]);
    assert!(!s.sent_text(C).contains("408"));
}

#[test]
fn expect_continue_not_yet_sent_is_not_a_stall() {
    let mut s = sim();
    s.data(
        C,
        b"PUT /x HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    );
    s.advance(Duration::from_secs(300));
    assert!(s.closes.is_empty());
}

#[test]
fn idle_keep_alive_timeout() {
    let mut s = sim();
    s.data(C, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    s.advance(Duration::from_secs(120));
    assert!(s.closes.is_empty(), "no timeout while the app works");
    answer_all(&mut s);
    s.advance(Duration::from_secs(59));
    assert!(s.closes.is_empty());
    s.advance(Duration::from_secs(2));
    assert_eq!(s.closes, vec![(C, Close::Graceful)]);
    assert!(s
        .events
        .iter()
        .any(|e| matches!(e, ServerEvent::IdleTimeout { .. })));
    assert_eq!(bodies(&s.sent_text(C)), vec!["/"], "no 408 when idle");
}

#[test]
fn eof_after_requests_answers_then_closes() {
    let mut s = sim();
    s.data(C, b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n");
    s.eof(C);
    assert!(s.closes.is_empty());
    answer_all(&mut s);
    assert_eq!(bodies(&s.sent_text(C)), vec!["/a"]);
    assert_eq!(s.closes, vec![(C, Close::Graceful)]);
}

#[test]
fn error_after_pipelined_requests_waits_its_turn() {
    let mut s = sim();
    s.data(
        C,
        b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/9.9\r\nHost: h\r\n\r\n",
    );
    assert!(s.sent_text(C).is_empty());
    answer_all(&mut s);
    let t = s.sent_text(C);
    let a = t.find("/a").unwrap();
    let e = t.find("HTTP/1.1 505").unwrap();
    assert!(a < e, "{t}");
    assert_eq!(s.closes, vec![(C, Close::Graceful)]);
}

#[test]
fn bad_chunk_answers_400_in_place_of_the_request() {
    let mut s = sim();
    s.data(
        C,
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXX",
    );
    let t = s.sent_text(C);
    assert!(t.starts_with("HTTP/1.1 400 "), "{t}");
    assert!(s
        .events
        .iter()
        .any(|e| matches!(e, ServerEvent::Aborted { .. })));
    assert_eq!(s.closes, vec![(C, Close::Graceful)]);
}

#[test]
fn connections_are_independent() {
    let mut s = sim();
    let d = ConnId(2);
    s.accept(d);
    s.data(C, b"GET / HTTP/1.1\r\nHost : h\r\n\r\n");
    s.data(d, b"GET /ok HTTP/1.1\r\nHost: h\r\n\r\n");
    answer_all(&mut s);
    assert!(s.sent_text(C).starts_with("HTTP/1.1 400 "));
    assert_eq!(bodies(&s.sent_text(d)), vec!["/ok"]);
    assert_eq!(s.closes, vec![(C, Close::Graceful)]);
}

/// Upper-cases whatever it gets, on any connection: the machine an
/// upgrade hands over to.
#[derive(Default)]
struct Upper {
    out: OutQueue<()>,
    /// Bytes it transmitted, and bytes reported sent to it.
    queued: usize,
    sent: usize,
}

impl Machine for Upper {
    type Event = ();
    type Error = Error;
    fn handle_input(&mut self, _now: Now, input: Input<'_>) -> Result<usize, Error> {
        match input {
            Input::Data { conn, bytes } => {
                self.out
                    .transmit(conn, Bytes::from(bytes.to_ascii_uppercase()));
                self.queued += bytes.len();
                return Ok(bytes.len());
            }
            Input::Eof { conn, .. } => {
                self.out.transmit(conn, Bytes::from_static(b"<EOF>"));
                self.queued += 5;
                self.out.close(conn, Close::Graceful);
            }
            Input::Sent { bytes, .. } => self.sent += bytes,
            _ => {}
        }
        Ok(0)
    }
    fn handle_timeout(&mut self, _now: Now) {}
    fn poll_output(&mut self) -> Output<()> {
        self.out.pop_or_wait(None)
    }
}

type Up = fn(ServerEvent) -> Result<Handover<Upper>, ServerEvent>;

fn up(e: ServerEvent) -> Result<Handover<Upper>, ServerEvent> {
    match e {
        ServerEvent::Upgraded {
            conn,
            rest,
            unflushed,
            ..
        } => Ok(Handover {
            conn,
            rest,
            next: Upper::default(),
            unflushed,
        }),
        e => Err(e),
    }
}

/// Accepts the upgrade request the server reported (to `shout`).
fn accept_shout(s: &mut Sim<Switch<Server, Upper, Up>>) {
    let id = s
        .events
        .iter()
        .find_map(|e| match e {
            SwitchEvent::First(ServerEvent::Request(r)) if r.upgrade => Some(r.id),
            _ => None,
        })
        .expect("upgrade request");
    s.machine
        .first()
        .accept_upgrade(id, &[("Upgrade", "shout")])
        .unwrap();
}

#[test]
fn upgrade_hands_over_with_leftover_bytes() {
    let mut s: Sim<Switch<Server, Upper, Up>> = Sim::new(Switch::new(Server::default(), up));
    s.accept(C);
    s.data(
        C,
        b"GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: shout\r\nConnection: Upgrade\r\n\r\nearly bytes ",
    );
    s.data(C, b"held by the driver");
    assert!(s.held(C) > 0, "no input taken until the app decides");
    accept_shout(&mut s);
    s.drain();
    let t = s.sent_text(C);
    assert!(t.starts_with("HTTP/1.1 101 Switching Protocols\r\n"), "{t}");
    assert!(
        t.ends_with("Connection: upgrade\r\nUpgrade: shout\r\n\r\nEARLY BYTES HELD BY THE DRIVER"),
        "{t}"
    );
    assert!(s
        .events
        .iter()
        .any(|e| matches!(e, SwitchEvent::Switched { conn } if *conn == C)));
    s.data(C, b"!more");
    assert!(s.sent_text(C).ends_with("DRIVER!MORE"));
}

#[test]
fn the_next_machine_hears_only_of_its_own_output_flushing() {
    // A keep-alive answer first (its flush report declined and kept for
    // later), then the upgrade: every report after the switch starts with
    // the HTTP bytes, which the next machine never wrote.
    let mut s: Sim<Switch<Server, Upper, Up>> = Sim::new(Switch::new(Server::default(), up));
    s.accept(C);
    s.data(C, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    let ids: Vec<RequestId> = s
        .events
        .iter()
        .filter_map(|e| match e {
            SwitchEvent::First(ServerEvent::Request(r)) => Some(r.id),
            _ => None,
        })
        .collect();
    s.machine
        .first()
        .respond_full(ids[0], 200, &[], Bytes::from_static(b"hi"))
        .unwrap();
    s.drain();
    assert!(s.machine.first().pending_output(C).unwrap() > 0, "declined");
    s.data(
        C,
        b"GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: shout\r\nConnection: Upgrade\r\n\r\n",
    );
    accept_shout(&mut s);
    s.drain();
    s.data(C, b"abc");
    s.data(C, b"defg");
    let up = s.machine.second(C).expect("switched");
    assert_eq!(up.queued, 7);
    assert_eq!(
        up.sent, 7,
        "reports of the HTTP bytes reached the next machine"
    );
}

#[test]
fn eof_before_the_upgrade_is_accepted_reaches_the_next_machine_after_the_leftover() {
    let mut s: Sim<Switch<Server, Upper, Up>> = Sim::new(Switch::new(Server::default(), up));
    s.accept(C);
    s.data(
        C,
        b"GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: shout\r\nConnection: Upgrade\r\n\r\nlast words",
    );
    // The client half-closes while the application is still deciding.
    s.eof(C);
    assert!(s.closes.is_empty(), "the upgrade is still owed an answer");
    accept_shout(&mut s);
    s.drain();
    let t = s.sent_text(C);
    assert!(t.ends_with("\r\n\r\nLAST WORDS<EOF>"), "{t}");
    assert_eq!(s.closes, vec![(C, Close::Graceful)]);
}

#[test]
fn declined_upgrade_continues_as_http() {
    let mut s = sim();
    s.data(
        C,
        b"GET /a HTTP/1.1\r\nHost: h\r\nUpgrade: shout\r\nConnection: upgrade\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n",
    );
    assert_eq!(requests(&s).len(), 1);
    answer_all(&mut s);
    answer_all(&mut s);
    assert_eq!(bodies(&s.sent_text(C)), vec!["/a", "/b"]);
}

#[test]
fn connect_tunnel_gets_200() {
    let mut s = sim();
    s.data(
        C,
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n\x16\x03\x01",
    );
    let (id, t) = requests(&s)[0].clone();
    assert_eq!(t, "example.com:443");
    s.machine.accept_upgrade(id, &[]).unwrap();
    s.drain();
    assert!(s.sent_text(C).starts_with("HTTP/1.1 200 OK\r\n"));
    let rest = s
        .events
        .iter()
        .find_map(|e| match e {
            ServerEvent::Upgraded { rest, .. } => Some(rest.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(&rest[..], b"\x16\x03\x01");
    assert!(s.machine.conns().next().is_none());
}

#[test]
fn timers_of_many_connections() {
    let mut s = sim();
    s.data(C, b"GET / HTTP/1.1\r\n");
    s.advance(Duration::from_secs(10));
    let d = ConnId(2);
    s.accept(d);
    let e = ConnId(3);
    s.accept(e);
    s.data(e, b"GET /e HTTP/1.1\r\nHost: h\r\n\r\n");
    s.advance(Duration::from_secs(21));
    assert_eq!(
        s.closes,
        vec![(C, Close::Graceful)],
        "408 for the slow head"
    );
    assert!(s.sent_text(C).starts_with("HTTP/1.1 408 "));
    answer_all(&mut s);
    s.advance(Duration::from_secs(40));
    assert_eq!(s.closes.len(), 2, "{:?}", s.closes);
    assert_eq!(s.closes[1], (d, Close::Graceful), "idle since 10 s");
    s.advance(Duration::from_secs(30));
    assert_eq!(s.closes.len(), 3, "{:?}", s.closes);
    assert_eq!(s.closes[2], (e, Close::Graceful), "idle since its answer");
    assert_eq!(s.deadline(), None);
}

#[test]
fn nothing_is_sent_after_a_closing_response() {
    let mut s = sim();
    s.data(
        C,
        b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n",
    );
    let reqs = requests(&s);
    // The second is answered first (held), then the first ends the
    // connection.
    s.machine
        .respond_full(reqs[1].0, 200, &[], Bytes::from_static(b"two"))
        .unwrap();
    s.machine
        .respond_full(
            reqs[0].0,
            200,
            &[("Connection", "close")],
            Bytes::from_static(b"one"),
        )
        .unwrap();
    s.drain();
    assert_eq!(bodies(&s.sent_text(C)), vec!["one"]);
    assert_eq!(s.closes, vec![(C, Close::Graceful)]);
    assert!(s
        .events
        .iter()
        .any(|e| *e == ServerEvent::Aborted { id: reqs[1].0 }));
}

#[test]
fn error_replies_linger() {
    let mut s = sim_with(ServerConfig::default());
    s.data(
        C,
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999\r\n\r\nbody...",
    );
    assert!(s.sent_text(C).starts_with("HTTP/1.1 413 "));
    assert_eq!(s.closes, vec![(C, Close::WriteHalf)]);
    // What the client still sends is read and dropped.
    s.data(C, &[b'x'; 10_000]);
    assert_eq!(s.held(C), 0);
    s.eof(C);
    assert_eq!(s.closes, vec![(C, Close::WriteHalf), (C, Close::Graceful)]);

    // Without the client's EOF, the linger time ends it.
    let d = ConnId(2);
    s.accept(d);
    s.data(d, b"GET / HTTP/1.1\r\nHost : h\r\n\r\n");
    assert_eq!(s.closes.last(), Some(&(d, Close::WriteHalf)));
    s.advance(Duration::from_millis(1900));
    assert_eq!(s.closes.last(), Some(&(d, Close::WriteHalf)));
    s.advance(Duration::from_millis(200));
    assert_eq!(s.closes.last(), Some(&(d, Close::Graceful)));
}

#[test]
fn only_requests_with_a_body_get_body_end() {
    let mut s = sim();
    s.data(
        C,
        b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nPOST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\nPOST /c HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nok",
    );
    assert_eq!(requests(&s).len(), 3);
    let ends: Vec<RequestId> = s
        .events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::BodyEnd { id, .. } => Some(*id),
            _ => None,
        })
        .collect();
    // Only /c has a body; the others are whole with their heads.
    assert_eq!(ends, vec![requests(&s)[2].0]);
    assert!(s.events.iter().any(|e| matches!(
        e,
        ServerEvent::Request(r) if r.head.target() == "/b" && r.body.is_empty()
    )));
}

#[test]
fn status_and_date_lines_follow_each_response() {
    // The status line and Date line are cached together: a new status or
    // a new second must not reuse the old ones.
    let mut s = sim();
    s.data(
        C,
        b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n",
    );
    let reqs = requests(&s);
    s.machine
        .respond_full(reqs[0].0, 200, &[], Bytes::from_static(b"a"))
        .unwrap();
    s.machine
        .respond_full(reqs[1].0, 404, &[], Bytes::from_static(b"b"))
        .unwrap();
    s.drain();
    s.advance(Duration::from_secs(2));
    s.data(C, b"GET /c HTTP/1.1\r\nHost: h\r\n\r\n");
    let id = requests(&s)[2].0;
    s.machine
        .respond_full(id, 404, &[], Bytes::from_static(b"c"))
        .unwrap();
    s.drain();
    let text = s.sent_text(C);
    let heads: Vec<&str> = text
        .split("HTTP/1.1 ")
        .skip(1)
        .map(|r| r.split("\r\nContent-Length").next().unwrap())
        .collect();
    assert_eq!(
        heads,
        [
            "200 OK\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT",
            "404 Not Found\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT",
            "404 Not Found\r\nDate: Thu, 01 Jan 2026 00:00:02 GMT",
        ],
        "{text}"
    );
}

#[test]
fn a_pipelined_batch_leaves_as_one_payload_in_order() {
    const D: ConnId = ConnId(2);
    let mut s = sim();
    s.accept(D);
    s.data(C, b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\nGET /3 HTTP/1.1\r\nHost: h\r\n\r\n");
    s.data(D, b"GET /d HTTP/1.1\r\nHost: h\r\n\r\n");
    s.take_outbox();
    let reqs = requests(&s);
    // C's answers in order, one of D's in the middle of them, then the
    // last of C's with Connection: close.
    let r = |s: &mut Sim<Server>, i: usize, h: &[(&str, &str)]| {
        let (id, t) = reqs[i].clone();
        s.machine
            .respond_full(id, 200, h, Bytes::from(t.into_bytes()))
            .unwrap();
    };
    r(&mut s, 0, &[]);
    r(&mut s, 1, &[]);
    r(&mut s, 3, &[]);
    r(&mut s, 2, &[("Connection", "close")]);
    s.drain();
    let out = s.take_outbox();
    let conns: Vec<ConnId> = out.iter().map(|(c, _)| *c).collect();
    // /1 and /2 wait together; D's answer sends them first; /3 follows.
    assert_eq!(conns, [C, D, C], "{out:?}");
    assert_eq!(bodies(&s.sent_text(C)), ["/1", "/2", "/3"]);
    assert_eq!(bodies(&s.sent_text(D)), ["/d"]);
    assert!(s.sent_text(C).contains("Connection: close\r\n"));
    // The close comes after the last bytes, and D stays open.
    assert!(s.closes.iter().any(|(c, _)| *c == C));
    assert!(!s.closes.iter().any(|(c, _)| *c == D));
}
