//! `twill web --websocket-echo PATH`: the static file service plus a
//! WebSocket echo endpoint at `PATH`, on one HTTP/1.1 port.
//!
//! Each connection's machine is [`WebMachine`]: twill-http's server, and
//! after an accepted upgrade a [`WebSocket`] on that connection (the
//! [`twill_core::Switch`] hand-over). The service [`WebEcho`] answers the
//! handshake (426 for a wrong version, 400 for a malformed one), passes
//! every other HTTP event to [`Web`], and echoes each message.

use std::path::Path;

use bytes::Bytes;
use twill_core::switch::Handover;
use twill_core::{ConnId, Cx, Service, Switch, SwitchEvent};
use twill_driver::{Mode, Running};
use twill_http::{Server, ServerEvent};
use twill_websocket::handshake::VERSION_HEADERS;
use twill_websocket::{Config, Role, ServerHandshake, WebSocket, WsEvent};

use crate::cli::ServeArgs;
use crate::web::service::{Done, Web};

/// How an upgraded HTTP connection becomes a WebSocket.
pub type Upgrade = fn(ServerEvent) -> Result<Handover<WebSocket>, ServerEvent>;

/// HTTP until a WebSocket upgrade, then WebSocket.
pub type WebMachine = Switch<Server, WebSocket, Upgrade>;

/// The connection settings of the echo endpoint (permessage-deflate on,
/// the machine's default limits).
pub fn ws_config() -> Config {
    Config::default()
}

/// The hand-over: re-reads the (already accepted) handshake to learn the
/// negotiated extensions, which `accept` derived from the same head.
fn upgrade(e: ServerEvent) -> Result<Handover<WebSocket>, ServerEvent> {
    let ServerEvent::Upgraded {
        conn,
        head,
        rest,
        unflushed,
        ..
    } = e
    else {
        return Err(e);
    };
    let cfg = ws_config();
    let deflate = ServerHandshake::from_request(&head)
        .ok()
        .and_then(|h| h.accept(None, Some(&cfg.deflate)).deflate);
    Ok(Handover {
        conn,
        rest,
        next: WebSocket::new(conn, Role::Server, cfg, deflate, None),
        unflushed,
    })
}

/// The machine of one connection.
pub fn machine(cfg: twill_http::ServerConfig) -> WebMachine {
    Switch::new(Server::new(cfg), upgrade as Upgrade)
}

/// Files plus the echo endpoint (one per connection: factory serving).
#[derive(Clone, Debug)]
pub struct WebEcho {
    web: Web,
    path: String,
    /// The connection once it is a WebSocket.
    ws: Option<ConnId>,
}

impl WebEcho {
    /// Serves `web`, with the echo at request path `path`.
    pub fn new(web: Web, path: &str) -> WebEcho {
        WebEcho {
            web,
            path: path.to_string(),
            ws: None,
        }
    }
}

impl Service<WebMachine> for WebEcho {
    type Done = Done;

    fn on_event(
        &mut self,
        cx: &mut Cx<'_, WebMachine, Done>,
        event: SwitchEvent<ServerEvent, WsEvent>,
    ) {
        match event {
            SwitchEvent::First(ServerEvent::Request(req))
                if req.upgrade
                    && req.head.target().split('?').next() == Some(self.path.as_str()) =>
            {
                let server = cx.machine().first();
                match ServerHandshake::from_request(&req.head) {
                    Ok(h) => {
                        let a = h.accept(None, Some(&ws_config().deflate));
                        if let Err(e) = server.accept_upgrade(req.id, &a.header_refs()) {
                            tracing::warn!("websocket upgrade: {e}");
                        }
                    }
                    Err(e) => {
                        tracing::debug!("websocket handshake refused: {e}");
                        let headers: &[(&str, &str)] = if e.status() == 426 {
                            VERSION_HEADERS
                        } else {
                            &[]
                        };
                        let body = Bytes::from(format!("{e}\n"));
                        let _ = server.respond_full(req.id, e.status(), headers, body);
                    }
                }
            }
            SwitchEvent::First(e) => self.web.on_event(&mut cx.map(|m| m.first()), e),
            SwitchEvent::Switched { conn } => self.ws = Some(conn),
            SwitchEvent::Second(WsEvent::Message { kind, data }) => {
                if let Some(ws) = self.ws.and_then(|c| cx.machine().second(c)) {
                    let _ = ws.send(kind, data);
                }
            }
            SwitchEvent::Second(WsEvent::Violation(e)) => tracing::debug!("websocket: {e}"),
            SwitchEvent::Second(e) => tracing::trace!(?e, "websocket"),
            _ => {}
        }
    }

    fn on_done(&mut self, cx: &mut Cx<'_, WebMachine, Done>, done: Done) {
        self.web.on_done(&mut cx.map(|m| m.first()), done);
    }
}

/// Starts `twill web` on `root` with the WebSocket echo at `ws_path`.
pub fn start_web_echo(
    args: ServeArgs,
    root: &Path,
    ws_path: &str,
) -> Result<Running<WebMachine>, String> {
    if !ws_path.starts_with('/') {
        return Err(format!(
            "--websocket-echo {ws_path:?}: a path starting with /"
        ));
    }
    let file_payloads = !args
        .listen
        .iter()
        .any(|e| matches!(e, twill_core::ServerEndpoint::Tcp { tls: Some(_), .. }));
    let web = Web::new(root, file_payloads)?;
    let cfg = twill_http::ServerConfig {
        file_payloads,
        ..twill_http::ServerConfig::default()
    };
    let svc = WebEcho::new(web, ws_path);
    crate::cli::start(args, crate::cli::WEB_DEFAULT, Mode::Factory, move || {
        (machine(cfg.clone()), svc.clone())
    })
    .map_err(|e| e.to_string())
}

/// Runs `twill web --websocket-echo PATH` until the process is stopped.
pub fn run(args: ServeArgs, root: &Path, ws_path: &str) -> Result<(), String> {
    let running = start_web_echo(args, root, ws_path)?;
    for a in running.local_addrs() {
        tracing::info!(
            "serving {} on {a}, websocket echo at {ws_path}",
            root.display()
        );
    }
    running.wait().map_err(|e| format!("server failed: {e}"))
}
