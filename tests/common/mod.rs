//! Shared helpers of the cross-crate tests: start a service on any driver,
//! find the Python peer, make unique socket paths, a tiny deterministic RNG.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use twill::cli::{Driver, ServeArgs};

/// Every driver, for tests that run on each.
pub const DRIVERS: [Driver; 3] = [Driver::Std, Driver::Mio, Driver::Tokio];

/// Serve flags for `endpoints` on `driver`, no idle timeout.
pub fn args(driver: Driver, endpoints: &[&str]) -> ServeArgs {
    ServeArgs {
        listen: endpoints
            .iter()
            .map(|e| e.parse().expect("endpoint"))
            .collect(),
        driver,
        max_conns: 10_000,
        idle_timeout: 0,
    }
}

/// A fresh Unix socket path under the temp dir.
pub fn unix_path(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let p = std::env::temp_dir().join(format!("twill-{tag}-{}-{n}.sock", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p.to_string_lossy().into_owned()
}

/// The Python interpreter the test setup installed (`TWILL_PYTHON`, set by
/// scripts/test-all.sh), else `python3`. Panics — never skips — when there
/// is none.
pub fn python() -> String {
    let py = std::env::var("TWILL_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&py)
        .arg("-c")
        .arg("import asyncio, socket")
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "no usable Python at {py:?}: run scripts/test-all.sh, which installs it"
    );
    py
}

/// Path of a script in tests/py.
pub fn py_script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/py")
        .join(name)
}

/// Runs a Python script and asserts it succeeded; returns its stdout.
pub fn run_python(script: &str, args: &[&str]) -> String {
    let out = Command::new(python())
        .arg(py_script(script))
        .args(args)
        .output()
        .expect("running python");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{script} {args:?} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    stdout
}

/// xorshift64*: deterministic, dependency-free test randomness.
pub struct Rng(pub u64);

impl Rng {
    /// The next value.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in 1..=max.
    pub fn size(&mut self, max: usize) -> usize {
        1 + (self.next() as usize) % max
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// A self-signed certificate (made by `twill cert`) in a directory of its
/// own, removed on drop.
pub struct Cert {
    /// The directory holding both files.
    pub dir: PathBuf,
    /// cert.pem.
    pub cert: String,
    /// key.pem.
    pub key: String,
}

impl Drop for Cert {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A certificate for `names`; `tag` keeps parallel tests apart.
pub fn cert(tag: &str, names: &[&str]) -> Cert {
    let dir = std::env::temp_dir().join(format!("twill-cert-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let names = names.iter().map(|n| n.to_string()).collect();
    let (cert, key) = twill::serve_tls::write_cert(names, &dir).expect("twill cert");
    Cert { dir, cert, key }
}
