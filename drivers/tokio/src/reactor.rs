//! The reactor every engine of this driver runs in: one [`Core`] owns one
//! [`Engine`] and every socket of that engine's machines, and moves their
//! bytes from a single task.
//!
//! Sockets are driven with tokio's readiness API (`try_io`, `try_write`,
//! `poll_read_ready`, …): reads and writes are tried first (tokio answers
//! `WouldBlock` without a system call when it knows the socket is not
//! ready), and a waker is registered only once a socket is drained or
//! full. A socket's waker puts its key on a [`ReadyList`] and wakes the
//! task, which then serves only the sockets on the list; a core with a
//! single socket and a task of its own (a factory connection on a
//! multi-threaded runtime) registers it under the task's waker instead and
//! serves it every step (see [`Solo`]). Messages from other tasks ([`Mailer`]), a stop ([`Stopper`])
//! and the idle wait's alarm poke the same list, so an idle core waits on
//! that one list. So a hub with thousands of connections costs O(ready)
//! per wakeup (on a current-thread runtime a factory server's connections
//! share one core too, which costs less than a task's wake-up and poll
//! per request), a factory connection of its own is one task with no
//! channel hops and no lock per request, and nothing is ever lost by
//! cancellation: every
//! byte read is handed to the engine synchronously, before the next
//! `.await`, and [`Core::wait`] only waits, taking nothing, so it can be
//! dropped at any time (this is what makes `Conn::next_event`
//! cancellation-safe).
//!
//! A serving turn ([`Core::step`]) reads the clock once, reads a socket
//! until a short read says it is drained, and writes what that input made
//! the machine say in the same turn, in one write.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use bytes::Bytes;
use socket2::SockRef;
use tokio::io::Interest;
use tokio::net::{TcpStream, UdpSocket, UnixStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use twill_core::service::{Command, Gone};
use twill_core::{Addr, Close, Machine, Now, Open, OpenError, Service};
use twill_driver::engine::{Action, Chunk, Engine, Key, SlotId};
use twill_driver::{net, Clock, SlotHandle, SystemClock, WriteQueue};

use crate::io::{accept_error_is_transient, ListenIo, Stream};
use crate::socks::SockMap;

/// Bytes read per `try_read` (one buffer per worker thread, not per
/// connection: see [`with_read_buf`]).
const READ_BUF: usize = 64 * 1024;
/// Reads of one socket per turn before other sockets get theirs.
const READS_PER_TURN: usize = 8;
/// Writes of one socket per turn (a chargen peer that reads as fast as we
/// write must not starve the rest).
const WRITES_PER_TURN: usize = 16;
/// Datagrams received per socket per turn.
const DGRAMS_PER_TURN: usize = 64;
/// Connections accepted per listener per turn.
const ACCEPTS_PER_TURN: usize = 64;
/// Messages from other tasks handled per turn.
const EVENTS_PER_TURN: usize = 256;
/// Datagrams waiting for a writable socket; more are dropped (UDP is
/// lossy anyway, and the queue must stay bounded).
const MAX_DGRAM_QUEUE: usize = 1024;
/// Slices gathered into one vectored write.
const MAX_IOV: usize = 64;
/// A queue this short is written from a vector of this size (filling the
/// 64 slots of the long one cost more than the write's bookkeeping).
const FEW_IOV: usize = 4;
/// `Open { Connect }` without a timeout gives up after this long.
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a gracefully closed socket keeps draining the peer's input,
/// so that unread input does not turn our close into a reset that could
/// destroy the reply still in flight.
const LINGER: Duration = Duration::from_secs(2);
/// Pause after an accept error that is not about one connection (e.g. out
/// of descriptors), so the listener does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// How long the wall clock is derived from the monotonic one before it is
/// read again (see [`Clocks`]).
const WALL_RESYNC: Duration = Duration::from_millis(100);
/// [`WALL_RESYNC`] in nanoseconds.
const WALL_RESYNC_NANOS: u64 = WALL_RESYNC.as_nanos() as u64;
const NANOS_PER_SEC: u64 = 1_000_000_000;

thread_local! {
    static READ_BUFFER: RefCell<Box<[u8]>> = RefCell::new(vec![0; READ_BUF].into_boxed_slice());
}

/// Runs `f` with this thread's read buffer. Reads are handed to the engine
/// (which copies what it keeps) before `f` returns, so one buffer per
/// worker thread serves every connection.
fn with_read_buf<R>(f: impl FnOnce(&mut [u8]) -> R) -> R {
    READ_BUFFER.with(|b| match b.try_borrow_mut() {
        Ok(mut b) => f(&mut b),
        // Only reachable if a machine's callback re-entered another core on
        // this thread; correct, just slower.
        Err(_) => f(&mut vec![0; READ_BUF]),
    })
}

fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

// ---- the clocks ------------------------------------------------------------

/// The system clocks as a core reads them: the monotonic clock at every
/// read, the wall clock only every [`WALL_RESYNC`] per thread and derived
/// from the monotonic one in between (a second clock read and the
/// arithmetic of `SystemTime` were half of a read, and a core reads once
/// per step: per request). The derived time runs at the monotonic clock's
/// rate, so it strays from the wall clock by its slew (at most about 50 µs
/// in 100 ms) and follows a wall clock set anew within [`WALL_RESYNC`].
///
/// Every core of the process counts monotonic time from the same start,
/// so that one thread's cores can share the last wall-clock read.
struct Clocks {
    clock: &'static SystemClock,
    /// Where `clock`'s monotonic time starts.
    start: std::time::Instant,
}

static CLOCK: OnceLock<SystemClock> = OnceLock::new();

thread_local! {
    /// Both clocks at the last wall-clock read on this thread, shared by
    /// every core the thread runs (a factory server's cores each serve
    /// one connection).
    static SYNCED: Cell<Option<Now>> = const { Cell::new(None) };
}

impl Clocks {
    fn new() -> Clocks {
        let clock = CLOCK.get_or_init(SystemClock::new);
        Clocks {
            clock,
            start: clock.to_std(twill_core::Instant::ZERO),
        }
    }

    fn now(&self) -> Now {
        // Integer arithmetic throughout (no `u128`, no division): this
        // runs once per step, that is once per request.
        let d = self.start.elapsed();
        let nanos = d
            .as_secs()
            .saturating_mul(NANOS_PER_SEC)
            .saturating_add(u64::from(d.subsec_nanos()));
        let mono = twill_core::Instant::from_nanos(nanos);
        let derived = SYNCED.with(|synced| {
            let synced = synced.get()?;
            let since = nanos.saturating_sub(synced.mono.as_nanos());
            if since >= WALL_RESYNC_NANOS {
                return None;
            }
            // Under 0.1 s: the sum stays under two seconds.
            let mut secs = synced.wall.secs();
            let mut sub = synced.wall.subsec_nanos() + u32::try_from(since).ok()?;
            if u64::from(sub) >= NANOS_PER_SEC {
                sub -= 1_000_000_000;
                secs = secs.saturating_add(1);
            }
            Some(Now::new(mono, twill_core::UnixTime::new(secs, sub)))
        });
        derived.unwrap_or_else(|| {
            let now = self.clock.now();
            SYNCED.with(|synced| synced.set(Some(now)));
            now
        })
    }

    /// The `std` instant of a twill instant, for timers.
    fn to_std(&self, t: twill_core::Instant) -> std::time::Instant {
        self.clock.to_std(t)
    }
}

// ---- the ready list ------------------------------------------------------

/// Keys of sockets tokio says may be ready, and the task to wake.
#[derive(Debug, Default)]
pub(crate) struct ReadyList {
    /// Keys wait or the list was poked since the core last took them
    /// (changed under the lock; read without it, so that a core finds an
    /// empty list without locking).
    flagged: AtomicBool,
    inner: Mutex<ReadyInner>,
}

#[derive(Debug, Default)]
struct ReadyInner {
    keys: Vec<Key>,
    /// Something besides a socket wants the task: a message in the
    /// mailbox, a stop, or the alarm.
    poked: bool,
    /// The task to wake when the list stops being empty. Kept across
    /// wake-ups (woken by reference): the core's task is the same from
    /// wait to wait, and registering it anew each time cost a lock.
    task: Option<Waker>,
}

impl ReadyList {
    fn lock(&self) -> std::sync::MutexGuard<'_, ReadyInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, key: Key) {
        let mut g = self.lock();
        g.keys.push(key);
        self.flag(g);
    }

    /// Wakes the task without naming a socket.
    pub(crate) fn poke(&self) {
        let mut g = self.lock();
        g.poked = true;
        self.flag(g);
    }

    /// Flags the list, and wakes the task if it was not flagged yet (if
    /// it was, the task was woken then and has not taken the list since).
    fn flag(&self, g: std::sync::MutexGuard<'_, ReadyInner>) {
        if self.flagged.swap(true, Ordering::SeqCst) {
            return;
        }
        // Woken outside the lock: a wake may do real work (another
        // thread's runtime is unparked).
        let task = g.task.clone();
        drop(g);
        if let Some(t) = task {
            t.wake();
        }
    }

    /// Moves the ready keys to `out`; returns whether the list was poked.
    /// Locks only when the list is flagged.
    #[inline]
    fn take_into(&self, out: &mut Vec<Key>) -> bool {
        if !self.flagged.load(Ordering::SeqCst) {
            return false;
        }
        let mut g = self.lock();
        self.flagged.store(false, Ordering::SeqCst);
        out.append(&mut g.keys);
        std::mem::take(&mut g.poked)
    }

    /// Ready once the list is flagged; otherwise the task is woken when it
    /// is. `listed` is the caller's copy of the waker the list holds: a
    /// task that is still the listed one looks at the flag without a lock.
    /// Stateless (the keys stay on the list), so cancellation-safe.
    #[inline]
    fn poll_flagged(&self, cx: &mut Context<'_>, listed: &mut Option<Waker>) -> Poll<()> {
        if !listed.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            let mut g = self.lock();
            g.task = Some(cx.waker().clone());
            *listed = Some(cx.waker().clone());
        }
        // Set before the task was listed, or the wake went to the task
        // listed before: seen here either way. Set after: it wakes this
        // task.
        if self.flagged.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

/// The waker of the idle wait's timer: it pokes the ready list, so that
/// a wait need not poll the timer again while it is set (see
/// [`Core::poll_alarm`]).
struct AlarmWake {
    list: Arc<ReadyList>,
    fired: AtomicBool,
}

impl Wake for AlarmWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // The flag before the poke: the step the poke causes is followed
        // by a wait that must see it.
        self.fired.store(true, Ordering::SeqCst);
        self.list.poke();
    }
}

