//! SMTP commands (RFC 5321 §4.1), parsed from one line without copying:
//! every field of a [`Command`] borrows the line.
//!
//! Verbs are case-insensitive. The parser is lenient where RFC 5321 §4.1.2
//! tolerance is common practice (a space after `FROM:`, an LF line end) and
//! strict where it matters (paths, parameters, UTF-8).

use core::fmt;

/// One parsed command line.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command<'a> {
    /// `HELO domain`.
    Helo {
        /// The client's name for itself.
        domain: &'a str,
    },
    /// `EHLO domain`.
    Ehlo {
        /// The client's name for itself.
        domain: &'a str,
    },
    /// `MAIL FROM:<path> [params]`.
    Mail {
        /// The reverse path without brackets; empty for the null path `<>`.
        from: &'a str,
        /// The ESMTP parameters.
        params: MailParams<'a>,
    },
    /// `RCPT TO:<path> [params]`.
    Rcpt {
        /// The forward path without brackets (source routes removed).
        to: &'a str,
        /// The first parameter, if any (none is supported: DSN is not
        /// offered).
        param: Option<&'a str>,
    },
    /// `DATA`.
    Data,
    /// `BDAT size [LAST]` (RFC 3030).
    Bdat {
        /// Octets of the chunk that follow the command line.
        size: u64,
        /// Whether this is the last chunk.
        last: bool,
    },
    /// `RSET`.
    Rset,
    /// `VRFY string`.
    Vrfy(&'a str),
    /// `EXPN string`.
    Expn(&'a str),
    /// `HELP [topic]`.
    Help(Option<&'a str>),
    /// `NOOP [string]`.
    Noop,
    /// `QUIT`.
    Quit,
    /// `STARTTLS` (RFC 3207).
    StartTls,
    /// `AUTH mechanism [initial-response]` (RFC 4954).
    Auth {
        /// The SASL mechanism, as sent.
        mechanism: &'a str,
        /// The initial response (base64, or `=` for empty).
        initial: Option<&'a str>,
    },
}

/// `BODY=` values (RFC 6152, RFC 3030).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyType {
    /// `7BIT`.
    SevenBit,
    /// `8BITMIME`.
    EightBitMime,
    /// `BINARYMIME` (needs BDAT).
    BinaryMime,
}

/// The parameters of `MAIL FROM` that this crate knows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MailParams<'a> {
    /// `SIZE=n` (RFC 1870).
    pub size: Option<u64>,
    /// `BODY=…`.
    pub body: Option<BodyType>,
    /// `SMTPUTF8` (RFC 6531).
    pub smtputf8: bool,
    /// `AUTH=<mailbox>` (RFC 4954 §5), as sent.
    pub auth: Option<&'a str>,
    /// The first parameter not understood (answered 555).
    pub unknown: Option<&'a str>,
}

/// Why a command line was not accepted; each maps to a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The verb is unknown (500 5.5.1).
    #[error("command not recognized")]
    Unrecognized,
    /// The arguments are malformed (501 5.5.4).
    #[error("syntax error in parameters")]
    Syntax,
    /// The line is not UTF-8 (500 5.5.2).
    #[error("command line is not UTF-8")]
    NotUtf8,
    /// A path is malformed (501 5.1.3 / 5.1.7).
    #[error("malformed address")]
    BadAddress,
}

impl CommandError {
    /// The reply code and enhanced status for this error.
    pub fn reply(self) -> (u16, &'static str, &'static str) {
        match self {
            CommandError::Unrecognized => (500, "5.5.1", "Command not recognized"),
            CommandError::Syntax => (501, "5.5.4", "Syntax error in parameters or arguments"),
            CommandError::NotUtf8 => (500, "5.5.2", "Command line is not valid UTF-8"),
            CommandError::BadAddress => (501, "5.1.3", "Bad address syntax"),
        }
    }
}

impl fmt::Display for BodyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BodyType::SevenBit => "7BIT",
            BodyType::EightBitMime => "8BITMIME",
            BodyType::BinaryMime => "BINARYMIME",
        })
    }
}

pub use twill_core::line::trim_line_end;

