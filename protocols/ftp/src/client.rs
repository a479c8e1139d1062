//! The FTP client machine: one control connection and the data
//! connections it opens, in one sans-IO [`Client`].
//!
//! The application queues operations ([`Client::get`], [`Client::put`],
//! [`Client::list`], [`Client::rename`], [`Client::delete`],
//! [`Client::mkdir`], [`Client::size`], [`Client::quit`]); they run one at
//! a time after the login. Each data transfer asks the driver for its
//! connection: passive (EPSV, falling back to PASV when the server does
//! not know EPSV; the connection goes to the control connection's peer,
//! never to an address a 227 names) or active (`Open { Listen }`, then
//! EPRT/PORT, and only a connection from the server's address is taken).
//!
//! A transfer completes only when both its data connection's end and the
//! final reply (226/250) are seen, in either order.
//!
//! With [`ClientConfig::tls`] (explicit FTPS, RFC 4217) the session is
//! AUTH TLS first (the control connection's TLS session is asked for with
//! `Open { StartTls }` after the 234; the machine must run inside the TLS
//! layer), then the login, PBSZ 0 and PROT P; every data connection gets
//! its own client session (resumed by the layer when the server allows)
//! and carries nothing before it is `Secured`. A server that refuses AUTH
//! TLS ends the session: never a silent fall-back to plaintext.
//!
//! # The drain rule
//! After `handle_input`, `handle_timeout` or any command method, call
//! `poll_output` until `Wait`.

use alloc::collections::VecDeque;
use alloc::string::{String, ToString};
use bytes::{Bytes, BytesMut};
use core::net::{IpAddr, SocketAddr};

use twill_core::{
    Close, ConnId, Duration, IdAllocator, Input, Instant, ListenerId, Machine, Now, Open,
    OpenError, OutQueue, Output, OutputBudget, Payload, Role,
};

use crate::codec::addr::{
    canonical_ip, format_eprt, format_port, parse_epsv_reply, parse_pasv_reply,
};
use crate::codec::command;
use crate::codec::reply::{Reply, ReplyParser};
use crate::error::{Error, Violation};
use crate::server::ListFormat;

/// Settings of a [`Client`].
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// USER's argument.
    pub user: String,
    /// PASS's argument.
    pub password: String,
    /// Active mode (the server connects to us) instead of passive.
    pub active: bool,
    /// Give up when the server sends nothing for this long while a reply
    /// or data is due.
    pub timeout: Duration,
    /// Unflushed upload bytes above which the application should wait for
    /// [`ClientEvent::Writable`].
    pub upload_high: usize,
    /// … and at or below which it may send again.
    pub upload_low: usize,
    /// Explicit TLS (RFC 4217): AUTH TLS, then PBSZ 0 and PROT P after the
    /// login, verifying the server as this name.
    pub tls: Option<String>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            user: "anonymous".into(),
            password: "twill@".into(),
            active: false,
            timeout: Duration::from_secs(30),
            upload_high: 1 << 20,
            upload_low: 256 << 10,
            tls: None,
        }
    }
}

/// One queued operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpId(pub u64);

/// Why an operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server refused: its reply.
    #[error("server replied {}: {}", .0.code, .0.text())]
    Refused(Reply),
    /// A data connection (or the control one) could not be opened.
    #[error("cannot connect: {0}")]
    Open(OpenError),
    /// The server broke the protocol.
    #[error("{0}")]
    Protocol(Violation),
    /// The connection closed before the operation finished.
    #[error("connection closed")]
    Closed,
    /// Nothing came from the server in time.
    #[error("timed out")]
    TimedOut,
}

/// What a finished operation gives.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Done (transfers, rename, delete, mkdir, quit).
    Ok,
    /// SIZE's answer.
    Size(u64),
}

/// What the client tells the application.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// Logged in; queued operations start.
    LoggedIn,
    /// Bytes of a download or listing, in order.
    Data {
        /// The operation.
        id: OpId,
        /// The bytes.
        data: Bytes,
    },
    /// An upload's data connection is open: send with [`Client::send`].
    Writable {
        /// The operation.
        id: OpId,
    },
    /// An operation ended.
    Done {
        /// The operation.
        id: OpId,
        /// How.
        result: Result<Outcome, ClientError>,
    },
    /// The session failed (login refused, connection lost, a broken
    /// reply stream, a timeout): every queued operation fails with it.
    Failed(ClientError),
    /// The control connection is gone; every queued operation failed.
    Closed,
}

