//! The FTP server machine: one control connection and every data
//! connection it opens, in one sans-IO [`Server`].
//!
//! Serve it as a factory (one machine per accepted control connection).
//! For each data channel it asks the driver for a connection itself:
//! `Open { Listen }` for PASV/EPSV (the accepted connection arrives on the
//! machine's own listener, and must come from the control connection's
//! peer), `Open { Connect }` for PORT/EPRT (only back to the client's own
//! address: no bounce).
//!
//! The machine never touches a file. File-system work goes to the
//! application as [`ServerEvent::Request`] with an [`Op`]; the application
//! answers with the command methods ([`Server::done`], [`Server::fail`],
//! [`Server::listing`], [`Server::send_data`], [`Server::send_file`],
//! [`Server::finish`], [`Server::start_upload`], [`Server::consumed`] …).
//! Passwords go out as [`ServerEvent::Login`] and come back through
//! [`Server::login`].
//!
//! # States (one command at a time)
//! | state | leaves on |
//! |---|---|
//! | idle | a command line: answered at once, or a request/transfer starts |
//! | request pending | the application's answer; ABOR drops it |
//! | transfer | both its data channel's end *and* the application's end (either order), then 226; ABOR, a lost data connection or the data timeout end it early (426/425) |
//! | login delay | after a failed login, input pauses for a growing delay before the 530 |
//!
//! While a request or transfer is pending, ABOR, STAT, NOOP and QUIT are
//! served at once; any other command waits (the control connection stops
//! being read until the pending one ends).
//!
//! # The drain rule
//! After `handle_input`, `handle_timeout` or any command method, call
//! `poll_output` until `Wait`.

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};
use core::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

use twill_core::io::FileId;
use twill_core::{
    Addr, Close, ConnId, Duration, IdAllocator, Input, Instant, ListenerId, Machine, Now, Open,
    OpenError, OutQueue, Output, OutputBudget, Payload, Role,
};

use crate::codec::addr::{canonical_ip, format_port, parse_eprt, parse_port};
use crate::codec::ascii::{FromNetwork, ToNetwork};
use crate::codec::command::{self, Verb};
use crate::codec::reply;
use crate::error::{CommandError, Error, Violation};
use crate::path::VPath;

/// Settings of a [`Server`].
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The 220 greeting's text.
    pub greeting: String,
    /// Accept `USER anonymous` / `USER ftp` with any password, read-only.
    pub anonymous: bool,
    /// Passive ports to listen on, inclusive; `None`: any free port.
    pub passive_ports: Option<(u16, u16)>,
    /// The address to announce in 227 replies instead of the control
    /// connection's local address (a server behind NAT).
    pub passive_address: Option<Ipv4Addr>,
    /// Allow PORT/EPRT (active mode).
    pub active: bool,
    /// Longest command line, ending excluded; longer lines get 500.
    pub max_line: usize,
    /// Failed logins before the connection is closed with 421.
    pub max_login_failures: u32,
    /// Delay before the 530 of the first failed login; doubles each time.
    pub login_delay: Duration,
    /// How long to wait for a data connection (passive accept, active
    /// connect) once a transfer needs it.
    pub data_timeout: Duration,
    /// Close the control connection (421) after this long without a
    /// command while no transfer runs.
    pub idle_timeout: Option<Duration>,
    /// Whether the application may send file ranges as
    /// `Payload::File` (off behind TLS, which needs the bytes).
    pub file_payloads: bool,
    /// Upload bytes handed to the application and not yet
    /// [`consumed`](Server::consumed) before the data connection pauses.
    pub upload_window: usize,
    /// Unflushed download bytes above which the application is asked to
    /// wait for [`ServerEvent::Writable`].
    pub download_high: usize,
    /// … and below which it may send again.
    pub download_low: usize,
    /// Offer AUTH TLS, PBSZ and PROT (RFC 4217). The machine must then run
    /// inside the TLS layer with a server configuration: it asks for each
    /// session (the control connection's after 234, each protected data
    /// connection's) with `Open { StartTls }`.
    pub tls: bool,
    /// Refuse USER (534) and PASS (530) until the control connection is
    /// TLS, and data transfers (521) until `PROT P`.
    pub require_tls: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            greeting: "twill FTP server ready".into(),
            anonymous: false,
            passive_ports: None,
            passive_address: None,
            active: true,
            max_line: 4096,
            max_login_failures: 3,
            login_delay: Duration::from_secs(1),
            data_timeout: Duration::from_secs(30),
            idle_timeout: Some(Duration::from_secs(300)),
            file_payloads: true,
            upload_window: 1 << 20,
            download_high: 1 << 20,
            download_low: 256 << 10,
            tls: false,
            require_tls: false,
        }
    }
}

/// One request to the application, answered by a command method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// What a listing request wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListFormat {
    /// LIST: `ls -l` lines.
    List,
    /// NLST: names only, one per line.
    Nlst,
    /// MLSD: RFC 3659 facts lines (with `type=cdir` for the directory).
    Mlsd,
    /// STAT with a path: `ls -l` lines, sent over the control connection.
    Stat,
}

/// File-system work for the application. Every path is already confined
/// to the served tree lexically (see [`VPath`]); symlinks are the
/// application's to check.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
    /// Send a file from `offset` (REST): answer with [`Server::send_file`]
    /// or [`Server::send_data`] chunks, then [`Server::finish`]; or
    /// [`Server::fail`]. `ascii`: TYPE A, so send bytes (the machine
    /// converts line ends), not file payloads.
    Retr {
        /// The file.
        path: VPath,
        /// Where to start.
        offset: u64,
        /// TYPE A.
        ascii: bool,
    },
    /// Receive a file: open it (truncate, or append, or write from
    /// `offset`), then [`Server::start_upload`]; data arrives as
    /// [`ServerEvent::Upload`] and ends with [`ServerEvent::UploadEnd`],
    /// after which [`Server::done`] or [`Server::fail`].
    Stor {
        /// The file.
        path: VPath,
        /// Write from this offset (REST); 0 otherwise.
        offset: u64,
        /// APPE: append.
        append: bool,
        /// TYPE A (the machine already converted CRLF to LF).
        ascii: bool,
    },
    /// A directory listing (or a single file's line): answer with
    /// [`Server::listing`] (lines ending in CRLF) or [`Server::fail`].
    List {
        /// The directory or file.
        path: VPath,
        /// Which format.
        format: ListFormat,
    },
    /// MLST: answer with [`Server::facts`] (the entry's facts line).
    Mlst {
        /// The file or directory.
        path: VPath,
    },
    /// SIZE: answer with [`Server::size`].
    Size {
        /// The file.
        path: VPath,
    },
    /// MDTM: answer with [`Server::modified`].
    Mdtm {
        /// The file.
        path: VPath,
    },
    /// CWD/CDUP: [`Server::done`] if it is a directory one may enter.
    Cwd {
        /// The directory.
        path: VPath,
    },
    /// MKD: [`Server::done`] once created.
    Mkd {
        /// The new directory.
        path: VPath,
    },
    /// RMD: [`Server::done`] once removed.
    Rmd {
        /// The directory.
        path: VPath,
    },
    /// DELE: [`Server::done`] once removed.
    Dele {
        /// The file.
        path: VPath,
    },
    /// RNFR: [`Server::done`] if it exists (the machine then answers 350).
    RenameFrom {
        /// The source.
        path: VPath,
    },
    /// RNTO: [`Server::done`] once renamed.
    Rename {
        /// The source, from RNFR.
        from: VPath,
        /// The target.
        to: VPath,
    },
}

/// Why a request failed, as the application tells the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FsError {
    /// No such file or directory (550).
    NotFound,
    /// Not allowed, or outside the served tree (550).
    PermissionDenied,
    /// The target exists (550).
    Exists,
    /// The directory is not empty (550).
    NotEmpty,
    /// A directory where a file is needed or the other way round (550).
    WrongKind,
    /// Out of space (452, or 552 mid-upload).
    NoSpace,
    /// Anything else, described (451).
    Other(String),
}

impl FsError {
    fn reply(&self) -> (u16, String) {
        match self {
            FsError::NotFound => (550, "No such file or directory.".into()),
            FsError::PermissionDenied => (550, "Permission denied.".into()),
            FsError::Exists => (550, "File exists.".into()),
            FsError::NotEmpty => (550, "Directory not empty.".into()),
            FsError::WrongKind => (550, "Not a plain file or not a directory.".into()),
            FsError::NoSpace => (452, "Insufficient storage space.".into()),
            FsError::Other(s) => (451, format!("Local error: {s}.")),
        }
    }
}

