//! `ssl:` endpoints for every server subcommand: the factory's machines are
//! wrapped in [`twill_tls::Tls`] (with [`twill_tls::TlsService`] around
//! their services), the certificates loaded once; and `twill cert`.

use std::path::Path;

use twill_core::service::Command;
use twill_core::{ListenerId, Machine, ServerEndpoint, Service};
use twill_driver::{BindError, Running, SlotHandle};
use twill_tls::{Accept, ServerSetup, Tls, TlsContext, TlsEvent, TlsService};

/// The TLS configuration of the `ssl:` endpoints, and which listeners they
/// are (drivers number stream endpoints 1, 2, … in order).
pub struct Policy {
    ctx: TlsContext,
    listeners: Vec<ListenerId>,
}

/// `None` without `ssl:` endpoints; an error (one line) for unreadable or
/// bad PEM files, or for `ssl:` endpoints with different certificates.
pub fn policy(endpoints: &[ServerEndpoint]) -> Result<Option<Policy>, BindError> {
    let mut config = None;
    for ep in endpoints {
        if let ServerEndpoint::Tcp { tls: Some(t), .. } = ep {
            if config.get_or_insert(t) != &t {
                return Err(BindError {
                    endpoint: ep.to_string(),
                    message: "every ssl: endpoint of one server must use the same certificates"
                        .into(),
                    kind: std::io::ErrorKind::InvalidInput,
                });
            }
        }
    }
    let listeners = ssl_listeners(endpoints);
    let Some(cfg) = config else {
        return Ok(None);
    };
    let bad = |message: String| BindError {
        endpoint: "ssl".into(),
        message,
        kind: std::io::ErrorKind::InvalidInput,
    };
    let setup = ServerSetup::from_endpoint(cfg).map_err(|e| bad(e.to_string()))?;
    let ctx = TlsContext::new()
        .with_server(&setup)
        .map_err(|e| bad(e.to_string()))?;
    Ok(Some(Policy { ctx, listeners }))
}

/// The ids the drivers give the `ssl:` listeners among `endpoints`
/// (stream endpoints are numbered 1, 2, … in order).
pub fn ssl_listeners(endpoints: &[ServerEndpoint]) -> Vec<ListenerId> {
    let mut ids = Vec::new();
    let mut stream = 0u64;
    for ep in endpoints {
        match ep {
            ServerEndpoint::Tcp { tls, .. } => {
                stream += 1;
                if tls.is_some() {
                    ids.push(ListenerId(stream));
                }
            }
            ServerEndpoint::Unix { .. } => stream += 1,
            _ => {}
        }
    }
    ids
}

/// The factory, with every machine inside `Tls` and every service inside
/// `TlsService`.
pub fn wrap<M, S, F>(
    policy: Policy,
    mut make: F,
) -> impl FnMut() -> (Tls<M>, TlsService<S, M>) + Send + 'static
where
    M: Machine + Send + 'static,
    S: Service<M> + Send + 'static,
    F: FnMut() -> (M, S) + Send + 'static,
{
    move || {
        let (m, s) = make();
        let tls = Tls::new(m, &policy.ctx).accept(Accept::Listeners(policy.listeners.clone()));
        let svc = TlsService::new(s).on_tls(|e| {
            if let TlsEvent::Failed { conn, error } = e {
                tracing::info!(%conn, %error, "TLS session failed");
            }
        });
        (tls, svc)
    }
}

/// The running server as its callers know it: a hub handle reaches the
/// inner machine.
pub fn unwrap<M: Machine + Send + 'static>(running: Running<Tls<M>>) -> Running<M> {
    let addrs = running.local_addrs().to_vec();
    let stop = running.stopper();
    let hub = running.hub().map(|h| {
        SlotHandle::new(h.slot(), move |_, f: Command<M>| {
            use twill_core::Handle;
            h.call_boxed(Box::new(move |t: &mut Tls<M>| f(t.inner_mut())))
        })
    });
    let waiter = std::thread::Builder::new()
        .name("twill-tls".into())
        .spawn(move || running.wait())
        .expect("spawning a thread to wait for the server");
    Running::new(addrs, move || stop(), waiter, hub)
}

/// `twill cert`: writes a self-signed `cert.pem` and `key.pem` for
/// `hostnames` into `out`; returns their paths.
pub fn write_cert(hostnames: Vec<String>, out: &Path) -> Result<(String, String), String> {
    let fail = |e: rcgen::Error| format!("cannot make a certificate: {e}");
    let mut params = rcgen::CertificateParams::new(hostnames.clone()).map_err(fail)?;
    // The subject names the host, so two of these never share a subject
    // (verifiers look issuers up by subject).
    let cn = hostnames.first().cloned().unwrap_or_default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let key_pair = rcgen::KeyPair::generate().map_err(fail)?;
    let cert_pem = params.self_signed(&key_pair).map_err(fail)?;
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let cert = out.join("cert.pem");
    let key = out.join("key.pem");
    std::fs::write(&cert, cert_pem.pem()).map_err(|e| format!("{}: {e}", cert.display()))?;
    std::fs::write(&key, key_pair.serialize_pem())
        .map_err(|e| format!("{}: {e}", key.display()))?;
    Ok((cert.display().to_string(), key.display().to_string()))
}
