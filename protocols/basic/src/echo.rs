//! Echo (RFC 862): every byte received is sent back.
//!
//! | input | effect |
//! |---|---|
//! | `Accepted` / `Opened` | [`ServiceEvent::Connected`] |
//! | `Data` | takes as much as fits under the connection's high-water mark and transmits it back; a short take (possibly 0) pauses reading ([`ServiceEvent::Paused`]) |
//! | `Sent` | once the output drains to the low-water mark: `Resume` and [`ServiceEvent::Resumed`] |
//! | `Eof` | [`ServiceEvent::Eof`]; once everything held back is echoed, `Close::Graceful` (so a half-closing client still gets all its bytes back) |
//! | `Datagram` | the same bytes back to the sender with `SendTo` |
//! | `Closed` | [`ServiceEvent::Closed`] |
//!
//! A client that sends without reading therefore makes the server hold at
//! most the high-water mark of unflushed output per connection; the rest
//! waits in the client's own socket buffers.

use twill_core::ConnMap;
use twill_core::{Close, ConnId, Input, Machine, Now, OutQueue, Output, OutputBudget};

use crate::error::Error;
use crate::service::ServiceEvent;

#[derive(Debug)]
struct Conn {
    budget: OutputBudget,
    /// Waiting for output to drain before taking more.
    paused: bool,
    /// Our last take was short: the driver holds bytes for us, which it
    /// offers again after `Resume`.
    held: bool,
    eof: bool,
    closing: bool,
}

/// The echo service over any number of TCP connections and datagram
/// sockets.
#[derive(Debug, Default)]
pub struct Echo {
    budget: OutputBudget,
    conns: ConnMap<Conn>,
    out: OutQueue<ServiceEvent>,
}

impl Echo {
    /// Echo with the default [`OutputBudget`] (64 KiB high, 16 KiB low).
    pub fn new() -> Self {
        Echo::default()
    }

    /// Output water marks per connection: above `high` unflushed bytes
    /// reading pauses, at `low` it resumes.
    pub fn with_budget(mut self, budget: OutputBudget) -> Self {
        self.budget = budget;
        self
    }

    /// Whether reading `conn` is paused by backpressure.
    pub fn is_paused(&self, conn: ConnId) -> bool {
        self.conns.get(&conn).is_some_and(|c| c.paused)
    }

    /// Unflushed output of `conn`.
    pub fn pending_output(&self, conn: ConnId) -> Option<usize> {
        self.conns.get(&conn).map(|c| c.budget.pending())
    }

    fn data(&mut self, conn: ConnId, bytes: &[u8]) -> usize {
        let Some(c) = self.conns.get_mut(&conn) else {
            return bytes.len();
        };
        if c.closing {
            return bytes.len();
        }
        let n = bytes.len().min(c.budget.room());
        if n > 0 {
            self.out.buf.extend_from_slice(&bytes[..n]);
            let queued = self.out.transmit_buf(conn);
            c.budget.queued(queued);
        }
        c.held = n < bytes.len();
        if c.held {
            if !c.paused {
                c.paused = true;
                self.out.event(ServiceEvent::Paused { conn });
            }
        } else if c.eof {
            c.closing = true;
            self.out.close(conn, Close::Graceful);
        }
        n
    }
}

impl Machine for Echo {
    type Event = ServiceEvent;
    type Error = Error;

    /// Never fails.
    fn handle_input(&mut self, _now: Now, input: Input<'_>) -> Result<usize, Error> {
        match input {
            Input::Accepted { conn, peer, .. } | Input::Opened { conn, peer, .. } => {
                self.conns.insert(
                    conn,
                    Conn {
                        budget: self.budget,
                        paused: false,
                        held: false,
                        eof: false,
                        closing: false,
                    },
                );
                self.out.event(ServiceEvent::Connected { conn, peer });
            }
            Input::Data { conn, bytes } => return Ok(self.data(conn, bytes)),
            Input::Eof { conn, .. } => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    if !c.eof && !c.closing {
                        c.eof = true;
                        self.out.event(ServiceEvent::Eof { conn });
                        // While the driver still holds bytes for us, close
                        // once they are echoed.
                        if !c.held {
                            c.closing = true;
                            self.out.close(conn, Close::Graceful);
                        }
                    }
                }
            }
            Input::Sent { conn, bytes } => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.budget.sent(bytes);
                    if c.paused && c.budget.has_room() {
                        c.paused = false;
                        self.out.push(Output::Resume { conn });
                        self.out.event(ServiceEvent::Resumed { conn });
                    }
                }
            }
            Input::Closed { conn } => {
                let known = self.conns.remove(&conn).is_some();
                if known {
                    self.out.event(ServiceEvent::Closed { conn });
                }
            }
            Input::Datagram {
                sock, from, bytes, ..
            } => {
                self.out.buf.extend_from_slice(bytes);
                let reply = self.out.buf.split().freeze();
                self.out.push(Output::SendTo {
                    sock,
                    to: from,
                    bytes: reply,
                });
                self.out.event(ServiceEvent::Datagram {
                    sock,
                    from,
                    len: bytes.len(),
                    replied: bytes.len(),
                });
            }
            _ => {}
        }
        Ok(0)
    }

    fn handle_timeout(&mut self, _now: Now) {}

    fn poll_output(&mut self) -> Output<ServiceEvent> {
        self.out.pop_or_wait(None)
    }
}
