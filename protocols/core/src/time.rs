//! Time as data: the monotonic [`Instant`] for timers and the wall clock
//! [`UnixTime`] for dates, both handed to machines in [`Now`].
//!
//! These are twill's own small types rather than `std::time`'s so that
//! protocol crates never read a clock and can one day build as `no_std`.

use core::fmt;
use core::ops::{Add, AddAssign, Sub};
pub use core::time::Duration;

/// A point on the driver's monotonic clock: nanoseconds since the driver's
/// epoch (whatever moment the driver chose as zero).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// The driver's epoch.
    pub const ZERO: Instant = Instant(0);
    /// Later than any real deadline.
    pub const MAX: Instant = Instant(u64::MAX);

    /// An instant `nanos` nanoseconds after the epoch.
    pub const fn from_nanos(nanos: u64) -> Self {
        Instant(nanos)
    }

    /// Nanoseconds since the epoch.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// How long after `earlier` this is; zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// `self + d`, or `None` past the end of the clock.
    pub fn checked_add(self, d: Duration) -> Option<Instant> {
        u64::try_from(d.as_nanos())
            .ok()
            .and_then(|n| self.0.checked_add(n))
            .map(Instant)
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    /// Saturates at [`Instant::MAX`] rather than overflowing.
    fn add(self, d: Duration) -> Instant {
        self.checked_add(d).unwrap_or(Instant::MAX)
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    /// Saturates at zero.
    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_since(rhs)
    }
}

/// Wall-clock time: seconds and nanoseconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixTime {
    secs: i64,
    nanos: u32,
}

impl UnixTime {
    /// The Unix epoch.
    pub const EPOCH: UnixTime = UnixTime { secs: 0, nanos: 0 };

    /// A time `secs` seconds after the epoch.
    pub const fn from_secs(secs: i64) -> Self {
        UnixTime { secs, nanos: 0 }
    }

    /// A time from seconds and a nanosecond part (clamped below one second).
    pub const fn new(secs: i64, nanos: u32) -> Self {
        let nanos = if nanos > 999_999_999 {
            999_999_999
        } else {
            nanos
        };
        UnixTime { secs, nanos }
    }

    /// Whole seconds since the epoch.
    pub const fn secs(self) -> i64 {
        self.secs
    }

    /// Nanoseconds within the second.
    pub const fn subsec_nanos(self) -> u32 {
        self.nanos
    }

    /// The UTC calendar date and time of this instant.
    pub fn to_civil(self) -> Civil {
        Civil::from_unix(self.secs)
    }
}

impl Add<Duration> for UnixTime {
    type Output = UnixTime;
    fn add(self, d: Duration) -> UnixTime {
        let mut secs = self
            .secs
            .saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let mut nanos = self.nanos + d.subsec_nanos();
        if nanos >= 1_000_000_000 {
            nanos -= 1_000_000_000;
            secs = secs.saturating_add(1);
        }
        UnixTime { secs, nanos }
    }
}

/// Both clocks at the moment of an input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time, for timers and deadlines.
    pub mono: Instant,
    /// Wall-clock time, for Date headers, Received lines and certificates.
    pub wall: UnixTime,
}

impl Now {
    /// Both clocks at once.
    pub const fn new(mono: Instant, wall: UnixTime) -> Self {
        Now { mono, wall }
    }

    /// This moment advanced by `d` on both clocks.
    pub fn after(self, d: Duration) -> Now {
        Now {
            mono: self.mono + d,
            wall: self.wall + d,
        }
    }
}

/// A UTC calendar date and time, computed without any time-zone database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    /// Proleptic Gregorian year.
    pub year: i64,
    /// 1–12.
    pub month: u8,
    /// 1–31.
    pub day: u8,
    /// 0–23.
    pub hour: u8,
    /// 0–59.
    pub minute: u8,
    /// 0–59 (leap seconds are not represented in Unix time).
    pub second: u8,
    /// 0 = Sunday … 6 = Saturday.
    pub weekday: u8,
}

const DAY_NAMES: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTH_NAMES: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl Civil {
    /// The calendar date of `secs` seconds after the Unix epoch.
    pub fn from_unix(secs: i64) -> Civil {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        // Days-to-civil after H. Hinnant's public-domain algorithm: shift the
        // year to start in March so the leap day falls at its end.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Civil {
            year,
            month,
            day,
            hour: (rem / 3600) as u8,
            minute: (rem % 3600 / 60) as u8,
            second: (rem % 60) as u8,
            weekday: (days + 4).rem_euclid(7) as u8,
        }
    }

    /// Formats as an HTTP-date (IMF-fixdate, RFC 9110 §5.6.7):
    /// `Sun, 06 Nov 1994 08:49:37 GMT`.
    pub fn http_date(&self) -> HttpDate {
        HttpDate(*self)
    }

    /// Formats as RFC 3339 / ISO 8601 UTC: `1994-11-06T08:49:37Z`.
    pub fn rfc3339(&self) -> Rfc3339 {
        Rfc3339(*self)
    }
}

/// Display adapter for an IMF-fixdate; see [`Civil::http_date`].
#[derive(Clone, Copy, Debug)]
pub struct HttpDate(Civil);

impl fmt::Display for HttpDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.0;
        write!(
            f,
            "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
            DAY_NAMES[usize::from(c.weekday)],
            c.day,
            MONTH_NAMES[usize::from(c.month - 1)],
            c.year,
            c.hour,
            c.minute,
            c.second
        )
    }
}

/// Display adapter for RFC 3339 UTC; see [`Civil::rfc3339`].
#[derive(Clone, Copy, Debug)]
pub struct Rfc3339(Civil);

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.0;
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            c.year, c.month, c.day, c.hour, c.minute, c.second
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_date_of_rfc_example() {
        // RFC 9110 §5.6.7's example date.
        let c = Civil::from_unix(784_111_777);
        assert_eq!(c.http_date().to_string(), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(c.rfc3339().to_string(), "1994-11-06T08:49:37Z");
    }

    #[test]
    fn civil_edges() {
        assert_eq!(
            Civil::from_unix(0).rfc3339().to_string(),
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(
            Civil::from_unix(-1).rfc3339().to_string(),
            "1969-12-31T23:59:59Z"
        );
        // 2000-02-29, a leap day in a century year divisible by 400.
        assert_eq!(
            Civil::from_unix(951_782_400).rfc3339().to_string(),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(Civil::from_unix(951_782_400).weekday, 2);
    }

    #[test]
    fn instant_arithmetic_saturates() {
        let t = Instant::from_nanos(10);
        assert_eq!(t + Duration::from_nanos(5), Instant::from_nanos(15));
        assert_eq!(Instant::MAX + Duration::from_secs(1), Instant::MAX);
        assert_eq!(t - Instant::from_nanos(20), Duration::ZERO);
    }
}
