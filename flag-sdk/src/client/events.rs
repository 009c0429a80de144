//! Evaluation and error counters for the release guard (contract section 7), and the task that
//! sends them to `POST /sdk/v1/events`.
//!
//! Only evaluations served through a rollout are counted (a release is a rollout), so the
//! kill-switch and plain paths pay nothing. Counting takes a per-thread shard's uncontended
//! mutex, never a lock that a flush or another thread holds for long: a flush swaps each
//! shard's map out and sends it after. Memory is bounded per shard; past the bound, and when
//! the server cannot take a batch, counts are dropped and the drop is counted, never blocking.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustc_hash::FxHashMap;

use crate::compile::CompiledSnapshot;
use crate::events::{Counter, EventBatch};

/// How often counters are sent by default.
pub const DEFAULT_EVENTS_INTERVAL: Duration = Duration::from_secs(10);
/// Shards: threads spread over them so they rarely share a lock.
const SHARDS: usize = 16;
/// The most (flag, variation) pairs one shard holds between two flushes.
const MAX_PAIRS_PER_SHARD: usize = 4096;

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
        if !shard
            .snapshot
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(s, snapshot))
        {
            shard.name_all();
            shard.snapshot = Some(snapshot.clone());
        }
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

    /// Takes every count so far, leaving the counters empty.
    pub(crate) fn drain(&self) -> Vec<Counter> {
        let mut merged: Pairs = HashMap::new();
        for shard in &self.shards {
            let taken = match shard.lock() {
                Ok(mut s) => {
                    s.name_all();
                    s.pairs = 0;
                    std::mem::take(&mut s.named)
                }
                Err(_) => continue,
            };
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
        counters
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

/// Sends the counters every `interval` until `cancel`; `close()` sends the last batch.
pub(crate) async fn run(
    sink: Sink,
    recorder: std::sync::Arc<Recorder>,
    interval: Duration,
    cancel: tokio_util::sync::CancellationToken,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => sink.flush(&recorder).await,
            _ = cancel.cancelled() => return,
        }
    }
}

impl Sink {
    /// Sends what the recorder holds; on failure the batch is dropped and counted.
    pub(crate) async fn flush(&self, recorder: &Recorder) {
        flush(&self.http, &self.url, &self.token, recorder).await;
    }
}

async fn flush(http: &reqwest::Client, url: &str, token: &str, recorder: &Recorder) {
    let counters = recorder.drain();
    if counters.is_empty() {
        return;
    }
    let n = counters.len();
    let batch = EventBatch {
        counters,
        events: Vec::new(),
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
        let counters = r.drain();
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
        assert!(r.drain().is_empty());
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
        assert_eq!(r.drain().len(), 2);
        assert_eq!(r.dropped(), 10);
        r.evaluated(&s, 1, 0);
        assert_eq!(r.drain().len(), 1, "a drain frees the shard");
    }
}
