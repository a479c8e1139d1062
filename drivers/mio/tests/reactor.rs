//! The reactor itself: timers under a manual clock, calls from threads,
//! work deferred to the pool, driving it from a foreign loop through its
//! fd, clients, several servers on one reactor, and thousands of idle
//! connections on one thread.

mod common;

use std::cell::RefCell;
use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::{expect, unix_path, Ev, Probe, Report};
use twill_core::service::Ignore;
use twill_core::{ClientEndpoint, Handle};
use twill_driver::{ManualClock, ServeOptions};
use twill_mio::Reactor;

fn ep(s: &str) -> twill_core::ServerEndpoint {
    s.parse().unwrap()
}

/// Turns the reactor until `done` or 10 s pass.
fn turn_until(r: &mut Reactor, mut done: impl FnMut(&mut Reactor) -> bool) {
    let start = Instant::now();
    while !done(r) {
        assert!(start.elapsed() < Duration::from_secs(10), "timed out");
        r.run_once(Some(Duration::from_millis(20))).unwrap();
    }
}

#[test]
fn call_later_order_and_cancel_under_a_manual_clock() {
    let clock = Arc::new(ManualClock::new());
    let mut r = Reactor::with_clock(clock.clone()).unwrap();
    let log = Rc::new(RefCell::new(Vec::new()));
    let add = |r: &mut Reactor, ms: u64, name: &'static str| {
        let log = log.clone();
        r.call_later(Duration::from_millis(ms), move |_| {
            log.borrow_mut().push(name)
        })
    };
    add(&mut r, 10, "a10");
    add(&mut r, 5, "b5");
    add(&mut r, 10, "c10");
    let d = add(&mut r, 5, "d5");
    add(&mut r, 5, "e5");
    add(&mut r, 20, "f20");
    assert!(r.cancel(d));
    assert!(!r.cancel(d), "cancelling twice");

    r.run_once(Some(Duration::ZERO)).unwrap();
    assert!(
        log.borrow().is_empty(),
        "nothing is due before the clock moves"
    );
    clock.advance(Duration::from_millis(5));
    r.run_once(Some(Duration::ZERO)).unwrap();
    assert_eq!(*log.borrow(), ["b5", "e5"]);
    clock.advance(Duration::from_millis(5));
    r.run_once(Some(Duration::ZERO)).unwrap();
    assert_eq!(*log.borrow(), ["b5", "e5", "a10", "c10"]);

    // A call scheduled from a call, with no delay, runs on the next turn.
    let l = log.clone();
    r.call_later(Duration::ZERO, move |r| {
        l.borrow_mut().push("outer");
        let l2 = l.clone();
        r.call_later(Duration::ZERO, move |_| l2.borrow_mut().push("inner"));
    });
    r.run_once(Some(Duration::ZERO)).unwrap();
    assert_eq!(log.borrow().last(), Some(&"outer"));
    r.run_once(Some(Duration::ZERO)).unwrap();
    assert_eq!(log.borrow().last(), Some(&"inner"));

    clock.advance(Duration::from_millis(100));
    r.run_once(Some(Duration::ZERO)).unwrap();
    assert_eq!(log.borrow().last(), Some(&"f20"));
    assert_eq!(log.borrow().len(), 7);
    assert_eq!(r.next_wakeup(), None);
}

#[test]
fn call_later_on_the_real_clock_wakes_the_loop() {
    let mut r = Reactor::new().unwrap();
    let t = Instant::now();
    r.call_later(Duration::from_millis(50), |r| r.stop());
    r.run().unwrap();
    assert!(t.elapsed() >= Duration::from_millis(50));
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[test]
fn defer_to_thread_returns_on_the_reactor_thread() {
    let mut r = Reactor::new().unwrap();
    let me = std::thread::current().id();
    let got = Rc::new(RefCell::new(None));
    let g = got.clone();
    r.defer_to_thread(
        || {
            std::thread::sleep(Duration::from_millis(10));
            (std::thread::current().id(), 6 * 7)
        },
        move |r, (worker, v)| {
            *g.borrow_mut() = Some((worker, v, std::thread::current().id()));
            r.stop();
        },
    );
    r.run().unwrap();
    let (worker, v, done_on) = got.borrow().expect("on_done ran");
    assert_eq!(v, 42);
    assert_ne!(worker, me, "work ran on the pool");
    assert_eq!(done_on, me, "on_done ran on the reactor thread");
}

#[test]
fn call_from_thread_from_eight_threads() {
    const N: usize = 2000;
    let mut r = Reactor::new().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let me = std::thread::current().id();
    let threads: Vec<_> = (0..8usize)
        .map(|t| {
            let h = r.handle();
            let seen = seen.clone();
            std::thread::spawn(move || {
                for i in 0..N {
                    let seen = seen.clone();
                    h.call_from_thread(move |_| {
                        assert_eq!(std::thread::current().id(), me);
                        seen.lock().unwrap().push((t, i));
                    });
                }
            })
        })
        .collect();
    turn_until(&mut r, |_| seen.lock().unwrap().len() >= 8 * N);
    for t in threads {
        t.join().unwrap();
    }
    r.run_once(Some(Duration::ZERO)).unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 8 * N);
    let set: HashSet<_> = seen.iter().copied().collect();
    assert_eq!(set.len(), 8 * N, "every call exactly once");
    // Calls from one thread keep their order.
    for t in 0..8 {
        let mine: Vec<usize> = seen
            .iter()
            .filter(|(x, _)| *x == t)
            .map(|(_, i)| *i)
            .collect();
        assert!(mine.windows(2).all(|w| w[0] < w[1]));
    }
}

