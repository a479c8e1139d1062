//! [`Framed`]: a machine that turns any number of connections' bytes into
//! frames with a [`Codec`] and frames the application sends back into
//! bytes — Twisted's `LineReceiver`, `NetstringReceiver` and
//! `IntNStringReceiver` as one generic sans-IO machine.
//!
//! It serves as a per-connection machine (a factory makes one per accepted
//! connection) or as a hub over many connections, and as a client
//! ([`Framed::connect`], or a connection the driver opened and reports
//! with `Opened`).
//!
//! | input | effect |
//! |---|---|
//! | `Accepted` / `Opened` | [`FramedEvent::Connected`] |
//! | `Data` | one [`FramedEvent::Frame`] per complete frame; all bytes are taken (memory is bounded by the codec's limit) |
//! | `Data` breaking the framing | [`FramedEvent::Violation`], then `Close::Graceful` of that connection only; later bytes are ignored |
//! | `Eof` | [`FramedEvent::Eof`] (or a `Truncated` violation if it cut a frame); the connection stays open for sending until [`Framed::close`], unless [`Framed::close_on_eof`] |
//! | `Sent` | output accounting; [`FramedEvent::Writable`] once a full connection drains to its low-water mark |
//! | `Closed` | [`FramedEvent::Closed`]; the id is forgotten |
//! | `OpenFailed` | [`FramedEvent::OpenFailed`] |

use alloc::string::String;
use bytes::{Bytes, BytesMut};
use twill_core::ConnMap;
use twill_core::{
    Addr, Close, ConnId, IdAllocator, Input, Machine, Now, Open, OpenError, OutQueue, Output,
    OutputBudget,
};

use crate::codec::Codec;
use crate::error::{Error, FramingError};

/// What a [`Framed`] machine tells the application.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FramedEvent {
    /// A connection is ready (accepted, or opened by the driver).
    Connected {
        /// The connection.
        conn: ConnId,
        /// Its far end.
        peer: Addr,
    },
    /// One complete frame.
    Frame {
        /// From which connection.
        conn: ConnId,
        /// The frame, without its framing.
        frame: Bytes,
    },
    /// The peer broke the framing or exceeded a limit; the connection is
    /// being closed.
    Violation {
        /// Which connection.
        conn: ConnId,
        /// What went wrong.
        error: FramingError,
    },
    /// The peer finished sending (on a frame boundary).
    Eof {
        /// Which connection.
        conn: ConnId,
    },
    /// A connection whose output had passed the high-water mark drained to
    /// the low-water mark: sending is welcome again.
    Writable {
        /// Which connection.
        conn: ConnId,
    },
    /// A [`Framed::connect`] failed.
    OpenFailed {
        /// The id `connect` returned.
        conn: ConnId,
        /// Why.
        error: OpenError,
    },
    /// The connection is gone.
    Closed {
        /// Which connection.
        conn: ConnId,
    },
}

#[derive(Debug)]
struct Conn<C> {
    codec: C,
    buf: BytesMut,
    budget: OutputBudget,
    /// We asked to close: ignore input, refuse sends.
    closing: bool,
    /// Was full; owes a `Writable` event.
    blocked: bool,
}

/// The generic framing machine. See the [module docs](self).
#[derive(Debug)]
pub struct Framed<C> {
    codec: C,
    budget: OutputBudget,
    close_on_eof: bool,
    conns: ConnMap<Conn<C>>,
    ids: IdAllocator,
    out: OutQueue<FramedEvent>,
}

impl<C: Codec + Clone> Framed<C> {
    /// A machine that gives each connection a clone of `codec` (its limit
    /// included), the default [`OutputBudget`] and no close on EOF.
    pub fn new(codec: C) -> Self {
        Framed {
            codec,
            budget: OutputBudget::default(),
            close_on_eof: false,
            conns: ConnMap::new(),
            ids: IdAllocator::for_machine(),
            out: OutQueue::new(),
        }
    }

    /// The output water marks of every connection (for
    /// [`is_writable`](Self::is_writable) and `Writable` events).
    pub fn with_budget(mut self, budget: OutputBudget) -> Self {
        self.budget = budget;
        self
    }

    /// Close a connection (gracefully, after its queued output) as soon as
    /// the peer finishes sending, as Twisted does for protocols that are
    /// not half-close aware. Off by default: the application answers the
    /// last frames, then calls [`close`](Self::close).
    pub fn close_on_eof(mut self, yes: bool) -> Self {
        self.close_on_eof = yes;
        self
    }

    // --- getters ---

    /// Whether `conn` is known and not closing.
    pub fn is_open(&self, conn: ConnId) -> bool {
        self.conns.get(&conn).is_some_and(|c| !c.closing)
    }

    /// Whether `conn` is open and its unflushed output is at or below the
    /// high-water mark. Sending while not writable still works; it is the
    /// application's cue to pause.
    pub fn is_writable(&self, conn: ConnId) -> bool {
        self.conns
            .get(&conn)
            .is_some_and(|c| !c.closing && !c.budget.is_full())
    }

