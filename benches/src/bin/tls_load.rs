//! TLS over loopback: `Tls<Echo>` on twill's tokio driver beside a
//! tokio-rustls echo server written here with no twill code, same
//! certificate (ECDSA P-256), same provider (ring), same cipher suite
//! (TLS13_AES_128_GCM_SHA256, forced by the client), both on a 2-worker
//! tokio runtime, under the same load in the same run. Prints bulk echo
//! throughput (MB/s) and full handshakes per second (no resumption), each
//! with the ratio to tokio-rustls.
//!
//! Run: `cd benches && cargo run --release --bin tls_load [CONNS] [MIB_PER_CONN] [HANDSHAKES]`

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use twill_basic::echo::Echo;
use twill_core::service::Ignore;
use twill_driver::ServeOptions;
use twill_tls::{ServerSetup, Tls, TlsContext};

struct Cert {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

fn cert() -> Cert {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    Cert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        der: cert.der().clone(),
    }
}

/// The peer: the canonical tokio-rustls echo server.
fn tokio_rustls_server(c: &Cert) -> SocketAddr {
    let key = PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes()).unwrap();
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![c.der.clone()], key)
            .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(l.local_addr().unwrap()).unwrap();
            loop {
                let (s, _) = l.accept().await.unwrap();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let _ = s.set_nodelay(true);
                    let Ok(tls) = acceptor.accept(s).await else {
                        return;
                    };
                    let (mut r, mut w) = tokio::io::split(tls);
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                    let _ = w.shutdown().await;
                });
            }
        });
    });
    rx.recv().unwrap()
}

fn client_config(c: &Cert, resume: bool) -> Arc<ClientConfig> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .retain(|s| s.suite() == rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    let mut roots = RootCertStore::empty();
    roots.add(c.der.clone()).unwrap();
    let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    if !resume {
        config.resumption = rustls::client::Resumption::disabled();
    }
    Arc::new(config)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// `conns` clients each send `bytes` in 64 KiB writes while reading the
/// echo; returns MB/s of echoed bytes.
fn bulk(addr: SocketAddr, config: Arc<ClientConfig>, conns: usize, bytes: usize) -> f64 {
    runtime().block_on(async move {
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..conns {
            let connector = TlsConnector::from(config.clone());
            tasks.push(tokio::spawn(async move {
                let s = TcpStream::connect(addr).await.unwrap();
                s.set_nodelay(true).unwrap();
                let name = ServerName::try_from("localhost").unwrap();
                let tls = connector.connect(name, s).await.unwrap();
                let (mut r, mut w) = tokio::io::split(tls);
                let writer = tokio::spawn(async move {
                    let chunk = vec![0x5A_u8; 64 * 1024];
                    let mut sent = 0;
                    while sent < bytes {
                        let n = chunk.len().min(bytes - sent);
                        w.write_all(&chunk[..n]).await.unwrap();
                        sent += n;
                    }
                    w.flush().await.unwrap();
                    w
                });
                let mut buf = vec![0u8; 64 * 1024];
                let mut got = 0;
                while got < bytes {
                    let n = r.read(&mut buf).await.unwrap();
                    assert!(n > 0, "early EOF after {got} bytes");
                    got += n;
                }
                let w = writer.await.unwrap();
                drop(r.unsplit(w));
                assert_eq!(got, bytes);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        (conns * bytes) as f64 / start.elapsed().as_secs_f64() / 1e6
    })
}

/// `total` full handshakes from `parallel` clients in turn (each: connect,
/// handshake, one byte echoed so the server has finished, close); returns
/// handshakes per second.
fn handshakes(addr: SocketAddr, config: Arc<ClientConfig>, parallel: usize, total: usize) -> f64 {
    runtime().block_on(async move {
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..parallel {
            let connector = TlsConnector::from(config.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..total / parallel {
                    let s = TcpStream::connect(addr).await.unwrap();
                    s.set_nodelay(true).unwrap();
                    let name = ServerName::try_from("localhost").unwrap();
                    let mut tls = connector.connect(name, s).await.unwrap();
                    tls.write_all(b"x").await.unwrap();
                    let mut b = [0u8; 1];
                    tls.read_exact(&mut b).await.unwrap();
                    assert_eq!(&b, b"x");
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        (total / parallel * parallel) as f64 / start.elapsed().as_secs_f64()
    })
}

fn best_of(rounds: usize, mut f: impl FnMut() -> f64) -> f64 {
    (0..rounds).map(|_| f()).fold(0.0, f64::max)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let conns: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(8);
    let mib: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(32);
    let total: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let bytes = mib << 20;
    let c = cert();

    let peer = tokio_rustls_server(&c);
    let setup = ServerSetup::from_pem(c.cert_pem.as_bytes(), c.key_pem.as_bytes()).unwrap();
    let ctx = TlsContext::new().with_server(&setup).unwrap();
    let opts = ServeOptions::factory(vec!["tcp:0:interface=127.0.0.1".parse().unwrap()]);
    let twill = twill_tokio::spawn(opts, move || (Tls::server(Echo::new(), &ctx), Ignore)).unwrap();
    std::thread::sleep(Duration::from_millis(200));

    let fresh = client_config(&c, false);
    println!("TLS 1.3, TLS13_AES_128_GCM_SHA256, ECDSA P-256, ring; best of 3");
    println!("bulk echo: {conns} connections × {mib} MiB each way");
    let base = best_of(3, || bulk(peer, fresh.clone(), conns, bytes));
    println!("  {:30} {:8.0} MB/s  1.00×", "tokio-rustls (peer)", base);
    let r = best_of(3, || bulk(twill.addr(), fresh.clone(), conns, bytes));
    println!(
        "  {:30} {r:8.0} MB/s  {:.2}×",
        "Tls<Echo>, twill tokio driver",
        r / base
    );

    println!("full handshakes: {total} from 8 clients at a time, no resumption");
    let base = best_of(3, || handshakes(peer, fresh.clone(), 8, total));
    println!("  {:30} {:8.0} /s    1.00×", "tokio-rustls (peer)", base);
    let r = best_of(3, || handshakes(twill.addr(), fresh.clone(), 8, total));
    println!(
        "  {:30} {r:8.0} /s    {:.2}×",
        "Tls<Echo>, twill tokio driver",
        r / base
    );
}
