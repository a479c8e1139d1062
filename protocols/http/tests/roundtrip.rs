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

/// Decodes `wire` fed whole (the one-pass path) or a byte at a time (the
/// scanner path): the head's parts and its length, or the error.
type Outcome = Result<Option<(String, String, Vec<(String, Vec<u8>)>, usize)>, String>;

fn decode_fed(wire: &[u8], response: bool, limits: &HeadLimits, bytewise: bool) -> Outcome {
    let mut buf = BytesMut::new();
    let mut scan = if response {
        HeadScanner::response()
    } else {
        HeadScanner::request()
    };
    let pieces: Vec<&[u8]> = if bytewise {
        wire.chunks(1).collect()
    } else {
        vec![wire]
    };
    let mut fed = 0;
    for piece in pieces {
        buf.extend_from_slice(piece);
        fed += piece.len();
        let got = if response {
            decode_response(&mut buf, &mut scan, limits).map(|h| {
                h.map(|h| {
                    let f = h.headers().iter().map(|(n, v)| (n.to_string(), v.to_vec()));
                    (h.status().to_string(), h.reason().to_string(), f.collect())
                })
            })
        } else {
            decode_request(&mut buf, &mut scan, limits).map(|h| {
                h.map(|h| {
                    let f = h.headers().iter().map(|(n, v)| (n.to_string(), v.to_vec()));
                    (h.method().to_string(), h.target().to_string(), f.collect())
                })
            })
        };
        match got {
            Err(e) => return Err(format!("{e:?}")),
            Ok(Some((a, b, f))) => return Ok(Some((a, b, f, fed - buf.len()))),
            Ok(None) => {}
        }
    }
    Ok(None)
}

/// Heads built from plausible and broken pieces: bare LF, bare CR,
/// obs-fold, spaces before colons, bytes above 0x7f, NUL, long lines.
fn messy_head(response: bool) -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        4 => (token(), value()).prop_map(|(n, v)| format!("{n}: {v}\r\n").into_bytes()),
        1 => Just(b"X-Bare: lf\n".to_vec()),
        1 => Just(b"X-Cr: a\rb\r\n".to_vec()),
        1 => Just(b" folded\r\n".to_vec()),
        1 => Just(b"Space : before\r\n".to_vec()),
        1 => Just(b"X-High: \xe9t\xe9\r\n".to_vec()),
        1 => Just(b"X-Nul: a\0b\r\n".to_vec()),
        1 => "[a-z]{40,120}".prop_map(|v| format!("X-Long: {v}\r\n").into_bytes()),
        1 => Just(b"NoColon\r\n".to_vec()),
        1 => Just(b"X-Trail: v \t\r\n".to_vec()),
        1 => Just(b"X-Empty:\r\n".to_vec()),
        1 => Just(b"X-Empty-Lf: \n".to_vec()),
        1 => Just(b"X-Mid: a\nb: c\r\n".to_vec()),
        1 => prop_oneof![
            Just(b"Host: h\r\n".to_vec()),
            Just(b"content-length: 5\r\n".to_vec()),
            Just(b"Content-Length: 5, 5\r\n".to_vec()),
            Just(b"Content-Length: x\r\n".to_vec()),
            Just(b"Transfer-Encoding: chunked\r\n".to_vec()),
            Just(b"CONNECTION: Keep-Alive, Upgrade\r\n".to_vec()),
            Just(b"Connection: close\r\n".to_vec()),
            Just(b"Upgrade: websocket\r\n".to_vec()),
            Just(b"Expect:  100-continue \r\n".to_vec()),
        ],
    ];
    let start = if response {
        prop_oneof![
            Just(b"HTTP/1.1 200 OK\r\n".to_vec()),
            Just(b"HTTP/1.0 404 \r\n".to_vec()),
            Just(b"HTTP/2.0 200 OK\r\n".to_vec()),
            Just(b"HTTP/1.1 99 Low\r\n".to_vec()),
            Just(b"HTTP/1.1 200 OK\n".to_vec()),
            Just(b"HTTP/1.1 200 OK \r\n".to_vec()),
            Just(b"HTTP/1.1 204\r\n".to_vec()),
            Just(b"HTTP/1.1 204 \n".to_vec()),
        ]
        .boxed()
    } else {
        prop_oneof![
            target().prop_map(|t| format!("GET {t} HTTP/1.1\r\n").into_bytes()),
            Just(b"\r\nPOST /x HTTP/1.0\r\n".to_vec()),
            Just(b"GET /\xff HTTP/1.1\r\n".to_vec()),
            Just(b"GET / HTTP/2.0\r\n".to_vec()),
            Just(b"GET  / HTTP/1.1\r\n".to_vec()),
            Just(b"GET / HTTP/1.1\n".to_vec()),
        ]
        .boxed()
    };
    let end = prop_oneof![
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(Vec::new())
    ];
    let rest = prop_oneof![
        Just(Vec::new()),
        Just(b"GET /next HTTP/1.1\r\n\r\n".to_vec())
    ];
    (start, prop::collection::vec(line, 0..8), end, rest).prop_map(|(s, ls, e, r)| {
        let mut v = s;
        for l in ls {
            v.extend_from_slice(&l);
        }
        v.extend_from_slice(&e);
        v.extend_from_slice(&r);
        v
    })
}

