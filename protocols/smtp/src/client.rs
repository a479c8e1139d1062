//! The SMTP client machine: one connection to a server.
//!
//! The session: greeting → EHLO (HELO if the server refuses EHLO) →
//! STARTTLS when offered and wanted (EHLO again under TLS) → AUTH PLAIN or
//! LOGIN when credentials are given → [`ClientEvent::Ready`]. Then each
//! [`Client::send_mail`] envelope goes out — MAIL, RCPT…, DATA in one write
//! when the server offers PIPELINING, one command at a time otherwise —
//! and ends with [`ClientEvent::Sent`] carrying every reply: the sender's,
//! one per recipient, and the data's. [`Client::quit`] ends the session
//! after the queued envelopes.
//!
//! Every reply the machine waits for is an entry of one queue of
//! expectations ([`Expect`]), so pipelined and lock-step sessions share
//! one code path: a reply pops the front and is handled by its kind.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use bytes::Bytes;
use core::fmt;

use twill_core::{
    Close, ConnId, Duration, Input, Instant, Machine, Now, Open, OutQueue, Output, Role,
};

use crate::codec::dot::stuff;
use crate::codec::reply::{Reply, ReplyParser};
use crate::codec::sasl::{encode_b64, encode_plain};
use crate::error::{Error, Violation};
use twill_core::line::{LineReader, Next};

/// When to use STARTTLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartTls {
    /// Never (plain text, or TLS from the first byte by a `tls:` layer).
    Never,
    /// When the server offers it.
    IfOffered,
    /// Always; fail if the server does not offer it.
    Required,
}

/// Settings of a client machine.
#[derive(Clone)]
pub struct ClientConfig {
    /// The name we give in EHLO/HELO.
    pub helo_name: String,
    /// STARTTLS policy (the machine must run inside the TLS layer with a
    /// client configuration to use it).
    pub starttls: StartTls,
    /// The server's name for TLS verification (SNI).
    pub server_name: Option<String>,
    /// Credentials for AUTH (PLAIN, else LOGIN).
    pub auth: Option<(String, Vec<u8>)>,
    /// Wait this long for each reply (RFC 5321 §4.5.3.2: 5 minutes for
    /// most commands).
    pub reply_timeout: Duration,
    /// Wait this long for the reply to the end of data (§4.5.3.2.6: 10
    /// minutes).
    pub data_timeout: Duration,
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("helo_name", &self.helo_name)
            .field("starttls", &self.starttls)
            .field("server_name", &self.server_name)
            .field("auth_user", &self.auth.as_ref().map(|a| &a.0))
            .finish_non_exhaustive()
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            helo_name: "localhost".into(),
            starttls: StartTls::IfOffered,
            server_name: None,
            auth: None,
            reply_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(600),
        }
    }
}

/// One message to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The reverse path (empty for `<>`).
    pub from: String,
    /// The recipients.
    pub to: Vec<String>,
    /// The message (headers and body), CRLF line endings; dot-stuffed by
    /// the machine.
    pub data: Bytes,
}

/// The server's answer to one recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RcptResult {
    /// The recipient.
    pub to: String,
    /// The server's reply.
    pub reply: Reply,
}

/// Everything the server said about one envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendResult {
    /// The reply to MAIL (or a local refusal).
    pub from: Reply,
    /// One reply per recipient, in order (empty if MAIL failed in
    /// lock-step mode).
    pub recipients: Vec<RcptResult>,
    /// The reply to the end of data (`None` if the data was never sent).
    pub data: Option<Reply>,
}

impl SendResult {
    /// Whether the server took the message (for the accepted recipients).
    pub fn delivered(&self) -> bool {
        self.data.as_ref().is_some_and(Reply::is_positive)
    }

    /// The recipients the server accepted.
    pub fn accepted(&self) -> impl Iterator<Item = &str> {
        self.recipients
            .iter()
            .filter(|r| r.reply.is_positive())
            .map(|r| r.to.as_str())
    }
}

/// Why a session failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// The greeting was not 220.
    Greeting(Reply),
    /// Neither EHLO nor HELO was accepted.
    Hello(Reply),
    /// STARTTLS is required but not offered or refused.
    TlsUnavailable,
    /// The TLS handshake failed.
    Tls(String),
    /// AUTH is wanted but neither PLAIN nor LOGIN is offered.
    AuthUnavailable,
    /// The server refused the credentials.
    Auth(Reply),
    /// No reply in time.
    Timeout,
    /// The server broke the protocol.
    Protocol(Violation),
    /// The connection closed early.
    Closed,
}

