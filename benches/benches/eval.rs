//! Evaluation latency: `cargo bench -p flag-benches --bench eval`.

use std::hint::black_box;
use std::sync::Arc;

use arc_swap::ArcSwap;
use criterion::{criterion_group, criterion_main, Criterion};
use flag_benches::{bench_context, bench_snapshot};

fn evaluation(c: &mut Criterion) {
    let small = bench_snapshot(10);
    let large = bench_snapshot(10_000);
    let ctx = bench_context();
    assert!(!small.bool_variation("kill-switch", &ctx, true));
    assert!(
        small.bool_variation("five-rules", &ctx, false),
        "the bench context must reach rule 5"
    );

    let mut g = c.benchmark_group("eval");
    g.bench_function("kill_switch", |b| {
        b.iter(|| small.bool_variation(black_box("kill-switch"), black_box(&ctx), true))
    });
    g.bench_function("fallthrough", |b| {
        b.iter(|| small.bool_variation(black_box("plain"), black_box(&ctx), true))
    });
    g.bench_function("rollout_10pct", |b| {
        b.iter(|| small.bool_variation(black_box("rollout-10"), black_box(&ctx), true))
    });
    g.bench_function("five_rules_x3_clauses", |b| {
        b.iter(|| small.bool_variation(black_box("five-rules"), black_box(&ctx), false))
    });
    g.bench_function("lookup_among_10000_flags", |b| {
        b.iter(|| large.bool_variation(black_box("filler-05000"), black_box(&ctx), false))
    });
    let shared = ArcSwap::from_pointee(bench_snapshot(10));
    g.bench_function("kill_switch_via_arc_swap_load", |b| {
        b.iter(|| {
            shared
                .load()
                .bool_variation(black_box("kill-switch"), black_box(&ctx), true)
        })
    });
    g.finish();

    let mut g = c.benchmark_group("compile");
    let source = Arc::clone(large.snapshot());
    g.sample_size(10);
    g.bench_function("compile_10000_flags", |b| {
        b.iter(|| flag_sdk::CompiledSnapshot::new(Arc::clone(&source)))
    });
    g.finish();
}

criterion_group!(benches, evaluation);
criterion_main!(benches);
