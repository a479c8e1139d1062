//! The async application API: a [`Conn`] is one machine on one connection
//! (a client's, or one a [`Listener`] accepted), driven while the
//! application awaits [`Conn::next_event`] or [`Conn::flush`].
//!
//! Underneath, a `Conn` is the same engine and reactor the server runs
//! (so short takes, `Resume`, `Sent`, timers, `Close` and even
//! machine-opened connections behave exactly as served), hosting the
//! machine as a hub. All state lives in the `Conn`, none in the futures
//! its methods return: dropping a `next_event()` future — a `select!`
//! that took another branch, a `timeout` — loses no byte and no event.

use std::cell::{RefCell, RefMut};
use std::collections::VecDeque;
use std::future::Future;
use std::io;

use twill_core::service::{Command, Ignore};
use twill_core::{
    Addr, ClientEndpoint, ConnId, Input, Machine, Now, Open, OpenError, Output, ServerEndpoint,
};
use twill_driver::engine::{Engine, EngineConfig, Key, Mode, SlotId};
use twill_driver::{net, BindError, LocalAddr, SlotHandle};

use crate::io::{
    accept_error_is_transient, register, remove_socket_files, Endpoint, ListenIo, Stream,
};
use crate::reactor::{Core, Ev, WriteState};

/// Events the application has not taken yet; past this a `Conn` stops
/// reading until it does (so `flush` without `next_event` stays bounded).
const MAX_QUEUED_EVENTS: usize = 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    Connecting,
    Open,
    Failed(OpenError),
    Closed,
}

struct State<M: Machine> {
    machine: M,
    events: VecDeque<M::Event>,
    primary: Option<ConnId>,
    phase: Phase,
    eof: bool,
    local: Addr,
    peer: Addr,
    /// The machine returned `Err` (application misuse), not yet reported.
    error: Option<String>,
}

/// The machine as the engine hosts it: the application's machine, its
/// events kept for [`Conn::next_event`], and what became of the primary
/// connection. The cell lets the `Conn` reach the machine through the
/// engine (which only lends `&`); the engine itself uses `get_mut`.
pub(crate) struct Hosted<M: Machine> {
    cell: RefCell<State<M>>,
}

impl<M: Machine> Machine for Hosted<M> {
    type Event = M::Event;
    type Error = M::Error;

    fn handle_input(&mut self, now: Now, input: Input<'_>) -> Result<usize, M::Error> {
        let st = self.cell.get_mut();
        match &input {
            Input::Accepted {
                conn, local, peer, ..
            } if st.primary.is_none() => {
                st.primary = Some(*conn);
                st.phase = Phase::Open;
                st.local = local.clone();
                st.peer = peer.clone();
            }
            Input::Opened { conn, local, peer } if st.primary == Some(*conn) => {
                st.phase = Phase::Open;
                st.local = local.clone();
                st.peer = peer.clone();
            }
            Input::OpenFailed { conn, error } if st.primary == Some(*conn) => {
                st.phase = Phase::Failed(error.clone());
            }
            Input::Eof { conn, .. } if st.primary == Some(*conn) => st.eof = true,
            Input::Closed { conn } if st.primary == Some(*conn) => st.phase = Phase::Closed,
            _ => {}
        }
        st.machine.handle_input(now, input).inspect_err(|e| {
            if st.error.is_none() {
                st.error = Some(e.to_string());
            }
        })
    }

    fn handle_timeout(&mut self, now: Now) {
        self.cell.get_mut().machine.handle_timeout(now);
    }

    fn wants_sent(&self, conn: ConnId) -> bool {
        // Borrowed elsewhere (never while the engine reports a flush):
        // the safe answer is yes.
        self.cell
            .try_borrow()
            .map_or(true, |st| st.machine.wants_sent(conn))
    }

    fn poll_output(&mut self) -> Output<M::Event> {
        let st = self.cell.get_mut();
        loop {
            match st.machine.poll_output() {
                Output::Event(e) => st.events.push_back(e),
                other => return other,
            }
        }
    }
}

