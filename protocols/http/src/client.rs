//! The HTTP/1.1 client machine.
//!
//! One [`Client`] drives any number of connections: ones it opens itself
//! ([`Client::connect`]) and ones a driver opened and reports with
//! `Opened`. On each it sends requests ([`Client::request`], then
//! [`Client::send_body`] / [`Client::finish`] for a streamed body) and
//! reads the responses in order.
//!
//! | input | effect |
//! |---|---|
//! | `Opened` | [`ClientEvent::Connected`]; requests queued before it go out |
//! | `OpenFailed` | [`ClientEvent::OpenFailed`] |
//! | `Data` | 1xx heads are [`ClientEvent::Informational`] (a `101` to an Upgrade request, or a 2xx to CONNECT, is [`ClientEvent::Upgraded`]); the final head is [`ClientEvent::Response`], its body [`ClientEvent::Body`] pieces and [`ClientEvent::BodyEnd`]; framing follows RFC 9112 §6.3 (none for HEAD, 1xx, 204, 304; chunked; Content-Length; else until close). After a response the connection is [`ClientEvent::Idle`] (reusable) or closes |
//! | `Data` breaking the protocol | [`ClientEvent::Violation`], the requests in flight are [`ClientEvent::Aborted`], and the connection closes |
//! | `Sent` | output accounting; [`ClientEvent::Writable`] for a request body that waited |
//! | `Eof` | ends a close-delimited body; elsewhere a `Truncated` violation if a response was owed |
//! | `Closed` | [`ClientEvent::Closed`] |
//!
//! Without [`ClientConfig::pipelining`] a connection carries one request at
//! a time: [`Client::request`] on a busy connection is an error (wait for
//! `Idle`). With it, up to [`ClientConfig::max_pipelined`] requests may be
//! outstanding; their responses come back in order.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use twill_core::{
    Addr, Close, ConnId, Duration, IdAllocator, Input, Instant, Machine, Now, Open, OpenError,
    OutQueue, Output, OutputBudget, Payload,
};

use crate::codec::chunked::{self, Chunk, ChunkedDecoder, ChunkedLimits};
use crate::codec::framing::{response_body, wants_keep_alive, BodyKind};
use crate::codec::head::{
    self, check_name, check_value, decode_response, HeadLimits, HeadScanner, Headers, ResponseHead,
    Version,
};
use crate::error::{Error, ProtocolError};
use crate::server::RequestId;

/// Limits and behaviour of a [`Client`].
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Status line, head size and field count of responses.
    pub limits: HeadLimits,
    /// Chunk extensions and trailers.
    pub chunked: ChunkedLimits,
    /// The largest response body accepted. Default: no limit.
    pub max_body: u64,
    /// Send further requests on a connection before earlier responses have
    /// arrived. Default off.
    pub pipelining: bool,
    /// Outstanding requests per connection when pipelining. Default 16.
    pub max_pipelined: usize,
    /// Unflushed output per connection, for streamed request bodies.
    pub budget: OutputBudget,
    /// The `User-Agent` to send when the application sends none.
    pub user_agent: Option<&'static str>,
    /// A connection with a request outstanding on which the server sends
    /// nothing for this long fails with
    /// [`ProtocolError::ResponseTimeout`] and closes. Default: none.
    pub response_timeout: Option<Duration>,
    /// How long a request sent with `Expect: 100-continue` holds its body
    /// back waiting for `100 Continue` before sending it anyway (RFC 9110
    /// §10.1.1: servers may not know the expectation). Default 1 s.
    pub continue_timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            limits: HeadLimits::default(),
            chunked: ChunkedLimits::default(),
            max_body: u64::MAX,
            pipelining: false,
            max_pipelined: 16,
            budget: OutputBudget::default(),
            user_agent: Some("twill"),
            response_timeout: None,
            continue_timeout: Duration::from_secs(1),
        }
    }
}

