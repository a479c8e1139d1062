//! The opening handshake (§4) on top of twill-http's Upgrade hand-over.
//!
//! Server: [`ServerHandshake::from_request`] checks a request head
//! (`GET`, HTTP/1.1, `Upgrade: websocket`, `Connection: upgrade`, a
//! 16-byte `Sec-WebSocket-Key`, version 13) and exposes what the
//! application decides on (Origin, offered subprotocols and extensions,
//! every header); [`ServerHandshake::accept`] gives the `101` fields for
//! `twill_http::Server::accept_upgrade`. A wrong version is answered 426
//! with [`VERSION_HEADERS`].
//!
//! Client: [`ClientHandshake::new`] gives the request fields for
//! `twill_http::Client::request`; [`ClientHandshake::verify`] checks the
//! `101` (`Sec-WebSocket-Accept`, the chosen subprotocol and extensions).

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use base64::Engine;
use sha1::{Digest, Sha1};
use twill_core::rng::RngCore;
use twill_http::{RequestHead, ResponseHead, Version};

use crate::deflate::{self, DeflateConfig, DeflateParams, Extension};

/// The GUID of §1.3.
pub const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Fields of a 426 answer to an unsupported version (§4.4).
pub const VERSION_HEADERS: &[(&str, &str)] = &[("Sec-WebSocket-Version", "13")];

/// Why a handshake is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// Not `GET` over HTTP/1.1 (server) or not a `101` (client).
    #[error("not a WebSocket handshake: {0}")]
    NotWebSocket(&'static str),
    /// `Sec-WebSocket-Version` is not 13: answer 426.
    #[error("unsupported Sec-WebSocket-Version")]
    Version,
    /// `Sec-WebSocket-Key` missing or not 16 bytes of base64.
    #[error("bad Sec-WebSocket-Key")]
    Key,
    /// `Sec-WebSocket-Accept` does not match our key.
    #[error("bad Sec-WebSocket-Accept")]
    Accept,
    /// The server chose a subprotocol we did not offer.
    #[error("unexpected subprotocol {0:?}")]
    Subprotocol(String),
    /// The server answered with an extension we did not offer or cannot use.
    #[error("unexpected extension {0:?}")]
    Extension(String),
    /// The server's status was not 101.
    #[error("server answered {0}")]
    Status(u16),
}

impl HandshakeError {
    /// The HTTP status a server answers with.
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::Version => 426,
            _ => 400,
        }
    }
}

/// `base64(SHA-1(key + GUID))` (§4.2.2).
pub fn accept_key(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.as_bytes());
    h.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

fn tokens(values: impl Iterator<Item = impl AsRef<[u8]>>) -> Vec<String> {
    let mut out = Vec::new();
    for v in values {
        if let Ok(v) = core::str::from_utf8(v.as_ref()) {
            out.extend(
                v.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(String::from),
            );
        }
    }
    out
}

/// A checked client handshake, for the application to accept or refuse.
#[derive(Clone, Debug)]
pub struct ServerHandshake {
    /// The request head: target, Origin, cookies, any header.
    pub head: RequestHead,
    /// `Sec-WebSocket-Key`.
    pub key: String,
    /// `Origin`, if sent (browsers always do).
    pub origin: Option<String>,
    /// Offered subprotocols, in the client's order of preference.
    pub protocols: Vec<String>,
    /// Offered extensions.
    pub extensions: Vec<Extension>,
}

/// What [`ServerHandshake::accept`] decided.
#[derive(Clone, Debug)]
pub struct Accepted {
    /// Fields for `accept_upgrade` (Upgrade, Sec-WebSocket-Accept, …).
    pub headers: Vec<(String, String)>,
    /// The negotiated permessage-deflate, for the connection machine.
    pub deflate: Option<DeflateParams>,
    /// The chosen subprotocol.
    pub protocol: Option<String>,
}

impl Accepted {
    /// `headers` as borrowed pairs.
    pub fn header_refs(&self) -> Vec<(&str, &str)> {
        self.headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect()
    }
}

impl ServerHandshake {
    /// Checks an Upgrade request (§4.2.1).
    pub fn from_request(head: &RequestHead) -> Result<ServerHandshake, HandshakeError> {
        let h = head.headers();
        if head.method() != "GET" || head.version() != Version::Http11 {
            return Err(HandshakeError::NotWebSocket("not GET over HTTP/1.1"));
        }
        if !h.has_token("upgrade", "websocket") {
            return Err(HandshakeError::NotWebSocket("no Upgrade: websocket"));
        }
        if !h.has_token("connection", "upgrade") {
            return Err(HandshakeError::NotWebSocket("no Connection: upgrade"));
        }
        if h.get_str("sec-websocket-version").map(str::trim) != Some("13") {
            return Err(HandshakeError::Version);
        }
        let key = h.get_str("sec-websocket-key").map(str::trim).unwrap_or("");
        match base64::engine::general_purpose::STANDARD.decode(key) {
            Ok(k) if k.len() == 16 => {}
            _ => return Err(HandshakeError::Key),
        }
        Ok(ServerHandshake {
            head: head.clone(),
            key: key.to_string(),
            origin: h.get_str("origin").map(String::from),
            protocols: tokens(h.get_all("sec-websocket-protocol")),
            extensions: deflate::parse_extensions(h.get_all("sec-websocket-extensions")),
        })
    }

