//! Validators and conditional requests (RFC 9110 §8.8, §13): `ETag` from
//! size and modification time, `Last-Modified` as an HTTP-date, and the
//! evaluation order of `If-Match`, `If-Unmodified-Since`, `If-None-Match`,
//! `If-Modified-Since` and `If-Range`.

use twill_core::time::Civil;

/// The validators of one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validators {
    /// The entity tag including its quotes, e.g. `"5f3a-1b2c-400"`.
    pub etag_opaque: String,
    /// Whether the tag is weak (`W/` prefix): a file modified within the
    /// last second may change again without its mtime moving.
    pub weak: bool,
    /// Modification time, seconds since the Unix epoch.
    pub modified: i64,
}

impl Validators {
    /// Validators of a file of `len` bytes modified at `mtime` (seconds and
    /// nanoseconds since the epoch), seen at wall-clock time `now_secs`.
    pub fn new(len: u64, mtime_secs: i64, mtime_nanos: u32, now_secs: i64) -> Self {
        Validators {
            etag_opaque: format!("\"{mtime_secs:x}-{mtime_nanos:x}-{len:x}\""),
            weak: now_secs.saturating_sub(mtime_secs) < 1,
            modified: mtime_secs,
        }
    }

    /// The `ETag` header value.
    pub fn etag(&self) -> String {
        if self.weak {
            format!("W/{}", self.etag_opaque)
        } else {
            self.etag_opaque.clone()
        }
    }

    /// The `Last-Modified` header value.
    pub fn last_modified(&self) -> String {
        http_date(self.modified)
    }
}

/// What the preconditions decide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precondition {
    /// Go on with the request.
    Proceed,
    /// 304 Not Modified (GET/HEAD only).
    NotModified,
    /// 412 Precondition Failed.
    Failed,
}

/// The conditional headers of a request.
#[derive(Clone, Copy, Debug, Default)]
pub struct Conditions<'a> {
    /// `If-Match`.
    pub if_match: Option<&'a str>,
    /// `If-None-Match`.
    pub if_none_match: Option<&'a str>,
    /// `If-Modified-Since`.
    pub if_modified_since: Option<&'a str>,
    /// `If-Unmodified-Since`.
    pub if_unmodified_since: Option<&'a str>,
    /// `If-Range`.
    pub if_range: Option<&'a str>,
}

/// One member of an entity-tag list: (weak, opaque-tag with quotes).
fn tags(list: &str) -> impl Iterator<Item = (bool, &str)> {
    list.split(',').filter_map(|t| {
        let t = t.trim();
        let (weak, rest) = match t.strip_prefix("W/") {
            Some(r) => (true, r),
            None => (false, t),
        };
        (rest.len() >= 2 && rest.starts_with('"') && rest.ends_with('"')).then_some((weak, rest))
    })
}

/// Strong comparison: both strong and equal.
fn strong_match(list: &str, v: &Validators) -> bool {
    list.trim() == "*" || tags(list).any(|(w, t)| !w && !v.weak && t == v.etag_opaque)
}

/// Weak comparison: the opaque tags are equal.
fn weak_match(list: &str, v: &Validators) -> bool {
    list.trim() == "*" || tags(list).any(|(_, t)| t == v.etag_opaque)
}

/// Evaluates the preconditions in RFC 9110 §13.2.2's order for a GET or
/// HEAD of an existing file.
pub fn evaluate(c: &Conditions<'_>, v: &Validators) -> Precondition {
    if let Some(im) = c.if_match {
        if !strong_match(im, v) {
            return Precondition::Failed;
        }
    } else if let Some(ius) = c.if_unmodified_since.and_then(parse_http_date) {
        if v.modified > ius {
            return Precondition::Failed;
        }
    }
    if let Some(inm) = c.if_none_match {
        if weak_match(inm, v) {
            return Precondition::NotModified;
        }
    } else if let Some(ims) = c.if_modified_since.and_then(parse_http_date) {
        if v.modified <= ims {
            return Precondition::NotModified;
        }
    }
    Precondition::Proceed
}

