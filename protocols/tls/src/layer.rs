//! [`Tls`]: the layer itself. See the crate docs for the rules it keeps.

use std::collections::{BTreeMap, VecDeque};
use std::io::{Read, Write};
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, Connection, ServerConfig, ServerConnection};
use twill_core::machine::earliest;
use twill_core::{
    Addr, ClientEndpoint, Close, ConnId, ConnMap, Duration, Input, Instant, ListenerId, Machine,
    Now, Open, OpenError, Output, Payload, Role, TlsInfo,
};

use crate::config::{ClientSetup, ConfigError, ServerSetup, WallClock};

/// The RFC 9266 `tls-exporter` label.
const EXPORTER_LABEL: &[u8] = b"EXPORTER-Channel-Binding";

/// Configurations shared by every [`Tls`] machine of a server, built once,
/// with the [`WallClock`] they read the time from.
#[derive(Clone, Debug, Default)]
pub struct TlsContext {
    clock: WallClock,
    server: Option<Arc<ServerConfig>>,
    client: Option<Arc<ClientConfig>>,
}

impl TlsContext {
    /// No configurations yet: a [`Tls`] made from it passes everything
    /// through and answers `StartTls` with `OpenFailed(Unsupported)`.
    pub fn new() -> Self {
        TlsContext::default()
    }

    /// Adds the server side (for `ssl:` listeners and server `StartTls`).
    pub fn with_server(mut self, setup: &ServerSetup) -> Result<Self, ConfigError> {
        self.server = Some(setup.build(&self.clock)?);
        Ok(self)
    }

    /// Adds the client side (for TLS connections and client `StartTls`).
    pub fn with_client(mut self, setup: &ClientSetup) -> Result<Self, ConfigError> {
        self.client = Some(setup.build(&self.clock)?);
        Ok(self)
    }

    /// A hand-made server config. Build it with
    /// `ServerConfig::builder_with_details(provider, Arc::new(ctx.clock().clone()))`
    /// so that it reads the time the machines are given.
    pub fn with_server_config(mut self, config: Arc<ServerConfig>) -> Self {
        self.server = Some(config);
        self
    }

    /// A hand-made client config (see [`with_server_config`](Self::with_server_config)).
    pub fn with_client_config(mut self, config: Arc<ClientConfig>) -> Self {
        self.client = Some(config);
        self
    }

    /// For a `tls:` client endpoint: a context verifying with its `ca=`
    /// file (or the platform roots), and the name to verify (`hostname=`,
    /// else the host). `None` for any other endpoint. Reads the CA file.
    pub fn for_client_endpoint(
        ep: &ClientEndpoint,
    ) -> Result<Option<(TlsContext, String)>, ConfigError> {
        let ClientEndpoint::Tcp {
            host, tls: Some(t), ..
        } = ep
        else {
            return Ok(None);
        };
        let ctx = TlsContext::new().with_client(&ClientSetup::from_endpoint(t)?)?;
        let name = t.hostname.clone().unwrap_or_else(|| host.clone());
        Ok(Some((ctx, name)))
    }

    /// The clock every config of this context should read.
    pub fn clock(&self) -> &WallClock {
        &self.clock
    }
}

/// Which accepted connections start a server session at once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Accept {
    /// None: sessions start only by `StartTls`.
    #[default]
    None,
    /// Every accepted connection.
    All,
    /// Connections of these listeners (the `ssl:` endpoints; drivers number
    /// stream endpoints 1, 2, … in the order given).
    Listeners(Vec<ListenerId>),
}

impl Accept {
    fn matches(&self, l: ListenerId) -> bool {
        match self {
            Accept::None => false,
            Accept::All => true,
            Accept::Listeners(ls) => ls.contains(&l),
        }
    }
}

