//! The str-based parser this crate used before the byte-level one, kept
//! as the oracle of a differential test: on every line both must agree.

use super::*;

/// Parses one command line (with or without its line ending).
pub fn parse_command_reference(line: &[u8]) -> Result<Command<'_>, CommandError> {
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
