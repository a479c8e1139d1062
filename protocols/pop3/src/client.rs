//! The POP3 client machine: one connection to a server.
//!
//! The session: greeting → CAPA → STLS when offered and wanted (CAPA again
//! under TLS) → USER/PASS (or APOP when asked and the greeting has a
//! timestamp) → [`ClientEvent::Ready`]. Commands ([`Client::stat`],
//! [`Client::retr`] …) return a [`RequestId`]; each is answered by one
//! [`ClientEvent::Response`], multi-line bodies dot-unstuffed (the same
//! incremental [`Unstuffer`] as SMTP's DATA, so the terminating line is
//! found however the bytes are split). Commands go out together when the
//! server offers PIPELINING (RFC 2449 §6.6), one at a time otherwise.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};
use core::fmt;

use twill_core::dot::Unstuffer;
use twill_core::line::{LineReader, Next};
use twill_core::{
    Close, ConnId, Duration, Input, Instant, Machine, Now, Open, OutQueue, Output, Role,
};

use crate::codec::{apop_digest, parse_status, Status};
use crate::error::{Error, Violation};

/// Settings of a client machine.
#[derive(Clone)]
pub struct ClientConfig {
    /// The mailbox name.
    pub user: String,
    /// The password (or the APOP secret).
    pub password: Vec<u8>,
    /// Log in with APOP when the greeting offers a timestamp.
    pub apop: bool,
    /// Use STLS when offered (the machine must run inside the TLS layer).
    pub stls: bool,
    /// Fail unless the session is under TLS before logging in.
    pub require_tls: bool,
    /// The server's name for TLS verification.
    pub server_name: Option<String>,
    /// Wait this long for each response.
    pub timeout: Duration,
    /// The largest multi-line response accepted.
    pub max_body: usize,
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("user", &self.user)
            .field("apop", &self.apop)
            .field("stls", &self.stls)
            .finish_non_exhaustive()
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            user: String::new(),
            password: Vec::new(),
            apop: false,
            stls: true,
            require_tls: false,
            server_name: None,
            timeout: Duration::from_secs(600),
            max_body: 64 * 1024 * 1024,
        }
    }
}

/// Names one command's response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// One response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// `+OK` (true) or `-ERR`.
    pub ok: bool,
    /// The text after the status.
    pub text: String,
    /// The lines of a multi-line response, dot-unstuffed, with their CRLFs.
    pub body: Option<Bytes>,
}

impl Response {
    /// `count size` of a STAT response, or of `LIST n` / `+OK n octets`.
    pub fn numbers(&self) -> Option<(u64, u64)> {
        let mut it = self.text.split(' ');
        let a = it.next()?.parse().ok()?;
        let b = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        Some((a, b))
    }

    /// `n value` lines of a LIST or UIDL listing.
    pub fn listing(&self) -> Vec<(u32, String)> {
        let body = self.body.as_deref().unwrap_or(&[]);
        body.split(|b| *b == b'\n')
            .filter_map(|l| {
                let l = core::str::from_utf8(l).ok()?.trim_end_matches('\r');
                let (n, v) = l.split_once(' ')?;
                Some((n.parse().ok()?, String::from(v)))
            })
            .collect()
    }
}

/// Why a session failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// The greeting was not `+OK`.
    Greeting(String),
    /// TLS is required and STLS was not offered or failed.
    TlsUnavailable,
    /// The TLS handshake failed.
    Tls(String),
    /// The login was refused (the server's text, e.g. `[AUTH] …`).
    Login(String),
    /// No response in time.
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
    /// Logged in; the maildrop is ours.
    Ready {
        /// The CAPA lines.
        capabilities: Vec<String>,
        /// Whether the session is under TLS.
        secured: bool,
    },
    /// The answer to a command.
    Response {
        /// Which command.
        id: RequestId,
        /// The answer.
        response: Response,
    },
    /// The session failed; the connection is closing.
    Failed(Failure),
    /// The connection is gone.
    Closed,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Expect {
    Greeting,
    Capa,
    Stls,
    User,
    Pass,
    Apop,
    Cmd { id: RequestId, multi: bool },
    Quit,
}