/// Parses one command line (with or without its line ending).
///
/// The work is done on bytes: the verb is one case-folded 4-byte compare
/// (8 for `STARTTLS`), paths and parameters are found by scanning, and a
/// line is validated as UTF-8 only if it holds a byte above 0x7F (only
/// SMTPUTF8 addresses may); the fields handed out are short slices of the
/// line, converted to `str` one by one.
pub fn parse_command(line: &[u8]) -> Result<Command<'_>, CommandError> {
    let line = trim_line_end(line);
    if !line.is_ascii() {
        core::str::from_utf8(line).map_err(|_| CommandError::NotUtf8)?;
    }
    let (verb, rest) = match memchr::memchr(b' ', line) {
        Some(k) => (
            line.get(..k).unwrap_or_default(),
            line.get(k + 1..).unwrap_or_default(),
        ),
        None => (line, &[][..]),
    };
    let verb = match *verb {
        [a, b, c, d] => u32::from_le_bytes([a, b, c, d]) | FOLD4,
        [..] if verb.eq_ignore_ascii_case(b"STARTTLS") => {
            return no_args(rest, Command::StartTls);
        }
        _ => return Err(CommandError::Unrecognized),
    };
    match verb {
        MAIL => {
            let arg = strip_prefix_ci(rest, b"FROM:").ok_or(CommandError::Syntax)?;
            let (from, params) = parse_path(arg, true)?;
            Ok(Command::Mail {
                from: text(from)?,
                params: parse_mail_params(params)?,
            })
        }
        RCPT => {
            let arg = strip_prefix_ci(rest, b"TO:").ok_or(CommandError::Syntax)?;
            let (to, params) = parse_path(arg, false)?;
            let param = match words(params).next() {
                Some(p) => Some(text(p)?),
                None => None,
            };
            Ok(Command::Rcpt {
                to: text(to)?,
                param,
            })
        }
        DATA => no_args(rest, Command::Data),
        BDAT => {
            let mut it = words(rest);
            let size = it.next().and_then(number).ok_or(CommandError::Syntax)?;
            let last = match it.next() {
                None => false,
                Some(l) if l.eq_ignore_ascii_case(b"LAST") => true,
                Some(_) => return Err(CommandError::Syntax),
            };
            if it.next().is_some() {
                return Err(CommandError::Syntax);
            }
            Ok(Command::Bdat { size, last })
        }
        EHLO | HELO => {
            let domain = text(rest)?.trim();
            if domain.is_empty() || domain.bytes().any(|b| b <= b' ') {
                return Err(CommandError::Syntax);
            }
            Ok(if verb == EHLO {
                Command::Ehlo { domain }
            } else {
                Command::Helo { domain }
            })
        }
        RSET => no_args(rest, Command::Rset),
        NOOP => Ok(Command::Noop),
        QUIT => no_args(rest, Command::Quit),
        VRFY | EXPN => {
            let arg = text(rest)?.trim();
            if arg.is_empty() {
                return Err(CommandError::Syntax);
            }
            Ok(if verb == VRFY {
                Command::Vrfy(arg)
            } else {
                Command::Expn(arg)
            })
        }
        HELP => {
            let t = text(rest)?.trim();
            Ok(Command::Help((!t.is_empty()).then_some(t)))
        }
        AUTH => {
            let mut it = words(rest);
            let mechanism = text(it.next().ok_or(CommandError::Syntax)?)?;
            let initial = match it.next() {
                Some(i) => Some(text(i)?),
                None => None,
            };
            if it.next().is_some() {
                return Err(CommandError::Syntax);
            }
            Ok(Command::Auth { mechanism, initial })
        }
        _ => Err(CommandError::Unrecognized),
    }
}

/// ORed into four ASCII letters, lower-cases them; compared with a verb of
/// lower-case letters it is an exact case-insensitive match (only `X` and
/// `x` fold to `x`).
const FOLD4: u32 = 0x2020_2020;

const fn verb(v: &[u8; 4]) -> u32 {
    u32::from_le_bytes(*v)
}

const MAIL: u32 = verb(b"mail");
const RCPT: u32 = verb(b"rcpt");
const DATA: u32 = verb(b"data");
const BDAT: u32 = verb(b"bdat");
const EHLO: u32 = verb(b"ehlo");
const HELO: u32 = verb(b"helo");
const RSET: u32 = verb(b"rset");
const NOOP: u32 = verb(b"noop");
const QUIT: u32 = verb(b"quit");
const VRFY: u32 = verb(b"vrfy");
const EXPN: u32 = verb(b"expn");
const HELP: u32 = verb(b"help");
const AUTH: u32 = verb(b"auth");

