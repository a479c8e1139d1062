//! The file-system side of `twill ftp`: blocking functions (run them on
//! the pool) that map a client's [`VPath`] to a real file under the
//! served root and do what an [`Op`](twill_ftp::Op) asks.
//!
//! Confinement has two layers: a `VPath` can never name anything above
//! `/` (lexical), and every real path is checked after the file system
//! resolved it — the existing part canonicalized (symlinks followed) must
//! stay under the canonical root. As for `twill web`, a writer of the
//! served tree racing a check with a rename is trusted; clients are not.

use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, ErrorKind};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use twill_ftp::codec::list::{self, Entry, Kind};
use twill_ftp::{FsError, ListFormat, VPath};

/// Maps an I/O error to the reply class the client sees.
pub fn fs_error(e: &io::Error) -> FsError {
    match e.kind() {
        ErrorKind::NotFound => FsError::NotFound,
        ErrorKind::PermissionDenied => FsError::PermissionDenied,
        ErrorKind::AlreadyExists => FsError::Exists,
        ErrorKind::DirectoryNotEmpty => FsError::NotEmpty,
        ErrorKind::NotADirectory | ErrorKind::IsADirectory => FsError::WrongKind,
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded => FsError::NoSpace,
        _ => FsError::Other(e.to_string()),
    }
}

fn joined(root: &Path, v: &VPath) -> PathBuf {
    let mut p = root.to_path_buf();
    for s in v.segments() {
        p.push(s);
    }
    p
}

fn inside(root: &Path, p: &Path) -> Result<(), FsError> {
    if p.starts_with(root) {
        Ok(())
    } else {
        Err(FsError::PermissionDenied)
    }
}

/// An existing file or directory, symlinks followed, inside the root.
pub fn existing(root: &Path, v: &VPath) -> Result<PathBuf, FsError> {
    let p = fs::canonicalize(joined(root, v)).map_err(|e| fs_error(&e))?;
    inside(root, &p)?;
    Ok(p)
}

/// A directory entry to create, remove or rename: its parent (resolved)
/// must be inside the root, and if the entry exists and is a symlink, its
/// target too.
pub fn entry(root: &Path, v: &VPath) -> Result<PathBuf, FsError> {
    if v.is_root() {
        return Err(FsError::PermissionDenied);
    }
    let parent = existing(root, &v.parent())?;
    let p = parent.join(v.name());
    if let Ok(m) = fs::symlink_metadata(&p) {
        if m.file_type().is_symlink() {
            let target = fs::canonicalize(&p).map_err(|_| FsError::PermissionDenied)?;
            inside(root, &target)?;
        }
    }
    Ok(p)
}

fn mtime(m: &Metadata) -> i64 {
    m.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64)
}

fn to_entry(name: String, m: &Metadata, writable: bool) -> Entry {
    Entry {
        name,
        kind: if m.is_dir() {
            Kind::Dir
        } else if m.is_file() {
            Kind::File
        } else {
            Kind::Other
        },
        size: if m.is_dir() { 0 } else { m.size() },
        modified: mtime(m),
        mode: m.permissions().mode() & 0o777,
        writable,
    }
}

