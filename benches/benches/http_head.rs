//! HTTP request heads: raw `httparse` beside twill-http's head decoding
//! (the incremental end-of-head scan, then httparse, then the zero-copy
//! `RequestHead`), and beside a full trip through the server machine
//! (request in, `Request` event out, an empty 204 written back), on
//! httparse's own benchmark requests.
//!
//! Run: `cd benches && cargo bench --bench http_head && python3 report.py http_head`

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use twill_core::{Addr, ConnId, Input, ListenerId, Machine, Now, Output};
use twill_http::codec::head::{decode_request, decode_request_summarized, HeadLimits, HeadScanner};
use twill_http::{BodyKind, Server, ServerConfig, ServerEvent};

use twill_benches::httparse_requests::{REQ, REQ_SHORT};

/// `REQ_SHORT` is HTTP/1.0 without keep-alive: the machine would close
/// after one response, so its round trip uses this variant.
const REQ_SHORT_KEEP_ALIVE: &[u8] = b"\
GET / HTTP/1.0\r\n\
Host: example.com\r\n\
Connection: keep-alive\r\n\
Cookie: session=60; user_id=1\r\n\r\n";

/// A buffer holding `req`, already shared once, as a connection's buffer
/// is after its first head.
fn in_use(req: &[u8]) -> BytesMut {
    let mut buf = BytesMut::from(req);
    drop(buf.split_to(0));
    buf
}

fn bench_one(c: &mut Criterion, name: &str, req: &'static [u8], keep_alive: &'static [u8]) {
    let mut g = c.benchmark_group(format!("http_head_{name}"));
    g.throughput(Throughput::Bytes(req.len() as u64));

    // Both parsers read the head from the same kind of buffer, made
    // outside the timed part (criterion's batches): httparse borrows from
    // it as its own bench does, twill takes the head out of it. The buffer
    // is in the state a connection's buffer is in from its second request
    // on: already shared once (`in_use`), so taking a head is a reference
    // count, not the allocation `bytes` makes the first time a buffer is
    // shared (until the seventh session every twill head here paid that
    // allocation, about 20 ns, which a keep-alive connection pays once).
    g.bench_function("httparse", |b| {
        b.iter_batched_ref(
            || in_use(req),
            |buf| {
                let mut headers = [httparse::EMPTY_HEADER; 16];
                let mut r = httparse::Request::new(&mut headers);
                let s = r.parse(std::hint::black_box(&buf[..])).unwrap();
                assert!(s.is_complete());
                std::hint::black_box(r.headers.len());
            },
            BatchSize::SmallInput,
        )
    });

    let limits = HeadLimits::default();
    g.bench_function("twill_decode", |b| {
        b.iter_batched_ref(
            || in_use(req),
            |buf| {
                let mut scan = HeadScanner::request();
                let head = decode_request(buf, &mut scan, &limits).unwrap().unwrap();
                std::hint::black_box(head);
            },
            BatchSize::SmallInput,
        )
    });

    // What the server machine runs: the head plus what its fields say
    // about framing, in the same pass.
    g.bench_function("twill_decode_summarized", |b| {
        b.iter_batched_ref(
            || in_use(req),
            |buf| {
                let mut scan = HeadScanner::request();
                let head = decode_request_summarized(buf, &mut scan, &limits)
                    .unwrap()
                    .unwrap();
                std::hint::black_box(head);
            },
            BatchSize::SmallInput,
        )
    });

    // One connection; each iteration one request through the machine.
    let mut server = Server::new(ServerConfig {
        date: false,
        ..ServerConfig::default()
    });
    let conn = ConnId(1);
    let now = Now::default();
    server
        .handle_input(
            now,
            Input::Accepted {
                conn,
                listener: ListenerId(1),
                local: Addr::Unknown,
                peer: Addr::Unknown,
            },
        )
        .unwrap();
    while !matches!(server.poll_output(), Output::Wait { .. }) {}
    g.bench_function("twill_machine_round_trip", |b| {
        b.iter(|| {
            let taken = server
                .handle_input(
                    now,
                    Input::Data {
                        conn,
                        bytes: keep_alive,
                    },
                )
                .unwrap();
            assert_eq!(taken, keep_alive.len());
            let mut sent = 0;
            let mut answered = false;
            loop {
                match server.poll_output() {
                    Output::Event(ServerEvent::Request(r)) => {
                        server.respond(r.id, 204, &[], BodyKind::Empty).unwrap();
                        answered = true;
                    }
                    Output::Transmit { payload, .. } => sent += payload.len() as usize,
                    Output::Wait { .. } => break,
                    _ => {}
                }
            }
            assert!(answered, "the connection must stay open");
            server
                .handle_input(now, Input::Sent { conn, bytes: sent })
                .unwrap();
            while !matches!(server.poll_output(), Output::Wait { .. }) {}
        })
    });
    g.finish();
}

fn bench(c: &mut Criterion) {
    bench_one(c, "short", REQ_SHORT, REQ_SHORT_KEEP_ALIVE);
    bench_one(c, "long", REQ, REQ);
}

criterion_group!(benches, bench);
criterion_main!(benches);
