//! The std driver's server against plain std sockets.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{expect, unix_path, Lab, LabEvent, Report, Rng};
use twill_core::{Close, Handle, MulticastOp, OpenError, ServerEndpoint};
use twill_driver::{EngineConfig, LocalAddr, Mode, Running, ServeOptions};

fn endpoints(eps: &[&str]) -> Vec<ServerEndpoint> {
    eps.iter().map(|e| e.parse().expect("endpoint")).collect()
}

fn serve_with(
    mode: Mode,
    eps: &[&str],
    config: EngineConfig,
    lab: impl Fn() -> Lab + Send + 'static,
    svc: Report,
) -> Running<Lab> {
    let opts = ServeOptions {
        endpoints: endpoints(eps),
        mode,
        config,
    };
    twill_std::spawn(opts, move || (lab(), svc.clone())).expect("bind")
}

fn serve(mode: Mode, eps: &[&str]) -> (Running<Lab>, mpsc::Receiver<LabEvent>) {
    let (tx, rx) = mpsc::channel();
    let r = serve_with(
        mode,
        eps,
        EngineConfig::default(),
        Lab::new,
        Report::new(tx),
    );
    (r, rx)
}

/// Writes `data` in random-sized pieces while a second thread reads the
/// echo; half-closes after the last piece and checks everything came back
/// before the server's end.
fn echo_roundtrip<S>(mut stream: S, reader: S, data: Vec<u8>, seed: u64)
where
    S: Read + Write + HalfClose + Send + 'static,
{
    let expected = data.len();
    let rd = std::thread::spawn(move || {
        let mut reader = reader;
        let mut got = Vec::with_capacity(expected);
        reader.read_to_end(&mut got).expect("read echo");
        got
    });
    let mut rng = Rng(seed);
    let mut i = 0;
    while i < data.len() {
        let n = (1 + rng.below(8192) as usize).min(data.len() - i);
        stream.write_all(&data[i..i + n]).expect("write");
        i += n;
    }
    stream.shutdown_write();
    let got = rd.join().expect("reader");
    assert_eq!(got.len(), data.len(), "echoed length");
    assert!(got == data, "echoed bytes differ");
}

/// Streams that can half-close.
trait HalfClose {
    fn shutdown_write(&mut self);
}

impl HalfClose for TcpStream {
    fn shutdown_write(&mut self) {
        self.shutdown(Shutdown::Write).unwrap();
    }
}

impl HalfClose for UnixStream {
    fn shutdown_write(&mut self) {
        self.shutdown(Shutdown::Write).unwrap();
    }
}

fn connect_tcp(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

#[test]
fn tcp_echo_concurrent_random_writes_half_close() {
    for mode in [Mode::Factory, Mode::Hub] {
        let (server, _rx) = serve(mode, &["tcp:0:interface=127.0.0.1"]);
        let addr = server.addr();
        let clients: Vec<_> = (0..8u64)
            .map(|i| {
                std::thread::spawn(move || {
                    let s = connect_tcp(addr);
                    let r = s.try_clone().unwrap();
                    let len = 50_000 + Rng(i + 1).below(200_000) as usize;
                    echo_roundtrip(s, r, Rng(i + 100).bytes(len), i + 7);
                })
            })
            .collect();
        for c in clients {
            c.join().expect("client");
        }
        server.stop();
        server.wait().expect("stopped cleanly");
    }
}

#[test]
fn unix_echo_concurrent_half_close() {
    for mode in [Mode::Factory, Mode::Hub] {
        let path = unix_path("echo");
        let (server, _rx) = serve(mode, &[&format!("unix:{path}")]);
        assert_eq!(server.local_addrs(), &[LocalAddr::Unix(path.clone())]);
        let clients: Vec<_> = (0..4u64)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let s = UnixStream::connect(&path).expect("connect");
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    let r = s.try_clone().unwrap();
                    echo_roundtrip(s, r, Rng(i + 3).bytes(300_000), i);
                })
            })
            .collect();
        for c in clients {
            c.join().expect("client");
        }
        server.stop();
        server.wait().expect("stopped cleanly");
        assert!(
            !std::path::Path::new(&path).exists(),
            "socket file removed on stop"
        );
    }
}

