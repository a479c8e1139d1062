//! Serving endpoints through the shared [`Engine`]: [`serve`] inside a
//! runtime you own, [`spawn`] on a runtime of its own.
//!
//! - **Hub mode**: one task runs the hub's engine, its listeners, its
//!   datagram sockets and every connection.
//! - **Factory mode**: a task per listener accepts; each accepted
//!   connection becomes a task of its own with its own engine and machine
//!   (so connections spread over the worker threads, and one machine never
//!   waits for another); each endpoint datagram socket is a task with its
//!   own machine. Machine-opened connections, listeners and sockets belong
//!   to the task of the machine that opened them.
//! - **Factory mode on a current-thread runtime** (what [`spawn`] builds
//!   when the process may use one CPU): one task serves the listeners and
//!   every connection, as in hub mode, but each connection still gets a
//!   machine of its own. On one thread, tasks of their own would only take
//!   turns, and a task's wake-up and poll per request cost more than the
//!   ready list naming the sockets to serve.

use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;

use tokio::sync::mpsc;
use twill_core::{Machine, Service};
use twill_driver::engine::{Engine, EngineConfig, Mode};
use twill_driver::{net, BindError, LocalAddr, Running, ServeOptions, SlotHandle};

use crate::io::{
    accept_error_is_transient, register, remove_socket_files, Endpoint, ListenIo, Stream,
};
use crate::reactor::{stop_requested, Cap, CapGuard, Core, Stopper};

type Make<M, S> = Arc<Mutex<dyn FnMut() -> (M, S) + Send>>;
type Task = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

/// A server bound to its endpoints, ready to [`run`](Server::run).
pub struct Server<M> {
    addrs: Vec<LocalAddr>,
    hub: Option<SlotHandle<M>>,
    stopper: Stopper,
    task: Task,
}

impl<M> std::fmt::Debug for Server<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addrs", &self.addrs)
            .finish_non_exhaustive()
    }
}

impl<M> Server<M> {
    /// Where it listens, in the order of the endpoints (port 0 resolved).
    pub fn local_addrs(&self) -> &[LocalAddr] {
        &self.addrs
    }

    /// A handle to the hub machine (hub mode only). Commands sent before
    /// [`Server::run`] wait for it.
    pub fn hub(&self) -> Option<SlotHandle<M>> {
        self.hub.clone()
    }

    /// Something that stops the server from any thread or task.
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Asks the server to stop: listeners close, connections are aborted,
    /// and [`Server::run`] returns.
    pub fn shutdown(&self) {
        self.stopper.stop();
    }

    /// Serves until stopped ([`Server::shutdown`], a [`Stopper`] or a
    /// service's `stop`). Returns once every connection is closed.
    /// Dropping the future stops the server too.
    pub async fn run(self) -> io::Result<()> {
        self.task.await
    }
}

