//! `twill get` on the wire: [`twill_http::Client`] driven by the std
//! driver's blocking [`twill_std::Conn`], one connection per request,
//! following redirects; for `https://` the client runs inside the
//! [`twill_tls::Tls`] layer.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use twill_core::{ClientEndpoint, ConnId};
use twill_http::{BodyKind, Client, ClientConfig, ClientEvent};
use twill_std::Conn;
use twill_tls::{Tls, TlsContext, TlsEvent};

use super::progress::Bar;
use super::redirect::Redirects;
use super::url::Url;
use super::GetError;

/// How long a connect may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// What to fetch and where to put it.
#[derive(Clone, Debug, Default)]
pub struct Fetch {
    /// The URL as given.
    pub url: String,
    /// Write the body here instead of stdout.
    pub output: Option<PathBuf>,
    /// Send HEAD and print the response head only.
    pub head_only: bool,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// Most redirects to follow.
    pub max_redirects: u32,
    /// Which CAs verify `https://` servers.
    pub ca: crate::client_tls::CaArgs,
    /// Fail when the server sends nothing for this long while a response
    /// is due (the client machine's response timeout).
    pub timeout: Duration,
}

/// One connection: plain, or TLS around the HTTP client.
enum Transport {
    Plain(Box<Conn<Client>>),
    Tls(Box<Conn<Tls<Client>>>),
}

impl Transport {
    fn client(&mut self) -> &mut Client {
        match self {
            Transport::Plain(c) => c.machine(),
            Transport::Tls(c) => c.machine().inner_mut(),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(c) => c.flush(),
            Transport::Tls(c) => c.flush(),
        }
    }

    /// The HTTP client's next event; a failed TLS session is an error.
    fn next_event(&mut self) -> Result<Option<ClientEvent>, String> {
        match self {
            Transport::Plain(c) => c.next_event().map_err(|e| e.to_string()),
            Transport::Tls(c) => loop {
                match c.next_event().map_err(|e| e.to_string())? {
                    None => return Ok(None),
                    Some(TlsEvent::Inner(e)) => return Ok(Some(e)),
                    Some(TlsEvent::Failed { error, .. }) => return Err(format!("TLS: {error}")),
                    Some(_) => {}
                }
            },
        }
    }

    /// Waits until the HTTP client has the connection (after the TLS
    /// handshake, if any); returns its id.
    fn ready(&mut self) -> Result<ConnId, String> {
        loop {
            match self.next_event()? {
                Some(ClientEvent::Connected { conn, .. }) => return Ok(conn),
                Some(ClientEvent::Closed { .. }) | None => {
                    return Err("the server closed the connection".into())
                }
                Some(_) => {}
            }
        }
    }
}

/// Where the body goes: stdout or a file created at the first byte of a
/// successful response (and removed if the transfer then fails).
struct Sink {
    path: Option<PathBuf>,
    file: Option<BufWriter<File>>,
}

impl Sink {
    fn write(&mut self, data: &[u8]) -> Result<(), GetError> {
        let r = match &self.path {
            None => io::stdout().lock().write_all(data),
            Some(p) => {
                if self.file.is_none() {
                    let f = File::create(p).map_err(|e| {
                        GetError::failed(format!("cannot create {}: {e}", p.display()))
                    })?;
                    self.file = Some(BufWriter::with_capacity(256 * 1024, f));
                }
                match &mut self.file {
                    Some(f) => f.write_all(data),
                    None => Ok(()),
                }
            }
        };
        r.map_err(|e| GetError::failed(format!("writing {}: {e}", self.name())))
    }

    fn name(&self) -> String {
        self.path
            .as_deref()
            .map_or_else(|| "stdout".to_string(), |p| p.display().to_string())
    }

    fn finish(mut self) -> Result<(), GetError> {
        let name = self.name();
        let r = match (&self.path, self.file.take()) {
            (None, _) => io::stdout().lock().flush(),
            (Some(p), None) => File::create(p).map(drop),
            (Some(_), Some(f)) => f
                .into_inner()
                .map_err(|e| e.into_error())
                .and_then(|f| f.sync_all()),
        };
        r.map_err(|e| GetError::failed(format!("writing {name}: {e}")))
    }

