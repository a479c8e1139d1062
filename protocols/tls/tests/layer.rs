//! `Tls<M>` over the in-memory `Pair` and `Sim` with certificates made by
//! rcgen at test time: handshake, chunking, SNI, ALPN, truncation, garbage,
//! timeouts, `Sent` accounting and STARTTLS with the injection defence.

use bytes::Bytes;
use twill_basic::{Echo, Framed, FramedEvent, Lines};
use twill_core::testing::{Pair, Sim};
use twill_core::{
    Close, ConnId, Duration, Input, Machine, Now, Open, OpenError, OutQueue, Output, Role, TlsInfo,
};
use twill_tls::demo::{StartTlsEcho, StartTlsEvent};
use twill_tls::{ClientSetup, Failure, ServerSetup, Tls, TlsContext, TlsEvent};

struct Cert {
    pem: String,
    key: String,
    der: Vec<u8>,
}

fn cert(name: &str) -> Cert {
    let c = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
    Cert {
        pem: c.cert.pem(),
        key: c.key_pair.serialize_pem(),
        der: c.cert.der().to_vec(),
    }
}

fn server_ctx(c: &Cert) -> TlsContext {
    let setup = ServerSetup::from_pem(c.pem.as_bytes(), c.key.as_bytes()).unwrap();
    TlsContext::new().with_server(&setup).unwrap()
}

fn client_ctx(cas: &[&Cert]) -> TlsContext {
    let pem: String = cas.iter().map(|c| c.pem.clone()).collect();
    let setup = ClientSetup::from_ca_pem(pem.as_bytes()).unwrap();
    TlsContext::new().with_client(&setup).unwrap()
}

/// What a [`Recorder`] saw.
#[derive(Clone, Debug, PartialEq)]
enum Rec {
    Up(ConnId),
    Secured(ConnId, TlsInfo),
    Data(ConnId, Vec<u8>),
    Eof(ConnId, bool),
    Sent(ConnId, usize),
    Closed(ConnId),
    OpenFailed(ConnId, OpenError),
}

/// An inner machine that records its inputs and sends what it is told.
#[derive(Default)]
struct Recorder {
    out: OutQueue<Rec>,
    /// Take at most this much per `Data` (then wait for `resume`).
    take: Option<usize>,
}

impl Recorder {
    fn send(&mut self, conn: ConnId, b: &[u8]) {
        self.out.transmit(conn, Bytes::copy_from_slice(b));
    }
    fn close(&mut self, conn: ConnId, how: Close) {
        self.out.close(conn, how);
    }
    fn resume(&mut self, conn: ConnId) {
        self.out.push(Output::Resume { conn });
    }
}

impl Machine for Recorder {
    type Event = Rec;
    type Error = std::convert::Infallible;
    fn handle_input(&mut self, _now: Now, input: Input<'_>) -> Result<usize, Self::Error> {
        let e = match input {
            Input::Accepted { conn, .. } | Input::Opened { conn, .. } => Rec::Up(conn),
            Input::Secured { conn, info } => Rec::Secured(conn, info),
            Input::Data { conn, bytes } => {
                let n = self.take.map_or(bytes.len(), |t| t.min(bytes.len()));
                self.out.event(Rec::Data(conn, bytes[..n].to_vec()));
                return Ok(n);
            }
            Input::Eof { conn, clean } => Rec::Eof(conn, clean),
            Input::Sent { conn, bytes } => Rec::Sent(conn, bytes),
            Input::Closed { conn } => Rec::Closed(conn),
            Input::OpenFailed { conn, error } => Rec::OpenFailed(conn, error),
            _ => return Ok(0),
        };
        self.out.event(e);
        Ok(0)
    }
    fn handle_timeout(&mut self, _now: Now) {}
    fn poll_output(&mut self) -> Output<Rec> {
        self.out.pop_or_wait(None)
    }
}

