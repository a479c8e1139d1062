//! parse(encode(x)) == x for arbitrary valid messages; parsing arbitrary
//! bytes never panics and anything parsed writes back to an equal message;
//! the encoder never lets CR, LF or NUL through.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use twill_irc::codec::tags::unescape;
use twill_irc::{Encoder, Message};

fn no_crlf_nul(b: &u8) -> bool {
    !matches!(b, 0 | b'\r' | b'\n')
}

fn middle() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        any::<u8>().prop_filter("middle byte", |b| no_crlf_nul(b) && *b != b' '),
        1..20,
    )
    .prop_filter("no leading colon", |v| v[0] != b':')
}

fn trailing() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>().prop_filter("text byte", no_crlf_nul), 0..60)
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    "\\+?([a-z0-9.-]{1,8}/)?[A-Za-z0-9-]{1,8}".prop_map(String::into_bytes)
}

#[derive(Debug, Clone)]
struct Parts {
    tags: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    source: Option<Vec<u8>>,
    command: String,
    params: Vec<Vec<u8>>,
    last: Option<Vec<u8>>,
}

fn parts() -> impl Strategy<Value = Parts> {
    (
        proptest::collection::vec(
            (
                key(),
                proptest::option::of(proptest::collection::vec(
                    any::<u8>().prop_filter("nul", |b| *b != 0),
                    0..20,
                )),
            ),
            0..4,
        ),
        proptest::option::of(middle()),
        prop_oneof!["[A-Za-z]{1,10}", "[0-9]{3}"],
        proptest::collection::vec(middle(), 0..14),
        proptest::option::of(trailing()),
    )
        .prop_map(|(tags, source, command, params, last)| Parts {
            tags,
            source,
            command,
            params,
            last,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn encode_then_parse(p in parts()) {
        let mut buf = BytesMut::new();
        let mut e = Encoder::new(&mut buf);
        for (k, v) in &p.tags {
            e.tag(k, v.as_deref());
        }
        if let Some(s) = &p.source {
            e.source(s);
        }
        e.command(&p.command);
        for m in &p.params {
            e.param(m);
        }
        if let Some(t) = &p.last {
            e.trailing(t);
        }
        let n = match e.finish() {
            Ok(n) => n,
            // Too long for 512 bytes: refused, nothing written.
            Err(_) => { prop_assert!(buf.is_empty()); return Ok(()); }
        };
        prop_assert_eq!(n, buf.len());
        let wire = buf.freeze();
        prop_assert!(wire.ends_with(b"\r\n"));
        prop_assert!(!wire[..wire.len() - 2].iter().any(|b| matches!(b, 0 | b'\r' | b'\n')));
        let m = Message::parse(wire.slice(..wire.len() - 2)).unwrap();
        let tags: Vec<(Vec<u8>, Vec<u8>)> = m.tags().map(|t| (t.key.to_vec(), t.value().into_owned())).collect();
        let want: Vec<(Vec<u8>, Vec<u8>)> = p.tags.iter().map(|(k, v)| (k.clone(), v.clone().unwrap_or_default())).collect();
        prop_assert_eq!(tags, want);
        prop_assert_eq!(m.source(), p.source.as_deref());
        prop_assert_eq!(m.command(), p.command.as_str());
        let mut params = p.params.clone();
        params.extend(p.last.clone());
        let got: Vec<Vec<u8>> = m.params().map(<[u8]>::to_vec).collect();
        prop_assert_eq!(got, params);
    }

    #[test]
    fn parse_anything(line in proptest::collection::vec(any::<u8>(), 0..700)) {
        if let Ok(m) = Message::parse(Bytes::from(line)) {
            let mut buf = BytesMut::new();
            m.encode(&mut buf).unwrap();
            let b = buf.freeze();
            let m2 = Message::parse(b.slice(..b.len() - 2)).unwrap();
            prop_assert_eq!(m2, m);
        }
    }

    #[test]
    fn escaping_round_trips(v in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut esc = Vec::new();
        twill_irc::codec::tags::escape_into(&v, &mut esc);
        prop_assert!(!esc.iter().any(|b| matches!(b, b' ' | b';' | b'\r' | b'\n')));
        prop_assert_eq!(unescape(&esc).into_owned(), v);
    }
}
