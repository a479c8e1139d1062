//! The SMTP server machine: one connection (a factory makes one per
//! accepted connection).
//!
//! ## Phases
//! | phase | input taken | leaves on |
//! |---|---|---|
//! | `Command` | command lines | DATA → `Data`; BDAT → `Bdat`; AUTH → `AuthLine`/`WaitAuth`; STARTTLS → `StartTls`; QUIT → `Closing` |
//! | `Data` | message bytes through the [`Unstuffer`] | `.` line → `WaitMessage` (or an error reply and `Command`) |
//! | `Bdat` | exactly the chunk's octets | chunk end → `Command` or `WaitMessage` |
//! | `AuthLine` | one base64 line per 334 | credentials → `WaitAuth`; `*` → `Command` |
//! | `WaitAuth`, `WaitMessage` | nothing (short take) | the application's answer |
//! | `StartTls` | nothing (short take) | `Secured` → `Command` (state forgotten) |
//! | `Closing` | discarded | `Closed` |
//!
//! While waiting for the application the machine takes no input: pipelined
//! commands stay with the driver and are read after the answer (the
//! machine emits `Resume`). That is also the backpressure: a client that
//! does not read its replies is not read either once its unflushed output
//! passes the budget.
//!
//! ## Answers the application gives
//! - [`ServerEvent::Auth`] → [`Server::answer_auth`] (check the password
//!   off the event thread, e.g. argon2 through `Cx::spawn_blocking`);
//! - [`ServerEvent::Message`] → [`Server::answer_message`] once the message
//!   is durably stored (250) or not (451/554).
//!
//! Recipients are checked in the machine: the domain against
//! [`ServerConfig::local_domains`] (other domains only for authenticated
//! sessions — no open relay) and the local part with
//! [`ServerConfig::recipients`], a cheap lookup.

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};
use core::fmt;

use twill_core::{
    Addr, Close, ConnId, Duration, Input, Instant, Link, Machine, Now, Open, OutQueue, Output,
    OutputBudget, Role, UnixTime,
};

use crate::codec::command::{parse_command, BodyType, Command, MailParams};
use crate::codec::dot::Unstuffer;
use crate::codec::reply::{write_multiline, write_reply};
use crate::codec::sasl::{decode_b64, parse_plain, Credentials};
use crate::error::{Error, Violation};
use twill_core::line::{LineReader, Next};

/// Decides whether a local part names a mailbox here (the domain was
/// already found local). Called for every RCPT; keep it cheap.
pub type RecipientCheck = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Settings of a server machine.
#[derive(Clone)]
pub struct ServerConfig {
    /// Our name, in the greeting and the EHLO reply.
    pub hostname: String,
    /// Domains we accept mail for (compared case-insensitively); when
    /// empty, `hostname` is the one local domain.
    pub local_domains: Vec<String>,
    /// Which local parts exist (`None`: all of them).
    pub recipients: Option<RecipientCheck>,
    /// Largest message (SIZE, RFC 1870), octets; bodies are held in memory.
    pub max_size: usize,
    /// Longest command line, CRLF included (RFC 5321 says at least 512;
    /// RFC 4954 AUTH lines need up to 12288).
    pub max_line: usize,
    /// Longest message line without its CRLF (RFC 5321 §4.5.3.1.6: 998).
    pub max_data_line: usize,
    /// Recipients per message (RFC 5321 §4.5.3.1.8: at least 100).
    pub max_recipients: usize,
    /// Erroneous commands before the session is closed with 421.
    pub max_errors: usize,
    /// Wait this long for a command (RFC 5321 §4.5.3.2.7: 5 minutes).
    pub command_timeout: Duration,
    /// Wait this long for more message data (RFC 5321 §4.5.3.2.5-6:
    /// 3 minutes per block, 10 for the end; 10 minutes here).
    pub data_timeout: Duration,
    /// Offer STARTTLS (the machine must run inside the TLS layer with a
    /// server configuration).
    pub starttls: bool,
    /// Offer AUTH PLAIN and LOGIN.
    pub auth: bool,
    /// Offer and accept AUTH only on a TLS session (RFC 4954 §4: 538).
    pub auth_requires_tls: bool,
    /// Refuse messages with a bare CR or LF (RFC 5321 §2.3.8).
    pub reject_bare_line_endings: bool,
    /// Unflushed output above which input is no longer read.
    pub output_budget: OutputBudget,
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("hostname", &self.hostname)
            .field("local_domains", &self.local_domains)
            .field("max_size", &self.max_size)
            .field("starttls", &self.starttls)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            hostname: "localhost".into(),
            local_domains: Vec::new(),
            recipients: None,
            max_size: 10 * 1024 * 1024,
            max_line: 4096,
            max_data_line: 998,
            max_recipients: 100,
            max_errors: 10,
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(600),
            starttls: false,
            auth: true,
            auth_requires_tls: false,
            reject_bare_line_endings: true,
            output_budget: OutputBudget::new(64 * 1024, 16 * 1024),
        }
    }
}

