//! Errors. The peer's faults ([`CommandError`], [`ReplyError`],
//! [`AddrError`], [`ListError`], summed up in [`Violation`]) are answered
//! with the protocol's reply and reported as events; [`Error`] is the
//! application's (a command that cannot be carried out) and is returned.

/// A command line that cannot be parsed (answered with 500 or 501).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// An empty line.
    #[error("empty command line")]
    Empty,
    /// The verb is not 3–4 ASCII letters.
    #[error("malformed verb")]
    BadVerb,
    /// CR, LF or NUL inside the line (or an argument given to `encode`).
    #[error("control character in the command line")]
    ControlCharacter,
    /// The argument is not UTF-8 (RFC 2640).
    #[error("argument is not UTF-8")]
    NotUtf8,
    /// Longer than the line limit.
    #[error("command line longer than the limit")]
    TooLong,
}

/// A reply stream that cannot be parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// A first line without a three-digit code 100–599 and `SP` or `-`.
    #[error("reply without a valid code")]
    BadCode,
    /// A line longer than the limit.
    #[error("reply line longer than the limit")]
    LineTooLong,
    /// A multi-line reply with more lines than the limit.
    #[error("multi-line reply longer than the limit")]
    TooManyLines,
}

/// A malformed PORT/EPRT argument or PASV/EPSV reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddrError {
    /// Not the grammar of RFC 959 / RFC 2428.
    #[error("malformed address")]
    Malformed,
    /// An EPRT address family other than 1 (IPv4) and 2 (IPv6) (522).
    #[error("unsupported address family")]
    UnsupportedFamily,
}

/// A malformed MLSx line or time-val.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ListError {
    /// Not `facts SP name`.
    #[error("malformed MLSx facts")]
    BadFacts,
    /// Not a `YYYYMMDDHHMMSS` time.
    #[error("malformed time-val")]
    BadTime,
}

/// What a peer did wrong, as reported in events. The connection carries
/// on unless said otherwise.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Violation {
    /// A command line that does not parse (500/501).
    #[error("bad command: {0}")]
    Command(#[from] CommandError),
    /// PORT/EPRT naming another host than the client's (the bounce attack,
    /// RFC 2577), or a privileged port.
    #[error("PORT/EPRT to a foreign address or privileged port refused")]
    Bounce,
    /// A connection to our passive port from an address other than the
    /// control connection's peer: closed, the port keeps waiting.
    #[error("data connection from a foreign address refused")]
    ForeignDataConnection,
    /// Too many failed logins: the control connection is closed (421).
    #[error("too many failed logins")]
    LoginAttempts,
    /// The reply stream from a server could not be parsed (client).
    #[error("bad reply: {0}")]
    Reply(#[from] ReplyError),
    /// The server's passive address could not be parsed (client).
    #[error("bad passive reply: {0}")]
    Addr(#[from] AddrError),
    /// Plaintext behind `AUTH TLS` (a plaintext injection): commands the
    /// client sent before our 234 could be seen (server), or bytes the
    /// server sent after its 234 (client). Never carried into the TLS
    /// session; the control connection is closed.
    #[error("plaintext pipelined after AUTH TLS")]
    PlaintextAfterAuth,
    /// The TLS handshake of the control connection (after 234) or of a
    /// protected data connection failed.
    #[error("TLS handshake failed: {0}")]
    TlsFailed(alloc::string::String),
}

/// The application misused a machine's command API.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No such request (never issued, already answered, or aborted by the
    /// client meanwhile). Applications may ignore this: a client's ABOR
    /// races every answer.
    #[error("unknown or finished request")]
    UnknownRequest,
    /// This answer does not fit the request (a listing for a DELE, data
    /// for an upload).
    #[error("answer does not fit the request")]
    WrongAnswer,
    /// The transfer was already finished by the application.
    #[error("transfer already finished")]
    Finished,
    /// A client command while another is outstanding, or before login.
    #[error("client busy or not ready: {0}")]
    NotReady(&'static str),
    /// A command argument holds CR, LF or NUL.
    #[error("argument holds a control character")]
    BadArgument,
}
