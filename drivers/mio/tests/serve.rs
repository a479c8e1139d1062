//! The uniform entry point (`twill_mio::spawn`) over real sockets: echo over
//! TCP and Unix with half-close, UDP, multicast, backpressure, idle
//! timeout, the connection cap, timers, hub handles, machine-opened
//! connections, listeners and splices, blocking work, and stopping.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::{expect, unix_path, Ev, Pending, Probe, Report, Rng};
use twill_core::service::Ignore;
use twill_core::{Addr, Close, ConnId, Cx, Handle, ListenerId, Open, OpenError, Output, Service};
use twill_driver::{EngineConfig, LocalAddr, ServeOptions};

fn ep(s: &str) -> twill_core::ServerEndpoint {
    s.parse().unwrap()
}

fn factory(eps: &[&str]) -> ServeOptions {
    ServeOptions::factory(eps.iter().map(|s| ep(s)).collect())
}

fn hub(eps: &[&str]) -> ServeOptions {
    ServeOptions::hub(eps.iter().map(|s| ep(s)).collect())
}

/// Writes `data` in random-sized pieces, half-closes, and checks that all
/// of it comes back before the server's close.
fn echo_roundtrip<S: Read + Write + Send + 'static>(
    mut w: S,
    mut r: impl Read,
    seed: u64,
    shutdown: impl FnOnce(&S) + Send + 'static,
) {
    let mut rng = Rng(seed);
    let len = 50_000 + rng.below(150_000) as usize;
    let data = rng.bytes(len);
    let expected = data.clone();
    let writer = std::thread::spawn(move || {
        let mut rng = Rng(seed ^ 0x9e37);
        let mut at = 0;
        while at < data.len() {
            let n = (1 + rng.below(9000) as usize).min(data.len() - at);
            w.write_all(&data[at..at + n]).unwrap();
            at += n;
        }
        shutdown(&w);
        w
    });
    let mut got = Vec::new();
    r.read_to_end(&mut got).unwrap();
    let _w = writer.join().unwrap();
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "echoed bytes differ");
}

