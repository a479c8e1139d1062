//! Directory entries in the two listing forms: the `ls -l` lines most
//! servers send for LIST (RFC 959 leaves the format open), and RFC 3659's
//! machine-readable MLSx facts (`type=file;size=12;modify=…; name`).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use twill_core::time::Civil;

use crate::error::ListError;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// What kind of file an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// Anything else (device, socket, FIFO).
    Other,
}

/// One directory entry, as the application read it from its file system.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The name (one path segment; for MLST the path).
    pub name: String,
    /// The kind.
    pub kind: Kind,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, seconds since the Unix epoch (UTC).
    pub modified: i64,
    /// Unix permission bits (`0o755`); shown by LIST only.
    pub mode: u32,
    /// Whether the client may write here (MLSx `perm` fact).
    pub writable: bool,
}

/// `YYYYMMDDHHMMSS` (RFC 3659 §2.3 time-val), for MDTM and `modify=`.
pub fn time_val(secs: i64) -> String {
    let c = Civil::from_unix(secs);
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// Parses a time-val (fractions of a second allowed and ignored) to Unix
/// seconds.
///
/// # Errors
/// Not 14 digits (plus an optional `.fraction`) or an impossible date.
pub fn parse_time_val(s: &str) -> Result<i64, ListError> {
    let main = s.split('.').next().unwrap_or("");
    if main.len() != 14 || !main.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ListError::BadTime);
    }
    let n = |r: core::ops::Range<usize>| main[r].parse::<i64>().map_err(|_| ListError::BadTime);
    let (y, mo, d, h, mi, se) = (
        n(0..4)?,
        n(4..6)?,
        n(6..8)?,
        n(8..10)?,
        n(10..12)?,
        n(12..14)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return Err(ListError::BadTime);
    }
    // Days from civil (H. Hinnant), inverse of Civil::from_unix.
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(days * 86_400 + h * 3600 + mi * 60 + se)
}

/// One `ls -l` style line, CRLF-terminated: recent files (within six
/// months of `now`) show the time, older ones the year.
pub fn list_line(e: &Entry, now: i64, out: &mut String) {
    let t = match e.kind {
        Kind::Dir => 'd',
        Kind::File => '-',
        Kind::Other => '?',
    };
    let mut perm = String::with_capacity(10);
    perm.push(t);
    for shift in [6, 3, 0] {
        let bits = e.mode >> shift;
        perm.push(if bits & 4 != 0 { 'r' } else { '-' });
        perm.push(if bits & 2 != 0 { 'w' } else { '-' });
        perm.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    let c = Civil::from_unix(e.modified);
    let month = MONTHS[usize::from(c.month.clamp(1, 12)) - 1];
    let recent = (now - e.modified).abs() < 180 * 86_400;
    let when = if recent {
        format!("{month} {:>2} {:02}:{:02}", c.day, c.hour, c.minute)
    } else {
        format!("{month} {:>2}  {:>4}", c.day, c.year)
    };
    out.push_str(&format!(
        "{perm} 1 ftp ftp {:>12} {when} {}\r\n",
        e.size, e.name
    ));
}

/// The MLSx facts of an entry (`type=…;size=…;modify=…;perm=…;`) without
/// the space and name. `cdir`/`pdir` types are the caller's to add.
pub fn facts(e: &Entry) -> String {
    let (ty, perm) = match (e.kind, e.writable) {
        (Kind::Dir, true) => ("dir", "elcmfp"),
        (Kind::Dir, false) => ("dir", "el"),
        (Kind::File, true) => ("file", "radfw"),
        (Kind::File, false) => ("file", "r"),
        (Kind::Other, _) => ("OS.unix=other", ""),
    };
    format!(
        "type={ty};size={};modify={};perm={perm};",
        e.size,
        time_val(e.modified)
    )
}

/// An MLSD line: facts, a space, the name, CRLF.
pub fn mlsd_line(e: &Entry, out: &mut String) {
    out.push_str(&facts(e));
    out.push(' ');
    out.push_str(&e.name);
    out.push_str("\r\n");
}

/// A parsed MLSx entry line: facts (names lower-cased) and the name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facts {
    /// `(fact, value)` in the order sent, fact names lower-case.
    pub facts: Vec<(String, String)>,
    /// The path name after the single space.
    pub name: String,
}

impl Facts {
    /// A fact's value by (lower-case) name.
    pub fn get(&self, fact: &str) -> Option<&str> {
        self.facts
            .iter()
            .find(|(f, _)| f == fact)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses an MLSx entry line (RFC 3659 §7.2: `*( fact ";" ) SP pathname`),
/// without its line end (and without the space that indents it in an
/// MLST reply).
///
/// # Errors
/// No space before the name, a fact without `=`, or an empty name.
pub fn parse_mlsx(line: &str) -> Result<Facts, ListError> {
    let sp = line.find(' ').ok_or(ListError::BadFacts)?;
    let (facts, name) = (&line[..sp], &line[sp + 1..]);
    if name.is_empty() {
        return Err(ListError::BadFacts);
    }
    let mut out = Vec::new();
    for f in facts.split(';').filter(|f| !f.is_empty()) {
        let (k, v) = f.split_once('=').ok_or(ListError::BadFacts)?;
        if k.is_empty() {
            return Err(ListError::BadFacts);
        }
        out.push((k.to_ascii_lowercase(), String::from(v)));
    }
    Ok(Facts {
        facts: out,
        name: String::from(name),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: Kind) -> Entry {
        Entry {
            name: "a b.txt".into(),
            kind,
            size: 1234,
            modified: 1_700_000_000,
            mode: 0o644,
            writable: true,
        }
    }

    #[test]
    fn time_vals_round_trip() {
        assert_eq!(time_val(0), "19700101000000");
        assert_eq!(time_val(1_700_000_000), "20231114221320");
        for t in [0, 1, 951_782_400, 1_700_000_000, 4_102_444_800] {
            assert_eq!(parse_time_val(&time_val(t)), Ok(t));
        }
        assert_eq!(parse_time_val("19980308093455.123"), Ok(889_349_695));
        assert!(parse_time_val("1998030809345").is_err());
        assert!(parse_time_val("19981308093455").is_err());
    }

    #[test]
    fn lines() {
        let mut s = String::new();
        list_line(&entry(Kind::File), 1_700_000_000, &mut s);
        assert_eq!(
            s,
            "-rw-r--r-- 1 ftp ftp         1234 Nov 14 22:13 a b.txt\r\n"
        );
        s.clear();
        list_line(&entry(Kind::Dir), 1_800_000_000, &mut s);
        assert!(s.starts_with("drw-r--r-- 1 ftp ftp"), "{s}");
        assert!(s.contains("Nov 14  2023 a b.txt"), "{s}");
        s.clear();
        mlsd_line(&entry(Kind::File), &mut s);
        assert_eq!(
            s,
            "type=file;size=1234;modify=20231114221320;perm=radfw; a b.txt\r\n"
        );
        let f = parse_mlsx(s.trim_end()).unwrap();
        assert_eq!(f.name, "a b.txt");
        assert_eq!(f.get("size"), Some("1234"));
        assert!(parse_mlsx("type=file;size=1").is_err());
        assert!(parse_mlsx("type; x").is_err());
    }
}