#[derive(Clone, Debug)]
enum Kind {
    Get {
        path: String,
        offset: u64,
    },
    Put {
        path: String,
        offset: u64,
        append: bool,
    },
    List {
        path: String,
        format: ListFormat,
    },
    Rename {
        from: String,
        to: String,
    },
    Simple {
        verb: &'static str,
        path: String,
    },
    Size {
        path: String,
    },
    Quit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for 220.
    Greeting,
    /// AUTH TLS sent.
    Auth,
    /// 234 seen, the control connection's handshake runs.
    Securing,
    User,
    Pass,
    Pbsz,
    Prot,
    Type,
    /// Logged in, nothing running.
    Idle,
    /// A one-command operation (or RNFR then RNTO) waits for its reply.
    Simple,
    Rnfr,
    Rest,
    Epsv,
    Pasv,
    /// Active: waiting for our listener, then the EPRT/PORT reply.
    Listening,
    Port,
    /// The transfer command was sent.
    Transfer,
    Quit,
    Done,
}

#[derive(Debug, Default)]
struct Data {
    conn: Option<ConnId>,
    listener: Option<ConnId>,
    connected: bool,
    /// Passive: the server's data port, once known.
    port: Option<u16>,
    /// Active: our listener's address, announced with EPRT or PORT.
    listen_addr: Option<SocketAddr>,
    /// 1xx seen.
    started: bool,
    /// The final reply (226 or an error).
    reply: Option<Reply>,
    /// The data connection's end: EOF (download) or Closed (upload).
    ended: bool,
    /// Upload bytes waiting for the connection; the application finished.
    queue: VecDeque<Bytes>,
    finished: bool,
    close_sent: bool,
    budget: OutputBudget,
    writable_owed: bool,
    /// PROT P: the data connection's TLS session was asked for.
    securing: bool,
}

/// The FTP client machine; see the module docs.
pub struct Client {
    config: ClientConfig,
    out: OutQueue<ClientEvent>,
    ids: IdAllocator,
    next_op: u64,
    ctrl: Option<ConnId>,
    local: Option<SocketAddr>,
    peer: Option<SocketAddr>,
    parser: ReplyParser,
    inbuf: BytesMut,
    phase: Phase,
    epsv_failed: bool,
    /// The server does not know EPRT: PORT from now on.
    eprt_failed: bool,
    queue: VecDeque<(OpId, Kind)>,
    current: Option<(OpId, Kind)>,
    data: Data,
    deadline: Option<Instant>,
    now: Now,
}

impl Client {
    /// A client; it starts when the driver reports the control
    /// connection `Opened`.
    pub fn new(config: ClientConfig) -> Client {
        Client {
            config,
            out: OutQueue::new(),
            ids: IdAllocator::for_machine(),
            next_op: 0,
            ctrl: None,
            local: None,
            peer: None,
            parser: ReplyParser::default(),
            inbuf: BytesMut::new(),
            phase: Phase::Greeting,
            epsv_failed: false,
            eprt_failed: false,
            queue: VecDeque::new(),
            current: None,
            data: Data::default(),
            deadline: None,
            now: Now::default(),
        }
    }

    // ---- commands -------------------------------------------------------

    /// Downloads `path` from byte `offset` (REST); bytes arrive as
    /// [`ClientEvent::Data`].
    pub fn get(&mut self, path: &str, offset: u64) -> Result<OpId, Error> {
        self.push(Kind::Get {
            path: checked(path)?,
            offset,
        })
    }

    /// Uploads to `path` (from `offset` with REST, or appending with
    /// APPE); send the bytes with [`send`](Self::send) after
    /// [`ClientEvent::Writable`], then [`finish`](Self::finish).
    pub fn put(&mut self, path: &str, offset: u64, append: bool) -> Result<OpId, Error> {
        self.push(Kind::Put {
            path: checked(path)?,
            offset,
            append,
        })
    }

