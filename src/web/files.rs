//! What to answer a request for a path under the served root: the whole
//! static-file logic, independent of the HTTP machine. [`respond`] is
//! blocking (it looks at the file system): run it through
//! `Cx::spawn_blocking`, never on the event thread.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use super::cond::{self, Conditions, Precondition, Validators};
use super::listing::{self, Entry};
use super::mime;
use super::path::{self, ResolveError, TargetError};
use super::range::{self, RangeAnswer};

/// The parts of a request the file server looks at, owned so they can move
/// to a blocking worker.
#[derive(Clone, Debug, Default)]
pub struct RequestHead {
    /// The method, e.g. `GET`.
    pub method: String,
    /// The request target, e.g. `/a/b.txt?x`.
    pub target: String,
    /// Header fields (names in any case).
    pub headers: Vec<(String, String)>,
}

impl RequestHead {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the method is HEAD (send the head only).
    pub fn is_head(&self) -> bool {
        self.method == "HEAD"
    }
}

/// The body a reply would carry for GET (a HEAD reply has the same head
/// and no body).
#[derive(Debug)]
pub enum Body {
    /// No body (`Content-Length: 0`, or none at all for 304).
    Empty,
    /// Bytes in memory (listings, error pages).
    Bytes(Bytes),
    /// A range of an open file, streamed (sendfile or chunked reads).
    File {
        /// The open file (shared with the open-file cache; always read at
        /// an offset, never through its cursor).
        file: Arc<File>,
        /// Where the range starts.
        offset: u64,
        /// How many bytes.
        len: u64,
    },
}

impl Body {
    /// The number of body bytes.
    pub fn len(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::Bytes(b) => b.len() as u64,
            Body::File { len, .. } => *len,
        }
    }

    /// Whether it has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A response: status, header fields (without framing headers:
/// `Content-Length` follows from the body) and body.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Header fields other than framing.
    pub headers: Vec<(&'static str, String)>,
    /// The body a GET gets.
    pub body: Body,
}

impl Reply {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A short page for an error status.
    pub fn error(status: u16) -> Reply {
        let text = format!("{status} {}\n", reason(status));
        Reply {
            status,
            headers: vec![("Content-Type", "text/plain; charset=utf-8".into())],
            body: Body::Bytes(Bytes::from(text)),
        }
    }

    /// 405 with the `Allow` header.
    pub fn method_not_allowed() -> Reply {
        let mut r = Reply::error(405);
        r.headers.push(("Allow", "GET, HEAD".into()));
        r
    }
}

/// The reason phrase of the statuses the file server uses.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        301 => "Moved Permanently",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        412 => "Precondition Failed",
        416 => "Range Not Satisfiable",
        500 => "Internal Server Error",
        _ => "",
    }
}

/// Whether the file server accepts the method at all (checked before any
/// file system work).
pub fn method_allowed(method: &str) -> bool {
    method == "GET" || method == "HEAD"
}

/// Answers `req` from the canonical directory `root`, at wall-clock time
/// `now_secs`. Blocking; never panics; I/O errors become 403/404/500.
pub fn respond(root: &Path, req: &RequestHead, now_secs: i64) -> Reply {
    respond_opening(root, req, now_secs).0
}

/// [`respond`], also giving the regular file the answer came from, if it
/// came from one: what an open-file cache may keep for the same target.
pub fn respond_opening(
    root: &Path,
    req: &RequestHead,
    now_secs: i64,
) -> (Reply, Option<Arc<Opened>>) {
    if !method_allowed(&req.method) {
        return (Reply::method_not_allowed(), None);
    }
    match find(root, req) {
        Found::Reply(r) => (r, None),
        Found::File(p) => match open_file(&p) {
            Ok(f) => {
                let f = Arc::new(f);
                (
                    answer_file(&f, &conditions_of(req), req.header("range"), now_secs),
                    Some(f),
                )
            }
            Err(r) => (r, None),
        },
    }
}

/// What a target leads to: a file to open, or a reply already.
enum Found {
    File(std::path::PathBuf),
    Reply(Reply),
}

