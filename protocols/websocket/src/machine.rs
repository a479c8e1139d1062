//! [`WebSocket`]: one WebSocket connection after the handshake, as a
//! [`Machine`], for either role (the framing rules differ only in who
//! masks).
//!
//! ## States
//!
//! | state | on a close frame | on `close()` / a violation | on EOF | on the deadline |
//! |---|---|---|---|---|
//! | `Open` | answer it; server: close TCP → `Closing`; client: → `AwaitEof` | send close → `CloseSent` / send close, close TCP → `Closing` | close TCP (1006) → `Closing` | keep-alive ping / fail 1011 |
//! | `CloseSent` | server: close TCP → `Closing`; client: → `AwaitEof` | — | close TCP (1006) → `Closing` | abort (1006) → `Closing` |
//! | `AwaitEof` (client) | — | — | close TCP → `Closing` | abort → `Closing` |
//! | `Closing` | ignored | — | — | — |
//!
//! `Input::Closed` in any state ends the connection with
//! [`WsEvent::Closed`]. The server closes TCP first (§7.1.1); the client
//! waits for that, up to [`Config::close_timeout`].
//!
//! ## Reading
//! `handle_input` copies the bytes into the input buffer; `poll_output`
//! parses them, one message at a time, so each message goes out as it is
//! parsed (a 64 KiB read of small messages does not pass through the
//! output queue all at once). Two paths give the same events:
//! - *whole frames*: a run of unfragmented, uncompressed data frames that
//!   lie complete in the buffer is unmasked in place and frozen as one
//!   block; each message is a slice of it (no copy, one reference count);
//! - *incremental*: everything else. Frame headers are parsed in place (a
//!   header cut by a chunk boundary is kept in a 14-byte buffer); payload
//!   bytes are copied once into the message buffer and unmasked there,
//!   text is validated as it arrives, compressed payload is inflated as it
//!   arrives.
//!
//! Without [`Config::streaming`] a message is delivered whole
//! ([`WsEvent::Message`]); with it, each piece as it arrives
//! ([`WsEvent::Chunk`]), so a large message is never buffered.
//!
//! ## Backpressure
//! While more than [`Config::output`]'s high-water mark of our output is
//! unflushed, the machine takes no input (a short take); `Resume` and
//! [`WsEvent::Writable`] follow when it drains to the low-water mark.

use alloc::collections::VecDeque;
use alloc::string::String;
use bytes::{Buf, Bytes, BytesMut};
use twill_core::queue::{reserve_block, BLOCK};
use twill_core::rng::Rng;
use twill_core::{
    Close, ConnId, Duration, Input, Instant, Machine, Now, OutQueue, Output, OutputBudget,
};

use crate::codec::frame::{MAX_CONTROL, MAX_HEADER, RSV1};
use crate::codec::{
    apply_mask, parse_close, parse_header, write_header, CloseCode, FrameHeader, OpCode,
    Utf8Validator,
};
use crate::deflate::{Deflate, DeflateConfig, DeflateParams};
use crate::error::{Error, ProtocolError};

/// Which end of the connection this machine is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Accepted the handshake: expects masked frames, sends unmasked.
    Server,
    /// Sent the handshake: masks every frame, expects unmasked ones.
    Client,
}

/// Limits and behaviour of a connection.
#[derive(Clone, Debug)]
pub struct Config {
    /// Largest frame payload accepted (close 1009 above it).
    pub max_frame: usize,
    /// Largest message accepted, after decompression (close 1009 above).
    pub max_message: usize,
    /// Answer pings with pongs automatically.
    pub auto_pong: bool,
    /// Deliver messages piece by piece ([`WsEvent::Chunk`]) instead of
    /// whole.
    pub streaming: bool,
    /// Send a ping after this long without input (None: never).
    pub keepalive: Option<Duration>,
    /// Fail the connection (1011) when nothing arrives this long after a
    /// keep-alive ping.
    pub keepalive_timeout: Duration,
    /// How long to wait for the peer's close frame (or, as a client, the
    /// server's TCP close) before dropping the connection.
    pub close_timeout: Duration,
    /// Unflushed output water marks.
    pub output: OutputBudget,
    /// permessage-deflate settings (used when negotiated).
    pub deflate: DeflateConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame: 16 << 20,
            max_message: 64 << 20,
            auto_pong: true,
            streaming: false,
            keepalive: None,
            keepalive_timeout: Duration::from_secs(20),
            close_timeout: Duration::from_secs(5),
            output: OutputBudget::new(1 << 20, 256 << 10),
            deflate: DeflateConfig::default(),
        }
    }
}

