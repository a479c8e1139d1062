//! Runs every vector of `spec-vectors/ftp/`: `# codec: reply` through
//! [`ReplyParser`], `# codec: command` through line framing and the
//! command parser, `# codec: mlsx` through the facts parser (all whole, a
//! byte at a time and at random splits), and `# compare: message`
//! transcripts through the [`Server`] machine under `assert_chunking`,
//! comparing reply codes.

use bytes::BytesMut;
use twill_core::testing::{assert_chunking, load_vectors, Escaped, Outcome, Vector};
use twill_core::{Close, ConnId};
use twill_ftp::codec::{command, list};
use twill_ftp::error::{CommandError, ReplyError};
use twill_ftp::{ReplyParser, Server, ServerConfig};

fn vectors() -> Vec<Vector> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../spec-vectors/ftp");
    let v = load_vectors(dir).unwrap_or_else(|e| panic!("{e}"));
    assert!(v.len() >= 5, "the ftp vectors are missing");
    v
}

/// Cut points: whole, every byte, and a few pseudo-random splittings.
fn splittings(len: usize) -> Vec<Vec<usize>> {
    let mut out = vec![vec![len], (1..=len).collect()];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..8 {
        let mut cuts = Vec::new();
        let mut at = 0;
        while at < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            at = (at + 1 + (x % 7) as usize).min(len);
            cuts.push(at);
        }
        out.push(cuts);
    }
    out
}

/// Feeds `input` in pieces to `decode` (which drains `buf`), collecting
/// messages; returns them, the error kind if any, and whether input is
/// left.
fn run_split(
    input: &[u8],
    cuts: &[usize],
    mut decode: impl FnMut(&mut BytesMut) -> Result<Option<String>, &'static str>,
) -> (Vec<String>, Option<&'static str>, bool) {
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    let mut from = 0;
    for &to in cuts {
        buf.extend_from_slice(&input[from..to]);
        from = to;
        loop {
            match decode(&mut buf) {
                Ok(Some(m)) => got.push(m),
                Ok(None) => break,
                Err(k) => return (got, Some(k), true),
            }
        }
    }
    (got, None, !buf.is_empty())
}

fn reply_kind(e: ReplyError) -> &'static str {
    match e {
        ReplyError::BadCode => "bad-code",
        ReplyError::LineTooLong => "line-too-long",
        ReplyError::TooManyLines => "too-many-lines",
        _ => "other",
    }
}

fn command_kind(e: CommandError) -> &'static str {
    match e {
        CommandError::BadVerb => "bad-verb",
        CommandError::ControlCharacter => "control-character",
        CommandError::NotUtf8 => "not-utf8",
        CommandError::Empty => "empty",
        CommandError::TooLong => "line-too-long",
        _ => "other",
    }
}

/// Line framing as the server does it: LF ends a line (CR before it
/// dropped), lines and partial lines are bounded by `max`.
fn command_decoder(
    max: usize,
) -> impl FnMut(&mut BytesMut) -> Result<Option<String>, &'static str> {
    move |buf: &mut BytesMut| {
        let Some(lf) = memchr::memchr(b'\n', buf) else {
            if buf.len() > max + 1 {
                return Err("line-too-long");
            }
            return Ok(None);
        };
        let line = buf.split_to(lf + 1);
        let line = &line[..lf];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > max {
            return Err("line-too-long");
        }
        let stripped = command::strip_telnet(line);
        let c = command::parse(&stripped).map_err(command_kind)?;
        Ok(Some(if c.arg.is_empty() {
            c.verb.name().to_string()
        } else {
            format!("{} {}", c.verb.name(), c.arg)
        }))
    }
}

