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
//! - `copy-short`, `copy-long`: the other way to own the bytes, for
//!   comparison: copied into an allocation of their own
//!   (`Bytes::copy_from_slice`), the buffer emptied;
//! - `fill-short`, `fill-long`: the refill alone, to subtract from the
//!   twill modes.
//!
//! Each decodes the head N times, so the count per head of twill and of
//! raw httparse can be compared without timer noise. Each mode runs its
//! own loop: none pays for choosing the mode per head (until the sixth
//! session the choice was made in the loop, 10-30 instructions per head
//! charged unevenly to the modes).

use std::hint::black_box;

use bytes::BytesMut;
use twill_http::codec::head::{decode_request, decode_request_summarized, HeadLimits, HeadScanner};

use twill_benches::httparse_requests::{REQ, REQ_SHORT};

/// Runs `each` `n` times on a buffer refilled with `req` just before (not
/// inlined into a shared loop: each mode gets its own loop, so no mode
/// pays for choosing among them per head).
#[inline(always)]
fn refilled(n: usize, req: &[u8], mut each: impl FnMut(&mut BytesMut)) {
    let mut buf = BytesMut::with_capacity(1024);
    for _ in 0..n {
        buf.clear();
        buf.extend_from_slice(req);
        each(&mut buf);
    }
}

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
    match mode {
        "raw" => {
            for _ in 0..n {
                let mut headers = [httparse::EMPTY_HEADER; 16];
                let mut r = httparse::Request::new(&mut headers);
                let s = r.parse(black_box(req)).unwrap();
                assert!(s.is_complete());
                black_box(r.headers.len());
            }
        }
        "fill" => refilled(n, req, |buf| {
            black_box(buf);
        }),
        "own" => refilled(n, req, |buf| {
            let head = black_box(buf).split_to(req.len()).freeze();
            black_box(head);
        }),
        "copy" => refilled(n, req, |buf| {
            let head = bytes::Bytes::copy_from_slice(&black_box(&mut *buf)[..req.len()]);
            buf.clear();
            black_box(head);
        }),
        "sum" => refilled(n, req, |buf| {
            let mut scan = HeadScanner::request();
            let head = decode_request_summarized(buf, &mut scan, &limits)
                .unwrap()
                .unwrap();
            black_box(head);
        }),
        _ => refilled(n, req, |buf| {
            let mut scan = HeadScanner::request();
            let head = decode_request(buf, &mut scan, &limits).unwrap().unwrap();
            black_box(head);
        }),
    }
}
