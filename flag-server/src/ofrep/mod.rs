//! OFREP, the OpenFeature Remote Evaluation Protocol (v0.3.0): any OpenFeature provider that
//! speaks it (Python, Node, Java, Go, browsers, mobile) evaluates our flags with no SDK of
//! ours. Evaluation is the SDK's evaluator on the environment's live compiled snapshot, the
//! one the playground and the SDK endpoints read; reasons come from
//! `flag_sdk::resolution`, the mapping the Rust OpenFeature provider uses too.
//!
//! Layout: `wire` (the bodies and [`OfrepError`]), `request` (the context and its limits),
//! `cors` (client tokens' origins), `rate` (per-token rate limit), `tally` (evaluations
//! counted for release guards), `ticket` (the event stream's credential). The handlers
//! (`api::ofrep`) parse, call [`Ofrep`], and map. Nothing here touches SQL.

pub mod cors;
pub mod rate;
pub mod request;
pub mod tally;
pub mod ticket;
pub mod wire;

use std::sync::Arc;

use flag_sdk::{CompiledSnapshot, Context, ErrorKind, Evaluation, Reason};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::snapshots::Snapshots;
use wire::{BulkEvaluation, BulkItem, EvaluationFailure, EvaluationSuccess, EventStream, Metadata};
pub use wire::{ErrorCode, OfrepError, Refusal};

/// Seconds a hidden browser tab keeps its event stream open (OFREP's default).
pub const INACTIVITY_DELAY_SEC: u64 = 120;

/// The OFREP service: evaluation on the live snapshots, counted into the tally.
pub struct Ofrep {
    snapshots: Arc<Snapshots>,
    /// Evaluations awaiting the release guard.
    pub tally: Arc<tally::Tally>,
    /// The per-token rate limit.
    pub rate: rate::RateLimit,
}

/// A bulk answer: the body, or "unchanged" for the `If-None-Match` given.
pub enum Bulk {
    /// `200` with this `ETag` and JSON body.
    Fresh {
        /// The `ETag` (quoted).
        etag: String,
        /// The JSON body.
        body: Vec<u8>,
    },
    /// `304` with this `ETag`.
    NotModified {
        /// The `ETag` (quoted).
        etag: String,
    },
}

impl Ofrep {
    /// The service over `snapshots`, limiting each token to `per_second` requests (0: no
    /// limit).
    pub fn new(snapshots: Arc<Snapshots>, per_second: u32) -> Ofrep {
        Ofrep {
            snapshots,
            tally: Arc::default(),
            rate: rate::RateLimit::new(per_second),
        }
    }

    fn snapshot(&self, environment: &str) -> Result<Arc<CompiledSnapshot>, OfrepError> {
        self.snapshots.get(environment).ok_or_else(|| {
            OfrepError::refused(
                Refusal::Forbidden,
                format!("the token's environment `{environment}` no longer exists"),
            )
        })
    }

    /// `POST /ofrep/v1/evaluate/flags/{key}`: flag `key` for the body's context, as JSON.
    pub fn single(&self, environment: &str, key: &str, body: &[u8]) -> Result<Vec<u8>, OfrepError> {
        let ctx = request::context(body).map_err(|e| e.for_flag(key))?;
        let snapshot = self.snapshot(environment)?;
        let success = evaluate(&snapshot, key, &ctx).map_err(|e| e.for_flag(key))?;
        self.tally.record(environment, std::iter::once(&success));
        serde_json::to_vec(&success).map_err(internal)
    }

    /// `POST /ofrep/v1/evaluate/flags`: every flag for the body's context; `304` when
    /// `if_none_match` holds the `ETag` of the same context at the same revision.
    /// `stream_url` makes the event stream's URL, for the revision answered, when a body is
    /// sent.
    pub fn bulk(
        &self,
        environment: &str,
        body: &[u8],
        if_none_match: Option<&str>,
        stream_url: impl FnOnce(u64) -> String,
    ) -> Result<Bulk, OfrepError> {
        let snapshot = self.snapshot(environment)?;
        let etag = etag(&snapshot, body);
        // The tag digests this very body, answered before at this revision: it was a valid
        // context then and is one now, so it need not be read again.
        if if_none_match.is_some_and(|header| matches(header, &etag)) {
            return Ok(Bulk::NotModified { etag });
        }
        let ctx = request::context(body)?;
        let flags: Vec<BulkItem<'_>> = snapshot
            .snapshot()
            .flags
            .keys()
            .map(|key| match evaluate(&snapshot, key, &ctx) {
                Ok(success) => BulkItem::Success(success),
                Err(e) => BulkItem::Failure(EvaluationFailure {
                    key,
                    error_code: e.code.as_str(),
                    error_details: e.details,
                }),
            })
            .collect();
        self.tally.record(
            environment,
            flags.iter().filter_map(|item| match item {
                BulkItem::Success(success) => Some(success),
                BulkItem::Failure(_) => None,
            }),
        );
        let answer = BulkEvaluation {
            flags,
            metadata: json!({"environment": environment, "revision": snapshot.revision()}),
            event_streams: vec![EventStream {
                kind: "sse",
                url: stream_url(snapshot.revision()),
                inactivity_delay_sec: INACTIVITY_DELAY_SEC,
            }],
        };
        let body = serde_json::to_vec(&answer).map_err(internal)?;
        Ok(Bulk::Fresh { etag, body })
    }
}

fn internal(e: serde_json::Error) -> OfrepError {
    OfrepError::refused(Refusal::Internal, format!("cannot encode the answer: {e}"))
}

/// Flag `key` of `snapshot` for `ctx`, in OFREP's words.
pub fn evaluate<'a>(
    snapshot: &'a CompiledSnapshot,
    key: &str,
    ctx: &Context,
) -> Result<EvaluationSuccess<'a>, OfrepError> {
    let Some((key, flag)) = snapshot.snapshot().flags.get_key_value(key) else {
        return Err(OfrepError::new(
            ErrorCode::FlagNotFound,
            format!(
                "no flag `{key}` in environment `{}`",
                snapshot.environment()
            ),
        ));
    };
    let Evaluation {
        value,
        variation,
        reason,
        ..
    } = snapshot.evaluate(key, ctx);
    match (value, variation, &reason) {
        (Some(value), Some(variant), _) => Ok(EvaluationSuccess {
            key,
            value,
            reason: flag_sdk::resolution::reason(Some(flag), &reason).as_str(),
            variant,
            metadata: Metadata {
                reason,
                version: flag.version,
            },
        }),
        (
            _,
            _,
            Reason::Error {
                error: ErrorKind::FlagNotFound,
            },
        ) => Err(OfrepError::new(
            ErrorCode::FlagNotFound,
            format!(
                "no flag `{key}` in environment `{}`",
                snapshot.environment()
            ),
        )),
        _ => Err(OfrepError::new(
            ErrorCode::ParseError,
            format!("flag `{key}`'s configuration cannot be evaluated; see its validation"),
        )),
    }
}

/// The bulk `ETag`: the snapshot's revision and a digest of the environment and the body
/// (its context), so a new context or any change of the environment is a new tag.
pub fn etag(snapshot: &CompiledSnapshot, body: &[u8]) -> String {
    let mut digest = Sha256::new();
    digest.update(snapshot.environment().as_bytes());
    digest.update([0]);
    digest.update(body);
    let digest = digest.finalize();
    format!("\"{}-{}\"", snapshot.revision(), hex::encode(&digest[..8]))
}

/// Whether an `If-None-Match` header holds `etag` (or `*`).
fn matches(header: &str, etag: &str) -> bool {
    header
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}