#[test]
fn tcp_echo_concurrent_clients_with_half_close() {
    let run = twill_mio::spawn(factory(&["tcp:0:interface=127.0.0.1"]), || {
        (Probe::echo(), Ignore)
    })
    .unwrap();
    let addr = run.addr();
    let clients: Vec<_> = (0..8u64)
        .map(|i| {
            std::thread::spawn(move || {
                let s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let r = s.try_clone().unwrap();
                echo_roundtrip(s, r, i + 1, |s| {
                    s.shutdown(std::net::Shutdown::Write).unwrap()
                });
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    run.stop();
    run.wait().unwrap();
}

#[test]
fn unix_echo_concurrent_clients_with_half_close() {
    let path = unix_path("echo");
    let run = twill_mio::spawn(factory(&[&format!("unix:{path}")]), || {
        (Probe::echo(), Ignore)
    })
    .unwrap();
    assert_eq!(run.local_addrs(), &[LocalAddr::Unix(path.clone())]);
    let clients: Vec<_> = (0..6u64)
        .map(|i| {
            let path = path.clone();
            std::thread::spawn(move || {
                let s = UnixStream::connect(&path).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let r = s.try_clone().unwrap();
                echo_roundtrip(s, r, 100 + i, |s| {
                    s.shutdown(std::net::Shutdown::Write).unwrap()
                });
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    run.stop();
    run.wait().unwrap();
    assert!(
        !std::path::Path::new(&path).exists(),
        "socket file removed on stop"
    );
}

#[test]
fn udp_echo() {
    let run = twill_mio::spawn(factory(&["udp:0:interface=127.0.0.1"]), || {
        (Probe::echo(), Ignore)
    })
    .unwrap();
    let addr = run.addr();
    assert!(matches!(run.local_addrs()[0], LocalAddr::Udp(_)));
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 2048];
    for i in 0..50u32 {
        let msg = format!("datagram {i}").repeat(1 + i as usize % 7);
        c.send_to(msg.as_bytes(), addr).unwrap();
        let (n, from) = c.recv_from(&mut buf).unwrap();
        assert_eq!(from, addr);
        assert_eq!(&buf[..n], msg.as_bytes());
    }
}

#[test]
fn multicast_join_on_loopback_both_sockets_receive() {
    let group: Ipv4Addr = "239.255.42.99".parse().unwrap();
    // First socket: an endpoint joined on the loopback interface.
    let (tx, rx) = mpsc::channel();
    let tx1 = tx.clone();
    let first = twill_mio::spawn(
        hub(&[&format!("udp:0:interface=127.0.0.1:multicast={group}")]),
        move || (Probe::reporting(), Report(tx1.clone())),
    )
    .unwrap();
    let port = first.addr().port();
    // Second socket: opened by a machine with `Bind`, on the same port.
    let tx2 = tx.clone();
    let second =
        twill_mio::spawn(hub(&[]), move || (Probe::reporting(), Report(tx2.clone()))).unwrap();
    let sock = ConnId(twill_core::id::MACHINE_ID_BASE + 7);
    let h = second.hub().unwrap();
    h.call(move |m: &mut Probe| {
        m.push(Output::Open {
            conn: sock,
            how: Open::Bind {
                addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
                join: vec![IpAddr::V4(group)],
            },
        });
        m.push(Output::Multicast {
            sock,
            op: twill_core::MulticastOp::Loopback(true),
        });
    })
    .unwrap();
    expect(&rx, |e| match e {
        Ev::Opened { conn, .. } if *conn == sock => Some(()),
        Ev::OpenFailed(c, e) if *c == sock => panic!("bind failed: {e}"),
        _ => None,
    });

    let sender = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    sender.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).unwrap();
    sender.set_multicast_loop_v4(true).unwrap();
    let sender: UdpSocket = sender.into();
    sender
        .send_to(b"hello group", SocketAddr::new(IpAddr::V4(group), port))
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let s = expect(&rx, |e| match e {
            Ev::Datagram {
                sock, dst, bytes, ..
            } => {
                assert_eq!(bytes, b"hello group");
                assert_eq!(*dst, IpAddr::V4(group), "destination is the group");
                Some(*sock)
            }
            _ => None,
        });
        seen.push(s);
    }
    assert!(
        seen.contains(&sock),
        "the machine-bound socket received it: {seen:?}"
    );
    assert!(
        seen.iter().any(|s| !s.is_machine_chosen()),
        "the endpoint socket received it"
    );
    first.stop();
    second.stop();
}

#[test]
fn backpressure_a_client_that_does_not_read() {
    let pending = Arc::new(Pending::default());
    let p = pending.clone();
    let mut opts = factory(&["tcp:0:interface=127.0.0.1"]);
    opts.config.high_water = 64 * 1024;
    opts.config.low_water = 16 * 1024;
    let run = twill_mio::spawn(opts, move || {
        let mut m = Probe::echo();
        m.pending = Some(p.clone());
        (m, Ignore)
    })
    .unwrap();
    let s = TcpStream::connect(run.addr()).unwrap();
    // Small kernel buffers on our side so the stall shows quickly.
    let sock = socket2::SockRef::from(&s);
    sock.set_recv_buffer_size(32 * 1024).unwrap();
    sock.set_send_buffer_size(32 * 1024).unwrap();
    s.set_nonblocking(true).unwrap();
    let chunk = vec![7u8; 16 * 1024];
    let mut written = 0usize;
    let mut last_progress = Instant::now();
    let start = Instant::now();
    while last_progress.elapsed() < Duration::from_millis(500) {
        match (&s).write(&chunk) {
            Ok(n) => {
                written += n;
                last_progress = Instant::now();
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => panic!("{e}"),
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "writes never stalled"
        );
    }
    let max = pending.max.load(Ordering::SeqCst);
    // The server stopped reading near its high-water mark: its unflushed
    // output never passed the mark by more than one read.
    assert!(
        max <= 64 * 1024 + 64 * 1024,
        "server held {max} bytes unflushed"
    );
    assert!(written < 64 << 20, "the client could write {written} bytes");

    // Reading again drains everything, intact.
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut got = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = (&s).read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        assert!(buf[..n].iter().all(|b| *b == 7));
        got += n;
    }
    assert_eq!(got, written);
}

#[test]
fn idle_timeout_closes_a_silent_connection() {
    let mut opts = factory(&["tcp:0:interface=127.0.0.1"]);
    opts.config.idle_timeout = Some(Duration::from_millis(200));
    let run = twill_mio::spawn(opts, || (Probe::echo(), Ignore)).unwrap();
    let mut s = TcpStream::connect(run.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"x").unwrap();
    let mut b = [0u8; 1];
    s.read_exact(&mut b).unwrap();
    let t = Instant::now();
    let r = s.read(&mut b);
    assert!(matches!(r, Ok(0)) || r.is_err_and(|e| e.kind() == ErrorKind::ConnectionReset));
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(150) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[test]
fn connection_cap_refuses_the_extra_connection() {
    let mut opts = factory(&["tcp:0:interface=127.0.0.1"]);
    opts.config.max_conns = 2;
    let run = twill_mio::spawn(opts, || (Probe::echo(), Ignore)).unwrap();
    let mut keep = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(run.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"ok").unwrap();
        let mut b = [0u8; 2];
        s.read_exact(&mut b).unwrap();
        keep.push(s);
    }
    let mut third = TcpStream::connect(run.addr()).unwrap();
    third
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = third.write_all(b"no");
    let mut b = [0u8; 2];
    let r = third.read(&mut b);
    assert!(
        matches!(r, Ok(0)) || r.is_err(),
        "third connection was served: {r:?}"
    );
    // Closing one makes room.
    drop(keep.pop());
    std::thread::sleep(Duration::from_millis(100));
    let mut s = TcpStream::connect(run.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"ok").unwrap();
    s.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"ok");
}

/// Sets a service timer on every accepted connection and answers it.
struct TimerService;

impl Service<Probe> for TimerService {
    type Done = ();
    fn on_event(&mut self, cx: &mut Cx<'_, Probe, ()>, event: Ev) {
        if let Ev::Accepted { conn, .. } = event {
            let at = cx.now().mono + Duration::from_millis(80);
            cx.call_at(at, conn.0);
            // A cancelled timer never fires.
            cx.call_at(cx.now().mono + Duration::from_millis(40), u64::MAX);
            cx.cancel_timer(u64::MAX);
        }
    }
    fn on_timer(&mut self, cx: &mut Cx<'_, Probe, ()>, token: u64) {
        assert_ne!(token, u64::MAX, "cancelled timer fired");
        cx.machine().send(ConnId(token), b"timer\n");
    }
}

#[test]
fn machine_deadlines_and_service_timers() {
    let run = twill_mio::spawn(factory(&["tcp:0:interface=127.0.0.1"]), || {
        let mut m = Probe::reporting();
        m.tick_after = Some(Duration::from_millis(200));
        (m, TimerService)
    })
    .unwrap();
    let t = Instant::now();
    let mut s = TcpStream::connect(run.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = String::new();
    s.read_to_string(&mut got).unwrap();
    assert_eq!(got, "timer\ntick\n");
    assert!(
        t.elapsed() >= Duration::from_millis(190),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn hub_mode_with_a_handle() {
    let (tx, rx) = mpsc::channel();
    let run = twill_mio::spawn(hub(&["tcp:0:interface=127.0.0.1"]), move || {
        let mut m = Probe::reporting();
        m.greeting = Some(b"hi\n");
        (m, Report(tx.clone()))
    })
    .unwrap();
    let mut clients = Vec::new();
    let mut conns = Vec::new();
    for _ in 0..5 {
        let mut s = TcpStream::connect(run.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut b = [0u8; 3];
        s.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"hi\n");
        clients.push(s);
        conns.push(expect(&rx, |e| match e {
            Ev::Accepted { conn, listener, .. } => {
                assert_eq!(*listener, ListenerId(1));
                Some(*conn)
            }
            _ => None,
        }));
    }
    let h = run.hub().expect("hub handle");
    let cs = conns.clone();
    h.call(move |m: &mut Probe| {
        for c in cs {
            m.send(c, b"broadcast\n");
        }
    })
    .unwrap();
    for s in &mut clients {
        let mut b = [0u8; 10];
        s.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"broadcast\n");
    }
    // Machine-driven close of one client.
    let c0 = conns[0];
    h.call(move |m: &mut Probe| {
        m.push(Output::Close {
            conn: c0,
            how: Close::Graceful,
        })
    })
    .unwrap();
    let mut rest = Vec::new();
    clients[0].read_to_end(&mut rest).unwrap();
    expect(&rx, |e| {
        matches!(e, Ev::Closed(c) if *c == c0).then_some(())
    });
    run.stop();
    run.wait().unwrap();
    assert!(h.call(|_| {}).is_err(), "handle reports the reactor gone");
}

#[test]
fn machine_opens_connections_by_address_and_by_name() {
    let (tx, rx) = mpsc::channel();
    let run = twill_mio::spawn(hub(&[]), move || (Probe::reporting(), Report(tx.clone()))).unwrap();
    let h = run.hub().unwrap();
    let target = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = target.local_addr().unwrap().port();
    for (i, host) in ["127.0.0.1", "localhost"].into_iter().enumerate() {
        let conn = ConnId(twill_core::id::MACHINE_ID_BASE + i as u64);
        let host = host.to_string();
        h.call(move |m: &mut Probe| {
            m.push(Output::Open {
                conn,
                how: Open::Connect {
                    host,
                    port,
                    timeout: None,
                },
            })
        })
        .unwrap();
        let (mut s, _) = target.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let peer = expect(&rx, |e| match e {
            Ev::Opened { conn: c, peer, .. } if *c == conn => Some(peer.clone()),
            Ev::OpenFailed(c, e) if *c == conn => panic!("open failed: {e}"),
            _ => None,
        });
        assert_eq!(peer.ip().unwrap().port(), port);
        h.call(move |m: &mut Probe| m.send(conn, b"hello")).unwrap();
        let mut b = [0u8; 5];
        s.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"hello");
        s.write_all(b"back").unwrap();
        let back = expect(&rx, |e| match e {
            Ev::Data { conn: c, bytes } if *c == conn => Some(bytes.clone()),
            _ => None,
        });
        assert_eq!(back, b"back");
        drop(s);
        expect(&rx, |e| matches!(e, Ev::Eof(c) if *c == conn).then_some(()));
    }
    // Refused, and a name that does not resolve.
    drop(target);
    let bad = ConnId(twill_core::id::MACHINE_ID_BASE + 10);
    let unknown = ConnId(twill_core::id::MACHINE_ID_BASE + 11);
    h.call(move |m: &mut Probe| {
        m.push(Output::Open {
            conn: bad,
            how: Open::Connect {
                host: "127.0.0.1".into(),
                port,
                timeout: None,
            },
        });
        m.push(Output::Open {
            conn: unknown,
            how: Open::Connect {
                host: "no-such-host.invalid".into(),
                port: 80,
                timeout: None,
            },
        });
    })
    .unwrap();
    let mut failed = Vec::new();
    while failed.len() < 2 {
        failed.push(expect(&rx, |e| match e {
            Ev::OpenFailed(c, e) => Some((*c, e.clone())),
            _ => None,
        }));
    }
    failed.sort_by_key(|f| f.0);
    assert_eq!(failed[0], (bad, OpenError::Refused));
    assert_eq!(failed[1].0, unknown);
}

#[test]
fn machine_opens_a_listener() {
    let (tx, rx) = mpsc::channel();
    let run = twill_mio::spawn(hub(&[]), move || {
        let mut m = Probe::reporting();
        m.echo = true;
        (m, Report(tx.clone()))
    })
    .unwrap();
    let l = ConnId(twill_core::id::MACHINE_ID_BASE + 1);
    run.hub()
        .unwrap()
        .call(move |m: &mut Probe| {
            m.push(Output::Open {
                conn: l,
                how: Open::Listen("127.0.0.1:0".parse().unwrap()),
            })
        })
        .unwrap();
    let addr = expect(&rx, |e| match e {
        Ev::Opened { conn, local, .. } if *conn == l => local.ip(),
        _ => None,
    });
    assert_ne!(addr.port(), 0);
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let listener = expect(&rx, |e| match e {
        Ev::Accepted { listener, .. } => Some(*listener),
        _ => None,
    });
    assert_eq!(listener, ListenerId(l.0));
    s.write_all(b"via machine listener").unwrap();
    let mut b = [0u8; 20];
    s.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"via machine listener");
}

#[test]
fn splice_relays_both_ways() {
    // The backend: uppercases what it reads, until EOF.
    let backend = TcpListener::bind("127.0.0.1:0").unwrap();
    let bport = backend.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (mut s, _) = backend.accept().unwrap();
        let mut buf = [0u8; 4096];
        loop {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            s.write_all(&buf[..n].to_ascii_uppercase()).unwrap();
        }
    });
    let (tx, rx) = mpsc::channel();
    let run = twill_mio::spawn(hub(&["tcp:0:interface=127.0.0.1"]), move || {
        (Probe::reporting(), Report(tx.clone()))
    })
    .unwrap();
    let h = run.hub().unwrap();
    let mut client = TcpStream::connect(run.addr()).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let a = expect(&rx, |e| match e {
        Ev::Accepted { conn, .. } => Some(*conn),
        _ => None,
    });
    let b = ConnId(twill_core::id::MACHINE_ID_BASE + 1);
    h.call(move |m: &mut Probe| {
        m.push(Output::Open {
            conn: b,
            how: Open::Connect {
                host: "127.0.0.1".into(),
                port: bport,
                timeout: None,
            },
        })
    })
    .unwrap();
    expect(&rx, |e| {
        matches!(e, Ev::Opened { conn, .. } if *conn == b).then_some(())
    });
    h.call(move |m: &mut Probe| m.push(Output::Splice { a, b }))
        .unwrap();
    // Calls run in order: once this one ran, the splice is in place.
    let (stx, srx) = mpsc::channel();
    h.call(move |_: &mut Probe| stx.send(()).unwrap()).unwrap();
    srx.recv().unwrap();
    let msg = b"spliced bytes go through".repeat(1000);
    client.write_all(&msg).unwrap();
    let mut got = vec![0u8; msg.len()];
    client.read_exact(&mut got).unwrap();
    assert_eq!(got, msg.to_ascii_uppercase());
    // The client half-closes: the backend sees EOF and closes, so the
    // relay ends and both ids close.
    client.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    let mut closed = Vec::new();
    while closed.len() < 2 {
        closed.push(expect(&rx, |e| match e {
            Ev::Closed(c) => Some(*c),
            _ => None,
        }));
    }
    closed.sort();
    assert_eq!(closed, vec![a, b]);
}

/// Hashes "passwords" on the pool and answers on the reactor thread.
struct Blocking {
    tx: mpsc::Sender<(std::thread::ThreadId, std::thread::ThreadId)>,
    event_thread: Option<std::thread::ThreadId>,
}

impl Service<Probe> for Blocking {
    type Done = (ConnId, std::thread::ThreadId, usize);
    fn on_event(&mut self, cx: &mut Cx<'_, Probe, Self::Done>, event: Ev) {
        self.event_thread = Some(std::thread::current().id());
        if let Ev::Data { conn, bytes } = event {
            cx.spawn_blocking(move || {
                std::thread::sleep(Duration::from_millis(20));
                (conn, std::thread::current().id(), bytes.len())
            });
        }
    }
    fn on_done(&mut self, cx: &mut Cx<'_, Probe, Self::Done>, (conn, worker, n): Self::Done) {
        let here = std::thread::current().id();
        assert_eq!(
            Some(here),
            self.event_thread,
            "on_done on the reactor thread"
        );
        let _ = self.tx.send((here, worker));
        cx.machine().send(conn, format!("done {n}\n").as_bytes());
    }
}

#[test]
fn spawn_blocking_runs_on_the_pool_and_returns_to_the_reactor() {
    let (tx, rx) = mpsc::channel();
    let run = twill_mio::spawn(factory(&["tcp:0:interface=127.0.0.1"]), move || {
        let m = Probe::reporting();
        (
            m,
            Blocking {
                tx: tx.clone(),
                event_thread: None,
            },
        )
    })
    .unwrap();
    let mut s = TcpStream::connect(run.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"secret").unwrap();
    let mut b = [0u8; 7];
    s.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"done 6\n");
    let (reactor, worker) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_ne!(reactor, worker);
}

#[test]
fn stop_closes_listeners_and_aborts_connections() {
    let run = twill_mio::spawn(factory(&["tcp:0:interface=127.0.0.1"]), || {
        (Probe::echo(), Ignore)
    })
    .unwrap();
    let addr = run.addr();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"a").unwrap();
    let mut b = [0u8; 1];
    s.read_exact(&mut b).unwrap();
    let stopper = run.stopper();
    std::thread::spawn(move || stopper()).join().unwrap();
    run.wait().unwrap();
    let r = s.read(&mut b);
    assert!(matches!(r, Ok(0)) || r.is_err());
    assert!(TcpStream::connect(addr).is_err(), "listener closed");
}

