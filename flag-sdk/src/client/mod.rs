//! The streaming client (cargo feature `client`): a [`Client`] keeps one environment's
//! snapshot current over the server's SSE stream and evaluates flags locally.
//!
//! Reads are lock-free: every getter `load()`s the current [`CompiledSnapshot`] from an
//! `arc-swap` and evaluates it; they never wait on the network or on a lock a writer holds.
//! One background task (module `stream`) owns the connection and swaps whole snapshots in.
//!
//! Module map: `builder` (configuration, start-up, cache cold start), `stream` (the task),
//! `sse` (pure event-stream decoder), `update` (typed events), `state` (what is held, status,
//! change channel), `backoff` (reconnection policy), `cache` (the cache file), `detail`
//! (owned evaluation results), `test_data` (flags driven by tests, no server).
//!
//! ```no_run
//! # async fn run() -> Result<(), flag_sdk::ClientError> {
//! use std::time::Duration;
//! use flag_sdk::{Client, Context};
//!
//! let client = Client::builder("http://127.0.0.1:8080", "sdk-token")
//!     .init_timeout(Duration::from_secs(5))
//!     .cache_file("/var/lib/app/flags.json")
//!     .build()
//!     .await?;
//! let ctx = Context::new("user-1").with("country", "NL");
//! if client.bool_variation("new-checkout", &ctx, false) { /* new path */ }
//! let detail = client.bool_variation_detail("new-checkout", &ctx, false); // value, variation, reason
//! let mut changes = client.subscribe(); // flag keys changed by each update
//! # let _ = (detail, changes.try_recv());
//! client.close().await;
//! # Ok(()) }
//! ```

mod all_flags;
mod backoff;
mod builder;
mod cache;
mod events;
mod metrics;
mod offline;
mod read;
#[doc(hidden)]
pub mod sse;
mod state;
mod stream;
mod test_data;
mod update;
mod watch;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::compile::CompiledSnapshot;
use crate::context::Context;
use crate::eval::ErrorKind;
use crate::model::Snapshot;
use crate::variation::{Answer, Detail, Typed};

pub use all_flags::AllFlags;
pub use builder::{
    ClientBuilder, ClientError, HttpError, DEFAULT_CONNECT_TIMEOUT, DEFAULT_HEARTBEAT,
    DEFAULT_INIT_TIMEOUT,
};
pub use events::DEFAULT_EVENTS_INTERVAL;
pub use metrics::Timer;
pub use state::{FlagChange, Status};
pub use stream::STREAM_PATH;
pub use test_data::{FlagBuilder, TestData};
pub use watch::{Changes, ChangesError, Closed, StatusWatch};

use state::Shared;

/// A feature-flag client for one environment. Cheap to clone; clones share the data and the
/// stream. Build one with [`Client::builder`], [`Client::offline`] or [`TestData::client`].
#[derive(Debug, Clone)]
pub struct Client {
    shared: Arc<Shared>,
    stream: Arc<StreamHandle>,
}

#[derive(Debug, Default)]
struct StreamHandle {
    cancel: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
    /// Counters for the release guard, and where to send them (none for offline clients).
    events: Arc<events::Recorder>,
    sink: Option<events::Sink>,
    events_task: Mutex<Option<JoinHandle<()>>>,
}

impl Client {
    /// Starts configuring a streaming client for the server at `url` (e.g.
    /// `http://127.0.0.1:8080`) with an SDK token.
    pub fn builder(url: impl Into<String>, sdk_token: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(url.into(), sdk_token.into())
    }

    /// A client that serves `snapshot` and never connects (status `Offline`).
    pub fn offline(snapshot: Snapshot) -> Client {
        let shared = Arc::new(Shared::new());
        shared.replace(snapshot);
        shared.touch(std::time::SystemTime::now());
        shared.set_status(Status::Offline);
        Client::from_shared(shared)
    }

    fn from_shared(shared: Arc<Shared>) -> Client {
        Client {
            shared,
            stream: Arc::new(StreamHandle::default()),
        }
    }

    /// Where the client's data stands.
    pub fn status(&self) -> Status {
        self.shared.status()
    }

    /// Watches [`status`](Self::status) changes.
    pub fn watch_status(&self) -> StatusWatch {
        StatusWatch::new(self.shared.watch_status())
    }

    /// How long ago the data was last known current (last event or heartbeat, or the cache
    /// file's write time); `None` without data.
    pub fn data_age(&self) -> Option<Duration> {
        self.shared.data_age()
    }

    /// The environment revision held; `None` without data.
    pub fn revision(&self) -> Option<u64> {
        self.shared.revision()
    }

    /// The snapshot held, compiled; `None` without data. Evaluate many flags against one
    /// consistent revision with it.
    pub fn snapshot(&self) -> Option<Arc<CompiledSnapshot>> {
        self.shared.load_full()
    }

    /// Notifications of flags changed by each update. A receiver that falls more than a few
    /// hundred updates behind gets [`ChangesError::Lagged`] and should re-read what it cares
    /// about.
    pub fn subscribe(&self) -> Changes {
        Changes::new(self.shared.subscribe())
    }

