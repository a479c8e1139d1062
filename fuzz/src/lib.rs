//! The bodies of the fuzz targets, as plain functions.
//!
//! `fuzz_targets/*.rs` hand them libFuzzer's input; `tests/fuzz_corpus.rs`
//! (in the root package) includes this file as a module and runs each over
//! its checked-in corpus on stable, so every seed and every crash ever
//! saved is replayed by CI. Each body panics only when a promise is broken:
//! - codecs: decoding never panics, never depends on how the input is cut,
//!   never returns a frame over the limit or buffers much past it, and
//!   decode → encode → decode gives the same frames;
//! - machines: arbitrary interleavings of inputs from several connections
//!   and application commands never panic, `poll_output` always reaches
//!   `Wait`, nothing is sent on a connection after its `Close`, every
//!   `Data` is taken whole, frames respect the limit, and (chat) no
//!   client's unflushed output passes its bound.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};

use arbitrary::{Arbitrary, Unstructured};
use bytes::BytesMut;
use twill_basic::{
    Chat, ChatEvent, Codec, Framed, FramedEvent, FramingError, Lines, Netstring, Prefixed,
};
use twill_core::{Addr, ConnId, Duration, Input, ListenerId, Machine, Now, Output};

// ---------------------------------------------------------------- codecs

#[derive(Debug, PartialEq)]
struct Decoded {
    frames: Vec<Vec<u8>>,
    error: Option<FramingError>,
}

/// Feeds `data` to a fresh copy of `template` in pieces of `piece` bytes,
/// decoding after each, and checks the buffer stays within `max + slack`.
fn decode_stream<C: Codec + Clone>(
    template: &C,
    data: &[u8],
    piece: usize,
    slack: usize,
) -> Decoded {
    let mut codec = template.clone();
    let max = codec.max_frame();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for chunk in data.chunks(piece.max(1)) {
        buf.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(f)) => {
                    assert!(f.len() <= max, "frame of {} over the limit {max}", f.len());
                    frames.push(f.to_vec());
                }
                Ok(None) => break,
                Err(error) => {
                    return Decoded {
                        frames,
                        error: Some(error),
                    }
                }
            }
        }
        assert!(
            buf.len() <= max + slack,
            "{} bytes buffered with a limit of {max}",
            buf.len()
        );
    }
    Decoded {
        frames,
        error: None,
    }
}

/// The shared codec property: chunking-independent, bounded, and stable
/// under decode → encode → decode. `may_refuse` says which encode errors a
/// decoded frame may legitimately get (a lenient line decoder accepts a
/// line ending in CR that its LF encoder cannot send).
fn codec_stability<C: Codec + Clone>(
    template: &C,
    data: &[u8],
    slack: usize,
    may_refuse: fn(&FramingError) -> bool,
) {
    let whole = decode_stream(template, data, data.len(), slack);
    let bytewise = decode_stream(template, data, 1, slack);
    assert_eq!(whole, bytewise, "byte-at-a-time differs from whole");
    let piece = 2 + data.first().map_or(0, |b| usize::from(*b) % 31);
    assert_eq!(
        whole,
        decode_stream(template, data, piece, slack),
        "pieces of {piece} differ from whole"
    );

    let mut wire = BytesMut::new();
    let mut sent = Vec::new();
    for f in &whole.frames {
        match template.encode(f, &mut wire) {
            Ok(()) => sent.push(f.clone()),
            Err(e) => assert!(may_refuse(&e), "a decoded frame does not encode: {e}"),
        }
    }
    let again = decode_stream(template, &wire, wire.len(), slack);
    assert_eq!(again.error, None, "our own encoding does not decode");
    assert_eq!(
        again.frames, sent,
        "decode -> encode -> decode changed frames"
    );
}

fn never(_: &FramingError) -> bool {
    false
}

/// Lines, lenient and strict, with small limits so limits are hit.
pub fn lines(data: &[u8]) {
    let trailing_cr = |e: &FramingError| matches!(e, FramingError::TrailingCr);
    codec_stability(&Lines::new().max_length(64), data, 1, trailing_cr);
    codec_stability(&Lines::new().max_length(64).send_crlf(true), data, 1, never);
    codec_stability(&Lines::crlf().max_length(64), data, 1, never);
    codec_stability(&Lines::new(), data, 1, trailing_cr);
}