/// What a [`Client`] tells the application.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// A connection is open and ready for requests.
    Connected {
        /// The connection.
        conn: ConnId,
        /// The server's address.
        peer: Addr,
    },
    /// A [`Client::connect`] failed.
    OpenFailed {
        /// The id `connect` returned.
        conn: ConnId,
        /// Why.
        error: OpenError,
    },
    /// An informational (1xx) response, such as `100 Continue`.
    Informational {
        /// The request.
        id: RequestId,
        /// Its head.
        head: ResponseHead,
    },
    /// The final response head.
    Response {
        /// The request.
        id: RequestId,
        /// The head.
        head: ResponseHead,
        /// How its body is framed (`Empty` for HEAD, 204, 304 …).
        body: BodyKind,
    },
    /// A piece of the response body.
    Body {
        /// The request.
        id: RequestId,
        /// The bytes (dechunked).
        data: Bytes,
    },
    /// The response body is complete.
    BodyEnd {
        /// The request.
        id: RequestId,
        /// Trailer fields of a chunked body.
        trailers: Headers,
    },
    /// The request body of `id` may take more.
    Writable {
        /// The request.
        id: RequestId,
    },
    /// The server switched protocols (`101` to an Upgrade request, or a 2xx
    /// to CONNECT): the connection now belongs to whoever takes it, with
    /// `rest`, the bytes read past the response head. The client forgets
    /// it (no `Close`, no `Closed`).
    Upgraded {
        /// The request.
        id: RequestId,
        /// The connection.
        conn: ConnId,
        /// The response head.
        head: alloc::boxed::Box<ResponseHead>,
        /// Bytes read past the head.
        rest: Bytes,
        /// Output on `conn` not yet reported sent:
        /// [`Handover::unflushed`](twill_core::switch::Handover::unflushed).
        unflushed: usize,
    },
    /// The connection has no request outstanding and may be reused.
    Idle {
        /// The connection.
        conn: ConnId,
    },
    /// The server broke the protocol; the connection is closing.
    Violation {
        /// The connection.
        conn: ConnId,
        /// What went wrong.
        error: ProtocolError,
    },
    /// A request will get no (more) response.
    Aborted {
        /// The request.
        id: RequestId,
    },
    /// The connection is gone.
    Closed {
        /// The connection.
        conn: ConnId,
    },
}

#[derive(Debug)]
enum Read {
    Head,
    Body {
        id: RequestId,
        remaining: u64,
        total: u64,
    },
    Chunked {
        id: RequestId,
        dec: ChunkedDecoder,
        total: u64,
    },
    UntilClose {
        id: RequestId,
        total: u64,
    },
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Send {
    Body { kind: BodyKind, remaining: u64 },
    Done,
}

#[derive(Debug)]
struct Req {
    seq: u64,
    method: String,
    upgrade: bool,
    keep_alive: bool,
    send: Send,
    writable_owed: bool,
    /// The final response has arrived (its body may still be coming).
    answered: bool,
    /// `Expect: 100-continue` sent and neither `100 Continue`, a final
    /// response nor the continue timeout seen yet: body output is held.
    awaiting_continue: Option<Wait>,
    /// Body output held while awaiting `100 Continue`.
    held: Vec<Payload>,
    /// A final response came before the body was sent: the body is
    /// dropped (and the connection closes after the response).
    body_refused: bool,
}

/// Since when a request has awaited `100 Continue`.
#[derive(Debug, Clone, Copy)]
struct Wait {
    since: Instant,
    /// `since` is the last input's time, possibly old: restamped by the
    /// next input or timer, so the wait never ends early.
    stale: bool,
}

#[derive(Debug)]
struct Conn {
    host: Option<String>,
    connected: bool,
    /// Output before `Opened`.
    early: Vec<Payload>,
    buf: BytesMut,
    scan: HeadScanner,
    read: Read,
    inflight: VecDeque<Req>,
    next_seq: u64,
    budget: OutputBudget,
    keep_alive: bool,
    closing: bool,
    /// When the server last showed progress (or the oldest outstanding
    /// request was made), for the response timeout.
    progress: Instant,
    /// `progress` was stamped by a command with the last input's time,
    /// which may be old: the next input (the request's `Sent`) or the
    /// first timer restamps it, so the timeout never fires early.
    stale: bool,
}

/// The HTTP/1.1 client machine. See the [module docs](self).
#[derive(Debug)]
pub struct Client {
    cfg: ClientConfig,
    conns: BTreeMap<ConnId, Conn>,
    ids: IdAllocator,
    out: OutQueue<ClientEvent>,
    /// The time of the last input: commands have no clock of their own.
    now: Now,
}

impl Default for Client {
    fn default() -> Self {
        Client::new(ClientConfig::default())
    }
}

impl Client {
    /// A client with `cfg`.
    pub fn new(cfg: ClientConfig) -> Self {
        Client {
            cfg,
            conns: BTreeMap::new(),
            ids: IdAllocator::for_machine(),
            out: OutQueue::new(),
            now: Now::default(),
        }
    }