/// Text or binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// UTF-8 text (validated).
    Text,
    /// Bytes.
    Binary,
}

impl Kind {
    fn opcode(self) -> OpCode {
        match self {
            Kind::Text => OpCode::Text,
            Kind::Binary => OpCode::Binary,
        }
    }
}

/// What a [`WebSocket`] tells the application.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WsEvent {
    /// A whole message (text is valid UTF-8).
    Message {
        /// Text or binary.
        kind: Kind,
        /// Its payload, decompressed.
        data: Bytes,
    },
    /// With [`Config::streaming`]: a piece of a message. Text pieces are
    /// validated but may split a character.
    Chunk {
        /// Text or binary.
        kind: Kind,
        /// The bytes.
        data: Bytes,
        /// The message's first piece.
        first: bool,
        /// Its last piece.
        last: bool,
    },
    /// A ping arrived (answered already if [`Config::auto_pong`]).
    Ping(Bytes),
    /// A pong arrived.
    Pong(Bytes),
    /// The peer's close frame: its code (None for an empty one, reported
    /// as 1005) and reason.
    CloseReceived {
        /// The code.
        code: Option<CloseCode>,
        /// The reason.
        reason: String,
    },
    /// The peer broke the protocol or a limit; a close frame with
    /// `error.close_code()` was sent and the connection is closing.
    Violation(ProtocolError),
    /// Output drained below the low-water mark after being full.
    Writable,
    /// The connection is gone. `clean`: the close handshake completed and
    /// TCP closed in order; `code`: the peer's close code, else 1006.
    Closed {
        /// The close code to report.
        code: CloseCode,
        /// The reason.
        reason: String,
        /// Whether the close was clean.
        clean: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Open,
    CloseSent { deadline: Instant },
    AwaitEof { deadline: Instant },
    Closing,
    Done,
}

/// The frame being read.
#[derive(Clone, Copy, Debug)]
struct Frame {
    header: FrameHeader,
    remaining: u64,
    offset: usize,
}

/// The message being read.
#[derive(Clone, Copy, Debug)]
struct Msg {
    kind: Kind,
    compressed: bool,
    /// Bytes of it delivered (streaming) or buffered so far.
    len: usize,
    first_sent: bool,
    utf8: Utf8Validator,
}

/// One WebSocket connection (either role) after the opening handshake.
pub struct WebSocket {
    conn: ConnId,
    role: Role,
    cfg: Config,
    rng: Option<Rng>,
    deflate: Option<Deflate>,
    out: OutQueue<WsEvent>,
    budget: OutputBudget,
    paused: bool,
    state: State,
    now: Now,
    // Reading.
    hdr: [u8; MAX_HEADER],
    hdr_len: usize,
    frame: Option<Frame>,
    msg: Option<Msg>,
    /// Input taken but not parsed yet (parsing happens in `poll_output`).
    rx: BytesMut,
    /// Whole messages found by the fast path: (kind, start, end) in `block`.
    whole: VecDeque<(Kind, usize, usize)>,
    block: Bytes,
    data: BytesMut,
    ctrl: BytesMut,
    scratch: BytesMut,
    // Sending.
    sending: Option<Kind>,
    /// What ends up in `Closed`: the peer's close, or 1006.
    peer_close: Option<(CloseCode, String)>,
    // Keep-alive.
    last_rx: Option<Instant>,
    ping_deadline: Option<Instant>,
}

