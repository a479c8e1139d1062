//! Command lines: `VERB[ SP argument]` ending in CRLF (RFC 959 §5.3.1),
//! as a borrowed [`Command`]. Framing (finding the line end, the length
//! limit) is done by the caller with `twill_basic`-style line scanning; this
//! module parses one complete line.

use alloc::borrow::Cow;
use alloc::vec::Vec;

use crate::error::CommandError;

/// Telnet "interpret as command" (RFC 854): ABOR may arrive behind
/// `IAC IP IAC DM` (RFC 959 §4.1.3).
pub const IAC: u8 = 0xFF;

/// The verbs this crate knows. Unknown verbs parse too (as
/// [`Verb::Other`]) so a server can answer 502 rather than 500.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[allow(missing_docs)] // the names are RFC 959's
pub enum Verb {
    User,
    Pass,
    Acct,
    Cwd,
    Cdup,
    Pwd,
    Quit,
    Rein,
    Port,
    Pasv,
    Eprt,
    Epsv,
    Type,
    Stru,
    Mode,
    Retr,
    Stor,
    Stou,
    Appe,
    Allo,
    Rest,
    Rnfr,
    Rnto,
    Abor,
    Dele,
    Rmd,
    Mkd,
    List,
    Nlst,
    Mlsd,
    Mlst,
    Size,
    Mdtm,
    Site,
    Syst,
    Stat,
    Help,
    Noop,
    Feat,
    Opts,
    Auth,
    Pbsz,
    Prot,
    Ccc,
    /// Anything else (3 or 4 ASCII letters).
    Other,
}

/// `(name, verb)`, upper case; the `X…` forms are RFC 775's aliases.
const VERBS: &[(&[u8], Verb)] = &[
    (b"USER", Verb::User),
    (b"PASS", Verb::Pass),
    (b"ACCT", Verb::Acct),
    (b"CWD", Verb::Cwd),
    (b"XCWD", Verb::Cwd),
    (b"CDUP", Verb::Cdup),
    (b"XCUP", Verb::Cdup),
    (b"PWD", Verb::Pwd),
    (b"XPWD", Verb::Pwd),
    (b"QUIT", Verb::Quit),
    (b"REIN", Verb::Rein),
    (b"PORT", Verb::Port),
    (b"PASV", Verb::Pasv),
    (b"EPRT", Verb::Eprt),
    (b"EPSV", Verb::Epsv),
    (b"TYPE", Verb::Type),
    (b"STRU", Verb::Stru),
    (b"MODE", Verb::Mode),
    (b"RETR", Verb::Retr),
    (b"STOR", Verb::Stor),
    (b"STOU", Verb::Stou),
    (b"APPE", Verb::Appe),
    (b"ALLO", Verb::Allo),
    (b"REST", Verb::Rest),
    (b"RNFR", Verb::Rnfr),
    (b"RNTO", Verb::Rnto),
    (b"ABOR", Verb::Abor),
    (b"DELE", Verb::Dele),
    (b"RMD", Verb::Rmd),
    (b"XRMD", Verb::Rmd),
    (b"MKD", Verb::Mkd),
    (b"XMKD", Verb::Mkd),
    (b"LIST", Verb::List),
    (b"NLST", Verb::Nlst),
    (b"MLSD", Verb::Mlsd),
    (b"MLST", Verb::Mlst),
    (b"SIZE", Verb::Size),
    (b"MDTM", Verb::Mdtm),
    (b"SITE", Verb::Site),
    (b"SYST", Verb::Syst),
    (b"STAT", Verb::Stat),
    (b"HELP", Verb::Help),
    (b"NOOP", Verb::Noop),
    (b"FEAT", Verb::Feat),
    (b"OPTS", Verb::Opts),
    (b"AUTH", Verb::Auth),
    (b"PBSZ", Verb::Pbsz),
    (b"PROT", Verb::Prot),
    (b"CCC", Verb::Ccc),
];

impl Verb {
    /// Looks a verb up, case-insensitively.
    pub fn from_bytes(name: &[u8]) -> Verb {
        VERBS
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map_or(Verb::Other, |(_, v)| *v)
    }

    /// The canonical (upper-case, non-`X`) name.
    pub fn name(self) -> &'static str {
        VERBS
            .iter()
            .find(|(_, v)| *v == self)
            .and_then(|(n, _)| core::str::from_utf8(n).ok())
            .unwrap_or("?")
    }
}

/// One parsed command line, borrowing the line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command<'a> {
    /// The verb.
    pub verb: Verb,
    /// The verb as sent (for 502 replies to unknown verbs).
    pub name: &'a str,
    /// Everything after the first space, verbatim (file names may hold
    /// spaces); empty when there is none.
    pub arg: &'a str,
}