fn inner(events: &[TlsEvent<Rec>]) -> Vec<Rec> {
    events
        .iter()
        .filter_map(|e| match e {
            TlsEvent::Inner(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn received(events: &[TlsEvent<Rec>], conn: ConnId) -> Vec<u8> {
    inner(events)
        .into_iter()
        .filter_map(|r| match r {
            Rec::Data(c, d) if c == conn => Some(d),
            _ => None,
        })
        .flatten()
        .collect()
}

fn secured(events: &[TlsEvent<Rec>], conn: ConnId) -> Option<TlsInfo> {
    inner(events).into_iter().find_map(|r| match r {
        Rec::Secured(c, i) if c == conn => Some(i),
        _ => None,
    })
}

fn failures<E>(events: &[TlsEvent<E>]) -> Vec<(ConnId, Failure)> {
    events
        .iter()
        .filter_map(|e| match e {
            TlsEvent::Failed { conn, error } => Some((*conn, error.clone())),
            _ => None,
        })
        .collect()
}

type RecPair = Pair<Tls<Recorder>, Tls<Recorder>>;

fn rec_pair(server: TlsContext, client: TlsContext, name: &str) -> RecPair {
    Pair::new(
        Tls::client(Recorder::default(), &client, name),
        Tls::server(Recorder::default(), &server),
    )
}

#[test]
fn handshake_then_data_both_ways() {
    let c = cert("localhost");
    let mut p = rec_pair(server_ctx(&c), client_ctx(&[&c]), "localhost");
    let (cc, sc) = p.connect();
    let ci = secured(&p.client.events, cc).expect("client secured");
    let si = secured(&p.server.events, sc).expect("server secured");
    // The inner machines see the connection only once it is secure.
    assert_eq!(inner(&p.server.events)[0], Rec::Up(sc));
    assert_eq!(ci.version.as_deref(), Some("TLSv1.3"));
    assert_eq!(ci.peer_certificates[0].as_ref(), &c.der[..]);
    assert!(si.peer_certificates.is_empty());
    assert_eq!(si.server_name.as_deref(), Some("localhost"));
    assert_eq!(ci.exporter.as_ref().map(Bytes::len), Some(32));
    assert_eq!(ci.exporter, si.exporter, "tls-exporter agrees");
    assert!(p.client.machine.is_secured(cc) && p.server.machine.is_secured(sc));

    p.client.machine.inner_mut().send(cc, b"hello over tls");
    p.client.drain();
    p.run();
    assert_eq!(received(&p.server.events, sc), b"hello over tls");
    // The ciphertext is not the plaintext.
    let wire = &p.client.sent[&cc];
    assert!(!wire.windows(5).any(|w| w == b"hello"));
    // `Sent` reports plaintext bytes, once their ciphertext is flushed.
    assert!(inner(&p.client.events).contains(&Rec::Sent(cc, 14)));

    p.server.machine.inner_mut().send(sc, b"and back");
    p.server.drain();
    p.run();
    assert_eq!(received(&p.client.events, cc), b"and back");
}

#[test]
fn framed_lines_over_tls_echo() {
    let c = cert("localhost");
    let client = Tls::client(Framed::new(Lines::new()), &client_ctx(&[&c]), "localhost");
    let server = Tls::server(Echo::new(), &server_ctx(&c));
    let mut p = Pair::new(client, server);
    let (cc, _) = p.connect();
    p.client.machine.inner_mut().send(cc, b"one").unwrap();
    p.client.machine.inner_mut().send(cc, b"two").unwrap();
    p.client.drain();
    p.run();
    let frames: Vec<Bytes> = p
        .client
        .events
        .iter()
        .filter_map(|e| match e {
            TlsEvent::Inner(FramedEvent::Frame { frame, .. }) => Some(frame.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(frames, vec![Bytes::from("one"), Bytes::from("two")]);
}

/// Runs a client and server `Sim` joined by hand, delivering ciphertext in
/// pieces of `chunk` bytes; returns the plaintext the server's inner
/// machine received.
fn run_chunked(chunk: usize) -> Vec<u8> {
    let c = cert("localhost");
    let mut client = Sim::new(Tls::client(
        Recorder::default(),
        &client_ctx(&[&c]),
        "localhost",
    ));
    let mut server = Sim::new(Tls::server(Recorder::default(), &server_ctx(&c)));
    let (cc, sc) = (ConnId(1), ConnId(2));
    server.accept(sc);
    client.opened(cc);
    client
        .machine
        .inner_mut()
        .send(cc, b"early data, queued during the handshake;");
    client.drain();
    let mut sent_late = false;
    for _ in 0..1000 {
        let mut moved = false;
        for (_, b) in client.take_outbox() {
            for piece in b.chunks(chunk) {
                server.data(sc, piece);
            }
            moved = true;
        }
        for (_, b) in server.take_outbox() {
            for piece in b.chunks(chunk) {
                client.data(cc, piece);
            }
            moved = true;
        }
        if !moved && !sent_late && client.machine.is_secured(cc) {
            client.machine.inner_mut().send(cc, &[b'x'; 40_000]);
            client.drain();
            sent_late = true;
            continue;
        }
        if !moved {
            break;
        }
    }
    assert!(failures(&server.events).is_empty());
    received(&server.events, sc)
}

#[test]
fn chunking_of_ciphertext_does_not_matter() {
    let whole = run_chunked(usize::MAX);
    let early = b"early data, queued during the handshake;";
    assert_eq!(&whole[..early.len()], early);
    assert_eq!(whole.len(), early.len() + 40_000);
    assert_eq!(run_chunked(1), whole);
    assert_eq!(run_chunked(7), whole);
    assert_eq!(run_chunked(1000), whole);
}

#[test]
fn sni_chooses_between_two_certificates() {
    let a = cert("a.test");
    let b = cert("b.test");
    let setup = ServerSetup::from_pem(a.pem.as_bytes(), a.key.as_bytes())
        .unwrap()
        .with_sni(
            "B.test",
            twill_tls::config::certified_key(
                twill_tls::config::parse_certs(b.pem.as_bytes(), "b").unwrap(),
                twill_tls::config::parse_key(b.key.as_bytes(), "b").unwrap(),
                "b",
            )
            .unwrap(),
        );
    let sctx = TlsContext::new().with_server(&setup).unwrap();
    for (name, want) in [("a.test", &a), ("b.test", &b)] {
        let mut p = rec_pair(sctx.clone(), client_ctx(&[&a, &b]), name);
        let (cc, sc) = p.connect();
        let ci = secured(&p.client.events, cc).unwrap_or_else(|| panic!("{name} secured"));
        assert_eq!(ci.peer_certificates[0].as_ref(), &want.der[..], "{name}");
        assert_eq!(ci.server_name.as_deref(), Some(name));
        let si = secured(&p.server.events, sc).unwrap();
        assert_eq!(si.server_name.as_deref(), Some(name));
    }
}

#[test]
fn wrong_name_fails_verification_and_closes() {
    let a = cert("a.test");
    let mut p = rec_pair(server_ctx(&a), client_ctx(&[&a]), "other.test");
    let (cc, sc) = p.connect();
    assert!(secured(&p.client.events, cc).is_none());
    let ci = inner(&p.client.events);
    // (The in-memory pair reports the peer's close after `Closed`; a real
    // driver names no connection after `Closed`.)
    assert!(
        !ci.iter()
            .any(|r| matches!(r, Rec::Up(_) | Rec::Secured(..) | Rec::Closed(_))),
        "never shown to the inner machine: {ci:?}"
    );
    let f = failures(&p.client.events);
    assert!(matches!(f[..], [(c, Failure::Tls(_))] if c == cc), "{f:?}");
    // The server's session fails too (the pair may deliver the close
    // before the alert, so either reason).
    let f = failures(&p.server.events);
    assert!(
        matches!(f[..], [(c, Failure::Tls(_) | Failure::EofInHandshake)] if c == sc),
        "{f:?}"
    );
    assert_eq!(p.client.sent[&cc].last().map(|_| ()), Some(()));
}

#[test]
fn alpn_is_negotiated_and_visible() {
    let c = cert("localhost");
    let setup = ServerSetup::from_pem(c.pem.as_bytes(), c.key.as_bytes())
        .unwrap()
        .with_alpn(vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
    let sctx = TlsContext::new().with_server(&setup).unwrap();
    let csetup = ClientSetup::from_ca_pem(c.pem.as_bytes())
        .unwrap()
        .with_alpn(vec![b"http/1.1".to_vec()]);
    let cctx = TlsContext::new().with_client(&csetup).unwrap();
    let mut p = rec_pair(sctx, cctx, "localhost");
    let (cc, sc) = p.connect();
    assert_eq!(
        secured(&p.client.events, cc).unwrap().alpn.as_deref(),
        Some(&b"http/1.1"[..])
    );
    assert_eq!(
        secured(&p.server.events, sc).unwrap().alpn.as_deref(),
        Some(&b"http/1.1"[..])
    );
}

#[test]
fn close_notify_is_clean_and_truncation_is_not() {
    let c = cert("localhost");
    // Graceful close: close_notify first, so the peer sees a clean EOF.
    let mut p = rec_pair(server_ctx(&c), client_ctx(&[&c]), "localhost");
    let (cc, sc) = p.connect();
    p.client.machine.inner_mut().send(cc, b"bye");
    p.client.machine.inner_mut().close(cc, Close::Graceful);
    p.client.drain();
    p.run();
    let s = inner(&p.server.events);
    assert!(s.contains(&Rec::Eof(sc, true)), "{s:?}");
    assert_eq!(received(&p.server.events, sc), b"bye");
    assert!(s.contains(&Rec::Closed(sc)));

    // The transport ends without close_notify: truncation.
    let mut p = rec_pair(server_ctx(&c), client_ctx(&[&c]), "localhost");
    let (cc, sc) = p.connect();
    p.client.machine.inner_mut().send(cc, b"cut");
    p.client.drain();
    p.run();
    p.server.eof(sc);
    let s = inner(&p.server.events);
    assert!(s.contains(&Rec::Eof(sc, false)), "{s:?}");
    assert_eq!(received(&p.server.events, sc), b"cut");
}

#[test]
fn garbage_instead_of_client_hello_alerts_and_closes_that_connection_only() {
    let c = cert("localhost");
    let client = Tls::client(Framed::new(Lines::new()), &client_ctx(&[&c]), "localhost");
    let mut p = Pair::new(client, Tls::server(Echo::new(), &server_ctx(&c)));
    let (cc, _) = p.connect();
    let bad = ConnId(1000);
    p.server.accept(bad);
    p.server.data(bad, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let f = failures(&p.server.events);
    assert!(matches!(f[..], [(c, Failure::Tls(_))] if c == bad), "{f:?}");
    let alert = &p.server.sent[&bad];
    assert_eq!(alert[0], 0x15, "an alert record");
    assert!(p.server.closes.contains(&(bad, Close::Graceful)));
    // More bytes on it are swallowed; nothing panics.
    p.server.data(bad, &[0x16, 3, 1, 0, 5, 1, 2, 3, 4, 5]);
    // The other connection still works.
    p.client
        .machine
        .inner_mut()
        .send(cc, b"still here")
        .unwrap();
    p.client.drain();
    p.run();
    assert!(p.client.events.iter().any(
        |e| matches!(e, TlsEvent::Inner(FramedEvent::Frame { frame, .. }) if frame == "still here")
    ));
}

#[test]
fn unsupported_version_is_refused_with_an_alert() {
    let c = cert("localhost");
    let mut s = Sim::new(Tls::server(Recorder::default(), &server_ctx(&c)));
    s.accept(ConnId(1));
    // An SSLv3-era ClientHello record header with a TLS 1.0-only hello.
    let hello: &[u8] = &[
        0x16, 0x03, 0x00, 0x00, 0x2d, 0x01, 0x00, 0x00, 0x29, 0x03, 0x00, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x00, 0x02,
        0x00, 0x2f, 0x01, 0x00,
    ];
    s.data(ConnId(1), hello);
    assert!(matches!(failures(&s.events)[..], [(_, Failure::Tls(_))]));
    assert_eq!(s.sent[&ConnId(1)][0], 0x15);
}

#[test]
fn handshake_times_out() {
    let c = cert("localhost");
    let mut s = Sim::new(
        Tls::server(Recorder::default(), &server_ctx(&c))
            .with_handshake_timeout(Duration::from_secs(5)),
    );
    s.accept(ConnId(1));
    s.data(ConnId(1), &[0x16, 0x03, 0x01]);
    assert!(s.deadline().is_some());
    s.advance(Duration::from_secs(4));
    assert!(failures(&s.events).is_empty());
    s.advance(Duration::from_secs(2));
    assert_eq!(
        failures(&s.events),
        vec![(ConnId(1), Failure::HandshakeTimeout)]
    );
    assert!(s.closes.contains(&(ConnId(1), Close::Graceful)));
    // Never shown to the inner machine (it never saw the connection).
    assert!(inner(&s.events).is_empty());
}

#[test]
fn short_takes_keep_plaintext_and_reoffer_it_on_resume() {
    let c = cert("localhost");
    let mut p = rec_pair(server_ctx(&c), client_ctx(&[&c]), "localhost");
    let (cc, sc) = p.connect();
    p.server.machine.inner_mut().take = Some(3);
    p.client.machine.inner_mut().send(cc, b"abcdefgh");
    p.client.drain();
    p.run();
    assert_eq!(received(&p.server.events, sc), b"abc");
    p.server.machine.inner_mut().resume(sc);
    p.server.drain();
    assert_eq!(received(&p.server.events, sc), b"abcdef");
    p.server.machine.inner_mut().take = None;
    p.server.machine.inner_mut().resume(sc);
    p.server.drain();
    assert_eq!(received(&p.server.events, sc), b"abcdefgh");
}

#[test]
fn plaintext_backlog_is_bounded_by_short_takes_of_ciphertext() {
    let c = cert("localhost");
    let client = Tls::client(Recorder::default(), &client_ctx(&[&c]), "localhost");
    let server = Tls::server(Recorder::default(), &server_ctx(&c)).with_plaintext_limit(1000);
    let mut p = Pair::new(client, server);
    let (cc, sc) = p.connect();
    p.server.machine.inner_mut().take = Some(0);
    p.client.machine.inner_mut().send(cc, &[7u8; 50_000]);
    p.client.drain();
    p.run();
    assert!(
        p.server.held(sc) > 30_000,
        "ciphertext left with the driver"
    );
    p.server.machine.inner_mut().take = None;
    p.server.machine.inner_mut().resume(sc);
    p.server.drain();
    assert_eq!(received(&p.server.events, sc).len(), 50_000);
    assert_eq!(p.server.held(sc), 0);
}

#[test]
fn file_payloads_are_refused() {
    struct Files(OutQueue<()>);
    impl Machine for Files {
        type Event = ();
        type Error = std::convert::Infallible;
        fn handle_input(&mut self, _: Now, input: Input<'_>) -> Result<usize, Self::Error> {
            if let Input::Secured { conn, .. } = input {
                self.0.push(Output::Transmit {
                    conn,
                    payload: twill_core::Payload::File {
                        id: twill_core::FileId(1),
                        offset: 0,
                        len: 10,
                    },
                });
            }
            Ok(0)
        }
        fn handle_timeout(&mut self, _: Now) {}
        fn poll_output(&mut self) -> Output<()> {
            self.0.pop_or_wait(None)
        }
    }
    let c = cert("localhost");
    let client = Tls::client(Recorder::default(), &client_ctx(&[&c]), "localhost");
    let server = Tls::server(Files(OutQueue::new()), &server_ctx(&c));
    let mut p = Pair::new(client, server);
    let (_, sc) = p.connect();
    assert!(failures(&p.server.events).contains(&(sc, Failure::FilePayload)));
    assert!(p.server.closes.contains(&(sc, Close::Abort)));
    p.server.accept(ConnId(77));
    assert!(matches!(
        p.server.error,
        Some(twill_tls::TlsError::FilePayload { conn }) if conn == sc
    ));
}

#[test]
fn starttls_without_a_config_is_unsupported() {
    let mut s = Sim::new(Tls::new(Recorder::default(), &TlsContext::new()));
    s.accept(ConnId(1));
    s.machine.inner_mut().out.push(Output::Open {
        conn: ConnId(1),
        how: Open::StartTls {
            role: Role::Server,
            server_name: None,
            resume_from: None,
        },
    });
    s.drain();
    assert!(inner(&s.events).contains(&Rec::OpenFailed(ConnId(1), OpenError::Unsupported)));
}

// --- STARTTLS with a small line protocol -----------------------------------

/// Sends "STARTTLS\n", waits for "OK\n", starts TLS, sends "hello\n".
#[derive(Default)]
struct LineClient {
    out: OutQueue<String>,
    buf: Vec<u8>,
    secure: bool,
}

impl Machine for LineClient {
    type Event = String;
    type Error = std::convert::Infallible;
    fn handle_input(&mut self, _: Now, input: Input<'_>) -> Result<usize, Self::Error> {
        match input {
            Input::Opened { conn, .. } => {
                self.out.transmit(conn, Bytes::from_static(b"STARTTLS\n"));
            }
            Input::Data { conn, bytes } => {
                self.buf.extend_from_slice(bytes);
                if !self.secure && self.buf == b"OK\n" {
                    self.buf.clear();
                    self.out.push(Output::Open {
                        conn,
                        how: Open::StartTls {
                            role: Role::Client,
                            server_name: Some("localhost".into()),
                            resume_from: None,
                        },
                    });
                }
                if self.secure && self.buf.ends_with(b"\n") {
                    let line = String::from_utf8_lossy(&std::mem::take(&mut self.buf)).into_owned();
                    self.out.event(line);
                }
                return Ok(bytes.len());
            }
            Input::Secured { conn, .. } => {
                self.secure = true;
                self.out.event("secured".into());
                self.out.transmit(conn, Bytes::from_static(b"hello\n"));
            }
            _ => {}
        }
        Ok(0)
    }
    fn handle_timeout(&mut self, _: Now) {}
    fn poll_output(&mut self) -> Output<String> {
        self.out.pop_or_wait(None)
    }
}

/// The demo server's events, as the client's strings.
fn demo(events: &[TlsEvent<StartTlsEvent>]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            TlsEvent::Inner(StartTlsEvent::Secured(_)) => Some("secured".to_string()),
            TlsEvent::Inner(StartTlsEvent::Failed(_, why)) => {
                Some(format!("starttls failed: {why}"))
            }
            _ => None,
        })
        .collect()
}

fn strings(events: &[TlsEvent<String>]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            TlsEvent::Inner(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn starttls_upgrades_a_line_protocol() {
    let c = cert("localhost");
    let client = Tls::new(LineClient::default(), &client_ctx(&[&c]));
    let server = Tls::new(StartTlsEcho::new(), &server_ctx(&c));
    let mut p = Pair::new(client, server);
    let (cc, sc) = p.connect();
    assert_eq!(demo(&p.server.events), vec!["secured"]);
    assert_eq!(strings(&p.client.events), vec!["secured", "SECURE hello\n"]);
    assert!(p.client.machine.is_secured(cc) && p.server.machine.is_secured(sc));
    // Only the command and the go-ahead crossed in the clear.
    let wire = String::from_utf8_lossy(&p.client.sent[&cc]).into_owned();
    assert!(wire.starts_with("STARTTLS\n") && !wire.contains("hello"));
}

#[test]
fn starttls_rejects_plaintext_pipelined_after_the_command() {
    let c = cert("localhost");
    let mut s = Sim::new(Tls::new(StartTlsEcho::new(), &server_ctx(&c)));
    let conn = ConnId(1);
    s.accept(conn);
    s.data(conn, b"STARTTLS\nMAIL FROM:<evil@example>\n");
    let f = failures(&s.events);
    assert_eq!(
        f,
        vec![(conn, Failure::PlaintextAfterStartTls { bytes: 25 })]
    );
    assert!(s.closes.contains(&(conn, Close::Abort)));
    let st = demo(&s.events);
    assert_eq!(st.len(), 1);
    assert!(st[0].starts_with("starttls failed: TLS:"), "{st:?}");
    assert!(!s.machine.is_secured(conn));
}

#[test]
fn starttls_plaintext_after_the_go_ahead_is_a_tls_error() {
    let c = cert("localhost");
    let mut s = Sim::new(Tls::new(StartTlsEcho::new(), &server_ctx(&c)));
    let conn = ConnId(1);
    s.accept(conn);
    s.data(conn, b"STARTTLS\n");
    assert_eq!(s.sent_text(conn), "OK\n");
    s.data(conn, b"MAIL FROM:<evil@example>\n");
    let f = failures(&s.events);
    assert!(
        matches!(f[..], [(c, Failure::Tls(_))] if c == conn),
        "{f:?}"
    );
    let st = demo(&s.events);
    assert!(!s.sent_text(conn).contains("SECURE"));
    assert!(st[0].starts_with("starttls failed"), "{st:?}");
    // An alert followed the go-ahead, then the close.
    assert_eq!(s.sent[&conn][3], 0x15);
    assert!(s.closes.contains(&(conn, Close::Graceful)));
}

#[test]
fn wall_clock_follows_now() {
    let ctx = TlsContext::new();
    let mut s = Sim::new(Tls::new(Recorder::default(), &ctx));
    s.accept(ConnId(1));
    assert_eq!(ctx.clock().get(), s.clock.now().wall.secs());
}

#[test]
fn client_certificates_mutual_tls() {
    let server_cert = cert("localhost");
    let client_cert = cert("client.test");
    let ca = twill_tls::config::parse_certs(client_cert.pem.as_bytes(), "client").unwrap();
    let setup = ServerSetup::from_pem(server_cert.pem.as_bytes(), server_cert.key.as_bytes())
        .unwrap()
        .with_client_auth(twill_tls::ClientAuth::Required(ca));
    let sctx = TlsContext::new().with_server(&setup).unwrap();

    // With a certificate: the server sees it.
    let csetup = ClientSetup::from_ca_pem(server_cert.pem.as_bytes())
        .unwrap()
        .with_identity(
            twill_tls::config::parse_certs(client_cert.pem.as_bytes(), "c").unwrap(),
            twill_tls::config::parse_key(client_cert.key.as_bytes(), "k").unwrap(),
        );
    let cctx = TlsContext::new().with_client(&csetup).unwrap();
    let mut p = rec_pair(sctx.clone(), cctx, "localhost");
    let (_, sc) = p.connect();
    let si = secured(&p.server.events, sc).expect("server secured");
    assert_eq!(si.peer_certificates[0].as_ref(), &client_cert.der[..]);

    // Without one: refused.
    let mut p = rec_pair(sctx, client_ctx(&[&server_cert]), "localhost");
    let (_, sc) = p.connect();
    assert!(secured(&p.server.events, sc).is_none());
    assert!(!failures(&p.server.events).is_empty());
}

#[test]
fn second_connection_resumes_the_session() {
    let c = cert("localhost");
    let mut p = rec_pair(server_ctx(&c), client_ctx(&[&c]), "localhost");
    let (c1, s1) = p.connect();
    assert!(!p.client.machine.is_resumed(c1) && !p.server.machine.is_resumed(s1));
    let (c2, s2) = p.connect();
    assert!(secured(&p.client.events, c2).is_some());
    assert!(p.client.machine.is_resumed(c2), "client resumed");
    assert!(p.server.machine.is_resumed(s2), "server resumed");
}

#[test]
fn mutated_client_hellos_never_panic() {
    let c = cert("localhost");
    let sctx = server_ctx(&c);
    let mut client = Sim::new(Tls::client(
        Recorder::default(),
        &client_ctx(&[&c]),
        "localhost",
    ));
    client.opened(ConnId(1));
    let hello: Vec<u8> = client
        .take_outbox()
        .into_iter()
        .flat_map(|(_, b)| b.to_vec())
        .collect();
    assert_eq!(hello[0], 0x16);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..300 {
        let mut m = hello.clone();
        for _ in 0..=(next() % 4) {
            let i = (next() as usize) % m.len();
            m[i] = next() as u8;
        }
        let cut = 1 + (next() as usize) % 64;
        let mut s = Sim::new(Tls::server(Recorder::default(), &sctx));
        s.accept(ConnId(1));
        for piece in m.chunks(cut) {
            s.data(ConnId(1), piece);
        }
        s.eof(ConnId(1));
        s.advance(Duration::from_secs(30));
        // Whatever happened, the connection ended or is being answered.
        let failed = !failures(&s.events).is_empty();
        let answered = s.sent.get(&ConnId(1)).is_some_and(|b| !b.is_empty());
        assert!(failed || answered);
    }
}

#[test]
fn sent_reports_plaintext_once_its_ciphertext_is_flushed() {
    let c = cert("localhost");
    let mut p = rec_pair(server_ctx(&c), client_ctx(&[&c]), "localhost");
    let (cc, _) = p.connect();
    p.client.auto_sent = false;
    p.client.machine.inner_mut().send(cc, b"four");
    p.client.drain();
    let first = p.client.unacked(cc);
    p.client.machine.inner_mut().send(cc, b"eight!!!");
    p.client.drain();
    let both = p.client.unacked(cc);
    assert!(
        first > 4 && both > first,
        "records are bigger than their plaintext"
    );
    let sent = |p: &RecPair| -> Vec<usize> {
        inner(&p.client.events)
            .into_iter()
            .filter_map(|r| match r {
                Rec::Sent(_, n) => Some(n),
                _ => None,
            })
            .collect()
    };
    let before = sent(&p).len();
    // Part of the first record: nothing yet.
    p.client.ack_some(cc, first - 1);
    assert_eq!(sent(&p).len(), before);
    // The rest of it: its 4 plaintext bytes.
    p.client.ack_some(cc, 1);
    assert_eq!(sent(&p)[before..], [4]);
    // The second record at once.
    p.client.ack(cc);
    assert_eq!(sent(&p)[before..], [4, 8]);
}

#[test]
fn demo_line_protocol_bounds_its_lines() {
    // No TLS configured: the demo runs in the clear.
    let mut s = Sim::new(Tls::new(StartTlsEcho::new(), &TlsContext::new()));
    let conn = ConnId(1);
    s.accept(conn);
    s.data(conn, b"short\r\n");
    s.data(conn, &[b'x'; twill_tls::demo::MAX_LINE + 1]);
    assert_eq!(s.sent_text(conn), "PLAIN short\nERR line too long\n");
    assert!(s.closes.contains(&(conn, Close::Graceful)));
}
