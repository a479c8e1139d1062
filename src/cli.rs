//! The `twill` command line: `twill echo|discard|chargen|daytime|qotd|chat|web
//! --listen ENDPOINT … --driver std|mio|tokio`, and the client `twill get`.
//!
//! Every server subcommand takes the same flags ([`ServeArgs`]); errors are
//! one line on stderr and exit code 2, never a panic or a backtrace.

use std::ffi::OsString;
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use twill_core::{Machine, ServerEndpoint, Service};
use twill_driver::{BindError, EngineConfig, Mode, Running, ServeOptions};

/// Exit code for usage errors, bad endpoints and bind failures.
pub const EXIT_USAGE: i32 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "twill",
    version,
    about = "Network protocols as sans-IO state machines, served by std, mio or tokio drivers"
)]
struct Cli {
    /// Log level: error, warn, info, debug or trace (or a tracing filter).
    #[arg(long, global = true, default_value = "info")]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

/// Which driver runs the machines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Driver {
    /// Blocking std: a thread per connection.
    Std,
    /// A single-threaded mio reactor.
    Mio,
    /// Tokio.
    Tokio,
}

/// The flags every server subcommand takes.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Where to listen (repeatable): tcp:PORT[:interface=ADDR][:backlog=N],
    /// tcp6:PORT, unix:PATH[:mode=660], udp:PORT[:multicast=GROUP].
    #[arg(long = "listen", value_name = "ENDPOINT", value_parser = parse_endpoint)]
    pub listen: Vec<ServerEndpoint>,
    /// The driver.
    #[arg(long, value_enum, default_value = "mio")]
    pub driver: Driver,
    /// Most simultaneous connections.
    #[arg(long, default_value_t = 10_000)]
    pub max_conns: usize,
    /// Drop a connection idle (nothing read or flushed) for this many
    /// seconds; 0 disables.
    #[arg(long, default_value_t = 300)]
    pub idle_timeout: u64,
}

fn parse_endpoint(s: &str) -> Result<ServerEndpoint, String> {
    s.parse().map_err(|e| format!("{e}"))
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Echo (RFC 862): every byte comes back; TCP and UDP.
    Echo(ServeArgs),
    /// Discard (RFC 863): every byte is dropped.
    Discard(ServeArgs),
    /// Character generator (RFC 864), paced by the reader.
    Chargen(ServeArgs),
    /// Daytime (RFC 867): the date, then close.
    Daytime(ServeArgs),
    /// Quote of the day (RFC 865).
    Qotd {
        #[command(flatten)]
        serve: ServeArgs,
        /// The quote (at most 512 characters).
        #[arg(
            long,
            default_value = "Not everything that can be counted counts, and not everything that counts can be counted."
        )]
        quote: String,
    },
    /// A line chat: each line from one client goes to all the others (one
    /// hub machine over every connection).
    Chat(ServeArgs),
    /// A static file server (HTTP/1.1): files with Range and conditional
    /// requests, index.html, directory listings.
    Web {
        #[command(flatten)]
        serve: ServeArgs,
        /// The directory to serve; nothing outside it is ever served.
        #[arg(long, default_value = ".")]
        path: PathBuf,
        /// Also serve a WebSocket echo endpoint at this request path
        /// (e.g. /ws), permessage-deflate included.
        #[arg(long, value_name = "PATH")]
        websocket_echo: Option<String>,
    },
    /// Fetches a URL over HTTP/1.1 (http:// or https://), following
    /// redirects; the body goes to stdout or -o FILE.
    Get(GetArgs),
    /// A WebSocket client (ws:// or wss://): each stdin line is sent as a
    /// text message, every message received is printed.
    Ws(crate::ws::client::WsArgs),
    /// Write a self-signed certificate and key (cert.pem, key.pem) to try
    /// `--listen ssl:PORT:privateKey=key.pem:certKey=cert.pem` at once.
    Cert {
        /// The name the certificate is for (repeatable).
        #[arg(long = "hostname", value_name = "NAME", required = true)]
        hostnames: Vec<String>,
        /// Where to write cert.pem and key.pem.
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
    /// Add a user to a users file (argon2 hashes; `twill mail`, `twill
    /// ftp`), or change their password. The password is prompted for on a
    /// terminal, else read from the first line of stdin.
    Passwd {
        /// The users file (created if missing).
        #[arg(long, value_name = "FILE")]
        users: PathBuf,
        /// The user name.
        name: String,
    },
    /// An IRC server (one hub machine over every client).
    Irc(crate::irc::server::IrcArgs),
    /// A mail server: SMTP in, POP3 out, over one Maildir store.
    Mail(crate::mail::MailArgs),
    /// Sends the message on stdin to an SMTP server.
    Sendmail(crate::mail::sendmail::SendmailArgs),
    /// An FTP server over a directory (RFC 959, EPSV, MLSD, REST …).
    Ftp(crate::ftp::cli::FtpArgs),
    /// A line-mode IRC client: stdin lines go to the joined channel,
    /// `/cmd` lines are raw commands.
    IrcClient(crate::irc::client::IrcClientArgs),
    /// Downloads ftp:// or ftpes://[user[:pass]@]host[:port]/path (to stdout or -o).
    FtpGet(crate::ftp::client::GetArgs),
    /// Uploads FILE to ftp:// or ftpes://[user[:pass]@]host[:port]/path.
    FtpPut(crate::ftp::client::PutArgs),
    /// Lists ftp:// or ftpes://[user[:pass]@]host[:port]/dir.
    FtpLs(crate::ftp::client::LsArgs),
}

