//! The machine host every driver shares.
//!
//! An [`Engine`] owns the machines of one server (a factory of
//! per-connection machines, or one hub machine) together with their
//! services, and keeps the contract for them: it drains after every
//! mutation, holds the bytes a short take left and offers them again on
//! `Resume`, counts unflushed output and pauses reading above a high-water
//! mark, runs timers (machine deadlines, service timers, idle timeouts),
//! relays spliced connections and answers what no driver can do
//! (`StartTls` without a TLS layer).
//!
//! It is itself sans-IO: the driver reports what its sockets did with the
//! methods below and carries out the [`Action`]s it polls. So the three
//! drivers differ only in how they move bytes, never in what the contract
//! means.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

// Keys here are ids the driver hands out, never peer-chosen: no need for
// SipHash's flooding defence, which cost 7 % of a pipelined HTTP run.
use crate::IdMap as HashMap;
use std::fs::File;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use twill_core::service::{Command, Host, Work};
use twill_core::{
    Addr, Close, ConnId, Cx, Duration, FileId, IdAllocator, Input, Instant, ListenerId, Machine,
    MulticastOp, Now, Open, OpenError, Output, Payload, Service,
};

/// A driver's name for one socket (connection, listener or datagram
/// socket). Never reused by one engine.
pub type Key = u64;

/// A machine of the engine. Never reused by one engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlotId(pub u64);

/// Bytes to write, in order, on one socket.
#[derive(Clone, Debug)]
pub enum Chunk {
    /// In memory.
    Bytes(Bytes),
    /// A range of a registered file (`sendfile` where the socket allows).
    File {
        /// The file.
        file: Arc<File>,
        /// Start.
        offset: u64,
        /// Length.
        len: u64,
    },
}

impl Chunk {
    /// Bytes this chunk puts on the wire.
    pub fn len(&self) -> u64 {
        match self {
            Chunk::Bytes(b) => b.len() as u64,
            Chunk::File { len, .. } => *len,
        }
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the driver must do.
#[non_exhaustive]
pub enum Action<D> {
    /// Append to the socket's write queue (write in order; a vectored
    /// write per socket per drain is best). Report progress with
    /// [`Engine::sent`].
    Write {
        /// The socket.
        key: Key,
        /// What.
        chunk: Chunk,
    },
    /// Send a datagram.
    SendTo {
        /// The datagram socket.
        key: Key,
        /// Destination.
        to: SocketAddr,
        /// Payload.
        bytes: Bytes,
    },
    /// Open a connection, listener or datagram socket under `key`; answer
    /// with [`Engine::opened`] or [`Engine::open_failed`]. Connections a
    /// listener opened this way accepts go to [`Engine::accept`] with this
    /// key as the listener.
    Open {
        /// The new socket's key.
        key: Key,
        /// What to open (never `StartTls`).
        how: Open,
    },
    /// Change a datagram socket's multicast settings.
    Multicast {
        /// The socket.
        key: Key,
        /// The change.
        op: MulticastOp,
    },
    /// Stop (`false`) or start (`true`) reading the socket.
    Read {
        /// The socket.
        key: Key,
        /// Whether to read.
        on: bool,
    },
    /// Close: `WriteHalf` and `Graceful` after the queued writes are
    /// flushed, `Abort` at once (discarding them). Report the end with
    /// [`Engine::closed`] (not needed after `WriteHalf`).
    Shutdown {
        /// The socket.
        key: Key,
        /// How.
        how: Close,
    },
    /// Run blocking work on a pool; hand the result to [`Engine::done`].
    Spawn {
        /// The machine whose service asked.
        slot: SlotId,
        /// The work.
        work: Work<D>,
    },
    /// A service asked the driver to stop serving.
    Stop,
}

impl<D> std::fmt::Debug for Action<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Write { key, chunk } => write!(f, "Write({key}, {} bytes)", chunk.len()),
            Action::SendTo { key, to, bytes } => {
                write!(f, "SendTo({key}, {to}, {} bytes)", bytes.len())
            }
            Action::Open { key, how } => write!(f, "Open({key}, {how:?})"),
            Action::Multicast { key, op } => write!(f, "Multicast({key}, {op:?})"),
            Action::Read { key, on } => write!(f, "Read({key}, {on})"),
            Action::Shutdown { key, how } => write!(f, "Shutdown({key}, {how:?})"),
            Action::Spawn { slot, .. } => write!(f, "Spawn({slot:?})"),
            Action::Stop => f.write_str("Stop"),
        }
    }
}

