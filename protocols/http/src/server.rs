//! The HTTP/1.1 server machine.
//!
//! One [`Server`] serves any number of connections, told apart by
//! [`ConnId`]: a driver's factory gives each accepted connection its own
//! machine, a hub one machine for all; both work the same.
//!
//! ## Inputs and what they do
//!
//! | input | effect |
//! |---|---|
//! | `Accepted` / `Opened` | [`ServerEvent::Connected`]; the idle timer starts |
//! | `Data` | heads are found incrementally (a partial head is never rescanned) and parsed; each request is a [`ServerEvent::Request`], its body [`ServerEvent::Body`] pieces and a [`ServerEvent::BodyEnd`]. A short take (possibly 0) pauses reading while the application has paused the body ([`Server::pause_body`]), the connection's unflushed output is above its high-water mark, [`ServerConfig::max_pipelined`] requests wait for answers, or an upgrade waits for [`Server::accept_upgrade`]; `Resume` follows when that ends |
//! | `Data` breaking the protocol | [`ServerEvent::Violation`]; the answer (400, 413, 414, 431, 501, 505) follows the responses already owed, then a lingering close of that connection only (`Close::WriteHalf`, what the client still sends is dropped, `Close::Graceful` at its EOF or after [`ServerConfig::linger`]) |
//! | `Sent` | output accounting; [`ServerEvent::Writable`] for a streaming response that waited |
//! | `Eof` | requests already received are answered, then the connection closes; an EOF inside a message is a `Truncated` violation |
//! | `Closed` | [`ServerEvent::Closed`]; the connection's requests are forgotten |
//! | timeout | a partial head older than [`ServerConfig::header_timeout`] gets 408 and a (lingering) close; a request body stalled for [`ServerConfig::body_timeout`] gets 408 (or a close once its response has begun); a connection with nothing to do for [`ServerConfig::idle_timeout`] closes ([`ServerEvent::IdleTimeout`]) |
//!
//! ## Commands (answering a request)
//!
//! [`respond`](Server::respond) (status, fields, [`BodyKind`]), then
//! [`send_body`](Server::send_body) any number of times, then
//! [`finish`](Server::finish) (with trailers for chunked bodies);
//! [`respond_full`](Server::respond_full) does all three.
//! [`send_continue`](Server::send_continue) and
//! [`send_informational`](Server::send_informational) send 1xx before the
//! final response; [`accept_upgrade`](Server::accept_upgrade) answers an
//! Upgrade or CONNECT request and hands the connection over
//! ([`ServerEvent::Upgraded`], for [`twill_core::Switch`]).
//!
//! Responses go out strictly in request order: a response to a later
//! pipelined request is held in memory until the ones before it finish.
//!
//! Status lines always say `HTTP/1.1`, the version the server speaks
//! (RFC 9110 §2.5), also to HTTP/1.0 clients, whose framing and
//! persistence rules it follows.
//!
//! The machine adds the framing fields itself (`Content-Length` or
//! `Transfer-Encoding: chunked`; close-delimited for an HTTP/1.0 client
//! when the length is unknown), `Connection: close` /
//! `Connection: keep-alive` as the persistence rules require, and a cached
//! `Date`. For HEAD, 204 and 304 no body is sent: bodies given for them
//! are dropped, so one handler serves GET and HEAD alike.

use alloc::collections::{BTreeSet, VecDeque};
use alloc::vec::Vec;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use twill_core::{
    Addr, Close, ConnId, ConnMap, Duration, FileId, Input, Instant, Machine, Now, Output,
    OutputBudget, Payload,
};

use crate::batch::Out;
use crate::codec::chunked::{self, Chunk, ChunkedDecoder, ChunkedLimits};
use crate::codec::framing::{request_body_with, status_has_body, BodyKind, Summary};
use crate::codec::head::{
    self, check_name, check_value, decode_request_summarized, HeadLimits, HeadScanner, Headers,
    RequestHead, Version,
};
use crate::error::{Error, ProtocolError};

/// Input buffer capacity an idle connection may keep for its next request.
const IDLE_BUF: usize = 4096;

/// `Date: ` + an IMF-fixdate (29 bytes) + CRLF.
const DATE_LINE: usize = 37;

/// A response head without its reason phrase, `Server` and application
/// fields: status line, `Date`, the framing and `Connection` fields.
const HEAD_FIXED: usize = 16 + 37 + 40 + 26 + 2;

/// [`Server::respond_full`] copies bodies up to this size into the head's
/// buffer: one payload instead of two is cheaper than the copy.
const INLINE_BODY: usize = 1024;

/// One request on one connection. Unique within a machine; carries its
/// connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId {
    conn: ConnId,
    seq: u64,
}

impl RequestId {
    /// Made by the machines; public for tests and tools.
    pub const fn new(conn: ConnId, seq: u64) -> Self {
        RequestId { conn, seq }
    }

    /// The connection the request arrived on (or was sent on).
    pub const fn conn(self) -> ConnId {
        self.conn
    }

    /// Its number on that connection, from 0.
    pub const fn seq(self) -> u64 {
        self.seq
    }
}

/// Limits and behaviour of a [`Server`].
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Request line, head size and field count (414, 431).
    pub limits: HeadLimits,
    /// Chunk extensions and trailers.
    pub chunked: ChunkedLimits,
    /// The largest request body (413). Default 16 MiB.
    pub max_body: u64,
    /// Requests received and not yet answered, per connection; more
    /// pipelined requests wait in the driver (a short take). Default 16.
    pub max_pipelined: usize,
    /// A partial head older than this gets 408. Default 30 s.
    pub header_timeout: Duration,
    /// A connection with no request in progress closes after this long.
    /// Default 60 s.
    pub idle_timeout: Duration,
    /// A request body with no byte for this long (while the application
    /// is not pausing it) gets 408, or a close if its response has begun.
    /// Default 60 s.
    pub body_timeout: Duration,
    /// Unflushed output per connection: streamed bodies wait above `high`
    /// ([`Server::is_writable`]) and reading pauses.
    pub budget: OutputBudget,
    /// Send a `Date` field (from `Now.wall`, formatted once a second).
    /// Default true.
    pub date: bool,
    /// The `Server` field to send, if any. Default none.
    pub server_name: Option<&'static str>,
    /// Whether [`Server::send_file`] may emit `Payload::File` (only over
    /// plaintext drivers; a TLS layer turns it off). Default true.
    pub file_payloads: bool,
    /// After an error reply, how long to keep reading (and dropping) what
    /// the client still sends before closing — a lingering close, so that
    /// a client still sending its body reads the reply instead of losing
    /// it to a reset. The connection's sending side is shut at once
    /// (`Close::WriteHalf`), then `Close::Graceful` follows at the peer's
    /// EOF or after this long. Zero closes at once. Default 2 s.
    pub linger: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            limits: HeadLimits::default(),
            chunked: ChunkedLimits::default(),
            max_body: 16 * 1024 * 1024,
            max_pipelined: 16,
            header_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(60),
            budget: OutputBudget::default(),
            date: true,
            server_name: None,
            file_payloads: true,
            linger: Duration::from_secs(2),
        }
    }
}

