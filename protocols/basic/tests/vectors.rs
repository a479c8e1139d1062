//! Runs every vector of `spec-vectors/basic/` against the machines and
//! codecs of this crate: transcripts through `assert_chunking` (whole,
//! byte-at-a-time, random splits), message cases through each codec
//! directly and through a `Framed` machine under `assert_chunking`.

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use twill_basic::{
    Chargen, Codec, Daytime, Discard, Echo, Framed, FramedEvent, FramingError, Lines, Netstring,
    Prefix, Prefixed, Qotd,
};
use twill_core::testing::{
    assert_chunking, load_vectors, Escaped, Outcome, Pattern, Side, Sim, Step, Turn, Vector,
};
use twill_core::{Close, ConnId, LimitKind, Machine};

fn vectors() -> Vec<Vector> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../spec-vectors/basic");
    load_vectors(dir).unwrap_or_else(|e| panic!("{e}"))
}

/// The neutral name of an error kind, as the vectors write it.
fn kind(e: &FramingError) -> &'static str {
    match e {
        FramingError::Limit(l) if l.kind == LimitKind::LineLength => "line-too-long",
        FramingError::Limit(_) => "message-too-long",
        FramingError::BadLength => "bad-length",
        FramingError::LeadingZero => "leading-zero",
        FramingError::MissingComma => "missing-comma",
        FramingError::Truncated { .. } => "truncated",
        _ => "unexpected",
    }
}

#[derive(Clone, Debug)]
enum AnyCodec {
    Lines(Lines),
    Netstring(Netstring),
    Prefixed(Prefixed),
}

impl Codec for AnyCodec {
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FramingError> {
        match self {
            AnyCodec::Lines(c) => c.decode(buf),
            AnyCodec::Netstring(c) => c.decode(buf),
            AnyCodec::Prefixed(c) => c.decode(buf),
        }
    }
    fn encode(&self, frame: &[u8], out: &mut BytesMut) -> Result<(), FramingError> {
        match self {
            AnyCodec::Lines(c) => c.encode(frame, out),
            AnyCodec::Netstring(c) => c.encode(frame, out),
            AnyCodec::Prefixed(c) => c.encode(frame, out),
        }
    }
    fn reset(&mut self) {
        match self {
            AnyCodec::Lines(c) => c.reset(),
            AnyCodec::Netstring(c) => c.reset(),
            AnyCodec::Prefixed(c) => c.reset(),
        }
    }
    fn max_frame(&self) -> usize {
        match self {
            AnyCodec::Lines(c) => c.max_frame(),
            AnyCodec::Netstring(c) => c.max_frame(),
            AnyCodec::Prefixed(c) => c.max_frame(),
        }
    }
}

/// The codec a message vector's headers describe.
fn codec_of(v: &Vector) -> AnyCodec {
    let max: Option<usize> = v
        .header("max-length")
        .map(|m| m.parse().expect("max-length is a number"));
    match v.header("codec") {
        Some("lines") => {
            let c = match v.header("ending") {
                Some("crlf") => Lines::crlf(),
                Some("lf") | None => Lines::new(),
                Some(other) => panic!("{}: unknown ending {other}", v.name),
            };
            AnyCodec::Lines(max.map_or(c.clone(), |m| c.max_length(m)))
        }
        Some("netstring") => {
            let c = Netstring::new();
            AnyCodec::Netstring(max.map_or(c.clone(), |m| c.max_length(m)))
        }
        Some("prefixed") => {
            let p = match v.header("prefix") {
                Some("8") => Prefix::U8,
                Some("16") => Prefix::U16,
                Some("32") => Prefix::U32,
                other => panic!("{}: bad prefix {other:?}", v.name),
            };
            let c = Prefixed::new(p);
            AnyCodec::Prefixed(max.map_or(c.clone(), |m| c.max_length(m)))
        }
        other => panic!("{}: unknown codec {other:?}", v.name),
    }
}

fn run_messages(v: &Vector) -> usize {
    let template = codec_of(v);
    let cases = v.cases().expect("messages");
    for case in cases {
        let at = format!("{}:{}", v.name, case.line);

        // The codec alone, whole.
        let mut codec = template.clone();
        let mut buf = BytesMut::from(&case.input[..]);
        let mut frames = Vec::new();
        let end = loop {
            match codec.decode(&mut buf) {
                Ok(Some(f)) => frames.push(f.to_vec()),
                Ok(None) => break Ok(buf.len()),
                Err(e) => break Err(e),
            }
        };
        assert_eq!(frames, case.expect, "{at}: decoded frames");
        match (&case.outcome, &end) {
            (Outcome::Complete, Ok(0)) => {}
            (Outcome::Pending, Ok(n)) if *n > 0 => {}
            (Outcome::Error(k), Err(e)) if kind(e) == k => {}
            (want, got) => panic!("{at}: expected {want:?}, decoder ended with {got:?}"),
        }

        // Every expected frame re-encodes to something that decodes to it.
        for f in &case.expect {
            let mut wire = BytesMut::new();
            match template.encode(f, &mut wire) {
                Ok(()) => {}
                // A lenient LF encoder cannot send a line ending in CR.
                Err(FramingError::TrailingCr) => continue,
                Err(e) => panic!("{at}: {e}"),
            }
            let mut c = template.clone();
            assert_eq!(
                c.decode(&mut wire).unwrap().as_deref(),
                Some(&f[..]),
                "{at}"
            );
            assert!(wire.is_empty(), "{at}");
        }

        // The Framed machine, under every chunking.
        let steps = [
            Step::Accept(ConnId(1)),
            Step::Data(ConnId(1), case.input.clone()),
        ];
        let trace = assert_chunking(|| Framed::new(template.clone()), &steps);
        let mut got = Vec::new();
        let mut violation = None;
        for e in &trace.events {
            match e {
                FramedEvent::Frame { frame, .. } => got.push(frame.to_vec()),
                FramedEvent::Violation { error, .. } => violation = Some(kind(error)),
                _ => {}
            }
        }
        assert_eq!(got, case.expect, "{at}: Framed frames");
        match &case.outcome {
            Outcome::Error(k) => {
                assert_eq!(violation, Some(k.as_str()), "{at}: Framed violation");
                assert_eq!(trace.closes, vec![(ConnId(1), Close::Graceful)], "{at}");
            }
            _ => {
                assert_eq!(violation, None, "{at}");
                assert!(trace.closes.is_empty(), "{at}");
            }
        }
    }
    cases.len()
}

