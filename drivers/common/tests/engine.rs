//! The engine's contract keeping, checked without any socket: it is
//! sans-IO, so a test plays the driver.

use std::collections::VecDeque;
use std::convert::Infallible;

use bytes::Bytes;
use twill_core::{
    Addr, Close, ConnId, Cx, Duration, Input, Instant, Machine, Now, Open, OpenError, Output,
    Payload, Role, Service, UnixTime,
};
use twill_driver::{Action, Chunk, Engine, EngineConfig, Key, Mode};

/// A scripted echo: takes at most `take` bytes per input, echoes them,
/// reports events as strings, and obeys a few commands.
#[derive(Default)]
struct Toy {
    take: usize,
    out: VecDeque<Output<String>>,
    conns: Vec<ConnId>,
    deadline: Option<Instant>,
    /// Declines flush reports while its output not reported sent is at
    /// most this many bytes (`None`: takes every report).
    declines_up_to: Option<usize>,
    /// Output handed over, and output reported sent.
    queued: usize,
    reported: usize,
}

impl Toy {
    fn new(take: usize) -> Self {
        Toy {
            take,
            ..Default::default()
        }
    }
}

impl Machine for Toy {
    type Event = String;
    type Error = Infallible;

    fn handle_input(&mut self, _now: Now, input: Input<'_>) -> Result<usize, Infallible> {
        match input {
            Input::Accepted { conn, .. } => {
                self.conns.push(conn);
                self.out
                    .push_back(Output::Event(format!("accepted {}", conn.0)));
            }
            Input::Data { conn, bytes } => {
                let n = bytes.len().min(self.take);
                self.queued += n;
                self.out.push_back(Output::Transmit {
                    conn,
                    payload: Payload::Bytes(Bytes::copy_from_slice(&bytes[..n])),
                });
                return Ok(n);
            }
            Input::Eof { conn, .. } => self.out.push_back(Output::Close {
                conn,
                how: Close::Graceful,
            }),
            Input::Closed { conn } => self
                .out
                .push_back(Output::Event(format!("closed {}", conn.0))),
            Input::OpenFailed { conn, error } => self
                .out
                .push_back(Output::Event(format!("open failed {conn:?} {error}"))),
            Input::Sent { bytes, .. } => {
                self.reported += bytes;
                self.out.push_back(Output::Event(format!("sent {bytes}")))
            }
            _ => {}
        }
        Ok(0)
    }

    fn handle_timeout(&mut self, now: Now) {
        if self.deadline.is_some_and(|d| d <= now.mono) {
            self.deadline = None;
            self.out.push_back(Output::Event("timer".into()));
        }
    }

    fn poll_output(&mut self) -> Output<String> {
        self.out.pop_front().unwrap_or(Output::Wait {
            deadline: self.deadline,
        })
    }

    fn wants_sent(&self, _conn: ConnId) -> bool {
        self.declines_up_to
            .map_or(true, |max| self.queued - self.reported > max)
    }
}

/// Records events; `spawn` on "accepted" runs blocking work.
#[derive(Default)]
struct Log {
    events: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Service<Toy> for Log {
    type Done = u32;
    fn on_event(&mut self, cx: &mut Cx<'_, Toy, u32>, event: String) {
        if event.starts_with("accepted") {
            cx.spawn_blocking(|| 41 + 1);
        }
        self.events.lock().unwrap().push(event);
    }
    fn on_done(&mut self, _cx: &mut Cx<'_, Toy, u32>, done: u32) {
        self.events.lock().unwrap().push(format!("done {done}"));
    }
}

fn now(ms: u64) -> Now {
    Now::new(
        Instant::from_nanos(ms * 1_000_000),
        UnixTime::from_secs(1_700_000_000),
    )
}

type Events = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

fn engine(mode: Mode, take: usize, config: EngineConfig) -> (Engine<Toy, Log>, Events) {
    let events: Events = Default::default();
    let e2 = events.clone();
    let e = Engine::new(mode, config, move || {
        (Toy::new(take), Log { events: e2.clone() })
    });
    (e, events)
}

fn actions(e: &mut Engine<Toy, Log>) -> Vec<Action<u32>> {
    std::iter::from_fn(|| e.poll_action()).collect()
}

fn written(actions: &[Action<u32>], key: Key) -> Vec<u8> {
    let mut v = Vec::new();
    for a in actions {
        if let Action::Write {
            key: k,
            chunk: Chunk::Bytes(b),
        } = a
        {
            if *k == key {
                v.extend_from_slice(b);
            }
        }
    }
    v
}

fn accept(e: &mut Engine<Toy, Log>, listener: Key) -> Key {
    let key = e.new_key();
    e.accept(listener, key, Addr::Unknown, Addr::Unknown, now(0))
        .unwrap();
    key
}

#[test]
fn factory_makes_a_machine_per_connection_and_reaps_it() {
    let (mut e, events) = engine(Mode::Factory, usize::MAX, EngineConfig::default());
    let l = e.new_key();
    e.add_listener(l);
    let a = accept(&mut e, l);
    let b = accept(&mut e, l);
    assert_eq!(e.machines(), 2);
    e.data(a, b"hello", now(1));
    let acts = actions(&mut e);
    assert_eq!(written(&acts, a), b"hello");
    assert!(written(&acts, b).is_empty());
    // Blocking work comes back through on_done.
    let spawns: Vec<_> = acts
        .into_iter()
        .filter_map(|a| match a {
            Action::Spawn { slot, work } => Some((slot, work)),
            _ => None,
        })
        .collect();
    assert_eq!(spawns.len(), 2);
    for (slot, work) in spawns {
        e.done(slot, work(), now(2));
    }
    assert_eq!(
        events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| *e == "done 42")
            .count(),
        2
    );
    // EOF → the machine closes → the driver reports closed → reaped.
    e.eof(a, true, now(3));
    let acts = actions(&mut e);
    assert!(acts
        .iter()
        .any(|x| matches!(x, Action::Shutdown { key, how: Close::Graceful } if *key == a)));
    e.closed(a, now(4));
    assert_eq!(e.machines(), 1);
    assert_eq!(e.live_conns(), 1);
}

