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
            // Lookups walk the head's lines: each name finds its first
            // value, in any case, and the count is the fields'.
            assert_eq!(h.headers().iter().count(), h.headers().len());
            for (n, _) in h.headers().iter() {
                let first = h.headers().iter().find(|(m, _)| m.eq_ignore_ascii_case(n));
                assert_eq!(
                    h.headers().get(&n.to_ascii_uppercase()),
                    first.map(|(_, v)| v)
                );
            }
            // The server's parse reads the same head and the summary a
            // pass over its fields gives.
            let mut buf = BytesMut::from(data);
            let mut scan = HeadScanner::request();
            let (h2, sum) =
                twill_http::codec::head::decode_request_summarized(&mut buf, &mut scan, &LIMITS)
                    .expect("parsed once")
                    .expect("complete");
            assert_eq!(h2, h);
            assert_eq!(sum, twill_http::codec::framing::Summary::of(h.headers()));
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
        let mut declined: BTreeMap<ConnId, usize> = BTreeMap::new();
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
                        // As the drivers do: a declined report goes with
                        // the next one.
                        let bytes = declined.remove(&conn).unwrap_or(0) + n;
                        if m.wants_sent(conn) {
                            let _ = m.handle_input(now, Input::Sent { conn, bytes });
                        } else {
                            declined.insert(conn, bytes);
                        }
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

// ------------------------------------------------------------------ irc

mod irc {
    //! IRC: the message codec (never panics, chunking-independent,
    //! parse → encode → parse is stable, nothing encoded carries CR, LF or
    //! NUL) and the server hub fed interleaved lines from three clients
    //! with flood pauses (`Resume`), acks, EOFs, resets and time.

    use std::collections::{BTreeMap, BTreeSet};

    use bytes::{Bytes, BytesMut};
    use twill_core::{Addr, ConnId, Duration, Input, ListenerId, Machine, Now, Output};
    use twill_irc::codec::LineReader;
    use twill_irc::{Message, Server, ServerConfig};

    use super::Op;

    fn lines_in_pieces(data: &[u8], piece: usize) -> Vec<Result<Vec<u8>, String>> {
        let mut r = LineReader::new(600);
        let mut out = Vec::new();
        for chunk in data.chunks(piece.max(1)) {
            let mut pos = 0;
            loop {
                match r.next_line(chunk, &mut pos) {
                    Ok(Some(l)) => out.push(Ok(l.as_bytes().to_vec())),
                    Ok(None) => break,
                    Err(e) => out.push(Err(e.to_string())),
                }
            }
            assert!(r.pending() <= 601, "{} bytes held", r.pending());
        }
        out
    }

    pub fn message(data: &[u8]) {
        let whole = lines_in_pieces(data, data.len());
        assert_eq!(lines_in_pieces(data, 1), whole, "byte-at-a-time differs");
        assert_eq!(lines_in_pieces(data, 5), whole, "5-byte pieces differ");
        for line in whole.into_iter().flatten() {
            let Ok(m) = Message::parse(Bytes::from(line)) else {
                continue;
            };
            let mut buf = BytesMut::new();
            let n = m.encode(&mut buf).expect("a parsed message encodes");
            assert_eq!(n, buf.len());
            let body = &buf[..buf.len() - 2];
            assert!(!body.iter().any(|b| matches!(b, 0 | b'\r' | b'\n')));
            let again = Message::parse(Bytes::copy_from_slice(body)).expect("re-parses");
            assert_eq!(again, m, "parse → encode → parse changed the message");
        }
        // The whole input as one line, too.
        if let Ok(m) = Message::parse(Bytes::copy_from_slice(data)) {
            let _ = m.encode(&mut BytesMut::new());
        }
    }

