//! Evaluation and error counters and metric histograms for the release guard (contract
//! section 7), and the task that sends them to `POST /sdk/v1/events`.
//!
//! Only evaluations served through a rollout are counted (a release is a rollout), so the
//! kill-switch and plain paths pay nothing. Counting takes a per-thread shard's uncontended
//! mutex, never a lock that a flush or another thread holds for long: a flush swaps each
//! shard's map out and sends it after. Memory is bounded per shard; past the bound, and when
//! the server cannot take a batch, counts are dropped and the drop is counted, never blocking.
//! Metric names are interned once per shard (a shard's table outlives its flushes), so a
//! tracked value is keyed by three integers and copies no string.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustc_hash::FxHashMap;

use super::metrics::Dense;
use crate::compile::CompiledSnapshot;
use crate::events::{Counter, EventBatch, MetricEvent, MetricKind};

/// How often counters are sent by default.
pub const DEFAULT_EVENTS_INTERVAL: Duration = Duration::from_secs(10);
/// Shards: threads spread over them so they rarely share a lock.
const SHARDS: usize = 16;
/// The most (flag, variation) pairs one shard holds between two flushes.
const MAX_PAIRS_PER_SHARD: usize = 4096;
/// The most (flag, variation, metric) histograms one shard holds between two flushes (each
/// is a few kilobytes).
const MAX_HISTOGRAMS_PER_SHARD: usize = 64;
/// The most metric names one shard interns.
const MAX_METRICS: usize = 64;

type Pairs = HashMap<String, HashMap<String, (u64, u64)>>;

/// One shard's counts. The hot path counts by (flag index, variation index) in the snapshot
/// the indexes refer to, so counting hashes two integers and copies no string; when a thread
/// counts for another snapshot, what was counted by index is moved to `named` first.
#[derive(Debug, Default)]
struct Shard {
    snapshot: Option<Arc<CompiledSnapshot>>,
    indexed: FxHashMap<(u32, u32), (u64, u64)>,
    named: Pairs,
    /// Pairs held in `indexed` and `named` together (an upper bound: a pair may be in both).
    pairs: usize,
    /// Metric names, interned: histograms refer to them by index.
    metrics: Vec<Box<str>>,
    /// Histograms by (flag index, variation index, metric index), as `indexed`.
    measured: FxHashMap<(u32, u32, u16), Box<Dense>>,
    /// Histograms by (flag key, variation key, metric index), as `named`.
    measured_named: HashMap<(String, String, u16), Box<Dense>>,
    /// Histograms held in both maps (an upper bound).
    histograms: usize,
}

impl Shard {
    /// Moves the counts by index to `named`, by the keys of the snapshot they refer to.
    fn name_all(&mut self) {
        let Some(snapshot) = self.snapshot.take() else {
            return;
        };
        for ((flag, variation), (e, x)) in self.indexed.drain() {
            let Some((flag, variation)) = snapshot.names_of(flag as usize, variation as usize)
            else {
                continue;
            };
            let counts = self
                .named
                .entry(flag.to_owned())
                .or_default()
                .entry(variation.to_owned())
                .or_default();
            counts.0 += e;
            counts.1 += x;
        }
        for ((flag, variation, metric), dense) in self.measured.drain() {
            let Some((flag, variation)) = snapshot.names_of(flag as usize, variation as usize)
            else {
                continue;
            };
            let key = (flag.to_owned(), variation.to_owned(), metric);
            match self.measured_named.get_mut(&key) {
                Some(into) => into.merge(&dense),
                None => {
                    self.measured_named.insert(key, dense);
                }
            }
        }
    }

    /// Makes the indexes refer to `snapshot`.
    fn follow(&mut self, snapshot: &Arc<CompiledSnapshot>) {
        if !self
            .snapshot
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(s, snapshot))
        {
            self.name_all();
            self.snapshot = Some(snapshot.clone());
        }
    }

    /// The index of metric `name`, interned on first sight; `None` past [`MAX_METRICS`].
    fn metric(&mut self, name: &str) -> Option<u16> {
        if let Some(i) = self.metrics.iter().position(|m| **m == *name) {
            return Some(i as u16);
        }
        if self.metrics.len() >= MAX_METRICS {
            return None;
        }
        self.metrics.push(name.into());
        Some((self.metrics.len() - 1) as u16)
    }
}

/// Sharded (flag, variation) → (evaluations, errors) counters.
#[derive(Debug)]
pub(crate) struct Recorder {
    shards: Vec<Mutex<Shard>>,
    dropped: AtomicU64,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            dropped: AtomicU64::new(0),
        }
    }
}

fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    INDEX.try_with(|i| *i).unwrap_or(0)
}

impl Recorder {
    /// Counts one evaluation of flag `flag` of `snapshot` that served variation `variation`.
    #[inline(never)]
    pub(crate) fn evaluated(
        &self,
        snapshot: &Arc<CompiledSnapshot>,
        flag: usize,
        variation: usize,
    ) {
        self.add(snapshot, flag, variation, 1, 0);
    }

