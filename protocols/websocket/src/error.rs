//! Typed errors: [`ProtocolError`] is the peer's fault (answered with a
//! close frame carrying [`ProtocolError::close_code`]), [`Error`] the
//! application's misuse of a command.

use crate::codec::CloseCode;

/// The peer broke RFC 6455/7692 or a limit. Never returned as `Err` from
/// the machine: it is reported in an event and answered with a close frame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// Opcode 3–7 or 0xB–0xF.
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// A reserved bit no negotiated extension claims.
    #[error("reserved bits {0:#05b} set")]
    ReservedBits(u8),
    /// A control frame without FIN.
    #[error("fragmented control frame")]
    FragmentedControl,
    /// A control frame over 125 bytes.
    #[error("control frame payload over 125 bytes")]
    ControlTooLong,
    /// A 64-bit length with the top bit set.
    #[error("frame length has its most significant bit set")]
    LengthOverflow,
    /// A client frame without a mask (server role).
    #[error("unmasked frame from a client")]
    Unmasked,
    /// A server frame with a mask (client role).
    #[error("masked frame from a server")]
    Masked,
    /// A continuation frame with no message to continue.
    #[error("continuation frame outside a fragmented message")]
    UnexpectedContinuation,
    /// A new text/binary frame inside a fragmented message.
    #[error("new data frame inside a fragmented message")]
    ExpectedContinuation,
    /// Text (or a close reason) that is not UTF-8.
    #[error("invalid UTF-8 in a text message or close reason")]
    InvalidUtf8,
    /// A close payload of one byte.
    #[error("close payload of one byte")]
    BadClosePayload,
    /// A close code not allowed on the wire.
    #[error("close code {0} is not allowed on the wire")]
    BadCloseCode(u16),
    /// A frame over the frame-size limit.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooBig {
        /// Its announced length.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// A message (after decompression) over the message-size limit.
    #[error("message exceeds the limit of {max} bytes")]
    MessageTooBig {
        /// The limit.
        max: usize,
    },
    /// Compressed data that does not inflate, or RSV1 on a control or
    /// continuation frame.
    #[error("bad compressed data: {0}")]
    Compression(&'static str),
    /// No pong (nor anything else) came back before the keep-alive deadline.
    #[error("keep-alive ping unanswered")]
    KeepaliveTimeout,
}

impl ProtocolError {
    /// The close code sent for it (§7.4.1).
    pub fn close_code(&self) -> CloseCode {
        match self {
            ProtocolError::InvalidUtf8 | ProtocolError::Compression(_) => CloseCode::INVALID_DATA,
            ProtocolError::FrameTooBig { .. } | ProtocolError::MessageTooBig { .. } => {
                CloseCode::TOO_BIG
            }
            ProtocolError::KeepaliveTimeout => CloseCode::INTERNAL,
            _ => CloseCode::PROTOCOL,
        }
    }
}

/// The application misused a command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The connection is closing or closed: nothing more may be sent.
    #[error("the connection is closing")]
    Closing,
    /// A ping, pong or close payload over 125 bytes.
    #[error("control payload over 125 bytes")]
    ControlTooLong,
    /// A close code that may not be sent (1005, 1006, 1015, reserved).
    #[error("close code {0} may not be sent")]
    BadCloseCode(u16),
    /// A frame of a new message while another is being sent in pieces, or
    /// a continuation with none started.
    #[error("fragment out of order: {0}")]
    Fragment(&'static str),
    /// Text that is not UTF-8 (streamed text is checked as it goes).
    #[error("text is not UTF-8")]
    NotUtf8,
    /// A handshake the peer sent or we were asked to build is unusable.
    #[error("handshake: {0}")]
    Handshake(#[from] crate::handshake::HandshakeError),
}