/// Why a session failed. The connection is closed (after the alert rustls
/// queued, if any); other connections are not affected.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Failure {
    /// The peer broke the protocol or did not verify (an alert was sent),
    /// or sent one.
    Tls(rustls::Error),
    /// The peer closed the connection before the handshake completed.
    EofInHandshake,
    /// The handshake did not complete within the timeout.
    HandshakeTimeout,
    /// Bytes arrived after the STARTTLS go-ahead and before the handshake
    /// started (the command-injection defence): the session never starts.
    PlaintextAfterStartTls {
        /// How many bytes the inner machine had left untaken.
        bytes: usize,
    },
    /// The inner machine sent a `Payload::File` on a TLS connection.
    FilePayload,
    /// No usable configuration or server name for this session.
    Config(String),
}

impl core::fmt::Display for Failure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Failure::Tls(e) => write!(f, "{e}"),
            Failure::EofInHandshake => f.write_str("peer closed during the handshake"),
            Failure::HandshakeTimeout => f.write_str("handshake timed out"),
            Failure::PlaintextAfterStartTls { bytes } => {
                write!(
                    f,
                    "{bytes} plaintext bytes after STARTTLS, before the handshake"
                )
            }
            Failure::FilePayload => f.write_str("file payloads cannot be sent over TLS"),
            Failure::Config(s) => f.write_str(s),
        }
    }
}

/// What a [`Tls`] machine tells the application.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum TlsEvent<E> {
    /// An event of the inner machine.
    Inner(E),
    /// A session completed its handshake (the inner machine got `Secured`).
    Secured {
        /// The connection.
        conn: ConnId,
        /// What was negotiated.
        info: TlsInfo,
    },
    /// A session failed; the connection is being closed.
    Failed {
        /// The connection.
        conn: ConnId,
        /// Why.
        error: Failure,
    },
}

/// The application misused the layer or the inner machine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError<E> {
    /// The inner machine's error.
    #[error(transparent)]
    Inner(E),
    /// The inner machine emitted `Payload::File` for a TLS connection: TLS
    /// needs the bytes, so inner machines must be built without file
    /// payloads. The connection was aborted.
    #[error(
        "file payload on TLS connection {conn}: build the inner machine without file payloads"
    )]
    FilePayload {
        /// The connection.
        conn: ConnId,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Handshaking { deadline: Instant },
    Open,
    Failed,
}

/// What the inner machine learns when a policy session is secured.
#[derive(Debug)]
enum Announce {
    /// Nothing: it asked with `StartTls` and already knows the connection.
    StartTls,
    Accepted {
        listener: ListenerId,
        local: Addr,
        peer: Addr,
    },
    Opened {
        local: Addr,
        peer: Addr,
    },
}

struct Session {
    tls: Connection,
    state: State,
    announce: Announce,
    /// The inner machine knows this connection.
    known: bool,
    client_name: Option<String>,
    /// Decrypted, not yet taken by the inner machine.
    plain: BytesMut,
    /// The inner machine made a short take: wait for its `Resume`.
    inner_paused: bool,
    /// We made a short take of ciphertext: owe the driver a `Resume`.
    driver_paused: bool,
    /// close_notify arrived.
    peer_closed: bool,
    /// The peer's EOF (clean?), delivered after the plaintext before it.
    eof: Option<bool>,
    eof_delivered: bool,
    /// We emitted `Close` (Graceful or Abort): drop further output.
    closing: bool,
    write_closed: bool,
    /// Ciphertext handed to the driver and reported flushed.
    cipher_queued: u64,
    cipher_flushed: u64,
    /// (ciphertext offset, plaintext bytes it completes), in order.
    marks: VecDeque<(u64, usize)>,
    /// Plaintext written while handshaking (not yet encrypted).
    unencrypted: usize,
}

/// TLS around any machine: itself a [`Machine`]. See the crate docs.
pub struct Tls<M: Machine> {
    inner: M,
    ctx: TlsContext,
    accept: Accept,
    /// Client sessions on opened stream connections; the SNI name for
    /// connections the driver made (the inner machine's `Connect` host
    /// otherwise).
    connect: Option<Option<String>>,
    handshake_timeout: Duration,
    plaintext_limit: usize,
    sessions: ConnMap<Session>,
    /// Plain connections whose last take was short: the driver holds bytes.
    held: BTreeMap<ConnId, usize>,
    /// Hosts of the inner machine's `Connect`s, for SNI.
    connects: BTreeMap<ConnId, String>,
    /// Connections the layer closed on its own without a session, and
    /// whether the inner machine knows them.
    dead: BTreeMap<ConnId, bool>,
    out: VecDeque<Output<TlsEvent<M::Event>>>,
    inner_drained: bool,
    inner_deadline: Option<Instant>,
    now: Now,
    buf: BytesMut,
    error: Option<TlsError<M::Error>>,
}

