//! Resident memory per idle connection on the mio driver: `twill echo` on
//! one reactor thread in a child process, 10,000 connections from this
//! process, each used once (one byte echoed, so the server holds a machine
//! for it) and then left idle. The server's resident memory is read from
//! /proc before and after; kernel socket buffers are not part of it.
//!
//! Run: `cd benches && cargo run --release --bin idle_conns [N]`

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use twill_basic::echo::Echo;
use twill_core::service::Ignore;
use twill_driver::ServeOptions;

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn raise_nofile(want: u64) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, want.min(hard), hard).expect("raising the open-file limit");
}

fn server(n: usize) {
    raise_nofile(n as u64 + 1024);
    let mut opts = ServeOptions::factory(vec!["tcp:0:interface=127.0.0.1:backlog=4096"
        .parse()
        .unwrap()]);
    opts.config.max_conns = n + 100;
    let server = twill_mio::spawn(opts, || (Echo::new(), Ignore)).unwrap();
    println!("{}", server.addr());
    // Serve until the parent closes our stdin.
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

fn main() {
    let mut args = std::env::args().skip(1);
    let first = args.next();
    if first.as_deref() == Some("--server") {
        let n = args.next().and_then(|a| a.parse().ok()).unwrap();
        return server(n);
    }
    let n: usize = first.and_then(|a| a.parse().ok()).unwrap_or(10_000);
    raise_nofile(n as u64 + 1024);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--server", &n.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: std::net::SocketAddr = line.trim().parse().unwrap();
    let pid = child.id();
    // Warm up allocator arenas and the reactor with a few connections.
    for _ in 0..10 {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"x").unwrap();
        s.read_exact(&mut [0u8; 1]).unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let before = rss_kib(pid);
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"x").unwrap();
        conns.push(s);
    }
    for s in &mut conns {
        s.read_exact(&mut [0u8; 1]).unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let after = rss_kib(pid);
    let per = after.saturating_sub(before) as f64 * 1024.0 / n as f64;
    println!(
        "mio driver: {n} idle connections on one reactor thread: server RSS {before} KiB -> {after} KiB = {per:.0} bytes per connection"
    );
    drop(child.stdin.take());
    let _ = child.wait();
}
