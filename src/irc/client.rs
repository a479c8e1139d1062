//! `twill irc-client tcp:HOST:PORT --nick NICK [--join #chan] [--ca FILE]`:
//! a line-mode IRC client for people and scripts. Each stdin line is a
//! message to the joined channel; a line starting with `/` is a raw
//! command (`/JOIN #other`, `/MODE #c +t`); `/quit [reason]` or the end of
//! stdin says goodbye. Messages print one per line on stdout.

use std::io::BufRead;

use clap::Args;
use twill_core::{ClientEndpoint, Handle, Machine};
use twill_irc::{Client, ClientConfig, ClientEvent, Message};
use twill_tls::{Tls, TlsEvent};

use crate::client_tls::CaArgs;

/// The flags of `twill irc-client`.
#[derive(Args, Debug, Clone)]
pub struct IrcClientArgs {
    /// The server: tcp:HOST:PORT or tls:HOST:PORT.
    pub server: String,
    /// The nick to ask for (a fallback is chosen if it is taken).
    #[arg(long)]
    pub nick: String,
    /// A channel to join once registered (where stdin lines go).
    #[arg(long)]
    pub join: Option<String>,
    /// SASL PLAIN account (the password is read from TWILL_IRC_PASSWORD).
    #[arg(long)]
    pub sasl: Option<String>,
    /// CA certificates for tls: servers.
    #[command(flatten)]
    pub ca: CaArgs,
}

/// Runs the client; returns the exit code (0 after a clean quit, 1 when
/// the connection failed or dropped, 2 for bad flags).
pub fn run(a: IrcClientArgs) -> i32 {
    let ep: ClientEndpoint = match a.server.parse() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("twill irc-client: {}: {e}", a.server);
            return crate::cli::EXIT_USAGE;
        }
    };
    let mut cfg = ClientConfig::new(&a.nick);
    if let Some(acct) = &a.sasl {
        let pw = std::env::var("TWILL_IRC_PASSWORD").unwrap_or_default();
        cfg.sasl = Some((acct.clone(), pw));
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("twill irc-client: {e}");
            return 1;
        }
    };
    let tls = matches!(&ep, ClientEndpoint::Tcp { tls: Some(_), .. });
    let res = if tls {
        let ClientEndpoint::Tcp {
            host,
            port,
            timeout,
            tls: Some(t),
        } = &ep
        else {
            return 1;
        };
        // The endpoint's `ca=` wins over --ca; `hostname=` names the
        // server to verify.
        let ca = match &t.ca {
            Some(f) => CaArgs { ca: Some(f.into()) },
            None => a.ca.clone(),
        };
        let ctx = match ca.context(&[]) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("twill irc-client: {e}");
                return crate::cli::EXIT_USAGE;
            }
        };
        let name = t.hostname.clone().unwrap_or_else(|| host.clone());
        let m = Tls::client(Client::new(cfg), &ctx, &name);
        // TLS is the layer around the machine, not the driver's.
        let plain = ClientEndpoint::Tcp {
            host: host.clone(),
            port: *port,
            timeout: *timeout,
            tls: None,
        };
        let events = |e: TlsEvent<ClientEvent>| match e {
            TlsEvent::Inner(e) => Ok(Some(e)),
            TlsEvent::Failed { error, .. } => Err(format!("TLS: {error}")),
            _ => Ok(None),
        };
        rt.block_on(session(
            plain,
            m,
            a.join,
            |m: &mut Tls<Client>| m.inner_mut(),
            events,
        ))
    } else {
        let events = |e: ClientEvent| Ok(Some(e));
        rt.block_on(session(
            ep,
            Client::new(cfg),
            a.join,
            |m: &mut Client| m,
            events,
        ))
    };
    match res {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("twill irc-client: {e}");
            1
        }
    }
}

/// What the stdin thread asks of the client.
fn input_line(c: &mut Client, line: &str, target: Option<&str>) {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.is_empty() {
        return;
    }
    let r = if let Some(cmd) = line.strip_prefix('/') {
        let (verb, rest) = cmd.split_once(' ').unwrap_or((cmd, ""));
        match verb.to_ascii_lowercase().as_str() {
            "quit" => c.quit(if rest.is_empty() { "Leaving" } else { rest }),
            "me" => match target {
                Some(t) => c.action(t, rest),
                None => Ok(()),
            },
            "msg" => {
                let (to, text) = rest.split_once(' ').unwrap_or((rest, ""));
                c.privmsg(to, text)
            }
            _ => c.raw(cmd),
        }
    } else if let Some(t) = target {
        c.privmsg(t, line)
    } else {
        eprintln!("(no channel joined: use /msg TARGET TEXT or /JOIN #chan)");
        Ok(())
    };
    if let Err(e) = r {
        eprintln!("twill irc-client: {e}");
    }
}

