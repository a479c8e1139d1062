//! The service behind `twill web`: [`Web`] answers the requests of a
//! [`twill_http::Server`] with [`files::respond`], hosted unchanged by
//! every driver.
//!
//! Every file-system access runs through `Cx::spawn_blocking`. A file body
//! is sent as `Payload::File` (the driver `sendfile`s it) when the server
//! allows file payloads, and otherwise read in chunks of [`CHUNK`] bytes on
//! the pool, one chunk in flight per response, the next one only once the
//! machine says the connection is writable — so a large file never sits in
//! memory and a slow client holds back its own reads only.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use twill_core::io::FileId;
use twill_core::{ConnId, Cx, Service};
use twill_http::{BodyKind, Error, RequestId, Server, ServerEvent};

use super::cache::{self, OpenFiles};
use super::cond::Conditions;
use super::files::{self, Body, Opened, Reply, RequestHead};

/// Bytes read per blocking read when streaming without file payloads.
pub const CHUNK: usize = 64 * 1024;

/// The static file service: one per machine (per connection when served
/// as a factory). Cloning is cheap.
#[derive(Clone, Debug)]
pub struct Web {
    root: Arc<PathBuf>,
    file_payloads: bool,
    cache: OpenFiles,
    streams: HashMap<RequestId, Stream>,
    files: HashMap<RequestId, FileId>,
}

/// A file body being read in chunks.
#[derive(Clone, Debug)]
struct Stream {
    file: Arc<File>,
    offset: u64,
    remaining: u64,
    reading: bool,
    sent_any: bool,
}

/// Results of the service's blocking work.
#[derive(Debug)]
pub enum Done {
    /// The answer to a request.
    Reply {
        /// The request.
        id: RequestId,
        /// Whether it was HEAD (send no body).
        head: bool,
        /// The answer.
        reply: Reply,
        /// The request's path, the file it led to and when it was asked
        /// for, for the cache.
        opened: Option<(String, Arc<Opened>, twill_core::UnixTime)>,
    },
    /// A chunk of a streamed body.
    Chunk {
        /// The request.
        id: RequestId,
        /// The bytes read, or why not.
        data: io::Result<Bytes>,
    },
}

impl Web {
    /// Serves the directory `root` (checked and canonicalized here: the
    /// error says what is wrong with it). With `file_payloads`, file bodies
    /// go out as `Payload::File` when the server allows them too
    /// ([`twill_http::ServerConfig::file_payloads`], off behind TLS), and
    /// are read in chunks otherwise.
    pub fn new(root: &Path, file_payloads: bool) -> Result<Web, String> {
        let canon =
            std::fs::canonicalize(root).map_err(|e| format!("--path {}: {e}", root.display()))?;
        if !canon.is_dir() {
            return Err(format!("--path {}: not a directory", root.display()));
        }
        Ok(Web {
            root: Arc::new(canon),
            file_payloads,
            cache: OpenFiles::new(),
            streams: HashMap::new(),
            files: HashMap::new(),
        })
    }

    /// The canonical root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn forget(&mut self, cx: &mut Cx<'_, Server, Done>, id: RequestId) {
        self.streams.remove(&id);
        if let Some(f) = self.files.remove(&id) {
            cx.release_file(f);
        }
    }

    fn forget_conn(&mut self, cx: &mut Cx<'_, Server, Done>, conn: ConnId) {
        let ids: Vec<RequestId> = self
            .streams
            .keys()
            .chain(self.files.keys())
            .filter(|id| id.conn() == conn)
            .copied()
            .collect();
        for id in ids {
            self.forget(cx, id);
        }
    }

    fn send(&mut self, cx: &mut Cx<'_, Server, Done>, id: RequestId, head: bool, reply: Reply) {
        let status = reply.status;
        tracing::debug!(?id, status, "response");
        let hdrs: Vec<(&str, &str)> = reply
            .headers
            .iter()
            .map(|(n, v)| (*n, v.as_str()))
            .collect();
        let m = cx.machine();
        let r = match reply.body {
            Body::Empty => m.respond(id, status, &hdrs, BodyKind::Empty),
            Body::Bytes(b) => m.respond_full(id, status, &hdrs, b),
            Body::File { file, offset, len } => {
                let r = m.respond(id, status, &hdrs, BodyKind::Length(len));
                if r.is_err() || head {
                    r.and_then(|()| m.finish(id, &[]))
                } else if self.file_payloads && cx.machine().config().file_payloads {
                    let fid = cx.add_file(file);
                    self.files.insert(id, fid);
                    let m = cx.machine();
                    m.send_file(id, fid, offset, len)
                        .and_then(|()| m.finish(id, &[]))
                } else {
                    self.streams.insert(
                        id,
                        Stream {
                            file,
                            offset,
                            remaining: len,
                            reading: false,
                            sent_any: false,
                        },
                    );
                    self.read_next(cx, id);
                    Ok(())
                }
            }
        };
        if let Err(e) = r {
            self.misuse(cx, id, &e);
        }
    }

    fn misuse(&mut self, cx: &mut Cx<'_, Server, Done>, id: RequestId, e: &Error) {
        tracing::warn!(?id, "web: {e}");
        self.forget(cx, id);
        let _ = cx.machine().close(id.conn());
    }

    /// Starts reading the next chunk if the response may take more now.
    ///
    /// The first chunk is read at once even when the response waits behind
    /// earlier pipelined ones (the machine buffers it): the machine owes
    /// [`ServerEvent::Writable`] only to a response that has sent body.
    fn read_next(&mut self, cx: &mut Cx<'_, Server, Done>, id: RequestId) {
        let writable = cx.machine().is_writable(id);
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        if s.reading || s.remaining == 0 || (s.sent_any && !writable) {
            return; // ServerEvent::Writable brings us back
        }
        s.reading = true;
        let file = s.file.clone();
        let offset = s.offset;
        let n = s.remaining.min(CHUNK as u64) as usize;
        cx.spawn_blocking(move || Done::Chunk {
            id,
            data: read_at(&file, offset, n),
        });
    }

    fn on_chunk(&mut self, cx: &mut Cx<'_, Server, Done>, id: RequestId, data: io::Result<Bytes>) {
        let Some(s) = self.streams.get_mut(&id) else {
            return; // aborted meanwhile
        };
        s.reading = false;
        let data = match data {
            Ok(d) if !d.is_empty() => d,
            other => {
                let why = match other {
                    Err(e) => e.to_string(),
                    Ok(_) => "the file shrank while being sent".to_string(),
                };
                tracing::warn!(?id, "web: reading the file: {why}");
                // The promised length cannot be kept: end the connection.
                self.forget(cx, id);
                let _ = cx.machine().close(id.conn());
                return;
            }
        };
        s.sent_any = true;
        s.offset += data.len() as u64;
        s.remaining -= data.len() as u64;
        let last = s.remaining == 0;
        let m = cx.machine();
        let r = m
            .send_body(id, data)
            .and_then(|()| if last { m.finish(id, &[]) } else { Ok(()) });
        match r {
            Err(e) => self.misuse(cx, id, &e),
            Ok(()) if last => {
                self.streams.remove(&id);
            }
            Ok(()) => self.read_next(cx, id),
        }
    }
}