/// Stops the server on the first byte.
struct Stopper;

impl Service<Probe> for Stopper {
    type Done = ();
    fn on_event(&mut self, cx: &mut Cx<'_, Probe, ()>, event: Ev) {
        if matches!(event, Ev::Data { .. }) {
            cx.stop();
        }
    }
}

#[test]
fn a_service_can_stop_the_server() {
    let run = twill_mio::spawn(factory(&["tcp:0:interface=127.0.0.1"]), || {
        (Probe::reporting(), Stopper)
    })
    .unwrap();
    let mut s = TcpStream::connect(run.addr()).unwrap();
    s.write_all(b"stop").unwrap();
    run.wait().unwrap();
}

#[test]
fn bind_errors_are_reported() {
    let first = twill_mio::spawn(factory(&["tcp:0:interface=127.0.0.1"]), || {
        (Probe::echo(), Ignore)
    })
    .unwrap();
    let port = first.addr().port();
    let e = twill_mio::spawn(
        factory(&[
            "tcp:0:interface=127.0.0.1",
            &format!("tcp:{port}:interface=127.0.0.1"),
        ]),
        || (Probe::echo(), Ignore),
    )
    .err()
    .expect("second bind fails");
    assert_eq!(e.kind, ErrorKind::AddrInUse);
}

