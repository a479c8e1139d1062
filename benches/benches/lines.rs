//! Line framing: twill-basic's `Lines` codec (`decode`, one owned `Bytes`
//! per line, and `decode_each`, borrowed slices in one pass) beside tokio-util's
//! `LinesCodec` on the same input, and beside a bare `memchr` scan (the
//! physical limit: finding the newlines and nothing else).
//!
//! Run: `cd benches && cargo bench --bench lines`, then
//! `python3 report.py` prints the ratios.

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use tokio_util::codec::{Decoder, LinesCodec};
use twill_basic::codec::Lines;

/// 1 MiB of lines of 10–120 printable characters (IRC/SMTP-like), LF-ended.
fn input() -> BytesMut {
    let mut out = BytesMut::with_capacity(1 << 20);
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    while out.len() < (1 << 20) - 128 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = 10 + (x % 111) as usize;
        for i in 0..len {
            out.extend_from_slice(&[b' ' + ((x as usize + i) % 94) as u8]);
        }
        out.extend_from_slice(b"\n");
    }
    out
}

fn bench(c: &mut Criterion) {
    let data = input();
    let lines = memchr::memchr_iter(b'\n', &data).count();
    let mut g = c.benchmark_group("lines");
    g.throughput(Throughput::Bytes(data.len() as u64));

    g.bench_function("twill", |b| {
        b.iter_batched_ref(
            || data.clone(),
            |buf| {
                let mut codec = Lines::new();
                let mut n = 0;
                while let Some(frame) = codec.decode(buf).unwrap() {
                    n += 1;
                    std::hint::black_box(frame);
                }
                assert_eq!(n, lines);
            },
            BatchSize::LargeInput,
        )
    });

    g.bench_function("twill_decode_each", |b| {
        b.iter_batched_ref(
            || data.clone(),
            |buf| {
                let mut codec = Lines::new();
                let mut n = 0;
                codec
                    .decode_each(buf, |line| {
                        n += 1;
                        std::hint::black_box(line);
                    })
                    .unwrap();
                assert_eq!(n, lines);
            },
            BatchSize::LargeInput,
        )
    });

    g.bench_function("tokio_util_LinesCodec", |b| {
        b.iter_batched_ref(
            || data.clone(),
            |buf| {
                let mut codec = LinesCodec::new();
                let mut n = 0;
                while let Some(line) = codec.decode(buf).unwrap() {
                    n += 1;
                    std::hint::black_box(line);
                }
                assert_eq!(n, lines);
            },
            BatchSize::LargeInput,
        )
    });

    g.bench_function("memchr_scan", |b| {
        b.iter_batched_ref(
            || data.clone(),
            |buf| {
                let n = memchr::memchr_iter(b'\n', buf).count();
                assert_eq!(n, lines);
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
