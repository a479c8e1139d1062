//! The service behind `twill ftp`: answers a [`Server`] machine's
//! requests from a directory tree, hosted unchanged by every driver.
//!
//! Nothing here blocks the event thread: password checks, every
//! file-system call, reads and writes run through `Cx::spawn_blocking`.
//! Downloads go out as `Payload::File` (`sendfile`) in TYPE I when the
//! machine allows file payloads, and are otherwise read in [`CHUNK`]s, the
//! next one only once the machine says the data connection is writable.
//! Uploads are written in the order they arrive, one write in flight,
//! each acknowledged with `Server::consumed` so a slow disk pauses the
//! client rather than filling memory.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use twill_core::io::FileId;
use twill_core::{Cx, Service};
use twill_ftp::{FsError, Op, RequestId, Server, ServerEvent};

use super::fs;

/// Bytes read per blocking read when a download is streamed.
pub const CHUNK: usize = 256 * 1024;

/// Checks a user's password (CPU-heavy: called on the pool).
pub type Verifier = Arc<dyn Fn(&str, &[u8]) -> bool + Send + Sync>;

/// The FTP file service; one per control connection. Cloning is cheap.
#[derive(Clone)]
pub struct Ftp {
    root: Arc<PathBuf>,
    verify: Verifier,
    file_payloads: bool,
    /// Writable unless anonymous.
    writable: bool,
    download: Option<Download>,
    upload: Option<Upload>,
}

#[derive(Clone)]
struct Download {
    id: RequestId,
    /// `None` when sent as a registered file payload.
    file: Option<Arc<File>>,
    offset: u64,
    remaining: u64,
    reading: bool,
    registered: Option<FileId>,
}

#[derive(Clone)]
struct Upload {
    id: RequestId,
    file: Arc<File>,
    offset: u64,
    buffered: BytesMut,
    writing: bool,
    ended: bool,
    failed: bool,
}

/// Results of the service's blocking work.
pub enum Done {
    /// A password check.
    Login(RequestId, bool),
    /// A request answered on the control connection.
    Answer(RequestId, Result<Answer, FsError>),
    /// A file opened for RETR: file, its length, where to start.
    Opened(RequestId, Result<(File, u64, u64), FsError>),
    /// A file opened for STOR/APPE: file, where writing starts.
    Created(RequestId, Result<(File, u64), FsError>),
    /// A chunk of a streamed download.
    Chunk(RequestId, io::Result<Bytes>),
    /// A write of `n` bytes of an upload.
    Written(RequestId, usize, io::Result<()>),
}

/// A successful answer to a request.
pub enum Answer {
    /// CWD, MKD, RMD, DELE, RNFR, RNTO.
    Ok,
    /// SIZE.
    Size(u64),
    /// MDTM.
    Modified(i64),
    /// MLST.
    Facts(String),
    /// LIST, NLST, MLSD, STAT path.
    Listing(Vec<u8>),
}

impl Ftp {
    /// Serves the directory `root` (checked and canonicalized here).
    pub fn new(root: &Path, verify: Verifier, file_payloads: bool) -> Result<Ftp, String> {
        let canon =
            std::fs::canonicalize(root).map_err(|e| format!("--root {}: {e}", root.display()))?;
        if !canon.is_dir() {
            return Err(format!("--root {}: not a directory", root.display()));
        }
        Ok(Ftp {
            root: Arc::new(canon),
            verify,
            file_payloads,
            writable: true,
            download: None,
            upload: None,
        })
    }

    fn request(&mut self, cx: &mut Cx<'_, Server, Done>, id: RequestId, op: Op) {
        let root = self.root.clone();
        let writable = self.writable;
        let now = cx.now().wall.secs();
        match op {
            Op::Retr { path, offset, .. } => cx.spawn_blocking(move || {
                Done::Opened(
                    id,
                    fs::open_read(&root, &path).map(|(f, len)| (f, len, offset)),
                )
            }),
            Op::Stor {
                path,
                offset,
                append,
                ..
            } => cx.spawn_blocking(move || {
                Done::Created(id, fs::open_write(&root, &path, offset, append))
            }),
            op => cx.spawn_blocking(move || {
                let r = match op {
                    Op::List { path, format } => {
                        fs::listing(&root, &path, format, writable, now).map(Answer::Listing)
                    }
                    Op::Mlst { path } => fs::facts(&root, &path, writable).map(Answer::Facts),
                    Op::Size { path } => fs::size(&root, &path).map(Answer::Size),
                    Op::Mdtm { path } => fs::modified(&root, &path).map(Answer::Modified),
                    Op::Cwd { path } => fs::check_dir(&root, &path).map(|()| Answer::Ok),
                    Op::Mkd { path } => fs::mkdir(&root, &path).map(|()| Answer::Ok),
                    Op::Rmd { path } => fs::rmdir(&root, &path).map(|()| Answer::Ok),
                    Op::Dele { path } => fs::delete(&root, &path).map(|()| Answer::Ok),
                    Op::RenameFrom { path } => fs::exists(&root, &path).map(|()| Answer::Ok),
                    Op::Rename { from, to } => fs::rename(&root, &from, &to).map(|()| Answer::Ok),
                    _ => Err(FsError::Other("unsupported request".into())),
                };
                Done::Answer(id, r)
            }),
        }
    }

