//! [`Chat`]: a hub over many connections. Every complete line one client
//! sends goes, exactly as sent (its ending normalised to LF), to every
//! other connected client.
//!
//! | input | effect |
//! |---|---|
//! | `Accepted` / `Opened` | [`ChatEvent::Joined`] |
//! | `Data` | one [`ChatEvent::Line`] per line, relayed to all others; all bytes are taken |
//! | a line over the limit | [`ChatEvent::Violation`], `Close::Graceful` of that client only |
//! | `Sent` | output accounting |
//! | `Eof` | the client is leaving: `Close::Graceful` (a partial last line is dropped) |
//! | `Closed` | [`ChatEvent::Left`] |
//!
//! **Slow readers.** Each client's unflushed output is counted (queued by
//! `Transmit`, flushed by `Sent`). A line that would take a client past
//! [`Chat::with_max_queued`] (default 1 MiB) is not queued: that client is
//! dropped with `Close::Abort` and [`ChatEvent::Overflow`]. So a client
//! that never reads costs the server at most that much, and never slows
//! the others down.
//!
//! A relayed line is encoded once and shared by all recipients (one
//! `Bytes`, reference-counted).

use alloc::collections::BTreeMap;
use bytes::{Bytes, BytesMut};
use twill_core::{Addr, Close, ConnId, Input, Machine, Now, OutQueue, Output, OutputBudget};

use crate::codec::{Codec, Lines};
use crate::error::{Error, FramingError};

/// The default bound on one client's unflushed output: 1 MiB.
pub const DEFAULT_MAX_QUEUED: usize = 1024 * 1024;

/// What the chat hub tells the application.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChatEvent {
    /// A client connected.
    Joined {
        /// The client.
        conn: ConnId,
        /// Its address.
        peer: Addr,
    },
    /// A client said something (already relayed to the others).
    Line {
        /// Who.
        conn: ConnId,
        /// The line, without its ending.
        line: Bytes,
    },
    /// A client broke the framing (a line over the limit); it is being
    /// closed.
    Violation {
        /// Who.
        conn: ConnId,
        /// What.
        error: FramingError,
    },
    /// A client was not reading: its unflushed output would have passed
    /// the limit, so it was dropped with `Close::Abort`.
    Overflow {
        /// Who.
        conn: ConnId,
        /// Its unflushed output when dropped.
        queued: usize,
    },
    /// A client is gone.
    Left {
        /// Who.
        conn: ConnId,
    },
}

#[derive(Debug)]
struct Client {
    codec: Lines,
    buf: BytesMut,
    budget: OutputBudget,
    closing: bool,
}

/// The chat hub. See the [module docs](self).
#[derive(Debug)]
pub struct Chat {
    codec: Lines,
    max_queued: usize,
    clients: BTreeMap<ConnId, Client>,
    out: OutQueue<ChatEvent>,
}

impl Default for Chat {
    fn default() -> Self {
        Chat::new()
    }
}

impl Chat {
    /// A hub with lenient lines of at most 16 KiB and 1 MiB of unflushed
    /// output per client.
    pub fn new() -> Self {
        Chat {
            codec: Lines::new(),
            max_queued: DEFAULT_MAX_QUEUED,
            clients: BTreeMap::new(),
            out: OutQueue::new(),
        }
    }

    /// The longest line a client may send.
    pub fn with_max_line(mut self, max: usize) -> Self {
        self.codec = self.codec.max_length(max);
        self
    }

    /// The most unflushed output a client may have before it is dropped.
    pub fn with_max_queued(mut self, max: usize) -> Self {
        self.max_queued = max;
        self
    }

    // --- getters ---

    /// Connected clients that are not closing, in id order.
    pub fn clients(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.clients
            .iter()
            .filter(|(_, c)| !c.closing)
            .map(|(id, _)| *id)
    }

    /// A client's unflushed output.
    pub fn pending_output(&self, conn: ConnId) -> Option<usize> {
        self.clients.get(&conn).map(|c| c.budget.pending())
    }

    // --- commands ---

    /// Sends `line` (plus LF) to every client, e.g. a server notice.
    ///
    /// # Errors
    /// [`Error::Encode`] if the line holds a line ending or is too long.
    pub fn broadcast(&mut self, line: &[u8]) -> Result<(), Error> {
        self.codec.encode(line, &mut self.out.buf)?;
        let msg = self.out.buf.split().freeze();
        self.fan_out(None, msg);
        Ok(())
    }

