//! Shared pieces of the ssehub benchmark (issue 6): the load generator, the
//! three servers under test and the report are binaries of this crate.
//!
//! Every server speaks the same small HTTP/1.1 interface on 127.0.0.1:
//!
//! | request                     | what it does                                              |
//! |-----------------------------|-----------------------------------------------------------|
//! | `GET /events?topic=T`       | an event stream subscribed to topic `T`                   |
//! | `POST /run?mode=..&..`      | the server publishes a schedule itself (see [`control::Spec`]) |
//! | `POST /ack?seq=N`           | flow control for `mode=max`: every client has rounds `< N` |
//! | `GET /stats`                | pid, subscribers, schedule progress, publish-to-last-write |
//! | `POST /publish?topic=T`     | publishes the request body once (HTTP publishing)         |
//!
//! The server publishes from inside its own process when told to run a
//! schedule, so what is measured is the fan-out, not an HTTP publish path;
//! with `loadgen --publish-http`, the load generator publishes instead,
//! over HTTP to each server's publish endpoint ([`publish`]), and measures
//! that path too ([`fairness`] among concurrent publishers included).
//! Payloads carry a sequence number and a `CLOCK_MONOTONIC` timestamp
//! ([`payload`]); load generator and server run on the same machine, so the
//! load generator's clock reads are comparable.

pub mod args;
pub mod broker_hub;
pub mod clock;
pub mod control;
pub mod fairness;
pub mod hub_fanout;
pub mod payload;
pub mod procfs;
pub mod publish;
pub mod record;
pub mod redis_info;
pub mod soak;
pub mod sse;
pub mod timing;
pub mod wire;
