//! [`spawn`]: binds a server's endpoints and serves them on threads.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};

use socket2::Socket;
use twill_core::service::Gone;
use twill_core::{Addr, Machine, Service};
use twill_driver::{
    net, BindError, Bound, Engine, EngineConfig, Key, LocalAddr, Mode, Pool, Running, ServeOptions,
    SlotHandle, SystemClock,
};

use crate::event_loop::{Ctx, Ev, Loop, LoopGuard, Registry, StopSignal};
use crate::socket::{lock, Acceptor};

/// Threads for blocking work (`Cx::spawn_blocking`).
const POOL_THREADS: usize = 4;

type Make<M, S> = Arc<Mutex<dyn FnMut() -> (M, S) + Send>>;

/// Binds every endpoint of `opts` and serves them on background threads
/// until [`Running::stop`] (from any thread) or a service's `Cx::stop`.
///
/// In [`Mode::Factory`] each accepted connection gets a fresh machine and
/// service from `make`, and a machine thread of its own (plus a reader and
/// a writer thread), up to `opts.config.max_conns` connections at once;
/// each `udp:` endpoint gets one machine too. In [`Mode::Hub`] one machine
/// serves every endpoint and connection on one machine thread, and
/// [`Running::hub`] hands out a handle to it.
///
/// `Running::local_addrs` reports the bound addresses in endpoint order
/// (port 0 resolved).
pub fn spawn<M, S, F>(opts: ServeOptions, make: F) -> Result<Running<M>, BindError>
where
    M: Machine + Send + 'static,
    S: Service<M> + Send + 'static,
    S::Done: Send,
    F: FnMut() -> (M, S) + Send + 'static,
{
    // Bind everything first, so a busy port fails the call and nothing
    // runs.
    let mut bound = Vec::new();
    let mut addrs = Vec::new();
    for ep in &opts.endpoints {
        let b = net::bind(ep)?;
        let local = match &b {
            Bound::Tcp(l) => l.local_addr().map(LocalAddr::Tcp),
            Bound::Unix(_, path) => Ok(LocalAddr::Unix(path.clone())),
            Bound::Udp(s) => s.local_addr().map(LocalAddr::Udp),
        }
        .map_err(|e| bind_failed(ep, e))?;
        addrs.push(local);
        bound.push((ep, b));
    }

    let stop = Arc::new(StopSignal::default());
    let ctx = Arc::new(Ctx {
        clock: SystemClock::new(),
        pool: Pool::new(POOL_THREADS, "twill-std-pool"),
        stop: stop.clone(),
        stopping: AtomicBool::new(false),
        live: AtomicUsize::new(0),
        failed: Mutex::new(None),
    });
    let registry: Arc<Registry<M, S::Done>> = Arc::new(Registry::new());
    let make: Make<M, S> = Arc::new(Mutex::new(make));
    let config = opts.config.clone();

    let mut acceptors = Vec::new();
    let mut unix_paths = Vec::new();
    let mut hub = None;

    match opts.mode {
        Mode::Hub => {
            let (tx, rx) = mpsc::channel();
            let mut lp = Loop::new(
                Engine::new(Mode::Hub, config.clone(), shared_make(&make)),
                tx.clone(),
                rx,
                ctx.clone(),
                false,
            );
            let slot = lp.engine.hub();
            for (ep, b) in bound {
                match b {
                    Bound::Tcp(l) => {
                        let key = lp.add_listener();
                        acceptors.push(hub_acceptor(ep, l.into(), key, tx.clone())?);
                    }
                    Bound::Unix(l, path) => {
                        let key = lp.add_listener();
                        acceptors.push(hub_acceptor(ep, l.into(), key, tx.clone())?);
                        unix_paths.push(path);
                    }
                    Bound::Udp(s) => lp.add_udp(s).map_err(|e| bind_failed(ep, e))?,
                }
            }
            let htx = Mutex::new(tx.clone());
            hub = Some(SlotHandle::new(slot, move |slot, f| {
                lock(&htx).send(Ev::Command(slot, f)).map_err(|_| Gone)
            }));
            start_loop(&registry, &ctx, lp, false).map_err(|e| BindError {
                endpoint: String::new(),
                message: format!("cannot start the machine thread: {e}"),
                kind: e.kind(),
            })?;
        }
        Mode::Factory => {
            let mut listener_index = 0;
            for (ep, b) in bound {
                let sock: Socket = match b {
                    Bound::Tcp(l) => l.into(),
                    Bound::Unix(l, path) => {
                        unix_paths.push(path);
                        l.into()
                    }
                    Bound::Udp(s) => {
                        let (tx, rx) = mpsc::channel();
                        let mut lp = Loop::new(
                            Engine::new(Mode::Factory, config.clone(), shared_make(&make)),
                            tx,
                            rx,
                            ctx.clone(),
                            false,
                        );
                        lp.add_udp(s).map_err(|e| bind_failed(ep, e))?;
                        start_loop(&registry, &ctx, lp, false).map_err(|e| bind_failed(ep, e))?;
                        continue;
                    }
                };
                listener_index += 1;
                let index = listener_index;
                let (make, ctx, registry, config) =
                    (make.clone(), ctx.clone(), registry.clone(), config.clone());
                let a = Acceptor::start(sock, move |sock, local, peer| {
                    connection(&make, &ctx, &registry, &config, index, sock, local, peer);
                })
                .map_err(|e| bind_failed(ep, e))?;
                acceptors.push(a);
            }
        }
    }

    let stopper = stop.clone();
    let supervisor = std::thread::Builder::new()
        .name("twill-std".into())
        .spawn(move || -> io::Result<()> {
            stop.wait();
            ctx.stopping.store(true, Ordering::SeqCst);
            for a in &acceptors {
                a.stop();
            }
            for a in acceptors {
                a.join();
            }
            registry.stop_all();
            for p in unix_paths {
                let _ = std::fs::remove_file(p);
            }
            match lock(&ctx.failed).take() {
                Some(why) => Err(io::Error::other(why)),
                None => Ok(()),
            }
        })
        .map_err(|e| BindError {
            endpoint: String::new(),
            message: format!("cannot start the server thread: {e}"),
            kind: e.kind(),
        })?;
    Ok(Running::new(
        addrs,
        move || stopper.request(),
        supervisor,
        hub,
    ))
}

