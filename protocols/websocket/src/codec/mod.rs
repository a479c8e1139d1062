//! Pure functions from bytes to frames and back: the frame header
//! ([`frame`]), masking, close payloads ([`close`]) and incremental UTF-8
//! validation ([`utf8`]). No state beyond what one call needs.

pub mod close;
pub mod frame;
pub mod utf8;

pub use close::{parse_close, CloseCode};
pub use frame::{apply_mask, parse_header, write_header, FrameHeader, OpCode};
pub use utf8::Utf8Validator;