impl<M: Machine> core::fmt::Debug for Tls<M> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Tls")
            .field("sessions", &self.sessions.len())
            .field("accept", &self.accept)
            .finish_non_exhaustive()
    }
}

impl<M: Machine> Tls<M> {
    /// Wraps `inner`; no session starts until a policy ([`accept`](Self::accept),
    /// [`connect`](Self::connect)) or a `StartTls` says so.
    pub fn new(inner: M, ctx: &TlsContext) -> Self {
        Tls {
            inner,
            ctx: ctx.clone(),
            accept: Accept::None,
            connect: None,
            handshake_timeout: Duration::from_secs(10),
            plaintext_limit: 64 * 1024,
            sessions: ConnMap::new(),
            held: BTreeMap::new(),
            connects: BTreeMap::new(),
            dead: BTreeMap::new(),
            out: VecDeque::new(),
            inner_drained: false,
            inner_deadline: None,
            now: Now::default(),
            buf: BytesMut::new(),
            error: None,
        }
    }

    /// A server: every accepted connection is TLS.
    pub fn server(inner: M, ctx: &TlsContext) -> Self {
        Tls::new(inner, ctx).accept(Accept::All)
    }

    /// A client: every opened connection is TLS, verified for
    /// `server_name` (when the driver made it) or the `Connect` host.
    pub fn client(inner: M, ctx: &TlsContext, server_name: &str) -> Self {
        Tls::new(inner, ctx).connect(Some(server_name.into()))
    }

    /// Which accepted connections start a server session at once.
    pub fn accept(mut self, policy: Accept) -> Self {
        self.accept = policy;
        self
    }

    /// Start a client session on every opened stream connection: those the
    /// inner machine opened with `Connect` (SNI = its host) and those the
    /// driver made (SNI = `server_name`).
    pub fn connect(mut self, server_name: Option<String>) -> Self {
        self.connect = Some(server_name);
        self
    }

    /// Handshakes not complete after this long fail (default 10 s).
    pub fn with_handshake_timeout(mut self, d: Duration) -> Self {
        self.handshake_timeout = d;
        self
    }

    /// Decrypted bytes held per connection for an inner machine that does
    /// not take them (default 64 KiB); above it ciphertext is not taken.
    pub fn with_plaintext_limit(mut self, n: usize) -> Self {
        self.plaintext_limit = n.max(1);
        self
    }

    // --- getters ---

    /// The inner machine.
    pub fn inner(&self) -> &M {
        &self.inner
    }

    /// The inner machine, to call its commands (then drain this machine).
    pub fn inner_mut(&mut self) -> &mut M {
        self.inner_drained = false;
        &mut self.inner
    }

    /// Whether `conn` has a completed session.
    pub fn is_secured(&self, conn: ConnId) -> bool {
        self.sessions
            .get(&conn)
            .is_some_and(|s| s.state == State::Open)
    }

    /// Whether `conn`'s completed handshake resumed an earlier session.
    pub fn is_resumed(&self, conn: ConnId) -> bool {
        self.sessions.get(&conn).is_some_and(|s| {
            s.state == State::Open && s.tls.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
        })
    }

    /// Connections with a session (handshaking, open or failing).
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    // --- inside ---

    fn forward(&mut self, input: Input<'_>) -> Result<usize, TlsError<M::Error>> {
        self.inner_drained = false;
        self.inner
            .handle_input(self.now, input)
            .map_err(TlsError::Inner)
    }