/// What the server machine tells the application.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// A named user sent a password: verify it (off the event thread) and
    /// call [`Server::login`].
    Login {
        /// Answer with this id.
        id: RequestId,
        /// USER's argument.
        user: String,
        /// PASS's argument.
        password: String,
    },
    /// A login succeeded.
    LoggedIn {
        /// The user name.
        user: String,
        /// Anonymous (read-only) access.
        anonymous: bool,
    },
    /// File-system work; see [`Op`].
    Request {
        /// Answer with this id.
        id: RequestId,
        /// What to do.
        op: Op,
    },
    /// Upload bytes (after TYPE A conversion): write them, then call
    /// [`Server::consumed`].
    Upload {
        /// The STOR/APPE request.
        id: RequestId,
        /// The bytes, in order.
        data: Bytes,
    },
    /// The client finished sending the upload: flush, then
    /// [`Server::done`] (226) or [`Server::fail`].
    UploadEnd {
        /// The request.
        id: RequestId,
    },
    /// A download may take more data now.
    Writable {
        /// The RETR request.
        id: RequestId,
    },
    /// A request ended without the application (ABOR, a lost data or
    /// control connection, a data-connection timeout): release what it
    /// holds; further answers to it are refused with
    /// [`Error::UnknownRequest`].
    Aborted {
        /// The request.
        id: RequestId,
    },
    /// A transfer completed and 226 was sent.
    TransferDone {
        /// The request.
        id: RequestId,
        /// Bytes moved on the data connection.
        bytes: u64,
    },
    /// The peer did something wrong (answered per the RFC).
    Violation(Violation),
    /// The control connection is gone; so is every data connection.
    Closed,
}

/// Whether a transfer sends or receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    Download { listing: bool },
    Upload,
}

#[derive(Debug)]
struct Transfer {
    dir: Dir,
    /// 150/125 sent: the application accepted the request.
    started: bool,
    /// The data connection, once accepted (passive) or asked for (active).
    conn: Option<ConnId>,
    /// The data connection is open and ours.
    connected: bool,
    /// Download payloads waiting for the connection.
    queue: VecDeque<Payload>,
    budget: OutputBudget,
    writable_owed: bool,
    /// The application's end: `finish` (download) or `done` (upload).
    app_done: bool,
    /// The data channel's end: `Closed` after our close (download), the
    /// client's EOF (upload).
    data_done: bool,
    close_sent: bool,
    to_net: ToNetwork,
    from_net: FromNetwork,
    ascii: bool,
    bytes: u64,
    /// Upload bytes handed over and not consumed.
    unconsumed: usize,
    /// The data connection's input is paused (short take).
    paused: bool,
    /// When the data connection must exist by.
    deadline: Option<Instant>,
    /// What the transfer's description says in the 150.
    what: String,
    /// PROT P: the data connection is TLS (no file payloads).
    private: bool,
}

#[derive(Debug)]
enum Pending {
    /// A PASS waiting for [`Server::login`].
    Login { user: String },
    /// A request that is answered on the control connection.
    Simple(Op),
    /// A transfer.
    Transfer(Op, Transfer),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Auth {
    None,
    User(String),
    In { user: String, anonymous: bool },
}

/// The control connection's TLS (RFC 4217).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CtrlTls {
    Plain,
    /// 234 sent and `StartTls` asked: nothing is read until `Secured`.
    Starting,
    Secured,
}

#[derive(Debug)]
enum DataSetup {
    None,
    Passive {
        listener: ConnId,
        /// The bound address, once `Opened`.
        bound: Option<SocketAddr>,
        extended: bool,
        /// The port tried, and how many of the range are left.
        port: u16,
        tries: u32,
        /// A connection accepted from the right peer, not yet used.
        conn: Option<ConnId>,
    },
    Active(SocketAddr),
}

/// The FTP server machine; see the module docs.
pub struct Server {
    config: ServerConfig,
    out: OutQueue<ServerEvent>,
    ids: IdAllocator,
    next_request: u64,
    now: Now,

    ctrl: Option<ConnId>,
    local: Option<SocketAddr>,
    peer: Option<SocketAddr>,
    inbuf: BytesMut,
    scanned: usize,
    /// Dropping the rest of an overlong line.
    skipping: bool,
    /// We returned a short take on the control connection.
    ctrl_paused: bool,
    ctrl_budget: OutputBudget,
    closing: bool,

    auth: Auth,
    failures: u32,
    login_delay_until: Option<Instant>,
    cwd: VPath,
    ascii: bool,
    rest: u64,
    rnfr: Option<VPath>,
    epsv_all: bool,
    data: DataSetup,
    pending: Option<(RequestId, Pending)>,
    /// A command line read while another was pending.
    deferred: Option<Bytes>,
    idle_deadline: Option<Instant>,

    ctrl_tls: CtrlTls,
    /// PBSZ was given on the protected control connection.
    pbsz: bool,
    /// PROT P: data connections are TLS.
    prot_private: bool,
    /// The data connection whose TLS handshake runs: not used before
    /// `Secured`.
    securing: Option<ConnId>,
}

/// Replies that are the same for every session.
const FEATURES: &[&str] = &[
    " EPRT",
    " EPSV",
    " MDTM",
    " MLST type*;size*;modify*;perm*;",
    " PASV",
    " REST STREAM",
    " SIZE",
    " TVFS",
    " UTF8",
];

impl Server {
    /// A server for one control connection.
    pub fn new(config: ServerConfig) -> Server {
        let budget = OutputBudget::new(64 * 1024, 16 * 1024);
        Server {
            config,
            out: OutQueue::new(),
            ids: IdAllocator::for_machine(),
            next_request: 0,
            now: Now::default(),
            ctrl: None,
            local: None,
            peer: None,
            inbuf: BytesMut::new(),
            scanned: 0,
            skipping: false,
            ctrl_paused: false,
            ctrl_budget: budget,
            closing: false,
            auth: Auth::None,
            failures: 0,
            login_delay_until: None,
            cwd: VPath::root(),
            ascii: false,
            rest: 0,
            rnfr: None,
            epsv_all: false,
            data: DataSetup::None,
            pending: None,
            deferred: None,
            idle_deadline: None,
            ctrl_tls: CtrlTls::Plain,
            pbsz: false,
            prot_private: false,
            securing: None,
        }
    }

    // ---- getters --------------------------------------------------------

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The logged-in user, if any, and whether anonymously.
    pub fn user(&self) -> Option<(&str, bool)> {
        match &self.auth {
            Auth::In { user, anonymous } => Some((user, *anonymous)),
            _ => None,
        }
    }

    /// The working directory.
    pub fn cwd(&self) -> &VPath {
        &self.cwd
    }

    /// Whether request `id` is still waiting for the application.
    pub fn is_open(&self, id: RequestId) -> bool {
        matches!(&self.pending, Some((p, _)) if *p == id)
    }

    /// Whether the control connection is TLS (after AUTH TLS, or an
    /// `ssl:` listener's).
    pub fn is_secured(&self) -> bool {
        self.ctrl_tls == CtrlTls::Secured
    }

    /// Whether download `id` may be answered with
    /// [`send_file`](Self::send_file): file payloads are allowed, TYPE I,
    /// and the data connection is not TLS (PROT C).
    pub fn can_send_file(&self, id: RequestId) -> bool {
        match &self.pending {
            Some((p, Pending::Transfer(_, t))) if *p == id => {
                self.config.file_payloads && !t.ascii && !t.private
            }
            _ => false,
        }
    }

    /// Whether download `id` may take more data now (otherwise wait for
    /// [`ServerEvent::Writable`]).
    pub fn is_writable(&self, id: RequestId) -> bool {
        match &self.pending {
            Some((p, Pending::Transfer(_, t))) if *p == id => !t.budget.is_full(),
            _ => false,
        }
    }

    // ---- commands (the application's answers) ---------------------------

    /// Answers a [`ServerEvent::Login`].
    ///
    /// # Errors
    /// `id` is not a pending login.
    pub fn login(&mut self, id: RequestId, ok: bool) -> Result<(), Error> {
        let user = match self.pending.take() {
            Some((p, Pending::Login { user })) if p == id => user,
            other => {
                self.pending = other;
                return Err(Error::UnknownRequest);
            }
        };
        if ok {
            self.failures = 0;
            self.reply(230, "Login successful.");
            self.out.event(ServerEvent::LoggedIn {
                user: user.clone(),
                anonymous: false,
            });
            self.auth = Auth::In {
                user,
                anonymous: false,
            };
            self.cwd = VPath::root();
            self.after_pending();
        } else {
            self.failed_login();
        }
        Ok(())
    }