impl core::fmt::Debug for WebSocket {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WebSocket")
            .field("conn", &self.conn)
            .field("role", &self.role)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl WebSocket {
    /// A connection on `conn` after a successful handshake. A client needs
    /// `rng` for its masking keys (a server may pass `None`); `deflate` is
    /// what the handshake negotiated.
    pub fn new(
        conn: ConnId,
        role: Role,
        cfg: Config,
        deflate: Option<DeflateParams>,
        rng: Option<Rng>,
    ) -> Self {
        let deflate = deflate.map(|p| Deflate::new(&p, role == Role::Server, &cfg.deflate));
        WebSocket {
            conn,
            role,
            budget: cfg.output,
            cfg,
            rng,
            deflate,
            out: OutQueue::new(),
            paused: false,
            state: State::Open,
            now: Now::default(),
            hdr: [0; MAX_HEADER],
            hdr_len: 0,
            frame: None,
            msg: None,
            rx: BytesMut::new(),
            whole: VecDeque::new(),
            block: Bytes::new(),
            data: BytesMut::new(),
            ctrl: BytesMut::new(),
            scratch: BytesMut::new(),
            sending: None,
            peer_close: None,
            last_rx: None,
            ping_deadline: None,
        }
    }

    // ----- getters -----

    /// The connection.
    pub fn conn(&self) -> ConnId {
        self.conn
    }

    /// Whether messages may still be sent (no close sent yet).
    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }

    /// Whether the unflushed output is below the high-water mark.
    pub fn is_writable(&self) -> bool {
        !self.budget.is_full()
    }

    /// Whether permessage-deflate is in use.
    pub fn is_compressed(&self) -> bool {
        self.deflate.is_some()
    }

    // ----- commands -----

    /// Sends a whole message (compressed when negotiated and worth it).
    ///
    /// # Errors
    /// Closing, or a fragmented message is being sent.
    pub fn send(&mut self, kind: Kind, data: Bytes) -> Result<(), Error> {
        self.check_open()?;
        if self.sending.is_some() {
            return Err(Error::Fragment("a fragmented message is being sent"));
        }
        if let Some(d) = self.deflate.as_mut().filter(|d| d.wants(data.len())) {
            let mut z = core::mem::take(&mut self.scratch);
            z.clear();
            // Compression of our own data cannot fail short of a bug in
            // flate2; send it plain then.
            if d.compress(&data, &mut z).is_ok() {
                self.write_frame(true, RSV1, kind.opcode(), &z, None);
                self.scratch = z;
                return Ok(());
            }
            self.scratch = z;
        }
        self.write_frame(true, 0, kind.opcode(), &data, Some(&data));
        Ok(())
    }