    /// Forwards from inside `poll_output`: an error is kept for the next
    /// `handle_input`.
    fn forward_later(&mut self, input: Input<'_>) {
        if let Err(e) = self.forward(input) {
            self.error.get_or_insert(e);
        }
    }

    fn new_session(
        &mut self,
        conn: ConnId,
        tls: Connection,
        announce: Announce,
        name: Option<String>,
    ) {
        let mut tls = tls;
        // Our own accounting bounds output (the inner machine sees `Sent`).
        tls.set_buffer_limit(None);
        let known = matches!(announce, Announce::StartTls);
        self.sessions.insert(
            conn,
            Session {
                tls,
                state: State::Handshaking {
                    deadline: self.now.mono + self.handshake_timeout,
                },
                announce,
                known,
                client_name: name,
                plain: BytesMut::new(),
                inner_paused: false,
                driver_paused: false,
                peer_closed: false,
                eof: None,
                eof_delivered: false,
                closing: false,
                write_closed: false,
                cipher_queued: 0,
                cipher_flushed: 0,
                marks: VecDeque::new(),
                unencrypted: 0,
            },
        );
        self.flush(conn);
    }

    fn client_session(&self, name: Option<String>) -> Result<Connection, Failure> {
        let cfg = self
            .ctx
            .client
            .clone()
            .ok_or_else(|| Failure::Config("no TLS client configuration".into()))?;
        let name = name.ok_or_else(|| Failure::Config("no server name to verify".into()))?;
        let sn = ServerName::try_from(name.clone())
            .map_err(|_| Failure::Config(format!("invalid server name {name:?}")))?;
        ClientConnection::new(cfg, sn)
            .map(Connection::Client)
            .map_err(Failure::Tls)
    }

    fn server_session(&self) -> Result<Connection, Failure> {
        let cfg = self
            .ctx
            .server
            .clone()
            .ok_or_else(|| Failure::Config("no TLS server configuration".into()))?;
        ServerConnection::new(cfg)
            .map(Connection::Server)
            .map_err(Failure::Tls)
    }