/// Removes Telnet IAC sequences: `IAC IAC` is a literal 0xFF, `IAC x`
/// (IP, DM, …) is dropped, as are the option negotiations `IAC WILL/WONT/
/// DO/DONT x`. Borrows when there is nothing to remove.
pub fn strip_telnet(line: &[u8]) -> Cow<'_, [u8]> {
    if memchr::memchr(IAC, line).is_none() {
        return Cow::Borrowed(line);
    }
    let mut out = Vec::with_capacity(line.len());
    let mut it = line.iter().copied();
    while let Some(b) = it.next() {
        if b != IAC {
            out.push(b);
            continue;
        }
        match it.next() {
            Some(IAC) => out.push(IAC),
            // WILL, WONT, DO, DONT carry one option byte.
            Some(251..=254) => {
                it.next();
            }
            _ => {}
        }
    }
    Cow::Owned(out)
}

/// Parses one command line (without its line ending, Telnet sequences
/// already stripped).
///
/// # Errors
/// An empty line, a verb that is not 3–4 ASCII letters, a non-UTF-8
/// argument (RFC 2640 makes UTF-8 the pathname encoding), or control
/// characters (CR, NUL) inside the line.
pub fn parse(line: &[u8]) -> Result<Command<'_>, CommandError> {
    // Some clients end lines with a stray CR; RFC 959 only allows CRLF.
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return Err(CommandError::Empty);
    }
    if line.iter().any(|&b| b == b'\r' || b == 0 || b == b'\n') {
        return Err(CommandError::ControlCharacter);
    }
    let (name, arg) = match memchr::memchr(b' ', line) {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, &b""[..]),
    };
    if !(3..=4).contains(&name.len()) || !name.iter().all(u8::is_ascii_alphabetic) {
        return Err(CommandError::BadVerb);
    }
    let name = core::str::from_utf8(name).map_err(|_| CommandError::BadVerb)?;
    let arg = core::str::from_utf8(arg).map_err(|_| CommandError::NotUtf8)?;
    Ok(Command {
        verb: Verb::from_bytes(name.as_bytes()),
        name,
        arg,
    })
}

/// Encodes a command line (client side): `VERB SP arg CRLF`, or the verb
/// alone for an empty argument.
///
/// # Errors
/// The argument holds CR, LF or NUL (which would inject a second command).
pub fn encode(verb: &str, arg: &str, out: &mut bytes::BytesMut) -> Result<(), CommandError> {
    if arg.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(CommandError::ControlCharacter);
    }
    out.extend_from_slice(verb.as_bytes());
    if !arg.is_empty() {
        out.extend_from_slice(b" ");
        out.extend_from_slice(arg.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_and_args() {
        let c = parse(b"retr my file.txt").unwrap();
        assert_eq!((c.verb, c.arg), (Verb::Retr, "my file.txt"));
        assert_eq!(parse(b"XPWD").unwrap().verb, Verb::Pwd);
        assert_eq!(parse(b"FOO bar").unwrap().verb, Verb::Other);
        assert_eq!(parse(b"PWD\r").unwrap().verb, Verb::Pwd);
        assert_eq!(parse(b""), Err(CommandError::Empty));
        assert_eq!(parse(b"RE"), Err(CommandError::BadVerb));
        assert_eq!(parse(b"R3TR x"), Err(CommandError::BadVerb));
        assert_eq!(parse(b"RETR a\rb"), Err(CommandError::ControlCharacter));
        assert_eq!(parse(b"RETR a\0b"), Err(CommandError::ControlCharacter));
        assert_eq!(parse(b"RETR \xff\xfe"), Err(CommandError::NotUtf8));
        assert_eq!(Verb::Mkd.name(), "MKD");
    }

    #[test]
    fn telnet_sequences_are_removed() {
        assert_eq!(&*strip_telnet(b"\xff\xf4\xff\xf2ABOR"), b"ABOR");
        assert_eq!(&*strip_telnet(b"RETR a\xff\xffb"), b"RETR a\xffb");
        assert_eq!(&*strip_telnet(b"\xff\xfb\x01NOOP"), b"NOOP");
        assert_eq!(&*strip_telnet(b"NOOP\xff"), b"NOOP");
        assert!(matches!(strip_telnet(b"NOOP"), Cow::Borrowed(_)));
    }

    #[test]
    fn encode_refuses_injection() {
        let mut out = bytes::BytesMut::new();
        assert!(encode("RETR", "a\r\nDELE b", &mut out).is_err());
        encode("RETR", "a b", &mut out).unwrap();
        encode("PASV", "", &mut out).unwrap();
        assert_eq!(&out[..], b"RETR a b\r\nPASV\r\n");
    }
}
