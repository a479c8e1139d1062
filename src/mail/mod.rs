//! `twill mail` (an SMTP server and a POP3 server over one Maildir store)
//! and `twill sendmail` (the SMTP client).
//!
//! - [`maildir`]: the store (tmp/ → fsync → new/ before 250);
//! - [`service`]: the SMTP and POP3 services, hosted by every driver;
//! - [`start_mail`]: both servers on the chosen driver, STARTTLS/STLS when
//!   a certificate is given;
//! - [`sendmail`]: `twill sendmail`.

pub mod maildir;
pub mod sendmail;
pub mod service;

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use twill_core::{Machine, ServerEndpoint, Service};
use twill_driver::{EngineConfig, Mode, Running, ServeOptions};
use twill_tls::{Accept, ServerSetup, Tls, TlsContext, TlsService};

use crate::cli::Driver;
use service::{Accounts, Pop3Service, SmtpService, Store};

/// The default SMTP endpoint.
pub const SMTP_DEFAULT: &str = "tcp:2525";
/// The default POP3 endpoint.
pub const POP3_DEFAULT: &str = "tcp:1110";

/// The flags of `twill mail`.
#[derive(Args, Debug, Clone)]
pub struct MailArgs {
    /// Where SMTP listens (repeatable; default tcp:2525).
    #[arg(long = "smtp", value_name = "ENDPOINT", value_parser = parse_endpoint)]
    pub smtp: Vec<ServerEndpoint>,
    /// Where POP3 listens (repeatable; default tcp:1110).
    #[arg(long = "pop3", value_name = "ENDPOINT", value_parser = parse_endpoint)]
    pub pop3: Vec<ServerEndpoint>,
    /// The Maildir root: one Maildir per user under it (created).
    #[arg(long, value_name = "DIR")]
    pub maildir: PathBuf,
    /// The users file (`twill passwd` writes it).
    #[arg(long, value_name = "FILE")]
    pub users: PathBuf,
    /// Our name, in greetings and Received lines.
    #[arg(long, default_value = "localhost")]
    pub hostname: String,
    /// A domain we accept mail for (repeatable; default: the hostname).
    /// Mail for other domains is refused unless the client authenticated.
    #[arg(long = "domain", value_name = "D")]
    pub domains: Vec<String>,
    /// Certificate (PEM) for STARTTLS and STLS; with --key. AUTH and
    /// USER/PASS are then only accepted under TLS.
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    /// Private key (PEM) for --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Largest message accepted, in octets (SIZE).
    #[arg(long, default_value_t = 10 * 1024 * 1024)]
    pub max_size: usize,
    /// The driver.
    #[arg(long, value_enum, default_value = "mio")]
    pub driver: Driver,
    /// Most simultaneous connections (per protocol).
    #[arg(long, default_value_t = 10_000)]
    pub max_conns: usize,
}

fn parse_endpoint(s: &str) -> Result<ServerEndpoint, String> {
    s.parse().map_err(|e| format!("{e}"))
}

/// Both servers of `twill mail`, running.
pub struct MailServers {
    /// The SMTP server.
    pub smtp: Running<twill_smtp::Server>,
    /// The POP3 server.
    pub pop3: Running<twill_pop3::Server>,
}

impl MailServers {
    /// Stops both.
    pub fn stop(&self) {
        self.smtp.stop();
        self.pop3.stop();
    }

    /// Waits until both have stopped.
    pub fn wait(self) -> Result<(), String> {
        let a = self.smtp.wait();
        let b = self.pop3.wait();
        a.and(b).map_err(|e| format!("server failed: {e}"))
    }
}

/// Starts `twill mail` with the users of `--users`.
pub fn start(args: MailArgs) -> Result<MailServers, String> {
    let users = crate::users::Users::load(&args.users).map_err(|e| e.to_string())?;
    start_with(args, Arc::new(users))
}

/// Starts `twill mail` with any [`Accounts`].
pub fn start_with(args: MailArgs, accounts: Arc<dyn Accounts>) -> Result<MailServers, String> {
    let store = Store::new(&args.maildir, &args.hostname, accounts)?;
    let tls = match (&args.cert, &args.key) {
        (Some(c), Some(k)) => {
            let read = |p: &PathBuf| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
            let setup = ServerSetup::from_pem(&read(c)?, &read(k)?).map_err(|e| e.to_string())?;
            Some(
                TlsContext::new()
                    .with_server(&setup)
                    .map_err(|e| e.to_string())?,
            )
        }
        _ => None,
    };
    let mut domains = args.domains.clone();
    if domains.is_empty() {
        domains.push(args.hostname.clone());
    }
    let check_store = store.clone();
    let smtp_cfg = twill_smtp::ServerConfig {
        hostname: args.hostname.clone(),
        local_domains: domains,
        recipients: Some(Arc::new(move |local: &str| check_store.has_mailbox(local))),
        max_size: args.max_size,
        starttls: tls.is_some(),
        auth_requires_tls: tls.is_some(),
        ..twill_smtp::ServerConfig::default()
    };
    let pop3_cfg = twill_pop3::ServerConfig {
        hostname: args.hostname.clone(),
        stls: tls.is_some(),
        auth_requires_tls: tls.is_some(),
        ..twill_pop3::ServerConfig::default()
    };
    let s1 = store.clone();
    let smtp = serve(&args, &args.smtp, SMTP_DEFAULT, tls.clone(), move || {
        (
            twill_smtp::Server::new(smtp_cfg.clone()),
            SmtpService::new(s1.clone()),
        )
    })?;
    let pop3 = serve(&args, &args.pop3, POP3_DEFAULT, tls, move || {
        (
            twill_pop3::Server::new(pop3_cfg.clone(), twill_driver::os_rng()),
            Pop3Service::new(store.clone()),
        )
    })?;
    Ok(MailServers { smtp, pop3 })
}

/// Serves one protocol's machines, inside the TLS layer when there is a
/// certificate (`ssl:` listeners start TLS at once, the others on
/// STARTTLS/STLS).
fn serve<M, S, F>(
    args: &MailArgs,
    endpoints: &[ServerEndpoint],
    default: &str,
    tls: Option<TlsContext>,
    make: F,
) -> Result<Running<M>, String>
where
    M: Machine + Send + 'static,
    M::Event: Send,
    S: Service<M> + Send + 'static,
    F: FnMut() -> (M, S) + Send + 'static,
{
    let mut endpoints = endpoints.to_vec();
    if endpoints.is_empty() {
        endpoints.push(default.parse().expect("built-in default endpoints parse"));
    }
    let Some(ctx) = tls else {
        let serve_args = crate::cli::ServeArgs {
            listen: endpoints,
            driver: args.driver,
            max_conns: args.max_conns,
            // The machines keep RFC 5321 / RFC 1939 timers themselves.
            idle_timeout: 0,
        };
        return crate::cli::start(serve_args, default, Mode::Factory, make)
            .map_err(|e| e.to_string());
    };
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
    let mut make = make;
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

/// Runs `twill mail` until stopped.
pub fn run(args: MailArgs) -> Result<(), String> {
    let servers = start(args)?;
    for a in servers.smtp.local_addrs() {
        tracing::info!("SMTP on {a}");
    }
    for a in servers.pop3.local_addrs() {
        tracing::info!("POP3 on {a}");
    }
    servers.wait()
}
