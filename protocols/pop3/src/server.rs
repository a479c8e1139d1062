//! The POP3 server machine: one connection (a factory makes one per
//! accepted connection).
//!
//! ## States (RFC 1939 §3)
//! | state | commands | leaves on |
//! |---|---|---|
//! | AUTHORIZATION | USER, PASS, APOP, AUTH, CAPA, STLS, QUIT | credentials → `WaitLogin` → TRANSACTION |
//! | TRANSACTION | STAT, LIST, RETR, DELE, NOOP, RSET, TOP, UIDL, CAPA, QUIT | QUIT → UPDATE |
//! | UPDATE | — | the application removed the deleted messages |
//!
//! The machine asks, the application answers:
//! - [`ServerEvent::Login`] → [`Server::answer_login`] with the maildrop's
//!   listing (or why not: bad credentials, maildrop in use);
//! - [`ServerEvent::Retrieve`] → [`Server::answer_retrieve`] with the
//!   message's bytes (the machine cuts TOP and dot-stuffs);
//! - [`ServerEvent::Update`] → [`Server::answer_update`] once the deleted
//!   messages are gone.
//!
//! Deletions happen only in UPDATE, after QUIT: a connection that drops
//! in TRANSACTION ends with [`ServerEvent::Ended`] `{ updated: false }` and
//! nothing is removed. While waiting for an answer no input is taken
//! (pipelined commands stay with the driver until `Resume`).

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};
use core::fmt;
use core::fmt::Write as _;

use twill_core::dot::stuff;
use twill_core::line::{trim_line_end, LineReader, Next};
use twill_core::rng::Rng;
use twill_core::sasl::{decode_b64, parse_plain};
use twill_core::{
    Addr, Close, ConnId, Duration, Input, Instant, Link, Machine, Now, Open, Output, OutputBudget,
    Role,
};

use crate::codec::{parse_command, top, Command, CommandError};
use crate::error::{Error, Violation};

/// Settings of a POP3 server machine.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Our name, in the APOP timestamp.
    pub hostname: String,
    /// Offer APOP (put a timestamp in the greeting). Only useful when the
    /// application has each user's shared secret in the clear.
    pub apop: bool,
    /// Offer STLS (the machine must run inside the TLS layer).
    pub stls: bool,
    /// Accept USER/PASS and AUTH only under TLS (RFC 2595 §2.2).
    pub auth_requires_tls: bool,
    /// Longest command line, CRLF included (RFC 2449 §4: 255 for
    /// commands; AUTH responses may be longer).
    pub max_line: usize,
    /// Erroneous commands before the session is closed.
    pub max_errors: usize,
    /// Inactivity autologout (RFC 1939 §3: at least 10 minutes).
    pub timeout: Duration,
    /// Unflushed output above which no more commands are read.
    pub output_budget: OutputBudget,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            hostname: "localhost".into(),
            apop: false,
            stls: false,
            auth_requires_tls: false,
            max_line: 1024,
            max_errors: 10,
            timeout: Duration::from_secs(600),
            output_budget: OutputBudget::new(256 * 1024, 64 * 1024),
        }
    }
}

/// One message of a maildrop, as the application lists it at login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageInfo {
    /// Its size in octets (as it will be sent, before dot-stuffing).
    pub size: u64,
    /// Its unique id (RFC 1939 §7 UIDL: 1–70 characters 0x21–0x7E).
    pub uid: String,
}

/// How a client proved who it is.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Proof {
    /// USER/PASS or AUTH PLAIN: the password.
    Password(Vec<u8>),
    /// APOP: the digest of the greeting's timestamp and the secret; check
    /// it with [`crate::codec::apop_digest`].
    Apop {
        /// The timestamp of our greeting.
        timestamp: String,
        /// What the client sent.
        digest: String,
    },
}

impl fmt::Debug for Proof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Proof::Password(_) => f.write_str("Password(..)"),
            Proof::Apop { timestamp, .. } => write!(f, "Apop {{ timestamp: {timestamp:?}, .. }}"),
        }
    }
}