    /// Sends a text message.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub fn send_text(&mut self, text: &str) -> Result<(), Error> {
        self.send(Kind::Text, Bytes::copy_from_slice(text.as_bytes()))
    }

    /// Sends one frame of a message sent in pieces (never compressed):
    /// the first call names the kind, later ones must use the same, the
    /// one with `fin` ends it. Text pieces must each be valid UTF-8.
    ///
    /// # Errors
    /// Closing, a kind differing from the message's, invalid UTF-8.
    pub fn send_frame(&mut self, kind: Kind, data: Bytes, fin: bool) -> Result<(), Error> {
        self.check_open()?;
        if kind == Kind::Text && core::str::from_utf8(&data).is_err() {
            return Err(Error::NotUtf8);
        }
        let opcode = match self.sending {
            None => kind.opcode(),
            Some(k) if k == kind => OpCode::Continuation,
            Some(_) => return Err(Error::Fragment("a different kind is being sent")),
        };
        self.sending = (!fin).then_some(kind);
        self.write_frame(fin, 0, opcode, &data, Some(&data));
        Ok(())
    }

    /// Sends a ping (payload ≤ 125 bytes).
    ///
    /// # Errors
    /// Closing, payload too long.
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.check_open()?;
        if payload.len() > MAX_CONTROL {
            return Err(Error::ControlTooLong);
        }
        self.write_frame(true, 0, OpCode::Ping, payload, None);
        Ok(())
    }

    /// Sends a pong (for applications that turned off
    /// [`Config::auto_pong`]; an unsolicited pong is a heartbeat).
    ///
    /// # Errors
    /// Closing, payload too long.
    pub fn pong(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.check_open()?;
        if payload.len() > MAX_CONTROL {
            return Err(Error::ControlTooLong);
        }
        self.write_frame(true, 0, OpCode::Pong, payload, None);
        Ok(())
    }

    /// Starts the close handshake: sends a close frame with `code` and
    /// `reason` (at most 123 bytes) and waits for the peer's, up to
    /// [`Config::close_timeout`].
    ///
    /// # Errors
    /// Already closing, a code that may not be sent, a reason too long.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        self.check_open()?;
        if !code.is_valid_on_wire() {
            return Err(Error::BadCloseCode(code.0));
        }
        if reason.len() > MAX_CONTROL - 2 {
            return Err(Error::ControlTooLong);
        }
        self.send_close(Some(code), reason);
        self.state = State::CloseSent {
            deadline: self.deadline_after(self.cfg.close_timeout),
        };
        Ok(())
    }

    fn check_open(&self) -> Result<(), Error> {
        if self.state == State::Open {
            Ok(())
        } else {
            Err(Error::Closing)
        }
    }

    fn deadline_after(&self, d: Duration) -> Instant {
        self.now.mono.checked_add(d).unwrap_or(self.now.mono)
    }

    // ----- writing -----

    /// Encodes one frame; `shared` is `payload` as `Bytes` when a large
    /// unmasked payload can go out without a copy.
    fn write_frame(
        &mut self,
        fin: bool,
        rsv: u8,
        opcode: OpCode,
        payload: &[u8],
        shared: Option<&Bytes>,
    ) {
        let mask = match (self.role, self.rng.as_mut()) {
            (Role::Client, Some(rng)) => Some(rng.next_u32().to_ne_bytes()),
            // A client without an RNG still masks, with a fixed key: never
            // unmasked, whatever the caller forgot.
            (Role::Client, None) => Some([0x5a, 0xa5, 0x3c, 0xc3]),
            (Role::Server, _) => None,
        };
        let h = FrameHeader {
            fin,
            rsv,
            opcode,
            mask,
            len: payload.len() as u64,
        };
        let inline = !matches!((mask, shared), (None, Some(b)) if b.len() >= 4096);
        self.out
            .reserve(MAX_HEADER + if inline { payload.len() } else { 0 });
        write_header(&mut self.out.buf, &h);
        let mut n = 0;
        match shared.filter(|_| !inline) {
            Some(b) => {
                n += self.out.transmit_buf(self.conn);
                self.out.transmit(self.conn, b.clone());
                n += b.len();
            }
            None => {
                let start = self.out.buf.len();
                self.out.buf.extend_from_slice(payload);
                if let Some(k) = mask {
                    apply_mask(&mut self.out.buf[start..], k, 0);
                }
            }
        }
        n += self.out.transmit_buf(self.conn);
        self.budget.queued(n);
    }

    fn send_close(&mut self, code: Option<CloseCode>, reason: &str) {
        let mut p = [0u8; MAX_CONTROL];
        let len = match code {
            None => 0,
            Some(c) => {
                // Cut the reason at a character boundary within 123 bytes.
                let mut r = reason.len().min(MAX_CONTROL - 2);
                while !reason.is_char_boundary(r) {
                    r -= 1;
                }
                p[..2].copy_from_slice(&c.0.to_be_bytes());
                p[2..2 + r].copy_from_slice(&reason.as_bytes()[..r]);
                2 + r
            }
        };
        self.write_frame(true, 0, OpCode::Close, &p[..len], None);
    }

    /// Fails the connection (§7.1.7): a close frame with the error's code,
    /// then the TCP close.
    fn fail(&mut self, e: ProtocolError) {
        if self.state == State::Open {
            let reason = alloc::format!("{e}");
            self.send_close(Some(e.close_code()), &reason);
        }
        self.out.event(WsEvent::Violation(e));
        self.peer_close = None;
        self.close_tcp(Close::Graceful);
    }

    fn close_tcp(&mut self, how: Close) {
        if !matches!(self.state, State::Closing | State::Done) {
            self.state = State::Closing;
            self.out.close(self.conn, how);
        }
    }

    /// The close handshake is complete: the server closes TCP, the client
    /// waits for it to.
    fn handshake_done(&mut self) {
        match self.role {
            Role::Server => self.close_tcp(Close::Graceful),
            Role::Client => {
                self.state = State::AwaitEof {
                    deadline: self.deadline_after(self.cfg.close_timeout),
                }
            }
        }
    }

    // ----- reading -----

    fn reading(&self) -> bool {
        matches!(self.state, State::Open | State::CloseSent { .. })
    }

    /// Parses the unread input: whole messages by the fast path, one at a
    /// time, straight to the caller; anything else incrementally, until a
    /// frame ends with output queued. `None` when nothing was parsed out.
    fn parse_some(&mut self) -> Option<WsEvent> {
        if let Some(e) = self.next_whole() {
            return Some(e);
        }
        if !self.reading() {
            self.rx.clear();
        }
        if self.rx.is_empty() {
            return None;
        }
        self.scan_whole();
        if let Some(e) = self.next_whole() {
            return Some(e);
        }
        let rx = core::mem::take(&mut self.rx);
        let n = self.read(&rx, true);
        self.rx = rx;
        self.rx.advance(n.min(self.rx.len()));
        None
    }

    /// The next message found by [`scan_whole`](Self::scan_whole).
    #[inline(always)]
    fn next_whole(&mut self) -> Option<WsEvent> {
        let (kind, start, end) = self.whole.pop_front()?;
        let data = self
            .block
            .get(start..end)
            .map(|_| self.block.slice(start..end))?;
        if self.whole.is_empty() {
            // An idle connection keeps no block alive.
            self.block = Bytes::new();
        }
        Some(if self.cfg.streaming {
            WsEvent::Chunk {
                kind,
                data,
                first: true,
                last: true,
            }
        } else {
            WsEvent::Message { kind, data }
        })
    }

    /// Parses all the unread input, queueing what it gives (before an
    /// input or timeout that must come after it).
    fn parse_all(&mut self) {
        while !(self.rx.is_empty() && self.whole.is_empty()) {
            if let Some(e) = self.parse_some() {
                self.out.event(e);
            }
        }
    }

    /// Parses `bytes` incrementally; returns how many it took: all of them,
    /// or (with `stop`) fewer when a frame ended with output queued.
    fn read(&mut self, bytes: &[u8], stop: bool) -> usize {
        let mut i = 0;
        while i < bytes.len() && self.reading() {
            if stop && i > 0 && self.frame.is_none() && self.hdr_len == 0 && !self.out.is_empty() {
                break;
            }
            let rest = bytes.get(i..).unwrap_or_default();
            let Some(f) = self.frame else {
                // A header, maybe continuing one cut by the last chunk.
                let (parsed, old) = if self.hdr_len == 0 {
                    (parse_header(rest), 0)
                } else {
                    let take = (MAX_HEADER - self.hdr_len).min(rest.len());
                    self.hdr[self.hdr_len..self.hdr_len + take].copy_from_slice(&rest[..take]);
                    (parse_header(&self.hdr[..self.hdr_len + take]), self.hdr_len)
                };
                match parsed {
                    Ok(Some((h, n))) => {
                        i += n - old;
                        self.hdr_len = 0;
                        if let Err(e) = self.begin_frame(h) {
                            self.fail(e);
                        }
                    }
                    Ok(None) => {
                        // Fewer than MAX_HEADER bytes in all.
                        let take = rest.len().min(MAX_HEADER - old);
                        if old == 0 {
                            self.hdr[..take].copy_from_slice(&rest[..take]);
                        }
                        self.hdr_len = old + take;
                        i += take;
                    }
                    Err(e) => self.fail(e),
                }
                continue;
            };
            let n = usize::try_from(f.remaining)
                .unwrap_or(usize::MAX)
                .min(rest.len());
            if let Err(e) = self.payload(&rest[..n]) {
                self.fail(e);
                break;
            }
            i += n;
            if self.frame.is_some_and(|f| f.remaining == 0) {
                self.end_frame();
            }
        }
        self.flush_chunk(false);
        if self.reading() {
            i
        } else {
            bytes.len()
        }
    }

    /// The fast path: unfragmented, uncompressed data frames that lie
    /// whole at the front of the unread input, between messages, become
    /// messages without the incremental state. Their payloads are unmasked
    /// in place, the run of them is frozen as one block, and each message
    /// is a slice of it: per message a header parse, the unmask and one
    /// reference count. The first frame that does not qualify (cut, a
    /// control frame, a fragment, a violation, invalid UTF-8) ends the run
    /// and is left to the incremental path, which gives the same result.
    fn scan_whole(&mut self) {
        if self.frame.is_some() || self.msg.is_some() || self.hdr_len != 0 {
            return;
        }
        let mut pos = 0;
        while self.whole.len() < MAX_WHOLE {
            let rest = self.rx.get_mut(pos..).unwrap_or_default();
            // FIN, no RSV bits, text or binary.
            let kind = match rest.first() {
                Some(0x81) if !self.cfg.streaming => Kind::Text,
                Some(0x82) => Kind::Binary,
                _ => break,
            };
            let Ok(Some((h, n))) = parse_header(rest) else {
                break;
            };
            if h.mask.is_some() != (self.role == Role::Server)
                || h.len > self.cfg.max_frame.min(self.cfg.max_message) as u64
            {
                break;
            }
            let Some(end) = usize::try_from(h.len).ok().and_then(|l| n.checked_add(l)) else {
                break;
            };
            let Some(payload) = rest.get_mut(n..end) else {
                break;
            };
            if let Some(k) = h.mask {
                apply_mask(payload, k, 0);
            }
            if kind == Kind::Text && core::str::from_utf8(payload).is_err() {
                // Masked again, for the incremental path to find the
                // first bad byte.
                if let Some(k) = h.mask {
                    apply_mask(payload, k, 0);
                }
                break;
            }
            self.whole.push_back((kind, pos + n, pos + end));
            pos += end;
        }
        if pos > 0 {
            self.block = self.rx.split_to(pos).freeze();
        }
    }

    fn begin_frame(&mut self, h: FrameHeader) -> Result<(), ProtocolError> {
        match (self.role, h.mask.is_some()) {
            (Role::Server, false) => return Err(ProtocolError::Unmasked),
            (Role::Client, true) => return Err(ProtocolError::Masked),
            _ => {}
        }
        let allowed = if self.deflate.is_some() { RSV1 } else { 0 };
        if h.rsv & !allowed != 0 {
            return Err(ProtocolError::ReservedBits(h.rsv));
        }
        // permessage-deflate's bit belongs on a message's first frame only.
        if h.rsv & RSV1 != 0 && !matches!(h.opcode, OpCode::Text | OpCode::Binary) {
            return Err(ProtocolError::ReservedBits(h.rsv));
        }
        if h.len > self.cfg.max_frame as u64 {
            return Err(ProtocolError::FrameTooBig {
                len: h.len,
                max: self.cfg.max_frame,
            });
        }
        match h.opcode {
            OpCode::Continuation => {
                let Some(m) = &self.msg else {
                    return Err(ProtocolError::UnexpectedContinuation);
                };
                self.check_size(m, h.len)?;
            }
            OpCode::Text | OpCode::Binary => {
                if self.msg.is_some() {
                    return Err(ProtocolError::ExpectedContinuation);
                }
                let kind = if h.opcode == OpCode::Text {
                    Kind::Text
                } else {
                    Kind::Binary
                };
                let m = Msg {
                    kind,
                    compressed: h.rsv & RSV1 != 0,
                    len: 0,
                    first_sent: false,
                    utf8: Utf8Validator::new(),
                };
                self.check_size(&m, h.len)?;
                self.msg = Some(m);
            }
            OpCode::Close | OpCode::Ping | OpCode::Pong => self.ctrl.clear(),
        }
        if !h.opcode.is_control() && h.rsv & RSV1 == 0 {
            // Room for the frame's payload up front (not all of a huge
            // one: a header is only a promise), so it arrives without
            // reallocations.
            reserve_block(
                &mut self.data,
                usize::try_from(h.len).unwrap_or(usize::MAX).min(256 << 10),
            );
        }
        self.frame = Some(Frame {
            header: h,
            remaining: h.len,
            offset: 0,
        });
        if h.len == 0 {
            self.end_frame();
        }
        Ok(())
    }

    /// Uncompressed messages are refused at the header that would make
    /// them too big (compressed ones as they inflate).
    fn check_size(&self, m: &Msg, len: u64) -> Result<(), ProtocolError> {
        let max = self.cfg.max_message;
        if !m.compressed && (m.len as u64).saturating_add(len) > max as u64 {
            return Err(ProtocolError::MessageTooBig { max });
        }
        Ok(())
    }

    fn payload(&mut self, chunk: &[u8]) -> Result<(), ProtocolError> {
        let Some(f) = self.frame.as_mut() else {
            return Ok(());
        };
        let key = f.header.mask;
        let offset = f.offset;
        f.offset += chunk.len();
        f.remaining -= chunk.len() as u64;
        if f.header.opcode.is_control() {
            let start = self.ctrl.len();
            self.ctrl.extend_from_slice(chunk);
            if let Some(k) = key {
                apply_mask(&mut self.ctrl[start..], k, offset);
            }
            return Ok(());
        }
        let Some(m) = self.msg.as_mut() else {
            return Ok(());
        };
        let start = self.data.len();
        if m.compressed {
            let z = &mut self.scratch;
            z.clear();
            z.extend_from_slice(chunk);
            if let Some(k) = key {
                apply_mask(z, k, offset);
            }
            // The buffer holds `start` bytes of the `m.len` so far.
            let cap = start + self.cfg.max_message.saturating_sub(m.len);
            if let Some(d) = self.deflate.as_mut() {
                d.inflate(z, &mut self.data, cap)?;
            }
        } else {
            reserve_block(&mut self.data, chunk.len());
            self.data.extend_from_slice(chunk);
            if let Some(k) = key {
                apply_mask(&mut self.data[start..], k, offset);
            }
        }
        m.len += self.data.len() - start;
        if m.kind == Kind::Text {
            m.utf8
                .feed(&self.data[start..])
                .map_err(|()| ProtocolError::InvalidUtf8)?;
        }
        Ok(())
    }

    fn end_frame(&mut self) {
        let Some(f) = self.frame.take() else {
            return;
        };
        let h = f.header;
        let r = match h.opcode {
            OpCode::Close => self.on_close(),
            OpCode::Ping => {
                let p = self.ctrl.split().freeze();
                if self.cfg.auto_pong && self.state == State::Open {
                    self.write_frame(true, 0, OpCode::Pong, &p, None);
                }
                self.out.event(WsEvent::Ping(p));
                Ok(())
            }
            OpCode::Pong => {
                let p = self.ctrl.split().freeze();
                self.out.event(WsEvent::Pong(p));
                Ok(())
            }
            _ if h.fin => self.end_message(),
            _ => Ok(()),
        };
        if let Err(e) = r {
            self.fail(e);
        }
    }

    fn end_message(&mut self) -> Result<(), ProtocolError> {
        let Some(mut m) = self.msg.take() else {
            return Ok(());
        };
        if m.compressed {
            let start = self.data.len();
            let cap = start + self.cfg.max_message.saturating_sub(m.len);
            if let Some(d) = self.deflate.as_mut() {
                d.finish_message(&mut self.data, cap)?;
            }
            m.len += self.data.len() - start;
            if m.kind == Kind::Text {
                m.utf8
                    .feed(&self.data[start..])
                    .map_err(|()| ProtocolError::InvalidUtf8)?;
            }
        }
        if !m.utf8.is_complete() {
            return Err(ProtocolError::InvalidUtf8);
        }
        let data = self.data.split().freeze();
        if self.cfg.streaming {
            self.out.event(WsEvent::Chunk {
                kind: m.kind,
                data,
                first: !m.first_sent,
                last: true,
            });
        } else {
            self.out.event(WsEvent::Message { kind: m.kind, data });
        }
        Ok(())
    }

    /// Streaming: hands over what the current message has buffered.
    fn flush_chunk(&mut self, last: bool) {
        if !self.cfg.streaming || self.data.is_empty() {
            return;
        }
        if let Some(m) = self.msg.as_mut() {
            let data = self.data.split().freeze();
            let first = !m.first_sent;
            m.first_sent = true;
            self.out.event(WsEvent::Chunk {
                kind: m.kind,
                data,
                first,
                last,
            });
        }
    }

    fn on_close(&mut self) -> Result<(), ProtocolError> {
        let p = self.ctrl.split().freeze();
        let parsed = parse_close(&p)?;
        let (code, reason) = match parsed {
            Some((c, r)) => (Some(c), String::from(r)),
            None => (None, String::new()),
        };
        self.peer_close = Some((code.unwrap_or(CloseCode::NO_STATUS), reason.clone()));
        self.out.event(WsEvent::CloseReceived { code, reason });
        if self.state == State::Open {
            // Echo the code (§5.5.1).
            self.send_close(code, "");
        }
        self.handshake_done();
        Ok(())
    }

    fn finish(&mut self, clean: bool) {
        if self.state == State::Done {
            return;
        }
        self.state = State::Done;
        let (code, reason) = match (clean, self.peer_close.take()) {
            (true, Some(c)) => c,
            _ => (CloseCode::ABNORMAL, String::new()),
        };
        self.out.event(WsEvent::Closed {
            code,
            reason,
            clean,
        });
    }

    fn deadline(&self) -> Option<Instant> {
        match self.state {
            State::CloseSent { deadline } | State::AwaitEof { deadline } => Some(deadline),
            State::Open => match (self.ping_deadline, self.cfg.keepalive, self.last_rx) {
                (Some(d), _, _) => Some(d),
                (None, Some(k), Some(last)) => last.checked_add(k),
                _ => None,
            },
            State::Closing | State::Done => None,
        }
    }
}

