//! `twill irc` against real clients: the PyPI `irc` package's clients on
//! every driver, a flood and a client that never reads; our client
//! machine and `twill irc-client` against ngircd.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use std::path::PathBuf;

use common::{args, run_python, DRIVERS};
use twill::cli::Driver;
use twill::irc::server::{start, IrcArgs};
use twill_core::ClientEndpoint;
use twill_driver::Running;
use twill_irc::{Client, ClientConfig, ClientEvent, Server, ServerConfig};

fn serve(driver: Driver, cfg: ServerConfig) -> Running<Server> {
    let a = IrcArgs {
        serve: args(driver, &["tcp:0:interface=127.0.0.1"]),
        name: cfg.name.clone(),
        motd: None,
        flood_burst: cfg.flood_burst,
        flood_interval_ms: cfg.flood_interval.as_millis() as u64,
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

// ------------------------------------------------------------------ ngircd

/// ngircd (Debian's package, installed by scripts/test-all.sh) on a
/// loopback port with a config written for the test; killed on drop.
struct Ngircd {
    child: std::process::Child,
    port: u16,
    _dir: PathBuf,
}

impl Drop for Ngircd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

fn ngircd() -> Ngircd {
    let bin = ["/usr/sbin/ngircd", "/usr/bin/ngircd"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("ngircd is not installed: run scripts/test-all.sh (Debian package ngircd)");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = std::env::temp_dir().join(format!("twill-ngircd-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("ngircd.conf");
    std::fs::write(
        &conf,
        format!(
            "[Global]\n  Name = irc.test\n  Info = twill test\n  Listen = 127.0.0.1\n  Ports = {port}\n  MotdPhrase = \"hello from ngircd\"\n\
             [Options]\n  DNS = no\n  Ident = no\n  PAM = no\n"
        ),
    )
    .unwrap();
    let child = std::process::Command::new(bin)
        .arg("-n")
        .arg("-f")
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting ngircd");
    let n = Ngircd {
        child,
        port,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "ngircd did not start on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    n
}

type IrcConn = twill_tokio::Conn<Client>;

async fn irc_connect(port: u16, nick: &str) -> IrcConn {
    let ep: ClientEndpoint = format!("tcp:127.0.0.1:{port}").parse().unwrap();
    twill_tokio::Conn::connect(&ep, Client::new(ClientConfig::new(nick)))
        .await
        .unwrap()
}

/// The next client event that `pred` picks, within 10 s.
async fn expect_event(
    c: &mut IrcConn,
    what: &str,
    mut pred: impl FnMut(&ClientEvent) -> bool,
) -> ClientEvent {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let ev = tokio::time::timeout_at(deadline, c.next_event())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .unwrap()
            .unwrap_or_else(|| panic!("closed while waiting for {what}"));
        if pred(&ev) {
            return ev;
        }
    }
}

/// Like [`expect_event`] on `c`, while `other` keeps running (its rate
/// limit releases lines on its own timer).
async fn expect_while(
    c: &mut IrcConn,
    other: &mut IrcConn,
    what: &str,
    pred: impl FnMut(&ClientEvent) -> bool,
) -> ClientEvent {
    let pump = async { while let Ok(Some(_)) = other.next_event().await {} };
    tokio::select! {
        e = expect_event(c, what, pred) => e,
        _ = pump => panic!("the other connection ended while waiting for {what}"),
    }
}

fn is_msg(ev: &ClientEvent, cmd: &str, from: &str, last: &str) -> bool {
    matches!(ev, ClientEvent::Message(m) if m.is(cmd)
        && m.source_nick() == Some(from.as_bytes())
        && m.last() == Some(last.as_bytes()))
}

#[test]
fn our_client_machine_against_ngircd() {
    let server = ngircd();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut a = irc_connect(server.port, "alice").await;
        expect_event(&mut a, "welcome", |e| {
            matches!(e, ClientEvent::Registered { .. })
        })
        .await;
        assert!(
            a.machine().caps().contains(&"multi-prefix".to_string()),
            "CAP REQ acked"
        );
        let mut b = irc_connect(server.port, "alice").await;
        let e = expect_event(&mut b, "welcome", |e| {
            matches!(e, ClientEvent::Registered { .. })
        })
        .await;
        assert_eq!(
            e,
            ClientEvent::Registered {
                nick: "alice_".into()
            },
            "nick fallback"
        );
        a.machine().join("#twill", None).unwrap();
        expect_event(
            &mut a,
            "366",
            |e| matches!(e, ClientEvent::Message(m) if m.numeric() == Some(366)),
        )
        .await;
        b.machine().join("#twill", None).unwrap();
        expect_event(
            &mut b,
            "366",
            |e| matches!(e, ClientEvent::Message(m) if m.numeric() == Some(366)),
        )
        .await;
        expect_event(
            &mut a,
            "b's join",
            |e| matches!(e, ClientEvent::Message(m) if m.is("JOIN")),
        )
        .await;
        {
            let m = a.machine();
            let ch = m.channel("#TWILL").expect("tracked");
            let mut members: Vec<String> = ch
                .members
                .values()
                .map(|(n, p)| format!("{p}{n}"))
                .collect();
            members.sort();
            assert_eq!(members, ["@alice", "alice_"]);
            assert_eq!(m.isupport().network(), None);
            assert!(m.isupport().nicklen().is_some(), "005 parsed");
        }
        // Long UTF-8 text arrives whole, split at the limit.
        let long = "ß".repeat(1500);
        a.machine().privmsg("#twill", &long).unwrap();
        // alice's rate limit releases the pieces on her timer: keep her
        // connection running while bob collects them.
        let collect = async {
            let mut got = String::new();
            while got.len() < long.len() {
                let e = expect_event(
                    &mut b,
                    "the long text",
                    |e| matches!(e, ClientEvent::Message(m) if m.is("PRIVMSG")),
                )
                .await;
                let ClientEvent::Message(m) = e else {
                    unreachable!()
                };
                got.push_str(m.param_str(1).expect("each piece is valid UTF-8"));
            }
            got
        };
        let pump = async { while let Ok(Some(_)) = a.next_event().await {} };
        let got = tokio::select! {
            got = collect => got,
            _ = pump => panic!("alice's connection ended"),
        };
        assert_eq!(got, long);
        a.machine().topic("#twill", "ngircd and twill").unwrap();
        expect_while(&mut b, &mut a, "topic", |e| {
            is_msg(e, "TOPIC", "alice", "ngircd and twill")
        })
        .await;
        assert_eq!(
            b.machine().channel("#twill").unwrap().topic.as_deref(),
            Some("ngircd and twill")
        );
        a.machine().raw("KICK #twill alice_ :out").unwrap();
        expect_while(
            &mut b,
            &mut a,
            "kick",
            |e| matches!(e, ClientEvent::Message(m) if m.is("KICK")),
        )
        .await;
        assert!(
            b.machine().channel("#twill").is_none(),
            "we left the channel"
        );
        b.machine().quit("bye").unwrap();
        expect_event(&mut b, "disconnect", |e| *e == ClientEvent::Disconnected).await;
        a.machine().quit("bye").unwrap();
        expect_event(&mut a, "disconnect", |e| *e == ClientEvent::Disconnected).await;
    });
}

#[test]
fn twill_irc_client_against_ngircd() {
    let server = ngircd();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut b = irc_connect(server.port, "bob").await;
        expect_event(&mut b, "welcome", |e| matches!(e, ClientEvent::Registered { .. })).await;
        b.machine().join("#cli", None).unwrap();
        expect_event(&mut b, "366", |e| matches!(e, ClientEvent::Message(m) if m.numeric() == Some(366))).await;
        let mut cli = std::process::Command::new(env!("CARGO_BIN_EXE_twill"))
            .args(["irc-client", &format!("tcp:127.0.0.1:{}", server.port), "--nick", "carol", "--join", "#cli"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        expect_event(&mut b, "carol's join", |e| matches!(e, ClientEvent::Message(m) if m.is("JOIN") && m.source_nick() == Some(b"carol"))).await;
        let mut stdin = cli.stdin.take().unwrap();
        stdin.write_all(b"hello from the command line\n/me waves\n").unwrap();
        stdin.flush().unwrap();
        expect_event(&mut b, "carol's line", |e| is_msg(e, "PRIVMSG", "carol", "hello from the command line")).await;
        expect_event(&mut b, "carol's action", |e| is_msg(e, "PRIVMSG", "carol", "\u{1}ACTION waves\u{1}")).await;
        b.machine().privmsg("#cli", "hi carol").unwrap();
        b.flush().await.unwrap();
        // Give the line time to reach carol before she leaves.
        tokio::time::sleep(Duration::from_millis(500)).await;
        stdin.write_all(b"/quit done here\n").unwrap();
        drop(stdin);
        expect_event(&mut b, "carol's quit", |e| matches!(e, ClientEvent::Message(m) if m.is("QUIT") && m.source_nick() == Some(b"carol"))).await;
        let out = tokio::task::spawn_blocking(move || cli.wait_with_output()).await.unwrap().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("* registered as carol"), "{stdout}");
        assert!(stdout.contains("#cli <bob> hi carol"), "{stdout}");
    });
}

/// `twill irc-client` over `tls:` with `--ca`, against `twill irc` serving
/// an `ssl:` listener beside a plain one: what the TLS user types reaches a
/// plain-TCP user and back, and without the CA the client refuses.
#[test]
fn twill_irc_client_over_tls_with_ca() {
    let c = common::cert("irc-tls", &["localhost", "127.0.0.1"]);
    let ssl = format!(
        "ssl:0:interface=127.0.0.1:privateKey={}:certKey={}",
        c.key, c.cert
    );
    let a = IrcArgs {
        serve: args(Driver::Mio, &[&ssl, "tcp:0:interface=127.0.0.1"]),
        name: "irc.test".into(),
        motd: None,
        flood_burst: 20,
        flood_interval_ms: 200,
    };
    let running = start(a, ServerConfig::default()).expect("bind");
    let ports: Vec<u16> = running
        .local_addrs()
        .iter()
        .filter_map(|a| a.socket_addr())
        .map(|a| a.port())
        .collect();
    let (tls_port, plain_port) = (ports[0], ports[1]);

    // Bob, in plain TCP, joins first.
    let bob = TcpStream::connect(("127.0.0.1", plain_port)).expect("connect");
    bob.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut w = bob.try_clone().expect("clone");
    w.write_all(b"NICK bob\r\nUSER bob 0 * :Bob\r\nJOIN #sec\r\n")
        .expect("register");
    let mut r = BufReader::new(bob);
    let wait_for = |r: &mut BufReader<TcpStream>, needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut line = String::new();
        loop {
            assert!(Instant::now() < deadline, "no {needle:?} in time");
            line.clear();
            let n = r
                .read_line(&mut line)
                .unwrap_or_else(|e| panic!("waiting for {needle:?}: {e}"));
            assert!(n > 0, "server closed before {needle:?}");
            if line.contains(needle) {
                return line.clone();
            }
        }
    };
    wait_for(&mut r, " 366 ");

    let mut cli = std::process::Command::new(env!("CARGO_BIN_EXE_twill"))
        .args(["irc-client", &format!("tls:127.0.0.1:{tls_port}")])
        .args(["--nick", "carol", "--join", "#sec", "--ca", &c.cert])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("twill irc-client");
    wait_for(&mut r, ":carol!");
    let mut stdin = cli.stdin.take().expect("stdin");
    stdin.write_all(b"secret hello\n").expect("line");
    stdin.flush().expect("flush");
    let got = wait_for(&mut r, "PRIVMSG #sec");
    assert!(got.contains(":secret hello"), "{got}");
    w.write_all(b"PRIVMSG #sec :hi carol\r\n").expect("reply");
    std::thread::sleep(Duration::from_millis(500));
    stdin.write_all(b"/quit bye\n").expect("quit");
    drop(stdin);
    wait_for(&mut r, "QUIT");
    let out = cli.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("<bob> hi carol"), "{stdout}");

    // Without the CA, the server is not trusted: a clear failure, no hang.
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_twill"))
        .args(["irc-client", &format!("tls:127.0.0.1:{tls_port}")])
        .args(["--nick", "mallory", "--join", "#sec"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("twill irc-client");
    assert!(!bad.status.success(), "an untrusted server must fail");
    running.stop();
}

#[test]
fn flood_flags_reach_the_server_config() {
    use clap::Parser;
    #[derive(Parser)]
    struct P {
        #[command(flatten)]
        irc: IrcArgs,
    }
    let p = P::try_parse_from(["irc", "--flood-burst", "50", "--flood-interval-ms", "0"]).unwrap();
    let cfg = twill::irc::server::config(&p.irc).unwrap();
    assert_eq!(cfg.flood_burst, 50);
    assert_eq!(cfg.flood_interval, twill_core::Duration::ZERO);
    let p = P::try_parse_from(["irc"]).unwrap();
    let cfg = twill::irc::server::config(&p.irc).unwrap();
    assert_eq!(
        (cfg.flood_burst, cfg.flood_interval),
        (20, twill_core::Duration::from_millis(200))
    );
}