/// Limits and timeouts of an engine.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Most connections at once (accepted and opened); more are refused.
    pub max_conns: usize,
    /// Close (abort) a connection with no bytes read or flushed for this
    /// long.
    pub idle_timeout: Option<Duration>,
    /// Stop reading a connection while its unflushed output exceeds this.
    pub high_water: usize,
    /// Read again once it is at or below this.
    pub low_water: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_conns: 10_000,
            idle_timeout: None,
            high_water: 256 * 1024,
            low_water: 64 * 1024,
        }
    }
}

/// Factory serving (a machine per accepted connection) or one hub machine
/// over all of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A fresh machine and service per accepted connection (and per
    /// endpoint datagram socket).
    Factory,
    /// One machine and service for everything.
    Hub,
}

/// The engine refused an accepted connection: the connection cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("connection limit reached")]
pub struct AtCapacity;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Stream,
    Listener,
    Socket,
}

struct Conn {
    slot: SlotId,
    id: ConnId,
    kind: Kind,
    /// Input the machine has not taken yet.
    held: BytesMut,
    paused_by_machine: bool,
    /// The machine is being fed this connection's input: its reading is
    /// settled once, after the feed, not at every write of the drain
    /// (which would turn reading off and on again for each request).
    feeding: bool,
    /// The driver was told to stop reading.
    read_off: bool,
    /// Written but not reported sent.
    unflushed: usize,
    /// Flushed, but the machine declined the report
    /// ([`Machine::wants_sent`]): it goes with the next one.
    unreported: usize,
    last_active: Instant,
    splice: Option<Key>,
    /// Whether the driver answered the `Open` (or it was accepted).
    open: bool,
    /// The peer's EOF (with its `clean` flag), held back until the machine
    /// has taken every byte that came before it.
    eof_pending: Option<bool>,
    /// The peer's EOF arrived while spliced.
    splice_eof: bool,
    closing: bool,
}

struct Slot<M, S> {
    machine: M,
    service: S,
    conns: HashMap<ConnId, Key>,
    deadline: Option<Instant>,
    failed: bool,
    files: Vec<FileId>,
    /// A factory machine is dropped once its last connection closed.
    ephemeral: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Machine(SlotId),
    Service(SlotId, u64, u64),
    Idle(Key),
}

/// Everything a service's `Cx` reaches besides the machine.
struct HostState<D> {
    actions: VecDeque<Action<D>>,
    timers: BinaryHeap<Reverse<(Instant, Timer)>>,
    /// Generation per (slot, token); bumped by cancel.
    timer_gen: HashMap<(SlotId, u64), u64>,
    files: HashMap<FileId, Arc<File>>,
    next_file: u64,
}

struct SlotHost<'a, D> {
    slot: SlotId,
    state: &'a mut HostState<D>,
    files: &'a mut Vec<FileId>,
}

impl<D> Host<D> for SlotHost<'_, D> {
    fn spawn_blocking(&mut self, work: Work<D>) {
        self.state.actions.push_back(Action::Spawn {
            slot: self.slot,
            work,
        });
    }

    fn call_at(&mut self, deadline: Instant, token: u64) {
        let gen = *self.state.timer_gen.entry((self.slot, token)).or_default();
        self.state
            .timers
            .push(Reverse((deadline, Timer::Service(self.slot, token, gen))));
    }

    fn cancel_timer(&mut self, token: u64) {
        *self.state.timer_gen.entry((self.slot, token)).or_default() += 1;
    }

    fn add_file(&mut self, file: Arc<File>) -> FileId {
        self.state.next_file += 1;
        let id = FileId(self.state.next_file);
        self.state.files.insert(id, file);
        self.files.push(id);
        id
    }

    fn release_file(&mut self, id: FileId) {
        self.state.files.remove(&id);
        self.files.retain(|f| *f != id);
    }

    fn stop(&mut self) {
        self.state.actions.push_back(Action::Stop);
    }
}

type Factory<M, S> = Box<dyn FnMut() -> (M, S) + Send>;

/// The machine host; see the module docs.
pub struct Engine<M: Machine, S: Service<M>> {
    mode: Mode,
    make: Factory<M, S>,
    config: EngineConfig,
    slots: HashMap<SlotId, Slot<M, S>>,
    hub: Option<SlotId>,
    next_slot: u64,
    conns: HashMap<Key, Conn>,
    next_key: Key,
    /// Endpoint listeners: key → the id machines see.
    listeners: HashMap<Key, ListenerId>,
    driver_ids: IdAllocator,
    host: HostState<S::Done>,
    /// Streams and pending opens, for the cap.
    live: usize,
}

