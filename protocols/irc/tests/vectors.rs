//! Runs `spec-vectors/irc/` (RFC 1459/2812 examples, IRCv3 message-tags
//! examples) through the line reader and the parser, whole, byte at a time
//! and split at random points; each parsed message is compared in its
//! canonical written form.

use bytes::BytesMut;
use twill_core::testing::{load_vectors, Outcome};
use twill_irc::codec::LineReader;
use twill_irc::{Message, ParseError};

fn kind(e: &ParseError) -> &'static str {
    match e {
        ParseError::NoCommand => "no-command",
        ParseError::BadCommand => "bad-command",
        ParseError::EmptySource => "empty-source",
        ParseError::BadTags => "bad-tags",
        ParseError::TagsTooLong => "tags-too-long",
        ParseError::BodyTooLong => "body-too-long",
        ParseError::TooLong => "line-too-long",
        ParseError::ForbiddenByte(_) => "forbidden-byte",
        _ => "unexpected",
    }
}

/// Decodes `input` cut at `cuts`: the canonical messages, then how it ended.
fn decode(input: &[u8], cuts: &[usize]) -> (Vec<Vec<u8>>, Outcome) {
    let mut r = LineReader::default();
    let mut out = Vec::new();
    let mut at = 0;
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    points.push(input.len());
    points.sort_unstable();
    for p in points {
        let chunk = &input[at..p];
        at = p;
        let mut pos = 0;
        loop {
            match r.next_line(chunk, &mut pos) {
                Ok(Some(line)) => match Message::parse(line.into_bytes()) {
                    Ok(m) => {
                        let mut buf = BytesMut::new();
                        m.encode(&mut buf).expect("a parsed message encodes");
                        let b = buf.strip_suffix(b"\r\n").expect("CRLF").to_vec();
                        // And the canonical form parses to the same message.
                        assert_eq!(Message::parse(b.clone()).unwrap(), m);
                        out.push(b);
                    }
                    Err(e) => return (out, Outcome::Error(kind(&e).into())),
                },
                Ok(None) => break,
                Err(_) => return (out, Outcome::Error("line-too-long".into())),
            }
        }
    }
    let outcome = if r.pending() > 0 {
        Outcome::Pending
    } else {
        Outcome::Complete
    };
    (out, outcome)
}

#[test]
fn spec_vectors() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../spec-vectors/irc");
    let vectors = load_vectors(dir).unwrap_or_else(|e| panic!("{e}"));
    assert!(vectors.len() >= 3);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut cases = 0;
    for v in &vectors {
        assert_eq!(v.header("codec"), Some("irc-message"), "{}", v.name);
        for case in v.cases().expect("message vectors") {
            cases += 1;
            let n = case.input.len();
            let mut splits: Vec<Vec<usize>> = vec![vec![], (1..n).collect()];
            for _ in 0..8 {
                let mut c = Vec::new();
                for _ in 0..4 {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    c.push(seed as usize);
                }
                splits.push(c);
            }
            for cuts in splits {
                let (got, outcome) = decode(&case.input, &cuts);
                let want: Vec<String> = case
                    .expect
                    .iter()
                    .map(|e| String::from_utf8_lossy(e).into_owned())
                    .collect();
                let got: Vec<String> = got
                    .iter()
                    .map(|e| String::from_utf8_lossy(e).into_owned())
                    .collect();
                assert_eq!(got, want, "{}:{}", v.name, case.line);
                assert_eq!(outcome, case.outcome, "{}:{}", v.name, case.line);
            }
        }
    }
    assert!(cases >= 40, "{cases} cases");
}
