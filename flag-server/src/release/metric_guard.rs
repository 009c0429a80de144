//! The metric guard: is the new variation's mean or p95 of a tracked metric (the SDKs'
//! `track_value`, e.g. `checkout_latency_ms`) worse than the rest's by more than the margin
//! the owner accepts, with enough evidence to say so? Pure arithmetic on the histograms of
//! `flag_sdk::histogram`; no clock, no I/O.
//!
//! Both tests take the margin into the null hypothesis, as the error guard does, so an
//! increase within the margin is never rolled back for being merely significant. With a
//! relative margin `r` (`max_increase`) the accepted bound is `(1 + r) * rest`, with an
//! absolute one `a` (`max_increase_abs`) it is `rest + a`.
//!
//! - `mean`: a one-sided Welch test of `m1 - (1 + r) m0 - a > 0` on the exact moments the
//!   histograms carry: `t = (m1 - (1 + r) m0 - a) / sqrt(s1²/n1 + (1 + r)² s0²/n0)`, with
//!   Welch–Satterthwaite degrees of freedom and the t quantile of the configured confidence
//!   (Cornish–Fisher from the normal one). Welch because the variations' variances differ
//!   (a slower path is usually also a more variable one) and their sample sizes differ by up
//!   to a hundred times at the first stages; the means of thousands of latencies are close
//!   to normal whatever the latencies' own shape.
//! - `p95`: a test on the binomial proportion of the new variation's samples above the
//!   accepted bound. The bound is `(1 + r) q + a` where `q` is an upper confidence bound of
//!   the rest's p95 (the order statistic of rank `0.95 n0 + z sqrt(n0 0.95 0.05)`, read as
//!   the upper edge of its bucket), so neither the rest's sampling noise nor the bucket width
//!   can make a healthy release look slow. If the new variation's p95 were within the bound,
//!   at most 5% of its samples would lie above it; the guard calls a regression when the
//!   share of samples certainly above it (in buckets starting at or above the bound) exceeds
//!   5% by a one-sided z-test, `z = (k/n1 - 0.05) / sqrt(0.05 * 0.95 / n1)`. Quantiles of
//!   skewed latencies have no usable moments; a count needs none.
//!
//! Both sides need `min_samples` values before any verdict. The guard looks again at every
//! batch; `benches/src/bin/release_sim.rs` measures the false-rollback rate that repeated
//! looking costs and the time to catch +50% and +200% latency.

use flag_sdk::histogram::Histogram;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::guard::z_critical;

/// Which figure of the metric is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Statistic {
    /// The 95th percentile.
    P95,
    /// The mean.
    Mean,
}

/// A guard on a metric the SDKs track (`guard.metrics[]`); give exactly one of
/// `max_increase` and `max_increase_abs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricGuard {
    /// The metric's name, as the SDKs' `track_value` gives it.
    #[schema(example = "checkout_latency_ms")]
    pub metric: String,
    /// The figure compared.
    pub statistic: Statistic,
    /// The largest accepted increase, relative to the rest's figure (0.2 = 20%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_increase: Option<f64>,
    /// The largest accepted increase, in the metric's unit (e.g. 100 ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_increase_abs: Option<f64>,
    /// Values each side needs before the guard decides anything.
    #[serde(default = "default_min_samples")]
    pub min_samples: u64,
}

fn default_min_samples() -> u64 {
    200
}

/// The metric guard's verdict.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MetricVerdict {
    /// Not enough values on one side yet.
    Insufficient,
    /// No regression beyond the margin can be shown.
    Healthy,
    /// Worse beyond the margin, with confidence.
    Regression {
        /// The new variation's figure.
        new: f64,
        /// The rest's figure.
        rest: f64,
        /// The test statistic (t for the mean, z for the p95).
        score: f64,
    },
}

const P95: f64 = 0.95;