#[test]
fn short_take_holds_bytes_until_resume() {
    let (mut e, _) = engine(Mode::Hub, 3, EngineConfig::default());
    let l = e.new_key();
    e.add_listener(l);
    let a = accept(&mut e, l);
    actions(&mut e);
    e.data(a, b"abcdefgh", now(1));
    let acts = actions(&mut e);
    assert_eq!(written(&acts, a), b"abc");
    assert!(acts
        .iter()
        .any(|x| matches!(x, Action::Read { key, on: false } if *key == a)));
    assert!(!e.wants_read(a));
    // The peer's EOF waits behind the held bytes.
    e.eof(a, true, now(1));
    assert!(!actions(&mut e)
        .iter()
        .any(|x| matches!(x, Action::Shutdown { .. })));
    // The machine resumes: held bytes are offered again, three at a time,
    // each take followed by another Resume until all are taken.
    let slot = e.slot_of(a).unwrap();
    let conn = ConnId(1);
    for _ in 0..3 {
        e.call(
            slot,
            Box::new(move |m: &mut Toy| m.out.push_back(Output::Resume { conn })),
            now(2),
        );
    }
    let acts = actions(&mut e);
    assert_eq!(written(&acts, a), b"defgh");
    // Now the EOF arrives, and the machine closes.
    assert!(acts
        .iter()
        .any(|x| matches!(x, Action::Shutdown { key, how: Close::Graceful } if *key == a)));
}

#[test]
fn unflushed_output_above_high_water_pauses_reading() {
    let config = EngineConfig {
        high_water: 10,
        low_water: 4,
        ..EngineConfig::default()
    };
    let (mut e, events) = engine(Mode::Hub, usize::MAX, config);
    let l = e.new_key();
    e.add_listener(l);
    let a = accept(&mut e, l);
    e.data(a, b"0123456789AB", now(1));
    let acts = actions(&mut e);
    assert!(acts
        .iter()
        .any(|x| matches!(x, Action::Read { on: false, .. })));
    e.sent(a, 5, now(2));
    assert!(!e.wants_read(a), "7 unflushed is above the low-water mark");
    e.sent(a, 4, now(3));
    assert!(e.wants_read(a));
    assert!(events.lock().unwrap().contains(&"sent 4".to_string()));
}

#[test]
fn a_request_answered_in_its_feed_leaves_reading_alone() {
    // The engine pauses a connection while the machine looks at its
    // input; a reply written in that feed must not turn reading off and
    // on again (two actions per request for the driver to carry out).
    let (mut e, _events) = engine(Mode::Factory, usize::MAX, EngineConfig::default());
    let l = e.new_key();
    e.add_listener(l);
    let a = accept(&mut e, l);
    actions(&mut e);
    for i in 0..3 {
        e.data(a, b"ping", now(1 + i));
        let acts = actions(&mut e);
        assert_eq!(written(&acts, a), b"ping");
        assert!(
            !acts.iter().any(|x| matches!(x, Action::Read { .. })),
            "no Read action for a request answered at once: {acts:?}"
        );
        e.sent(a, 4, now(1 + i));
        assert!(e.wants_read(a));
    }
    // Above the high-water mark within the feed, reading does stop.
    let config = EngineConfig {
        high_water: 3,
        low_water: 1,
        ..EngineConfig::default()
    };
    let (mut e, _events) = engine(Mode::Factory, usize::MAX, config);
    let l = e.new_key();
    e.add_listener(l);
    let a = accept(&mut e, l);
    actions(&mut e);
    e.data(a, b"ping", now(1));
    let acts = actions(&mut e);
    assert!(acts
        .iter()
        .any(|x| matches!(x, Action::Read { on: false, .. })));
    assert!(!e.wants_read(a));
}

