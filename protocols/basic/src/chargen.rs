//! Character generator (RFC 864): an endless stream of the RFC's rotating
//! pattern — 72-character lines of the 95 printable ASCII characters, each
//! line starting one character further on, CRLF after each.
//!
//! | input | effect |
//! |---|---|
//! | `Accepted` / `Opened` | [`ServiceEvent::Connected`]; fills the connection's output budget with the pattern |
//! | `Sent` | once the output drains to the low-water mark, produces up to the high-water mark again |
//! | `Data` | all taken and ignored |
//! | `Eof` | [`ServiceEvent::Eof`], `Close::Graceful` (the client is done) |
//! | `Datagram` | one reply datagram, see below |
//! | `Closed` | [`ServiceEvent::Closed`] |
//!
//! The stream is produced only while the connection has room in its
//! [`OutputBudget`], so a client that does not read holds the server to at
//! most the high-water mark per connection. The pattern is built once per
//! machine and sent as zero-copy slices of it.
//!
//! **Datagrams.** RFC 864 answers each datagram with "a random number
//! (between 0 and 512) of characters". With an injected generator
//! ([`Chargen::with_rng`]) that is what happens. Without one
//! ([`Chargen::new`]) each reply is one 74-byte pattern line (72 characters
//! and CRLF), successive replies rotating through the pattern — a fixed
//! length, which the RFC's "may be anything" data rule allows but its
//! length rule does not quite.

use alloc::vec::Vec;
use bytes::Bytes;
use core::fmt;
use twill_core::rng::Rng;
use twill_core::ConnMap;
use twill_core::{Close, ConnId, Input, Machine, Now, OutQueue, Output, OutputBudget};

use crate::error::Error;
use crate::service::ServiceEvent;

/// Characters per line.
pub const LINE_CHARS: usize = 72;
/// Bytes per line, CRLF included.
pub const LINE_LEN: usize = LINE_CHARS + 2;
/// Lines before the pattern repeats (one per printable ASCII character).
pub const LINES: usize = 95;
/// Bytes before the pattern repeats.
pub const CYCLE_LEN: usize = LINES * LINE_LEN;
/// The largest datagram reply (RFC 864).
pub const MAX_DATAGRAM: usize = 512;

/// Line `n` of the pattern (0-based, wrapping), CRLF included. Line 0
/// starts with `!`, as in the RFC's example.
pub fn line(n: usize) -> [u8; LINE_LEN] {
    let mut l = [0u8; LINE_LEN];
    let start = (n + 1) % LINES;
    for (k, b) in l[..LINE_CHARS].iter_mut().enumerate() {
        *b = b' ' + ((start + k) % LINES) as u8;
    }
    l[LINE_CHARS] = b'\r';
    l[LINE_CHARS + 1] = b'\n';
    l
}

/// One cycle of the pattern, plus its first `MAX_DATAGRAM` bytes again so
/// any datagram starting at a line is one contiguous slice.
fn pattern() -> Bytes {
    let mut v = Vec::with_capacity(CYCLE_LEN + MAX_DATAGRAM);
    for n in 0..LINES {
        v.extend_from_slice(&line(n));
    }
    v.extend_from_within(..MAX_DATAGRAM);
    Bytes::from(v)
}

#[derive(Debug)]
struct Conn {
    budget: OutputBudget,
    /// Where in the cycle the next byte comes from.
    pos: usize,
    produced: u64,
    closing: bool,
}

/// The chargen service over any number of connections and sockets.
pub struct Chargen {
    pattern: Bytes,
    budget: OutputBudget,
    limit: Option<u64>,
    rng: Option<Rng>,
    udp_line: usize,
    conns: ConnMap<Conn>,
    out: OutQueue<ServiceEvent>,
}

impl fmt::Debug for Chargen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chargen")
            .field("budget", &self.budget)
            .field("limit", &self.limit)
            .field("random_datagrams", &self.rng.is_some())
            .field("conns", &self.conns)
            .finish_non_exhaustive()
    }
}

impl Default for Chargen {
    fn default() -> Self {
        Chargen::new()
    }
}

