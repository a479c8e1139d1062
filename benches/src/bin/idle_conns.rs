//! Resident memory per idle connection on the mio driver: 10,000
//! connections to `twill echo` on one reactor thread, each used once (one
//! byte echoed, so the server holds a machine for it) and then left idle.
//! The client sockets live in the same process, so the figure is an upper
//! bound on the server's share (kernel socket buffers are not resident
//! memory of the process).
//!
//! Run: `cd benches && cargo run --release --bin idle_conns [N]`

use std::io::{Read, Write};
use std::net::TcpStream;

use twill_basic::echo::Echo;
use twill_core::service::Ignore;
use twill_driver::ServeOptions;

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let want = (2 * n + 1024) as u64;
    let (_, hard) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
    nix::sys::resource::setrlimit(
        nix::sys::resource::Resource::RLIMIT_NOFILE,
        want.min(hard),
        hard,
    )
    .expect("raising the open-file limit");

    let mut opts = ServeOptions::factory(vec!["tcp:0:interface=127.0.0.1:backlog=4096"
        .parse()
        .unwrap()]);
    opts.config.max_conns = n + 100;
    let server = twill_mio::spawn(opts, || (Echo::new(), Ignore)).unwrap();
    let addr = server.addr();
    // Warm up allocator arenas and the reactor with a few connections.
    for _ in 0..10 {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"x").unwrap();
        s.read_exact(&mut [0u8; 1]).unwrap();
    }
    let before = rss_kib();
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"x").unwrap();
        conns.push(s);
    }
    for s in &mut conns {
        s.read_exact(&mut [0u8; 1]).unwrap();
    }
    let after = rss_kib();
    let per = (after.saturating_sub(before)) as f64 * 1024.0 / n as f64;
    println!("mio driver: {n} idle connections, RSS {before} KiB -> {after} KiB: {per:.0} bytes per connection (client side included)");
}