    fn abandon(mut self) {
        if let (Some(p), Some(_)) = (&self.path, self.file.take()) {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The response head as text: the status line and fields.
fn head_text(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

/// Runs one `twill get`.
pub fn run(f: &Fetch) -> Result<(), GetError> {
    let mut url = Url::parse(&f.url).map_err(|e| GetError::usage(format!("{}: {e}", f.url)))?;
    let mut method = if f.head_only { "HEAD" } else { "GET" }.to_string();
    let mut redirects = Redirects::new(f.max_redirects);
    let mut tls: Option<TlsContext> = None;
    loop {
        let mut conn = connect(&url, &f.ca, f.timeout, &mut tls)?;
        let mut headers: Vec<(&str, &str)> = Vec::new();
        let host = url.host_header();
        if !f
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("host"))
        {
            headers.push(("Host", &host));
        }
        headers.extend(f.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        let fail = |what: String| GetError::failed(format!("{url}: {what}"));
        let cid = conn.ready().map_err(fail)?;
        let id = conn
            .client()
            .request(cid, &method, &url.target, &headers, BodyKind::Empty)
            .map_err(|e| GetError::usage(format!("cannot send the request: {e}")))?;
        conn.flush().map_err(|e| fail(e.to_string()))?;
        // The response head.
        let (head, _) = loop {
            match conn.next_event().map_err(fail)? {
                Some(ClientEvent::Response {
                    id: rid,
                    head,
                    body,
                }) if rid == id => break (head, body),
                Some(ClientEvent::Violation { error, .. }) => {
                    return Err(fail(format!("bad response: {error}")))
                }
                Some(ClientEvent::Aborted { .. } | ClientEvent::Closed { .. }) | None => {
                    return Err(fail(
                        "the server closed the connection without a response".into(),
                    ))
                }
                Some(_) => {}
            }
        };
        let status = head.status();
        let location = head.headers().get_str("location").map(str::to_string);
        match redirects.next(&url, &method, status, location.as_deref()) {
            Ok(Some(next)) => {
                tracing::debug!("{status} {} -> {}", head.reason(), next.url);
                url = next.url;
                method = next.method;
                continue;
            }
            Ok(None) => {}
            Err(e) => return Err(fail(e.to_string())),
        }
        let status_line = format!("{status} {}", head.reason());
        if f.head_only {
            let mut sink = Sink {
                path: f.output.clone(),
                file: None,
            };
            sink.write(head_text(head.raw()).as_bytes())?;
            sink.finish()?;
            return if status >= 400 {
                Err(fail(status_line))
            } else {
                Ok(())
            };
        }
        if status >= 400 {
            return Err(fail(status_line));
        }
        let total = head
            .headers()
            .get_str("content-length")
            .and_then(|v| v.trim().parse::<u64>().ok());
        return receive(&mut conn, id, total, f.output.as_deref(), &url);
    }
}

fn connect(
    url: &Url,
    ca: &crate::client_tls::CaArgs,
    response_timeout: Duration,
    tls: &mut Option<TlsContext>,
) -> Result<Transport, GetError> {
    let ep = ClientEndpoint::Tcp {
        host: url.host.clone(),
        port: url.port,
        timeout: Some(CONNECT_TIMEOUT),
        // TLS is a layer around the machine, not the driver's.
        tls: None,
    };
    let client = Client::new(ClientConfig {
        // A stalled server fails the transfer rather than hanging it.
        response_timeout: Some(response_timeout),
        ..ClientConfig::default()
    });
    let r = if url.tls {
        if tls.is_none() {
            let ctx = ca.context(&[]).map_err(GetError::usage)?;
            *tls = Some(ctx);
        }
        match tls.as_ref() {
            Some(ctx) => Conn::connect(&ep, Tls::client(client, ctx, &url.host))
                .map(|c| Transport::Tls(Box::new(c))),
            None => Err(io::Error::other("no TLS context")),
        }
    } else {
        Conn::connect(&ep, client).map(|c| Transport::Plain(Box::new(c)))
    };
    r.map_err(|e| {
        let what = match e.kind() {
            io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
            io::ErrorKind::TimedOut => "connect timed out".to_string(),
            _ => {
                // The resolver's message may already name the host.
                let m = e.to_string();
                let prefix = format!("{}: ", url.host);
                m.strip_prefix(&prefix).map_or(m.clone(), str::to_string)
            }
        };
        GetError::failed(format!("cannot connect to {}: {what}", url.host_header()))
    })
}

fn receive(
    conn: &mut Transport,
    id: twill_http::RequestId,
    total: Option<u64>,
    output: Option<&Path>,
    url: &Url,
) -> Result<(), GetError> {
    let mut sink = Sink {
        path: output.map(Path::to_path_buf),
        file: None,
    };
    // No bar over a body being printed on the same terminal.
    let show = io::stderr().is_terminal() && (output.is_some() || !io::stdout().is_terminal());
    let mut bar = Bar::with_terminal(total, show);
    let r = (|| loop {
        let fail = |what: String| GetError::failed(format!("{url}: {what}"));
        match conn.next_event().map_err(fail)? {
            Some(ClientEvent::Body { id: rid, data }) if rid == id => {
                sink.write(&data)?;
                bar.advance(data.len() as u64);
            }
            Some(ClientEvent::BodyEnd { id: rid, .. }) if rid == id => return Ok(()),
            Some(ClientEvent::Violation { error, .. }) => {
                return Err(fail(format!("bad response: {error}")))
            }
            Some(ClientEvent::Aborted { .. } | ClientEvent::Closed { .. }) | None => {
                return Err(fail(
                    "the connection closed before the body was complete".into(),
                ))
            }
            Some(_) => {}
        }
    })();
    bar.finish();
    match r {
        Ok(()) => sink.finish(),
        Err(e) => {
            sink.abandon();
            Err(e)
        }
    }
}
