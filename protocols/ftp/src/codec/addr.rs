//! Data-connection addresses: `h1,h2,h3,h4,p1,p2` of PORT and the 227
//! reply (RFC 959 §4.1.2), `|af|addr|port|` of EPRT and `(|||port|)` of
//! the 229 reply (RFC 2428).

use alloc::format;
use alloc::string::String;
use core::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

use crate::error::AddrError;

/// Parses `h1,h2,h3,h4,p1,p2` (each 0–255, spaces around the numbers
/// allowed).
///
/// # Errors
/// Not six numbers, or a number over 255.
pub fn parse_port(arg: &str) -> Result<SocketAddrV4, AddrError> {
    let mut n = [0u8; 6];
    let mut parts = arg.split(',');
    for slot in &mut n {
        let p = parts.next().ok_or(AddrError::Malformed)?.trim();
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AddrError::Malformed);
        }
        *slot = p.parse().map_err(|_| AddrError::Malformed)?;
    }
    if parts.next().is_some() {
        return Err(AddrError::Malformed);
    }
    Ok(SocketAddrV4::new(
        Ipv4Addr::new(n[0], n[1], n[2], n[3]),
        u16::from(n[4]) << 8 | u16::from(n[5]),
    ))
}

/// Formats an IPv4 address and port as `h1,h2,h3,h4,p1,p2`.
pub fn format_port(addr: SocketAddrV4) -> String {
    let [a, b, c, d] = addr.ip().octets();
    let p = addr.port();
    format!("{a},{b},{c},{d},{},{}", p >> 8, p & 0xFF)
}

/// Finds `h1,h2,h3,h4,p1,p2` inside a 227 reply's text (RFC 959 leaves
/// the surrounding text free; RFC 1123 §4.1.2.6 tells clients to scan for
/// the first digit).
///
/// # Errors
/// No such six numbers in the text.
pub fn parse_pasv_reply(text: &str) -> Result<SocketAddrV4, AddrError> {
    let start = text
        .find(|c: char| c.is_ascii_digit())
        .ok_or(AddrError::Malformed)?;
    let rest = &text[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == ','))
        .unwrap_or(rest.len());
    parse_port(&rest[..end])
}

/// Parses EPRT's `<d>af<d>addr<d>port<d>` with any delimiter from 33 to
/// 126 (RFC 2428 §2); `af` 1 is IPv4, 2 IPv6.
///
/// # Errors
/// Malformed, an unknown family, or an address of the other family.
pub fn parse_eprt(arg: &str) -> Result<SocketAddr, AddrError> {
    let d = arg.chars().next().ok_or(AddrError::Malformed)?;
    if !(33..=126).contains(&(d as u32)) {
        return Err(AddrError::Malformed);
    }
    let mut f = arg[d.len_utf8()..].split(d);
    let (af, ip, port, end) = (f.next(), f.next(), f.next(), f.next());
    let (Some(af), Some(ip), Some(port), Some("")) = (af, ip, port, end) else {
        return Err(AddrError::Malformed);
    };
    if f.next().is_some() {
        return Err(AddrError::Malformed);
    }
    let port: u16 = port.parse().map_err(|_| AddrError::Malformed)?;
    let ip: IpAddr = match af {
        "1" => IpAddr::V4(ip.parse().map_err(|_| AddrError::Malformed)?),
        "2" => IpAddr::V6(ip.parse().map_err(|_| AddrError::Malformed)?),
        _ => return Err(AddrError::UnsupportedFamily),
    };
    Ok(SocketAddr::new(ip, port))
}

/// Formats an address for EPRT: `|1|addr|port|` or `|2|addr|port|`.
pub fn format_eprt(addr: SocketAddr) -> String {
    let af = if addr.is_ipv4() { 1 } else { 2 };
    format!("|{af}|{}|{}|", addr.ip(), addr.port())
}

/// Finds the port in a 229 reply's `(<d><d><d>port<d>)`.
///
/// # Errors
/// No such group in the text.
pub fn parse_epsv_reply(text: &str) -> Result<u16, AddrError> {
    let open = text.find('(').ok_or(AddrError::Malformed)?;
    let inner = &text[open + 1..];
    let close = inner.find(')').ok_or(AddrError::Malformed)?;
    let inner = &inner[..close];
    let d = inner.chars().next().ok_or(AddrError::Malformed)?;
    let mut f = inner.split(d);
    match (f.next(), f.next(), f.next(), f.next(), f.next(), f.next()) {
        (Some(""), Some(""), Some(""), Some(p), Some(""), None) => {
            p.parse().map_err(|_| AddrError::Malformed)
        }
        _ => Err(AddrError::Malformed),
    }
}

/// Maps an IPv4-mapped IPv6 address to IPv4 (a dual-stack socket reports
/// IPv4 peers that way), leaving others alone.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_and_pasv() {
        let a = parse_port("132,235,1,2,24,131").unwrap();
        assert_eq!(a, "132.235.1.2:6275".parse().unwrap());
        assert_eq!(format_port(a), "132,235,1,2,24,131");
        assert!(parse_port("1,2,3,4,5").is_err());
        assert!(parse_port("1,2,3,4,5,256").is_err());
        assert!(parse_port("1,2,3,4,5,6,7").is_err());
        assert_eq!(
            parse_pasv_reply("Entering Passive Mode (127,0,0,1,4,1).").unwrap(),
            "127.0.0.1:1025".parse().unwrap()
        );
        assert_eq!(
            parse_pasv_reply("=127,0,0,1,4,1").unwrap(),
            "127.0.0.1:1025".parse().unwrap()
        );
    }

    #[test]
    fn eprt_and_epsv() {
        assert_eq!(
            parse_eprt("|1|132.235.1.2|6275|").unwrap(),
            "132.235.1.2:6275".parse().unwrap()
        );
        assert_eq!(
            parse_eprt("|2|1080::8:800:200C:417A|5282|").unwrap(),
            "[1080::8:800:200C:417A]:5282".parse().unwrap()
        );
        assert_eq!(parse_eprt("|3|x|1|"), Err(AddrError::UnsupportedFamily));
        assert!(parse_eprt("|1|::1|1|").is_err());
        assert!(parse_eprt("|1|1.2.3.4|1").is_err());
        assert!(parse_eprt("").is_err());
        let a: SocketAddr = "[::1]:21".parse().unwrap();
        assert_eq!(parse_eprt(&format_eprt(a)).unwrap(), a);
        assert_eq!(
            parse_epsv_reply("Entering Extended Passive Mode (|||6446|)").unwrap(),
            6446
        );
        assert!(parse_epsv_reply("Entering (|||x|)").is_err());
    }
}
