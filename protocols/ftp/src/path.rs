//! Virtual paths: what a client names, resolved against its working
//! directory into an absolute path inside the served tree.
//!
//! Resolution is lexical and confined by construction: `..` at the root
//! stays at the root, so no [`VPath`] ever names anything above `/`.
//! Whether `/a/b` is a symlink pointing out of the tree is a question for
//! the file system, answered by the application that maps a `VPath` to a
//! real file (see `twill ftp`'s service).

use alloc::string::String;
use alloc::vec::Vec;

/// An absolute, normalised path inside the served tree: starts with `/`,
/// no empty, `.` or `..` segments, no trailing `/` (except the root).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VPath(String);

impl VPath {
    /// The root, `/`.
    pub fn root() -> VPath {
        VPath(String::from("/"))
    }

    /// Resolves `arg` (absolute, or relative to `self`) lexically.
    pub fn join(&self, arg: &str) -> VPath {
        let mut segs: Vec<&str> = if arg.starts_with('/') {
            Vec::new()
        } else {
            self.segments().collect()
        };
        for s in arg.split('/') {
            match s {
                "" | "." => {}
                ".." => {
                    segs.pop();
                }
                s => segs.push(s),
            }
        }
        let mut p = String::with_capacity(arg.len() + self.0.len() + 1);
        for s in &segs {
            p.push('/');
            p.push_str(s);
        }
        if p.is_empty() {
            p.push('/');
        }
        VPath(p)
    }

    /// The parent (the root's parent is the root).
    pub fn parent(&self) -> VPath {
        self.join("..")
    }

    /// The segments, root first.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|s| !s.is_empty())
    }

    /// The last segment (empty for the root).
    pub fn name(&self) -> &str {
        self.segments().last().unwrap_or("")
    }

    /// Whether this is the root.
    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path quoted for a 257 reply (RFC 959 Appendix II: an embedded
    /// `"` is doubled).
    pub fn quoted(&self) -> String {
        let mut s = String::with_capacity(self.0.len() + 2);
        s.push('"');
        for c in self.0.chars() {
            if c == '"' {
                s.push('"');
            }
            s.push(c);
        }
        s.push('"');
        s
    }
}

impl core::fmt::Display for VPath {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confined_by_construction() {
        let cwd = VPath::root().join("pub/docs");
        assert_eq!(cwd.as_str(), "/pub/docs");
        assert_eq!(cwd.join("../../../../etc/passwd").as_str(), "/etc/passwd");
        assert_eq!(cwd.join("/x//y/./z/..").as_str(), "/x/y");
        assert_eq!(cwd.join("..").join("..").join("..").as_str(), "/");
        assert_eq!(cwd.parent().as_str(), "/pub");
        assert_eq!(cwd.name(), "docs");
        assert_eq!(VPath::root().join("a\"b").quoted(), "\"/a\"\"b\"");
    }
}
