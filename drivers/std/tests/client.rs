//! The blocking client `Conn` against the std driver's own server.

mod common;

use std::collections::VecDeque;
use std::sync::mpsc;
use std::time::{Duration, Instant as StdInstant};

use common::{unix_path, Lab, Report};
use twill_core::bytes::Bytes;
use twill_core::{ClientEndpoint, Close, ConnId, Input, Instant, Machine, Now, Output, Payload};
use twill_driver::{EngineConfig, Mode, Running, ServeOptions};
use twill_std::Conn;

/// What the line client tells its application.
#[derive(Debug, PartialEq)]
enum Ev {
    Opened,
    Line(String),
    Eof,
    Closed,
    Timer,
}

#[derive(Debug)]
struct Misuse;

impl std::fmt::Display for Misuse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("misused")
    }
}

impl std::error::Error for Misuse {}

/// A newline-delimited client.
#[derive(Default)]
struct LineClient {
    conn: Option<ConnId>,
    out: VecDeque<Output<Ev>>,
    partial: Vec<u8>,
    now: Option<Now>,
    deadline: Option<Instant>,
    sent: usize,
    hold: bool,
    fail_next: bool,
}

impl LineClient {
    fn conn(&self) -> ConnId {
        self.conn.expect("opened")
    }

    fn send(&mut self, line: &str) {
        let conn = self.conn();
        self.out.push_back(Output::Transmit {
            conn,
            payload: Payload::Bytes(Bytes::from(format!("{line}\n"))),
        });
    }

    fn finish(&mut self) {
        let conn = self.conn();
        self.out.push_back(Output::Close {
            conn,
            how: Close::WriteHalf,
        });
    }

    fn timer_in(&mut self, d: Duration) {
        self.deadline = Some(self.now.expect("time seen").mono + d);
    }

    fn release(&mut self) {
        self.hold = false;
        let conn = self.conn();
        self.out.push_back(Output::Resume { conn });
    }
}

impl Machine for LineClient {
    type Event = Ev;
    type Error = Misuse;

    fn handle_input(&mut self, now: Now, input: Input<'_>) -> Result<usize, Misuse> {
        self.now = Some(now);
        if self.fail_next {
            return Err(Misuse);
        }
        match input {
            Input::Opened { conn, .. } => {
                self.conn = Some(conn);
                self.out.push_back(Output::Event(Ev::Opened));
            }
            Input::Data { bytes, .. } => {
                if self.hold {
                    return Ok(0);
                }
                self.partial.extend_from_slice(bytes);
                while let Some(i) = self.partial.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = self.partial.drain(..=i).collect();
                    let line = String::from_utf8_lossy(&line[..i]).into_owned();
                    self.out.push_back(Output::Event(Ev::Line(line)));
                }
                return Ok(bytes.len());
            }
            Input::Sent { bytes, .. } => self.sent += bytes,
            Input::Eof { conn, .. } => {
                self.out.push_back(Output::Event(Ev::Eof));
                self.out.push_back(Output::Close {
                    conn,
                    how: Close::Graceful,
                });
            }
            Input::Closed { .. } => self.out.push_back(Output::Event(Ev::Closed)),
            _ => {}
        }
        Ok(0)
    }

    fn handle_timeout(&mut self, now: Now) {
        if self.deadline.is_some_and(|d| d <= now.mono) {
            self.deadline = None;
            self.out.push_back(Output::Event(Ev::Timer));
        }
    }

    fn poll_output(&mut self) -> Output<Ev> {
        self.out.pop_front().unwrap_or(Output::Wait {
            deadline: self.deadline,
        })
    }
}

fn echo_server(endpoint: &str) -> Running<Lab> {
    let (tx, _rx) = mpsc::channel();
    let opts = ServeOptions {
        endpoints: vec![endpoint.parse().unwrap()],
        mode: Mode::Factory,
        config: EngineConfig::default(),
    };
    twill_std::spawn(opts, move || (Lab::new(), Report::new(tx.clone()))).expect("bind")
}

fn ep(s: &str) -> ClientEndpoint {
    s.parse().expect("client endpoint")
}