    /// A boolean flag's value for `ctx`, or `default` (unknown flag, another kind, no data).
    #[inline]
    pub fn bool_variation(&self, key: &str, ctx: &Context, default: bool) -> bool {
        self.value(key, |flags| {
            self.served(flags, key, flags.answer::<bool>(key, ctx))
        })
        .unwrap_or(default)
    }

    /// A string flag's value for `ctx`, or `default`.
    pub fn string_variation(&self, key: &str, ctx: &Context, default: &str) -> String {
        self.value(key, |flags| {
            let value = self.served(flags, key, flags.answer::<&str>(key, ctx));
            value.map(str::to_owned)
        })
        .unwrap_or_else(|| default.to_owned())
    }

    /// A number flag's value for `ctx` as an integer, or `default`. A value with a fraction
    /// (`2.5`) is not an integer: `default`, reason `WRONG_TYPE`.
    pub fn int_variation(&self, key: &str, ctx: &Context, default: i64) -> i64 {
        self.value(key, |flags| {
            self.served(flags, key, flags.answer::<i64>(key, ctx))
        })
        .unwrap_or(default)
    }

    /// A number flag's value for `ctx`, or `default`.
    pub fn float_variation(&self, key: &str, ctx: &Context, default: f64) -> f64 {
        self.value(key, |flags| {
            self.served(flags, key, flags.answer::<f64>(key, ctx))
        })
        .unwrap_or(default)
    }

    /// Any flag's value for `ctx` as JSON, or `default`.
    pub fn json_variation(&self, key: &str, ctx: &Context, default: Value) -> Value {
        self.value(key, |flags| {
            let value = self.served(flags, key, flags.answer::<&Value>(key, ctx));
            value.cloned()
        })
        .unwrap_or(default)
    }

    /// [`bool_variation`](Self::bool_variation) with the variation and the reason. Without
    /// data the reason is `ERROR` / `CLIENT_NOT_READY`.
    pub fn bool_variation_detail(&self, key: &str, ctx: &Context, default: bool) -> Detail<bool> {
        self.detail(key, default, |flags| {
            let typed = self.counted(flags, key, flags.typed::<bool>(key, ctx));
            flags.typed_detail(typed, default)
        })
    }

    /// [`string_variation`](Self::string_variation) with the variation and the reason.
    pub fn string_variation_detail(
        &self,
        key: &str,
        ctx: &Context,
        default: &str,
    ) -> Detail<String> {
        self.detail(key, default.to_owned(), |flags| {
            let typed = self.counted(flags, key, flags.typed::<&str>(key, ctx));
            flags.typed_detail(typed, default).map(str::to_owned)
        })
    }

    /// [`int_variation`](Self::int_variation) with the variation and the reason.
    pub fn int_variation_detail(&self, key: &str, ctx: &Context, default: i64) -> Detail<i64> {
        self.detail(key, default, |flags| {
            let typed = self.counted(flags, key, flags.typed::<i64>(key, ctx));
            flags.typed_detail(typed, default)
        })
    }

    /// [`float_variation`](Self::float_variation) with the variation and the reason.
    pub fn float_variation_detail(&self, key: &str, ctx: &Context, default: f64) -> Detail<f64> {
        self.detail(key, default, |flags| {
            let typed = self.counted(flags, key, flags.typed::<f64>(key, ctx));
            flags.typed_detail(typed, default)
        })
    }

    /// [`json_variation`](Self::json_variation) with the variation and the reason.
    pub fn json_variation_detail(&self, key: &str, ctx: &Context, default: Value) -> Detail<Value> {
        let mut default = Some(default);
        let detail = read::with_snapshot(&self.shared, |flags| {
            let flags = flags?;
            let typed = self.counted(flags, key, flags.typed::<&Value>(key, ctx));
            let typed = typed.map(|(i, v, why, value)| (i, v, why, value.clone()));
            Some(flags.typed_detail(typed, default.take().unwrap_or_default()))
        });
        detail.unwrap_or_else(|| {
            let default = default.take().unwrap_or_default();
            not_ready(key);
            Detail::error(default, ErrorKind::ClientNotReady)
        })
    }

    /// Every flag's value and reason for `ctx`, from one snapshot: for rendering a page's
    /// flags or for debugging. It costs one evaluation per flag and one allocation, and counts
    /// nothing for the release guard (call a getter for a flag whose use should count).
    pub fn all_flags(&self, ctx: &Context) -> AllFlags {
        AllFlags::new(self.shared.load_full(), ctx)
    }

    /// Calls `answer` with the current snapshot; `None` without one.
    #[inline(always)]
    fn value<T>(
        &self,
        key: &str,
        answer: impl FnOnce(&Arc<CompiledSnapshot>) -> Option<T>,
    ) -> Option<T> {
        read::with_snapshot(&self.shared, |flags| match flags {
            Some(flags) => answer(flags),
            None => {
                not_ready(key);
                None
            }
        })
    }

