//! Twisted's endpoint string grammar, parsed once for every driver and the
//! CLI.
//!
//! Server: `tcp:8080[:interface=127.0.0.1][:backlog=N]`, `tcp6:8080`,
//! `unix:/path[:mode=660][:backlog=N]`,
//! `ssl:8443:privateKey=key.pem:certKey=cert.pem[:interface=…][:sni=…]`,
//! `udp:5353[:interface=…][:multicast=224.0.0.251]`.
//! Client: `tcp:host:port[:timeout=N]`, `unix:/path[:timeout=N]`,
//! `tls:host:port[:ca=FILE][:hostname=NAME][:timeout=N]`.
//!
//! Fields are separated by `:`; a backslash escapes the next character, so
//! `unix:/tmp/a\:b` names the path `/tmp/a:b` and `tcp:\:\:1:80` the host
//! `::1`. IPv6 hosts may also be written in brackets: `tcp:[::1]:80`.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use core::str::FromStr;

use crate::time::Duration;

/// A malformed endpoint string; the message names the problem.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndpointError {
    /// The string was empty.
    Empty,
    /// The type before the first `:` is not one we know.
    UnknownType(String),
    /// A required field is missing.
    Missing(&'static str),
    /// A field's value does not parse.
    Invalid {
        /// The field.
        field: &'static str,
        /// The value given.
        value: String,
    },
    /// A `key=value` the endpoint type does not take.
    UnknownOption(String),
    /// The same option twice.
    Duplicate(String),
    /// More positional fields than the type takes.
    Extra(String),
    /// A backslash at the very end.
    TrailingBackslash,
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointError::Empty => f.write_str("empty endpoint"),
            EndpointError::UnknownType(t) => write!(
                f,
                "unknown endpoint type {t:?} (expected tcp, tcp6, unix, udp, ssl or tls)"
            ),
            EndpointError::Missing(what) => write!(f, "missing {what}"),
            EndpointError::Invalid { field, value } => write!(f, "invalid {field}: {value:?}"),
            EndpointError::UnknownOption(k) => write!(f, "unknown option {k:?}"),
            EndpointError::Duplicate(k) => write!(f, "option {k:?} given twice"),
            EndpointError::Extra(v) => write!(f, "unexpected field {v:?}"),
            EndpointError::TrailingBackslash => f.write_str("trailing backslash"),
        }
    }
}

impl core::error::Error for EndpointError {}

/// TLS server settings of an `ssl:` endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsServerConfig {
    /// PEM private key path (`privateKey=`).
    pub private_key: String,
    /// PEM certificate chain path (`certKey=`); defaults to the key file.
    pub cert_key: String,
    /// Extra certificates chosen by SNI: `sni=host=cert.pem,key.pem`.
    pub sni: Vec<SniCert>,
    /// CA file for optional client certificates (`caCerts=`).
    pub client_ca: Option<String>,
}

/// One SNI choice of an `ssl:` endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SniCert {
    /// The server name.
    pub host: String,
    /// Certificate chain path.
    pub cert: String,
    /// Private key path.
    pub key: String,
}

/// Where to listen.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerEndpoint {
    /// TCP (`tcp:` with IPv4 default interface, `tcp6:` with IPv6), or TLS
    /// over TCP when `tls` is set (`ssl:`).
    Tcp {
        /// Port; 0 asks the system for one.
        port: u16,
        /// Address to bind (default 0.0.0.0, or :: for `tcp6:`).
        interface: IpAddr,
        /// Listen backlog (default 128... the driver's).
        backlog: Option<u32>,
        /// TLS settings for `ssl:`.
        tls: Option<TlsServerConfig>,
    },
    /// A Unix-domain stream socket.
    Unix {
        /// Filesystem path.
        path: String,
        /// Permission bits (octal in the string, e.g. `mode=660`).
        mode: Option<u32>,
        /// Listen backlog.
        backlog: Option<u32>,
    },
    /// A UDP socket.
    Udp {
        /// Port.
        port: u16,
        /// Address to bind (default 0.0.0.0, or :: for an IPv6 group).
        interface: IpAddr,
        /// Multicast groups to join.
        multicast: Vec<IpAddr>,
    },
}

