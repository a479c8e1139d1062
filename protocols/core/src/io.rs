//! What flows into a machine ([`Input`]) and out of it ([`Output`]).

use alloc::string::String;
use alloc::vec::Vec;
use bytes::Bytes;
use core::net::{IpAddr, SocketAddr};

use crate::id::{ConnId, ListenerId, SockId};
use crate::time::{Duration, Instant};

/// The address of one end of a connection.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Addr {
    /// An IPv4 or IPv6 socket address.
    Ip(SocketAddr),
    /// A Unix-domain socket; `None` for an unnamed (client) socket.
    Unix(Option<String>),
    /// An in-memory connection (tests) or an address the driver cannot tell.
    Unknown,
}

impl Addr {
    /// The IP socket address, if this is one.
    pub fn ip(&self) -> Option<SocketAddr> {
        match self {
            Addr::Ip(a) => Some(*a),
            _ => None,
        }
    }
}

impl core::fmt::Display for Addr {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Addr::Ip(a) => write!(f, "{a}"),
            Addr::Unix(Some(p)) => write!(f, "unix:{p}"),
            Addr::Unix(None) => f.write_str("unix:(unnamed)"),
            Addr::Unknown => f.write_str("(unknown)"),
        }
    }
}

/// What a TLS layer learned when a session became secure.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsInfo {
    /// The negotiated ALPN protocol.
    pub alpn: Option<Vec<u8>>,
    /// The server name the client asked for (SNI).
    pub server_name: Option<String>,
    /// The peer's certificate chain, DER, leaf first.
    pub peer_certificates: Vec<Bytes>,
    /// Keying material for channel binding (RFC 9266 `tls-exporter`).
    pub exporter: Option<Bytes>,
    /// Negotiated protocol version, e.g. `"TLSv1.3"`.
    pub version: Option<String>,
}

/// Why an `Open` failed. Typed, so machines can answer with the protocol's
/// own reply (FTP's 425, SOCKS's reply codes) without parsing strings.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenError {
    /// The peer refused the connection.
    Refused,
    /// The name did not resolve.
    NotFound,
    /// No route, network down or host unreachable.
    Unreachable,
    /// The connect timed out.
    TimedOut,
    /// The address is already in use (listen, bind).
    AddrInUse,
    /// Not allowed (privileged port, file mode, policy).
    PermissionDenied,
    /// The driver cannot do this (e.g. `StartTls` with no TLS layer).
    Unsupported,
    /// The driver's connection cap was reached.
    Limit,
    /// The TLS handshake failed; the text says why.
    Tls(String),
    /// Anything else, described.
    Other(String),
}

impl core::fmt::Display for OpenError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            OpenError::Refused => f.write_str("connection refused"),
            OpenError::NotFound => f.write_str("name not found"),
            OpenError::Unreachable => f.write_str("unreachable"),
            OpenError::TimedOut => f.write_str("timed out"),
            OpenError::AddrInUse => f.write_str("address in use"),
            OpenError::PermissionDenied => f.write_str("permission denied"),
            OpenError::Unsupported => f.write_str("not supported by this driver"),
            OpenError::Limit => f.write_str("connection limit reached"),
            OpenError::Tls(s) => write!(f, "TLS: {s}"),
            OpenError::Other(s) => f.write_str(s),
        }
    }
}

impl core::error::Error for OpenError {}