    const CMDS: &[&str] = &[
        "NICK a",
        "NICK b",
        "NICK C",
        "USER u 0 * :r",
        "JOIN #c",
        "JOIN #c,#d k",
        "PART #c :x",
        "PRIVMSG #c :hi",
        "PRIVMSG a :hi",
        "NOTICE b :x",
        "TOPIC #c :t",
        "TOPIC #c",
        "MODE #c +o b",
        "MODE #c +kl k 1",
        "MODE #c +b a",
        "MODE #c -k+v a",
        "MODE #c +imnt",
        "MODE a +i",
        "MODE #c",
        "MODE #c b",
        "KICK #c b :r",
        "INVITE b #c",
        "AWAY :x",
        "AWAY",
        "WHO #c",
        "WHO *",
        "WHOIS a",
        "NAMES #c",
        "LIST",
        "LUSERS",
        "MOTD",
        "CAP LS 302",
        "CAP REQ :server-time echo-message message-tags",
        "CAP END",
        "PING x",
        "PONG x",
        "QUIT :bye",
        "JOIN 0",
        "@+t=v;time=x PRIVMSG #c,b :tagged",
        "PASS x",
    ];

    const MAX_QUEUED: usize = 3000;

    struct Driver {
        now: Now,
        slots: [ConnId; 3],
        next_id: u64,
        accepted: BTreeSet<ConnId>,
        closing: BTreeSet<ConnId>,
        eof: BTreeSet<ConnId>,
        paused: BTreeSet<ConnId>,
        held: BTreeMap<ConnId, Vec<u8>>,
        unacked: BTreeMap<ConnId, usize>,
        resumes: Vec<ConnId>,
    }

    impl Driver {
        fn conn(&self, s: u8) -> ConnId {
            self.slots[usize::from(s % 3)]
        }

        fn offer(&mut self, m: &mut Server, conn: ConnId) {
            if self.paused.contains(&conn) || !self.accepted.contains(&conn) {
                return;
            }
            let Some(buf) = self.held.remove(&conn) else {
                return;
            };
            if buf.is_empty() {
                return;
            }
            let taken = m
                .handle_input(self.now, Input::Data { conn, bytes: &buf })
                .expect("handle_input never fails");
            assert!(taken <= buf.len(), "took more than offered");
            if taken < buf.len() {
                self.paused.insert(conn);
                self.held.insert(conn, buf[taken..].to_vec());
            }
            self.drain(m);
        }

        fn drain(&mut self, m: &mut Server) {
            for _ in 0..1_000_000 {
                match m.poll_output() {
                    Output::Wait { .. } => break,
                    Output::Transmit { conn, payload } => {
                        assert!(
                            !self.closing.contains(&conn),
                            "Transmit on {conn} after Close"
                        );
                        assert!(self.accepted.contains(&conn), "Transmit on unknown {conn}");
                        *self.unacked.entry(conn).or_default() += payload.len() as usize;
                    }
                    Output::Close { conn, .. } => {
                        assert!(self.accepted.contains(&conn), "Close of unknown {conn}");
                        assert!(self.closing.insert(conn), "{conn} closed twice");
                    }
                    Output::Resume { conn } => {
                        assert!(self.paused.remove(&conn), "Resume of {conn}, not paused");
                        self.resumes.push(conn);
                    }
                    _ => {}
                }
            }
            while let Some(c) = self.resumes.pop() {
                self.offer(m, c);
            }
        }

        fn retire(&mut self, s: u8) {
            let old = self.conn(s);
            for set in [
                &mut self.accepted,
                &mut self.closing,
                &mut self.eof,
                &mut self.paused,
            ] {
                set.remove(&old);
            }
            self.held.remove(&old);
            self.unacked.remove(&old);
            self.slots[usize::from(s % 3)] = ConnId(self.next_id);
            self.next_id += 1;
        }
    }