    /// When the response timeout of `c` fires, if it runs.
    fn response_deadline(&self, c: &Conn) -> Option<Instant> {
        let t = self.cfg.response_timeout?;
        (!c.inflight.is_empty() && !c.closing).then(|| c.progress + t)
    }

    // ------------------------------------------------------------ getters

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    /// Whether `conn` is open with no request outstanding.
    pub fn is_idle(&self, conn: ConnId) -> bool {
        self.conns
            .get(&conn)
            .is_some_and(|c| c.connected && !c.closing && c.keep_alive && c.inflight.is_empty())
    }

    /// Whether a request may be sent on `conn` now (idle, or pipelining
    /// with room).
    pub fn can_request(&self, conn: ConnId) -> bool {
        self.conns.get(&conn).is_some_and(|c| self.may_send(c))
    }

    /// Bytes of `conn` received but not parsed yet (a partial head or
    /// chunk line).
    pub fn buffered(&self, conn: ConnId) -> usize {
        self.conns.get(&conn).map_or(0, |c| c.buf.len())
    }

    /// Whether the request body of `id` may take more now.
    pub fn is_writable(&self, id: RequestId) -> bool {
        self.conns
            .get(&id.conn())
            .is_some_and(|c| !c.closing && !c.budget.is_full())
    }

    fn may_send(&self, c: &Conn) -> bool {
        if c.closing || !c.keep_alive || matches!(c.read, Read::Done) {
            return false;
        }
        if c.inflight.is_empty() {
            return true;
        }
        self.cfg.pipelining
            && c.inflight.len() < self.cfg.max_pipelined
            && c.inflight
                .iter()
                .all(|r| r.send == Send::Done && !r.upgrade)
    }

    // ----------------------------------------------------------- commands

    /// Opens a connection to `host:port`; returns its id. Requests may be
    /// sent on it at once (they go out once it is open).
    pub fn connect(&mut self, host: impl Into<String>, port: u16) -> ConnId {
        let host = host.into();
        let conn = self.ids.next_id();
        let authority = if port == 80 {
            host.clone()
        } else if host.contains(':') {
            alloc::format!("[{host}]:{port}")
        } else {
            alloc::format!("{host}:{port}")
        };
        self.conns
            .insert(conn, self.new_conn(Some(authority), false));
        self.out.push(Output::Open {
            conn,
            how: Open::Connect {
                host,
                port,
                timeout: None,
            },
        });
        conn
    }

    fn new_conn(&self, host: Option<String>, connected: bool) -> Conn {
        Conn {
            host,
            connected,
            early: Vec::new(),
            buf: BytesMut::new(),
            scan: HeadScanner::response(),
            read: Read::Head,
            inflight: VecDeque::new(),
            next_seq: 0,
            budget: self.cfg.budget,
            keep_alive: true,
            closing: false,
            progress: self.now.mono,
            stale: false,
        }
    }

