//! SMTP command parsing (twill vs smtp-proto) and DATA unstuffing (twill,
//! smtp-proto's `DataReceiver`, a bare `memchr` count of the line feeds),
//! robust to a loaded machine: the contenders take turns in many short
//! rounds and each keeps its fastest round (preemption only ever adds
//! time). The same inputs as `benches/smtp.rs`.
//!
//! `cargo run --release --bin smtp_parse [ROUNDS]`

use std::hint::black_box;
use std::time::Instant;

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

const ITERS: u32 = 2000;

fn best(rounds: usize, lines: &[&[u8]], f: impl Fn(&[u8])) -> f64 {
    let mut min = f64::MAX;
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..ITERS {
            for l in lines {
                f(black_box(l));
            }
        }
        min = min.min(t.elapsed().as_nanos() as f64 / f64::from(ITERS));
    }
    min
}

fn twill(l: &[u8]) {
    black_box(twill_smtp::codec::parse_command(l).expect("parses"));
}

fn proto(l: &[u8]) {
    black_box(smtp_proto::Request::parse(&mut l.iter()).expect("parses"));
}

/// 1 MiB of 72-octet lines, every tenth stuffed, then the marker (as in
/// `benches/smtp.rs`).
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

fn best_once(rounds: usize, f: &mut impl FnMut()) -> f64 {
    let mut min = f64::MAX;
    for _ in 0..rounds {
        let t = Instant::now();
        f();
        min = min.min(t.elapsed().as_nanos() as f64);
    }
    min
}

fn unstuff() {
    let data = message();
    let lines = memchr::memchr_iter(b'\n', &data).count();
    let mut out = bytes::BytesMut::with_capacity(data.len());
    let mut buf = Vec::with_capacity(data.len());
    let mut scan = || assert_eq!(memchr::memchr_iter(b'\n', black_box(&data)).count(), lines);
    let mut tw = || {
        out.clear();
        let mut u = twill_smtp::codec::Unstuffer::new(998);
        let (n, done) = u.feed(black_box(&data), |s| out.extend_from_slice(s));
        assert!(done && n == data.len());
    };
    let mut sp = || {
        buf.clear();
        let mut r = smtp_proto::request::receiver::DataReceiver::new();
        assert!(r.ingest(&mut black_box(&data).iter(), &mut buf));
    };
    let (mut a, mut b, mut c) = (f64::MAX, f64::MAX, f64::MAX);
    for _ in 0..10 {
        a = a.min(best_once(20, &mut scan));
        b = b.min(best_once(20, &mut tw));
        c = c.min(best_once(20, &mut sp));
    }
    let gib = |ns: f64| data.len() as f64 / ns * 1e9 / (1u64 << 30) as f64;
    println!("unstuff 1 MiB: memchr scan {:.1} us ({:.1} GiB/s), twill {:.1} us ({:.2} GiB/s, {:.2}x the scan), smtp-proto {:.1} us ({:.2} GiB/s)",
        a / 1e3, gib(a), b / 1e3, gib(b), b / a, c / 1e3, gib(c));
}

fn main() {
    let rounds: usize = std::env::args().nth(1).map_or(200, |x| x.parse().unwrap());
    let (mut t_all, mut p_all) = (f64::MAX, f64::MAX);
    // Alternate in blocks so both see the same machine.
    for _ in 0..10 {
        t_all = t_all.min(best(rounds / 10, COMMANDS, twill));
        p_all = p_all.min(best(rounds / 10, COMMANDS, proto));
    }
    for l in COMMANDS {
        let (mut t, mut p) = (f64::MAX, f64::MAX);
        for _ in 0..5 {
            t = t.min(best(rounds / 5, &[l], twill));
            p = p.min(best(rounds / 5, &[l], proto));
        }
        let name = String::from_utf8_lossy(l);
        println!(
            "{:>8.1} ns {:>8.1} ns {:>5.2}x  {}",
            t,
            p,
            t / p,
            name.trim_end()
        );
    }
    println!(
        "session of {}: twill {:.0} ns, smtp-proto {:.0} ns: {:.2}x the time",
        COMMANDS.len(),
        t_all,
        p_all,
        t_all / p_all
    );
    unstuff();
}