/// The waker tokio holds for one socket: it names the socket.
struct SockWaker {
    key: Key,
    list: Arc<ReadyList>,
}

impl Wake for SockWaker {
    fn wake(self: Arc<Self>) {
        self.list.push(self.key);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.list.push(self.key);
    }
}

/// How many sockets a core has, for registering them with tokio. A core
/// with one socket and a task of its own for life (a factory connection
/// on a multi-threaded runtime) registers that socket under the task's
/// waker: tokio wakes the task directly, and every step serves the
/// socket. The ready list, its lock and a waker per socket are for cores
/// with more (a hub, a factory server on a current-thread runtime), or
/// without a task of their own (a `Conn`, whose future may move from task
/// to task).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Solo {
    None,
    One(Key),
    Many,
}

/// The waker to register socket `key` under (see [`Solo`]).
fn waker_of<'a>(solo: Solo, task: &'a Option<Waker>, key: Key, own: &'a Waker) -> &'a Waker {
    match (solo, task) {
        (Solo::One(k), Some(task)) if k == key => task,
        _ => own,
    }
}

// ---- shared server state ---------------------------------------------------

/// Stops a server from any thread (a service's `Action::Stop`, the CLI's
/// Ctrl-C, `Running::stop`).
#[derive(Clone, Debug)]
pub struct Stopper(Arc<StopShared>);

#[derive(Debug)]
struct StopShared {
    /// For the tasks that `select!` on a stop (acceptors, the server).
    tx: watch::Sender<bool>,
    stopped: AtomicBool,
    /// The ready lists of the cores running now: a stop pokes each, so a
    /// core's idle wait needs no stop future of its own (registering one
    /// per wait cost a lock and a waker clone every time).
    cores: Mutex<slab::Slab<Arc<ReadyList>>>,
}

impl Stopper {
    pub(crate) fn new() -> Stopper {
        Stopper(Arc::new(StopShared {
            tx: watch::channel(false).0,
            stopped: AtomicBool::new(false),
            cores: Mutex::new(slab::Slab::new()),
        }))
    }

    /// Asks the server to stop: listeners close, connections are aborted.
    pub fn stop(&self) {
        // The flag first: a core enlisting from now on sees it.
        self.0.stopped.store(true, Ordering::SeqCst);
        self.0.tx.send_replace(true);
        let cores = self.0.cores.lock().unwrap_or_else(PoisonError::into_inner);
        for (_, ready) in cores.iter() {
            ready.poke();
        }
    }

    /// Whether [`Stopper::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        self.0.stopped.load(Ordering::SeqCst)
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<bool> {
        self.0.tx.subscribe()
    }

    /// Has a core's ready list poked on a stop, while the guard lives.
    fn enlist(&self, ready: Arc<ReadyList>) -> Enlisted {
        let mut cores = self.0.cores.lock().unwrap_or_else(PoisonError::into_inner);
        Enlisted {
            stopper: self.clone(),
            index: cores.insert(ready),
        }
    }
}

/// A core's place on its stopper's list.
pub(crate) struct Enlisted {
    stopper: Stopper,
    index: usize,
}

impl Drop for Enlisted {
    fn drop(&mut self) {
        let mut cores = self
            .stopper
            .0
            .cores
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        cores.try_remove(self.index);
    }
}

/// Whether a stop was asked for (or every stopper is gone).
pub(crate) fn stop_requested(rx: &watch::Receiver<bool>) -> bool {
    *rx.borrow() || rx.has_changed().is_err()
}

/// The connection cap shared by the tasks of a factory server, whose
/// per-connection engines cannot see each other's counts.
#[derive(Debug)]
pub(crate) struct Cap {
    live: AtomicUsize,
    max: usize,
}

