//! Errors: [`Violation`] is the peer's doing (reported as an event after
//! the protocol's own reply); [`Error`] is the application's (a command
//! the machine cannot carry out now) and is returned.

/// Something a peer did that the machine answered with an error reply or
/// by closing; reported as an event for logs and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Violation {
    /// A command line over the limit (500 5.5.2).
    #[error("command line longer than the limit")]
    LineTooLong,
    /// Too many erroneous commands in one session (421, closed).
    #[error("too many errors")]
    TooManyErrors,
    /// Nothing arrived for the RFC 5321 §4.5.3.2 time (421, closed).
    #[error("timeout")]
    Timeout,
    /// The TLS handshake after STARTTLS failed (closed).
    #[error("STARTTLS handshake failed")]
    StartTlsFailed,
    /// The peer ended the connection inside a message.
    #[error("connection ended inside a message")]
    EofInMessage,
    /// A message with a bare CR or LF (refused with 550 5.6.0).
    #[error("bare CR or LF in a message")]
    BareLineEnding,
    /// A message over the size limit (552 5.3.4).
    #[error("message larger than the limit")]
    MessageTooBig,
    /// A reply the server sent was malformed (client side).
    #[error("malformed reply")]
    BadReply,
}

/// The application misused the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An answer was given that the machine was not waiting for.
    #[error("the machine is not waiting for this answer")]
    NotWaiting,
    /// A command was given in a state that does not allow it (client).
    #[error("command not allowed now")]
    Busy,
    /// A value is not valid for the protocol (a CR or LF in an address).
    #[error("invalid argument")]
    InvalidArgument,
}
