//! `twill ws URL`: a WebSocket client like websocat. Each line of stdin
//! goes out as a text message; every message that arrives is printed
//! (text with a newline, binary as raw bytes). At the end of stdin the
//! client starts the close handshake and exits once the server has
//! closed. `wss://` runs the same machines inside the twill-tls layer.
//!
//! The machine is twill-http's client until the `101`, then a
//! [`WebSocket`] in the client role (`Switch<Client, WebSocket>`), driven
//! by the tokio driver's `Conn` (whose `next_event` is cancellation-safe,
//! so it races stdin in a `select!`).

use std::cell::RefMut;
use std::io::{BufRead, Write};
use std::time::Duration;

use twill_core::switch::Handover;
use twill_core::{ClientEndpoint, ConnId, Switch, SwitchEvent};
use twill_http::{BodyKind, Client, ClientConfig, ClientEvent};
use twill_tls::{Tls, TlsEvent};
use twill_tokio::Conn;
use twill_websocket::{
    ClientHandshake, CloseCode, Config, DeflateConfig, Kind, Role, WebSocket, WsEvent,
};

use crate::get::url::Url;

/// How the HTTP connection becomes a WebSocket (checks the `101`).
pub type Upgrade = Box<dyn FnMut(ClientEvent) -> Result<Handover<WebSocket>, ClientEvent> + Send>;

/// HTTP until the `101`, then WebSocket.
pub type WsClient = Switch<Client, WebSocket, Upgrade>;

/// How long connecting and the handshake may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The flags of `twill ws`.
#[derive(clap::Args, Debug, Clone)]
pub struct WsArgs {
    /// ws://HOST[:PORT]/PATH or wss://…
    pub url: String,
    /// Offer this subprotocol (repeatable, most preferred first).
    #[arg(long = "protocol", value_name = "NAME")]
    pub protocols: Vec<String>,
    /// Do not offer permessage-deflate.
    #[arg(long)]
    pub no_deflate: bool,
    /// An extra request header, 'Name: value' (repeatable), e.g. Origin.
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE", value_parser = crate::get::parse_header)]
    pub headers: Vec<(String, String)>,
    /// CA certificates for wss://.
    #[command(flatten)]
    pub ca: crate::client_tls::CaArgs,
}

/// The machine for a handshake: verifies the `101` and hands over.
pub fn machine(hs: ClientHandshake, cfg: Config) -> WsClient {
    let mut rng = Some(twill_driver::os_rng());
    let upgrade: Upgrade = Box::new(move |e| {
        if let ClientEvent::Upgraded {
            conn,
            head,
            rest,
            unflushed,
            ..
        } = &e
        {
            // A failed check gives the event back: the session reports it.
            if let Ok(n) = hs.verify(head) {
                let next = WebSocket::new(*conn, Role::Client, cfg.clone(), n.deflate, rng.take());
                return Ok(Handover {
                    conn: *conn,
                    rest: rest.clone(),
                    next,
                    unflushed: *unflushed,
                });
            }
        }
        Err(e)
    });
    Switch::new(Client::new(ClientConfig::default()), upgrade)
}

enum Transport {
    Plain(Conn<WsClient>),
    Tls(Conn<Tls<WsClient>>),
}

impl Transport {
    fn switch(&mut self) -> RefMut<'_, WsClient> {
        match self {
            Transport::Plain(c) => c.machine(),
            Transport::Tls(c) => RefMut::map(c.machine(), |t| t.inner_mut()),
        }
    }

    async fn next(&mut self) -> Result<Option<SwitchEvent<ClientEvent, WsEvent>>, String> {
        match self {
            Transport::Plain(c) => c.next_event().await.map_err(|e| e.to_string()),
            Transport::Tls(c) => loop {
                match c.next_event().await.map_err(|e| e.to_string())? {
                    None => return Ok(None),
                    Some(TlsEvent::Inner(e)) => return Ok(Some(e)),
                    Some(TlsEvent::Failed { error, .. }) => return Err(format!("TLS: {error}")),
                    Some(_) => {}
                }
            },
        }
    }
}

/// Runs `twill ws`; returns the exit code (0 after a normal close, 1 for
/// a failure, 2 for a bad URL or flag).
pub fn run(a: WsArgs) -> i32 {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("twill ws: {e}");
            return 1;
        }
    };
    match rt.block_on(session(&a)) {
        Ok(()) => 0,
        Err((code, msg)) => {
            eprintln!("twill ws: {msg}");
            code
        }
    }
}

fn http_url(s: &str) -> Result<Url, String> {
    let mapped = if let Some(r) = s.strip_prefix("ws://") {
        format!("http://{r}")
    } else if let Some(r) = s.strip_prefix("wss://") {
        format!("https://{r}")
    } else {
        return Err(format!("{s}: not a ws:// or wss:// URL"));
    };
    Url::parse(&mapped).map_err(|e| format!("{s}: {e}"))
}

