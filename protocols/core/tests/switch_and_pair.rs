//! `Switch` hands a connection to a second machine with the bytes read past
//! the switch point, whatever the chunking; `Pair` joins a client and a
//! server under one virtual clock.

use std::collections::VecDeque;
use std::convert::Infallible;

use bytes::Bytes;
use twill_core::switch::{Handover, Switch, SwitchEvent};
use twill_core::testing::{assert_chunking, Pair, Sim, Step};
use twill_core::{Close, ConnId, Duration, Input, Instant, Machine, Now, Output, Payload};

/// Reads lines; at "UPGRADE" it stops taking input and hands over.
#[derive(Default)]
struct Lines {
    buf: Vec<u8>,
    out: VecDeque<Output<LineEvent>>,
    switched: bool,
}

#[derive(Debug, PartialEq)]
enum LineEvent {
    Line(String),
    Upgrade(ConnId, Bytes),
}

impl Machine for Lines {
    type Event = LineEvent;
    type Error = Infallible;

    fn handle_input(&mut self, _now: Now, input: Input<'_>) -> Result<usize, Infallible> {
        let Input::Data { conn, bytes } = input else {
            return Ok(0);
        };
        if self.switched {
            return Ok(0);
        }
        for (i, b) in bytes.iter().enumerate() {
            if *b == b'\n' {
                let line = String::from_utf8_lossy(&self.buf).into_owned();
                self.buf.clear();
                if line == "UPGRADE" {
                    self.switched = true;
                    // Everything past the switch point goes with the
                    // hand-over; the rest of this read is not taken.
                    self.out
                        .push_back(Output::Event(LineEvent::Upgrade(conn, Bytes::new())));
                    return Ok(i + 1);
                }
                self.out.push_back(Output::Event(LineEvent::Line(line)));
            } else {
                self.buf.push(*b);
            }
        }
        Ok(bytes.len())
    }

    fn handle_timeout(&mut self, _now: Now) {}

    fn poll_output(&mut self) -> Output<LineEvent> {
        self.out
            .pop_front()
            .unwrap_or(Output::Wait { deadline: None })
    }
}

/// Echoes upper-cased, taking at most 4 bytes at a time (so leftovers need
/// several Resumes).
#[derive(Default)]
struct Upper {
    out: VecDeque<Output<usize>>,
    paused: bool,
}

impl Machine for Upper {
    type Event = usize;
    type Error = Infallible;

    fn handle_input(&mut self, _now: Now, input: Input<'_>) -> Result<usize, Infallible> {
        let Input::Data { conn, bytes } = input else {
            return Ok(0);
        };
        let n = bytes.len().min(4);
        self.out.push_back(Output::Transmit {
            conn,
            payload: Payload::Bytes(Bytes::from(bytes[..n].to_ascii_uppercase())),
        });
        if n < bytes.len() {
            self.out.push_back(Output::Resume { conn });
        }
        self.paused = n < bytes.len();
        Ok(n)
    }

    fn handle_timeout(&mut self, _now: Now) {}

    fn poll_output(&mut self) -> Output<usize> {
        self.out
            .pop_front()
            .unwrap_or(Output::Wait { deadline: None })
    }
}

type Sw = Switch<Lines, Upper, fn(LineEvent) -> Result<Handover<Upper>, LineEvent>>;

fn switch() -> Sw {
    fn up(e: LineEvent) -> Result<Handover<Upper>, LineEvent> {
        match e {
            LineEvent::Upgrade(conn, rest) => Ok(Handover {
                conn,
                rest,
                next: Upper::default(),
                unflushed: 0,
            }),
            e => Err(e),
        }
    }
    Switch::new(Lines::default(), up as fn(_) -> _)
}

