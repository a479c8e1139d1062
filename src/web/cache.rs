//! Open files kept for a moment, so that a file asked for again and again
//! is answered on the event thread: the blocking-pool hop (a thread switch
//! each way, per request) is what a small static file costs most.
//!
//! An entry maps a request path to the regular file that a full, checked
//! resolution (percent-decoding, `..`, symlinks out of the root, index
//! files) found for it, opened, with its size and modification time. For
//! [`TTL`] after that resolution the same path is answered from the entry
//! without touching the file system: validators, conditions and ranges
//! come from the metadata read then. This is nginx's `open_file_cache`
//! with a short validity: a file replaced, changed or removed is seen at
//! most [`TTL`] late (a file that shrinks meanwhile ends its response
//! early with a closed connection, as it would without the cache). Small
//! files' contents are kept too ([`Opened::data`]), within [`MAX_BYTES`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use twill_core::{Duration, UnixTime};

use super::files::Opened;

/// How long a resolution is trusted.
pub const TTL: Duration = Duration::from_secs(1);

/// Most entries; a full cache is emptied and refills with what is asked.
pub const MAX_ENTRIES: usize = 4096;

/// Most bytes of small files' contents held ([`Opened::data`]); past it
/// the cache is emptied as when full.
pub const MAX_BYTES: usize = 32 * 1024 * 1024;

/// The cache, shared by every machine of one `twill web` (cheap to clone).
#[derive(Clone, Debug, Default)]
pub struct OpenFiles {
    inner: Arc<Mutex<Map>>,
}

#[derive(Debug, Default)]
struct Map {
    entries: HashMap<String, Entry>,
    /// Content bytes the entries hold.
    bytes: usize,
}

#[derive(Debug)]
struct Entry {
    /// Wall-clock nanoseconds: machines on different reactors share the
    /// cache, and each reactor's monotonic clock has its own origin.
    resolved: i128,
    file: Arc<Opened>,
}

fn nanos(t: UnixTime) -> i128 {
    i128::from(t.secs()) * 1_000_000_000 + i128::from(t.subsec_nanos())
}

impl OpenFiles {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The file `path` led to less than [`TTL`] before `now` (and not
    /// after it: a clock set back makes every entry stale).
    pub fn get(&self, path: &str, now: UnixTime) -> Option<Arc<Opened>> {
        let map = self.inner.lock().ok()?;
        let e = map.entries.get(path)?;
        let age = nanos(now) - e.resolved;
        (0..TTL.as_nanos() as i128)
            .contains(&age)
            .then(|| e.file.clone())
    }

    /// Remembers that `path` led to `file` at `resolved`.
    pub fn put(&self, path: &str, file: Arc<Opened>, resolved: UnixTime) {
        let resolved = nanos(resolved);
        let Ok(mut map) = self.inner.lock() else {
            return;
        };
        let size = file.data.as_ref().map_or(0, |d| d.len());
        if let Some(old) = map.entries.remove(path) {
            map.bytes -= old.file.data.as_ref().map_or(0, |d| d.len());
        }
        if map.entries.len() >= MAX_ENTRIES || map.bytes + size > MAX_BYTES {
            // Stale entries hold open files and contents: drop them all
            // rather than track ages (the hot ones are back after one miss
            // each).
            map.entries.clear();
            map.bytes = 0;
        }
        map.bytes += size;
        map.entries
            .insert(path.to_string(), Entry { resolved, file });
    }

    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.inner.lock().map_or(0, |m| m.entries.len())
    }

    /// Content bytes its entries hold.
    pub fn bytes(&self) -> usize {
        self.inner.lock().map_or(0, |m| m.bytes)
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The part of a request target that decides which file it names: the
/// target without its query and fragment.
pub fn key(target: &str) -> &str {
    let end = target.find(['?', '#']).unwrap_or(target.len());
    target.get(..end).unwrap_or(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opened() -> Arc<Opened> {
        sized(0)
    }

    fn sized(n: usize) -> Arc<Opened> {
        let file = std::fs::File::open("Cargo.toml").unwrap();
        Arc::new(Opened {
            file: Arc::new(file),
            len: n as u64,
            mtime: (0, 0),
            content_type: "text/plain",
            data: Some(bytes::Bytes::from(vec![b'x'; n])),
        })
    }

    #[test]
    fn contents_are_bounded() {
        let c = OpenFiles::new();
        let t0 = UnixTime::from_secs(0);
        let big = MAX_BYTES / 4;
        for i in 0..4 {
            c.put(&format!("/{i}"), sized(big), t0);
        }
        assert_eq!((c.len(), c.bytes()), (4, MAX_BYTES));
        // Replacing an entry counts its old content out.
        c.put("/0", sized(10), t0);
        assert_eq!((c.len(), c.bytes()), (4, MAX_BYTES - big + 10));
        // One more over the budget starts again.
        c.put("/4", sized(big), t0);
        assert_eq!((c.len(), c.bytes()), (1, big));
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let c = OpenFiles::new();
        let t0 = UnixTime::new(1_700_000_000, 500_000_000);
        c.put("/a.txt", opened(), t0);
        assert!(c.get("/a.txt", t0).is_some());
        assert!(c
            .get("/a.txt", t0 + (TTL - Duration::from_millis(1)))
            .is_some());
        assert!(c.get("/a.txt", t0 + TTL).is_none());
        assert!(c.get("/b.txt", t0).is_none());
        // A clock set back does not make an entry live longer.
        assert!(c.get("/a.txt", UnixTime::new(1_700_000_000, 0)).is_none());
    }

    #[test]
    fn a_full_cache_starts_again() {
        let c = OpenFiles::new();
        let t0 = UnixTime::from_secs(0);
        let f = opened();
        for i in 0..MAX_ENTRIES {
            c.put(&format!("/{i}"), f.clone(), t0);
        }
        assert_eq!(c.len(), MAX_ENTRIES);
        c.put("/new", f, t0);
        assert_eq!(c.len(), 1);
        assert!(c.get("/new", t0).is_some());
    }

    #[test]
    fn keys_drop_query_and_fragment() {
        assert_eq!(key("/a/b.txt?x=1"), "/a/b.txt");
        assert_eq!(key("/a#frag"), "/a");
        assert_eq!(key("/plain"), "/plain");
    }
}