/// A field of the line as `str`. The line was checked (ASCII, or valid
/// UTF-8) and fields are cut at ASCII bytes, so this only fails if a
/// caller cuts inside a character; it never does.
fn text(b: &[u8]) -> Result<&str, CommandError> {
    core::str::from_utf8(b).map_err(|_| CommandError::NotUtf8)
}

/// A command that takes no arguments (spaces after it are tolerated).
fn no_args<'a>(rest: &[u8], c: Command<'a>) -> Result<Command<'a>, CommandError> {
    if text(rest)?.trim().is_empty() {
        Ok(c)
    } else {
        Err(CommandError::Syntax)
    }
}

/// The non-empty words between single spaces.
fn words(s: &[u8]) -> impl Iterator<Item = &[u8]> {
    s.split(|b| *b == b' ').filter(|w| !w.is_empty())
}

/// One to 19 ASCII digits that fit a `u64`.
fn number(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    s.iter().try_fold(0u64, |n, &b| {
        b.is_ascii_digit()
            .then(|| n.checked_mul(10)?.checked_add(u64::from(b - b'0')))?
    })
}

fn strip_prefix_ci<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| s.get(prefix.len()..).unwrap_or_default())
}

fn trim_spaces(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|b| **b == b' ').count();
    s.get(n..).unwrap_or_default()
}

/// Parses `<path> params` (leading spaces allowed, RFC 5321 §4.1.2 notes
/// the common `FROM: <a@b>`); returns the mailbox and the parameter text.
fn parse_path(arg: &[u8], reverse: bool) -> Result<(&[u8], &[u8]), CommandError> {
    let arg = trim_spaces(arg);
    if arg.first() != Some(&b'<') {
        // Lenient: a bare address without brackets and without params.
        let (addr, params) = match memchr::memchr(b' ', arg) {
            Some(k) => (
                arg.get(..k).unwrap_or_default(),
                arg.get(k + 1..).unwrap_or_default(),
            ),
            None => (arg, &[][..]),
        };
        check_mailbox(addr, reverse)?;
        return Ok((addr, params));
    }
    // Find the closing '>' outside a quoted local part.
    let mut i = 1;
    let mut quoted = false;
    let end = loop {
        let b = *arg.get(i).ok_or(CommandError::BadAddress)?;
        match b {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'>' if !quoted => break i,
            _ => {}
        }
        i += 1;
    };
    let inner = arg.get(1..end).unwrap_or_default();
    let after = arg.get(end + 1..).unwrap_or_default();
    if !after.is_empty() && after.first() != Some(&b' ') {
        return Err(CommandError::Syntax);
    }
    // A source route (`@a,@b:user@d`) is ignored (RFC 5321 §4.1.1.3, C).
    let mailbox = if inner.first() == Some(&b'@') {
        let k = memchr::memchr(b':', inner).ok_or(CommandError::BadAddress)?;
        inner.get(k + 1..).unwrap_or_default()
    } else {
        inner
    };
    if !(reverse && mailbox.is_empty()) {
        check_mailbox(mailbox, reverse)?;
    }
    Ok((mailbox, trim_spaces(after)))
}

/// Bytes that may not appear in an unquoted local part: controls, space,
/// DEL and the specials `<>()[],;:\"`. Bytes above 0x7F are allowed
/// (SMTPUTF8; the line was checked as UTF-8).
const LOCAL_BAD: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b <= 0x20 {
        t[b] = true;
        b += 1;
    }
    t[0x7f] = true;
    let specials = b"<>()[],;:\\\"";
    let mut i = 0;
    while i < specials.len() {
        t[specials[i] as usize] = true;
        i += 1;
    }
    t
};

/// Bytes allowed in a domain name: letters, digits, `-`, `.`, and bytes
/// above 0x7F (an SMTPUTF8 U-label).
const DOMAIN_OK: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || c == b'-' || c == b'.' || c >= 0x80;
        b += 1;
    }
    t
};