enum Reading {
    Status,
    Body {
        unstuffer: Unstuffer,
        body: BytesMut,
        text: String,
        id: Option<RequestId>,
        over: bool,
    },
}

/// The POP3 client machine.
pub struct Client {
    config: ClientConfig,
    out: OutQueue<ClientEvent>,
    conn: Option<ConnId>,
    expect: VecDeque<Expect>,
    waiting: VecDeque<(String, Expect)>,
    reading: Reading,
    reader: LineReader,
    capabilities: Vec<String>,
    timestamp: Option<String>,
    secured: bool,
    tls_pending: bool,
    ready: bool,
    done: bool,
    next_id: u64,
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

const MAX_LINE: usize = 8192;

impl Client {
    // ----- construction and getters -----

    /// A client; the session starts when the connection opens.
    pub fn new(config: ClientConfig) -> Self {
        Client {
            config,
            out: OutQueue::new(),
            conn: None,
            expect: VecDeque::new(),
            waiting: VecDeque::new(),
            reading: Reading::Status,
            reader: LineReader::new(MAX_LINE),
            capabilities: Vec::new(),
            timestamp: None,
            secured: false,
            tls_pending: false,
            ready: false,
            done: false,
            next_id: 0,
            now: Now::default(),
            last: Instant::ZERO,
        }
    }

    /// Whether the server listed `cap` in CAPA.
    pub fn offers(&self, cap: &str) -> bool {
        self.capabilities.iter().any(|c| {
            c.split(' ')
                .next()
                .is_some_and(|k| k.eq_ignore_ascii_case(cap))
        })
    }

    // ----- commands -----

    /// STAT.
    pub fn stat(&mut self) -> Result<RequestId, Error> {
        self.command(String::from("STAT"), false)
    }

    /// LIST (all messages).
    pub fn list(&mut self) -> Result<RequestId, Error> {
        self.command(String::from("LIST"), true)
    }

    /// UIDL (all messages).
    pub fn uidl(&mut self) -> Result<RequestId, Error> {
        self.command(String::from("UIDL"), true)
    }

    /// RETR n.
    pub fn retr(&mut self, n: u32) -> Result<RequestId, Error> {
        self.command(alloc::format!("RETR {n}"), true)
    }

    /// TOP n lines.
    pub fn top(&mut self, n: u32, lines: u32) -> Result<RequestId, Error> {
        self.command(alloc::format!("TOP {n} {lines}"), true)
    }

    /// DELE n.
    pub fn dele(&mut self, n: u32) -> Result<RequestId, Error> {
        self.command(alloc::format!("DELE {n}"), false)
    }

    /// RSET.
    pub fn rset(&mut self) -> Result<RequestId, Error> {
        self.command(String::from("RSET"), false)
    }

    /// NOOP.
    pub fn noop(&mut self) -> Result<RequestId, Error> {
        self.command(String::from("NOOP"), false)
    }

    /// QUIT after the queued commands: the server removes the messages
    /// marked with DELE, then closes.
    pub fn quit(&mut self) {
        if !self.done {
            self.waiting.push_back((String::from("QUIT"), Expect::Quit));
            self.done = true;
            self.pump();
        }
    }

    fn command(&mut self, line: String, multi: bool) -> Result<RequestId, Error> {
        if self.done {
            return Err(Error::Busy);
        }
        self.next_id += 1;
        let id = RequestId(self.next_id);
        self.waiting.push_back((line, Expect::Cmd { id, multi }));
        self.pump();
        Ok(id)
    }

    // ----- internals -----

    fn send(&mut self, line: &str, e: Expect) {
        self.out.buf.extend_from_slice(line.as_bytes());
        self.out.buf.extend_from_slice(b"\r\n");
        self.expect.push_back(e);
        if let Some(c) = self.conn {
            self.out.transmit_buf(c);
        }
        self.last = self.now.mono;
    }