/// A request head and what the machine decided about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Names the request in every command and later event.
    pub id: RequestId,
    /// The head (method, target, version, fields).
    pub head: RequestHead,
    /// How its body is framed: `Empty`, `Length` or `Chunked`. Body bytes
    /// follow as [`ServerEvent::Body`] and end with
    /// [`ServerEvent::BodyEnd`] (also for `Empty`).
    pub body: BodyKind,
    /// The client sent `Expect: 100-continue` and waits for
    /// [`Server::send_continue`] (or a final response) before sending the
    /// body.
    pub expect_continue: bool,
    /// An Upgrade (with `Connection: upgrade`) or CONNECT request: reading
    /// stops after it until [`Server::accept_upgrade`] or a normal
    /// response (which declines).
    pub upgrade: bool,
    /// Whether the client wants the connection kept open after it.
    pub keep_alive: bool,
}

/// What a [`Server`] tells the application.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// A connection is ready.
    Connected {
        /// The connection.
        conn: ConnId,
        /// The client's address.
        peer: Addr,
    },
    /// A request head arrived. Answer it with [`Server::respond`] (or
    /// [`Server::respond_full`], [`Server::accept_upgrade`]).
    Request(Request),
    /// A piece of the request body.
    Body {
        /// The request.
        id: RequestId,
        /// The bytes (dechunked).
        data: Bytes,
    },
    /// The request body is complete. Sent only for requests that have a
    /// body (`Length` over 0 or `Chunked`): a request whose
    /// [`Request::body`] is empty is whole with its head, and a pipelined
    /// batch of such requests costs one event each instead of two.
    /// ([`App`](crate::app::App) still gives every handler its
    /// `on_body_end`.)
    BodyEnd {
        /// The request.
        id: RequestId,
        /// Trailer fields of a chunked body (usually empty).
        trailers: Headers,
    },
    /// The response to `id` may take more body: its connection's output
    /// drained to the low-water mark, or it became the response on the
    /// wire.
    Writable {
        /// The request.
        id: RequestId,
    },
    /// The response to `id` is complete on the wire (all of it handed to
    /// the driver).
    ResponseDone {
        /// The request.
        id: RequestId,
    },
    /// An upgrade was accepted: the `101` (or `200` for CONNECT) is queued
    /// and the connection now belongs to whoever takes it, with `rest`, the
    /// bytes the client sent past the request head. The server forgets the
    /// connection (it emits no `Close` and no `Closed` for it).
    Upgraded {
        /// The request that asked for it.
        id: RequestId,
        /// The connection.
        conn: ConnId,
        /// The request head (to read `Upgrade`, `Sec-WebSocket-Key` …).
        head: alloc::boxed::Box<RequestHead>,
        /// Bytes read past the head.
        rest: Bytes,
        /// Output on `conn` (the `101` included) not yet reported sent:
        /// [`Handover::unflushed`](twill_core::switch::Handover::unflushed).
        unflushed: usize,
    },
    /// The peer broke the protocol or a limit; `status` is the response
    /// sent for it (if one could be), and the connection is closing.
    Violation {
        /// The connection.
        conn: ConnId,
        /// What went wrong.
        error: ProtocolError,
        /// The status answered, if any.
        status: Option<u16>,
    },
    /// A request will get no response on the wire any more (its connection
    /// broke or closed first); stop working on it.
    Aborted {
        /// The request.
        id: RequestId,
    },
    /// The connection stayed idle for the idle timeout and is closing.
    IdleTimeout {
        /// The connection.
        conn: ConnId,
    },
    /// The connection is gone.
    Closed {
        /// The connection.
        conn: ConnId,
    },
}

/// Where a connection's input is.
#[derive(Debug)]
enum Read {
    /// Waiting for (or inside) a request head.
    Head,
    /// Inside a Content-Length body.
    Body { id: RequestId, remaining: u64 },
    /// Inside a chunked body.
    Chunked {
        id: RequestId,
        dec: ChunkedDecoder,
        total: u64,
    },
    /// After an Upgrade/CONNECT head, waiting for the application.
    Upgrade,
    /// No more requests will be read (close pending, error, upgrade).
    Done,
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum RespState {
    /// No final response yet.
    Waiting,
    /// Head sent; body in progress.
    Body { kind: BodyKind, remaining: u64 },
    /// Complete (still buffered if not at the front).
    Done,
}

#[derive(Debug)]
struct Resp {
    seq: u64,
    version: Version,
    head_only: bool,
    /// Keep the connection open after this response.
    keep_alive: bool,
    expect_continue: bool,
    continue_sent: bool,
    body_complete: bool,
    /// Boxed: upgrades are rare, and every other response would carry
    /// the head's room in the in-flight queue.
    upgrade: Option<alloc::boxed::Box<RequestHead>>,
    upgrade_accepted: bool,
    state: RespState,
    /// Output held back while an earlier response is on the wire.
    held: Vec<Payload>,
    writable_owed: bool,
}

#[derive(Debug)]
struct Conn {
    buf: BytesMut,
    scan: HeadScanner,
    read: Read,
    inflight: VecDeque<Resp>,
    next_seq: u64,
    budget: OutputBudget,
    /// Close once the responses owed are out.
    close_after: bool,
    /// A violation's status still to send after the owed responses.
    error_reply: Option<u16>,
    /// We returned a short take; owe `Resume` once reading may go on.
    held: bool,
    paused_body: bool,
    eof: bool,
    /// `Close` emitted.
    closing: bool,
    head_since: Option<Instant>,
    /// When the body being read last made progress (or began).
    body_since: Instant,
    idle_since: Instant,
    /// The timers above start afresh at the next input or timeout.
    restamp: bool,
    /// This connection's entry in `Server::timers`.
    timer: Option<Instant>,
    /// Lingering after an error reply until then (sending side shut).
    linger: Option<Instant>,
}

impl Conn {
    fn stamp(&mut self, now: Instant) {
        if self.restamp {
            self.restamp = false;
            self.idle_since = now;
            self.body_since = now;
            if self.head_since.is_some() {
                self.head_since = Some(now);
            }
        }
    }
}

impl Conn {
    fn front_seq(&self) -> Option<u64> {
        self.inflight.front().map(|r| r.seq)
    }
}

/// The HTTP/1.1 server machine. See the [module docs](self).
#[derive(Debug)]
pub struct Server {
    cfg: ServerConfig,
    conns: ConnMap<Conn>,
    out: Out,
    /// Every connection's next deadline, earliest first: a hub with many
    /// connections finds its timer without looking at each.
    timers: BTreeSet<(Instant, ConnId)>,
    /// Connections whose deadline may have changed since the last `Wait`.
    touched: Vec<ConnId>,
    now: Now,
    /// `now` is the present: an input or timeout came and the driver has
    /// not yet been told `Wait`, so commands run inside its drain. After a
    /// `Wait`, a command (from a timer or finished blocking work) comes at
    /// an unknown later time.
    fresh: bool,
    date_secs: i64,
    /// The `Date` field line, `Date: …\r\n`.
    date: [u8; DATE_LINE],
    /// The start of the last final response head — status line and
    /// `Date` line — for status `prefix_status` in second `date_secs`:
    /// most responses repeat both, so it is one copy.
    prefix: BytesMut,
    /// 0: nothing cached.
    prefix_status: u16,
}

impl Default for Server {
    fn default() -> Self {
        Server::new(ServerConfig::default())
    }
}

impl Server {
    /// A server with `cfg`.
    pub fn new(cfg: ServerConfig) -> Self {
        Server {
            cfg,
            conns: ConnMap::new(),
            out: Out::default(),
            timers: BTreeSet::new(),
            touched: Vec::new(),
            now: Now::default(),
            fresh: false,
            date_secs: i64::MIN,
            date: [b' '; DATE_LINE],
            prefix: BytesMut::new(),
            prefix_status: 0,
        }
    }

    // ------------------------------------------------------------ getters

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.cfg
    }