/// Why a login failed, for [`Server::answer_login`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoginFailure {
    /// Wrong name or password (`-ERR [AUTH]`).
    BadCredentials,
    /// Another session holds the maildrop (`-ERR [IN-USE]`, RFC 2449).
    InUse,
    /// The maildrop cannot be read now (`-ERR [SYS/TEMP]`).
    Temporary(String),
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
    /// Check these credentials and lock the maildrop; answer with
    /// [`Server::answer_login`].
    Login {
        /// The mailbox name.
        user: String,
        /// The proof.
        proof: Proof,
    },
    /// Read a message; answer with [`Server::answer_retrieve`].
    Retrieve {
        /// Index in the listing given at login (0-based).
        index: usize,
        /// Its uid.
        uid: String,
    },
    /// QUIT in TRANSACTION: remove these messages, then answer with
    /// [`Server::answer_update`].
    Update {
        /// The user.
        user: String,
        /// Indices (0-based) of the listing, in order.
        deleted: Vec<usize>,
        /// Their uids, in the same order.
        uids: Vec<String>,
    },
    /// STLS completed.
    Secured,
    /// The client misbehaved; the reply or close is queued.
    Violation(Violation),
    /// The session is over: release the maildrop. `updated` says whether
    /// the UPDATE state was reached.
    Ended {
        /// The logged-in user, if any.
        user: Option<String>,
        /// Whether deletions were asked for (QUIT in TRANSACTION).
        updated: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    Idle,
    Authorization,
    AuthLine,
    WaitLogin,
    Transaction,
    WaitRetrieve { top: Option<u32> },
    WaitUpdate,
    StartTls,
    Closing,
    Closed,
}

/// The POP3 server machine.
pub struct Server {
    config: ServerConfig,
    link: Link<ServerEvent>,
    conn: Option<ConnId>,
    phase: Phase,
    timestamp: Option<String>,
    fixed_timestamp: Option<String>,
    user: Option<String>,
    pending_user: Option<String>,
    logged_in: Option<String>,
    drop: Vec<MessageInfo>,
    deleted: Vec<bool>,
    secured: bool,
    reader: LineReader,
    errors: usize,
    updated: bool,
    ended: bool,
    now: Now,
    last_input: Instant,
    rng: Rng,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("conn", &self.conn)
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

impl Server {
    // ----- construction and getters -----

    /// A server machine; `rng` makes the APOP timestamp unpredictable.
    pub fn new(config: ServerConfig, rng: Rng) -> Self {
        let reader = LineReader::new(config.max_line);
        Server {
            link: Link::new(config.output_budget),
            config,
            conn: None,
            phase: Phase::Idle,
            timestamp: None,
            fixed_timestamp: None,
            user: None,
            pending_user: None,
            logged_in: None,
            drop: Vec::new(),
            deleted: Vec::new(),
            secured: false,
            reader,
            errors: 0,
            updated: false,
            ended: false,
            now: Now::default(),
            last_input: Instant::ZERO,
            rng,
        }
    }

    /// Uses a fixed APOP timestamp instead of a fresh one (to replay the
    /// RFC's example sessions; a fixed timestamp defeats APOP's replay
    /// protection, so never in service).
    pub fn with_timestamp(mut self, ts: &str) -> Self {
        self.fixed_timestamp = Some(ts.into());
        self
    }

    /// The settings.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The APOP timestamp of the greeting, if APOP is offered.
    pub fn timestamp(&self) -> Option<&str> {
        self.timestamp.as_deref()
    }

    /// The logged-in user.
    pub fn user(&self) -> Option<&str> {
        self.logged_in.as_deref()
    }

    // ----- commands (the application's answers) -----

