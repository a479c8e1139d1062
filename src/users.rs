//! The users file that `twill mail` and `twill ftp` share, and `twill
//! passwd` writes: one `name:$argon2id$…` line per user (a PHC string, so
//! the parameters and salt travel with the hash), `#` comments and blank
//! lines ignored. No password is ever stored in the clear.
//!
//! Verifying costs tens of milliseconds of CPU on purpose: servers call
//! [`Users::verify`] through `spawn_blocking`, never on the event loop.

use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// Why a users file could not be read or written.
#[derive(Debug)]
pub struct UsersError {
    /// The file.
    pub path: PathBuf,
    /// The 1-based line at fault, when it is one line.
    pub line: Option<usize>,
    /// What is wrong, in one line.
    pub message: String,
}

impl fmt::Display for UsersError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(n) => write!(f, "{}:{n}: {}", self.path.display(), self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

impl std::error::Error for UsersError {}

/// The users of a server: names and their argon2 password hashes.
#[derive(Clone, Debug, Default)]
pub struct Users {
    hashes: HashMap<String, String>,
}

/// Verified against when the name is unknown, so that an unknown user
/// costs as much as a wrong password and the timing reveals nothing.
const DECOY: &str = "$argon2id$v=19$m=19456,t=2,p=1$dHdpbGwtZGVjb3k$\
                     3xr4g0Ww7HbFtBPkNuR3ZxVQpNR5kM2n8mC4l0uQx8E";

impl Users {
    /// Reads a users file; every line must be `name:PHC-hash`.
    pub fn load(path: &Path) -> Result<Users, UsersError> {
        let text = std::fs::read_to_string(path).map_err(|e| UsersError {
            path: path.to_path_buf(),
            line: None,
            message: e.to_string(),
        })?;
        Self::parse(&text).map_err(|(line, message)| UsersError {
            path: path.to_path_buf(),
            line: Some(line),
            message,
        })
    }

    /// Parses the text of a users file; the error names the 1-based line.
    pub fn parse(text: &str) -> Result<Users, (usize, String)> {
        let mut hashes = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((name, hash)) = line.split_once(':') else {
                return Err((i + 1, "expected name:$argon2id$…".into()));
            };
            check_name(name).map_err(|m| (i + 1, m))?;
            PasswordHash::new(hash).map_err(|e| (i + 1, format!("bad hash for {name}: {e}")))?;
            if hashes.insert(name.to_string(), hash.to_string()).is_some() {
                return Err((i + 1, format!("user {name} appears twice")));
            }
        }
        Ok(Users { hashes })
    }

    /// Whether `name` is a user.
    pub fn contains(&self, name: &str) -> bool {
        self.hashes.contains_key(name)
    }

    /// The user names, in no particular order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.hashes.keys().map(String::as_str)
    }

    /// How many users there are.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Whether `password` is `name`'s. Slow by design (argon2); an unknown
    /// name takes as long as a wrong password.
    pub fn verify(&self, name: &str, password: &[u8]) -> bool {
        let known = self.hashes.get(name);
        let hash = known.map_or(DECOY, String::as_str);
        let ok = PasswordHash::new(hash)
            .map(|h| Argon2::default().verify_password(password, &h).is_ok())
            .unwrap_or(false);
        ok && known.is_some()
    }
}

/// A name is one token: no ':' (the separator), no whitespace or control
/// characters (protocol commands carry it), not empty, at most 64 bytes.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err("a user name has 1 to 64 bytes".into());
    }
    if name
        .chars()
        .any(|c| c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "user name {name:?} may not hold ':', spaces or control characters"
        ));
    }
    Ok(())
}

/// The argon2id PHC string of `password` with a fresh random salt.
pub fn hash_password(password: &[u8]) -> Result<String, String> {
    let mut raw = [0u8; 16];
    getrandom::getrandom(&mut raw).map_err(|e| format!("no randomness for a salt: {e}"))?;
    let salt = SaltString::encode_b64(&raw).map_err(|e| format!("salt: {e}"))?;
    Argon2::default()
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("hashing: {e}"))
}