    /// The open connections, in id order.
    pub fn conns(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.conns.keys().copied()
    }

    /// Whether the response to `id` may take more body now: it is the
    /// response on the wire and its connection's unflushed output is at or
    /// below the high-water mark. Sending anyway works (it is buffered);
    /// waiting for [`ServerEvent::Writable`] keeps memory bounded.
    pub fn is_writable(&self, id: RequestId) -> bool {
        self.conns
            .get(&id.conn)
            .is_some_and(|c| !c.closing && c.front_seq() == Some(id.seq) && !c.budget.is_full())
    }

    /// Bytes of `conn` taken from the driver but not parsed yet (a partial
    /// head or body).
    pub fn buffered(&self, conn: ConnId) -> usize {
        self.conns.get(&conn).map_or(0, |c| c.buf.len())
    }

    /// Bytes handed to the driver for `conn` and not yet reported sent.
    pub fn pending_output(&self, conn: ConnId) -> Option<usize> {
        self.conns.get(&conn).map(|c| c.budget.pending())
    }

    /// Whether `id` is a request still waiting for (or sending) its
    /// response.
    pub fn is_open(&self, id: RequestId) -> bool {
        self.resp(id).is_some_and(|r| r.state != RespState::Done)
    }

    /// Whether the final response to `id` has been started.
    pub fn has_responded(&self, id: RequestId) -> bool {
        self.resp(id).map_or(true, |r| {
            r.state != RespState::Waiting || r.upgrade_accepted
        })
    }

    fn resp(&self, id: RequestId) -> Option<&Resp> {
        self.conns
            .get(&id.conn)?
            .inflight
            .iter()
            .find(|r| r.seq == id.seq)
    }

    // ----------------------------------------------------------- commands

    /// Starts the final response to `id`: status (200–999), fields and
    /// body framing. The machine adds `Content-Length` /
    /// `Transfer-Encoding`, `Connection` and `Date`. `Chunked` to an
    /// HTTP/1.0 client becomes close-delimited; `Empty` sends
    /// `Content-Length: 0` (none for 204 and 304). For HEAD, 204 and 304
    /// the framing fields describe the body a GET would get, and no body is
    /// sent. Follow with [`send_body`](Self::send_body) and
    /// [`finish`](Self::finish) (an `Empty` body needs no `finish`).
    ///
    /// # Errors
    /// Unknown request, a response already started, a status outside
    /// 200–999 (1xx go through
    /// [`send_informational`](Self::send_informational)), invalid fields,
    /// or `Content-Length` / `Transfer-Encoding` among them.
    pub fn respond(
        &mut self,
        id: RequestId,
        status: u16,
        headers: &[(&str, &str)],
        body: BodyKind,
    ) -> Result<(), Error> {
        self.start_response(id, status, headers, body, None)
    }

    /// [`respond`](Self::respond), with the whole body given when it is
    /// small enough to go out in the head's buffer (one write, no second
    /// payload to queue).
    fn start_response(
        &mut self,
        id: RequestId,
        status: u16,
        headers: &[(&str, &str)],
        body: BodyKind,
        inline: Option<&[u8]>,
    ) -> Result<(), Error> {
        if !(200..=999).contains(&status) {
            return Err(Error::BadStatus(status));
        }
        // One pass over the fields: checks, the framing fields the
        // server owns, and the room the head needs.
        let mut close_requested = false;
        let mut fields_len = 0;
        for (n, v) in headers {
            check_name(n)?;
            check_value(v.as_bytes())?;
            fields_len += n.len() + v.len() + 4;
            match n.len() {
                14 if n.eq_ignore_ascii_case("content-length") => {
                    return Err(Error::FramingHeader("Content-Length"));
                }
                17 if n.eq_ignore_ascii_case("transfer-encoding") => {
                    return Err(Error::FramingHeader("Transfer-Encoding"));
                }
                10 if n.eq_ignore_ascii_case("connection") => {
                    close_requested |= v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close"));
                }
                _ => {}
            }
        }
        touch(&mut self.touched, id.conn);
        self.refresh_prefix(status);
        let cfg_server = self.cfg.server_name;
        let c = self
            .conns
            .get_mut(&id.conn)
            .ok_or(Error::UnknownRequest(id))?;
        let front = c.front_seq() == Some(id.seq);
        let is_last = c.inflight.back().map(|l| l.seq) == Some(id.seq);
        let r = c
            .inflight
            .iter_mut()
            .find(|r| r.seq == id.seq)
            .ok_or(Error::UnknownRequest(id))?;
        if r.state != RespState::Waiting || r.upgrade_accepted {
            return Err(Error::State("the response has already started"));
        }
        // Framing on the wire.
        let no_body = r.head_only || !status_has_body(status);
        let mut kind = body;
        if kind == BodyKind::Chunked && r.version == Version::Http10 {
            kind = BodyKind::CloseDelimited;
        }
        if kind == BodyKind::Length(0) {
            kind = BodyKind::Empty;
        }
        // The connection closes after the last request it has taken, so
        // only that response says so: a later pipelined request answered
        // first must not turn the earlier answers into `close`.
        let mut keep = r.keep_alive && !(c.close_after && is_last) && !close_requested;
        if kind == BodyKind::CloseDelimited && !no_body {
            keep = false;
        }
        if r.expect_continue && !r.continue_sent && !r.body_complete {
            // The client may or may not send the body now: the connection
            // cannot be reused safely.
            keep = false;
        }
        if r.upgrade.is_some() {
            // Declined: go on reading requests after it.
            r.upgrade = None;
            if let Read::Upgrade = c.read {
                c.read = Read::Head;
            }
        }
        r.keep_alive = keep;
        if !keep {
            c.close_after = true;
        }
        // The head, in the shared encode buffer: reserving a block for
        // several heads at once (`batch::Out`) keeps a pipelined batch
        // of responses to one allocation instead of a few reallocations
        // per head.
        let prefix = &self.prefix[..];
        let need = HEAD_FIXED
            + prefix.len()
            + cfg_server.map_or(0, |s| s.len() + 10)
            + fields_len
            + inline.map_or(0, <[u8]>::len);
        // The front response's head may wait to leave with the next
        // response's (a pipelined batch in one payload); a later one's is
        // held until its turn.
        let buf = if front {
            self.out.append_for(id.conn, need)
        } else {
            self.out.scratch_for(need)
        };
        let start = buf.len();
        buf.put_slice(prefix);
        if let Some(s) = cfg_server {
            buf.put_slice(b"Server: ");
            buf.put_slice(s.as_bytes());
            buf.put_slice(b"\r\n");
        }
        for (n, v) in headers {
            buf.put_slice(n.as_bytes());
            buf.put_slice(b": ");
            buf.put_slice(v.as_bytes());
            buf.put_slice(b"\r\n");
        }
        let framing_fields = status != 204 && !(100..200).contains(&status);
        match kind {
            BodyKind::Empty if framing_fields && status != 304 => {
                buf.put_slice(b"Content-Length: 0\r\n")
            }
            BodyKind::Length(n) if framing_fields => put_content_length(buf, n),
            BodyKind::Chunked if framing_fields && status != 304 => {
                buf.put_slice(b"Transfer-Encoding: chunked\r\n")
            }
            _ => {}
        }
        if !keep && !close_requested {
            buf.put_slice(b"Connection: close\r\n");
        } else if keep && r.version == Version::Http10 {
            buf.put_slice(b"Connection: keep-alive\r\n");
        }
        buf.put_slice(b"\r\n");
        let mut remaining = match kind {
            BodyKind::Length(n) => n,
            _ => 0,
        };
        if let (Some(b), false) = (inline, no_body) {
            buf.put_slice(b);
            remaining = remaining.saturating_sub(b.len() as u64);
        }
        let written = buf.len() - start;
        let held = (!front).then(|| buf.split().freeze());
        let ends = no_body && body.is_empty() || kind == BodyKind::Empty || inline.is_some();
        // A response whose head carried all of it (no body, or the body
        // inline) is done here: what `finish` would check is known.
        let whole = ends && (no_body || (kind != BodyKind::Chunked && remaining == 0));
        r.state = if whole {
            RespState::Done
        } else if no_body {
            RespState::Body {
                kind: BodyKind::Empty,
                remaining: 0,
            }
        } else {
            RespState::Body { kind, remaining }
        };
        match held {
            None => c.budget.queued(written),
            Some(bytes) => {
                if let Some(r) = c.inflight.iter_mut().find(|r| r.seq == id.seq) {
                    r.held.push(Payload::Bytes(bytes));
                }
            }
        }
        if whole {
            self.advance(id.conn);
        } else if ends {
            self.finish(id, &[])?;
        } else {
            self.wake(id.conn);
        }
        Ok(())
    }