/// Binds every endpoint of `opts` and returns the server, which serves
/// once [`Server::run`] is awaited. Must be called inside a tokio runtime
/// (multi-threaded for factory connections to spread over threads).
pub async fn serve<M, S, F>(opts: ServeOptions, make: F) -> Result<Server<M>, BindError>
where
    M: Machine + Send + 'static,
    S: Service<M> + Send + 'static,
    S::Done: Send,
    F: FnMut() -> (M, S) + Send + 'static,
{
    let mut endpoints = Vec::new();
    let mut addrs = Vec::new();
    let mut paths = Vec::new();
    for ep in &opts.endpoints {
        let (io, addr, path) = register(&ep.to_string(), net::bind(ep)?)?;
        endpoints.push(io);
        addrs.push(addr);
        paths.extend(path);
    }
    let stopper = Stopper::new();
    let one_task = match opts.mode {
        Mode::Hub => true,
        Mode::Factory => on_current_thread(),
    };
    let (task, hub) = match opts.mode {
        _ if one_task => {
            let mode = opts.mode;
            let mut engine = Engine::new(mode, opts.config, make);
            let slot = (mode == Mode::Hub).then(|| engine.hub());
            let mut core = Core::new(engine, Some(stopper.clone()));
            let hub = slot.map(|slot| core.slot_handle(slot));
            for ep in endpoints {
                match ep {
                    Endpoint::Listen(l) => {
                        core.add_listener(l);
                    }
                    Endpoint::Udp(u) => {
                        core.add_udp(u);
                    }
                }
            }
            let guard = StopOnDrop(stopper.clone());
            let task: Task = Box::pin(async move {
                let _guard = guard;
                let r = tokio::spawn(run_core(core)).await;
                remove_socket_files(&paths);
                r.map_err(|e| io::Error::other(format!("the serving task failed: {e}")))
            });
            (task, hub)
        }
        _ => {
            let make: Make<M, S> = Arc::new(Mutex::new(make));
            let stopper2 = stopper.clone();
            let config = opts.config;
            let guard = StopOnDrop(stopper.clone());
            let task: Task = Box::pin(async move {
                let _guard = guard;
                let cap = Cap::new(config.max_conns);
                // Every task holds a clone; `recv` returns `None` once the
                // last one ended.
                let (alive, mut all_done) = mpsc::channel::<()>(1);
                let mut index = 0;
                for ep in endpoints {
                    match ep {
                        Endpoint::Listen(l) => {
                            let acceptor = Acceptor {
                                index,
                                make: make.clone(),
                                config: config.clone(),
                                cap: cap.clone(),
                                stopper: stopper2.clone(),
                                alive: alive.clone(),
                            };
                            index += 1;
                            tokio::spawn(acceptor.run(l));
                        }
                        Endpoint::Udp(u) => {
                            let mut core = Core::new(
                                factory_engine(&make, config.clone()),
                                Some(stopper2.clone()),
                            );
                            core.set_cap(cap.clone());
                            core.add_udp(u);
                            let alive = alive.clone();
                            tokio::spawn(async move {
                                run_core(core).await;
                                drop(alive);
                            });
                        }
                    }
                }
                drop(alive);
                let mut stop = stopper2.subscribe();
                while !stop_requested(&stop) {
                    if stop.changed().await.is_err() {
                        break;
                    }
                }
                let _ = all_done.recv().await;
                remove_socket_files(&paths);
                Ok(())
            });
            (task, None)
        }
    };
    Ok(Server {
        addrs,
        hub,
        stopper,
        task,
    })
}

/// Whether this runs on a current-thread runtime: there a factory server
/// serves every connection from one task, as a hub does (each connection
/// still has a machine of its own). Tasks of their own would only take
/// turns on the one thread, and a task's poll and wake-up per request
/// cost more than the ready list that names the sockets to serve.
fn on_current_thread() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread)
}

/// The runtime [`spawn`] serves on.
fn runtime() -> io::Result<tokio::runtime::Runtime> {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    if cpus == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("twill-tokio-worker")
            .enable_all()
            .build()
    }
}

/// Stops the server when the future of [`Server::run`] is dropped (or a
/// server that never ran): its tasks must not outlive it unseen.
struct StopOnDrop(Stopper);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// An engine for one factory task; its machines come from the shared
/// factory.
fn factory_engine<M, S>(make: &Make<M, S>, config: EngineConfig) -> Engine<M, S>
where
    M: Machine + Send + 'static,
    S: Service<M> + Send + 'static,
{
    let make = make.clone();
    Engine::new(Mode::Factory, config, move || {
        let mut f = make.lock().unwrap_or_else(PoisonError::into_inner);
        (*f)()
    })
}

/// Runs a core that may serve many sockets (a hub, a factory server on a
/// current-thread runtime, an endpoint's datagram socket) until a stop,
/// outside tokio's cooperative budget: a hub serving a thousand sockets in
/// one step would otherwise see every socket past the budget's 128th
/// answer "not ready" (and be queued again), turning one step into many.
/// The core yields by itself instead, after every busy step.
pub(crate) async fn run_core<M, S>(core: Core<M, S>)
where
    M: Machine + Send + 'static,
    S: Service<M>,
    S::Done: Send + 'static,
{
    tokio::task::unconstrained(serve_core(core, false)).await;
}

/// Serves `core` until a stop (or, with `until_idle`, until its machines
/// are all gone: a factory connection's task ends with its connection).
/// A factory connection's task awaits this directly: its core serves one
/// socket per step, far inside tokio's budget, and does not pay for
/// leaving it on every poll (a machine that opens many sockets of its own
/// is still served right, past the budget a turn later).
///
/// Must stay in the task that first polls it (spawned, or awaited by a
/// spawned future): the core registers its socket under that task's
/// waker.
async fn serve_core<M, S>(mut core: Core<M, S>, until_idle: bool)
where
    M: Machine + Send + 'static,
    S: Service<M>,
    S::Done: Send + 'static,
{
    let _enlisted = core.enlist();
    // This future is its task's for good: the core may register its
    // socket under the task's waker.
    core.set_task(poll_fn(|cx| Poll::Ready(cx.waker().clone())).await);
    // Work left after a step waits for other tasks' turn first.
    while !poll_fn(|cx| core.poll_serve(cx, until_idle)).await {
        tokio::task::yield_now().await;
    }
}