/// One machine on one connection, driven by awaiting its methods.
///
/// ```no_run
/// # async fn demo<M: twill_core::Machine + Send + 'static>(m: M) -> std::io::Result<()>
/// # where M::Event: std::fmt::Debug {
/// let ep = "tcp:localhost:7".parse().unwrap();
/// let mut conn = twill_tokio::Conn::connect(&ep, m).await?;
/// while let Some(ev) = conn.next_event().await? {
///     println!("{ev:?}");
/// }
/// # Ok(()) }
/// ```
pub struct Conn<M: Machine + Send + 'static> {
    core: Core<Hosted<M>, Ignore>,
    slot: SlotId,
    key: Key,
    /// A reset was reported once; later calls say `None`.
    failed: bool,
}

impl<M: Machine + Send + 'static> std::fmt::Debug for Conn<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl<M: Machine + Send + 'static> Conn<M> {
    fn host(machine: M) -> (Core<Hosted<M>, Ignore>, SlotId) {
        let mut machine = Some(machine);
        let mut engine = Engine::new(Mode::Hub, EngineConfig::default(), move || {
            let machine = machine
                .take()
                .expect("a Conn's engine makes its one machine once");
            let st = State {
                machine,
                events: VecDeque::new(),
                primary: None,
                phase: Phase::Connecting,
                eof: false,
                local: Addr::Unknown,
                peer: Addr::Unknown,
                error: None,
            };
            (
                Hosted {
                    cell: RefCell::new(st),
                },
                Ignore,
            )
        });
        let slot = engine.hub();
        (Core::new(engine, None), slot)
    }