    /// The `101` fields: `protocol` must be one the client offered (else
    /// none is chosen); permessage-deflate is accepted when `deflate` is
    /// given and the client offered a usable form of it.
    pub fn accept(&self, protocol: Option<&str>, deflate: Option<&DeflateConfig>) -> Accepted {
        let mut headers = alloc::vec![
            ("Upgrade".to_string(), "websocket".to_string()),
            ("Connection".to_string(), "Upgrade".to_string()),
            ("Sec-WebSocket-Accept".to_string(), accept_key(&self.key)),
        ];
        let protocol = protocol
            .filter(|p| self.protocols.iter().any(|o| o == p))
            .map(String::from);
        if let Some(p) = &protocol {
            headers.push(("Sec-WebSocket-Protocol".into(), p.clone()));
        }
        let negotiated =
            deflate.and_then(|cfg| deflate::negotiate_server_response(&self.extensions, cfg));
        let deflate = negotiated.map(|(d, header)| {
            headers.push(("Sec-WebSocket-Extensions".into(), header));
            d
        });
        Accepted {
            headers,
            deflate,
            protocol,
        }
    }
}

/// A client's side of the handshake.
#[derive(Clone, Debug)]
pub struct ClientHandshake {
    key: String,
    protocols: Vec<String>,
    deflate: Option<DeflateConfig>,
}

/// What the server agreed to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// The subprotocol it chose.
    pub protocol: Option<String>,
    /// permessage-deflate, if it accepted our offer.
    pub deflate: Option<DeflateParams>,
}

impl ClientHandshake {
    /// A fresh key from `rng`; offers `protocols` and, with `deflate`,
    /// permessage-deflate.
    pub fn new(rng: &mut dyn RngCore, protocols: &[&str], deflate: Option<DeflateConfig>) -> Self {
        let mut nonce = [0u8; 16];
        rng.fill_bytes(&mut nonce);
        ClientHandshake {
            key: base64::engine::general_purpose::STANDARD.encode(nonce),
            protocols: protocols.iter().map(|p| p.to_string()).collect(),
            deflate,
        }
    }

    /// The request fields (besides `Host`, which twill-http adds).
    pub fn headers(&self) -> Vec<(String, String)> {
        let mut h = alloc::vec![
            ("Upgrade".to_string(), "websocket".to_string()),
            ("Connection".to_string(), "Upgrade".to_string()),
            ("Sec-WebSocket-Key".to_string(), self.key.clone()),
            ("Sec-WebSocket-Version".to_string(), "13".to_string()),
        ];
        if !self.protocols.is_empty() {
            h.push(("Sec-WebSocket-Protocol".into(), self.protocols.join(", ")));
        }
        if let Some(d) = &self.deflate {
            h.push(("Sec-WebSocket-Extensions".into(), deflate::client_offer(d)));
        }
        h
    }

    /// Checks the server's response (§4.1, the client's checks).
    pub fn verify(&self, head: &ResponseHead) -> Result<Negotiated, HandshakeError> {
        if head.status() != 101 {
            return Err(HandshakeError::Status(head.status()));
        }
        let h = head.headers();
        if !h.has_token("upgrade", "websocket") || !h.has_token("connection", "upgrade") {
            return Err(HandshakeError::NotWebSocket(
                "101 without Upgrade: websocket",
            ));
        }
        if h.get_str("sec-websocket-accept").map(str::trim) != Some(accept_key(&self.key).as_str())
        {
            return Err(HandshakeError::Accept);
        }
        let protocol = h
            .get_str("sec-websocket-protocol")
            .map(|p| p.trim().to_string());
        if let Some(p) = &protocol {
            if !self.protocols.contains(p) {
                return Err(HandshakeError::Subprotocol(p.clone()));
            }
        }
        let mut deflate = None;
        for e in deflate::parse_extensions(h.get_all("sec-websocket-extensions")) {
            let cfg = self.deflate.as_ref().filter(|_| deflate.is_none());
            match cfg.and_then(|c| deflate::accept_client(&e, c)) {
                Some(p) => deflate = Some(p),
                None => return Err(HandshakeError::Extension(e.name)),
            }
        }
        Ok(Negotiated { protocol, deflate })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6455_section_1_3_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