impl<M, S> Engine<M, S>
where
    M: Machine,
    S: Service<M>,
{
    /// An engine that makes machines with `make`: once (hub) or per
    /// connection (factory).
    pub fn new(
        mode: Mode,
        config: EngineConfig,
        make: impl FnMut() -> (M, S) + Send + 'static,
    ) -> Self {
        Engine {
            mode,
            make: Box::new(make),
            config,
            slots: HashMap::default(),
            hub: None,
            next_slot: 0,
            conns: HashMap::default(),
            next_key: 1,
            listeners: HashMap::default(),
            driver_ids: IdAllocator::for_driver(),
            host: HostState {
                actions: VecDeque::new(),
                timers: BinaryHeap::new(),
                timer_gen: HashMap::default(),
                files: HashMap::default(),
                next_file: 0,
            },
            live: 0,
        }
    }

    // ---- getters ------------------------------------------------------

    /// The serving mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Open stream connections (accepted and opened).
    pub fn live_conns(&self) -> usize {
        self.live
    }

    /// How many machines exist.
    pub fn machines(&self) -> usize {
        self.slots.len()
    }

    /// The hub machine's slot, creating the hub if needed (hub mode).
    pub fn hub(&mut self) -> SlotId {
        if let Some(h) = self.hub {
            return h;
        }
        let id = self.new_slot(false);
        self.hub = Some(id);
        id
    }

    /// A machine by slot, e.g. to inspect it in tests. Call
    /// [`Engine::call`] to mutate it so that it is drained.
    pub fn machine(&self, slot: SlotId) -> Option<&M> {
        self.slots.get(&slot).map(|s| &s.machine)
    }

    /// The machine that owns socket `key`.
    pub fn slot_of(&self, key: Key) -> Option<SlotId> {
        self.conns.get(&key).map(|c| c.slot)
    }

    /// A fresh key for a socket the driver creates itself (accepted
    /// connections, endpoint listeners and sockets).
    pub fn new_key(&mut self) -> Key {
        let k = self.next_key;
        self.next_key += 1;
        k
    }

    /// Whether the driver should read socket `key` now.
    pub fn wants_read(&self, key: Key) -> bool {
        self.conns.get(&key).is_some_and(|c| !c.read_off)
    }

    /// The earliest timer, for the driver's poll timeout.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        self.host.timers.peek().map(|Reverse((t, _))| *t)
    }

    /// The next action, if any.
    pub fn poll_action(&mut self) -> Option<Action<S::Done>> {
        self.host.actions.pop_front()
    }

    /// Whether actions wait.
    pub fn has_actions(&self) -> bool {
        !self.host.actions.is_empty()
    }

    // ---- what the driver reports ----------------------------------------

    /// Registers an endpoint listener the driver bound under `key`.
    pub fn add_listener(&mut self, key: Key) -> ListenerId {
        let id = ListenerId(self.listeners.len() as u64 + 1);
        self.listeners.insert(key, id);
        id
    }

    /// Registers an endpoint datagram socket bound under `key`: in factory
    /// mode it gets a machine of its own, in hub mode the hub serves it.
    pub fn add_socket(&mut self, key: Key, now: Now) -> SlotId {
        let slot = match self.mode {
            Mode::Factory => self.new_slot(false),
            Mode::Hub => self.hub(),
        };
        let id = self.driver_ids.next_id();
        self.insert_conn(key, slot, id, Kind::Socket, true, now);
        slot
    }

    /// Registers a stream connection the driver opens on its own for the
    /// machine of `slot` (a client endpoint), which the machine never asked
    /// for with `Open`. The driver answers under the returned key with
    /// [`Engine::opened`] or [`Engine::open_failed`]; the machine sees the
    /// returned driver-chosen id in `Opened`/`OpenFailed`. Refused past the
    /// cap or for an unknown slot.
    pub fn connect_client(&mut self, slot: SlotId, now: Now) -> Result<(Key, ConnId), AtCapacity> {
        if self.live >= self.config.max_conns || !self.slots.contains_key(&slot) {
            return Err(AtCapacity);
        }
        let key = self.new_key();
        let id = self.driver_ids.next_id();
        self.live += 1;
        self.insert_conn(key, slot, id, Kind::Stream, false, now);
        Ok((key, id))
    }

    /// A listener accepted connection `key`. Refused past the cap (the
    /// driver closes the socket).
    pub fn accept(
        &mut self,
        listener: Key,
        key: Key,
        local: Addr,
        peer: Addr,
        now: Now,
    ) -> Result<(), AtCapacity> {
        if self.live >= self.config.max_conns {
            return Err(AtCapacity);
        }
        let (slot, listener_id) = if let Some(l) = self.listeners.get(&listener) {
            let l = *l;
            let slot = match self.mode {
                Mode::Factory => self.new_slot(true),
                Mode::Hub => self.hub(),
            };
            (slot, l)
        } else if let Some(c) = self.conns.get(&listener) {
            // A listener the machine opened: its connections are its own.
            (c.slot, ListenerId(c.id.0))
        } else {
            return Err(AtCapacity);
        };
        let id = self.driver_ids.next_id();
        self.live += 1;
        self.insert_conn(key, slot, id, Kind::Stream, true, now);
        self.feed(
            slot,
            now,
            Input::Accepted {
                conn: id,
                listener: listener_id,
                local,
                peer,
            },
        );
        Ok(())
    }

    /// Bytes were read from `key`.
    pub fn data(&mut self, key: Key, bytes: &[u8], now: Now) {
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        c.last_active = now.mono;
        if let Some(other) = c.splice {
            self.relay(key, other, Bytes::copy_from_slice(bytes));
            return;
        }
        if c.paused_by_machine || !c.held.is_empty() {
            // A read already under way when reading was paused.
            c.held.extend_from_slice(bytes);
            self.update_read(key);
            return;
        }
        let (slot, conn) = (c.slot, c.id);
        // Paused while the machine looks at the bytes, so that a Resume in
        // the drain is seen below rather than lost.
        c.paused_by_machine = true;
        c.feeding = true;
        let taken = self.feed(slot, now, Input::Data { conn, bytes });
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        c.feeding = false;
        let resumed = !c.paused_by_machine;
        if taken >= bytes.len() {
            c.paused_by_machine = false;
        } else {
            let mut rest = BytesMut::from(&bytes[taken..]);
            rest.extend_from_slice(&c.held);
            c.held = rest;
            c.paused_by_machine = !resumed;
            if resumed {
                self.offer_held(key, now);
            }
        }
        self.update_read(key);
    }

    /// The peer finished sending on `key` (`clean` = orderly).
    pub fn eof(&mut self, key: Key, clean: bool, now: Now) {
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        c.read_off = true;
        if let Some(other) = c.splice {
            c.splice_eof = true;
            if self.conns.get(&other).is_some_and(|o| o.splice_eof) {
                // Both directions have ended: so has the relay. Nobody
                // else would close these two (the machine let go).
                for k in [key, other] {
                    if let Some(c) = self.conns.get_mut(&k) {
                        c.closing = true;
                    }
                    self.host.actions.push_back(Action::Shutdown {
                        key: k,
                        how: Close::Graceful,
                    });
                }
            } else {
                self.host.actions.push_back(Action::Shutdown {
                    key: other,
                    how: Close::WriteHalf,
                });
            }
            return;
        }
        if c.paused_by_machine || !c.held.is_empty() {
            // Input comes in order: the EOF waits for the held bytes.
            c.eof_pending = Some(clean);
            return;
        }
        let (slot, conn) = (c.slot, c.id);
        self.feed(slot, now, Input::Eof { conn, clean });
    }

    /// Delivers a held-back EOF once the held bytes are all taken.
    fn deliver_pending_eof(&mut self, key: Key, now: Now) {
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        if c.paused_by_machine || !c.held.is_empty() {
            return;
        }
        if let Some(clean) = c.eof_pending.take() {
            let (slot, conn) = (c.slot, c.id);
            self.feed(slot, now, Input::Eof { conn, clean });
        }
    }

    /// The driver flushed `n` more bytes written to `key`. The machine
    /// hears of it as [`Input::Sent`] unless it declines the report
    /// ([`Machine::wants_sent`]), which then goes with its next one.
    pub fn sent(&mut self, key: Key, n: usize, now: Now) {
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        c.unflushed = c.unflushed.saturating_sub(n);
        c.last_active = now.mono;
        let (slot, conn, splice) = (c.slot, c.id, c.splice);
        if let Some(other) = splice {
            self.update_read(other);
            return;
        }
        let bytes = c.unreported.saturating_add(n);
        let declined = self
            .slots
            .get(&slot)
            .is_some_and(|s| !s.failed && !s.machine.wants_sent(conn));
        if declined {
            // Nothing for the machine to learn now: no input, no drain.
            c.unreported = bytes;
            let unflushed = c.unflushed;
            toggle_read(c, unflushed, &self.config, &mut self.host.actions, key);
            return;
        }
        c.unreported = 0;
        self.feed(slot, now, Input::Sent { conn, bytes });
        self.update_read(key);
    }

    /// An `Action::Open` succeeded.
    pub fn opened(&mut self, key: Key, local: Addr, peer: Addr, now: Now) {
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        c.open = true;
        c.last_active = now.mono;
        let (slot, conn) = (c.slot, c.id);
        self.feed(slot, now, Input::Opened { conn, local, peer });
    }

    /// An `Action::Open` failed.
    pub fn open_failed(&mut self, key: Key, error: OpenError, now: Now) {
        let Some(c) = self.remove_conn(key) else {
            return;
        };
        self.feed(c.slot, now, Input::OpenFailed { conn: c.id, error });
        self.reap(c.slot);
    }

    /// Socket `key` is gone (closed after `Shutdown`, reset, or failed).
    pub fn closed(&mut self, key: Key, now: Now) {
        let Some(c) = self.remove_conn(key) else {
            return;
        };
        if let Some(other) = c.splice {
            // The relay ends when either side does.
            if let Some(o) = self.conns.get_mut(&other) {
                o.splice = None;
                if !o.closing {
                    o.closing = true;
                    self.host.actions.push_back(Action::Shutdown {
                        key: other,
                        how: Close::Graceful,
                    });
                }
            }
        }
        self.feed(c.slot, now, Input::Closed { conn: c.id });
        self.reap(c.slot);
    }

    /// A datagram arrived on socket `key`.
    pub fn datagram(
        &mut self,
        key: Key,
        from: SocketAddr,
        dst: IpAddr,
        ifindex: u32,
        bytes: &[u8],
        now: Now,
    ) {
        let Some(c) = self.conns.get(&key) else {
            return;
        };
        let (slot, sock) = (c.slot, c.id);
        self.feed(
            slot,
            now,
            Input::Datagram {
                sock,
                from,
                dst,
                ifindex,
                bytes,
            },
        );
    }

    /// Blocking work of `slot`'s service finished.
    pub fn done(&mut self, slot: SlotId, done: S::Done, now: Now) {
        self.with_service(slot, now, |svc, cx| svc.on_done(cx, done));
    }

    /// Runs a command on a machine (a `Handle` call), then drains it.
    pub fn call(&mut self, slot: SlotId, f: Command<M>, now: Now) {
        let Some(s) = self.slots.get_mut(&slot) else {
            return;
        };
        f(&mut s.machine);
        self.drain(slot, now);
    }

    /// Fires every timer due at `now`.
    pub fn timeout(&mut self, now: Now) {
        while let Some(Reverse((t, timer))) = self.host.timers.peek().copied() {
            if t > now.mono {
                break;
            }
            self.host.timers.pop();
            match timer {
                Timer::Machine(slot) => {
                    let Some(s) = self.slots.get_mut(&slot) else {
                        continue;
                    };
                    if s.deadline.is_some_and(|d| d <= now.mono) {
                        s.deadline = None;
                        s.machine.handle_timeout(now);
                        self.drain(slot, now);
                    }
                }
                Timer::Service(slot, token, gen) => {
                    if self
                        .host
                        .timer_gen
                        .get(&(slot, token))
                        .copied()
                        .unwrap_or(0)
                        == gen
                    {
                        self.with_service(slot, now, |svc, cx| svc.on_timer(cx, token));
                    }
                }
                Timer::Idle(key) => self.check_idle(key, now),
            }
        }
    }

    /// Closes everything: every connection is aborted (the driver reports
    /// `closed` as usual).
    pub fn shutdown_all(&mut self) {
        let keys: Vec<Key> = self.conns.keys().copied().collect();
        for key in keys {
            self.host.actions.push_back(Action::Shutdown {
                key,
                how: Close::Abort,
            });
        }
    }

    // ---- inside ---------------------------------------------------------

    fn new_slot(&mut self, ephemeral: bool) -> SlotId {
        let (machine, service) = (self.make)();
        self.next_slot += 1;
        let id = SlotId(self.next_slot);
        self.slots.insert(
            id,
            Slot {
                machine,
                service,
                conns: HashMap::default(),
                deadline: None,
                failed: false,
                files: Vec::new(),
                ephemeral,
            },
        );
        id
    }

    fn insert_conn(
        &mut self,
        key: Key,
        slot: SlotId,
        id: ConnId,
        kind: Kind,
        open: bool,
        now: Now,
    ) {
        if let Some(s) = self.slots.get_mut(&slot) {
            s.conns.insert(id, key);
        }
        self.conns.insert(
            key,
            Conn {
                slot,
                id,
                kind,
                held: BytesMut::new(),
                paused_by_machine: false,
                feeding: false,
                read_off: false,
                unflushed: 0,
                unreported: 0,
                last_active: now.mono,
                splice: None,
                open,
                eof_pending: None,
                splice_eof: false,
                closing: false,
            },
        );
        if kind == Kind::Stream {
            if let Some(idle) = self.config.idle_timeout {
                self.host
                    .timers
                    .push(Reverse((now.mono + idle, Timer::Idle(key))));
            }
        }
    }

    fn remove_conn(&mut self, key: Key) -> Option<Conn> {
        let c = self.conns.remove(&key)?;
        // Only streams count (a pending Listen or Bind never did).
        if c.kind == Kind::Stream {
            self.live = self.live.saturating_sub(1);
        }
        if let Some(s) = self.slots.get_mut(&c.slot) {
            s.conns.remove(&c.id);
        }
        Some(c)
    }

    /// Drops a factory machine whose connections are all gone.
    fn reap(&mut self, slot: SlotId) {
        if let Some(s) = self.slots.get(&slot) {
            if s.ephemeral && s.conns.is_empty() {
                if let Some(s) = self.slots.remove(&slot) {
                    for f in s.files {
                        self.host.files.remove(&f);
                    }
                    self.host.timer_gen.retain(|(sl, _), _| *sl != slot);
                }
            }
        }
    }

    /// Feeds one input to a machine and drains it; returns bytes taken.
    fn feed(&mut self, slot: SlotId, now: Now, input: Input<'_>) -> usize {
        let Some(s) = self.slots.get_mut(&slot) else {
            return 0;
        };
        let taken = if s.failed {
            0
        } else {
            match s.machine.handle_input(now, input) {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "machine error; closing its connections");
                    s.failed = true;
                    s.service.on_error(&e);
                    0
                }
            }
        };
        // Drained with the slot in hand: no second lookup.
        let rare = drain_slot(s, slot, &mut self.conns, &self.config, &mut self.host, now);
        if !matches!(rare, Rare::Wait) && self.rare(slot, rare, now) {
            self.drain(slot, now);
        }
        taken
    }

    fn with_service(
        &mut self,
        slot: SlotId,
        now: Now,
        f: impl FnOnce(&mut S, &mut Cx<'_, M, S::Done>),
    ) {
        let Some(s) = self.slots.get_mut(&slot) else {
            return;
        };
        let mut host = SlotHost {
            slot,
            state: &mut self.host,
            files: &mut s.files,
        };
        let mut cx = Cx::new(&mut s.machine, now, &mut host);
        f(&mut s.service, &mut cx);
        self.drain(slot, now);
    }

    /// Polls the machine until `Wait`, carrying out its outputs.
    fn drain(&mut self, slot: SlotId, now: Now) {
        loop {
            let Some(s) = self.slots.get_mut(&slot) else {
                return;
            };
            let rare = drain_slot(s, slot, &mut self.conns, &self.config, &mut self.host, now);
            if matches!(rare, Rare::Wait) || !self.rare(slot, rare, now) {
                return;
            }
        }
    }

    /// Carries out an output `drain_slot` left to the whole engine;
    /// returns whether the machine must be drained again.
    fn rare(&mut self, slot: SlotId, rare: Rare<M::Event>, now: Now) -> bool {
        let output = match rare {
            Rare::Wait => return false,
            Rare::Failed => {
                self.close_failed(slot);
                return false;
            }
            Rare::Output(o) => o,
        };
        let Some(s) = self.slots.get(&slot) else {
            return false;
        };
        match output {
            Output::Open { conn, how } => self.open(slot, conn, how, now),
            Output::Resume { conn } => {
                if let Some(&key) = s.conns.get(&conn) {
                    if let Some(c) = self.conns.get_mut(&key) {
                        c.paused_by_machine = false;
                    }
                    self.offer_held(key, now);
                    self.update_read(key);
                }
            }
            Output::Splice { a, b } => {
                let (ka, kb) = (s.conns.get(&a).copied(), s.conns.get(&b).copied());
                if let (Some(ka), Some(kb)) = (ka, kb) {
                    self.splice(ka, kb);
                }
            }
            _ => {}
        }
        true
    }

    /// An application error is sticky: what was queued went out; now the
    /// machine's connections close.
    fn close_failed(&mut self, slot: SlotId) {
        let Some(s) = self.slots.get(&slot) else {
            return;
        };
        let keys: Vec<Key> = s.conns.values().copied().collect();
        for key in keys {
            if let Some(c) = self.conns.get_mut(&key) {
                if !c.closing {
                    c.closing = true;
                    self.host.actions.push_back(Action::Shutdown {
                        key,
                        how: Close::Graceful,
                    });
                }
            }
        }
    }

    fn write(&mut self, key: Key, chunk: Chunk) {
        write(
            &mut self.conns,
            &self.config,
            &mut self.host.actions,
            key,
            chunk,
        );
    }

    fn open(&mut self, slot: SlotId, conn: ConnId, how: Open, now: Now) {
        match how {
            Open::StartTls { .. } => {
                // TLS is a layer (`twill-tls`) around the machine; a bare
                // driver cannot secure a connection.
                self.feed(
                    slot,
                    now,
                    Input::OpenFailed {
                        conn,
                        error: OpenError::Unsupported,
                    },
                );
            }
            how => {
                let stream = matches!(how, Open::Connect { .. } | Open::ConnectUnix { .. });
                if stream && self.live >= self.config.max_conns {
                    self.feed(
                        slot,
                        now,
                        Input::OpenFailed {
                            conn,
                            error: OpenError::Limit,
                        },
                    );
                    return;
                }
                let kind = match how {
                    Open::Listen(_) => Kind::Listener,
                    Open::Bind { .. } => Kind::Socket,
                    _ => Kind::Stream,
                };
                let key = self.new_key();
                if kind == Kind::Stream {
                    self.live += 1;
                }
                self.insert_conn(key, slot, conn, kind, false, now);
                self.host.actions.push_back(Action::Open { key, how });
            }
        }
    }

    /// Offers held input again, as long as the machine takes it; then a
    /// held-back EOF.
    fn offer_held(&mut self, key: Key, now: Now) {
        self.offer_held_bytes(key, now);
        self.deliver_pending_eof(key, now);
    }

    fn offer_held_bytes(&mut self, key: Key, now: Now) {
        loop {
            let Some(c) = self.conns.get_mut(&key) else {
                return;
            };
            if c.paused_by_machine || c.held.is_empty() {
                return;
            }
            let held = c.held.split().freeze();
            let (slot, conn) = (c.slot, c.id);
            // Paused while the machine looks at it, so a Resume inside this
            // drain does not recurse into another offer.
            c.paused_by_machine = true;
            c.feeding = true;
            let taken = self.feed(slot, now, Input::Data { conn, bytes: &held });
            let Some(c) = self.conns.get_mut(&key) else {
                return;
            };
            c.feeding = false;
            let mut rest = BytesMut::from(&held[taken.min(held.len())..]);
            rest.extend_from_slice(&c.held);
            c.held = rest;
            if taken >= held.len() {
                c.paused_by_machine = false;
            } else if !c.paused_by_machine {
                // The machine said Resume during the drain: offer again.
                continue;
            } else {
                return;
            }
        }
    }

    /// Tells the driver to stop or start reading as the state requires.
    fn update_read(&mut self, key: Key) {
        update_read(&mut self.conns, &self.config, &mut self.host.actions, key);
    }

    fn splice(&mut self, a: Key, b: Key) {
        for (x, y) in [(a, b), (b, a)] {
            if let Some(c) = self.conns.get_mut(&x) {
                c.splice = Some(y);
                c.paused_by_machine = false;
            }
        }
        for (x, y) in [(a, b), (b, a)] {
            let held = match self.conns.get_mut(&x) {
                Some(c) => c.held.split().freeze(),
                None => continue,
            };
            if !held.is_empty() {
                self.relay(x, y, held);
            }
            self.update_read(x);
        }
    }

    fn relay(&mut self, from: Key, to: Key, bytes: Bytes) {
        self.write(to, Chunk::Bytes(bytes));
        self.update_read(from);
    }

    fn check_idle(&mut self, key: Key, now: Now) {
        let Some(idle) = self.config.idle_timeout else {
            return;
        };
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        let due = c.last_active + idle;
        if due <= now.mono {
            tracing::debug!(key, "idle timeout");
            c.closing = true;
            self.host.actions.push_back(Action::Shutdown {
                key,
                how: Close::Abort,
            });
        } else {
            self.host.timers.push(Reverse((due, Timer::Idle(key))));
        }
    }
}