    /// Sends `line` (plus LF) to one client.
    ///
    /// # Errors
    /// [`Error::UnknownConn`], [`Error::Closing`], or [`Error::Encode`].
    pub fn send(&mut self, conn: ConnId, line: &[u8]) -> Result<(), Error> {
        let c = self.clients.get(&conn).ok_or(Error::UnknownConn(conn))?;
        if c.closing {
            return Err(Error::Closing(conn));
        }
        self.codec.encode(line, &mut self.out.buf)?;
        let msg = self.out.buf.split().freeze();
        if let Some(c) = self.clients.get_mut(&conn) {
            Self::deliver(&mut self.out, self.max_queued, conn, c, msg);
        }
        Ok(())
    }

    /// Disconnects a client gracefully.
    ///
    /// # Errors
    /// [`Error::UnknownConn`]. Closing twice is harmless.
    pub fn close(&mut self, conn: ConnId) -> Result<(), Error> {
        let c = self
            .clients
            .get_mut(&conn)
            .ok_or(Error::UnknownConn(conn))?;
        Self::shut(&mut self.out, conn, c, Close::Graceful);
        Ok(())
    }

    fn shut(out: &mut OutQueue<ChatEvent>, conn: ConnId, c: &mut Client, how: Close) {
        if !c.closing {
            c.closing = true;
            c.buf = BytesMut::new();
            out.close(conn, how);
        }
    }

    fn deliver(
        out: &mut OutQueue<ChatEvent>,
        max: usize,
        conn: ConnId,
        c: &mut Client,
        msg: Bytes,
    ) {
        if c.closing {
            return;
        }
        let queued = c.budget.pending();
        if queued.saturating_add(msg.len()) > max {
            out.event(ChatEvent::Overflow { conn, queued });
            Self::shut(out, conn, c, Close::Abort);
            return;
        }
        c.budget.queued(msg.len());
        out.transmit(conn, msg);
    }

    fn fan_out(&mut self, from: Option<ConnId>, msg: Bytes) {
        for (&id, c) in self.clients.iter_mut() {
            if Some(id) != from {
                Self::deliver(&mut self.out, self.max_queued, id, c, msg.clone());
            }
        }
    }

    fn data(&mut self, conn: ConnId, bytes: &[u8]) {
        let Some(c) = self.clients.get_mut(&conn) else {
            return;
        };
        if c.closing {
            return;
        }
        c.buf.extend_from_slice(bytes);
        loop {
            let Some(c) = self.clients.get_mut(&conn) else {
                return;
            };
            match c.codec.decode(&mut c.buf) {
                Ok(Some(line)) => {
                    // The line plus LF, encoded once for everyone.
                    self.out.buf.extend_from_slice(&line);
                    self.out.buf.extend_from_slice(b"\n");
                    let msg = self.out.buf.split().freeze();
                    self.out.event(ChatEvent::Line { conn, line });
                    self.fan_out(Some(conn), msg);
                }
                Ok(None) => return,
                Err(error) => {
                    self.out.event(ChatEvent::Violation { conn, error });
                    Self::shut(&mut self.out, conn, c, Close::Graceful);
                    return;
                }
            }
        }
    }
}

impl Machine for Chat {
    type Event = ChatEvent;
    type Error = Error;

    /// Never fails.
    fn handle_input(&mut self, _now: Now, input: Input<'_>) -> Result<usize, Error> {
        match input {
            Input::Accepted { conn, peer, .. } | Input::Opened { conn, peer, .. } => {
                let mut codec = self.codec.clone();
                codec.reset();
                self.clients.insert(
                    conn,
                    Client {
                        codec,
                        buf: BytesMut::new(),
                        budget: OutputBudget::new(self.max_queued, self.max_queued),
                        closing: false,
                    },
                );
                self.out.event(ChatEvent::Joined { conn, peer });
            }
            Input::Data { conn, bytes } => {
                self.data(conn, bytes);
                return Ok(bytes.len());
            }
            Input::Eof { conn, .. } => {
                if let Some(c) = self.clients.get_mut(&conn) {
                    Self::shut(&mut self.out, conn, c, Close::Graceful);
                }
            }
            Input::Sent { conn, bytes } => {
                if let Some(c) = self.clients.get_mut(&conn) {
                    c.budget.sent(bytes);
                }
            }
            Input::Closed { conn } => {
                let known = self.clients.remove(&conn).is_some();
                if known {
                    self.out.event(ChatEvent::Left { conn });
                }
            }
            _ => {}
        }
        Ok(0)
    }

    fn handle_timeout(&mut self, _now: Now) {}

    fn poll_output(&mut self) -> Output<ChatEvent> {
        self.out.pop_or_wait(None)
    }
}
