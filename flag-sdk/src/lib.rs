//! Feature flags that evaluate in nanoseconds inside the application.
//!
//! This crate is the shared core of the platform: the flag model of the contract
//! ([`model`]), its [`validate`]ion, the compiled form ([`CompiledSnapshot`]) and the
//! evaluator, and the one [`Change`] of a flag or segment at a revision that the server's
//! change log, its stream and the SDK's stream client all carry ([`Snapshot::apply`]). The
//! server depends on it without the `client` feature, so server and SDK can never disagree
//! on what a context gets or on what a change does.
//!
//! ```
//! use flag_sdk::{CompiledSnapshot, Context, Snapshot};
//!
//! let snapshot: Snapshot = serde_json::from_str(r#"{
//!   "environment": "production", "revision": 1,
//!   "flags": { "new-checkout": {
//!     "key": "new-checkout", "kind": "boolean", "version": 1, "enabled": true,
//!     "variations": [{"key": "on", "value": true}, {"key": "off", "value": false}],
//!     "off_variation": "off",
//!     "rules": [{"id": "benelux",
//!                "clauses": [{"attribute": "country", "op": "in", "values": ["NL", "BE"]}],
//!                "serve": {"variation": "on"}}],
//!     "fallthrough": {"variation": "off"} } } }"#).unwrap();
//! flag_sdk::validate::validate_snapshot(&snapshot).unwrap();
//! let flags = CompiledSnapshot::new(snapshot);
//!
//! let ctx = Context::new("user-1").with("country", "NL");
//! assert!(flags.bool_variation("new-checkout", &ctx, false));
//! let detail = flags.evaluate("new-checkout", &ctx);
//! assert_eq!(detail.variation, Some("on"));
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod bucket;
mod change;
#[cfg(feature = "client")]
pub mod client;
mod compile;
mod context;
mod eval;
pub mod events;
pub mod histogram;
mod keys;
pub mod model;
#[cfg(feature = "openfeature")]
pub mod openfeature;
mod operators;
mod pattern;
pub mod resolution;
pub mod validate;
mod variation;

pub use change::{Change, ChangeError};
pub use compile::CompiledSnapshot;
pub use context::{Attribute, Context, ContextError, KEY_ATTRIBUTE};
pub use eval::{ErrorKind, Evaluation, Reason, MAX_DEPTH};
pub use model::{
    Clause, Flag, FlagKind, Op, Prerequisite, Rollout, Rule, Segment, SegmentRule, Serve, Snapshot,
    Target, Variation, WeightedVariation,
};
pub use pattern::REGEX_SIZE_LIMIT;
pub use variation::Detail;

#[cfg(feature = "client")]
pub use client::{
    AllFlags, Client, ClientBuilder, ClientError, FlagBuilder, FlagChange, Status, TestData, Timer,
};
