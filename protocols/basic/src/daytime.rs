//! Daytime (RFC 867): on connect, the current date and time as one line
//! of ASCII, then close; a datagram gets the same line back (the
//! [`OneShot`] shape).
//!
//! The RFC fixes no syntax. The time is the wall clock of the input's
//! [`Now`] (the machine reads no clock), formatted as an HTTP-date
//! (`Thu, 01 Jan 2026 00:00:00 GMT`, RFC 9110 §5.6.7, the RFC 1123 form)
//! or RFC 3339 (`2026-01-01T00:00:00Z`), followed by CRLF.

use bytes::{Bytes, BytesMut};
use core::fmt::Write;
use twill_core::Now;

use crate::oneshot::{Message, OneShot};

/// How the date is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DaytimeFormat {
    /// `Thu, 01 Jan 2026 00:00:00 GMT`.
    #[default]
    HttpDate,
    /// `2026-01-01T00:00:00Z`.
    Rfc3339,
}

impl Message for DaytimeFormat {
    fn message(&self, now: Now, buf: &mut BytesMut) -> Bytes {
        let civil = now.wall.to_civil();
        // Writing into a BytesMut cannot fail.
        let _ = match self {
            DaytimeFormat::HttpDate => write!(buf, "{}\r\n", civil.http_date()),
            DaytimeFormat::Rfc3339 => write!(buf, "{}\r\n", civil.rfc3339()),
        };
        buf.split().freeze()
    }
}

/// The daytime service over any number of connections and sockets.
pub type Daytime = OneShot<DaytimeFormat>;

impl OneShot<DaytimeFormat> {
    /// Daytime with HTTP-dates.
    pub fn new() -> Self {
        OneShot::saying(DaytimeFormat::HttpDate)
    }

    /// How the date is written.
    pub fn with_format(mut self, format: DaytimeFormat) -> Self {
        self.say = format;
        self
    }
}
