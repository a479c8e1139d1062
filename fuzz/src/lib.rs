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

// ------------------------------------------------------------------ http

mod http {
    //! HTTP/1.1: request, response and chunked parsing (never panic, the
    //! same result however the input is cut, serialize → parse is stable)
    //! and the server machine under arbitrary input sequences and
    //! application commands.

    use std::collections::{BTreeMap, BTreeSet};

    use bytes::{Bytes, BytesMut};
    use twill_core::{Addr, Close, ConnId, Duration, Input, ListenerId, Machine, Now, Output};
    use twill_http::codec::chunked::{self, decode_all, ChunkedLimits};
    use twill_http::codec::head::{
        decode_request, decode_response, write_header, write_request_line, write_status_line,
        HeadLimits, HeadScanner,
    };
    use twill_http::{BodyKind, ProtocolError, RequestId, Server, ServerConfig, ServerEvent};

    use super::Op;

    const LIMITS: HeadLimits = HeadLimits {
        max_line: 128,
        max_head: 512,
        max_headers: 16,
    };

    /// Decodes requests one after another from `data` fed in pieces of
    /// `piece` bytes; returns a description of each and the error, if any.
    fn requests_in_pieces(data: &[u8], piece: usize) -> (Vec<String>, Option<ProtocolError>) {
        let mut buf = BytesMut::new();
        let mut scan = HeadScanner::request();
        let mut out = Vec::new();
        for chunk in data.chunks(piece.max(1)) {
            buf.extend_from_slice(chunk);
            loop {
                match decode_request(&mut buf, &mut scan, &LIMITS) {
                    Ok(Some(h)) => {
                        assert!(h.raw().len() <= LIMITS.max_head, "head over the limit");
                        out.push(format!("{h:?}"));
                    }
                    Ok(None) => break,
                    Err(e) => return (out, Some(e)),
                }
            }
            assert!(buf.len() <= LIMITS.max_head, "{} bytes buffered", buf.len());
        }
        (out, None)
    }

    /// Request heads: no panic, chunking-independent, bounded, and a head
    /// that parses re-serializes to one that parses the same.
    pub fn request(data: &[u8]) {
        let whole = requests_in_pieces(data, data.len());
        assert_eq!(requests_in_pieces(data, 1), whole, "byte-at-a-time differs");
        assert_eq!(requests_in_pieces(data, 7), whole, "7-byte pieces differ");
        let mut buf = BytesMut::from(data);
        let mut scan = HeadScanner::request();
        if let Ok(Some(h)) = decode_request(&mut buf, &mut scan, &LIMITS) {
            let mut wire = BytesMut::new();
            write_request_line(&mut wire, h.method(), h.target(), h.version())
                .expect("a parsed request line re-serializes");
            for (n, v) in h.headers().iter() {
                write_header(&mut wire, n, v).expect("a parsed field re-serializes");
            }
            wire.extend_from_slice(b"\r\n");
            let mut scan = HeadScanner::request();
            let again = decode_request(&mut wire, &mut scan, &HeadLimits::default())
                .expect("re-serialized head parses")
                .expect("complete");
            assert_eq!(again.method(), h.method());
            assert_eq!(again.target(), h.target());
            assert_eq!(again.version(), h.version());
            assert!(again.headers().iter().eq(h.headers().iter()));
            let _ = twill_http::codec::request_body(&h);
        }
    }