/// A message the client finished sending, with its envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Message {
    /// Counts messages of this connection from 1.
    pub seq: u64,
    /// The client's HELO/EHLO name.
    pub helo: String,
    /// Whether the client said EHLO.
    pub esmtp: bool,
    /// The client's address.
    pub peer: Addr,
    /// The reverse path; empty for `<>`.
    pub from: String,
    /// The forward paths, in order.
    pub to: Vec<String>,
    /// The content, unstuffed (CRLF line endings as sent).
    pub data: Bytes,
    /// The authenticated user, if any.
    pub authenticated: Option<String>,
    /// Whether the session is TLS.
    pub secured: bool,
    /// `SMTPUTF8` was given.
    pub smtputf8: bool,
    /// The `BODY=` parameter.
    pub body: Option<BodyType>,
    /// When the end of data arrived.
    pub received: UnixTime,
}

/// What the server tells the application.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// A connection was accepted; the greeting is on its way.
    Connected {
        /// The connection.
        conn: ConnId,
        /// The client.
        peer: Addr,
    },
    /// The client presented credentials; answer with
    /// [`Server::answer_auth`].
    Auth {
        /// `PLAIN` or `LOGIN`.
        mechanism: &'static str,
        /// What it sent.
        credentials: Credentials,
    },
    /// A message arrived; store it and answer with
    /// [`Server::answer_message`].
    Message(Message),
    /// STARTTLS completed.
    Secured,
    /// The client misbehaved; the reply (or the close) is queued.
    Violation(Violation),
    /// The connection is gone.
    Closed,
}