    fn answer(&mut self, cx: &mut Cx<'_, Server, Done>, id: RequestId, r: Result<Answer, FsError>) {
        let m = cx.machine();
        let res = match r {
            Err(e) => m.fail(id, e),
            Ok(Answer::Ok) => m.done(id),
            Ok(Answer::Size(n)) => m.size(id, n),
            Ok(Answer::Modified(t)) => m.modified(id, t),
            Ok(Answer::Facts(f)) => m.facts(id, &f),
            Ok(Answer::Listing(l)) => m.listing(id, Bytes::from(l)),
        };
        if let Err(e) = res {
            // The client aborted meanwhile: nothing to answer.
            tracing::debug!(?id, "ftp: answer dropped: {e}");
        }
    }

    fn opened(
        &mut self,
        cx: &mut Cx<'_, Server, Done>,
        id: RequestId,
        r: Result<(File, u64, u64), FsError>,
    ) {
        if !cx.machine().is_open(id) {
            return;
        }
        let (file, len, offset) = match r {
            Ok(x) => x,
            Err(e) => {
                let _ = cx.machine().fail(id, e);
                return;
            }
        };
        let remaining = len.saturating_sub(offset);
        // `can_send_file`: TYPE I on a plain data connection (PROT P goes
        // through the TLS layer, which needs the bytes).
        if self.file_payloads && cx.machine().can_send_file(id) {
            let fid = cx.add_file(file);
            let m = cx.machine();
            let r = if remaining > 0 {
                m.send_file(id, fid, offset, remaining)
            } else {
                Ok(())
            }
            .and_then(|()| m.finish(id));
            self.download = Some(Download {
                id,
                file: None,
                offset,
                remaining: 0,
                reading: false,
                registered: Some(fid),
            });
            if let Err(e) = r {
                tracing::debug!(?id, "ftp: download dropped: {e}");
            }
            return;
        }
        self.download = Some(Download {
            id,
            file: Some(Arc::new(file)),
            offset,
            remaining,
            reading: false,
            registered: None,
        });
        if remaining == 0 {
            let _ = cx.machine().finish(id);
            return;
        }
        self.read_next(cx, id);
    }

    fn read_next(&mut self, cx: &mut Cx<'_, Server, Done>, id: RequestId) {
        let writable = cx.machine().is_writable(id);
        let Some(d) = self.download.as_mut().filter(|d| d.id == id) else {
            return;
        };
        if d.reading || d.remaining == 0 || !writable {
            return;
        }
        let Some(file) = d.file.clone() else {
            return;
        };
        d.reading = true;
        let offset = d.offset;
        let n = d.remaining.min(CHUNK as u64) as usize;
        cx.spawn_blocking(move || Done::Chunk(id, read_at(&file, offset, n)));
    }

    fn chunk(&mut self, cx: &mut Cx<'_, Server, Done>, id: RequestId, data: io::Result<Bytes>) {
        let Some(d) = self.download.as_mut().filter(|d| d.id == id) else {
            return;
        };
        d.reading = false;
        let data = match data {
            Ok(b) if !b.is_empty() => b,
            other => {
                let why = match other {
                    Err(e) => e.to_string(),
                    Ok(_) => "the file shrank while being sent".into(),
                };
                self.download = None;
                let _ = cx.machine().fail(id, FsError::Other(why));
                return;
            }
        };
        d.offset += data.len() as u64;
        d.remaining = d.remaining.saturating_sub(data.len() as u64);
        let last = d.remaining == 0;
        let m = cx.machine();
        let r = m
            .send_data(id, data)
            .and_then(|()| if last { m.finish(id) } else { Ok(()) });
        match r {
            Err(_) => self.download = None,
            Ok(()) if !last => self.read_next(cx, id),
            Ok(()) => {}
        }
    }

