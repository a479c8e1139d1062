//! The reactor: one thread, one `mio::Poll`, a timer heap, calls from
//! other threads and a pool for blocking work.

use std::any::Any;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mio::{Events, Poll, Token, Waker};
use slab::Slab;
use twill_core::service::Gone;
use twill_core::{ClientEndpoint, Instant, Machine, Now, Service};
use twill_driver::engine::Key;
// Keys of these maps are ids the reactor hands out, never peer-chosen: no
// need for SipHash's flooding defence (a server look-up per event).
use twill_driver::IdMap as HashMap;
use twill_driver::{BindError, Clock, LocalAddr, ServeOptions, SlotHandle, SystemClock};

use crate::server::{Served, ServerState};

/// The waker's token; socket tokens come from a slab and never reach it.
pub(crate) const WAKER: Token = Token(usize::MAX);

/// Threads of the pool for blocking work and name resolution.
const POOL_THREADS: usize = 8;

/// The one read buffer every connection of a reactor shares: a connection
/// holds no read buffer of its own, which keeps idle connections small.
const READ_BUF: usize = 64 * 1024;

/// A callback run on the reactor thread.
pub(crate) type Callback = Box<dyn FnOnce(&mut Reactor) + 'static>;

/// A callback sent from another thread.
pub(crate) type ThreadCall = Box<dyn FnOnce(&mut Reactor) + Send + 'static>;

/// A call scheduled with [`Reactor::call_later`], for [`Reactor::cancel`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId(u64);

/// A server (or client) the reactor hosts, for [`Reactor::close`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerId(pub(crate) u64);

/// What [`Reactor::serve`] and [`Reactor::connect`] return.
pub struct Serving<M> {
    /// The server's id, to [`Reactor::close`] it.
    pub id: ServerId,
    /// Where it listens, in the order of the endpoints (empty for a
    /// client).
    pub local_addrs: Vec<LocalAddr>,
    /// A handle to the hub machine (hub mode and clients).
    pub hub: Option<SlotHandle<M>>,
}

/// What other threads share with the reactor.
struct Shared {
    calls: Mutex<Vec<ThreadCall>>,
    waker: Waker,
    stop: AtomicBool,
    /// The reactor is gone: calls are refused.
    gone: AtomicBool,
}

impl Shared {
    fn post(&self, f: ThreadCall) -> Result<(), Gone> {
        if self.gone.load(Ordering::Acquire) {
            return Err(Gone);
        }
        let was_empty = {
            let Ok(mut calls) = self.calls.lock() else {
                return Err(Gone);
            };
            calls.push(f);
            calls.len() == 1
        };
        // One wake per batch: the reactor takes the whole queue at once, so
        // calls pushed onto a non-empty queue ride on the earlier wake.
        if was_empty {
            if let Err(e) = self.waker.wake() {
                tracing::warn!(error = %e, "waking the reactor failed");
            }
        }
        Ok(())
    }
}

/// A thread-safe handle to a [`Reactor`]: run code on the reactor thread
/// or stop it, from anywhere.
#[derive(Clone)]
pub struct ReactorHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ReactorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReactorHandle").finish_non_exhaustive()
    }
}

impl ReactorHandle {
    /// Runs `f` on the reactor thread during its next iteration (waking it
    /// if it sleeps). Calls from one thread run in the order made. Dropped
    /// silently if the reactor is gone; see
    /// [`ReactorHandle::try_call_from_thread`].
    pub fn call_from_thread(&self, f: impl FnOnce(&mut Reactor) + Send + 'static) {
        let _ = self.shared.post(Box::new(f));
    }

    /// Like [`ReactorHandle::call_from_thread`], but says whether the
    /// reactor still exists.
    pub fn try_call_from_thread(
        &self,
        f: impl FnOnce(&mut Reactor) + Send + 'static,
    ) -> Result<(), Gone> {
        self.shared.post(Box::new(f))
    }

    /// Makes [`Reactor::run`] return after the current iteration.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
        let _ = self.shared.waker.wake();
    }
}