/// The flags of `twill get`.
#[derive(Args, Debug, Clone)]
pub struct GetArgs {
    /// The URL: http://HOST:PORT/PATH (the port is optional; an IPv6 HOST
    /// goes in brackets).
    pub url: String,
    /// Write the body to FILE instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Send HEAD and print the response head only.
    #[arg(short = 'I', long = "head")]
    pub head: bool,
    /// An extra request header, 'Name: value' (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE", value_parser = crate::get::parse_header)]
    pub headers: Vec<(String, String)>,
    /// Most redirects to follow.
    #[arg(long, default_value_t = crate::get::redirect::DEFAULT_MAX)]
    pub max_redirects: u32,
    /// Which CAs verify https:// servers.
    #[command(flatten)]
    pub ca: crate::client_tls::CaArgs,
    /// Give up when the server sends nothing for this many seconds while
    /// a response is due.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub timeout: u64,
}

/// Logs every event of a machine at debug level: the service of the
/// protocols that need no application.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogEvents;

impl<M: Machine> Service<M> for LogEvents
where
    M::Event: Debug,
{
    type Done = ();
    fn on_event(&mut self, _cx: &mut twill_core::Cx<'_, M, ()>, event: M::Event) {
        tracing::debug!(?event, "event");
    }
}

/// Runs the command line; returns the process exit code.
pub fn main(args: impl IntoIterator<Item = impl Into<OsString> + Clone>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    if let Err(e) = init_logging(&cli.log_level) {
        eprintln!("twill: {e}");
        return EXIT_USAGE;
    }
    if let Command::Ws(a) = cli.command {
        return crate::ws::client::run(a);
    }
    if let Command::Get(a) = cli.command {
        return get(a);
    }
    if let Command::Sendmail(a) = cli.command {
        return crate::mail::sendmail::main(a);
    }
    if let Command::IrcClient(a) = cli.command {
        return crate::irc::client::run(a);
    }
    match run(cli.command) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("twill: {e}");
            EXIT_USAGE
        }
    }
}

/// Runs `twill get`; returns the exit code (0; 1 for an error status or a
/// failed transfer; 2 for a bad URL).
fn get(a: GetArgs) -> i32 {
    let f = crate::get::fetch::Fetch {
        url: a.url,
        output: a.output,
        head_only: a.head,
        headers: a.headers,
        max_redirects: a.max_redirects,
        ca: a.ca,
        timeout: Duration::from_secs(a.timeout.max(1)),
    };
    match crate::get::fetch::run(&f) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("twill get: {e}");
            e.code
        }
    }
}

fn init_logging(level: &str) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .map_err(|e| format!("invalid --log-level {level:?}: {e}"))?;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
    Ok(())
}