impl MetricGuard {
    /// Problems with the guard, as (field, message); `at` is its path, e.g. `guard.metrics[0]`.
    pub fn problems(&self, at: &str) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if self.metric.trim().is_empty() || self.metric.len() > 200 {
            problems.push((
                format!("{at}.metric"),
                "name the metric the SDKs track, e.g. `checkout_latency_ms`".to_owned(),
            ));
        }
        problems.extend(margin_problem(
            at,
            self.max_increase,
            self.max_increase_abs,
            "the metric's",
        ));
        if self.min_samples < 2 {
            problems.push((format!("{at}.min_samples"), "must be at least 2".to_owned()));
        }
        problems
    }

    /// The largest figure accepted for the new variation when the rest's is `rest`.
    pub fn bound(&self, rest: f64) -> f64 {
        bound(rest, self.max_increase, self.max_increase_abs)
    }

    fn factor(&self) -> f64 {
        1.0 + self.max_increase.unwrap_or(0.0)
    }

    /// Compares the new variation's values (`new`) with the rest's, at `confidence`.
    pub fn judge(&self, new: &Histogram, rest: &Histogram, confidence: f64) -> MetricVerdict {
        if new.count < self.min_samples || rest.count < self.min_samples {
            return MetricVerdict::Insufficient;
        }
        match self.statistic {
            Statistic::Mean => self.judge_mean(new, rest, confidence),
            Statistic::P95 => self.judge_p95(new, rest, confidence),
        }
    }

    fn judge_mean(&self, new: &Histogram, rest: &Histogram, confidence: f64) -> MetricVerdict {
        let (m1, m0) = (new.mean(), rest.mean());
        let excess = m1 - self.bound(m0);
        let a = self.factor();
        let v1 = new.variance() / new.count as f64;
        let v0 = a * a * rest.variance() / rest.count as f64;
        let se = (v1 + v0).sqrt();
        let t = excess / se.max(1e-12);
        let df = welch_df(v1, new.count, v0, rest.count);
        if excess > 0.0 && t > t_critical(confidence, df) {
            MetricVerdict::Regression {
                new: m1,
                rest: m0,
                score: t,
            }
        } else {
            MetricVerdict::Healthy
        }
    }

    fn judge_p95(&self, new: &Histogram, rest: &Histogram, confidence: f64) -> MetricVerdict {
        let z_crit = z_critical(confidence);
        let n0 = rest.count as f64;
        let rank = (P95 * n0 + z_crit * (n0 * P95 * (1.0 - P95)).sqrt()).ceil() as u64;
        let Some(rest_upper) = rest.upper_bound_at_rank(rank) else {
            return MetricVerdict::Insufficient;
        };
        let above = new.count_above(self.bound(rest_upper)) as f64;
        let n1 = new.count as f64;
        let z = (above / n1 - (1.0 - P95)) / (P95 * (1.0 - P95) / n1).sqrt();
        if z > z_crit {
            MetricVerdict::Regression {
                new: new.quantile(P95).unwrap_or(0.0),
                rest: rest.quantile(P95).unwrap_or(0.0),
                score: z,
            }
        } else {
            MetricVerdict::Healthy
        }
    }

    /// The sentence a regression's audit row and the release's reason give.
    pub fn figures(
        &self,
        variation: &str,
        new: f64,
        rest: f64,
        score: f64,
        n: (u64, u64),
    ) -> String {
        let (statistic, test) = match self.statistic {
            Statistic::Mean => ("mean", "t"),
            Statistic::P95 => ("p95", "z"),
        };
        let margin = match (self.max_increase, self.max_increase_abs) {
            (Some(r), _) => format!("+{:.0}%", r * 100.0),
            (_, Some(a)) => format!("+{a}"),
            _ => String::new(),
        };
        format!(
            "`{variation}` {} {statistic} {new:.1} ({} values) vs {rest:.1} ({} values) for the rest, margin {margin}, {test} = {score:.2}",
            self.metric, n.0, n.1
        )
    }
}

/// Welch–Satterthwaite degrees of freedom of two variances of the mean.
fn welch_df(v1: f64, n1: u64, v0: f64, n0: u64) -> f64 {
    let denominator = v1 * v1 / (n1.saturating_sub(1).max(1) as f64)
        + v0 * v0 / (n0.saturating_sub(1).max(1) as f64);
    if denominator <= 0.0 {
        return f64::INFINITY;
    }
    (v1 + v0).powi(2) / denominator
}

/// The one-sided critical value of Student's t with `df` degrees of freedom (Cornish–Fisher
/// expansion around the normal quantile; within 0.1% from 10 degrees of freedom up, and
/// `min_samples` keeps them far above that).
pub fn t_critical(confidence: f64, df: f64) -> f64 {
    let z = z_critical(confidence);
    if !df.is_finite() {
        return z;
    }
    let (z3, z5, z7) = (z.powi(3), z.powi(5), z.powi(7));
    z + (z3 + z) / (4.0 * df)
        + (5.0 * z5 + 16.0 * z3 + 3.0 * z) / (96.0 * df * df)
        + (3.0 * z7 + 19.0 * z5 + 17.0 * z3 - 15.0 * z) / (384.0 * df.powi(3))
}

/// The problem with a guard's margin at `at`, if any: exactly one of `max_increase`
/// (relative, at least 0) and `max_increase_abs` (at least 0, in `unit` unit). Metric and
/// Prometheus guards share it.
pub(crate) fn margin_problem(
    at: &str,
    relative: Option<f64>,
    absolute: Option<f64>,
    unit: &str,
) -> Option<(String, String)> {
    match (relative, absolute) {
        (Some(r), None) if r.is_finite() && r >= 0.0 => None,
        (None, Some(a)) if a.is_finite() && a >= 0.0 => None,
        (Some(_), None) => Some((
            format!("{at}.max_increase"),
            "must be a fraction of at least 0, e.g. 0.2 for 20%".to_owned(),
        )),
        (None, Some(_)) => Some((
            format!("{at}.max_increase_abs"),
            format!("must be a number of at least 0, in {unit} unit"),
        )),
        _ => Some((
            format!("{at}.max_increase"),
            "give exactly one of `max_increase` (relative) and `max_increase_abs`".to_owned(),
        )),
    }
}