    /// Sends waiting commands: all of them with PIPELINING, else one
    /// when nothing is outstanding.
    fn pump(&mut self) {
        if !self.ready {
            return;
        }
        let pipelining = self.offers("PIPELINING");
        while (pipelining || self.expect.is_empty()) && !self.waiting.is_empty() {
            if let Some((line, e)) = self.waiting.pop_front() {
                self.send(&line, e);
            }
        }
    }

    fn fail(&mut self, f: Failure) {
        let already = self.done && self.expect.is_empty() && self.waiting.is_empty();
        self.done = true;
        self.expect.clear();
        self.waiting.clear();
        if !already {
            self.out.event(ClientEvent::Failed(f));
        }
        if let Some(c) = self.conn {
            self.out.close(c, Close::Graceful);
        }
    }

    fn login(&mut self) {
        if self.config.require_tls && !self.secured {
            return self.fail(Failure::TlsUnavailable);
        }
        if self.config.apop {
            if let Some(ts) = &self.timestamp {
                let d = apop_digest(ts, &self.config.password);
                let l = alloc::format!("APOP {} {d}", self.config.user);
                return self.send(&l, Expect::Apop);
            }
        }
        let l = alloc::format!("USER {}", self.config.user);
        self.send(&l, Expect::User);
    }

    fn status(&mut self, line: &[u8]) {
        let Some(st) = parse_status(line) else {
            return self.fail(Failure::Protocol(Violation::BadResponse));
        };
        let Some(e) = self.expect.pop_front() else {
            return self.fail(Failure::Protocol(Violation::BadResponse));
        };
        let (ok, text) = match st {
            Status::Ok(t) => (true, String::from(t)),
            Status::Err(t) => (false, String::from(t)),
            Status::Continue(_) => return self.fail(Failure::Protocol(Violation::BadResponse)),
        };
        match e {
            Expect::Greeting => {
                if !ok {
                    return self.fail(Failure::Greeting(text));
                }
                self.timestamp = text.find('<').and_then(|a| {
                    let b = text[a..].find('>')?;
                    Some(String::from(&text[a..=a + b]))
                });
                self.send("CAPA", Expect::Capa);
            }
            Expect::Capa => {
                if ok {
                    self.start_body(text, None);
                } else {
                    self.after_capa();
                }
            }
            Expect::Stls => {
                if ok {
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
                } else if self.config.require_tls {
                    self.fail(Failure::TlsUnavailable);
                } else {
                    self.login();
                }
            }
            Expect::User => {
                if ok {
                    let mut l = String::from("PASS ");
                    l.push_str(&String::from_utf8_lossy(&self.config.password));
                    self.send(&l, Expect::Pass);
                } else {
                    self.fail(Failure::Login(text));
                }
            }
            Expect::Pass | Expect::Apop => {
                if ok {
                    self.ready = true;
                    self.out.event(ClientEvent::Ready {
                        capabilities: self.capabilities.clone(),
                        secured: self.secured,
                    });
                    self.pump();
                } else {
                    self.fail(Failure::Login(text));
                }
            }
            Expect::Cmd { id, multi } => {
                if ok && multi {
                    self.start_body(text, Some(id));
                } else {
                    self.out.event(ClientEvent::Response {
                        id,
                        response: Response {
                            ok,
                            text,
                            body: None,
                        },
                    });
                    self.pump();
                }
            }
            Expect::Quit => {
                if let Some(c) = self.conn {
                    self.out.close(c, Close::Graceful);
                }
            }
        }
    }

    fn start_body(&mut self, text: String, id: Option<RequestId>) {
        self.reading = Reading::Body {
            unstuffer: Unstuffer::new(usize::MAX),
            body: BytesMut::new(),
            text,
            id,
            over: false,
        };
    }