fn find(root: &Path, req: &RequestHead) -> Found {
    let target = match path::parse_target(&req.target) {
        Ok(t) => t,
        Err(TargetError::Forbidden) => return Found::Reply(Reply::error(403)),
        Err(_) => return Found::Reply(Reply::error(400)),
    };
    let found = match path::resolve(root, &target.segments) {
        Ok(p) => p,
        Err(e) => return Found::Reply(resolve_error(e)),
    };
    let meta = match std::fs::metadata(&found) {
        Ok(m) => m,
        Err(e) => return Found::Reply(io_error(&e)),
    };
    if meta.is_dir() {
        if !target.trailing_slash {
            let mut loc = format!("{}/", target.raw_path);
            if !target.query.is_empty() {
                loc.push('?');
                loc.push_str(&target.query);
            }
            let mut r = Reply::error(301);
            r.headers.push(("Location", loc));
            return Found::Reply(r);
        }
        let mut index = target.segments.clone();
        index.push("index.html".into());
        if let Ok(p) = path::resolve(root, &index) {
            if p.is_file() {
                return Found::File(p);
            }
        }
        return Found::Reply(list_dir(&found, &target.segments));
    }
    if target.trailing_slash {
        // "/file.txt/" names no directory.
        return Found::Reply(Reply::error(404));
    }
    Found::File(found)
}

fn resolve_error(e: ResolveError) -> Reply {
    match e {
        ResolveError::NotFound => Reply::error(404),
        ResolveError::Forbidden => Reply::error(403),
        ResolveError::Io(e) => io_error(&e),
    }
}

fn io_error(e: &io::Error) -> Reply {
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => Reply::error(404),
        io::ErrorKind::PermissionDenied => Reply::error(403),
        _ => {
            tracing::warn!("file server: {e}");
            Reply::error(500)
        }
    }
}

fn mtime(meta: &std::fs::Metadata) -> (i64, u32) {
    use std::os::unix::fs::MetadataExt;
    (meta.mtime(), meta.mtime_nsec().clamp(0, 999_999_999) as u32)
}

/// A regular file opened under the root, with what its replies need.
#[derive(Debug)]
pub struct Opened {
    /// The open file.
    pub file: Arc<File>,
    /// Its size when opened.
    pub len: u64,
    /// Its modification time (seconds, nanoseconds).
    pub mtime: (i64, u32),
    /// The `Content-Type` its name gives.
    pub content_type: &'static str,
    /// The whole content, read when opened, for files up to
    /// [`SMALL_FILE`] bytes: their body goes out with the head in one
    /// write (and one packet) instead of a `sendfile` after it.
    pub data: Option<Bytes>,
}

/// Files up to this size are read whole when opened.
pub const SMALL_FILE: u64 = 16 * 1024;

/// Opens `p` and reads the metadata of what was opened (not of the path,
/// which may have changed meanwhile). Blocking.
///
/// # Errors
/// The reply to send instead: 403 for anything but a regular file,
/// 403/404/500 for I/O errors.
pub fn open_file(p: &Path) -> Result<Opened, Reply> {
    let file = File::open(p).map_err(|e| io_error(&e))?;
    let meta = file.metadata().map_err(|e| io_error(&e))?;
    if !meta.is_file() {
        // FIFOs, devices, sockets: never.
        return Err(Reply::error(403));
    }
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let len = meta.len();
    let data = if len <= SMALL_FILE {
        // Exactly the length the metadata gave, or not at all (the file
        // changed meanwhile: it is sent from the file, as a big one is).
        let mut v = vec![0; len as usize];
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut v, 0)
            .ok()
            .map(|()| Bytes::from(v))
    } else {
        None
    };
    Ok(Opened {
        file: Arc::new(file),
        len,
        mtime: mtime(&meta),
        content_type: mime::for_name(name),
        data,
    })
}

/// The conditional-request fields of `req`.
pub fn conditions_of(req: &RequestHead) -> Conditions<'_> {
    Conditions {
        if_match: req.header("if-match"),
        if_none_match: req.header("if-none-match"),
        if_modified_since: req.header("if-modified-since"),
        if_unmodified_since: req.header("if-unmodified-since"),
        if_range: req.header("if-range"),
    }
}