/// Where to connect.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEndpoint {
    /// TCP, or TLS over TCP for `tls:`.
    Tcp {
        /// Name or address.
        host: String,
        /// Port.
        port: u16,
        /// Connect timeout.
        timeout: Option<Duration>,
        /// TLS settings for `tls:`.
        tls: Option<TlsClientConfig>,
    },
    /// A Unix-domain stream socket.
    Unix {
        /// Filesystem path.
        path: String,
        /// Connect timeout.
        timeout: Option<Duration>,
    },
}

/// TLS client settings of a `tls:` endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsClientConfig {
    /// CA file to verify the server with (platform roots when `None`).
    pub ca: Option<String>,
    /// Name to verify instead of the host.
    pub hostname: Option<String>,
}

/// Splits at unescaped `:` and removes the escapes.
fn split_fields(s: &str) -> Result<Vec<String>, EndpointError> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars();
    let mut bracket = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => cur.push(chars.next().ok_or(EndpointError::TrailingBackslash)?),
            // `[::1]` keeps its colons, as in URLs.
            '[' if cur.is_empty() => bracket = true,
            ']' if bracket => bracket = false,
            ':' if !bracket => fields.push(core::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    fields.push(cur);
    Ok(fields)
}

/// Positional fields and `key=value` options of one endpoint string.
struct Fields {
    kind: String,
    positional: Vec<String>,
    options: Vec<(String, String)>,
}

impl Fields {
    fn parse(s: &str) -> Result<Fields, EndpointError> {
        if s.trim().is_empty() {
            return Err(EndpointError::Empty);
        }
        let mut fields = split_fields(s)?.into_iter();
        let kind = fields.next().unwrap_or_default().to_ascii_lowercase();
        let mut positional = Vec::new();
        let mut options: Vec<(String, String)> = Vec::new();
        for f in fields {
            match f.split_once('=') {
                Some((k, v)) => {
                    if options.iter().any(|(o, _)| o == k) && k != "sni" {
                        return Err(EndpointError::Duplicate(k.to_string()));
                    }
                    options.push((k.to_string(), v.to_string()));
                }
                None => positional.push(f),
            }
        }
        Ok(Fields {
            kind,
            positional,
            options,
        })
    }

    /// Takes option `key` (or a positional field at `pos` if any remain).
    fn take(&mut self, key: &str) -> Option<String> {
        let i = self.options.iter().position(|(k, _)| k == key)?;
        Some(self.options.remove(i).1)
    }

    fn take_positional(&mut self, key: &str) -> Option<String> {
        if let Some(v) = self.take(key) {
            return Some(v);
        }
        if self.positional.is_empty() {
            None
        } else {
            Some(self.positional.remove(0))
        }
    }

    fn finish(self) -> Result<(), EndpointError> {
        if let Some(p) = self.positional.into_iter().next() {
            return Err(EndpointError::Extra(p));
        }
        if let Some((k, _)) = self.options.into_iter().next() {
            return Err(EndpointError::UnknownOption(k));
        }
        Ok(())
    }
}

fn parse_num<T: FromStr>(field: &'static str, v: &str) -> Result<T, EndpointError> {
    v.parse().map_err(|_| EndpointError::Invalid {
        field,
        value: v.to_string(),
    })
}

fn parse_ip(field: &'static str, v: &str) -> Result<IpAddr, EndpointError> {
    let v = v.trim_start_matches('[').trim_end_matches(']');
    parse_num(field, v)
}

fn parse_timeout(v: Option<String>) -> Result<Option<Duration>, EndpointError> {
    v.map(|v| {
        let secs: f64 = parse_num("timeout", &v)?;
        if !(secs.is_finite() && secs > 0.0 && secs < 1e9) {
            return Err(EndpointError::Invalid {
                field: "timeout",
                value: v,
            });
        }
        Ok(Duration::from_secs_f64(secs))
    })
    .transpose()
}

fn parse_sni(v: &str) -> Result<SniCert, EndpointError> {
    let bad = || EndpointError::Invalid {
        field: "sni (expected host=cert.pem,key.pem)",
        value: v.to_string(),
    };
    let (host, files) = v.split_once('=').ok_or_else(bad)?;
    let (cert, key) = files.split_once(',').ok_or_else(bad)?;
    if host.is_empty() || cert.is_empty() || key.is_empty() {
        return Err(bad());
    }
    Ok(SniCert {
        host: host.to_string(),
        cert: cert.to_string(),
        key: key.to_string(),
    })
}

