//! The events an SDK sends to `POST /sdk/v1/events` (contract section 7): per flag and variation,
//! how many evaluations served it and how many of those contexts hit a tracked error. The
//! server's release guard reads these; plain data shared by SDK and server.

use serde::{Deserialize, Serialize};

/// One batch, sent on an interval and on `close()`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EventBatch {
    /// Counters since the previous batch.
    #[serde(default)]
    pub counters: Vec<Counter>,
    /// Tracked events: metric histograms ([`MetricEvent`], `"kind": "metric"`); entries of
    /// other kinds are ignored (kept for forward compatibility).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<MetricEvent>))]
    pub events: Vec<serde_json::Value>,
}

/// Evaluations of `flag` that served `variation`, and the errors tracked for their contexts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Counter {
    /// The flag key.
    pub flag: String,
    /// The variation key.
    pub variation: String,
    /// Evaluations that served it.
    pub evaluations: u64,
    /// Tracked errors of contexts that were served it.
    #[serde(default)]
    pub errors: u64,
}

/// The values of `metric` tracked for contexts that were served `variation` of `flag` since
/// the previous batch. Sent as an entry of the batch's `events` with `"kind": "metric"`, so a
/// server that predates metrics takes the batch and ignores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename = "metric", deny_unknown_fields)]
pub struct MetricEvent {
    /// The flag key.
    pub flag: String,
    /// The variation key.
    pub variation: String,
    /// The metric's name, e.g. `checkout_latency_ms`.
    pub metric: String,
    /// Its values.
    pub histogram: crate::histogram::Histogram,
}
