//! flag-sdk integration tests: one binary, one module per concern.

mod alloc;
mod chains;
#[cfg(feature = "client")]
mod client;
mod common;
mod evaluation;
mod newer_server;
mod properties;
mod readme;
#[cfg(feature = "client")]
mod sse_fixtures;
mod surface;
mod validation;
mod vectors;
