//! `twill ftp --listen EP --root DIR [--users FILE] [--anonymous]
//! [--passive-ports A-B] [--cert FILE --key FILE [--require-tls]]`: the
//! flags and the start-up. With a certificate the machines run inside the
//! TLS layer, which serves AUTH TLS (RFC 4217) on the control connection
//! and PROT P data connections (`Open { StartTls }` from the machine).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use twill_core::ServerEndpoint;
use twill_driver::{EngineConfig, Mode, Running, ServeOptions};
use twill_tls::{Accept, ServerSetup, Tls, TlsContext, TlsService};

use super::service::{Ftp, Verifier};
use crate::cli::{start, Driver, ServeArgs};
use crate::users::Users;
use twill_ftp::{Server, ServerConfig};

/// The default endpoint of `twill ftp`.
pub const FTP_DEFAULT: &str = "tcp:2121";

/// The flags of `twill ftp`.
#[derive(Args, Debug, Clone)]
pub struct FtpArgs {
    /// The listen/driver flags every server takes.
    #[command(flatten)]
    pub serve: ServeArgs,
    /// The directory to serve; nothing outside it is ever reachable.
    #[arg(long, default_value = ".")]
    pub root: PathBuf,
    /// Accounts, one `name:$argon2id$…` per line (as `twill mail`).
    #[arg(long, value_name = "FILE")]
    pub users: Option<PathBuf>,
    /// Allow `anonymous`/`ftp` logins, read-only.
    #[arg(long)]
    pub anonymous: bool,
    /// Passive data ports, e.g. 50000-50100 (default: any free port).
    #[arg(long, value_name = "A-B", value_parser = parse_range)]
    pub passive_ports: Option<(u16, u16)>,
    /// Certificate chain (PEM) for AUTH TLS, PBSZ and PROT (RFC 4217);
    /// with --key.
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    /// Private key (PEM) for --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Refuse USER/PASS before AUTH TLS (534/530) and data transfers
    /// before PROT P (521).
    #[arg(long, requires = "cert")]
    pub require_tls: bool,
}

fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("{s:?}: expected FIRST-LAST"))?;
    let a: u16 = a.trim().parse().map_err(|_| format!("{s:?}: bad port"))?;
    let b: u16 = b.trim().parse().map_err(|_| format!("{s:?}: bad port"))?;
    if a == 0 || a > b {
        return Err(format!("{s:?}: need 1 <= FIRST <= LAST"));
    }
    Ok((a, b))
}

/// What `twill ftp` serves, besides the listen flags.
#[derive(Clone)]
pub struct FtpOptions {
    /// The served tree.
    pub root: PathBuf,
    /// Password checks; `None`: named users cannot log in.
    pub verify: Option<Verifier>,
    /// Anonymous read-only access.
    pub anonymous: bool,
    /// Passive port range.
    pub passive_ports: Option<(u16, u16)>,
    /// AUTH TLS with this server configuration (`--cert`/`--key`).
    pub tls: Option<TlsContext>,
    /// `--require-tls`.
    pub require_tls: bool,
}

/// The TLS context of `--cert`/`--key`, or a one-line error.
pub fn tls_context(cert: &std::path::Path, key: &std::path::Path) -> Result<TlsContext, String> {
    let read = |p: &std::path::Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let setup = ServerSetup::from_pem(&read(cert)?, &read(key)?).map_err(|e| e.to_string())?;
    let ctx = TlsContext::new();
    let mut config = (*setup.build(ctx.clock()).map_err(|e| e.to_string())?).clone();
    // No TLS 1.3 session tickets: a ticket is data an uploading client
    // never reads, a socket closed with unread data sends a reset instead
    // of a FIN (RFC 2525 §2.17), and bytes a driver had not yet handed to
    // the machine die with a reset connection — the end of a curl upload
    // was lost that way (426) about one run in three. TLS 1.2 clients
    // still resume by session id.
    config.send_tls13_tickets = 0;
    Ok(ctx.with_server_config(std::sync::Arc::new(config)))
}

