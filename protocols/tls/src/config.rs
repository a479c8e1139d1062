//! Building rustls configurations the layer can use: certificates and keys
//! from PEM, SNI choice among several certificates, ALPN, optional client
//! certificates, and the [`WallClock`] through which rustls reads the time.
//!
//! Configurations are built once (at start-up) and shared by every
//! [`Tls`](crate::Tls) machine through an `Arc`; reading PEM files happens
//! only here ([`ServerSetup::from_endpoint`]), never inside a machine.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::time_provider::TimeProvider;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use twill_core::endpoint::{TlsClientConfig, TlsServerConfig};

/// A configuration could not be built: a file is unreadable, a PEM holds no
/// certificate or key, a key does not match its certificate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A file could not be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// A PEM file holds no certificate (or a broken one).
    #[error("{what}: no PEM certificate found")]
    NoCertificate {
        /// The file or source.
        what: String,
    },
    /// A PEM file holds no private key (or a broken one).
    #[error("{what}: no PEM private key found")]
    NoKey {
        /// The file or source.
        what: String,
    },
    /// rustls refused the key or configuration.
    #[error("{what}: {error}")]
    Rustls {
        /// What was being built.
        what: String,
        /// rustls's reason.
        error: rustls::Error,
    },
    /// The client-certificate verifier could not be built (no usable CA).
    #[error("client CA: {0}")]
    Verifier(String),
}

/// The wall clock rustls reads (certificate validity, ticket lifetimes).
///
/// Machines store the `wall` of every [`Now`](twill_core::Now) they are
/// given here; every config built with this clock then reads it. Never the
/// system clock: protocol crates take time only from `Now`.
#[derive(Clone, Debug, Default)]
pub struct WallClock(Arc<AtomicI64>);

impl WallClock {
    /// A clock at the Unix epoch until first set.
    pub fn new() -> Self {
        WallClock::default()
    }

    /// Records the current wall time (seconds since the Unix epoch).
    pub fn set(&self, now: twill_core::UnixTime) {
        self.0.store(now.secs(), Ordering::Relaxed);
    }

    /// The last time set.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl TimeProvider for WallClock {
    fn current_time(&self) -> Option<rustls_pki_types::UnixTime> {
        let secs = u64::try_from(self.get()).ok()?;
        Some(rustls_pki_types::UnixTime::since_unix_epoch(
            core::time::Duration::from_secs(secs),
        ))
    }
}

/// The crypto provider of every config built here: ring (see
/// BENCHMARKS.md for why not aws-lc-rs).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in a PEM text, leaf first.
pub fn parse_certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|_| ConfigError::NoCertificate { what: what.into() })?;
    if certs.is_empty() {
        return Err(ConfigError::NoCertificate { what: what.into() });
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in a PEM text.
pub fn parse_key(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, ConfigError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|_| ConfigError::NoKey { what: what.into() })
}

fn read(path: &str) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|error| ConfigError::Read {
        path: path.into(),
        error,
    })
}

/// A certificate chain with its key, checked to match.
pub fn certified_key(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    what: &str,
) -> Result<Arc<CertifiedKey>, ConfigError> {
    CertifiedKey::from_der(certs, key, &provider())
        .map(Arc::new)
        .map_err(|error| ConfigError::Rustls {
            what: what.into(),
            error,
        })
}

/// Chooses the certificate by the SNI name the client sent; the default
/// for no name or an unknown one.
#[derive(Debug)]
struct SniResolver {
    default: Arc<CertifiedKey>,
    by_name: BTreeMap<String, Arc<CertifiedKey>>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let by_name = hello
            .server_name()
            .and_then(|n| self.by_name.get(&n.to_ascii_lowercase()));
        Some(by_name.unwrap_or(&self.default).clone())
    }
}