/// One input to a machine. Borrowed bytes are only valid for the call.
#[derive(Debug)]
#[non_exhaustive]
pub enum Input<'a> {
    /// The driver accepted a connection on one of the machine's listeners.
    /// A factory-made machine gets this first, for its one connection.
    Accepted {
        /// The new connection.
        conn: ConnId,
        /// The listener it arrived on.
        listener: ListenerId,
        /// Our end.
        local: Addr,
        /// Their end.
        peer: Addr,
    },
    /// Bytes arrived. The machine returns how many it took; the driver keeps
    /// the rest and offers it again after `Output::Resume { conn }`.
    Data {
        /// Which connection.
        conn: ConnId,
        /// The bytes.
        bytes: &'a [u8],
    },
    /// The peer finished sending. `clean` is false when a TLS stream ended
    /// without close_notify (truncation).
    Eof {
        /// Which connection.
        conn: ConnId,
        /// Whether the end was orderly.
        clean: bool,
    },
    /// The driver flushed this many more bytes of the connection's output.
    Sent {
        /// Which connection.
        conn: ConnId,
        /// Bytes flushed since the last `Sent`.
        bytes: usize,
    },
    /// An `Open { Connect | Listen | Bind }` succeeded.
    Opened {
        /// The id the machine chose.
        conn: ConnId,
        /// Our end (for a listener, the bound address).
        local: Addr,
        /// Their end (for a listener or socket, the same as `local`).
        peer: Addr,
    },
    /// An `Open` failed; the id is dead.
    OpenFailed {
        /// The id the machine chose (or, for `StartTls`, the connection).
        conn: ConnId,
        /// Why.
        error: OpenError,
    },
    /// A TLS session on this connection completed its handshake.
    Secured {
        /// Which connection.
        conn: ConnId,
        /// What was negotiated.
        info: TlsInfo,
    },
    /// The connection is gone: flushed after `Close`, or reset. Its id is
    /// dead and no more inputs name it.
    Closed {
        /// Which connection.
        conn: ConnId,
    },
    /// A datagram arrived on a socket. Taken whole or dropped, never split.
    Datagram {
        /// The socket it arrived on.
        sock: SockId,
        /// The sender.
        from: SocketAddr,
        /// The destination address it was sent to (a multicast group or our
        /// unicast address).
        dst: IpAddr,
        /// The interface it arrived on (0 when unknown).
        ifindex: u32,
        /// The payload.
        bytes: &'a [u8],
    },
}

impl Input<'_> {
    /// The connection or socket this input concerns.
    pub fn conn(&self) -> ConnId {
        match self {
            Input::Accepted { conn, .. }
            | Input::Data { conn, .. }
            | Input::Eof { conn, .. }
            | Input::Sent { conn, .. }
            | Input::Opened { conn, .. }
            | Input::OpenFailed { conn, .. }
            | Input::Secured { conn, .. }
            | Input::Closed { conn } => *conn,
            Input::Datagram { sock, .. } => *sock,
        }
    }
}

/// A file the application registered with the driver, for
/// [`Payload::File`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileId(pub u64);

/// Bytes to send on a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// Bytes in memory.
    Bytes(Bytes),
    /// A range of a registered file, which a plaintext driver may `sendfile`.
    File {
        /// The registered file.
        id: FileId,
        /// Where in the file to start.
        offset: u64,
        /// How many bytes.
        len: u64,
    },
}

impl Payload {
    /// How many bytes this payload puts on the wire.
    pub fn len(&self) -> u64 {
        match self {
            Payload::Bytes(b) => b.len() as u64,
            Payload::File { len, .. } => *len,
        }
    }

    /// Whether it carries no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<Bytes> for Payload {
    fn from(b: Bytes) -> Self {
        Payload::Bytes(b)
    }
}

/// Which side of a TLS handshake to play.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Send the ClientHello.
    Client,
    /// Answer it.
    Server,
}

/// Multicast options of a datagram socket, set at bind time or later with
/// [`Output::Multicast`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MulticastOp {
    /// Join a group (on the interface with this address; unspecified = any).
    Join {
        /// The group.
        group: IpAddr,
        /// The local interface's address (IPv4) or unspecified.
        interface: Option<IpAddr>,
    },
    /// Leave a group.
    Leave {
        /// The group.
        group: IpAddr,
        /// As given to `Join`.
        interface: Option<IpAddr>,
    },
    /// Hop limit of outgoing multicast datagrams.
    Ttl(u32),
    /// Whether our own multicast datagrams loop back to this host.
    Loopback(bool),
}