/// Reads up to `n` bytes at `offset` (fewer only at the end of the file).
fn read_at(file: &File, offset: u64, n: usize) -> io::Result<Bytes> {
    let mut buf = vec![0; n];
    let mut got = 0;
    while got < n {
        match file.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(Bytes::from(buf))
}

fn to_head(req: &twill_http::RequestHead) -> RequestHead {
    RequestHead {
        method: req.method().to_string(),
        target: req.target().to_string(),
        headers: req
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v).into_owned()))
            .collect(),
    }
}

impl Service<Server> for Web {
    type Done = Done;

    fn on_event(&mut self, cx: &mut Cx<'_, Server, Done>, event: ServerEvent) {
        match event {
            ServerEvent::Request(req) => {
                let id = req.id;
                if !files::method_allowed(req.head.method()) {
                    // No file system work for these.
                    self.send(cx, id, false, Reply::method_not_allowed());
                    return;
                }
                let now = cx.now();
                let path = cache::key(req.head.target());
                if let Some(f) = self.cache.get(path, now.wall) {
                    // Resolved a moment ago: no file system work at all.
                    let h = req.head.headers();
                    let c = Conditions {
                        if_match: h.get_str("if-match"),
                        if_none_match: h.get_str("if-none-match"),
                        if_modified_since: h.get_str("if-modified-since"),
                        if_unmodified_since: h.get_str("if-unmodified-since"),
                        if_range: h.get_str("if-range"),
                    };
                    let reply = files::answer_file(&f, &c, h.get_str("range"), now.wall.secs());
                    self.send(cx, id, req.head.is_head(), reply);
                    return;
                }
                let path = path.to_string();
                let head = to_head(&req.head);
                let is_head = head.is_head();
                let root = self.root.clone();
                cx.spawn_blocking(move || {
                    let (reply, opened) = files::respond_opening(&root, &head, now.wall.secs());
                    Done::Reply {
                        id,
                        head: is_head,
                        reply,
                        opened: opened.map(|f| (path, f, now.wall)),
                    }
                });
            }
            ServerEvent::Writable { id } => self.read_next(cx, id),
            ServerEvent::ResponseDone { id } | ServerEvent::Aborted { id } => self.forget(cx, id),
            ServerEvent::Closed { conn } => self.forget_conn(cx, conn),
            ServerEvent::Violation {
                conn,
                error,
                status,
            } => {
                tracing::debug!(?conn, ?status, "web: bad request: {error}");
            }
            _ => {}
        }
    }

    fn on_done(&mut self, cx: &mut Cx<'_, Server, Done>, done: Done) {
        match done {
            Done::Reply {
                id,
                head,
                reply,
                opened,
            } => {
                if let Some((path, f, asked)) = opened {
                    // Trusted from when it was asked for, not from now:
                    // the resolution may have waited in the pool's queue.
                    self.cache.put(&path, f, asked);
                }
                if cx.machine().is_open(id) {
                    self.send(cx, id, head, reply);
                }
            }
            Done::Chunk { id, data } => self.on_chunk(cx, id, data),
        }
    }
}
