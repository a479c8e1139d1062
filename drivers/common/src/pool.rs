//! A bounded pool of threads for blocking work (`spawn_blocking`,
//! `defer_to_thread`): password hashes, file reads, fsyncs.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A fixed number of worker threads taking jobs in order.
pub struct Pool {
    tx: Option<mpsc::Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    /// Starts `threads` workers (at least one).
    pub fn new(threads: usize, name: &str) -> Pool {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let threads = (0..threads.max(1))
            .map(|i| {
                let rx = rx.clone();
                std::thread::Builder::new()
                    .name(format!("{name}-{i}"))
                    .spawn(move || loop {
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            // A panicking job must not take the worker
                            // (and with it the pool's capacity) down.
                            Ok(job) => {
                                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                            }
                            Err(_) => return,
                        }
                    })
                    .expect("spawning a pool thread")
            })
            .collect();
        Pool {
            tx: Some(tx),
            threads,
        }
    }

    /// Runs `job` on a worker.
    pub fn execute(&self, job: impl FnOnce() + Send + 'static) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Box::new(job));
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.tx.take();
        for t in self.threads.drain(..) {
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

/// An OS-seeded generator for machines that need randomness.
pub fn os_rng() -> twill_core::rng::Rng {
    use rand_core::SeedableRng;
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).expect("the OS random source failed");
    Box::new(rand_chacha::ChaCha20Rng::from_seed(seed))
}
