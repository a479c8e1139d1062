//! Pure functions from bytes to typed HTTP/1.1 messages and back: heads
//! ([`head`]), body framing ([`framing`]) and the chunked coding
//! ([`chunked`]). The machines ([`Server`](crate::Server),
//! [`Client`](crate::Client)) are built on these; nothing here keeps
//! connection state.

pub mod chunked;
pub mod framing;
pub mod head;
mod one_pass;

pub use chunked::{Chunk, ChunkedDecoder, ChunkedLimits};
pub use framing::{request_body, response_body, wants_keep_alive, BodyKind};
pub use head::{
    decode_request, decode_response, parse_request, parse_response, reason_phrase, HeadLimits,
    HeadScanner, Headers, RequestHead, ResponseHead, Version,
};