/// The reply for an opened file: validators, conditions (304, 412), the
/// `Range` field (206, 416). Pure: no file system access, so it may run on
/// the event thread for a cached file.
pub fn answer_file(
    f: &Opened,
    c: &Conditions<'_>,
    range_header: Option<&str>,
    now_secs: i64,
) -> Reply {
    let total = f.len;
    let (secs, nanos) = f.mtime;
    let v = Validators::new(total, secs, nanos, now_secs);
    let mut headers = vec![
        ("ETag", v.etag()),
        ("Last-Modified", v.last_modified()),
        ("Accept-Ranges", "bytes".to_string()),
    ];
    match cond::evaluate(c, &v) {
        Precondition::Proceed => {}
        Precondition::NotModified => {
            return Reply {
                status: 304,
                headers,
                body: Body::Empty,
            }
        }
        Precondition::Failed => return Reply::error(412),
    }
    let range_header = if cond::if_range_holds(c, &v) {
        range_header
    } else {
        None
    };
    let (status, offset, len) = match range::evaluate(range_header, total) {
        RangeAnswer::Full => (200, 0, total),
        RangeAnswer::Partial { start, len } => {
            headers.push(("Content-Range", range::content_range(start, len, total)));
            (206, start, len)
        }
        RangeAnswer::Unsatisfiable => {
            let mut r = Reply::error(416);
            r.headers
                .push(("Content-Range", range::unsatisfied_range(total)));
            return r;
        }
    };
    headers.insert(0, ("Content-Type", f.content_type.to_string()));
    let range = offset as usize..(offset + len) as usize;
    let body = match &f.data {
        _ if len == 0 => Body::Empty,
        Some(d) if d.get(range.clone()).is_some() => Body::Bytes(d.slice(range)),
        _ => Body::File {
            file: f.file.clone(),
            offset,
            len,
        },
    };
    Reply {
        status,
        headers,
        body,
    }
}

/// Most entries a listing shows (a huge directory must not make a huge
/// page).
const MAX_ENTRIES: usize = 10_000;

