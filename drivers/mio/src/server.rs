//! One server (or client) of a reactor: an `Engine` and the sockets that
//! carry out its actions.

use std::any::Any;
use std::fs::File;
use std::io::{self, IoSlice, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::os::unix::fs::FileExt;

use mio::event::Source;
use mio::net::{TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream};
use mio::{Interest, Token};
use twill_core::service::Command;
use twill_core::{Addr, ClientEndpoint, Close, Duration, Machine, Now, Open, OpenError, Service};
use twill_driver::engine::Key;
use twill_driver::{
    net, Action, BindError, Bound, Chunk, Engine, EngineConfig, LocalAddr, Mode, ServeOptions,
    SlotId,
};

use crate::reactor::{Core, Reactor};
use twill_driver::WriteQueue;

/// Bytes read from one connection per iteration before others get a turn.
const READ_BUDGET: usize = 256 * 1024;
/// Connections accepted from one listener per iteration.
const ACCEPT_BUDGET: usize = 128;
/// Datagrams read from one socket per iteration.
const DGRAM_BUDGET: usize = 64;
/// Slices per vectored write.
const MAX_IOV: usize = 64;
/// Connect timeout when the machine or endpoint gives none.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Wait before accepting again after running out of file descriptors.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// What a reactor needs of a server, whatever its machine type.
pub(crate) trait Served: Any {
    /// A readiness event for socket `key`; `hup`: the peer's half-close or
    /// an error was reported with it.
    fn ready(&mut self, core: &mut Core, key: Key, readable: bool, writable: bool, hup: bool);
    /// Socket `key` was queued to continue (fairness, or reading resumed).
    fn resume(&mut self, core: &mut Core, key: Key);
    /// The earliest engine timer.
    fn deadline(&mut self) -> Option<twill_core::Instant>;
    /// Fires due engine timers.
    fn timeout(&mut self, core: &mut Core, now: Now);
    /// Closes listeners and aborts connections.
    fn close_all(&mut self, core: &mut Core);
    /// For downcasting to the concrete server.
    fn as_any(&mut self) -> &mut dyn Any;
}

/// The socket behind a key.
enum Io {
    /// Waiting for name resolution on the pool.
    Resolving,
    /// A TCP connect in progress; more addresses to try after it.
    ConnectingTcp(TcpStream, Vec<SocketAddr>),
    /// A Unix connect in progress, to this path.
    ConnectingUnix(UnixStream, String),
    Tcp(TcpStream),
    Unix(UnixStream),
    TcpListener(TcpListener),
    /// With its path, removed on close when the endpoint bound it.
    UnixListener(UnixListener, Option<String>),
    /// With its local address, for datagrams without packet info.
    Udp(UdpSocket, IpAddr),
}

impl Io {
    fn source(&mut self) -> Option<&mut dyn Source> {
        Some(match self {
            Io::Resolving => return None,
            Io::ConnectingTcp(s, _) | Io::Tcp(s) => s,
            Io::ConnectingUnix(s, _) | Io::Unix(s) => s,
            Io::TcpListener(l) => l,
            Io::UnixListener(l, _) => l,
            Io::Udp(u, _) => u,
        })
    }

    fn is_stream(&self) -> bool {
        matches!(self, Io::Tcp(_) | Io::Unix(_))
    }

    fn is_connecting(&self) -> bool {
        matches!(
            self,
            Io::Resolving | Io::ConnectingTcp(..) | Io::ConnectingUnix(..)
        )
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Io::Tcp(s) => s.read(buf),
            Io::Unix(s) => s.read(buf),
            _ => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Io::Tcp(s) => s.write(buf),
            Io::Unix(s) => s.write(buf),
            _ => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn write_vectored(&mut self, iov: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Io::Tcp(s) => s.write_vectored(iov),
            Io::Unix(s) => s.write_vectored(iov),
            _ => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn sendfile(&mut self, file: &File, offset: u64, len: u64) -> io::Result<usize> {
        match self {
            Io::Tcp(s) => net::sendfile(s, file, offset, len),
            Io::Unix(s) => net::sendfile(s, file, offset, len),
            _ => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn shutdown_write(&mut self) {
        let r = match self {
            Io::Tcp(s) => s.shutdown(Shutdown::Write),
            Io::Unix(s) => s.shutdown(Shutdown::Write),
            _ => Ok(()),
        };
        if let Err(e) = r {
            tracing::debug!(error = %e, "shutdown(write) failed");
        }
    }

    fn set_abortive(&self) {
        match self {
            Io::Tcp(s) | Io::ConnectingTcp(s, _) => net::set_abortive(s),
            Io::Unix(s) | Io::ConnectingUnix(s, _) => net::set_abortive(s),
            _ => {}
        }
    }
}

/// One socket's state. Kept small: no read buffer (reads go through the
/// reactor's shared one) and a write queue that allocates only when used.
struct Sock {
    io: Io,
    token: Token,
    /// Readiness seen and not yet used up (edge-triggered events do not
    /// repeat, so a paused connection remembers it).
    readable: bool,
    /// A hang-up or error was reported: reads go on to the end of stream
    /// even after a short read.
    hup: bool,
    /// The peer finished sending.
    eof: bool,
    /// Registered for WRITABLE (only while the queue is not empty).
    write_interest: bool,
    /// Queued for the flush pass.
    dirty: bool,
    /// A close waiting for the queue to drain.
    shut: Option<Close>,
    queue: WriteQueue,
}

impl Sock {
    fn new(io: Io, token: Token) -> Sock {
        Sock {
            io,
            token,
            readable: false,
            hup: false,
            eof: false,
            write_interest: false,
            dirty: false,
            shut: None,
            queue: WriteQueue::Empty,
        }
    }

    fn interest(&self) -> Interest {
        if self.io.is_connecting() || !self.queue.is_empty() {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        }
    }

    /// Queues the socket (`key`) for the flush pass, once.
    #[inline]
    fn mark_dirty(&mut self, dirty: &mut Vec<Key>, key: Key) {
        if !self.dirty {
            self.dirty = true;
            dirty.push(key);
        }
    }

    /// Registers the socket again if whether it wants WRITABLE changed.
    #[inline]
    fn sync_interest(&mut self, registry: &mio::Registry) {
        let want = self.interest();
        if want.is_writable() != self.write_interest {
            let token = self.token;
            if let Some(src) = self.io.source() {
                if let Err(e) = registry.reregister(src, token, want) {
                    tracing::warn!(error = %e, "reregister failed");
                }
            }
            self.write_interest = want.is_writable();
        }
    }
}

/// A server of a reactor: one engine (factory or hub) and its sockets.
pub(crate) struct ServerState<M: Machine, S: Service<M>> {
    id: u64,
    pub(crate) engine: Engine<M, S>,
    socks: twill_driver::IdMap<Key, Sock>,
    dirty: Vec<Key>,
    /// A spare for `dirty`, so flush passes do not allocate.
    spare: Vec<Key>,
}

fn bind_err(ep: &twill_core::ServerEndpoint, e: io::Error) -> BindError {
    BindError {
        endpoint: ep.to_string(),
        message: e.to_string(),
        kind: e.kind(),
    }
}

impl<M, S> ServerState<M, S>
where
    M: Machine + 'static,
    S: Service<M> + 'static,
{
    fn new(id: u64, engine: Engine<M, S>) -> Self {
        ServerState {
            id,
            engine,
            socks: twill_driver::IdMap::default(),
            dirty: Vec::new(),
            spare: Vec::new(),
        }
    }

    /// Binds the endpoints and registers them.
    pub(crate) fn serve(
        core: &mut Core,
        id: u64,
        opts: ServeOptions,
        make: impl FnMut() -> (M, S) + Send + 'static,
    ) -> Result<(Self, Vec<LocalAddr>, Option<SlotId>), BindError> {
        let mut bound = Vec::with_capacity(opts.endpoints.len());
        for ep in &opts.endpoints {
            bound.push(net::bind(ep)?);
        }
        let mut srv = ServerState::new(id, Engine::new(opts.mode, opts.config, make));
        let now = core.now();
        let mut addrs = Vec::with_capacity(bound.len());
        let mut slots = Vec::new();
        for (b, ep) in bound.into_iter().zip(&opts.endpoints) {
            let key = srv.engine.new_key();
            let err = |e| bind_err(ep, e);
            match b {
                Bound::Tcp(l) => {
                    l.set_nonblocking(true).map_err(err)?;
                    addrs.push(LocalAddr::Tcp(l.local_addr().map_err(err)?));
                    srv.insert(core, key, Io::TcpListener(TcpListener::from_std(l)))
                        .map_err(err)?;
                    srv.engine.add_listener(key);
                }
                Bound::Unix(l, path) => {
                    l.set_nonblocking(true).map_err(err)?;
                    addrs.push(LocalAddr::Unix(path.clone()));
                    let io = Io::UnixListener(UnixListener::from_std(l), Some(path));
                    srv.insert(core, key, io).map_err(err)?;
                    srv.engine.add_listener(key);
                }
                Bound::Udp(u) => {
                    u.set_nonblocking(true).map_err(err)?;
                    let local = u.local_addr().map_err(err)?;
                    addrs.push(LocalAddr::Udp(local));
                    srv.insert(core, key, Io::Udp(UdpSocket::from_std(u), local.ip()))
                        .map_err(err)?;
                    slots.push(srv.engine.add_socket(key, now));
                }
            }
        }
        let hub = (opts.mode == Mode::Hub).then(|| srv.engine.hub());
        // Let new machines say what they want before any input (a hub that
        // opens its own listeners, say).
        slots.extend(hub);
        slots.dedup();
        for slot in slots {
            srv.engine.call(slot, Box::new(|_| {}), now);
        }
        srv.process(core);
        Ok((srv, addrs, hub))
    }

    /// A client: a hub engine of one machine and a connection to
    /// `endpoint` opened for it.
    pub(crate) fn client(
        core: &mut Core,
        id: u64,
        endpoint: &ClientEndpoint,
        machine: M,
        service: S,
    ) -> (Self, SlotId)
    where
        M: Send,
        S: Send,
    {
        let mut once = Some((machine, service));
        // A hub engine makes its machine once, on `hub()` just below.
        let engine = Engine::new(Mode::Hub, EngineConfig::default(), move || {
            once.take().expect("a client engine makes its machine once")
        });
        let mut srv = ServerState::new(id, engine);
        let slot = srv.engine.hub();
        let now = core.now();
        srv.engine.call(slot, Box::new(|_| {}), now);
        match srv.engine.connect_client(slot, now) {
            Ok((key, _conn)) => match endpoint {
                ClientEndpoint::Tcp {
                    host,
                    port,
                    timeout,
                    tls: None,
                } => srv.open(
                    core,
                    key,
                    Open::Connect {
                        host: host.clone(),
                        port: *port,
                        timeout: *timeout,
                    },
                ),
                ClientEndpoint::Unix { path, timeout } => {
                    srv.open(core, key, Open::ConnectUnix { path: path.clone() });
                    srv.connect_timer(core, key, *timeout);
                }
                _ => {
                    tracing::warn!(?endpoint, "this client endpoint needs a TLS layer");
                    srv.engine.open_failed(key, OpenError::Unsupported, now);
                }
            },
            Err(e) => tracing::warn!(error = %e, "client connection refused"),
        }
        srv.process(core);
        (srv, slot)
    }

    /// Runs a handle's command on a machine.
    pub(crate) fn call(&mut self, core: &mut Core, slot: SlotId, cmd: Command<M>) {
        let now = core.now();
        self.engine.call(slot, cmd, now);
        self.process(core);
    }

    // ---- sockets --------------------------------------------------------

    /// Adds a socket under `key`, registered for its interest.
    fn insert(&mut self, core: &mut Core, key: Key, io: Io) -> io::Result<()> {
        let token = Token(core.tokens.insert((self.id, key)));
        let mut sock = Sock::new(io, token);
        let interest = sock.interest();
        if let Some(src) = sock.io.source() {
            if let Err(e) = core.poll.registry().register(src, token, interest) {
                core.tokens.remove(token.0);
                return Err(e);
            }
        }
        sock.write_interest = interest.is_writable();
        self.socks.insert(key, sock);
        Ok(())
    }

    /// Removes and closes socket `key` (the caller reports it).
    fn drop_sock(&mut self, core: &mut Core, key: Key) {
        let Some(mut s) = self.socks.remove(&key) else {
            return;
        };
        core.tokens.try_remove(s.token.0);
        if let Some(src) = s.io.source() {
            let _ = core.poll.registry().deregister(src);
        }
        if let Io::UnixListener(_, Some(path)) = &s.io {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Closes `key` and tells the engine.
    fn close(&mut self, core: &mut Core, key: Key) {
        self.drop_sock(core, key);
        let now = core.now();
        self.engine.closed(key, now);
    }

    // ---- actions --------------------------------------------------------

    /// Carries out the engine's actions and flushes what they queued,
    /// until neither has more.
    pub(crate) fn process(&mut self, core: &mut Core) {
        loop {
            while let Some(a) = self.engine.poll_action() {
                self.act(core, a);
            }
            match self.dirty.len() {
                0 => return,
                // The usual pass: one socket. A key its flush queues again
                // waits for the actions polled first, as below.
                1 => {
                    if let Some(key) = self.dirty.pop() {
                        self.flush(core, key);
                    }
                    continue;
                }
                _ => {}
            }
            let mut dirty = std::mem::replace(&mut self.dirty, std::mem::take(&mut self.spare));
            for key in dirty.drain(..) {
                self.flush(core, key);
            }
            self.spare = dirty;
        }
    }

    fn mark_dirty(&mut self, key: Key) {
        if let Some(s) = self.socks.get_mut(&key) {
            s.mark_dirty(&mut self.dirty, key);
        }
    }

    fn act(&mut self, core: &mut Core, action: Action<S::Done>) {
        match action {
            Action::Write { key, chunk } => match self.socks.get_mut(&key) {
                Some(s) if s.shut.is_none() || s.shut == Some(Close::WriteHalf) => {
                    if !chunk.is_empty() {
                        s.queue.push(chunk);
                        s.mark_dirty(&mut self.dirty, key);
                    }
                }
                _ => tracing::debug!(key, "write to a closed socket dropped"),
            },
            Action::SendTo { key, to, bytes } => {
                if let Some(Sock {
                    io: Io::Udp(u, _), ..
                }) = self.socks.get(&key)
                {
                    // A full send buffer drops the datagram, as the network
                    // may; datagram protocols expect that.
                    if let Err(e) = u.send_to(&bytes, to) {
                        tracing::debug!(error = %e, %to, "datagram not sent");
                    }
                }
            }
            Action::Open { key, how } => self.open(core, key, how),
            Action::Multicast { key, op } => {
                if let Some(Sock {
                    io: Io::Udp(u, _), ..
                }) = self.socks.get(&key)
                {
                    if let Err(e) = net::multicast(u, &op) {
                        tracing::warn!(error = %e, ?op, "multicast change failed");
                    }
                }
            }
            // Stopping needs nothing here: `read_stream` asks the engine
            // before every read.
            Action::Read { on: false, .. } => {}
            Action::Read { key, on: true } => {
                if let Some(s) = self.socks.get(&key) {
                    // Readiness seen while paused is not reported again.
                    if s.readable && !s.eof {
                        core.again.push((self.id, key));
                    }
                }
            }
            Action::Shutdown { key, how } => match self.socks.get_mut(&key) {
                None => {
                    let now = core.now();
                    self.engine.closed(key, now);
                }
                Some(s) if how == Close::Abort || !s.io.is_stream() && !s.io.is_connecting() => {
                    if how == Close::Abort {
                        s.io.set_abortive();
                    }
                    self.close(core, key);
                }
                Some(s) => {
                    if s.shut != Some(Close::Graceful) {
                        s.shut = Some(how);
                    }
                    self.mark_dirty(key);
                }
            },
            Action::Spawn { slot, work } => {
                let sid = self.id;
                let post = core.poster();
                core.execute(move || {
                    let done = work();
                    post(Box::new(move |r: &mut Reactor| {
                        r.with_server::<M, S, _>(sid, |srv, core| {
                            let now = core.now();
                            srv.engine.done(slot, done, now);
                            srv.process(core);
                        });
                    }));
                });
            }
            Action::Stop => core.stop = true,
            other => tracing::warn!(?other, "action not supported by the mio driver"),
        }
    }

    fn open(&mut self, core: &mut Core, key: Key, how: Open) {
        let now = core.now();
        let r = match how {
            Open::Connect {
                host,
                port,
                timeout,
            } => {
                self.connect_timer(core, key, timeout);
                match host.parse::<IpAddr>() {
                    Ok(ip) => {
                        self.connect_tcp(core, key, vec![SocketAddr::new(ip, port)]);
                        return;
                    }
                    Err(_) => {
                        // Resolution blocks: it runs on the pool so other
                        // connections carry on.
                        let r = self.insert(core, key, Io::Resolving);
                        let (sid, post) = (self.id, core.poster());
                        core.execute(move || {
                            let addrs = net::resolve(&host, port);
                            post(Box::new(move |r: &mut Reactor| {
                                r.with_server::<M, S, _>(sid, |srv, core| {
                                    srv.resolved(core, key, addrs);
                                    srv.process(core);
                                });
                            }));
                        });
                        r.map(|_| None)
                    }
                }
            }
            Open::ConnectUnix { path } => UnixStream::connect(&path).and_then(|s| {
                self.insert(core, key, Io::ConnectingUnix(s, path))
                    .map(|_| None)
            }),
            Open::Listen(addr) => net::bind_tcp(addr, 1024).and_then(|l| {
                l.set_nonblocking(true)?;
                let local = l.local_addr()?;
                self.insert(core, key, Io::TcpListener(TcpListener::from_std(l)))?;
                Ok(Some((Addr::Ip(local), Addr::Ip(local))))
            }),
            Open::Bind { addr, join } => net::bind_udp(addr, &join).and_then(|u| {
                u.set_nonblocking(true)?;
                let local = u.local_addr()?;
                self.insert(core, key, Io::Udp(UdpSocket::from_std(u), local.ip()))?;
                Ok(Some((Addr::Ip(local), Addr::Ip(local))))
            }),
            other => {
                tracing::debug!(?other, "open not supported by the mio driver");
                Err(io::ErrorKind::Unsupported.into())
            }
        };
        match r {
            Ok(Some((local, peer))) => self.engine.opened(key, local, peer, now),
            Ok(None) => {}
            Err(e) => {
                self.drop_sock(core, key);
                self.engine.open_failed(key, net::open_error(&e), now);
            }
        }
    }

    /// Fails the connect of `key` if it has not completed by then.
    fn connect_timer(&mut self, core: &mut Core, key: Key, timeout: Option<Duration>) {
        let at = core.now().mono + timeout.unwrap_or(CONNECT_TIMEOUT);
        let sid = self.id;
        core.call_at(
            at,
            Box::new(move |r: &mut Reactor| {
                r.with_server::<M, S, _>(sid, |srv, core| {
                    if srv.socks.get(&key).is_some_and(|s| s.io.is_connecting()) {
                        srv.drop_sock(core, key);
                        let now = core.now();
                        srv.engine.open_failed(key, OpenError::TimedOut, now);
                        srv.process(core);
                    }
                });
            }),
        );
    }

    fn resolved(&mut self, core: &mut Core, key: Key, addrs: io::Result<Vec<SocketAddr>>) {
        if !matches!(
            self.socks.get(&key),
            Some(Sock {
                io: Io::Resolving,
                ..
            })
        ) {
            return; // timed out or closed meanwhile
        }
        match addrs {
            Ok(addrs) => {
                self.drop_sock(core, key);
                self.connect_tcp(core, key, addrs);
            }
            Err(e) => {
                self.drop_sock(core, key);
                let now = core.now();
                self.engine.open_failed(key, net::open_error(&e), now);
            }
        }
    }

    /// Starts a non-blocking connect to the first address that takes one;
    /// the rest are tried if it fails.
    fn connect_tcp(&mut self, core: &mut Core, key: Key, mut addrs: Vec<SocketAddr>) {
        addrs.reverse();
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no addresses");
        while let Some(a) = addrs.pop() {
            match TcpStream::connect(a).and_then(|s| {
                let _ = s.set_nodelay(true);
                self.insert(core, key, Io::ConnectingTcp(s, std::mem::take(&mut addrs)))
            }) {
                Ok(()) => return,
                Err(e) => last = e,
            }
        }
        let now = core.now();
        self.engine.open_failed(key, net::open_error(&last), now);
    }

    /// A connecting socket became ready: done, failed, or not yet.
    fn check_connect(&mut self, core: &mut Core, key: Key) {
        let Some(s) = self.socks.get_mut(&key) else {
            return;
        };
        let state = match &s.io {
            Io::ConnectingTcp(t, _) => match t.take_error() {
                Ok(Some(e)) | Err(e) => Err(e),
                Ok(None) => match (t.local_addr(), t.peer_addr()) {
                    (Ok(l), Ok(p)) => Ok(Some((Addr::Ip(l), Addr::Ip(p)))),
                    (_, Err(e)) if e.kind() == io::ErrorKind::NotConnected => Ok(None),
                    (Err(e), _) | (_, Err(e)) => Err(e),
                },
            },
            Io::ConnectingUnix(u, path) => match u.take_error() {
                Ok(Some(e)) | Err(e) => Err(e),
                Ok(None) => match u.peer_addr() {
                    Ok(_) => Ok(Some((Addr::Unix(None), Addr::Unix(Some(path.clone()))))),
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(None),
                    Err(e) => Err(e),
                },
            },
            _ => return,
        };
        let now = core.now();
        match state {
            Ok(None) => {}
            Ok(Some((local, peer))) => {
                s.io = match std::mem::replace(&mut s.io, Io::Resolving) {
                    Io::ConnectingTcp(t, _) => Io::Tcp(t),
                    Io::ConnectingUnix(u, _) => Io::Unix(u),
                    other => other,
                };
                // Whatever arrived with the handshake is read below.
                s.readable = true;
                let queued = !s.queue.is_empty() || s.shut.is_some();
                s.sync_interest(core.poll.registry());
                self.engine.opened(key, local, peer, now);
                if queued {
                    self.mark_dirty(key);
                }
                self.process(core);
                self.read_stream(core, key, READ_BUDGET);
            }
            Err(e) => {
                let rest = match &mut s.io {
                    Io::ConnectingTcp(_, rest) => std::mem::take(rest),
                    _ => Vec::new(),
                };
                self.drop_sock(core, key);
                if rest.is_empty() {
                    tracing::debug!(error = %e, "connect failed");
                    self.engine.open_failed(key, net::open_error(&e), now);
                } else {
                    self.connect_tcp(core, key, rest);
                }
                self.process(core);
            }
        }
    }

    // ---- reading --------------------------------------------------------

    /// Reads a stream until it would block, the machine pauses it, or its
    /// share of this iteration (`budget` bytes) is used up (then it is
    /// queued to continue).
    fn read_stream(&mut self, core: &mut Core, key: Key, mut budget: usize) {
        loop {
            let Some(s) = self.socks.get_mut(&key) else {
                return;
            };
            let step = read_once(self.id, s, &mut self.engine, core, key, &mut budget);
            if !self.after_read(core, key, step) {
                return;
            }
        }
    }

    /// Carries out what a read led to; whether to read again.
    fn after_read(&mut self, core: &mut Core, key: Key, step: ReadStep) -> bool {
        match step {
            ReadStep::Stop => false,
            // Only a new event makes a drained socket readable again, and
            // none comes in `process`: no need to look at it again.
            ReadStep::Delivered { drained } => {
                self.process(core);
                !drained
            }
            ReadStep::Failed(e) => {
                tracing::debug!(error = %e, key, "read failed; closing");
                self.close(core, key);
                self.process(core);
                false
            }
        }
    }

    fn accept(&mut self, core: &mut Core, lkey: Key) {
        for _ in 0..ACCEPT_BUDGET {
            let Some(s) = self.socks.get_mut(&lkey) else {
                return;
            };
            let r = match &s.io {
                Io::TcpListener(l) => l.accept().map(|(t, peer)| {
                    // Replies are written whole per drain; Nagle would only
                    // hold the last segment of each back for an ACK.
                    let _ = t.set_nodelay(true);
                    let local = t.local_addr().map_or(Addr::Unknown, Addr::Ip);
                    (Io::Tcp(t), local, Addr::Ip(peer))
                }),
                Io::UnixListener(l, path) => l
                    .accept()
                    .map(|(u, _)| (Io::Unix(u), Addr::Unix(path.clone()), Addr::Unix(None))),
                _ => return,
            };
            match r {
                Ok((io, local, peer)) => {
                    let key = self.engine.new_key();
                    if let Err(e) = self.insert(core, key, io) {
                        tracing::warn!(error = %e, "registering an accepted socket failed");
                        continue;
                    }
                    let now = core.now();
                    if self.engine.accept(lkey, key, local, peer, now).is_err() {
                        tracing::debug!("connection cap reached; closing the new connection");
                        self.drop_sock(core, key);
                    }
                    self.process(core);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    s.readable = false;
                    return;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) => {}
                Err(e) => {
                    // Out of descriptors or memory: the pending connections
                    // stay queued and no new edge will come, so look again
                    // a little later.
                    tracing::warn!(error = %e, "accept failed; retrying shortly");
                    let (sid, at) = (self.id, core.now().mono + ACCEPT_RETRY);
                    core.call_at(
                        at,
                        Box::new(move |r: &mut Reactor| {
                            r.with_server::<M, S, _>(sid, |srv, core| srv.accept(core, lkey));
                        }),
                    );
                    return;
                }
            }
        }
        core.again.push((self.id, lkey));
    }

    fn recv(&mut self, core: &mut Core, key: Key) {
        for _ in 0..DGRAM_BUDGET {
            let Some(s) = self.socks.get_mut(&key) else {
                return;
            };
            let Io::Udp(u, local) = &s.io else {
                return;
            };
            match net::recv_datagram(u, &mut core.buf, *local) {
                Ok(m) => {
                    let now = core.now();
                    self.engine
                        .datagram(key, m.from, m.dst, m.ifindex, &core.buf[..m.len], now);
                    self.process(core);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    s.readable = false;
                    return;
                }
                // ICMP errors of earlier sends surface here; the socket
                // is fine.
                Err(e) => tracing::debug!(error = %e, "recv failed"),
            }
        }
        core.again.push((self.id, key));
    }

    // ---- writing --------------------------------------------------------

    /// Writes the queue until it is empty or the socket would block, then
    /// carries out a pending close.
    ///
    /// One look-up of the socket serves the whole flush: the engine only
    /// queues actions, so the socket stays put across `sent`.
    fn flush(&mut self, core: &mut Core, key: Key) {
        let Some(s) = self.socks.get_mut(&key) else {
            return;
        };
        // Flushed now: a pass this key is still queued for finds nothing
        // to do, or what came since.
        s.dirty = false;
        if !s.io.is_stream() {
            return; // connecting: flushed once connected
        }
        let (total, r) = write_queue(&mut s.io, &mut s.queue, &mut core.buf);
        if let Err(e) = r {
            tracing::debug!(error = %e, key, "write failed; closing");
            self.close(core, key);
            return;
        }
        s.sync_interest(core.poll.registry());
        if total > 0 {
            self.engine.sent(key, total, core.now());
        }
        if !s.queue.is_empty() {
            return;
        }
        match s.shut {
            None => {}
            // What the `Sent` above made the machine say goes out first.
            Some(_) if self.engine.has_actions() => s.mark_dirty(&mut self.dirty, key),
            Some(Close::WriteHalf) => {
                s.shut = None;
                s.io.shutdown_write();
            }
            Some(_) => self.close(core, key),
        }
    }
}

/// What one read of a stream came to.
enum ReadStep {
    /// Nothing read: not readable, paused, or out of budget.
    Stop,
    /// Bytes or the end of stream went to the engine; `drained`: the
    /// socket has nothing more until its next event.
    Delivered { drained: bool },
    /// The read failed: the connection must close.
    Failed(io::Error),
}

/// Reads stream `s` (`key` of server `id`) once and hands what came to the
/// engine, unless it is not readable, the engine paused it, or `budget`
/// is used up (then it is queued to continue next iteration).
fn read_once<M: Machine, S: Service<M>>(
    id: u64,
    s: &mut Sock,
    engine: &mut Engine<M, S>,
    core: &mut Core,
    key: Key,
    budget: &mut usize,
) -> ReadStep {
    loop {
        if !s.readable || s.eof || !s.io.is_stream() || !engine.wants_read(key) {
            return ReadStep::Stop;
        }
        if *budget == 0 {
            core.again.push((id, key));
            return ReadStep::Stop;
        }
        let r = s.io.read(&mut core.buf);
        let now = core.now();
        return match r {
            Ok(0) => {
                s.readable = false;
                s.eof = true;
                engine.eof(key, true, now);
                ReadStep::Delivered { drained: true }
            }
            Ok(n) => {
                *budget = budget.saturating_sub(n);
                // A read that did not fill the buffer emptied the socket:
                // with edge-triggered readiness, more data brings a new
                // event, so the read that would only say "would block" is
                // skipped (one syscall per request on a keep-alive
                // connection). A reported hang-up still needs the read
                // that returns the end.
                if n < core.buf.len() && !s.hup {
                    s.readable = false;
                }
                engine.data(key, &core.buf[..n], now);
                ReadStep::Delivered {
                    drained: !s.readable,
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                s.readable = false;
                ReadStep::Stop
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => ReadStep::Failed(e),
        };
    }
}

/// Writes queued chunks with vectored writes (and `sendfile` for file
/// ranges) until the queue is empty or the socket would block. Returns the
/// bytes written and the error that stopped it, if any.
fn write_queue(io: &mut Io, queue: &mut WriteQueue, scratch: &mut [u8]) -> (usize, io::Result<()>) {
    let mut total = 0;
    loop {
        let r = match queue.front() {
            None => return (total, Ok(())),
            Some(Chunk::File { file, offset, len }) => {
                let (off, rest) = (*offset, *len);
                match io.sendfile(file, off, rest) {
                    Err(e) if no_sendfile(&e) => {
                        // No sendfile for this pair: copy through memory.
                        let want = usize::try_from(rest)
                            .unwrap_or(usize::MAX)
                            .min(scratch.len());
                        match file.read_at(&mut scratch[..want], off) {
                            Ok(0) => Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                "file shorter than the range sent",
                            )),
                            Ok(n) => io.write(&scratch[..n]),
                            Err(e) => Err(e),
                        }
                    }
                    r => r,
                }
            }
            Some(Chunk::Bytes(b)) if !matches!(queue.get(1), Some(Chunk::Bytes(_))) => {
                // One chunk (a reply, or a pipelined batch of them): a
                // plain write, with no iovec array to fill.
                io.write(b)
            }
            Some(Chunk::Bytes(_)) => {
                let mut iov = [IoSlice::new(&[]); MAX_IOV];
                let mut n = 0;
                for c in queue.iter() {
                    let Chunk::Bytes(b) = c else { break };
                    if n == MAX_IOV {
                        break;
                    }
                    iov[n] = IoSlice::new(b);
                    n += 1;
                }
                io.write_vectored(&iov[..n])
            }
        };
        match r {
            Ok(0) => return (total, Err(io::ErrorKind::WriteZero.into())),
            Ok(n) => {
                total += n;
                queue.consume(n as u64);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return (total, Ok(())),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (total, Err(e)),
        }
    }
}

/// `sendfile` cannot move bytes between this file and socket.
fn no_sendfile(e: &io::Error) -> bool {
    use nix::errno::Errno;
    matches!(
        e.raw_os_error().map(Errno::from_raw),
        Some(Errno::EINVAL | Errno::ENOSYS)
    )
}

impl<M, S> Served for ServerState<M, S>
where
    M: Machine + 'static,
    S: Service<M> + 'static,
{
    fn ready(&mut self, core: &mut Core, key: Key, readable: bool, writable: bool, hup: bool) {
        let Some(s) = self.socks.get_mut(&key) else {
            return;
        };
        s.hup |= hup;
        match s.io {
            Io::Resolving => {}
            Io::ConnectingTcp(..) | Io::ConnectingUnix(..) => self.check_connect(core, key),
            Io::TcpListener(_) | Io::UnixListener(..) => {
                s.readable |= readable;
                self.accept(core, key);
            }
            Io::Udp(..) => {
                s.readable |= readable;
                self.recv(core, key);
            }
            Io::Tcp(_) | Io::Unix(_) => {
                s.readable |= readable;
                if writable && !s.queue.is_empty() {
                    self.flush(core, key);
                    self.process(core);
                    self.read_stream(core, key, READ_BUDGET);
                    return;
                }
                // The first read uses the look-up above.
                let mut budget = READ_BUDGET;
                let step = read_once(self.id, s, &mut self.engine, core, key, &mut budget);
                if self.after_read(core, key, step) {
                    self.read_stream(core, key, budget);
                }
            }
        }
    }

    fn resume(&mut self, core: &mut Core, key: Key) {
        let Some(s) = self.socks.get(&key) else {
            return;
        };
        match s.io {
            Io::TcpListener(_) | Io::UnixListener(..) => self.accept(core, key),
            Io::Udp(..) => self.recv(core, key),
            Io::Tcp(_) | Io::Unix(_) => self.read_stream(core, key, READ_BUDGET),
            _ => {}
        }
    }

    fn deadline(&mut self) -> Option<twill_core::Instant> {
        self.engine.next_deadline()
    }

    fn timeout(&mut self, core: &mut Core, now: Now) {
        self.engine.timeout(now);
        self.process(core);
    }

    fn close_all(&mut self, core: &mut Core) {
        self.engine.shutdown_all();
        self.process(core);
        // Endpoint listeners are the driver's own: the engine does not
        // list them.
        let keys: Vec<Key> = self.socks.keys().copied().collect();
        for key in keys {
            if let Some(s) = self.socks.get(&key) {
                s.io.set_abortive();
            }
            self.close(core, key);
        }
        self.process(core);
    }

    fn as_any(&mut self) -> &mut dyn Any {
        self
    }
}
#[cfg(test)]
mod tmp_size {
    #[test]
    fn sizes() {
        eprintln!(
            "SIZES sock {} wq {} vd {} chunk {} io {}",
            std::mem::size_of::<super::Sock>(),
            std::mem::size_of::<twill_driver::WriteQueue>(),
            std::mem::size_of::<std::collections::VecDeque<twill_driver::Chunk>>(),
            std::mem::size_of::<twill_driver::Chunk>(),
            std::mem::size_of::<super::Io>()
        );
    }
}