/// Checks `local@domain` (or `Postmaster` in a forward path) loosely:
/// no controls or spaces outside quotes, a domain of letters, digits,
/// `-`, `.` (or non-ASCII for SMTPUTF8), or an address literal.
fn check_mailbox(m: &[u8], reverse: bool) -> Result<(), CommandError> {
    if m.len() > 320 {
        return Err(CommandError::BadAddress);
    }
    if !reverse && m.eq_ignore_ascii_case(b"postmaster") {
        return Ok(());
    }
    let at = memchr::memrchr(b'@', m).ok_or(CommandError::BadAddress)?;
    let local = m.get(..at).unwrap_or_default();
    let domain = m.get(at + 1..).unwrap_or_default();
    if local.is_empty() || domain.is_empty() {
        return Err(CommandError::BadAddress);
    }
    if local.first() == Some(&b'"') {
        if local.len() < 2 || local.last() != Some(&b'"') {
            return Err(CommandError::BadAddress);
        }
    } else if local.iter().any(|b| LOCAL_BAD[usize::from(*b)]) {
        return Err(CommandError::BadAddress);
    }
    if domain.first() == Some(&b'[') {
        if domain.last() != Some(&b']') {
            return Err(CommandError::BadAddress);
        }
    } else if !domain.iter().all(|b| DOMAIN_OK[usize::from(*b)]) {
        return Err(CommandError::BadAddress);
    }
    Ok(())
}

fn parse_mail_params(s: &[u8]) -> Result<MailParams<'_>, CommandError> {
    let mut p = MailParams::default();
    for param in words(s) {
        let (key, value) = match memchr::memchr(b'=', param) {
            Some(k) => (
                param.get(..k).unwrap_or_default(),
                Some(param.get(k + 1..).unwrap_or_default()),
            ),
            None => (param, None),
        };
        if key.eq_ignore_ascii_case(b"SIZE") {
            p.size = Some(value.and_then(number).ok_or(CommandError::Syntax)?);
        } else if key.eq_ignore_ascii_case(b"BODY") {
            let v = value.ok_or(CommandError::Syntax)?;
            p.body = Some(if v.eq_ignore_ascii_case(b"7BIT") {
                BodyType::SevenBit
            } else if v.eq_ignore_ascii_case(b"8BITMIME") {
                BodyType::EightBitMime
            } else if v.eq_ignore_ascii_case(b"BINARYMIME") {
                BodyType::BinaryMime
            } else {
                return Err(CommandError::Syntax);
            });
        } else if key.eq_ignore_ascii_case(b"SMTPUTF8") && value.is_none() {
            p.smtputf8 = true;
        } else if key.eq_ignore_ascii_case(b"AUTH") && value.is_some() {
            p.auth = value.map(text).transpose()?;
        } else if p.unknown.is_none() {
            p.unknown = Some(text(param)?);
        }
    }
    Ok(p)
}