/// Netstrings with a small and the default limit.
pub fn netstring(data: &[u8]) {
    // Slack: the length digits and the colon (the comma completes a frame).
    codec_stability(&Netstring::new().max_length(100), data, 4, never);
    codec_stability(&Netstring::new(), data, 6, never);
}

/// Length prefixes of every width, with small limits.
pub fn prefixed(data: &[u8]) {
    codec_stability(&Prefixed::u8(), data, 1, never);
    codec_stability(&Prefixed::u16().max_length(300), data, 2, never);
    codec_stability(&Prefixed::u32().max_length(300), data, 4, never);
}

// ---------------------------------------------------------------- machines

/// One step of a machine fuzz run. Connections are named by a slot byte
/// (three slots); a slot whose connection is gone gets a fresh id.
#[derive(Arbitrary, Debug)]
pub enum Op {
    /// The driver accepts the slot's connection.
    Accept(u8),
    /// Bytes arrive on the slot's connection.
    Data(u8, Vec<u8>),
    /// The peer half-closes.
    Eof(u8),
    /// The driver flushed up to this many bytes.
    Sent(u8, u16),
    /// The connection is gone (reset, or the answer to a `Close`).
    Closed(u8),
    /// Time passes (milliseconds).
    Advance(u16),
    /// The application sends (chat: an even slot byte broadcasts).
    Send(u8, Vec<u8>),
    /// The application closes the connection.
    Close(u8),
}

/// A driver's view of the connections, checking the machine keeps the
/// contract.
struct Harness {
    now: Now,
    slots: [ConnId; 3],
    next_id: u64,
    accepted: BTreeSet<ConnId>,
    eof: BTreeSet<ConnId>,
    closing: BTreeSet<ConnId>,
    unacked: BTreeMap<ConnId, usize>,
}

impl Harness {
    fn new() -> Self {
        Harness {
            now: Now::default(),
            slots: [ConnId(1), ConnId(2), ConnId(3)],
            next_id: 4,
            accepted: BTreeSet::new(),
            eof: BTreeSet::new(),
            closing: BTreeSet::new(),
            unacked: BTreeMap::new(),
        }
    }

    fn conn(&self, slot: u8) -> ConnId {
        self.slots[usize::from(slot % 3)]
    }

    /// The connection is gone: its slot gets a never-used id.
    fn retire(&mut self, slot: u8) {
        let old = self.conn(slot);
        self.accepted.remove(&old);
        self.eof.remove(&old);
        self.closing.remove(&old);
        self.unacked.remove(&old);
        self.slots[usize::from(slot % 3)] = ConnId(self.next_id);
        self.next_id += 1;
    }

    /// Feeds one input; checks a `Data` is taken whole.
    fn input<M: Machine>(&mut self, m: &mut M, input: Input<'_>) {
        let offered = match &input {
            Input::Data { bytes, .. } => Some(bytes.len()),
            _ => None,
        };
        // These machines never return Err from handle_input.
        let taken = m
            .handle_input(self.now, input)
            .expect("handle_input never fails");
        if let Some(n) = offered {
            assert_eq!(taken, n, "a Data was not taken whole");
        }
    }

    /// Polls to `Wait`, checking each output; returns the events.
    fn drain<M: Machine>(&mut self, m: &mut M) -> Vec<M::Event> {
        let mut events = Vec::new();
        for _ in 0..1_000_000 {
            match m.poll_output() {
                Output::Wait { .. } => return events,
                Output::Transmit { conn, payload } => {
                    assert!(
                        !self.closing.contains(&conn),
                        "Transmit on {conn} after its Close"
                    );
                    assert!(
                        self.accepted.contains(&conn),
                        "Transmit on {conn}, which is not connected"
                    );
                    *self.unacked.entry(conn).or_default() += payload.len() as usize;
                }
                Output::Close { conn, .. } => {
                    assert!(self.accepted.contains(&conn), "Close of unknown {conn}");
                    assert!(self.closing.insert(conn), "{conn} closed twice");
                }
                Output::Event(e) => events.push(e),
                _ => {}
            }
        }
        panic!("poll_output never returned Wait");
    }

