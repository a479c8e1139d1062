//! The clocks drivers read and hand to machines as [`Now`].

use twill_core::{Instant, Now, UnixTime};

/// A source of [`Now`]. Drivers read time only through this, so tests can
/// drive a reactor with a fake clock.
pub trait Clock: Send + Sync + 'static {
    /// Both clocks, now.
    fn now(&self) -> Now;
}

/// The real clocks: `std::time::Instant` since the driver started, and the
/// system's wall clock.
#[derive(Clone, Copy, Debug)]
pub struct SystemClock {
    start: std::time::Instant,
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl SystemClock {
    /// Starts the monotonic clock at zero now.
    pub fn new() -> Self {
        SystemClock {
            start: std::time::Instant::now(),
        }
    }

    /// The `std` instant of a twill instant, for poll timeouts.
    pub fn to_std(&self, t: Instant) -> std::time::Instant {
        self.start + std::time::Duration::from_nanos(t.as_nanos())
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Now {
        let mono =
            Instant::from_nanos(u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX));
        let wall = match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => UnixTime::new(d.as_secs() as i64, d.subsec_nanos()),
            Err(e) => UnixTime::new(-(e.duration().as_secs() as i64), 0),
        };
        Now::new(mono, wall)
    }
}

/// A clock that moves only when told to (tests of timers and reactors).
#[derive(Debug, Default)]
pub struct ManualClock {
    nanos: std::sync::atomic::AtomicU64,
}

impl ManualClock {
    /// Starts at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves forward.
    pub fn advance(&self, d: std::time::Duration) {
        self.nanos.fetch_add(
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
            std::sync::atomic::Ordering::SeqCst,
        );
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Now {
        let n = self.nanos.load(std::sync::atomic::Ordering::SeqCst);
        Now::new(
            Instant::from_nanos(n),
            UnixTime::from_secs(1_767_225_600) + std::time::Duration::from_nanos(n),
        )
    }
}

impl<C: Clock> Clock for std::sync::Arc<C> {
    fn now(&self) -> Now {
        (**self).now()
    }
}

/// How long from `now` until `deadline` (zero if past).
pub fn until(now: Now, deadline: Instant) -> std::time::Duration {
    deadline - now.mono
}
