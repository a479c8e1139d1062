//! `http://` and `https://` URLs for `twill get`: parsing, the `Host`
//! header, and resolving a redirect's `Location` against the current URL
//! (RFC 3986 §5.2).

use std::fmt;

/// Why a URL cannot be fetched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UrlError {
    /// Another scheme.
    Scheme(String),
    /// No host.
    NoHost,
    /// A port that is not a number in 1–65535.
    Port(String),
    /// A malformed host (bad IPv6 literal, forbidden characters).
    Host(String),
    /// `user:password@` (not supported).
    Credentials,
    /// Spaces or control characters.
    Invalid,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlError::Scheme(s) => {
                write!(
                    f,
                    "unsupported URL scheme {s:?} (only http:// and https://)"
                )
            }
            UrlError::NoHost => f.write_str("the URL has no host"),
            UrlError::Port(p) => write!(f, "invalid port {p:?} in URL"),
            UrlError::Host(h) => write!(f, "invalid host {h:?} in URL"),
            UrlError::Credentials => f.write_str("credentials in URLs are not supported"),
            UrlError::Invalid => f.write_str("the URL contains spaces or control characters"),
        }
    }
}

impl std::error::Error for UrlError {}

/// A parsed `http://` or `https://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    /// `https://`: TLS, verified for `host`.
    pub tls: bool,
    /// The host: a name, an IPv4 address, or an IPv6 address without
    /// brackets.
    pub host: String,
    /// The port (80 or 443 when not given).
    pub port: u16,
    /// Path and query, never empty (`/` at least); the request target.
    pub target: String,
}

fn has_scheme(s: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = s.split_once(':')?;
    let mut b = scheme.bytes();
    let first = b.next()?;
    (first.is_ascii_alphabetic()
        && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.')))
    .then_some((scheme, rest))
}

/// Percent-encodes what may not appear raw in a request target (non-ASCII
/// bytes, spaces, quotes, `<>`…); keeps existing escapes.
fn encode_target(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &c in s.as_bytes() {
        if c > b' '
            && c < 0x7f
            && !matches!(
                c,
                b'"' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}'
            )
        {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

impl Url {
    /// Parses `http[s]://host[:port][/path][?query][#fragment]`; a URL
    /// without a scheme is taken as `http://`.
    pub fn parse(s: &str) -> Result<Url, UrlError> {
        let s = s.trim();
        if s.bytes().any(|b| b < b' ' || b == 0x7f) {
            return Err(UrlError::Invalid);
        }
        let (tls, rest) = match has_scheme(s) {
            Some((scheme, rest)) if rest.starts_with("//") => {
                if scheme.eq_ignore_ascii_case("http") {
                    (false, &rest[2..])
                } else if scheme.eq_ignore_ascii_case("https") {
                    (true, &rest[2..])
                } else {
                    return Err(UrlError::Scheme(scheme.to_string()));
                }
            }
            // "localhost:8080/x" has no "//": a host and port, not a scheme.
            _ if s.contains("://") => {
                let scheme = s.split("://").next().unwrap_or("");
                return Err(UrlError::Scheme(scheme.to_string()));
            }
            _ => (false, s),
        };
        let rest = rest.split('#').next().unwrap_or("");
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(split);
        if authority.contains('@') {
            return Err(UrlError::Credentials);
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let bad = || UrlError::Host(authority.to_string());
            let (addr, after) = v6.split_once(']').ok_or_else(bad)?;
            if addr.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad());
            }
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(bad)?),
            };
            (addr.to_string(), port)
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (authority.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(UrlError::NoHost);
        }
        if !host.contains(':')
            && !host
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'))
        {
            return Err(UrlError::Host(host));
        }
        let port = match port {
            None | Some("") => default_port(tls),
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => return Err(UrlError::Port(p.to_string())),
            },
        };
        let target = if target.starts_with('?') {
            format!("/{target}")
        } else if target.is_empty() {
            "/".to_string()
        } else {
            target.to_string()
        };
        Ok(Url {
            tls,
            host: host.to_ascii_lowercase(),
            port,
            target: encode_target(&target),
        })
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }

    /// The host as it appears in a URL (IPv6 in brackets).
    fn host_in_url(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }

    /// The `Host` header value: host, and the port when not the scheme's
    /// default.
    pub fn host_header(&self) -> String {
        if self.port == default_port(self.tls) {
            self.host_in_url()
        } else {
            format!("{}:{}", self.host_in_url(), self.port)
        }
    }

    /// The target's path (without the query).
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("/")
    }

    /// The last path segment, e.g. for naming a download.
    pub fn file_name(&self) -> Option<&str> {
        self.path().rsplit('/').next().filter(|s| !s.is_empty())
    }

    /// Resolves a `Location` (absolute, scheme-relative, absolute-path,
    /// relative-path or query-only) against this URL.
    pub fn join(&self, location: &str) -> Result<Url, UrlError> {
        let loc = location.trim();
        if loc.bytes().any(|b| b < b' ' || b == 0x7f) {
            return Err(UrlError::Invalid);
        }
        if let Some((_, rest)) = has_scheme(loc) {
            if rest.starts_with("//") {
                return Url::parse(loc);
            }
        }
        if loc.starts_with("//") {
            return Url::parse(&format!("{}:{loc}", self.scheme()));
        }
        let loc = loc.split('#').next().unwrap_or("");
        let target = if loc.is_empty() {
            self.target.clone()
        } else if let Some(q) = loc.strip_prefix('?') {
            format!("{}?{q}", self.path())
        } else {
            let (path, query) = match loc.split_once('?') {
                Some((p, q)) => (p, Some(q)),
                None => (loc, None),
            };
            let merged = if path.starts_with('/') {
                path.to_string()
            } else {
                let base = self.path();
                let dir = &base[..base.rfind('/').map_or(0, |i| i + 1)];
                format!("{dir}{path}")
            };
            let mut t = remove_dot_segments(&merged);
            if let Some(q) = query {
                t.push('?');
                t.push_str(q);
            }
            t
        };
        Ok(Url {
            tls: self.tls,
            host: self.host.clone(),
            port: self.port,
            target: encode_target(&target),
        })
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}{}",
            self.scheme(),
            self.host_header(),
            self.target
        )
    }
}

