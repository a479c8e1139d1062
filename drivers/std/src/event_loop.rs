//! The machine thread: one per [`Engine`]. It owns the engine, receives
//! everything that happens to the engine's sockets through one channel,
//! fires timers between events, and carries out the engine's actions.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use twill_core::service::Command;
use twill_core::{Addr, Close, Machine, Open, OpenError, Service};
use twill_driver::clock::until;
use twill_driver::{net, Action, Clock, Engine, Key, Pool, SlotId, SystemClock};

use crate::socket::{addr_of, ends, lock, spawn_io, Acceptor, StreamHandle, Udp, WriteCmd};

/// Connect timeout when a machine's `Open::Connect` names none.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything a machine thread hears about.
pub(crate) enum Ev<M, D> {
    /// A listener accepted a connection.
    Accepted {
        listener: Key,
        sock: Socket,
        local: Addr,
        peer: Addr,
    },
    /// A reader read `buf[..len]`; the buffer goes back to it.
    Data { key: Key, buf: Vec<u8>, len: usize },
    /// The peer finished sending.
    Eof(Key),
    /// The writer flushed this many bytes.
    Sent(Key, usize),
    /// Reset or failed; the socket is done.
    Gone(Key),
    /// The writer flushed and closed after `Close::Graceful`.
    Closed(Key),
    /// A connect (run on its own thread) finished.
    Opened {
        key: Key,
        result: io::Result<Socket>,
    },
    /// A datagram arrived.
    Datagram {
        key: Key,
        from: SocketAddr,
        dst: IpAddr,
        ifindex: u32,
        bytes: Vec<u8>,
    },
    /// A handle's command.
    Command(SlotId, Command<M>),
    /// Blocking work finished.
    Done(SlotId, D),
    /// Serving ends: abort everything and exit.
    Stop,
}

/// A request to stop the whole server, from `Running::stop` or a service.
#[derive(Default)]
pub(crate) struct StopSignal {
    requested: Mutex<bool>,
    cv: Condvar,
}

impl StopSignal {
    pub(crate) fn request(&self) {
        *lock(&self.requested) = true;
        self.cv.notify_all();
    }

