//! POP3 commands (RFC 1939 §3, RFC 2449, RFC 2595, RFC 5034) parsed from
//! one line without copying, response status lines parsed for the client,
//! and TOP's cut of a message.

/// One parsed command line.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command<'a> {
    /// `USER name`.
    User(&'a str),
    /// `PASS string` (the rest of the line: passwords may hold spaces).
    Pass(&'a [u8]),
    /// `APOP name digest`.
    Apop {
        /// The mailbox name.
        name: &'a str,
        /// 32 lowercase hex digits.
        digest: &'a str,
    },
    /// `AUTH [mechanism [initial-response]]` (RFC 5034).
    Auth {
        /// The mechanism; none lists them (RFC 5034 §4).
        mechanism: Option<&'a str>,
        /// The initial response (base64, `=` for empty).
        initial: Option<&'a str>,
    },
    /// `STAT`.
    Stat,
    /// `LIST [msg]`.
    List(Option<u32>),
    /// `RETR msg`.
    Retr(u32),
    /// `DELE msg`.
    Dele(u32),
    /// `NOOP`.
    Noop,
    /// `RSET`.
    Rset,
    /// `QUIT`.
    Quit,
    /// `TOP msg n`.
    Top {
        /// Message number (1-based).
        msg: u32,
        /// Body lines after the header.
        lines: u32,
    },
    /// `UIDL [msg]`.
    Uidl(Option<u32>),
    /// `CAPA` (RFC 2449).
    Capa,
    /// `STLS` (RFC 2595).
    Stls,
}

/// Why a command line was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// Unknown keyword.
    #[error("unknown command")]
    Unknown,
    /// Bad or missing arguments.
    #[error("syntax error")]
    Syntax,
}

fn number(s: &str) -> Result<u32, CommandError> {
    if s.is_empty() || s.len() > 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CommandError::Syntax);
    }
    s.parse().map_err(|_| CommandError::Syntax)
}

/// Parses one command line (with or without CRLF).
pub fn parse_command(line: &[u8]) -> Result<Command<'_>, CommandError> {
    let line = twill_core::line::trim_line_end(line);
    let (kw, rest) = match memchr::memchr(b' ', line) {
        Some(k) => (&line[..k], &line[k + 1..]),
        None => (line, &b""[..]),
    };
    let eq = |v: &str| kw.eq_ignore_ascii_case(v.as_bytes());
    if eq("PASS") {
        return Ok(Command::Pass(rest));
    }
    let rest = core::str::from_utf8(rest).map_err(|_| CommandError::Syntax)?;
    let mut args = rest.split(' ').filter(|a| !a.is_empty());
    let mut next = || args.next();
    let cmd = if eq("USER") {
        Command::User(next().ok_or(CommandError::Syntax)?)
    } else if eq("APOP") {
        let name = next().ok_or(CommandError::Syntax)?;
        let digest = next().ok_or(CommandError::Syntax)?;
        Command::Apop { name, digest }
    } else if eq("AUTH") {
        let mechanism = next();
        let initial = next();
        Command::Auth { mechanism, initial }
    } else if eq("STAT") {
        Command::Stat
    } else if eq("LIST") {
        Command::List(next().map(number).transpose()?)
    } else if eq("RETR") {
        Command::Retr(number(next().ok_or(CommandError::Syntax)?)?)
    } else if eq("DELE") {
        Command::Dele(number(next().ok_or(CommandError::Syntax)?)?)
    } else if eq("NOOP") {
        Command::Noop
    } else if eq("RSET") {
        Command::Rset
    } else if eq("QUIT") {
        Command::Quit
    } else if eq("TOP") {
        let msg = number(next().ok_or(CommandError::Syntax)?)?;
        let lines = number(next().ok_or(CommandError::Syntax)?)?;
        Command::Top { msg, lines }
    } else if eq("UIDL") {
        Command::Uidl(next().map(number).transpose()?)
    } else if eq("CAPA") {
        Command::Capa
    } else if eq("STLS") {
        Command::Stls
    } else {
        return Err(CommandError::Unknown);
    };
    if next().is_some() && !matches!(cmd, Command::Auth { .. }) {
        return Err(CommandError::Syntax);
    }
    Ok(cmd)
}