    /// A whole response in one call: `respond` with
    /// `BodyKind::Length(body.len())`, `send_body`, `finish`.
    ///
    /// # Errors
    /// As [`respond`](Self::respond).
    pub fn respond_full(
        &mut self,
        id: RequestId,
        status: u16,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<(), Error> {
        let kind = BodyKind::Length(body.len() as u64);
        if !body.is_empty() && body.len() <= INLINE_BODY {
            return self.start_response(id, status, headers, kind, Some(&body));
        }
        self.respond(id, status, headers, kind)?;
        if !body.is_empty() {
            self.send_body(id, body)?;
            self.finish(id, &[])?;
        }
        Ok(())
    }

    /// Sends a piece of the response body. Bodies of HEAD, 204 and 304
    /// responses are dropped. Check [`is_writable`](Self::is_writable)
    /// (or wait for [`ServerEvent::Writable`]) to keep memory bounded.
    ///
    /// # Errors
    /// Unknown request, no response started, or more bytes than the
    /// announced length.
    pub fn send_body(&mut self, id: RequestId, data: Bytes) -> Result<(), Error> {
        let (c, i, front) = Self::locate(&mut self.conns, &mut self.touched, id)?;
        let r = &mut c.inflight[i];
        let RespState::Body { kind, remaining } = &mut r.state else {
            return Err(Error::State("send_body before respond or after finish"));
        };
        if data.is_empty() {
            return Ok(());
        }
        let payloads: [Option<Payload>; 3] = match *kind {
            BodyKind::Empty => return Ok(()),
            BodyKind::Length(_) => {
                let n = data.len() as u64;
                if n > *remaining {
                    return Err(Error::BodyTooLong);
                }
                *remaining -= n;
                [Some(Payload::Bytes(data)), None, None]
            }
            BodyKind::CloseDelimited => [Some(Payload::Bytes(data)), None, None],
            BodyKind::Chunked => {
                let buf = self.out.scratch();
                if data.len() <= 1024 {
                    chunked::write_chunk(buf, &data);
                    [Some(Payload::Bytes(buf.split().freeze())), None, None]
                } else {
                    chunked::write_chunk_size(buf, data.len());
                    let size = buf.split().freeze();
                    [
                        Some(Payload::Bytes(size)),
                        Some(Payload::Bytes(data)),
                        Some(Payload::Bytes(Bytes::from_static(b"\r\n"))),
                    ]
                }
            }
        };
        let seq = id.seq;
        for p in payloads.into_iter().flatten() {
            Self::emit(&mut self.out, id.conn, c, seq, front, p);
        }
        if let Some(r) = c.inflight.iter_mut().find(|r| r.seq == seq) {
            if !front || c.budget.is_full() {
                r.writable_owed = true;
            }
        }
        Ok(())
    }

    /// Sends `len` bytes of a registered file at `offset` as body
    /// (`Payload::File`, which a plaintext driver may `sendfile`).
    ///
    /// # Errors
    /// As [`send_body`](Self::send_body), and [`Error::State`] when file
    /// payloads are off ([`ServerConfig::file_payloads`]).
    pub fn send_file(
        &mut self,
        id: RequestId,
        file: FileId,
        offset: u64,
        len: u64,
    ) -> Result<(), Error> {
        if !self.cfg.file_payloads {
            return Err(Error::State("file payloads are off for this server"));
        }
        let (c, i, front) = Self::locate(&mut self.conns, &mut self.touched, id)?;
        let r = &mut c.inflight[i];
        let RespState::Body { kind, remaining } = &mut r.state else {
            return Err(Error::State("send_file before respond or after finish"));
        };
        if len == 0 {
            return Ok(());
        }
        let file = Payload::File {
            id: file,
            offset,
            len,
        };
        let mut ps: Vec<Payload> = Vec::new();
        match *kind {
            BodyKind::Empty => return Ok(()),
            BodyKind::Length(_) => {
                if len > *remaining {
                    return Err(Error::BodyTooLong);
                }
                *remaining -= len;
                ps.push(file);
            }
            BodyKind::CloseDelimited => ps.push(file),
            BodyKind::Chunked => {
                let buf = self.out.scratch();
                chunked::write_chunk_size(buf, len as usize);
                ps.push(Payload::Bytes(buf.split().freeze()));
                ps.push(file);
                ps.push(Payload::Bytes(Bytes::from_static(b"\r\n")));
            }
        }
        let seq = id.seq;
        for p in ps {
            Self::emit(&mut self.out, id.conn, c, seq, front, p);
        }
        if let Some(r) = c.inflight.iter_mut().find(|r| r.seq == seq) {
            if !front || c.budget.is_full() {
                r.writable_owed = true;
            }
        }
        Ok(())
    }

    /// Ends the response body; `trailers` are sent with a chunked body
    /// (and ignored otherwise).
    ///
    /// # Errors
    /// Unknown request, no response started, or fewer bytes than the
    /// announced length.
    pub fn finish(&mut self, id: RequestId, trailers: &[(&str, &str)]) -> Result<(), Error> {
        let (c, i, front) = Self::locate(&mut self.conns, &mut self.touched, id)?;
        let RespState::Body { kind, remaining } = c.inflight[i].state else {
            return Err(Error::State("finish before respond or twice"));
        };
        match kind {
            BodyKind::Length(_) if remaining > 0 => return Err(Error::BodyTooShort),
            BodyKind::Chunked => {
                let buf = self.out.scratch();
                chunked::write_last_chunk(buf, trailers)?;
                let b = buf.split().freeze();
                Self::emit(&mut self.out, id.conn, c, id.seq, front, Payload::Bytes(b));
            }
            _ => {}
        }
        if let Some(r) = c.inflight.iter_mut().find(|r| r.seq == id.seq) {
            r.state = RespState::Done;
        }
        self.advance(id.conn);
        Ok(())
    }

    /// Sends `100 Continue` to a request that expects it (once; later calls
    /// and calls for requests that did not ask are no-ops).
    ///
    /// # Errors
    /// Unknown request, or the final response has started.
    pub fn send_continue(&mut self, id: RequestId) -> Result<(), Error> {
        let (c, i, _) = Self::locate(&mut self.conns, &mut self.touched, id)?;
        let r = &mut c.inflight[i];
        if r.state != RespState::Waiting {
            return Err(Error::State("the final response has started"));
        }
        if !r.expect_continue || r.continue_sent {
            return Ok(());
        }
        r.continue_sent = true;
        self.send_informational(id, 100, &[])
    }

    /// Sends an informational (1xx other than 101) response before the
    /// final one: `100 Continue`, `103 Early Hints` …. Not sent to
    /// HTTP/1.0 clients, which do not know them.
    ///
    /// # Errors
    /// Unknown request, the final response has started, a status outside
    /// 100–199 or 101, invalid fields.
    pub fn send_informational(
        &mut self,
        id: RequestId,
        status: u16,
        headers: &[(&str, &str)],
    ) -> Result<(), Error> {
        if !(100..200).contains(&status) || status == 101 {
            return Err(Error::BadStatus(status));
        }
        for (n, v) in headers {
            check_name(n)?;
            check_value(v.as_bytes())?;
        }
        let (c, i, front) = Self::locate(&mut self.conns, &mut self.touched, id)?;
        let r = &c.inflight[i];
        if r.state != RespState::Waiting {
            return Err(Error::State("the final response has started"));
        }
        if r.version == Version::Http10 {
            return Ok(());
        }
        let buf = self.out.scratch();
        head::write_status_line(buf, Version::Http11, status, head::reason_phrase(status));
        for (n, v) in headers {
            let _ = head::write_header(buf, n, v.as_bytes());
        }
        buf.put_slice(b"\r\n");
        let b = buf.split().freeze();
        Self::emit(&mut self.out, id.conn, c, id.seq, front, Payload::Bytes(b));
        Ok(())
    }

    /// Accepts an Upgrade or CONNECT request: sends `101 Switching
    /// Protocols` (with `headers`, which should name the protocol in
    /// `Upgrade`) or, for CONNECT, `200`, and then emits
    /// [`ServerEvent::Upgraded`] with the bytes read past the head. If
    /// earlier pipelined responses are still going out, the switch happens
    /// once they are done.
    ///
    /// # Errors
    /// Unknown request, not an upgrade request, a response already started,
    /// invalid fields.
    pub fn accept_upgrade(&mut self, id: RequestId, headers: &[(&str, &str)]) -> Result<(), Error> {
        for (n, v) in headers {
            check_name(n)?;
            check_value(v.as_bytes())?;
        }
        let date = self.date_value();
        let (c, i, front) = Self::locate(&mut self.conns, &mut self.touched, id)?;
        let r = &mut c.inflight[i];
        if r.state != RespState::Waiting || r.upgrade_accepted {
            return Err(Error::State("the response has already started"));
        }
        let Some(req) = &r.upgrade else {
            return Err(Error::State("not an upgrade or CONNECT request"));
        };
        let connect = req.is_connect();
        let status = if connect { 200 } else { 101 };
        let buf = self.out.scratch();
        head::write_status_line(buf, Version::Http11, status, head::reason_phrase(status));
        if let Some(d) = date {
            buf.put_slice(&d);
        }
        if !connect
            && !headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("connection"))
        {
            buf.put_slice(b"Connection: upgrade\r\n");
        }
        for (n, v) in headers {
            let _ = head::write_header(buf, n, v.as_bytes());
        }
        buf.put_slice(b"\r\n");
        let b = buf.split().freeze();
        r.upgrade_accepted = true;
        r.state = RespState::Done;
        Self::emit(&mut self.out, id.conn, c, id.seq, front, Payload::Bytes(b));
        self.advance(id.conn);
        Ok(())
    }

