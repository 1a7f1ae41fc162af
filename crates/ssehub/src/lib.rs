//! ssehub: Server-Sent Events for Rust.
#![forbid(unsafe_code)]

pub mod event;
pub mod parse;
