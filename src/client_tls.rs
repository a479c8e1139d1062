//! `--ca FILE` for every client subcommand: which certificate authorities
//! verify the server of a `tls:`/`https://`/`wss://` URL or a STARTTLS
//! upgrade. Without it, the bundled Mozilla roots.

use std::path::PathBuf;

use twill_tls::{ClientSetup, TlsContext};

/// The client's trust anchors, as command-line flags.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct CaArgs {
    /// Verify servers with the CA certificates in FILE (PEM) instead of
    /// the bundled Mozilla roots.
    #[arg(long = "ca", visible_alias = "cacert", value_name = "FILE")]
    pub ca: Option<PathBuf>,
}

impl CaArgs {
    /// The client setup: the roots of `--ca`, else the bundled ones, with
    /// `alpn` offered (most preferred first; empty for none). The error is
    /// one line naming the file.
    pub fn setup(&self, alpn: &[&[u8]]) -> Result<ClientSetup, String> {
        let setup = match &self.ca {
            Some(p) => {
                let pem = std::fs::read(p).map_err(|e| format!("--ca {}: {e}", p.display()))?;
                ClientSetup::from_ca_pem(&pem).map_err(|e| format!("--ca {}: {e}", p.display()))?
            }
            None => ClientSetup::platform_roots(),
        };
        Ok(if alpn.is_empty() {
            setup
        } else {
            setup.with_alpn(alpn.iter().map(|p| p.to_vec()).collect())
        })
    }

    /// A client TLS context from [`CaArgs::setup`].
    pub fn context(&self, alpn: &[&[u8]]) -> Result<TlsContext, String> {
        TlsContext::new()
            .with_client(&self.setup(alpn)?)
            .map_err(|e| format!("TLS setup: {e}"))
    }
}