fn default_port(tls: bool) -> u16 {
    if tls {
        443
    } else {
        80
    }
}

/// RFC 3986 §5.2.4, on an absolute path.
pub fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segs: Vec<&str> = path.split('/').collect();
    let last = segs.len() - 1;
    for (i, s) in segs.iter().enumerate() {
        match *s {
            "." => {
                if i == last {
                    out.push("");
                }
            }
            ".." => {
                if out.len() > 1 {
                    out.pop();
                }
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    let joined = out.join("/");
    if joined.starts_with('/') {
        joined
    } else {
        format!("/{joined}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn parses() {
        assert_eq!(
            u("http://Example.com/a/b?x=1#frag"),
            Url {
                tls: false,
                host: "example.com".into(),
                port: 80,
                target: "/a/b?x=1".into()
            }
        );
        assert_eq!(u("http://h:8080").target, "/");
        assert_eq!(u("http://h:8080").port, 8080);
        assert_eq!(u("http://h?q").target, "/?q");
        assert_eq!(u("HTTP://h/").host, "h");
        assert_eq!(u("localhost:9000/x").port, 9000);
        assert_eq!(u("localhost/x").target, "/x");
        assert_eq!(u("http://h/a b/é").target, "/a%20b/%C3%A9");
        assert_eq!(u("http://h/%41").target, "/%41");
        let v6 = u("http://[::1]:8080/x");
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 8080));
        assert_eq!(v6.host_header(), "[::1]:8080");
        assert_eq!(u("http://[fe80::1]/").host_header(), "[fe80::1]");
        assert_eq!(u("http://h:81/p").host_header(), "h:81");
        assert_eq!(u("http://h:80/p").host_header(), "h");
        assert_eq!(u("http://h:81/p?q").to_string(), "http://h:81/p?q");
        let s = u("HTTPS://h/x");
        assert_eq!((s.tls, s.port, s.host_header()), (true, 443, "h".into()));
        assert_eq!(u("https://h:443/").to_string(), "https://h/");
        assert_eq!(u("https://h:80/").to_string(), "https://h:80/");
        assert_eq!(u("http://h:443/").host_header(), "h:443");
        assert!(!u("h/x").tls);
        assert_eq!(u("http://h/dir/f.tar.gz?x").file_name(), Some("f.tar.gz"));
        assert_eq!(u("http://h/dir/").file_name(), None);
    }

    #[test]
    fn refuses() {
        assert!(matches!(Url::parse("ftp://h/"), Err(UrlError::Scheme(_))));
        assert!(matches!(Url::parse("1http://h/"), Err(UrlError::Scheme(_))));
        assert_eq!(Url::parse("http:///x"), Err(UrlError::NoHost));
        assert_eq!(Url::parse(""), Err(UrlError::NoHost));
        assert_eq!(Url::parse("http://:80/"), Err(UrlError::NoHost));
        assert!(matches!(Url::parse("http://h:0/"), Err(UrlError::Port(_))));
        assert!(matches!(
            Url::parse("http://h:99999/"),
            Err(UrlError::Port(_))
        ));
        assert!(matches!(
            Url::parse("http://h:+80/"),
            Err(UrlError::Port(_))
        ));
        assert!(matches!(Url::parse("http://h:x/"), Err(UrlError::Port(_))));
        assert!(matches!(Url::parse("http://[::1/"), Err(UrlError::Host(_))));
        assert!(matches!(Url::parse("http://[zz]/"), Err(UrlError::Host(_))));
        assert!(matches!(
            Url::parse("http://[::1]x/"),
            Err(UrlError::Host(_))
        ));
        assert!(matches!(Url::parse("http://h%20/"), Err(UrlError::Host(_))));
        assert!(matches!(Url::parse("http://a b/"), Err(UrlError::Host(_))));
        assert_eq!(Url::parse("http://u:p@h/"), Err(UrlError::Credentials));
        assert_eq!(Url::parse("http://h/\r\nX: y"), Err(UrlError::Invalid));
    }

    #[test]
    fn joins_locations() {
        let base = u("http://h:81/a/b/c?q");
        let j = |l: &str| base.join(l).unwrap().to_string();
        assert_eq!(j("http://other/x"), "http://other/x");
        assert_eq!(j("//other:9/x"), "http://other:9/x");
        assert_eq!(j("/x/y"), "http://h:81/x/y");
        assert_eq!(j("d"), "http://h:81/a/b/d");
        assert_eq!(j("./d/"), "http://h:81/a/b/d/");
        assert_eq!(j("../d"), "http://h:81/a/d");
        assert_eq!(j("../../../../d"), "http://h:81/d");
        assert_eq!(j("?z"), "http://h:81/a/b/c?z");
        assert_eq!(j("d?z#f"), "http://h:81/a/b/d?z");
        assert_eq!(j(""), "http://h:81/a/b/c?q");
        assert_eq!(j("."), "http://h:81/a/b/");
        assert_eq!(j(".."), "http://h:81/a/");
        assert_eq!(j("https://x/"), "https://x/");
        let secure = u("https://s:8443/a/b");
        assert_eq!(secure.join("//t/x").unwrap().to_string(), "https://t/x");
        assert_eq!(secure.join("c").unwrap().to_string(), "https://s:8443/a/c");
        assert_eq!(secure.join("http://s/").unwrap().to_string(), "http://s/");
        assert_eq!(base.join("/a\nb"), Err(UrlError::Invalid));
        assert_eq!(remove_dot_segments("/a/b/c/./../../g"), "/a/g");
        assert_eq!(remove_dot_segments("/mid/content=5/../6"), "/mid/6");
    }
}