    /// Lists `path` (empty: the working directory).
    pub fn list(&mut self, path: &str, format: ListFormat) -> Result<OpId, Error> {
        self.push(Kind::List {
            path: checked(path)?,
            format,
        })
    }

    /// RNFR then RNTO.
    pub fn rename(&mut self, from: &str, to: &str) -> Result<OpId, Error> {
        self.push(Kind::Rename {
            from: checked(from)?,
            to: checked(to)?,
        })
    }

    /// DELE.
    pub fn delete(&mut self, path: &str) -> Result<OpId, Error> {
        self.push(Kind::Simple {
            verb: "DELE",
            path: checked(path)?,
        })
    }

    /// MKD.
    pub fn mkdir(&mut self, path: &str) -> Result<OpId, Error> {
        self.push(Kind::Simple {
            verb: "MKD",
            path: checked(path)?,
        })
    }

    /// RMD.
    pub fn rmdir(&mut self, path: &str) -> Result<OpId, Error> {
        self.push(Kind::Simple {
            verb: "RMD",
            path: checked(path)?,
        })
    }

    /// SIZE.
    pub fn size(&mut self, path: &str) -> Result<OpId, Error> {
        self.push(Kind::Size {
            path: checked(path)?,
        })
    }

    /// QUIT, after everything queued before it.
    pub fn quit(&mut self) -> Result<OpId, Error> {
        self.push(Kind::Quit)
    }

    /// Upload bytes for `id`, in order.
    ///
    /// # Errors
    /// `id` is not the running upload, or it was finished.
    pub fn send(&mut self, id: OpId, data: Bytes) -> Result<(), Error> {
        self.check_upload(id)?;
        if data.is_empty() {
            return Ok(());
        }
        let d = &mut self.data;
        d.budget.queued(data.len());
        if d.budget.is_full() {
            d.writable_owed = true;
        }
        match (d.connected, d.conn) {
            (true, Some(c)) => self.out.push(Output::Transmit {
                conn: c,
                payload: Payload::Bytes(data),
            }),
            _ => d.queue.push_back(data),
        }
        Ok(())
    }