/// What the client tells the application.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The session is set up; envelopes go out.
    Ready {
        /// The EHLO keywords (empty after HELO).
        extensions: Vec<String>,
        /// Whether the session is under TLS.
        secured: bool,
        /// Whether AUTH succeeded.
        authenticated: bool,
    },
    /// An envelope is done.
    Sent(SendResult),
    /// The session failed; the connection is closing. Envelopes not yet
    /// sent are dropped.
    Failed(Failure),
    /// The connection is gone.
    Closed,
}

/// What each awaited reply answers.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Expect {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    Auth,
    AuthLoginUser,
    AuthLoginPass,
    Mail,
    Rcpt(usize),
    Data,
    DataEnd,
    Rset,
    Quit,
}

#[derive(Debug)]
struct Tx {
    env: Envelope,
    from: Option<Reply>,
    rcpts: Vec<RcptResult>,
    pipelined: bool,
}

/// The SMTP client machine.
pub struct Client {
    config: ClientConfig,
    out: OutQueue<ClientEvent>,
    conn: Option<ConnId>,
    expect: VecDeque<Expect>,
    parser: ReplyParser,
    reader: LineReader,
    extensions: Vec<String>,
    esmtp: bool,
    secured: bool,
    tls_pending: bool,
    authenticated: bool,
    ready: bool,
    queue: VecDeque<Envelope>,
    tx: Option<Tx>,
    quit: bool,
    done: bool,
    now: Now,
    last: Instant,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("conn", &self.conn)
            .field("expect", &self.expect)
            .finish_non_exhaustive()
    }
}

/// The most bytes of one reply line.
const MAX_REPLY_LINE: usize = 8192;

impl Client {
    // ----- construction and getters -----

    /// A client; the session starts when the connection opens.
    pub fn new(config: ClientConfig) -> Self {
        Client {
            config,
            out: OutQueue::new(),
            conn: None,
            expect: VecDeque::new(),
            parser: ReplyParser::new(),
            reader: LineReader::new(MAX_REPLY_LINE),
            extensions: Vec::new(),
            esmtp: false,
            secured: false,
            tls_pending: false,
            authenticated: false,
            ready: false,
            queue: VecDeque::new(),
            tx: None,
            quit: false,
            done: false,
            now: Now::default(),
            last: Instant::ZERO,
        }
    }

    /// Whether the server offers the EHLO keyword `ext` (case-insensitive).
    pub fn offers(&self, ext: &str) -> bool {
        self.extension(ext).is_some()
    }

    /// The parameters of EHLO keyword `ext`, if offered.
    pub fn extension(&self, ext: &str) -> Option<&str> {
        self.extensions.iter().find_map(|e| {
            let (k, v) = e.split_once(' ').unwrap_or((e.as_str(), ""));
            k.eq_ignore_ascii_case(ext).then_some(v)
        })
    }

    /// Whether the session is under TLS.
    pub fn is_secured(&self) -> bool {
        self.secured
    }

    // ----- commands -----

    /// Queues a message; it goes out once the session is ready and the
    /// envelopes before it are done.
    pub fn send_mail(&mut self, envelope: Envelope) -> Result<(), Error> {
        if self.quit || self.done {
            return Err(Error::Busy);
        }
        let bad = |s: &str| {
            s.bytes()
                .any(|b| b == b'\r' || b == b'\n' || b == b'<' || b == b'>')
        };
        if bad(&envelope.from) || envelope.to.is_empty() || envelope.to.iter().any(|t| bad(t)) {
            return Err(Error::InvalidArgument);
        }
        self.queue.push_back(envelope);
        self.pump();
        Ok(())
    }

    /// Sends QUIT once the queued envelopes are done.
    pub fn quit(&mut self) {
        self.quit = true;
        self.pump();
    }

    // ----- internals -----

    fn cmd(&mut self, line: &str, expect: Expect) {
        self.out.buf.extend_from_slice(line.as_bytes());
        self.out.buf.extend_from_slice(b"\r\n");
        self.expect.push_back(expect);
    }

