//! Side by side, in one run: our SDK against the engines users would pick instead, on the
//! same flags and the same context (`cargo bench -p flag-benches --bench compare`).
//!
//! For each case, four ways to answer "is this boolean flag on for this context":
//!
//! - `client`: `Client::bool_variation`, what an application calls;
//! - `snapshot`: `ArcSwap::load` and `CompiledSnapshot::bool_variation`, the evaluator alone;
//! - `yggdrasil`: Unleash's engine, `EngineState::is_enabled`;
//! - `launchdarkly`: LaunchDarkly's evaluation crate as its server SDK calls it (a read lock
//!   on the flag map, a clone of the flag, `evaluate`).
//!
//! The competitors' flags are translated from ours (`unleash.rs`, `launchdarkly.rs` say how and
//! where the semantics differ). Before anything is timed, every engine's answer for the timed
//! context is asserted, and every engine's 10% rollout is checked to serve about 10% of 10,000
//! other contexts. `cargo run -p flag-benches --bin compare_table` prints the medians and
//! ratios from criterion's output.

mod launchdarkly;
mod unleash;

use std::hint::black_box;

use arc_swap::ArcSwap;
use criterion::{criterion_group, criterion_main, Criterion};
use flag_benches::{bench_context, bench_snapshot};
use flag_sdk::{Client, Context};

/// (bench name, flag key, whether the bench snapshot has 10,000 flags, expected answer).
const CASES: [(&str, &str, bool, bool); 5] = [
    ("kill_switch", "kill-switch", false, false),
    ("plain_on", "plain-on", false, true),
    ("rollout_10pct", "rollout-10", false, false),
    ("five_rules_x3_clauses", "five-rules", false, true),
    ("one_among_10000", "plain-on", true, true),
];

struct Engines {
    client: Client,
    snapshot: ArcSwap<flag_sdk::CompiledSnapshot>,
    yggdrasil: unleash_yggdrasil::EngineState,
    launchdarkly: launchdarkly::Store,
}

impl Engines {
    fn new(total: usize) -> Engines {
        let compiled = bench_snapshot(total);
        let snapshot = compiled.snapshot().as_ref().clone();
        Engines {
            client: Client::offline(snapshot.clone()),
            yggdrasil: unleash::engine(&snapshot),
            launchdarkly: launchdarkly::store(&snapshot),
            snapshot: ArcSwap::from_pointee(compiled),
        }
    }

    /// Every engine's answer, in the order of the bench functions.
    fn answers(&self, key: &str, ctx: &Context) -> [bool; 4] {
        let (ygg, ld) = (unleash::context(ctx), launchdarkly::context(ctx));
        assert!(
            self.yggdrasil.resolve(key, &ygg, &None).is_some(),
            "{key} in yggdrasil"
        );
        [
            served(|default| self.client.bool_variation(key, ctx, default)),
            served(|default| self.snapshot.load().bool_variation(key, ctx, default)),
            self.yggdrasil.is_enabled(key, &ygg, &None),
            served(|default| self.launchdarkly.bool_variation(key, &ld, default)),
        ]
    }
}

/// What `variation` serves whatever the default: the flag's answer, not the default.
fn served(variation: impl Fn(bool) -> bool) -> bool {
    let answer = variation(false);
    assert_eq!(answer, variation(true), "the default was served");
    answer
}

/// Every engine serves `on` to about `percent`% of 10,000 contexts.
fn check_rollout(engines: &Engines, key: &str, percent: usize) {
    let mut on = [0usize; 4];
    for i in 0..10_000 {
        let ctx = Context::new(format!("user-{i}"));
        for (count, answer) in on.iter_mut().zip(engines.answers(key, &ctx)) {
            *count += usize::from(answer);
        }
    }
    for count in on {
        let share = count * 100 / 10_000;
        assert!(
            share.abs_diff(percent) <= 1,
            "{key}: {count} of 10,000 on, not about {percent}%: {on:?}"
        );
    }
}

fn compare(c: &mut Criterion) {
    let small = Engines::new(10);
    let large = Engines::new(10_000);
    let ctx = bench_context();
    check_rollout(&small, "rollout-10", 10);
    for (name, key, is_large, expected) in CASES {
        let engines = if is_large { &large } else { &small };
        assert_eq!(
            engines.answers(key, &ctx),
            [expected; 4],
            "{name}: every engine's answer (client, snapshot, yggdrasil, launchdarkly)"
        );
    }
    let ygg_ctx = unleash::context(&ctx);
    let ld_ctx = launchdarkly::context(&ctx);
    for (name, key, is_large, _) in CASES {
        let e = if is_large { &large } else { &small };
        let mut g = c.benchmark_group(format!("compare/{name}"));
        g.bench_function("client", |b| {
            b.iter(|| {
                e.client
                    .bool_variation(black_box(key), black_box(&ctx), false)
            })
        });
        g.bench_function("snapshot", |b| {
            b.iter(|| {
                e.snapshot
                    .load()
                    .bool_variation(black_box(key), black_box(&ctx), false)
            })
        });
        g.bench_function("yggdrasil", |b| {
            b.iter(|| {
                e.yggdrasil
                    .is_enabled(black_box(key), black_box(&ygg_ctx), &None)
            })
        });
        g.bench_function("launchdarkly", |b| {
            b.iter(|| {
                e.launchdarkly
                    .bool_variation(black_box(key), black_box(&ld_ctx), false)
            })
        });
        g.finish();
    }
}

criterion_group!(benches, compare);
criterion_main!(benches);