fn check_case(
    v: &Vector,
    line: usize,
    got: (Vec<String>, Option<&str>, bool),
    expect: &[Vec<u8>],
    outcome: &Outcome,
) {
    let at = format!("{}:{line}", v.name);
    let want: Vec<String> = expect
        .iter()
        .map(|e| String::from_utf8(e.clone()).expect("utf-8 expect"))
        .collect();
    assert_eq!(
        got.0,
        want,
        "{at}: messages ({:?})",
        Escaped(want.join("|").as_bytes())
    );
    match outcome {
        Outcome::Complete => {
            assert_eq!(got.1, None, "{at}");
            assert!(!got.2, "{at}: input left over");
        }
        Outcome::Pending => {
            assert_eq!(got.1, None, "{at}");
            assert!(got.2, "{at}: expected an incomplete message");
        }
        Outcome::Error(k) => assert_eq!(got.1, Some(k.as_str()), "{at}"),
    }
}

#[test]
fn codec_vectors() {
    let mut ran = 0;
    for v in vectors() {
        let Some(cases) = v.cases() else { continue };
        let codec = v.header("codec").unwrap_or("");
        for c in cases {
            for cuts in splittings(c.input.len()) {
                let got = match codec {
                    "reply" => {
                        let mut p = ReplyParser::default();
                        run_split(&c.input, &cuts, |b| {
                            p.decode(b)
                                .map(|r| r.map(|r| r.canonical()))
                                .map_err(reply_kind)
                        })
                    }
                    "command" => {
                        let max = v
                            .header("max-length")
                            .map_or(4096, |m| m.parse().expect("max-length"));
                        run_split(&c.input, &cuts, command_decoder(max))
                    }
                    "mlsx" => {
                        // One entry per case, no framing: parse it whole.
                        let text = String::from_utf8(c.input.clone()).expect("utf-8");
                        let r = list::parse_mlsx(&text)
                            .map(|f| {
                                let mut s: String =
                                    f.facts.iter().map(|(k, v)| format!("{k}={v};")).collect();
                                s.push(' ');
                                s.push_str(&f.name);
                                s
                            })
                            .map_err(|_| "bad-facts");
                        match r {
                            Ok(m) => (vec![m], None, false),
                            Err(k) => (vec![], Some(k), true),
                        }
                    }
                    other => panic!("{}: unknown codec {other:?}", v.name),
                };
                check_case(&v, c.line, got, &c.expect, &c.outcome);
            }
            ran += 1;
        }
    }
    assert!(ran >= 25, "only {ran} cases ran");
}

fn codes(bytes: &[u8]) -> Vec<u16> {
    let mut p = ReplyParser::default();
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(r) = p.decode(&mut buf).expect("replies parse") {
        out.push(r.code);
    }
    assert!(buf.is_empty(), "a partial reply: {:?}", Escaped(&buf));
    out
}

#[test]
fn transcripts_through_the_server() {
    let mut ran = 0;
    for v in vectors() {
        if v.turns().is_none() {
            continue;
        }
        assert_eq!(v.header("compare"), Some("message"), "{}", v.name);
        let cfg = ServerConfig {
            anonymous: v.header("anonymous") == Some("yes"),
            ..ServerConfig::default()
        };
        let steps = v.client_steps().unwrap_or_else(|e| panic!("{e}"));
        let trace = assert_chunking(|| Server::new(cfg.clone()), &steps);
        let sent = trace.sent.get(&ConnId(1)).cloned().unwrap_or_default();
        let expected: Vec<u8> = v
            .turns()
            .unwrap_or_default()
            .iter()
            .filter_map(|t| match t {
                twill_core::testing::Turn::Bytes {
                    side: twill_core::testing::Side::Server,
                    conn: 1,
                    bytes,
                    ..
                } => Some(bytes.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(codes(&sent), codes(&expected), "{}", v.name);
        let closed = trace
            .closes
            .iter()
            .any(|(c, how)| *c == ConnId(1) && *how != Close::WriteHalf);
        assert_eq!(closed, v.server_close(1).is_some(), "{}: close", v.name);
        ran += 1;
    }
    assert!(ran >= 2);
}