    /// Answers [`ServerEvent::Login`]: the maildrop's messages in order,
    /// or why not.
    pub fn answer_login(&mut self, r: Result<Vec<MessageInfo>, LoginFailure>) -> Result<(), Error> {
        let Some(conn) = self.waiting(|p| *p == Phase::WaitLogin)? else {
            return Ok(());
        };
        let user = self.pending_user.take();
        match r {
            Ok(list) => {
                let total: u64 = list.iter().map(|m| m.size).sum();
                let _ = write!(
                    self.link.out.buf,
                    "+OK maildrop has {} messages ({} octets)\r\n",
                    list.len(),
                    total
                );
                self.deleted = alloc::vec![false; list.len()];
                self.drop = list;
                self.logged_in = user;
                self.phase = Phase::Transaction;
            }
            Err(f) => {
                let text = match f {
                    LoginFailure::BadCredentials => {
                        self.errors += 1;
                        String::from("-ERR [AUTH] invalid user name or password")
                    }
                    LoginFailure::InUse => String::from("-ERR [IN-USE] maildrop already locked"),
                    LoginFailure::Temporary(w) => alloc::format!("-ERR [SYS/TEMP] {w}"),
                };
                self.link.out.buf.extend_from_slice(text.as_bytes());
                self.link.out.buf.extend_from_slice(b"\r\n");
                self.phase = Phase::Authorization;
            }
        }
        self.send(conn);
        self.check_errors(conn);
        self.resume(conn);
        Ok(())
    }

    /// Answers [`ServerEvent::Retrieve`] with the whole message (or why it
    /// cannot be read: `-ERR`).
    pub fn answer_retrieve(&mut self, r: Result<Bytes, String>) -> Result<(), Error> {
        let Some(conn) = self.waiting(|p| matches!(p, Phase::WaitRetrieve { .. }))? else {
            return Ok(());
        };
        let Phase::WaitRetrieve { top: t } =
            core::mem::replace(&mut self.phase, Phase::Transaction)
        else {
            return Ok(());
        };
        match r {
            Ok(msg) => {
                let body = match t {
                    Some(n) => top(&msg, n),
                    None => &msg[..],
                };
                let _ = write!(self.link.out.buf, "+OK {} octets\r\n", body.len());
                stuff(body, &mut self.link.out.buf);
            }
            Err(why) => {
                let _ = write!(self.link.out.buf, "-ERR [SYS/TEMP] {why}\r\n");
            }
        }
        self.send(conn);
        self.resume(conn);
        Ok(())
    }

    /// Answers [`ServerEvent::Update`]: `Ok` once the deleted messages are
    /// removed.
    pub fn answer_update(&mut self, r: Result<(), String>) -> Result<(), Error> {
        let Some(conn) = self.waiting(|p| *p == Phase::WaitUpdate)? else {
            return Ok(());
        };
        match r {
            Ok(()) => self.link.out.buf.extend_from_slice(b"+OK bye\r\n"),
            Err(why) => {
                let _ = write!(
                    self.link.out.buf,
                    "-ERR some deleted messages not removed: {why}\r\n"
                );
            }
        }
        self.send(conn);
        self.close(conn, Close::Graceful);
        Ok(())
    }

    fn waiting(&mut self, f: impl Fn(&Phase) -> bool) -> Result<Option<ConnId>, Error> {
        if matches!(self.phase, Phase::Closed | Phase::Closing) {
            return Ok(None);
        }
        if !f(&self.phase) {
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

    fn err(&mut self, conn: ConnId, text: &str) {
        self.link.out.buf.extend_from_slice(b"-ERR ");
        self.link.out.buf.extend_from_slice(text.as_bytes());
        self.link.out.buf.extend_from_slice(b"\r\n");
        self.send(conn);
        self.errors += 1;
        self.check_errors(conn);
    }

    fn ok(&mut self, conn: ConnId, text: &str) {
        self.link.out.buf.extend_from_slice(b"+OK ");
        self.link.out.buf.extend_from_slice(text.as_bytes());
        self.link.out.buf.extend_from_slice(b"\r\n");
        self.send(conn);
    }

    fn check_errors(&mut self, conn: ConnId) {
        if self.errors > self.config.max_errors && !matches!(self.phase, Phase::Closing) {
            self.link
                .out
                .buf
                .extend_from_slice(b"-ERR too many errors, closing\r\n");
            self.send(conn);
            self.link
                .out
                .event(ServerEvent::Violation(Violation::TooManyErrors));
            self.close(conn, Close::Graceful);
        }
    }

    fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Authorization | Phase::AuthLine | Phase::Transaction => {
                self.last_input.checked_add(self.config.timeout)
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
            match self.phase {
                Phase::Closing | Phase::Closed => return bytes.len(),
                Phase::Authorization | Phase::AuthLine | Phase::Transaction => {}
                _ => break,
            }
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
                // Nothing past STLS is taken: the TLS layer
                // refuses plaintext sent before our +OK.
                self.link.paused = i < bytes.len();
                return i;
            }
        }
        if i < bytes.len() {
            self.link.paused = true;
        } else if self.link.peer_eof
            && matches!(self.phase, Phase::Authorization | Phase::Transaction)
        {
            self.close(conn, Close::Graceful);
        }
        i
    }