    /// The upload's last byte was sent: the data connection closes once
    /// flushed and the server's 226 completes it.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub fn finish(&mut self, id: OpId) -> Result<(), Error> {
        self.check_upload(id)?;
        self.data.finished = true;
        self.check_done();
        Ok(())
    }

    /// Whether the running upload `id` may take more now.
    pub fn is_writable(&self, id: OpId) -> bool {
        matches!(&self.current, Some((c, Kind::Put { .. })) if *c == id)
            && self.data.started
            && !self.data.budget.is_full()
    }

    fn check_upload(&self, id: OpId) -> Result<(), Error> {
        match &self.current {
            Some((c, Kind::Put { .. })) if *c == id && !self.data.finished => Ok(()),
            Some((c, Kind::Put { .. })) if *c == id => Err(Error::Finished),
            _ => Err(Error::UnknownRequest),
        }
    }

    fn push(&mut self, kind: Kind) -> Result<OpId, Error> {
        self.next_op += 1;
        let id = OpId(self.next_op);
        self.queue.push_back((id, kind));
        if self.phase == Phase::Idle {
            self.next();
        }
        Ok(id)
    }

    // ---- the sequence ---------------------------------------------------

    fn send_cmd(&mut self, verb: &str, arg: &str) {
        if let Some(c) = self.ctrl {
            // Arguments were checked when the operation was queued.
            if command::encode(verb, arg, &mut self.out.buf).is_ok() {
                self.out.transmit_buf(c);
            }
        }
        self.deadline = Some(self.now.mono + self.config.timeout);
    }

    /// Starts the next queued operation.
    fn next(&mut self) {
        self.deadline = None;
        let Some((id, kind)) = self.queue.pop_front() else {
            self.phase = Phase::Idle;
            return;
        };
        self.data = Data {
            budget: OutputBudget::new(self.config.upload_high, self.config.upload_low),
            ..Data::default()
        };
        self.current = Some((id, kind.clone()));
        match kind {
            Kind::Simple { verb, path } => {
                self.phase = Phase::Simple;
                self.send_cmd(verb, &path);
            }
            Kind::Size { path } => {
                self.phase = Phase::Simple;
                self.send_cmd("SIZE", &path);
            }
            Kind::Rename { from, .. } => {
                self.phase = Phase::Rnfr;
                self.send_cmd("RNFR", &from);
            }
            Kind::Quit => {
                self.phase = Phase::Quit;
                self.send_cmd("QUIT", "");
            }
            Kind::Get { offset, .. }
            | Kind::Put {
                offset,
                append: false,
                ..
            } if offset > 0 => {
                self.phase = Phase::Rest;
                self.send_cmd("REST", &offset.to_string());
            }
            _ => self.data_setup(),
        }
    }

    fn data_setup(&mut self) {
        if self.config.active {
            let ip = self
                .local
                .map_or(IpAddr::V4(core::net::Ipv4Addr::LOCALHOST), |a| {
                    canonical_ip(a.ip())
                });
            let l = self.ids.next_id();
            self.data.listener = Some(l);
            self.phase = Phase::Listening;
            self.out.push(Output::Open {
                conn: l,
                how: Open::Listen(SocketAddr::new(ip, 0)),
            });
            self.deadline = Some(self.now.mono + self.config.timeout);
        } else if self.epsv_failed {
            self.phase = Phase::Pasv;
            self.send_cmd("PASV", "");
        } else {
            self.phase = Phase::Epsv;
            self.send_cmd("EPSV", "");
        }
    }

    fn transfer_cmd(&mut self) {
        let Some((_, kind)) = &self.current else {
            return;
        };
        let (verb, arg) = match kind {
            Kind::Get { path, .. } => ("RETR", path.clone()),
            Kind::Put { path, append, .. } => (if *append { "APPE" } else { "STOR" }, path.clone()),
            Kind::List { path, format } => (
                match format {
                    ListFormat::Nlst => "NLST",
                    ListFormat::Mlsd => "MLSD",
                    _ => "LIST",
                },
                path.clone(),
            ),
            _ => return,
        };
        self.phase = Phase::Transfer;
        self.send_cmd(verb, &arg);
    }

    fn connect_data(&mut self, port: u16) {
        let Some(peer) = self.peer else {
            return self.fail(ClientError::Open(OpenError::Unreachable));
        };
        let c = self.ids.next_id();
        self.data.conn = Some(c);
        self.data.port = Some(port);
        self.out.push(Output::Open {
            conn: c,
            how: Open::Connect {
                host: canonical_ip(peer.ip()).to_string(),
                port,
                timeout: Some(self.config.timeout),
            },
        });
    }

    fn on_reply(&mut self, r: Reply) {
        let class = r.class();
        if class == 1 {
            if self.phase == Phase::Transfer {
                self.data.started = true;
                self.flush_upload();
                if let Some((id, Kind::Put { .. })) = &self.current {
                    let id = *id;
                    self.out.event(ClientEvent::Writable { id });
                }
            }
            return;
        }
        match self.phase {
            Phase::Greeting if r.code == 220 && self.config.tls.is_some() => {
                self.phase = Phase::Auth;
                self.send_cmd("AUTH", "TLS");
            }
            Phase::Greeting if r.code == 220 => self.user(),
            Phase::Auth if r.code == 234 => {
                let Some(c) = self.ctrl else { return };
                self.phase = Phase::Securing;
                self.out.push(Output::Open {
                    conn: c,
                    how: Open::StartTls {
                        role: Role::Client,
                        server_name: self.config.tls.clone(),
                        resume_from: None,
                    },
                });
            }
            Phase::Pbsz if class == 2 => {
                self.phase = Phase::Prot;
                self.send_cmd("PROT", "P");
            }
            Phase::Prot if class == 2 => {
                self.phase = Phase::Type;
                self.send_cmd("TYPE", "I");
            }
            Phase::User if r.code == 230 => self.logged_in(),
            Phase::User if r.code == 331 => {
                self.phase = Phase::Pass;
                let p = self.config.password.clone();
                self.send_cmd("PASS", &p);
            }
            Phase::Pass if r.code == 230 || r.code == 202 => self.logged_in(),
            Phase::Type if class == 2 => {
                self.out.event(ClientEvent::LoggedIn);
                self.next();
            }
            Phase::Greeting
            | Phase::Auth
            | Phase::Securing
            | Phase::User
            | Phase::Pass
            | Phase::Pbsz
            | Phase::Prot
            | Phase::Type => {
                self.fatal(ClientError::Refused(r));
            }
            Phase::Simple if class == 2 => {
                let outcome = match &self.current {
                    Some((_, Kind::Size { .. })) => match r.text().trim().parse() {
                        Ok(n) => Outcome::Size(n),
                        Err(_) => return self.fail(ClientError::Refused(r)),
                    },
                    _ => Outcome::Ok,
                };
                self.complete(Ok(outcome));
            }
            Phase::Rnfr if class == 3 => {
                if let Some((_, Kind::Rename { to, .. })) = &self.current {
                    let to = to.clone();
                    self.phase = Phase::Simple;
                    self.send_cmd("RNTO", &to);
                }
            }
            Phase::Rest if class == 3 => self.data_setup(),
            Phase::Epsv if r.code == 229 => match parse_epsv_reply(r.text()) {
                Ok(port) => {
                    self.connect_data(port);
                }
                Err(e) => self.fail(ClientError::Protocol(Violation::Addr(e))),
            },
            Phase::Epsv if matches!(r.code, 500 | 501 | 502 | 522) => {
                // An old server: PASV from now on.
                self.epsv_failed = true;
                self.data_setup();
            }
            Phase::Pasv if r.code == 227 => match parse_pasv_reply(r.text()) {
                Ok(a) => self.connect_data(a.port()),
                Err(e) => self.fail(ClientError::Protocol(Violation::Addr(e))),
            },
            Phase::Port if class == 2 => self.transfer_cmd(),
            Phase::Port
                if matches!(r.code, 500 | 501 | 502 | 522)
                    && !self.eprt_failed
                    && self.data.listen_addr.is_some_and(|a| a.is_ipv4()) =>
            {
                // An old server: PORT from now on.
                self.eprt_failed = true;
                self.announce_port();
            }
            Phase::Transfer => {
                if class == 2 {
                    self.data.reply = Some(r);
                    self.check_done();
                } else {
                    self.fail(ClientError::Refused(r));
                }
            }
            Phase::Quit => {
                self.complete(Ok(Outcome::Ok));
                if let Some(c) = self.ctrl {
                    self.out.close(c, Close::Graceful);
                }
                self.phase = Phase::Done;
            }
            _ => self.fail(ClientError::Refused(r)),
        }
    }

    fn user(&mut self) {
        self.phase = Phase::User;
        let u = self.config.user.clone();
        self.send_cmd("USER", &u);
    }

    fn logged_in(&mut self) {
        if self.config.tls.is_some() {
            // RFC 4217 §9: PBSZ 0 then PROT P, once, after the login.
            self.phase = Phase::Pbsz;
            self.send_cmd("PBSZ", "0");
        } else {
            self.phase = Phase::Type;
            self.send_cmd("TYPE", "I");
        }
    }

    fn flush_upload(&mut self) {
        if let (true, true, Some(c)) = (self.data.connected, self.data.started, self.data.conn) {
            while let Some(b) = self.data.queue.pop_front() {
                self.out.push(Output::Transmit {
                    conn: c,
                    payload: Payload::Bytes(b),
                });
            }
        }
        self.check_done();
    }

    /// Closes a finished upload's connection; completes a transfer once
    /// both its data end and its final reply are seen.
    fn check_done(&mut self) {
        if self.phase != Phase::Transfer {
            return;
        }
        let upload = matches!(self.current, Some((_, Kind::Put { .. })));
        let d = &mut self.data;
        if upload && d.finished && d.connected && d.started && d.queue.is_empty() && !d.close_sent {
            if let Some(c) = d.conn {
                d.close_sent = true;
                self.out.close(c, Close::Graceful);
            }
        }
        if self.data.ended && self.data.reply.is_some() {
            self.complete(Ok(Outcome::Ok));
        }
    }

    fn complete(&mut self, result: Result<Outcome, ClientError>) {
        if let Some((id, _)) = self.current.take() {
            self.out.event(ClientEvent::Done { id, result });
        }
        self.close_data(Close::Graceful);
        if self.phase != Phase::Done {
            self.next();
        }
    }

    /// The operation failed; the session goes on.
    fn fail(&mut self, e: ClientError) {
        self.close_data(Close::Abort);
        self.complete(Err(e));
    }

    /// The session cannot go on: everything fails, the connection closes.
    fn fatal(&mut self, e: ClientError) {
        if self.phase == Phase::Done {
            return;
        }
        self.out.event(ClientEvent::Failed(e.clone()));
        self.close_data(Close::Abort);
        if let Some((id, _)) = self.current.take() {
            self.out.event(ClientEvent::Done {
                id,
                result: Err(e.clone()),
            });
        }
        while let Some((id, _)) = self.queue.pop_front() {
            self.out.event(ClientEvent::Done {
                id,
                result: Err(e.clone()),
            });
        }
        if let Some(c) = self.ctrl {
            self.out.close(c, Close::Graceful);
        }
        self.phase = Phase::Done;
        self.deadline = None;
    }

    fn close_data(&mut self, how: Close) {
        let d = core::mem::take(&mut self.data);
        if let Some(l) = d.listener {
            self.out.close(l, Close::Abort);
        }
        if let Some(c) = d.conn {
            if !(d.ended && d.close_sent) {
                self.out.close(c, how);
            }
        }
    }

    /// Tells the server where our active-mode listener is.
    fn announce_port(&mut self) {
        let Some(addr) = self.data.listen_addr else {
            return;
        };
        self.phase = Phase::Port;
        match (addr, self.eprt_failed) {
            (SocketAddr::V4(a), true) => self.send_cmd("PORT", &format_port(a)),
            (a, _) => self.send_cmd("EPRT", &format_eprt(a)),
        }
    }

    fn on_data_conn_open(&mut self, conn: ConnId) {
        if self.data.conn != Some(conn) {
            return;
        }
        if self.config.tls.is_some() {
            // PROT P: our TLS session first; the transfer command goes at
            // once (a server may only take up the connection after it).
            self.data.securing = true;
            self.out.push(Output::Open {
                conn,
                how: Open::StartTls {
                    role: Role::Client,
                    server_name: self.config.tls.clone(),
                    resume_from: self.ctrl,
                },
            });
            if self.phase == Phase::Epsv || self.phase == Phase::Pasv {
                self.transfer_cmd();
            }
            return;
        }
        self.data_ready(conn);
    }

    /// The data connection may carry the transfer now.
    fn data_ready(&mut self, conn: ConnId) {
        if self.data.conn != Some(conn) {
            return;
        }
        self.data.securing = false;
        self.data.connected = true;
        if self.phase == Phase::Epsv || self.phase == Phase::Pasv {
            // Connected first, then the command (the server may wait for
            // the connection before its 150).
            self.transfer_cmd();
        }
        self.flush_upload();
    }
}

