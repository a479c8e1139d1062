//! `twill ftp-get URL [-o FILE] [-c]`, `twill ftp-put FILE URL [-c]` and
//! `twill ftp-ls URL`: the [`twill_ftp::Client`] machine on the mio
//! reactor (inside the TLS layer for `ftpes://`, verified with `--ca` or
//! the bundled roots), with a service that feeds uploads from the file in chunks read
//! on the pool (the next one when the machine says the connection is
//! writable), writes downloads, and draws a progress bar when stderr is a
//! terminal.

use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use clap::Args;
use twill_core::{ClientEndpoint, Cx, Service};
use twill_ftp::{Client, ClientConfig, ClientEvent, ListFormat, OpId, Outcome};
use twill_tls::{Tls, TlsEvent, TlsService};

use super::url::FtpUrl;
use crate::get::progress::Bar;

/// Bytes read per blocking read of an upload.
const CHUNK: usize = 256 * 1024;

/// Flags shared by the ftp-* commands.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Active mode: the server connects back (EPRT/PORT) instead of
    /// passive (EPSV, falling back to PASV).
    #[arg(long)]
    pub active: bool,
    /// Give up when the server sends nothing for this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub timeout: u64,
    /// Trust anchors verifying an `ftpes://` server (AUTH TLS); given
    /// with a plain `ftp://` URL it is an error, never a silently
    /// unverified plaintext session.
    #[command(flatten)]
    pub ca: crate::client_tls::CaArgs,
}

/// `twill ftp-get`.
#[derive(Args, Debug, Clone)]
pub struct GetArgs {
    /// ftp://[user[:password]@]host[:port]/path (ftpes:// for AUTH TLS)
    pub url: String,
    /// Write to FILE instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Resume: keep what FILE holds and fetch the rest (REST).
    #[arg(short = 'c', long = "continue", requires = "output")]
    pub resume: bool,
    /// The shared flags.
    #[command(flatten)]
    pub common: Common,
}

/// `twill ftp-put`.
#[derive(Args, Debug, Clone)]
pub struct PutArgs {
    /// The local file.
    pub file: PathBuf,
    /// ftp://[user[:password]@]host[:port]/path (ftpes:// for AUTH TLS)
    pub url: String,
    /// Resume: ask the server how much it has (SIZE) and send the rest
    /// (REST).
    #[arg(short = 'c', long = "continue")]
    pub resume: bool,
    /// The shared flags.
    #[command(flatten)]
    pub common: Common,
}

/// `twill ftp-ls`.
#[derive(Args, Debug, Clone)]
pub struct LsArgs {
    /// ftp://[user[:password]@]host[:port]/path (ftpes:// for AUTH TLS)
    pub url: String,
    /// Names only (NLST) instead of the long form (LIST).
    #[arg(short = '1', long)]
    pub names: bool,
    /// The shared flags.
    #[command(flatten)]
    pub common: Common,
}

enum Job {
    Get {
        out: Box<dyn Write + Send>,
        path: String,
        offset: u64,
    },
    Put {
        file: Arc<File>,
        path: String,
        len: u64,
        offset: u64,
        resume: bool,
        reading: bool,
    },
    Ls {
        out: Box<dyn Write + Send>,
        path: String,
        format: ListFormat,
    },
}

/// Results of the client service's blocking work: a chunk of the upload.
pub struct Chunk(OpId, io::Result<Bytes>);

struct App {
    job: Job,
    size_op: Option<OpId>,
    main: Option<OpId>,
    bar: Option<Bar>,
    result: Arc<Mutex<Option<Result<(), String>>>>,
}