#[test]
fn several_endpoints_report_their_addresses_in_order() {
    let path = unix_path("multi");
    let run = twill_mio::spawn(
        factory(&[
            "udp:0:interface=127.0.0.1",
            "tcp:0:interface=127.0.0.1",
            &format!("unix:{path}"),
        ]),
        || (Probe::echo(), Ignore),
    )
    .unwrap();
    let a = run.local_addrs();
    assert!(matches!(a[0], LocalAddr::Udp(s) if s.port() != 0));
    assert!(matches!(a[1], LocalAddr::Tcp(s) if s.port() != 0));
    assert_eq!(a[2], LocalAddr::Unix(path));
    let mut s = TcpStream::connect(a[1].socket_addr().unwrap()).unwrap();
    s.write_all(b"tcp").unwrap();
    let mut b = [0u8; 3];
    s.read_exact(&mut b).unwrap();
    let _ = EngineConfig::default();
    let _ = Addr::Unknown;
}

/// Sends a range of a registered file on every accepted connection.
struct FileSender(std::path::PathBuf);

impl Service<Probe> for FileSender {
    type Done = ();
    fn on_event(&mut self, cx: &mut Cx<'_, Probe, ()>, event: Ev) {
        if let Ev::Accepted { conn, .. } = event {
            let id = cx.add_file(std::fs::File::open(&self.0).unwrap());
            cx.machine().send(conn, b"head:");
            cx.machine().push(Output::Transmit {
                conn,
                payload: twill_core::Payload::File {
                    id,
                    offset: 1000,
                    len: 1_500_000,
                },
            });
            cx.machine().send(conn, b":tail");
            cx.machine().push(Output::Close {
                conn,
                how: Close::Graceful,
            });
        }
    }
}