#[test]
fn addresses_in_endpoint_order_and_bind_errors() {
    let path = unix_path("order");
    let (server, _rx) = serve(
        Mode::Hub,
        &[
            "udp:0:interface=127.0.0.1",
            &format!("unix:{path}"),
            "tcp:0:interface=127.0.0.1",
        ],
    );
    let a = server.local_addrs().to_vec();
    assert!(matches!(a[0], LocalAddr::Udp(s) if s.port() != 0));
    assert_eq!(a[1], LocalAddr::Unix(path));
    let LocalAddr::Tcp(tcp) = a[2] else {
        panic!("{a:?}")
    };
    assert_ne!(tcp.port(), 0);

    // The same port again is a clear error, not a panic.
    let opts = ServeOptions::factory(endpoints(&[&format!(
        "tcp:{}:interface=127.0.0.1",
        tcp.port()
    )]));
    let err = twill_std::spawn(opts, || {
        let (tx, _) = mpsc::channel();
        (Lab::new(), Report::new(tx))
    })
    .err()
    .expect("port in use");
    assert_eq!(err.kind, ErrorKind::AddrInUse);
    assert!(err.to_string().contains("address already in use"), "{err}");
    server.stop();
    server.wait().unwrap();
}

#[test]
fn udp_echo() {
    for mode in [Mode::Factory, Mode::Hub] {
        let (server, rx) = serve(mode, &["udp:0:interface=127.0.0.1"]);
        let addr = server.addr();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        for msg in [&b"hello"[..], b"", &[7u8; 1400][..]] {
            client.send_to(msg, addr).unwrap();
            let mut buf = [0u8; 2048];
            let (n, from) = client.recv_from(&mut buf).expect("echo");
            assert_eq!(&buf[..n], msg);
            assert_eq!(from, addr);
            let dst = expect(&rx, "datagram", |e| match e {
                LabEvent::Datagram { dst, .. } => Some(*dst),
                _ => None,
            });
            assert_eq!(
                dst,
                Ipv4Addr::LOCALHOST,
                "destination address from IP_PKTINFO"
            );
        }
        server.stop();
        server.wait().unwrap();
    }
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn multicast_sender() -> UdpSocket {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    s.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).unwrap();
    s.set_multicast_loop_v4(true).unwrap();
    s.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
        .unwrap();
    let s: UdpSocket = s.into();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

#[test]
fn multicast_two_machine_sockets_on_loopback_both_receive() {
    let (server, rx) = serve(Mode::Hub, &[]);
    let hub = server.hub().expect("hub handle");
    let group: Ipv4Addr = "239.255.77.1".parse().unwrap();
    let port = free_udp_port();
    let any = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
    for _ in 0..2 {
        hub.call(move |m: &mut Lab| {
            let s = m.bind(any, vec![group.into()]);
            m.multicast(
                s,
                MulticastOp::Join {
                    group: group.into(),
                    interface: Some(Ipv4Addr::LOCALHOST.into()),
                },
            );
            m.multicast(s, MulticastOp::Loopback(true));
        })
        .unwrap();
    }
    let mut socks = Vec::new();
    while socks.len() < 2 {
        socks.push(expect(&rx, "opened", |e| match e {
            LabEvent::Opened(c, _) => Some(*c),
            LabEvent::OpenFailed(_, err) => panic!("bind failed: {err}"),
            _ => None,
        }));
    }
    let sender = multicast_sender();
    sender.send_to(b"to the group", (group, port)).unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        got.push(expect(&rx, "group datagram", |e| match e {
            LabEvent::Datagram {
                sock, dst, bytes, ..
            } => {
                assert_eq!(bytes, b"to the group");
                assert_eq!(*dst, std::net::IpAddr::from(group));
                Some(*sock)
            }
            _ => None,
        }));
    }
    got.sort();
    socks.sort();
    assert_eq!(got, socks, "each member socket received the datagram once");
    server.stop();
    server.wait().unwrap();
}

