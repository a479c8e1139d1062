//! Turning a request target into a file under the served root, without
//! ever leaving it.
//!
//! Two steps: [`parse_target`] is pure (percent-decoding, `.`/`..`, NUL,
//! separators hidden in escapes) and refuses anything suspicious rather
//! than normalising it; [`resolve`] touches the file system (call it off
//! the event thread): it canonicalizes the joined path — following
//! symlinks — and refuses results outside the canonical root.
//!
//! The check and the later `open` are two steps: someone who can rename
//! directories inside the root while it is served could swap a checked
//! path for a symlink in between. Serving a tree that others may write to
//! would need `openat2(RESOLVE_BENEATH)`; this server trusts the tree's
//! writers and distrusts only its clients.

use std::io;
use std::path::{Path, PathBuf};

/// Why a request target cannot name a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetError {
    /// Not origin-form (`/…`) nor absolute-form (`http://host/…`).
    NotAPath,
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// The decoded path is not UTF-8.
    NotUtf8,
    /// A `..` segment, a NUL, a backslash or an escaped `/`: an attempt to
    /// leave the root (or to confuse it).
    Forbidden,
}

/// A decoded, checked request path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The path's segments, decoded; none is empty, `.` or `..`.
    pub segments: Vec<String>,
    /// Whether the path ended with `/` (directories are served only so).
    pub trailing_slash: bool,
    /// The path as the client sent it (still encoded), without the query:
    /// what a redirect to `path + "/"` uses.
    pub raw_path: String,
    /// The query, without the `?` (empty when none).
    pub query: String,
}

/// Decodes `%XX` escapes.
pub fn percent_decode(s: &str) -> Result<Vec<u8>, TargetError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hi = b.get(i + 1).and_then(|c| (*c as char).to_digit(16));
            let lo = b.get(i + 2).and_then(|c| (*c as char).to_digit(16));
            match (hi, lo) {
                (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                _ => return Err(TargetError::BadEscape),
            }
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// Encodes a file name for use as one path segment of a URL.
pub fn percent_encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &c in s.as_bytes() {
        if c.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&c) {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

/// Parses a request target into checked segments.
pub fn parse_target(target: &str) -> Result<Target, TargetError> {
    // Absolute-form (proxies' form, which servers must accept): drop the
    // scheme and authority.
    let rest = if let Some(after) = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        match after.find('/') {
            Some(i) => &after[i..],
            None => "/",
        }
    } else {
        target
    };
    if !rest.starts_with('/') {
        return Err(TargetError::NotAPath);
    }
    let rest = rest.split('#').next().unwrap_or("");
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, q),
        None => (rest, ""),
    };
    let mut segments = Vec::new();
    for raw in path.split('/') {
        let bytes = percent_decode(raw)?;
        let seg = String::from_utf8(bytes).map_err(|_| TargetError::NotUtf8)?;
        if seg.contains(['/', '\\', '\0']) {
            return Err(TargetError::Forbidden);
        }
        match seg.as_str() {
            "" | "." => {}
            ".." => return Err(TargetError::Forbidden),
            _ => segments.push(seg),
        }
    }
    Ok(Target {
        segments,
        trailing_slash: path.ends_with('/'),
        raw_path: path.to_string(),
        query: query.to_string(),
    })
}

/// Why [`resolve`] refused.
#[derive(Debug)]
pub enum ResolveError {
    /// Nothing there (or a dangling symlink).
    NotFound,
    /// The path leads out of the root (a symlink), or the file system
    /// refused access.
    Forbidden,
    /// Another I/O error.
    Io(io::Error),
}

