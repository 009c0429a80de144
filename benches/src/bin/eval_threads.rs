//! Evaluation throughput on 1 and 2 threads while a writer swaps the snapshot 1,000 times a
//! second, as the SDK's stream task would. Reports medians of repeated rounds and the ratio.
//!
//! `cargo run --release -p flag-benches --bin eval_threads`

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use flag_benches::{bench_context, bench_snapshot};

const ROUND: Duration = Duration::from_millis(500);
const ROUNDS: usize = 9;

/// Evaluations per second summed over `threads` readers during one round.
fn round(shared: &Arc<ArcSwap<flag_sdk::CompiledSnapshot>>, threads: usize) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (shared, stop) = (Arc::clone(shared), Arc::clone(&stop));
        // Pre-built snapshots: the bench measures readers, not compilation.
        let versions: Vec<_> = (0..4).map(|_| Arc::new(bench_snapshot(10))).collect();
        thread::spawn(move || {
            let mut swaps = 0u64;
            let start = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                shared.store(Arc::clone(&versions[swaps as usize % versions.len()]));
                swaps += 1;
                // 1,000 swaps per second, on schedule.
                let due = start + Duration::from_millis(swaps);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    thread::sleep(wait);
                }
            }
            swaps
        })
    };
    let readers: Vec<_> = (0..threads)
        .map(|_| {
            let (shared, stop) = (Arc::clone(shared), Arc::clone(&stop));
            thread::spawn(move || {
                let ctx = bench_context();
                let mut n = 0u64;
                let start = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..256 {
                        let snapshot = shared.load();
                        black_box(snapshot.bool_variation(black_box("rollout-10"), &ctx, false));
                    }
                    n += 256;
                }
                n as f64 / start.elapsed().as_secs_f64()
            })
        })
        .collect();
    thread::sleep(ROUND);
    stop.store(true, Ordering::Relaxed);
    let total = readers.into_iter().map(|r| r.join().expect("reader")).sum();
    let swaps = writer.join().expect("writer");
    assert!(swaps > 0);
    total
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let shared = Arc::new(ArcSwap::from_pointee(bench_snapshot(10)));
    round(&shared, 1); // warm-up
    let mut one = Vec::new();
    let mut two = Vec::new();
    for _ in 0..ROUNDS {
        one.push(round(&shared, 1));
        two.push(round(&shared, 2));
    }
    let (one, two) = (median(one), median(two));
    println!("10% rollout via ArcSwap::load, writer swapping 1,000/s, median of {ROUNDS} rounds of {ROUND:?}:");
    println!(
        "  1 thread : {:>12.0} evaluations/s ({:.1} ns each)",
        one,
        1e9 / one
    );
    println!("  2 threads: {:>12.0} evaluations/s", two);
    println!("  ratio    : {:.2}x", two / one);
}