/// The largest figure a margin accepts for the new variation when the rest's is `rest`.
pub(crate) fn bound(rest: f64, relative: Option<f64>, absolute: Option<f64>) -> f64 {
    rest * (1.0 + relative.unwrap_or(0.0)) + absolute.unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use flag_sdk::histogram::{bucket_of, BUCKETS};

    use super::*;

    fn histogram(values: impl IntoIterator<Item = f64>) -> Histogram {
        let mut dense = vec![0u32; BUCKETS];
        let (mut sum, mut squares) = (0.0, 0.0);
        for v in values {
            dense[bucket_of(v)] += 1;
            sum += v;
            squares += v * v;
        }
        Histogram::from_dense(&dense, sum, squares)
    }

    /// `n` latencies spread evenly over [low, high).
    fn spread(n: u32, low: f64, high: f64) -> Histogram {
        histogram((0..n).map(|i| low + (high - low) * f64::from(i) / f64::from(n)))
    }

    fn guard(statistic: Statistic, max_increase: f64) -> MetricGuard {
        MetricGuard {
            metric: "checkout_latency_ms".into(),
            statistic,
            max_increase: Some(max_increase),
            max_increase_abs: None,
            min_samples: 200,
        }
    }

    #[test]
    fn t_critical_values_match_the_table() {
        assert!((t_critical(0.95, 10.0) - 1.812).abs() < 0.002);
        assert!((t_critical(0.95, 30.0) - 1.697).abs() < 0.001);
        assert!((t_critical(0.99, 100.0) - 2.364).abs() < 0.001);
        assert!((t_critical(0.95, f64::INFINITY) - 1.6449).abs() < 1e-3);
    }

    #[test]
    fn the_payment_path_at_600_ms_instead_of_200_is_caught_by_both() {
        let old = spread(5_000, 100.0, 300.0);
        let new = spread(300, 500.0, 700.0);
        for statistic in [Statistic::Mean, Statistic::P95] {
            let v = guard(statistic, 0.2).judge(&new, &old, 0.95);
            assert!(
                matches!(v, MetricVerdict::Regression { .. }),
                "{statistic:?}: {v:?}"
            );
        }
    }

    #[test]
    fn the_same_distribution_or_one_within_the_margin_is_healthy() {
        let old = spread(10_000, 100.0, 300.0);
        for new in [spread(10_000, 100.0, 300.0), spread(10_000, 110.0, 330.0)] {
            for statistic in [Statistic::Mean, Statistic::P95] {
                assert_eq!(
                    guard(statistic, 0.2).judge(&new, &old, 0.95),
                    MetricVerdict::Healthy,
                    "{statistic:?}"
                );
            }
        }
    }

    #[test]
    fn an_absolute_margin_accepts_up_to_it() {
        let old = spread(5_000, 100.0, 300.0);
        let slower = spread(5_000, 180.0, 380.0); // +80 ms everywhere
        let within = MetricGuard {
            max_increase: None,
            max_increase_abs: Some(100.0),
            ..guard(Statistic::Mean, 0.0)
        };
        assert_eq!(within.judge(&slower, &old, 0.95), MetricVerdict::Healthy);
        let tight = MetricGuard {
            max_increase_abs: Some(50.0),
            ..within
        };
        assert!(matches!(
            tight.judge(&slower, &old, 0.95),
            MetricVerdict::Regression { .. }
        ));
    }

    #[test]
    fn a_slow_tail_moves_the_p95_not_the_mean() {
        // 90% as fast as before, 10% at 2 s: the p95 is caught, the mean margin is generous.
        let old = spread(5_000, 100.0, 300.0);
        let new = histogram(
            (0..900)
                .map(|i| 100.0 + 200.0 * f64::from(i) / 900.0)
                .chain((0..100).map(|_| 2_000.0)),
        );
        assert!(matches!(
            guard(Statistic::P95, 0.5).judge(&new, &old, 0.95),
            MetricVerdict::Regression { .. }
        ));
        assert_eq!(
            guard(Statistic::Mean, 2.0).judge(&new, &old, 0.95),
            MetricVerdict::Healthy
        );
    }

    #[test]
    fn no_verdict_before_the_minimum_sample() {
        let old = spread(5_000, 100.0, 300.0);
        let new = spread(199, 900.0, 1_000.0);
        assert_eq!(
            guard(Statistic::Mean, 0.2).judge(&new, &old, 0.95),
            MetricVerdict::Insufficient
        );
    }

    #[test]
    fn problems_name_the_field() {
        let mut g = guard(Statistic::P95, 0.2);
        g.max_increase_abs = Some(5.0);
        g.metric = " ".into();
        g.min_samples = 0;
        let fields: Vec<_> = g
            .problems("guard.metrics[1]")
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        assert_eq!(
            fields,
            [
                "guard.metrics[1].metric",
                "guard.metrics[1].max_increase",
                "guard.metrics[1].min_samples"
            ]
        );
        assert!(guard(Statistic::Mean, 0.2).problems("g").is_empty());
    }
}
