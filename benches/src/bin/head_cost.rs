//! Head decoding alone, for instruction counts: `valgrind --tool=callgrind
//! benches/target/release/head_cost MODE N` with MODE one of
//!
//! - `raw-short`, `raw-long`: httparse alone, as its own bench does it
//!   (16 zeroed header slots, `Request::parse`);
//! - `short`, `long`: twill's `decode_request` (what a client of the codec
//!   calls);
//! - `sum-short`, `sum-long`: `decode_request_summarized` (what the server
//!   machine calls: the head plus what its fields say about framing);
//! - `own-short`, `own-long`: no parsing, only what every twill mode pays
//!   around it: refilling the buffer (not part of decoding; the bench's
//!   doing) and splitting the head off as an owned `Bytes`, then dropping
//!   it — the floor of an owned head;
//! - `fill-short`, `fill-long`: the refill alone, to subtract from the
//!   twill modes.
//!
//! Each decodes the head N times, so the count per head of twill and of
//! raw httparse can be compared without timer noise.

use std::hint::black_box;

use bytes::BytesMut;
use twill_http::codec::head::{decode_request, decode_request_summarized, HeadLimits, HeadScanner};

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
    let mode = which.split('-').next().unwrap_or_default();
    let limits = HeadLimits::default();
    let mut buf = BytesMut::with_capacity(1024);
    for _ in 0..n {
        if mode == "raw" {
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let mut r = httparse::Request::new(&mut headers);
            let s = r.parse(black_box(req)).unwrap();
            assert!(s.is_complete());
            black_box(r.headers.len());
            continue;
        }
        buf.clear();
        buf.extend_from_slice(req);
        let mut scan = HeadScanner::request();
        match mode {
            "fill" => {
                black_box(&mut buf);
            }
            "own" => {
                let head = black_box(&mut buf).split_to(req.len()).freeze();
                black_box(head);
            }
            "sum" => {
                let head = decode_request_summarized(&mut buf, &mut scan, &limits)
                    .unwrap()
                    .unwrap();
                black_box(head);
            }
            _ => {
                let head = decode_request(&mut buf, &mut scan, &limits)
                    .unwrap()
                    .unwrap();
                black_box(head);
            }
        }
    }
}
