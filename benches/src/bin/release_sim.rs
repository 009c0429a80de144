//! Release guard simulation: replays synthetic traffic through the real release state machine
//! (1% / 5% / 25% stages) and reports how long it takes to catch a regression of +1, +2 and
//! +5 points, and how often a healthy release is rolled back by mistake; then the same for
//! latency (the metric guard on the SDKs' histograms): +50% and +200%, by p95 and by mean.
//!
//! `cargo run --release -p flag-benches --bin release_sim [TRIALS]` (both tables), or
//! `... --bin release_sim latency [TRIALS]` (the latency table only).
//!
//! Model: 50 requests per second (and again at 500), a 1% baseline error rate, SDKs flushing counters every
//! 10 s, stages held 10 minutes, guard threshold +2 points at 95% confidence with at least
//! 200 evaluations per side. Latency: log-normal, median 200 ms, sigma 0.5 (p95 about 450
//! ms), the new variation's multiplied by 1.5 or 3; guard `max_increase` 0.2 (20%) on the p95
//! or the mean at 95% confidence, at least 200 values per side, each flush's values in the
//! SDK's histogram buckets. Everything runs on simulated time, so the run takes seconds.

use flag_sdk::histogram::{bucket_of, Histogram, BUCKETS};
use flag_sdk::Serve;
use flag_server::release::guard::{Counts, GuardConfig};
use flag_server::release::metric_guard::{MetricGuard, Statistic};
use flag_server::release::plan::{OnRegression, Release, ReleasePlan, ReleaseState};

/// Traffic levels of the two tables: a small service, and one ten times as busy.
const REQUESTS_PER_SECOND: [u64; 2] = [50, 500];
const FLUSH_SECONDS: i64 = 10;
const HOLD_SECONDS: u64 = 600;
const BASE_ERROR_RATE: f64 = 0.01;
const VARIATIONS: &[&str] = &["on", "off"];

/// xorshift64*: a small deterministic generator, so every run replays the same traffic.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A standard normal draw (Box–Muller).
    fn normal(&mut self) -> f64 {
        let u = self.unit().max(f64::MIN_POSITIVE);
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * self.unit()).cos()
    }
}

const MEDIAN_LATENCY_MS: f64 = 200.0;
const LATENCY_SIGMA: f64 = 0.5;

/// One flush's latencies of one side, as the SDK's histogram holds them.
#[derive(Default)]
struct Side {
    dense: Vec<u32>,
    sum: f64,
    sum_squares: f64,
}

impl Side {
    fn record(&mut self, value: f64) {
        if self.dense.is_empty() {
            self.dense = vec![0; BUCKETS];
        }
        self.dense[bucket_of(value)] += 1;
        self.sum += value;
        self.sum_squares += value * value;
    }

    fn histogram(&self) -> Histogram {
        Histogram::from_dense(&self.dense, self.sum, self.sum_squares)
    }
}

/// Outcome of one simulated release guarded by latency: `Some(seconds)` when rolled back.
fn latency_trial(
    seed: u64,
    factor: f64,
    requests_per_second: u64,
    statistic: Statistic,
) -> Option<i64> {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let plan = ReleasePlan {
        variation: "on".into(),
        stages: vec![1, 5, 25],
        hold_seconds: HOLD_SECONDS,
        guard: GuardConfig {
            max_error_rate_increase: 0.02,
            min_evaluations: 200,
            confidence: 0.95,
            metrics: vec![MetricGuard {
                metric: "latency_ms".into(),
                statistic,
                max_increase: Some(0.2),
                max_increase_abs: None,
                min_samples: 200,
            }],
            prometheus: Vec::new(),
        },
        on_regression: OnRegression::Rollback,
        bucket_by: None,
    };
    let (mut release, _) = Release::start(plan, Serve::Variation("off".into()), VARIATIONS, 0);
    let mut now_ms = 0i64;
    while release.state == ReleaseState::Running {
        let share = f64::from(release.percent()) / 100.0;
        let (mut new, mut old) = (Side::default(), Side::default());
        let (mut new_n, mut old_n) = (0, 0);
        for _ in 0..requests_per_second * FLUSH_SECONDS as u64 {
            let latency = MEDIAN_LATENCY_MS * (LATENCY_SIGMA * rng.normal()).exp();
            if rng.unit() < share {
                new.record(latency * factor);
                new_n += 1;
            } else {
                old.record(latency);
                old_n += 1;
            }
        }
        now_ms += FLUSH_SECONDS * 1000;
        let counts = |evaluations| Counts {
            evaluations,
            errors: 0,
        };
        release.observe("off", counts(old_n));
        release.observe("on", counts(new_n));
        let acted = [("off", old), ("on", new)]
            .iter()
            .filter(|(_, side)| !side.dense.is_empty())
            .any(|(variation, side)| {
                release
                    .observe_metric(variation, "latency_ms", &side.histogram())
                    .is_some()
            });
        if acted {
            break;
        }
        release.tick(now_ms, VARIATIONS, None);
    }
    (release.state == ReleaseState::RolledBack).then_some(now_ms / 1000)
}

