//! Head decoding alone, for instruction counts: `valgrind --tool=callgrind
//! benches/target/release/head_cost short|long|raw-short|raw-long N` decodes
//! the head N times the way `head_ratio` does, so the count per head of
//! twill and of raw httparse can be compared without timer noise.

use std::hint::black_box;

use bytes::BytesMut;
use twill_http::codec::head::{decode_request, HeadLimits, HeadScanner};

use twill_benches::httparse_requests::{REQ, REQ_SHORT};

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "short".into());
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let req = if which.ends_with("long") {
        REQ
    } else {
        REQ_SHORT
    };
    let limits = HeadLimits::default();
    let mut buf = BytesMut::with_capacity(1024);
    for _ in 0..n {
        if which.starts_with("raw") {
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let mut r = httparse::Request::new(&mut headers);
            let s = r.parse(black_box(req)).unwrap();
            assert!(s.is_complete());
            black_box(r.headers.len());
        } else {
            buf.clear();
            buf.extend_from_slice(req);
            let mut scan = HeadScanner::request();
            let head = decode_request(&mut buf, &mut scan, &limits)
                .unwrap()
                .unwrap();
            black_box(head);
        }
    }
}