#[test]
fn a_foreign_loop_drives_the_reactor_through_its_fd() {
    // The "foreign" loop is a second mio poll watching the reactor's fd, as
    // GLib or Qt would.
    let mut r = Reactor::new().unwrap();
    let mut outer = mio::Poll::new().unwrap();
    let fd = r.as_raw_fd();
    outer
        .registry()
        .register(
            &mut mio::unix::SourceFd(&fd),
            mio::Token(0),
            mio::Interest::READABLE,
        )
        .unwrap();
    let mut events = mio::Events::with_capacity(8);
    let hit = Rc::new(RefCell::new(0));

    // A call from another thread makes the fd readable.
    let h = r.handle();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        h.call_from_thread(move |_| tx.send(()).unwrap());
    });
    let start = Instant::now();
    while rx.try_recv().is_err() {
        assert!(start.elapsed() < Duration::from_secs(5));
        outer
            .poll(&mut events, Some(Duration::from_secs(5)))
            .unwrap();
        if !events.is_empty() {
            r.run_once(Some(Duration::ZERO)).unwrap();
        }
    }

    // So does a connection to a server it hosts.
    let s = r
        .serve(
            ServeOptions::factory(vec![ep("tcp:0:interface=127.0.0.1")]),
            || (Probe::echo(), Ignore),
        )
        .unwrap();
    let addr = s.local_addrs[0].socket_addr().unwrap();
    let client = std::thread::spawn(move || {
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"ping").unwrap();
        let mut b = [0u8; 4];
        c.read_exact(&mut b).unwrap();
        b
    });
    let start = Instant::now();
    while !client.is_finished() {
        assert!(start.elapsed() < Duration::from_secs(5));
        outer
            .poll(&mut events, Some(Duration::from_millis(50)))
            .unwrap();
        if !events.is_empty() {
            *hit.borrow_mut() += 1;
            r.run_once(Some(Duration::ZERO)).unwrap();
        }
    }
    assert_eq!(&client.join().unwrap(), b"ping");
    assert!(*hit.borrow() > 0);
}

#[test]
fn client_connections_over_tcp_and_unix() {
    // The server is another driver instance: an echo on its own thread.
    let path = unix_path("client");
    let server = twill_mio::spawn(
        ServeOptions::factory(vec![
            ep("tcp:0:interface=127.0.0.1"),
            ep(&format!("unix:{path}")),
        ]),
        || (Probe::echo(), Ignore),
    )
    .unwrap();
    let port = server.addr().port();
    let mut r = Reactor::new().unwrap();
    let (tx, rx) = mpsc::channel();
    let endpoints = [
        format!("tcp:localhost:{port}"),
        format!("tcp:127.0.0.1:{port}"),
        format!("unix:{path}"),
    ];
    for e in &endpoints {
        let e: ClientEndpoint = e.parse().unwrap();
        let c = r.connect(&e, Probe::reporting(), Report(tx.clone()));
        let conn = loop {
            r.run_once(Some(Duration::from_millis(20))).unwrap();
            match rx.try_recv() {
                Ok(Ev::Opened { conn, .. }) => break conn,
                Ok(Ev::OpenFailed(_, e)) => panic!("connect failed: {e}"),
                Ok(_) | Err(mpsc::TryRecvError::Empty) => {}
                Err(e) => panic!("{e}"),
            }
        };
        assert!(!conn.is_machine_chosen(), "a driver-chosen id");
        c.hub
            .unwrap()
            .call(move |m: &mut Probe| m.send(conn, b"ping"))
            .unwrap();
        let mut got = Vec::new();
        turn_until(&mut r, |_| {
            while let Ok(e) = rx.try_recv() {
                if let Ev::Data { bytes, .. } = e {
                    got.extend(bytes);
                }
            }
            got.len() >= 4
        });
        assert_eq!(got, b"ping");
        assert!(r.close(c.id));
        assert!(!r.close(c.id));
    }

    // A refused connection is answered with OpenFailed.
    drop(server);
    let e: ClientEndpoint = format!("tcp:127.0.0.1:{port}").parse().unwrap();
    r.connect(&e, Probe::reporting(), Report(tx.clone()));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        r.run_once(Some(Duration::from_millis(20))).unwrap();
        if let Ok(Ev::OpenFailed(_, e)) = rx.try_recv() {
            assert_eq!(e, twill_core::OpenError::Refused);
            break;
        }
        assert!(Instant::now() < deadline);
    }
}