    /// Sends a request head on `conn`: method, target (origin form
    /// `/path?q`, or `host:port` for CONNECT), fields and body framing.
    /// `Host` is added from [`connect`](Self::connect) when not given, and
    /// the framing field from `body` (`Content-Length: 0` for an empty
    /// POST, PUT or PATCH). Follow a body with
    /// [`send_body`](Self::send_body) and [`finish`](Self::finish).
    ///
    /// # Errors
    /// Unknown or busy connection, invalid method, target or fields,
    /// framing fields among `headers`, or a close-delimited body.
    pub fn request(
        &mut self,
        conn: ConnId,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: BodyKind,
    ) -> Result<RequestId, Error> {
        let c = self.conns.get(&conn).ok_or(Error::UnknownConn(conn))?;
        if !self.may_send(c) {
            return Err(Error::State("the connection is busy or closing"));
        }
        if body == BodyKind::CloseDelimited {
            return Err(Error::State("a request body cannot be close-delimited"));
        }
        let mut has_host = false;
        let mut has_ua = false;
        let mut close = false;
        let mut upgrade = method == "CONNECT";
        let mut expect_continue = false;
        for (n, v) in headers {
            check_name(n)?;
            check_value(v.as_bytes())?;
            if n.eq_ignore_ascii_case("content-length") {
                return Err(Error::FramingHeader("Content-Length"));
            }
            if n.eq_ignore_ascii_case("transfer-encoding") {
                return Err(Error::FramingHeader("Transfer-Encoding"));
            }
            has_host |= n.eq_ignore_ascii_case("host");
            has_ua |= n.eq_ignore_ascii_case("user-agent");
            expect_continue |=
                n.eq_ignore_ascii_case("expect") && v.trim().eq_ignore_ascii_case("100-continue");
            upgrade |= n.eq_ignore_ascii_case("upgrade");
            close |= n.eq_ignore_ascii_case("connection")
                && v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close"));
        }
        let buf = &mut self.out.buf;
        head::write_request_line(buf, method, target, Version::Http11)?;
        let c = self.conns.get_mut(&conn).ok_or(Error::UnknownConn(conn))?;
        if !has_host {
            let h = c.host.as_deref().unwrap_or("localhost");
            buf.put_slice(b"Host: ");
            buf.put_slice(h.as_bytes());
            buf.put_slice(b"\r\n");
        }
        if let (false, Some(ua)) = (has_ua, self.cfg.user_agent) {
            buf.put_slice(b"User-Agent: ");
            buf.put_slice(ua.as_bytes());
            buf.put_slice(b"\r\n");
        }
        for (n, v) in headers {
            let _ = head::write_header(buf, n, v.as_bytes());
        }
        match body {
            BodyKind::Length(n) => {
                buf.put_slice(b"Content-Length: ");
                head::write_decimal(buf, n);
                buf.put_slice(b"\r\n");
            }
            BodyKind::Chunked => buf.put_slice(b"Transfer-Encoding: chunked\r\n"),
            _ if matches!(method, "POST" | "PUT" | "PATCH") => {
                buf.put_slice(b"Content-Length: 0\r\n")
            }
            _ => {}
        }
        buf.put_slice(b"\r\n");
        let bytes = buf.split().freeze();
        let seq = c.next_seq;
        c.next_seq += 1;
        if close {
            c.keep_alive = false;
        }
        if c.inflight.is_empty() {
            c.progress = self.now.mono;
            c.stale = true;
        }
        c.inflight.push_back(Req {
            seq,
            method: String::from(method),
            upgrade,
            keep_alive: !close,
            send: if body.is_empty() {
                Send::Done
            } else {
                Send::Body {
                    kind: body,
                    remaining: match body {
                        BodyKind::Length(n) => n,
                        _ => 0,
                    },
                }
            },
            writable_owed: false,
            answered: false,
            awaiting_continue: (expect_continue && !body.is_empty()).then_some(Wait {
                since: self.now.mono,
                stale: true,
            }),
            held: Vec::new(),
            body_refused: false,
        });
        Self::emit(&mut self.out, conn, c, Payload::Bytes(bytes));
        Ok(RequestId::new(conn, seq))
    }

    fn emit(out: &mut OutQueue<ClientEvent>, conn: ConnId, c: &mut Conn, p: Payload) {
        if p.is_empty() {
            return;
        }
        if c.connected {
            c.budget.queued(p.len() as usize);
            out.push(Output::Transmit { conn, payload: p });
        } else {
            c.early.push(p);
        }
    }

    /// Sends a piece of the request body.
    ///
    /// # Errors
    /// Unknown request, no body announced or already finished, more bytes
    /// than the announced length.
    pub fn send_body(&mut self, id: RequestId, data: Bytes) -> Result<(), Error> {
        let (c, i) = Self::req_mut_of(&mut self.conns, id)?;
        let r = &mut c.inflight[i];
        if r.body_refused {
            return Ok(());
        }
        let Send::Body { kind, remaining } = &mut r.send else {
            return Err(Error::State("no request body is being sent"));
        };
        if data.is_empty() {
            return Ok(());
        }
        let mut ps: Vec<Payload> = Vec::with_capacity(3);
        match *kind {
            BodyKind::Length(_) => {
                let n = data.len() as u64;
                if n > *remaining {
                    return Err(Error::BodyTooLong);
                }
                *remaining -= n;
                ps.push(Payload::Bytes(data));
            }
            BodyKind::Chunked => {
                chunked::write_chunk_size(&mut self.out.buf, data.len());
                ps.push(Payload::Bytes(self.out.buf.split().freeze()));
                ps.push(Payload::Bytes(data));
                ps.push(Payload::Bytes(Bytes::from_static(b"\r\n")));
            }
            _ => return Ok(()),
        }
        if c.inflight[i].awaiting_continue.is_some() {
            c.inflight[i].held.extend(ps);
            return Ok(());
        }
        let full = {
            for p in ps {
                Self::emit(&mut self.out, id.conn(), c, p);
            }
            c.budget.is_full()
        };
        if full {
            c.inflight[i].writable_owed = true;
        }
        Ok(())
    }

