//! Prometheus metrics: requests by route and status, request latency, SQLite write latency
//! and batch size, flags per environment. Rendered as text at `GET /metrics`.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// The server's metrics, registered in their own registry.
pub struct Metrics {
    registry: Registry,
    /// `flag_server_requests_total{route, status}`.
    pub requests: IntCounterVec,
    /// `flag_server_request_duration_seconds{route}`.
    pub latency: HistogramVec,
    /// `flag_server_sqlite_write_seconds`: one group commit, BEGIN to COMMIT.
    pub write_latency: Histogram,
    /// `flag_server_sqlite_write_batch_size`: requests per group commit.
    pub batch_size: Histogram,
    /// `flag_server_flags{environment}`: live (unarchived) flags.
    pub flags: IntGaugeVec,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "flag_server_requests_total",
                "HTTP requests by route and status",
            ),
            &["route", "status"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "flag_server_request_duration_seconds",
                "HTTP request latency by route",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ]),
            &["route"],
        )
        .expect("valid metric");
        let write_latency = Histogram::with_opts(
            HistogramOpts::new(
                "flag_server_sqlite_write_seconds",
                "SQLite group commit latency (BEGIN to COMMIT, fsync included)",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5,
            ]),
        )
        .expect("valid metric");
        let batch_size = Histogram::with_opts(
            HistogramOpts::new(
                "flag_server_sqlite_write_batch_size",
                "write requests per group commit",
            )
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
        )
        .expect("valid metric");
        let flags = IntGaugeVec::new(
            Opts::new("flag_server_flags", "live flags per environment"),
            &["environment"],
        )
        .expect("valid metric");
        for m in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(write_latency.clone()),
            Box::new(batch_size.clone()),
            Box::new(flags.clone()),
        ] {
            registry.register(m).expect("unique metric");
        }
        Metrics {
            registry,
            requests,
            latency,
            write_latency,
            batch_size,
            flags,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// `flag_last_change_timestamp_seconds{flag, environment}`: when each live flag last
/// changed in each environment, from the committed audit log (`store::audit::last_changes`),
/// so every replica exposes the same figures. A graph of errors can then show the change
/// that preceded it: `timestamp(...)`-free, e.g. `time() - flag_last_change_timestamp_seconds`.
pub fn render_last_changes(rows: &[(String, String, i64)]) -> String {
    let registry = Registry::new();
    let gauge = prometheus::GaugeVec::new(
        Opts::new(
            "flag_last_change_timestamp_seconds",
            "Unix time of each flag's last change (configuration, kill, release move, alert action) per environment",
        ),
        &["flag", "environment"],
    )
    .expect("valid metric");
    for (flag, environment, at_ms) in rows {
        gauge
            .with_label_values(&[flag.as_str(), environment.as_str()])
            .set(*at_ms as f64 / 1000.0);
    }
    if registry.register(Box::new(gauge)).is_err() {
        return String::new();
    }
    let mut buf = Vec::new();
    let _ = TextEncoder::new().encode(&registry.gather(), &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