    /// Success of a request answered on the control connection (CWD, MKD,
    /// RMD, DELE, RNFR, RNTO), or the end of an upload after
    /// [`ServerEvent::UploadEnd`].
    ///
    /// # Errors
    /// Unknown request, or one that wants another answer.
    pub fn done(&mut self, id: RequestId) -> Result<(), Error> {
        match self.pending.take() {
            Some((p, Pending::Simple(op))) if p == id => {
                match op {
                    Op::Cwd { path } => {
                        self.reply(250, "Directory successfully changed.");
                        self.cwd = path;
                    }
                    Op::Mkd { path } => {
                        let text = format!("{} created.", path.quoted());
                        self.reply(257, &text);
                    }
                    Op::Rmd { .. } => self.reply(250, "Remove directory operation successful."),
                    Op::Dele { .. } => self.reply(250, "Delete operation successful."),
                    Op::RenameFrom { path } => {
                        self.reply(350, "Ready for RNTO.");
                        self.rnfr = Some(path);
                    }
                    Op::Rename { .. } => self.reply(250, "Rename successful."),
                    other => {
                        self.pending = Some((p, Pending::Simple(other)));
                        return Err(Error::WrongAnswer);
                    }
                }
                self.after_pending();
                Ok(())
            }
            Some((p, Pending::Transfer(op, mut t))) if p == id => {
                if t.dir != Dir::Upload || !t.started {
                    self.pending = Some((p, Pending::Transfer(op, t)));
                    return Err(Error::WrongAnswer);
                }
                t.app_done = true;
                self.pending = Some((p, Pending::Transfer(op, t)));
                self.check_transfer_end();
                Ok(())
            }
            other => {
                self.pending = other;
                Err(Error::UnknownRequest)
            }
        }
    }

    /// Failure of any request. A transfer that already started ends with
    /// 451 (552 for lack of space) and its data connection is reset.
    ///
    /// # Errors
    /// Unknown request.
    pub fn fail(&mut self, id: RequestId, error: FsError) -> Result<(), Error> {
        let Some((p, pending)) = self.pending.take() else {
            return Err(Error::UnknownRequest);
        };
        if p != id || matches!(pending, Pending::Login { .. }) {
            self.pending = Some((p, pending));
            return Err(Error::UnknownRequest);
        }
        let (mut code, text) = error.reply();
        if let Pending::Transfer(_, t) = pending {
            if t.started {
                if code == 452 {
                    code = 552;
                } else if code == 550 {
                    code = 451;
                }
            }
            self.drop_transfer(t);
        }
        self.reply(code, &text);
        self.after_pending();
        Ok(())
    }

    /// The listing for [`Op::List`]: lines, each ending in CRLF. Sent on
    /// the data connection (or, for STAT, in a 213 reply).
    ///
    /// # Errors
    /// Unknown request, or not a listing; `Finished` if it was answered
    /// already.
    pub fn listing(&mut self, id: RequestId, lines: Bytes) -> Result<(), Error> {
        match self.pending.take() {
            Some((p, Pending::Simple(Op::List { path, format })))
                if p == id && format == ListFormat::Stat =>
            {
                let text = String::from_utf8_lossy(&lines);
                let middle: Vec<String> = text
                    .split("\r\n")
                    .filter(|l| !l.is_empty())
                    .map(|l| format!(" {l}"))
                    .collect();
                let middle: Vec<&str> = middle.iter().map(String::as_str).collect();
                let first = format!("Status of {path}:");
                reply::encode_multi(213, &first, &middle, "End of status.", &mut self.out.buf);
                self.flush_ctrl();
                self.after_pending();
                Ok(())
            }
            Some((p, Pending::Transfer(op, t)))
                if p == id && t.dir == (Dir::Download { listing: true }) =>
            {
                // A listing is one answer: a second would be sent after
                // the data connection's close.
                let finished = t.app_done;
                self.pending = Some((p, Pending::Transfer(op, t)));
                if finished {
                    return Err(Error::Finished);
                }
                self.start_transfer();
                self.queue_data(Payload::Bytes(lines), false);
                self.finish_inner();
                Ok(())
            }
            other => {
                self.pending = other;
                Err(Error::WrongAnswer)
            }
        }
    }

    /// The facts line for [`Op::Mlst`] (`type=file;size=…; /path`).
    ///
    /// # Errors
    /// Unknown request, or not an MLST.
    pub fn facts(&mut self, id: RequestId, line: &str) -> Result<(), Error> {
        match self.pending.take() {
            Some((p, Pending::Simple(Op::Mlst { path }))) if p == id => {
                let first = format!("Listing {path}");
                let middle = format!(" {line}");
                reply::encode_multi(250, &first, &[&middle], "End", &mut self.out.buf);
                self.flush_ctrl();
                self.after_pending();
                Ok(())
            }
            other => {
                self.pending = other;
                Err(Error::WrongAnswer)
            }
        }
    }

    /// The size for [`Op::Size`] (213).
    ///
    /// # Errors
    /// Unknown request, or not a SIZE.
    pub fn size(&mut self, id: RequestId, size: u64) -> Result<(), Error> {
        self.simple_answer(
            id,
            |op| matches!(op, Op::Size { .. }),
            213,
            &size.to_string(),
        )
    }

    /// The modification time for [`Op::Mdtm`], Unix seconds (213
    /// `YYYYMMDDHHMMSS`).
    ///
    /// # Errors
    /// Unknown request, or not an MDTM.
    pub fn modified(&mut self, id: RequestId, secs: i64) -> Result<(), Error> {
        let t = crate::codec::list::time_val(secs);
        self.simple_answer(id, |op| matches!(op, Op::Mdtm { .. }), 213, &t)
    }

    /// Download data for [`Op::Retr`] (converted to CRLF line ends in TYPE
    /// A). Check [`is_writable`](Self::is_writable) before sending more.
    ///
    /// # Errors
    /// Unknown request, not a download, or already finished.
    pub fn send_data(&mut self, id: RequestId, data: Bytes) -> Result<(), Error> {
        self.check_download(id)?;
        self.start_transfer();
        self.queue_data(Payload::Bytes(data), true);
        Ok(())
    }

    /// A range of a registered file for [`Op::Retr`] (sent with
    /// `sendfile` by drivers that can). Only in TYPE I and with
    /// [`ServerConfig::file_payloads`].
    ///
    /// # Errors
    /// As [`send_data`](Self::send_data); also `WrongAnswer` unless
    /// [`can_send_file`](Self::can_send_file).
    pub fn send_file(
        &mut self,
        id: RequestId,
        file: FileId,
        offset: u64,
        len: u64,
    ) -> Result<(), Error> {
        self.check_download(id)?;
        if !self.can_send_file(id) {
            return Err(Error::WrongAnswer);
        }
        self.start_transfer();
        self.queue_data(
            Payload::File {
                id: file,
                offset,
                len,
            },
            false,
        );
        Ok(())
    }

    /// The application sent all of a download: once flushed, the data
    /// connection closes and 226 follows.
    ///
    /// # Errors
    /// Unknown request, not a download, or already finished.
    pub fn finish(&mut self, id: RequestId) -> Result<(), Error> {
        self.check_download(id)?;
        self.start_transfer();
        self.finish_inner();
        Ok(())
    }

    /// The application is ready to receive [`Op::Stor`]'s data: 150, and
    /// the data connection is read.
    ///
    /// # Errors
    /// Unknown request, or not an upload.
    pub fn start_upload(&mut self, id: RequestId) -> Result<(), Error> {
        match &self.pending {
            Some((p, Pending::Transfer(_, t))) if *p == id && t.dir == Dir::Upload => {
                if t.started {
                    return Err(Error::Finished);
                }
            }
            Some((p, _)) if *p == id => return Err(Error::WrongAnswer),
            _ => return Err(Error::UnknownRequest),
        }
        self.start_transfer();
        Ok(())
    }

    /// The application wrote `n` bytes of [`ServerEvent::Upload`] data;
    /// a paused data connection is read again once enough are.
    ///
    /// # Errors
    /// Unknown request.
    pub fn consumed(&mut self, id: RequestId, n: usize) -> Result<(), Error> {
        let window = self.config.upload_window;
        match &mut self.pending {
            Some((p, Pending::Transfer(_, t))) if *p == id && t.dir == Dir::Upload => {
                t.unconsumed = t.unconsumed.saturating_sub(n);
                if t.paused && t.connected && t.unconsumed <= window / 2 {
                    t.paused = false;
                    if let Some(c) = t.conn {
                        self.out.push(Output::Resume { conn: c });
                    }
                }
                Ok(())
            }
            _ => Err(Error::UnknownRequest),
        }
    }

    // ---- control input --------------------------------------------------

    fn input_blocked(&self) -> bool {
        self.deferred.is_some()
            || self.login_delay_until.is_some()
            || self.ctrl_budget.is_full()
            || self.closing
            || self.ctrl_tls == CtrlTls::Starting
    }