    /// Response heads: as for requests.
    pub fn response(data: &[u8]) {
        let run = |piece: usize| {
            let mut buf = BytesMut::new();
            let mut scan = HeadScanner::response();
            let mut out = Vec::new();
            for chunk in data.chunks(piece.max(1)) {
                buf.extend_from_slice(chunk);
                loop {
                    match decode_response(&mut buf, &mut scan, &LIMITS) {
                        Ok(Some(h)) => out.push(format!("{h:?}")),
                        Ok(None) => break,
                        Err(e) => return (out, Some(e)),
                    }
                }
                assert!(buf.len() <= LIMITS.max_head, "{} bytes buffered", buf.len());
            }
            (out, None)
        };
        let whole = run(data.len());
        assert_eq!(run(1), whole, "byte-at-a-time differs");
        assert_eq!(run(5), whole, "5-byte pieces differ");
        let mut buf = BytesMut::from(data);
        if let Ok(Some(h)) = decode_response(&mut buf, &mut HeadScanner::response(), &LIMITS) {
            let mut wire = BytesMut::new();
            write_status_line(&mut wire, h.version(), h.status(), h.reason());
            for (n, v) in h.headers().iter() {
                write_header(&mut wire, n, v).expect("a parsed field re-serializes");
            }
            wire.extend_from_slice(b"\r\n");
            let again = decode_response(
                &mut wire,
                &mut HeadScanner::response(),
                &HeadLimits::default(),
            )
            .expect("re-serialized head parses")
            .expect("complete");
            assert_eq!(again.status(), h.status());
            assert!(again.headers().iter().eq(h.headers().iter()));
            for m in ["GET", "HEAD", "CONNECT"] {
                let _ = twill_http::codec::response_body(&h, m);
            }
        }
    }

