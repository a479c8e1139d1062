//! `twill irc` against real clients: the PyPI `irc` package's clients on
//! every driver, a flood and a client that never reads; our client
//! machine and `twill irc-client` against ngircd.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{args, run_python, DRIVERS};
use twill::cli::Driver;
use twill::irc::server::{start, IrcArgs};
use twill_driver::Running;
use twill_irc::{Server, ServerConfig};

fn serve(driver: Driver, cfg: ServerConfig) -> Running<Server> {
    let a = IrcArgs {
        serve: args(driver, &["tcp:0:interface=127.0.0.1"]),
        name: cfg.name.clone(),
        motd: None,
    };
    start(a, cfg).expect("bind")
}

#[test]
fn python_irc_clients_on_every_driver() {
    for driver in DRIVERS {
        let server = serve(
            driver,
            ServerConfig {
                motd: vec!["welcome to the test".into()],
                ..ServerConfig::default()
            },
        );
        let addr = server.addr();
        let out = run_python(
            "irc_clients.py",
            &[&addr.ip().to_string(), &addr.port().to_string()],
        );
        assert!(out.contains("ok"), "{driver:?}: {out}");
        server.stop();
        server.wait().unwrap();
    }
}

/// A raw line client.
struct Raw {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Raw {
    fn connect(addr: SocketAddr, nick: &str) -> Raw {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut c = Raw {
            w: s.try_clone().unwrap(),
            r: BufReader::new(s),
        };
        c.send(&format!("NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n"));
        c.until(|l| l.contains(" 376 ") || l.contains(" 422 "));
        c
    }

    fn send(&mut self, s: &str) {
        self.w.write_all(s.as_bytes()).unwrap();
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        let n = self.r.read_line(&mut l).expect("a line in time");
        assert!(n > 0, "connection closed");
        l
    }

    fn until(&mut self, mut pred: impl FnMut(&str) -> bool) -> String {
        loop {
            let l = self.line();
            if pred(&l) {
                return l;
            }
        }
    }
}

/// Writes `lines` copies of a PRIVMSG from a thread, as fast as the
/// socket takes them (a throttled writer blocks: TCP pushing back).
fn flood(w: &TcpStream, target: &str, lines: usize, pad: usize) -> std::thread::JoinHandle<()> {
    let mut w = w.try_clone().unwrap();
    let mut all = String::new();
    for i in 0..lines {
        all.push_str(&format!(
            "PRIVMSG {target} :flood {i} {}\r\n",
            "x".repeat(pad)
        ));
    }
    std::thread::spawn(move || {
        w.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
        let _ = w.write_all(all.as_bytes());
    })
}

#[test]
fn a_flooder_is_throttled_and_the_others_keep_talking() {
    for driver in DRIVERS {
        let server = serve(driver, ServerConfig::default());
        let addr = server.addr();
        let mut a = Raw::connect(addr, "alice");
        let mut b = Raw::connect(addr, "bob");
        let mut flooder = Raw::connect(addr, "flooder");
        b.send("JOIN #f\r\n");
        b.until(|l| l.contains(" 366 "));
        flooder.send("JOIN #f\r\n");
        flooder.until(|l| l.contains(" 366 "));
        let t = flood(&flooder.w, "#f", 10_000, 40);
        std::thread::sleep(Duration::from_millis(200));
        // While the flood goes on, alice and bob talk in bounded time.
        let mut flood_lines = 0;
        for i in 0..5 {
            let start = Instant::now();
            a.send(&format!("PRIVMSG bob :ping {i}\r\n"));
            loop {
                let l = b.line();
                if l.contains(&format!("ping {i}")) {
                    break;
                }
                flood_lines += usize::from(l.contains("flood "));
            }
            let took = start.elapsed();
            assert!(
                took < Duration::from_secs(2),
                "{driver:?}: {took:?} for a line"
            );
        }
        // The flood reaches the channel at the throttled rate only.
        b.send("PING :mark\r\n");
        loop {
            let l = b.line();
            if l.contains("PONG") && l.contains("mark") {
                break;
            }
            flood_lines += usize::from(l.contains("flood "));
        }
        assert!(
            (1..200).contains(&flood_lines),
            "{driver:?}: {flood_lines} flood lines relayed so far"
        );
        server.stop();
        server.wait().unwrap();
        let _ = t.join();
    }
}

#[test]
fn a_client_that_never_reads_is_dropped_on_every_driver() {
    for driver in DRIVERS {
        // No throttling here: the point is output volume.
        let server = serve(
            driver,
            ServerConfig {
                max_queued: 256 * 1024,
                flood_burst: 1_000_000,
                ..ServerConfig::default()
            },
        );
        let addr = server.addr();
        let mut b = Raw::connect(addr, "bob");
        // A tiny receive window keeps the kernel from absorbing the flood.
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        sock.set_recv_buffer_size(4096).unwrap();
        sock.connect(&addr.into()).unwrap();
        let deaf: TcpStream = sock.into();
        (&deaf)
            .write_all(b"NICK deaf\r\nUSER d 0 * :d\r\nJOIN #f,#watch\r\n")
            .unwrap();
        let mut flooder = Raw::connect(addr, "flooder");
        flooder.send("JOIN #f\r\n");
        flooder.until(|l| l.contains(" 366 "));
        // bob watches from another channel: he shares #watch with the
        // deaf client but not the flood.
        b.send("JOIN #watch\r\n");
        b.until(|l| l.contains(" 366 "));
        // The server's kernel send buffer to the deaf client grows to
        // tcp_wmem's maximum (4 MiB by default) before our queue does:
        // 20,000 lines of 450 bytes outgrow both.
        let t = flood(&flooder.w, "#f", 20_000, 420);
        let quit = b.until(|l| l.contains("QUIT") && l.starts_with(":deaf!"));
        assert!(quit.contains("SendQ"), "{driver:?}: {quit}");
        // Nobody else stalled.
        let start = Instant::now();
        b.send("PING :after\r\n");
        b.until(|l| l.contains("PONG") && l.contains("after"));
        assert!(start.elapsed() < Duration::from_secs(2), "{driver:?}");
        server.stop();
        server.wait().unwrap();
        let _ = t.join();
        drop(deaf);
    }
}