/// Whether a `Range` may be honoured given `If-Range` (§13.1.5): true when
/// there is no `If-Range` or it still matches.
pub fn if_range_holds(c: &Conditions<'_>, v: &Validators) -> bool {
    let Some(ir) = c.if_range.map(str::trim) else {
        return true;
    };
    if ir.starts_with('"') || ir.starts_with("W/") {
        strong_match(ir, v) && ir != "*"
    } else {
        // A date matches only the exact Last-Modified, and only when that
        // is a strong validator.
        !v.weak && parse_http_date(ir) == Some(v.modified)
    }
}

/// Formats Unix seconds as an IMF-fixdate.
pub fn http_date(secs: i64) -> String {
    Civil::from_unix(secs).http_date().to_string()
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn parse_time(s: &str) -> Option<i64> {
    let mut it = s.split(':');
    let mut n = |max: i64| -> Option<i64> {
        let p = it.next()?;
        if p.len() != 2 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let v: i64 = p.parse().ok()?;
        (v <= max).then_some(v)
    };
    let (h, m, s2) = (n(23)?, n(59)?, n(60)?);
    if it.next().is_some() {
        return None;
    }
    Some(h * 3600 + m * 60 + s2)
}

fn to_secs(year: i64, month: &str, day: &str, time: &str) -> Option<i64> {
    let m = MONTHS.iter().position(|x| *x == month)? as u32 + 1;
    if day.is_empty() || day.len() > 2 || !day.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let d: u32 = day.parse().ok()?;
    if !(1..=31).contains(&d) {
        return None;
    }
    Some(days_from_civil(year, m, d) * 86_400 + parse_time(time)?)
}

fn year4(s: &str) -> Option<i64> {
    (s.len() == 4 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// Parses an HTTP-date in any of the three formats RFC 9110 §5.6.7 says a
/// recipient must accept; `None` when invalid (the header is then ignored).
pub fn parse_http_date(s: &str) -> Option<i64> {
    let s = s.trim();
    let parts: Vec<&str> = s.split_ascii_whitespace().collect();
    match parts.as_slice() {
        // Sun, 06 Nov 1994 08:49:37 GMT
        [wd, day, mon, year, time, "GMT"] if wd.ends_with(',') && wd.len() == 4 => {
            to_secs(year4(year)?, mon, day, time)
        }
        // Sunday, 06-Nov-94 08:49:37 GMT
        [wd, date, time, "GMT"] if wd.ends_with(',') => {
            let mut d = date.split('-');
            let (day, mon, yy) = (d.next()?, d.next()?, d.next()?);
            if d.next().is_some() || yy.len() != 2 || !yy.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let yy: i64 = yy.parse().ok()?;
            // RFC 9110: a two-digit year more than 50 years in the future
            // is in the past century; without a clock, pivot at 70.
            let year = if yy >= 70 { 1900 + yy } else { 2000 + yy };
            to_secs(year, mon, day, time)
        }
        // Sun Nov  6 08:49:37 1994
        [wd, mon, day, time, year] if wd.len() == 3 => to_secs(year4(year)?, mon, day, time),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 784_111_777; // Sun, 06 Nov 1994 08:49:37 GMT

    fn v() -> Validators {
        Validators::new(1024, T, 5, T + 100)
    }

    #[test]
    fn dates_round_trip_and_parse_all_formats() {
        assert_eq!(http_date(T), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(T));
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), Some(T));
        assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), Some(T));
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        for secs in [0, 951_782_400, 1_709_164_800, 4_102_444_799, T] {
            assert_eq!(parse_http_date(&http_date(secs)), Some(secs), "{secs}");
        }
        for bad in [
            "",
            "yesterday",
            "Sun, 06 Nov 1994 08:49:37 PST",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 94 08:49:37 GMT",
            "Sun, 06 Nov 1994 8:49:37 GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn etags() {
        let v = v();
        assert_eq!(v.etag(), "\"2ebc98a1-5-400\"");
        assert!(!v.weak);
        let fresh = Validators::new(1, T, 0, T);
        assert!(fresh.weak);
        assert!(fresh.etag().starts_with("W/\""));
        assert_ne!(Validators::new(1025, T, 5, T + 9).etag(), v.etag());
        assert_ne!(Validators::new(1024, T, 6, T + 9).etag(), v.etag());
        assert_eq!(v.last_modified(), "Sun, 06 Nov 1994 08:49:37 GMT");
    }

    #[test]
    fn if_none_match_wins_over_if_modified_since() {
        let v = v();
        let tag = v.etag();
        let weak = format!("W/{tag}");
        let c = |inm: Option<&'static str>, ims: Option<&'static str>| Conditions {
            if_none_match: inm,
            if_modified_since: ims,
            ..Conditions::default()
        };
        let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
        let tag: &'static str = leak(tag);
        let weak: &'static str = leak(weak);
        let list: &'static str = leak(format!("\"nope\", {tag}"));
        assert_eq!(evaluate(&c(None, None), &v), Precondition::Proceed);
        assert_eq!(evaluate(&c(Some(tag), None), &v), Precondition::NotModified);
        assert_eq!(
            evaluate(&c(Some(weak), None), &v),
            Precondition::NotModified
        );
        assert_eq!(
            evaluate(&c(Some(list), None), &v),
            Precondition::NotModified
        );
        assert_eq!(evaluate(&c(Some("*"), None), &v), Precondition::NotModified);
        assert_eq!(evaluate(&c(Some("\"x\""), None), &v), Precondition::Proceed);
        let same = "Sun, 06 Nov 1994 08:49:37 GMT";
        let later = "Mon, 07 Nov 1994 08:49:37 GMT";
        let earlier = "Sat, 05 Nov 1994 08:49:37 GMT";
        assert_eq!(
            evaluate(&c(None, Some(same)), &v),
            Precondition::NotModified
        );
        assert_eq!(
            evaluate(&c(None, Some(later)), &v),
            Precondition::NotModified
        );
        assert_eq!(evaluate(&c(None, Some(earlier)), &v), Precondition::Proceed);
        assert_eq!(
            evaluate(&c(None, Some("garbage")), &v),
            Precondition::Proceed
        );
        // If-None-Match present: If-Modified-Since is ignored.
        assert_eq!(
            evaluate(&c(Some("\"x\""), Some(later)), &v),
            Precondition::Proceed
        );
    }

    #[test]
    fn if_match_and_unmodified_since() {
        let v = v();
        let tag = v.etag();
        let c = Conditions {
            if_match: Some(&tag),
            ..Conditions::default()
        };
        assert_eq!(evaluate(&c, &v), Precondition::Proceed);
        let weak = format!("W/{tag}");
        let c = Conditions {
            if_match: Some(&weak),
            ..Conditions::default()
        };
        assert_eq!(evaluate(&c, &v), Precondition::Failed);
        let c = Conditions {
            if_unmodified_since: Some("Sat, 05 Nov 1994 08:49:37 GMT"),
            ..Conditions::default()
        };
        assert_eq!(evaluate(&c, &v), Precondition::Failed);
        let c = Conditions {
            if_unmodified_since: Some("Sun, 06 Nov 1994 08:49:37 GMT"),
            ..Conditions::default()
        };
        assert_eq!(evaluate(&c, &v), Precondition::Proceed);
    }

    #[test]
    fn if_range() {
        let v = v();
        let tag = v.etag();
        let mk = |ir: &str| {
            if_range_holds(
                &Conditions {
                    if_range: Some(ir),
                    ..Conditions::default()
                },
                &v,
            )
        };
        assert!(if_range_holds(&Conditions::default(), &v));
        assert!(mk(&tag));
        assert!(!mk("\"other\""));
        assert!(!mk(&format!("W/{tag}")));
        assert!(mk("Sun, 06 Nov 1994 08:49:37 GMT"));
        assert!(!mk("Mon, 07 Nov 1994 08:49:37 GMT"));
        assert!(!mk("junk"));
    }
}
