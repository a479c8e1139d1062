//! Pure functions from bytes to typed SMTP messages and back: command
//! lines ([`command`]) and replies ([`reply`]). The DATA dot framing
//! ([`dot`]) and the SASL PLAIN/LOGIN encodings ([`sasl`]) are shared
//! with POP3 (and the other text protocols) and live in `twill-core`;
//! they are re-exported here under their old paths.

pub mod command;
pub mod reply;

pub use twill_core::dot;
pub use twill_core::sasl;

pub use command::{parse_command, BodyType, Command, CommandError, MailParams};
pub use dot::{stuff, unstuff_all, DataFlags, Unstuffer};
pub use reply::{write_multiline, write_reply, Reply, ReplyError, ReplyParser};