    fn line_too_long(&mut self, conn: ConnId) {
        self.link
            .out
            .event(ServerEvent::Violation(Violation::LineTooLong));
        if self.phase == Phase::AuthLine {
            self.phase = Phase::Authorization;
        }
        self.err(conn, "line too long");
    }

    fn line_in(&mut self, conn: ConnId, line: &[u8]) {
        if self.phase == Phase::AuthLine {
            self.phase = Phase::Authorization;
            let l = trim_line_end(line);
            if l == b"*" {
                return self.err(conn, "authentication cancelled");
            }
            return self.auth_plain(conn, l);
        }
        match parse_command(line) {
            Ok(cmd) => {
                if self.phase == Phase::Transaction {
                    self.transaction(conn, cmd)
                } else {
                    self.authorization(conn, cmd)
                }
            }
            Err(CommandError::Unknown) => self.err(conn, "unknown command"),
            Err(CommandError::Syntax) => self.err(conn, "syntax error"),
        }
    }

    fn auth_allowed(&self) -> bool {
        self.secured || !self.config.auth_requires_tls
    }

    fn capa(&mut self, conn: ConnId) {
        let b = &mut self.link.out.buf;
        b.extend_from_slice(b"+OK capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n");
        if self.phase != Phase::Transaction {
            if self.secured || !self.config.auth_requires_tls {
                b.extend_from_slice(b"USER\r\nSASL PLAIN\r\n");
            }
            if self.config.stls && !self.secured {
                b.extend_from_slice(b"STLS\r\n");
            }
        }
        b.extend_from_slice(b"IMPLEMENTATION twill\r\n.\r\n");
        self.send(conn);
    }