    /// The chunked decoder: no panic, chunking-independent, bounded
    /// trailers, and decode → encode → decode is stable.
    pub fn chunked_body(data: &[u8]) {
        let lim = ChunkedLimits {
            max_extension: 16,
            max_trailers: 64,
            max_trailer_fields: 4,
        };
        let whole = decode_all(data, lim);
        // Byte at a time through the incremental decoder.
        let mut d = twill_http::codec::ChunkedDecoder::new(lim);
        let mut body = Vec::new();
        let mut res: Option<Result<(), ProtocolError>> = None;
        let mut used = 0;
        for (i, b) in data.iter().enumerate() {
            match d.decode(std::slice::from_ref(b)) {
                Ok((_, Some(twill_http::codec::Chunk::Data { start, end }))) => {
                    body.extend_from_slice(&[*b][start..end])
                }
                Ok((_, Some(twill_http::codec::Chunk::End { .. }))) => {
                    res = Some(Ok(()));
                    used = i + 1;
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    res = Some(Err(e));
                    break;
                }
            }
        }
        match (&whole, res) {
            (Ok((b, _, n)), Some(Ok(()))) => {
                assert_eq!(&b[..], &body[..]);
                assert_eq!(*n, used);
            }
            (Err(ProtocolError::Truncated), None) => {}
            (Err(e), Some(Err(e2))) => assert_eq!(*e, e2),
            (w, b) => panic!("whole {w:?} vs byte-at-a-time {b:?}"),
        }
        if let Ok((b, trailers, _)) = whole {
            let mut wire = BytesMut::new();
            chunked::write_chunk(&mut wire, &b);
            let names: Vec<(String, String)> = trailers
                .iter()
                .map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v).into_owned()))
                .collect();
            let t: Vec<(&str, &str)> = names
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            if chunked::write_last_chunk(&mut wire, &t).is_ok() {
                let (b2, t2, n2) =
                    decode_all(&wire, ChunkedLimits::default()).expect("re-encoded body decodes");
                assert_eq!(b2, b);
                assert_eq!(n2, wire.len());
                assert_eq!(t2.len(), trailers.len());
            }
        }
    }

    /// Decodes the machine target's input: records of an op byte (low 3
    /// bits: accept, data, eof, sent, closed, advance, send, close; the
    /// rest: the connection slot), a length byte and that many payload
    /// bytes. A plain format rather than `Arbitrary`, so that seeds are
    /// readable HTTP with a few bytes around it.
    pub fn records(data: &[u8]) -> Vec<Op> {
        let mut v = Vec::new();
        let mut i = 0;
        while i + 1 < data.len() && v.len() < 512 {
            let (op, len) = (data[i], usize::from(data[i + 1]));
            let payload = &data[i + 2..(i + 2 + len).min(data.len())];
            i += 2 + len;
            let slot = (op >> 3) % 3;
            v.push(match op % 8 {
                0 => Op::Accept(slot),
                1 => Op::Data(slot, payload.to_vec()),
                2 => Op::Eof(slot),
                3 => Op::Sent(slot, (len as u16) * 8),
                4 => Op::Closed(slot),
                5 => Op::Advance((len as u16) * 10),
                6 => Op::Send(slot, payload.to_vec()),
                _ => Op::Close(slot),
            });
        }
        v
    }

    /// Feeds the server machine an arbitrary sequence of inputs from three
    /// connections and application commands (`Send`'s first byte picks
    /// the command, applied to that connection's oldest open request).
    /// Checks: no panic, `poll_output` reaches `Wait`, a short take is
    /// re-offered only after `Resume`, nothing is sent on a connection
    /// after its `Close` or its upgrade, input buffered stays bounded.
    pub fn server_machine(data: &[u8]) {
        let cfg = ServerConfig {
            limits: LIMITS,
            max_body: 1000,
            max_pipelined: 2,
            header_timeout: Duration::from_millis(500),
            idle_timeout: Duration::from_millis(2000),
            budget: twill_core::OutputBudget::new(300, 100),
            ..ServerConfig::default()
        };
        let mut m = Server::new(cfg);
        let mut now = Now::default();
        let mut slots = [ConnId(1), ConnId(2), ConnId(3)];
        let mut next_id = 4;
        let mut accepted: BTreeSet<ConnId> = BTreeSet::new();
        let mut gone: BTreeSet<ConnId> = BTreeSet::new();
        let mut eof: BTreeSet<ConnId> = BTreeSet::new();
        let mut unacked: BTreeMap<ConnId, usize> = BTreeMap::new();
        let mut held: BTreeMap<ConnId, Vec<u8>> = BTreeMap::new();
        let mut paused: BTreeSet<ConnId> = BTreeSet::new();
        let mut open: Vec<RequestId> = Vec::new();
        let mut biggest = 0usize;

        let mut half: BTreeSet<ConnId> = BTreeSet::new();
        let drain = |m: &mut Server,
                     accepted: &BTreeSet<ConnId>,
                     gone: &mut BTreeSet<ConnId>,
                     half: &mut BTreeSet<ConnId>,
                     unacked: &mut BTreeMap<ConnId, usize>,
                     paused: &mut BTreeSet<ConnId>,
                     open: &mut Vec<RequestId>| {
            for _ in 0..100_000 {
                match m.poll_output() {
                    Output::Wait { .. } => return,
                    Output::Transmit { conn, payload } => {
                        assert!(accepted.contains(&conn), "Transmit on unknown {conn}");
                        assert!(!gone.contains(&conn), "Transmit on {conn} after its end");
                        assert!(!half.contains(&conn), "Transmit on {conn} after WriteHalf");
                        *unacked.entry(conn).or_default() += payload.len() as usize;
                    }
                    Output::Close { conn, how } => {
                        assert!(!gone.contains(&conn), "{conn} closed after its end");
                        match how {
                            // A lingering close: sending ends now, the
                            // connection later.
                            Close::WriteHalf => {
                                assert!(half.insert(conn), "{conn} half-closed twice")
                            }
                            Close::Graceful => {
                                gone.insert(conn);
                            }
                            Close::Abort => panic!("the server never aborts"),
                        }
                    }
                    Output::Resume { conn } => {
                        paused.remove(&conn);
                    }
                    Output::Event(ServerEvent::Request(r)) => open.push(r.id),
                    Output::Event(ServerEvent::Upgraded { conn, .. }) => {
                        assert!(gone.insert(conn), "{conn} upgraded after its end");
                    }
                    Output::Event(ServerEvent::ResponseDone { id })
                    | Output::Event(ServerEvent::Aborted { id }) => open.retain(|i| *i != id),
                    Output::Event(_) => {}
                    o => panic!("unexpected output {o:?}"),
                }
            }
            panic!("poll_output never returned Wait");
        };

        for op in records(data) {
            let conn_of = |s: u8, slots: &[ConnId; 3]| slots[usize::from(s % 3)];
            match &op {
                Op::Accept(s) => {
                    let conn = conn_of(*s, &slots);
                    if accepted.insert(conn) {
                        let _ = m.handle_input(
                            now,
                            Input::Accepted {
                                conn,
                                listener: ListenerId(0),
                                local: Addr::Unknown,
                                peer: Addr::Unknown,
                            },
                        );
                    }
                }
                Op::Data(s, bytes) => {
                    let conn = conn_of(*s, &slots);
                    if accepted.contains(&conn) && !eof.contains(&conn) {
                        biggest = biggest.max(bytes.len());
                        held.entry(conn).or_default().extend_from_slice(bytes);
                    }
                }
                Op::Eof(s) => {
                    let conn = conn_of(*s, &slots);
                    if accepted.contains(&conn)
                        && held.get(&conn).map_or(true, Vec::is_empty)
                        && eof.insert(conn)
                    {
                        let _ = m.handle_input(now, Input::Eof { conn, clean: true });
                    }
                }
                Op::Sent(s, n) => {
                    let conn = conn_of(*s, &slots);
                    let un = unacked.entry(conn).or_default();
                    let n = usize::from(*n).min(*un);
                    if n > 0 && !gone.contains(&conn) {
                        *un -= n;
                        let _ = m.handle_input(now, Input::Sent { conn, bytes: n });
                    }
                }
                Op::Closed(s) => {
                    let conn = conn_of(*s, &slots);
                    if accepted.contains(&conn) {
                        slots[usize::from(s % 3)] = ConnId(next_id);
                        next_id += 1;
                        held.remove(&conn);
                        gone.insert(conn);
                        let _ = m.handle_input(now, Input::Closed { conn });
                        open.retain(|i| i.conn() != conn);
                    }
                }
                Op::Advance(ms) => {
                    now = now.after(Duration::from_millis(u64::from(*ms)));
                    m.handle_timeout(now);
                }
                Op::Send(s, cmd) => {
                    let conn = conn_of(*s, &slots);
                    if let Some(id) = open.iter().copied().find(|i| i.conn() == conn) {
                        let pick = cmd.first().copied().unwrap_or(0);
                        let body = Bytes::copy_from_slice(cmd.get(1..).unwrap_or_default());
                        let s = &mut m;
                        let _ = match pick % 10 {
                            0 => s.respond_full(id, 200, &[("X", "y")], body),
                            1 => s.respond(id, 200, &[], BodyKind::Chunked),
                            2 => s.respond(id, 404, &[], BodyKind::Length(body.len() as u64)),
                            3 => s.send_body(id, body),
                            4 => s.finish(id, &[("T", "1")]),
                            5 => s.send_continue(id),
                            6 => s.accept_upgrade(id, &[("Upgrade", "x")]),
                            7 => s.pause_body(id),
                            8 => s.resume_body(id),
                            _ => s.respond(id, 204, &[], BodyKind::Empty),
                        };
                    }
                }
                Op::Close(s) => {
                    let _ = m.close(conn_of(*s, &slots));
                }
            }
            drain(
                &mut m,
                &accepted,
                &mut gone,
                &mut half,
                &mut unacked,
                &mut paused,
                &mut open,
            );
            // Offer what the driver holds, as a driver would: not while the
            // machine paused the connection with a short take.
            for conn in slots {
                if paused.contains(&conn) || gone.contains(&conn) {
                    continue;
                }
                let Some(buf) = held.remove(&conn) else {
                    continue;
                };
                if buf.is_empty() {
                    continue;
                }
                let taken = m
                    .handle_input(now, Input::Data { conn, bytes: &buf })
                    .expect("handle_input never fails");
                assert!(taken <= buf.len(), "took more than offered");
                if taken < buf.len() {
                    paused.insert(conn);
                    held.insert(conn, buf[taken..].to_vec());
                }
                drain(
                    &mut m,
                    &accepted,
                    &mut gone,
                    &mut half,
                    &mut unacked,
                    &mut paused,
                    &mut open,
                );
                let b = m.buffered(conn);
                assert!(b <= LIMITS.max_head + biggest, "{conn} buffers {b} bytes");
            }
        }
    }
}