    /// Counts one tracked error of a context that was served `variation` of `flag`.
    pub(crate) fn errored(&self, snapshot: &Arc<CompiledSnapshot>, flag: usize, variation: usize) {
        self.add(snapshot, flag, variation, 0, 1);
    }

    fn add(
        &self,
        snapshot: &Arc<CompiledSnapshot>,
        flag: usize,
        variation: usize,
        evaluations: u64,
        errors: u64,
    ) {
        let Ok(mut shard) = self.shards[shard_index()].lock() else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        shard.follow(snapshot);
        let key = (flag as u32, variation as u32);
        if let Some(counts) = shard.indexed.get_mut(&key) {
            counts.0 += evaluations;
            counts.1 += errors;
            return;
        }
        if shard.pairs >= MAX_PAIRS_PER_SHARD {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        shard.pairs += 1;
        shard.indexed.insert(key, (evaluations, errors));
    }

    /// Records `value` of `metric` for a context that was served `variation` of `flag`.
    #[inline(never)]
    pub(crate) fn measured(
        &self,
        snapshot: &Arc<CompiledSnapshot>,
        flag: usize,
        variation: usize,
        metric: &str,
        value: f64,
    ) {
        let Ok(mut shard) = self.shards[shard_index()].lock() else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        shard.follow(snapshot);
        let Some(metric) = shard.metric(metric) else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let key = (flag as u32, variation as u32, metric);
        if let Some(dense) = shard.measured.get_mut(&key) {
            dense.record(value);
            return;
        }
        if shard.histograms >= MAX_HISTOGRAMS_PER_SHARD {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        shard.histograms += 1;
        let mut dense = Dense::new();
        dense.record(value);
        shard.measured.insert(key, dense);
    }

    /// Takes every count and histogram so far, leaving the recorder empty.
    pub(crate) fn drain(&self) -> (Vec<Counter>, Vec<MetricEvent>) {
        let mut merged: Pairs = HashMap::new();
        let mut measured: HashMap<(String, String, Box<str>), Box<Dense>> = HashMap::new();
        for shard in &self.shards {
            let (taken, histograms) = match shard.lock() {
                Ok(mut s) => {
                    s.name_all();
                    s.pairs = 0;
                    s.histograms = 0;
                    let histograms: Vec<_> = s.measured_named.drain().collect();
                    let histograms: Vec<_> = histograms
                        .into_iter()
                        .map(|((f, v, m), d)| ((f, v, s.metrics[usize::from(m)].clone()), d))
                        .collect();
                    (std::mem::take(&mut s.named), histograms)
                }
                Err(_) => continue,
            };
            for (key, dense) in histograms {
                match measured.get_mut(&key) {
                    Some(into) => into.merge(&dense),
                    None => {
                        measured.insert(key, dense);
                    }
                }
            }
            for (flag, variations) in taken {
                let into = merged.entry(flag).or_default();
                for (variation, (e, x)) in variations {
                    let c = into.entry(variation).or_default();
                    c.0 += e;
                    c.1 += x;
                }
            }
        }
        let mut counters: Vec<Counter> = merged
            .into_iter()
            .flat_map(|(flag, variations)| {
                variations
                    .into_iter()
                    .map(move |(variation, (evaluations, errors))| Counter {
                        flag: flag.clone(),
                        variation,
                        evaluations,
                        errors,
                    })
            })
            .collect();
        counters.sort_by(|a, b| (&a.flag, &a.variation).cmp(&(&b.flag, &b.variation)));
        let mut metrics: Vec<MetricEvent> = measured
            .into_iter()
            .map(|((flag, variation, metric), dense)| MetricEvent {
                kind: MetricKind::Metric,
                flag,
                variation,
                metric: metric.into(),
                histogram: dense.histogram(),
            })
            .collect();
        metrics.sort_by(|a, b| {
            (&a.flag, &a.variation, &a.metric).cmp(&(&b.flag, &b.variation, &b.metric))
        });
        (counters, metrics)
    }

    /// Counts dropped so far (over the memory bound, or batches the server could not take).
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Records that a batch of `n` counters could not be delivered.
    pub(crate) fn lost(&self, n: usize) {
        self.dropped.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Where counters go: the server's `POST /sdk/v1/events`.
#[derive(Debug, Clone)]
pub(crate) struct Sink {
    pub http: reqwest::Client,
    pub url: String,
    pub token: String,
}

/// Sends the counters every `interval` until `cancel`; `close()` sends the last batch. The
/// first batch goes after a random part of the interval: processes started together (a
/// deploy, a restart of every pod) then do not all send in the same instant, every interval.
pub(crate) async fn run(
    sink: Sink,
    recorder: std::sync::Arc<Recorder>,
    interval: Duration,
    cancel: tokio_util::sync::CancellationToken,
) {
    let mut wait = interval.mul_f64(rand::random::<f64>());
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => sink.flush(&recorder).await,
            _ = cancel.cancelled() => return,
        }
        wait = interval;
    }
}

impl Sink {
    /// Sends what the recorder holds; on failure the batch is dropped and counted.
    pub(crate) async fn flush(&self, recorder: &Recorder) {
        flush(&self.http, &self.url, &self.token, recorder).await;
    }
}

async fn flush(http: &reqwest::Client, url: &str, token: &str, recorder: &Recorder) {
    let (counters, metrics) = recorder.drain();
    if counters.is_empty() && metrics.is_empty() {
        return;
    }
    let n = counters.len() + metrics.len();
    let batch = EventBatch {
        counters,
        events: metrics
            .iter()
            .filter_map(|m| serde_json::to_value(m).ok())
            .collect(),
    };
    let sent = http
        .post(url)
        .bearer_auth(token)
        .json(&batch)
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    match sent {
        Ok(r) if r.status().is_success() => {}
        Ok(r) => {
            recorder.lost(n);
            tracing::warn!(status = %r.status(), counters = n, "flag events refused; dropped");
        }
        Err(e) => {
            recorder.lost(n);
            tracing::debug!(error = %e, counters = n, "flag events not sent; dropped");
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A snapshot with flags `f` (variations on, off) and `g`, compiled.
    fn snapshot(revision: u64) -> Arc<CompiledSnapshot> {
        let flag = |key: &str| {
            json!({"key": key, "kind": "boolean", "version": 1, "enabled": true,
                "variations": [{"key": "on", "value": true}, {"key": "off", "value": false}],
                "off_variation": "off", "fallthrough": {"variation": "on"}})
        };
        let snapshot: crate::Snapshot = serde_json::from_value(json!({
            "environment": "e", "revision": revision, "flags": {"f": flag("f"), "g": flag("g")}
        }))
        .unwrap();
        Arc::new(CompiledSnapshot::new(snapshot))
    }

    #[test]
    fn counts_merge_across_threads_and_snapshots_and_drain_empties() {
        let r = Arc::new(Recorder::default());
        let (first, second) = (snapshot(1), snapshot(2));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (r, first, second) = (r.clone(), first.clone(), second.clone());
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        r.evaluated(&first, 0, 0);
                    }
                    r.errored(&first, 0, 0);
                    // Another snapshot: the counts so far are kept under their names.
                    r.evaluated(&second, 0, 1);
                    r.evaluated(&first, 0, 0);
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        let (counters, _) = r.drain();
        assert_eq!(
            counters,
            vec![
                Counter {
                    flag: "f".into(),
                    variation: "off".into(),
                    evaluations: 4,
                    errors: 0
                },
                Counter {
                    flag: "f".into(),
                    variation: "on".into(),
                    evaluations: 4004,
                    errors: 4
                },
            ]
        );
        assert!(r.drain().0.is_empty());
        assert_eq!(r.dropped(), 0);
    }

    #[test]
    fn memory_is_bounded_and_overflow_is_counted() {
        let r = Recorder::default();
        let s = snapshot(1);
        for i in 0..MAX_PAIRS_PER_SHARD + 10 {
            r.evaluated(&s, 0, i);
        }
        // Indexes past the flag's variations have no name and are not sent.
        assert_eq!(r.drain().0.len(), 2);
        assert_eq!(r.dropped(), 10);
        r.evaluated(&s, 1, 0);
        assert_eq!(r.drain().0.len(), 1, "a drain frees the shard");
    }

    #[test]
    fn values_are_histogrammed_per_flag_variation_and_metric_across_snapshots() {
        let r = Arc::new(Recorder::default());
        let (first, second) = (snapshot(1), snapshot(2));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (r, first, second) = (r.clone(), first.clone(), second.clone());
                std::thread::spawn(move || {
                    for i in 0..100 {
                        r.measured(&first, 0, 0, "latency_ms", f64::from(i));
                    }
                    r.measured(&second, 0, 0, "latency_ms", 1000.0);
                    r.measured(&first, 0, 1, "cart_size", 3.0);
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        let (counters, metrics) = r.drain();
        assert!(counters.is_empty(), "values are not evaluations");
        let names: Vec<_> = metrics
            .iter()
            .map(|m| (m.flag.as_str(), m.variation.as_str(), m.metric.as_str()))
            .collect();
        assert_eq!(
            names,
            [("f", "off", "cart_size"), ("f", "on", "latency_ms")]
        );
        let latency = &metrics[1].histogram;
        assert_eq!(latency.count, 404);
        assert!((latency.sum - 4.0 * (4950.0 + 1000.0)).abs() < 1e-9);
        assert!(latency.check().is_ok());
        assert_eq!(metrics[0].histogram.count, 4);
        assert!(r.drain().1.is_empty(), "a drain empties the histograms");
        assert_eq!(r.dropped(), 0);
    }

    #[test]
    fn histograms_and_metric_names_are_bounded() {
        let r = Recorder::default();
        let s = snapshot(1);
        for i in 0..MAX_HISTOGRAMS_PER_SHARD + 3 {
            r.measured(&s, 0, i % 2, &format!("m{}", i / 2), 1.0);
        }
        assert_eq!(r.dropped(), 3);
        assert_eq!(r.drain().1.len(), MAX_HISTOGRAMS_PER_SHARD);
        for i in 0..MAX_METRICS {
            r.measured(&s, 0, 0, &format!("other{i}"), 1.0);
        }
        assert!(r.dropped() > 3, "names past the table's bound are dropped");
    }
}
