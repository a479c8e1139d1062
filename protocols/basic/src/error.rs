//! Errors: [`FramingError`] is the peer's fault (bad framing, a limit
//! exceeded) and is reported as an event; [`Error`] is the application's
//! (a command that cannot be carried out) and is returned.

use twill_core::{ConnId, LimitExceeded};

/// Why bytes could not be decoded into a frame, or a frame could not be
/// encoded. Decoding errors are the peer's doing: machines report them as
/// a `Violation` event and close that connection only.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FramingError {
    /// A bound was exceeded: `LineLength` for a line, `MessageSize` for a
    /// netstring or length-prefixed message. Detected at the earliest
    /// byte that proves it (a partial line longer than the limit, a length
    /// header announcing too much).
    #[error(transparent)]
    Limit(#[from] LimitExceeded),
    /// A netstring's length is empty or holds something other than ASCII
    /// digits before the `:`.
    #[error("netstring length is not a non-empty run of decimal digits")]
    BadLength,
    /// A netstring's length starts with `0` but is not exactly `0`.
    #[error("netstring length has a leading zero")]
    LeadingZero,
    /// A netstring's data is not followed by `,`.
    #[error("netstring does not end with a comma")]
    MissingComma,
    /// The peer finished sending in the middle of a frame.
    #[error("the stream ended inside a frame ({pending} bytes buffered)")]
    Truncated {
        /// Bytes of the incomplete frame.
        pending: usize,
    },
    /// Encoding: the frame contains the line delimiter, so sending it would
    /// inject a second line.
    #[error("frame contains the line delimiter")]
    ContainsDelimiter,
    /// Encoding: the frame ends in CR, which a lenient line decoder would
    /// strip.
    #[error("frame ends in CR, which the line decoder would strip")]
    TrailingCr,
    /// Encoding: the frame is longer than its length prefix can say.
    #[error("frame of {len} bytes does not fit a length prefix whose maximum is {max}")]
    PrefixOverflow {
        /// The frame's length.
        len: usize,
        /// The largest length the prefix can hold.
        max: usize,
    },
}

/// The application misused a machine: a command that cannot be carried
/// out. Returned from the command; the machine itself stays usable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No such connection (never opened, or already closed).
    #[error("unknown connection {0}")]
    UnknownConn(ConnId),
    /// The connection is closing; nothing more can be sent on it.
    #[error("connection {0} is closing")]
    Closing(ConnId),
    /// The frame cannot be encoded (it contains the delimiter, is too long
    /// for the limit or the prefix).
    #[error("frame cannot be encoded: {0}")]
    Encode(#[from] FramingError),
    /// A quote longer than RFC 865's 512 characters.
    #[error("quote of {len} bytes exceeds RFC 865's limit of 512")]
    QuoteTooLong {
        /// Its length.
        len: usize,
    },
}