fn run_transcript<M>(v: &Vector, make: impl FnMut() -> M)
where
    M: Machine,
    M::Event: std::fmt::Debug + PartialEq,
{
    let steps = v.client_steps().unwrap_or_else(|e| panic!("{e}"));
    let trace = assert_chunking(make, &steps);
    v.check_server(&trace.sent, &trace.closes)
        .unwrap_or_else(|e| panic!("{e} ({})", v.source));
}

fn client_addr(conn: u32) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1], 40_000 + conn as u16))
}

/// A datagram transcript: each client line is one datagram; the server
/// lines after it, up to the next client line, are the replies it must
/// produce, in order.
fn run_udp<M>(v: &Vector, machine: M)
where
    M: Machine,
    M::Event: std::fmt::Debug,
{
    let sock = ConnId(100);
    let mut sim = Sim::new(machine);
    let turns = v.turns().expect("transcript");
    let mut expected: Vec<(u32, Pattern, usize)> = Vec::new();
    let check = |sim: &mut Sim<M>, expected: &mut Vec<(u32, Pattern, usize)>| {
        let got: Vec<_> = sim.datagrams.drain(..).collect();
        assert_eq!(got.len(), expected.len(), "{}: replies {got:?}", v.name);
        for ((s, to, bytes), (conn, p, line)) in got.iter().zip(expected.drain(..)) {
            assert_eq!(*s, sock, "{}:{line}: reply on the receiving socket", v.name);
            assert_eq!(
                *to,
                client_addr(conn),
                "{}:{line}: reply to the sender",
                v.name
            );
            assert!(
                p.matches(bytes),
                "{}:{line}: reply {:?} does not match",
                v.name,
                Escaped(bytes)
            );
        }
    };
    for t in turns {
        match t {
            Turn::Bytes {
                side: Side::Client,
                conn,
                bytes,
                ..
            } => {
                check(&mut sim, &mut expected);
                sim.datagram(sock, client_addr(*conn), bytes);
            }
            Turn::Bytes {
                side: Side::Server,
                conn,
                bytes,
                line,
            } => expected.push((*conn, Pattern::literal(bytes), *line)),
            Turn::Match {
                conn,
                pattern,
                line,
            } => expected.push((*conn, pattern.clone(), *line)),
            other => panic!("{}:{}: not a datagram turn", v.name, other.line()),
        }
    }
    check(&mut sim, &mut expected);
    assert!(sim.error.is_none());
}

#[test]
fn every_basic_vector() {
    let mut transcripts = 0;
    let mut cases = 0;
    for v in vectors() {
        assert!(!v.source.is_empty());
        if v.cases().is_some() {
            cases += run_messages(&v);
            continue;
        }
        transcripts += 1;
        let udp = v.transport() == "udp";
        match (v.header("protocol"), udp) {
            (Some("echo"), false) => run_transcript(&v, Echo::new),
            (Some("echo"), true) => run_udp(&v, Echo::new()),
            (Some("discard"), false) => run_transcript(&v, Discard::new),
            (Some("discard"), true) => run_udp(&v, Discard::new()),
            // Endless output needs a bound under a simulated driver that
            // acknowledges every byte at once; `compare: prefix` allows it.
            (Some("chargen"), false) => run_transcript(&v, || Chargen::new().with_limit(20 * 74)),
            (Some("chargen"), true) => {
                run_udp(&v, Chargen::new());
                run_udp(&v, Chargen::new().with_rng(twill_core::rng::seeded(7)));
            }
            (Some("daytime"), false) => run_transcript(&v, Daytime::new),
            (Some("daytime"), true) => run_udp(&v, Daytime::new()),
            (Some("qotd"), false) => run_transcript(&v, Qotd::default),
            (Some("qotd"), true) => run_udp(&v, Qotd::default()),
            (p, _) => panic!("{}: no runner for protocol {p:?}", v.name),
        }
    }
    assert!(transcripts >= 10, "only {transcripts} transcripts");
    assert!(cases >= 40, "only {cases} message cases");
}
