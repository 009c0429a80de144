//! Evaluation throughput on 1 and 2 threads while a writer swaps the snapshot 1,000 times a
//! second, as the SDK's stream task would. Reports medians of repeated rounds and the ratio.
//! A control runs the same rounds with register-only arithmetic instead of evaluations: no
//! memory shared or even touched, so its 2-thread ratio is the most this VM's two vCPUs give
//! (shared with other tenants, they rarely give 2.0), and the evaluation's ratio is judged
//! against it.
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

/// What a reader does, 256 times between looks at the stop flag.
#[derive(Clone, Copy)]
enum Work {
    /// The SDK's read path: load the current snapshot, evaluate a 10% rollout.
    Evaluate,
    /// Register-only arithmetic of about the same length.
    Control,
}

/// Operations per second summed over `threads` readers during one round.
fn round(shared: &Arc<ArcSwap<flag_sdk::CompiledSnapshot>>, threads: usize, work: Work) -> f64 {
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
                let mut x = black_box(0x9e37_79b9_7f4a_7c15u64);
                let start = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..256 {
                        match work {
                            Work::Evaluate => {
                                let snapshot = shared.load();
                                black_box(snapshot.bool_variation(
                                    black_box("rollout-10"),
                                    &ctx,
                                    false,
                                ));
                            }
                            Work::Control => {
                                for _ in 0..24 {
                                    x ^= x << 13;
                                    x ^= x >> 7;
                                    x ^= x << 17;
                                }
                                x = black_box(x);
                            }
                        }
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
    round(&shared, 1, Work::Evaluate); // warm-up
    let mut rates: [Vec<f64>; 4] = Default::default();
    for _ in 0..ROUNDS {
        for (i, (threads, work)) in [
            (1, Work::Evaluate),
            (2, Work::Evaluate),
            (1, Work::Control),
            (2, Work::Control),
        ]
        .into_iter()
        .enumerate()
        {
            rates[i].push(round(&shared, threads, work));
        }
    }
    let [one, two, control_one, control_two] = rates.map(median);
    println!("10% rollout via ArcSwap::load, writer swapping 1,000/s, median of {ROUNDS} rounds of {ROUND:?}:");
    println!(
        "  1 thread : {:>12.0} evaluations/s ({:.1} ns each)",
        one,
        1e9 / one
    );
    println!("  2 threads: {:>12.0} evaluations/s", two);
    println!("  ratio    : {:.2}x", two / one);
    println!(
        "  control (register-only work, same rounds): ratio {:.2}x; evaluation reaches {:.0}% of it",
        control_two / control_one,
        100.0 * (two / one) / (control_two / control_one)
    );
}
