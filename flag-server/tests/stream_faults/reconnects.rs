//! How many clients reconnected when: the delays the SDK chose (from its own log) and the
//! moments connection attempts started (from the HTTP client's resolver), with the
//! statistics the restart test asserts on.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::subscriber::Interest;

/// Records the delays the SDK's stream tasks choose before reconnecting (their
/// `flag stream reconnecting` event), with when they chose them: installed as the global
/// tracing subscriber, it keeps only events from threads of [`recording_runtime`].
#[derive(Clone, Default)]
pub struct ChosenDelays(Arc<Mutex<Vec<(Instant, Duration)>>>);

/// Where the SDK logs its reconnection delays.
const STREAM_TARGET: &str = "flag_sdk::client::stream";

thread_local! {
    static RECORDING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A runtime like `#[tokio::test]`'s (two workers) whose threads' reconnection delays are
/// recorded in the returned [`ChosenDelays`].
pub fn recording_runtime() -> (tokio::runtime::Runtime, ChosenDelays) {
    static CHOSEN: std::sync::OnceLock<ChosenDelays> = std::sync::OnceLock::new();
    let chosen = CHOSEN.get_or_init(|| {
        let chosen = ChosenDelays::default();
        tracing::subscriber::set_global_default(chosen.clone())
            .expect("no other global tracing subscriber in this test binary");
        chosen
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(|| RECORDING.with(|r| r.set(true)))
        .build()
        .unwrap();
    (runtime, chosen.clone())
}

impl ChosenDelays {
    /// The delays chosen after `since`, in the order they were chosen.
    pub fn after(&self, since: Instant) -> Vec<Duration> {
        let chosen = self.0.lock().unwrap();
        chosen
            .iter()
            .filter(|(at, _)| *at > since)
            .map(|(_, d)| *d)
            .collect()
    }
}

impl tracing::Subscriber for ChosenDelays {
    fn register_callsite(&self, meta: &'static tracing::Metadata<'static>) -> Interest {
        // Asked per event (`sometimes`): whether to record depends on the thread.
        if meta.is_event() && meta.target() == STREAM_TARGET {
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }
    fn enabled(&self, meta: &tracing::Metadata<'_>) -> bool {
        meta.target() == STREAM_TARGET && RECORDING.with(|r| r.get())
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = DelayFields::default();
        event.record(&mut fields);
        if let (true, Some(delay)) = (fields.reconnecting, fields.delay) {
            self.0.lock().unwrap().push((Instant::now(), delay));
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[derive(Default)]
struct DelayFields {
    reconnecting: bool,
    delay: Option<Duration>,
}

impl tracing::field::Visit for DelayFields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        match field.name() {
            "message" => self.reconnecting = text == "flag stream reconnecting",
            "delay" => self.delay = parse_debug_duration(&text),
            _ => {}
        }
    }
}

/// Reads a `Duration`'s `Debug` form (`734.5ms`, `1.2s`, `999µs`, `12ns`).
fn parse_debug_duration(text: &str) -> Option<Duration> {
    let units = [("ns", 1e-9), ("µs", 1e-6), ("ms", 1e-3), ("s", 1.0)];
    let (number, unit) = units
        .iter()
        .find_map(|(suffix, unit)| Some((text.strip_suffix(suffix)?, unit)))?;
    Some(Duration::from_secs_f64(number.parse::<f64>().ok()? * unit))
}

/// Resolves [`AttemptLog::HOST`] to the server and notes when each connection attempt
/// started: the moment a client chose to (re)connect, before any queueing on the way.
pub struct AttemptLog {
    pub to: SocketAddr,
    pub at: Mutex<Vec<Instant>>,
}

impl AttemptLog {
    pub const HOST: &'static str = "flags.test";
}

impl reqwest::dns::Resolve for AttemptLog {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        assert_eq!(name.as_str(), Self::HOST);
        self.at.lock().unwrap().push(Instant::now());
        let addrs: reqwest::dns::Addrs = Box::new(std::iter::once(self.to));
        Box::pin(async move { Ok(addrs) })
    }
}

/// The most sorted `times` inside any window of length `window`.
pub fn max_in_window(times: &[Duration], window: Duration) -> usize {
    let mut start = 0;
    let mut best = 0;
    for (end, t) in times.iter().enumerate() {
        while *t - times[start] >= window {
            start += 1;
        }
        best = best.max(end + 1 - start);
    }
    best
}

/// Counts per 100 ms bucket, from the first non-empty bucket to the last.
pub fn histogram(times: &[Duration]) -> Vec<usize> {
    let bucket = |t: &Duration| (t.as_millis() / 100) as usize;
    let (lo, hi) = (bucket(&times[0]), bucket(&times[times.len() - 1]));
    let mut counts = vec![0; hi - lo + 1];
    for t in times {
        counts[bucket(t) - lo] += 1;
    }
    counts
}