    /// Carries out one driver-side op (skipping ops a real driver could
    /// not produce, such as data after EOF); returns false for the
    /// application ops, which the caller carries out.
    fn step<M: Machine>(&mut self, m: &mut M, op: &Op) -> bool {
        match op {
            Op::Accept(s) => {
                let conn = self.conn(*s);
                if !self.accepted.insert(conn) {
                    return true;
                }
                self.input(
                    m,
                    Input::Accepted {
                        conn,
                        listener: ListenerId(0),
                        local: Addr::Unknown,
                        peer: Addr::Unknown,
                    },
                );
            }
            Op::Data(s, bytes) => {
                let conn = self.conn(*s);
                if self.eof.contains(&conn) {
                    return true;
                }
                self.input(m, Input::Data { conn, bytes });
            }
            Op::Eof(s) => {
                let conn = self.conn(*s);
                if !self.eof.insert(conn) {
                    return true;
                }
                self.input(m, Input::Eof { conn, clean: true });
            }
            Op::Sent(s, n) => {
                let conn = self.conn(*s);
                let un = self.unacked.entry(conn).or_default();
                let n = usize::from(*n).min(*un);
                if n == 0 {
                    return true;
                }
                *un -= n;
                self.input(m, Input::Sent { conn, bytes: n });
            }
            Op::Closed(s) => {
                let conn = self.conn(*s);
                if !self.accepted.contains(&conn) {
                    return true;
                }
                self.retire(*s);
                self.input(m, Input::Closed { conn });
            }
            Op::Advance(ms) => {
                self.now = self.now.after(Duration::from_millis(u64::from(*ms)));
                m.handle_timeout(self.now);
            }
            Op::Send(..) | Op::Close(..) => return false,
        }
        true
    }
}

/// Decodes a fuzz input into at most 512 ops (the machine targets' input).
pub fn ops(data: &[u8]) -> Vec<Op> {
    let mut u = Unstructured::new(data);
    let mut v = Vec::new();
    while !u.is_empty() && v.len() < 512 {
        match Op::arbitrary(&mut u) {
            Ok(op) => v.push(op),
            Err(_) => break,
        }
    }
    v
}

fn framed_run<C: Codec + Clone>(codec: C, ops: &[Op]) {
    let max = codec.max_frame();
    let mut m = Framed::new(codec).with_budget(twill_core::OutputBudget::new(200, 50));
    let mut h = Harness::new();
    for op in ops {
        if !h.step(&mut m, op) {
            match op {
                Op::Send(s, bytes) => {
                    let _ = m.send(h.conn(*s), bytes);
                }
                Op::Close(s) => {
                    let _ = m.close(h.conn(*s));
                }
                _ => unreachable!(),
            }
        }
        for e in h.drain(&mut m) {
            if let FramedEvent::Frame { frame, .. } = e {
                assert!(frame.len() <= max, "frame over the limit");
            }
        }
    }
}

/// `Framed` over each codec, fed an arbitrary sequence of inputs from
/// three connections and application commands.
pub fn framed_machine(data: &[u8]) {
    let ops = ops(data);
    framed_run(Lines::new().max_length(32), &ops);
    framed_run(Netstring::new().max_length(32), &ops);
    framed_run(Prefixed::u16().max_length(32), &ops);
}

/// The chat hub, fed an arbitrary sequence of inputs from three clients and
/// application commands; no client's unflushed output may pass the bound.
pub fn chat_machine(data: &[u8]) {
    const MAX_QUEUED: usize = 300;
    let mut m = Chat::new().with_max_line(32).with_max_queued(MAX_QUEUED);
    let mut h = Harness::new();
    for op in ops(data) {
        if !h.step(&mut m, &op) {
            match op {
                Op::Send(s, bytes) if s % 2 == 0 => {
                    let _ = m.broadcast(&bytes);
                }
                Op::Send(s, bytes) => {
                    let _ = m.send(h.conn(s), &bytes);
                }
                Op::Close(s) => {
                    let _ = m.close(h.conn(s));
                }
                _ => unreachable!(),
            }
        }
        for e in h.drain(&mut m) {
            if let ChatEvent::Line { line, .. } = e {
                assert!(line.len() <= 32, "line over the limit");
            }
        }
        for s in 0..3 {
            let conn = h.conn(s);
            if let Some(p) = m.pending_output(conn) {
                assert!(p <= MAX_QUEUED, "{conn} holds {p} unflushed bytes");
                assert_eq!(p, h.unacked.get(&conn).copied().unwrap_or(0));
            }
        }
    }
}