    fn on_ctrl_data(&mut self, bytes: &[u8]) -> usize {
        if self.input_blocked() {
            self.ctrl_paused = true;
            return 0;
        }
        self.idle_deadline = self.config.idle_timeout.map(|d| self.now.mono + d);
        self.inbuf.extend_from_slice(bytes);
        self.pump();
        if self.ctrl_tls == CtrlTls::Starting && !self.inbuf.is_empty() {
            let extra = self.inbuf.len();
            if extra <= bytes.len() {
                // Bytes after AUTH TLS are not taken: the TLS layer finds
                // them held when the session should start and refuses it
                // (they were sent before our 234 could be seen).
                self.inbuf.clear();
                self.scanned = 0;
                self.ctrl_paused = true;
                return bytes.len() - extra;
            }
            self.plaintext_after_auth();
        }
        bytes.len()
    }

    /// Commands pipelined behind AUTH TLS that this machine had already
    /// taken: never honoured; the session ends.
    fn plaintext_after_auth(&mut self) {
        self.inbuf.clear();
        self.scanned = 0;
        self.out
            .event(ServerEvent::Violation(Violation::PlaintextAfterAuth));
        self.close_all(Close::Abort);
    }

    /// Processes complete lines while nothing blocks.
    fn pump(&mut self) {
        loop {
            if self.closing
                || self.login_delay_until.is_some()
                || self.ctrl_tls == CtrlTls::Starting
            {
                return;
            }
            if self.pending.is_none() {
                if let Some(line) = self.deferred.take() {
                    self.command(&line);
                    continue;
                }
            } else if self.deferred.is_some() {
                return;
            }
            let from = self.scanned.min(self.inbuf.len());
            let Some(i) = memchr::memchr(b'\n', &self.inbuf[from..]) else {
                self.scanned = self.inbuf.len();
                if self.skipping {
                    self.inbuf.clear();
                    self.scanned = 0;
                } else if self.inbuf.len() > self.config.max_line.saturating_add(1) {
                    self.too_long();
                }
                return;
            };
            let lf = from + i;
            self.scanned = 0;
            let line = self.inbuf.split_to(lf + 1).freeze();
            if self.skipping {
                self.skipping = false;
                continue;
            }
            if lf > self.config.max_line.saturating_add(1) {
                self.too_long();
                self.skipping = false;
                continue;
            }
            let line = line.slice(..lf);
            if self.pending.is_some() {
                // Only a few commands are served during a transfer.
                if is_immediate(&line) {
                    self.command(&line);
                } else {
                    self.deferred = Some(line);
                }
            } else {
                self.command(&line);
            }
        }
    }

    fn too_long(&mut self) {
        self.inbuf.clear();
        self.scanned = 0;
        self.skipping = true;
        self.reply(500, "Command line too long.");
        self.out.event(ServerEvent::Violation(Violation::Command(
            CommandError::TooLong,
        )));
    }

    /// Resumes reading the control connection if nothing blocks it.
    fn maybe_resume(&mut self) {
        // A deferred command runs first (pump takes it once nothing is
        // pending), then whatever lines wait behind it.
        if self.pending.is_none()
            && self.login_delay_until.is_none()
            && !self.closing
            && !self.ctrl_budget.is_full()
            && self.ctrl_tls != CtrlTls::Starting
        {
            self.pump();
            if self.ctrl_tls == CtrlTls::Starting && !self.inbuf.is_empty() {
                self.plaintext_after_auth();
            }
        }
        if self.ctrl_paused && !self.input_blocked() {
            self.ctrl_paused = false;
            if let Some(c) = self.ctrl {
                self.out.push(Output::Resume { conn: c });
            }
        }
    }

    fn after_pending(&mut self) {
        // The idle clock restarts when a request ends: a transfer longer
        // than the idle timeout is not idleness.
        self.idle_deadline = self.config.idle_timeout.map(|d| self.now.mono + d);
        self.maybe_resume();
    }

    // ---- commands from the client ---------------------------------------

    fn command(&mut self, raw: &[u8]) {
        let stripped = command::strip_telnet(raw);
        // An urgent-data Synch can leave a stray Telnet byte (DM) in front.
        let start = stripped
            .iter()
            .position(|&b| b < 0xF0)
            .unwrap_or(stripped.len());
        let cmd = match command::parse(&stripped[start..]) {
            Ok(c) => c,
            Err(CommandError::Empty) => return,
            Err(e) => {
                let code = if e == CommandError::BadVerb { 500 } else { 501 };
                self.reply(code, "Syntax error.");
                self.out
                    .event(ServerEvent::Violation(Violation::Command(e)));
                return;
            }
        };
        let (verb, arg) = (cmd.verb, cmd.arg.to_string());
        // RNFR must be followed by RNTO at once.
        let rnfr = self.rnfr.take();
        match verb {
            Verb::User => self.user_cmd(&arg),
            Verb::Pass => self.pass_cmd(&arg),
            Verb::Quit => {
                self.reply(221, "Goodbye.");
                self.close_all(Close::Graceful);
            }
            Verb::Noop => self.reply(200, "NOOP ok."),
            Verb::Syst => self.reply(215, "UNIX Type: L8"),
            Verb::Feat => {
                let tls: &[&str] = if self.config.tls {
                    &[" AUTH TLS", " PBSZ", " PROT"]
                } else {
                    &[]
                };
                let mut lines: Vec<&str> = tls.to_vec();
                lines.extend_from_slice(FEATURES);
                reply::encode_multi(211, "Features:", &lines, "End", &mut self.out.buf);
                self.flush_ctrl();
            }
            Verb::Help => {
                reply::encode(
                    214,
                    "The following commands are recognized.\nABOR ALLO APPE CDUP CWD DELE EPRT EPSV FEAT HELP LIST MDTM MKD\nMLSD MLST MODE NLST NOOP OPTS PASS PASV PORT PWD QUIT REST RETR\nRMD RNFR RNTO SIZE STAT STOR STRU SYST TYPE USER XCUP XCWD XMKD XPWD XRMD\nHelp OK.",
                    &mut self.out.buf,
                );
                self.flush_ctrl();
            }
            Verb::Opts => {
                let a = arg.to_ascii_uppercase();
                if a == "UTF8 ON" || a == "UTF8" || a.starts_with("MLST") {
                    self.reply(200, "OK.");
                } else {
                    self.reply(501, "Option not understood.");
                }
            }
            Verb::Abor => self.abor(),
            Verb::Stat if self.pending.is_some() || arg.is_empty() => self.stat(),
            Verb::Auth | Verb::Pbsz | Verb::Prot if !self.config.tls => {
                self.reply(502, "TLS is not available on this server.")
            }
            Verb::Auth => self.auth_tls(&arg),
            Verb::Pbsz => self.pbsz(&arg),
            Verb::Prot => self.prot(&arg),
            Verb::Ccc => self.reply(502, "CCC is not implemented."),
            _ if !matches!(self.auth, Auth::In { .. }) => {
                self.reply(530, "Please login with USER and PASS.")
            }
            Verb::Pwd => {
                let text = format!("{} is the current directory.", self.cwd.quoted());
                self.reply(257, &text);
            }
            Verb::Cwd => {
                let path = self.cwd.join(&arg);
                self.request(Op::Cwd { path });
            }
            Verb::Cdup => {
                let path = self.cwd.parent();
                self.request(Op::Cwd { path });
            }
            Verb::Type => self.type_cmd(&arg),
            Verb::Mode => {
                if arg.eq_ignore_ascii_case("S") {
                    self.reply(200, "Mode set to S.");
                } else {
                    self.reply(504, "Only stream mode is supported.");
                }
            }
            Verb::Stru => {
                if arg.eq_ignore_ascii_case("F") {
                    self.reply(200, "Structure set to F.");
                } else {
                    self.reply(504, "Only file structure is supported.");
                }
            }
            Verb::Allo => self.reply(202, "ALLO is superfluous here."),
            Verb::Rest => match arg.trim().parse::<u64>() {
                Ok(n) => {
                    self.rest = n;
                    let text = format!("Restarting at {n}. Send STOR or RETR.");
                    self.reply(350, &text);
                }
                Err(_) => self.reply(501, "REST needs a byte offset."),
            },
            Verb::Pasv => self.passive(false, &arg),
            Verb::Epsv => self.passive(true, &arg),
            Verb::Port => self.active(false, &arg),
            Verb::Eprt => self.active(true, &arg),
            Verb::Size | Verb::Mdtm | Verb::Mlst if arg.is_empty() && verb != Verb::Mlst => {
                self.reply(501, "A path is required.")
            }
            Verb::Size => {
                let path = self.cwd.join(&arg);
                self.request(Op::Size { path });
            }
            Verb::Mdtm => {
                let path = self.cwd.join(&arg);
                self.request(Op::Mdtm { path });
            }
            Verb::Mlst => {
                let path = self.cwd.join(&arg);
                self.request(Op::Mlst { path });
            }
            Verb::Stat => {
                let path = self.cwd.join(list_arg(&arg));
                self.request(Op::List {
                    path,
                    format: ListFormat::Stat,
                });
            }
            Verb::List | Verb::Nlst | Verb::Mlsd => {
                let format = match verb {
                    Verb::List => ListFormat::List,
                    Verb::Nlst => ListFormat::Nlst,
                    _ => ListFormat::Mlsd,
                };
                let path = self.cwd.join(list_arg(&arg));
                self.transfer(
                    Op::List { path, format },
                    Dir::Download { listing: true },
                    "directory listing".into(),
                );
            }
            Verb::Retr => {
                if arg.is_empty() {
                    return self.reply(501, "A path is required.");
                }
                let path = self.cwd.join(&arg);
                let offset = core::mem::take(&mut self.rest);
                let what = format!(
                    "{} mode data connection for {path}",
                    if self.ascii { "ASCII" } else { "BINARY" }
                );
                let ascii = self.ascii;
                self.transfer(
                    Op::Retr {
                        path,
                        offset,
                        ascii,
                    },
                    Dir::Download { listing: false },
                    what,
                );
            }
            Verb::Stor | Verb::Appe => {
                if arg.is_empty() {
                    return self.reply(501, "A path is required.");
                }
                if self.read_only() {
                    return;
                }
                let path = self.cwd.join(&arg);
                let offset = core::mem::take(&mut self.rest);
                let what = format!(
                    "{} mode data connection for {path}",
                    if self.ascii { "ASCII" } else { "BINARY" }
                );
                let ascii = self.ascii;
                self.transfer(
                    Op::Stor {
                        path,
                        offset,
                        append: verb == Verb::Appe,
                        ascii,
                    },
                    Dir::Upload,
                    what,
                );
            }
            Verb::Dele | Verb::Mkd | Verb::Rmd | Verb::Rnfr => {
                if arg.is_empty() {
                    return self.reply(501, "A path is required.");
                }
                if self.read_only() {
                    return;
                }
                let path = self.cwd.join(&arg);
                if path.is_root() {
                    return self.reply(550, "Permission denied.");
                }
                self.request(match verb {
                    Verb::Dele => Op::Dele { path },
                    Verb::Mkd => Op::Mkd { path },
                    Verb::Rmd => Op::Rmd { path },
                    _ => Op::RenameFrom { path },
                });
            }
            Verb::Rnto => {
                let Some(from) = rnfr else {
                    return self.reply(503, "RNFR required first.");
                };
                if arg.is_empty() {
                    return self.reply(501, "A path is required.");
                }
                let to = self.cwd.join(&arg);
                if to.is_root() {
                    return self.reply(550, "Permission denied.");
                }
                self.request(Op::Rename { from, to });
            }
            Verb::Site => self.reply(502, "SITE is not implemented."),
            _ => self.reply(502, "Command not implemented."),
        }
    }