    fn authorization(&mut self, conn: ConnId, cmd: Command<'_>) {
        match cmd {
            Command::Capa => self.capa(conn),
            Command::Quit => {
                self.ok(conn, "bye");
                self.close(conn, Close::Graceful);
            }
            Command::Stls => {
                if !self.config.stls {
                    return self.err(conn, "STLS not offered");
                }
                if self.secured {
                    return self.err(conn, "command not permitted when TLS active");
                }
                self.ok(conn, "begin TLS negotiation");
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
            Command::User(name) => {
                if !self.auth_allowed() {
                    return self.err(conn, "[AUTH] plaintext authentication needs STLS first");
                }
                self.user = Some(name.to_owned());
                self.ok(conn, "send PASS");
            }
            Command::Pass(pw) => {
                let Some(user) = self.user.take() else {
                    return self.err(conn, "USER first");
                };
                self.login(user, Proof::Password(pw.to_vec()));
            }
            Command::Apop { name, digest } => {
                let Some(ts) = self.timestamp.clone() else {
                    return self.err(conn, "APOP not offered");
                };
                let digest = digest.to_ascii_lowercase();
                self.login(
                    name.to_owned(),
                    Proof::Apop {
                        timestamp: ts,
                        digest,
                    },
                );
            }
            Command::Auth { mechanism, initial } => {
                let Some(mech) = mechanism else {
                    self.link
                        .out
                        .buf
                        .extend_from_slice(b"+OK SASL mechanisms follow\r\nPLAIN\r\n.\r\n");
                    return self.send(conn);
                };
                if !mech.eq_ignore_ascii_case("PLAIN") {
                    return self.err(conn, "unsupported SASL mechanism");
                }
                if !self.auth_allowed() {
                    return self.err(conn, "[AUTH] authentication needs STLS first");
                }
                match initial {
                    Some(i) => self.auth_plain(conn, i.as_bytes()),
                    None => {
                        self.link.out.buf.extend_from_slice(b"+ \r\n");
                        self.send(conn);
                        self.phase = Phase::AuthLine;
                    }
                }
            }
            _ => self.err(conn, "not in TRANSACTION state"),
        }
    }

    fn auth_plain(&mut self, conn: ConnId, b64: &[u8]) {
        let creds = core::str::from_utf8(b64)
            .ok()
            .and_then(decode_b64)
            .and_then(|d| parse_plain(&d));
        match creds {
            Some(c) if c.authzid.is_empty() || c.authzid == c.username => {
                self.login(c.username, Proof::Password(c.password))
            }
            Some(_) => self.err(conn, "[AUTH] authorization identity not allowed"),
            None => self.err(conn, "malformed PLAIN response"),
        }
    }

    fn login(&mut self, user: String, proof: Proof) {
        self.pending_user = Some(user.clone());
        self.phase = Phase::WaitLogin;
        self.link.out.event(ServerEvent::Login { user, proof });
    }

    /// The 0-based index of message `n`, if it exists and is not deleted.
    fn message(&self, n: u32) -> Option<usize> {
        let i = (n as usize).checked_sub(1)?;
        (i < self.drop.len() && !self.deleted.get(i).copied().unwrap_or(true)).then_some(i)
    }

    fn transaction(&mut self, conn: ConnId, cmd: Command<'_>) {
        match cmd {
            Command::Capa => self.capa(conn),
            Command::Stat => {
                let (n, size) = self
                    .drop
                    .iter()
                    .zip(&self.deleted)
                    .filter(|(_, d)| !**d)
                    .fold((0u64, 0u64), |(n, s), (m, _)| (n + 1, s + m.size));
                let _ = write!(self.link.out.buf, "+OK {n} {size}\r\n");
                self.send(conn);
            }
            Command::List(None) | Command::Uidl(None) => {
                let uidl = matches!(cmd, Command::Uidl(_));
                self.link.out.buf.extend_from_slice(b"+OK\r\n");
                for (i, m) in self.drop.iter().enumerate() {
                    if self.deleted.get(i).copied().unwrap_or(true) {
                        continue;
                    }
                    if uidl {
                        let _ = write!(self.link.out.buf, "{} {}\r\n", i + 1, m.uid);
                    } else {
                        let _ = write!(self.link.out.buf, "{} {}\r\n", i + 1, m.size);
                    }
                }
                self.link.out.buf.extend_from_slice(b".\r\n");
                self.send(conn);
            }
            Command::List(Some(n)) | Command::Uidl(Some(n)) => {
                let uidl = matches!(cmd, Command::Uidl(_));
                let Some(i) = self.message(n) else {
                    return self.err(conn, "no such message");
                };
                let m = &self.drop[i];
                if uidl {
                    let _ = write!(self.link.out.buf, "+OK {n} {}\r\n", m.uid);
                } else {
                    let _ = write!(self.link.out.buf, "+OK {n} {}\r\n", m.size);
                }
                self.send(conn);
            }
            Command::Retr(n) | Command::Top { msg: n, .. } => {
                let Some(i) = self.message(n) else {
                    return self.err(conn, "no such message");
                };
                let top = match cmd {
                    Command::Top { lines, .. } => Some(lines),
                    _ => None,
                };
                self.phase = Phase::WaitRetrieve { top };
                self.link.out.event(ServerEvent::Retrieve {
                    index: i,
                    uid: self.drop[i].uid.clone(),
                });
            }
            Command::Dele(n) => {
                let Some(i) = self.message(n) else {
                    return self.err(conn, "no such message");
                };
                self.deleted[i] = true;
                let _ = write!(self.link.out.buf, "+OK message {n} deleted\r\n");
                self.send(conn);
            }
            Command::Noop => self.ok(conn, ""),
            Command::Rset => {
                self.deleted.iter_mut().for_each(|d| *d = false);
                let _ = write!(
                    self.link.out.buf,
                    "+OK maildrop has {} messages\r\n",
                    self.drop.len()
                );
                self.send(conn);
            }
            Command::Quit => {
                let deleted: Vec<usize> = (0..self.drop.len())
                    .filter(|i| self.deleted.get(*i).copied().unwrap_or(false))
                    .collect();
                if deleted.is_empty() {
                    self.ok(conn, "bye");
                    self.updated = true;
                    return self.close(conn, Close::Graceful);
                }
                self.updated = true;
                self.phase = Phase::WaitUpdate;
                let uids = deleted.iter().map(|i| self.drop[*i].uid.clone()).collect();
                self.link.out.event(ServerEvent::Update {
                    user: self.logged_in.clone().unwrap_or_default(),
                    deleted,
                    uids,
                });
            }
            _ => self.err(conn, "not in AUTHORIZATION state"),
        }
    }

    fn greeting_timestamp(&mut self) -> String {
        if let Some(t) = &self.fixed_timestamp {
            return t.clone();
        }
        let r = self.rng.next_u64();
        alloc::format!(
            "<{:x}.{}@{}>",
            r,
            self.now.wall.secs(),
            self.config.hostname
        )
    }

    fn end(&mut self) {
        if !self.ended {
            self.ended = true;
            self.link.out.event(ServerEvent::Ended {
                user: self.logged_in.clone(),
                updated: self.updated,
            });
        }
    }
}

impl Machine for Server {
    type Event = ServerEvent;
    type Error = Error;