async fn session(a: &WsArgs) -> Result<(), (i32, String)> {
    let usage = |m: String| (crate::cli::EXIT_USAGE, m);
    let fail = |m: String| (1, m);
    let url = http_url(&a.url).map_err(usage)?;
    let mut rng = twill_driver::os_rng();
    let protocols: Vec<&str> = a.protocols.iter().map(String::as_str).collect();
    let deflate = (!a.no_deflate).then(DeflateConfig::default);
    let hs = ClientHandshake::new(&mut *rng, &protocols, deflate);
    let sw = machine(hs.clone(), Config::default());
    let ep = ClientEndpoint::Tcp {
        host: url.host.clone(),
        port: url.port,
        timeout: Some(CONNECT_TIMEOUT),
        tls: None,
    };
    let cannot = |e: std::io::Error| fail(format!("cannot connect to {}: {e}", url.host_header()));
    let mut t = if url.tls {
        let ctx = a.ca.context(&[]).map_err(usage)?;
        Transport::Tls(
            Conn::connect(&ep, Tls::client(sw, &ctx, &url.host))
                .await
                .map_err(cannot)?,
        )
    } else {
        Transport::Plain(Conn::connect(&ep, sw).await.map_err(cannot)?)
    };
    let conn = tokio::time::timeout(CONNECT_TIMEOUT, handshake(&mut t, &url, &hs, a))
        .await
        .map_err(|_| fail("the handshake timed out".into()))??;
    tracing::debug!("connected to {}", a.url);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Option<String>>(64);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            match line {
                Ok(l) => {
                    if tx.blocking_send(Some(l)).is_err() {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        let _ = tx.blocking_send(None);
    });
    let mut stdin_open = true;
    let mut peer_close: Option<CloseCode> = None;
    let mut out = std::io::stdout();
    loop {
        tokio::select! {
            line = rx.recv(), if stdin_open => {
                let mut sw = t.switch();
                let Some(ws) = sw.second(conn) else { break };
                match line.flatten() {
                    Some(l) => {
                        let _ = ws.send_text(&l);
                    }
                    None => {
                        stdin_open = false;
                        let _ = ws.close(CloseCode::NORMAL, "");
                    }
                }
            }
            ev = t.next() => {
                match ev.map_err(fail)? {
                    Some(SwitchEvent::Second(WsEvent::Message { kind, data })) => {
                        let r = match kind {
                            Kind::Text => out.write_all(&data).and_then(|()| out.write_all(b"\n")),
                            Kind::Binary => out.write_all(&data),
                        };
                        r.and_then(|()| out.flush()).map_err(|e| fail(format!("stdout: {e}")))?;
                    }
                    Some(SwitchEvent::Second(WsEvent::Violation(e))) => {
                        return Err(fail(format!("the server broke the protocol: {e}")));
                    }
                    Some(SwitchEvent::Second(WsEvent::Closed { code, reason, clean })) => {
                        return if clean && matches!(code.0, 1000 | 1001 | 1005) {
                            Ok(())
                        } else {
                            Err(fail(format!("connection closed: {} {reason}", code.0)))
                        };
                    }
                    Some(SwitchEvent::Second(WsEvent::CloseReceived { code, .. })) => {
                        peer_close = Some(code.unwrap_or(CloseCode::NO_STATUS))
                    }
                    Some(_) => {}
                    // The driver may end the stream at the server's EOF
                    // before the machine's `Closed`: the handshake counts.
                    None if peer_close.is_some_and(|c| matches!(c.0, 1000 | 1001 | 1005)) => return Ok(()),
                    None => return Err(fail("connection closed without a close frame (1006)".into())),
                }
            }
        }
    }
    Ok(())
}

/// Sends the Upgrade request and waits for the switch.
async fn handshake(
    t: &mut Transport,
    url: &Url,
    hs: &ClientHandshake,
    a: &WsArgs,
) -> Result<ConnId, (i32, String)> {
    let fail = |m: String| (1, m);
    let conn = loop {
        match t.next().await.map_err(fail)? {
            Some(SwitchEvent::First(ClientEvent::Connected { conn, .. })) => break conn,
            Some(SwitchEvent::First(ClientEvent::OpenFailed { error, .. })) => {
                return Err(fail(format!("cannot connect: {error:?}")))
            }
            None => return Err(fail("the server closed the connection".into())),
            Some(_) => {}
        }
    };
    let host = url.host_header();
    let ws_headers = hs.headers();
    let mut headers: Vec<(&str, &str)> = vec![("Host", host.as_str())];
    headers.extend(ws_headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    headers.extend(a.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    t.switch()
        .first()
        .request(conn, "GET", &url.target, &headers, BodyKind::Empty)
        .map_err(|e| {
            (
                crate::cli::EXIT_USAGE,
                format!("cannot send the request: {e}"),
            )
        })?;
    loop {
        match t.next().await.map_err(fail)? {
            Some(SwitchEvent::Switched { conn }) => return Ok(conn),
            Some(SwitchEvent::First(ClientEvent::Upgraded { head, .. })) => {
                let why = hs
                    .verify(&head)
                    .err()
                    .map_or_else(String::new, |e| e.to_string());
                return Err(fail(format!("handshake refused: {why}")));
            }
            Some(SwitchEvent::First(ClientEvent::Response { head, .. })) => {
                return Err(fail(format!(
                    "server answered {} {}",
                    head.status(),
                    head.reason()
                )))
            }
            Some(SwitchEvent::First(ClientEvent::Violation { error, .. })) => {
                return Err(fail(format!("bad response: {error}")))
            }
            None => return Err(fail("the server closed the connection".into())),
            Some(_) => {}
        }
    }
}