impl Cap {
    pub(crate) fn new(max: usize) -> Arc<Cap> {
        Arc::new(Cap {
            live: AtomicUsize::new(0),
            max,
        })
    }

    pub(crate) fn try_acquire(self: &Arc<Self>) -> Option<CapGuard> {
        if self.live.fetch_add(1, Ordering::SeqCst) >= self.max {
            self.live.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(CapGuard(self.clone()))
    }
}

/// One connection's place under the cap, given back when dropped.
#[derive(Debug)]
pub(crate) struct CapGuard(Arc<Cap>);

impl Drop for CapGuard {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::SeqCst);
    }
}

// ---- sockets ---------------------------------------------------------------

/// What other tasks tell a core.
pub(crate) enum Ev<M, D> {
    /// A handle's command.
    Call(SlotId, Command<M>),
    /// Blocking work finished.
    Done(SlotId, D),
    /// A connect started for `Open` finished.
    Connected(Key, io::Result<Stream>),
}

/// Sends messages to a core's task: the channel carries them, the ready
/// list wakes the task (so its idle wait polls one thing, not a channel
/// too).
pub(crate) struct Mailer<M, D> {
    tx: mpsc::UnboundedSender<Ev<M, D>>,
    ready: Arc<ReadyList>,
}

impl<M, D> Clone for Mailer<M, D> {
    fn clone(&self) -> Self {
        Mailer {
            tx: self.tx.clone(),
            ready: self.ready.clone(),
        }
    }
}

impl<M, D> Mailer<M, D> {
    /// Posts `ev`; `Gone` once the core is dropped.
    pub(crate) fn send(&self, ev: Ev<M, D>) -> Result<(), Gone> {
        self.tx.send(ev).map_err(|_| Gone)?;
        self.ready.poke();
        Ok(())
    }
}

/// "WriteHalf" then "Graceful" may both be asked for; the stronger wins.
fn merge_close(old: Option<Close>, new: Close) -> Option<Close> {
    match (old, new) {
        (Some(Close::Graceful), _) => Some(Close::Graceful),
        (_, how) => Some(how),
    }
}

struct StreamSock {
    io: Stream,
    waker: Waker,
    out: WriteQueue,
    /// A close to carry out once `out` is flushed.
    then: Option<Close>,
    eof: bool,
    write_shut: bool,
    /// `sendfile` refused this socket (EINVAL/ENOSYS): copy instead.
    no_sendfile: bool,
    _cap: Option<CapGuard>,
}

impl StreamSock {
    /// One write from the front of the queue: a vectored write over the
    /// leading in-memory chunks, or a `sendfile` of a file chunk.
    fn write_some(&mut self) -> io::Result<usize> {
        match self.out.front() {
            None => Ok(0),
            Some(Chunk::File { file, offset, len }) => {
                let (off, rest) = (*offset, *len);
                if !self.no_sendfile {
                    let io = &self.io;
                    match io.try_io(Interest::WRITABLE, || net::sendfile(io, file, off, rest)) {
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::InvalidInput | io::ErrorKind::Unsupported
                            ) =>
                        {
                            tracing::debug!(error = %e, "sendfile refused; copying instead");
                            self.no_sendfile = true;
                        }
                        r => return r,
                    }
                }
                // Not a byte read from the file (nor a buffer allocated)
                // for a socket tokio knows is not writable.
                self.io.try_io(Interest::WRITABLE, || Ok(()))?;
                let mut tmp =
                    vec![0; usize::try_from(rest.min(READ_BUF as u64)).unwrap_or(READ_BUF)];
                let got = file.read_at(&mut tmp, off)?;
                if got == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shorter than the range sent",
                    ));
                }
                self.io.try_write(&tmp[..got])
            }
            // One slice (a reply line, a response): a plain write, no
            // vector to fill.
            Some(Chunk::Bytes(b)) if !matches!(self.out.get(1), Some(Chunk::Bytes(_))) => {
                self.io.try_write(b)
            }
            // A head and a body, a few lines: a short vector to fill.
            Some(Chunk::Bytes(_)) if self.out.get(FEW_IOV).is_none() => {
                self.write_gathered::<FEW_IOV>()
            }
            Some(Chunk::Bytes(_)) => self.write_gathered::<MAX_IOV>(),
        }
    }

    /// One vectored write of the leading in-memory chunks, at most `N`.
    fn write_gathered<const N: usize>(&self) -> io::Result<usize> {
        let mut iov = [IoSlice::new(&[]); N];
        let mut n = 0;
        for c in self.out.iter() {
            let Chunk::Bytes(b) = c else { break };
            iov[n] = IoSlice::new(b);
            n += 1;
            if n == N {
                break;
            }
        }
        self.io.try_write_vectored(&iov[..n])
    }
}

struct ListenerSock {
    io: ListenIo,
    waker: Waker,
    /// After a process-level accept error, accept again only after this.
    backoff_until: Option<tokio::time::Instant>,
}

struct UdpSock {
    io: UdpSocket,
    waker: Waker,
    local: IpAddr,
    out: VecDeque<(SocketAddr, Bytes)>,
}

enum Sock {
    Stream(StreamSock),
    Listener(ListenerSock),
    Udp(UdpSock),
}

/// An `Open { Connect | ConnectUnix }` under way. Output the machine
/// transmits meanwhile waits here.
struct Pending {
    task: JoinHandle<()>,
    out: WriteQueue,
    then: Option<Close>,
    cap: Option<CapGuard>,
}

/// The state of one socket's output, for `Conn::flush`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WriteState {
    /// Everything written.
    Flushed,
    /// Bytes wait (or the connection is still being opened).
    Busy,
    /// The socket is gone.
    Gone,
}

// ---- the core --------------------------------------------------------------

/// One engine and its sockets; see the module docs.
pub(crate) struct Core<M: Machine, S: Service<M>> {
    pub(crate) engine: Engine<M, S>,
    clock: Clocks,
    socks: SockMap<Sock>,
    pending: HashMap<Key, Pending>,
    ready: Arc<ReadyList>,
    /// Keys to serve on the next turn that tokio did not name (new data
    /// to write, reading switched back on, a turn's budget used up).
    local_ready: Vec<Key>,
    scratch: Vec<Key>,
    mail: Mailer<M, S::Done>,
    rx: mpsc::UnboundedReceiver<Ev<M, S::Done>>,
    /// The clock read once per [`Core::step`]: every event of a turn
    /// happens "now" (as on the mio driver), not a clock read each.
    turn_now: Option<Now>,
    /// The timer of the idle wait, kept from wait to wait: re-armed only
    /// for an earlier deadline (a later one lets it fire early once), so
    /// a deadline moved forward on every request costs no timer-wheel
    /// lock.
    alarm: Option<Pin<Box<tokio::time::Sleep>>>,
    /// When `alarm` goes off, while it is set and registered with
    /// `alarm_waker` (which pokes the ready list).
    armed: Option<twill_core::Instant>,
    alarm_wake: Arc<AlarmWake>,
    alarm_waker: Waker,
    /// The waker the ready list holds (see [`ReadyList::poll_flagged`]).
    listed: Option<Waker>,
    /// The core's own task, when it has one for life
    /// (`server::serve_core`): its only socket is then registered with
    /// tokio under this waker rather than its own (see [`Solo`]).
    task: Option<Waker>,
    solo: Solo,
    /// The stream being served: what its machine writes meanwhile is
    /// flushed at the end of its service, so it is not queued for another
    /// turn (which cost a whole step, and a yield, per request).
    serving: Option<Key>,
    /// The stream whose read loop runs: it looks whether the engine wants
    /// reads before each read, so reading switched back on meanwhile
    /// needs no other turn either (the engine switches it off and on
    /// around every request that writes).
    reading: Option<Key>,
    /// The last step left messages in the channel.
    mail_left: bool,
    stop: Option<Stopper>,
    /// The server-wide cap of a factory server (whose per-connection
    /// engines each count only their own connections).
    cap: Option<Arc<Cap>>,
    /// No reads at all while set (a `Conn` whose application has not
    /// taken its events yet).
    reads_paused: bool,
    /// The socket a `Conn` watches, and how it failed.
    pub(crate) watch: Option<Key>,
    pub(crate) watch_error: Option<io::Error>,
}

