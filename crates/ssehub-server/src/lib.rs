//! ssehub, the hub: a standalone Server-Sent Events hub that speaks the
//! [Mercure protocol](https://mercure.rocks/spec), built on the `ssehub`
//! library's broker.
//!
//! Publishers `POST` updates to `/.well-known/mercure`; subscribers open an
//! `EventSource` on the same URL with `match` / `matchURLPattern` query
//! parameters. The binary `ssehub` runs it; [`run`] embeds it.

pub mod topic;
pub mod auth;