async fn session<M, F, G>(
    ep: ClientEndpoint,
    machine: M,
    join: Option<String>,
    inner: F,
    events: G,
) -> Result<(), String>
where
    M: Machine + Send + 'static,
    F: Fn(&mut M) -> &mut Client + Copy + Send + Sync + 'static,
    G: Fn(M::Event) -> Result<Option<ClientEvent>, String>,
{
    let mut conn = twill_tokio::Conn::connect(&ep, machine)
        .await
        .map_err(|e| format!("{ep}: {e}"))?;
    let handle = conn.handle();
    let target = join.clone();
    let mut stdin_started = false;
    let mut quitting = false;
    loop {
        let ev = match conn.next_event().await {
            Ok(Some(ev)) => match events(ev)? {
                Some(ev) => ev,
                None => continue,
            },
            Ok(None) => break,
            Err(e) => return Err(e.to_string()),
        };
        match ev {
            ClientEvent::Registered { nick } => {
                println!("* registered as {nick}");
                if let Some(ch) = &join {
                    let mut m = conn.machine();
                    if let Err(e) = inner(&mut m).join(ch, None) {
                        return Err(format!("--join {ch}: {e}"));
                    }
                }
                if !stdin_started {
                    stdin_started = true;
                    let h = handle.clone();
                    let t = target.clone();
                    std::thread::spawn(move || {
                        let stdin = std::io::stdin();
                        for line in stdin.lock().lines() {
                            let Ok(line) = line else { break };
                            let t2 = t.clone();
                            if h.call(move |m| input_line(inner(m), &line, t2.as_deref()))
                                .is_err()
                            {
                                return;
                            }
                        }
                        let _ = h.call(move |m| {
                            let _ = inner(m).quit("EOF");
                        });
                    });
                }
            }
            ClientEvent::NickFallback { nick } => println!("* nick taken, trying {nick}"),
            ClientEvent::Message(m) => {
                if m.is("ERROR") {
                    quitting = true;
                }
                print_message(&m);
            }
            ClientEvent::PingTimeout => return Err("the server stopped answering".into()),
            ClientEvent::ConnectFailed { error } => return Err(error.to_string()),
            ClientEvent::Disconnected => break,
            _ => {}
        }
    }
    if quitting {
        Ok(())
    } else {
        Err("the connection closed".into())
    }
}

fn text(b: Option<&[u8]>) -> String {
    String::from_utf8_lossy(b.unwrap_or_default()).into_owned()
}

/// One message as a person reads it.
fn print_message(m: &Message) {
    let who = text(m.source_nick());
    let line = match (m.numeric(), m.command().to_ascii_uppercase().as_str()) {
        (None, "PRIVMSG") => {
            let body = m.param(1).unwrap_or_default();
            match twill_irc::codec::ctcp::parse(body) {
                Some(c) if c.is("ACTION") => {
                    format!("{} * {who} {}", text(m.param(0)), text(Some(c.params)))
                }
                Some(_) => return,
                None => format!("{} <{who}> {}", text(m.param(0)), text(Some(body))),
            }
        }
        (None, "NOTICE") => format!("{} -{who}- {}", text(m.param(0)), text(m.param(1))),
        (None, "JOIN") => format!("{} * {who} joined", text(m.param(0))),
        (None, "PART") => format!("{} * {who} left ({})", text(m.param(0)), text(m.param(1))),
        (None, "QUIT") => format!("* {who} quit ({})", text(m.param(0))),
        (None, "KICK") => format!(
            "{} * {} was kicked by {who} ({})",
            text(m.param(0)),
            text(m.param(1)),
            text(m.param(2))
        ),
        (None, "NICK") => format!("* {who} is now {}", text(m.param(0))),
        (None, "TOPIC") => format!(
            "{} * {who} set the topic: {}",
            text(m.param(0)),
            text(m.param(1))
        ),
        (None, "MODE") => {
            let rest: Vec<String> = m.params().map(|p| text(Some(p))).collect();
            format!("* {who} sets mode {}", rest.join(" "))
        }
        (None, "ERROR") => format!("* {}", text(m.param(0))),
        (Some(332), _) => format!("{} * topic: {}", text(m.param(1)), text(m.param(2))),
        (Some(353), _) => format!("{} * names: {}", text(m.param(2)), text(m.param(3))),
        (Some(c), _) if c >= 400 => {
            let rest: Vec<String> = m.params().skip(1).map(|p| text(Some(p))).collect();
            format!("! {c} {}", rest.join(" "))
        }
        _ => {
            tracing::debug!("{}", String::from_utf8_lossy(m.raw()));
            return;
        }
    };
    println!("{line}");
}
