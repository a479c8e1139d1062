//! `twill web`: a static file server.
//!
//! The logic is independent of the HTTP machine and unit-tested on its own:
//! [`path`] (request target → file under the root, never outside it),
//! [`mime`] (content types), [`range`] (`Range`/206/416), [`cond`]
//! (`ETag`, `Last-Modified`, 304/412), [`listing`] (directory pages) and
//! [`files`], which puts them together into a [`files::Reply`] for one
//! request.

pub mod cond;
pub mod files;
pub mod listing;
pub mod mime;
pub mod path;
pub mod range;
pub mod service;