    /// Connects to `endpoint` (`tcp:` or `unix:`; `tls:` needs the TLS
    /// layer around the machine) and feeds the machine `Opened` for a
    /// connection id the driver chose ([`Conn::conn_id`]).
    pub async fn connect(endpoint: &ClientEndpoint, machine: M) -> io::Result<Conn<M>> {
        let (how, timeout) = match endpoint {
            ClientEndpoint::Tcp {
                host,
                port,
                timeout,
                tls: None,
            } => (
                Open::Connect {
                    host: host.clone(),
                    port: *port,
                    timeout: *timeout,
                },
                None,
            ),
            ClientEndpoint::Unix { path, timeout } => {
                (Open::ConnectUnix { path: path.clone() }, *timeout)
            }
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("{other}: TLS needs the TLS layer around the machine"),
                ))
            }
        };
        let (mut core, slot) = Self::host(machine);
        let now = core.now();
        let (key, id) = core
            .engine
            .connect_client(slot, now)
            .map_err(|e| io::Error::other(e.to_string()))?;
        core.watch = Some(key);
        let mut conn = Conn {
            core,
            slot,
            key,
            failed: false,
        };
        conn.state().primary = Some(id);
        conn.core.start_connect(key, how);
        let opened = async {
            loop {
                conn.core.step();
                let phase = conn.state().phase.clone();
                match phase {
                    Phase::Connecting => conn.core.pause().await,
                    Phase::Failed(e) => {
                        return Err(conn
                            .core
                            .watch_error
                            .take()
                            .unwrap_or_else(|| open_error_to_io(e)))
                    }
                    Phase::Open | Phase::Closed => return Ok(()),
                }
            }
        };
        match timeout {
            Some(t) => tokio::time::timeout(t, opened)
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??,
            None => opened.await?,
        }
        Ok(conn)
    }

    /// A connection a listener accepted: the machine gets `Accepted`.
    pub(crate) fn accepted(io: Stream, machine: M) -> Conn<M> {
        let (mut core, slot) = Self::host(machine);
        let listener = core.engine.new_key();
        core.engine.add_listener(listener);
        let key = core.add_accepted(listener, io, None).unwrap_or(0);
        core.watch = Some(key);
        Conn {
            core,
            slot,
            key,
            failed: false,
        }
    }

    fn state(&self) -> RefMut<'_, State<M>> {
        match self.core.engine.machine(self.slot) {
            Some(h) => h.cell.borrow_mut(),
            // The hub slot lives as long as the engine.
            None => unreachable!("a Conn's machine is never dropped"),
        }
    }

    /// The machine, to call its commands. What they queue goes out on the
    /// next [`Conn::flush`] or [`Conn::next_event`].
    pub fn machine(&mut self) -> RefMut<'_, M> {
        RefMut::map(self.state(), |s| &mut s.machine)
    }

    /// The connection's id as the machine knows it.
    pub fn conn_id(&self) -> ConnId {
        self.state().primary.unwrap_or(ConnId(0))
    }

    /// Our end of the connection.
    pub fn local_addr(&self) -> Addr {
        self.state().local.clone()
    }

    /// The peer's end.
    pub fn peer_addr(&self) -> Addr {
        self.state().peer.clone()
    }

    /// A handle for other tasks and threads: its commands run (and are
    /// drained) while this `Conn` is being driven by `next_event`/`flush`.
    pub fn handle(&self) -> SlotHandle<M> {
        let tx = self.core.sender();
        SlotHandle::new(self.slot, move |slot, f: Command<M>| {
            let f: Command<Hosted<M>> =
                Box::new(move |h: &mut Hosted<M>| f(&mut h.cell.get_mut().machine));
            tx.send(Ev::Call(slot, f))
        })
    }

    /// Whether the connection is gone (closed, reset or never opened).
    pub fn is_closed(&self) -> bool {
        matches!(self.state().phase, Phase::Closed | Phase::Failed(_))
    }

    /// Drains the machine (the application may have called commands) and
    /// applies the engine's back-pressure on our event queue.
    fn prepare(&mut self) {
        let now = self.core.now();
        self.core.engine.call(self.slot, Box::new(|_| {}), now);
        let full = self.state().events.len() >= MAX_QUEUED_EVENTS;
        self.core.set_reads_paused(full);
    }

    /// Drives the connection until the machine emits an event. `None` once
    /// the connection is closed (or the peer has finished and our output
    /// is flushed) and every event was taken. A reset is an `Err` once,
    /// after the events before it; so is a machine error.
    ///
    /// Cancellation-safe: dropping the future loses nothing.
    pub async fn next_event(&mut self) -> io::Result<Option<M::Event>> {
        loop {
            self.prepare();
            self.core.step();
            {
                let mut st = self.state();
                if let Some(ev) = st.events.pop_front() {
                    return Ok(Some(ev));
                }
                if let Some(e) = st.error.take() {
                    return Err(io::Error::other(e));
                }
            }
            if !self.failed {
                if let Some(e) = self.core.watch_error.take() {
                    self.failed = true;
                    return Err(e);
                }
            }
            let (phase, eof) = {
                let st = self.state();
                (st.phase.clone(), st.eof)
            };
            match phase {
                Phase::Closed | Phase::Failed(_) => return Ok(None),
                Phase::Open if eof && self.core.output(self.key) == WriteState::Flushed => {
                    return Ok(None)
                }
                _ => {}
            }
            self.core.pause().await;
        }
    }

    /// Drives the connection until every byte queued on it is written.
    /// Events that arrive meanwhile wait for [`Conn::next_event`].
    ///
    /// Cancellation-safe: dropping the future loses nothing.
    pub async fn flush(&mut self) -> io::Result<()> {
        loop {
            self.prepare();
            self.core.step();
            match self.core.output(self.key) {
                WriteState::Flushed => return Ok(()),
                WriteState::Busy => {}
                WriteState::Gone => {
                    return match self.core.watch_error.take() {
                        Some(e) => {
                            self.failed = true;
                            Err(e)
                        }
                        None if self.failed => Err(io::Error::from(io::ErrorKind::NotConnected)),
                        // Closed gracefully: that flushed everything first.
                        None => match self.state().phase.clone() {
                            Phase::Failed(e) => Err(open_error_to_io(e)),
                            _ => Ok(()),
                        },
                    };
                }
            }
            self.core.pause().await;
        }
    }
}