/// Starts `twill ftp` without waiting: a [`Server`] machine per control
/// connection. The control connection's idle timeout is the machine's
/// (421 after `--idle-timeout` without a command, never during a
/// transfer), so the driver's per-socket idle timeout is turned off.
pub fn start_ftp(mut args: ServeArgs, opts: FtpOptions) -> Result<Running<Server>, String> {
    let ssl = args
        .listen
        .iter()
        .any(|e| matches!(e, ServerEndpoint::Tcp { tls: Some(_), .. }));
    let verify: Verifier = opts
        .verify
        .unwrap_or_else(|| Arc::new(|_: &str, _: &[u8]| false));
    // File payloads stay on: the machine allows them only for plain (PROT
    // C) data connections, which the TLS layer passes through.
    let ftp = Ftp::new(&opts.root, verify, true)?;
    let cfg = ServerConfig {
        anonymous: opts.anonymous,
        passive_ports: opts.passive_ports,
        idle_timeout: (args.idle_timeout > 0).then(|| Duration::from_secs(args.idle_timeout)),
        // `ssl:` listeners bring a server configuration too, so PROT P
        // works on them (and AUTH TLS on the plain ones).
        tls: opts.tls.is_some() || ssl,
        require_tls: opts.require_tls,
        ..ServerConfig::default()
    };
    args.idle_timeout = 0;
    let make = move || (Server::new(cfg.clone()), ftp.clone());
    match opts.tls {
        None => start(args, FTP_DEFAULT, Mode::Factory, make).map_err(|e| e.to_string()),
        Some(ctx) => start_tls(args, ctx, make),
    }
}

/// Serves inside the TLS layer with `ctx`: `ssl:` listeners start TLS at
/// once, the others on AUTH TLS.
fn start_tls(
    args: ServeArgs,
    ctx: TlsContext,
    mut make: impl FnMut() -> (Server, Ftp) + Send + 'static,
) -> Result<Running<Server>, String> {
    let mut endpoints = args.listen;
    if endpoints.is_empty() {
        endpoints.push(FTP_DEFAULT.parse().expect("the default endpoint parses"));
    }
    let ssl = crate::serve_tls::ssl_listeners(&endpoints);
    let opts = ServeOptions {
        endpoints,
        mode: Mode::Factory,
        config: EngineConfig {
            max_conns: args.max_conns,
            idle_timeout: None,
            ..EngineConfig::default()
        },
    };
    let wrapped = move || {
        let (m, s) = make();
        let t = Tls::new(m, &ctx).accept(Accept::Listeners(ssl.clone()));
        let svc = TlsService::new(s).on_tls(|e| {
            if let twill_tls::TlsEvent::Failed { conn, error } = e {
                tracing::info!(%conn, %error, "TLS session failed");
            }
        });
        (t, svc)
    };
    let running = match args.driver {
        Driver::Std => twill_std::spawn(opts, wrapped),
        Driver::Mio => twill_mio::spawn(opts, wrapped),
        Driver::Tokio => twill_tokio::spawn(opts, wrapped),
    }
    .map_err(|e| e.to_string())?;
    Ok(crate::serve_tls::unwrap(running))
}

/// Runs `twill ftp` until stopped.
pub fn run(a: FtpArgs) -> Result<(), String> {
    let verify: Option<Verifier> = match &a.users {
        Some(path) => Some(load_users(path)?),
        None => None,
    };
    if verify.is_none() && !a.anonymous {
        return Err("nobody could log in: give --users FILE and/or --anonymous".into());
    }
    let tls = match (&a.cert, &a.key) {
        (Some(c), Some(k)) => Some(tls_context(c, k)?),
        _ => None,
    };
    let running = start_ftp(
        a.serve,
        FtpOptions {
            root: a.root.clone(),
            verify,
            anonymous: a.anonymous,
            passive_ports: a.passive_ports,
            tls,
            require_tls: a.require_tls,
        },
    )?;
    for addr in running.local_addrs() {
        tracing::info!("serving {} over FTP on {addr}", a.root.display());
    }
    running.wait().map_err(|e| format!("server failed: {e}"))
}

/// Loads the users file once; each check runs `Users::verify` (argon2)
/// on the pool.
pub fn load_users(path: &std::path::Path) -> Result<Verifier, String> {
    let users = Arc::new(Users::load(path).map_err(|e| e.to_string())?);
    Ok(Arc::new(move |name: &str, pw: &[u8]| {
        users.verify(name, pw)
    }))
}