#[test]
fn multicast_endpoint_members_both_receive() {
    let group: Ipv4Addr = "239.255.77.2".parse().unwrap();
    let port = free_udp_port();
    let ep = format!("udp:{port}:interface=127.0.0.1:multicast={group}");
    let (first, rx1) = serve(Mode::Factory, &[&ep]);
    let (second, rx2) = serve(Mode::Factory, &[&ep]);
    let sender = multicast_sender();
    sender.send_to(b"hi group", (group, port)).unwrap();
    for rx in [&rx1, &rx2] {
        expect(rx, "group datagram", |e| match e {
            LabEvent::Datagram { bytes, .. } if bytes == b"hi group" => Some(()),
            _ => None,
        });
    }
    for s in [first, second] {
        s.stop();
        s.wait().unwrap();
    }
}

#[test]
fn backpressure_a_client_that_does_not_read() {
    let (tx, _rx) = mpsc::channel();
    let max = Arc::new(AtomicUsize::new(0));
    let m = max.clone();
    let config = EngineConfig {
        high_water: 64 * 1024,
        low_water: 16 * 1024,
        ..EngineConfig::default()
    };
    let server = serve_with(
        Mode::Factory,
        &["tcp:0:interface=127.0.0.1"],
        config,
        move || Lab {
            max_unflushed: Some(m.clone()),
            ..Lab::new()
        },
        Report::new(tx),
    );
    let mut s = connect_tcp(server.addr());
    s.set_nonblocking(true).unwrap();
    let data = Rng(5).bytes(16 << 20);
    let mut written = 0;
    let mut stalled_since = None;
    while written < data.len() {
        match s.write(&data[written..(written + 65536).min(data.len())]) {
            Ok(n) => {
                written += n;
                stalled_since = None;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let since = *stalled_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_millis(300) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("write: {e}"),
        }
    }
    assert!(
        written < data.len(),
        "the server kept reading from a client that never reads ({written} bytes)"
    );
    let peak = max.load(Ordering::SeqCst);
    assert!(
        peak <= 64 * 1024 + 64 * 1024,
        "unflushed output grew to {peak} bytes past the high-water mark"
    );
    // Reading resumes the flow; everything written comes back in order.
    s.set_nonblocking(false).unwrap();
    let mut r = s.try_clone().unwrap();
    let want = written;
    let rd = std::thread::spawn(move || {
        let mut got = vec![0u8; want];
        r.read_exact(&mut got).expect("echo after pause");
        got
    });
    let got = rd.join().unwrap();
    assert!(got == data[..written], "echo differs after backpressure");
    server.stop();
    server.wait().unwrap();
}

#[test]
fn idle_timeout_closes_silent_connections() {
    let (tx, rx) = mpsc::channel();
    let config = EngineConfig {
        idle_timeout: Some(Duration::from_millis(300)),
        ..EngineConfig::default()
    };
    let server = serve_with(
        Mode::Factory,
        &["tcp:0:interface=127.0.0.1"],
        config,
        Lab::new,
        Report::new(tx),
    );
    let started = Instant::now();
    let mut s = connect_tcp(server.addr());
    let mut buf = [0u8; 16];
    let r = s.read(&mut buf);
    let waited = started.elapsed();
    assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
    assert!(
        waited >= Duration::from_millis(250),
        "closed too early: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(3),
        "idle timeout late: {waited:?}"
    );
    expect(&rx, "closed", |e| {
        matches!(e, LabEvent::Closed(_)).then_some(())
    });
    server.stop();
    server.wait().unwrap();
}

/// A connection the server refused ends at once without an echo.
fn refused(addr: SocketAddr) -> bool {
    let mut s = connect_tcp(addr);
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let _ = s.write_all(b"x");
    let mut buf = [0u8; 1];
    matches!(s.read(&mut buf), Ok(0) | Err(_))
}

fn echoes(s: &mut TcpStream) -> bool {
    s.write_all(b"ping").is_ok() && {
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).is_ok() && &buf == b"ping"
    }
}

#[test]
fn connection_cap() {
    for mode in [Mode::Factory, Mode::Hub] {
        let (tx, rx) = mpsc::channel();
        let config = EngineConfig {
            max_conns: 2,
            ..EngineConfig::default()
        };
        let server = serve_with(
            mode,
            &["tcp:0:interface=127.0.0.1"],
            config,
            Lab::new,
            Report::new(tx),
        );
        let addr = server.addr();
        let mut a = connect_tcp(addr);
        let mut b = connect_tcp(addr);
        assert!(echoes(&mut a) && echoes(&mut b), "{mode:?}: two served");
        assert!(refused(addr), "{mode:?}: the third is refused");
        drop(a);
        expect(&rx, "closed", |e| {
            matches!(e, LabEvent::Closed(_)).then_some(())
        });
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let mut c = connect_tcp(addr);
            if echoes(&mut c) {
                break;
            }
            assert!(Instant::now() < deadline, "{mode:?}: place not given back");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(echoes(&mut b));
        server.stop();
        server.wait().unwrap();
    }
}