#[test]
fn switch_carries_leftover_bytes_whatever_the_chunking() {
    let c = ConnId(1);
    let steps = vec![
        Step::Accept(c),
        Step::Data(c, b"one\ntwo\nUPGRADE\nhello, world".to_vec()),
        Step::Data(c, b" and more".to_vec()),
    ];
    let trace = assert_chunking(switch, &steps);
    assert_eq!(trace.sent_text(c), "HELLO, WORLD AND MORE");
    let firsts: Vec<_> = trace
        .events
        .iter()
        .filter_map(|e| match e {
            SwitchEvent::First(LineEvent::Line(l)) => Some(l.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(firsts, ["one", "two"]);
    assert!(trace.events.contains(&SwitchEvent::Switched { conn: c }));
}

/// A client that sends "ping" on open and counts pongs; a server that
/// answers each line and closes after a deadline.
#[derive(Default)]
struct Pinger {
    out: VecDeque<Output<String>>,
}

impl Machine for Pinger {
    type Event = String;
    type Error = Infallible;
    fn handle_input(&mut self, _now: Now, input: Input<'_>) -> Result<usize, Infallible> {
        match input {
            Input::Opened { conn, .. } => self.out.push_back(Output::Transmit {
                conn,
                payload: Payload::Bytes(Bytes::from_static(b"ping\n")),
            }),
            Input::Data { bytes, .. } => self
                .out
                .push_back(Output::Event(String::from_utf8_lossy(bytes).into_owned())),
            Input::Eof { .. } => self.out.push_back(Output::Event("eof".into())),
            _ => {}
        }
        Ok(match input {
            Input::Data { bytes, .. } => bytes.len(),
            _ => 0,
        })
    }
    fn handle_timeout(&mut self, _now: Now) {}
    fn poll_output(&mut self) -> Output<String> {
        self.out
            .pop_front()
            .unwrap_or(Output::Wait { deadline: None })
    }
}

#[derive(Default)]
struct Ponger {
    out: VecDeque<Output<()>>,
    conn: Option<ConnId>,
    deadline: Option<Instant>,
    now: Now,
}

impl Machine for Ponger {
    type Event = ();
    type Error = Infallible;
    fn handle_input(&mut self, now: Now, input: Input<'_>) -> Result<usize, Infallible> {
        self.now = now;
        match input {
            Input::Accepted { conn, .. } => {
                self.conn = Some(conn);
                self.deadline = Some(now.mono + Duration::from_secs(30));
            }
            Input::Data { conn, bytes } => {
                self.out.push_back(Output::Transmit {
                    conn,
                    payload: Payload::Bytes(Bytes::from_static(b"pong")),
                });
                return Ok(bytes.len());
            }
            _ => {}
        }
        Ok(0)
    }
    fn handle_timeout(&mut self, now: Now) {
        if self.deadline.is_some_and(|d| d <= now.mono) {
            self.deadline = None;
            if let Some(conn) = self.conn {
                self.out.push_back(Output::Close {
                    conn,
                    how: Close::Graceful,
                });
            }
        }
    }
    fn poll_output(&mut self) -> Output<()> {
        self.out.pop_front().unwrap_or(Output::Wait {
            deadline: self.deadline,
        })
    }
}

#[test]
fn pair_moves_bytes_and_fires_timers_on_the_virtual_clock() {
    let mut pair = Pair::new(Pinger::default(), Ponger::default());
    let (c, s) = pair.connect();
    assert_eq!(pair.client.events, ["pong"]);
    assert_eq!(pair.server.sent_text(s), "pong");
    pair.advance(Duration::from_secs(29));
    assert!(!pair.client.events.contains(&"eof".to_string()));
    pair.advance(Duration::from_secs(1));
    assert_eq!(pair.client.events, ["pong", "eof"]);
    assert_eq!(pair.server.closes, [(s, Close::Graceful)]);
    let _ = c;
}

#[test]
fn sim_holds_short_takes() {
    let mut sim = Sim::new(Upper::default());
    let c = ConnId(7);
    sim.data(c, b"abcdefghij");
    // Upper takes 4 and asks to resume each time: all of it arrives.
    assert_eq!(sim.sent_text(c), "ABCDEFGHIJ");
    assert_eq!(sim.held(c), 0);
}
