//! What every driver's server returns, so the CLI and the tests treat the
//! three drivers alike: where it listens, a way to stop it, a way to wait
//! for it, and a [`Handle`] to the hub machine.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use twill_core::service::{Command, Gone, Handle};
use twill_core::ServerEndpoint;

use crate::engine::{EngineConfig, Mode, SlotId};

/// What to serve: endpoints, factory or hub, limits.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Where to listen.
    pub endpoints: Vec<ServerEndpoint>,
    /// Factory or hub.
    pub mode: Mode,
    /// Limits and timeouts.
    pub config: EngineConfig,
}

impl ServeOptions {
    /// Factory serving on `endpoints` with default limits.
    pub fn factory(endpoints: Vec<ServerEndpoint>) -> Self {
        ServeOptions {
            endpoints,
            mode: Mode::Factory,
            config: EngineConfig::default(),
        }
    }

    /// Hub serving on `endpoints` with default limits.
    pub fn hub(endpoints: Vec<ServerEndpoint>) -> Self {
        ServeOptions {
            endpoints,
            mode: Mode::Hub,
            config: EngineConfig::default(),
        }
    }
}

/// Where a server ended up listening (port 0 resolved).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LocalAddr {
    /// A TCP listener.
    Tcp(SocketAddr),
    /// A Unix-domain listener.
    Unix(String),
    /// A UDP socket.
    Udp(SocketAddr),
}

impl LocalAddr {
    /// The socket address of a TCP listener or UDP socket.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match self {
            LocalAddr::Tcp(a) | LocalAddr::Udp(a) => Some(*a),
            LocalAddr::Unix(_) => None,
        }
    }
}

impl std::fmt::Display for LocalAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LocalAddr::Tcp(a) => write!(f, "tcp {a}"),
            LocalAddr::Unix(p) => write!(f, "unix {p}"),
            LocalAddr::Udp(a) => write!(f, "udp {a}"),
        }
    }
}

type SendFn<M> = Arc<dyn Fn(SlotId, Command<M>) -> Result<(), Gone> + Send + Sync>;

/// A [`Handle`] to one machine of a driver's engine.
pub struct SlotHandle<M> {
    slot: SlotId,
    send: SendFn<M>,
}

impl<M> Clone for SlotHandle<M> {
    fn clone(&self) -> Self {
        SlotHandle {
            slot: self.slot,
            send: self.send.clone(),
        }
    }
}

impl<M: 'static> SlotHandle<M> {
    /// A handle that delivers commands for `slot` through `send` (which
    /// must wake the driver).
    pub fn new(
        slot: SlotId,
        send: impl Fn(SlotId, Command<M>) -> Result<(), Gone> + Send + Sync + 'static,
    ) -> Self {
        SlotHandle {
            slot,
            send: Arc::new(send),
        }
    }

    /// The machine it points to.
    pub fn slot(&self) -> SlotId {
        self.slot
    }
}

impl<M: 'static> Handle<M> for SlotHandle<M> {
    fn call_boxed(&self, f: Command<M>) -> Result<(), Gone> {
        (self.send)(self.slot, f)
    }
}

/// A server running on its own thread(s).
pub struct Running<M> {
    addrs: Vec<LocalAddr>,
    stop: Arc<dyn Fn() + Send + Sync>,
    thread: Option<JoinHandle<io::Result<()>>>,
    hub: Option<SlotHandle<M>>,
}

impl<M> Running<M> {
    /// Made by drivers.
    pub fn new(
        addrs: Vec<LocalAddr>,
        stop: impl Fn() + Send + Sync + 'static,
        thread: JoinHandle<io::Result<()>>,
        hub: Option<SlotHandle<M>>,
    ) -> Self {
        Running {
            addrs,
            stop: Arc::new(stop),
            thread: Some(thread),
            hub,
        }
    }

    /// Where it listens, in the order of the endpoints.
    pub fn local_addrs(&self) -> &[LocalAddr] {
        &self.addrs
    }

    /// The first TCP or UDP address (tests bind port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addrs
            .iter()
            .find_map(LocalAddr::socket_addr)
            .expect("no TCP or UDP endpoint")
    }

    /// A handle to the hub machine (hub mode only).
    pub fn hub(&self) -> Option<SlotHandle<M>> {
        self.hub.clone()
    }

    /// A function that stops the server from any thread.
    pub fn stopper(&self) -> Arc<dyn Fn() + Send + Sync> {
        self.stop.clone()
    }

    /// Asks it to stop: listeners close, connections are aborted.
    pub fn stop(&self) {
        (self.stop)();
    }

    /// Waits until it has stopped (by [`Running::stop`] or a service).
    pub fn wait(mut self) -> io::Result<()> {
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the driver thread panicked"))),
            None => Ok(()),
        }
    }
}

impl<M> Drop for Running<M> {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            (self.stop)();
            let _ = t.join();
        }
    }
}
