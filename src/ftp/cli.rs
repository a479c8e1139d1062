//! `twill ftp --listen EP --root DIR [--users FILE] [--anonymous]
//! [--passive-ports A-B]`: the flags and the start-up.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use twill_driver::{Mode, Running};

use super::service::{Ftp, Verifier};
use crate::cli::{start, ServeArgs};
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
}

/// Starts `twill ftp` without waiting: a [`Server`] machine per control
/// connection. The control connection's idle timeout is the machine's
/// (421 after `--idle-timeout` without a command, never during a
/// transfer), so the driver's per-socket idle timeout is turned off.
pub fn start_ftp(mut args: ServeArgs, opts: FtpOptions) -> Result<Running<Server>, String> {
    let file_payloads = !args
        .listen
        .iter()
        .any(|e| matches!(e, twill_core::ServerEndpoint::Tcp { tls: Some(_), .. }));
    let verify: Verifier = opts
        .verify
        .unwrap_or_else(|| Arc::new(|_: &str, _: &[u8]| false));
    let ftp = Ftp::new(&opts.root, verify, file_payloads)?;
    let cfg = ServerConfig {
        anonymous: opts.anonymous,
        passive_ports: opts.passive_ports,
        file_payloads,
        idle_timeout: (args.idle_timeout > 0).then(|| Duration::from_secs(args.idle_timeout)),
        ..ServerConfig::default()
    };
    args.idle_timeout = 0;
    start(args, FTP_DEFAULT, Mode::Factory, move || {
        (Server::new(cfg.clone()), ftp.clone())
    })
    .map_err(|e| e.to_string())
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
    let running = start_ftp(
        a.serve,
        FtpOptions {
            root: a.root.clone(),
            verify,
            anonymous: a.anonymous,
            passive_ports: a.passive_ports,
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