#[test]
fn declined_flush_reports_go_with_the_next_one() {
    // A machine that needs no report while little of its output is
    // unreported: the engine feeds it nothing for those flushes, and the
    // first report it takes carries every byte flushed since the last.
    let events: Events = Default::default();
    let e2 = events.clone();
    let mut e = Engine::new(Mode::Factory, EngineConfig::default(), move || {
        let toy = Toy {
            declines_up_to: Some(8),
            ..Toy::new(usize::MAX)
        };
        (toy, Log { events: e2.clone() })
    });
    let l = e.new_key();
    e.add_listener(l);
    let a = accept(&mut e, l);
    actions(&mut e);
    let sent = |events: &Events| -> Vec<String> {
        let ev = events.lock().unwrap();
        ev.iter()
            .filter(|x| x.starts_with("sent"))
            .cloned()
            .collect()
    };
    for i in 0..2 {
        e.data(a, b"ping", now(1 + i));
        assert_eq!(written(&actions(&mut e), a), b"ping");
        e.sent(a, 4, now(1 + i));
        assert!(
            actions(&mut e).is_empty(),
            "a declined report acts on nothing"
        );
        assert!(e.wants_read(a));
    }
    assert!(
        sent(&events).is_empty(),
        "4 and 8 unreported bytes: declined"
    );
    e.data(a, b"ping", now(3));
    actions(&mut e);
    e.sent(a, 4, now(3));
    assert_eq!(
        sent(&events),
        ["sent 12"],
        "12 is above 8: all of it reported"
    );
    // Counting starts again from the report.
    e.data(a, b"ping", now(4));
    actions(&mut e);
    e.sent(a, 4, now(4));
    assert_eq!(sent(&events), ["sent 12"]);
}

#[test]
fn machine_timers_and_idle_timeout() {
    let config = EngineConfig {
        idle_timeout: Some(Duration::from_millis(100)),
        ..EngineConfig::default()
    };
    let (mut e, events) = engine(Mode::Hub, usize::MAX, config);
    let l = e.new_key();
    e.add_listener(l);
    let a = accept(&mut e, l);
    let slot = e.slot_of(a).unwrap();
    e.call(
        slot,
        Box::new(|m: &mut Toy| m.deadline = Some(Instant::from_nanos(50_000_000))),
        now(1),
    );
    assert_eq!(e.next_deadline(), Some(Instant::from_nanos(50_000_000)));
    e.timeout(now(49));
    assert!(
        !events.lock().unwrap().contains(&"timer".to_string()),
        "early"
    );
    e.timeout(now(50));
    assert!(events.lock().unwrap().contains(&"timer".to_string()));
    actions(&mut e);
    e.data(a, b"x", now(60));
    e.timeout(now(120));
    assert!(
        !actions(&mut e)
            .iter()
            .any(|x| matches!(x, Action::Shutdown { .. })),
        "active at 60"
    );
    e.timeout(now(161));
    assert!(actions(&mut e)
        .iter()
        .any(|x| matches!(x, Action::Shutdown { key, how: Close::Abort } if *key == a)));
}

#[test]
fn start_tls_without_a_layer_fails_and_cap_refuses() {
    let config = EngineConfig {
        max_conns: 1,
        ..EngineConfig::default()
    };
    let (mut e, events) = engine(Mode::Hub, usize::MAX, config);
    let l = e.new_key();
    e.add_listener(l);
    let a = accept(&mut e, l);
    let k = e.new_key();
    assert!(e
        .accept(l, k, Addr::Unknown, Addr::Unknown, now(0))
        .is_err());
    let slot = e.slot_of(a).unwrap();
    e.call(
        slot,
        Box::new(|m: &mut Toy| {
            m.out.push_back(Output::Open {
                conn: ConnId(1),
                how: Open::StartTls {
                    role: Role::Server,
                    server_name: None,
                    resume_from: None,
                },
            });
            m.out.push_back(Output::Open {
                conn: ConnId(1 << 63),
                how: Open::Connect {
                    host: "localhost".into(),
                    port: 1,
                    timeout: None,
                },
            });
        }),
        now(1),
    );
    let ev = events.lock().unwrap().clone();
    assert!(
        ev.iter()
            .any(|e| e.contains("open failed") && e.contains("not supported")),
        "{ev:?}"
    );
    assert!(
        ev.iter()
            .any(|e| e.contains(&format!("{}", OpenError::Limit))),
        "{ev:?}"
    );
}

#[test]
fn splice_relays_without_the_machine() {
    let (mut e, _) = engine(Mode::Hub, usize::MAX, EngineConfig::default());
    let l = e.new_key();
    e.add_listener(l);
    let a = accept(&mut e, l);
    let b = accept(&mut e, l);
    actions(&mut e);
    let slot = e.slot_of(a).unwrap();
    e.call(
        slot,
        Box::new(|m: &mut Toy| {
            m.out.push_back(Output::Splice {
                a: ConnId(1),
                b: ConnId(2),
            })
        }),
        now(1),
    );
    e.data(a, b"to b", now(2));
    e.data(b, b"to a", now(2));
    let acts = actions(&mut e);
    assert_eq!(written(&acts, b), b"to b");
    assert_eq!(written(&acts, a), b"to a");
    e.eof(a, true, now(3));
    assert!(actions(&mut e)
        .iter()
        .any(|x| matches!(x, Action::Shutdown { key, how: Close::WriteHalf } if *key == b)));
}