/// Request heads: parsing never panics, is chunking-independent and
/// bounded, and re-serializing a parsed head gives the same head.
pub fn http_request(data: &[u8]) {
    http::request(data);
}

/// Response heads, as for requests.
pub fn http_response(data: &[u8]) {
    http::response(data);
}

/// Chunked bodies: decoding never panics, is chunking-independent and
/// bounded; decode → encode → decode is stable.
pub fn http_chunked(data: &[u8]) {
    http::chunked_body(data);
}

/// The HTTP server machine under arbitrary input sequences and commands.
pub fn http_server_machine(data: &[u8]) {
    http::server_machine(data);
}

// ---------------------------------------------------------------- TLS

mod tls {
    use std::sync::OnceLock;

    use twill_basic::Echo;
    use twill_core::{Addr, Close, ConnId, Duration, Input, ListenerId, Machine, Now, Output};
    use twill_tls::{ServerSetup, Tls, TlsContext};

    /// A fixed self-signed certificate for "localhost" (made by `twill
    /// cert`, valid 1975–4096), so the fuzzer never generates keys.
    const CERT: &str = include_str!("tls_cert.pem");
    const KEY: &str = include_str!("tls_key.pem");

    fn ctx() -> &'static TlsContext {
        static CTX: OnceLock<TlsContext> = OnceLock::new();
        CTX.get_or_init(|| {
            let setup = ServerSetup::from_pem(CERT.as_bytes(), KEY.as_bytes()).expect("fixed cert");
            TlsContext::new().with_server(&setup).expect("config")
        })
    }

    /// Drains; checks `Wait` comes and nothing is sent on a connection
    /// after its `Close`.
    fn drain(m: &mut Tls<Echo>, closed: &mut Vec<ConnId>) {
        for _ in 0..100_000 {
            match m.poll_output() {
                Output::Wait { .. } => return,
                Output::Transmit { conn, .. } => {
                    assert!(
                        !closed.contains(&conn),
                        "transmit on {conn} after its close"
                    );
                }
                Output::Close { conn, how } if how != Close::WriteHalf => closed.push(conn),
                _ => {}
            }
        }
        panic!("poll_output never returned Wait");
    }

    /// Arbitrary bytes from a peer into a server-mode `Tls<Echo>`: the
    /// first byte chooses how the rest is cut (0 = whole); the same bytes
    /// go whole to a second connection, which must not be disturbed by the
    /// first; then EOF and the handshake timeout.
    pub fn server(data: &[u8]) {
        let (cut, rest) = match data.split_first() {
            Some((c, r)) => (usize::from(*c), r),
            None => (0, data),
        };
        let piece = if cut == 0 { rest.len().max(1) } else { cut };
        let mut now = Now::default();
        let mut m = Tls::server(Echo::new(), ctx());
        let mut closed = Vec::new();
        let (a, b) = (ConnId(1), ConnId(2));
        for conn in [a, b] {
            let _ = m.handle_input(
                now,
                Input::Accepted {
                    conn,
                    listener: ListenerId(1),
                    local: Addr::Unknown,
                    peer: Addr::Unknown,
                },
            );
            drain(&mut m, &mut closed);
        }
        let feed = |m: &mut Tls<Echo>, closed: &mut Vec<ConnId>, conn, bytes: &[u8]| {
            let mut off = 0;
            let mut stalls = 0;
            while off < bytes.len() && stalls < 4 {
                let n = m
                    .handle_input(
                        now,
                        Input::Data {
                            conn,
                            bytes: &bytes[off..],
                        },
                    )
                    .unwrap_or(bytes.len() - off);
                assert!(n <= bytes.len() - off, "took more than offered");
                drain(m, closed);
                if n == 0 {
                    stalls += 1;
                }
                off += n;
            }
        };
        for chunk in rest.chunks(piece) {
            feed(&mut m, &mut closed, a, chunk);
        }
        feed(&mut m, &mut closed, b, rest);
        for conn in [a, b] {
            let _ = m.handle_input(now, Input::Eof { conn, clean: true });
            drain(&mut m, &mut closed);
        }
        now = now.after(Duration::from_secs(60));
        m.handle_timeout(now);
        drain(&mut m, &mut closed);
        for conn in [a, b] {
            let _ = m.handle_input(now, Input::Closed { conn });
            drain(&mut m, &mut closed);
        }
        assert_eq!(m.sessions(), 0, "sessions outlive their connections");
    }
}