    fn read_only(&mut self) -> bool {
        if matches!(
            self.auth,
            Auth::In {
                anonymous: true,
                ..
            }
        ) {
            self.reply(550, "Permission denied (anonymous access is read-only).");
            true
        } else {
            false
        }
    }

    fn user_cmd(&mut self, arg: &str) {
        if arg.is_empty() {
            return self.reply(501, "USER needs a name.");
        }
        if self.config.require_tls && self.ctrl_tls != CtrlTls::Secured {
            return self.reply(534, "Policy requires TLS: send AUTH TLS first.");
        }
        // A new USER starts a new login (RFC 959 §4.1.1).
        self.auth = Auth::User(arg.to_string());
        let anon = self.config.anonymous && is_anonymous(arg);
        if anon {
            self.reply(
                331,
                "Anonymous login ok, send your e-mail address as password.",
            );
        } else {
            self.reply(331, "Please specify the password.");
        }
    }

    fn pass_cmd(&mut self, arg: &str) {
        if self.config.require_tls && self.ctrl_tls != CtrlTls::Secured {
            return self.reply(530, "Policy requires TLS: send AUTH TLS first.");
        }
        let user = match &self.auth {
            Auth::User(u) => u.clone(),
            Auth::In { .. } => return self.reply(230, "Already logged in."),
            Auth::None => return self.reply(503, "Login with USER first."),
        };
        if self.config.anonymous && is_anonymous(&user) {
            self.reply(230, "Login successful (read-only).");
            self.out.event(ServerEvent::LoggedIn {
                user: user.clone(),
                anonymous: true,
            });
            self.auth = Auth::In {
                user,
                anonymous: true,
            };
            self.cwd = VPath::root();
            return;
        }
        self.auth = Auth::None;
        let id = self.new_request();
        self.out.event(ServerEvent::Login {
            id,
            user: user.clone(),
            password: arg.to_string(),
        });
        self.pending = Some((id, Pending::Login { user }));
    }

    fn failed_login(&mut self) {
        self.failures += 1;
        self.auth = Auth::None;
        if self.failures >= self.config.max_login_failures {
            self.reply(421, "Too many failed logins; closing.");
            self.out
                .event(ServerEvent::Violation(Violation::LoginAttempts));
            self.close_all(Close::Graceful);
            return;
        }
        // The 530 comes after a delay that doubles with each failure;
        // meanwhile the control connection is not read.
        let shift = (self.failures - 1).min(16);
        let delay = self.config.login_delay.saturating_mul(1 << shift);
        self.login_delay_until = Some(self.now.mono + delay);
    }

    // ---- RFC 4217 ----------------------------------------------------------

    /// AUTH TLS: 234, then the control connection's TLS session starts in
    /// place; nothing more is read until it is `Secured`, and bytes the
    /// client sent behind the command are refused (see `on_ctrl_data`).
    fn auth_tls(&mut self, arg: &str) {
        if self.ctrl_tls != CtrlTls::Plain {
            return self.reply(503, "Already using TLS.");
        }
        let mech = arg.trim().to_ascii_uppercase();
        if !matches!(mech.as_str(), "TLS" | "TLS-C" | "SSL") {
            return self.reply(504, "Unsupported security mechanism; use AUTH TLS.");
        }
        let Some(ctrl) = self.ctrl else { return };
        self.reply(234, "AUTH TLS successful.");
        self.ctrl_tls = CtrlTls::Starting;
        self.out.push(Output::Open {
            conn: ctrl,
            how: Open::StartTls {
                role: Role::Server,
                server_name: None,
                resume_from: None,
            },
        });
    }

    /// The control connection's session is up. RFC 2228 §3 (AUTH): the
    /// user logs in again; nothing learned before TLS is kept.
    fn ctrl_secured(&mut self) {
        let starting = self.ctrl_tls == CtrlTls::Starting;
        self.ctrl_tls = CtrlTls::Secured;
        if !starting {
            // An `ssl:` listener's session: TLS from the first byte.
            return;
        }
        self.auth = Auth::None;
        self.cwd = VPath::root();
        self.ascii = false;
        self.rest = 0;
        self.rnfr = None;
        self.epsv_all = false;
        self.pbsz = false;
        self.prot_private = false;
        self.reset_data();
        self.inbuf.clear();
        self.scanned = 0;
        self.skipping = false;
        self.maybe_resume();
    }

    fn pbsz(&mut self, arg: &str) {
        if self.ctrl_tls != CtrlTls::Secured {
            return self.reply(503, "PBSZ needs a protected control connection (AUTH TLS).");
        }
        match arg.trim().parse::<u64>() {
            Ok(_) => {
                // Stream protection of TLS has no buffer size (RFC 4217 §9).
                self.pbsz = true;
                self.reply(200, "PBSZ=0");
            }
            Err(_) => self.reply(501, "PBSZ needs a number."),
        }
    }

    fn prot(&mut self, arg: &str) {
        if self.ctrl_tls != CtrlTls::Secured {
            return self.reply(503, "PROT needs a protected control connection (AUTH TLS).");
        }
        if !self.pbsz {
            return self.reply(503, "PROT needs PBSZ first.");
        }
        let private = match arg.trim().to_ascii_uppercase().as_str() {
            "C" => false,
            "P" => true,
            "S" | "E" => return self.reply(536, "Protection level not supported by TLS."),
            _ => return self.reply(504, "Unrecognised protection level."),
        };
        if private != self.prot_private
            && matches!(self.data, DataSetup::Passive { conn: Some(_), .. })
        {
            // A data connection already accepted has the old level.
            self.reset_data();
        }
        self.prot_private = private;
        let text = if private {
            "Protection level set to Private."
        } else {
            "Protection level set to Clear."
        };
        self.reply(200, text);
    }

    /// Starts the server side of TLS on a data connection if PROT P; the
    /// connection is used once `Secured`.
    fn secure_data(&mut self, conn: ConnId, private: bool) -> bool {
        if !private {
            return false;
        }
        self.securing = Some(conn);
        self.out.push(Output::Open {
            conn,
            how: Open::StartTls {
                role: Role::Server,
                server_name: None,
                resume_from: self.ctrl,
            },
        });
        true
    }