impl Chargen {
    /// Chargen with the default [`OutputBudget`], endless streams, and
    /// one-line datagram replies.
    pub fn new() -> Self {
        Chargen {
            pattern: pattern(),
            budget: OutputBudget::default(),
            limit: None,
            rng: None,
            udp_line: 0,
            conns: ConnMap::new(),
            out: OutQueue::new(),
        }
    }

    /// Answer datagrams with 0–512 bytes, the length drawn from `rng`.
    pub fn with_rng(mut self, rng: Rng) -> Self {
        self.rng = Some(rng);
        self
    }

    /// Output water marks per connection.
    pub fn with_budget(mut self, budget: OutputBudget) -> Self {
        self.budget = budget;
        self
    }

    /// Send `bytes` on each connection, then close it gracefully (a
    /// bounded stream for tests and measurements; RFC 864's stream is
    /// endless, which is the default).
    pub fn with_limit(mut self, bytes: u64) -> Self {
        self.limit = Some(bytes);
        self
    }

    /// Bytes sent on `conn` so far.
    pub fn produced(&self, conn: ConnId) -> Option<u64> {
        self.conns.get(&conn).map(|c| c.produced)
    }

    /// Fills `conn`'s budget up to the high-water mark.
    fn produce(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        while !c.closing {
            let left = self.limit.map_or(usize::MAX, |l| {
                usize::try_from(l - c.produced).unwrap_or(usize::MAX)
            });
            if left == 0 {
                c.closing = true;
                self.out.close(conn, Close::Graceful);
                break;
            }
            let n = c.budget.room().min(CYCLE_LEN - c.pos).min(left);
            if n == 0 {
                break;
            }
            self.out
                .transmit(conn, self.pattern.slice(c.pos..c.pos + n));
            c.budget.queued(n);
            c.pos = (c.pos + n) % CYCLE_LEN;
            c.produced += n as u64;
        }
    }
}

impl Machine for Chargen {
    type Event = ServiceEvent;
    type Error = Error;

    /// Never fails.
    fn handle_input(&mut self, _now: Now, input: Input<'_>) -> Result<usize, Error> {
        match input {
            Input::Accepted { conn, peer, .. } | Input::Opened { conn, peer, .. } => {
                self.conns.insert(
                    conn,
                    Conn {
                        budget: self.budget,
                        pos: 0,
                        produced: 0,
                        closing: false,
                    },
                );
                self.out.event(ServiceEvent::Connected { conn, peer });
                self.produce(conn);
            }
            Input::Data { bytes, .. } => return Ok(bytes.len()),
            Input::Sent { conn, bytes } => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.budget.sent(bytes);
                    if c.budget.has_room() {
                        self.produce(conn);
                    }
                }
            }
            Input::Eof { conn, .. } => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    if !c.closing {
                        c.closing = true;
                        self.out.event(ServiceEvent::Eof { conn });
                        self.out.close(conn, Close::Graceful);
                    }
                }
            }
            Input::Closed { conn } => {
                let known = self.conns.remove(&conn).is_some();
                if known {
                    self.out.event(ServiceEvent::Closed { conn });
                }
            }
            Input::Datagram {
                sock, from, bytes, ..
            } => {
                let len = match &mut self.rng {
                    Some(rng) => rng.next_u32() as usize % (MAX_DATAGRAM + 1),
                    None => LINE_LEN,
                };
                let start = self.udp_line * LINE_LEN;
                self.udp_line = (self.udp_line + 1) % LINES;
                self.out.push(Output::SendTo {
                    sock,
                    to: from,
                    bytes: self.pattern.slice(start..start + len),
                });
                self.out.event(ServiceEvent::Datagram {
                    sock,
                    from,
                    len: bytes.len(),
                    replied: len,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_lines() {
        assert_eq!(
            &line(0)[..],
            &b"!\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefgh\r\n"[..]
        );
        assert_eq!(
            &line(1)[..],
            &b"\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghi\r\n"[..]
        );
        // The space comes round after `~`.
        assert!(line(94).starts_with(b" !\"#"));
        assert_eq!(line(95), line(0));
        let p = pattern();
        assert_eq!(p.len(), CYCLE_LEN + MAX_DATAGRAM);
        assert_eq!(&p[CYCLE_LEN..CYCLE_LEN + LINE_LEN], &line(0)[..]);
    }
}