/// Most messages the fast path finds in one run (bounds its list).
const MAX_WHOLE: usize = 256;

impl Machine for WebSocket {
    type Event = WsEvent;
    type Error = Error;

    fn handle_input(&mut self, now: Now, input: Input<'_>) -> Result<usize, Error> {
        self.now = now;
        if input.conn() != self.conn {
            return Ok(0);
        }
        if !matches!(input, Input::Data { .. }) {
            self.parse_all();
        }
        match input {
            Input::Data { bytes, .. } => {
                if !self.reading() {
                    // After the close handshake nothing more is read.
                    return Ok(bytes.len());
                }
                if self.budget.is_full() {
                    self.paused = true;
                    return Ok(0);
                }
                self.last_rx = Some(now.mono);
                self.ping_deadline = None;
                // Parsed in poll_output, so each message goes out as it is
                // parsed rather than all of them through the queue.
                self.parse_all();
                reserve_block(&mut self.rx, bytes.len());
                self.rx.extend_from_slice(bytes);
                Ok(bytes.len())
            }
            Input::Sent { bytes, .. } => {
                // The hand-over's 101 is reported here too: saturating.
                self.budget.sent(bytes);
                if self.paused && self.budget.has_room() {
                    self.paused = false;
                    self.out.push(Output::Resume { conn: self.conn });
                    self.out.event(WsEvent::Writable);
                }
                Ok(0)
            }
            Input::Eof { .. } => {
                match self.state {
                    State::AwaitEof { .. } => {
                        self.close_tcp(Close::Graceful);
                    }
                    State::Open | State::CloseSent { .. } => {
                        self.peer_close = None;
                        self.close_tcp(Close::Graceful);
                    }
                    State::Closing | State::Done => {}
                }
                Ok(0)
            }
            Input::Closed { .. } => {
                let clean = self.peer_close.is_some();
                self.finish(clean);
                Ok(0)
            }
            _ => Ok(0),
        }
    }