    fn type_cmd(&mut self, arg: &str) {
        let a = arg.to_ascii_uppercase();
        let mut parts = a.split_whitespace();
        match (parts.next(), parts.next(), parts.next()) {
            (Some("A"), None | Some("N"), None) => {
                self.ascii = true;
                self.reply(200, "Switching to ASCII mode.");
            }
            (Some("I"), None, None) | (Some("L"), Some("8"), None) => {
                self.ascii = false;
                self.reply(200, "Switching to Binary mode.");
            }
            (Some("A" | "E"), _, _) | (Some("L"), _, _) => self.reply(504, "Type not supported."),
            _ => self.reply(501, "Unrecognised TYPE."),
        }
    }

    fn stat(&mut self) {
        let text = match &self.pending {
            Some((_, Pending::Transfer(_, t))) => {
                format!(
                    "Status:\nTransferring; {} bytes so far.\nEnd of status.",
                    t.bytes
                )
            }
            _ => {
                let who = match &self.auth {
                    Auth::In { user, .. } => format!("Logged in as {user}"),
                    _ => "Not logged in".to_string(),
                };
                format!(
                    "twill FTP server status:\n{who}\nTYPE: {}, STRUcture: File, MODE: Stream\nEnd of status.",
                    if self.ascii { "ASCII" } else { "BINARY" }
                )
            }
        };
        let code = if self.pending.is_some() { 213 } else { 211 };
        reply::encode(code, &text, &mut self.out.buf);
        self.flush_ctrl();
    }

    fn abor(&mut self) {
        match self.pending.take() {
            Some((id, Pending::Transfer(_, t))) => {
                let started = t.started;
                self.drop_transfer(t);
                if started {
                    self.reply(426, "Connection closed; transfer aborted.");
                }
                self.reply(226, "ABOR successful.");
                self.out.event(ServerEvent::Aborted { id });
            }
            Some((id, Pending::Simple(_))) => {
                self.reply(226, "ABOR successful.");
                self.out.event(ServerEvent::Aborted { id });
            }
            other => {
                self.pending = other;
                self.reply(225, "No transfer to abort.");
            }
        }
        self.maybe_resume();
    }

    fn request(&mut self, op: Op) {
        let id = self.new_request();
        self.out.event(ServerEvent::Request { id, op: op.clone() });
        self.pending = Some((id, Pending::Simple(op)));
    }

    fn simple_answer(
        &mut self,
        id: RequestId,
        fits: impl Fn(&Op) -> bool,
        code: u16,
        text: &str,
    ) -> Result<(), Error> {
        match &self.pending {
            Some((p, Pending::Simple(op))) if *p == id && fits(op) => {}
            Some((p, _)) if *p == id => return Err(Error::WrongAnswer),
            _ => return Err(Error::UnknownRequest),
        }
        self.pending = None;
        self.reply(code, text);
        self.after_pending();
        Ok(())
    }

    fn new_request(&mut self) -> RequestId {
        self.next_request += 1;
        RequestId(self.next_request)
    }

    // ---- data connections -----------------------------------------------

    fn passive(&mut self, extended: bool, arg: &str) {
        if extended && arg.eq_ignore_ascii_case("ALL") {
            self.epsv_all = true;
            return self.reply(200, "EPSV ALL ok.");
        }
        if extended && !arg.is_empty() && arg != "1" && arg != "2" {
            return self.reply(522, "Network protocol not supported, use (1,2).");
        }
        if !extended && self.epsv_all {
            return self.reply(503, "Only EPSV after EPSV ALL.");
        }
        let ip = self.local.map(|a| canonical_ip(a.ip()));
        if !extended && matches!(ip, Some(IpAddr::V6(_))) {
            return self.reply(522, "Use EPSV on IPv6.");
        }
        self.reset_data();
        let (port, tries) = match self.config.passive_ports {
            Some((lo, hi)) if lo <= hi => {
                let span = u32::from(hi - lo) + 1;
                // Start at a spot that differs between sessions (the
                // client's port), then walk the range.
                let off = self.peer.map_or(0, |p| u32::from(p.port())) % span;
                (lo + off as u16, span)
            }
            _ => (0, 1),
        };
        let listener = self.ids.next_id();
        self.data = DataSetup::Passive {
            listener,
            bound: None,
            extended,
            port,
            tries,
            conn: None,
        };
        self.listen(listener, port);
    }

