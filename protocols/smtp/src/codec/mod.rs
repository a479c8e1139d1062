//! Pure functions from bytes to typed SMTP messages and back: command
//! lines ([`command`]), replies ([`reply`]), the DATA dot framing
//! ([`dot`]) and the SASL PLAIN/LOGIN encodings ([`sasl`]).

pub mod command;
pub mod dot;
pub mod reply;
pub mod sasl;

pub use command::{parse_command, BodyType, Command, CommandError, MailParams};
pub use dot::{stuff, unstuff_all, DataFlags, Unstuffer};
pub use reply::{write_multiline, write_reply, Reply, ReplyError, ReplyParser};
