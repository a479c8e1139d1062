//! Errors: [`Violation`] is the peer's doing (an event after the `-ERR`
//! or the close); [`Error`] is the application's and is returned.

/// Something a peer did that the machine answered with `-ERR` or a close.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Violation {
    /// A command line over the limit.
    #[error("command line longer than the limit")]
    LineTooLong,
    /// Too many erroneous commands (closed).
    #[error("too many errors")]
    TooManyErrors,
    /// The autologout timer expired (closed).
    #[error("timeout")]
    Timeout,
    /// The TLS handshake after STLS failed (closed).
    #[error("STLS handshake failed")]
    StartTlsFailed,
    /// A response the server sent was malformed (client side).
    #[error("malformed response")]
    BadResponse,
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
}
