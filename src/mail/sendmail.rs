//! `twill sendmail`: one message from stdin to an SMTP server with the
//! `twill-smtp` client machine on the std driver (STARTTLS through the TLS
//! layer, `tls:` endpoints for implicit TLS).

use std::io::Read;
use std::path::PathBuf;

use bytes::Bytes;
use clap::Args;
use twill_core::ClientEndpoint;
use twill_smtp::{Client, ClientConfig, ClientEvent, Envelope, SendResult, StartTls};
use twill_std::Conn;
use twill_tls::{Tls, TlsEvent};

/// The flags of `twill sendmail`.
#[derive(Args, Debug, Clone)]
pub struct SendmailArgs {
    /// The server: tcp:HOST:PORT (STARTTLS when offered) or tls:HOST:PORT.
    #[arg(long, value_name = "ENDPOINT")]
    pub server: String,
    /// The envelope sender.
    #[arg(long, value_name = "ADDRESS")]
    pub from: String,
    /// A recipient (repeatable).
    #[arg(long = "to", value_name = "ADDRESS", required = true)]
    pub to: Vec<String>,
    /// Authenticate as USER (PLAIN or LOGIN); the password comes from
    /// --password-file or the TWILL_PASSWORD environment variable.
    #[arg(long, value_name = "USER")]
    pub auth: Option<String>,
    /// A file whose first line is the --auth password.
    #[arg(long, value_name = "FILE", requires = "auth")]
    pub password_file: Option<PathBuf>,
    /// STARTTLS: never, if-offered or required (AUTH makes it required
    /// unless set to never).
    #[arg(long, value_enum)]
    pub starttls: Option<StartTlsArg>,
    /// The name we give in EHLO.
    #[arg(long, default_value = "localhost")]
    pub helo: String,
    /// Give up when the server is silent this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub timeout: u64,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub ca: crate::client_tls::CaArgs,
}

/// `--starttls`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StartTlsArg {
    /// Never.
    Never,
    /// When the server offers it.
    IfOffered,
    /// Always.
    Required,
}

/// Normalizes line endings to CRLF (a message file usually has LF).
pub fn crlf(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + input.len() / 32);
    let mut prev = 0u8;
    for &b in input {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

/// Runs `twill sendmail`; returns the exit code (0 delivered to every
/// recipient, 1 not, 2 usage).
pub fn main(a: SendmailArgs) -> i32 {
    match run(a) {
        Ok(r) => {
            let mut code = 0;
            for rc in &r.recipients {
                let ok = rc.reply.is_positive() && r.delivered();
                eprintln!(
                    "{} {}: {} {}",
                    if ok { "sent to" } else { "NOT sent to" },
                    rc.to,
                    rc.reply.code,
                    rc.reply.text()
                );
                if !ok {
                    code = 1;
                }
            }
            if let Some(d) = &r.data {
                eprintln!("server: {} {}", d.code, d.text());
            } else if r.recipients.is_empty() {
                eprintln!("refused: {} {}", r.from.code, r.from.text());
                code = 1;
            }
            if !r.delivered() {
                code = 1;
            }
            code
        }
        Err((code, msg)) => {
            eprintln!("twill sendmail: {msg}");
            code
        }
    }
}

fn run(a: SendmailArgs) -> Result<SendResult, (i32, String)> {
    let usage = |m: String| (crate::cli::EXIT_USAGE, m);
    let failed = |m: String| (1, m);
    let ep: ClientEndpoint = a
        .server
        .parse()
        .map_err(|e| usage(format!("--server {}: {e}", a.server)))?;
    let ClientEndpoint::Tcp {
        host, port, tls, ..
    } = &ep
    else {
        return Err(usage(
            "--server must be tcp:HOST:PORT or tls:HOST:PORT".into(),
        ));
    };
    let password = match &a.auth {
        None => None,
        Some(_) => Some(match &a.password_file {
            Some(p) => std::fs::read_to_string(p)
                .map_err(|e| usage(format!("--password-file {}: {e}", p.display())))?
                .lines()
                .next()
                .unwrap_or("")
                .to_string(),
            None => std::env::var("TWILL_PASSWORD")
                .map_err(|_| usage("--auth needs --password-file or TWILL_PASSWORD".into()))?,
        }),
    };
    let mut message = Vec::new();
    std::io::stdin()
        .read_to_end(&mut message)
        .map_err(|e| failed(format!("reading the message: {e}")))?;
    let starttls = match (a.starttls, tls.is_some(), a.auth.is_some()) {
        (_, true, _) => StartTls::Never,
        (Some(StartTlsArg::Never), ..) => StartTls::Never,
        (Some(StartTlsArg::Required), ..) | (None, false, true) => StartTls::Required,
        _ => StartTls::IfOffered,
    };
    let cfg = ClientConfig {
        helo_name: a.helo.clone(),
        starttls,
        server_name: Some(host.clone()),
        auth: a.auth.clone().zip(password.map(String::into_bytes)),
        reply_timeout: std::time::Duration::from_secs(a.timeout.max(1)),
        data_timeout: std::time::Duration::from_secs(a.timeout.max(1) * 2),
    };
    let mut client = Client::new(cfg);
    client
        .send_mail(Envelope {
            from: a.from.clone(),
            to: a.to.clone(),
            data: Bytes::from(crlf(&message)),
        })
        .map_err(|e| usage(format!("bad address: {e}")))?;
    client.quit();
    // The TLS layer is always there (STARTTLS needs it); `tls:` starts it
    // at once.
    let ctx = a.ca.context(&[]).map_err(usage)?;
    let machine = if tls.is_some() {
        let name = tls
            .as_ref()
            .and_then(|t| t.hostname.clone())
            .unwrap_or_else(|| host.clone());
        Tls::client(client, &ctx, &name)
    } else {
        Tls::new(client, &ctx)
    };
    let plain = ClientEndpoint::Tcp {
        host: host.clone(),
        port: *port,
        timeout: Some(std::time::Duration::from_secs(a.timeout.max(1))),
        tls: None,
    };
    let mut conn = Conn::connect(&plain, machine)
        .map_err(|e| failed(format!("cannot connect to {host}:{port}: {e}")))?;
    let mut result = None;
    loop {
        match conn.next_event() {
            Ok(Some(TlsEvent::Inner(ClientEvent::Sent(r)))) => result = Some(r),
            Ok(Some(TlsEvent::Inner(ClientEvent::Failed(f)))) => {
                return Err(failed(format!("{host}:{port}: {f:?}")))
            }
            Ok(Some(TlsEvent::Failed { error, .. })) => {
                return Err(failed(format!("{host}:{port}: TLS: {error:?}")))
            }
            Ok(Some(TlsEvent::Inner(ClientEvent::Closed))) | Ok(None) => break,
            Ok(Some(e)) => tracing::debug!(?e, "event"),
            Err(e) => return Err(failed(format!("{host}:{port}: {e}"))),
        }
    }
    result.ok_or_else(|| failed(format!("{host}:{port}: the session ended early")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn crlf_normalizes() {
        assert_eq!(super::crlf(b"a\nb\r\nc\n"), b"a\r\nb\r\nc\r\n");
        assert_eq!(super::crlf(b""), b"");
    }
}
