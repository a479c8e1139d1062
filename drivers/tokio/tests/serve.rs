//! The uniform `spawn` entry point over real sockets: echo over TCP and
//! Unix (concurrent clients, random writes, half-close), UDP echo,
//! multicast, backpressure, idle timeout, the connection cap, timers, a
//! hub with a handle, machine-opened connections and listeners, `Splice`,
//! blocking work, stop.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

use common::{log, notes, wait_for, Log, Note, Stats, TestMachine};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use twill_core::service::{Cx, Handle, Ignore};
use twill_core::{
    Close, ConnId, ListenerId, MulticastOp, Open, OpenError, ServerEndpoint, Service,
};
use twill_driver::{LocalAddr, Mode, Running, ServeOptions};

fn ep(s: &str) -> ServerEndpoint {
    s.parse().unwrap()
}

fn echo_server(opts: ServeOptions) -> (Running<TestMachine>, Log, Arc<Stats>) {
    let (l, stats) = (log(), Arc::new(Stats::default()));
    let (l2, s2) = (l.clone(), stats.clone());
    let running = twill_tokio::spawn(opts, move || {
        (TestMachine::echo(l2.clone(), s2.clone()), Ignore)
    })
    .expect("bind");
    (running, l, stats)
}

/// Sends random-sized pieces of a seeded random message, half-closes, and
/// checks every byte comes back before the server's close.
fn echo_roundtrip<S: Read + Write>(mut s: S, seed: u64, shut: impl FnOnce(&S)) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut msg = vec![0u8; 200_000 + (rng.next_u32() % 100_000) as usize];
    rng.fill_bytes(&mut msg);
    let mut sent = 0;
    while sent < msg.len() {
        let n = (1 + rng.next_u32() as usize % 20_000).min(msg.len() - sent);
        s.write_all(&msg[sent..sent + n]).unwrap();
        sent += n;
    }
    shut(&s);
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    assert_eq!(back.len(), msg.len());
    assert!(back == msg, "echo differs");
}