    fn created(
        &mut self,
        cx: &mut Cx<'_, Server, Done>,
        id: RequestId,
        r: Result<(File, u64), FsError>,
    ) {
        if !cx.machine().is_open(id) {
            return;
        }
        match r {
            Err(e) => {
                let _ = cx.machine().fail(id, e);
            }
            Ok((file, offset)) => {
                self.upload = Some(Upload {
                    id,
                    file: Arc::new(file),
                    offset,
                    buffered: BytesMut::new(),
                    writing: false,
                    ended: false,
                    failed: false,
                });
                let _ = cx.machine().start_upload(id);
            }
        }
    }

    /// Starts the next write if none is in flight; ends the upload once
    /// everything is written and the client finished.
    fn write_next(&mut self, cx: &mut Cx<'_, Server, Done>) {
        let Some(u) = self.upload.as_mut() else {
            return;
        };
        if u.writing || u.failed {
            return;
        }
        if u.buffered.is_empty() {
            if u.ended {
                let id = u.id;
                self.upload = None;
                let _ = cx.machine().done(id);
            }
            return;
        }
        u.writing = true;
        let data = u.buffered.split().freeze();
        let (file, offset, id) = (u.file.clone(), u.offset, u.id);
        u.offset += data.len() as u64;
        cx.spawn_blocking(move || Done::Written(id, data.len(), file.write_all_at(&data, offset)));
    }

    fn written(
        &mut self,
        cx: &mut Cx<'_, Server, Done>,
        id: RequestId,
        n: usize,
        r: io::Result<()>,
    ) {
        let Some(u) = self.upload.as_mut().filter(|u| u.id == id) else {
            return;
        };
        u.writing = false;
        if let Err(e) = r {
            u.failed = true;
            self.upload = None;
            let _ = cx.machine().fail(id, fs::fs_error(&e));
            return;
        }
        let _ = cx.machine().consumed(id, n);
        self.write_next(cx);
    }

    fn forget(&mut self, cx: &mut Cx<'_, Server, Done>, id: RequestId) {
        if let Some(d) = self.download.take() {
            if d.id != id {
                self.download = Some(d);
            } else if let Some(f) = d.registered {
                cx.release_file(f);
            }
        }
        if self.upload.as_ref().is_some_and(|u| u.id == id) {
            self.upload = None;
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

impl Service<Server> for Ftp {
    type Done = Done;

    fn on_event(&mut self, cx: &mut Cx<'_, Server, Done>, event: ServerEvent) {
        match event {
            ServerEvent::Login { id, user, password } => {
                let verify = self.verify.clone();
                cx.spawn_blocking(move || Done::Login(id, verify(&user, password.as_bytes())));
            }
            ServerEvent::LoggedIn { user, anonymous } => {
                tracing::info!(user, anonymous, "ftp: login");
                self.writable = !anonymous;
            }
            ServerEvent::Request { id, op } => self.request(cx, id, op),
            ServerEvent::Upload { id, data } => {
                if let Some(u) = self.upload.as_mut().filter(|u| u.id == id) {
                    u.buffered.extend_from_slice(&data);
                    self.write_next(cx);
                }
            }
            ServerEvent::UploadEnd { id } => {
                if let Some(u) = self.upload.as_mut().filter(|u| u.id == id) {
                    u.ended = true;
                    self.write_next(cx);
                }
            }
            ServerEvent::Writable { id } => self.read_next(cx, id),
            ServerEvent::Aborted { id } | ServerEvent::TransferDone { id, .. } => {
                self.forget(cx, id)
            }
            ServerEvent::Violation(v) => tracing::info!("ftp: {v}"),
            ServerEvent::Closed => {
                if let Some(d) = self.download.take() {
                    if let Some(f) = d.registered {
                        cx.release_file(f);
                    }
                }
                self.upload = None;
            }
            _ => {}
        }
    }

    fn on_done(&mut self, cx: &mut Cx<'_, Server, Done>, done: Done) {
        match done {
            Done::Login(id, ok) => {
                if let Err(e) = cx.machine().login(id, ok) {
                    tracing::debug!(?id, "ftp: login answer dropped: {e}");
                }
            }
            Done::Answer(id, r) => self.answer(cx, id, r),
            Done::Opened(id, r) => self.opened(cx, id, r),
            Done::Created(id, r) => self.created(cx, id, r),
            Done::Chunk(id, r) => self.chunk(cx, id, r),
            Done::Written(id, n, r) => self.written(cx, id, n, r),
        }
    }
}
