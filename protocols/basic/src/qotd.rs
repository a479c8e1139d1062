//! Quote of the Day (RFC 865): on connect, a short message, then close; a
//! datagram gets the same message back.
//!
//! | input | effect |
//! |---|---|
//! | `Accepted` / `Opened` | [`ServiceEvent::Connected`], the quote, `Close::Graceful` |
//! | `Data` | all taken and ignored |
//! | `Datagram` | the quote to the sender |
//! | `Closed` | [`ServiceEvent::Closed`] |
//!
//! The RFC limits the message to 512 characters; [`Qotd::new`] refuses a
//! longer one. The quote is sent exactly as configured (add the CRLF you
//! want); it is stored once and sent as a shared `Bytes`.

use alloc::collections::BTreeSet;
use bytes::Bytes;
use twill_core::{Close, ConnId, Input, Machine, Now, OutQueue, Output};

use crate::error::Error;
use crate::service::ServiceEvent;

/// The longest quote RFC 865 allows.
pub const MAX_QUOTE: usize = 512;

/// The quote [`Qotd::default`] sends (Ralph Waldo Emerson, public domain).
pub const DEFAULT_QUOTE: &str = "The only way to have a friend is to be one. -- Emerson\r\n";

/// The quote-of-the-day service over any number of connections and
/// sockets.
#[derive(Debug)]
pub struct Qotd {
    quote: Bytes,
    conns: BTreeSet<ConnId>,
    out: OutQueue<ServiceEvent>,
}

impl Default for Qotd {
    fn default() -> Self {
        Qotd {
            quote: Bytes::from_static(DEFAULT_QUOTE.as_bytes()),
            conns: BTreeSet::new(),
            out: OutQueue::new(),
        }
    }
}

/// A fresh service with the same quote (for a factory of per-connection
/// machines).
impl Clone for Qotd {
    fn clone(&self) -> Self {
        Qotd {
            quote: self.quote.clone(),
            ..Qotd::default()
        }
    }
}

impl Qotd {
    /// A service sending `quote`.
    ///
    /// # Errors
    /// [`Error::QuoteTooLong`] past [`MAX_QUOTE`] bytes.
    pub fn new(quote: impl Into<Bytes>) -> Result<Self, Error> {
        let quote = quote.into();
        if quote.len() > MAX_QUOTE {
            return Err(Error::QuoteTooLong { len: quote.len() });
        }
        Ok(Qotd {
            quote,
            ..Qotd::default()
        })
    }

    /// The quote.
    pub fn quote(&self) -> &Bytes {
        &self.quote
    }
}

impl Machine for Qotd {
    type Event = ServiceEvent;
    type Error = Error;

    /// Never fails.
    fn handle_input(&mut self, _now: Now, input: Input<'_>) -> Result<usize, Error> {
        match input {
            Input::Accepted { conn, peer, .. } | Input::Opened { conn, peer, .. } => {
                self.conns.insert(conn);
                self.out.event(ServiceEvent::Connected { conn, peer });
                self.out.transmit(conn, self.quote.clone());
                self.out.close(conn, Close::Graceful);
            }
            Input::Data { bytes, .. } => return Ok(bytes.len()),
            Input::Closed { conn } => {
                let known = self.conns.remove(&conn);
                if known {
                    self.out.event(ServiceEvent::Closed { conn });
                }
            }
            Input::Datagram {
                sock, from, bytes, ..
            } => {
                self.out.push(Output::SendTo {
                    sock,
                    to: from,
                    bytes: self.quote.clone(),
                });
                self.out.event(ServiceEvent::Datagram {
                    sock,
                    from,
                    len: bytes.len(),
                    replied: self.quote.len(),
                });
            }
            _ => {}
        }
        Ok(0)
    }

    fn handle_timeout(&mut self, _now: Now) {}

    fn poll_output(&mut self) -> Output<ServiceEvent> {
        self.out.pop_or_wait(None)
    }
}