impl FromStr for ServerEndpoint {
    type Err = EndpointError;

    fn from_str(s: &str) -> Result<Self, EndpointError> {
        let mut f = Fields::parse(s)?;
        let ep = match f.kind.as_str() {
            "tcp" | "tcp6" | "ssl" => {
                let port = f
                    .take_positional("port")
                    .ok_or(EndpointError::Missing("port"))?;
                let port = parse_num("port", &port)?;
                let default = if f.kind == "tcp6" {
                    IpAddr::V6(Ipv6Addr::UNSPECIFIED)
                } else {
                    IpAddr::V4(Ipv4Addr::UNSPECIFIED)
                };
                let interface = f
                    .take("interface")
                    .map(|v| parse_ip("interface", &v))
                    .transpose()?
                    .unwrap_or(default);
                let backlog = f
                    .take("backlog")
                    .map(|v| parse_num("backlog", &v))
                    .transpose()?;
                let tls = if f.kind == "ssl" {
                    let private_key = f
                        .take("privateKey")
                        .ok_or(EndpointError::Missing("privateKey= (PEM key file)"))?;
                    let cert_key = f.take("certKey").unwrap_or_else(|| private_key.clone());
                    let mut sni = Vec::new();
                    while let Some(v) = f.take("sni") {
                        sni.push(parse_sni(&v)?);
                    }
                    let client_ca = f.take("caCerts");
                    Some(TlsServerConfig {
                        private_key,
                        cert_key,
                        sni,
                        client_ca,
                    })
                } else {
                    None
                };
                ServerEndpoint::Tcp {
                    port,
                    interface,
                    backlog,
                    tls,
                }
            }
            "unix" => {
                let path = f
                    .take_positional("address")
                    .ok_or(EndpointError::Missing("path"))?;
                if path.is_empty() {
                    return Err(EndpointError::Missing("path"));
                }
                let mode = f
                    .take("mode")
                    .map(|v| {
                        u32::from_str_radix(&v, 8)
                            .ok()
                            .filter(|m| *m <= 0o7777)
                            .ok_or(EndpointError::Invalid {
                                field: "mode (octal)",
                                value: v,
                            })
                    })
                    .transpose()?;
                let backlog = f
                    .take("backlog")
                    .map(|v| parse_num("backlog", &v))
                    .transpose()?;
                ServerEndpoint::Unix {
                    path,
                    mode,
                    backlog,
                }
            }
            "udp" | "udp6" => {
                let port = f
                    .take_positional("port")
                    .ok_or(EndpointError::Missing("port"))?;
                let port = parse_num("port", &port)?;
                let mut multicast = Vec::new();
                while let Some(g) = f.take("multicast") {
                    let g = parse_ip("multicast", &g)?;
                    if !g.is_multicast() {
                        return Err(EndpointError::Invalid {
                            field: "multicast (not a multicast group)",
                            value: g.to_string(),
                        });
                    }
                    multicast.push(g);
                }
                let v6 = f.kind == "udp6" || multicast.iter().any(IpAddr::is_ipv6);
                let default = if v6 {
                    IpAddr::V6(Ipv6Addr::UNSPECIFIED)
                } else {
                    IpAddr::V4(Ipv4Addr::UNSPECIFIED)
                };
                let interface = f
                    .take("interface")
                    .map(|v| parse_ip("interface", &v))
                    .transpose()?
                    .unwrap_or(default);
                ServerEndpoint::Udp {
                    port,
                    interface,
                    multicast,
                }
            }
            "" => return Err(EndpointError::Empty),
            other => return Err(EndpointError::UnknownType(other.to_string())),
        };
        f.finish()?;
        Ok(ep)
    }
}

impl FromStr for ClientEndpoint {
    type Err = EndpointError;