impl App {
    fn record(&mut self, r: Result<(), String>) {
        let mut slot = self.result.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(r);
        }
    }

    fn end(&mut self, cx: &mut Cx<'_, Client, Chunk>, r: Result<(), String>) {
        if let Some(b) = self.bar.as_mut() {
            b.finish();
        }
        self.record(r);
        let _ = cx.machine().quit();
    }

    fn logged_in(&mut self, cx: &mut Cx<'_, Client, Chunk>) {
        let m = cx.machine();
        let r = match &self.job {
            // SIZE first, for the progress bar's total (and resume).
            Job::Get { path, .. } => m.size(path).map(|id| self.size_op = Some(id)),
            Job::Put {
                path, resume: true, ..
            } => m.size(path).map(|id| self.size_op = Some(id)),
            Job::Put { .. } => {
                self.start_main(cx, None);
                return;
            }
            Job::Ls { path, format, .. } => m.list(path, *format).map(|id| self.main = Some(id)),
        };
        if let Err(e) = r {
            self.end(cx, Err(e.to_string()));
        }
    }

    fn start_main(&mut self, cx: &mut Cx<'_, Client, Chunk>, remote_size: Option<u64>) {
        let terminal = io::stderr().is_terminal();
        let m = cx.machine();
        let r = match &mut self.job {
            Job::Get { path, offset, .. } => {
                let mut bar = Bar::with_terminal(remote_size, terminal);
                bar.advance(*offset);
                self.bar = Some(bar);
                m.get(path, *offset)
            }
            Job::Put {
                path, len, offset, ..
            } => {
                *offset = remote_size.unwrap_or(0).min(*len);
                let mut bar = Bar::with_terminal(Some(*len), terminal);
                bar.advance(*offset);
                self.bar = Some(bar);
                m.put(path, *offset, false)
            }
            Job::Ls { .. } => return,
        };
        match r {
            Ok(id) => self.main = Some(id),
            Err(e) => self.end(cx, Err(e.to_string())),
        }
    }

    fn read_next(&mut self, cx: &mut Cx<'_, Client, Chunk>) {
        let Some(id) = self.main else { return };
        if !cx.machine().is_writable(id) {
            return;
        }
        if let Job::Put {
            file,
            len,
            offset,
            reading,
            ..
        } = &mut self.job
        {
            if *reading {
                return;
            }
            if *offset >= *len {
                let _ = cx.machine().finish(id);
                return;
            }
            *reading = true;
            let (f, at) = (file.clone(), *offset);
            let n = (*len - *offset).min(CHUNK as u64) as usize;
            cx.spawn_blocking(move || {
                let mut buf = vec![0; n];
                let r = f.read_exact_at(&mut buf, at).map(|()| Bytes::from(buf));
                Chunk(id, r)
            });
        }
    }
}

impl Service<Client> for App {
    type Done = Chunk;

    fn on_event(&mut self, cx: &mut Cx<'_, Client, Chunk>, event: ClientEvent) {
        match event {
            ClientEvent::LoggedIn => self.logged_in(cx),
            ClientEvent::Data { id, data } if Some(id) == self.main => {
                let out = match &mut self.job {
                    Job::Get { out, .. } | Job::Ls { out, .. } => out,
                    Job::Put { .. } => return,
                };
                if let Err(e) = out.write_all(&data) {
                    self.end(cx, Err(format!("writing the output: {e}")));
                    return;
                }
                if let Some(b) = self.bar.as_mut() {
                    b.advance(data.len() as u64);
                }
            }
            ClientEvent::Writable { id } if Some(id) == self.main => self.read_next(cx),
            ClientEvent::Done { id, result } if Some(id) == self.size_op => {
                let n = match result {
                    Ok(Outcome::Size(n)) => Some(n),
                    _ => None,
                };
                self.start_main(cx, n);
            }
            ClientEvent::Done { id, result } if Some(id) == self.main => {
                let r = match result {
                    Ok(_) => match &mut self.job {
                        Job::Get { out, .. } | Job::Ls { out, .. } => {
                            out.flush().map_err(|e| format!("writing the output: {e}"))
                        }
                        Job::Put { .. } => Ok(()),
                    },
                    Err(e) => Err(e.to_string()),
                };
                self.end(cx, r);
            }
            ClientEvent::Failed(e) => self.record(Err(e.to_string())),
            ClientEvent::Closed => {
                self.record(Err("the server closed the connection".into()));
                cx.stop();
            }
            _ => {}
        }
    }

    fn on_done(&mut self, cx: &mut Cx<'_, Client, Chunk>, Chunk(id, r): Chunk) {
        if let Job::Put {
            offset, reading, ..
        } = &mut self.job
        {
            *reading = false;
            match r {
                Ok(b) => {
                    *offset += b.len() as u64;
                    if let Some(bar) = self.bar.as_mut() {
                        bar.advance(b.len() as u64);
                    }
                    if cx.machine().send(id, b).is_ok() {
                        self.read_next(cx);
                    }
                }
                Err(e) => self.end(cx, Err(format!("reading the file: {e}"))),
            }
        }
    }
}

