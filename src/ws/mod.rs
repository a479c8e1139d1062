//! WebSocket in the `twill` command: [`echo`] is `twill web
//! --websocket-echo PATH` (an echo endpoint beside the static files, one
//! port: `Switch<twill_http::Server, WebSocket>`), [`client`] is `twill ws
//! URL`.

pub mod client;
pub mod echo;
