//! Quote of the Day (RFC 865): on connect, a short message, then close; a
//! datagram gets the same message back (the [`OneShot`] shape).
//!
//! The RFC limits the message to 512 characters; [`Qotd::new`] refuses a
//! longer one. The quote is sent exactly as configured (add the CRLF you
//! want); it is stored once and sent as a shared `Bytes`.

use bytes::{Bytes, BytesMut};
use twill_core::Now;

use crate::error::Error;
use crate::oneshot::{Message, OneShot};

/// The longest quote RFC 865 allows.
pub const MAX_QUOTE: usize = 512;

/// The quote [`Qotd::default`] sends (Ralph Waldo Emerson, public domain).
pub const DEFAULT_QUOTE: &str = "The only way to have a friend is to be one. -- Emerson\r\n";

/// A quote of at most [`MAX_QUOTE`] bytes.
#[derive(Clone, Debug)]
pub struct Quote(Bytes);

impl Default for Quote {
    fn default() -> Self {
        Quote(Bytes::from_static(DEFAULT_QUOTE.as_bytes()))
    }
}

impl Message for Quote {
    fn message(&self, _now: Now, _buf: &mut BytesMut) -> Bytes {
        self.0.clone()
    }
}

/// The quote-of-the-day service over any number of connections and
/// sockets.
pub type Qotd = OneShot<Quote>;

impl OneShot<Quote> {
    /// A service sending `quote`.
    ///
    /// # Errors
    /// [`Error::QuoteTooLong`] past [`MAX_QUOTE`] bytes.
    pub fn new(quote: impl Into<Bytes>) -> Result<Self, Error> {
        let quote = quote.into();
        if quote.len() > MAX_QUOTE {
            return Err(Error::QuoteTooLong { len: quote.len() });
        }
        Ok(OneShot::saying(Quote(quote)))
    }

    /// The quote.
    pub fn quote(&self) -> &Bytes {
        &self.say.0
    }
}