/// The application's verdict on a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Stored durably: 250, with this queue id in the text.
    Stored(String),
    /// Not stored now; the client should retry (451 4.3.0).
    TempFail(String),
    /// Refused for good (554 5.0.0).
    Rejected(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    Idle,
    Command,
    Data,
    Bdat {
        remaining: u64,
        last: bool,
        refuse: Option<Refusal>,
    },
    AuthLine(AuthStep),
    WaitAuth,
    WaitMessage,
    StartTls,
    Closing,
    Closed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    NoTransaction,
    TooBig,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum AuthStep {
    Plain,
    LoginUser,
    LoginPass(String),
}

#[derive(Debug, Default)]
struct Transaction {
    from: String,
    to: Vec<String>,
    params_body: Option<BodyType>,
    smtputf8: bool,
    chunked: bool,
    too_big: bool,
}

/// The SMTP server machine.
pub struct Server {
    config: ServerConfig,
    link: Link<ServerEvent>,
    conn: Option<ConnId>,
    peer: Addr,
    phase: Phase,
    helo: Option<(String, bool)>,
    authenticated: Option<String>,
    secured: bool,
    tx: Option<Transaction>,
    body: BytesMut,
    unstuffer: Unstuffer,
    reader: LineReader,
    errors: usize,
    seq: u64,
    now: Now,
    last_input: Instant,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("conn", &self.conn)
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

impl Default for Server {
    fn default() -> Self {
        Server::new(ServerConfig::default())
    }
}

impl Server {
    // ----- construction and getters -----

    /// A server machine with these settings.
    pub fn new(config: ServerConfig) -> Self {
        let reader = LineReader::new(config.max_line);
        Server {
            unstuffer: Unstuffer::new(config.max_data_line),
            link: Link::new(config.output_budget),
            config,
            conn: None,
            peer: Addr::Unknown,
            phase: Phase::Idle,
            helo: None,
            authenticated: None,
            secured: false,
            tx: None,
            body: BytesMut::new(),
            reader,
            errors: 0,
            seq: 0,
            now: Now::default(),
            last_input: Instant::ZERO,
        }
    }

    /// The settings.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The connection, once accepted.
    pub fn conn(&self) -> Option<ConnId> {
        self.conn
    }

    /// The authenticated user, if any.
    pub fn authenticated(&self) -> Option<&str> {
        self.authenticated.as_deref()
    }

    /// Whether the session runs over TLS (after STARTTLS).
    pub fn is_secured(&self) -> bool {
        self.secured
    }

    // ----- commands (the application's answers) -----

    /// Answers [`ServerEvent::Auth`]: 235 or 535.
    pub fn answer_auth(&mut self, ok: bool) -> Result<(), Error> {
        let Some(conn) = self.waiting(&Phase::WaitAuth)? else {
            return Ok(());
        };
        if ok {
            // The user was remembered when the event was emitted.
            reply(
                &mut self.link.out,
                235,
                "2.7.0",
                "Authentication successful",
            );
        } else {
            self.authenticated = None;
            self.errors += 1;
            reply(
                &mut self.link.out,
                535,
                "5.7.8",
                "Authentication credentials invalid",
            );
        }
        self.send(conn);
        self.phase = Phase::Command;
        self.check_errors(conn);
        self.resume(conn);
        Ok(())
    }

    /// Answers [`ServerEvent::Message`]: 250 once it is stored, 451 or 554
    /// otherwise.
    pub fn answer_message(&mut self, delivery: Delivery) -> Result<(), Error> {
        let Some(conn) = self.waiting(&Phase::WaitMessage)? else {
            return Ok(());
        };
        match delivery {
            Delivery::Stored(id) => {
                let text = alloc::format!("OK queued as {id}");
                reply(&mut self.link.out, 250, "2.0.0", &text);
            }
            Delivery::TempFail(why) => reply(&mut self.link.out, 451, "4.3.0", &why),
            Delivery::Rejected(why) => reply(&mut self.link.out, 554, "5.0.0", &why),
        }
        self.send(conn);
        self.phase = Phase::Command;
        self.resume(conn);
        Ok(())
    }

    /// `Ok(Some(conn))` when waiting in `phase`; `Ok(None)` when the
    /// connection is gone (a late answer is not a misuse).
    fn waiting(&mut self, phase: &Phase) -> Result<Option<ConnId>, Error> {
        if matches!(self.phase, Phase::Closed | Phase::Closing) {
            return Ok(None);
        }
        if &self.phase != phase {
            return Err(Error::NotWaiting);
        }
        Ok(self.conn)
    }

    // ----- internals -----

    fn send(&mut self, conn: ConnId) {
        self.link.send(conn);
    }

    fn resume(&mut self, conn: ConnId) {
        if !self.link.resume(conn) && self.link.peer_eof && !self.link.paused {
            // The client is gone and nothing of it is left to read.
            self.close(conn, Close::Graceful);
        }
    }

    fn close(&mut self, conn: ConnId, how: Close) {
        if !matches!(self.phase, Phase::Closing | Phase::Closed) {
            self.phase = Phase::Closing;
            // A paused connection is resumed so the driver offers what
            // it holds, which we discard.
            self.link.close(conn, how);
        }
    }

    fn local_domain(&self, domain: &str) -> bool {
        if self.config.local_domains.is_empty() {
            return domain.eq_ignore_ascii_case(&self.config.hostname);
        }
        self.config
            .local_domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(domain))
    }

    fn error_reply(&mut self, conn: ConnId, code: u16, enh: &str, text: &str) {
        reply(&mut self.link.out, code, enh, text);
        self.send(conn);
        self.errors += 1;
        self.check_errors(conn);
    }

    fn check_errors(&mut self, conn: ConnId) {
        if self.errors > self.config.max_errors && !matches!(self.phase, Phase::Closing) {
            let text = alloc::format!("{} Too many errors, closing", self.config.hostname);
            reply(&mut self.link.out, 421, "4.7.0", &text);
            self.send(conn);
            self.link
                .out
                .event(ServerEvent::Violation(Violation::TooManyErrors));
            self.close(conn, Close::Graceful);
        }
    }

    fn timeout(&self) -> Duration {
        match self.phase {
            Phase::Data | Phase::Bdat { .. } => self.config.data_timeout,
            _ => self.config.command_timeout,
        }
    }

    fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Command | Phase::Data | Phase::Bdat { .. } | Phase::AuthLine(_) => {
                self.last_input.checked_add(self.timeout())
            }
            _ => None,
        }
    }

    fn data(&mut self, conn: ConnId, bytes: &[u8]) -> usize {
        self.last_input = self.now.mono;
        let mut i = 0;
        while i < bytes.len() {
            if self.link.budget.is_full() {
                break;
            }
            match &mut self.phase {
                Phase::Closing | Phase::Closed => return bytes.len(),
                Phase::Idle | Phase::WaitAuth | Phase::WaitMessage | Phase::StartTls => break,
                Phase::Data => {
                    let max = self.config.max_size;
                    let body = &mut self.body;
                    // Once over the limit, nothing more is kept: the
                    // message will be refused at its end.
                    let mut over = self.tx.as_ref().is_some_and(|t| t.too_big);
                    let (n, done) = self.unstuffer.feed(&bytes[i..], |s| {
                        if !over && body.len() + s.len() <= max {
                            body.extend_from_slice(s);
                        } else {
                            over = true;
                        }
                    });
                    if over {
                        if let Some(tx) = self.tx.as_mut() {
                            tx.too_big = true;
                        }
                        // Keep nothing of a message that will be refused.
                        self.body = BytesMut::new();
                    }
                    i += n;
                    if done {
                        self.end_of_data(conn);
                    }
                }
                Phase::Bdat { remaining, .. } => {
                    let take = (*remaining).min((bytes.len() - i) as u64) as usize;
                    *remaining -= take as u64;
                    let done = *remaining == 0;
                    let chunk = &bytes[i..i + take];
                    i += take;
                    let keep = matches!(self.phase, Phase::Bdat { refuse: None, .. });
                    if keep {
                        self.body.extend_from_slice(chunk);
                    }
                    if done {
                        self.end_of_chunk(conn);
                    }
                }
                Phase::Command | Phase::AuthLine(_) => {
                    let (n, next) = self.reader.next(&bytes[i..]);
                    i += n;
                    match next {
                        Next::Line(line) => {
                            self.line_in(conn, &line);
                            self.reader.recycle(line);
                        }
                        Next::TooLong => self.line_too_long(conn),
                        Next::Partial => {}
                    }
                    if self.phase == Phase::StartTls {
                        // Take nothing past the command: the TLS
                        // layer refuses plaintext sent before our
                        // go-ahead (RFC 3207 §5).
                        self.link.paused = i < bytes.len();
                        return i;
                    }
                }
            }
        }
        if i < bytes.len() {
            self.link.paused = true;
        } else if self.link.peer_eof && self.phase == Phase::Command {
            // Held bytes after the peer's EOF are read; nothing more comes.
            self.close(conn, Close::Graceful);
        }
        i
    }

    fn line_too_long(&mut self, conn: ConnId) {
        self.link
            .out
            .event(ServerEvent::Violation(Violation::LineTooLong));
        if let Phase::AuthLine(_) = self.phase {
            self.phase = Phase::Command;
        }
        self.error_reply(conn, 500, "5.5.2", "Line too long");
    }

    fn line_in(&mut self, conn: ConnId, line: &[u8]) {
        if let Phase::AuthLine(step) = &self.phase {
            let step = step.clone();
            self.auth_line(conn, step, line);
            return;
        }
        match parse_command(line) {
            Ok(cmd) => self.command(conn, cmd),
            Err(e) => {
                let (code, enh, text) = e.reply();
                self.error_reply(conn, code, enh, text);
            }
        }
    }

    fn command(&mut self, conn: ConnId, cmd: Command<'_>) {
        match cmd {
            Command::Ehlo { domain } => {
                self.tx = None;
                self.helo = Some((domain.to_owned(), true));
                let greet = alloc::format!("{} Hello {}", self.config.hostname, domain);
                let size = alloc::format!("SIZE {}", self.config.max_size);
                let mut lines: Vec<&str> = alloc::vec![
                    &greet,
                    "PIPELINING",
                    &size,
                    "8BITMIME",
                    "SMTPUTF8",
                    "ENHANCEDSTATUSCODES",
                    "CHUNKING",
                ];
                if self.config.starttls && !self.secured {
                    lines.push("STARTTLS");
                }
                if self.auth_offered() {
                    lines.push("AUTH PLAIN LOGIN");
                }
                lines.push("HELP");
                write_multiline(&mut self.link.out.buf, 250, lines.into_iter());
                self.send(conn);
            }
            Command::Helo { domain } => {
                self.tx = None;
                self.helo = Some((domain.to_owned(), false));
                let text = alloc::format!("{} Hello {}", self.config.hostname, domain);
                write_reply(&mut self.link.out.buf, 250, None, &text);
                self.send(conn);
            }
            Command::Mail { from, params } => self.mail(conn, from, params),
            Command::Rcpt { to, param } => self.rcpt(conn, to, param),
            Command::Data => {
                let Some(tx) = self.tx.as_ref() else {
                    return self.error_reply(conn, 503, "5.5.1", "Error: need MAIL command");
                };
                if tx.to.is_empty() {
                    // RFC 5321 §3.3 allows 503 or 554 here; 554 tells a
                    // pipelining client that every RCPT failed.
                    return self.error_reply(conn, 554, "5.5.1", "Error: no valid recipients");
                }
                if tx.chunked {
                    return self.error_reply(conn, 503, "5.5.1", "Error: DATA after BDAT");
                }
                write_reply(
                    &mut self.link.out.buf,
                    354,
                    None,
                    "End data with <CR><LF>.<CR><LF>",
                );
                self.send(conn);
                self.body.clear();
                self.unstuffer.reset();
                self.phase = Phase::Data;
            }
            Command::Bdat { size, last } => {
                let refuse = match self.tx.as_mut() {
                    Some(tx) if !tx.to.is_empty() => {
                        tx.chunked = true;
                        let total = (self.body.len() as u64).saturating_add(size);
                        (tx.too_big || total > self.config.max_size as u64)
                            .then_some(Refusal::TooBig)
                    }
                    _ => Some(Refusal::NoTransaction),
                };
                if refuse == Some(Refusal::TooBig) {
                    self.body = BytesMut::new();
                    if let Some(tx) = self.tx.as_mut() {
                        tx.too_big = true;
                    }
                }
                self.phase = Phase::Bdat {
                    remaining: size,
                    last,
                    refuse,
                };
                if size == 0 {
                    self.end_of_chunk(conn);
                }
            }
            Command::Rset => {
                self.tx = None;
                self.body = BytesMut::new();
                ok(&mut self.link.out, "2.0.0", "OK");
                self.send(conn);
            }
            Command::Noop => {
                ok(&mut self.link.out, "2.0.0", "OK");
                self.send(conn);
            }
            Command::Vrfy(_) => {
                reply(
                    &mut self.link.out,
                    252,
                    "2.5.2",
                    "Cannot VRFY user, but will accept message and attempt delivery",
                );
                self.send(conn);
            }
            Command::Expn(_) => {
                reply(&mut self.link.out, 502, "5.5.1", "EXPN not implemented");
                self.send(conn);
            }
            Command::Help(_) => {
                reply(
                    &mut self.link.out,
                    214,
                    "2.0.0",
                    "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP VRFY HELP QUIT STARTTLS AUTH",
                );
                self.send(conn);
            }
            Command::Quit => {
                let text = alloc::format!("{} closing connection", self.config.hostname);
                reply(&mut self.link.out, 221, "2.0.0", &text);
                self.send(conn);
                self.close(conn, Close::Graceful);
            }
            Command::StartTls => {
                if !self.config.starttls {
                    return self.error_reply(conn, 502, "5.5.1", "STARTTLS not offered");
                }
                if self.secured {
                    return self.error_reply(conn, 503, "5.5.1", "Already under TLS");
                }
                reply(&mut self.link.out, 220, "2.0.0", "Ready to start TLS");
                self.send(conn);
                self.link.out.push(Output::Open {
                    conn,
                    how: Open::StartTls {
                        role: Role::Server,
                        server_name: None,
                        resume_from: None,
                    },
                });
                self.phase = Phase::StartTls;
            }
            Command::Auth { mechanism, initial } => self.auth(conn, mechanism, initial),
        }
    }

    fn auth_offered(&self) -> bool {
        self.config.auth && (self.secured || !self.config.auth_requires_tls)
    }

    fn mail(&mut self, conn: ConnId, from: &str, params: MailParams<'_>) {
        if self.helo.is_none() {
            return self.error_reply(conn, 503, "5.5.1", "Error: send HELO/EHLO first");
        }
        if self.tx.is_some() {
            return self.error_reply(conn, 503, "5.5.1", "Error: nested MAIL command");
        }
        if let Some(p) = params.unknown {
            let _ = p;
            return self.error_reply(conn, 555, "5.5.4", "Unsupported MAIL parameter");
        }
        if params.body == Some(BodyType::BinaryMime) {
            return self.error_reply(conn, 555, "5.5.4", "BINARYMIME not supported");
        }
        if !params.smtputf8 && !from.is_ascii() {
            return self.error_reply(conn, 553, "5.6.7", "Non-ASCII address needs SMTPUTF8");
        }
        if params.size.is_some_and(|s| s > self.config.max_size as u64) {
            reply(
                &mut self.link.out,
                552,
                "5.3.4",
                "Message size exceeds fixed maximum message size",
            );
            return self.send(conn);
        }
        self.tx = Some(Transaction {
            from: from.to_owned(),
            params_body: params.body,
            smtputf8: params.smtputf8,
            ..Transaction::default()
        });
        self.body = BytesMut::new();
        ok(&mut self.link.out, "2.1.0", "OK");
        self.send(conn);
    }

    fn rcpt(&mut self, conn: ConnId, to: &str, param: Option<&str>) {
        let Some(tx) = self.tx.as_ref() else {
            return self.error_reply(conn, 503, "5.5.1", "Error: need MAIL command");
        };
        if param.is_some() {
            return self.error_reply(conn, 555, "5.5.4", "Unsupported RCPT parameter");
        }
        if !tx.smtputf8 && !to.is_ascii() {
            return self.error_reply(conn, 553, "5.6.7", "Non-ASCII address needs SMTPUTF8");
        }
        if tx.to.len() >= self.config.max_recipients {
            reply(&mut self.link.out, 452, "4.5.3", "Too many recipients");
            return self.send(conn);
        }
        let postmaster = to.eq_ignore_ascii_case("postmaster");
        let (local, domain) = match to.rfind('@') {
            Some(k) => (&to[..k], &to[k + 1..]),
            None => (to, ""),
        };
        if !postmaster {
            if !self.local_domain(domain) {
                if self.authenticated.is_none() {
                    reply(&mut self.link.out, 550, "5.7.1", "Relaying denied");
                    return self.send(conn);
                }
            } else if !local.eq_ignore_ascii_case("postmaster")
                && !self.config.recipients.as_ref().map_or(true, |f| f(local))
            {
                reply(
                    &mut self.link.out,
                    550,
                    "5.1.1",
                    "Recipient address rejected: no such user",
                );
                return self.send(conn);
            }
        }
        if let Some(tx) = self.tx.as_mut() {
            tx.to.push(to.to_owned());
        }
        ok(&mut self.link.out, "2.1.5", "OK");
        self.send(conn);
    }

    fn end_of_data(&mut self, conn: ConnId) {
        let flags = self.unstuffer.flags();
        self.unstuffer.reset();
        self.phase = Phase::Command;
        let too_big = self.tx.as_ref().is_some_and(|t| t.too_big);
        if too_big {
            return self.refuse_too_big(conn);
        }
        if self.config.reject_bare_line_endings && (flags.bare_lf || flags.bare_cr) {
            self.tx = None;
            self.body = BytesMut::new();
            self.link
                .out
                .event(ServerEvent::Violation(Violation::BareLineEnding));
            reply(
                &mut self.link.out,
                550,
                "5.6.0",
                "Message contains a bare CR or LF",
            );
            return self.send(conn);
        }
        if flags.long_line {
            self.tx = None;
            self.body = BytesMut::new();
            reply(
                &mut self.link.out,
                550,
                "5.6.0",
                "Message has a line over 998 octets",
            );
            return self.send(conn);
        }
        self.deliver();
    }

    fn refuse_too_big(&mut self, conn: ConnId) {
        self.tx = None;
        self.body = BytesMut::new();
        self.link
            .out
            .event(ServerEvent::Violation(Violation::MessageTooBig));
        reply(
            &mut self.link.out,
            552,
            "5.3.4",
            "Message size exceeds fixed maximum message size",
        );
        self.send(conn);
    }

    fn end_of_chunk(&mut self, conn: ConnId) {
        let Phase::Bdat { last, refuse, .. } = core::mem::replace(&mut self.phase, Phase::Command)
        else {
            return;
        };
        match refuse {
            Some(Refusal::NoTransaction) => {
                self.error_reply(conn, 503, "5.5.1", "Error: need MAIL and RCPT before BDAT")
            }
            Some(Refusal::TooBig) => self.refuse_too_big(conn),
            None if last => self.deliver(),
            None => {
                let text = alloc::format!("{} octets received", self.body.len());
                ok(&mut self.link.out, "2.0.0", &text);
                self.send(conn);
            }
        }
    }

    fn deliver(&mut self) {
        let Some(tx) = self.tx.take() else {
            return;
        };
        self.seq += 1;
        let (helo, esmtp) = self.helo.clone().unwrap_or_default();
        let m = Message {
            seq: self.seq,
            helo,
            esmtp,
            peer: self.peer.clone(),
            from: tx.from,
            to: tx.to,
            data: self.body.split().freeze(),
            authenticated: self.authenticated.clone(),
            secured: self.secured,
            smtputf8: tx.smtputf8,
            body: tx.params_body,
            received: self.now.wall,
        };
        self.body = BytesMut::new();
        self.phase = Phase::WaitMessage;
        self.link.out.event(ServerEvent::Message(m));
    }

    fn auth(&mut self, conn: ConnId, mechanism: &str, initial: Option<&str>) {
        if !self.config.auth {
            return self.error_reply(conn, 502, "5.5.1", "AUTH not offered");
        }
        if self.config.auth_requires_tls && !self.secured {
            return self.error_reply(
                conn,
                538,
                "5.7.11",
                "Encryption required for requested authentication mechanism",
            );
        }
        if !self.helo.as_ref().is_some_and(|h| h.1) {
            return self.error_reply(conn, 503, "5.5.1", "Error: send EHLO first");
        }
        if self.authenticated.is_some() {
            return self.error_reply(conn, 503, "5.5.1", "Already authenticated");
        }
        if self.tx.is_some() {
            return self.error_reply(conn, 503, "5.5.1", "AUTH not allowed during a transaction");
        }
        let step = if mechanism.eq_ignore_ascii_case("PLAIN") {
            AuthStep::Plain
        } else if mechanism.eq_ignore_ascii_case("LOGIN") {
            AuthStep::LoginUser
        } else {
            return self.error_reply(conn, 504, "5.5.4", "Unrecognized authentication type");
        };
        match initial {
            Some(i) => self.auth_response(conn, step, i.as_bytes()),
            None => self.challenge(conn, step),
        }
    }

    fn challenge(&mut self, conn: ConnId, step: AuthStep) {
        let text = match step {
            AuthStep::Plain => "",
            AuthStep::LoginUser => "VXNlcm5hbWU6",
            AuthStep::LoginPass(_) => "UGFzc3dvcmQ6",
        };
        write_reply(&mut self.link.out.buf, 334, None, text);
        self.send(conn);
        self.phase = Phase::AuthLine(step);
    }

    fn auth_line(&mut self, conn: ConnId, step: AuthStep, line: &[u8]) {
        self.phase = Phase::Command;
        let line = crate::codec::command::trim_line_end(line);
        if line == b"*" {
            return self.error_reply(conn, 501, "5.0.0", "Authentication cancelled");
        }
        self.auth_response(conn, step, line);
    }

    fn auth_response(&mut self, conn: ConnId, step: AuthStep, b64: &[u8]) {
        let Some(decoded) = core::str::from_utf8(b64).ok().and_then(decode_b64) else {
            self.phase = Phase::Command;
            return self.error_reply(conn, 501, "5.5.2", "Cannot decode response");
        };
        let (mechanism, credentials) = match step {
            AuthStep::Plain => match parse_plain(&decoded) {
                Some(c) => ("PLAIN", c),
                None => {
                    self.phase = Phase::Command;
                    return self.error_reply(conn, 501, "5.5.2", "Malformed PLAIN response");
                }
            },
            AuthStep::LoginUser => {
                let user = String::from_utf8_lossy(&decoded).into_owned();
                return self.challenge(conn, AuthStep::LoginPass(user));
            }
            AuthStep::LoginPass(user) => (
                "LOGIN",
                Credentials {
                    authzid: String::new(),
                    username: user,
                    password: decoded,
                },
            ),
        };
        self.authenticated = Some(credentials.username.clone());
        self.phase = Phase::WaitAuth;
        self.link.out.event(ServerEvent::Auth {
            mechanism,
            credentials,
        });
    }
}