    fn flush(&mut self) {
        if let Some(c) = self.conn {
            self.out.transmit_buf(c);
        }
        self.last = self.now.mono;
    }

    fn fail(&mut self, f: Failure) {
        self.fail_with(f, Close::Graceful);
    }

    fn fail_with(&mut self, f: Failure, how: Close) {
        if self.done {
            return;
        }
        self.done = true;
        self.queue.clear();
        self.expect.clear();
        self.out.event(ClientEvent::Failed(f));
        if let Some(c) = self.conn {
            self.out.close(c, how);
        }
    }

    fn ehlo(&mut self) {
        let l = alloc::format!("EHLO {}", self.config.helo_name);
        self.cmd(&l, Expect::Ehlo);
        self.flush();
    }

    /// After a successful EHLO/HELO: TLS, then AUTH, then ready.
    fn after_hello(&mut self) {
        if !self.secured && self.config.starttls != StartTls::Never && self.offers("STARTTLS") {
            self.cmd("STARTTLS", Expect::StartTls);
            return self.flush();
        }
        if !self.secured && self.config.starttls == StartTls::Required {
            return self.fail(Failure::TlsUnavailable);
        }
        if let Some((user, pass)) = self.config.auth.clone() {
            if !self.authenticated {
                let mechs = self.extension("AUTH").unwrap_or("").to_ascii_uppercase();
                let has = |m: &str| mechs.split(' ').any(|x| x == m);
                if has("PLAIN") {
                    let l = alloc::format!("AUTH PLAIN {}", encode_plain(&user, &pass));
                    self.cmd(&l, Expect::Auth);
                } else if has("LOGIN") {
                    self.cmd("AUTH LOGIN", Expect::AuthLoginUser);
                } else {
                    return self.fail(Failure::AuthUnavailable);
                }
                return self.flush();
            }
        }
        self.ready = true;
        self.out.event(ClientEvent::Ready {
            extensions: self.extensions.clone(),
            secured: self.secured,
            authenticated: self.authenticated,
        });
        self.pump();
    }

    /// Starts the next envelope, or QUIT, when idle.
    fn pump(&mut self) {
        if !self.ready || self.done || self.tx.is_some() || !self.expect.is_empty() {
            return;
        }
        let Some(env) = self.queue.pop_front() else {
            if self.quit {
                self.cmd("QUIT", Expect::Quit);
                self.flush();
                self.done = true;
            }
            return;
        };
        if let Some(max) = self
            .extension("SIZE")
            .and_then(|s| s.trim().parse::<u64>().ok())
        {
            if max > 0 && env.data.len() as u64 > max {
                let refusal = Reply {
                    code: 552,
                    lines: alloc::vec![String::from("message larger than the server's SIZE")],
                };
                self.out.event(ClientEvent::Sent(SendResult {
                    from: refusal,
                    recipients: Vec::new(),
                    data: None,
                }));
                return self.pump();
            }
        }
        let mut mail = alloc::format!("MAIL FROM:<{}>", env.from);
        if self.offers("SIZE") {
            mail.push_str(&alloc::format!(" SIZE={}", env.data.len()));
        }
        if self.offers("8BITMIME") && env.data.iter().any(|b| *b >= 0x80) {
            mail.push_str(" BODY=8BITMIME");
        }
        let utf8 = !env.from.is_ascii() || env.to.iter().any(|t| !t.is_ascii());
        if utf8 && self.offers("SMTPUTF8") {
            mail.push_str(" SMTPUTF8");
        }
        let pipelined = self.offers("PIPELINING");
        self.cmd(&mail, Expect::Mail);
        if pipelined {
            for (i, t) in env.to.iter().enumerate() {
                let l = alloc::format!("RCPT TO:<{t}>");
                self.cmd(&l, Expect::Rcpt(i));
            }
            self.cmd("DATA", Expect::Data);
        }
        self.tx = Some(Tx {
            env,
            from: None,
            rcpts: Vec::new(),
            pipelined,
        });
        self.flush();
    }

    fn finish_tx(&mut self, data: Option<Reply>) {
        if let Some(tx) = self.tx.take() {
            self.out.event(ClientEvent::Sent(SendResult {
                from: tx.from.unwrap_or(Reply {
                    code: 0,
                    lines: Vec::new(),
                }),
                recipients: tx.rcpts,
                data,
            }));
        }
    }

