//! A Maildir store (the format of qmail, Postfix, Dovecot and mutt): one
//! directory per mailbox with `tmp/`, `new/` and `cur/`.
//!
//! Delivery writes the message to `tmp/` under a unique name, `fsync`s the
//! file, renames it into `new/` and `fsync`s `new/` — only then may the
//! SMTP server answer 250. A crash before the rename leaves a stray file
//! in `tmp/`, which [`Maildir::clean_tmp`] removes at start; a crash after
//! it leaves a whole message. Readers only ever see whole messages.
//!
//! Messages are stored byte for byte as received (CRLF line endings), so
//! a POP3 client gets back exactly the octets that were sent, and a
//! message's size is its file's size.
//!
//! Unique names follow the Maildir rules: `SECONDS.MmicrosPpidQn.HOST`,
//! with a per-process counter `n`, and `/` and `:` in the host name
//! escaped (`\057`, `\072`).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// One mailbox directory.
#[derive(Clone, Debug)]
pub struct Maildir {
    dir: PathBuf,
}

/// A message in `new/` or `cur/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its file.
    pub path: PathBuf,
    /// Its size in octets.
    pub size: u64,
    /// Its unique name (the file name up to any `:2,` flags), the POP3
    /// UIDL.
    pub uid: String,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A unique file name for a new message, per the Maildir rules.
pub fn unique_name(host: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut h = String::new();
    for c in host.chars().take(32) {
        match c {
            '/' => h.push_str("\\057"),
            ':' => h.push_str("\\072"),
            c if c.is_ascii_graphic() => h.push(c),
            _ => h.push('_'),
        }
    }
    format!(
        "{}.M{}P{}Q{}.{}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        n,
        h
    )
}

impl Maildir {
    /// Opens (creating as needed) the Maildir at `dir`.
    pub fn open(dir: &Path) -> io::Result<Maildir> {
        for sub in ["tmp", "new", "cur"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        Ok(Maildir {
            dir: dir.to_path_buf(),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Removes every file in `tmp/`: deliveries a crash interrupted (no
    /// delivery is in progress when the server starts). Returns how many.
    pub fn clean_tmp(&self) -> io::Result<usize> {
        let mut n = 0;
        for e in fs::read_dir(self.dir.join("tmp"))? {
            let e = e?;
            if e.file_type()?.is_file() {
                fs::remove_file(e.path())?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Delivers a message made of `parts` (written in order): tmp/, fsync,
    /// rename into new/, fsync new/. Returns the unique name.
    pub fn deliver(&self, host: &str, parts: &[&[u8]]) -> io::Result<String> {
        let name = unique_name(host);
        let tmp = self.dir.join("tmp").join(&name);
        let written = (|| {
            let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            for p in parts {
                f.write_all(p)?;
            }
            f.sync_all()
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        let new = self.dir.join("new").join(&name);
        if let Err(e) = fs::rename(&tmp, &new) {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        // The rename is durable only once the directory is synced.
        File::open(self.dir.join("new"))?.sync_all()?;
        Ok(name)
    }

    /// The messages of `new/` and `cur/`, oldest first (by modification
    /// time, then name).
    pub fn list(&self) -> io::Result<Vec<Entry>> {
        let mut v = Vec::new();
        for sub in ["new", "cur"] {
            for e in fs::read_dir(self.dir.join(sub))? {
                let e = e?;
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    continue;
                }
                let meta = e.metadata()?;
                if !meta.is_file() {
                    continue;
                }
                let uid = name.split(':').next().unwrap_or(&name).to_string();
                let mtime = meta.modified().unwrap_or(UNIX_EPOCH);
                v.push((
                    mtime,
                    Entry {
                        path: e.path(),
                        size: meta.len(),
                        uid,
                    },
                ));
            }
        }
        v.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.uid.cmp(&b.1.uid)));
        Ok(v.into_iter().map(|(_, e)| e).collect())
    }

    /// Removes messages (already-gone files are not an error), then syncs
    /// the directories so the removal is durable.
    pub fn remove(&self, paths: &[PathBuf]) -> io::Result<()> {
        for p in paths {
            match fs::remove_file(p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        for sub in ["new", "cur"] {
            File::open(self.dir.join(sub))?.sync_all()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("twill-maildir-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn deliver_list_remove_and_clean() {
        let d = temp("basic");
        let m = Maildir::open(&d).unwrap();
        fs::write(d.join("tmp/stray"), b"half a message").unwrap();
        assert_eq!(m.clean_tmp().unwrap(), 1);
        let a = m
            .deliver("host/x:y", &[b"Subject: a\r\n", b"\r\nbody\r\n"])
            .unwrap();
        let b = m.deliver("host", &[b"second"]).unwrap();
        assert_ne!(a, b);
        assert!(a.contains("host\\057x\\072y"), "{a}");
        let list = m.list().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].uid, a);
        assert_eq!(list[0].size, 20);
        assert_eq!(fs::read(&list[1].path).unwrap(), b"second");
        assert_eq!(fs::read_dir(d.join("tmp")).unwrap().count(), 0);
        m.remove(&[list[0].path.clone(), d.join("new/gone")])
            .unwrap();
        assert_eq!(m.list().unwrap().len(), 1);
        let _ = fs::remove_dir_all(&d);
    }
}