#[test]
fn machine_timer_service_timer_and_blocking_work() {
    let (tx, rx) = mpsc::channel();
    let svc = Report {
        tx,
        service_timer: Some(Duration::from_millis(150)),
    };
    let server = serve_with(
        Mode::Factory,
        &["tcp:0:interface=127.0.0.1"],
        EngineConfig::default(),
        || Lab {
            tick_after: Some(Duration::from_millis(50)),
            ..Lab::new()
        },
        svc,
    );
    let started = Instant::now();
    let mut s = connect_tcp(server.addr());
    let mut got = Vec::new();
    while !got.ends_with(b"done 42\n") {
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).expect("read");
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, b"tick\ndone 42\n");
    assert!(started.elapsed() >= Duration::from_millis(150));
    expect(&rx, "tick", |e| (*e == LabEvent::Tick).then_some(()));
    server.stop();
    server.wait().unwrap();
}

#[test]
fn hub_handle_commands_reach_every_client() {
    let (server, rx) = serve(Mode::Hub, &["tcp:0:interface=127.0.0.1"]);
    let hub = server.hub().expect("hub handle");
    let mut clients: Vec<TcpStream> = (0..3).map(|_| connect_tcp(server.addr())).collect();
    for _ in 0..3 {
        expect(&rx, "accepted", |e| {
            matches!(e, LabEvent::Accepted(..)).then_some(())
        });
    }
    hub.call(|m: &mut Lab| m.broadcast(b"hello all\n")).unwrap();
    for c in &mut clients {
        let mut buf = [0u8; 10];
        c.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello all\n");
    }
    // Each client can still be echoed and closed on its own.
    assert!(echoes(&mut clients[1]));
    server.stop();
    server.wait().unwrap();
    assert!(hub.call(|_| {}).is_err(), "a stopped hub is gone");
}

#[test]
fn open_connect_and_splice_proxy() {
    let (upstream, _urx) = serve(Mode::Factory, &["tcp:0:interface=127.0.0.1"]);
    let port = upstream.addr().port();
    let (tx, rx) = mpsc::channel();
    let proxy = serve_with(
        Mode::Factory,
        &["tcp:0:interface=127.0.0.1"],
        EngineConfig::default(),
        move || Lab {
            // A name, so the driver resolves it (off the machine thread).
            proxy_to: Some(("localhost".into(), port)),
            ..Lab::new()
        },
        Report::new(tx),
    );
    let clients: Vec<_> = (0..3u64)
        .map(|i| {
            let addr = proxy.addr();
            std::thread::spawn(move || {
                let s = connect_tcp(addr);
                let r = s.try_clone().unwrap();
                echo_roundtrip(s, r, Rng(i + 40).bytes(200_000), i);
            })
        })
        .collect();
    for c in clients {
        c.join().expect("proxied client");
    }
    expect(&rx, "opened", |e| {
        matches!(e, LabEvent::Opened(..)).then_some(())
    });
    proxy.stop();
    proxy.wait().unwrap();

    // A refused upstream: the machine hears OpenFailed and closes.
    upstream.stop();
    upstream.wait().unwrap();
    let (tx, rx) = mpsc::channel();
    let proxy = serve_with(
        Mode::Factory,
        &["tcp:0:interface=127.0.0.1"],
        EngineConfig::default(),
        move || Lab {
            proxy_to: Some(("127.0.0.1".into(), port)),
            ..Lab::new()
        },
        Report::new(tx),
    );
    let mut s = connect_tcp(proxy.addr());
    let err = expect(&rx, "open failed", |e| match e {
        LabEvent::OpenFailed(_, err) => Some(err.clone()),
        _ => None,
    });
    assert_eq!(err, OpenError::Refused);
    let mut buf = [0u8; 1];
    assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)));
    proxy.stop();
    proxy.wait().unwrap();
}

