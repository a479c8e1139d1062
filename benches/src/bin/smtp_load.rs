//! Messages per second delivered over loopback SMTP, the same load for
//! every server: C connections in parallel, each EHLO then M messages of
//! S bytes in lock-step (MAIL, RCPT, DATA, body, `.`; no pipelining, which
//! not every peer offers), then QUIT. Every message must get a 250.
//!
//! `cargo run --release --bin smtp_load -- HOST:PORT C M S RCPT`

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Instant;

fn reply(r: &mut BufReader<TcpStream>) -> u16 {
    let mut line = String::new();
    loop {
        line.clear();
        assert!(r.read_line(&mut line).expect("read") > 0, "server closed");
        if line.as_bytes().get(3) != Some(&b'-') {
            return line[..3].parse().expect("reply code");
        }
    }
}

fn session(addr: &str, m: usize, body: &[u8], rcpt: &str) {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let mut w = s.try_clone().expect("clone");
    let mut r = BufReader::new(s);
    assert_eq!(reply(&mut r), 220);
    w.write_all(b"EHLO load.example\r\n").unwrap();
    assert_eq!(reply(&mut r), 250);
    for _ in 0..m {
        w.write_all(b"MAIL FROM:<load@example.org>\r\n").unwrap();
        assert_eq!(reply(&mut r), 250);
        w.write_all(format!("RCPT TO:<{rcpt}>\r\n").as_bytes())
            .unwrap();
        assert_eq!(reply(&mut r), 250);
        w.write_all(b"DATA\r\n").unwrap();
        assert_eq!(reply(&mut r), 354);
        w.write_all(body).unwrap();
        w.write_all(b".\r\n").unwrap();
        assert_eq!(reply(&mut r), 250, "message not accepted");
    }
    w.write_all(b"QUIT\r\n").unwrap();
    let _ = reply(&mut r);
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let addr = a.get(1).cloned().unwrap_or_else(|| "127.0.0.1:2525".into());
    let c: usize = a.get(2).map_or(8, |x| x.parse().unwrap());
    let m: usize = a.get(3).map_or(200, |x| x.parse().unwrap());
    let size: usize = a.get(4).map_or(2048, |x| x.parse().unwrap());
    let rcpt = a.get(5).cloned().unwrap_or_else(|| "load@localhost".into());
    let mut body = b"Subject: load\r\n\r\n".to_vec();
    while body.len() + 72 <= size {
        body.extend_from_slice(&[b'x'; 70]);
        body.extend_from_slice(b"\r\n");
    }
    let start = Instant::now();
    let threads: Vec<_> = (0..c)
        .map(|_| {
            let (addr, body, rcpt) = (addr.clone(), body.clone(), rcpt.clone());
            std::thread::spawn(move || session(&addr, m, &body, &rcpt))
        })
        .collect();
    for t in threads {
        t.join().expect("a session failed");
    }
    let secs = start.elapsed().as_secs_f64();
    let n = c * m;
    println!("{n} messages in {secs:.2} s: {:.0} msgs/s", n as f64 / secs);
}