fn lines_then_half_close(mut c: Conn<LineClient>) {
    assert_eq!(c.next_event().unwrap(), Some(Ev::Opened));
    for l in ["one", "two", "three"] {
        c.machine().send(l);
    }
    for l in ["one", "two", "three"] {
        assert_eq!(c.next_event().unwrap(), Some(Ev::Line(l.into())));
    }
    c.machine().finish();
    assert_eq!(c.next_event().unwrap(), Some(Ev::Eof));
    assert_eq!(c.next_event().unwrap(), Some(Ev::Closed));
    assert_eq!(c.next_event().unwrap(), None);
    assert!(c.is_closed());
    assert_eq!(c.into_machine().sent, "one\ntwo\nthree\n".len());
}

#[test]
fn conn_over_tcp_by_name_and_unix() {
    let server = echo_server("tcp:0:interface=127.0.0.1");
    let port = server.addr().port();
    let c = Conn::connect(
        &ep(&format!("tcp:localhost:{port}:timeout=2")),
        LineClient::default(),
    )
    .expect("connect");
    lines_then_half_close(c);

    let path = unix_path("client");
    let userver = echo_server(&format!("unix:{path}"));
    let c = Conn::connect(&ep(&format!("unix:{path}")), LineClient::default()).expect("connect");
    lines_then_half_close(c);

    for s in [server, userver] {
        s.stop();
        s.wait().unwrap();
    }
}

#[test]
fn conn_big_transfer_does_not_deadlock() {
    let server = echo_server("tcp:0:interface=127.0.0.1");
    let mut c = Conn::connect(
        &ep(&format!("tcp:127.0.0.1:{}", server.addr().port())),
        LineClient::default(),
    )
    .unwrap();
    assert_eq!(c.next_event().unwrap(), Some(Ev::Opened));
    let line = "x".repeat(999);
    let n = 6000;
    for _ in 0..n {
        c.machine().send(&line);
    }
    // 6 MB queued: writing it all needs the echo read meanwhile.
    c.flush().expect("flush");
    assert_eq!(c.machine().sent, n * 1000);
    c.machine().finish();
    let mut lines = 0;
    for e in c.events() {
        match e.unwrap() {
            Ev::Line(l) => {
                assert_eq!(l.len(), 999);
                lines += 1;
            }
            Ev::Eof | Ev::Closed => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(lines, n);
    server.stop();
    server.wait().unwrap();
}

#[test]
fn conn_timers_short_takes_and_errors() {
    let server = echo_server("tcp:0:interface=127.0.0.1");
    let endpoint = ep(&format!("tcp:127.0.0.1:{}", server.addr().port()));
    let mut c = Conn::connect(&endpoint, LineClient::default()).unwrap();
    assert_eq!(c.next_event().unwrap(), Some(Ev::Opened));

    // A timer with no traffic.
    let started = StdInstant::now();
    c.machine().timer_in(Duration::from_millis(100));
    assert_eq!(c.next_event().unwrap(), Some(Ev::Timer));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(100) && took < Duration::from_secs(2),
        "{took:?}"
    );

    // A short take pauses reading: nothing can happen until Resume.
    c.machine().hold = true;
    c.machine().send("held");
    c.flush().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        c.next_event().unwrap(),
        None,
        "paused, no timer: nothing to wait for"
    );
    c.machine().release();
    assert_eq!(c.next_event().unwrap(), Some(Ev::Line("held".into())));

    // An application error is reported once, then the connection is done.
    c.machine().fail_next = true;
    c.machine().send("boom");
    let err = c.next_event().expect_err("machine error");
    assert_eq!(err.to_string(), "misused");
    assert!(c.is_closed());
    assert_eq!(c.next_event().unwrap(), None);

    // Refused and unresolvable endpoints are errors, not panics.
    server.stop();
    server.wait().unwrap();
    assert!(Conn::connect(&endpoint, LineClient::default()).is_err());
    assert!(Conn::connect(
        &ep("tcp:no-such-host.invalid:1:timeout=1"),
        LineClient::default()
    )
    .is_err());
}