fn concurrent_echo<S: Read + Write + Send + 'static>(
    connect: impl Fn() -> S + Send + Sync + 'static,
    shut: fn(&S),
) {
    let connect = Arc::new(connect);
    let threads: Vec<_> = (0..6)
        .map(|i| {
            let connect = connect.clone();
            std::thread::spawn(move || {
                let s = connect();
                echo_roundtrip(s, i, shut);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// Six TCP clients echo through the server at `addr` at once and close
/// gracefully; every connection is then reported closed in `log`.
fn tcp_echo_six(addr: SocketAddr, log: &Log) {
    concurrent_echo(
        move || {
            let s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s
        },
        |s| s.shutdown(Shutdown::Write).unwrap(),
    );
    wait_for(5, "six Closed", || {
        let n = notes(log)
            .iter()
            .filter(|n| matches!(n, Note::Closed { .. }))
            .count();
        (n == 6).then_some(())
    });
}

#[test]
fn tcp_echo_factory_and_hub() {
    for mode in [Mode::Factory, Mode::Hub] {
        let mut opts = ServeOptions::factory(vec![ep("tcp:0:interface=127.0.0.1")]);
        opts.mode = mode;
        let (server, log, _) = echo_server(opts);
        let addr = server.addr();
        tcp_echo_six(addr, &log);
        assert!(notes(&log).iter().any(|n| matches!(
            n,
            Note::Accepted {
                listener: ListenerId(1),
                ..
            }
        )));
        server.stop();
        server.wait().unwrap();
        assert!(
            TcpStream::connect(addr).is_err(),
            "{mode:?}: listener closed after stop"
        );
    }
}

#[test]
fn unix_echo() {
    let dir = std::env::temp_dir().join(format!("twill-tokio-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("echo.sock");
    let (server, _, _) = echo_server(ServeOptions::factory(vec![ep(&format!(
        "unix:{}",
        path.display()
    ))]));
    assert_eq!(
        server.local_addrs(),
        &[LocalAddr::Unix(path.display().to_string())]
    );
    let p = path.clone();
    concurrent_echo(
        move || {
            let s = UnixStream::connect(&p).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s
        },
        |s| s.shutdown(Shutdown::Write).unwrap(),
    );
    server.stop();
    server.wait().unwrap();
    assert!(!path.exists(), "socket file removed at stop");
    let _ = std::fs::remove_dir(&dir);
}

#[test]
fn several_endpoints_report_addresses_in_order() {
    let (server, _, _) = echo_server(ServeOptions::factory(vec![
        ep("udp:0:interface=127.0.0.1"),
        ep("tcp:0:interface=127.0.0.1"),
    ]));
    let a = server.local_addrs();
    assert!(matches!(a[0], LocalAddr::Udp(s) if s.port() != 0));
    assert!(matches!(a[1], LocalAddr::Tcp(s) if s.port() != 0));
}

#[test]
fn bind_errors_return_at_once() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let opts = ServeOptions::factory(vec![ep(&format!("tcp:{port}:interface=127.0.0.1"))]);
    let Err(err) = twill_tokio::spawn(opts, || (TestMachine::recorder(log()), Ignore)) else {
        panic!("binding a taken port must fail");
    };
    assert_eq!(err.kind, std::io::ErrorKind::AddrInUse, "{err}");
}

#[test]
fn udp_echo_factory_and_hub() {
    for mode in [Mode::Factory, Mode::Hub] {
        let mut opts = ServeOptions::factory(vec![ep("udp:0:interface=127.0.0.1")]);
        opts.mode = mode;
        let (server, log, _) = echo_server(opts);
        let addr = server.addr();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        for msg in [&b"hello"[..], b"", &[7u8; 1400][..]] {
            client.send_to(msg, addr).unwrap();
            let mut buf = [0u8; 2048];
            let (n, from) = client.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], msg);
            assert_eq!(from, addr);
        }
        assert!(notes(&log).iter().any(|n| matches!(
            n,
            Note::Datagram { dst, .. } if *dst == std::net::IpAddr::from(Ipv4Addr::LOCALHOST)
        )));
        server.stop();
        server.wait().unwrap();
    }
}

#[test]
fn multicast_two_machine_sockets_both_receive() {
    let group: Ipv4Addr = "239.255.77.31".parse().unwrap();
    let (server, log, _) = echo_server(ServeOptions::hub(vec![]));
    let hub = server.hub().unwrap();
    // A free port for both members.
    let port = UdpSocket::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
    for _ in 0..2 {
        hub.call(move |m: &mut TestMachine| {
            let sock = m.open(Open::Bind {
                addr,
                join: vec![group.into()],
            });
            // Joined on loopback too: the test sends there, whatever
            // routes the sandbox has.
            m.multicast(
                sock,
                MulticastOp::Join {
                    group: group.into(),
                    interface: Some(Ipv4Addr::LOCALHOST.into()),
                },
            );
            m.multicast(sock, MulticastOp::Loopback(true));
        })
        .unwrap();
    }
    let socks = wait_for(5, "two sockets opened", || {
        let opened: Vec<ConnId> = notes(&log)
            .iter()
            .filter_map(|n| match n {
                Note::Opened { conn, .. } => Some(*conn),
                Note::OpenFailed { error, .. } => panic!("bind failed: {error}"),
                _ => None,
            })
            .collect();
        (opened.len() == 2).then_some(opened)
    });
    let sender = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    sender.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).unwrap();
    sender.set_multicast_loop_v4(true).unwrap();
    sender
        .bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
        .unwrap();
    let sender: UdpSocket = sender.into();
    sender.send_to(b"to the group", (group, port)).unwrap();
    wait_for(5, "the datagram on both sockets", || {
        let got: Vec<ConnId> = notes(&log)
            .iter()
            .filter_map(|n| match n {
                Note::Datagram { sock, dst, bytes } => {
                    assert_eq!(
                        *dst,
                        std::net::IpAddr::from(group),
                        "destination is the group"
                    );
                    assert_eq!(&bytes[..], b"to the group");
                    Some(*sock)
                }
                _ => None,
            })
            .collect();
        (socks.iter().all(|s| got.contains(s))).then_some(())
    });
}

#[test]
fn backpressure_bounds_what_the_server_holds() {
    let mut opts = ServeOptions::factory(vec![ep("tcp:0:interface=127.0.0.1")]);
    opts.config.high_water = 64 * 1024;
    opts.config.low_water = 16 * 1024;
    let (server, _, stats) = echo_server(opts);
    let s = TcpStream::connect(server.addr()).unwrap();
    s.set_nonblocking(true).unwrap();
    // Write without ever reading until the kernel says no for a while.
    let chunk = vec![1u8; 64 * 1024];
    let mut written = 0usize;
    let mut idle = 0;
    while idle < 40 && written < 200 << 20 {
        match (&s).write(&chunk) {
            Ok(n) => {
                written += n;
                idle = 0;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                idle += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(written < 200 << 20, "the server never pushed back");
    let taken = stats.taken.load(std::sync::atomic::Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        taken,
        stats.taken.load(std::sync::atomic::Ordering::SeqCst),
        "the server stopped reading"
    );
    let max = stats.max_pending.load(std::sync::atomic::Ordering::SeqCst);
    // High water plus at most one read in flight.
    assert!(
        max <= 64 * 1024 + 64 * 1024,
        "server held {max} unflushed bytes"
    );
    // Reading again lets everything through.
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut total = 0;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match (&s).read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(total, written);
}

#[test]
fn idle_connections_are_closed() {
    let mut opts = ServeOptions::factory(vec![ep("tcp:0:interface=127.0.0.1")]);
    opts.config.idle_timeout = Some(Duration::from_millis(150));
    let (server, _, _) = echo_server(opts);
    let mut s = TcpStream::connect(server.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let t = std::time::Instant::now();
    let mut buf = [0u8; 16];
    // Closed by the server (abort: EOF or reset), not by our timeout.
    match s.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("expected the server to close: {other:?}"),
    }
    assert!(t.elapsed() < Duration::from_secs(3));
    assert!(t.elapsed() >= Duration::from_millis(100));
}

#[test]
fn connection_cap_factory_and_hub() {
    for mode in [Mode::Factory, Mode::Hub] {
        let mut opts = ServeOptions::factory(vec![ep("tcp:0:interface=127.0.0.1")]);
        opts.mode = mode;
        opts.config.max_conns = 2;
        let (server, log, _) = echo_server(opts);
        let mut a = TcpStream::connect(server.addr()).unwrap();
        let mut b = TcpStream::connect(server.addr()).unwrap();
        wait_for(5, "two accepted", || {
            let n = notes(&log)
                .iter()
                .filter(|n| matches!(n, Note::Accepted { .. }))
                .count();
            (n == 2).then_some(())
        });
        let mut c = TcpStream::connect(server.addr()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 4];
        let r = c.read(&mut buf);
        assert!(
            matches!(r, Ok(0)) || r.is_err(),
            "{mode:?}: the third connection is closed at once: {r:?}"
        );
        for s in [&mut a, &mut b] {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s.write_all(b"ping").unwrap();
            s.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"ping");
        }
        // A place frees up when one closes.
        drop(a);
        wait_for(5, "a Closed", || {
            notes(&log)
                .iter()
                .any(|n| matches!(n, Note::Closed { .. }))
                .then_some(())
        });
        let mut d = TcpStream::connect(server.addr()).unwrap();
        d.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        d.write_all(b"pong").unwrap();
        d.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"pong");
    }
}

#[test]
fn machine_timers_fire() {
    let l = log();
    let l2 = l.clone();
    let server = twill_tokio::spawn(
        ServeOptions::factory(vec![ep("tcp:0:interface=127.0.0.1")]),
        move || {
            let mut m = TestMachine::echo(l2.clone(), Arc::default());
            m.tick = Some(Duration::from_millis(80));
            (m, Ignore)
        },
    )
    .unwrap();
    let t = std::time::Instant::now();
    let mut s = TcpStream::connect(server.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = String::new();
    s.read_to_string(&mut got).unwrap();
    assert_eq!(got, "tick\n");
    assert!(
        t.elapsed() >= Duration::from_millis(70),
        "{:?}",
        t.elapsed()
    );
    assert!(notes(&l).contains(&Note::Tick));
}

#[test]
fn hub_handle_broadcasts_to_every_connection() {
    let (server, log, _) = echo_server(ServeOptions::hub(vec![ep("tcp:0:interface=127.0.0.1")]));
    let mut clients: Vec<TcpStream> = (0..3)
        .map(|_| {
            let s = TcpStream::connect(server.addr()).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s
        })
        .collect();
    wait_for(5, "three accepted", || {
        let n = notes(&log)
            .iter()
            .filter(|n| matches!(n, Note::Accepted { .. }))
            .count();
        (n == 3).then_some(())
    });
    let hub = server.hub().unwrap();
    // From another thread, as a stdin reader would.
    std::thread::spawn(move || {
        hub.call(|m: &mut TestMachine| m.broadcast(b"news"))
            .unwrap()
    })
    .join()
    .unwrap();
    for c in &mut clients {
        let mut buf = [0u8; 4];
        c.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"news");
    }
    server.stop();
    server.wait().unwrap();
    // Stop aborted the connections.
    for c in &mut clients {
        let mut buf = [0u8; 4];
        let r = c.read(&mut buf);
        assert!(matches!(r, Ok(0)) || r.is_err(), "{r:?}");
    }
}

#[test]
fn machine_opens_connections_and_hears_failures() {
    // A plain peer to connect to.
    let peer = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let peer_port = peer.local_addr().unwrap().port();
    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let l = log();
    let l2 = l.clone();
    let server = twill_tokio::spawn(ServeOptions::hub(vec![]), move || {
        let mut m = TestMachine::recorder(l2.clone());
        m.greeting = Some(bytes::Bytes::from_static(b"hello peer"));
        (m, Ignore)
    })
    .unwrap();
    let hub = server.hub().unwrap();
    hub.call(move |m: &mut TestMachine| {
        m.open(Open::Connect {
            host: "localhost".into(),
            port: peer_port,
            timeout: None,
        });
        m.open(Open::Connect {
            host: "127.0.0.1".into(),
            port: closed_port,
            timeout: None,
        });
        m.open(Open::Connect {
            host: "no-such-host.invalid".into(),
            port: 1,
            timeout: Some(Duration::from_secs(5)),
        });
    })
    .unwrap();
    let (mut s, _) = peer.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 10];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hello peer");
    s.write_all(b"hi machine").unwrap();
    drop(s);
    wait_for(10, "data, eof and two failures", || {
        let n = notes(&l);
        let data: Vec<u8> = n
            .iter()
            .filter_map(|n| match n {
                Note::Data { bytes, .. } => Some(bytes.to_vec()),
                _ => None,
            })
            .flatten()
            .collect();
        let refused = n.iter().any(|n| {
            matches!(
                n,
                Note::OpenFailed {
                    error: OpenError::Refused,
                    ..
                }
            )
        });
        let failures = n
            .iter()
            .filter(|n| matches!(n, Note::OpenFailed { .. }))
            .count();
        let eof = n.iter().any(|n| matches!(n, Note::Eof { .. }));
        (data == b"hi machine" && refused && failures == 2 && eof).then_some(())
    });
}

#[test]
fn machine_opened_listener_accepts_into_the_machine() {
    let (server, log, _) = echo_server(ServeOptions::hub(vec![]));
    let hub = server.hub().unwrap();
    hub.call(|m: &mut TestMachine| {
        m.open(Open::Listen("127.0.0.1:0".parse().unwrap()));
    })
    .unwrap();
    let (id, addr) = wait_for(5, "the listener", || {
        notes(&log).iter().find_map(|n| match n {
            Note::Opened { conn, local } => Some((*conn, local.ip().unwrap())),
            _ => None,
        })
    });
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"through the machine's own listener").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut back = String::new();
    s.read_to_string(&mut back).unwrap();
    assert_eq!(back, "through the machine's own listener");
    assert!(notes(&log)
        .iter()
        .any(|n| matches!(n, Note::Accepted { listener, .. } if listener.0 == id.0)));
    // Closing the listener is answered by Closed.
    hub.call(move |m: &mut TestMachine| m.close(id, Close::Graceful))
        .unwrap();
    wait_for(5, "the listener closed", || {
        notes(&log)
            .contains(&Note::Closed { conn: id })
            .then_some(())
    });
    assert!(TcpStream::connect(addr).is_err());
}

#[test]
fn splice_proxies_both_ways_with_half_close() {
    let (backend, _, _) = echo_server(ServeOptions::factory(vec![ep("tcp:0:interface=127.0.0.1")]));
    let port = backend.addr().port();
    for mode in [Mode::Factory, Mode::Hub] {
        let mut opts = ServeOptions::factory(vec![ep("tcp:0:interface=127.0.0.1")]);
        opts.mode = mode;
        let l = log();
        let l2 = l.clone();
        let proxy = twill_tokio::spawn(opts, move || {
            let mut m = TestMachine::recorder(l2.clone());
            m.proxy_to = Some(("127.0.0.1".into(), port));
            (m, Ignore)
        })
        .unwrap();
        let addr = proxy.addr();
        concurrent_echo(
            move || {
                let s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                s
            },
            |s| s.shutdown(Shutdown::Write).unwrap(),
        );
        // The machine itself never saw the relayed bytes.
        assert!(!notes(&l).iter().any(|n| matches!(n, Note::Data { .. })));
    }
}

/// A service that answers each connection after blocking work.
struct Slow;

impl Service<TestMachine> for Slow {
    type Done = ConnId;

    fn on_event(&mut self, cx: &mut Cx<'_, TestMachine, ConnId>, event: Note) {
        if let Note::Accepted { conn, .. } = event {
            cx.spawn_blocking(move || {
                std::thread::sleep(Duration::from_millis(20));
                conn
            });
        }
    }

    fn on_done(&mut self, cx: &mut Cx<'_, TestMachine, ConnId>, conn: ConnId) {
        cx.machine().send(conn, b"done\n");
        cx.machine().close(conn, Close::Graceful);
    }
}

#[test]
fn blocking_work_comes_back_to_the_machine() {
    let server = twill_tokio::spawn(
        ServeOptions::factory(vec![ep("tcp:0:interface=127.0.0.1")]),
        || (TestMachine::recorder(log()), Slow),
    )
    .unwrap();
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let addr = server.addr();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut got = String::new();
                s.read_to_string(&mut got).unwrap();
                assert_eq!(got, "done\n");
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
}

/// A service that stops the server when a connection arrives.
struct StopOnAccept;

impl Service<TestMachine> for StopOnAccept {
    type Done = ();
    fn on_event(&mut self, cx: &mut Cx<'_, TestMachine, ()>, event: Note) {
        if matches!(event, Note::Accepted { .. }) {
            cx.stop();
        }
    }
}

#[test]
fn a_service_can_stop_the_server() {
    let server = twill_tokio::spawn(
        ServeOptions::factory(vec![ep("tcp:0:interface=127.0.0.1")]),
        || (TestMachine::recorder(log()), StopOnAccept),
    )
    .unwrap();
    let _s = TcpStream::connect(server.addr()).unwrap();
    server.wait().unwrap();
}

/// Serves a file range between in-memory bytes (sendfile on TCP and Unix
/// sockets alike).
struct FileServer(std::path::PathBuf);

impl Service<TestMachine> for FileServer {
    type Done = ();
    fn on_event(&mut self, cx: &mut Cx<'_, TestMachine, ()>, event: Note) {
        if let Note::Accepted { conn, .. } = event {
            let id = cx.add_file(std::fs::File::open(&self.0).unwrap());
            let m = cx.machine();
            m.send(conn, b"head ");
            m.send_file(conn, id, 1000, 300_000);
            m.send(conn, b" tail");
            m.close(conn, Close::Graceful);
        }
    }
}

#[test]
fn file_payloads_go_out_in_order() {
    let dir = std::env::temp_dir().join(format!("twill-tokio-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("data.bin");
    let data: Vec<u8> = (0..400_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&file, &data).unwrap();
    let sock = dir.join("files.sock");
    let f = file.clone();
    let server = twill_tokio::spawn(
        ServeOptions::factory(vec![
            ep("tcp:0:interface=127.0.0.1"),
            ep(&format!("unix:{}", sock.display())),
        ]),
        move || (TestMachine::recorder(log()), FileServer(f.clone())),
    )
    .unwrap();
    let mut expected = b"head ".to_vec();
    expected.extend_from_slice(&data[1000..301_000]);
    expected.extend_from_slice(b" tail");
    let mut got = Vec::new();
    let mut s = TcpStream::connect(server.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.read_to_end(&mut got).unwrap();
    assert!(got == expected, "tcp: {} bytes", got.len());
    let mut got = Vec::new();
    let mut s = UnixStream::connect(&sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.read_to_end(&mut got).unwrap();
    assert!(got == expected, "unix: {} bytes", got.len());
    server.stop();
    server.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn factory_cap_counts_machine_opened_connections() {
    let (backend, _, _) = echo_server(ServeOptions::factory(vec![ep("tcp:0:interface=127.0.0.1")]));
    let port = backend.addr().port();
    let mut opts = ServeOptions::factory(vec![ep("tcp:0:interface=127.0.0.1")]);
    opts.config.max_conns = 2;
    let l = log();
    let l2 = l.clone();
    let proxy = twill_tokio::spawn(opts, move || {
        let mut m = TestMachine::recorder(l2.clone());
        m.proxy_to = Some(("127.0.0.1".into(), port));
        (m, Ignore)
    })
    .unwrap();
    // One proxied client holds both places: its own and the backend's.
    let mut a = TcpStream::connect(proxy.addr()).unwrap();
    a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    a.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    a.read_exact(&mut buf)
        .unwrap_or_else(|e| panic!("{e}: {:?}", notes(&l)));
    assert_eq!(&buf, b"ping");
    let mut b = TcpStream::connect(proxy.addr()).unwrap();
    b.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let r = b.read(&mut buf);
    assert!(
        matches!(r, Ok(0)) || r.is_err(),
        "refused past the cap: {r:?}"
    );
}

/// twill-basic's echo takes short (it stops at its own output budget) and
/// resumes on `Sent`: the driver holds nothing itself and loses nothing.
#[test]
fn short_takes_and_resume_with_twill_basic_echo() {
    use twill_basic::echo::Echo;
    let server = twill_tokio::spawn(
        ServeOptions::factory(vec![ep("tcp:0:interface=127.0.0.1")]),
        || {
            (
                Echo::new().with_budget(twill_core::OutputBudget::new(8 * 1024, 2 * 1024)),
                Ignore,
            )
        },
    )
    .unwrap();
    let addr = server.addr();
    concurrent_echo(
        move || {
            let s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s
        },
        |s| s.shutdown(Shutdown::Write).unwrap(),
    );
}

/// On a current-thread runtime a factory server serves every connection
/// from one task (see `twill_tokio::serve`): each connection must still get
/// a machine of its own, be echoed whole beside the others, and close.
#[test]
fn factory_on_a_current_thread_runtime_gives_each_connection_a_machine() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (l, made) = (log(), Arc::new(std::sync::atomic::AtomicUsize::new(0)));
    let (l2, made2) = (l.clone(), made.clone());
    let opts = ServeOptions::factory(vec![ep("tcp:0:interface=127.0.0.1")]);
    let server = rt
        .block_on(twill_tokio::serve(opts, move || {
            made2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            (TestMachine::echo(l2.clone(), Arc::default()), Ignore)
        }))
        .expect("bind");
    let LocalAddr::Tcp(addr) = server.local_addrs()[0].clone() else {
        panic!("a TCP address");
    };
    let stopper = server.stopper();
    let served = std::thread::spawn(move || rt.block_on(server.run()));
    tcp_echo_six(addr, &l);
    // One machine per connection: each saw exactly one `Accepted`.
    assert_eq!(made.load(std::sync::atomic::Ordering::SeqCst), 6);
    stopper.stop();
    served.join().unwrap().unwrap();
    assert!(
        TcpStream::connect(addr).is_err(),
        "listener closed after stop"
    );
}