    /// Ends the wait for `100 Continue` of the `i`th request of `c`: its
    /// held body goes out.
    fn release(out: &mut OutQueue<ClientEvent>, conn: ConnId, c: &mut Conn, i: usize) {
        let Some(r) = c.inflight.get_mut(i) else {
            return;
        };
        if r.awaiting_continue.take().is_none() {
            return;
        }
        let held = core::mem::take(&mut r.held);
        for p in held {
            Self::emit(out, conn, c, p);
        }
    }

    fn req_mut_of(
        conns: &mut BTreeMap<ConnId, Conn>,
        id: RequestId,
    ) -> Result<(&mut Conn, usize), Error> {
        let c = conns.get_mut(&id.conn()).ok_or(Error::UnknownRequest(id))?;
        if c.closing {
            return Err(Error::UnknownRequest(id));
        }
        let i = c
            .inflight
            .iter()
            .position(|r| r.seq == id.seq())
            .ok_or(Error::UnknownRequest(id))?;
        Ok((c, i))
    }

    /// Ends the request body (with trailers for a chunked one).
    ///
    /// # Errors
    /// Unknown request, no body being sent, fewer bytes than announced.
    pub fn finish(&mut self, id: RequestId, trailers: &[(&str, &str)]) -> Result<(), Error> {
        let (c, i) = Self::req_mut_of(&mut self.conns, id)?;
        if c.inflight[i].body_refused {
            return Ok(());
        }
        let Send::Body { kind, remaining } = c.inflight[i].send else {
            return Err(Error::State("no request body is being sent"));
        };
        match kind {
            BodyKind::Length(_) if remaining > 0 => return Err(Error::BodyTooShort),
            BodyKind::Chunked => {
                chunked::write_last_chunk(&mut self.out.buf, trailers)?;
                let b = Payload::Bytes(self.out.buf.split().freeze());
                if c.inflight[i].awaiting_continue.is_some() {
                    c.inflight[i].held.push(b);
                } else {
                    Self::emit(&mut self.out, id.conn(), c, b);
                }
            }
            _ => {}
        }
        c.inflight[i].send = Send::Done;
        Ok(())
    }

    /// Closes `conn` gracefully; outstanding requests are
    /// [`ClientEvent::Aborted`].
    ///
    /// # Errors
    /// Unknown connection.
    pub fn close(&mut self, conn: ConnId) -> Result<(), Error> {
        if !self.conns.contains_key(&conn) {
            return Err(Error::UnknownConn(conn));
        }
        self.shut(conn);
        Ok(())
    }

    // ----------------------------------------------------------- internals

    fn shut(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.closing {
            return;
        }
        c.closing = true;
        c.read = Read::Done;
        c.buf = BytesMut::new();
        for r in c.inflight.drain(..) {
            self.out.event(ClientEvent::Aborted {
                id: RequestId::new(conn, r.seq),
            });
        }
        if c.connected {
            self.out.close(conn, Close::Graceful);
        }
    }

    fn violation(&mut self, conn: ConnId, error: ProtocolError) {
        self.out.event(ClientEvent::Violation { conn, error });
        self.shut(conn);
    }

    /// The front response's body is complete.
    fn response_end(&mut self, conn: ConnId, id: RequestId, trailers: Headers) {
        self.out.event(ClientEvent::BodyEnd { id, trailers });
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let done = c.inflight.pop_front();
        c.read = Read::Head;
        let reusable = c.keep_alive && done.as_ref().is_some_and(|r| r.send == Send::Done);
        if !reusable {
            self.shut(conn);
        } else if c.inflight.is_empty() {
            self.out.event(ClientEvent::Idle { conn });
        }
    }