    /// Bytes handed to the driver for `conn` and not yet reported sent.
    pub fn pending_output(&self, conn: ConnId) -> Option<usize> {
        self.conns.get(&conn).map(|c| c.budget.pending())
    }

    /// The known connections (including closing ones), in id order.
    pub fn conns(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.conns.keys().copied()
    }

    /// The codec template new connections get.
    pub fn codec(&self) -> &C {
        &self.codec
    }

    // --- commands ---

    /// Sends one frame on `conn`.
    ///
    /// # Errors
    /// [`Error::UnknownConn`], [`Error::Closing`], or [`Error::Encode`] if
    /// the codec refuses the frame (nothing is sent then).
    pub fn send(&mut self, conn: ConnId, frame: &[u8]) -> Result<(), Error> {
        let c = self.conns.get_mut(&conn).ok_or(Error::UnknownConn(conn))?;
        if c.closing {
            return Err(Error::Closing(conn));
        }
        c.codec.encode(frame, &mut self.out.buf)?;
        let n = self.out.transmit_buf(conn);
        c.budget.queued(n);
        if c.budget.is_full() {
            c.blocked = true;
        }
        Ok(())
    }

    /// Closes `conn` gracefully once its queued output is flushed.
    ///
    /// # Errors
    /// [`Error::UnknownConn`]. Closing twice is harmless.
    pub fn close(&mut self, conn: ConnId) -> Result<(), Error> {
        let c = self.conns.get_mut(&conn).ok_or(Error::UnknownConn(conn))?;
        if !c.closing {
            c.closing = true;
            c.buf = BytesMut::new();
            self.out.close(conn, Close::Graceful);
        }
        Ok(())
    }

    /// Opens a client connection to `host:port`; returns its id. The
    /// driver answers with `Opened` (then [`FramedEvent::Connected`]) or
    /// `OpenFailed` (then [`FramedEvent::OpenFailed`]).
    pub fn connect(&mut self, host: impl Into<String>, port: u16) -> ConnId {
        let conn = self.ids.next_id();
        self.out.push(Output::Open {
            conn,
            how: Open::Connect {
                host: host.into(),
                port,
                timeout: None,
            },
        });
        conn
    }

    fn add(&mut self, conn: ConnId, peer: Addr) {
        let mut codec = self.codec.clone();
        codec.reset();
        self.conns.insert(
            conn,
            Conn {
                codec,
                buf: BytesMut::new(),
                budget: self.budget,
                closing: false,
                blocked: false,
            },
        );
        self.out.event(FramedEvent::Connected { conn, peer });
    }

    fn violation(out: &mut OutQueue<FramedEvent>, conn: ConnId, c: &mut Conn<C>, e: FramingError) {
        out.event(FramedEvent::Violation { conn, error: e });
        if !c.closing {
            c.closing = true;
            out.close(conn, Close::Graceful);
        }
        c.buf = BytesMut::new();
    }

    fn data(&mut self, conn: ConnId, bytes: &[u8]) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.closing {
            return;
        }
        c.buf.extend_from_slice(bytes);
        loop {
            match c.codec.decode(&mut c.buf) {
                Ok(Some(frame)) => self.out.event(FramedEvent::Frame { conn, frame }),
                Ok(None) => break,
                Err(e) => {
                    Self::violation(&mut self.out, conn, c, e);
                    break;
                }
            }
        }
    }

    fn eof(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.closing {
            return;
        }
        if !c.buf.is_empty() {
            let pending = c.buf.len();
            Self::violation(&mut self.out, conn, c, FramingError::Truncated { pending });
            return;
        }
        self.out.event(FramedEvent::Eof { conn });
        if self.close_on_eof {
            c.closing = true;
            self.out.close(conn, Close::Graceful);
        }
    }
}

impl<C: Codec + Clone> Machine for Framed<C> {
    type Event = FramedEvent;
    type Error = Error;

    /// Never fails: inputs naming unknown connections are ignored (and
    /// their bytes taken), datagrams are dropped.
    fn handle_input(&mut self, _now: Now, input: Input<'_>) -> Result<usize, Error> {
        match input {
            Input::Accepted { conn, peer, .. } | Input::Opened { conn, peer, .. } => {
                self.add(conn, peer)
            }
            Input::Data { conn, bytes } => {
                self.data(conn, bytes);
                return Ok(bytes.len());
            }
            Input::Eof { conn, .. } => self.eof(conn),
            Input::Sent { conn, bytes } => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.budget.sent(bytes);
                    if c.blocked && c.budget.has_room() {
                        c.blocked = false;
                        if !c.closing {
                            self.out.event(FramedEvent::Writable { conn });
                        }
                    }
                }
            }
            Input::Closed { conn } => {
                let known = self.conns.remove(&conn).is_some();
                if known {
                    self.out.event(FramedEvent::Closed { conn });
                }
            }
            Input::OpenFailed { conn, error } => {
                self.out.event(FramedEvent::OpenFailed { conn, error })
            }
            _ => {}
        }
        Ok(0)
    }

    fn handle_timeout(&mut self, _now: Now) {}

    fn poll_output(&mut self) -> Output<FramedEvent> {
        self.out.pop_or_wait(None)
    }
}