    /// Stops delivering the body of the request being read on `id`'s
    /// connection: the machine takes no more input there (the driver holds
    /// it) until [`resume_body`](Self::resume_body).
    ///
    /// # Errors
    /// Unknown request.
    pub fn pause_body(&mut self, id: RequestId) -> Result<(), Error> {
        touch(&mut self.touched, id.conn);
        let c = self
            .conns
            .get_mut(&id.conn)
            .ok_or(Error::UnknownRequest(id))?;
        c.paused_body = true;
        Ok(())
    }

    /// Delivers the body again after [`pause_body`](Self::pause_body).
    ///
    /// # Errors
    /// Unknown request.
    pub fn resume_body(&mut self, id: RequestId) -> Result<(), Error> {
        touch(&mut self.touched, id.conn);
        let c = self
            .conns
            .get_mut(&id.conn)
            .ok_or(Error::UnknownRequest(id))?;
        if c.paused_body {
            c.paused_body = false;
            // The body timeout starts afresh from the resume, whose time
            // the next input or timeout tells (or `now`, inside a drain).
            c.restamp = true;
            if self.fresh {
                c.stamp(self.now.mono);
            }
            self.wake(id.conn);
        }
        Ok(())
    }

    /// Closes `conn` gracefully once its queued output is flushed;
    /// unanswered requests get [`ServerEvent::Aborted`].
    ///
    /// # Errors
    /// Unknown connection.
    pub fn close(&mut self, conn: ConnId) -> Result<(), Error> {
        touch(&mut self.touched, conn);
        if !self.conns.contains_key(&conn) {
            return Err(Error::UnknownConn(conn));
        }
        self.shut(conn, Close::Graceful);
        Ok(())
    }

    // ----------------------------------------------------------- internals

