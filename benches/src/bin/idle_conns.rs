//! Resident memory per idle connection on the mio driver: `twill echo` on
//! one reactor thread in a child process, 10,000 connections from this
//! process, each used once (one byte echoed, so the server holds a machine
//! for it) and then left idle. The server's resident memory is read from
//! /proc before and after; kernel socket buffers are not part of it.
//!
//! With `http` the server is twill-http's hello handler instead, and each
//! connection makes one keep-alive request first: the memory of an idle
//! keep-alive connection.
//!
//! Run: `cd benches && cargo run --release --bin idle_conns [N] [echo|http]`

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

fn server(n: usize, http: bool) {
    raise_nofile(n as u64 + 1024);
    let mut opts = ServeOptions::factory(vec!["tcp:0:interface=127.0.0.1:backlog=4096"
        .parse()
        .unwrap()]);
    opts.config.max_conns = n + 100;
    // The servers run until the process ends.
    let addr = if http {
        use twill_http::app::{demo::Hello, App};
        use twill_http::{Server, ServerConfig};
        let cfg = ServerConfig {
            idle_timeout: std::time::Duration::from_secs(3600),
            ..ServerConfig::default()
        };
        let s = twill_mio::spawn(opts, move || {
            (Server::new(cfg.clone()), App::new(Hello::new()))
        })
        .unwrap();
        let a = s.addr();
        std::mem::forget(s);
        a
    } else {
        let s = twill_mio::spawn(opts, || (Echo::new(), Ignore)).unwrap();
        let a = s.addr();
        std::mem::forget(s);
        a
    };
    println!("{addr}");
    // Serve until the parent closes our stdin.
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

fn main() {
    let mut args = std::env::args().skip(1);
    let first = args.next();
    if first.as_deref() == Some("--server") {
        let n = args.next().and_then(|a| a.parse().ok()).unwrap();
        let http = args.next().as_deref() == Some("http");
        return server(n, http);
    }
    let n: usize = first.and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let http = args.next().as_deref() == Some("http");
    let kind = if http { "http" } else { "echo" };
    raise_nofile(n as u64 + 1024);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--server", &n.to_string(), kind])
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
    let (ask, answer_len): (&[u8], usize) = if http {
        let ask: &[u8] = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n";
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(ask).unwrap();
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).unwrap();
        (ask, n)
    } else {
        (b"x", 1)
    };
    // Warm up allocator arenas and the reactor with a few connections.
    for _ in 0..10 {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(ask).unwrap();
        s.read_exact(&mut vec![0u8; answer_len]).unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let before = rss_kib(pid);
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(ask).unwrap();
        conns.push(s);
    }
    let mut answer = vec![0u8; answer_len];
    for s in &mut conns {
        s.read_exact(&mut answer).unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let after = rss_kib(pid);
    let per = after.saturating_sub(before) as f64 * 1024.0 / n as f64;
    println!(
        "mio driver, {kind}: {n} idle connections on one reactor thread: server RSS {before} KiB -> {after} KiB = {per:.0} bytes per connection"
    );
    drop(child.stdin.take());
    let _ = child.wait();
}