    fn process(&mut self, conn: ConnId) {
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            if c.closing || c.buf.is_empty() {
                return;
            }
            match &mut c.read {
                Read::Done => {
                    c.buf.clear();
                    return;
                }
                Read::Head => {
                    let head = match decode_response(&mut c.buf, &mut c.scan, &self.cfg.limits) {
                        Ok(None) => return,
                        Err(e) => return self.violation(conn, e),
                        Ok(Some(h)) => h,
                    };
                    let Some(front) = c.inflight.front_mut() else {
                        return self.violation(conn, ProtocolError::UnexpectedResponse);
                    };
                    let id = RequestId::new(conn, front.seq);
                    let status = head.status();
                    let switching = (status == 101 && front.upgrade && front.method != "CONNECT")
                        || (front.method == "CONNECT" && (200..300).contains(&status));
                    if switching {
                        let rest = c.buf.split().freeze();
                        let unflushed = c.budget.pending();
                        self.conns.remove(&conn);
                        self.out.event(ClientEvent::Upgraded {
                            id,
                            conn,
                            head: alloc::boxed::Box::new(head),
                            rest,
                            unflushed,
                        });
                        return;
                    }
                    if (100..200).contains(&status) {
                        if status == 101 {
                            return self.violation(conn, ProtocolError::UnexpectedResponse);
                        }
                        if status == 100 {
                            Self::release(&mut self.out, conn, c, 0);
                        }
                        self.out.event(ClientEvent::Informational { id, head });
                        continue;
                    }
                    let body = match response_body(&head, &front.method) {
                        Ok(b) => b,
                        Err(e) => return self.violation(conn, e),
                    };
                    front.answered = true;
                    if front.awaiting_continue.take().is_some() {
                        // Answered without the body: never send it now,
                        // and never reuse a connection whose request the
                        // server may still think unfinished.
                        front.held.clear();
                        front.body_refused = true;
                        front.send = Send::Done;
                        c.keep_alive = false;
                    }
                    if !(front.keep_alive && wants_keep_alive(head.version(), head.headers()))
                        || body == BodyKind::CloseDelimited
                    {
                        c.keep_alive = false;
                    }
                    if let BodyKind::Length(n) = body {
                        if n > self.cfg.max_body {
                            self.out.event(ClientEvent::Response { id, head, body });
                            return self.violation(conn, ProtocolError::BodyTooLarge);
                        }
                    }
                    c.read = match body {
                        BodyKind::Length(n) => Read::Body {
                            id,
                            remaining: n,
                            total: 0,
                        },
                        BodyKind::Chunked => Read::Chunked {
                            id,
                            dec: ChunkedDecoder::new(self.cfg.chunked),
                            total: 0,
                        },
                        BodyKind::CloseDelimited => Read::UntilClose { id, total: 0 },
                        BodyKind::Empty => Read::Head,
                    };
                    self.out.event(ClientEvent::Response { id, head, body });
                    if body.is_empty() {
                        self.response_end(conn, id, Headers::default());
                    }
                }
                Read::Body {
                    id,
                    remaining,
                    total,
                } => {
                    let id = *id;
                    let n = (c.buf.len() as u64).min(*remaining) as usize;
                    *remaining -= n as u64;
                    *total += n as u64;
                    let done = *remaining == 0;
                    let data = c.buf.split_to(n).freeze();
                    self.out.event(ClientEvent::Body { id, data });
                    if done {
                        self.response_end(conn, id, Headers::default());
                    }
                }
                Read::UntilClose { id, total } => {
                    let id = *id;
                    *total += c.buf.len() as u64;
                    if *total > self.cfg.max_body {
                        return self.violation(conn, ProtocolError::BodyTooLarge);
                    }
                    let data = c.buf.split().freeze();
                    self.out.event(ClientEvent::Body { id, data });
                }
                Read::Chunked { id, dec, total } => {
                    let id = *id;
                    match dec.decode(&c.buf) {
                        Err(e) => return self.violation(conn, e),
                        Ok((n, Some(Chunk::Data { start, end }))) => {
                            *total += (end - start) as u64;
                            if *total > self.cfg.max_body {
                                return self.violation(conn, ProtocolError::BodyTooLarge);
                            }
                            let mut piece = c.buf.split_to(n);
                            piece.advance(start);
                            self.out.event(ClientEvent::Body {
                                id,
                                data: piece.freeze(),
                            });
                        }
                        Ok((n, Some(Chunk::End { trailers }))) => {
                            c.buf.advance(n);
                            self.response_end(conn, id, trailers);
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

    fn add(&mut self, conn: ConnId, peer: Addr) {
        let c = match self.conns.get_mut(&conn) {
            Some(c) => c,
            None => {
                let c = self.new_conn(None, true);
                self.conns.entry(conn).or_insert(c)
            }
        };
        c.connected = true;
        for p in core::mem::take(&mut c.early) {
            c.budget.queued(p.len() as usize);
            self.out.push(Output::Transmit { conn, payload: p });
        }
        self.out.event(ClientEvent::Connected { conn, peer });
    }
}

impl Machine for Client {
    type Event = ClientEvent;
    type Error = Error;

    /// Never fails: a server's violation is an event and a close.
    fn handle_input(&mut self, now: Now, input: Input<'_>) -> Result<usize, Error> {
        self.now = now;
        match input {
            Input::Opened { conn, peer, .. } | Input::Accepted { conn, peer, .. } => {
                self.add(conn, peer)
            }
            Input::OpenFailed { conn, error } => {
                if let Some(c) = self.conns.remove(&conn) {
                    for r in c.inflight {
                        self.out.event(ClientEvent::Aborted {
                            id: RequestId::new(conn, r.seq),
                        });
                    }
                }
                self.out.event(ClientEvent::OpenFailed { conn, error });
            }
            Input::Data { conn, bytes } => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return Ok(bytes.len());
                };
                if c.closing {
                    return Ok(bytes.len());
                }
                c.progress = now.mono;
                c.stale = false;
                c.buf.extend_from_slice(bytes);
                self.process(conn);
                return Ok(bytes.len());
            }
            Input::Eof { conn, .. } => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return Ok(0);
                };
                if c.closing {
                    return Ok(0);
                }
                match c.read {
                    Read::UntilClose { id, .. } => {
                        c.keep_alive = false;
                        self.response_end(conn, id, Headers::default());
                    }
                    Read::Head if c.buf.is_empty() && c.inflight.is_empty() => self.shut(conn),
                    _ => self.violation(conn, ProtocolError::Truncated),
                }
            }
            Input::Sent { conn, bytes } => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    if c.stale {
                        // The request just went out: time it from here.
                        c.progress = now.mono;
                        c.stale = false;
                    }
                    c.budget.sent(bytes);
                    if c.budget.has_room() {
                        for r in c.inflight.iter_mut() {
                            if r.writable_owed {
                                r.writable_owed = false;
                                self.out.event(ClientEvent::Writable {
                                    id: RequestId::new(conn, r.seq),
                                });
                            }
                        }
                    }
                }
            }
            Input::Closed { conn } => {
                if let Some(c) = self.conns.remove(&conn) {
                    for r in c.inflight {
                        self.out.event(ClientEvent::Aborted {
                            id: RequestId::new(conn, r.seq),
                        });
                    }
                    self.out.event(ClientEvent::Closed { conn });
                }
            }
            _ => {}
        }
        Ok(0)
    }