    /// The connection of `id`, the index of its response and whether
    /// that response is the one on the wire.
    fn locate<'a>(
        conns: &'a mut ConnMap<Conn>,
        touched: &mut Vec<ConnId>,
        id: RequestId,
    ) -> Result<(&'a mut Conn, usize, bool), Error> {
        // Every command goes through here or touches its connection
        // itself: its deadline is looked at again before the next `Wait`.
        touch(touched, id.conn);
        let c = conns.get_mut(&id.conn).ok_or(Error::UnknownRequest(id))?;
        if c.closing {
            return Err(Error::UnknownRequest(id));
        }
        let front = c.front_seq() == Some(id.seq);
        let i = c
            .inflight
            .iter()
            .position(|r| r.seq == id.seq)
            .ok_or(Error::UnknownRequest(id))?;
        Ok((c, i, front))
    }

    /// Makes [`Server::prefix`] the status line of `status` and the `Date`
    /// line (if sent) of this second.
    fn refresh_prefix(&mut self, status: u16) {
        let date = self.date_value();
        if status == self.prefix_status {
            return;
        }
        self.prefix.clear();
        head::write_status_line(
            &mut self.prefix,
            Version::Http11,
            status,
            head::reason_phrase(status),
        );
        if let Some(d) = date {
            self.prefix.put_slice(&d);
        }
        self.prefix_status = status;
    }

    /// The `Date` field line to send, formatted once a second.
    fn date_value(&mut self) -> Option<[u8; DATE_LINE]> {
        if !self.cfg.date {
            return None;
        }
        let secs = self.now.wall.secs();
        if secs != self.date_secs {
            self.date_secs = secs;
            // The cached head start holds the old date.
            self.prefix_status = 0;
            let mut w = FixedWriter {
                buf: [b' '; 29],
                len: 0,
            };
            let _ = core::fmt::write(
                &mut w,
                format_args!("{}", self.now.wall.to_civil().http_date()),
            );
            let mut line = *b"Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n";
            if let Some(d) = line.get_mut(6..35) {
                d.copy_from_slice(&w.buf);
            }
            self.date = line;
        }
        Some(self.date)
    }

    /// Output for response `seq` of `conn`: on the wire if it is the front
    /// response, else held.
    fn emit(out: &mut Out, conn: ConnId, c: &mut Conn, seq: u64, front: bool, p: Payload) {
        if p.is_empty() {
            return;
        }
        if front {
            c.budget.queued(p.len() as usize);
            out.push(Output::Transmit { conn, payload: p });
        } else if let Some(r) = c.inflight.iter_mut().find(|r| r.seq == seq) {
            r.held.push(p);
        }
    }

    /// Pops finished responses at the front, puts the next one's held
    /// output on the wire, handles upgrades and closes, then reads on.
    fn advance(&mut self, conn: ConnId) {
        let mut ended = false;
        let mut idle = false;
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            let Some(front) = c.inflight.front_mut() else {
                break;
            };
            // Held output of the (new) front goes out now.
            if !front.held.is_empty() {
                for p in core::mem::take(&mut front.held) {
                    c.budget.queued(p.len() as usize);
                    self.out.push(Output::Transmit { conn, payload: p });
                }
            }
            let Some(front) = c.inflight.front_mut() else {
                break;
            };
            if front.state != RespState::Done {
                if front.writable_owed && !c.budget.is_full() {
                    front.writable_owed = false;
                    let id = RequestId::new(conn, front.seq);
                    self.out.event(ServerEvent::Writable { id });
                }
                break;
            }
            let Some(done) = c.inflight.pop_front() else {
                break;
            };
            let id = RequestId::new(conn, done.seq);
            if let (true, Some(head)) = (done.upgrade_accepted, done.upgrade) {
                let rest = c.buf.split().freeze();
                let unflushed = c.budget.pending();
                if let Some(t) = c.timer.take() {
                    self.timers.remove(&(t, conn));
                }
                self.conns.remove(&conn);
                self.out.event(ServerEvent::Upgraded {
                    id,
                    conn,
                    head,
                    rest,
                    unflushed,
                });
                return;
            }
            self.out.event_passing(ServerEvent::ResponseDone { id });
            if !done.keep_alive {
                // Nothing goes out after a response that ends the
                // connection; later answers are aborted below.
                c.close_after = true;
                ended = true;
                break;
            }
            if c.inflight.is_empty() {
                // The idle (or header) timeout starts now. Inside the
                // drain of an input that is `self.now`; otherwise a
                // command's idea of "now" is the last input's: restamp at
                // the next input or timeout.
                c.restamp = true;
                if self.fresh {
                    c.stamp(self.now.mono);
                }
                if c.buf.is_empty() && c.buf.capacity() > IDLE_BUF {
                    // An idle keep-alive connection keeps no large buffer.
                    c.buf = BytesMut::new();
                }
                idle = true;
            }
        }
        if idle && self.conns.len() == 1 {
            // A machine per connection (a driver's factory) keeps only a
            // small encode block while its one connection waits.
            self.out.one_connection();
        }
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if ended {
            self.shut(conn, Close::Graceful);
            return;
        }
        if c.inflight.is_empty() && !c.closing {
            if let Some(status) = c.error_reply.take() {
                self.error_response(conn, status);
                self.close_after_error(conn);
                return;
            }
            if c.close_after || (c.eof && c.buf.is_empty()) {
                self.shut(conn, Close::Graceful);
                return;
            }
        }
        self.wake(conn);
    }

    /// Reads on if possible, and resumes the driver if it holds input.
    fn wake(&mut self, conn: ConnId) {
        self.process(conn);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.held && Self::accepting(&self.cfg, c) {
            c.held = false;
            self.out.push(Output::Resume { conn });
        }
        if c.eof && !c.held && c.inflight.is_empty() && !c.closing {
            if !c.buf.is_empty() && matches!(c.read, Read::Head) {
                self.violation(conn, ProtocolError::Truncated, false);
            } else {
                self.shut(conn, Close::Graceful);
            }
        }
    }

    fn accepting(cfg: &ServerConfig, c: &Conn) -> bool {
        if c.closing || c.budget.is_full() {
            return false;
        }
        match c.read {
            Read::Head => c.inflight.len() < cfg.max_pipelined,
            Read::Body { .. } | Read::Chunked { .. } => !c.paused_body,
            Read::Upgrade => false,
            Read::Done => true,
        }
    }

    fn shut(&mut self, conn: ConnId, how: Close) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.closing {
            return;
        }
        c.closing = true;
        c.buf = BytesMut::new();
        c.read = Read::Done;
        // Responses not (wholly) on the wire will never be: even finished
        // ones held behind an earlier response.
        for r in c.inflight.drain(..) {
            self.out.event(ServerEvent::Aborted {
                id: RequestId::new(conn, r.seq),
            });
        }
        self.out.close(conn, how);
    }

    /// After an error reply: linger (see [`ServerConfig::linger`]) unless
    /// the peer has finished sending.
    fn close_after_error(&mut self, conn: ConnId) {
        let linger = self.cfg.linger;
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if c.eof || linger.is_zero() {
            self.shut(conn, Close::Graceful);
            return;
        }
        self.shut(conn, Close::WriteHalf);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.linger = Some(self.now.mono + linger);
        }
        touch(&mut self.touched, conn);
    }

    fn error_response(&mut self, conn: ConnId, status: u16) {
        let date = self.date_value();
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let reason = head::reason_phrase(status);
        let buf = self.out.scratch();
        head::write_status_line(buf, Version::Http11, status, reason);
        if let Some(d) = date {
            buf.put_slice(&d);
        }
        buf.put_slice(b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: ");
        head::write_decimal(buf, reason.len() as u64 + 1);
        buf.put_slice(b"\r\nConnection: close\r\n\r\n");
        buf.put_slice(reason.as_bytes());
        buf.put_u8(b'\n');
        let n = self.out.transmit_buf(conn);
        c.budget.queued(n);
    }

    /// The peer broke the protocol. `in_body`: inside the body of the
    /// request being read, whose own response may not have started.
    fn violation(&mut self, conn: ConnId, error: ProtocolError, in_body: bool) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.closing {
            return;
        }
        c.read = Read::Done;
        c.buf = BytesMut::new();
        let answerable = error != ProtocolError::Truncated;
        if in_body {
            // The request whose body broke is the newest one. If nothing of
            // its response was written, the error is answered in its place
            // (after the responses before it); otherwise the connection is
            // cut after what is already on the wire.
            let back_waiting = c.inflight.back().is_some_and(|r| {
                r.state == RespState::Waiting && r.held.is_empty() && !r.upgrade_accepted
            });
            if !back_waiting {
                self.out.event(ServerEvent::Violation {
                    conn,
                    error,
                    status: None,
                });
                self.shut(conn, Close::Graceful);
                return;
            }
            if let Some(r) = c.inflight.pop_back() {
                self.out.event(ServerEvent::Aborted {
                    id: RequestId::new(conn, r.seq),
                });
            }
        }
        let status = answerable.then(|| error.status());
        self.out.event(ServerEvent::Violation {
            conn,
            error,
            status,
        });
        match status {
            Some(s) if !c.inflight.is_empty() => c.error_reply = Some(s),
            Some(s) => {
                self.error_response(conn, s);
                self.close_after_error(conn);
            }
            None => {
                if c.inflight.is_empty() {
                    self.shut(conn, Close::Graceful);
                } else {
                    c.close_after = true;
                }
            }
        }
    }

    /// Parses what the connection's buffer holds, as far as the rules let.
    fn process(&mut self, conn: ConnId) {
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            if c.closing {
                return;
            }
            match &mut c.read {
                Read::Done => {
                    c.buf.clear();
                    return;
                }
                Read::Upgrade => return,
                Read::Head => {
                    // An empty buffer (the usual state after a request)
                    // needs no call into the parser.
                    if c.buf.is_empty() || c.inflight.len() >= self.cfg.max_pipelined {
                        return;
                    }
                    match decode_request_summarized(&mut c.buf, &mut c.scan, &self.cfg.limits) {
                        Ok(None) => {
                            if !c.buf.is_empty() && c.head_since.is_none() {
                                c.head_since = Some(self.now.mono);
                            }
                            return;
                        }
                        Err(e) => {
                            self.violation(conn, e, false);
                            return;
                        }
                        Ok(Some((head, sum))) => {
                            c.head_since = None;
                            self.request(conn, head, sum);
                        }
                    }
                }
                Read::Body { id, remaining } => {
                    if c.paused_body || c.buf.is_empty() {
                        return;
                    }
                    let id = *id;
                    let n = (c.buf.len() as u64).min(*remaining) as usize;
                    *remaining -= n as u64;
                    let done = *remaining == 0;
                    let data = c.buf.split_to(n).freeze();
                    self.out.event(ServerEvent::Body { id, data });
                    if done {
                        self.body_end(conn, id, Headers::default());
                    }
                }
                Read::Chunked { id, dec, total } => {
                    if c.paused_body || c.buf.is_empty() {
                        return;
                    }
                    let id = *id;
                    match dec.decode(&c.buf) {
                        Err(e) => {
                            self.violation(conn, e, true);
                            return;
                        }
                        Ok((n, Some(Chunk::Data { start, end }))) => {
                            *total += (end - start) as u64;
                            if *total > self.cfg.max_body {
                                self.violation(conn, ProtocolError::BodyTooLarge, true);
                                return;
                            }
                            let mut piece = c.buf.split_to(n);
                            piece.advance(start);
                            let data = piece.freeze();
                            self.out.event(ServerEvent::Body { id, data });
                        }
                        Ok((n, Some(Chunk::End { trailers }))) => {
                            c.buf.advance(n);
                            self.body_end(conn, id, trailers);
                        }
                        Ok((n, None)) => {
                            c.buf.advance(n);
                            if n == 0 {
                                return;
                            }
                        }
                    }
                }
            }
        }
    }

    fn body_end(&mut self, conn: ConnId, id: RequestId, trailers: Headers) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let mut upgrade = false;
        if let Some(r) = c.inflight.iter_mut().find(|r| r.seq == id.seq) {
            r.body_complete = true;
            upgrade = r.upgrade.is_some() && r.state == RespState::Waiting;
        }
        c.read = if upgrade {
            Read::Upgrade
        } else if c.close_after || c.inflight.back().is_some_and(|r| !r.keep_alive) {
            Read::Done
        } else {
            Read::Head
        };
        self.out.event(ServerEvent::BodyEnd { id, trailers });
    }

    fn request(&mut self, conn: ConnId, head: RequestHead, sum: Summary) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let body = match request_body_with(&head, &sum) {
            Ok(b) => b,
            Err(e) => {
                self.violation(conn, e, false);
                return;
            }
        };
        if let BodyKind::Length(n) = body {
            if n > self.cfg.max_body {
                self.violation(conn, ProtocolError::BodyTooLarge, false);
                return;
            }
        }
        let seq = c.next_seq;
        c.next_seq += 1;
        let id = RequestId::new(conn, seq);
        let keep_alive = sum.keep_alive(head.version());
        let expect_continue =
            head.version() == Version::Http11 && !body.is_empty() && sum.expect_continue;
        let upgrade =
            body.is_empty() && (head.is_connect() || (sum.upgrade && sum.connection_upgrade));
        c.inflight.push_back(Resp {
            seq,
            version: head.version(),
            head_only: head.is_head(),
            keep_alive,
            expect_continue,
            continue_sent: false,
            body_complete: body.is_empty(),
            upgrade: upgrade.then(|| alloc::boxed::Box::new(head.clone())),
            upgrade_accepted: false,
            state: RespState::Waiting,
            held: Vec::new(),
            writable_owed: false,
        });
        c.read = match body {
            BodyKind::Length(n) if n > 0 => Read::Body { id, remaining: n },
            BodyKind::Chunked => Read::Chunked {
                id,
                dec: ChunkedDecoder::new(self.cfg.chunked),
                total: 0,
            },
            _ if upgrade => Read::Upgrade,
            _ if !keep_alive => Read::Done,
            _ => Read::Head,
        };
        self.out.event_passing(ServerEvent::Request(Request {
            id,
            head,
            body,
            expect_continue,
            upgrade,
            keep_alive,
        }));
    }

    /// Input on `conn`; returns how much was taken.
    fn data(&mut self, conn: ConnId, bytes: &[u8], now: Now) -> usize {
        let Some(c) = self.conns.get_mut(&conn) else {
            return bytes.len();
        };
        c.stamp(now.mono);
        if c.closing || matches!(c.read, Read::Done) {
            return bytes.len();
        }
        if !Self::accepting(&self.cfg, c) {
            c.held = true;
            return 0;
        }
        c.body_since = now.mono;
        c.buf.extend_from_slice(bytes);
        self.process(conn);
        bytes.len()
    }

    /// `bytes` more of `conn`'s output were flushed.
    fn sent(&mut self, conn: ConnId, bytes: usize, now: Now) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.stamp(now.mono);
        c.budget.sent(bytes);
        if c.inflight.is_empty() {
            // A long response still flushing is not idleness.
            c.idle_since = now.mono;
        }
        // A later idle deadline leaves the timer entry where it is (see
        // `retime`); only a connection without one needs a look.
        if c.timer.is_none() {
            touch(&mut self.touched, conn);
        }
        if !c.budget.has_room() {
            return;
        }
        if let Some(front) = c.inflight.front_mut() {
            if front.writable_owed && front.state != RespState::Done {
                front.writable_owed = false;
                let id = RequestId::new(conn, front.seq);
                self.out.event(ServerEvent::Writable { id });
            }
        }
        // Only input held back for lack of room (or an end of input
        // waiting on it) has anything to gain from a wake: the parser
        // does not look at the budget.
        if c.held || c.eof {
            self.wake(conn);
        }
    }

    /// Brings the timer index up to date for the connections touched.
    fn retime(&mut self) {
        while let Some(conn) = self.touched.pop() {
            let Some(c) = self.conns.get_mut(&conn) else {
                continue;
            };
            let new = Self::deadline_of(&self.cfg, self.now.mono, c);
            match (c.timer, new) {
                // An entry no later than the deadline stays: when it fires
                // the connection's deadline is looked at again. Deadlines
                // mostly move later (each request restarts the idle
                // timeout, and none runs while a request is answered), and
                // moving the entry would cost a removal and an insertion
                // per request.
                (Some(old), Some(new)) if old <= new => {}
                (Some(_), None) => {}
                (old, new) => {
                    if let Some(t) = old {
                        self.timers.remove(&(t, conn));
                    }
                    if let Some(t) = new {
                        self.timers.insert((t, conn));
                    }
                    c.timer = new;
                }
            }
        }
    }

    fn deadline_of(cfg: &ServerConfig, now: Instant, c: &Conn) -> Option<Instant> {
        if c.linger.is_some() {
            return c.linger;
        }
        if c.closing {
            return None;
        }
        // A client told to wait for 100 Continue is not stalling: we are.
        let awaiting_continue = c
            .inflight
            .back()
            .is_some_and(|r| r.expect_continue && !r.continue_sent);
        if matches!(c.read, Read::Body { .. } | Read::Chunked { .. })
            && !c.paused_body
            && !awaiting_continue
        {
            return Some(if c.restamp {
                now
            } else {
                c.body_since + cfg.body_timeout
            });
        }
        if !c.inflight.is_empty() {
            return None;
        }
        if c.restamp {
            return Some(now);
        }
        match c.read {
            Read::Head => Some(match c.head_since {
                Some(t) => t + cfg.header_timeout,
                None => c.idle_since + cfg.idle_timeout,
            }),
            _ => None,
        }
    }
}