#[test]
fn open_listen_accepts_for_the_machine() {
    let (server, rx) = serve(Mode::Hub, &[]);
    let hub = server.hub().unwrap();
    hub.call(|m: &mut Lab| {
        m.listen("127.0.0.1:0".parse().unwrap());
    })
    .unwrap();
    let (id, addr) = expect(&rx, "listening", |e| match e {
        LabEvent::Opened(id, twill_core::Addr::Ip(a)) => Some((*id, *a)),
        LabEvent::OpenFailed(_, err) => panic!("listen failed: {err}"),
        _ => None,
    });
    assert_ne!(addr.port(), 0);
    let mut c = connect_tcp(addr);
    let listener = expect(&rx, "accepted", |e| match e {
        LabEvent::Accepted(_, l) => Some(*l),
        _ => None,
    });
    assert_eq!(listener.0, id.0, "accepted on the machine's own listener");
    assert!(echoes(&mut c));
    // Closing the listener: new connections are refused.
    hub.call(move |m: &mut Lab| m.close(id, Close::Graceful))
        .unwrap();
    expect(&rx, "listener closed", |e| {
        (*e == LabEvent::Closed(id)).then_some(())
    });
    assert!(TcpStream::connect(addr).is_err(), "listener still open");
    assert!(echoes(&mut c), "its connections live on");
    server.stop();
    server.wait().unwrap();
}

#[test]
fn stop_from_another_thread_aborts_connections() {
    let (server, rx) = serve(
        Mode::Factory,
        &["tcp:0:interface=127.0.0.1", "udp:0:interface=127.0.0.1"],
    );
    let mut c = connect_tcp(server.addr());
    assert!(echoes(&mut c));
    let _ = rx;
    let stopper = server.stopper();
    let started = Instant::now();
    std::thread::spawn(move || stopper()).join().unwrap();
    server.wait().expect("wait after stop");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "stop took {:?}",
        started.elapsed()
    );
    let mut buf = [0u8; 1];
    assert!(
        matches!(c.read(&mut buf), Ok(0) | Err(_)),
        "connection aborted"
    );
}

#[test]
fn a_service_can_stop_the_server() {
    let (server, rx) = serve(Mode::Hub, &["udp:0:interface=127.0.0.1"]);
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.send_to(b"stop", server.addr()).unwrap();
    expect(&rx, "stop datagram", |e| {
        matches!(e, LabEvent::Datagram { .. }).then_some(())
    });
    let started = Instant::now();
    server.wait().expect("the service stopped it");
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// Serves a range of a file with `Payload::File` on every connection.
struct FileSvc {
    path: std::path::PathBuf,
}

impl twill_core::Service<Lab> for FileSvc {
    type Done = ();

    fn on_event(&mut self, cx: &mut twill_core::Cx<'_, Lab, ()>, event: LabEvent) {
        if let LabEvent::Accepted(conn, _) = event {
            let file = std::fs::File::open(&self.path).expect("test file");
            let id = cx.add_file(file);
            cx.machine().send_file(conn, id, 1000, 300_000);
        }
    }
}

#[test]
fn file_payloads_are_sent_with_sendfile() {
    let data = Rng(9).bytes(400_000);
    let path = std::env::temp_dir().join(format!("twill-std-file-{}", std::process::id()));
    std::fs::write(&path, &data).unwrap();
    let upath = unix_path("file");
    let p = path.clone();
    let server = twill_std::spawn(
        ServeOptions::factory(endpoints(&[
            "tcp:0:interface=127.0.0.1",
            &format!("unix:{upath}"),
        ])),
        move || (Lab::new(), FileSvc { path: p.clone() }),
    )
    .expect("bind");
    let mut got = Vec::new();
    connect_tcp(server.addr()).read_to_end(&mut got).unwrap();
    assert!(
        got == data[1000..301_000],
        "tcp file range differs ({} bytes)",
        got.len()
    );
    got.clear();
    UnixStream::connect(&upath)
        .unwrap()
        .read_to_end(&mut got)
        .unwrap();
    assert!(
        got == data[1000..301_000],
        "unix file range differs ({} bytes)",
        got.len()
    );
    server.stop();
    server.wait().unwrap();
    let _ = std::fs::remove_file(path);
}