    /// Moves rustls's pending ciphertext out as one `Transmit`.
    fn flush(&mut self, conn: ConnId) {
        let Some(s) = self.sessions.get_mut(&conn) else {
            return;
        };
        let mut w = (&mut self.buf).writer();
        while s.tls.wants_write() {
            match s.tls.write_tls(&mut w) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let n = self.buf.len();
        if n > 0 && !s.closing {
            s.cipher_queued += n as u64;
            self.out.push_back(Output::Transmit {
                conn,
                payload: Payload::Bytes(self.buf.split().freeze()),
            });
        } else {
            self.buf.clear();
        }
        if !s.tls.is_handshaking() && s.unencrypted > 0 {
            s.marks.push_back((s.cipher_queued, s.unencrypted));
            s.unencrypted = 0;
        }
    }

    /// Ends a session: its alert goes out, the connection closes, the
    /// application gets an event and a `StartTls` that asked is answered.
    fn fail(&mut self, conn: ConnId, error: Failure) {
        self.flush(conn);
        let Some(s) = self.sessions.get_mut(&conn) else {
            return;
        };
        if s.state == State::Failed {
            return;
        }
        let was_handshaking = matches!(s.state, State::Handshaking { .. });
        s.state = State::Failed;
        s.plain.clear();
        let starttls = matches!(s.announce, Announce::StartTls);
        if !s.closing {
            s.closing = true;
            let how = if error == Failure::FilePayload {
                Close::Abort
            } else {
                Close::Graceful
            };
            self.out.push_back(Output::Close { conn, how });
        }
        self.out.push_back(Output::Event(TlsEvent::Failed {
            conn,
            error: error.clone(),
        }));
        if starttls && was_handshaking {
            let error = match error {
                Failure::HandshakeTimeout => OpenError::TimedOut,
                e => OpenError::Tls(e.to_string()),
            };
            self.forward_later(Input::OpenFailed { conn, error });
        }
    }

    fn info(s: &Session) -> TlsInfo {
        let mut info = TlsInfo::default();
        info.alpn = s.tls.alpn_protocol().map(<[u8]>::to_vec);
        info.server_name = match &s.tls {
            Connection::Server(c) => c.server_name().map(str::to_string),
            Connection::Client(_) => s.client_name.clone(),
        };
        info.peer_certificates = s
            .tls
            .peer_certificates()
            .map(|cs| cs.iter().map(|c| Bytes::copy_from_slice(c)).collect())
            .unwrap_or_default();
        info.exporter = s
            .tls
            .export_keying_material([0u8; 32], EXPORTER_LABEL, None)
            .ok()
            .map(|k| Bytes::copy_from_slice(&k));
        info.version = s.tls.protocol_version().map(|v| match v {
            rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_string(),
            rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_string(),
            other => format!("{other:?}"),
        });
        info
    }

    /// After rustls read something: send its answer, notice the end of the
    /// handshake, hand plaintext to the inner machine.
    fn progress(&mut self, conn: ConnId) -> Result<(), TlsError<M::Error>> {
        self.flush(conn);
        let Some(s) = self.sessions.get_mut(&conn) else {
            return Ok(());
        };
        if matches!(s.state, State::Handshaking { .. }) && !s.tls.is_handshaking() {
            s.state = State::Open;
            s.known = true;
            let info = Self::info(s);
            let announce = core::mem::replace(&mut s.announce, Announce::StartTls);
            match announce {
                Announce::StartTls => {}
                Announce::Accepted {
                    listener,
                    local,
                    peer,
                } => {
                    self.forward(Input::Accepted {
                        conn,
                        listener,
                        local,
                        peer,
                    })?;
                }
                Announce::Opened { local, peer } => {
                    self.forward(Input::Opened { conn, local, peer })?;
                }
            }
            self.out.push_back(Output::Event(TlsEvent::Secured {
                conn,
                info: info.clone(),
            }));
            self.forward(Input::Secured { conn, info })?;
            // Plaintext written during the handshake is encrypted now.
            self.flush(conn);
        }
        self.deliver(conn)
    }

    /// Offers the plaintext backlog to the inner machine, then a held EOF,
    /// then lets the driver read again if we had stopped it.
    fn deliver(&mut self, conn: ConnId) -> Result<(), TlsError<M::Error>> {
        let Tls {
            inner,
            sessions,
            now,
            inner_drained,
            out,
            plaintext_limit,
            ..
        } = self;
        let Some(s) = sessions.get_mut(&conn) else {
            return Ok(());
        };
        if s.state != State::Open {
            return Ok(());
        }
        while !s.plain.is_empty() && !s.inner_paused {
            *inner_drained = false;
            let n = inner
                .handle_input(
                    *now,
                    Input::Data {
                        conn,
                        bytes: &s.plain,
                    },
                )
                .map_err(TlsError::Inner)?;
            let n = n.min(s.plain.len());
            s.plain.advance(n);
            if !s.plain.is_empty() {
                s.inner_paused = true;
            }
        }
        if s.driver_paused && s.plain.len() < *plaintext_limit {
            s.driver_paused = false;
            out.push_back(Output::Resume { conn });
        }
        if s.plain.is_empty() && !s.inner_paused && !s.eof_delivered {
            if let Some(clean) = s.eof {
                s.eof_delivered = true;
                *inner_drained = false;
                inner
                    .handle_input(*now, Input::Eof { conn, clean })
                    .map_err(TlsError::Inner)?;
            }
        }
        Ok(())
    }

    fn data(&mut self, conn: ConnId, bytes: &[u8]) -> Result<usize, TlsError<M::Error>> {
        let limit = self.plaintext_limit;
        let Some(s) = self.sessions.get_mut(&conn) else {
            return Ok(bytes.len());
        };
        if s.state == State::Failed || s.peer_closed {
            return Ok(bytes.len());
        }
        let mut taken = 0;
        let mut failure = None;
        let mut tmp = [0u8; 4096];
        while taken < bytes.len() && s.plain.len() < limit {
            let mut rd = &bytes[taken..];
            match s.tls.read_tls(&mut rd) {
                Ok(0) => break,
                Ok(n) => taken += n,
                Err(e) => {
                    // rustls refuses to buffer more (a record it cannot hold).
                    failure = Some(Failure::Tls(rustls::Error::General(e.to_string())));
                    break;
                }
            }
            match s.tls.process_new_packets() {
                Ok(st) => {
                    if st.peer_has_closed() {
                        s.peer_closed = true;
                    }
                }
                Err(e) => {
                    failure = Some(Failure::Tls(e));
                    break;
                }
            }
            loop {
                match s.tls.reader().read(&mut tmp) {
                    Ok(0) => {
                        s.peer_closed = true;
                        break;
                    }
                    Ok(n) => s.plain.extend_from_slice(&tmp[..n]),
                    Err(_) => break,
                }
            }
            if s.peer_closed {
                // Nothing after close_notify counts.
                taken = bytes.len();
            }
        }
        if let Some(f) = failure {
            self.fail(conn, f);
            return Ok(bytes.len());
        }
        if taken < bytes.len() {
            s.driver_paused = true;
        }
        if s.peer_closed && s.eof.is_none() {
            // close_notify is the end of the peer's stream, whatever the
            // transport does next.
            s.eof = Some(true);
        }
        self.progress(conn)?;
        Ok(taken)
    }

    fn eof(&mut self, conn: ConnId, clean: bool) -> Result<(), TlsError<M::Error>> {
        let Some(s) = self.sessions.get_mut(&conn) else {
            return Ok(());
        };
        match s.state {
            State::Handshaking { .. } => {
                self.fail(conn, Failure::EofInHandshake);
                Ok(())
            }
            State::Failed => Ok(()),
            State::Open => {
                if s.eof.is_none() {
                    s.eof = Some(clean && s.peer_closed);
                }
                self.deliver(conn)
            }
        }
    }

    fn sent(&mut self, conn: ConnId, n: usize) -> Result<(), TlsError<M::Error>> {
        let Some(s) = self.sessions.get_mut(&conn) else {
            return Ok(());
        };
        s.cipher_flushed = s.cipher_flushed.saturating_add(n as u64);
        let mut plain = 0usize;
        while let Some(&(end, p)) = s.marks.front() {
            if end > s.cipher_flushed {
                break;
            }
            s.marks.pop_front();
            plain = plain.saturating_add(p);
        }
        if plain > 0 && s.known {
            self.forward(Input::Sent { conn, bytes: plain })?;
        }
        Ok(())
    }

    fn start_tls(&mut self, conn: ConnId, role: Role, server_name: Option<String>) {
        if self.sessions.contains_key(&conn) {
            self.forward_later(Input::OpenFailed {
                conn,
                error: OpenError::Tls("TLS already started on this connection".into()),
            });
            return;
        }
        if let Some(bytes) = self.held.remove(&conn) {
            // The peer sent more after the command and before our go-ahead
            // could reach it: never carried into the session.
            self.dead.insert(conn, true);
            let error = Failure::PlaintextAfterStartTls { bytes };
            self.out.push_back(Output::Close {
                conn,
                how: Close::Abort,
            });
            self.out.push_back(Output::Event(TlsEvent::Failed {
                conn,
                error: error.clone(),
            }));
            self.forward_later(Input::OpenFailed {
                conn,
                error: OpenError::Tls(error.to_string()),
            });
            return;
        }
        let made = match role {
            Role::Server => self.server_session(),
            Role::Client => {
                let name = server_name
                    .clone()
                    .or_else(|| self.connects.get(&conn).cloned());
                self.client_session(name)
            }
        };
        match made {
            Ok(tls) => {
                let name = match role {
                    Role::Client => server_name.or_else(|| self.connects.get(&conn).cloned()),
                    Role::Server => None,
                };
                self.new_session(conn, tls, Announce::StartTls, name);
            }
            Err(Failure::Config(m)) if m.starts_with("no TLS") => {
                self.forward_later(Input::OpenFailed {
                    conn,
                    error: OpenError::Unsupported,
                });
            }
            Err(e) => self.forward_later(Input::OpenFailed {
                conn,
                error: OpenError::Tls(e.to_string()),
            }),
        }
    }

    /// Handles one output of the inner machine; returns it if it goes out
    /// unchanged.
    fn intercept(&mut self, o: Output<M::Event>) -> Option<Output<TlsEvent<M::Event>>> {
        match o {
            Output::Wait { deadline } => {
                self.inner_deadline = deadline;
                self.inner_drained = true;
                None
            }
            Output::Event(e) => Some(Output::Event(TlsEvent::Inner(e))),
            Output::Open {
                conn,
                how: Open::StartTls {
                    role, server_name, ..
                },
            } => {
                self.start_tls(conn, role, server_name);
                None
            }
            Output::Open { conn, how } => {
                if let Open::Connect { host, .. } = &how {
                    if self.connect.is_some() {
                        self.connects.insert(conn, host.clone());
                    }
                }
                Some(Output::Open { conn, how })
            }
            o if conn_of(&o).is_some_and(|c| self.dead.contains_key(&c)) => {
                // Closed by the layer (STARTTLS injection): nothing more.
                None
            }
            Output::Transmit { conn, payload } if self.sessions.contains_key(&conn) => {
                self.transmit(conn, payload);
                None
            }
            Output::Resume { conn } if self.sessions.contains_key(&conn) => {
                if let Some(s) = self.sessions.get_mut(&conn) {
                    s.inner_paused = false;
                }
                if let Err(e) = self.deliver(conn) {
                    self.error.get_or_insert(e);
                }
                None
            }
            Output::Resume { conn } => {
                self.held.remove(&conn);
                Some(Output::Resume { conn })
            }
            Output::Close { conn, how } if self.sessions.contains_key(&conn) => {
                self.close(conn, how);
                None
            }
            other => Some(other.map_event(TlsEvent::Inner)),
        }
    }

    fn transmit(&mut self, conn: ConnId, payload: Payload) {
        let Some(s) = self.sessions.get_mut(&conn) else {
            return;
        };
        if s.closing || s.write_closed || s.state == State::Failed {
            return;
        }
        match payload {
            Payload::Bytes(b) => {
                if s.tls.writer().write_all(&b).is_err() {
                    return;
                }
                s.unencrypted += b.len();
                self.flush(conn);
            }
            Payload::File { .. } => {
                self.error.get_or_insert(TlsError::FilePayload { conn });
                self.fail(conn, Failure::FilePayload);
            }
        }
    }

    fn close(&mut self, conn: ConnId, how: Close) {
        let Some(s) = self.sessions.get_mut(&conn) else {
            return;
        };
        if s.closing {
            return;
        }
        match how {
            Close::Abort => {
                s.closing = true;
            }
            Close::Graceful | Close::WriteHalf => {
                if s.state != State::Failed && !s.write_closed {
                    s.tls.send_close_notify();
                }
                s.write_closed = true;
                self.flush(conn);
                if let Some(s) = self.sessions.get_mut(&conn) {
                    s.closing = how == Close::Graceful;
                }
            }
        }
        self.out.push_back(Output::Close { conn, how });
    }

    fn next_deadline(&self) -> Option<Instant> {
        let hs = self
            .sessions
            .values()
            .filter_map(|s| match s.state {
                State::Handshaking { deadline } => Some(deadline),
                _ => None,
            })
            .min();
        earliest(self.inner_deadline, hs)
    }

    fn set_now(&mut self, now: Now) {
        self.now = now;
        self.ctx.clock.set(now.wall);
    }
}

fn conn_of<E>(o: &Output<E>) -> Option<ConnId> {
    match o {
        Output::Transmit { conn, .. } | Output::Resume { conn } | Output::Close { conn, .. } => {
            Some(*conn)
        }
        _ => None,
    }
}

impl<M: Machine> Machine for Tls<M> {
    type Event = TlsEvent<M::Event>;
    type Error = TlsError<M::Error>;