/// Joins `segments` to the canonical `root`, canonicalizes (resolving
/// symlinks) and checks the result is still under `root`. Blocking.
pub fn resolve(root: &Path, segments: &[String]) -> Result<PathBuf, ResolveError> {
    let mut p = root.to_path_buf();
    for s in segments {
        p.push(s);
    }
    let canon = std::fs::canonicalize(&p).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => ResolveError::NotFound,
        io::ErrorKind::PermissionDenied => ResolveError::Forbidden,
        _ => ResolveError::Io(e),
    })?;
    if canon.starts_with(root) {
        Ok(canon)
    } else {
        Err(ResolveError::Forbidden)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(t: &str) -> Vec<String> {
        parse_target(t).unwrap().segments
    }

    #[test]
    fn decodes_and_splits() {
        assert_eq!(segs("/"), Vec::<String>::new());
        assert_eq!(segs("/a/b%20c/d.txt"), ["a", "b c", "d.txt"]);
        assert_eq!(segs("//a/./b//"), ["a", "b"]);
        assert_eq!(segs("/caf%C3%A9"), ["café"]);
        let t = parse_target("/dir/?x=1#frag").unwrap();
        assert!(t.trailing_slash);
        assert_eq!(t.query, "x=1");
        assert_eq!(t.raw_path, "/dir/");
        assert!(!parse_target("/dir?x=/").unwrap().trailing_slash);
        assert_eq!(segs("http://example.com/a/b"), ["a", "b"]);
        assert_eq!(segs("http://example.com"), Vec::<String>::new());
    }

    #[test]
    fn refuses_traversal_and_tricks() {
        for bad in [
            "/..",
            "/../etc/passwd",
            "/a/../../b",
            "/%2e%2e/etc/passwd",
            "/%2E%2E/x",
            "/.%2e/x",
            "/a%2f..%2f..%2fetc",
            "/a%2F..",
            "/a%00.txt",
            "/a%5c..%5cb",
            "/a\\..\\b",
        ] {
            assert_eq!(
                parse_target(bad),
                Err(TargetError::Forbidden),
                "{bad} not refused"
            );
        }
        assert_eq!(parse_target("/a%zz"), Err(TargetError::BadEscape));
        assert_eq!(parse_target("/a%2"), Err(TargetError::BadEscape));
        assert_eq!(parse_target("/%ff%fe"), Err(TargetError::NotUtf8));
        assert_eq!(parse_target("etc/passwd"), Err(TargetError::NotAPath));
        assert_eq!(parse_target("*"), Err(TargetError::NotAPath));
        assert_eq!(parse_target(""), Err(TargetError::NotAPath));
    }

    #[test]
    fn encodes_segments() {
        assert_eq!(
            percent_encode_segment("a b#?%/é"),
            "a%20b%23%3F%25%2F%C3%A9"
        );
        let enc = percent_encode_segment("we!rd 'name'.txt");
        let back = String::from_utf8(percent_decode(&enc).unwrap()).unwrap();
        assert_eq!(back, "we!rd 'name'.txt");
    }

    #[test]
    fn resolves_inside_root_only() {
        let dir = std::env::temp_dir().join(format!("twill-web-path-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/f.txt"), b"x").unwrap();
        std::fs::write(dir.join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(dir.join("secret"), root.join("out")).unwrap();
        std::os::unix::fs::symlink(&dir, root.join("outdir")).unwrap();
        std::os::unix::fs::symlink(root.join("sub/f.txt"), root.join("in")).unwrap();
        std::os::unix::fs::symlink(dir.join("nothing"), root.join("dangling")).unwrap();
        let root = std::fs::canonicalize(&root).unwrap();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            resolve(&root, &s(&["sub", "f.txt"])).unwrap(),
            root.join("sub/f.txt")
        );
        assert_eq!(resolve(&root, &s(&["in"])).unwrap(), root.join("sub/f.txt"));
        assert_eq!(resolve(&root, &[]).unwrap(), root);
        assert!(matches!(
            resolve(&root, &s(&["out"])),
            Err(ResolveError::Forbidden)
        ));
        assert!(matches!(
            resolve(&root, &s(&["outdir", "secret"])),
            Err(ResolveError::Forbidden)
        ));
        assert!(matches!(
            resolve(&root, &s(&["dangling"])),
            Err(ResolveError::NotFound)
        ));
        assert!(matches!(
            resolve(&root, &s(&["nope"])),
            Err(ResolveError::NotFound)
        ));
        assert!(matches!(
            resolve(&root, &s(&["sub", "f.txt", "x"])),
            Err(ResolveError::NotFound)
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
