//! Pure framing codecs: bytes in, frames out, and back. No connection
//! state, no I/O; the [`Framed`](crate::framed::Framed) machine and the
//! services put them on connections.
//!
//! Every decoder follows one contract (the [`Codec`] trait):
//! - the caller keeps one `BytesMut` per stream, only ever appends to it,
//!   and calls [`decode`](Codec::decode) until it returns `Ok(None)`;
//! - each decoded frame is removed from the front of the buffer and
//!   returned as a zero-copy `Bytes` (`split_to().freeze()`);
//! - a decoder remembers how far it has scanned, so a frame arriving one
//!   byte at a time costs linear, not quadratic, time;
//! - every frame is bounded, and a limit is reported as soon as a byte
//!   proves it will be exceeded, so buffered input stays bounded too;
//! - after an error the stream is unusable: drop the buffer and
//!   [`reset`](Codec::reset) (or drop) the codec.
//!
//! Encoders write into a caller-supplied `BytesMut` (the machine's one
//! reusable output buffer) and refuse, leaving it untouched, any frame the
//! peer's decoder would read back differently (a line holding the
//! delimiter) or reject (over the limit).

use bytes::{Bytes, BytesMut};

use crate::error::FramingError;

pub mod lines;
pub mod netstring;
pub mod prefixed;

pub use lines::{LineEnding, Lines};
pub use netstring::Netstring;
pub use prefixed::{Prefix, Prefixed};

/// A framing: what [`Framed`](crate::framed::Framed) is generic over.
pub trait Codec {
    /// Takes the next complete frame off the front of `buf`, or `Ok(None)`
    /// if more bytes are needed. See the [module docs](self) for the
    /// buffer contract.
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FramingError>;

    /// Appends `frame`, framed, to `out`; on error `out` is unchanged.
    fn encode(&self, frame: &[u8], out: &mut BytesMut) -> Result<(), FramingError>;

    /// Forgets any partial-frame state (for a fresh stream).
    fn reset(&mut self);

    /// The largest frame this codec decodes or encodes.
    fn max_frame(&self) -> usize;
}
