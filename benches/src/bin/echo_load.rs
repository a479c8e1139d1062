//! Echo throughput over loopback: a plain tokio echo server written here
//! with no twill code, beside `twill echo` on the tokio, mio and std
//! drivers, all under the same load in the same run; prints MB/s and the
//! ratio to plain tokio.
//!
//! Run: `cd benches && cargo run --release --bin echo_load [CONNS] [MIB_PER_CONN]`

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use twill_basic::echo::Echo;
use twill_core::service::Ignore;
use twill_driver::ServeOptions;

/// The peer: the canonical tokio echo server.
fn plain_tokio() -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(l.local_addr().unwrap()).unwrap();
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
    });
    rx.recv().unwrap()
}

/// `conns` clients each send `bytes` in 64 KiB writes while reading the
/// echo; returns MB/s of echoed bytes.
fn load(addr: SocketAddr, conns: usize, bytes: usize) -> f64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..conns {
            tasks.push(tokio::spawn(async move {
                let s = TcpStream::connect(addr).await.unwrap();
                s.set_nodelay(true).unwrap();
                let (mut r, mut w) = s.into_split();
                let writer = tokio::spawn(async move {
                    let chunk = vec![0x5A_u8; 64 * 1024];
                    let mut sent = 0;
                    while sent < bytes {
                        let n = chunk.len().min(bytes - sent);
                        w.write_all(&chunk[..n]).await.unwrap();
                        sent += n;
                    }
                    w.shutdown().await.unwrap();
                });
                let mut buf = vec![0u8; 64 * 1024];
                let mut got = 0;
                loop {
                    let n = r.read(&mut buf).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    got += n;
                }
                writer.await.unwrap();
                assert_eq!(got, bytes);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        (conns * bytes) as f64 / start.elapsed().as_secs_f64() / 1e6
    })
}

fn best_of(rounds: usize, f: impl Fn() -> f64) -> f64 {
    (0..rounds).map(|_| f()).fold(0.0, f64::max)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let conns: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(32);
    let mib: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(32);
    let bytes = mib << 20;
    let opts = || ServeOptions::factory(vec!["tcp:0:interface=127.0.0.1".parse().unwrap()]);
    let make = || (Echo::new(), Ignore);

    let tokio_addr = plain_tokio();
    let twill_tokio = twill_tokio::spawn(opts(), make).unwrap();
    let twill_mio = twill_mio::spawn(opts(), make).unwrap();
    let twill_std = twill_std::spawn(opts(), make).unwrap();
    std::thread::sleep(Duration::from_millis(200));

    println!("echo: {conns} connections × {mib} MiB each way, best of 3");
    let base = best_of(3, || load(tokio_addr, conns, bytes));
    println!("{:28} {:8.0} MB/s  1.00×", "plain tokio (peer)", base);
    for (name, addr) in [
        ("twill tokio driver", twill_tokio.addr()),
        ("twill mio driver", twill_mio.addr()),
        ("twill std driver", twill_std.addr()),
    ] {
        let r = best_of(3, || load(addr, conns, bytes));
        println!("{name:28} {r:8.0} MB/s  {:.2}×", r / base);
    }
}