/// Adds `name` to the users file at `path` (created if missing), or
/// replaces its password; other lines, comments included, are kept. The
/// file is replaced atomically (written aside, then renamed) with mode
/// 0600.
pub fn add_user(path: &Path, name: &str, password: &[u8]) -> Result<(), UsersError> {
    let err = |line: Option<usize>, message: String| UsersError {
        path: path.to_path_buf(),
        line,
        message,
    };
    check_name(name).map_err(|m| err(None, m))?;
    if password.is_empty() {
        return Err(err(None, "the password is empty".into()));
    }
    let old = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(err(None, e.to_string())),
    };
    // Refuse to rewrite a file we could not read back.
    Users::parse(&old).map_err(|(l, m)| err(Some(l), m))?;
    let hash = hash_password(password).map_err(|m| err(None, m))?;
    let mut out = String::with_capacity(old.len() + hash.len() + name.len() + 2);
    let mut replaced = false;
    for line in old.lines() {
        let is_name = line
            .trim()
            .split_once(':')
            .is_some_and(|(n, _)| n == name && !line.trim_start().starts_with('#'));
        if is_name {
            out.push_str(&format!("{name}:{hash}\n"));
            replaced = true;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !replaced {
        out.push_str(&format!("{name}:{hash}\n"));
    }
    let tmp = path.with_extension("tmp-twill-passwd");
    let write = || -> std::io::Result<()> {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp)?;
        f.write_all(out.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        err(None, e.to_string())
    })
}

/// Reads the password for `twill passwd`: prompted without echo when stdin
/// is a terminal, else the first line of stdin (scripts pipe it in).
pub fn read_password(name: &str) -> Result<String, String> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        let a = rpassword::prompt_password(format!("password for {name}: "))
            .map_err(|e| e.to_string())?;
        let b = rpassword::prompt_password("again: ").map_err(|e| e.to_string())?;
        if a != b {
            return Err("the passwords differ".into());
        }
        Ok(a)
    } else {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| format!("reading the password from stdin: {e}"))?;
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("twill-users-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        p
    }

    #[test]
    fn add_then_verify() {
        let p = temp("add");
        add_user(&p, "alice", b"secret one").expect("add alice");
        add_user(&p, "bob", b"hunter2").expect("add bob");
        let u = Users::load(&p).expect("load");
        assert_eq!(u.len(), 2);
        assert!(u.verify("alice", b"secret one"));
        assert!(!u.verify("alice", b"hunter2"));
        assert!(u.verify("bob", b"hunter2"));
        assert!(!u.verify("carol", b"hunter2"));
        let text = std::fs::read_to_string(&p).expect("read");
        assert!(!text.contains("hunter2"), "no plaintext on disk");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Replacing keeps one line per user and the comment.
        let with_comment = format!("# staff\n{text}");
        std::fs::write(&p, with_comment).expect("write");
        add_user(&p, "alice", b"new").expect("replace");
        let u = Users::load(&p).expect("load again");
        assert_eq!(u.len(), 2);
        assert!(u.verify("alice", b"new"));
        assert!(!u.verify("alice", b"secret one"));
        assert!(std::fs::read_to_string(&p)
            .expect("read")
            .starts_with("# staff\n"));
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn bad_files_name_the_line() {
        let e = Users::parse("# c\n\nalice\n").expect_err("no colon");
        assert_eq!(e.0, 3);
        let e = Users::parse("alice:plaintext\n").expect_err("not a hash");
        assert_eq!(e.0, 1);
        let h = hash_password(b"x").expect("hash");
        let e = Users::parse(&format!("a:{h}\na:{h}\n")).expect_err("twice");
        assert_eq!(e.0, 2);
        assert!(add_user(&temp("bad"), "a b", b"x").is_err());
        assert!(add_user(&temp("bad2"), "a:b", b"x").is_err());
        assert!(add_user(&temp("bad3"), "ok", b"").is_err());
    }

    #[test]
    fn decoy_is_a_valid_hash() {
        // If the decoy failed to parse, unknown users would answer fast.
        assert!(PasswordHash::new(DECOY).is_ok());
    }
}