    fn end_body(&mut self, text: String, body: Bytes, id: Option<RequestId>) {
        match id {
            None => {
                // CAPA.
                self.capabilities = body
                    .split(|b| *b == b'\n')
                    .filter_map(|l| core::str::from_utf8(l).ok())
                    .map(|l| String::from(l.trim_end_matches('\r')))
                    .filter(|l| !l.is_empty())
                    .collect();
                self.after_capa();
            }
            Some(id) => {
                self.out.event(ClientEvent::Response {
                    id,
                    response: Response {
                        ok: true,
                        text,
                        body: Some(body),
                    },
                });
                self.pump();
            }
        }
    }

    fn after_capa(&mut self) {
        if !self.secured && self.config.stls && self.offers("STLS") {
            self.send("STLS", Expect::Stls);
        } else {
            self.login();
        }
    }

    fn data(&mut self, bytes: &[u8]) -> usize {
        self.last = self.now.mono;
        let mut i = 0;
        while i < bytes.len() && !self.tls_pending {
            let max_body = self.config.max_body;
            if let Reading::Body {
                unstuffer,
                body,
                over,
                ..
            } = &mut self.reading
            {
                let (n, done) = unstuffer.feed(&bytes[i..], |s| {
                    if body.len() + s.len() <= max_body {
                        body.extend_from_slice(s);
                    } else {
                        *over = true;
                    }
                });
                i += n;
                if done {
                    let Reading::Body {
                        body,
                        text,
                        id,
                        over,
                        ..
                    } = core::mem::replace(&mut self.reading, Reading::Status)
                    else {
                        continue;
                    };
                    if over {
                        self.fail(Failure::Protocol(Violation::BadResponse));
                        return bytes.len();
                    }
                    self.end_body(text, body.freeze(), id);
                }
                continue;
            }
            let (n, next) = self.reader.next(&bytes[i..]);
            i += n;
            match next {
                Next::Line(l) => {
                    self.status(&l);
                    self.reader.recycle(l);
                }
                Next::TooLong => self.fail(Failure::Protocol(Violation::BadResponse)),
                Next::Partial => {}
            }
            if self.done && self.expect.is_empty() && self.waiting.is_empty() {
                // Failed, or QUIT answered: nothing more to read.
                return bytes.len();
            }
        }
        i
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
                // RFC 2595 §4: capabilities learned before TLS are void.
                self.tls_pending = false;
                self.secured = true;
                self.capabilities.clear();
                self.send("CAPA", Expect::Capa);
                self.out.push(Output::Resume { conn });
            }
            Input::OpenFailed { conn, error } if Some(conn) == self.conn && self.tls_pending => {
                self.tls_pending = false;
                self.fail(Failure::Tls(alloc::format!("{error}")));
            }
            Input::Eof { conn, .. } if Some(conn) == self.conn => {
                if !self.expect.is_empty() && self.expect.front() != Some(&Expect::Quit) {
                    self.fail(Failure::Closed);
                } else {
                    self.out.close(conn, Close::Graceful);
                }
            }
            Input::Closed { conn } if Some(conn) == self.conn => {
                if !self.expect.is_empty() && self.expect.front() != Some(&Expect::Quit) {
                    self.out.event(ClientEvent::Failed(Failure::Closed));
                }
                self.expect.clear();
                self.conn = None;
                self.out.event(ClientEvent::Closed);
            }
            _ => {}
        }
        Ok(0)
    }

    fn handle_timeout(&mut self, now: Now) {
        self.now = now;
        if let Some(d) = self.deadline() {
            if now.mono >= d {
                self.fail(Failure::Timeout);
            }
        }
    }

    fn poll_output(&mut self) -> Output<ClientEvent> {
        let d = self.deadline();
        self.out.pop_or_wait(d)
    }
}

impl Client {
    fn deadline(&self) -> Option<Instant> {
        if self.expect.is_empty() || self.conn.is_none() {
            return None;
        }
        self.last.checked_add(self.config.timeout)
    }
}
