//! Tiny test machines and helpers shared by the mio driver's tests.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use twill_core::bytes::Bytes;
use twill_core::{
    Addr, Close, ConnId, Cx, Input, Instant, ListenerId, Machine, Now, OpenError, Output, Payload,
    Service,
};

/// What a [`Probe`] tells its service: every input it saw.
#[derive(Clone, Debug)]
pub enum Ev {
    Accepted {
        conn: ConnId,
        listener: ListenerId,
        local: Addr,
        peer: Addr,
    },
    Data {
        conn: ConnId,
        bytes: Vec<u8>,
    },
    Eof(ConnId),
    Opened {
        conn: ConnId,
        local: Addr,
        peer: Addr,
    },
    OpenFailed(ConnId, OpenError),
    Closed(ConnId),
    Datagram {
        sock: ConnId,
        from: SocketAddr,
        dst: IpAddr,
        bytes: Vec<u8>,
    },
    Timeout,
}

/// Unflushed output of a machine, as it counts it from `Transmit`s and
/// `Sent`s.
#[derive(Default, Debug)]
pub struct Pending {
    pub now: AtomicUsize,
    pub max: AtomicUsize,
}

/// A configurable test machine: echoes (streams and datagrams), reports
/// inputs as events, greets after a delay, and takes arbitrary outputs
/// pushed by commands (`Open`, `Splice`, `Close`, …).
#[derive(Default)]
pub struct Probe {
    /// Echo data back on the same connection / datagrams to the sender.
    pub echo: bool,
    /// Close gracefully when the peer finishes sending.
    pub close_on_eof: bool,
    /// Report every input as an event.
    pub report: bool,
    /// Send "tick\n" and close this long after a connection is accepted.
    pub tick_after: Option<Duration>,
    /// Send this on every accepted connection.
    pub greeting: Option<&'static [u8]>,
    pub pending: Option<Arc<Pending>>,
    /// Take no input (a short take of zero bytes) until released.
    pub hold: bool,
    ticks: Vec<(Instant, ConnId)>,
    out: VecDeque<Output<Ev>>,
}

impl Probe {
    pub fn echo() -> Probe {
        Probe {
            echo: true,
            close_on_eof: true,
            ..Probe::default()
        }
    }

    pub fn reporting() -> Probe {
        Probe {
            report: true,
            ..Probe::default()
        }
    }

    /// A command: queue any output.
    pub fn push(&mut self, o: Output<Ev>) {
        self.out.push_back(o);
    }

    pub fn send(&mut self, conn: ConnId, bytes: &[u8]) {
        self.transmit(conn, Bytes::copy_from_slice(bytes));
    }

    fn transmit(&mut self, conn: ConnId, bytes: Bytes) {
        if let Some(p) = &self.pending {
            let n = p.now.fetch_add(bytes.len(), Ordering::SeqCst) + bytes.len();
            p.max.fetch_max(n, Ordering::SeqCst);
        }
        self.out.push_back(Output::Transmit {
            conn,
            payload: Payload::Bytes(bytes),
        });
    }

    fn report(&mut self, e: Ev) {
        if self.report {
            self.out.push_back(Output::Event(e));
        }
    }
}

#[derive(Debug)]
pub struct Never;

impl std::fmt::Display for Never {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("never")
    }
}

impl std::error::Error for Never {}

impl Machine for Probe {
    type Event = Ev;
    type Error = Never;

    fn handle_input(&mut self, now: Now, input: Input<'_>) -> Result<usize, Never> {
        match input {
            Input::Accepted {
                conn,
                listener,
                local,
                peer,
            } => {
                if let Some(d) = self.tick_after {
                    self.ticks.push((now.mono + d, conn));
                }
                if let Some(g) = self.greeting {
                    self.send(conn, g);
                }
                self.report(Ev::Accepted {
                    conn,
                    listener,
                    local,
                    peer,
                });
            }
            Input::Data { conn, bytes } => {
                if self.hold {
                    self.report(Ev::Data {
                        conn,
                        bytes: Vec::new(),
                    });
                    return Ok(0);
                }
                if self.echo {
                    self.transmit(conn, Bytes::copy_from_slice(bytes));
                }
                self.report(Ev::Data {
                    conn,
                    bytes: bytes.to_vec(),
                });
                return Ok(bytes.len());
            }
            Input::Eof { conn, .. } => {
                if self.close_on_eof {
                    self.out.push_back(Output::Close {
                        conn,
                        how: Close::Graceful,
                    });
                }
                self.report(Ev::Eof(conn));
            }
            Input::Sent { bytes, .. } => {
                if let Some(p) = &self.pending {
                    p.now.fetch_sub(bytes, Ordering::SeqCst);
                }
            }
            Input::Opened { conn, local, peer } => self.report(Ev::Opened { conn, local, peer }),
            Input::OpenFailed { conn, error } => self.report(Ev::OpenFailed(conn, error)),
            Input::Closed { conn } => self.report(Ev::Closed(conn)),
            Input::Datagram {
                sock,
                from,
                dst,
                bytes,
                ..
            } => {
                if self.echo {
                    self.out.push_back(Output::SendTo {
                        sock,
                        to: from,
                        bytes: Bytes::copy_from_slice(bytes),
                    });
                }
                self.report(Ev::Datagram {
                    sock,
                    from,
                    dst,
                    bytes: bytes.to_vec(),
                });
            }
            _ => {}
        }
        Ok(0)
    }

    fn handle_timeout(&mut self, now: Now) {
        let due: Vec<ConnId> = self
            .ticks
            .iter()
            .filter(|(t, _)| *t <= now.mono)
            .map(|(_, c)| *c)
            .collect();
        self.ticks.retain(|(t, _)| *t > now.mono);
        for conn in due {
            self.send(conn, b"tick\n");
            self.out.push_back(Output::Close {
                conn,
                how: Close::Graceful,
            });
        }
        if self.report {
            self.out.push_back(Output::Event(Ev::Timeout));
        }
    }

    fn poll_output(&mut self) -> Output<Ev> {
        self.out.pop_front().unwrap_or(Output::Wait {
            deadline: self.ticks.iter().map(|(t, _)| *t).min(),
        })
    }
}

/// Forwards every event to a channel.
pub struct Report(pub mpsc::Sender<Ev>);

impl Service<Probe> for Report {
    type Done = ();
    fn on_event(&mut self, _cx: &mut Cx<'_, Probe, ()>, event: Ev) {
        let _ = self.0.send(event);
    }
}

/// Waits for an event matching `f` (skipping others), or panics.
pub fn expect<T>(rx: &mpsc::Receiver<Ev>, mut f: impl FnMut(&Ev) -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(e) => {
                if let Some(t) = f(&e) {
                    return t;
                }
            }
            Err(e) => panic!("no matching event: {e}"),
        }
    }
}

/// A small deterministic generator (xorshift) for random sizes.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// A fresh path for a Unix socket in the temp directory.
pub fn unix_path(name: &str) -> String {
    let dir = std::env::temp_dir();
    let p = dir.join(format!("twill-mio-{}-{name}.sock", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p.to_string_lossy().into_owned()
}