    fn listen(&mut self, listener: ConnId, port: u16) {
        let ip = self
            .local
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| canonical_ip(a.ip()));
        self.out.push(Output::Open {
            conn: listener,
            how: Open::Listen(SocketAddr::new(ip, port)),
        });
    }

    fn on_listen_result(
        &mut self,
        conn: ConnId,
        local: Option<SocketAddr>,
        error: Option<OpenError>,
    ) {
        let DataSetup::Passive {
            listener,
            bound,
            extended,
            port,
            tries,
            ..
        } = &mut self.data
        else {
            return;
        };
        if *listener != conn {
            return;
        }
        let extended = *extended;
        if let Some(e) = error {
            if e == OpenError::AddrInUse && *tries > 1 {
                // The next port of the range, wrapping around.
                let (lo, hi) = self.config.passive_ports.unwrap_or((0, 0));
                *tries -= 1;
                *port = if *port >= hi { lo } else { *port + 1 };
                let next = self.ids.next_id();
                *listener = next;
                let p = *port;
                self.listen(next, p);
                return;
            }
            self.data = DataSetup::None;
            return self.reply(425, "Cannot open a passive connection.");
        }
        let Some(addr) = local else {
            self.data = DataSetup::None;
            return self.reply(425, "Cannot open a passive connection.");
        };
        *bound = Some(addr);
        if extended {
            let text = format!("Entering Extended Passive Mode (|||{}|).", addr.port());
            self.reply(229, &text);
        } else {
            let ip = match (
                self.config.passive_address,
                canonical_ip(addr.ip()),
                self.local,
            ) {
                (Some(ip), _, _) => ip,
                (None, IpAddr::V4(ip), _) if !ip.is_unspecified() => ip,
                (None, _, Some(l)) => match canonical_ip(l.ip()) {
                    IpAddr::V4(ip) => ip,
                    IpAddr::V6(_) => Ipv4Addr::LOCALHOST,
                },
                _ => Ipv4Addr::LOCALHOST,
            };
            let text = format!(
                "Entering Passive Mode ({}).",
                format_port(SocketAddrV4::new(ip, addr.port()))
            );
            self.reply(227, &text);
        }
    }

    fn active(&mut self, extended: bool, arg: &str) {
        if self.epsv_all {
            return self.reply(503, "Only EPSV after EPSV ALL.");
        }
        if !self.config.active {
            return self.reply(502, "Active mode is disabled; use PASV or EPSV.");
        }
        let addr = if extended {
            match parse_eprt(arg) {
                Ok(a) => a,
                Err(crate::error::AddrError::UnsupportedFamily) => {
                    return self.reply(522, "Network protocol not supported, use (1,2).")
                }
                Err(_) => return self.reply(501, "Malformed EPRT."),
            }
        } else {
            match parse_port(arg) {
                Ok(a) => SocketAddr::V4(a),
                Err(_) => return self.reply(501, "Malformed PORT."),
            }
        };
        // RFC 2577: only back to the client itself, never to a privileged
        // port (the FTP bounce attack).
        let same_host = self
            .peer
            .map_or(true, |p| canonical_ip(p.ip()) == canonical_ip(addr.ip()));
        if !same_host || addr.port() < 1024 {
            self.out.event(ServerEvent::Violation(Violation::Bounce));
            return self.reply(500, "Illegal PORT command.");
        }
        self.reset_data();
        self.data = DataSetup::Active(addr);
        let v = if extended { "EPRT" } else { "PORT" };
        self.reply(
            200,
            &format!("{v} command successful. Consider using EPSV."),
        );
    }

    /// Drops the data setup: its listener and any unused connection.
    fn reset_data(&mut self) {
        if let DataSetup::Passive { listener, conn, .. } =
            core::mem::replace(&mut self.data, DataSetup::None)
        {
            self.out.close(listener, Close::Abort);
            if let Some(c) = conn {
                if self.securing == Some(c) {
                    self.securing = None;
                }
                self.out.close(c, Close::Abort);
            }
        }
    }

    fn on_accepted(&mut self, conn: ConnId, listener_id: ListenerId, peer: &Addr) {
        let DataSetup::Passive {
            listener,
            conn: slot,
            ..
        } = &mut self.data
        else {
            // A connection on a listener we gave up already.
            self.out.close(conn, Close::Abort);
            return;
        };
        if listener.0 != listener_id.0 || slot.is_some() {
            self.out.close(conn, Close::Abort);
            return;
        }
        let ok = match (peer.ip(), self.peer) {
            (Some(p), Some(c)) => canonical_ip(p.ip()) == canonical_ip(c.ip()),
            _ => true,
        };
        if !ok {
            self.out.close(conn, Close::Abort);
            self.out
                .event(ServerEvent::Violation(Violation::ForeignDataConnection));
            return;
        }
        *slot = Some(conn);
        let l = *listener;
        // One connection per PASV: stop listening.
        self.out.close(l, Close::Abort);
        // The client speaks first on a protected data connection: the
        // session must exist before its first byte arrives.
        self.secure_data(conn, self.prot_private);
        // A transfer already waiting takes it now.
        if let Some((_, Pending::Transfer(_, t))) = &mut self.pending {
            if t.started && t.conn.is_none() {
                self.attach_passive();
            }
        }
    }

    // ---- transfers ------------------------------------------------------

    fn transfer(&mut self, op: Op, dir: Dir, what: String) {
        if matches!(self.data, DataSetup::None) {
            return self.reply(425, "Use PORT, EPRT, PASV or EPSV first.");
        }
        if self.config.require_tls && !self.prot_private {
            return self.reply(521, "Data connections must be protected: use PROT P.");
        }
        let id = self.new_request();
        let ascii = self.ascii && dir != (Dir::Download { listing: true });
        let t = Transfer {
            dir,
            started: false,
            conn: None,
            connected: false,
            queue: VecDeque::new(),
            budget: OutputBudget::new(self.config.download_high, self.config.download_low),
            writable_owed: false,
            app_done: false,
            data_done: false,
            close_sent: false,
            to_net: ToNetwork::default(),
            from_net: FromNetwork::default(),
            ascii,
            bytes: 0,
            unconsumed: 0,
            paused: false,
            deadline: None,
            what,
            private: self.prot_private,
        };
        self.out.event(ServerEvent::Request { id, op: op.clone() });
        self.pending = Some((id, Pending::Transfer(op, t)));
    }

    fn check_download(&self, id: RequestId) -> Result<(), Error> {
        match &self.pending {
            Some((p, Pending::Transfer(_, t))) if *p == id => {
                if t.dir != (Dir::Download { listing: false }) {
                    Err(Error::WrongAnswer)
                } else if t.app_done {
                    Err(Error::Finished)
                } else {
                    Ok(())
                }
            }
            _ => Err(Error::UnknownRequest),
        }
    }

    /// The application accepted the transfer: 150/125, and the data
    /// connection is used, awaited or opened.
    fn start_transfer(&mut self) {
        let now = self.now.mono;
        let timeout = self.config.data_timeout;
        let Some((_, Pending::Transfer(_, t))) = &mut self.pending else {
            return;
        };
        if t.started {
            return;
        }
        t.started = true;
        let what = t.what.clone();
        match &self.data {
            DataSetup::Passive { conn: Some(_), .. } => {
                self.reply(125, &format!("Data connection already open; {what}."));
                self.attach_passive();
            }
            DataSetup::Passive { conn: None, .. } => {
                if let Some((_, Pending::Transfer(_, t))) = &mut self.pending {
                    t.deadline = Some(now + timeout);
                }
                self.reply(150, &format!("Opening {what}."));
            }
            DataSetup::Active(addr) => {
                let addr = *addr;
                let conn = self.ids.next_id();
                if let Some((_, Pending::Transfer(_, t))) = &mut self.pending {
                    t.conn = Some(conn);
                    t.deadline = Some(now + timeout);
                }
                self.reply(150, &format!("Opening {what}."));
                self.out.push(Output::Open {
                    conn,
                    how: Open::Connect {
                        host: addr.ip().to_string(),
                        port: addr.port(),
                        timeout: Some(timeout),
                    },
                });
            }
            DataSetup::None => {}
        }
    }

    /// Moves the accepted passive connection into the started transfer.
    fn attach_passive(&mut self) {
        let conn = match &mut self.data {
            DataSetup::Passive { conn, .. } => conn.take(),
            _ => None,
        };
        let Some(c) = conn else { return };
        self.data = DataSetup::None;
        if let Some((_, Pending::Transfer(_, t))) = &mut self.pending {
            t.conn = Some(c);
        }
        self.data_connected(c);
    }

    /// The transfer's data connection is up: flush what waited.
    fn data_connected(&mut self, conn: ConnId) {
        if self.securing == Some(conn) {
            return;
        }
        let Some((_, Pending::Transfer(_, t))) = &mut self.pending else {
            return;
        };
        if t.conn != Some(conn) || t.connected {
            return;
        }
        t.connected = true;
        t.deadline = None;
        if t.dir == Dir::Upload {
            // Bytes the client sent before the application was ready were
            // left with the driver: offer them now.
            t.paused = false;
            self.out.push(Output::Resume { conn });
        }
        while let Some(p) = t.queue.pop_front() {
            t.bytes += p.len();
            self.out.push(Output::Transmit { conn, payload: p });
        }
        self.check_transfer_end();
    }

    fn queue_data(&mut self, payload: Payload, convert: bool) {
        let Some((_, Pending::Transfer(_, t))) = &mut self.pending else {
            return;
        };
        let payload = match payload {
            Payload::Bytes(b) if convert && t.ascii => Payload::Bytes(t.to_net.convert(&b)),
            p => p,
        };
        if payload.is_empty() {
            return;
        }
        t.budget.queued(payload.len() as usize);
        if t.budget.is_full() {
            t.writable_owed = true;
        }
        match (t.connected, t.conn) {
            (true, Some(conn)) => {
                t.bytes += payload.len();
                self.out.push(Output::Transmit { conn, payload });
            }
            _ => t.queue.push_back(payload),
        }
    }

    fn finish_inner(&mut self) {
        if let Some((_, Pending::Transfer(_, t))) = &mut self.pending {
            t.app_done = true;
        }
        self.check_transfer_end();
    }

    /// Closes a finished download's data connection, and completes the
    /// transfer once both ends are seen.
    fn check_transfer_end(&mut self) {
        let Some((id, Pending::Transfer(_, t))) = &mut self.pending else {
            return;
        };
        let id = *id;
        if t.dir != Dir::Upload && t.app_done && t.connected && t.queue.is_empty() && !t.close_sent
        {
            if let Some(c) = t.conn {
                t.close_sent = true;
                self.out.close(c, Close::Graceful);
            }
        }
        if !(t.app_done && t.data_done) {
            return;
        }
        let bytes = t.bytes;
        self.pending = None;
        self.reply(226, "Transfer complete.");
        self.out.event(ServerEvent::TransferDone { id, bytes });
        self.after_pending();
    }

    /// Ends a transfer early: resets its data connection and drops the
    /// data setup.
    fn drop_transfer(&mut self, t: Transfer) {
        if t.conn.is_some() && t.conn == self.securing {
            self.securing = None;
        }
        if let Some(c) = t.conn {
            if !(t.data_done && t.dir != Dir::Upload) {
                self.out.close(c, Close::Abort);
            }
        }
        self.reset_data();
    }

    /// The transfer failed on the network side (426/425).
    fn transfer_failed(&mut self, code: u16, text: &str) {
        if let Some((id, Pending::Transfer(_, t))) = self.pending.take() {
            self.drop_transfer(t);
            self.reply(code, text);
            self.out.event(ServerEvent::Aborted { id });
            self.after_pending();
        }
    }

    fn on_data_conn(&mut self, conn: ConnId, bytes: &[u8]) -> usize {
        let window = self.config.upload_window;
        let Some((id, Pending::Transfer(_, t))) = &mut self.pending else {
            return self.unowned_data(conn);
        };
        if t.conn != Some(conn) {
            return self.unowned_data(conn);
        }
        let id = *id;
        if t.dir != Dir::Upload {
            // A client sending on a download connection: ignore it.
            return bytes.len();
        }
        if !t.started || t.unconsumed >= window {
            t.paused = true;
            return 0;
        }
        let take = bytes.len().min(window - t.unconsumed);
        let data = if t.ascii {
            t.from_net.convert(&bytes[..take])
        } else {
            Bytes::copy_from_slice(&bytes[..take])
        };
        t.bytes += take as u64;
        t.unconsumed += data.len();
        if take < bytes.len() {
            t.paused = true;
        }
        if !data.is_empty() {
            self.out.event(ServerEvent::Upload { id, data });
        }
        take
    }

    /// Data on a connection that is not a transfer's: a passive connection
    /// made before its command (hold it) or a dead one (drop it).
    fn unowned_data(&mut self, conn: ConnId) -> usize {
        match &self.data {
            DataSetup::Passive { conn: Some(c), .. } if *c == conn => 0,
            _ => usize::MAX,
        }
    }

    fn on_data_eof(&mut self, conn: ConnId) {
        let Some((id, Pending::Transfer(_, t))) = &mut self.pending else {
            return;
        };
        if t.conn != Some(conn) || t.dir != Dir::Upload || t.data_done {
            return;
        }
        let id = *id;
        let rest = t.from_net.finish();
        t.data_done = true;
        t.close_sent = true;
        if !rest.is_empty() {
            t.unconsumed += rest.len();
            self.out.event(ServerEvent::Upload { id, data: rest });
        }
        self.out.event(ServerEvent::UploadEnd { id });
        self.out.close(conn, Close::Graceful);
        self.check_transfer_end();
    }

    fn on_data_closed(&mut self, conn: ConnId) {
        if self.securing == Some(conn) {
            self.securing = None;
        }
        if let DataSetup::Passive { conn: c, .. } = &mut self.data {
            if *c == Some(conn) {
                *c = None;
                return;
            }
        }
        let Some((_, Pending::Transfer(_, t))) = &mut self.pending else {
            return;
        };
        if t.conn != Some(conn) {
            return;
        }
        match t.dir {
            Dir::Upload if t.data_done => {}
            Dir::Download { .. } if t.close_sent => {
                t.data_done = true;
                self.check_transfer_end();
            }
            _ => self.transfer_failed(426, "Connection closed; transfer aborted."),
        }
    }

    fn on_data_sent(&mut self, conn: ConnId, n: usize) {
        let Some((id, Pending::Transfer(_, t))) = &mut self.pending else {
            return;
        };
        if t.conn != Some(conn) {
            return;
        }
        t.budget.sent(n);
        if t.writable_owed && t.budget.has_room() && !t.app_done {
            t.writable_owed = false;
            let id = *id;
            self.out.event(ServerEvent::Writable { id });
        }
    }

    // ---- output helpers -------------------------------------------------

    fn reply(&mut self, code: u16, text: &str) {
        reply::encode(code, text, &mut self.out.buf);
        self.flush_ctrl();
    }

    fn flush_ctrl(&mut self) {
        match self.ctrl {
            Some(c) if !self.closing => {
                let n = self.out.transmit_buf(c);
                self.ctrl_budget.queued(n);
            }
            _ => self.out.buf.clear(),
        }
    }

    /// Ends the session: every connection closes; the control one after
    /// what was queued on it.
    fn close_all(&mut self, how: Close) {
        if self.closing {
            return;
        }
        if let Some((id, p)) = self.pending.take() {
            if let Pending::Transfer(_, t) = p {
                self.drop_transfer(t);
            }
            self.out.event(ServerEvent::Aborted { id });
        }
        self.reset_data();
        if let Some(c) = self.ctrl {
            self.out.close(c, how);
        }
        self.closing = true;
    }

    fn deadline(&self) -> Option<Instant> {
        let transfer = match &self.pending {
            Some((_, Pending::Transfer(_, t))) => t.deadline,
            _ => None,
        };
        let idle = if self.pending.is_none() {
            self.idle_deadline
        } else {
            None
        };
        [self.login_delay_until, transfer, idle]
            .into_iter()
            .flatten()
            .min()
    }
}

