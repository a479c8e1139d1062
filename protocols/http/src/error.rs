//! Errors: [`ProtocolError`] is the peer's fault (a malformed or oversized
//! message, a timeout) and is reported as an event, answered with
//! [`ProtocolError::status`] where a response is still possible, then the
//! connection is closed; [`Error`] is the application's (a command that
//! cannot be carried out) and is returned.

use twill_core::ConnId;

use crate::server::RequestId;

/// What is wrong with bytes a peer sent. Every variant maps to the status a
/// server answers with ([`status`](Self::status)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The request line (or status line) is malformed: bad method token,
    /// bad target, missing spaces.
    #[error("malformed request line")]
    BadRequestLine,
    /// The status line of a response is malformed.
    #[error("malformed status line")]
    BadStatusLine,
    /// The request line is longer than the limit (414).
    #[error("request line longer than the limit")]
    UriTooLong,
    /// The head (start line plus header fields) is longer than the limit
    /// (431).
    #[error("head larger than the limit")]
    HeadTooLarge,
    /// More header fields than the limit (431).
    #[error("too many header fields")]
    TooManyHeaders,
    /// A version other than HTTP/1.0 or HTTP/1.1, well formed (`HTTP/2.0`,
    /// `HTTP/1.2`): 505.
    #[error("unsupported HTTP version")]
    UnsupportedVersion,
    /// A header line starts with whitespace (obsolete line folding,
    /// RFC 9112 §5.2).
    #[error("obsolete line folding in a header field")]
    ObsFold,
    /// A line ends in LF without CR.
    #[error("bare LF in the head")]
    BareLf,
    /// A CR not followed by LF.
    #[error("bare CR in the head")]
    BareCr,
    /// Whitespace between a field name and the colon (RFC 9112 §5.1).
    #[error("whitespace before the colon of a header field")]
    SpaceBeforeColon,
    /// A field name that is not a token.
    #[error("invalid header field name")]
    InvalidHeaderName,
    /// A field value with forbidden bytes (control characters).
    #[error("invalid header field value")]
    InvalidHeaderValue,
    /// A Content-Length that is not a decimal number.
    #[error("invalid Content-Length")]
    BadContentLength,
    /// Several Content-Length values (duplicate or conflicting).
    #[error("multiple Content-Length values")]
    MultipleContentLength,
    /// Both Transfer-Encoding and Content-Length (request smuggling).
    #[error("both Transfer-Encoding and Content-Length")]
    TransferEncodingAndContentLength,
    /// A transfer coding other than `chunked` (501).
    #[error("unknown transfer coding")]
    UnknownTransferCoding,
    /// `chunked` is not the final transfer coding of a request, or appears
    /// twice.
    #[error("chunked is not the final transfer coding")]
    ChunkedNotFinal,
    /// Transfer-Encoding in an HTTP/1.0 message (RFC 9112 §6.1).
    #[error("Transfer-Encoding in an HTTP/1.0 message")]
    TransferEncodingHttp10,
    /// An HTTP/1.1 request without Host, or with more than one
    /// (RFC 9112 §3.2).
    #[error("missing or repeated Host")]
    BadHost,
    /// The body is longer than the limit (413).
    #[error("body larger than the limit")]
    BodyTooLarge,
    /// A chunk-size line is malformed (not hex, too many digits).
    #[error("malformed chunk size")]
    BadChunkSize,
    /// A chunk's data is not followed by CRLF.
    #[error("chunk data not followed by CRLF")]
    BadChunkEnd,
    /// Chunk extensions longer than the limit.
    #[error("chunk extensions longer than the limit")]
    ChunkExtensionTooLong,
    /// The trailer section is malformed or longer than the limit.
    #[error("malformed or oversized trailer section")]
    BadTrailers,
    /// The peer ended the connection inside a message.
    #[error("connection ended inside a message")]
    Truncated,
    /// The head did not arrive within the header timeout (408).
    #[error("head not received within the header timeout")]
    HeaderTimeout,
    /// No byte of a request body arrived within the body timeout (408 if
    /// nothing of the response was sent yet).
    #[error("request body stalled beyond the body timeout")]
    BodyTimeout,
    /// The response does not belong to any request (a server that speaks
    /// first, or more responses than requests).
    #[error("unexpected response")]
    UnexpectedResponse,
    /// The server sent nothing for a pending request within the client's
    /// response timeout.
    #[error("no response within the response timeout")]
    ResponseTimeout,
}