fn bind_failed(ep: &twill_core::ServerEndpoint, e: io::Error) -> BindError {
    BindError {
        endpoint: ep.to_string(),
        message: e.to_string(),
        kind: e.kind(),
    }
}

/// An engine's factory that calls the server's one `make`.
fn shared_make<M, S>(make: &Make<M, S>) -> impl FnMut() -> (M, S) + Send + 'static
where
    M: 'static,
    S: 'static,
{
    let make = make.clone();
    move || {
        let mut f = lock(&make);
        (*f)()
    }
}

/// An acceptor that hands connections to the hub's machine thread.
fn hub_acceptor<M: 'static, D: Send + 'static>(
    ep: &twill_core::ServerEndpoint,
    sock: Socket,
    key: Key,
    tx: Sender<Ev<M, D>>,
) -> Result<Acceptor, BindError> {
    Acceptor::start(sock, move |sock, local, peer| {
        let _ = tx.send(Ev::Accepted {
            listener: key,
            sock,
            local,
            peer,
        });
    })
    .map_err(|e| bind_failed(ep, e))
}

/// Starts a machine thread for `lp`.
fn start_loop<M, S>(
    registry: &Arc<Registry<M, S::Done>>,
    ctx: &Arc<Ctx>,
    lp: Loop<M, S>,
    counted: bool,
) -> io::Result<()>
where
    M: Machine + Send + 'static,
    S: Service<M> + Send + 'static,
    S::Done: Send + 'static,
{
    let Some(id) = registry.register(lp.sender()) else {
        if counted {
            ctx.live.fetch_sub(1, Ordering::SeqCst);
        }
        return Err(io::Error::other("the server is stopping"));
    };
    // From here on the guard gives the place back, even if the thread
    // never starts.
    let guard = LoopGuard {
        registry: registry.clone(),
        id,
        ctx: ctx.clone(),
        counted,
    };
    std::thread::Builder::new()
        .name("twill-machine".into())
        .spawn(move || {
            let _guard = guard;
            lp.run();
        })
        .map(|_| ())
}

/// Factory mode: a new connection gets an engine and a machine thread of
/// its own, unless the server is at its cap or stopping.
#[allow(clippy::too_many_arguments)]
fn connection<M, S>(
    make: &Make<M, S>,
    ctx: &Arc<Ctx>,
    registry: &Arc<Registry<M, S::Done>>,
    config: &EngineConfig,
    listener_index: usize,
    sock: Socket,
    local: Addr,
    peer: Addr,
) where
    M: Machine + Send + 'static,
    S: Service<M> + Send + 'static,
    S::Done: Send + 'static,
{
    if ctx.stopping.load(Ordering::SeqCst) {
        return;
    }
    if ctx.live.fetch_add(1, Ordering::SeqCst) >= config.max_conns {
        ctx.live.fetch_sub(1, Ordering::SeqCst);
        tracing::debug!(%peer, "connection limit reached; closing a new connection");
        return;
    }
    let (tx, rx) = mpsc::channel();
    let mut lp = Loop::new(
        Engine::new(Mode::Factory, config.clone(), shared_make(make)),
        tx.clone(),
        rx,
        ctx.clone(),
        true,
    );
    // The endpoint listeners in order, so `ListenerId`s match hub mode's.
    let mut listener = 0;
    for _ in 0..listener_index {
        listener = lp.add_listener();
    }
    // The connection is the new thread's first event: making the machine
    // and its first reply happen there, not on the accept thread.
    let _ = tx.send(Ev::Accepted {
        listener,
        sock,
        local,
        peer,
    });
    if let Err(e) = start_loop(registry, ctx, lp, true) {
        tracing::debug!(error = %e, "connection not served");
    }
}
