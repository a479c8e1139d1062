//! The shared vocabulary of limits. Every input a machine buffers is
//! bounded, and exceeding a bound is reported with the same typed value in
//! every protocol, whatever reply the protocol itself sends.

use core::fmt;

/// Which bound was exceeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LimitKind {
    /// One line (a command, a header line, a frame line).
    LineLength,
    /// A message head (request line plus headers).
    HeadSize,
    /// How many header fields or parameters.
    HeaderCount,
    /// One framed message or body.
    MessageSize,
    /// A literal (IMAP) or other announced length.
    LiteralSize,
    /// Nesting depth.
    Depth,
    /// Output queued for a peer that is not reading.
    QueuedOutput,
    /// Events the application has not taken yet.
    PendingEvents,
    /// Requests received but not yet answered (pipelining).
    Pipelined,
    /// Simultaneous connections.
    Connections,
    /// Recipients, targets or similar per-message counts.
    Recipients,
    /// Commands or messages per unit of time (flood protection).
    Rate,
    /// Protocol errors in one session.
    Errors,
}

impl fmt::Display for LimitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LimitKind::LineLength => "line length",
            LimitKind::HeadSize => "head size",
            LimitKind::HeaderCount => "header count",
            LimitKind::MessageSize => "message size",
            LimitKind::LiteralSize => "literal size",
            LimitKind::Depth => "nesting depth",
            LimitKind::QueuedOutput => "queued output",
            LimitKind::PendingEvents => "pending events",
            LimitKind::Pipelined => "pipelined requests",
            LimitKind::Connections => "connections",
            LimitKind::Recipients => "recipients",
            LimitKind::Rate => "rate",
            LimitKind::Errors => "errors",
        })
    }
}

/// A bound was exceeded: which, and what the bound was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LimitExceeded {
    /// Which bound.
    pub kind: LimitKind,
    /// Its value.
    pub max: usize,
}

impl fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} exceeds the limit of {}", self.kind, self.max)
    }
}

impl core::error::Error for LimitExceeded {}

/// Checks `value <= max` for `kind`.
pub fn check(kind: LimitKind, value: usize, max: usize) -> Result<(), LimitExceeded> {
    if value > max {
        Err(LimitExceeded { kind, max })
    } else {
        Ok(())
    }
}

/// Accounting of one connection's output that the driver has not yet
/// flushed, fed by `Transmit` (queued) and `Input::Sent` (flushed).
///
/// A machine that produces output on its own (a streamed body, chargen, a
/// chat fan-out) stops producing above `high` and starts again at or below
/// `low`; a machine that must not stop (an IRC hub) disconnects above `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputBudget {
    queued: usize,
    /// Stop producing above this many unflushed bytes.
    pub high: usize,
    /// Produce again at or below this many.
    pub low: usize,
}

impl Default for OutputBudget {
    fn default() -> Self {
        OutputBudget::new(64 * 1024, 16 * 1024)
    }
}

impl OutputBudget {
    /// A budget with the given water marks (`low <= high`).
    pub const fn new(high: usize, low: usize) -> Self {
        OutputBudget {
            queued: 0,
            high,
            low,
        }
    }

    /// Records `n` more bytes handed to the driver.
    pub fn queued(&mut self, n: usize) {
        self.queued = self.queued.saturating_add(n);
    }

    /// Records `n` bytes the driver reported as flushed.
    pub fn sent(&mut self, n: usize) {
        self.queued = self.queued.saturating_sub(n);
    }

    /// Bytes handed over but not flushed.
    pub fn pending(&self) -> usize {
        self.queued
    }

    /// Above the high-water mark: stop producing.
    pub fn is_full(&self) -> bool {
        self.queued > self.high
    }

    /// At or below the low-water mark: producing may resume.
    pub fn has_room(&self) -> bool {
        self.queued <= self.low
    }

    /// How many bytes may be produced now before passing `high`.
    pub fn room(&self) -> usize {
        self.high.saturating_sub(self.queued)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_water_marks() {
        let mut b = OutputBudget::new(100, 10);
        b.queued(150);
        assert!(b.is_full());
        b.sent(100);
        assert!(!b.is_full() && !b.has_room());
        b.sent(45);
        assert!(b.has_room());
        b.sent(1000);
        assert_eq!(b.pending(), 0);
    }

    #[test]
    fn limit_message() {
        let e = check(LimitKind::LineLength, 20, 10).unwrap_err();
        assert_eq!(e.to_string(), "line length exceeds the limit of 10");
        assert!(check(LimitKind::LineLength, 10, 10).is_ok());
    }
}
