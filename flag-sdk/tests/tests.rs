//! flag-sdk integration tests: one binary, one module per concern.

mod alloc;
mod common;
mod evaluation;
mod properties;
mod validation;
mod vectors;