    fn handle_input(&mut self, now: Now, input: Input<'_>) -> Result<usize, Self::Error> {
        self.set_now(now);
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        match input {
            Input::Accepted {
                conn,
                listener,
                local,
                peer,
            } if self.accept.matches(listener) => {
                match self.server_session() {
                    Ok(tls) => {
                        let a = Announce::Accepted {
                            listener,
                            local,
                            peer,
                        };
                        self.new_session(conn, tls, a, None);
                    }
                    Err(e) => {
                        self.out.push_back(Output::Close {
                            conn,
                            how: Close::Abort,
                        });
                        self.dead.insert(conn, false);
                        self.out
                            .push_back(Output::Event(TlsEvent::Failed { conn, error: e }));
                    }
                }
                Ok(0)
            }
            Input::Opened { conn, local, peer }
                if self.connect.is_some()
                    && (!conn.is_machine_chosen() || self.connects.contains_key(&conn)) =>
            {
                let name = self
                    .connects
                    .remove(&conn)
                    .or_else(|| self.connect.clone().flatten());
                match self.client_session(name.clone()) {
                    Ok(tls) => {
                        self.new_session(conn, tls, Announce::Opened { local, peer }, name);
                    }
                    Err(e) => {
                        self.dead.insert(conn, false);
                        self.out.push_back(Output::Close {
                            conn,
                            how: Close::Abort,
                        });
                        self.out.push_back(Output::Event(TlsEvent::Failed {
                            conn,
                            error: e.clone(),
                        }));
                        if conn.is_machine_chosen() {
                            self.forward(Input::OpenFailed {
                                conn,
                                error: OpenError::Tls(e.to_string()),
                            })?;
                        }
                    }
                }
                Ok(0)
            }
            Input::OpenFailed { conn, error } => {
                self.connects.remove(&conn);
                self.forward(Input::OpenFailed { conn, error })
            }
            Input::Data { conn, bytes } if self.sessions.contains_key(&conn) => {
                self.data(conn, bytes)
            }
            Input::Data { conn, bytes } if self.dead.contains_key(&conn) => Ok(bytes.len()),
            Input::Eof { conn, .. } | Input::Sent { conn, .. } if self.dead.contains_key(&conn) => {
                Ok(0)
            }
            Input::Data { conn, bytes } => {
                let n = self.forward(Input::Data { conn, bytes })?;
                if n < bytes.len() {
                    self.held.insert(conn, bytes.len() - n);
                } else {
                    self.held.remove(&conn);
                }
                Ok(n)
            }
            Input::Eof { conn, clean } if self.sessions.contains_key(&conn) => {
                self.eof(conn, clean).map(|()| 0)
            }
            Input::Sent { conn, bytes } if self.sessions.contains_key(&conn) => {
                self.sent(conn, bytes).map(|()| 0)
            }
            Input::Closed { conn } => {
                self.held.remove(&conn);
                self.connects.remove(&conn);
                let known = match (self.sessions.remove(&conn), self.dead.remove(&conn)) {
                    (Some(s), _) => s.known,
                    (None, Some(known)) => known,
                    (None, None) => true,
                };
                if known {
                    self.forward(Input::Closed { conn })
                } else {
                    Ok(0)
                }
            }
            other => self.forward(other),
        }
    }

    fn handle_timeout(&mut self, now: Now) {
        self.set_now(now);
        let due: Vec<ConnId> = self
            .sessions
            .iter()
            .filter(
                |(_, s)| matches!(s.state, State::Handshaking { deadline } if deadline <= now.mono),
            )
            .map(|(c, _)| *c)
            .collect();
        for conn in due {
            self.fail(conn, Failure::HandshakeTimeout);
        }
        if self.inner_deadline.is_some_and(|d| d <= now.mono) {
            self.inner_drained = false;
            self.inner.handle_timeout(now);
        }
    }

    fn poll_output(&mut self) -> Output<Self::Event> {
        loop {
            if let Some(o) = self.out.pop_front() {
                return o;
            }
            if self.inner_drained {
                return Output::Wait {
                    deadline: self.next_deadline(),
                };
            }
            let o = self.inner.poll_output();
            if let Some(o) = self.intercept(o) {
                return o;
            }
        }
    }
}