fn run_job(url: &FtpUrl, common: &Common, job: Job) -> Result<(), String> {
    if common.ca.ca.is_some() && !url.tls {
        return Err("--ca verifies TLS: use an ftpes:// URL (AUTH TLS)".into());
    }
    let cfg = ClientConfig {
        user: url.user.clone(),
        password: url.password.clone(),
        active: common.active,
        timeout: twill_core::Duration::from_secs(common.timeout.max(1)),
        tls: url.tls.then(|| url.host.clone()),
        ..ClientConfig::default()
    };
    let result = Arc::new(Mutex::new(None));
    let app = App {
        job,
        size_op: None,
        main: None,
        bar: None,
        result: result.clone(),
    };
    let host = url.host.replace(':', "\\:");
    let endpoint: ClientEndpoint =
        format!("tcp:{host}:{}:timeout={}", url.port, common.timeout.max(1))
            .parse()
            .map_err(|e| format!("{e}"))?;
    let mut reactor = twill_mio::Reactor::new().map_err(|e| e.to_string())?;
    if url.tls {
        let ctx = common.ca.context(&[])?;
        let failure = result.clone();
        let svc = TlsService::new(app).on_tls(move |e| {
            if let TlsEvent::Failed { error, .. } = e {
                let mut slot = failure.lock().unwrap_or_else(|e| e.into_inner());
                slot.get_or_insert_with(|| Err(format!("TLS: {error}")));
            }
        });
        let _serving = reactor.connect(&endpoint, Tls::new(Client::new(cfg), &ctx), svc);
        reactor.run().map_err(|e| e.to_string())?;
    } else {
        let _serving = reactor.connect(&endpoint, Client::new(cfg), app);
        reactor.run().map_err(|e| e.to_string())?;
    }
    let r = result.lock().unwrap_or_else(|e| e.into_inner()).take();
    r.unwrap_or_else(|| Err("the connection ended early".into()))
}

/// Runs `twill ftp-get`.
pub fn get(a: GetArgs) -> Result<(), String> {
    let url: FtpUrl = a.url.parse()?;
    if url.path.is_empty() || url.path.ends_with('/') {
        return Err(format!("{}: names a directory; use twill ftp-ls", a.url));
    }
    let (out, offset): (Box<dyn Write + Send>, u64) = match &a.output {
        Some(p) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .append(a.resume)
                .truncate(!a.resume)
                .open(p)
                .map_err(|e| format!("{}: {e}", p.display()))?;
            let at = if a.resume {
                f.metadata().map(|m| m.len()).unwrap_or(0)
            } else {
                0
            };
            (Box::new(io::BufWriter::with_capacity(1 << 20, f)), at)
        }
        None => (Box::new(io::BufWriter::new(io::stdout())), 0),
    };
    run_job(
        &url,
        &a.common,
        Job::Get {
            out,
            path: url.path.clone(),
            offset,
        },
    )
}

/// Runs `twill ftp-put`.
pub fn put(a: PutArgs) -> Result<(), String> {
    let url: FtpUrl = a.url.parse()?;
    let mut path = url.path.clone();
    if path.is_empty() || path.ends_with('/') {
        let name = a
            .file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| format!("{}: no file name", a.file.display()))?;
        path.push_str(&name);
    }
    let file = File::open(&a.file).map_err(|e| format!("{}: {e}", a.file.display()))?;
    let len = file
        .metadata()
        .map_err(|e| format!("{}: {e}", a.file.display()))?
        .len();
    run_job(
        &url,
        &a.common,
        Job::Put {
            file: Arc::new(file),
            path,
            len,
            offset: 0,
            resume: a.resume,
            reading: false,
        },
    )
}

/// Runs `twill ftp-ls`.
pub fn ls(a: LsArgs) -> Result<(), String> {
    let url: FtpUrl = a.url.parse()?;
    let format = if a.names {
        ListFormat::Nlst
    } else {
        ListFormat::List
    };
    run_job(
        &url,
        &a.common,
        Job::Ls {
            out: Box::new(io::BufWriter::new(io::stdout())),
            path: url.path.clone(),
            format,
        },
    )
}
