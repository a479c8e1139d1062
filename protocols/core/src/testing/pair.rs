use alloc::vec::Vec;
use core::fmt::Debug;

use super::Sim;
use crate::id::{ConnId, IdAllocator};
use crate::io::{Close, Input, Open};
use crate::machine::Machine;
use crate::time::Duration;

/// A client machine and a server machine joined by in-memory connections
/// under one virtual clock.
///
/// Connections come from [`Pair::connect`] (a driver-made client
/// connection) or from the client's own `Open { Connect }`; bytes one side
/// transmits arrive at the other when [`Pair::run`] steps the pair.
pub struct Pair<C: Machine, S: Machine> {
    /// The client side.
    pub client: Sim<C>,
    /// The server side.
    pub server: Sim<S>,
    /// (client conn, server conn).
    links: Vec<(ConnId, ConnId)>,
    server_ids: IdAllocator,
    client_ids: IdAllocator,
    /// How many of each side's closes were delivered to the other.
    closes_seen: (usize, usize),
}

impl<C: Machine, S: Machine> Pair<C, S>
where
    C::Event: Debug,
    S::Event: Debug,
{
    /// Two machines, not yet connected.
    pub fn new(client: C, server: S) -> Self {
        Pair {
            client: Sim::new(client),
            server: Sim::new(server),
            links: Vec::new(),
            server_ids: IdAllocator::for_driver(),
            client_ids: IdAllocator::for_driver(),
            closes_seen: (0, 0),
        }
    }

    /// Opens a connection as a driver would for a client endpoint: the
    /// client gets `Opened`, the server `Accepted`. Returns both ids.
    pub fn connect(&mut self) -> (ConnId, ConnId) {
        let c = self.client_ids.next_id();
        let s = self.server_ids.next_id();
        self.links.push((c, s));
        self.server.accept(s);
        self.client.opened(c);
        self.run();
        (c, s)
    }

    fn server_of(&self, c: ConnId) -> Option<ConnId> {
        self.links.iter().find(|l| l.0 == c).map(|l| l.1)
    }

    fn client_of(&self, s: ConnId) -> Option<ConnId> {
        self.links.iter().find(|l| l.1 == s).map(|l| l.0)
    }

    /// Moves bytes, closes and connects between the two until neither side
    /// has anything in flight.
    pub fn run(&mut self) {
        for _ in 0..1_000_000 {
            let mut progress = false;
            // Client `Open { Connect }`s reach the server.
            let opens: Vec<ConnId> = self
                .client
                .opens
                .iter()
                .filter(|(_, h)| matches!(h, Open::Connect { .. } | Open::ConnectUnix { .. }))
                .map(|(c, _)| *c)
                .collect();
            for c in opens {
                let s = self.server_ids.next_id();
                self.links.push((c, s));
                self.server.accept(s);
                self.client.opened(c);
                progress = true;
            }
            for (c, bytes) in self.client.take_outbox() {
                if let Some(s) = self.server_of(c) {
                    self.server.data(s, &bytes);
                    progress = true;
                }
            }
            for (s, bytes) in self.server.take_outbox() {
                if let Some(c) = self.client_of(s) {
                    self.client.data(c, &bytes);
                    progress = true;
                }
            }
            while self.closes_seen.0 < self.client.closes.len() {
                let (c, how) = self.client.closes[self.closes_seen.0];
                self.closes_seen.0 += 1;
                if let Some(s) = self.server_of(c) {
                    self.deliver_close_to_server(s, how);
                }
                progress = true;
            }
            while self.closes_seen.1 < self.server.closes.len() {
                let (s, how) = self.server.closes[self.closes_seen.1];
                self.closes_seen.1 += 1;
                if let Some(c) = self.client_of(s) {
                    self.deliver_close_to_client(c, how);
                }
                progress = true;
            }
            if !progress {
                return;
            }
        }
        panic!("the pair never settled");
    }

    fn deliver_close_to_server(&mut self, s: ConnId, how: Close) {
        match how {
            Close::WriteHalf | Close::Graceful => self.server.eof(s),
            Close::Abort => {
                self.server.input(Input::Eof {
                    conn: s,
                    clean: false,
                });
            }
        };
        if how != Close::WriteHalf {
            self.server.closed(s);
        }
    }

    fn deliver_close_to_client(&mut self, c: ConnId, how: Close) {
        match how {
            Close::WriteHalf | Close::Graceful => self.client.eof(c),
            Close::Abort => {
                self.client.input(Input::Eof {
                    conn: c,
                    clean: false,
                });
            }
        };
        if how != Close::WriteHalf {
            self.client.closed(c);
        }
    }

    /// Advances the shared clock by `d`, firing both sides' timers in time
    /// order and moving bytes after each.
    pub fn advance(&mut self, d: Duration) {
        let end = self.client.clock.now().mono + d;
        let mut last = None;
        loop {
            let next = crate::machine::earliest(self.client.deadline(), self.server.deadline())
                .filter(|t| *t <= end);
            let Some(t) = next else { break };
            if last == Some(t) {
                break;
            }
            last = Some(t);
            let step = t - self.client.clock.now().mono;
            self.client.advance(step);
            self.server.advance(step);
            self.run();
            if self.client.clock.now().mono >= end {
                break;
            }
        }
        let rest = end - self.client.clock.now().mono;
        self.client.advance(rest);
        self.server.advance(rest);
        self.run();
    }
}