    fn reply(&mut self, r: Reply) {
        let Some(exp) = self.expect.pop_front() else {
            // An unsolicited reply: 421 is the server closing; anything
            // else is a protocol error.
            if r.code == 421 {
                return self.fail(Failure::Closed);
            }
            return self.fail(Failure::Protocol(Violation::BadReply));
        };
        match exp {
            Expect::Greeting => {
                if r.code == 220 {
                    self.ehlo();
                } else {
                    self.fail(Failure::Greeting(r));
                }
            }
            Expect::Ehlo => {
                if r.code == 250 {
                    self.esmtp = true;
                    self.extensions = r.lines.iter().skip(1).cloned().collect();
                    self.after_hello();
                } else if (500..600).contains(&r.code) {
                    let l = alloc::format!("HELO {}", self.config.helo_name);
                    self.cmd(&l, Expect::Helo);
                    self.flush();
                } else {
                    self.fail(Failure::Hello(r));
                }
            }
            Expect::Helo => {
                if r.code == 250 {
                    self.extensions.clear();
                    self.after_hello();
                } else {
                    self.fail(Failure::Hello(r));
                }
            }
            Expect::StartTls => {
                if r.code == 220 {
                    if let Some(conn) = self.conn {
                        self.tls_pending = true;
                        self.out.push(Output::Open {
                            conn,
                            how: Open::StartTls {
                                role: Role::Client,
                                server_name: self.config.server_name.clone(),
                                resume_from: None,
                            },
                        });
                    }
                } else if self.config.starttls == StartTls::Required {
                    self.fail(Failure::TlsUnavailable);
                } else {
                    // Offered but refused: carry on in the clear.
                    self.extensions
                        .retain(|e| !e.eq_ignore_ascii_case("STARTTLS"));
                    self.after_hello();
                }
            }
            Expect::Auth => {
                if r.code == 235 {
                    self.authenticated = true;
                    self.after_hello();
                } else if r.code == 334 {
                    // A server that wants the PLAIN response after an empty
                    // challenge.
                    if let Some((u, p)) = self.config.auth.clone() {
                        let l = encode_plain(&u, &p);
                        self.cmd(&l, Expect::Auth);
                        self.flush();
                    }
                } else {
                    self.fail(Failure::Auth(r));
                }
            }
            Expect::AuthLoginUser | Expect::AuthLoginPass => {
                let Some((u, p)) = self.config.auth.clone() else {
                    return self.fail(Failure::AuthUnavailable);
                };
                if r.code != 334 {
                    return self.fail(Failure::Auth(r));
                }
                if exp == Expect::AuthLoginUser {
                    let l = encode_b64(u.as_bytes());
                    self.cmd(&l, Expect::AuthLoginPass);
                } else {
                    let l = encode_b64(&p);
                    self.cmd(&l, Expect::Auth);
                }
                self.flush();
            }
            Expect::Mail => {
                let ok = r.is_positive();
                let Some(tx) = self.tx.as_mut() else { return };
                tx.from = Some(r);
                if tx.pipelined {
                    return;
                }
                if ok {
                    let l = alloc::format!("RCPT TO:<{}>", tx.env.to[0]);
                    self.cmd(&l, Expect::Rcpt(0));
                } else {
                    self.finish_tx(None);
                    self.cmd("RSET", Expect::Rset);
                }
                self.flush();
            }
            Expect::Rcpt(i) => {
                let Some(tx) = self.tx.as_mut() else { return };
                let to = tx.env.to.get(i).cloned().unwrap_or_default();
                tx.rcpts.push(RcptResult { to, reply: r });
                if tx.pipelined {
                    return;
                }
                if let Some(next) = tx.env.to.get(i + 1) {
                    let l = alloc::format!("RCPT TO:<{next}>");
                    self.cmd(&l, Expect::Rcpt(i + 1));
                } else if tx.rcpts.iter().any(|r| r.reply.is_positive()) {
                    self.cmd("DATA", Expect::Data);
                } else {
                    self.finish_tx(None);
                    self.cmd("RSET", Expect::Rset);
                }
                self.flush();
            }
            Expect::Data => {
                let Some(tx) = self.tx.as_ref() else { return };
                let any = tx.from.as_ref().is_some_and(Reply::is_positive)
                    && tx.rcpts.iter().any(|r| r.reply.is_positive());
                if r.code == 354 {
                    if any {
                        let data = tx.env.data.clone();
                        stuff(&data, &mut self.out.buf);
                        self.expect.push_back(Expect::DataEnd);
                    } else {
                        // RFC 2920 §3.1: DATA accepted with no valid
                        // recipient — send an empty message's end, then
                        // RSET the transaction.
                        self.out.buf.extend_from_slice(b".\r\n");
                        self.expect.push_back(Expect::Rset);
                        self.finish_tx(None);
                    }
                    self.flush();
                } else {
                    self.finish_tx(None);
                    if self.expect.is_empty() {
                        self.pump();
                    }
                }
            }
            Expect::DataEnd => {
                self.finish_tx(Some(r));
                self.pump();
            }
            Expect::Rset => self.pump(),
            Expect::Quit => {
                if let Some(c) = self.conn {
                    self.out.close(c, Close::Graceful);
                }
            }
        }
    }