    pub fn server_machine(data: &[u8]) {
        let mut m = Server::new(ServerConfig {
            max_queued: MAX_QUEUED,
            flood_burst: 6,
            motd: vec!["m".into()],
            ..ServerConfig::default()
        });
        let mut d = Driver {
            now: Now::default(),
            slots: [ConnId(1), ConnId(2), ConnId(3)],
            next_id: 4,
            accepted: BTreeSet::new(),
            closing: BTreeSet::new(),
            eof: BTreeSet::new(),
            paused: BTreeSet::new(),
            held: BTreeMap::new(),
            unacked: BTreeMap::new(),
            resumes: Vec::new(),
        };
        for op in super::ops(data) {
            match op {
                Op::Accept(s) => {
                    let conn = d.conn(s);
                    if d.accepted.insert(conn) {
                        let _ = m.handle_input(
                            d.now,
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
                    let conn = d.conn(s);
                    if !d.eof.contains(&conn) {
                        d.held.entry(conn).or_default().extend_from_slice(&bytes);
                        d.offer(&mut m, conn);
                    }
                }
                Op::Send(s, bytes) => {
                    // A well-formed command from the dictionary, maybe
                    // with extra words, so the fuzzer reaches deep states.
                    let conn = d.conn(s);
                    if !d.eof.contains(&conn) {
                        let pick = bytes.first().copied().unwrap_or(0);
                        let mut line = CMDS[usize::from(pick) % CMDS.len()].as_bytes().to_vec();
                        for &b in bytes.iter().skip(1).take(40) {
                            line.push(match b % 8 {
                                0 => b' ',
                                1 => b',',
                                2 => b':',
                                _ => b'a' + b % 26,
                            });
                        }
                        line.extend_from_slice(b"\r\n");
                        d.held.entry(conn).or_default().extend_from_slice(&line);
                        d.offer(&mut m, conn);
                    }
                }
                Op::Eof(s) => {
                    let conn = d.conn(s);
                    if d.accepted.contains(&conn) && d.eof.insert(conn) {
                        let _ = m.handle_input(d.now, Input::Eof { conn, clean: true });
                    }
                }
                Op::Sent(s, n) => {
                    let conn = d.conn(s);
                    let un = d.unacked.entry(conn).or_default();
                    let n = usize::from(n).min(*un);
                    if n > 0 {
                        *un -= n;
                        let _ = m.handle_input(d.now, Input::Sent { conn, bytes: n });
                    }
                }
                Op::Closed(s) => {
                    let conn = d.conn(s);
                    if d.accepted.contains(&conn) {
                        d.retire(s);
                        let _ = m.handle_input(d.now, Input::Closed { conn });
                    }
                }
                Op::Advance(ms) => {
                    d.now = d.now.after(Duration::from_millis(u64::from(ms) * 50));
                    m.handle_timeout(d.now);
                }
                Op::Close(s) => {
                    let _ = m.disconnect(d.conn(s), "bye");
                }
            }
            d.drain(&mut m);
            for s in 0..3 {
                let conn = d.conn(s);
                if let Some(p) = m.pending_output(conn) {
                    assert!(p <= MAX_QUEUED, "{conn} holds {p} unflushed bytes");
                    assert_eq!(p, d.unacked.get(&conn).copied().unwrap_or(0));
                }
            }
        }
    }
}

// ---------------------------------------------------------------- mail

mod mail {
    use bytes::BytesMut;
    use twill_core::{Addr, Close, ConnId, Duration, Input, ListenerId, Machine, Now, Output};
    use twill_smtp::codec::{parse_command, stuff, unstuff_all, ReplyParser, Unstuffer};

    /// One connection's script: records of an op byte (low 3 bits: data,
    /// eof, sent, advance, answer, closed; the rest unused), a length byte
    /// and that many payload bytes — readable seeds (SMTP/POP3 text with a
    /// few bytes around it).
    #[derive(Debug)]
    pub enum Step {
        Data(Vec<u8>),
        Eof,
        Sent(usize),
        Advance(u64),
        Answer(u8),
        Closed,
    }

    pub fn steps(data: &[u8]) -> Vec<Step> {
        let mut v = Vec::new();
        let mut i = 0;
        while i + 1 < data.len() && v.len() < 512 {
            let (op, len) = (data[i], usize::from(data[i + 1]));
            let payload = &data[i + 2..(i + 2 + len).min(data.len())];
            i += 2 + len;
            v.push(match op % 6 {
                0 => Step::Data(payload.to_vec()),
                1 => Step::Eof,
                2 => Step::Sent(len * 8),
                3 => Step::Advance(len as u64 * 5000),
                4 => Step::Answer(payload.first().copied().unwrap_or(len as u8)),
                _ => Step::Closed,
            });
        }
        v
    }

    /// Drives one machine over one connection like a driver: short takes
    /// are held until `Resume`, `Sent` acknowledges what was transmitted,
    /// `answer` is called for the events the application must answer.
    /// Checks: `poll_output` reaches `Wait`, nothing is transmitted after
    /// `Close`, a paused connection is not fed.
    pub fn drive<M: Machine>(
        m: &mut M,
        data: &[u8],
        mut wants_answer: impl FnMut(&M::Event) -> bool,
        mut answer: impl FnMut(&mut M, u8),
    ) where
        M::Event: std::fmt::Debug,
    {
        let conn = ConnId(1);
        let mut now = Now::default();
        let mut held: Vec<u8> = Vec::new();
        let mut paused = false;
        let mut closed = false;
        let mut gone = false;
        let mut unacked = 0usize;
        let mut pending_answers = 0usize;
        let mut drain = |m: &mut M,
                         paused: &mut bool,
                         closed: &mut bool,
                         unacked: &mut usize,
                         pending: &mut usize| {
            for _ in 0..100_000 {
                match m.poll_output() {
                    Output::Wait { .. } => return,
                    Output::Transmit { payload, .. } => {
                        assert!(!*closed, "Transmit after Close");
                        *unacked += payload.len() as usize;
                    }
                    Output::Close { how, .. } => {
                        assert!(how != Close::WriteHalf);
                        *closed = true;
                    }
                    Output::Resume { .. } => *paused = false,
                    Output::Event(e) if wants_answer(&e) => *pending += 1,
                    _ => {}
                }
            }
            panic!("poll_output never returned Wait");
        };
        let _ = m.handle_input(
            now,
            Input::Accepted {
                conn,
                listener: ListenerId(0),
                local: Addr::Unknown,
                peer: Addr::Unknown,
            },
        );
        drain(
            m,
            &mut paused,
            &mut closed,
            &mut unacked,
            &mut pending_answers,
        );
        for step in steps(data) {
            if gone {
                break;
            }
            match step {
                Step::Data(b) => {
                    held.extend_from_slice(&b);
                }
                Step::Eof => {
                    let _ = m.handle_input(now, Input::Eof { conn, clean: true });
                }
                Step::Sent(n) => {
                    let n = n.min(unacked);
                    unacked -= n;
                    if n > 0 {
                        let _ = m.handle_input(now, Input::Sent { conn, bytes: n });
                    }
                }
                Step::Advance(ms) => {
                    now = now.after(Duration::from_millis(ms));
                    m.handle_timeout(now);
                }
                Step::Answer(x) => {
                    if pending_answers > 0 {
                        pending_answers -= 1;
                        answer(m, x);
                    }
                }
                Step::Closed => {
                    let _ = m.handle_input(now, Input::Closed { conn });
                    gone = true;
                }
            }
            drain(
                m,
                &mut paused,
                &mut closed,
                &mut unacked,
                &mut pending_answers,
            );
            if !paused && !held.is_empty() && !gone {
                let n = m
                    .handle_input(now, Input::Data { conn, bytes: &held })
                    .unwrap_or(0);
                assert!(n <= held.len(), "took more than offered");
                held.drain(..n);
                if !held.is_empty() {
                    paused = true;
                }
                drain(
                    m,
                    &mut paused,
                    &mut closed,
                    &mut unacked,
                    &mut pending_answers,
                );
            }
        }
    }

    pub fn commands(data: &[u8]) {
        for line in data.split(|b| *b == b'\n') {
            if let Ok(c) = parse_command(line) {
                // Fields borrow the line: they are never longer than it.
                assert!(format!("{c:?}").len() < 64 + 2 * line.len() * 4);
            }
            let _ = twill_pop3::codec::parse_command(line);
            let _ = twill_pop3::codec::parse_status(line);
            let _ = twill_pop3::codec::top(line, u32::from(line.first().copied().unwrap_or(0)));
        }
        let mut p = ReplyParser::new();
        for line in data.split_inclusive(|b| *b == b'\n') {
            if p.line(line).is_err() {
                p = ReplyParser::new();
            }
        }
    }

    /// Unstuffing is chunking-independent and stuffing round-trips.
    pub fn unstuff(data: &[u8]) {
        let whole = unstuff_all(data, 998);
        let cut = usize::from(data.first().copied().unwrap_or(0)) % (data.len() + 1);
        let mut u = Unstuffer::new(998);
        let mut out = BytesMut::new();
        let (a, done) = u.feed(&data[..cut], |s| out.extend_from_slice(s));
        let split = if done {
            Some((out.clone(), a, u.flags()))
        } else {
            let (b, done) = u.feed(&data[cut..], |s| out.extend_from_slice(s));
            done.then(|| (out.clone(), a + b, u.flags()))
        };
        assert_eq!(whole, split, "unstuffing depends on the cut at {cut}");
        let mut wire = BytesMut::new();
        stuff(data, &mut wire);
        let (back, used, _) = unstuff_all(&wire, usize::MAX).expect("stuffed data ends");
        assert_eq!(used, wire.len());
        let mut want = data.to_vec();
        if !data.is_empty() && !data.ends_with(b"\r\n") {
            want.extend_from_slice(b"\r\n");
        }
        assert_eq!(&back[..], &want[..], "stuff → unstuff changed the message");
    }

    pub fn smtp_server(data: &[u8]) {
        use twill_smtp::{Delivery, Server, ServerConfig, ServerEvent};
        let cfg = ServerConfig {
            max_size: 300,
            max_line: 64,
            max_recipients: 3,
            max_errors: 5,
            command_timeout: Duration::from_secs(60),
            data_timeout: Duration::from_secs(120),
            starttls: true,
            output_budget: twill_core::OutputBudget::new(400, 100),
            ..ServerConfig::default()
        };
        let mut m = Server::new(cfg);
        drive(
            &mut m,
            data,
            |e| {
                if let ServerEvent::Message(msg) = e {
                    assert!(msg.data.len() <= 300, "message over SIZE");
                }
                matches!(e, ServerEvent::Auth { .. } | ServerEvent::Message(_))
            },
            |m, x| {
                let _ = m.answer_auth(x % 2 == 0);
                let _ = m.answer_message(match x % 3 {
                    0 => Delivery::Stored("id".into()),
                    1 => Delivery::TempFail("t".into()),
                    _ => Delivery::Rejected("r".into()),
                });
            },
        );
    }

    pub fn pop3_server(data: &[u8]) {
        use twill_pop3::{LoginFailure, MessageInfo, Server, ServerConfig, ServerEvent};
        let cfg = ServerConfig {
            max_line: 64,
            max_errors: 5,
            apop: true,
            stls: true,
            timeout: Duration::from_secs(60),
            output_budget: twill_core::OutputBudget::new(400, 100),
            ..ServerConfig::default()
        };
        let mut m = Server::new(cfg, Box::new(rand_core_stub::Zero));
        drive(
            &mut m,
            data,
            |e| {
                matches!(
                    e,
                    ServerEvent::Login { .. }
                        | ServerEvent::Retrieve { .. }
                        | ServerEvent::Update { .. }
                )
            },
            |m, x| {
                let list = (0..u64::from(x % 4))
                    .map(|i| MessageInfo {
                        size: 10 + i,
                        uid: format!("u{i}"),
                    })
                    .collect();
                let _ = m.answer_login(if x % 5 == 4 {
                    Err(LoginFailure::InUse)
                } else {
                    Ok(list)
                });
                let body = bytes::Bytes::from(vec![b'.'; usize::from(x)]);
                let _ = m.answer_retrieve(Ok(body));
                let _ = m.answer_update(Ok(()));
            },
        );
    }

    /// A generator that always gives zeros: the fuzzer needs determinism,
    /// not unpredictability.
    mod rand_core_stub {
        pub struct Zero;
        impl twill_core::rng::RngCore for Zero {
            fn next_u32(&mut self) -> u32 {
                0
            }
            fn next_u64(&mut self) -> u64 {
                0
            }
            fn fill_bytes(&mut self, dest: &mut [u8]) {
                dest.fill(0)
            }
            fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
                dest.fill(0);
                Ok(())
            }
        }
    }
}

/// IRC messages: never panic, chunking-independent lines, stable
/// parse → encode → parse.
pub fn irc_message(data: &[u8]) {
    irc::message(data);
}

/// The IRC server hub under interleaved lines from three clients.
pub fn irc_server_machine(data: &[u8]) {
    irc::server_machine(data);
}

/// SMTP and POP3 command lines and SMTP reply lines: parsing never panics.
pub fn mail_commands(data: &[u8]) {
    mail::commands(data);
}

/// The DATA unstuffer: chunking-independent; stuff → unstuff round-trips.
pub fn smtp_unstuff(data: &[u8]) {
    mail::unstuff(data);
}

/// The SMTP server machine under arbitrary input and answers.
pub fn smtp_server_machine(data: &[u8]) {
    mail::smtp_server(data);
}

/// The POP3 server machine under arbitrary input and answers.
pub fn pop3_server_machine(data: &[u8]) {
    mail::pop3_server(data);
}

// ---------------------------------------------------------------- FTP

mod ftp {
    use std::collections::BTreeSet;