    fn from_str(s: &str) -> Result<Self, EndpointError> {
        let mut f = Fields::parse(s)?;
        let ep = match f.kind.as_str() {
            "tcp" | "tls" => {
                let host = f
                    .take_positional("host")
                    .ok_or(EndpointError::Missing("host"))?;
                if host.is_empty() {
                    return Err(EndpointError::Missing("host"));
                }
                let port = f
                    .take_positional("port")
                    .ok_or(EndpointError::Missing("port"))?;
                let port = parse_num("port", &port)?;
                let timeout = parse_timeout(f.take("timeout"))?;
                let tls = if f.kind == "tls" {
                    Some(TlsClientConfig {
                        ca: f.take("ca"),
                        hostname: f.take("hostname"),
                    })
                } else {
                    None
                };
                ClientEndpoint::Tcp {
                    host,
                    port,
                    timeout,
                    tls,
                }
            }
            "unix" => {
                let path = f
                    .take_positional("path")
                    .ok_or(EndpointError::Missing("path"))?;
                if path.is_empty() {
                    return Err(EndpointError::Missing("path"));
                }
                let timeout = parse_timeout(f.take("timeout"))?;
                ClientEndpoint::Unix { path, timeout }
            }
            "" => return Err(EndpointError::Empty),
            other => return Err(EndpointError::UnknownType(other.to_string())),
        };
        f.finish()?;
        Ok(ep)
    }
}