fn is_anonymous(user: &str) -> bool {
    user.eq_ignore_ascii_case("anonymous") || user.eq_ignore_ascii_case("ftp")
}

/// LIST/NLST arguments: `ls` options such as `-la` (sent by many clients)
/// are not paths.
fn list_arg(arg: &str) -> &str {
    let mut rest = arg.trim_start();
    while rest.starts_with('-') {
        rest = rest.split_once(' ').map_or("", |(_, r)| r).trim_start();
    }
    rest
}

/// Commands served while another one is pending (RFC 959 §4.1.3 and
/// common practice).
fn is_immediate(line: &[u8]) -> bool {
    let s = command::strip_telnet(line);
    let start = s.iter().position(|&b| b < 0xF0).unwrap_or(s.len());
    let s = &s[start..];
    let verb = s.split(|&b| b == b' ' || b == b'\r').next().unwrap_or(b"");
    matches!(
        Verb::from_bytes(verb),
        Verb::Abor | Verb::Stat | Verb::Noop | Verb::Quit
    ) && !(Verb::from_bytes(verb) == Verb::Stat && s.len() > 5)
}

impl Machine for Server {
    type Event = ServerEvent;
    type Error = Error;

    fn handle_input(&mut self, now: Now, input: Input<'_>) -> Result<usize, Error> {
        self.now = now;
        match input {
            Input::Accepted {
                conn,
                listener,
                local,
                peer,
            } => {
                if self.ctrl.is_none() && !conn.is_machine_chosen() && !self.closing {
                    self.ctrl = Some(conn);
                    self.local = local.ip();
                    self.peer = peer.ip();
                    self.idle_deadline = self.config.idle_timeout.map(|d| now.mono + d);
                    let g = self.config.greeting.clone();
                    self.reply(220, &g);
                } else {
                    self.on_accepted(conn, listener, &peer);
                }
                Ok(0)
            }
            Input::Data { conn, bytes } => {
                if Some(conn) == self.ctrl {
                    Ok(self.on_ctrl_data(bytes))
                } else {
                    Ok(self.on_data_conn(conn, bytes).min(bytes.len()))
                }
            }
            Input::Eof { conn, .. } => {
                if Some(conn) == self.ctrl {
                    self.close_all(Close::Graceful);
                } else {
                    self.on_data_eof(conn);
                }
                Ok(0)
            }
            Input::Sent { conn, bytes } => {
                if Some(conn) == self.ctrl {
                    self.ctrl_budget.sent(bytes);
                    if self.ctrl_paused && self.ctrl_budget.has_room() {
                        self.maybe_resume();
                    }
                } else {
                    self.on_data_sent(conn, bytes);
                }
                Ok(0)
            }
            Input::Opened { conn, local, .. } => {
                if matches!(&self.data, DataSetup::Passive { listener, .. } if *listener == conn) {
                    self.on_listen_result(conn, local.ip(), None);
                } else {
                    let private = matches!(&self.pending,
                        Some((_, Pending::Transfer(_, t))) if t.conn == Some(conn) && t.private);
                    if !self.secure_data(conn, private) {
                        self.data_connected(conn);
                    }
                }
                Ok(0)
            }
            Input::Secured { conn, .. } => {
                if Some(conn) == self.ctrl && !self.closing {
                    self.ctrl_secured();
                } else if self.securing == Some(conn) {
                    self.securing = None;
                    self.data_connected(conn);
                }
                Ok(0)
            }
            Input::OpenFailed { conn, error } if Some(conn) == self.ctrl => {
                // The control connection's handshake failed (or plaintext
                // was pipelined behind AUTH TLS).
                self.out.event(ServerEvent::Violation(Violation::TlsFailed(
                    error.to_string(),
                )));
                self.close_all(Close::Abort);
                Ok(0)
            }
            Input::OpenFailed { conn, error } => {
                if self.securing == Some(conn) {
                    self.securing = None;
                    self.out.event(ServerEvent::Violation(Violation::TlsFailed(
                        error.to_string(),
                    )));
                    if let DataSetup::Passive { conn: c, .. } = &mut self.data {
                        if *c == Some(conn) {
                            // The listener is closed already: the client
                            // needs a new PASV.
                            *c = None;
                            self.out.close(conn, Close::Abort);
                        }
                    }
                }
                if matches!(&self.data, DataSetup::Passive { listener, .. } if *listener == conn) {
                    self.on_listen_result(conn, None, Some(error));
                } else if matches!(&self.pending, Some((_, Pending::Transfer(_, t))) if t.conn == Some(conn))
                {
                    self.transfer_failed(425, "Cannot open data connection.");
                }
                Ok(0)
            }
            Input::Closed { conn } => {
                if Some(conn) == self.ctrl {
                    self.close_all(Close::Abort);
                    self.ctrl = None;
                    self.out.event(ServerEvent::Closed);
                } else {
                    self.on_data_closed(conn);
                }
                Ok(0)
            }
            _ => Ok(0),
        }
    }

    fn handle_timeout(&mut self, now: Now) {
        self.now = now;
        if self.login_delay_until.is_some_and(|t| t <= now.mono) {
            self.login_delay_until = None;
            self.reply(530, "Login incorrect.");
            self.after_pending();
        }
        if let Some((_, Pending::Transfer(_, t))) = &self.pending {
            if t.deadline.is_some_and(|d| d <= now.mono) {
                self.transfer_failed(425, "Cannot open data connection.");
            }
        }
        if self.pending.is_none()
            && !self.closing
            && self.idle_deadline.is_some_and(|t| t <= now.mono)
        {
            self.reply(421, "Timeout; closing control connection.");
            self.close_all(Close::Graceful);
        }
    }

    fn poll_output(&mut self) -> Output<ServerEvent> {
        let d = self.deadline();
        self.out.pop_or_wait(d)
    }
}