    fn handle_timeout(&mut self, now: Now) {
        self.now = now;
        let wait = self.cfg.continue_timeout;
        let mut due = Vec::new();
        for (&conn, c) in self.conns.iter_mut() {
            for (i, r) in c.inflight.iter_mut().enumerate() {
                match &mut r.awaiting_continue {
                    Some(w) if w.stale => {
                        *w = Wait {
                            since: now.mono,
                            stale: false,
                        }
                    }
                    Some(w) if w.since + wait <= now.mono => due.push((conn, i)),
                    _ => {}
                }
            }
        }
        for (conn, i) in due {
            if let Some(c) = self.conns.get_mut(&conn) {
                Self::release(&mut self.out, conn, c, i);
            }
        }
        let late: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| self.response_deadline(c).is_some_and(|d| d <= now.mono))
            .map(|(id, _)| *id)
            .collect();
        for conn in late {
            match self.conns.get_mut(&conn) {
                Some(c) if c.stale => {
                    c.progress = now.mono;
                    c.stale = false;
                }
                _ => self.violation(conn, ProtocolError::ResponseTimeout),
            }
        }
    }

    fn poll_output(&mut self) -> Output<ClientEvent> {
        let wait = self.cfg.continue_timeout;
        let continues = self.conns.values().flat_map(|c| {
            c.inflight.iter().filter_map(move |r| {
                r.awaiting_continue
                    .map(|w| if w.stale { w.since } else { w.since + wait })
            })
        });
        let deadline = self
            .conns
            .values()
            .filter_map(|c| self.response_deadline(c))
            .chain(continues)
            .min();
        self.out.pop_or_wait(deadline)
    }
}
