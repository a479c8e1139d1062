//! `ftp://user:pass@host:port/path` (RFC 1738 §3.2): user, password and
//! path percent-decoded; no user means anonymous. `ftpes://` is the same
//! with explicit TLS (AUTH TLS, RFC 4217) on port 21.

/// A parsed FTP URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FtpUrl {
    /// The user (`anonymous` when the URL names none).
    pub user: String,
    /// The password.
    pub password: String,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port (21 by default).
    pub port: u16,
    /// The path, decoded, without the leading `/` (relative to the login
    /// directory, as RFC 1738 says); empty for the directory itself.
    pub path: String,
    /// `ftpes://`: AUTH TLS, PBSZ 0, PROT P.
    pub tls: bool,
}

fn decode(s: &str) -> Result<String, String> {
    let b = crate::web::path::percent_decode(s).map_err(|_| format!("bad %-escape in {s:?}"))?;
    let s = String::from_utf8(b).map_err(|_| "URL is not UTF-8".to_string())?;
    if s.contains(['\r', '\n', '\0']) {
        return Err("control character in the URL".into());
    }
    Ok(s)
}

impl std::str::FromStr for FtpUrl {
    type Err = String;

    fn from_str(url: &str) -> Result<FtpUrl, String> {
        let (rest, tls) = match url.strip_prefix("ftp://") {
            Some(r) => (r, false),
            None => (
                url.strip_prefix("ftpes://")
                    .ok_or_else(|| format!("{url}: not an ftp:// or ftpes:// URL"))?,
                true,
            ),
        };
        let (auth, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (cred, hostport) = match auth.rsplit_once('@') {
            Some((c, h)) => (Some(c), h),
            None => (None, auth),
        };
        let (user, password) = match cred {
            Some(c) => {
                let (u, p) = c.split_once(':').unwrap_or((c, ""));
                (decode(u)?, decode(p)?)
            }
            None => ("anonymous".to_string(), "twill@".to_string()),
        };
        let (host, port) = if let Some(h) = hostport.strip_prefix('[') {
            let (h, after) = h
                .split_once(']')
                .ok_or_else(|| format!("{url}: unclosed ["))?;
            (h.to_string(), after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (hostport.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(format!("{url}: no host"));
        }
        let port = match port {
            Some(p) => p.parse().map_err(|_| format!("{url}: bad port {p:?}"))?,
            None => 21,
        };
        Ok(FtpUrl {
            user,
            password,
            host,
            port,
            path: decode(path)?,
            tls,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u: FtpUrl = "ftp://al%40ice:p%3Ass@127.0.0.1:2121/dir/a%20b.txt"
            .parse()
            .unwrap();
        assert_eq!(
            (
                u.user.as_str(),
                u.password.as_str(),
                u.host.as_str(),
                u.port
            ),
            ("al@ice", "p:ss", "127.0.0.1", 2121)
        );
        assert_eq!(u.path, "dir/a b.txt");
        let u: FtpUrl = "ftp://[::1]/".parse().unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.user.as_str()),
            ("::1", 21, "anonymous")
        );
        assert!(!u.tls);
        let u: FtpUrl = "ftpes://h:2121/f".parse().unwrap();
        assert!(u.tls && u.port == 2121 && u.path == "f");
        assert!("ftps://h/".parse::<FtpUrl>().is_err());
        assert!("http://x/".parse::<FtpUrl>().is_err());
        assert!("ftp://h:99999/".parse::<FtpUrl>().is_err());
        assert!("ftp://h/a%0d%0aDELE%20x".parse::<FtpUrl>().is_err());
    }
}
