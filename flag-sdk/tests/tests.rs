//! flag-sdk integration tests: one binary, one module per concern.

mod alloc;
#[cfg(feature = "client")]
mod client;
mod common;
mod evaluation;
mod properties;
mod readme;
#[cfg(feature = "client")]
mod sse_fixtures;
mod validation;
mod vectors;
