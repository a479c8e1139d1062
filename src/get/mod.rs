//! `twill get`: an HTTP client for the command line.
//!
//! The pure parts: [`url`] (http and https URLs, `Host`, resolving `Location`),
//! [`redirect`] (which responses redirect, with which method, how many
//! times), [`progress`] (the progress line) and the request headers from
//! `-H`.

pub mod fetch;
pub mod progress;
pub mod redirect;
pub mod url;

/// Exit code when the server answered with an error status (≥ 400), or
/// the transfer failed (connection refused, reset, too many redirects).
pub const EXIT_FAILED: i32 = 1;
/// Exit code for usage errors and bad URLs.
pub const EXIT_USAGE: i32 = 2;

/// An error of `twill get`: one line for stderr and the exit code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetError {
    /// The process exit code.
    pub code: i32,
    /// The one-line message.
    pub message: String,
}

impl GetError {
    /// A usage error (exit code 2).
    pub fn usage(message: impl Into<String>) -> Self {
        GetError {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }

    /// A failed transfer (exit code 1).
    pub fn failed(message: impl Into<String>) -> Self {
        GetError {
            code: EXIT_FAILED,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for GetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for GetError {}

/// Parses a `-H 'Name: value'` argument; the name must be a token and the
/// value free of CR, LF and NUL.
pub fn parse_header(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| format!("header {s:?} is not 'Name: value'"))?;
    let tchar = |c: u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c);
    if name.is_empty() || !name.bytes().all(tchar) {
        return Err(format!("invalid header name {name:?}"));
    }
    let value = value.trim_matches([' ', '\t']);
    if value.bytes().any(|c| c == b'\r' || c == b'\n' || c == 0) {
        return Err(format!("invalid value for header {name}"));
    }
    Ok((name.to_string(), value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        assert_eq!(
            parse_header("X-Test:  a b "),
            Ok(("X-Test".into(), "a b".into()))
        );
        assert_eq!(parse_header("Accept:"), Ok(("Accept".into(), "".into())));
        assert!(parse_header("NoColon").is_err());
        assert!(parse_header(": v").is_err());
        assert!(parse_header("Bad Name: v").is_err());
        assert!(parse_header("X: a\r\nInjected: 1").is_err());
    }
}

#[cfg(test)]
mod no_panic {
    #[test]
    fn urls_take_anything() {
        let alphabet = [
            "http://", "https://", "/", ":", "[", "]", "::1", "@", "?", "#", ".", "..", "%", "a",
            "8080", " ", "\r", "é", "//", "-",
        ];
        let base = super::url::Url::parse("http://h:81/a/b").unwrap();
        for s in crate::web::no_panic::strings(0x9e37_79b9, &alphabet, 20_000) {
            if let Ok(u) = super::url::Url::parse(&s) {
                assert!(u.target.starts_with('/'), "{s:?}");
                assert!(!u.host.is_empty(), "{s:?}");
                let _ = u.to_string();
            }
            if let Ok(u) = base.join(&s) {
                assert!(u.target.starts_with('/'), "{s:?}");
            }
            let _ = super::parse_header(&s);
        }
    }
}