/// What to open, in `Output::Open`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Open {
    /// A TCP connection; the driver resolves `host`.
    Connect {
        /// Name or address.
        host: String,
        /// Port.
        port: u16,
        /// Give up after this long (the driver's default when `None`).
        timeout: Option<Duration>,
    },
    /// A Unix-domain stream connection.
    ConnectUnix {
        /// Filesystem path.
        path: String,
    },
    /// A TCP listener; its connections arrive as `Accepted` with
    /// `listener == ListenerId(conn.0)`.
    Listen(SocketAddr),
    /// A datagram socket, joined to the given multicast groups.
    Bind {
        /// Local address to bind.
        addr: SocketAddr,
        /// Groups to join at once.
        join: Vec<IpAddr>,
    },
    /// Start TLS on an existing connection (the id is that connection's).
    StartTls {
        /// Client or server side.
        role: Role,
        /// SNI name to send (client) or expect.
        server_name: Option<String>,
        /// Resume the session of this other connection (FTP data channels).
        resume_from: Option<ConnId>,
    },
}

/// How to close, in `Output::Close`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Close {
    /// Flush, then shut down our sending side; keep reading.
    WriteHalf,
    /// Flush, then close both ways.
    Graceful,
    /// Drop queued output and reset the connection.
    Abort,
}

/// One output of a machine. Drain with `poll_output` until `Wait`.
#[derive(Debug)]
#[must_use = "outputs must be carried out by the driver"]
#[non_exhaustive]
pub enum Output<E> {
    /// Send bytes on a connection, after everything sent before on it.
    Transmit {
        /// Which connection.
        conn: ConnId,
        /// What.
        payload: Payload,
    },
    /// Send a datagram from a socket.
    SendTo {
        /// The socket (usually the one the query came in on).
        sock: SockId,
        /// Destination.
        to: SocketAddr,
        /// Payload.
        bytes: Bytes,
    },
    /// Something for the application.
    Event(E),
    /// Open a connection, listener or socket under an id the machine chose
    /// (or start TLS on an existing connection).
    Open {
        /// The id; answered by `Opened`/`OpenFailed` (or `Secured`).
        conn: ConnId,
        /// What to open.
        how: Open,
    },
    /// Change a datagram socket's multicast membership or options.
    Multicast {
        /// The socket.
        sock: SockId,
        /// The change.
        op: MulticastOp,
    },
    /// Offer the bytes this connection's last short take left behind again.
    Resume {
        /// Which connection.
        conn: ConnId,
    },
    /// From now on relay `a` and `b` to each other without the machine; both
    /// ids end with `Closed` once the relay ends.
    Splice {
        /// One end.
        a: ConnId,
        /// The other.
        b: ConnId,
    },
    /// Close a connection (answered by `Closed`).
    Close {
        /// Which connection.
        conn: ConnId,
        /// How.
        how: Close,
    },
    /// Nothing more now; call `handle_timeout` at `deadline` if any.
    Wait {
        /// The earliest timer of the machine.
        deadline: Option<Instant>,
    },
}

impl<E> Output<E> {
    /// Changes the event type, keeping everything else.
    pub fn map_event<F>(self, f: impl FnOnce(E) -> F) -> Output<F> {
        match self {
            Output::Transmit { conn, payload } => Output::Transmit { conn, payload },
            Output::SendTo { sock, to, bytes } => Output::SendTo { sock, to, bytes },
            Output::Event(e) => Output::Event(f(e)),
            Output::Open { conn, how } => Output::Open { conn, how },
            Output::Multicast { sock, op } => Output::Multicast { sock, op },
            Output::Resume { conn } => Output::Resume { conn },
            Output::Splice { a, b } => Output::Splice { a, b },
            Output::Close { conn, how } => Output::Close { conn, how },
            Output::Wait { deadline } => Output::Wait { deadline },
        }
    }
}