impl<M, S> Core<M, S>
where
    M: Machine + 'static,
    S: Service<M>,
    S::Done: Send + 'static,
{
    /// A core around `engine`; `stop` is what a service's `Action::Stop`
    /// triggers.
    pub(crate) fn new(engine: Engine<M, S>, stop: Option<Stopper>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let ready = Arc::new(ReadyList::default());
        let alarm_wake = Arc::new(AlarmWake {
            list: ready.clone(),
            fired: AtomicBool::new(false),
        });
        Core {
            engine,
            clock: Clocks::new(),
            socks: SockMap::default(),
            pending: HashMap::new(),
            mail: Mailer {
                tx,
                ready: ready.clone(),
            },
            ready,
            local_ready: Vec::new(),
            scratch: Vec::new(),
            rx,
            turn_now: None,
            alarm: None,
            armed: None,
            alarm_waker: Waker::from(alarm_wake.clone()),
            alarm_wake,
            listed: None,
            task: None,
            solo: Solo::None,
            serving: None,
            reading: None,
            mail_left: false,
            stop,
            cap: None,
            reads_paused: false,
            watch: None,
            watch_error: None,
        }
    }

    pub(crate) fn now(&self) -> Now {
        self.turn_now.unwrap_or_else(|| self.clock.now())
    }

    /// Puts this core on its stopper's list (a stop wakes it) while the
    /// guard lives.
    pub(crate) fn enlist(&self) -> Option<Enlisted> {
        self.stop.as_ref().map(|s| s.enlist(self.ready.clone()))
    }

    /// Whether the server this core belongs to is stopping.
    pub(crate) fn stop_requested(&self) -> bool {
        self.stop.as_ref().is_some_and(Stopper::is_stopped)
    }

    /// Counts this core's streams under a server-wide cap too.
    pub(crate) fn set_cap(&mut self, cap: Arc<Cap>) {
        self.cap = Some(cap);
    }

    /// A place under the server-wide cap (`Err` when full; `Ok(None)`
    /// without a cap).
    fn acquire(&self) -> Result<Option<CapGuard>, ()> {
        match &self.cap {
            None => Ok(None),
            Some(c) => c.try_acquire().map(Some).ok_or(()),
        }
    }

    /// A handle whose commands run on this core's task.
    pub(crate) fn slot_handle(&self, slot: SlotId) -> SlotHandle<M> {
        let mail = self.mail.clone();
        SlotHandle::new(slot, move |slot, f| mail.send(Ev::Call(slot, f)))
    }

    /// A sender for commands wrapped by the caller (the `Conn` handle).
    pub(crate) fn sender(&self) -> Mailer<M, S::Done> {
        self.mail.clone()
    }

    /// Serves this core's only socket, while it has one, under `task`
    /// (see [`Solo`]): the waker of the task this core lives in for good.
    pub(crate) fn set_task(&mut self, task: Waker) {
        self.task = Some(task);
    }

    fn insert_sock(&mut self, key: Key, sock: Sock) {
        self.socks.insert(key, sock);
        self.solo = match self.solo {
            Solo::None => Solo::One(key),
            Solo::One(k) if k == key => Solo::One(k),
            Solo::One(k) => {
                // Registered under the task's waker until now: served once
                // more, it registers under its own.
                self.local_ready.push(k);
                Solo::Many
            }
            Solo::Many => Solo::Many,
        };
    }

    fn remove_sock(&mut self, key: Key) -> Option<Sock> {
        if self.solo == Solo::One(key) {
            self.solo = Solo::None;
        }
        self.socks.remove(&key)
    }

    fn waker(&self, key: Key) -> Waker {
        Waker::from(Arc::new(SockWaker {
            key,
            list: self.ready.clone(),
        }))
    }

    // ---- registering sockets -------------------------------------------

    /// Registers a listener the driver bound for an endpoint.
    pub(crate) fn add_listener(&mut self, io: ListenIo) -> Key {
        let key = self.engine.new_key();
        self.engine.add_listener(key);
        let waker = self.waker(key);
        self.insert_sock(
            key,
            Sock::Listener(ListenerSock {
                io,
                waker,
                backoff_until: None,
            }),
        );
        self.local_ready.push(key);
        key
    }

    /// Registers a datagram socket the driver bound for an endpoint.
    pub(crate) fn add_udp(&mut self, io: UdpSocket) -> Key {
        let key = self.engine.new_key();
        let local = io
            .local_addr()
            .map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip());
        let waker = self.waker(key);
        self.insert_sock(
            key,
            Sock::Udp(UdpSock {
                io,
                waker,
                local,
                out: VecDeque::new(),
            }),
        );
        let now = self.now();
        self.engine.add_socket(key, now);
        self.local_ready.push(key);
        key
    }

    /// A listener (`listener` is its engine key) accepted `io`. Past the
    /// cap the engine refuses and the socket is closed at once.
    pub(crate) fn add_accepted(
        &mut self,
        listener: Key,
        io: Stream,
        cap: Option<CapGuard>,
    ) -> Option<Key> {
        let key = self.engine.new_key();
        let (local, peer) = io.addrs();
        let now = self.now();
        let waker = self.waker(key);
        self.insert_sock(key, Sock::Stream(Self::stream_sock(io, waker, cap)));
        match self.engine.accept(listener, key, local, peer, now) {
            Ok(()) => {
                self.local_ready.push(key);
                Some(key)
            }
            Err(_) => {
                tracing::debug!("connection limit reached; closing the new connection");
                self.remove_sock(key);
                None
            }
        }
    }

    fn stream_sock(io: Stream, waker: Waker, cap: Option<CapGuard>) -> StreamSock {
        StreamSock {
            io,
            waker,
            out: WriteQueue::default(),
            then: None,
            eof: false,
            write_shut: false,
            no_sendfile: false,
            _cap: cap,
        }
    }

    /// Starts connecting `key` (registered with the engine, which awaits
    /// `opened`/`open_failed`): a task resolves and connects, off this one.
    pub(crate) fn start_connect(&mut self, key: Key, how: Open) {
        let Ok(cap) = self.acquire() else {
            let now = self.now();
            self.engine.open_failed(key, OpenError::Limit, now);
            return;
        };
        let tx = self.mail.clone();
        let task = match how {
            Open::Connect {
                host,
                port,
                timeout,
            } => tokio::spawn(async move {
                let r = connect_tcp(host, port, timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT)).await;
                let _ = tx.send(Ev::Connected(key, r));
            }),
            Open::ConnectUnix { path } => tokio::spawn(async move {
                let r = UnixStream::connect(&path).await.map(Stream::Unix);
                let _ = tx.send(Ev::Connected(key, r));
            }),
            _ => return,
        };
        self.pending.insert(
            key,
            Pending {
                task,
                out: WriteQueue::default(),
                then: None,
                cap,
            },
        );
    }

    // ---- the loop ------------------------------------------------------

    /// Does everything that can be done now without waiting: messages from
    /// other tasks, due timers, the engine's actions and one turn of the
    /// ready sockets.
    pub(crate) fn step(&mut self) {
        let now = self.clock.now();
        self.turn_now = Some(now);
        let mut keys = std::mem::take(&mut self.scratch);
        keys.append(&mut self.local_ready);
        let poked = self.ready.take_into(&mut keys);
        if poked || self.mail_left {
            self.mail_left = false;
            for _ in 0..EVENTS_PER_TURN {
                match self.rx.try_recv() {
                    Ok(ev) => self.handle_ev(ev),
                    Err(_) => return self.serve(keys, now),
                }
            }
            self.mail_left = true;
        }
        self.serve(keys, now);
    }

    /// The rest of a [`Core::step`]: timers, actions, the ready sockets,
    /// and the timers their input made due (an HTTP server restarts its
    /// idle timers "now" after each request).
    fn serve(&mut self, mut keys: Vec<Key>, now: Now) {
        self.fire_timers(now);
        self.apply_actions();
        // A lone socket registered under the task's waker is served every
        // step (see [`Solo`]).
        let solo = match (self.solo, &self.task) {
            (Solo::One(key), Some(_)) => Some(key),
            _ => None,
        };
        match (solo, keys.as_slice()) {
            // The usual step of a factory connection: its socket only, no
            // list to sort.
            (Some(key), []) | (None, &[key]) => {
                self.service(key);
                self.apply_actions();
            }
            _ => {
                keys.extend(solo);
                keys.sort_unstable();
                keys.dedup();
                for &key in &keys {
                    self.service(key);
                    self.apply_actions();
                }
            }
        }
        keys.clear();
        self.scratch = keys;
        self.fire_timers(now);
        self.apply_actions();
        self.turn_now = None;
    }

    fn fire_timers(&mut self, now: Now) {
        if self.engine.next_deadline().is_some_and(|d| d <= now.mono) {
            self.engine.timeout(now);
        }
    }

    /// Whether [`Core::step`] has more to do right away, besides what
    /// the ready list holds (which [`Core::wait`] finds at once).
    pub(crate) fn has_work(&self) -> bool {
        self.mail_left || !self.local_ready.is_empty() || self.engine.has_actions()
    }

    /// One step of a core that has a task of its own for good (see
    /// `server::serve_core`): every poll is a step, since the task is polled
    /// only when woken (its only socket wakes it directly, see [`Solo`];
    /// everything else pokes the ready list). `Ready(true)` when the core
    /// is done (stopped, or `until_idle` and its machines are gone),
    /// `Ready(false)` when work is left for a step after other tasks have
    /// had their turn, `Pending` until there may be some.
    pub(crate) fn poll_serve(&mut self, cx: &mut Context<'_>, until_idle: bool) -> Poll<bool> {
        if self.stop_requested() {
            self.stop_all();
            return Poll::Ready(true);
        }
        self.step();
        if until_idle && self.engine.machines() == 0 {
            return Poll::Ready(true);
        }
        if self.has_work()
            || self.ready.poll_flagged(cx, &mut self.listed).is_ready()
            || self.poll_alarm().is_ready()
        {
            return Poll::Ready(false);
        }
        Poll::Pending
    }

    /// Waits for the next step: at once if there is work (after the
    /// task's cooperative budget allows, so a busy core does not starve
    /// the others of a thread), otherwise until there may be some.
    /// Cancellation-safe.
    pub(crate) async fn pause(&mut self) {
        if self.has_work() || !self.wait().await {
            tokio::task::consume_budget().await;
        }
    }

    /// Waits until a socket may be ready, a message or stop arrives, or
    /// the next timer is due (for a core without a task of its own, a
    /// `Conn`; one with a task is driven by [`Core::poll_serve`]). One
    /// look at one list per wait, without a lock as long as the task is
    /// the same: sockets, mail, stops and the alarm all report through it.
    /// Returns whether it had to wait (`false`: work was there already,
    /// and the caller should let other tasks run before serving it).
    /// Cancellation-safe: nothing is taken here, only waited for.
    pub(crate) async fn wait(&mut self) -> bool {
        let mut waited = false;
        poll_fn(|cx| {
            if self.ready.poll_flagged(cx, &mut self.listed).is_ready() {
                return Poll::Ready(());
            }
            if self.poll_alarm().is_ready() {
                return Poll::Ready(());
            }
            waited = true;
            Poll::Pending
        })
        .await;
        waited
    }

    /// Ready when the next timer is due; otherwise the alarm is set to
    /// wake the task then. A set alarm is polled again only when it must
    /// go off earlier or went off: its waker pokes the ready list, which
    /// every wait looks at first, so a wait with the deadline moved on
    /// (every request) costs a comparison, not a poll of the timer.
    #[inline]
    fn poll_alarm(&mut self) -> Poll<()> {
        let Some(d) = self.engine.next_deadline() else {
            // An alarm still set may go off once; the step it causes finds
            // nothing due.
            return Poll::Pending;
        };
        if self.armed.is_some_and(|armed| armed <= d)
            && !self.alarm_wake.fired.load(Ordering::SeqCst)
        {
            return Poll::Pending;
        }
        self.set_alarm(d)
    }

    /// Sets the alarm for `d` (see [`Core::poll_alarm`]).
    #[inline(never)]
    fn set_alarm(&mut self, d: twill_core::Instant) -> Poll<()> {
        // Cleared before the timer is reset: a going-off from now on is
        // seen by the next wait.
        self.alarm_wake.fired.store(false, Ordering::SeqCst);
        let at = tokio::time::Instant::from_std(self.clock.to_std(d));
        let alarm = match &mut self.alarm {
            Some(alarm) => {
                alarm.as_mut().reset(at);
                alarm
            }
            alarm @ None => alarm.insert(Box::pin(tokio::time::sleep_until(at))),
        };
        match alarm
            .as_mut()
            .poll(&mut Context::from_waker(&self.alarm_waker))
        {
            Poll::Ready(()) => {
                self.armed = None;
                Poll::Ready(())
            }
            Poll::Pending => {
                self.armed = Some(d);
                Poll::Pending
            }
        }
    }

    fn handle_ev(&mut self, ev: Ev<M, S::Done>) {
        let now = self.now();
        match ev {
            Ev::Call(slot, f) => self.engine.call(slot, f, now),
            Ev::Done(slot, d) => self.engine.done(slot, d, now),
            Ev::Connected(key, r) => self.connected(key, r),
        }
    }

    fn connected(&mut self, key: Key, r: io::Result<Stream>) {
        // Not pending any more: aborted meanwhile; the socket just closes.
        let Some(p) = self.pending.remove(&key) else {
            return;
        };
        let now = self.now();
        match r {
            Ok(io) => {
                let (local, peer) = io.addrs();
                let waker = self.waker(key);
                let mut s = Self::stream_sock(io, waker, p.cap);
                s.out = p.out;
                s.then = p.then;
                self.insert_sock(key, Sock::Stream(s));
                self.local_ready.push(key);
                self.engine.opened(key, local, peer, now);
            }
            Err(e) => {
                tracing::debug!(key, error = %e, "connect failed");
                let error = net::open_error(&e);
                if self.watch == Some(key) {
                    self.watch_error = Some(e);
                }
                self.engine.open_failed(key, error, now);
            }
        }
    }

    /// Stops reading every socket (or starts again).
    pub(crate) fn set_reads_paused(&mut self, paused: bool) {
        if self.reads_paused && !paused {
            self.local_ready.extend(self.socks.keys());
        }
        self.reads_paused = paused;
    }

    /// Where the output of `key` stands.
    pub(crate) fn output(&self, key: Key) -> WriteState {
        if self.pending.contains_key(&key) {
            return WriteState::Busy;
        }
        match self.socks.get(&key) {
            Some(Sock::Stream(s)) if s.out.is_empty() => WriteState::Flushed,
            Some(Sock::Stream(_)) => WriteState::Busy,
            Some(_) => WriteState::Flushed,
            None => WriteState::Gone,
        }
    }

    /// Aborts everything (the server stops): every socket is reset and the
    /// machines see `Closed`, then the sockets are dropped.
    pub(crate) fn stop_all(&mut self) {
        self.engine.shutdown_all();
        // Machines may react to `Closed` with more actions; a few rounds
        // settle them, whatever is left is dropped below.
        for _ in 0..4 {
            self.apply_actions();
            if !self.engine.has_actions() {
                break;
            }
        }
        for (_, p) in self.pending.drain() {
            p.task.abort();
        }
        self.solo = Solo::None;
        for (_, s) in self.socks.drain() {
            if let Sock::Stream(s) = s {
                net::set_abortive(&s.io);
            }
        }
    }

    // ---- actions ---------------------------------------------------------

    /// Carries out every action the engine has queued.
    #[inline]
    pub(crate) fn apply_actions(&mut self) {
        // Most calls find nothing: that costs a look, not a call.
        if self.engine.has_actions() {
            self.apply_queued();
        }
    }

    fn apply_queued(&mut self) {
        while let Some(a) = self.engine.poll_action() {
            self.apply(a);
        }
    }

    #[inline]
    fn apply(&mut self, a: Action<S::Done>) {
        match a {
            Action::Write { key, chunk } => self.queue_write(key, chunk),
            Action::SendTo { key, to, bytes } => match self.socks.get_mut(&key) {
                Some(Sock::Udp(u)) => {
                    if u.out.len() >= MAX_DGRAM_QUEUE {
                        tracing::debug!(key, "datagram queue full; dropping");
                    } else {
                        if u.out.is_empty() {
                            self.local_ready.push(key);
                        }
                        u.out.push_back((to, bytes));
                    }
                }
                _ => tracing::debug!(key, "datagram for an unknown socket dropped"),
            },
            Action::Open { key, how } => self.open(key, how),
            Action::Multicast { key, op } => match self.socks.get(&key) {
                Some(Sock::Udp(u)) => {
                    if let Err(e) = net::multicast(&u.io, &op) {
                        tracing::warn!(key, ?op, error = %e, "multicast change failed");
                    }
                }
                _ => tracing::debug!(key, "multicast change for an unknown socket"),
            },
            Action::Read { key, on } => {
                if on && self.reading != Some(key) {
                    self.local_ready.push(key);
                }
            }
            Action::Shutdown { key, how } => self.shutdown(key, how),
            Action::Spawn { slot, work } => {
                let tx = self.mail.clone();
                tokio::task::spawn_blocking(move || {
                    let done = work();
                    let _ = tx.send(Ev::Done(slot, done));
                });
            }
            Action::Stop => match &self.stop {
                Some(s) => s.stop(),
                None => tracing::debug!("a service asked to stop; nothing to stop here"),
            },
            other => tracing::debug!(?other, "action not supported by this driver"),
        }
    }

    fn queue_write(&mut self, key: Key, chunk: Chunk) {
        // An empty chunk would be an empty write, which says the socket
        // failed (`WriteZero`).
        if chunk.is_empty() {
            return;
        }
        match self.socks.get_mut(&key) {
            Some(Sock::Stream(s)) => {
                // The stream being served is flushed at the end of its
                // service anyway.
                if s.out.is_empty() && self.serving != Some(key) {
                    self.local_ready.push(key);
                }
                s.out.push(chunk);
            }
            _ => match self.pending.get_mut(&key) {
                Some(p) => p.out.push(chunk),
                None => tracing::debug!(key, "write to an unknown socket dropped"),
            },
        }
    }

    fn open(&mut self, key: Key, how: Open) {
        let now = self.now();
        match how {
            how @ (Open::Connect { .. } | Open::ConnectUnix { .. }) => self.start_connect(key, how),
            Open::Listen(addr) => match listen(addr) {
                Ok(io) => {
                    let local = match &io {
                        ListenIo::Tcp(l) => l.local_addr().map_or(Addr::Unknown, Addr::Ip),
                        ListenIo::Unix(_) => Addr::Unknown,
                    };
                    let waker = self.waker(key);
                    self.insert_sock(
                        key,
                        Sock::Listener(ListenerSock {
                            io,
                            waker,
                            backoff_until: None,
                        }),
                    );
                    self.local_ready.push(key);
                    self.engine.opened(key, local.clone(), local, now);
                }
                Err(e) => {
                    tracing::debug!(%addr, error = %e, "listen failed");
                    self.engine.open_failed(key, net::open_error(&e), now);
                }
            },
            Open::Bind { addr, join } => match bind_udp(addr, &join) {
                Ok(io) => {
                    let local = io.local_addr().unwrap_or(addr);
                    let waker = self.waker(key);
                    self.insert_sock(
                        key,
                        Sock::Udp(UdpSock {
                            io,
                            waker,
                            local: local.ip(),
                            out: VecDeque::new(),
                        }),
                    );
                    self.local_ready.push(key);
                    self.engine
                        .opened(key, Addr::Ip(local), Addr::Ip(local), now);
                }
                Err(e) => {
                    tracing::debug!(%addr, error = %e, "bind failed");
                    self.engine.open_failed(key, net::open_error(&e), now);
                }
            },
            other => {
                tracing::debug!(?other, "open not supported by this driver");
                self.engine.open_failed(key, OpenError::Unsupported, now);
            }
        }
    }

    fn shutdown(&mut self, key: Key, how: Close) {
        let now = self.now();
        if let Some(p) = self.pending.get_mut(&key) {
            if how == Close::Abort {
                if let Some(p) = self.pending.remove(&key) {
                    p.task.abort();
                }
                self.engine.open_failed(
                    key,
                    OpenError::Other("closed before it connected".into()),
                    now,
                );
            } else {
                p.then = merge_close(p.then, how);
            }
            return;
        }
        match self.socks.get_mut(&key) {
            Some(Sock::Stream(s)) => {
                if how == Close::Abort {
                    if self.watch == Some(key) && !s.out.is_empty() {
                        self.watch_error = Some(io::Error::new(
                            io::ErrorKind::ConnectionAborted,
                            "the connection was aborted with output unsent",
                        ));
                    }
                    net::set_abortive(&s.io);
                    self.remove_sock(key);
                    self.engine.closed(key, now);
                } else {
                    s.then = merge_close(s.then, how);
                    self.local_ready.push(key);
                }
            }
            Some(_) => {
                self.remove_sock(key);
                self.engine.closed(key, now);
            }
            None => tracing::debug!(key, "shutdown of an unknown socket"),
        }
    }

    /// The socket failed: it is gone, and the machine hears `Closed`.
    fn reset(&mut self, key: Key, e: io::Error) {
        tracing::debug!(key, error = %e, "connection reset");
        if self.watch == Some(key) {
            self.watch_error = Some(e);
        }
        self.remove_sock(key);
        let now = self.now();
        self.engine.closed(key, now);
    }

    // ---- serving one socket ---------------------------------------------

    fn service(&mut self, key: Key) {
        self.serving = Some(key);
        self.reading = Some(key);
        self.service_stream(key);
        self.serving = None;
        self.reading = None;
    }

    /// Serves a stream: flushes what is queued, reads, and flushes what
    /// the input made the machine say. (Serves a listener or datagram
    /// socket too: the one lookup tells which.)
    fn service_stream(&mut self, key: Key) {
        let now = self.now();
        // The socket is looked up once per pass and kept in hand until
        // something that may change the sockets runs.
        let mut s = match self.socks.get_mut(&key) {
            Some(Sock::Stream(s)) => s,
            Some(Sock::Listener(_)) => {
                (self.serving, self.reading) = (None, None);
                return self.service_listener(key);
            }
            Some(Sock::Udp(_)) => {
                (self.serving, self.reading) = (None, None);
                return self.service_udp(key);
            }
            None => return,
        };
        if !s.out.is_empty() || s.then.is_some() {
            if !self.flush_stream(key) {
                return;
            }
            s = match self.socks.get_mut(&key) {
                Some(Sock::Stream(s)) => s,
                _ => return,
            };
        }
        let mut reads = 0;
        // The last read was short, which says the socket is drained (and
        // cleared tokio's readiness): rather than a read that would only
        // say `WouldBlock`, tokio is asked to wake us when more arrives.
        let mut drained = false;
        loop {
            if s.eof || self.reads_paused {
                break;
            }
            if drained {
                // Registered before the engine is asked whether it wants
                // more (the usual answer is yes, and the question costs a
                // lookup): a machine that paused reading meanwhile costs
                // at most one wake-up that reads nothing.
                let w = waker_of(self.solo, &self.task, key, &s.waker);
                match s.io.poll_read_ready(&mut Context::from_waker(w)) {
                    Poll::Pending => {
                        // The usual end of a turn, with the socket in
                        // hand: its reply goes out from here when one write
                        // does it all (anything else, by `flush_stream`).
                        self.reading = None;
                        if s.out.is_empty() && s.then.is_none() {
                            return;
                        }
                        if let Ok(n @ 1..) = s.write_some() {
                            s.out.consume(n as u64);
                            let done = s.out.is_empty() && s.then.is_none();
                            self.engine.sent(key, n, now);
                            if done && !self.engine.has_actions() {
                                return;
                            }
                            self.apply_actions();
                        }
                        break;
                    }
                    // More arrived meanwhile.
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(e)) => return self.reset(key, e),
                }
            }
            if !self.engine.wants_read(key) {
                break;
            }
            if reads == READS_PER_TURN {
                // Budget spent with more to read, maybe: come back next
                // turn.
                self.local_ready.push(key);
                break;
            }
            reads += 1;
            let engine = &mut self.engine;
            // Handed to the engine before anything can await: no byte read
            // is ever held by a future.
            let r = with_read_buf(|buf| match s.io.read_draining(buf) {
                Ok(0) => {
                    s.eof = true;
                    engine.eof(key, true, now);
                    Ok(false)
                }
                Ok(n) => {
                    engine.data(key, &buf[..n], now);
                    Ok(n < buf.len())
                }
                Err(e) => Err(e),
            });
            drained = match r {
                Ok(short) => {
                    self.apply_actions();
                    short
                }
                Err(e) if would_block(&e) => true,
                Err(e) => return self.reset(key, e),
            };
            s = match self.socks.get_mut(&key) {
                Some(Sock::Stream(s)) => s,
                _ => return,
            };
        }
        self.reading = None;
        // What the input made the machine say goes out now, in one write
        // with whatever else is queued, rather than a turn later.
        self.flush_stream(key);
    }

    /// Writes what is queued; carries out a close waiting for the flush.
    /// Returns whether the socket is still there.
    fn flush_stream(&mut self, key: Key) -> bool {
        for _ in 0..WRITES_PER_TURN {
            let Some(Sock::Stream(s)) = self.socks.get_mut(&key) else {
                return false;
            };
            if s.out.is_empty() {
                return match s.then.take() {
                    None => true,
                    Some(Close::WriteHalf) => {
                        if !s.write_shut {
                            s.write_shut = true;
                            if let Err(e) = SockRef::from(&s.io).shutdown(Shutdown::Write) {
                                tracing::debug!(key, error = %e, "shutdown(write) failed");
                            }
                        }
                        true
                    }
                    Some(_) => {
                        self.close_graceful(key);
                        false
                    }
                };
            }
            // The write first: tokio knows whether the socket may be
            // writable (`WouldBlock` at once, without a system call, if
            // not); its waker is registered only when the write could not
            // be done, which is rare, rather than before every write.
            match s.write_some() {
                Ok(0) => {
                    self.reset(key, io::Error::from(io::ErrorKind::WriteZero));
                    return false;
                }
                Ok(n) => {
                    s.out.consume(n as u64);
                    let done = s.out.is_empty() && s.then.is_none();
                    let now = self.now();
                    self.engine.sent(key, n, now);
                    // All written and nothing new to do (the usual reply):
                    // no second look at the socket.
                    if done && !self.engine.has_actions() {
                        return true;
                    }
                    self.apply_actions();
                }
                Err(e) if would_block(&e) => {
                    let w = waker_of(self.solo, &self.task, key, &s.waker);
                    match s.io.poll_write_ready(&mut Context::from_waker(w)) {
                        Poll::Pending => return true,
                        Poll::Ready(Err(e)) => {
                            self.reset(key, e);
                            return false;
                        }
                        // Writable again meanwhile.
                        Poll::Ready(Ok(())) => {}
                    }
                }
                Err(e) => {
                    self.reset(key, e);
                    return false;
                }
            }
        }
        self.local_ready.push(key);
        true
    }

    /// Flushed and asked to close: send FIN, drain what the peer still
    /// sends for a moment (so our close is not a reset), report `closed`.
    fn close_graceful(&mut self, key: Key) {
        if let Some(Sock::Stream(s)) = self.remove_sock(key) {
            let _ = SockRef::from(&s.io).shutdown(Shutdown::Write);
            if !s.eof {
                tokio::spawn(linger(s.io));
            }
        }
        let now = self.now();
        self.engine.closed(key, now);
    }

    fn service_listener(&mut self, key: Key) {
        for _ in 0..ACCEPTS_PER_TURN {
            let Some(Sock::Listener(l)) = self.socks.get_mut(&key) else {
                return;
            };
            if let Some(t) = l.backoff_until {
                if tokio::time::Instant::now() < t {
                    return;
                }
                l.backoff_until = None;
            }
            let mut cx = Context::from_waker(waker_of(self.solo, &self.task, key, &l.waker));
            match l.io.poll_accept(&mut cx) {
                Poll::Pending => return,
                Poll::Ready(Ok(io)) => {
                    match self.acquire() {
                        Ok(cap) => {
                            self.add_accepted(key, io, cap);
                        }
                        Err(()) => {
                            tracing::debug!("connection limit reached; closing the new connection")
                        }
                    }
                    self.apply_actions();
                }
                Poll::Ready(Err(e)) if accept_error_is_transient(&e) => {}
                Poll::Ready(Err(e)) => {
                    tracing::warn!(error = %e, "accept failed; pausing this listener");
                    let until = tokio::time::Instant::now() + ACCEPT_BACKOFF;
                    l.backoff_until = Some(until);
                    let w = l.waker.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep_until(until).await;
                        w.wake();
                    });
                    return;
                }
            }
        }
        self.local_ready.push(key);
    }

    fn service_udp(&mut self, key: Key) {
        // Replies first: they free the queue.
        loop {
            let Some(Sock::Udp(u)) = self.socks.get_mut(&key) else {
                return;
            };
            let Some((to, bytes)) = u.out.front() else {
                break;
            };
            let mut cx = Context::from_waker(waker_of(self.solo, &self.task, key, &u.waker));
            match u.io.poll_send_ready(&mut cx) {
                Poll::Pending => break,
                Poll::Ready(Err(e)) => {
                    tracing::debug!(key, error = %e, "datagram socket failed; dropping its queue");
                    u.out.clear();
                    break;
                }
                Poll::Ready(Ok(())) => {}
            }
            match u.io.try_send_to(bytes, *to) {
                Ok(_) => {
                    u.out.pop_front();
                }
                Err(e) if would_block(&e) => {}
                Err(e) => {
                    tracing::debug!(key, to = %to, error = %e, "send_to failed; datagram dropped");
                    u.out.pop_front();
                }
            }
        }
        let now = self.now();
        for _ in 0..DGRAMS_PER_TURN {
            let Some(Sock::Udp(u)) = self.socks.get_mut(&key) else {
                return;
            };
            if self.reads_paused || !self.engine.wants_read(key) {
                return;
            }
            let mut cx = Context::from_waker(waker_of(self.solo, &self.task, key, &u.waker));
            match u.io.poll_recv_ready(&mut cx) {
                Poll::Pending => return,
                Poll::Ready(Err(e)) => {
                    tracing::debug!(key, error = %e, "datagram socket not readable");
                    return;
                }
                Poll::Ready(Ok(())) => {}
            }
            let engine = &mut self.engine;
            let (io, local) = (&u.io, u.local);
            let r = with_read_buf(|buf| {
                let meta = io.try_io(Interest::READABLE, || net::recv_datagram(io, buf, local))?;
                engine.datagram(
                    key,
                    meta.from,
                    meta.dst,
                    meta.ifindex,
                    &buf[..meta.len],
                    now,
                );
                Ok(())
            });
            match r {
                Ok(()) => self.apply_actions(),
                Err(e) if would_block(&e) => {}
                // ICMP errors of earlier sends surface here; the socket is
                // still fine.
                Err(e) => tracing::debug!(key, error = %e, "recv failed"),
            }
        }
        self.local_ready.push(key);
    }
}

