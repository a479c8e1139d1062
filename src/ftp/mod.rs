//! `twill ftp`: an FTP server over a directory tree. The protocol is
//! `twill_ftp::Server`; this module is the application around it:
//! [`fs`] (confined file-system work, blocking) and [`service`] (the
//! driver-neutral [`service::Ftp`] that runs it on the pool). The
//! protocol crate is re-exported here, so `twill::ftp::Server` works.

pub use twill_ftp::*;

pub mod cli;
pub mod client;
pub mod fs;
pub mod service;
pub mod url;
