//! [`Switch`]: continue a connection with another machine after a protocol
//! switch (HTTP Upgrade to WebSocket, STARTTLS-like hand-overs, CONNECT).
//!
//! The first machine stops taking input at the switch point and emits an
//! event carrying the bytes it read past it. A closure recognises that
//! event and builds the second machine; `Switch` feeds it the leftover bytes
//! and from then on routes the connection's inputs to it.

use alloc::vec::Vec;
use bytes::Bytes;

use crate::id::ConnId;
use crate::io::{Input, Output};
use crate::machine::{earliest, Machine};
use crate::time::{Instant, Now};

/// An event of a [`Switch`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SwitchEvent<A, B> {
    /// From the first machine.
    First(A),
    /// From a second machine.
    Second(B),
    /// `conn` now belongs to a second machine.
    Switched {
        /// The connection.
        conn: ConnId,
    },
}

/// An error of either machine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SwitchError<A, B> {
    /// The first machine's.
    #[error(transparent)]
    First(A),
    /// A second machine's.
    #[error(transparent)]
    Second(B),
}

/// What the switch closure returns for a hand-over event.
pub struct Handover<B> {
    /// The connection that changes hands.
    pub conn: ConnId,
    /// Bytes the first machine read past the switch point.
    pub rest: Bytes,
    /// The machine that continues the connection.
    pub next: B,
    /// Output of the first machine the driver has not yet reported sent
    /// (the first machine's count, as its hand-over event gives it): the
    /// connection's next `Sent` reports, up to this many bytes, are the
    /// first machine's and are not passed to `next`, whose own count of
    /// unflushed output would otherwise read too low.
    pub unflushed: usize,
}

struct Second<B> {
    conn: ConnId,
    machine: B,
    /// Leftover the second machine has not taken yet.
    pending: Bytes,
    drained: bool,
    deadline: Option<Instant>,
    /// The driver said `Closed`: dropped once drained.
    closed: bool,
    /// An EOF (its `clean`) to deliver once the leftover is taken.
    eof: Option<bool>,
    /// Flushed bytes still to be reported that the first machine wrote.
    owed: usize,
}

/// Runs `A` until `F` recognises one of its events as a hand-over, then runs
/// the `B` it built on that connection. Inputs of other connections still
/// go to `A`.
pub struct Switch<A: Machine, B: Machine, F> {
    first: A,
    first_drained: bool,
    first_deadline: Option<Instant>,
    seconds: Vec<Second<B>>,
    upgrade: F,
    now: Now,
    /// Outputs produced while processing a hand-over, emitted first.
    queue: alloc::collections::VecDeque<Output<SwitchEvent<A::Event, B::Event>>>,
    error: Option<B::Error>,
    /// Connections whose EOF the first machine saw (with `clean`): a peer
    /// may half-close right after asking to switch, and the second
    /// machine must still hear of it, after the leftover.
    eofs: Vec<(ConnId, bool)>,
}

impl<A, B, F> Switch<A, B, F>
where
    A: Machine,
    B: Machine,
    F: FnMut(A::Event) -> Result<Handover<B>, A::Event>,
{
    /// `upgrade` sees every event of `A`: it returns `Ok` to hand the
    /// connection over, or gives the event back.
    pub fn new(first: A, upgrade: F) -> Self {
        Switch {
            first,
            first_drained: false,
            first_deadline: None,
            seconds: Vec::new(),
            upgrade,
            now: Now::default(),
            queue: Default::default(),
            error: None,
            eofs: Vec::new(),
        }
    }

    /// The first machine, to call its commands.
    pub fn first(&mut self) -> &mut A {
        &mut self.first
    }

    /// The second machine on `conn`, if it was switched.
    pub fn second(&mut self, conn: ConnId) -> Option<&mut B> {
        self.seconds
            .iter_mut()
            .find(|s| s.conn == conn)
            .map(|s| &mut s.machine)
    }

    fn index(&self, conn: ConnId) -> Option<usize> {
        self.seconds.iter().position(|s| s.conn == conn)
    }

    /// Offers the second machine its pending leftover; true once all taken.
    fn feed_pending(&mut self, i: usize) -> Result<bool, B::Error> {
        let s = &mut self.seconds[i];
        s.drained = false;
        if s.pending.is_empty() {
            if let Some(clean) = s.eof.take() {
                s.machine.handle_input(
                    self.now,
                    Input::Eof {
                        conn: s.conn,
                        clean,
                    },
                )?;
            }
            return Ok(true);
        }
        let taken = s.machine.handle_input(
            self.now,
            Input::Data {
                conn: s.conn,
                bytes: &s.pending,
            },
        )?;
        let _ = s.pending.split_to(taken.min(s.pending.len()));
        if !s.pending.is_empty() {
            return Ok(false);
        }
        if let Some(clean) = s.eof.take() {
            s.machine.handle_input(
                self.now,
                Input::Eof {
                    conn: s.conn,
                    clean,
                },
            )?;
        }
        Ok(true)
    }

    fn hand_over(&mut self, h: Handover<B>) {
        let conn = h.conn;
        let eof = self
            .eofs
            .iter()
            .position(|(c, _)| *c == conn)
            .map(|k| self.eofs.swap_remove(k).1);
        self.seconds.push(Second {
            conn,
            machine: h.next,
            pending: h.rest,
            drained: false,
            deadline: None,
            closed: false,
            eof,
            owed: h.unflushed,
        });
        self.queue
            .push_back(Output::Event(SwitchEvent::Switched { conn }));
        let i = self.seconds.len() - 1;
        match self.feed_pending(i) {
            // The first machine stopped reading at the switch point, so the
            // driver holds bytes for this connection: ask for them.
            Ok(true) => self.queue.push_back(Output::Resume { conn }),
            Ok(false) => {}
            Err(e) => self.error = Some(e),
        }
    }
}

