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
use std::sync::Mutex;
use std::time::Duration;

use crate::events::{Counter, EventBatch};
use crate::Reason;

/// How often counters are sent by default.
pub const DEFAULT_EVENTS_INTERVAL: Duration = Duration::from_secs(10);
/// Shards: threads spread over them so they rarely share a lock.
const SHARDS: usize = 16;
/// The most (flag, variation) pairs one shard holds between two flushes.
const MAX_PAIRS_PER_SHARD: usize = 4096;

type Pairs = HashMap<String, HashMap<String, (u64, u64)>>;

/// Sharded (flag, variation) → (evaluations, errors) counters.
#[derive(Debug)]
pub(crate) struct Recorder {
    shards: Vec<Mutex<Pairs>>,
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
    INDEX.with(|i| *i)
}

/// Whether an evaluation came through a rollout (the only ones a release guard needs).
pub(crate) fn in_rollout(reason: &Reason<'_>) -> bool {
    reason.in_rollout()
}

impl Recorder {
    /// Counts one evaluation of `flag` that served `variation`.
    pub(crate) fn evaluated(&self, flag: &str, variation: &str) {
        self.add(flag, variation, 1, 0);
    }

    /// Counts one tracked error of a context that was served `variation` of `flag`.
    pub(crate) fn errored(&self, flag: &str, variation: &str) {
        self.add(flag, variation, 0, 1);
    }

    fn add(&self, flag: &str, variation: &str, evaluations: u64, errors: u64) {
        let Ok(mut shard) = self.shards[shard_index()].lock() else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if let Some(counts) = shard.get_mut(flag).and_then(|v| v.get_mut(variation)) {
            counts.0 += evaluations;
            counts.1 += errors;
            return;
        }
        let pairs: usize = shard.values().map(HashMap::len).sum();
        if pairs >= MAX_PAIRS_PER_SHARD {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        shard
            .entry(flag.to_owned())
            .or_default()
            .insert(variation.to_owned(), (evaluations, errors));
    }

    /// Takes every count so far, leaving the counters empty.
    pub(crate) fn drain(&self) -> Vec<Counter> {
        let mut merged: Pairs = HashMap::new();
        for shard in &self.shards {
            let taken = match shard.lock() {
                Ok(mut s) => std::mem::take(&mut *s),
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
    use super::*;

    #[test]
    fn counts_merge_across_threads_and_drain_empties() {
        let r = std::sync::Arc::new(Recorder::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let r = r.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        r.evaluated("f", "on");
                    }
                    r.errored("f", "on");
                    r.evaluated("f", "off");
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
                    evaluations: 4000,
                    errors: 4
                },
            ]
        );
        assert!(r.drain().is_empty());
    }

    #[test]
    fn memory_is_bounded_and_overflow_is_counted() {
        let r = Recorder::default();
        for i in 0..MAX_PAIRS_PER_SHARD + 10 {
            r.evaluated(&format!("flag-{i}"), "on");
        }
        assert_eq!(r.drain().len(), MAX_PAIRS_PER_SHARD);
        assert_eq!(r.dropped(), 10);
    }

    #[test]
    fn only_rollout_reasons_count() {
        assert!(in_rollout(&Reason::Fallthrough { in_rollout: true }));
        assert!(!in_rollout(&Reason::Fallthrough { in_rollout: false }));
        assert!(!in_rollout(&Reason::Off));
    }
}