/// The parts of the reactor its servers reach while handling I/O.
pub(crate) struct Core {
    pub(crate) poll: Poll,
    /// Socket token → (server, key).
    pub(crate) tokens: Slab<(u64, Key)>,
    pub(crate) buf: Box<[u8]>,
    clock: Arc<dyn Clock>,
    /// The time read once when `poll` returned, for the ready sockets of
    /// that iteration: reading both clocks per event was 5 % of a
    /// pipelined HTTP profile. Stale by at most one iteration's work.
    io_now: std::cell::Cell<Option<Now>>,
    pool: Option<twill_driver::Pool>,
    shared: Arc<Shared>,
    /// Sockets with input left after their fair share of an iteration (or
    /// turned back on): read again next iteration, without sleeping.
    pub(crate) again: Vec<(u64, Key)>,
    /// A local stop request (`Reactor::stop`, a service's `Stop`).
    pub(crate) stop: bool,
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    callbacks: HashMap<u64, Callback>,
    next_timer: u64,
}

impl Core {
    /// Both clocks, now.
    #[inline]
    pub(crate) fn now(&self) -> Now {
        self.io_now.get().unwrap_or_else(|| self.clock.now())
    }

    /// Runs `job` on the pool (started on first use).
    pub(crate) fn execute(&mut self, job: impl FnOnce() + Send + 'static) {
        self.pool
            .get_or_insert_with(|| twill_driver::Pool::new(POOL_THREADS, "twill-mio-pool"))
            .execute(job);
    }

    /// Sends `f` to the reactor thread (from a pool thread).
    pub(crate) fn poster(&self) -> impl Fn(ThreadCall) + Send + Sync + 'static {
        let shared = self.shared.clone();
        move |f| {
            let _ = shared.post(f);
        }
    }

    /// Schedules `f` at `at`.
    pub(crate) fn call_at(&mut self, at: Instant, f: Callback) -> TimerId {
        let id = self.next_timer;
        self.next_timer += 1;
        self.timers.push(Reverse((at, id)));
        self.callbacks.insert(id, f);
        TimerId(id)
    }

    /// The earliest live timer, dropping cancelled ones on the way.
    fn next_timer(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, id))) = self.timers.peek().copied() {
            if self.callbacks.contains_key(&id) {
                return Some(at);
            }
            self.timers.pop();
        }
        None
    }
}

type Deferred = Box<dyn FnOnce(&mut Reactor, Box<dyn Any + Send>) + 'static>;

/// Twisted's reactor: one thread, many connections, callbacks.
///
/// I/O readiness, timers ([`Reactor::call_later`]), calls from other
/// threads ([`ReactorHandle::call_from_thread`]) and the results of
/// blocking work ([`Reactor::defer_to_thread`]) are all handled on the
/// thread that calls [`Reactor::run`] or [`Reactor::run_once`]. Servers
/// ([`Reactor::serve`]) and clients ([`Reactor::connect`]) run twill
/// machines and their services through `twill_driver::Engine`.
///
/// A foreign main loop (GLib, Qt, a game loop) can instead watch the fd
/// from [`AsRawFd`] and call `run_once(Some(Duration::ZERO))` whenever it
/// is readable, and after [`Reactor::poll_timeout`] at the latest.
///
/// A service's stop request (`Cx::stop`) stops the reactor, as
/// `reactor.stop()` does in Twisted.
pub struct Reactor {
    core: Core,
    events: Events,
    servers: HashMap<u64, Box<dyn Served>>,
    next_server: u64,
    deferred: HashMap<u64, Deferred>,
    next_deferred: u64,
}

impl std::fmt::Debug for Reactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reactor")
            .field("servers", &self.servers.len())
            .field("sockets", &self.core.tokens.len())
            .finish_non_exhaustive()
    }
}

impl Reactor {
    /// A reactor on the system clocks.
    pub fn new() -> io::Result<Reactor> {
        Reactor::with_clock(Arc::new(SystemClock::new()))
    }