/// Accepts on one endpoint listener of a factory server.
struct Acceptor<M, S> {
    /// Which stream endpoint (for `ListenerId`).
    index: usize,
    make: Make<M, S>,
    config: EngineConfig,
    cap: Arc<Cap>,
    stopper: Stopper,
    alive: mpsc::Sender<()>,
}

impl<M, S> Acceptor<M, S>
where
    M: Machine + Send + 'static,
    S: Service<M> + Send + 'static,
    S::Done: Send + 'static,
{
    async fn run(self, io: ListenIo) {
        let mut stop = self.stopper.subscribe();
        while !stop_requested(&stop) {
            tokio::select! {
                r = io.accept() => match r {
                    Ok(stream) => match self.cap.try_acquire() {
                        Some(guard) => {
                            tokio::spawn(self.connection(stream, guard));
                        }
                        None => tracing::debug!("connection limit reached; closing the new connection"),
                    },
                    Err(e) if accept_error_is_transient(&e) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed; pausing this listener");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                },
                _ = stop.changed() => {}
            }
        }
    }

    /// The task of one accepted connection.
    fn connection(
        &self,
        stream: Stream,
        guard: CapGuard,
    ) -> impl Future<Output = ()> + Send + 'static {
        let mut core = Core::new(
            factory_engine(&self.make, self.config.clone()),
            Some(self.stopper.clone()),
        );
        core.set_cap(self.cap.clone());
        // The engine names listeners by registration order: register the
        // endpoint listeners up to ours so `Accepted` carries its id.
        let mut listener = 0;
        for _ in 0..=self.index {
            listener = core.engine.new_key();
            core.engine.add_listener(listener);
        }
        let alive = self.alive.clone();
        async move {
            core.add_accepted(listener, stream, Some(guard));
            serve_core(core, true).await;
            drop(alive);
        }
    }
}

/// Serves `opts` on a runtime of its own on a new thread, after binding
/// every endpoint (errors return at once). The uniform entry point of
/// every twill driver.
///
/// The runtime has two workers, or one thread when the process may run
/// on one CPU only (`taskset`, a cgroup): two workers sharing one CPU
/// only take turns and search each other's queues. (A hub, one task,
/// still gains from the second worker on two CPUs: it dispatches socket
/// events while the hub serves — 10-20 % more IRC fan-out deliveries.)
pub fn spawn<M, S, F>(opts: ServeOptions, make: F) -> Result<Running<M>, BindError>
where
    M: Machine + Send + 'static,
    S: Service<M> + Send + 'static,
    S::Done: Send,
    F: FnMut() -> (M, S) + Send + 'static,
{
    type Started<M> = Result<(Vec<LocalAddr>, Option<SlotHandle<M>>, Stopper), BindError>;
    let (tx, rx) = std::sync::mpsc::channel::<Started<M>>();
    let failed = |message: String, kind| BindError {
        endpoint: "tokio".into(),
        message,
        kind,
    };
    let thread = std::thread::Builder::new()
        .name("twill-tokio".into())
        .spawn(move || {
            let rt = match runtime() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(BindError {
                        endpoint: "tokio".into(),
                        message: format!("cannot start the runtime: {e}"),
                        kind: e.kind(),
                    }));
                    return Ok(());
                }
            };
            let server = match rt.block_on(serve(opts, make)) {
                Ok(s) => s,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return Ok(());
                }
            };
            let _ = tx.send(Ok((server.addrs.clone(), server.hub(), server.stopper())));
            let r = rt.block_on(server.run());
            // Everything we started has ended; blocking work still running
            // (a slow service job) must not hold up the caller's `wait`.
            rt.shutdown_background();
            r
        })
        .map_err(|e| failed(format!("cannot start the driver thread: {e}"), e.kind()))?;
    match rx.recv() {
        Ok(Ok((addrs, hub, stopper))) => {
            Ok(Running::new(addrs, move || stopper.stop(), thread, hub))
        }
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err(failed(
                "the driver thread ended before binding".into(),
                io::ErrorKind::Other,
            ))
        }
    }
}