/// Escapes `:` and `\` for use inside an endpoint field.
pub fn escape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    for c in field.chars() {
        if c == ':' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl fmt::Display for ServerEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerEndpoint::Tcp {
                port,
                interface,
                backlog,
                tls,
            } => {
                let kind = if tls.is_some() { "ssl" } else { "tcp" };
                write!(
                    f,
                    "{kind}:{port}:interface={}",
                    escape(&interface.to_string())
                )?;
                if let Some(b) = backlog {
                    write!(f, ":backlog={b}")?;
                }
                if let Some(t) = tls {
                    write!(
                        f,
                        ":privateKey={}:certKey={}",
                        escape(&t.private_key),
                        escape(&t.cert_key)
                    )?;
                    for s in &t.sni {
                        write!(
                            f,
                            ":sni={}={},{}",
                            escape(&s.host),
                            escape(&s.cert),
                            escape(&s.key)
                        )?;
                    }
                    if let Some(ca) = &t.client_ca {
                        write!(f, ":caCerts={}", escape(ca))?;
                    }
                }
                Ok(())
            }
            ServerEndpoint::Unix {
                path,
                mode,
                backlog,
            } => {
                write!(f, "unix:{}", escape(path))?;
                if let Some(m) = mode {
                    write!(f, ":mode={m:o}")?;
                }
                if let Some(b) = backlog {
                    write!(f, ":backlog={b}")?;
                }
                Ok(())
            }
            ServerEndpoint::Udp {
                port,
                interface,
                multicast,
            } => {
                write!(f, "udp:{port}:interface={}", escape(&interface.to_string()))?;
                for g in multicast {
                    write!(f, ":multicast={}", escape(&g.to_string()))?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for ClientEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientEndpoint::Tcp {
                host,
                port,
                timeout,
                tls,
            } => {
                let kind = if tls.is_some() { "tls" } else { "tcp" };
                write!(f, "{kind}:{}:{port}", escape(host))?;
                if let Some(t) = timeout {
                    write!(f, ":timeout={}", t.as_secs_f64())?;
                }
                if let Some(t) = tls {
                    if let Some(ca) = &t.ca {
                        write!(f, ":ca={}", escape(ca))?;
                    }
                    if let Some(h) = &t.hostname {
                        write!(f, ":hostname={}", escape(h))?;
                    }
                }
                Ok(())
            }
            ClientEndpoint::Unix { path, timeout } => {
                write!(f, "unix:{}", escape(path))?;
                if let Some(t) = timeout {
                    write!(f, ":timeout={}", t.as_secs_f64())?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn server(s: &str) -> ServerEndpoint {
        s.parse().unwrap()
    }

    #[test]
    fn tcp_server_forms() {
        assert_eq!(
            server("tcp:8080"),
            ServerEndpoint::Tcp {
                port: 8080,
                interface: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                backlog: None,
                tls: None
            }
        );
        assert_eq!(
            server("tcp:port=80:interface=127.0.0.1:backlog=5"),
            ServerEndpoint::Tcp {
                port: 80,
                interface: "127.0.0.1".parse().unwrap(),
                backlog: Some(5),
                tls: None
            }
        );
        assert!(matches!(
            server("tcp6:80"),
            ServerEndpoint::Tcp {
                interface: IpAddr::V6(_),
                ..
            }
        ));
        assert!(matches!(
            server("tcp:80:interface=\\:\\:1"),
            ServerEndpoint::Tcp { interface: IpAddr::V6(a), .. } if a == Ipv6Addr::LOCALHOST
        ));
    }

    #[test]
    fn unix_udp_ssl() {
        assert_eq!(
            server("unix:/tmp/a\\:b:mode=660"),
            ServerEndpoint::Unix {
                path: "/tmp/a:b".into(),
                mode: Some(0o660),
                backlog: None
            }
        );
        assert_eq!(
            server("udp:5353:multicast=224.0.0.251"),
            ServerEndpoint::Udp {
                port: 5353,
                interface: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                multicast: vec!["224.0.0.251".parse().unwrap()]
            }
        );
        let ssl = server("ssl:443:privateKey=k.pem:sni=a.example=a.pem,a.key:sni=b=b.pem,b.key");
        let ServerEndpoint::Tcp {
            tls: Some(t),
            port: 443,
            ..
        } = ssl
        else {
            panic!("not ssl: {ssl:?}")
        };
        assert_eq!(t.cert_key, "k.pem");
        assert_eq!(t.sni.len(), 2);
        assert_eq!(t.sni[1].host, "b");
    }

    #[test]
    fn clients() {
        let c: ClientEndpoint = "tcp:example.com:80:timeout=2.5".parse().unwrap();
        assert_eq!(
            c,
            ClientEndpoint::Tcp {
                host: "example.com".into(),
                port: 80,
                timeout: Some(Duration::from_millis(2500)),
                tls: None
            }
        );
        let c: ClientEndpoint = "tcp:[::1]:80".parse().unwrap();
        assert!(matches!(c, ClientEndpoint::Tcp { ref host, .. } if host == "::1"));
        let c: ClientEndpoint = "tls:h:443:ca=ca.pem".parse().unwrap();
        assert!(
            matches!(c, ClientEndpoint::Tcp { tls: Some(ref t), .. } if t.ca.as_deref() == Some("ca.pem"))
        );
    }

    #[test]
    fn errors_are_clear() {
        let e = |s: &str| s.parse::<ServerEndpoint>().unwrap_err().to_string();
        assert_eq!(e(""), "empty endpoint");
        assert!(e("tcpx:80").contains("unknown endpoint type \"tcpx\""));
        assert_eq!(e("tcp:"), "invalid port: \"\"");
        assert_eq!(e("tcp"), "missing port");
        assert_eq!(e("tcp:99999"), "invalid port: \"99999\"");
        assert_eq!(e("tcp:80:colour=red"), "unknown option \"colour\"");
        assert_eq!(
            e("tcp:80:backlog=1:backlog=2"),
            "option \"backlog\" given twice"
        );
        assert_eq!(e("tcp:80:81"), "unexpected field \"81\"");
        assert_eq!(e("unix:/x\\"), "trailing backslash");
        assert_eq!(e("unix:/x:mode=999"), "invalid mode (octal): \"999\"");
        assert!(e("udp:53:multicast=10.0.0.1").contains("not a multicast group"));
        assert!(e("ssl:443").contains("privateKey"));
        let c = |s: &str| s.parse::<ClientEndpoint>().unwrap_err().to_string();
        assert_eq!(c("tcp:host"), "missing port");
        assert_eq!(c("tcp:h:1:timeout=-1"), "invalid timeout: \"-1\"");
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "tcp:80:interface=127.0.0.1:backlog=9",
            "unix:/tmp/a\\:b:mode=600",
            "udp:5353:interface=0.0.0.0:multicast=224.0.0.251",
            "ssl:443:interface=0.0.0.0:privateKey=k:certKey=c:sni=h=c2,k2",
        ] {
            let e = server(s);
            assert_eq!(server(&e.to_string()), e, "{s}");
        }
        for s in [
            "tcp:\\:\\:1:80:timeout=1.5",
            "unix:/a:timeout=2",
            "tls:h:1:ca=x:hostname=y",
        ] {
            let e: ClientEndpoint = s.parse().unwrap();
            assert_eq!(e.to_string().parse::<ClientEndpoint>().unwrap(), e, "{s}");
        }
    }
}