fn run(cmd: Command) -> Result<(), String> {
    use twill_basic::{
        chargen::Chargen, chat::Chat, daytime::Daytime, discard::Discard, echo::Echo, qotd::Qotd,
    };
    match cmd {
        Command::Echo(a) => serve(a, "tcp:7000", Mode::Factory, || (Echo::new(), LogEvents)),
        Command::Discard(a) => serve(a, "tcp:7009", Mode::Factory, || (Discard::new(), LogEvents)),
        Command::Chargen(a) => serve(a, "tcp:7019", Mode::Factory, || (Chargen::new(), LogEvents)),
        Command::Daytime(a) => serve(a, "tcp:7013", Mode::Factory, || (Daytime::new(), LogEvents)),
        Command::Qotd { serve: a, quote } => {
            let q = Qotd::new(bytes::Bytes::from(quote.into_bytes()))
                .map_err(|e| format!("--quote: {e}"))?;
            serve(a, "tcp:7017", Mode::Factory, move || (q.clone(), LogEvents))
        }
        Command::Chat(a) => serve(a, "tcp:7070", Mode::Hub, || (Chat::new(), LogEvents)),
        Command::Get(_) => Err("twill get is run by `main`".into()),
        Command::Ws(_) => Err("twill ws is run by `main`".into()),
        Command::Cert { hostnames, out } => {
            let (cert, key) = crate::serve_tls::write_cert(hostnames, &out)?;
            println!("wrote {cert} and {key}");
            Ok(())
        }
        Command::Passwd { users, name } => {
            let pw = crate::users::read_password(&name)?;
            crate::users::add_user(&users, &name, pw.as_bytes()).map_err(|e| e.to_string())?;
            println!("{name} saved in {}", users.display());
            Ok(())
        }
        Command::Mail(a) => crate::mail::run(a),
        Command::Sendmail(_) => Err("twill sendmail is run by `main`".into()),
        Command::Irc(a) => crate::irc::server::run(a),
        Command::IrcClient(_) => Err("twill irc-client is run by `main`".into()),
        Command::Ftp(a) => crate::ftp::cli::run(a),
        Command::FtpGet(a) => crate::ftp::client::get(a),
        Command::FtpPut(a) => crate::ftp::client::put(a),
        Command::FtpLs(a) => crate::ftp::client::ls(a),
        Command::Web {
            serve: a,
            path,
            websocket_echo: Some(ws),
        } => crate::ws::echo::run(a, &path, &ws),
        Command::Web {
            serve: a,
            path,
            websocket_echo: None,
        } => {
            let running = start_web(a, &path)?;
            for a in running.local_addrs() {
                tracing::info!("serving {} on {a}", path.display());
            }
            running.wait().map_err(|e| format!("server failed: {e}"))
        }
    }
}

/// The default endpoint of `twill web`.
pub const WEB_DEFAULT: &str = "tcp:8080";

/// Starts `twill web` serving the directory `path` (an HTTP/1.1 server
/// machine per connection, files sent with `sendfile`) without waiting.
pub fn start_web(args: ServeArgs, path: &Path) -> Result<Running<twill_http::Server>, String> {
    // TLS needs the bytes: no sendfile behind `ssl:`.
    let file_payloads = !args
        .listen
        .iter()
        .any(|e| matches!(e, ServerEndpoint::Tcp { tls: Some(_), .. }));
    let web = crate::web::service::Web::new(path, file_payloads)?;
    let cfg = twill_http::ServerConfig {
        file_payloads,
        ..twill_http::ServerConfig::default()
    };
    start(args, WEB_DEFAULT, Mode::Factory, move || {
        (twill_http::Server::new(cfg.clone()), web.clone())
    })
    .map_err(|e| e.to_string())
}

/// Serves `make`'s machines on the endpoints of `args` with the chosen
/// driver until the process is stopped.
pub fn serve<M, S, F>(args: ServeArgs, default: &str, mode: Mode, make: F) -> Result<(), String>
where
    M: Machine + Send + 'static,
    M::Event: Send,
    S: Service<M> + Send + 'static,
    F: FnMut() -> (M, S) + Send + 'static,
{
    let running = start(args, default, mode, make).map_err(|e| e.to_string())?;
    for a in running.local_addrs() {
        tracing::info!("listening on {a}");
    }
    running.wait().map_err(|e| format!("server failed: {e}"))
}

/// Starts serving without waiting (for tests and embedding).
pub fn start<M, S, F>(
    args: ServeArgs,
    default: &str,
    mode: Mode,
    make: F,
) -> Result<Running<M>, BindError>
where
    M: Machine + Send + 'static,
    M::Event: Send,
    S: Service<M> + Send + 'static,
    F: FnMut() -> (M, S) + Send + 'static,
{
    let mut endpoints = args.listen;
    if endpoints.is_empty() {
        endpoints.push(default.parse().expect("built-in default endpoints parse"));
    }
    // `ssl:` endpoints: every machine inside the TLS layer.
    let tls = crate::serve_tls::policy(&endpoints)?;
    let opts = ServeOptions {
        endpoints,
        mode,
        config: EngineConfig {
            max_conns: args.max_conns,
            idle_timeout: (args.idle_timeout > 0).then(|| Duration::from_secs(args.idle_timeout)),
            ..EngineConfig::default()
        },
    };
    if let Some(tls) = tls {
        let make = crate::serve_tls::wrap(tls, make);
        let running = match args.driver {
            Driver::Std => twill_std::spawn(opts, make),
            Driver::Mio => twill_mio::spawn(opts, make),
            Driver::Tokio => twill_tokio::spawn(opts, make),
        }?;
        return Ok(crate::serve_tls::unwrap(running));
    }
    match args.driver {
        Driver::Std => twill_std::spawn(opts, make),
        Driver::Mio => twill_mio::spawn(opts, make),
        Driver::Tokio => twill_tokio::spawn(opts, make),
    }
}
