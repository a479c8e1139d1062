//! `twill chargen` paced by its reader: with a client that reads slowly the
//! server's memory stays flat (its pending output is bounded), and a reader
//! that stops altogether is dropped by the idle timeout. The server runs as
//! a separate process so its resident memory can be read from /proc.

use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_chargen(driver: &str) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_twill"))
        .args([
            "chargen",
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--driver",
            driver,
            "--idle-timeout",
            "2",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let port = loop {
        let line = lines
            .next()
            .expect("server exited before listening")
            .unwrap();
        if let Some(rest) = line.split("listening on tcp ").nth(1) {
            break rest.trim().rsplit(':').next().unwrap().parse().unwrap();
        }
    };
    // Keep draining the log so the server never blocks on stderr.
    std::thread::spawn(move || for _ in lines {});
    Server { child, port }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn slow_reader_then_stop(driver: &str) {
    let server = spawn_chargen(driver);
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 1024];
    // Read slowly: 1 KiB every 10 ms, for a while.
    let mut first = Vec::new();
    s.read_exact(&mut buf[..74]).unwrap();
    first.extend_from_slice(&buf[..74]);
    assert_eq!(
        &first[..72],
        &b"!\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefgh"[..]
    );
    assert_eq!(&first[72..], b"\r\n");
    std::thread::sleep(Duration::from_millis(300));
    let baseline = rss_kib(server.child.id());
    for _ in 0..150 {
        s.read_exact(&mut buf).unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
    let later = rss_kib(server.child.id());
    assert!(
        later < baseline + 4096,
        "{driver}: server memory grew from {baseline} KiB to {later} KiB under a slow reader"
    );
    // Stop reading: the idle timeout (2 s) must drop the connection.
    std::thread::sleep(Duration::from_secs(5));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => assert!(
                Instant::now() < deadline,
                "{driver}: still streaming after the idle timeout"
            ),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("{driver}: {e}"),
        }
    }
    assert!(rss_kib(server.child.id()) < baseline + 4096);
}

#[test]
fn chargen_slow_reader_std() {
    slow_reader_then_stop("std");
}

#[test]
fn chargen_slow_reader_mio() {
    slow_reader_then_stop("mio");
}

#[test]
fn chargen_slow_reader_tokio() {
    slow_reader_then_stop("tokio");
}