    use bytes::{Bytes, BytesMut};
    use twill_core::{
        Addr, Close, ConnId, Duration, Input, ListenerId, Machine, Now, Open, OpenError, Output,
    };
    use twill_ftp::codec::{command, reply};
    use twill_ftp::{FsError, ReplyParser, RequestId, Server, ServerConfig, ServerEvent};

    /// Command lines: parsing never panics; a parsed command re-encodes
    /// and parses back to the same verb and argument.
    pub fn command_lines(data: &[u8]) {
        for line in data.split(|&b| b == b'\n') {
            let stripped = command::strip_telnet(line);
            if let Ok(c) = command::parse(&stripped) {
                let mut out = BytesMut::new();
                command::encode(c.name, c.arg, &mut out).expect("a parsed argument encodes");
                let again = &out[..out.len() - 2];
                let d = command::parse(again).expect("re-encoded command parses");
                assert_eq!((d.verb, d.arg), (c.verb, c.arg));
            }
        }
    }

    fn replies(data: &[u8], piece: usize) -> (Vec<(u16, usize)>, bool) {
        let mut p = ReplyParser::default();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for chunk in data.chunks(piece.max(1)) {
            buf.extend_from_slice(chunk);
            loop {
                match p.decode(&mut buf) {
                    Ok(Some(r)) => got.push((r.code, r.lines.len())),
                    Ok(None) => break,
                    Err(_) => return (got, true),
                }
            }
        }
        (got, false)
    }

