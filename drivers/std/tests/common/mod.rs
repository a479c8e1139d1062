//! Tiny machines and helpers for the driver tests.
#![allow(dead_code)]

use std::collections::{HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::Duration;

use twill_core::bytes::Bytes;
use twill_core::{
    Addr, Close, ConnId, Cx, IdAllocator, Input, Instant, ListenerId, Machine, MulticastOp, Now,
    Open, OpenError, Output, Payload, Service,
};

/// What the lab machine tells its service (and the test).
#[derive(Debug, Clone, PartialEq)]
pub enum LabEvent {
    Accepted(ConnId, ListenerId),
    Opened(ConnId, Addr),
    OpenFailed(ConnId, OpenError),
    Eof(ConnId),
    Closed(ConnId),
    Datagram {
        sock: ConnId,
        from: SocketAddr,
        dst: IpAddr,
        bytes: Vec<u8>,
    },
    Tick,
}

/// A do-everything test machine: echoes every stream connection (and
/// closes after the peer's end), echoes datagrams, ticks on a timer,
/// proxies to an upstream, and takes commands to open listeners,
/// connections and sockets.
#[derive(Default)]
pub struct Lab {
    pub out: VecDeque<Output<LabEvent>>,
    pub ids: Option<IdAllocator>,
    pub streams: HashSet<ConnId>,
    /// Factory proxy: connect here for each accepted connection and splice.
    pub proxy_to: Option<(String, u16)>,
    pub proxied: Vec<(ConnId, ConnId)>,
    /// Tick this long after each accept.
    pub tick_after: Option<Duration>,
    pub deadline: Option<Instant>,
    /// Largest unflushed output seen on one connection.
    pub max_unflushed: Option<Arc<AtomicUsize>>,
    pub unflushed: usize,
}

impl Lab {
    pub fn new() -> Self {
        Lab::default()
    }

    fn next_id(&mut self) -> ConnId {
        self.ids
            .get_or_insert_with(IdAllocator::for_machine)
            .next_id()
    }

    fn event(&mut self, e: LabEvent) {
        self.out.push_back(Output::Event(e));
    }

    pub fn listen(&mut self, addr: SocketAddr) -> ConnId {
        let conn = self.next_id();
        self.out.push_back(Output::Open {
            conn,
            how: Open::Listen(addr),
        });
        conn
    }

    pub fn connect(&mut self, host: &str, port: u16) -> ConnId {
        let conn = self.next_id();
        self.out.push_back(Output::Open {
            conn,
            how: Open::Connect {
                host: host.into(),
                port,
                timeout: Some(Duration::from_secs(5)),
            },
        });
        conn
    }

    pub fn bind(&mut self, addr: SocketAddr, join: Vec<IpAddr>) -> ConnId {
        let conn = self.next_id();
        self.out.push_back(Output::Open {
            conn,
            how: Open::Bind { addr, join },
        });
        conn
    }

    pub fn multicast(&mut self, sock: ConnId, op: MulticastOp) {
        self.out.push_back(Output::Multicast { sock, op });
    }

    /// Sends `bytes` to every stream connection.
    pub fn broadcast(&mut self, bytes: &[u8]) {
        let mut conns: Vec<ConnId> = self.streams.iter().copied().collect();
        conns.sort();
        for conn in conns {
            self.out.push_back(Output::Transmit {
                conn,
                payload: Payload::Bytes(Bytes::copy_from_slice(bytes)),
            });
        }
    }

    pub fn close(&mut self, conn: ConnId, how: Close) {
        self.out.push_back(Output::Close { conn, how });
    }

    /// Sends a range of a registered file, then closes.
    pub fn send_file(&mut self, conn: ConnId, id: twill_core::FileId, offset: u64, len: u64) {
        self.out.push_back(Output::Transmit {
            conn,
            payload: Payload::File { id, offset, len },
        });
        self.close(conn, Close::Graceful);
    }

    pub fn say(&mut self, text: &str) {
        self.broadcast(text.as_bytes());
    }
}

impl Machine for Lab {
    type Event = LabEvent;
    type Error = std::io::Error;

    fn handle_input(&mut self, now: Now, input: Input<'_>) -> Result<usize, Self::Error> {
        match input {
            Input::Accepted { conn, listener, .. } => {
                self.streams.insert(conn);
                self.event(LabEvent::Accepted(conn, listener));
                if let Some((host, port)) = self.proxy_to.clone() {
                    let up = self.connect(&host, port);
                    self.proxied.push((conn, up));
                }
                if let Some(d) = self.tick_after {
                    self.deadline = Some(now.mono + d);
                }
            }
            Input::Opened { conn, local, .. } => {
                self.event(LabEvent::Opened(conn, local));
                if let Some(&(a, b)) = self.proxied.iter().find(|(_, b)| *b == conn) {
                    self.out.push_back(Output::Splice { a, b });
                }
            }
            Input::OpenFailed { conn, error } => {
                self.event(LabEvent::OpenFailed(conn, error));
                if let Some(&(a, _)) = self.proxied.iter().find(|(_, b)| *b == conn) {
                    self.out.push_back(Output::Close {
                        conn: a,
                        how: Close::Graceful,
                    });
                }
            }
            Input::Data { conn, bytes } => {
                self.unflushed += bytes.len();
                if let Some(m) = &self.max_unflushed {
                    m.fetch_max(self.unflushed, Ordering::SeqCst);
                }
                self.out.push_back(Output::Transmit {
                    conn,
                    payload: Payload::Bytes(Bytes::copy_from_slice(bytes)),
                });
                return Ok(bytes.len());
            }
            Input::Sent { bytes, .. } => self.unflushed = self.unflushed.saturating_sub(bytes),
            Input::Eof { conn, .. } => {
                self.event(LabEvent::Eof(conn));
                self.out.push_back(Output::Close {
                    conn,
                    how: Close::Graceful,
                });
            }
            Input::Closed { conn } => {
                self.streams.remove(&conn);
                self.event(LabEvent::Closed(conn));
            }
            Input::Datagram {
                sock,
                from,
                dst,
                bytes,
                ..
            } => {
                self.event(LabEvent::Datagram {
                    sock,
                    from,
                    dst,
                    bytes: bytes.to_vec(),
                });
                self.out.push_back(Output::SendTo {
                    sock,
                    to: from,
                    bytes: Bytes::copy_from_slice(bytes),
                });
            }
            _ => {}
        }
        Ok(0)
    }

    fn handle_timeout(&mut self, now: Now) {
        if self.deadline.is_some_and(|d| d <= now.mono) {
            self.deadline = None;
            self.event(LabEvent::Tick);
            self.say("tick\n");
        }
    }

    fn poll_output(&mut self) -> Output<LabEvent> {
        self.out.pop_front().unwrap_or(Output::Wait {
            deadline: self.deadline,
        })
    }
}

/// Forwards the lab's events to the test; optionally runs a service timer
/// and blocking work, or stops the server on a datagram "stop".
#[derive(Clone)]
pub struct Report {
    pub tx: Sender<LabEvent>,
    /// After an accept: a service timer after this long, then blocking
    /// work, whose result the machine says.
    pub service_timer: Option<Duration>,
}

impl Report {
    pub fn new(tx: Sender<LabEvent>) -> Self {
        Report {
            tx,
            service_timer: None,
        }
    }
}

impl Service<Lab> for Report {
    type Done = u32;

    fn on_event(&mut self, cx: &mut Cx<'_, Lab, u32>, event: LabEvent) {
        if let (LabEvent::Accepted(..), Some(d)) = (&event, self.service_timer) {
            let at = cx.now().mono + d;
            cx.call_at(at, 7);
            // A cancelled timer never fires.
            cx.call_at(at, 8);
            cx.cancel_timer(8);
        }
        if let LabEvent::Datagram { bytes, .. } = &event {
            if bytes == b"stop" {
                cx.stop();
            }
        }
        let _ = self.tx.send(event);
    }

    fn on_timer(&mut self, cx: &mut Cx<'_, Lab, u32>, token: u64) {
        assert_eq!(token, 7, "cancelled timer fired");
        cx.spawn_blocking(|| {
            std::thread::sleep(Duration::from_millis(10));
            42
        });
    }

    fn on_done(&mut self, cx: &mut Cx<'_, Lab, u32>, done: u32) {
        cx.machine().say(&format!("done {done}\n"));
    }
}

/// Waits for an event matching `f`, failing after a few seconds.
pub fn expect<T>(
    rx: &Receiver<LabEvent>,
    what: &str,
    mut f: impl FnMut(&LabEvent) -> Option<T>,
) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(e) => {
                if let Some(t) = f(&e) {
                    return t;
                }
            }
            Err(_) => panic!("no {what} event within 5 s"),
        }
    }
}

/// A fresh Unix socket path under the temp dir.
pub fn unix_path(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let p = std::env::temp_dir().join(format!("twill-std-{tag}-{}-{n}.sock", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p.to_string_lossy().into_owned()
}

/// xorshift64*: deterministic test randomness.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}