/// The entries of a directory (symlinks shown as what they point to,
/// when that stays inside the root; others left out), sorted by name.
fn read_dir(root: &Path, dir: &Path, writable: bool) -> Result<Vec<Entry>, FsError> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).map_err(|e| fs_error(&e))? {
        let Ok(e) = e else { continue };
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        let Ok(real) = fs::canonicalize(&path) else {
            continue;
        };
        if !real.starts_with(root) {
            continue;
        }
        if let Ok(m) = fs::metadata(&real) {
            out.push(to_entry(name, &m, writable));
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// A listing in `format`, lines ending in CRLF. A file path lists that
/// file alone.
pub fn listing(
    root: &Path,
    v: &VPath,
    format: ListFormat,
    writable: bool,
    now: i64,
) -> Result<Vec<u8>, FsError> {
    let p = existing(root, v)?;
    let m = fs::metadata(&p).map_err(|e| fs_error(&e))?;
    let mut out = String::new();
    if !m.is_dir() {
        let e = to_entry(v.name().to_string(), &m, writable);
        match format {
            ListFormat::List | ListFormat::Stat => list::list_line(&e, now, &mut out),
            ListFormat::Nlst => {
                out.push_str(v.as_str());
                out.push_str("\r\n");
            }
            // MLSD of a file is an error (RFC 3659 §7.2.1).
            ListFormat::Mlsd => return Err(FsError::WrongKind),
        }
        return Ok(out.into_bytes());
    }
    let entries = read_dir(root, &p, writable)?;
    match format {
        ListFormat::List | ListFormat::Stat => {
            for e in &entries {
                list::list_line(e, now, &mut out);
            }
        }
        ListFormat::Nlst => {
            for e in &entries {
                out.push_str(&e.name);
                out.push_str("\r\n");
            }
        }
        ListFormat::Mlsd => {
            let me = to_entry(".".into(), &m, writable);
            out.push_str(&list::facts(&me).replacen("type=dir", "type=cdir", 1));
            out.push_str(" .\r\n");
            for e in &entries {
                list::mlsd_line(e, &mut out);
            }
        }
    }
    Ok(out.into_bytes())
}

/// MLST's facts line for one path.
pub fn facts(root: &Path, v: &VPath, writable: bool) -> Result<String, FsError> {
    let p = existing(root, v)?;
    let m = fs::metadata(&p).map_err(|e| fs_error(&e))?;
    let e = to_entry(v.as_str().to_string(), &m, writable);
    Ok(format!("{} {}", list::facts(&e), v))
}

/// A regular file's size, for SIZE.
pub fn size(root: &Path, v: &VPath) -> Result<u64, FsError> {
    let m = fs::metadata(existing(root, v)?).map_err(|e| fs_error(&e))?;
    if !m.is_file() {
        return Err(FsError::WrongKind);
    }
    Ok(m.len())
}

/// A file's modification time, for MDTM.
pub fn modified(root: &Path, v: &VPath) -> Result<i64, FsError> {
    let m = fs::metadata(existing(root, v)?).map_err(|e| fs_error(&e))?;
    Ok(mtime(&m))
}

/// CWD: a directory one may enter.
pub fn check_dir(root: &Path, v: &VPath) -> Result<(), FsError> {
    let m = fs::metadata(existing(root, v)?).map_err(|e| fs_error(&e))?;
    if m.is_dir() {
        Ok(())
    } else {
        Err(FsError::WrongKind)
    }
}

/// Opens a regular file for RETR: the file and its length.
pub fn open_read(root: &Path, v: &VPath) -> Result<(File, u64), FsError> {
    let p = existing(root, v)?;
    let f = File::open(&p).map_err(|e| fs_error(&e))?;
    let m = f.metadata().map_err(|e| fs_error(&e))?;
    if !m.is_file() {
        return Err(FsError::WrongKind);
    }
    Ok((f, m.len()))
}

/// Opens a file for STOR/APPE: truncated (no REST), kept (REST: written
/// from `offset`) or appended; returns the file and where writing starts.
pub fn open_write(
    root: &Path,
    v: &VPath,
    offset: u64,
    append: bool,
) -> Result<(File, u64), FsError> {
    let p = entry(root, v)?;
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(!append && offset == 0)
        .open(&p)
        .map_err(|e| fs_error(&e))?;
    let m = f.metadata().map_err(|e| fs_error(&e))?;
    if !m.is_file() {
        return Err(FsError::WrongKind);
    }
    let start = if append { m.len() } else { offset };
    if !append && offset > 0 {
        // REST past the end would leave a hole; RFC 3659 lets us refuse.
        if offset > m.len() {
            return Err(FsError::Other(
                "restart offset past the end of the file".into(),
            ));
        }
        f.set_len(offset).map_err(|e| fs_error(&e))?;
    }
    Ok((f, start))
}

/// MKD.
pub fn mkdir(root: &Path, v: &VPath) -> Result<(), FsError> {
    fs::create_dir(entry(root, v)?).map_err(|e| fs_error(&e))
}

/// RMD.
pub fn rmdir(root: &Path, v: &VPath) -> Result<(), FsError> {
    fs::remove_dir(entry(root, v)?).map_err(|e| fs_error(&e))
}

/// DELE (a directory is refused).
pub fn delete(root: &Path, v: &VPath) -> Result<(), FsError> {
    let p = entry(root, v)?;
    let m = fs::symlink_metadata(&p).map_err(|e| fs_error(&e))?;
    if m.is_dir() {
        return Err(FsError::WrongKind);
    }
    fs::remove_file(p).map_err(|e| fs_error(&e))
}

/// RNFR: the source exists.
pub fn exists(root: &Path, v: &VPath) -> Result<(), FsError> {
    let p = entry(root, v)?;
    fs::symlink_metadata(p)
        .map(|_| ())
        .map_err(|e| fs_error(&e))
}

/// RNTO.
pub fn rename(root: &Path, from: &VPath, to: &VPath) -> Result<(), FsError> {
    let a = entry(root, from)?;
    let b = entry(root, to)?;
    fs::rename(a, b).map_err(|e| fs_error(&e))
}