    fn handle_input(&mut self, now: Now, input: Input<'_>) -> Result<usize, Error> {
        self.now = now;
        match input {
            Input::Accepted { conn, peer, .. } => {
                if self.conn.is_some() {
                    self.link.out.close(conn, Close::Abort);
                    return Ok(0);
                }
                self.conn = Some(conn);
                self.phase = Phase::Authorization;
                self.last_input = now.mono;
                self.link.out.event(ServerEvent::Connected { conn, peer });
                let mut g = BytesMut::new();
                g.extend_from_slice(b"+OK POP3 server ready");
                if self.config.apop {
                    let ts = self.greeting_timestamp();
                    g.extend_from_slice(b" ");
                    g.extend_from_slice(ts.as_bytes());
                    self.timestamp = Some(ts);
                }
                g.extend_from_slice(b"\r\n");
                self.link.out.buf.extend_from_slice(&g);
                self.send(conn);
            }
            Input::Data { conn, bytes } if Some(conn) == self.conn => {
                return Ok(self.data(conn, bytes));
            }
            Input::Sent { conn, bytes } if Some(conn) == self.conn => {
                let reading = matches!(
                    self.phase,
                    Phase::Authorization | Phase::AuthLine | Phase::Transaction
                );
                self.link.sent(conn, bytes, reading);
            }
            Input::Eof { conn, .. } if Some(conn) == self.conn => match self.phase {
                Phase::WaitLogin | Phase::WaitRetrieve { .. } | Phase::WaitUpdate => {
                    self.link.peer_eof = true
                }
                _ if self.link.paused => self.link.peer_eof = true,
                _ => self.close(conn, Close::Graceful),
            },
            Input::Secured { conn, .. }
                if Some(conn) == self.conn && self.phase == Phase::StartTls =>
            {
                self.secured = true;
                self.user = None;
                self.reader.clear();
                self.phase = Phase::Authorization;
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
                self.end();
            }
            _ => {}
        }
        Ok(0)
    }

    fn handle_timeout(&mut self, now: Now) {
        self.now = now;
        let Some(conn) = self.conn else { return };
        if self.deadline().is_some_and(|d| now.mono >= d) {
            self.link
                .out
                .buf
                .extend_from_slice(b"-ERR autologout timer expired\r\n");
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
