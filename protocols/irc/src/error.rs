//! Errors. A [`ParseError`] or a [`LineError`] is the peer's doing: machines
//! answer it (417, `ERROR`) and carry on or close that connection only.
//! An [`EncodeError`] or an [`Error`] is the application's: a message that
//! cannot be sent as asked.

use twill_core::ConnId;

/// Which part of a message an encoding error is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Part {
    /// A tag value.
    Tag,
    /// The source.
    Source,
    /// A parameter.
    Param,
}

/// Why a line is not an IRC message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// There is no command.
    #[error("no command")]
    NoCommand,
    /// The command is neither letters nor three digits.
    #[error("the command is neither letters nor a three-digit numeric")]
    BadCommand,
    /// A `:` with no source after it.
    #[error("empty source")]
    EmptySource,
    /// The tag section is empty or holds a malformed key or value.
    #[error("malformed message tags")]
    BadTags,
    /// The tag section is over 8191 bytes.
    #[error("the tag section is over 8191 bytes")]
    TagsTooLong,
    /// The message proper is over 512 bytes with its CR LF.
    #[error("the message is over 512 bytes")]
    BodyTooLong,
    /// The line is longer than any message can be.
    #[error("the line is too long")]
    TooLong,
    /// NUL, CR or LF inside the line.
    #[error("forbidden byte {0:#04x} in the message")]
    ForbiddenByte(u8),
}

/// Why a message could not be encoded. Nothing was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// NUL, CR or LF in a part: sending it would inject another command.
    #[error("forbidden byte {byte:#04x} in {part:?}")]
    ForbiddenByte {
        /// Where.
        part: Part,
        /// Which byte.
        byte: u8,
    },
    /// The command is neither letters nor three digits (or missing).
    #[error("bad or missing command")]
    BadCommand,
    /// The source is empty or holds a space.
    #[error("bad source")]
    BadSource,
    /// A middle parameter is empty, holds a space or starts with `:`.
    #[error("a middle parameter is empty, holds a space or starts with ':'")]
    BadMiddle,
    /// A parameter after the trailing one.
    #[error("a parameter after the trailing parameter")]
    ParamAfterTrailing,
    /// More than 15 parameters.
    #[error("more than 15 parameters")]
    TooManyParams,
    /// A malformed tag key.
    #[error("malformed tag key")]
    BadTagKey,
    /// An escaped tag value holding a forbidden byte.
    #[error("malformed escaped tag value")]
    BadTagValue,
    /// Parts in the wrong order (tags, source, command, parameters).
    #[error("message parts in the wrong order")]
    Order,
    /// The message proper would be over the limit.
    #[error("the message would be {len} bytes, over the limit")]
    BodyTooLong {
        /// Its length with CR LF.
        len: usize,
    },
    /// The tag section would be over the limit.
    #[error("the tag section would be {len} bytes, over the limit")]
    TagsTooLong {
        /// Its length.
        len: usize,
    },
}

/// A line over the framing's limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a line is over {max} bytes")]
pub struct LineError {
    /// The limit.
    pub max: usize,
}

/// The application misused a machine.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The message cannot be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// No such connection.
    #[error("unknown connection {0:?}")]
    UnknownConn(ConnId),
    /// The connection is not (or no longer) usable.
    #[error("not connected")]
    NotConnected,
    /// An argument is not acceptable (a nick or channel with spaces …).
    #[error("invalid argument: {0}")]
    Invalid(&'static str),
}
