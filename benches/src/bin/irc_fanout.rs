//! IRC fan-out over loopback: CLIENTS connections register and join one
//! channel; SENDERS of them then send MESSAGES lines each to it, and every
//! client counts the PRIVMSGs that reach it (a sender does not get its
//! own back). Prints deliveries per second and the time from the first
//! line sent until the last delivery. The same bin measures any server
//! (`twill irc` on each driver, ngircd), so the load is the same.
//!
//! At most WINDOW messages are in flight (sent and not yet delivered to
//! every other member), so no server has to hold more than WINDOW lines
//! for a receiver: a server's send-queue limit is not what is measured.
//!
//! Run: `cd benches && cargo run --release --bin irc_fanout ADDR
//! [CLIENTS] [SENDERS] [MESSAGES] [WINDOW]` (benches/irc_fanout.sh runs
//! it against each server).

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// Counters shared by the client tasks (one thread: `Cell` is enough).
struct Shared {
    joined: Cell<usize>,
    delivered: Cell<u64>,
    sent: Cell<u64>,
    /// When the last expected delivery arrived.
    done_at: Cell<Option<Instant>>,
    expected: Cell<u64>,
    /// Wakes senders waiting for the window and the main task.
    progress: Notify,
    go: Notify,
    /// Connections being set up at once: ngircd listens with a backlog
    /// of 10 and resets what overflows it.
    connecting: tokio::sync::Semaphore,
}

struct Params {
    addr: SocketAddr,
    clients: usize,
    senders: usize,
    messages: usize,
    window: u64,
}

/// Reads lines from `r` into `buf` (keeping a partial tail) and returns
/// the complete lines' bytes range; answers PINGs on `w`.
async fn read_lines(
    r: &mut tokio::net::tcp::OwnedReadHalf,
    w: &mut tokio::net::tcp::OwnedWriteHalf,
    buf: &mut Vec<u8>,
    mut on_line: impl FnMut(&[u8]) -> bool,
) -> std::io::Result<bool> {
    let mut chunk = [0u8; 64 * 1024];
    loop {
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "server closed the connection",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut start = 0;
        let mut stop = false;
        let mut pongs = Vec::new();
        while let Some(i) = memchr::memchr(b'\n', &buf[start..]) {
            let line = &buf[start..start + i];
            start += i + 1;
            if line.starts_with(b"PING ") {
                pongs.extend_from_slice(b"PONG ");
                pongs.extend_from_slice(&line[5..]);
                pongs.extend_from_slice(b"\n");
                continue;
            }
            if on_line(line) {
                stop = true;
            }
        }
        buf.drain(..start);
        if !pongs.is_empty() {
            w.write_all(&pongs).await?;
        }
        if stop {
            return Ok(true);
        }
    }
}

fn has(line: &[u8], what: &[u8]) -> bool {
    memchr::memmem::find(line, what).is_some()
}

async fn client(i: usize, p: Rc<Params>, sh: Rc<Shared>) -> std::io::Result<()> {
    let permit = sh.connecting.acquire().await.expect("never closed");
    let s = TcpStream::connect(p.addr).await?;
    s.set_nodelay(true)?;
    let (mut r, mut w) = s.into_split();
    let nick = format!("u{i}");
    w.write_all(format!("NICK {nick}\r\nUSER {nick} 0 * :fanout\r\n").as_bytes())
        .await?;
    let mut buf = Vec::new();
    // Registered once the MOTD (or its absence) is through.
    read_lines(&mut r, &mut w, &mut buf, |l| {
        has(l, b" 376 ") || has(l, b" 422 ")
    })
    .await?;
    drop(permit);
    w.write_all(b"JOIN #bench\r\n").await?;
    read_lines(&mut r, &mut w, &mut buf, |l| has(l, b" 366 ")).await?;
    sh.joined.set(sh.joined.get() + 1);
    sh.progress.notify_waiters();
    if i < p.senders {
        let writer_sh = sh.clone();
        let writer_p = p.clone();
        // The sender half: waits for the start, then sends within the
        // window; the reader half below keeps counting.
        let reader = tokio::task::spawn_local(count(r, buf, sh.clone(), p.clone()));
        writer_sh.go.notified().await;
        let pad = "x".repeat(32);
        for m in 0..writer_p.messages {
            loop {
                let members = (writer_p.clients - 1) as u64;
                let in_flight = writer_sh.sent.get() - writer_sh.delivered.get() / members;
                if in_flight < writer_p.window {
                    break;
                }
                writer_sh.progress.notified().await;
            }
            writer_sh.sent.set(writer_sh.sent.get() + 1);
            w.write_all(format!("PRIVMSG #bench :m{i}.{m} {pad}\r\n").as_bytes())
                .await?;
        }
        // Keep the write half open until the end.
        let _ = reader.await;
        drop(w);
        Ok(())
    } else {
        let _w = w;
        count(r, buf, sh, p).await
    }
}

