//! Runs one evaluation case N times, for instruction counting under callgrind, which is
//! repeatable where wall-clock time on a shared 2-core VM is not:
//!
//! `valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/eval_instructions CASE N [VIA]`
//!
//! CASE is one of: kill-switch, plain, plain-on, rollout-10, five-rules, lookup-10000 (a 50%
//! rollout among 10,000 flags), lookup-10000-plain-on (`plain-on` among 10,000 flags). VIA
//! is `snapshot` (`CompiledSnapshot::bool_variation`, the default) or `client`
//! (`Client::bool_variation`, what applications call). CASE `track-value` and `track-error`
//! (VIA ignored) count `Client::track_value(&ctx, "checkout_latency_ms", ...)` and
//! `Client::track_error(&ctx)` on the 10-flag snapshot. Subtract a run with N = 0 and divide
//! by N for instructions per evaluation (or per call).

use std::hint::black_box;

use flag_benches::{bench_context, bench_snapshot};
use flag_sdk::Client;

fn main() {
    let mut args = std::env::args().skip(1);
    let case = args.next().unwrap_or_else(|| "kill-switch".to_owned());
    let n: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let via = args.next().unwrap_or_else(|| "snapshot".to_owned());
    let (snapshot, key) = match case.as_str() {
        "lookup-10000" => (bench_snapshot(10_000), "filler-05000".to_owned()),
        "lookup-10000-plain-on" => (bench_snapshot(10_000), "plain-on".to_owned()),
        other => (bench_snapshot(10), other.to_owned()),
    };
    let ctx = bench_context();
    let mut on = 0u64;
    if case.starts_with("track-") {
        let client = Client::offline(snapshot.snapshot().as_ref().clone());
        for i in 0..n {
            match case.as_str() {
                "track-value" => client.track_value(
                    black_box(&ctx),
                    black_box("checkout_latency_ms"),
                    100.0 + (i % 900) as f64,
                ),
                _ => client.track_error(black_box(&ctx)),
            }
        }
        println!("{case}: {n} calls");
        return;
    }
    match via.as_str() {
        "client" => {
            let client = Client::offline(snapshot.snapshot().as_ref().clone());
            for _ in 0..n {
                on += u64::from(client.bool_variation(black_box(&key), black_box(&ctx), false));
            }
        }
        _ => {
            for _ in 0..n {
                on += u64::from(snapshot.bool_variation(black_box(&key), black_box(&ctx), false));
            }
        }
    }
    println!("{case} via {via}: {on} of {n} served true");
}
