//! WebSocket echo messages/s over loopback: twill's echo (twill-http's
//! server switching to a twill-websocket machine, as `twill web
//! --websocket-echo` does) on the tokio driver, beside the canonical
//! tokio-tungstenite echo server (`read.forward(write)`, its own
//! example), both on a 2-worker tokio runtime in this process, under the
//! same client in the same run.
//!
//! The client is written here, the same for both servers: `CONNS`
//! connections each send `MSGS` masked 20-byte text messages, keeping
//! `WINDOW` of them outstanding (each echo read lets another go), and count
//! the echoes.
//!
//! Run: `cd benches && cargo run --release --bin ws_echo_load [CONNS] [MSGS] [WINDOW]`

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{future, StreamExt, TryStreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use twill_core::switch::Handover;
use twill_core::{ConnId, Cx, Service, Switch, SwitchEvent};
use twill_driver::ServeOptions;
use twill_http::{Server, ServerEvent};
use twill_websocket::{Config, Role, ServerHandshake, WebSocket, WsEvent};

type Upgrade = fn(ServerEvent) -> Result<Handover<WebSocket>, ServerEvent>;
type EchoMachine = Switch<Server, WebSocket, Upgrade>;

/// The hand-over, as src/ws/echo.rs does it.
fn upgrade(e: ServerEvent) -> Result<Handover<WebSocket>, ServerEvent> {
    let ServerEvent::Upgraded {
        conn,
        head,
        rest,
        unflushed,
        ..
    } = e
    else {
        return Err(e);
    };
    let cfg = Config::default();
    let deflate = ServerHandshake::from_request(&head)
        .ok()
        .and_then(|h| h.accept(None, Some(&cfg.deflate)).deflate);
    Ok(Handover {
        conn,
        rest,
        next: WebSocket::new(conn, Role::Server, cfg, deflate, None),
        unflushed,
    })
}

/// The echo service of `twill web --websocket-echo`, without the files.
#[derive(Clone, Default)]
struct WsEcho {
    ws: Option<ConnId>,
}

impl Service<EchoMachine> for WsEcho {
    type Done = ();

    fn on_event(
        &mut self,
        cx: &mut Cx<'_, EchoMachine, ()>,
        event: SwitchEvent<ServerEvent, WsEvent>,
    ) {
        match event {
            SwitchEvent::First(ServerEvent::Request(req)) if req.upgrade => {
                let server = cx.machine().first();
                match ServerHandshake::from_request(&req.head) {
                    Ok(h) => {
                        let a = h.accept(None, Some(&Config::default().deflate));
                        let _ = server.accept_upgrade(req.id, &a.header_refs());
                    }
                    Err(e) => {
                        let _ = server.respond_full(req.id, e.status(), &[], Bytes::new());
                    }
                }
            }
            SwitchEvent::Switched { conn } => self.ws = Some(conn),
            SwitchEvent::Second(WsEvent::Message { kind, data }) => {
                if let Some(ws) = self.ws.and_then(|c| cx.machine().second(c)) {
                    let _ = ws.send(kind, data);
                }
            }
            _ => {}
        }
    }

    fn on_done(&mut self, _: &mut Cx<'_, EchoMachine, ()>, _: ()) {}
}

/// The peer: tokio-tungstenite's echo server example.
fn tungstenite_echo() -> SocketAddr {
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
                let (s, _) = l.accept().await.unwrap();
                s.set_nodelay(true).unwrap();
                tokio::spawn(async move {
                    let Ok(ws) = tokio_tungstenite::accept_async(s).await else {
                        return;
                    };
                    let (write, read) = ws.split();
                    let _ = read
                        .try_filter(|m| future::ready(m.is_text() || m.is_binary()))
                        .forward(write)
                        .await;
                });
            }
        });
    });
    rx.recv().unwrap()
}

const PAYLOAD: &[u8; 20] = b"twenty bytes of text";
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// One masked text frame of PAYLOAD, as a client sends it.
fn frame() -> Vec<u8> {
    let mut f = vec![0x81, 0x80 | PAYLOAD.len() as u8];
    f.extend_from_slice(&KEY);
    f.extend(PAYLOAD.iter().enumerate().map(|(i, b)| b ^ KEY[i % 4]));
    f
}

/// One connection: the handshake, then `msgs` messages with `window`
/// outstanding; checks every echo.
async fn client(addr: SocketAddr, msgs: usize, window: usize) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    let head_end = loop {
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed during the handshake");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    assert!(
        buf.starts_with(b"HTTP/1.1 101"),
        "{:?}",
        String::from_utf8_lossy(&buf[..head_end])
    );
    buf.drain(..head_end);
    let one = frame();
    let batch: Vec<u8> = one
        .iter()
        .copied()
        .cycle()
        .take(one.len() * window)
        .collect();
    let mut sent = window.min(msgs);
    s.write_all(&batch[..one.len() * sent]).await.unwrap();
    let mut got = 0;
    while got < msgs {
        // Whole echoes at the front of buf: 0x81, length, payload.
        let mut at = 0;
        let mut n_echo = 0;
        while let [b0, len, ..] = buf[at..] {
            let end = at + 2 + len as usize;
            if end > buf.len() {
                break;
            }
            assert_eq!((b0, &buf[at + 2..end]), (0x81, &PAYLOAD[..]), "echo");
            at = end;
            n_echo += 1;
        }
        buf.drain(..at);
        got += n_echo;
        let more = n_echo.min(msgs - sent);
        if more > 0 {
            s.write_all(&batch[..one.len() * more]).await.unwrap();
            sent += more;
        }
        if got < msgs {
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed after {got} echoes");
            buf.extend_from_slice(&chunk[..n]);
        }
    }
    // A close frame (1000), masked; then hang up.
    let close = [0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8];
    let _ = s.write_all(&close).await;
}

/// Echoed messages per second over `conns` connections.
fn load(addr: SocketAddr, conns: usize, msgs: usize, window: usize) -> f64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let start = Instant::now();
        let tasks: Vec<_> = (0..conns)
            .map(|_| tokio::spawn(client(addr, msgs, window)))
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        (conns * msgs) as f64 / start.elapsed().as_secs_f64()
    })
}

fn best_of(rounds: usize, f: impl Fn() -> f64) -> f64 {
    (0..rounds).map(|_| f()).fold(0.0, f64::max)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let conns: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(32);
    let msgs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let window: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(32);
    let opts = ServeOptions::factory(vec!["tcp:0:interface=127.0.0.1".parse().unwrap()]);
    let twill = twill_tokio::spawn(opts, || {
        (
            Switch::new(
                Server::new(twill_http::ServerConfig::default()),
                upgrade as Upgrade,
            ),
            WsEcho::default(),
        )
    })
    .unwrap();
    let peer = tungstenite_echo();
    std::thread::sleep(Duration::from_millis(200));

    let load_avg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "ws echo: {conns} connections × {msgs} messages of {} B, window {window}, best of 3 (load average {})",
        PAYLOAD.len(),
        load_avg.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    // Alternate, so load changes on the shared machine hit both alike.
    let (mut peer_best, mut twill_best) = (0f64, 0f64);
    for _ in 0..3 {
        peer_best = peer_best.max(best_of(1, || load(peer, conns, msgs, window)));
        twill_best = twill_best.max(best_of(1, || load(twill.addr(), conns, msgs, window)));
    }
    println!(
        "{:32} {:10.0} msg/s  1.00×",
        "tokio-tungstenite (peer)", peer_best
    );
    println!(
        "{:32} {:10.0} msg/s  {:.2}×",
        "twill tokio driver",
        twill_best,
        twill_best / peer_best
    );
}
