use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use bytes::Bytes;
use core::fmt::Debug;
use core::net::SocketAddr;

use super::Clock;
use crate::id::{ConnId, ListenerId, SockId};
use crate::io::{Addr, Close, Input, Open, OpenError, Output, Payload};
use crate::machine::Machine;
use crate::time::{Duration, Instant};

/// One machine under a simulated driver with a virtual clock.
///
/// It keeps the contract the way a real driver does: it drains after every
/// mutation, holds bytes a short take left behind and offers them again on
/// `Resume`, acknowledges transmitted bytes with `Sent` (when
/// [`auto_sent`](Self::auto_sent) is on; a report the machine declines
/// with [`Machine::wants_sent`] goes with the next one, as the drivers do)
/// and answers `Close` with `Closed`.
/// Everything the machine emits is recorded for assertions.
pub struct Sim<M: Machine> {
    /// The machine under test.
    pub machine: M,
    /// The virtual clock.
    pub clock: Clock,
    /// Events, in order.
    pub events: Vec<M::Event>,
    /// All bytes transmitted per connection (file payloads are recorded as
    /// their length in zero bytes).
    pub sent: BTreeMap<ConnId, Vec<u8>>,
    /// Transmitted but not yet taken by [`Sim::take_outbox`].
    pub outbox: VecDeque<(ConnId, Bytes)>,
    /// Datagrams sent: socket, destination, bytes.
    pub datagrams: Vec<(SockId, SocketAddr, Bytes)>,
    /// Closes, in order.
    pub closes: Vec<(ConnId, Close)>,
    /// Opens not yet answered.
    pub opens: Vec<(ConnId, Open)>,
    /// Splices asked for.
    pub splices: Vec<(ConnId, ConnId)>,
    /// The first error the machine returned.
    pub error: Option<M::Error>,
    /// Acknowledge every transmit with `Sent` at once (default true); turn
    /// off to simulate a peer that does not read.
    pub auto_sent: bool,
    /// Answer `Close` with `Closed` at once (default true).
    pub auto_closed: bool,
    /// Bytes offered but not taken, per connection.
    held: BTreeMap<ConnId, Vec<u8>>,
    /// Connections the machine paused with a short take.
    paused: BTreeMap<ConnId, bool>,
    unacked: BTreeMap<ConnId, usize>,
    /// Acknowledged, but the machine declined the report.
    declined: BTreeMap<ConnId, usize>,
    deadline: Option<Instant>,
    closed: Vec<ConnId>,
    resumes: Vec<ConnId>,
}

