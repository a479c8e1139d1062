//! The async API: `Conn` clients against our own server, `serve_with`
//! handlers, and cancellation safety of `next_event`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{log, Note, TestMachine};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use twill_core::service::{Handle, Ignore};
use twill_core::{ClientEndpoint, Close, ServerEndpoint};
use twill_driver::{LocalAddr, ServeOptions};
use twill_tokio::{Conn, Listener};

fn client_ep(addr: &LocalAddr) -> ClientEndpoint {
    match addr {
        LocalAddr::Tcp(a) => format!("tcp:127.0.0.1:{}", a.port()).parse().unwrap(),
        LocalAddr::Unix(p) => format!("unix:{p}").parse().unwrap(),
        LocalAddr::Udp(_) => unreachable!(),
    }
}

fn echo_server(endpoint: &str) -> twill_driver::Running<TestMachine> {
    let l = log();
    twill_tokio::spawn(
        ServeOptions::factory(vec![endpoint.parse().unwrap()]),
        move || (TestMachine::echo(l.clone(), Arc::default()), Ignore),
    )
    .unwrap()
}

/// Collects the data events until the connection ends.
async fn read_all(conn: &mut Conn<TestMachine>) -> Vec<u8> {
    let mut got = Vec::new();
    while let Some(ev) = conn.next_event().await.unwrap() {
        if let Note::Data { bytes, .. } = ev {
            got.extend_from_slice(&bytes);
        }
    }
    got
}