/// Writes the field line `Content-Length: n` with one copy into `buf`
/// (its three parts as three copies cost a third of a short head's
/// encoding).
fn put_content_length(buf: &mut BytesMut, n: u64) {
    const NAME: &[u8; 16] = b"Content-Length: ";
    // Digits right-aligned before the CRLF, then the name just before
    // them: at most 20 digits, so the name always fits in front.
    let mut line = [0u8; 16 + 20 + 2];
    line[36..].copy_from_slice(b"\r\n");
    let mut i = 16;
    if let Ok(digits) = <&mut [u8; 20]>::try_from(&mut line[16..36]) {
        i += head::digits_into(digits, n);
    }
    line[i - 16..i].copy_from_slice(NAME);
    buf.put_slice(&line[i - 16..]);
}

/// Notes that `conn`'s deadline may have changed. A run of commands on one
/// connection (a pipelined batch) is noted once.
fn touch(touched: &mut Vec<ConnId>, conn: ConnId) {
    if touched.last() != Some(&conn) {
        touched.push(conn);
    }
}

struct FixedWriter {
    buf: [u8; 29],
    len: usize,
}

impl core::fmt::Write for FixedWriter {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for b in s.bytes() {
            if self.len < self.buf.len() {
                self.buf[self.len] = b;
                self.len += 1;
            }
        }
        Ok(())
    }
}