impl ProtocolError {
    /// The status a server answers with.
    pub fn status(self) -> u16 {
        match self {
            ProtocolError::UriTooLong => 414,
            ProtocolError::HeadTooLarge | ProtocolError::TooManyHeaders => 431,
            ProtocolError::UnsupportedVersion => 505,
            ProtocolError::UnknownTransferCoding => 501,
            ProtocolError::BodyTooLarge => 413,
            ProtocolError::HeaderTimeout | ProtocolError::BodyTimeout => 408,
            ProtocolError::ResponseTimeout => 504,
            _ => 400,
        }
    }

    /// The neutral name spec vectors use for this error (`bad-chunk-size`
    /// …).
    pub fn kind(self) -> &'static str {
        match self {
            ProtocolError::BadRequestLine => "bad-request-line",
            ProtocolError::BadStatusLine => "bad-status-line",
            ProtocolError::UriTooLong => "uri-too-long",
            ProtocolError::HeadTooLarge => "head-too-large",
            ProtocolError::TooManyHeaders => "too-many-headers",
            ProtocolError::UnsupportedVersion => "unsupported-version",
            ProtocolError::ObsFold => "obs-fold",
            ProtocolError::BareLf => "bare-lf",
            ProtocolError::BareCr => "bare-cr",
            ProtocolError::SpaceBeforeColon => "space-before-colon",
            ProtocolError::InvalidHeaderName => "invalid-header-name",
            ProtocolError::InvalidHeaderValue => "invalid-header-value",
            ProtocolError::BadContentLength => "bad-content-length",
            ProtocolError::MultipleContentLength => "multiple-content-length",
            ProtocolError::TransferEncodingAndContentLength => "te-and-cl",
            ProtocolError::UnknownTransferCoding => "unknown-transfer-coding",
            ProtocolError::ChunkedNotFinal => "chunked-not-final",
            ProtocolError::TransferEncodingHttp10 => "te-in-http10",
            ProtocolError::BadHost => "bad-host",
            ProtocolError::BodyTooLarge => "body-too-large",
            ProtocolError::BadChunkSize => "bad-chunk-size",
            ProtocolError::BadChunkEnd => "bad-chunk-end",
            ProtocolError::ChunkExtensionTooLong => "chunk-extension-too-long",
            ProtocolError::BadTrailers => "bad-trailers",
            ProtocolError::Truncated => "truncated",
            ProtocolError::HeaderTimeout => "header-timeout",
            ProtocolError::BodyTimeout => "body-timeout",
            ProtocolError::UnexpectedResponse => "unexpected-response",
            ProtocolError::ResponseTimeout => "response-timeout",
        }
    }
}

/// The application misused a machine: a command that cannot be carried
/// out. Returned from the command; nothing is sent for it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No such request (never received, already finished, or its
    /// connection is gone).
    #[error("unknown request {0:?}")]
    UnknownRequest(RequestId),
    /// No such connection.
    #[error("unknown connection {0}")]
    UnknownConn(ConnId),
    /// The command does not fit the message's state (a body before the
    /// head, a second response, a 1xx after the final response …).
    #[error("{0}")]
    State(&'static str),
    /// A header name or value the application gave contains bytes that
    /// cannot be sent (CR, LF, NUL, a non-token name).
    #[error("invalid header field from the application: {0}")]
    InvalidHeader(&'static str),
    /// The application set a framing header (Content-Length,
    /// Transfer-Encoding) itself: framing is given as a
    /// [`BodyKind`](crate::BodyKind) instead.
    #[error("framing header set by the application: {0}")]
    FramingHeader(&'static str),
    /// More body bytes than the announced Content-Length.
    #[error("body longer than the announced Content-Length")]
    BodyTooLong,
    /// Finished with fewer body bytes than the announced Content-Length.
    #[error("body shorter than the announced Content-Length")]
    BodyTooShort,
    /// A status code outside 100–999, or of the wrong class for the
    /// command.
    #[error("invalid status code {0}")]
    BadStatus(u16),
}