    fn handle_timeout(&mut self, now: Now) {
        self.parse_all();
        self.now = now;
        match self.state {
            State::CloseSent { deadline } | State::AwaitEof { deadline }
                if now.mono >= deadline =>
            {
                // A client that got the close handshake but no TCP close
                // still counts the handshake as done.
                if matches!(self.state, State::CloseSent { .. }) {
                    self.peer_close = None;
                }
                self.close_tcp(Close::Abort);
            }
            State::Open => {
                if self.ping_deadline.is_some_and(|d| now.mono >= d) {
                    self.ping_deadline = None;
                    self.fail(ProtocolError::KeepaliveTimeout);
                } else if let (None, Some(k), Some(last)) =
                    (self.ping_deadline, self.cfg.keepalive, self.last_rx)
                {
                    if last.checked_add(k).is_some_and(|t| now.mono >= t) {
                        self.write_frame(true, 0, OpCode::Ping, b"twill", None);
                        self.ping_deadline = Some(self.deadline_after(self.cfg.keepalive_timeout));
                    }
                }
            }
            _ => {}
        }
        if self.cfg.keepalive.is_some() && self.last_rx.is_none() {
            // The timer starts at the first input or timeout we see.
            self.last_rx = Some(now.mono);
        }
    }

    fn poll_output(&mut self) -> Output<WsEvent> {
        if self.out.is_empty() {
            if let Some(e) = self.next_whole() {
                return Output::Event(e);
            }
        }
        while self.out.is_empty() && !(self.rx.is_empty() && self.whole.is_empty()) {
            if let Some(e) = self.parse_some() {
                return Output::Event(e);
            }
        }
        if self.out.is_empty() && self.rx.is_empty() && self.rx.capacity() > BLOCK {
            // Drained: an idle connection keeps no large read buffer.
            self.rx = BytesMut::new();
        }
        let d = self.deadline();
        self.out.pop_or_wait(d)
    }
}