impl<M: Machine, S: Service<M>> Drop for Core<M, S> {
    fn drop(&mut self) {
        for p in self.pending.values() {
            p.task.abort();
        }
    }
}

/// Reads and discards until the peer closes, for at most [`LINGER`] and
/// 1 MiB.
async fn linger(io: Stream) {
    let _ = tokio::time::timeout(LINGER, async {
        let mut buf = [0u8; 4096];
        let mut total = 0usize;
        loop {
            io.readable().await?;
            match io.try_read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    total += n;
                    if total > 1 << 20 {
                        return Ok(());
                    }
                }
                Err(e) if would_block(&e) => {}
                Err(e) => return Err(e),
            }
        }
    })
    .await;
}

/// Resolves (off this task: `getaddrinfo` blocks) and connects, trying
/// each address in turn.
pub(crate) async fn connect_tcp(host: String, port: u16, timeout: Duration) -> io::Result<Stream> {
    let attempt = async move {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addrs = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => {
                let name = bare.to_string();
                tokio::task::spawn_blocking(move || net::resolve(&name, port))
                    .await
                    .map_err(io::Error::other)??
            }
        };
        let mut last = None;
        for a in addrs {
            match TcpStream::connect(a).await {
                Ok(s) => return Ok(Stream::tcp(s)),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no addresses")))
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
    }
}

fn listen(addr: SocketAddr) -> io::Result<ListenIo> {
    let l = net::bind_tcp(addr, 1024)?;
    l.set_nonblocking(true)?;
    Ok(ListenIo::Tcp(tokio::net::TcpListener::from_std(l)?))
}

fn bind_udp(addr: SocketAddr, join: &[IpAddr]) -> io::Result<UdpSocket> {
    let s = net::bind_udp(addr, join)?;
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wall_nanos(now: Now) -> i128 {
        i128::from(now.wall.secs()) * 1_000_000_000 + i128::from(now.wall.subsec_nanos())
    }

    #[test]
    fn derived_wall_clock_follows_the_monotonic_one() {
        let clocks = Clocks::new();
        let first = clocks.now();
        let mut last = first;
        for _ in 0..1000 {
            let now = clocks.now();
            assert!(now.mono >= last.mono);
            let mono_step = i128::from(now.mono.as_nanos() - last.mono.as_nanos());
            let wall_step = wall_nanos(now) - wall_nanos(last);
            // Derived between reads: the same step on both clocks. A
            // fresh wall-clock read may differ by the clock's slew only.
            assert!(
                (wall_step - mono_step).abs() < 1_000_000,
                "{now:?} after {last:?}"
            );
            assert!(now.wall.subsec_nanos() < 1_000_000_000);
            last = now;
        }
        let system = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        assert!((system - wall_nanos(last)).abs() < 50_000_000);
    }
}