#[tokio::test]
async fn conn_client_against_our_echo_server_tcp_and_unix() {
    let dir = std::env::temp_dir().join(format!("twill-tokio-conn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let unix = format!("unix:{}", dir.join("echo.sock").display());
    for endpoint in ["tcp:0:interface=127.0.0.1", unix.as_str()] {
        let server = echo_server(endpoint);
        let ep = client_ep(&server.local_addrs()[0]);
        let mut conn = Conn::connect(&ep, TestMachine::recorder(log()))
            .await
            .unwrap();
        assert!(matches!(
            conn.next_event().await.unwrap(),
            Some(Note::Opened { .. })
        ));
        let id = conn.conn_id();
        conn.machine().send(id, b"hello ");
        conn.machine().send(id, b"world");
        conn.flush().await.unwrap();
        let mut got = Vec::new();
        while got.len() < 11 {
            match conn.next_event().await.unwrap() {
                Some(Note::Data { bytes, .. }) => got.extend_from_slice(&bytes),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(got, b"hello world");
        // Half-close: the echo server finishes and closes; we see EOF, then
        // the end.
        conn.machine().send(id, b"bye");
        conn.machine().close(id, Close::WriteHalf);
        assert_eq!(read_all(&mut conn).await, b"bye");
        assert!(conn.next_event().await.unwrap().is_none());
        server.stop();
        server.wait().unwrap();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn connect_errors_are_io_errors() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ep: ClientEndpoint = format!("tcp:127.0.0.1:{port}").parse().unwrap();
    let e = Conn::connect(&ep, TestMachine::recorder(log()))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
    let ep: ClientEndpoint = "unix:/nonexistent/twill.sock".parse().unwrap();
    assert!(Conn::connect(&ep, TestMachine::recorder(log()))
        .await
        .is_err());
}

/// Runs `fut` but gives up on it early, one of three ways chosen by
/// `how`: after one poll, after two polls, or after a tiny timeout.
/// (Callers pick `how` at random: a loop that only ever gives up after
/// one poll never yields to tokio, whose I/O then answers `Pending`
/// forever once the task's budget is spent.)
async fn cancelling<T>(how: u32, fut: impl std::future::Future<Output = T>) -> Option<T> {
    match how % 3 {
        0 => tokio::select! {
            biased;
            r = fut => Some(r),
            () = std::future::ready(()) => None,
        },
        1 => tokio::select! {
            biased;
            r = fut => Some(r),
            () = tokio::task::yield_now() => None,
        },
        _ => tokio::time::timeout(Duration::from_micros(u64::from(how % 500)), fut)
            .await
            .ok(),
    }
}

/// `next_event` under tiny timeouts while megabytes flow: every byte
/// arrives, in order, exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_event_is_cancellation_safe() {
    let server = echo_server("tcp:0:interface=127.0.0.1");
    let ep = client_ep(&server.local_addrs()[0]);
    let mut conn = Conn::connect(&ep, TestMachine::recorder(log()))
        .await
        .unwrap();
    let id = conn.conn_id();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut msg = vec![0u8; 3 << 20];
    rng.fill_bytes(&mut msg);
    let mut queued = 0;
    let mut got = Vec::with_capacity(msg.len());
    let mut timeouts = 0u32;
    let mut eof = false;
    while !eof {
        // Keep a bounded amount in flight, in random pieces.
        if queued < msg.len() && queued - got.len() < 256 * 1024 {
            let n = (1 + rng.next_u32() as usize % 50_000).min(msg.len() - queued);
            conn.machine().send(id, &msg[queued..queued + n]);
            queued += n;
            if queued == msg.len() {
                conn.machine().close(id, Close::WriteHalf);
            }
        }
        match cancelling(rng.next_u32(), conn.next_event()).await {
            Some(Ok(Some(Note::Data { bytes, .. }))) => got.extend_from_slice(&bytes),
            Some(Ok(Some(_))) => {}
            Some(Ok(None)) => eof = true,
            Some(Err(e)) => panic!("{e}"),
            None => timeouts += 1,
        }
    }
    assert_eq!(got.len(), msg.len());
    assert!(got == msg, "bytes lost, duplicated or reordered");
    assert!(
        timeouts > 10,
        "the test must actually cancel futures ({timeouts})"
    );
}

/// `flush` under cancellation, to a peer that reads slowly: every byte
/// arrives, in order, exactly once.
#[tokio::test]
async fn flush_is_cancellation_safe() {
    let peer = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = peer.local_addr().unwrap().port();
    let reader = std::thread::spawn(move || {
        let (mut s, _) = peer.accept().unwrap();
        let mut got = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match std::io::Read::read(&mut s, &mut buf).unwrap() {
                0 => return got,
                n => got.extend_from_slice(&buf[..n]),
            }
            std::thread::sleep(Duration::from_micros(300));
        }
    });
    let ep: ClientEndpoint = format!("tcp:127.0.0.1:{port}").parse().unwrap();
    let mut conn = Conn::connect(&ep, TestMachine::recorder(log()))
        .await
        .unwrap();
    let id = conn.conn_id();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
    let mut msg = vec![0u8; 6 << 20];
    rng.fill_bytes(&mut msg);
    for piece in msg.chunks(100_000) {
        conn.machine().send(id, piece);
    }
    conn.machine().close(id, Close::Graceful);
    let mut cancelled = 0;
    loop {
        match cancelling(rng.next_u32(), conn.flush()).await {
            Some(r) => {
                r.unwrap();
                break;
            }
            None => cancelled += 1,
        }
    }
    // The graceful close went out after the last byte.
    while conn.next_event().await.unwrap().is_some() {}
    let got = reader.join().unwrap();
    assert_eq!(got.len(), msg.len());
    assert!(got == msg, "bytes lost, duplicated or reordered");
    assert!(
        cancelled > 10,
        "the test must actually cancel futures ({cancelled})"
    );
}

#[tokio::test]
async fn serve_with_hands_each_connection_to_a_handler() {
    let listener = Listener::bind(
        &"tcp:0:interface=127.0.0.1"
            .parse::<ServerEndpoint>()
            .unwrap(),
    )
    .unwrap();
    let ep = client_ep(listener.local_addr());
    // The application replies: upper-cases each piece it hears.
    let server = tokio::spawn(twill_tokio::serve_listener(
        listener,
        || TestMachine::recorder(log()),
        |mut conn: Conn<TestMachine>| async move {
            while let Ok(Some(ev)) = conn.next_event().await {
                match ev {
                    Note::Data { conn: id, bytes } => {
                        conn.machine().send(id, &bytes.to_ascii_uppercase());
                        conn.flush().await.unwrap();
                    }
                    Note::Eof { conn: id } => conn.machine().close(id, Close::Graceful),
                    _ => {}
                }
            }
        },
    ));
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let ep = ep.clone();
            tokio::spawn(async move {
                let mut conn = Conn::connect(&ep, TestMachine::recorder(log()))
                    .await
                    .unwrap();
                let id = conn.conn_id();
                let text = format!("client {i} says hello");
                conn.machine().send(id, text.as_bytes());
                conn.machine().close(id, Close::WriteHalf);
                let got = read_all(&mut conn).await;
                assert_eq!(got, text.to_uppercase().as_bytes());
            })
        })
        .collect();
    for c in clients {
        c.await.unwrap();
    }
    server.abort();
}

#[tokio::test]
async fn conn_handle_commands_run_while_driven() {
    let server = echo_server("tcp:0:interface=127.0.0.1");
    let ep = client_ep(&server.local_addrs()[0]);
    let mut conn = Conn::connect(&ep, TestMachine::recorder(log()))
        .await
        .unwrap();
    let id = conn.conn_id();
    let h = conn.handle();
    std::thread::spawn(move || {
        h.call(move |m: &mut TestMachine| m.send(id, b"from afar"))
            .unwrap()
    })
    .join()
    .unwrap();
    let mut got = Vec::new();
    while got.len() < 9 {
        if let Some(Note::Data { bytes, .. }) = conn.next_event().await.unwrap() {
            got.extend_from_slice(&bytes);
        }
    }
    assert_eq!(got, b"from afar");
}