impl<A, B, F> Machine for Switch<A, B, F>
where
    A: Machine,
    B: Machine,
    F: FnMut(A::Event) -> Result<Handover<B>, A::Event>,
{
    type Event = SwitchEvent<A::Event, B::Event>;
    type Error = SwitchError<A::Error, B::Error>;

    fn handle_input(&mut self, now: Now, input: Input<'_>) -> Result<usize, Self::Error> {
        self.now = now;
        if let Some(e) = self.error.take() {
            return Err(SwitchError::Second(e));
        }
        let conn = input.conn();
        match self.index(conn) {
            Some(i) => {
                if !self.seconds[i].pending.is_empty() {
                    match input {
                        // Still working through the leftover: the driver
                        // keeps these bytes until we emit Resume.
                        Input::Data { .. } => return Ok(0),
                        // Never ahead of the leftover.
                        Input::Eof { clean, .. } => {
                            self.seconds[i].eof = Some(clean);
                            return Ok(0);
                        }
                        _ => {}
                    }
                }
                let s = &mut self.seconds[i];
                s.drained = false;
                s.closed |= matches!(input, Input::Closed { .. });
                if let Input::Sent { conn, bytes } = input {
                    if s.owed > 0 {
                        // The first machine's output flushing: not news
                        // for the second.
                        let skip = bytes.min(s.owed);
                        s.owed -= skip;
                        if bytes == skip {
                            return Ok(0);
                        }
                        return s
                            .machine
                            .handle_input(
                                now,
                                Input::Sent {
                                    conn,
                                    bytes: bytes - skip,
                                },
                            )
                            .map_err(SwitchError::Second);
                    }
                }
                s.machine
                    .handle_input(now, input)
                    .map_err(SwitchError::Second)
            }
            None => {
                match input {
                    Input::Eof { clean, .. } => self.eofs.push((conn, clean)),
                    Input::Closed { .. } => self.eofs.retain(|(c, _)| *c != conn),
                    _ => {}
                }
                self.first_drained = false;
                self.first
                    .handle_input(now, input)
                    .map_err(SwitchError::First)
            }
        }
    }

    fn handle_timeout(&mut self, now: Now) {
        self.now = now;
        self.first_drained = false;
        self.first.handle_timeout(now);
        for s in &mut self.seconds {
            s.drained = false;
            s.machine.handle_timeout(now);
        }
    }

    fn wants_sent(&self, conn: ConnId) -> bool {
        match self.index(conn) {
            Some(i) => self.seconds[i].machine.wants_sent(conn),
            None => self.first.wants_sent(conn),
        }
    }

    fn poll_output(&mut self) -> Output<Self::Event> {
        if let Some(o) = self.queue.pop_front() {
            return o;
        }
        let mut i = 0;
        while i < self.seconds.len() {
            if !self.seconds[i].drained {
                match self.seconds[i].machine.poll_output() {
                    Output::Wait { deadline } => {
                        self.seconds[i].drained = true;
                        self.seconds[i].deadline = deadline;
                    }
                    Output::Resume { conn } if conn == self.seconds[i].conn => {
                        match self.feed_pending(i) {
                            Ok(true) => return Output::Resume { conn },
                            Ok(false) => continue,
                            Err(e) => {
                                self.error = Some(e);
                                continue;
                            }
                        }
                    }
                    o => return o.map_event(SwitchEvent::Second),
                }
            }
            i += 1;
        }
        while !self.first_drained {
            match self.first.poll_output() {
                Output::Wait { deadline } => {
                    self.first_drained = true;
                    self.first_deadline = deadline;
                }
                Output::Event(e) => match (self.upgrade)(e) {
                    Ok(h) => {
                        self.hand_over(h);
                        return self.poll_output();
                    }
                    Err(e) => return Output::Event(SwitchEvent::First(e)),
                },
                // A conn that changed hands is no longer the first's.
                Output::Transmit { conn, .. }
                | Output::Close { conn, .. }
                | Output::Resume { conn }
                    if self.index(conn).is_some() => {}
                o => return o.map_event(SwitchEvent::First),
            }
        }
        self.seconds.retain(|s| !s.closed);
        let mut deadline = self.first_deadline;
        for s in &self.seconds {
            deadline = earliest(deadline, s.deadline);
        }
        self.first_drained = false;
        for s in &mut self.seconds {
            s.drained = false;
        }
        Output::Wait { deadline }
    }
}