    /// Replies: parsing never panics and does not depend on how the input
    /// is cut; a parsed reply re-encodes to one with the same code and
    /// line count.
    pub fn reply_stream(data: &[u8]) {
        let whole = replies(data, data.len());
        assert_eq!(whole, replies(data, 1), "byte at a time differs");
        assert_eq!(whole, replies(data, 7), "7-byte pieces differ");
        let mut p = ReplyParser::default();
        let mut buf = BytesMut::from(data);
        while let Ok(Some(r)) = p.decode(&mut buf) {
            let mut out = BytesMut::new();
            reply::encode(r.code, &r.lines.join("\n"), &mut out);
            let mut q = ReplyParser::default();
            let back = q
                .decode(&mut out)
                .expect("encoded reply parses")
                .expect("complete");
            assert_eq!((back.code, back.lines.len()), (r.code, r.lines.len()));
        }
    }

    const CTRL: ConnId = ConnId(1);

    fn ip(s: &str) -> Addr {
        Addr::Ip(s.parse().expect("address"))
    }

    /// Drains; checks `Wait` comes, nothing is sent after a close, and
    /// collects opens and requests.
    fn drain(
        m: &mut Server,
        closed: &mut BTreeSet<ConnId>,
        opens: &mut Vec<(ConnId, Open)>,
        requests: &mut Vec<RequestId>,
    ) {
        for _ in 0..100_000 {
            match m.poll_output() {
                Output::Wait { .. } => return,
                Output::Transmit { conn, .. } => {
                    assert!(
                        !closed.contains(&conn),
                        "transmit on {conn} after its close"
                    );
                }
                Output::Close { conn, how } if how != Close::WriteHalf => {
                    closed.insert(conn);
                }
                Output::Open { conn, how } => opens.push((conn, how)),
                Output::Event(ServerEvent::Request { id, .. } | ServerEvent::Login { id, .. }) => {
                    requests.push(id)
                }
                _ => {}
            }
        }
        panic!("poll_output never returned Wait");
    }

