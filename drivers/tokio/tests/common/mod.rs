//! A small test machine that exercises the whole contract: it echoes (or
//! just records) stream data, answers datagrams, opens connections,
//! listeners and sockets on command, proxies with `Splice`, sets timers,
//! and logs everything it sees so tests can watch from outside.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant as StdInstant};

use bytes::Bytes;
use twill_core::{
    Addr, Close, ConnId, IdAllocator, Input, Instant, ListenerId, Machine, MulticastOp, Now, Open,
    OpenError, OutQueue, Output,
};

/// What the machine saw (also its event type).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    Accepted {
        conn: ConnId,
        listener: ListenerId,
    },
    Opened {
        conn: ConnId,
        local: Addr,
    },
    OpenFailed {
        conn: ConnId,
        error: OpenError,
    },
    /// Data on a connection that is not echoed.
    Data {
        conn: ConnId,
        bytes: Bytes,
    },
    Eof {
        conn: ConnId,
    },
    Closed {
        conn: ConnId,
    },
    Datagram {
        sock: ConnId,
        dst: std::net::IpAddr,
        bytes: Bytes,
    },
    Tick,
}

#[derive(Default)]
pub struct Stats {
    pub taken: AtomicUsize,
    pub max_pending: AtomicUsize,
}

pub type Log = Arc<Mutex<Vec<Note>>>;

pub fn log() -> Log {
    Arc::new(Mutex::new(Vec::new()))
}

pub fn notes(log: &Log) -> Vec<Note> {
    log.lock().unwrap().clone()
}