/// How [`drain_slot`] stopped.
enum Rare<E> {
    /// The machine waits.
    Wait,
    /// The machine waits, and it failed: its connections close.
    Failed,
    /// An output that needs the whole engine (it feeds the machine again,
    /// or opens sockets).
    Output(Output<E>),
}

/// Polls a machine until `Wait` or an output only the whole engine can
/// carry out. The outputs of every request (writes, events, closes) are
/// carried out here, with the slot in hand: one lookup per drain, not one
/// per output.
fn drain_slot<M: Machine, S: Service<M>>(
    s: &mut Slot<M, S>,
    slot: SlotId,
    conns: &mut HashMap<Key, Conn>,
    config: &EngineConfig,
    host: &mut HostState<S::Done>,
    now: Now,
) -> Rare<M::Event> {
    loop {
        match s.machine.poll_output() {
            Output::Wait { deadline } => {
                if deadline != s.deadline {
                    s.deadline = deadline;
                    if let Some(d) = deadline {
                        host.timers.push(Reverse((d, Timer::Machine(slot))));
                    }
                }
                return if s.failed { Rare::Failed } else { Rare::Wait };
            }
            Output::Transmit { conn, payload } => {
                let Some(&key) = s.conns.get(&conn) else {
                    tracing::debug!(?conn, "transmit to unknown connection dropped");
                    continue;
                };
                let chunk = match payload {
                    Payload::Bytes(b) => Chunk::Bytes(b),
                    Payload::File { id, offset, len } => match host.files.get(&id) {
                        Some(f) => Chunk::File {
                            file: f.clone(),
                            offset,
                            len,
                        },
                        None => {
                            tracing::warn!(?id, "unregistered file; aborting connection");
                            host.actions.push_back(Action::Shutdown {
                                key,
                                how: Close::Abort,
                            });
                            continue;
                        }
                    },
                };
                write(conns, config, &mut host.actions, key, chunk);
            }
            Output::SendTo { sock, to, bytes } => {
                if let Some(&key) = s.conns.get(&sock) {
                    host.actions.push_back(Action::SendTo { key, to, bytes });
                }
            }
            Output::Event(e) => {
                let mut slot_host = SlotHost {
                    slot,
                    state: host,
                    files: &mut s.files,
                };
                let mut cx = Cx::new(&mut s.machine, now, &mut slot_host);
                s.service.on_event(&mut cx, e);
            }
            Output::Multicast { sock, op } => {
                if let Some(&key) = s.conns.get(&sock) {
                    host.actions.push_back(Action::Multicast { key, op });
                }
            }
            Output::Close { conn, how } => {
                if let Some(&key) = s.conns.get(&conn) {
                    if let Some(c) = conns.get_mut(&key) {
                        c.closing |= how != Close::WriteHalf;
                    }
                    host.actions.push_back(Action::Shutdown { key, how });
                }
            }
            other => return Rare::Output(other),
        }
    }
}