    /// The server machine under an arbitrary sequence of control bytes,
    /// data-connection events, driver answers and application answers:
    /// never panics, always drains, never takes more than offered.
    pub fn server_machine(data: &[u8]) {
        let cfg = ServerConfig {
            anonymous: true,
            passive_ports: Some((50_000, 50_003)),
            max_line: 64,
            upload_window: 16,
            download_high: 32,
            download_low: 8,
            tls: true,
            ..ServerConfig::default()
        };
        let mut m = Server::new(cfg);
        let mut now = Now::default();
        let (mut closed, mut opens, mut requests) = (BTreeSet::new(), Vec::new(), Vec::new());
        let mut data_conns: Vec<ConnId> = Vec::new();
        let mut next_conn = 2u64;
        let _ = m.handle_input(
            now,
            Input::Accepted {
                conn: CTRL,
                listener: ListenerId(1),
                local: ip("127.0.0.1:21"),
                peer: ip("127.0.0.1:40000"),
            },
        );
        drain(&mut m, &mut closed, &mut opens, &mut requests);
        let mut i = 0;
        while i < data.len() {
            let op = data[i];
            i += 1;
            let arg = data.get(i).copied().unwrap_or(0);
            let last_req = requests.last().copied().unwrap_or(RequestId(0));
            match op % 16 {
                0..=5 => {
                    // Control bytes: up to 32, biased to real commands.
                    let n = (arg as usize % 32).min(data.len() - i);
                    let chunk = &data[i..i + n];
                    i += n;
                    let bytes: &[u8] = if op % 16 == 0 {
                        const CMDS: &[&[u8]] = &[
                            b"USER anonymous\r\nPASS x\r\n",
                            b"PASV\r\n",
                            b"EPSV\r\n",
                            b"RETR a\r\n",
                            b"STOR b\r\n",
                            b"LIST\r\n",
                            b"ABOR\r\n",
                            b"PORT 127,0,0,1,200,1\r\n",
                            b"TYPE A\r\n",
                            b"REST 3\r\n",
                            b"STAT\r\n",
                            b"QUIT\r\n",
                            b"USER bob\r\nPASS y\r\n",
                            b"MLST x\r\n",
                        ];
                        CMDS[arg as usize % CMDS.len()]
                    } else {
                        chunk
                    };
                    if let Ok(t) = m.handle_input(now, Input::Data { conn: CTRL, bytes }) {
                        assert!(t <= bytes.len());
                    }
                }
                6 if !opens.is_empty() => {
                    // The driver answers the oldest open.
                    let (c, how) = opens.remove(0);
                    let input = match (arg % 3, how) {
                        // The TLS layer's answers to StartTls.
                        (0, Open::StartTls { .. }) => Input::OpenFailed {
                            conn: c,
                            error: OpenError::Tls("handshake".into()),
                        },
                        (_, Open::StartTls { .. }) => Input::Secured {
                            conn: c,
                            info: twill_core::TlsInfo::default(),
                        },
                        (0, _) => Input::OpenFailed {
                            conn: c,
                            error: OpenError::AddrInUse,
                        },
                        (1, Open::Listen(a)) => Input::Opened {
                            conn: c,
                            local: Addr::Ip(a),
                            peer: Addr::Ip(a),
                        },
                        _ => Input::Opened {
                            conn: c,
                            local: ip("127.0.0.1:20"),
                            peer: ip("127.0.0.1:51201"),
                        },
                    };
                    if let Input::Opened { conn, .. } = &input {
                        data_conns.push(*conn);
                    }
                    let _ = m.handle_input(now, input);
                }
                7 => {
                    // A connection on a machine listener, from us or a stranger.
                    let c = ConnId(next_conn);
                    next_conn += 1;
                    data_conns.push(c);
                    let listener = ListenerId(data_conns.first().map_or(0, |l| l.0));
                    let peer = if arg % 4 == 0 {
                        "10.0.0.1:1"
                    } else {
                        "127.0.0.1:40001"
                    };
                    let _ = m.handle_input(
                        now,
                        Input::Accepted {
                            conn: c,
                            listener,
                            local: ip("127.0.0.1:50000"),
                            peer: ip(peer),
                        },
                    );
                }
                8 => {
                    if let Some(&c) = data_conns.get(arg as usize % data_conns.len().max(1)) {
                        let n = (arg as usize % 40).min(data.len() - i);
                        let bytes = &data[i..i + n];
                        i += n;
                        if let Ok(t) = m.handle_input(now, Input::Data { conn: c, bytes }) {
                            assert!(t <= bytes.len());
                        }
                    }
                }
                9 => {
                    if let Some(&c) = data_conns.get(arg as usize % data_conns.len().max(1)) {
                        let input = match arg % 3 {
                            0 => Input::Eof {
                                conn: c,
                                clean: true,
                            },
                            1 => Input::Closed { conn: c },
                            _ => Input::Sent {
                                conn: c,
                                bytes: arg as usize,
                            },
                        };
                        let _ = m.handle_input(now, input);
                    }
                }
                10 => {
                    let _ = match arg % 10 {
                        0 => m.done(last_req),
                        1 => m.fail(last_req, FsError::NotFound),
                        2 => m.listing(last_req, Bytes::from_static(b"a\r\nb\r\n")),
                        3 => m.send_data(last_req, Bytes::from_static(b"x\ny\n")),
                        4 => m.finish(last_req),
                        5 => m.start_upload(last_req),
                        6 => m.consumed(last_req, arg as usize),
                        7 => m.login(last_req, arg & 0x10 != 0),
                        8 => m.size(last_req, 7),
                        _ => m.facts(last_req, "type=file; x"),
                    };
                }
                11 => {
                    now = now.after(Duration::from_millis(u64::from(arg) * 250));
                    m.handle_timeout(now);
                }
                12 => {
                    let _ = m.handle_input(
                        now,
                        Input::Sent {
                            conn: CTRL,
                            bytes: 1 << 20,
                        },
                    );
                }
                13 => {
                    let _ = m.handle_input(
                        now,
                        Input::Eof {
                            conn: CTRL,
                            clean: true,
                        },
                    );
                }
                14 => {
                    // RFC 4217 commands (the StartTls opens are answered
                    // by op 6 as the TLS layer would).
                    const TLS: &[&[u8]] = &[
                        b"AUTH TLS\r\n",
                        b"PBSZ 0\r\nPROT P\r\n",
                        b"PROT C\r\n",
                        b"AUTH TLS\r\nUSER x\r\n",
                    ];
                    let bytes = TLS[arg as usize % TLS.len()];
                    if let Ok(t) = m.handle_input(now, Input::Data { conn: CTRL, bytes }) {
                        assert!(t <= bytes.len());
                    }
                }
                _ => {}
            }
            drain(&mut m, &mut closed, &mut opens, &mut requests);
        }
        let _ = m.handle_input(now, Input::Closed { conn: CTRL });
        drain(&mut m, &mut closed, &mut opens, &mut requests);
    }
}

/// FTP command lines: never panic; parse → encode → parse is stable.
pub fn ftp_command(data: &[u8]) {
    ftp::command_lines(data);
}

/// FTP replies: never panic, chunking-independent, encode round trip.
pub fn ftp_reply(data: &[u8]) {
    ftp::reply_stream(data);
}

/// The FTP server machine under arbitrary inputs and answers.
pub fn ftp_server_machine(data: &[u8]) {
    ftp::server_machine(data);
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