/// Counts PRIVMSG lines until every expected delivery has arrived.
async fn count(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut buf: Vec<u8>,
    sh: Rc<Shared>,
    _p: Rc<Params>,
) -> std::io::Result<()> {
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            if sh.done_at.get().is_some() {
                return Ok(());
            }
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "server closed a receiver",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut start = 0;
        let mut got = 0u64;
        while let Some(i) = memchr::memchr(b'\n', &buf[start..]) {
            if has(&buf[start..start + i], b" PRIVMSG #bench :m") {
                got += 1;
            }
            start += i + 1;
        }
        buf.drain(..start);
        if got > 0 {
            let d = sh.delivered.get() + got;
            sh.delivered.set(d);
            if d >= sh.expected.get() && sh.expected.get() > 0 && sh.done_at.get().is_none() {
                sh.done_at.set(Some(Instant::now()));
            }
            sh.progress.notify_waiters();
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(addr) = args.get(1).and_then(|a| a.parse().ok()) else {
        eprintln!("usage: irc_fanout ADDR [CLIENTS] [SENDERS] [MESSAGES] [WINDOW]");
        std::process::exit(2);
    };
    let num = |i: usize, d: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let p = Rc::new(Params {
        addr,
        clients: num(2, 1000),
        senders: num(3, 10),
        messages: num(4, 100),
        window: num(5, 50) as u64,
    });
    let sh = Rc::new(Shared {
        joined: Cell::new(0),
        delivered: Cell::new(0),
        sent: Cell::new(0),
        done_at: Cell::new(None),
        expected: Cell::new(0),
        progress: Notify::new(),
        go: Notify::new(),
        connecting: tokio::sync::Semaphore::new(8),
    });
    let expected = (p.senders * p.messages * (p.clients - 1)) as u64;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let setup = Instant::now();
        let mut tasks = Vec::new();
        for i in 0..p.clients {
            tasks.push(tokio::task::spawn_local(client(i, p.clone(), sh.clone())));
        }
        while sh.joined.get() < p.clients {
            if tasks.iter().any(|t| t.is_finished()) {
                for t in tasks {
                    if t.is_finished() {
                        if let Ok(Err(e)) = t.await {
                            eprintln!("a client failed during setup: {e}");
                        }
                    }
                }
                std::process::exit(1);
            }
            tokio::select! {
                _ = sh.progress.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
        let setup = setup.elapsed();
        // Let the tail of the JOIN fan-out drain before the clock starts.
        tokio::time::sleep(Duration::from_millis(500)).await;
        sh.expected.set(expected);
        let start = Instant::now();
        sh.go.notify_waiters();
        let deadline = start + Duration::from_secs(300);
        while sh.done_at.get().is_none() {
            if Instant::now() > deadline {
                eprintln!(
                    "timed out: {} of {expected} delivered",
                    sh.delivered.get()
                );
                std::process::exit(1);
            }
            if tasks.iter().any(|t| t.is_finished()) {
                eprintln!(
                    "a client ended early ({} of {expected} delivered)",
                    sh.delivered.get()
                );
                for t in tasks {
                    if t.is_finished() {
                        if let Ok(Err(e)) = t.await {
                            eprintln!("  {e}");
                        }
                    }
                }
                std::process::exit(1);
            }
            tokio::select! {
                _ = sh.progress.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
        let took = sh.done_at.get().unwrap_or_else(Instant::now) - start;
        let rate = expected as f64 / took.as_secs_f64();
        println!(
            "{:>9.0} deliveries/s  all {} delivered in {:>6.3} s  ({} clients, {} senders x {} msgs, window {}, setup {:.1} s)",
            rate,
            expected,
            took.as_secs_f64(),
            p.clients,
            p.senders,
            p.messages,
            p.window,
            setup.as_secs_f64()
        );
    });
}
