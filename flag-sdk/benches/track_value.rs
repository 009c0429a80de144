//! The cost of `Client::track_value` and `Client::track_error` on the application's thread:
//! `cargo bench -p flag-sdk --bench track_value`. An offline client over a snapshot of ten
//! flags, one of them a 50% rollout (each call evaluates it for the context and records
//! into its histogram or counters; nothing is sent).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use flag_sdk::{Client, Context, Snapshot};
use serde_json::json;

fn snapshot() -> Snapshot {
    let mut flags = serde_json::Map::new();
    for i in 0..9 {
        let key = format!("plain-{i}");
        flags.insert(
            key.clone(),
            json!({"key": key, "kind": "boolean", "version": 1, "enabled": true,
                   "variations": [{"key": "on", "value": true}, {"key": "off", "value": false}],
                   "off_variation": "off", "fallthrough": {"variation": "on"}}),
        );
    }
    flags.insert(
        "new-checkout".into(),
        json!({"key": "new-checkout", "kind": "boolean", "version": 1, "enabled": true,
               "variations": [{"key": "on", "value": true}, {"key": "off", "value": false}],
               "off_variation": "off",
               "fallthrough": {"rollout": {"bucket_by": "key", "weights": [
                   {"variation": "on", "weight": 50000}, {"variation": "off", "weight": 50000}]}}}),
    );
    serde_json::from_value(json!({"environment": "production", "revision": 1, "flags": flags}))
        .expect("snapshot")
}

fn track(c: &mut Criterion) {
    let client = Client::offline(snapshot());
    let ctx = Context::new("user-42").with("country", "NL");
    let mut g = c.benchmark_group("track");
    let mut latency = 100.0;
    g.bench_function("track_value", |b| {
        b.iter(|| {
            latency = if latency > 900.0 {
                100.0
            } else {
                latency + 7.3
            };
            client.track_value(black_box(&ctx), black_box("checkout_latency_ms"), latency)
        })
    });
    g.bench_function("track_error", |b| {
        b.iter(|| client.track_error(black_box(&ctx)))
    });
    g.bench_function("time_empty_closure", |b| {
        b.iter(|| client.time(black_box(&ctx), black_box("checkout_latency_ms"), || 1))
    });
    g.finish();
}

criterion_group!(benches, track);
criterion_main!(benches);
