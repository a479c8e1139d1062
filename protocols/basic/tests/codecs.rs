//! Round trips: decode(encode(x)) == x for every codec, for arbitrary valid
//! frames, whole and fed in arbitrary pieces; and decoding arbitrary bytes
//! never panics and never buffers past the limit.

use bytes::BytesMut;
use proptest::prelude::*;
use twill_basic::{Codec, FramingError, Lines, Netstring, Prefixed};

/// Encodes all frames into one stream, then decodes it in pieces cut at
/// `cuts`, and returns the frames read.
fn round_trip<C: Codec + Clone>(codec: &C, frames: &[Vec<u8>], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut wire = BytesMut::new();
    for f in frames {
        codec.encode(f, &mut wire).expect("valid frame encodes");
    }
    let wire = wire.freeze();
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
    points.push(wire.len());
    points.sort_unstable();
    let mut dec = codec.clone();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut at = 0;
    for p in points {
        buf.extend_from_slice(&wire[at..p]);
        at = p;
        while let Some(f) = dec.decode(&mut buf).expect("own output decodes") {
            out.push(f.to_vec());
        }
    }
    assert!(buf.is_empty(), "leftover {buf:?}");
    out
}

/// A decoder of some codec, boxed so different codecs share a list.
type Decoder = Box<dyn FnMut(&mut BytesMut) -> Result<Option<bytes::Bytes>, FramingError>>;

fn lf_line() -> impl Strategy<Value = Vec<u8>> {
    // Any bytes but LF, not ending in CR.
    proptest::collection::vec(any::<u8>().prop_filter("no LF", |b| *b != b'\n'), 0..200)
        .prop_filter("no trailing CR", |v| v.last() != Some(&b'\r'))
}

fn crlf_line() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), any::<u8>()], 0..200).prop_map(
        |v| {
            // Drop each LF that would follow a CR.
            let mut out: Vec<u8> = Vec::with_capacity(v.len());
            for b in v {
                if !(b == b'\n' && out.last() == Some(&b'\r')) {
                    out.push(b);
                }
            }
            out
        },
    )
}

fn cuts() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(any::<usize>(), 0..20)
}

proptest! {
    #[test]
    fn lines_lf(frames in proptest::collection::vec(lf_line(), 0..20), cuts in cuts()) {
        prop_assert_eq!(round_trip(&Lines::new(), &frames, &cuts), frames.clone());
        prop_assert_eq!(round_trip(&Lines::new().send_crlf(true), &frames, &cuts), frames);
    }

    #[test]
    fn lines_crlf(frames in proptest::collection::vec(crlf_line(), 0..20), cuts in cuts()) {
        prop_assert_eq!(round_trip(&Lines::crlf(), &frames, &cuts), frames);
    }

    #[test]
    fn netstring(frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20), cuts in cuts()) {
        prop_assert_eq!(round_trip(&Netstring::new(), &frames, &cuts), frames);
    }

    #[test]
    fn prefixed(frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..255), 0..20), cuts in cuts()) {
        for c in [Prefixed::u8(), Prefixed::u16(), Prefixed::u32()] {
            prop_assert_eq!(round_trip(&c, &frames, &cuts), frames.clone());
        }
    }

    #[test]
    fn large_prefixed_frames(len in 256usize..70_000) {
        let frame = vec![7u8; len];
        prop_assert_eq!(round_trip(&Prefixed::u32(), std::slice::from_ref(&frame), &[len / 2]), vec![frame.clone()]);
        let fits = len <= 65_535;
        let mut out = BytesMut::new();
        prop_assert_eq!(Prefixed::u16().encode(&frame, &mut out).is_ok(), fits);
        let overflow = matches!(
            Prefixed::u8().encode(&frame, &mut out),
            Err(FramingError::PrefixOverflow { .. })
        );
        prop_assert!(overflow);
    }

    /// Arbitrary input never panics, and the buffer never holds more than
    /// one partial frame's worth past the limit.
    #[test]
    fn garbage_is_bounded(input in proptest::collection::vec(any::<u8>(), 0..2000), cuts in cuts()) {
        let codecs: Vec<(Decoder, usize)> = vec![
            { let mut c = Lines::new().max_length(50); (Box::new(move |b| c.decode(b)), 52) },
            { let mut c = Lines::crlf().max_length(50); (Box::new(move |b| c.decode(b)), 52) },
            { let mut c = Netstring::new().max_length(50); (Box::new(move |b| c.decode(b)), 50 + 4) },
            { let mut c = Prefixed::u16().max_length(50); (Box::new(move |b| c.decode(b)), 50 + 2) },
        ];
        for (mut decode, bound) in codecs {
            let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
            points.push(input.len());
            points.sort_unstable();
            let mut buf = BytesMut::new();
            let mut at = 0;
            'feed: for p in points {
                buf.extend_from_slice(&input[at..p]);
                at = p;
                loop {
                    match decode(&mut buf) {
                        Ok(Some(f)) => prop_assert!(f.len() <= 50),
                        Ok(None) => break,
                        Err(_) => break 'feed,
                    }
                }
                // What stays buffered after a successful decode is one
                // partial frame, within the limit plus its framing.
                prop_assert!(buf.len() <= bound, "{} > {}", buf.len(), bound);
            }
        }
    }
}