/// Queues `chunk` for `key` and counts it as unflushed. A free function
/// over the engine's parts, so that `drain` can call it while it holds
/// the machine's slot.
fn write<D>(
    conns: &mut HashMap<Key, Conn>,
    config: &EngineConfig,
    actions: &mut VecDeque<Action<D>>,
    key: Key,
    chunk: Chunk,
) {
    if chunk.is_empty() {
        return;
    }
    if let Some(c) = conns.get_mut(&key) {
        c.unflushed = c.unflushed.saturating_add(chunk.len() as usize);
    }
    actions.push_back(Action::Write { key, chunk });
    update_read(conns, config, actions, key);
}

/// Tells the driver to stop or start reading `key` as its state requires:
/// off while the machine holds input back or too much output waits (above
/// the high-water mark), on again at or below the low-water mark.
fn update_read<D>(
    conns: &mut HashMap<Key, Conn>,
    config: &EngineConfig,
    actions: &mut VecDeque<Action<D>>,
    key: Key,
) {
    let partner = match conns.get_mut(&key) {
        None => return,
        Some(c) if c.kind != Kind::Stream || c.feeding => return,
        Some(c) => match c.splice {
            // One lookup for the usual, unspliced connection.
            None => {
                let unflushed = c.unflushed;
                toggle_read(c, unflushed, config, actions, key);
                return;
            }
            Some(o) => o,
        },
    };
    // A spliced connection reads as fast as its partner drains.
    let unflushed = conns.get(&partner).map_or(0, |o| o.unflushed);
    if let Some(c) = conns.get_mut(&key) {
        toggle_read(c, unflushed, config, actions, key);
    }
}

fn toggle_read<D>(
    c: &mut Conn,
    unflushed: usize,
    config: &EngineConfig,
    actions: &mut VecDeque<Action<D>>,
    key: Key,
) {
    let blocked = c.paused_by_machine || !c.held.is_empty();
    let want = if c.read_off {
        !blocked && unflushed <= config.low_water
    } else {
        !blocked && unflushed <= config.high_water
    };
    if want == c.read_off {
        c.read_off = !want;
        actions.push_back(Action::Read { key, on: want });
    }
}

#[allow(dead_code)]
fn _assert_send<M: Machine + Send, S: Service<M> + Send>(e: Engine<M, S>)
where
    S::Done: Send,
{
    fn is_send<T: Send>(_: &T) {}
    is_send(&e);
}