#[cfg(test)]
#[allow(dead_code)]
#[path = "command_reference.rs"]
mod reference;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(
            parse_command(b"EHLO bar.com\r\n"),
            Ok(Command::Ehlo { domain: "bar.com" })
        );
        assert_eq!(
            parse_command(b"mail from: <Smith@bar.com> SIZE=100 BODY=8BITMIME\r\n"),
            Ok(Command::Mail {
                from: "Smith@bar.com",
                params: MailParams {
                    size: Some(100),
                    body: Some(BodyType::EightBitMime),
                    ..MailParams::default()
                }
            })
        );
        assert_eq!(
            parse_command(b"MAIL FROM:<>\r\n"),
            Ok(Command::Mail {
                from: "",
                params: MailParams::default()
            })
        );
        assert_eq!(
            parse_command(b"RCPT TO:<@hosta.int,@jkl.org:userc@d.bar.org>\r\n"),
            Ok(Command::Rcpt {
                to: "userc@d.bar.org",
                param: None
            })
        );
        assert_eq!(
            parse_command(b"RCPT TO:<\"a b>\"@x.org> NOTIFY=NEVER"),
            Ok(Command::Rcpt {
                to: "\"a b>\"@x.org",
                param: Some("NOTIFY=NEVER")
            })
        );
        assert_eq!(
            parse_command(b"RCPT TO:<Postmaster>\r\n"),
            Ok(Command::Rcpt {
                to: "Postmaster",
                param: None
            })
        );
        assert_eq!(
            parse_command(b"BDAT 100 LAST\r\n"),
            Ok(Command::Bdat {
                size: 100,
                last: true
            })
        );
        assert_eq!(parse_command(b"bdat x\r\n"), Err(CommandError::Syntax));
        assert_eq!(parse_command(b"FOO\r\n"), Err(CommandError::Unrecognized));
        assert_eq!(
            parse_command(b"RCPT TO:<a b@c>\r\n"),
            Err(CommandError::BadAddress)
        );
        assert_eq!(
            parse_command(b"MAIL FROM:<a@b\r\n"),
            Err(CommandError::BadAddress)
        );
        assert_eq!(parse_command(b"DATA x\r\n"), Err(CommandError::Syntax));
        assert_eq!(
            parse_command(b"MAIL FROM:<a,b@c.d>\r\n"),
            Err(CommandError::BadAddress)
        );
        assert_eq!(parse_command(b"\xff\r\n"), Err(CommandError::NotUtf8));
        assert_eq!(parse_command(b"starttls\r\n"), Ok(Command::StartTls));
        assert_eq!(
            parse_command(b"AUTH PLAIN AGZvbwBiYXI=\r\n"),
            Ok(Command::Auth {
                mechanism: "PLAIN",
                initial: Some("AGZvbwBiYXI=")
            })
        );
    }

    /// Pieces that steer the parser into every branch, plus whitespace
    /// and non-ASCII bytes (valid and not).
    const PIECES: &[&str] = &[
        "MAIL",
        "mail",
        "RCPT",
        "rcpt",
        "DATA",
        "BDAT",
        "EHLO",
        "HeLo",
        "RSET",
        "NOOP",
        "QUIT",
        "VRFY",
        "EXPN",
        "HELP",
        "STARTTLS",
        "starttls",
        "AUTH",
        "FOO",
        "MAILX",
        " ",
        " ",
        " ",
        "FROM:",
        "from:",
        "TO:",
        "<",
        ">",
        "@",
        "\"",
        "\\",
        ",",
        ":",
        "[",
        "]",
        "=",
        "SIZE=",
        "size",
        "BODY=",
        "7bit",
        "8BITMIME",
        "BINARYMIME",
        "SMTPUTF8",
        "AUTH=",
        "LAST",
        "PLAIN",
        "Postmaster",
        "a",
        "b.c",
        "x-y",
        "0",
        "12",
        "99999999999999999999",
        "\t",
        "\x0b",
        "\u{a0}",
        "\u{2003}",
        "é",
        "ü.de",
        "\x7f",
        "\x01",
        "\r",
        "\n",
        "\r\n",
    ];

    /// A command-shaped line: verb, path, parameters, each part mangled
    /// now and then.
    const SHAPED: &str = "(MAIL|mail|RCPT|Rcpt|DATA|BDAT|EHLO|HELO|VRFY|EXPN|HELP|AUTH|NOOP|QUIT|RSET|STARTTLS|XXXX)( {0,2})((FROM|from|TO|to):)?( {0,2})<?([a-z.,:\"@<> ]{0,6})>?( {1,2}[A-Za-z0-9=]{0,12}){0,3}( |\t|\u{a0}|\x0b)?(\r\n|\n|\r)?";
    /// A MAIL or RCPT line with every kind of path and parameter.
    const PATH: &str = "(MAIL FROM:|RCPT TO:|mail from: |rcpt to:  )<?(@[a-z]{1,2}(,@[a-z])?:)?(\"[a-z <>@\\\\]{0,4}\"|[a-z.,;:()\\[\\]<>\\\\\"\x01\x7f\u{e9} ]{0,5})@?([a-z0-9.\\-_\u{e9}]{0,5}|\\[[0-9.]{0,7}\\]?)>?( {1,2}(SIZE|BODY|SMTPUTF8|AUTH|NOTIFY|size)(=[0-9A-Za-z<>@.]{0,21})?){0,3}(\r\n)?";

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4_000))]

        /// The byte parser answers exactly as the old `str` parser did:
        /// lines made of pieces, and lines shaped like commands.
        #[test]
        fn same_as_the_str_parser(
            picks in proptest::collection::vec(0..PIECES.len(), 0..14),
            shaped in proptest::prop_oneof![SHAPED, PATH],
            raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4),
            at in 0usize..64,
        ) {
            let pieces: alloc::vec::Vec<u8> = picks.iter().flat_map(|i| PIECES[*i].bytes()).collect();
            for mut line in [pieces, shaped.into_bytes()] {
                let at = at.min(line.len());
                if at % 3 == 0 {
                    line.splice(at..at, raw.iter().copied());
                }
                proptest::prop_assert_eq!(
                    parse_command(&line),
                    reference::parse_command_reference(&line),
                    "{:?}", alloc::string::String::from_utf8_lossy(&line)
                );
            }
        }
    }
}