/// Arbitrary bytes from a peer into a server-mode `Tls<Echo>` never panic
/// (alerts and closes only), on two connections, whole and cut.
pub fn tls_server(data: &[u8]) {
    tls::server(data);
}

mod websocket {
    //! WebSocket: the frame parser, both roles' connection machines and
    //! the inflate path.

    use bytes::{Bytes, BytesMut};
    use twill_core::rng::RngCore;
    use twill_core::{ConnId, Duration, Input, Machine, Now, Output};
    use twill_websocket::codec::{parse_header, write_header, Utf8Validator};
    use twill_websocket::deflate::{Deflate, DeflateConfig, DeflateParams};
    use twill_websocket::{CloseCode, Config, Kind, Role, WebSocket, WsEvent};

    /// Headers parse without panic, re-encode minimally to the same
    /// header; the UTF-8 validator agrees with std however the input is
    /// cut.
    pub fn frames(data: &[u8]) {
        let mut rest = data;
        while let Ok(Some((h, n))) = parse_header(rest) {
            assert!((2..=14).contains(&n) && n <= rest.len());
            let mut b = BytesMut::new();
            write_header(&mut b, &h);
            assert!(b.len() <= n, "re-encoding is minimal");
            assert_eq!(parse_header(&b), Ok(Some((h, b.len()))));
            rest = &rest[n..];
        }
        let cut = data.first().map_or(0, |&c| usize::from(c)).min(data.len());
        let mut v = Utf8Validator::new();
        let ok = v.feed(&data[..cut]).is_ok() && v.feed(&data[cut..]).is_ok() && v.is_complete();
        assert_eq!(ok, std::str::from_utf8(data).is_ok());
    }