#[test]
fn file_payloads_go_out_with_sendfile() {
    let path = std::env::temp_dir().join(format!("twill-mio-{}-file.bin", std::process::id()));
    let data = Rng(5).bytes(2_000_000);
    std::fs::write(&path, &data).unwrap();
    let p = path.clone();
    let run = twill_mio::spawn(factory(&["tcp:0:interface=127.0.0.1"]), move || {
        (Probe::reporting(), FileSender(p.clone()))
    })
    .unwrap();
    let mut s = TcpStream::connect(run.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    let mut want = b"head:".to_vec();
    want.extend_from_slice(&data[1000..1_501_000]);
    want.extend_from_slice(b":tail");
    assert_eq!(got.len(), want.len());
    assert!(got == want);
    let _ = std::fs::remove_file(path);
}

#[test]
fn a_short_take_pauses_reading_until_resume() {
    let (tx, rx) = mpsc::channel();
    let run = twill_mio::spawn(hub(&["tcp:0:interface=127.0.0.1"]), move || {
        let mut m = Probe::echo();
        m.hold = true;
        m.report = true;
        (m, Report(tx.clone()))
    })
    .unwrap();
    let s = TcpStream::connect(run.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // A fixed small send buffer: what we write beyond it and the server's
    // receive window must wait for the server to read.
    socket2::SockRef::from(&s)
        .set_send_buffer_size(64 * 1024)
        .unwrap();
    let data = Rng(77).bytes(3_000_000);
    let mut w = s.try_clone().unwrap();
    let d = data.clone();
    let writer = std::thread::spawn(move || {
        w.write_all(&d).unwrap();
        w.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let conn = expect(&rx, |e| match e {
        Ev::Data { conn, .. } => Some(*conn),
        _ => None,
    });
    // Held: the writer stalls (kernel buffers fill) and nothing comes back.
    std::thread::sleep(Duration::from_millis(300));
    assert!(!writer.is_finished(), "the server kept reading while held");
    run.hub()
        .unwrap()
        .call(move |m: &mut Probe| {
            m.hold = false;
            m.report = false;
            m.push(Output::Resume { conn });
        })
        .unwrap();
    let mut got = Vec::new();
    (&s).read_to_end(&mut got).unwrap();
    writer.join().unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data);
}
