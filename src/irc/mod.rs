//! `twill irc` (the server: one [`twill_irc::Server`] hub machine over
//! every connection, on any driver) and `twill irc-client` (a line-mode
//! client over [`twill_irc::Client`]).

pub mod server;