fn checked(s: &str) -> Result<String, Error> {
    if s.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        Err(Error::BadArgument)
    } else {
        Ok(s.to_string())
    }
}

impl Machine for Client {
    type Event = ClientEvent;
    type Error = Error;

    fn handle_input(&mut self, now: Now, input: Input<'_>) -> Result<usize, Error> {
        self.now = now;
        match input {
            Input::Opened { conn, local, peer } => {
                if self.ctrl.is_none() && !conn.is_machine_chosen() {
                    self.ctrl = Some(conn);
                    self.local = local.ip();
                    self.peer = peer.ip();
                    self.deadline = Some(now.mono + self.config.timeout);
                } else if Some(conn) == self.data.listener {
                    // Our active-mode listener: announce it.
                    let Some(addr) = local.ip() else {
                        self.fail(ClientError::Open(OpenError::Unsupported));
                        return Ok(0);
                    };
                    self.data.listen_addr = Some(addr);
                    self.announce_port();
                } else {
                    self.on_data_conn_open(conn);
                }
            }
            Input::Secured { conn, .. } => {
                if Some(conn) == self.ctrl && self.phase == Phase::Securing {
                    self.user();
                } else if Some(conn) == self.data.conn && self.data.securing {
                    self.data_ready(conn);
                }
            }
            Input::OpenFailed { conn, error } => {
                if Some(conn) == self.ctrl || self.ctrl.is_none() {
                    self.fatal(ClientError::Open(error));
                } else if Some(conn) == self.data.conn || Some(conn) == self.data.listener {
                    self.fail(ClientError::Open(error));
                }
            }
            Input::Accepted {
                conn,
                listener,
                peer,
                ..
            } => {
                let ours = self.data.listener.map(|l| ListenerId(l.0)) == Some(listener);
                let from_server = match (peer.ip(), self.peer) {
                    (Some(p), Some(s)) => canonical_ip(p.ip()) == canonical_ip(s.ip()),
                    _ => true,
                };
                if !ours || !from_server || self.data.conn.is_some() {
                    self.out.close(conn, Close::Abort);
                } else {
                    if let Some(l) = self.data.listener.take() {
                        self.out.close(l, Close::Abort);
                    }
                    self.data.conn = Some(conn);
                    self.on_data_conn_open(conn);
                }
            }
            Input::Data { conn, bytes } => {
                self.deadline = self.deadline.map(|_| now.mono + self.config.timeout);
                if Some(conn) == self.ctrl {
                    if self.phase == Phase::Securing {
                        // Plaintext after 234 and before the handshake.
                        self.fatal(ClientError::Protocol(Violation::PlaintextAfterAuth));
                        return Ok(bytes.len());
                    }
                    self.inbuf.extend_from_slice(bytes);
                    loop {
                        match self.parser.decode(&mut self.inbuf) {
                            Ok(Some(r)) => self.on_reply(r),
                            Ok(None) => break,
                            Err(e) => {
                                self.fatal(ClientError::Protocol(Violation::Reply(e)));
                                break;
                            }
                        }
                        if self.phase == Phase::Securing {
                            if !self.inbuf.is_empty() {
                                // The server spoke past its 234 in the
                                // clear: never read into the session.
                                self.fatal(ClientError::Protocol(Violation::PlaintextAfterAuth));
                            }
                            break;
                        }
                    }
                } else if Some(conn) == self.data.conn {
                    if let Some((id, Kind::Get { .. } | Kind::List { .. })) = &self.current {
                        let id = *id;
                        self.out.event(ClientEvent::Data {
                            id,
                            data: Bytes::copy_from_slice(bytes),
                        });
                    }
                }
                return Ok(bytes.len());
            }
            Input::Eof { conn, .. } => {
                if Some(conn) == self.ctrl {
                    self.fatal(ClientError::Closed);
                } else if Some(conn) == self.data.conn {
                    self.data.ended = true;
                    self.data.close_sent = true;
                    self.out.close(conn, Close::Graceful);
                    self.check_done();
                }
            }
            Input::Sent { conn, bytes } if Some(conn) == self.data.conn => {
                self.data.budget.sent(bytes);
                if self.data.writable_owed && self.data.budget.has_room() {
                    self.data.writable_owed = false;
                    if let Some((id, _)) = &self.current {
                        let id = *id;
                        self.out.event(ClientEvent::Writable { id });
                    }
                }
            }
            Input::Closed { conn } => {
                if Some(conn) == self.ctrl {
                    self.ctrl = None;
                    if self.phase != Phase::Done {
                        self.fatal(ClientError::Closed);
                    }
                    self.out.event(ClientEvent::Closed);
                } else if Some(conn) == self.data.conn {
                    let upload = matches!(self.current, Some((_, Kind::Put { .. })));
                    if self.data.close_sent || upload && self.data.finished {
                        self.data.ended = true;
                        self.check_done();
                    } else if !self.data.ended {
                        self.fail(ClientError::Closed);
                    }
                }
            }
            _ => {}
        }
        Ok(0)
    }

    fn handle_timeout(&mut self, now: Now) {
        self.now = now;
        if self.deadline.is_some_and(|d| d <= now.mono) && self.phase != Phase::Idle {
            self.fatal(ClientError::TimedOut);
        }
    }

    fn poll_output(&mut self) -> Output<ClientEvent> {
        let d = if self.phase == Phase::Idle || self.phase == Phase::Done {
            None
        } else {
            self.deadline
        };
        self.out.pop_or_wait(d)
    }
}