/// The latency table: per traffic level, healthy / +50% / +200% by p95 and by mean.
fn latency_table(trials: u64) {
    println!(
        "{trials} trials per row; latency log-normal, median {MEDIAN_LATENCY_MS} ms, sigma {LATENCY_SIGMA}; stages 1/5/25% held {HOLD_SECONDS} s, flush every {FLUSH_SECONDS} s, guard +20% @95%, min 200 values"
    );
    for requests_per_second in REQUESTS_PER_SECOND {
        println!("\n{requests_per_second} requests per second:\n");
        println!(
            "| guard | new variation's latency | rolled back | median detection | p90 detection |"
        );
        println!("|---|---|---|---|---|");
        for (statistic, name) in [(Statistic::P95, "p95"), (Statistic::Mean, "mean")] {
            for (factor, label) in [(1.0, "healthy (x1)"), (1.5, "+50%"), (3.0, "+200%")] {
                let mut times: Vec<i64> = (0..trials)
                    .filter_map(|seed| latency_trial(seed, factor, requests_per_second, statistic))
                    .collect();
                times.sort_unstable();
                println!(
                    "| {name} +20% | {label} | {:.1}% ({} of {trials}) | {} | {} |",
                    times.len() as f64 * 100.0 / trials as f64,
                    times.len(),
                    percentile(&times, 0.5),
                    percentile(&times, 0.9),
                );
            }
        }
    }
}

/// Outcome of one simulated release: `Some(seconds)` when it was rolled back.
fn trial(seed: u64, increase: f64, requests_per_second: u64) -> Option<i64> {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let plan = ReleasePlan {
        variation: "on".into(),
        stages: vec![1, 5, 25],
        hold_seconds: HOLD_SECONDS,
        guard: GuardConfig {
            max_error_rate_increase: 0.02,
            min_evaluations: 200,
            confidence: 0.95,
            metrics: Vec::new(),
            prometheus: Vec::new(),
        },
        on_regression: OnRegression::Rollback,
        bucket_by: None,
    };
    let (mut release, _) = Release::start(plan, Serve::Variation("off".into()), VARIATIONS, 0);
    let mut now_ms = 0i64;
    while release.state == ReleaseState::Running {
        let share = f64::from(release.percent()) / 100.0;
        let mut new = Counts::default();
        let mut old = Counts::default();
        for _ in 0..requests_per_second * FLUSH_SECONDS as u64 {
            let (side, rate) = if rng.unit() < share {
                (&mut new, BASE_ERROR_RATE + increase)
            } else {
                (&mut old, BASE_ERROR_RATE)
            };
            side.evaluations += 1;
            side.errors += u64::from(rng.unit() < rate);
        }
        now_ms += FLUSH_SECONDS * 1000;
        release.observe("off", old);
        if release.observe("on", new).is_some() {
            break;
        }
        release.tick(now_ms, VARIATIONS, None);
    }
    (release.state == ReleaseState::RolledBack).then_some(now_ms / 1000)
}

/// The `p` quantile of `sorted` as a table cell, `–` when there is nothing to rank.
fn percentile(sorted: &[i64], p: f64) -> String {
    if sorted.is_empty() {
        return "–".to_owned();
    }
    format!(
        "{} s",
        sorted[((sorted.len() - 1) as f64 * p).round() as usize]
    )
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let latency_only = args.first().is_some_and(|a| a == "latency");
    let trials: u64 = args.iter().find_map(|a| a.parse().ok()).unwrap_or(300);
    if latency_only {
        latency_table(trials);
        return;
    }
    println!(
        "{trials} trials per row; base error rate {:.0}%, stages 1/5/25% held {HOLD_SECONDS} s, flush every {FLUSH_SECONDS} s, guard +2 points @95%, min 200",
        BASE_ERROR_RATE * 100.0
    );
    for requests_per_second in REQUESTS_PER_SECOND {
        println!("\n{requests_per_second} requests per second:\n");
        println!("| new variation's error rate | rolled back | median detection | p90 detection |");
        println!("|---|---|---|---|");
        for increase in [0.0, 0.01, 0.02, 0.03, 0.05, 0.10] {
            let mut times: Vec<i64> = (0..trials)
                .filter_map(|seed| trial(seed, increase, requests_per_second))
                .collect();
            times.sort_unstable();
            let label = if increase == 0.0 {
                "healthy (+0)".to_owned()
            } else {
                format!("+{:.0} points", increase * 100.0)
            };
            println!(
                "| {label} | {:.1}% ({} of {trials}) | {} | {} |",
                times.len() as f64 * 100.0 / trials as f64,
                times.len(),
                percentile(&times, 0.5),
                percentile(&times, 0.9),
            );
        }
    }
    println!();
    latency_table(trials);
}