/// The header and the first `lines` lines of the body of `msg` (RFC 1939
/// §7 TOP): everything up to and including the empty line, then `lines`
/// lines. A message without an empty line is all header.
pub fn top(msg: &[u8], lines: u32) -> &[u8] {
    let body_start = match memchr::memmem::find(msg, b"\r\n\r\n") {
        Some(k) => k + 4,
        None if msg.starts_with(b"\r\n") => 2,
        None => return msg,
    };
    let mut end = body_start;
    for _ in 0..lines {
        match memchr::memchr(b'\n', &msg[end..]) {
            Some(k) => end += k + 1,
            None => return msg,
        }
    }
    &msg[..end]
}

/// A status line: `+OK text`, `-ERR text`, or `+ challenge` (SASL).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status<'a> {
    /// `+OK`.
    Ok(&'a str),
    /// `-ERR`.
    Err(&'a str),
    /// `+ ` continuation (AUTH).
    Continue(&'a str),
}

/// Parses a status line.
pub fn parse_status(line: &[u8]) -> Option<Status<'_>> {
    let line = twill_core::line::trim_line_end(line);
    // Compare bytes, not `str` slices: a multi-byte character may sit
    // where the status keyword would end.
    let text = |n: usize| -> Option<&str> {
        let t = core::str::from_utf8(line.get(n..)?).ok()?;
        Some(t.strip_prefix(' ').unwrap_or(t))
    };
    if line.len() >= 3 && line[..3].eq_ignore_ascii_case(b"+OK") {
        Some(Status::Ok(text(3)?))
    } else if line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"-ERR") {
        Some(Status::Err(text(4)?))
    } else if line.first() == Some(&b'+') {
        Some(Status::Continue(text(1)?))
    } else {
        None
    }
}

/// The APOP digest (RFC 1939 §7): lowercase hex MD5 of the greeting's
/// timestamp followed by the shared secret.
pub fn apop_digest(timestamp: &str, secret: &[u8]) -> alloc::string::String {
    use md5::{Digest, Md5};
    let mut h = Md5::new();
    h.update(timestamp.as_bytes());
    h.update(secret);
    let d = h.finalize();
    let mut s = alloc::string::String::with_capacity(32);
    for b in d.iter() {
        let hex = b"0123456789abcdef";
        s.push(hex[usize::from(b >> 4)] as char);
        s.push(hex[usize::from(b & 15)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1939_apop_example() {
        assert_eq!(
            apop_digest("<1896.697170952@dbc.mtview.ca.us>", b"tanstaaf"),
            "c4c9334bac560ecc979e58001b3e22fb"
        );
    }

    #[test]
    fn commands() {
        assert_eq!(parse_command(b"USER mrose\r\n"), Ok(Command::User("mrose")));
        assert_eq!(
            parse_command(b"pass a b c\r\n"),
            Ok(Command::Pass(b"a b c"))
        );
        assert_eq!(parse_command(b"LIST\r\n"), Ok(Command::List(None)));
        assert_eq!(parse_command(b"LIST 2\r\n"), Ok(Command::List(Some(2))));
        assert_eq!(
            parse_command(b"TOP 1 10\r\n"),
            Ok(Command::Top { msg: 1, lines: 10 })
        );
        assert_eq!(parse_command(b"RETR x\r\n"), Err(CommandError::Syntax));
        assert_eq!(parse_command(b"RETR 1 2\r\n"), Err(CommandError::Syntax));
        assert_eq!(parse_command(b"XYZZY\r\n"), Err(CommandError::Unknown));
        assert_eq!(
            parse_command(b"RETR 99999999999\r\n"),
            Err(CommandError::Syntax)
        );
    }

    #[test]
    fn top_cuts() {
        let m = b"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\nl3\r\n";
        assert_eq!(top(m, 0), b"A: 1\r\nB: 2\r\n\r\n");
        assert_eq!(top(m, 2), b"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\n");
        assert_eq!(top(m, 9), m);
        assert_eq!(top(b"no body", 3), b"no body");
    }

    #[test]
    fn status() {
        assert_eq!(parse_status(b"+OK 2 320\r\n"), Some(Status::Ok("2 320")));
        assert_eq!(parse_status(b"-ERR no\r\n"), Some(Status::Err("no")));
        assert_eq!(parse_status(b"+OK\r\n"), Some(Status::Ok("")));
        assert_eq!(parse_status(b"+ \r\n"), Some(Status::Continue("")));
        assert_eq!(parse_status(b"hello\r\n"), None);
        // Found by the fuzzer: a multi-byte character across byte 3.
        assert_eq!(parse_status(".\u{5ab}UIT\r\n".as_bytes()), None);
        assert_eq!(
            parse_status("+O\u{5ab}\r\n".as_bytes()),
            Some(Status::Continue("O\u{5ab}"))
        );
    }
}