/// Polls `f` until it returns `Some`, or panics after `secs`.
pub fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = StdInstant::now() + Duration::from_secs(secs);
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(StdInstant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

struct C {
    echo: bool,
    pending: usize,
}

pub struct TestMachine {
    echo_accepted: bool,
    conns: HashMap<ConnId, C>,
    ids: IdAllocator,
    out: OutQueue<Note>,
    log: Log,
    stats: Arc<Stats>,
    /// Send "tick" on every connection and close them this long after
    /// each `Accepted`.
    pub tick: Option<Duration>,
    deadline: Option<Instant>,
    /// Open a connection here for every accepted one and splice the two.
    pub proxy_to: Option<(String, u16)>,
    splice_wait: HashMap<ConnId, ConnId>,
    /// Bytes to send on every connection we open, once opened.
    pub greeting: Option<Bytes>,
}

impl TestMachine {
    /// Echoes accepted connections; records data on opened ones.
    pub fn echo(log: Log, stats: Arc<Stats>) -> Self {
        TestMachine {
            echo_accepted: true,
            conns: HashMap::new(),
            ids: IdAllocator::for_machine(),
            out: OutQueue::new(),
            log,
            stats,
            tick: None,
            deadline: None,
            proxy_to: None,
            splice_wait: HashMap::new(),
            greeting: None,
        }
    }

    /// Records everything, echoes nothing (a client, or a server whose
    /// application replies).
    pub fn recorder(log: Log) -> Self {
        TestMachine {
            echo_accepted: false,
            ..TestMachine::echo(log, Arc::default())
        }
    }

    fn note(&mut self, n: Note) {
        self.log.lock().unwrap().push(n.clone());
        self.out.event(n);
    }

    // ---- commands ----

    pub fn open(&mut self, how: Open) -> ConnId {
        let conn = self.ids.next_id();
        self.out.push(Output::Open { conn, how });
        conn
    }

    pub fn send(&mut self, conn: ConnId, bytes: &[u8]) {
        self.out.transmit(conn, Bytes::copy_from_slice(bytes));
    }

    pub fn send_file(&mut self, conn: ConnId, id: twill_core::FileId, offset: u64, len: u64) {
        self.out.push(Output::Transmit {
            conn,
            payload: twill_core::Payload::File { id, offset, len },
        });
    }

    pub fn send_to(&mut self, sock: ConnId, to: std::net::SocketAddr, bytes: &[u8]) {
        self.out.push(Output::SendTo {
            sock,
            to,
            bytes: Bytes::copy_from_slice(bytes),
        });
    }

    pub fn close(&mut self, conn: ConnId, how: Close) {
        self.out.close(conn, how);
    }

    pub fn multicast(&mut self, sock: ConnId, op: MulticastOp) {
        self.out.push(Output::Multicast { sock, op });
    }

    pub fn broadcast(&mut self, bytes: &[u8]) {
        let mut conns: Vec<ConnId> = self.conns.keys().copied().collect();
        conns.sort();
        for c in conns {
            self.send(c, bytes);
        }
    }

    pub fn conns(&self) -> usize {
        self.conns.len()
    }
}

impl Machine for TestMachine {
    type Event = Note;
    type Error = std::io::Error;

    fn handle_input(&mut self, now: Now, input: Input<'_>) -> Result<usize, Self::Error> {
        match input {
            Input::Accepted { conn, listener, .. } => {
                self.conns.insert(
                    conn,
                    C {
                        echo: self.echo_accepted,
                        pending: 0,
                    },
                );
                self.note(Note::Accepted { conn, listener });
                if let Some(t) = self.tick {
                    self.deadline = Some(now.mono + t);
                }
                if let Some((host, port)) = self.proxy_to.clone() {
                    let back = self.open(Open::Connect {
                        host,
                        port,
                        timeout: None,
                    });
                    self.splice_wait.insert(back, conn);
                }
            }
            Input::Opened { conn, local, .. } => {
                self.conns.insert(
                    conn,
                    C {
                        echo: false,
                        pending: 0,
                    },
                );
                self.note(Note::Opened { conn, local });
                if let Some(front) = self.splice_wait.remove(&conn) {
                    self.out.push(Output::Splice { a: front, b: conn });
                } else if let Some(g) = self.greeting.clone() {
                    self.out.transmit(conn, g);
                }
            }
            Input::OpenFailed { conn, error } => {
                if let Some(front) = self.splice_wait.remove(&conn) {
                    self.out.close(front, Close::Abort);
                }
                self.note(Note::OpenFailed { conn, error });
            }
            Input::Data { conn, bytes } => {
                // Waiting for the backend: leave the bytes with the driver,
                // which relays them once spliced.
                if self.splice_wait.values().any(|f| *f == conn) {
                    return Ok(0);
                }
                let echo = self.conns.get(&conn).is_some_and(|c| c.echo);
                if echo {
                    self.out.buf.extend_from_slice(bytes);
                    self.out.transmit_buf(conn);
                    let c = self.conns.get_mut(&conn).unwrap();
                    c.pending += bytes.len();
                    self.stats
                        .max_pending
                        .fetch_max(c.pending, Ordering::SeqCst);
                    self.stats.taken.fetch_add(bytes.len(), Ordering::SeqCst);
                } else {
                    self.note(Note::Data {
                        conn,
                        bytes: Bytes::copy_from_slice(bytes),
                    });
                }
                return Ok(bytes.len());
            }
            Input::Sent { conn, bytes } => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.pending = c.pending.saturating_sub(bytes);
                }
            }
            Input::Eof { conn, .. } => {
                let echo = self.conns.get(&conn).is_some_and(|c| c.echo);
                self.note(Note::Eof { conn });
                if echo {
                    self.out.close(conn, Close::Graceful);
                }
            }
            Input::Closed { conn } => {
                self.conns.remove(&conn);
                self.note(Note::Closed { conn });
            }
            Input::Datagram {
                sock,
                from,
                dst,
                bytes,
                ..
            } => {
                self.note(Note::Datagram {
                    sock,
                    dst,
                    bytes: Bytes::copy_from_slice(bytes),
                });
                self.send_to(sock, from, bytes);
            }
            _ => {}
        }
        Ok(0)
    }

    fn handle_timeout(&mut self, now: Now) {
        if self.deadline.is_some_and(|d| d <= now.mono) {
            self.deadline = None;
            self.note(Note::Tick);
            let conns: Vec<ConnId> = self.conns.keys().copied().collect();
            for c in conns {
                self.send(c, b"tick\n");
                self.out.close(c, Close::Graceful);
            }
        }
    }

    fn poll_output(&mut self) -> Output<Note> {
        self.out.pop_or_wait(self.deadline)
    }
}