    /// A fixed-output RNG (the fuzzer chooses everything else).
    struct Fixed(u32);
    impl RngCore for Fixed {
        fn next_u32(&mut self) -> u32 {
            self.0 = self.0.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            self.0
        }
        fn next_u64(&mut self) -> u64 {
            u64::from(self.next_u32())
        }
        fn fill_bytes(&mut self, d: &mut [u8]) {
            d.iter_mut().for_each(|b| *b = self.next_u32() as u8);
        }
        fn try_fill_bytes(&mut self, d: &mut [u8]) -> Result<(), rand_core::Error> {
            self.fill_bytes(d);
            Ok(())
        }
    }

    fn params() -> DeflateParams {
        DeflateParams {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
        }
    }

    /// Drains; checks nothing goes out after a `Close` and messages respect
    /// the limit. Returns whether the machine closed.
    fn drain(m: &mut WebSocket, closed: &mut bool, max: usize) {
        for _ in 0..100_000 {
            match m.poll_output() {
                Output::Wait { .. } => return,
                Output::Transmit { .. } => assert!(!*closed, "output after Close"),
                Output::Close { .. } => *closed = true,
                Output::Event(WsEvent::Message { kind, data }) => {
                    assert!(data.len() <= max, "message over the limit");
                    if kind == Kind::Text {
                        assert!(std::str::from_utf8(&data).is_ok());
                    }
                }
                _ => {}
            }
        }
        panic!("poll_output never reached Wait");
    }