#[test]
fn several_servers_on_one_reactor() {
    let mut r = Reactor::new().unwrap();
    let (tx, rx) = mpsc::channel();
    let a = r
        .serve(
            ServeOptions::factory(vec![ep("tcp:0:interface=127.0.0.1")]),
            || (Probe::echo(), Ignore),
        )
        .unwrap();
    let b = r
        .serve(
            ServeOptions::hub(vec![ep("tcp:0:interface=127.0.0.1")]),
            move || {
                let mut m = Probe::reporting();
                m.greeting = Some(b"hub\n");
                (m, Report(tx.clone()))
            },
        )
        .unwrap();
    assert!(a.hub.is_none() && b.hub.is_some());
    let (aa, ba) = (
        a.local_addrs[0].socket_addr().unwrap(),
        b.local_addrs[0].socket_addr().unwrap(),
    );
    let client = std::thread::spawn(move || {
        let mut x = TcpStream::connect(aa).unwrap();
        x.write_all(b"echo").unwrap();
        let mut b4 = [0u8; 4];
        x.read_exact(&mut b4).unwrap();
        let mut y = TcpStream::connect(ba).unwrap();
        let mut h4 = [0u8; 4];
        y.read_exact(&mut h4).unwrap();
        (b4, h4)
    });
    turn_until(&mut r, |_| client.is_finished());
    let (b4, h4) = client.join().unwrap();
    assert_eq!((&b4, &h4), (b"echo", b"hub\n"));
    expect(&rx, |e| matches!(e, Ev::Accepted { .. }).then_some(()));
    assert!(r.close(a.id));
    assert!(
        TcpStream::connect(aa).is_err(),
        "closed server's listener is gone"
    );
    let _still = TcpStream::connect(ba).unwrap();
}

/// Raises the soft limit on open files if 2,000 connections (both ends in
/// this process) would not fit.
fn ensure_fds(need: u64) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft < need {
        assert!(
            hard >= need,
            "RLIMIT_NOFILE hard limit {hard} is below {need}"
        );
        setrlimit(Resource::RLIMIT_NOFILE, need, hard).unwrap();
    }
}

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn two_thousand_idle_connections_on_one_thread() {
    const CONNS: usize = 2000;
    ensure_fds(2 * CONNS as u64 + 200);
    let mut opts = ServeOptions::factory(vec![ep("tcp:0:interface=127.0.0.1:backlog=4096")]);
    opts.config.max_conns = CONNS + 10;
    let server = twill_mio::spawn(opts, || (Probe::echo(), Ignore)).unwrap();
    let addr = server.addr();
    // Warm up allocator and first-connection costs before measuring.
    let mut clients = Vec::with_capacity(CONNS);
    for _ in 0..50 {
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"!").unwrap();
        let mut b = [0u8; 1];
        c.read_exact(&mut b).unwrap();
        clients.push(c);
    }
    let before = rss_kib();
    let t = Instant::now();
    for _ in 50..CONNS {
        clients.push(TcpStream::connect(addr).unwrap());
    }
    // Every connection is served by the one reactor thread: a byte goes
    // round on each.
    for c in &mut clients[50..] {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(b"x").unwrap();
    }
    for c in &mut clients[50..] {
        let mut b = [0u8; 1];
        c.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"x");
    }
    let per_conn = (rss_kib().saturating_sub(before)) * 1024 / (CONNS as u64 - 50);
    eprintln!(
        "{CONNS} connections in {:?}; ~{per_conn} bytes of RSS each",
        t.elapsed()
    );
    // Both ends live in this process, and the client side holds nothing
    // in user memory: this is the server's cost per idle connection.
    assert!(per_conn <= 4096, "{per_conn} bytes per idle connection");
    // Still responsive to a new client.
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(b"y").unwrap();
    let mut b = [0u8; 1];
    c.read_exact(&mut b).unwrap();
    drop(clients);
    server.stop();
    server.wait().unwrap();
}

#[test]
fn handles_are_send_sync_clone_and_poll_timeout_follows_timers() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<twill_mio::ReactorHandle>();
    let clock = Arc::new(ManualClock::new());
    let mut r = Reactor::with_clock(clock.clone()).unwrap();
    assert_eq!(r.poll_timeout(), None);
    let t = r.call_later(Duration::from_millis(30), |_| {});
    assert_eq!(r.poll_timeout(), Some(Duration::from_millis(30)));
    clock.advance(Duration::from_millis(10));
    assert_eq!(r.poll_timeout(), Some(Duration::from_millis(20)));
    r.cancel(t);
    assert_eq!(r.poll_timeout(), None);
}