proptest! {
    /// The one-pass path for whole heads and the scanner path for heads in
    /// pieces accept the same heads, with the same parts, and refuse the
    /// same ones with the same error, under tight limits too.
    #[test]
    fn whole_and_bytewise_heads_agree(
        response in any::<bool>(),
        wire in any::<bool>().prop_flat_map(messy_head),
        tight in prop::option::of((10usize..80, 20usize..300, 0usize..6)),
    ) {
        let limits = match tight {
            Some((max_line, max_head, max_headers)) => HeadLimits { max_line, max_head, max_headers },
            None => HeadLimits::default(),
        };
        let whole = decode_fed(&wire, response, &limits, false);
        let bytewise = decode_fed(&wire, response, &limits, true);
        prop_assert_eq!(whole, bytewise, "{:?}", String::from_utf8_lossy(&wire));
    }
}

proptest! {
    /// The fields of an accepted head, walked from its bytes, are exactly
    /// the fields httparse finds in them (names, trimmed values, order),
    /// and a lookup finds the first field of that name in any case.
    #[test]
    fn walked_fields_are_httparses(
        response in any::<bool>(),
        wire in any::<bool>().prop_flat_map(messy_head),
        upper in any::<bool>(),
    ) {
        let mut buf = BytesMut::from(&wire[..]);
        let mut scan = if response { HeadScanner::response() } else { HeadScanner::request() };
        let limits = HeadLimits::default();
        let (raw, headers) = if response {
            match decode_response(&mut buf, &mut scan, &limits) {
                Ok(Some(h)) => (h.raw().clone(), h.headers().clone()),
                _ => return Ok(()),
            }
        } else {
            match decode_request(&mut buf, &mut scan, &limits) {
                Ok(Some(h)) => (h.raw().clone(), h.headers().clone()),
                _ => return Ok(()),
            }
        };
        let mut slots = [httparse::EMPTY_HEADER; 64];
        let theirs: Vec<(String, Vec<u8>)> = if response {
            let mut r = httparse::Response::new(&mut slots);
            prop_assert!(r.parse(&raw).unwrap().is_complete());
            r.headers.iter().map(|h| (h.name.to_string(), h.value.to_vec())).collect()
        } else {
            let mut r = httparse::Request::new(&mut slots);
            prop_assert!(r.parse(&raw).unwrap().is_complete());
            r.headers.iter().map(|h| (h.name.to_string(), h.value.to_vec())).collect()
        };
        let ours: Vec<(String, Vec<u8>)> =
            headers.iter().map(|(n, v)| (n.to_string(), v.to_vec())).collect();
        prop_assert_eq!(headers.len(), theirs.len());
        prop_assert_eq!(&ours, &theirs);
        for (n, _) in &theirs {
            let asked = if upper { n.to_ascii_uppercase() } else { n.to_ascii_lowercase() };
            let first = theirs.iter().find(|(m, _)| m.eq_ignore_ascii_case(n)).map(|(_, v)| &v[..]);
            prop_assert_eq!(headers.get(&asked), first);
            prop_assert_eq!(
                headers.get_all(&asked).count(),
                theirs.iter().filter(|(m, _)| m.eq_ignore_ascii_case(n)).count()
            );
        }
        prop_assert_eq!(headers.get("X-Not-Sent-At-All"), None);
    }
}
