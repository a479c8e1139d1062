//! Property tests: parse(serialize(x)) == x for arbitrary valid request
//! heads, response heads and chunked bodies (with trailers), and a
//! serialized request decodes the same however it is cut.

use bytes::BytesMut;
use proptest::prelude::*;
use twill_http::codec::chunked::{self, decode_all, ChunkedLimits};
use twill_http::codec::head::{
    decode_request, decode_response, write_header, write_request_line, write_status_line,
    HeadLimits, HeadScanner,
};
use twill_http::Version;

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}"
}

fn value() -> impl Strategy<Value = String> {
    // Visible ASCII with inner spaces, no surrounding whitespace.
    "[!-~]([ !-~]{0,30}[!-~])?"
}

fn target() -> impl Strategy<Value = String> {
    "/[!-~]{0,40}"
}

fn fields() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec((token(), value()), 0..12)
}

fn version() -> impl Strategy<Value = Version> {
    prop_oneof![Just(Version::Http10), Just(Version::Http11)]
}

proptest! {
    #[test]
    fn request_heads(method in "[A-Z]{1,10}", target in target(), v in version(), fields in fields(), cut in 1usize..64) {
        let mut wire = BytesMut::new();
        write_request_line(&mut wire, &method, &target, v).unwrap();
        for (n, val) in &fields {
            write_header(&mut wire, n, val.as_bytes()).unwrap();
        }
        wire.extend_from_slice(b"\r\n");
        let whole = wire.clone();
        // Fed in pieces of `cut` bytes.
        let mut buf = BytesMut::new();
        let mut scan = HeadScanner::request();
        let mut got = None;
        for piece in whole.chunks(cut) {
            buf.extend_from_slice(piece);
            if let Some(h) = decode_request(&mut buf, &mut scan, &HeadLimits::default()).unwrap() {
                got = Some(h);
            }
        }
        let h = got.expect("complete");
        prop_assert!(buf.is_empty());
        prop_assert_eq!(h.method(), method.as_str());
        prop_assert_eq!(h.target(), target.as_str());
        prop_assert_eq!(h.version(), v);
        let back: Vec<(String, String)> = h
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), String::from_utf8(v.to_vec()).unwrap()))
            .collect();
        prop_assert_eq!(back, fields);
    }

    #[test]
    fn response_heads(status in 100u16..1000, reason in "[ -~]{0,20}", v in version(), fields in fields()) {
        let reason = reason.trim().to_string();
        let mut wire = BytesMut::new();
        write_status_line(&mut wire, v, status, &reason);
        for (n, val) in &fields {
            write_header(&mut wire, n, val.as_bytes()).unwrap();
        }
        wire.extend_from_slice(b"\r\n");
        let h = decode_response(&mut wire, &mut HeadScanner::response(), &HeadLimits::default())
            .unwrap()
            .unwrap();
        prop_assert_eq!(h.status(), status);
        prop_assert_eq!(h.version(), v);
        prop_assert_eq!(h.reason(), reason.as_str());
        let back: Vec<(String, String)> = h
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), String::from_utf8(v.to_vec()).unwrap()))
            .collect();
        prop_assert_eq!(back, fields);
    }

    #[test]
    fn chunked_bodies(pieces in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..8),
                      trailers in prop::collection::vec((token(), value()), 0..4)) {
        let mut wire = BytesMut::new();
        for p in &pieces {
            chunked::write_chunk(&mut wire, p);
        }
        let t: Vec<(&str, &str)> = trailers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        chunked::write_last_chunk(&mut wire, &t).unwrap();
        let (body, got, used) = decode_all(&wire, ChunkedLimits::default()).unwrap();
        prop_assert_eq!(used, wire.len());
        prop_assert_eq!(body.to_vec(), pieces.concat());
        let back: Vec<(String, String)> = got
            .iter()
            .map(|(n, v)| (n.to_string(), String::from_utf8(v.to_vec()).unwrap()))
            .collect();
        prop_assert_eq!(back, trailers);
    }
}
