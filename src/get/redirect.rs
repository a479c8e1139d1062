//! Following redirects: which statuses redirect, with which method, and a
//! bound on how many.

use super::url::{Url, UrlError};

/// The most redirects followed by default.
pub const DEFAULT_MAX: u32 = 10;

/// The request method of the next request after a redirect with `status`,
/// or `None` when `status` is not a redirect to follow.
///
/// 301, 302 and 303 turn any method but HEAD into GET (what browsers and
/// curl do; RFC 9110 §15.4 allows it for 301/302 and requires it for 303);
/// 307 and 308 keep the method.
pub fn next_method(status: u16, method: &str) -> Option<&str> {
    match status {
        301..=303 if method == "HEAD" => Some("HEAD"),
        301..=303 => Some("GET"),
        307 | 308 => Some(method),
        _ => None,
    }
}

/// Why a redirect is not followed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedirectError {
    /// More than the allowed number of redirects.
    TooMany(u32),
    /// A redirect status without a `Location`.
    NoLocation(u16),
    /// The `Location` is not a URL we can fetch.
    BadLocation(UrlError),
}

impl std::fmt::Display for RedirectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RedirectError::TooMany(n) => write!(f, "too many redirects (more than {n})"),
            RedirectError::NoLocation(s) => write!(f, "redirect {s} without a Location header"),
            RedirectError::BadLocation(e) => write!(f, "redirect to an unusable URL: {e}"),
        }
    }
}

/// Counts the redirects of one `twill get`.
#[derive(Clone, Debug)]
pub struct Redirects {
    max: u32,
    followed: u32,
}

/// The next request after a redirect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Next {
    /// Where to.
    pub url: Url,
    /// With which method.
    pub method: String,
}

impl Redirects {
    /// Follows at most `max` redirects.
    pub fn new(max: u32) -> Self {
        Redirects { max, followed: 0 }
    }

    /// How many were followed.
    pub fn followed(&self) -> u32 {
        self.followed
    }

    /// Given a response `status` to `method url` with `location`, the next
    /// request: `Ok(None)` when the response is not a redirect (it is the
    /// answer).
    pub fn next(
        &mut self,
        url: &Url,
        method: &str,
        status: u16,
        location: Option<&str>,
    ) -> Result<Option<Next>, RedirectError> {
        let Some(m) = next_method(status, method) else {
            return Ok(None);
        };
        let location = location.ok_or(RedirectError::NoLocation(status))?;
        if self.followed >= self.max {
            return Err(RedirectError::TooMany(self.max));
        }
        let url = url.join(location).map_err(RedirectError::BadLocation)?;
        self.followed += 1;
        Ok(Some(Next {
            url,
            method: m.to_string(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods() {
        assert_eq!(next_method(301, "GET"), Some("GET"));
        assert_eq!(next_method(302, "POST"), Some("GET"));
        assert_eq!(next_method(303, "PUT"), Some("GET"));
        assert_eq!(next_method(303, "HEAD"), Some("HEAD"));
        assert_eq!(next_method(307, "POST"), Some("POST"));
        assert_eq!(next_method(308, "HEAD"), Some("HEAD"));
        for s in [200, 204, 300, 304, 305, 306, 404] {
            assert_eq!(next_method(s, "GET"), None, "{s}");
        }
    }

    #[test]
    fn bounded() {
        let u = Url::parse("http://h/a/b").unwrap();
        let mut r = Redirects::new(2);
        assert_eq!(r.next(&u, "GET", 200, None), Ok(None));
        let n = r.next(&u, "GET", 302, Some("c")).unwrap().unwrap();
        assert_eq!(n.url.to_string(), "http://h/a/c");
        let n = r.next(&n.url, "HEAD", 308, Some("/d")).unwrap().unwrap();
        assert_eq!((n.url.target.as_str(), n.method.as_str()), ("/d", "HEAD"));
        assert_eq!(r.followed(), 2);
        assert_eq!(
            r.next(&u, "GET", 301, Some("/e")),
            Err(RedirectError::TooMany(2))
        );
        assert_eq!(
            Redirects::new(5).next(&u, "GET", 301, None),
            Err(RedirectError::NoLocation(301))
        );
        assert_eq!(
            Redirects::new(5).next(&u, "GET", 301, Some("ftp://x/")),
            Err(RedirectError::BadLocation(UrlError::Scheme("ftp".into())))
        );
        assert_eq!(
            RedirectError::TooMany(10).to_string(),
            "too many redirects (more than 10)"
        );
    }
}