fn list_dir(dir: &Path, segments: &[String]) -> Reply {
    let rd = match std::fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) => return io_error(&e),
    };
    let mut entries = Vec::new();
    for ent in rd.flatten().take(MAX_ENTRIES) {
        let Ok(name) = ent.file_name().into_string() else {
            continue; // not UTF-8: no URL we could serve it under
        };
        // Follow symlinks for the kind and size; a dangling one is listed
        // as a file of size 0.
        let meta = std::fs::metadata(ent.path()).ok();
        let (is_dir, size, modified) = match &meta {
            Some(m) => (m.is_dir(), m.len(), mtime(m).0),
            None => (false, 0, 0),
        };
        entries.push(Entry {
            name,
            is_dir,
            size,
            modified,
        });
    }
    let mut display = String::from("/");
    for s in segments {
        display.push_str(s);
        display.push('/');
    }
    let html = listing::render(&display, entries);
    Reply {
        status: 200,
        headers: vec![("Content-Type", "text/html; charset=utf-8".into())],
        body: Body::Bytes(Bytes::from(html)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    struct Tree {
        dir: PathBuf,
        root: PathBuf,
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn tree(tag: &str) -> Tree {
        let dir = std::env::temp_dir().join(format!("twill-web-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(root.join("site")).unwrap();
        std::fs::write(root.join("hello.txt"), b"hello world\n").unwrap();
        std::fs::write(root.join("empty.bin"), b"").unwrap();
        std::fs::write(root.join("site/index.html"), b"<p>home</p>").unwrap();
        std::fs::write(root.join("sub/<b>.txt"), b"x").unwrap();
        std::fs::write(dir.join("secret"), b"secret").unwrap();
        std::os::unix::fs::symlink(dir.join("secret"), root.join("leak")).unwrap();
        let root = std::fs::canonicalize(&root).unwrap();
        Tree { dir, root }
    }

    fn get(t: &Tree, target: &str, headers: &[(&str, &str)]) -> Reply {
        let req = RequestHead {
            method: "GET".into(),
            target: target.into(),
            headers: headers
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        };
        respond(&t.root, &req, 2_000_000_000)
    }

    fn body(r: Reply) -> Vec<u8> {
        match r.body {
            Body::Empty => vec![],
            Body::Bytes(b) => b.to_vec(),
            Body::File { file, offset, len } => {
                use std::os::unix::fs::FileExt;
                let mut v = vec![0; len as usize];
                file.read_exact_at(&mut v, offset).unwrap();
                v
            }
        }
    }

    #[test]
    fn serves_files_with_validators() {
        let t = tree("files");
        let r = get(&t, "/hello.txt", &[]);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
        assert_eq!(r.header("accept-ranges"), Some("bytes"));
        assert!(r.header("etag").unwrap().starts_with('"'));
        assert!(r.header("last-modified").unwrap().ends_with(" GMT"));
        assert_eq!(body(r), b"hello world\n");
        let r = get(&t, "/empty.bin", &[]);
        assert_eq!((r.status, r.body.len()), (200, 0));
    }

    #[test]
    fn conditional() {
        let t = tree("cond");
        let r = get(&t, "/hello.txt", &[]);
        let etag = r.header("etag").unwrap().to_string();
        let lm = r.header("last-modified").unwrap().to_string();
        let r = get(&t, "/hello.txt", &[("If-None-Match", &etag)]);
        assert_eq!(r.status, 304);
        assert_eq!(r.header("etag"), Some(etag.as_str()));
        assert!(r.body.is_empty());
        assert_eq!(
            get(&t, "/hello.txt", &[("If-Modified-Since", &lm)]).status,
            304
        );
        let old = "Thu, 01 Jan 1970 00:00:00 GMT";
        assert_eq!(
            get(&t, "/hello.txt", &[("If-Modified-Since", old)]).status,
            200
        );
        assert_eq!(get(&t, "/hello.txt", &[("If-Match", "\"x\"")]).status, 412);
    }

    #[test]
    fn ranges() {
        let t = tree("range");
        let r = get(&t, "/hello.txt", &[("Range", "bytes=6-10")]);
        assert_eq!(r.status, 206);
        assert_eq!(r.header("content-range"), Some("bytes 6-10/12"));
        assert_eq!(body(r), b"world");
        let r = get(&t, "/hello.txt", &[("Range", "bytes=-3")]);
        assert_eq!(body(r), b"ld\n");
        let r = get(&t, "/hello.txt", &[("Range", "bytes=50-")]);
        assert_eq!(r.status, 416);
        assert_eq!(r.header("content-range"), Some("bytes */12"));
        let r = get(&t, "/hello.txt", &[("Range", "bytes=0-1,3-4")]);
        assert_eq!(r.status, 200);
        let r = get(
            &t,
            "/hello.txt",
            &[("Range", "bytes=0-1"), ("If-Range", "\"stale\"")],
        );
        assert_eq!(r.status, 200);
        assert_eq!(body(r), b"hello world\n");
    }

    #[test]
    fn directories() {
        let t = tree("dirs");
        let r = get(&t, "/sub", &[]);
        assert_eq!(r.status, 301);
        assert_eq!(r.header("location"), Some("/sub/"));
        let r = get(&t, "/sub?a=b", &[]);
        assert_eq!(r.header("location"), Some("/sub/?a=b"));
        let r = get(&t, "/sub/", &[]);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        let html = String::from_utf8(body(r)).unwrap();
        assert!(html.contains("&lt;b&gt;.txt"), "{html}");
        let r = get(&t, "/site/", &[]);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(body(r), b"<p>home</p>");
        let r = get(&t, "/", &[]);
        let html = String::from_utf8(body(r)).unwrap();
        assert!(html.contains("hello.txt") && html.contains("site/"));
    }

    #[test]
    fn refusals() {
        let t = tree("refuse");
        assert_eq!(get(&t, "/nope.txt", &[]).status, 404);
        assert_eq!(get(&t, "/hello.txt/", &[]).status, 404);
        assert_eq!(get(&t, "/../secret", &[]).status, 403);
        assert_eq!(get(&t, "/%2e%2e/secret", &[]).status, 403);
        assert_eq!(get(&t, "/sub/%2e%2e/%2e%2e/secret", &[]).status, 403);
        assert_eq!(get(&t, "/hello.txt%00", &[]).status, 403);
        assert_eq!(get(&t, "/leak", &[]).status, 403);
        assert_eq!(get(&t, "/%zz", &[]).status, 400);
        assert_eq!(get(&t, "relative", &[]).status, 400);
        let req = RequestHead {
            method: "POST".into(),
            target: "/hello.txt".into(),
            headers: vec![],
        };
        let r = respond(&t.root, &req, 0);
        assert_eq!(r.status, 405);
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
    }
}
