//! SMTP: command parsing beside `smtp-proto` (the parser of Stalwart's
//! mail server) on the same lines, and DATA dot-unstuffing beside
//! smtp-proto's `DataReceiver` and a bare `memchr` scan for the line ends
//! of the same bytes (the physical limit).
//!
//! Run: `cd benches && cargo bench --bench smtp`, then `python3 report.py`.

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use twill_smtp::codec::{parse_command, Unstuffer};

/// A session's worth of commands, as clients send them.
const COMMANDS: &[&[u8]] = &[
    b"EHLO client.example.org\r\n",
    b"MAIL FROM:<sender.name@example.org> SIZE=12345 BODY=8BITMIME\r\n",
    b"RCPT TO:<first.recipient@example.net>\r\n",
    b"RCPT TO:<second@example.net>\r\n",
    b"RCPT TO:<\"quoted name\"@example.net>\r\n",
    b"DATA\r\n",
    b"RSET\r\n",
    b"NOOP\r\n",
    b"VRFY someone\r\n",
    b"AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n",
    b"BDAT 1000 LAST\r\n",
    b"QUIT\r\n",
];

/// 1 MiB of message: 72-character lines, every tenth starting with a
/// (stuffed) dot, then the end-of-data marker.
fn message() -> Vec<u8> {
    let mut out = Vec::with_capacity(1 << 20);
    let mut i = 0u64;
    while out.len() < (1 << 20) - 100 {
        if i.is_multiple_of(10) {
            out.extend_from_slice(b"..");
        }
        for k in 0..70 {
            out.push(b'a' + ((i + k) % 26) as u8);
        }
        out.extend_from_slice(b"\r\n");
        i += 1;
    }
    out.extend_from_slice(b".\r\n");
    out
}

fn commands(c: &mut Criterion) {
    let mut g = c.benchmark_group("smtp_commands");
    g.throughput(Throughput::Elements(COMMANDS.len() as u64));
    g.bench_function("twill", |b| {
        b.iter(|| {
            for line in COMMANDS {
                let c = parse_command(std::hint::black_box(line)).expect("parses");
                std::hint::black_box(c);
            }
        })
    });
    g.bench_function("smtp_proto", |b| {
        b.iter(|| {
            for line in COMMANDS {
                let c = smtp_proto::Request::parse(&mut std::hint::black_box(line).iter())
                    .expect("parses");
                std::hint::black_box(c);
            }
        })
    });
    g.finish();
}

fn unstuff(c: &mut Criterion) {
    let data = message();
    let lines = memchr::memchr_iter(b'\n', &data).count();
    let mut g = c.benchmark_group("smtp_unstuff");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("memchr_scan", |b| {
        b.iter(|| {
            assert_eq!(
                memchr::memchr_iter(b'\n', std::hint::black_box(&data)).count(),
                lines
            )
        })
    });
    let mut out = BytesMut::with_capacity(data.len());
    g.bench_function("twill", |b| {
        b.iter(|| {
            out.clear();
            let mut u = Unstuffer::new(998);
            let (n, done) = u.feed(std::hint::black_box(&data), |s| out.extend_from_slice(s));
            assert!(done && n == data.len());
        })
    });
    let mut buf = Vec::with_capacity(data.len());
    g.bench_function("smtp_proto", |b| {
        b.iter(|| {
            buf.clear();
            let mut r = smtp_proto::request::receiver::DataReceiver::new();
            assert!(r.ingest(&mut std::hint::black_box(&data).iter(), &mut buf));
        })
    });
    g.finish();
}

criterion_group!(benches, commands, unstuff);
criterion_main!(benches);
