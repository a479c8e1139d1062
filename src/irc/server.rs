//! `twill irc --listen ENDPOINT [--name NAME] [--motd FILE]
//! [--flood-burst LINES] [--flood-interval-ms MS]`.

use std::path::PathBuf;

use clap::Args;
use twill_core::{Cx, Service};
use twill_driver::{Mode, Running};
use twill_irc::{Server, ServerConfig, ServerEvent};

use crate::cli::ServeArgs;

/// The default endpoint of `twill irc`.
pub const DEFAULT: &str = "tcp:6667";

/// The flags of `twill irc`.
#[derive(Args, Debug, Clone)]
pub struct IrcArgs {
    /// Listeners, driver, limits.
    #[command(flatten)]
    pub serve: ServeArgs,
    /// The server's name (the source of its replies).
    #[arg(long, default_value = "twill.irc")]
    pub name: String,
    /// A file whose lines are the message of the day.
    #[arg(long, value_name = "FILE")]
    pub motd: Option<PathBuf>,
    /// Flood protection: lines a client may send at once before
    /// throttling starts (PING and PONG are never counted).
    #[arg(long, value_name = "LINES", default_value_t = 20)]
    pub flood_burst: u32,
    /// Flood protection: after the burst, one line per this many
    /// milliseconds; 0 turns throttling off (benchmarks, trusted bots).
    #[arg(long, value_name = "MS", default_value_t = 200)]
    pub flood_interval_ms: u64,
}

/// Logs what the hub reports.
#[derive(Clone, Copy, Debug, Default)]
pub struct IrcLog;

impl Service<Server> for IrcLog {
    type Done = ();
    fn on_event(&mut self, _cx: &mut Cx<'_, Server, ()>, event: ServerEvent) {
        match &event {
            ServerEvent::Overflow { .. } | ServerEvent::Throttled { .. } => {
                tracing::info!(?event, "irc")
            }
            _ => tracing::debug!(?event, "irc"),
        }
    }
}

/// The server configuration the flags ask for.
pub fn config(args: &IrcArgs) -> Result<ServerConfig, String> {
    if args.name.is_empty() || args.name.contains([' ', '\r', '\n', '\0', ':']) {
        return Err(format!("--name {:?}: not a server name", args.name));
    }
    let motd = match &args.motd {
        Some(p) => std::fs::read_to_string(p)
            .map_err(|e| format!("--motd {}: {e}", p.display()))?
            .lines()
            .map(|l| l.chars().filter(|c| !c.is_control()).collect())
            .collect(),
        None => Vec::new(),
    };
    Ok(ServerConfig {
        name: args.name.clone(),
        motd,
        flood_burst: args.flood_burst.max(1),
        flood_interval: twill_core::Duration::from_millis(args.flood_interval_ms),
        ..ServerConfig::default()
    })
}

/// Starts `twill irc` without waiting (for tests and embedding).
pub fn start(args: IrcArgs, cfg: ServerConfig) -> Result<Running<Server>, String> {
    crate::cli::start(args.serve, DEFAULT, Mode::Hub, move || {
        (Server::new(cfg.clone()), IrcLog)
    })
    .map_err(|e| e.to_string())
}

/// Runs `twill irc` until the process is stopped.
pub fn run(args: IrcArgs) -> Result<(), String> {
    let cfg = config(&args)?;
    let running = start(args, cfg)?;
    for a in running.local_addrs() {
        tracing::info!("irc listening on {a}");
    }
    running.wait().map_err(|e| format!("server failed: {e}"))
}