    pub(crate) fn wait(&self) {
        let mut r = lock(&self.requested);
        while !*r {
            r = self.cv.wait(r).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// What every machine thread of one server shares.
pub(crate) struct Ctx {
    pub(crate) clock: SystemClock,
    pub(crate) pool: Pool,
    pub(crate) stop: Arc<StopSignal>,
    /// Set once stopping began: acceptors hand over nothing more.
    pub(crate) stopping: AtomicBool,
    /// Accepted connections with a machine thread of their own (factory
    /// mode), for the cap.
    pub(crate) live: AtomicUsize,
    /// Why serving failed (a hub or datagram machine panicked).
    pub(crate) failed: Mutex<Option<String>>,
}

/// The machine threads of one server, so that stopping reaches them all.
pub(crate) struct Registry<M, D> {
    inner: Mutex<RegInner<M, D>>,
    cv: Condvar,
}

struct RegInner<M, D> {
    next: u64,
    loops: HashMap<u64, Sender<Ev<M, D>>>,
    closed: bool,
}

impl<M, D> Registry<M, D> {
    pub(crate) fn new() -> Self {
        Registry {
            inner: Mutex::new(RegInner {
                next: 0,
                loops: HashMap::new(),
                closed: false,
            }),
            cv: Condvar::new(),
        }
    }

    /// Registers a machine thread; `None` once stopping.
    pub(crate) fn register(&self, tx: Sender<Ev<M, D>>) -> Option<u64> {
        let mut r = lock(&self.inner);
        if r.closed {
            return None;
        }
        r.next += 1;
        let id = r.next;
        r.loops.insert(id, tx);
        Some(id)
    }

    pub(crate) fn deregister(&self, id: u64) {
        lock(&self.inner).loops.remove(&id);
        self.cv.notify_all();
    }

    /// Tells every machine thread to stop and waits until all have.
    pub(crate) fn stop_all(&self) {
        let mut r = lock(&self.inner);
        r.closed = true;
        for tx in r.loops.values() {
            let _ = tx.send(Ev::Stop);
        }
        while !r.loops.is_empty() {
            r = self.cv.wait(r).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Deregisters a machine thread however it ends (a panicking machine
/// included), and gives back its place under the cap.
pub(crate) struct LoopGuard<M, D> {
    pub(crate) registry: Arc<Registry<M, D>>,
    pub(crate) id: u64,
    pub(crate) ctx: Arc<Ctx>,
    /// Whether this thread holds a place under the factory cap (a
    /// connection's thread); the others (hub, datagram endpoints) are the
    /// server itself, and their panic stops it.
    pub(crate) counted: bool,
}

impl<M, D> Drop for LoopGuard<M, D> {
    fn drop(&mut self) {
        if self.counted {
            self.ctx.live.fetch_sub(1, Ordering::SeqCst);
        } else if std::thread::panicking() {
            *lock(&self.ctx.failed) = Some("a machine thread panicked".into());
            self.ctx.stop.request();
        }
        self.registry.deregister(self.id);
    }
}

/// One socket of the engine, as the machine thread holds it.
enum Sock {
    Stream(StreamHandle),
    /// A connect in progress; writes and closes wait for it.
    Pending(Vec<WriteCmd>),
    Listener(Acceptor),
    Udp(Arc<Udp>),
}

/// The machine thread's state.
pub(crate) struct Loop<M: Machine, S: Service<M>> {
    pub(crate) engine: Engine<M, S>,
    tx: Sender<Ev<M, S::Done>>,
    rx: Receiver<Ev<M, S::Done>>,
    ctx: Arc<Ctx>,
    socks: twill_driver::IdMap<Key, Sock>,
    /// A factory connection's thread ends with its machine.
    exit_when_empty: bool,
    /// A connection was accepted (before that an empty engine is new, not
    /// finished).
    served: bool,
    done: bool,
}

impl<M, S> Loop<M, S>
where
    M: Machine + Send + 'static,
    S: Service<M> + Send + 'static,
    S::Done: Send + 'static,
{
    pub(crate) fn new(
        engine: Engine<M, S>,
        tx: Sender<Ev<M, S::Done>>,
        rx: Receiver<Ev<M, S::Done>>,
        ctx: Arc<Ctx>,
        exit_when_empty: bool,
    ) -> Self {
        Loop {
            engine,
            tx,
            rx,
            ctx,
            socks: twill_driver::IdMap::default(),
            exit_when_empty,
            served: false,
            done: false,
        }
    }

    fn now(&self) -> twill_core::Now {
        self.ctx.clock.now()
    }

    /// Registers an endpoint listener the server accepts on (its accepted
    /// connections arrive as [`Ev::Accepted`]).
    pub(crate) fn add_listener(&mut self) -> Key {
        let key = self.engine.new_key();
        self.engine.add_listener(key);
        key
    }

    /// Serves an endpoint datagram socket.
    pub(crate) fn add_udp(&mut self, sock: std::net::UdpSocket) -> io::Result<()> {
        let key = self.engine.new_key();
        let u = Udp::start(key, sock, &self.tx)?;
        self.socks.insert(key, Sock::Udp(u));
        let now = self.now();
        self.engine.add_socket(key, now);
        Ok(())
    }

    /// Takes an accepted connection.
    pub(crate) fn accept(&mut self, listener: Key, sock: Socket, local: Addr, peer: Addr) {
        self.served = true;
        let key = self.engine.new_key();
        let now = self.now();
        if self.engine.accept(listener, key, local, peer, now).is_err() {
            tracing::debug!("connection limit reached; closing a new connection");
            drop(sock);
            return;
        }
        let reading = self.engine.wants_read(key);
        match StreamHandle::start(key, sock, reading, &self.tx) {
            Ok(h) => {
                self.socks.insert(key, Sock::Stream(h));
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot start connection threads");
                let now = self.now();
                self.engine.closed(key, now);
            }
        }
    }

    /// Runs until stopped (or, for a factory connection, until its machine
    /// is gone).
    pub(crate) fn run(mut self) {
        loop {
            self.actions();
            if self.done {
                break;
            }
            if self.exit_when_empty
                && self.served
                && self.engine.machines() == 0
                && self.socks.is_empty()
            {
                break;
            }
            let now = self.now();
            let ev = match self.engine.next_deadline() {
                Some(d) if d <= now.mono => {
                    self.engine.timeout(now);
                    continue;
                }
                Some(d) => match self.rx.recv_timeout(until(now, d)) {
                    Ok(ev) => ev,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => break,
                },
                None => match self.rx.recv() {
                    Ok(ev) => ev,
                    Err(_) => break,
                },
            };
            self.handle(ev);
        }
        self.teardown();
    }

    /// A handle to send this thread events.
    pub(crate) fn sender(&self) -> Sender<Ev<M, S::Done>> {
        self.tx.clone()
    }

    fn handle(&mut self, ev: Ev<M, S::Done>) {
        let now = self.now();
        match ev {
            Ev::Accepted {
                listener,
                sock,
                local,
                peer,
            } => self.accept(listener, sock, local, peer),
            Ev::Data { key, buf, len } => {
                self.engine.data(key, &buf[..len], now);
                if let Some(Sock::Stream(h)) = self.socks.get(&key) {
                    h.handled(buf, self.engine.wants_read(key));
                }
            }
            Ev::Eof(key) => {
                if let Some(Sock::Stream(h)) = self.socks.get_mut(&key) {
                    if self.engine.wants_read(key) {
                        self.engine.eof(key, true, now);
                    } else {
                        h.eof_pending = true;
                    }
                }
            }
            Ev::Sent(key, n) => self.engine.sent(key, n, now),
            Ev::Gone(key) => {
                if let Some(Sock::Stream(h)) = self.socks.remove(&key) {
                    h.abort();
                    self.engine.closed(key, now);
                }
            }
            Ev::Closed(key) => {
                if let Some(Sock::Stream(h)) = self.socks.remove(&key) {
                    h.finish();
                    self.engine.closed(key, now);
                }
            }
            Ev::Opened { key, result } => self.opened(key, result),
            Ev::Datagram {
                key,
                from,
                dst,
                ifindex,
                bytes,
            } => {
                if let Some(Sock::Udp(u)) = self.socks.get(&key) {
                    u.queued.fetch_sub(1, Ordering::SeqCst);
                    self.engine.datagram(key, from, dst, ifindex, &bytes, now);
                }
            }
            Ev::Command(slot, f) => self.engine.call(slot, f, now),
            Ev::Done(slot, d) => self.engine.done(slot, d, now),
            Ev::Stop => self.done = true,
        }
    }

    /// Carries out what the engine asks until it asks nothing more.
    fn actions(&mut self) {
        while let Some(a) = self.engine.poll_action() {
            match a {
                Action::Write { key, chunk } => match self.socks.get_mut(&key) {
                    Some(Sock::Stream(h)) => h.send(WriteCmd::Chunk(chunk)),
                    Some(Sock::Pending(q)) => q.push(WriteCmd::Chunk(chunk)),
                    _ => tracing::debug!(key, "write to a socket that is gone"),
                },
                Action::SendTo { key, to, bytes } => {
                    if let Some(Sock::Udp(u)) = self.socks.get(&key) {
                        u.send_to(&bytes, to);
                    }
                }
                Action::Open { key, how } => self.open(key, how),
                Action::Multicast { key, op } => {
                    if let Some(Sock::Udp(u)) = self.socks.get(&key) {
                        if let Err(e) = net::multicast(&u.sock, &op) {
                            tracing::warn!(?op, error = %e, "multicast change failed");
                        }
                    }
                }
                Action::Read { key, on } => {
                    if let Some(Sock::Stream(h)) = self.socks.get_mut(&key) {
                        if on && h.eof_pending {
                            h.eof_pending = false;
                            let now = self.now();
                            self.engine.eof(key, true, now);
                        } else {
                            h.set_reading(on);
                        }
                    }
                }
                Action::Shutdown { key, how } => self.shutdown(key, how),
                Action::Spawn { slot, work } => {
                    let tx = self.tx.clone();
                    self.ctx.pool.execute(move || {
                        let d = work();
                        let _ = tx.send(Ev::Done(slot, d));
                    });
                }
                Action::Stop => self.ctx.stop.request(),
                other => tracing::debug!(?other, "action not supported"),
            }
        }
    }

    fn shutdown(&mut self, key: Key, how: Close) {
        let now = self.now();
        match self.socks.get_mut(&key) {
            Some(Sock::Stream(h)) => {
                if how == Close::Abort {
                    h.abort();
                    self.socks.remove(&key);
                    self.engine.closed(key, now);
                } else {
                    h.send(WriteCmd::Shutdown(how));
                }
            }
            Some(Sock::Pending(q)) => {
                if how == Close::Abort {
                    // The connect thread's result will find no one.
                    self.socks.remove(&key);
                    self.engine.closed(key, now);
                } else {
                    q.push(WriteCmd::Shutdown(how));
                }
            }
            Some(Sock::Listener(_)) | Some(Sock::Udp(_)) => {
                match self.socks.remove(&key) {
                    Some(Sock::Listener(a)) => a.stop(),
                    Some(Sock::Udp(u)) => u.close(),
                    _ => {}
                }
                self.engine.closed(key, now);
            }
            None => tracing::debug!(key, "close of a socket that is gone"),
        }
    }

    fn open(&mut self, key: Key, how: Open) {
        let now = self.now();
        match how {
            Open::Connect {
                host,
                port,
                timeout,
            } => {
                let timeout = timeout.unwrap_or(CONNECT_TIMEOUT);
                self.connect_in_background(key, move || connect_tcp(&host, port, Some(timeout)));
            }
            Open::ConnectUnix { path } => {
                self.connect_in_background(key, move || {
                    UnixStream::connect(&path).map(Socket::from)
                });
            }
            Open::Listen(addr) => {
                let tx = self.tx.clone();
                let started = net::bind_tcp(addr, 1024).and_then(|l| {
                    Acceptor::start(Socket::from(l), move |sock, local, peer| {
                        let _ = tx.send(Ev::Accepted {
                            listener: key,
                            sock,
                            local,
                            peer,
                        });
                    })
                });
                match started {
                    Ok(a) => {
                        let local = a.local_addr().map_or(Addr::Unknown, |a| addr_of(&a));
                        self.socks.insert(key, Sock::Listener(a));
                        self.engine.opened(key, local.clone(), local, now);
                    }
                    Err(e) => self.engine.open_failed(key, net::open_error(&e), now),
                }
            }
            Open::Bind { addr, join } => {
                let started = net::bind_udp(addr, &join).and_then(|s| {
                    let local = s.local_addr()?;
                    Ok((Udp::start(key, s, &self.tx)?, local))
                });
                match started {
                    Ok((u, local)) => {
                        self.socks.insert(key, Sock::Udp(u));
                        self.engine
                            .opened(key, Addr::Ip(local), Addr::Ip(local), now);
                    }
                    Err(e) => self.engine.open_failed(key, net::open_error(&e), now),
                }
            }
            other => {
                tracing::debug!(?other, "open not supported by the std driver");
                self.engine.open_failed(key, OpenError::Unsupported, now);
            }
        }
    }

    /// Resolving and connecting block, so they run on a thread of their
    /// own; the result comes back as [`Ev::Opened`].
    fn connect_in_background(
        &mut self,
        key: Key,
        connect: impl FnOnce() -> io::Result<Socket> + Send + 'static,
    ) {
        let tx = self.tx.clone();
        match spawn_io("twill-connect", move || {
            let _ = tx.send(Ev::Opened {
                key,
                result: connect(),
            });
        }) {
            Ok(_) => {
                self.socks.insert(key, Sock::Pending(Vec::new()));
            }
            Err(e) => {
                let now = self.now();
                self.engine.open_failed(key, net::open_error(&e), now);
            }
        }
    }

    fn opened(&mut self, key: Key, result: io::Result<Socket>) {
        let now = self.now();
        let Some(Sock::Pending(queued)) = self.socks.remove(&key) else {
            // Aborted while connecting: the socket just closes.
            return;
        };
        let sock = match result {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(key, error = %e, "connect failed");
                self.engine.open_failed(key, net::open_error(&e), now);
                return;
            }
        };
        let (local, peer) = ends(&sock);
        let reading = self.engine.wants_read(key);
        match StreamHandle::start(key, sock, reading, &self.tx) {
            Ok(h) => {
                for cmd in queued {
                    h.send(cmd);
                }
                self.socks.insert(key, Sock::Stream(h));
                self.engine.opened(key, local, peer, now);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot start connection threads");
                self.engine.open_failed(key, net::open_error(&e), now);
            }
        }
    }

    /// Serving ends: every connection is aborted, every socket closed.
    fn teardown(&mut self) {
        for (_, s) in self.socks.drain() {
            match s {
                Sock::Stream(h) => h.abort(),
                Sock::Pending(_) => {}
                Sock::Listener(a) => a.stop(),
                Sock::Udp(u) => u.close(),
            }
        }
    }
}

/// Resolves `host` and connects to the first address that answers.
pub(crate) fn connect_tcp(host: &str, port: u16, timeout: Option<Duration>) -> io::Result<Socket> {
    let mut last = None;
    for addr in net::resolve(host, port)? {
        let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        let sa = SockAddr::from(addr);
        let r = match timeout {
            Some(t) => s.connect_timeout(&sa, t),
            None => s.connect(&sa),
        };
        match r {
            Ok(()) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::from(io::ErrorKind::NotFound)))
}