    /// A reactor reading time from `clock` (tests use
    /// `twill_driver::ManualClock`).
    pub fn with_clock(clock: Arc<dyn Clock>) -> io::Result<Reactor> {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        Ok(Reactor {
            core: Core {
                poll,
                tokens: Slab::new(),
                buf: vec![0u8; READ_BUF].into_boxed_slice(),
                clock,
                io_now: std::cell::Cell::new(None),
                pool: None,
                shared: Arc::new(Shared {
                    calls: Mutex::new(Vec::new()),
                    waker,
                    stop: AtomicBool::new(false),
                    gone: AtomicBool::new(false),
                }),
                again: Vec::new(),
                stop: false,
                timers: BinaryHeap::new(),
                callbacks: HashMap::default(),
                next_timer: 0,
            },
            events: Events::with_capacity(1024),
            servers: HashMap::default(),
            next_server: 1,
            deferred: HashMap::default(),
            next_deferred: 0,
        })
    }

    // ---- getters --------------------------------------------------------

    /// A thread-safe handle for other threads.
    pub fn handle(&self) -> ReactorHandle {
        ReactorHandle {
            shared: self.core.shared.clone(),
        }
    }

    /// The reactor's clocks, now.
    pub fn now(&self) -> Now {
        self.core.now()
    }

    /// How many sockets the reactor watches.
    pub fn sockets(&self) -> usize {
        self.core.tokens.len()
    }

    /// The earliest timer of the reactor or any of its machines, for a
    /// foreign main loop's timeout.
    pub fn next_wakeup(&mut self) -> Option<Instant> {
        let mut next = self.core.next_timer();
        for s in self.servers.values_mut() {
            next = twill_core::machine::earliest(next, s.deadline());
        }
        next
    }

    /// How long a foreign main loop may sleep before calling
    /// [`Reactor::run_once`] again even if the fd stays quiet: zero while
    /// sockets still have input left from their fair share of the last
    /// iteration, else until the next timer (`None`: no timer).
    pub fn poll_timeout(&mut self) -> Option<Duration> {
        if !self.core.again.is_empty() {
            return Some(Duration::ZERO);
        }
        let now = self.core.now().mono;
        self.next_wakeup().map(|at| at - now)
    }

    // ---- callbacks ------------------------------------------------------

    /// Calls `f` on the reactor thread once `delay` has passed. Calls due
    /// at the same instant run in the order they were scheduled.
    pub fn call_later(
        &mut self,
        delay: Duration,
        f: impl FnOnce(&mut Reactor) + 'static,
    ) -> TimerId {
        let at = self.core.now().mono + delay;
        self.core.call_at(at, Box::new(f))
    }

    /// Cancels a call; false if it already ran or was cancelled.
    pub fn cancel(&mut self, id: TimerId) -> bool {
        self.core.callbacks.remove(&id.0).is_some()
    }