fn reply(out: &mut OutQueue<ServerEvent>, code: u16, enh: &str, text: &str) {
    write_reply(&mut out.buf, code, Some(enh), text);
}

fn ok(out: &mut OutQueue<ServerEvent>, enh: &str, text: &str) {
    reply(out, 250, enh, text);
}

impl Machine for Server {
    type Event = ServerEvent;
    type Error = Error;

    fn handle_input(&mut self, now: Now, input: Input<'_>) -> Result<usize, Error> {
        self.now = now;
        match input {
            Input::Accepted { conn, peer, .. } => {
                if self.conn.is_some() {
                    // One connection per machine.
                    self.link.out.close(conn, Close::Abort);
                    return Ok(0);
                }
                self.conn = Some(conn);
                self.peer = peer.clone();
                self.phase = Phase::Command;
                self.last_input = now.mono;
                self.link.out.event(ServerEvent::Connected { conn, peer });
                let text = alloc::format!("{} ESMTP twill", self.config.hostname);
                write_reply(&mut self.link.out.buf, 220, None, &text);
                self.send(conn);
            }
            Input::Data { conn, bytes } if Some(conn) == self.conn => {
                return Ok(self.data(conn, bytes));
            }
            Input::Sent { conn, bytes } if Some(conn) == self.conn => {
                let reading = matches!(
                    self.phase,
                    Phase::Command | Phase::Data | Phase::Bdat { .. } | Phase::AuthLine(_)
                );
                self.link.sent(conn, bytes, reading);
            }
            Input::Eof { conn, .. } if Some(conn) == self.conn => match self.phase {
                // A stored message still gets its answer; then we close.
                Phase::WaitMessage | Phase::WaitAuth => self.link.peer_eof = true,
                Phase::Data | Phase::Bdat { .. } => {
                    self.link
                        .out
                        .event(ServerEvent::Violation(Violation::EofInMessage));
                    self.close(conn, Close::Graceful);
                }
                _ => self.close(conn, Close::Graceful),
            },
            Input::Secured { conn, .. }
                if Some(conn) == self.conn && self.phase == Phase::StartTls =>
            {
                // RFC 3207 §4.2: forget everything learned before TLS.
                self.secured = true;
                self.helo = None;
                self.tx = None;
                self.authenticated = None;
                self.body = BytesMut::new();
                self.reader.clear();
                self.phase = Phase::Command;
                self.last_input = now.mono;
                self.link.out.event(ServerEvent::Secured);
                self.link.unpause(conn);
            }
            Input::OpenFailed { conn, .. }
                if Some(conn) == self.conn && self.phase == Phase::StartTls =>
            {
                self.link
                    .out
                    .event(ServerEvent::Violation(Violation::StartTlsFailed));
                self.close(conn, Close::Abort);
            }
            Input::Closed { conn } if Some(conn) == self.conn && self.phase != Phase::Closed => {
                self.phase = Phase::Closed;
                self.tx = None;
                self.body = BytesMut::new();
                self.link.out.event(ServerEvent::Closed);
            }
            _ => {}
        }
        Ok(0)
    }

    fn handle_timeout(&mut self, now: Now) {
        self.now = now;
        let Some(conn) = self.conn else { return };
        if self.deadline().is_some_and(|d| now.mono >= d) {
            let text = alloc::format!("{} Error: timeout exceeded", self.config.hostname);
            reply(&mut self.link.out, 421, "4.4.2", &text);
            self.send(conn);
            self.link
                .out
                .event(ServerEvent::Violation(Violation::Timeout));
            self.close(conn, Close::Graceful);
        }
    }

    fn poll_output(&mut self) -> Output<ServerEvent> {
        let deadline = self.deadline();
        self.link.out.pop_or_wait(deadline)
    }
}

impl ServerEvent {
    /// A short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            ServerEvent::Connected { .. } => "connected",
            ServerEvent::Auth { .. } => "auth",
            ServerEvent::Message(_) => "message",
            ServerEvent::Secured => "secured",
            ServerEvent::Violation(_) => "violation",
            ServerEvent::Closed => "closed",
        }
    }
}

impl fmt::Display for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Delivery::Stored(id) => write!(f, "stored as {id}"),
            Delivery::TempFail(w) => write!(f, "temporary failure: {w}"),
            Delivery::Rejected(w) => write!(f, "rejected: {w}"),
        }
    }
}