    fn data(&mut self, bytes: &[u8]) -> usize {
        self.last = self.now.mono;
        if self.tls_pending {
            // Nothing is read between our STARTTLS and the handshake.
            return 0;
        }
        let mut i = 0;
        while i < bytes.len() && !self.tls_pending {
            let (n, next) = self.reader.next(&bytes[i..]);
            i += n;
            let line = match next {
                Next::Line(l) => l,
                Next::Partial => break,
                Next::TooLong => {
                    self.fail(Failure::Protocol(Violation::BadReply));
                    return bytes.len();
                }
            };
            let parsed = self.parser.line(&line);
            self.reader.recycle(line);
            match parsed {
                Ok(Some(r)) => {
                    if !self.done || matches!(self.expect.front(), Some(Expect::Quit)) {
                        self.reply(r);
                    }
                }
                Ok(None) => {}
                Err(_) => {
                    self.fail(Failure::Protocol(Violation::BadReply));
                    return bytes.len();
                }
            }
        }
        i
    }

    fn deadline(&self) -> Option<Instant> {
        let front = self.expect.front()?;
        let t = if *front == Expect::DataEnd {
            self.config.data_timeout
        } else {
            self.config.reply_timeout
        };
        self.last.checked_add(t)
    }
}

impl Machine for Client {
    type Event = ClientEvent;
    type Error = Error;

    fn handle_input(&mut self, now: Now, input: Input<'_>) -> Result<usize, Error> {
        self.now = now;
        match input {
            Input::Opened { conn, .. } | Input::Accepted { conn, .. } if self.conn.is_none() => {
                self.conn = Some(conn);
                self.last = now.mono;
                self.expect.push_back(Expect::Greeting);
            }
            Input::Data { conn, bytes } if Some(conn) == self.conn => {
                return Ok(self.data(bytes));
            }
            Input::Secured { conn, .. } if Some(conn) == self.conn && self.tls_pending => {
                // RFC 3207 §4.2: forget what the server said before TLS.
                self.tls_pending = false;
                self.secured = true;
                self.extensions.clear();
                self.last = now.mono;
                self.ehlo();
                self.out.push(Output::Resume { conn });
            }
            Input::OpenFailed { conn, error } if Some(conn) == self.conn && self.tls_pending => {
                self.tls_pending = false;
                self.fail(Failure::Tls(alloc::format!("{error}")));
            }
            Input::Eof { conn, .. } if Some(conn) == self.conn => {
                if !self.expect.is_empty() && !matches!(self.expect.front(), Some(Expect::Quit)) {
                    self.fail(Failure::Closed);
                } else {
                    self.out.close(conn, Close::Graceful);
                }
            }
            Input::Closed { conn } if Some(conn) == self.conn => {
                if !self.done && !self.expect.is_empty() {
                    self.done = true;
                    self.out.event(ClientEvent::Failed(Failure::Closed));
                }
                self.conn = None;
                self.out.event(ClientEvent::Closed);
            }
            _ => {}
        }
        Ok(0)
    }

    fn handle_timeout(&mut self, now: Now) {
        self.now = now;
        if self.deadline().is_some_and(|d| now.mono >= d) {
            self.fail_with(Failure::Timeout, Close::Abort);
        }
    }

    fn poll_output(&mut self) -> Output<ClientEvent> {
        let d = if self.done { None } else { self.deadline() };
        self.out.pop_or_wait(d)
    }
}