impl<M: Machine> Sim<M>
where
    M::Event: Debug,
{
    /// Wraps a machine; nothing is fed yet.
    pub fn new(machine: M) -> Self {
        Sim {
            machine,
            clock: Clock::new(),
            events: Vec::new(),
            sent: BTreeMap::new(),
            outbox: VecDeque::new(),
            datagrams: Vec::new(),
            closes: Vec::new(),
            opens: Vec::new(),
            splices: Vec::new(),
            error: None,
            auto_sent: true,
            auto_closed: true,
            held: BTreeMap::new(),
            paused: BTreeMap::new(),
            unacked: BTreeMap::new(),
            declined: BTreeMap::new(),
            deadline: None,
            closed: Vec::new(),
            resumes: Vec::new(),
        }
    }

    /// Feeds one input and drains; returns what the machine said it took.
    pub fn input(&mut self, input: Input<'_>) -> usize {
        let r = self.machine.handle_input(self.clock.now(), input);
        let n = match r {
            Ok(n) => n,
            Err(e) => {
                if self.error.is_none() {
                    self.error = Some(e);
                }
                0
            }
        };
        self.drain();
        n
    }

    /// A driver-accepted connection.
    pub fn accept(&mut self, conn: ConnId) {
        self.input(Input::Accepted {
            conn,
            listener: ListenerId(0),
            local: Addr::Unknown,
            peer: Addr::Unknown,
        });
    }

    /// Answers an `Open` (or announces a driver-made client connection).
    pub fn opened(&mut self, conn: ConnId) {
        self.opens.retain(|(c, _)| *c != conn);
        self.input(Input::Opened {
            conn,
            local: Addr::Unknown,
            peer: Addr::Unknown,
        });
    }

    /// Fails an `Open`.
    pub fn open_failed(&mut self, conn: ConnId, error: OpenError) {
        self.opens.retain(|(c, _)| *c != conn);
        self.input(Input::OpenFailed { conn, error });
    }

    /// Bytes arrive on `conn`. They queue behind any held bytes, exactly as
    /// a driver keeps what a short take left.
    pub fn data(&mut self, conn: ConnId, bytes: &[u8]) {
        self.held.entry(conn).or_default().extend_from_slice(bytes);
        if !self.paused.get(&conn).copied().unwrap_or(false) {
            self.offer(conn);
        }
    }

    /// Bytes offered but not yet taken on `conn`.
    pub fn held(&self, conn: ConnId) -> usize {
        self.held.get(&conn).map_or(0, Vec::len)
    }

    fn offer(&mut self, conn: ConnId) {
        self.offer_raw(conn);
        self.drain();
    }

    fn feed(&mut self, input: Input<'_>) {
        if let Err(e) = self.machine.handle_input(self.clock.now(), input) {
            if self.error.is_none() {
                self.error = Some(e);
            }
        }
    }

    fn offer_raw(&mut self, conn: ConnId) {
        let Some(buf) = self.held.remove(&conn) else {
            return;
        };
        if buf.is_empty() {
            return;
        }
        let r = self
            .machine
            .handle_input(self.clock.now(), Input::Data { conn, bytes: &buf });
        let taken = match r {
            Ok(n) => n.min(buf.len()),
            Err(e) => {
                if self.error.is_none() {
                    self.error = Some(e);
                }
                0
            }
        };
        if taken < buf.len() {
            self.paused.insert(conn, true);
            let mut rest = buf;
            rest.drain(..taken);
            // Bytes that arrived while we were offering go behind the rest.
            if let Some(more) = self.held.remove(&conn) {
                rest.extend_from_slice(&more);
            }
            self.held.insert(conn, rest);
        }
    }

    /// The peer finished sending (cleanly).
    pub fn eof(&mut self, conn: ConnId) {
        self.input(Input::Eof { conn, clean: true });
    }

    /// The connection reset or ended.
    pub fn closed(&mut self, conn: ConnId) {
        if !self.closed.contains(&conn) {
            self.closed.push(conn);
            self.input(Input::Closed { conn });
        }
    }

    /// A datagram arrives on `sock`.
    pub fn datagram(&mut self, sock: SockId, from: SocketAddr, bytes: &[u8]) {
        let dst = from.ip();
        self.input(Input::Datagram {
            sock,
            from,
            dst,
            ifindex: 0,
            bytes,
        });
    }

    /// Acknowledges everything transmitted on `conn` so far.
    pub fn ack(&mut self, conn: ConnId) {
        let n = self.unacked.remove(&conn).unwrap_or(0);
        self.report(conn, n);
    }

    /// Reports `n` flushed bytes of `conn` (with any declined before), or
    /// keeps them for the next report if the machine declines.
    fn report(&mut self, conn: ConnId, n: usize) {
        if let Some(bytes) = self.due_report(conn, n) {
            self.input(Input::Sent { conn, bytes });
        }
    }

    /// The bytes to report now for `n` more flushed on `conn` (with any
    /// declined before), or `None` if the machine declines (they are kept).
    fn due_report(&mut self, conn: ConnId, n: usize) -> Option<usize> {
        if n == 0 {
            return None;
        }
        let bytes = self.declined.remove(&conn).unwrap_or(0) + n;
        if self.machine.wants_sent(conn) {
            Some(bytes)
        } else {
            self.declined.insert(conn, bytes);
            None
        }
    }

    /// Acknowledges `n` bytes on `conn`.
    pub fn ack_some(&mut self, conn: ConnId, n: usize) {
        let u = self.unacked.entry(conn).or_default();
        let n = n.min(*u);
        *u -= n;
        self.report(conn, n);
    }

    /// Bytes transmitted on `conn` and not yet acknowledged.
    pub fn unacked(&self, conn: ConnId) -> usize {
        self.unacked.get(&conn).copied().unwrap_or(0)
    }

    /// The machine's current timer.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Moves the clock forward by `d`, firing the machine's timer each
    /// time it falls due on the way.
    pub fn advance(&mut self, d: Duration) {
        let end = self.clock.now().mono + d;
        while let Some(t) = self.deadline.filter(|t| *t <= end) {
            self.clock.advance_to(t);
            self.machine.handle_timeout(self.clock.now());
            let before = self.deadline;
            self.drain();
            if self.deadline == before && before == Some(t) {
                // A machine that re-arms the same instant would spin.
                break;
            }
        }
        self.clock.advance_to(end);
    }

    /// The transmitted bytes of `conn` as text (lossy), for assertions.
    pub fn sent_text(&self, conn: ConnId) -> alloc::string::String {
        alloc::string::String::from_utf8_lossy(self.sent.get(&conn).map_or(&[][..], |v| v))
            .into_owned()
    }

    /// Takes what was transmitted since the last call.
    pub fn take_outbox(&mut self) -> Vec<(ConnId, Bytes)> {
        self.outbox.drain(..).collect()
    }

    /// Polls until `Wait`, carrying out each output as a driver would,
    /// then acknowledges, closes and re-offers as configured, until nothing
    /// more happens.
    pub fn drain(&mut self) {
        let mut rounds = 0u64;
        loop {
            rounds += 1;
            assert!(rounds < 1_000_000, "the machine never settles");
            self.poll_until_wait();
            if self.auto_sent {
                let conn = self
                    .unacked
                    .iter()
                    .find(|(c, n)| **n > 0 && !self.closed.contains(c))
                    .map(|(c, _)| *c);
                if let Some(conn) = conn {
                    let n = self.unacked.remove(&conn).unwrap_or(0);
                    if let Some(bytes) = self.due_report(conn, n) {
                        self.feed(Input::Sent { conn, bytes });
                    }
                    continue;
                }
            }
            if self.auto_closed {
                let conn = self
                    .closes
                    .iter()
                    .filter(|(_, how)| *how != Close::WriteHalf)
                    .map(|(c, _)| *c)
                    .find(|c| !self.closed.contains(c));
                if let Some(conn) = conn {
                    self.closed.push(conn);
                    self.feed(Input::Closed { conn });
                    continue;
                }
            }
            if let Some(conn) = self.resumes.pop() {
                if !self.paused.get(&conn).copied().unwrap_or(false) {
                    self.offer_raw(conn);
                }
                continue;
            }
            break;
        }
    }

    fn poll_until_wait(&mut self) {
        let mut guard = 0u64;
        loop {
            guard += 1;
            assert!(guard < 10_000_000, "poll_output never returned Wait");
            match self.machine.poll_output() {
                Output::Wait { deadline } => {
                    self.deadline = deadline;
                    break;
                }
                Output::Transmit { conn, payload } => {
                    let bytes = match payload {
                        Payload::Bytes(b) => b,
                        Payload::File { len, .. } => Bytes::from(alloc::vec![0u8; len as usize]),
                    };
                    self.sent.entry(conn).or_default().extend_from_slice(&bytes);
                    *self.unacked.entry(conn).or_default() += bytes.len();
                    self.outbox.push_back((conn, bytes));
                }
                Output::SendTo { sock, to, bytes } => self.datagrams.push((sock, to, bytes)),
                Output::Event(e) => self.events.push(e),
                Output::Open { conn, how } => self.opens.push((conn, how)),
                Output::Resume { conn } => {
                    self.paused.insert(conn, false);
                    self.resumes.push(conn);
                }
                Output::Splice { a, b } => self.splices.push((a, b)),
                Output::Close { conn, how } => self.closes.push((conn, how)),
                _ => {}
            }
        }
    }
}
