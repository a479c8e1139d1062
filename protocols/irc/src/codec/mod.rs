//! The IRC codec: pure functions from bytes to messages and back.
//!
//! - [`message`]: [`Message`] (zero-copy parse over `Bytes`) and
//!   [`Encoder`] (a writer that cannot emit CR, LF or NUL inside a
//!   message), with the 512/8191-byte limits;
//! - [`tags`]: IRCv3 message tags and their value escaping;
//! - [`lines`]: the line framing;
//! - [`ctcp`]: CTCP inside PRIVMSG/NOTICE, with both old quoting levels;
//! - [`numeric`]: numeric replies by name;
//! - [`isupport`]: RPL_ISUPPORT (005) tokens;
//! - [`casemap`]: `ascii` / `rfc1459` comparison of nicks and channels.

pub mod casemap;
pub mod ctcp;
pub mod isupport;
pub mod lines;
pub mod message;
pub mod numeric;
pub mod tags;

pub use casemap::CaseMapping;
pub use isupport::Isupport;
pub use lines::{Line, LineReader};
pub use message::{Encoder, Limits, Message, MAX_BODY, MAX_LINE, MAX_PARAMS, MAX_TAGS};
