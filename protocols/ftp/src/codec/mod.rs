//! Pure functions from bytes to FTP messages and back: no state beyond a
//! partial line, no I/O.
//!
//! - [`command`]: the client's command lines (RFC 959 §5.3), with Telnet
//!   IAC sequences removed;
//! - [`reply`]: replies, single and multi-line (RFC 959 §4.2), encoded and
//!   parsed incrementally;
//! - [`addr`]: the data-connection addresses of PORT/PASV (RFC 959) and
//!   EPRT/EPSV (RFC 2428);
//! - [`ascii`]: TYPE A conversion between local LF and network CRLF;
//! - [`list`]: directory entries as `LIST` lines and RFC 3659 MLSx facts.

pub mod addr;
pub mod ascii;
pub mod command;
pub mod list;
pub mod reply;