/// Whether a server asks for client certificates.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub enum ClientAuth {
    /// No client certificates.
    #[default]
    None,
    /// Ask; accept clients without one, verify those who send one.
    Optional(Vec<CertificateDer<'static>>),
    /// Require a certificate that verifies against these CAs.
    Required(Vec<CertificateDer<'static>>),
}

/// What a TLS server needs; [`build`](Self::build) makes the rustls config.
///
/// Session resumption uses rustls's defaults (an in-memory session cache
/// of 256 entries; no stateless tickets).
#[derive(Clone, Debug)]
pub struct ServerSetup {
    default: Arc<CertifiedKey>,
    sni: BTreeMap<String, Arc<CertifiedKey>>,
    alpn: Vec<Vec<u8>>,
    client_auth: ClientAuth,
}

impl ServerSetup {
    /// A server with one certificate chain and key.
    pub fn new(default: Arc<CertifiedKey>) -> Self {
        ServerSetup {
            default,
            sni: BTreeMap::new(),
            alpn: Vec::new(),
            client_auth: ClientAuth::None,
        }
    }

    /// From PEM texts of a chain and a key.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, ConfigError> {
        let certs = parse_certs(cert_pem, "certificate")?;
        let key = parse_key(key_pem, "key")?;
        Ok(ServerSetup::new(certified_key(certs, key, "certificate")?))
    }

    /// From an `ssl:` endpoint's settings: reads `certKey`, `privateKey`,
    /// every `sni=` pair and `caCerts` (optional client certificates).
    pub fn from_endpoint(cfg: &TlsServerConfig) -> Result<Self, ConfigError> {
        let load = |cert: &str, key: &str| -> Result<Arc<CertifiedKey>, ConfigError> {
            let certs = parse_certs(&read(cert)?, cert)?;
            let k = parse_key(&read(key)?, key)?;
            certified_key(certs, k, cert)
        };
        let mut setup = ServerSetup::new(load(&cfg.cert_key, &cfg.private_key)?);
        for s in &cfg.sni {
            setup = setup.with_sni(&s.host, load(&s.cert, &s.key)?);
        }
        if let Some(ca) = &cfg.client_ca {
            let roots = parse_certs(&read(ca)?, ca)?;
            setup = setup.with_client_auth(ClientAuth::Optional(roots));
        }
        Ok(setup)
    }

    /// Serve `key` to clients asking for `host` by SNI (case-insensitive).
    pub fn with_sni(mut self, host: &str, key: Arc<CertifiedKey>) -> Self {
        self.sni.insert(host.to_ascii_lowercase(), key);
        self
    }

    /// The ALPN protocols offered, most preferred first.
    pub fn with_alpn(mut self, protocols: Vec<Vec<u8>>) -> Self {
        self.alpn = protocols;
        self
    }

    /// Client certificates (mutual TLS).
    pub fn with_client_auth(mut self, auth: ClientAuth) -> Self {
        self.client_auth = auth;
        self
    }

    /// The rustls config, reading time from `clock`.
    pub fn build(&self, clock: &WallClock) -> Result<Arc<ServerConfig>, ConfigError> {
        let provider = provider();
        let builder = ServerConfig::builder_with_details(provider.clone(), Arc::new(clock.clone()))
            .with_safe_default_protocol_versions()
            .map_err(|error| ConfigError::Rustls {
                what: "protocol versions".into(),
                error,
            })?;
        let builder = match &self.client_auth {
            ClientAuth::None => builder.with_no_client_auth(),
            ClientAuth::Optional(cas) | ClientAuth::Required(cas) => {
                let mut roots = RootCertStore::empty();
                for ca in cas {
                    roots
                        .add(ca.clone())
                        .map_err(|e| ConfigError::Verifier(e.to_string()))?;
                }
                let mut v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                if matches!(self.client_auth, ClientAuth::Optional(_)) {
                    v = v.allow_unauthenticated();
                }
                let v = v
                    .build()
                    .map_err(|e| ConfigError::Verifier(e.to_string()))?;
                builder.with_client_cert_verifier(v)
            }
        };
        let mut config = builder.with_cert_resolver(Arc::new(SniResolver {
            default: self.default.clone(),
            by_name: self.sni.clone(),
        }));
        config.alpn_protocols = self.alpn.clone();
        Ok(Arc::new(config))
    }
}

/// What a TLS client needs; [`build`](Self::build) makes the rustls config.
///
/// Resumption uses rustls's defaults: sessions are cached per server name
/// in memory, so a second connection to the same name resumes.
#[derive(Debug)]
pub struct ClientSetup {
    roots: RootCertStore,
    alpn: Vec<Vec<u8>>,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
}

impl ClientSetup {
    /// Verify servers against the bundled Mozilla roots (webpki-roots).
    pub fn platform_roots() -> Self {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        ClientSetup::with_roots(roots)
    }

    /// Verify servers against these roots only.
    pub fn with_roots(roots: RootCertStore) -> Self {
        ClientSetup {
            roots,
            alpn: Vec::new(),
            identity: None,
        }
    }

    /// Verify servers against the CA certificates in a PEM text.
    pub fn from_ca_pem(pem: &[u8]) -> Result<Self, ConfigError> {
        let mut roots = RootCertStore::empty();
        for c in parse_certs(pem, "CA file")? {
            roots.add(c).map_err(|error| ConfigError::Rustls {
                what: "CA file".into(),
                error,
            })?;
        }
        Ok(ClientSetup::with_roots(roots))
    }

    /// From a `tls:` endpoint's settings: its `ca=` file, or the platform
    /// roots.
    pub fn from_endpoint(cfg: &TlsClientConfig) -> Result<Self, ConfigError> {
        match &cfg.ca {
            Some(ca) => ClientSetup::from_ca_pem(&read(ca)?),
            None => Ok(ClientSetup::platform_roots()),
        }
    }

    /// The ALPN protocols offered, most preferred first.
    pub fn with_alpn(mut self, protocols: Vec<Vec<u8>>) -> Self {
        self.alpn = protocols;
        self
    }

    /// A client certificate chain and key to present (mutual TLS).
    pub fn with_identity(
        mut self,
        certs: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Self {
        self.identity = Some((certs, key));
        self
    }

    /// The rustls config, reading time from `clock`.
    pub fn build(&self, clock: &WallClock) -> Result<Arc<ClientConfig>, ConfigError> {
        let builder = ClientConfig::builder_with_details(provider(), Arc::new(clock.clone()))
            .with_safe_default_protocol_versions()
            .map_err(|error| ConfigError::Rustls {
                what: "protocol versions".into(),
                error,
            })?
            .with_root_certificates(self.roots.clone());
        let mut config = match &self.identity {
            None => builder.with_no_client_auth(),
            Some((certs, key)) => builder
                .with_client_auth_cert(certs.clone(), key.clone_key())
                .map_err(|error| ConfigError::Rustls {
                    what: "client certificate".into(),
                    error,
                })?,
        };
        config.alpn_protocols = self.alpn.clone();
        Ok(Arc::new(config))
    }
}