    /// A machine of the role and options the first byte picks, fed the rest
    /// as a sequence of data chunks, EOF, acks, time and commands.
    pub fn machine(data: &[u8]) {
        let Some((&sel, mut rest)) = data.split_first() else {
            return;
        };
        let role = if sel & 1 == 0 {
            Role::Server
        } else {
            Role::Client
        };
        let cfg = Config {
            max_frame: 300,
            max_message: 500,
            streaming: sel & 2 != 0,
            keepalive: (sel & 4 != 0).then(|| Duration::from_secs(1)),
            keepalive_timeout: Duration::from_secs(1),
            output: twill_core::OutputBudget::new(400, 100),
            ..Config::default()
        };
        let deflate = (sel & 8 != 0).then(params);
        let conn = ConnId(1);
        let mut m = WebSocket::new(conn, role, cfg, deflate, Some(Box::new(Fixed(7))));
        let mut now = Now::default();
        let mut closed = false;
        let mut unacked = 0usize;
        while let Some((&op, tail)) = rest.split_first() {
            rest = tail;
            match op % 8 {
                0..=2 => {
                    let n = usize::from(op / 8).min(rest.len());
                    let (chunk, tail) = rest.split_at(n);
                    rest = tail;
                    let taken = m
                        .handle_input(now, Input::Data { conn, bytes: chunk })
                        .unwrap_or(0);
                    assert!(
                        taken == 0 || taken == chunk.len(),
                        "Data is taken whole or not at all"
                    );
                }
                3 => {
                    let _ = m.handle_input(now, Input::Eof { conn, clean: true });
                }
                4 => {
                    let n = unacked.min(usize::from(op) * 16);
                    unacked -= n;
                    let _ = m.handle_input(now, Input::Sent { conn, bytes: n });
                }
                5 => {
                    now = now.after(Duration::from_millis(u64::from(op) * 20));
                    m.handle_timeout(now);
                }
                6 => {
                    let n = usize::from(op / 8).min(rest.len());
                    let (chunk, tail) = rest.split_at(n);
                    rest = tail;
                    let _ = match op / 8 % 4 {
                        0 => m.send(Kind::Binary, Bytes::copy_from_slice(chunk)),
                        1 => m.ping(chunk),
                        2 => m.send_frame(
                            Kind::Binary,
                            Bytes::copy_from_slice(chunk),
                            op & 0x80 != 0,
                        ),
                        _ => m.send(
                            Kind::Text,
                            Bytes::from(String::from_utf8_lossy(chunk).into_owned()),
                        ),
                    };
                }
                _ => {
                    let _ = m.close(CloseCode(u16::from(op) * 40), "bye");
                }
            }
            // Count what went out for later acks.
            loop {
                match m.poll_output() {
                    Output::Wait { .. } => break,
                    Output::Transmit {
                        payload: twill_core::Payload::Bytes(b),
                        ..
                    } => {
                        assert!(!closed, "output after Close");
                        unacked += b.len();
                    }
                    Output::Close { .. } => closed = true,
                    Output::Event(WsEvent::Message { data, kind }) => {
                        assert!(data.len() <= 500, "message over the limit");
                        if kind == Kind::Text {
                            assert!(std::str::from_utf8(&data).is_ok());
                        }
                    }
                    _ => {}
                }
            }
        }
        let _ = m.handle_input(now, Input::Closed { conn });
        drain(&mut m, &mut closed, 500);
    }

    /// Arbitrary bytes as a compressed message, inflated in pieces under a
    /// 64 KiB limit: never a panic, never more than the limit.
    pub fn inflate(data: &[u8]) {
        const MAX: usize = 64 * 1024;
        let mut d = Deflate::new(&params(), false, &DeflateConfig::default());
        let mut out = BytesMut::new();
        let step = data.first().map_or(1, |&c| usize::from(c).max(1));
        for piece in data.chunks(step) {
            if d.inflate(piece, &mut out, MAX).is_err() {
                assert!(out.len() <= MAX + 1);
                return;
            }
            assert!(out.len() <= MAX);
        }
        let _ = d.finish_message(&mut out, MAX);
        assert!(out.len() <= MAX + 1);
    }
}

/// The WebSocket frame header parser and the UTF-8 validator.
pub fn websocket_frames(data: &[u8]) {
    websocket::frames(data);
}

/// The WebSocket connection machine, either role, with and without
/// permessage-deflate, streaming and keep-alive.
pub fn websocket_machine(data: &[u8]) {
    websocket::machine(data);
}

/// permessage-deflate's inflate path with its size limit.
pub fn websocket_inflate(data: &[u8]) {
    websocket::inflate(data);
}
