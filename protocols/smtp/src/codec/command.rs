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
pub fn parse_command(line: &[u8]) -> Result<Command<'_>, CommandError> {
    let line = trim_line_end(line);
    let line = core::str::from_utf8(line).map_err(|_| CommandError::NotUtf8)?;
    let (verb, rest) = match line.find(' ') {
        Some(k) => (&line[..k], &line[k + 1..]),
        None => (line, ""),
    };
    let eq = |v: &str| verb.eq_ignore_ascii_case(v);
    let no_args = |c: Command<'static>| {
        if rest.trim().is_empty() {
            Ok(c)
        } else {
            Err(CommandError::Syntax)
        }
    };
    if verb.len() != 4 && !eq("STARTTLS") {
        return Err(CommandError::Unrecognized);
    }
    if eq("MAIL") {
        let arg = strip_prefix_ci(rest, "FROM:").ok_or(CommandError::Syntax)?;
        let (from, params) = parse_path(arg, true)?;
        Ok(Command::Mail {
            from,
            params: parse_mail_params(params)?,
        })
    } else if eq("RCPT") {
        let arg = strip_prefix_ci(rest, "TO:").ok_or(CommandError::Syntax)?;
        let (to, params) = parse_path(arg, false)?;
        let param = params.split(' ').find(|p| !p.is_empty());
        Ok(Command::Rcpt { to, param })
    } else if eq("DATA") {
        no_args(Command::Data)
    } else if eq("BDAT") {
        let mut it = rest.split(' ').filter(|s| !s.is_empty());
        let size = it.next().ok_or(CommandError::Syntax)?;
        if size.is_empty() || size.len() > 19 || !size.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CommandError::Syntax);
        }
        let size = size.parse().map_err(|_| CommandError::Syntax)?;
        let last = match it.next() {
            None => false,
            Some(l) if l.eq_ignore_ascii_case("LAST") => true,
            Some(_) => return Err(CommandError::Syntax),
        };
        if it.next().is_some() {
            return Err(CommandError::Syntax);
        }
        Ok(Command::Bdat { size, last })
    } else if eq("EHLO") || eq("HELO") {
        let domain = rest.trim();
        if domain.is_empty() || domain.contains(' ') || domain.bytes().any(|b| b < 0x20) {
            return Err(CommandError::Syntax);
        }
        Ok(if eq("EHLO") {
            Command::Ehlo { domain }
        } else {
            Command::Helo { domain }
        })
    } else if eq("RSET") {
        no_args(Command::Rset)
    } else if eq("NOOP") {
        Ok(Command::Noop)
    } else if eq("QUIT") {
        no_args(Command::Quit)
    } else if eq("VRFY") || eq("EXPN") {
        let arg = rest.trim();
        if arg.is_empty() {
            return Err(CommandError::Syntax);
        }
        Ok(if eq("VRFY") {
            Command::Vrfy(arg)
        } else {
            Command::Expn(arg)
        })
    } else if eq("HELP") {
        let t = rest.trim();
        Ok(Command::Help((!t.is_empty()).then_some(t)))
    } else if eq("STARTTLS") {
        no_args(Command::StartTls)
    } else if eq("AUTH") {
        let mut it = rest.split(' ').filter(|s| !s.is_empty());
        let mechanism = it.next().ok_or(CommandError::Syntax)?;
        let initial = it.next();
        if it.next().is_some() {
            return Err(CommandError::Syntax);
        }
        Ok(Command::Auth { mechanism, initial })
    } else {
        Err(CommandError::Unrecognized)
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Parses `<path> params` (leading spaces allowed, RFC 5321 §4.1.2 notes
/// the common `FROM: <a@b>`); returns the mailbox and the parameter text.
fn parse_path(arg: &str, reverse: bool) -> Result<(&str, &str), CommandError> {
    let arg = arg.trim_start_matches(' ');
    let bytes = arg.as_bytes();
    if bytes.first() != Some(&b'<') {
        // Lenient: a bare address without brackets and without params.
        let (addr, params) = match arg.find(' ') {
            Some(k) => (&arg[..k], &arg[k + 1..]),
            None => (arg, ""),
        };
        check_mailbox(addr, reverse)?;
        return Ok((addr, params));
    }
    // Find the closing '>' outside a quoted local part.
    let mut i = 1;
    let mut quoted = false;
    let end = loop {
        let b = *bytes.get(i).ok_or(CommandError::BadAddress)?;
        match b {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'>' if !quoted => break i,
            _ => {}
        }
        i += 1;
    };
    let inner = &arg[1..end];
    let after = &arg[end + 1..];
    if !after.is_empty() && !after.starts_with(' ') {
        return Err(CommandError::Syntax);
    }
    // A source route (`@a,@b:user@d`) is ignored (RFC 5321 §4.1.1.3, C).
    let mailbox = if inner.starts_with('@') {
        let k = inner.find(':').ok_or(CommandError::BadAddress)?;
        &inner[k + 1..]
    } else {
        inner
    };
    if !(reverse && mailbox.is_empty()) {
        check_mailbox(mailbox, reverse)?;
    }
    Ok((mailbox, after.trim_start_matches(' ')))
}

/// Checks `local@domain` (or `Postmaster` in a forward path) loosely:
/// no controls or spaces outside quotes, a domain of letters, digits,
/// `-`, `.` (or non-ASCII for SMTPUTF8), or an address literal.
fn check_mailbox(m: &str, reverse: bool) -> Result<(), CommandError> {
    if m.len() > 320 {
        return Err(CommandError::BadAddress);
    }
    if !reverse && m.eq_ignore_ascii_case("postmaster") {
        return Ok(());
    }
    let at = m.rfind('@').ok_or(CommandError::BadAddress)?;
    let (local, domain) = (&m[..at], &m[at + 1..]);
    if local.is_empty() || domain.is_empty() {
        return Err(CommandError::BadAddress);
    }
    if local.starts_with('"') {
        if local.len() < 2 || !local.ends_with('"') {
            return Err(CommandError::BadAddress);
        }
    } else if local
        .bytes()
        .any(|b| b <= b' ' || b == 0x7f || b"<>()[],;:\\\"".contains(&b))
    {
        return Err(CommandError::BadAddress);
    }
    if domain.starts_with('[') {
        if !domain.ends_with(']') {
            return Err(CommandError::BadAddress);
        }
    } else if domain
        .bytes()
        .any(|b| !(b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b >= 0x80))
    {
        return Err(CommandError::BadAddress);
    }
    Ok(())
}

fn parse_mail_params(s: &str) -> Result<MailParams<'_>, CommandError> {
    let mut p = MailParams::default();
    for param in s.split(' ').filter(|x| !x.is_empty()) {
        let (key, value) = match param.find('=') {
            Some(k) => (&param[..k], Some(&param[k + 1..])),
            None => (param, None),
        };
        if key.eq_ignore_ascii_case("SIZE") {
            let v = value.ok_or(CommandError::Syntax)?;
            if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(CommandError::Syntax);
            }
            p.size = Some(v.parse().map_err(|_| CommandError::Syntax)?);
        } else if key.eq_ignore_ascii_case("BODY") {
            let v = value.ok_or(CommandError::Syntax)?;
            p.body = Some(if v.eq_ignore_ascii_case("7BIT") {
                BodyType::SevenBit
            } else if v.eq_ignore_ascii_case("8BITMIME") {
                BodyType::EightBitMime
            } else if v.eq_ignore_ascii_case("BINARYMIME") {
                BodyType::BinaryMime
            } else {
                return Err(CommandError::Syntax);
            });
        } else if key.eq_ignore_ascii_case("SMTPUTF8") && value.is_none() {
            p.smtputf8 = true;
        } else if key.eq_ignore_ascii_case("AUTH") && value.is_some() {
            p.auth = value;
        } else if p.unknown.is_none() {
            p.unknown = Some(param);
        }
    }
    Ok(p)
}

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
}
