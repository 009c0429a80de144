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
/// server that predates metrics takes the batch and ignores it. Fields this version does not
/// know are ignored, so a newer SDK's event still counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MetricEvent {
    /// Always `metric`.
    pub kind: MetricKind,
    /// The flag key.
    pub flag: String,
    /// The variation key.
    pub variation: String,
    /// The metric's name, e.g. `checkout_latency_ms`.
    pub metric: String,
    /// Its values.
    pub histogram: crate::histogram::Histogram,
}

/// The kind of a [`MetricEvent`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum MetricKind {
    /// A metric's histogram.
    #[default]
    Metric,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_metric_event_travels_as_an_event_of_kind_metric() {
        let event = MetricEvent {
            kind: MetricKind::Metric,
            flag: "f".into(),
            variation: "on".into(),
            metric: "latency_ms".into(),
            histogram: crate::histogram::Histogram {
                count: 2,
                sum: 3.0,
                sum_squares: 5.0,
                buckets: vec![(161, 1), (177, 1)],
            },
        };
        let wire = serde_json::to_value(&event).unwrap();
        assert_eq!(
            wire,
            json!({"kind": "metric", "flag": "f", "variation": "on", "metric": "latency_ms",
                   "histogram": {"count": 2, "sum": 3.0, "sum_squares": 5.0,
                                 "buckets": [[161, 1], [177, 1]]}})
        );
        assert_eq!(serde_json::from_value::<MetricEvent>(wire).unwrap(), event);
    }
}