impl Server {
    /// The inputs other than data and flushes.
    fn other_input(&mut self, input: Input<'_>, now: Now) {
        touch(&mut self.touched, input.conn());
        if let Some(c) = self.conns.get_mut(&input.conn()) {
            c.stamp(now.mono);
        }
        match input {
            Input::Accepted { conn, peer, .. } | Input::Opened { conn, peer, .. } => {
                if !self.conns.is_empty() {
                    self.out.many_connections();
                }
                self.conns.insert(
                    conn,
                    Conn {
                        buf: BytesMut::new(),
                        scan: HeadScanner::request(),
                        read: Read::Head,
                        inflight: VecDeque::new(),
                        next_seq: 0,
                        budget: self.cfg.budget,
                        close_after: false,
                        error_reply: None,
                        held: false,
                        paused_body: false,
                        eof: false,
                        closing: false,
                        head_since: None,
                        body_since: now.mono,
                        idle_since: now.mono,
                        restamp: false,
                        timer: None,
                        linger: None,
                    },
                );
                self.out.event(ServerEvent::Connected { conn, peer });
            }
            Input::Eof { conn, .. } => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                if c.closing {
                    if c.linger.take().is_some() {
                        // The client is done sending: the lingering ends.
                        self.out.close(conn, Close::Graceful);
                    }
                    return;
                }
                c.eof = true;
                match c.read {
                    Read::Body { .. } | Read::Chunked { .. } => {
                        self.violation(conn, ProtocolError::Truncated, true)
                    }
                    Read::Head if !c.buf.is_empty() => {
                        self.violation(conn, ProtocolError::Truncated, false)
                    }
                    _ => {
                        if c.inflight.is_empty() {
                            self.shut(conn, Close::Graceful);
                        }
                    }
                }
            }
            Input::Closed { conn } => {
                self.out.forget(conn);
                if let Some(c) = self.conns.remove(&conn) {
                    if let Some(t) = c.timer {
                        self.timers.remove(&(t, conn));
                    }
                    if !c.closing {
                        for r in c.inflight {
                            if r.state != RespState::Done {
                                self.out.event(ServerEvent::Aborted {
                                    id: RequestId::new(conn, r.seq),
                                });
                            }
                        }
                    }
                    self.out.event(ServerEvent::Closed { conn });
                }
            }
            _ => {}
        }
    }
}

impl Machine for Server {
    type Event = ServerEvent;
    type Error = Error;

    /// Never fails: a peer's violation is an event and a close.
    fn handle_input(&mut self, now: Now, input: Input<'_>) -> Result<usize, Error> {
        self.now = now;
        self.fresh = true;
        // The inputs of every request first. They hold nothing that
        // needs dropping (ids, counts, a borrowed slice): forgetting them
        // spares a call into the whole enum's drop glue per input.
        match input {
            Input::Sent { conn, bytes } => {
                core::mem::forget(input);
                // After every response: kept to what a flush can change.
                self.sent(conn, bytes, now);
                Ok(0)
            }
            Input::Data { conn, bytes } => {
                core::mem::forget(input);
                touch(&mut self.touched, conn);
                Ok(self.data(conn, bytes, now))
            }
            _ => {
                self.other_input(input, now);
                Ok(0)
            }
        }
    }

    /// A flush report matters to a connection only when it can change
    /// what the connection does: input held back or an end of input
    /// waiting (on room or on the flush), a response waiting for room
    /// (`Writable`), a close under way, or unflushed output above the
    /// low-water mark (where pausing begins to be a question). A keep-alive
    /// connection answering small requests needs none of these, and its
    /// idle timer already started when its last response was queued.
    fn wants_sent(&self, conn: ConnId) -> bool {
        self.conns.get(&conn).map_or(true, |c| {
            c.held
                || c.eof
                || c.closing
                || !c.budget.has_room()
                || c.inflight.front().is_some_and(|r| r.writable_owed)
        })
    }

    fn handle_timeout(&mut self, now: Now) {
        self.now = now;
        self.fresh = true;
        self.retime();
        while let Some(&(t, conn)) = self.timers.first() {
            if t > now.mono {
                break;
            }
            self.timers.remove(&(t, conn));
            touch(&mut self.touched, conn);
            let Some(c) = self.conns.get_mut(&conn) else {
                continue;
            };
            c.timer = None;
            if c.linger.is_some_and(|t| t <= now.mono) {
                c.linger = None;
                self.out.close(conn, Close::Graceful);
                continue;
            }
            if c.restamp {
                // Not a real deadline: the timers restart now.
                c.stamp(now.mono);
                continue;
            }
            let in_head = c.head_since.is_some();
            let in_body = matches!(c.read, Read::Body { .. } | Read::Chunked { .. });
            if Self::deadline_of(&self.cfg, self.now.mono, c).is_some_and(|d| d <= now.mono) {
                if in_body {
                    self.violation(conn, ProtocolError::BodyTimeout, true);
                } else if in_head {
                    self.violation(conn, ProtocolError::HeaderTimeout, false);
                } else {
                    self.out.event(ServerEvent::IdleTimeout { conn });
                    self.shut(conn, Close::Graceful);
                }
            }
        }
    }

    fn poll_output(&mut self) -> Output<ServerEvent> {
        if let Some(o) = self.out.pop() {
            return o;
        }
        self.retime();
        self.fresh = false;
        Output::Wait {
            deadline: self.timers.first().map(|(t, _)| *t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_lines_carry_every_digit() {
        for n in [0, 7, 9, 10, 13, 99, 100, 65_535, 1 << 40, u64::MAX] {
            let mut buf = BytesMut::new();
            put_content_length(&mut buf, n);
            assert_eq!(buf, format!("Content-Length: {n}\r\n").as_bytes());
        }
    }
}