/// The `io::Error` an `OpenError` becomes for the application.
fn open_error_to_io(e: OpenError) -> io::Error {
    let kind = match &e {
        OpenError::Refused => io::ErrorKind::ConnectionRefused,
        OpenError::NotFound => io::ErrorKind::NotFound,
        OpenError::TimedOut => io::ErrorKind::TimedOut,
        OpenError::AddrInUse => io::ErrorKind::AddrInUse,
        OpenError::PermissionDenied => io::ErrorKind::PermissionDenied,
        OpenError::Unsupported => io::ErrorKind::Unsupported,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, e.to_string())
}

/// A stream listener for [`serve_listener`] and [`Listener::accept`].
#[derive(Debug)]
pub struct Listener {
    io: ListenIo,
    addr: LocalAddr,
    path: Option<String>,
}

impl Listener {
    /// Binds a `tcp:`/`tcp6:`/`unix:` endpoint (inside a tokio runtime).
    pub fn bind(endpoint: &ServerEndpoint) -> Result<Listener, BindError> {
        let name = endpoint.to_string();
        match register(&name, net::bind(endpoint)?)? {
            (Endpoint::Listen(io), addr, path) => Ok(Listener { io, addr, path }),
            (Endpoint::Udp(_), ..) => Err(BindError {
                endpoint: name,
                message: "a datagram endpoint has no connections to accept".into(),
                kind: io::ErrorKind::Unsupported,
            }),
        }
    }

    /// Where it listens.
    pub fn local_addr(&self) -> &LocalAddr {
        &self.addr
    }

    /// Accepts the next connection and hands it to `machine`.
    /// Cancellation-safe.
    pub async fn accept<M: Machine + Send + 'static>(&self, machine: M) -> io::Result<Conn<M>> {
        let io = self.io.accept().await?;
        Ok(Conn::accepted(io, machine))
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            remove_socket_files(&[p]);
        }
    }
}

/// Serves `endpoint`: each accepted connection gets a machine from
/// `factory` and becomes a [`Conn`] handed to `handler` on a task of its
/// own. Runs until an error binding; drop the future to stop accepting
/// (handlers already running carry on).
///
/// ```no_run
/// # async fn demo<M: twill_core::Machine + Send + 'static>(make: fn() -> M) -> std::io::Result<()>
/// # where M::Event: Send {
/// let ep = "tcp:7000".parse().unwrap();
/// twill_tokio::serve_with(&ep, make, |mut conn| async move {
///     while let Ok(Some(_ev)) = conn.next_event().await {}
/// })
/// .await
/// # }
/// ```
pub async fn serve_with<M, F, H, Fut>(
    endpoint: &ServerEndpoint,
    factory: F,
    handler: H,
) -> io::Result<()>
where
    M: Machine + Send + 'static,
    M::Event: Send,
    F: FnMut() -> M,
    H: FnMut(Conn<M>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = Listener::bind(endpoint).map_err(|e| io::Error::new(e.kind, e.to_string()))?;
    serve_listener(listener, factory, handler).await
}

/// [`serve_with`] on a listener bound beforehand (e.g. on port 0, to learn
/// the port first).
pub async fn serve_listener<M, F, H, Fut>(
    listener: Listener,
    mut factory: F,
    mut handler: H,
) -> io::Result<()>
where
    M: Machine + Send + 'static,
    M::Event: Send,
    F: FnMut() -> M,
    H: FnMut(Conn<M>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        match listener.io.accept().await {
            Ok(io) => {
                let conn = Conn::accepted(io, factory());
                tokio::spawn(handler(conn));
            }
            Err(e) if accept_error_is_transient(&e) => {}
            Err(e) => {
                tracing::warn!(error = %e, "accept failed; pausing");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

#[allow(dead_code)]
fn _conn_is_send<M: Machine + Send + 'static>(c: Conn<M>)
where
    M::Event: Send,
{
    fn is_send<T: Send>(_: &T) {}
    is_send(&c);
}
