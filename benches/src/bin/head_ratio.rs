//! Head parsing, twill vs raw httparse, timed in alternating blocks so a
//! busy machine slows both alike: for each request, the best block time of
//! each (ns per head) and the ratio. A quick companion of the criterion
//! bench `http_head` for machines where criterion's runs drift.
//!
//! Both sides parse from the same memory: a block's 2,000 buffers are
//! refilled with the request just before it is timed (outside the timed
//! part), and httparse parses each buffer's bytes in place as twill
//! decodes them. (Until the sixth session httparse parsed one hot static
//! slice while twill walked 2,000 buffers, which charged twill for the
//! cache misses of its input.)
//!
//! Run: `cd benches && cargo run --release --bin head_ratio`

use std::hint::black_box;
use std::time::Instant;

use bytes::BytesMut;
use twill_http::codec::head::{decode_request, decode_request_summarized, HeadLimits, HeadScanner};

use twill_benches::httparse_requests::{REQ, REQ_SHORT};

const BLOCK: usize = 2000;

/// Refills every buffer with `req` (not timed).
fn refill(req: &[u8], bufs: &mut [BytesMut]) {
    for b in bufs.iter_mut() {
        b.clear();
        b.extend_from_slice(req);
    }
}

/// httparse as its own bench calls it (16 zeroed slots, borrowed
/// result), on the same refilled buffers as twill.
fn httparse_block(req: &[u8], bufs: &mut [BytesMut]) -> f64 {
    refill(req, bufs);
    let t = Instant::now();
    for b in bufs.iter() {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut r = httparse::Request::new(&mut headers);
        let s = r.parse(black_box(&b[..])).unwrap();
        assert!(s.is_complete());
        black_box(r.headers.len());
    }
    t.elapsed().as_nanos() as f64 / bufs.len() as f64
}

/// Like criterion's `iter_batched_ref`: the buffers are made outside the
/// timed part; the head is dropped inside it (as a server would).
/// `summary`: also read what the fields say about framing, as the server
/// machine does in the same pass.
fn twill_block(req: &[u8], bufs: &mut [BytesMut], summary: bool) -> f64 {
    refill(req, bufs);
    let limits = HeadLimits::default();
    let t = Instant::now();
    for b in bufs.iter_mut() {
        let mut scan = HeadScanner::request();
        if summary {
            let head = decode_request_summarized(b, &mut scan, &limits).unwrap();
            black_box(head.unwrap());
        } else {
            let head = decode_request(b, &mut scan, &limits).unwrap();
            black_box(head.unwrap());
        }
    }
    t.elapsed().as_nanos() as f64 / bufs.len() as f64
}

/// What owning the head's bytes costs alone: splitting them off the
/// connection buffer as a `Bytes` (a reference count taken) and dropping
/// them (given back), with no parsing. An owned head can not cost less.
fn own_block(req: &[u8], bufs: &mut [BytesMut]) -> f64 {
    refill(req, bufs);
    let t = Instant::now();
    for b in bufs.iter_mut() {
        let head = b.split_to(req.len()).freeze();
        black_box(head);
    }
    t.elapsed().as_nanos() as f64 / bufs.len() as f64
}

fn main() {
    for (name, req) in [("short", REQ_SHORT), ("long", REQ)] {
        let mut bufs: Vec<BytesMut> = (0..BLOCK).map(|_| BytesMut::with_capacity(1024)).collect();
        let (mut h, mut t, mut m, mut o) = (f64::MAX, f64::MAX, f64::MAX, f64::MAX);
        for _ in 0..400 {
            h = h.min(httparse_block(req, &mut bufs));
            t = t.min(twill_block(req, &mut bufs, false));
            m = m.min(twill_block(req, &mut bufs, true));
            o = o.min(own_block(req, &mut bufs));
        }
        println!(
            "{name:6} httparse {h:6.1} ns | twill decode {t:6.1} ns {:.2}× | \
             + framing summary (the server's parse) {m:6.1} ns {:.2}× | \
             owning the bytes alone {o:4.1} ns, httparse + that {:.2}×",
            t / h,
            m / h,
            (h + o) / h
        );
    }
}