    /// The value served, counted for the release guard if through a rollout; `None` (and a
    /// log line) when the default applies.
    #[inline(always)]
    fn served<T>(&self, flags: &Arc<CompiledSnapshot>, key: &str, answer: Answer<T>) -> Option<T> {
        match answer {
            Answer::Constant(value) => Some(value),
            Answer::Evaluated(Ok((i, v, why, value))) => {
                if why.in_rollout() {
                    self.stream.events.evaluated(flags, i, v);
                }
                Some(value)
            }
            Answer::Evaluated(Err(error)) => {
                defaulted(key, error);
                None
            }
        }
    }

    fn detail<T>(
        &self,
        key: &str,
        default: T,
        answer: impl FnOnce(&Arc<CompiledSnapshot>) -> Detail<T>,
    ) -> Detail<T> {
        read::with_snapshot(&self.shared, |flags| match flags {
            Some(flags) => answer(flags),
            None => {
                not_ready(key);
                Detail::error(default, ErrorKind::ClientNotReady)
            }
        })
    }

    /// Counts an evaluation served through a rollout, for the release guard; logs a default.
    #[inline(always)]
    fn counted<T>(&self, flags: &Arc<CompiledSnapshot>, key: &str, typed: Typed<T>) -> Typed<T> {
        match &typed {
            Ok((i, v, why, _)) if why.in_rollout() => self.stream.events.evaluated(flags, *i, *v),
            Ok(_) => {}
            Err(error) => defaulted(key, *error),
        }
        typed
    }

    /// Reports that something went wrong for `ctx` (call it where the application already
    /// handles an error). The error is attributed to the variation `ctx` is served by each
    /// flag under a rollout, so a release's guard can compare the new variation's error rate
    /// with the rest's. Counters are sent in the background; this never blocks.
    pub fn track_error(&self, ctx: &Context) {
        self.each_rollout_served(ctx, |flags, i, v| self.stream.events.errored(flags, i, v));
    }

    /// Records a value of a metric for `ctx`, e.g. a latency in milliseconds:
    /// `client.track_value(&ctx, "checkout_latency_ms", 612.0)`. Like
    /// [`track_error`](Self::track_error), the value is attributed to the variation `ctx` is
    /// served by each flag under a rollout, aggregated into a fixed-size histogram per flag,
    /// variation and metric, and sent with the counters, so a release's guard can compare
    /// the new variation's mean or p95 with the rest's. No allocation, never blocks; a value
    /// that is not a finite number is ignored.
    pub fn track_value(&self, ctx: &Context, metric: &str, value: f64) {
        if !value.is_finite() {
            return;
        }
        self.each_rollout_served(ctx, |flags, i, v| {
            self.stream.events.measured(flags, i, v, metric, value)
        });
    }

    /// Runs `work` and records how long it took, in milliseconds, as a value of `metric`
    /// for `ctx` (see [`track_value`](Self::track_value)); returns what `work` returned.
    pub fn time<R>(&self, ctx: &Context, metric: &str, work: impl FnOnce() -> R) -> R {
        let _timer = self.timer(ctx, metric);
        work()
    }

    /// Starts a [`Timer`] that records the time until it is dropped, in milliseconds, as a
    /// value of `metric` for `ctx`: for work that spans `.await`s or early returns.
    pub fn timer<'a>(&'a self, ctx: &'a Context, metric: &'a str) -> Timer<'a> {
        Timer::start(self, ctx, metric)
    }

    /// Calls `record` with (snapshot, flag index, variation index) for each flag that serves
    /// `ctx` through a rollout.
    #[inline(always)]
    fn each_rollout_served(
        &self,
        ctx: &Context,
        mut record: impl FnMut(&Arc<CompiledSnapshot>, usize, usize),
    ) {
        read::with_snapshot(&self.shared, |flags| {
            let Some(flags) = flags else {
                return;
            };
            for i in flags.rollout_flag_indexes() {
                if let Ok((i, v, why)) = flags.outcome_at(i, ctx, None) {
                    if why.in_rollout() {
                        record(flags, i, v);
                    }
                }
            }
        });
    }

    /// Counters dropped since start: over the memory bound, or batches the server could not
    /// take. Counting never blocks the application.
    pub fn events_dropped(&self) -> u64 {
        self.stream.events.dropped()
    }

    /// Stops the stream and waits for its task to end. The data held stays readable (status
    /// `Offline`). Idempotent; every clone is closed.
    pub async fn close(&self) {
        self.stream.cancel.cancel();
        for handle in [&self.stream.task, &self.stream.events_task] {
            let task = handle.lock().ok().and_then(|mut t| t.take());
            if let Some(task) = task {
                let _ = task.await;
            }
        }
        if let Some(sink) = &self.stream.sink {
            sink.flush(&self.stream.events).await;
        }
        self.shared.set_status(Status::Offline);
    }
}

#[cold]
#[inline(never)]
fn defaulted(key: &str, error: ErrorKind) {
    tracing::debug!(flag = key, ?error, "default served");
}

#[cold]
#[inline(never)]
fn not_ready(key: &str) {
    tracing::debug!(flag = key, "flag client not ready; default served");
}

impl Drop for StreamHandle {
    fn drop(&mut self) {
        // The last clone of a client going away stops its stream.
        self.cancel.cancel();
    }
}
