//! The download progress line `twill get` draws on stderr when stderr is
//! a terminal: bytes so far, the rate, and the percentage and a bar when
//! the length is known. Redrawn at most ten times a second.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Least time between two redraws.
pub const REDRAW: Duration = Duration::from_millis(100);

/// Width of the bar in characters.
const BAR: usize = 24;

/// A size for people: `512 B`, `1.5 KiB`, `3.0 MiB`.
pub fn human(n: u64) -> String {
    crate::web::listing::human_size(n)
}

/// The progress state, with time passed in (pure, for tests).
#[derive(Clone, Debug)]
pub struct Progress {
    total: Option<u64>,
    done: u64,
    last_draw: Option<Duration>,
}

impl Progress {
    /// A download of `total` bytes, if known.
    pub fn new(total: Option<u64>) -> Self {
        Progress {
            total,
            done: 0,
            last_draw: None,
        }
    }

    /// Bytes received so far.
    pub fn done(&self) -> u64 {
        self.done
    }

    /// Counts `n` more bytes at `elapsed` since the start; returns the line
    /// to draw when a redraw is due.
    pub fn advance(&mut self, n: u64, elapsed: Duration) -> Option<String> {
        self.done = self.done.saturating_add(n);
        let due = match self.last_draw {
            None => true,
            Some(t) => elapsed.saturating_sub(t) >= REDRAW,
        };
        if !due {
            return None;
        }
        self.last_draw = Some(elapsed);
        Some(self.line(elapsed))
    }

    /// The line for the current state at `elapsed`.
    pub fn line(&self, elapsed: Duration) -> String {
        let secs = elapsed.as_secs_f64();
        let rate = if secs > 0.0 {
            (self.done as f64 / secs) as u64
        } else {
            0
        };
        match self.total {
            Some(total) if total > 0 => {
                let frac = (self.done as f64 / total as f64).clamp(0.0, 1.0);
                let filled = (frac * BAR as f64).round() as usize;
                format!(
                    "{:3.0}% [{}{}] {} / {}  {}/s",
                    frac * 100.0,
                    "#".repeat(filled),
                    " ".repeat(BAR - filled),
                    human(self.done),
                    human(total),
                    human(rate)
                )
            }
            _ => format!("{}  {}/s", human(self.done), human(rate)),
        }
    }
}

/// Draws a [`Progress`] on stderr, only if stderr is a terminal.
#[derive(Debug)]
pub struct Bar {
    progress: Progress,
    start: Instant,
    enabled: bool,
    drawn: bool,
}

impl Bar {
    /// A bar for `total` bytes; silent unless stderr is a terminal.
    pub fn new(total: Option<u64>) -> Self {
        Bar::with_terminal(total, std::io::stderr().is_terminal())
    }

    /// A bar that draws only if `enabled`.
    pub fn with_terminal(total: Option<u64>, enabled: bool) -> Self {
        Bar {
            progress: Progress::new(total),
            start: Instant::now(),
            enabled,
            drawn: false,
        }
    }

    /// Counts `n` more bytes, redrawing when due.
    pub fn advance(&mut self, n: u64) {
        let line = self.progress.advance(n, self.start.elapsed());
        if let (true, Some(line)) = (self.enabled, line) {
            let mut e = std::io::stderr().lock();
            // \r, the line, then clear what a longer line left behind.
            let _ = write!(e, "\r{line}\x1b[K");
            let _ = e.flush();
            self.drawn = true;
        }
    }

    /// Draws the final state and ends the line.
    pub fn finish(&mut self) {
        if self.enabled && self.drawn {
            let line = self.progress.line(self.start.elapsed());
            let _ = writeln!(std::io::stderr().lock(), "\r{line}\x1b[K");
            self.drawn = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn redraws_at_most_ten_times_a_second() {
        let mut p = Progress::new(Some(1000));
        assert!(p.advance(10, ms(0)).is_some());
        assert!(p.advance(10, ms(50)).is_none());
        assert!(p.advance(10, ms(99)).is_none());
        assert!(p.advance(10, ms(100)).is_some());
        let draws = (0..1000u64)
            .filter(|i| p.advance(0, ms(100 + i)).is_some())
            .count();
        assert!(draws <= 10, "{draws}");
        assert_eq!(p.done(), 40);
    }

    #[test]
    fn lines() {
        let mut p = Progress::new(Some(4 << 20));
        p.advance(1 << 20, ms(0));
        let l = p.line(Duration::from_secs(2));
        assert!(l.starts_with(" 25% [######      "), "{l}");
        assert!(l.contains("1.0 MiB / 4.0 MiB"), "{l}");
        assert!(l.ends_with("512.0 KiB/s"), "{l}");
        let mut p = Progress::new(None);
        p.advance(100, ms(0));
        assert_eq!(p.line(Duration::from_secs(1)), "100 B  100 B/s");
        // More than announced never overflows the bar.
        let mut p = Progress::new(Some(10));
        p.advance(20, ms(0));
        assert!(p.line(ms(1)).starts_with("100% ["));
        let p = Progress::new(Some(0));
        assert_eq!(p.line(ms(0)), "0 B  0 B/s");
    }
}