    /// Runs `work` on the reactor's bounded pool, then `on_done` with its
    /// result on the reactor thread.
    pub fn defer_to_thread<T: Send + 'static>(
        &mut self,
        work: impl FnOnce() -> T + Send + 'static,
        on_done: impl FnOnce(&mut Reactor, T) + 'static,
    ) {
        let id = self.next_deferred;
        self.next_deferred += 1;
        // `on_done` need not be `Send`: it stays here, and only the result
        // travels back.
        self.deferred.insert(
            id,
            Box::new(move |r, t| match t.downcast::<T>() {
                Ok(t) => on_done(r, *t),
                Err(_) => tracing::warn!("deferred result of the wrong type"),
            }),
        );
        let post = self.core.poster();
        self.core.execute(move || {
            let t: Box<dyn Any + Send> = Box::new(work());
            post(Box::new(move |r: &mut Reactor| {
                if let Some(f) = r.deferred.remove(&id) {
                    f(r, t);
                }
            }));
        });
    }

    // ---- running --------------------------------------------------------

    /// Makes [`Reactor::run`] return after the current iteration.
    pub fn stop(&mut self) {
        self.core.stop = true;
    }

    /// Runs until [`Reactor::stop`], [`ReactorHandle::stop`] or a service's
    /// stop request. It may be run again afterwards.
    pub fn run(&mut self) -> io::Result<()> {
        let mut now = None;
        loop {
            if self.take_stop() {
                return Ok(());
            }
            now = self.iterate(None, now)?;
        }
    }

    fn take_stop(&mut self) -> bool {
        let remote = self.core.shared.stop.swap(false, Ordering::AcqRel);
        let local = std::mem::take(&mut self.core.stop);
        remote || local
    }

    /// One iteration: waits for I/O up to `timeout` (`None`: until
    /// something happens; shortened to the next timer), then handles ready
    /// sockets, calls from other threads, due timers and machine deadlines.
    pub fn run_once(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.iterate(timeout, None).map(|_| ())
    }

    /// [`Reactor::run_once`], given the time if it is known to be current
    /// (the previous iteration of [`Reactor::run`] read it last and did no
    /// work after), and returning the time in the same case. In a busy
    /// server this leaves two clock reads per iteration instead of four.
    fn iterate(
        &mut self,
        timeout: Option<Duration>,
        current: Option<Now>,
    ) -> io::Result<Option<Now>> {
        let again = std::mem::take(&mut self.core.again);
        let mut wait = timeout;
        if !again.is_empty() || self.core.stop || self.core.shared.stop.load(Ordering::Acquire) {
            wait = Some(Duration::ZERO);
        }
        if wait != Some(Duration::ZERO) {
            if let Some(at) = self.next_wakeup() {
                let now = current.unwrap_or_else(|| self.core.now()).mono;
                let until = at - now;
                wait = Some(wait.map_or(until, |w| w.min(until)));
            }
        }
        match self.core.poll.poll(&mut self.events, wait) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }

        self.core.io_now.set(Some(self.core.clock.now()));
        for ev in self.events.iter() {
            if ev.token() == WAKER {
                continue;
            }
            let Some(&(sid, key)) = self.core.tokens.get(ev.token().0) else {
                continue;
            };
            let Some(srv) = self.servers.get_mut(&sid) else {
                continue;
            };
            // Errors and hang-ups surface from the next read or write.
            let readable = ev.is_readable() || ev.is_read_closed() || ev.is_error();
            let writable = ev.is_writable() || ev.is_write_closed() || ev.is_error();
            let hup = ev.is_read_closed() || ev.is_error();
            srv.ready(&mut self.core, key, readable, writable, hup);
        }

        for (sid, key) in again {
            if let Some(srv) = self.servers.get_mut(&sid) {
                srv.resume(&mut self.core, key);
            }
        }
        // Calls, timers and deadlines read the clock afresh.
        self.core.io_now.set(None);

        let calls = match self.core.shared.calls.lock() {
            Ok(mut c) => std::mem::take(&mut *c),
            Err(_) => Vec::new(),
        };
        for f in calls {
            f(self);
        }

        // One reading for timers and deadlines: one that falls due while
        // the others run is handled next iteration, which does not sleep.
        let now = self.core.now();
        let mut fired = self.run_timers(now.mono);
        for srv in self.servers.values_mut() {
            if srv.deadline().is_some_and(|d| d <= now.mono) {
                srv.timeout(&mut self.core, now);
                fired = true;
            }
        }
        Ok((!fired).then_some(now))
    }

    /// Runs the calls due at `now` that were scheduled before this pass
    /// began (a call that schedules another with no delay does not starve
    /// I/O). Whether any ran.
    fn run_timers(&mut self, now: Instant) -> bool {
        let mut ran = false;
        let limit = self.core.next_timer;
        let mut later = Vec::new();
        while let Some(Reverse((at, id))) = self.core.timers.peek().copied() {
            if at > now {
                break;
            }
            self.core.timers.pop();
            if id >= limit {
                later.push(Reverse((at, id)));
                continue;
            }
            if let Some(f) = self.core.callbacks.remove(&id) {
                f(self);
                ran = true;
            }
        }
        self.core.timers.extend(later);
        ran
    }

    // ---- servers --------------------------------------------------------

    /// Binds every endpoint of `opts` and serves machines from `make` on
    /// this reactor (a factory of per-connection machines, or one hub).
    /// A reactor may host several servers.
    pub fn serve<M, S>(
        &mut self,
        opts: ServeOptions,
        make: impl FnMut() -> (M, S) + Send + 'static,
    ) -> Result<Serving<M>, BindError>
    where
        M: Machine + 'static,
        S: Service<M> + 'static,
    {
        let sid = self.next_server;
        self.next_server += 1;
        let (srv, addrs, hub) = ServerState::<M, S>::serve(&mut self.core, sid, opts, make)?;
        self.servers.insert(sid, Box::new(srv));
        Ok(Serving {
            id: ServerId(sid),
            local_addrs: addrs,
            hub: hub.map(|slot| self.slot_handle::<M, S>(sid, slot)),
        })
    }

    /// Opens a connection to `endpoint` and runs the client `machine` (with
    /// `service`) on it: the machine gets `Opened` (or `OpenFailed`) for a
    /// driver-chosen id, as for a client endpoint. Names resolve on the
    /// pool. The machine may open more connections with `Open`. It stays
    /// until [`Reactor::close`].
    pub fn connect<M, S>(&mut self, endpoint: &ClientEndpoint, machine: M, service: S) -> Serving<M>
    where
        M: Machine + Send + 'static,
        S: Service<M> + Send + 'static,
    {
        let sid = self.next_server;
        self.next_server += 1;
        let (srv, slot) =
            ServerState::<M, S>::client(&mut self.core, sid, endpoint, machine, service);
        self.servers.insert(sid, Box::new(srv));
        Serving {
            id: ServerId(sid),
            local_addrs: Vec::new(),
            hub: Some(self.slot_handle::<M, S>(sid, slot)),
        }
    }

    /// Stops a server: closes its listeners and aborts its connections
    /// (its machines see `Closed`). False if there is no such server.
    pub fn close(&mut self, id: ServerId) -> bool {
        match self.servers.remove(&id.0) {
            Some(mut srv) => {
                srv.close_all(&mut self.core);
                true
            }
            None => false,
        }
    }

    /// Closes every server.
    pub fn close_all(&mut self) {
        let ids: Vec<u64> = self.servers.keys().copied().collect();
        for id in ids {
            self.close(ServerId(id));
        }
    }

    fn slot_handle<M, S>(&self, sid: u64, slot: twill_driver::SlotId) -> SlotHandle<M>
    where
        M: Machine + 'static,
        S: Service<M> + 'static,
    {
        let handle = self.handle();
        SlotHandle::new(slot, move |slot, cmd| {
            handle.try_call_from_thread(move |r| {
                r.with_server::<M, S, _>(sid, |srv, core| srv.call(core, slot, cmd));
            })
        })
    }

    /// Runs `f` on server `sid` if it exists and is of this type.
    pub(crate) fn with_server<M, S, R>(
        &mut self,
        sid: u64,
        f: impl FnOnce(&mut ServerState<M, S>, &mut Core) -> R,
    ) -> Option<R>
    where
        M: Machine + 'static,
        S: Service<M> + 'static,
    {
        let srv = self.servers.get_mut(&sid)?;
        let srv = srv.as_any().downcast_mut::<ServerState<M, S>>()?;
        Some(f(srv, &mut self.core))
    }
}

impl AsRawFd for Reactor {
    /// The poll's fd: readable whenever the reactor has something to do.
    fn as_raw_fd(&self) -> RawFd {
        self.core.poll.as_raw_fd()
    }
}

impl Drop for Reactor {
    fn drop(&mut self) {
        self.core.shared.gone.store(true, Ordering::Release);
        // Let running work finish (its results are refused from now on),
        // then drop queued calls: they may hold handles to us.
        drop(self.core.pool.take());
        if let Ok(mut c) = self.core.shared.calls.lock() {
            c.clear();
        }
    }
}
