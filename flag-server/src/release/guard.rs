//! The release guard: is the new variation's error rate worse than the rest's, beyond the
//! configured threshold, with enough evidence to say so? Pure arithmetic; no clock, no I/O.
//!
//! The test (documented in the README): let `p1 = e1/n1` be the new variation's error rate
//! and `p0 = e0/n0` the rate of every other variation of the flag, and `delta` the increase
//! the owner accepts. The guard tests the null hypothesis `p1 - p0 <= delta` against
//! `p1 - p0 > delta` with a one-sided two-proportion z-test on the shifted difference:
//!
//! ```text
//! z = (p1 - p0 - delta) / sqrt(p1 (1 - p1) / n1 + p0 (1 - p0) / n0)
//! ```
//!
//! and calls a regression when `z` exceeds the critical value of the configured confidence.
//! So an increase within `delta` is never rolled back for being merely significant, and an
//! increase beyond it is rolled back as soon as the samples make the excess significant.
//! Both sides need `min_evaluations` before any verdict. The guard looks again at every
//! counter batch; `benches/src/bin/release_sim.rs` measures what those repeated looks cost in
//! false rollbacks of healthy releases and how fast real regressions are caught.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::metric_guard::MetricGuard;
use super::prometheus::PrometheusGuard;

/// What the guard needs to decide: the error rate always; metrics the SDKs track and
/// Prometheus queries when named.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GuardConfig {
    /// The largest accepted increase of the error rate, as a fraction (0.02 = 2 points).
    pub max_error_rate_increase: f64,
    /// Evaluations each side needs before the guard decides anything.
    #[serde(default = "default_min_evaluations")]
    pub min_evaluations: u64,
    /// Confidence of the one-sided tests (errors and metrics), e.g. 0.95.
    #[serde(default = "default_confidence")]
    pub confidence: f64,
    /// Metrics the SDKs track (`track_value`): the new variation's mean or p95 against the
    /// rest's (`release::metric_guard`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricGuard>,
    /// Prometheus queries per variation (`release::prometheus`); needs the server's
    /// `--prometheus-url`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prometheus: Vec<PrometheusGuard>,
}

fn default_min_evaluations() -> u64 {
    200
}

fn default_confidence() -> f64 {
    0.95
}

/// Served-and-errored counts of one side of the comparison.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Counts {
    /// Evaluations that served the variation(s).
    pub evaluations: u64,
    /// Tracked errors of contexts that were served them.
    pub errors: u64,
}

impl Counts {
    /// The error rate; 0 with no evaluations.
    pub fn error_rate(&self) -> f64 {
        if self.evaluations == 0 {
            0.0
        } else {
            (self.errors.min(self.evaluations)) as f64 / self.evaluations as f64
        }
    }
}

/// The guard's verdict.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// Not enough evaluations on one side yet.
    Insufficient,
    /// No regression beyond the threshold can be shown.
    Healthy,
    /// The new variation is worse beyond the threshold, with confidence.
    Regression {
        /// Observed increase of the error rate (p1 - p0).
        increase: f64,
        /// The z statistic of the one-sided test of the excess over the threshold.
        z: f64,
    },
}

impl GuardConfig {
    /// Problems with the configuration, as (field, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems: Vec<(String, String)> = self
            .error_problems()
            .into_iter()
            .map(|(f, m)| (f.to_owned(), m))
            .collect();
        for (i, metric) in self.metrics.iter().enumerate() {
            problems.extend(metric.problems(&format!("guard.metrics[{i}]")));
        }
        for (i, query) in self.prometheus.iter().enumerate() {
            problems.extend(query.problems(&format!("guard.prometheus[{i}]")));
        }
        problems
    }

    fn error_problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if !(0.0..1.0).contains(&self.max_error_rate_increase) {
            problems.push((
                "guard.max_error_rate_increase",
                "must be a fraction in [0, 1), e.g. 0.02 for 2 points".to_owned(),
            ));
        }
        if !(0.5..1.0).contains(&self.confidence) {
            problems.push((
                "guard.confidence",
                "must be in [0.5, 1), e.g. 0.95".to_owned(),
            ));
        }
        if self.min_evaluations == 0 {
            problems.push(("guard.min_evaluations", "must be at least 1".to_owned()));
        }
        problems
    }

    /// Compares the new variation (`new`) with the rest (`rest`).
    pub fn judge(&self, new: Counts, rest: Counts) -> Verdict {
        if new.evaluations < self.min_evaluations || rest.evaluations < self.min_evaluations {
            return Verdict::Insufficient;
        }
        let (p1, p0) = (new.error_rate(), rest.error_rate());
        let increase = p1 - p0;
        let (n1, n0) = (new.evaluations as f64, rest.evaluations as f64);
        let se = (p1 * (1.0 - p1) / n1 + p0 * (1.0 - p0) / n0).sqrt();
        // With no variance at all (rates of exactly 0 or 1) the difference is exact.
        let z = (increase - self.max_error_rate_increase) / se.max(1e-12);
        if increase > self.max_error_rate_increase && z > z_critical(self.confidence) {
            Verdict::Regression { increase, z }
        } else {
            Verdict::Healthy
        }
    }
}

/// The one-sided critical value of the standard normal for `confidence` (Acklam's inverse
/// normal approximation, relative error below 1.2e-9).
pub fn z_critical(confidence: f64) -> f64 {
    inverse_normal(confidence.clamp(1e-12, 1.0 - 1e-12))
}

fn inverse_normal(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    const LOW: f64 = 0.024_25;
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p <= 1.0 - LOW {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> GuardConfig {
        GuardConfig {
            max_error_rate_increase: 0.02,
            min_evaluations: 200,
            confidence: 0.95,
            metrics: Vec::new(),
            prometheus: Vec::new(),
        }
    }

    fn counts(evaluations: u64, errors: u64) -> Counts {
        Counts {
            evaluations,
            errors,
        }
    }

    #[test]
    fn critical_values_match_the_normal_table() {
        assert!((z_critical(0.95) - 1.644_854).abs() < 1e-5);
        assert!((z_critical(0.99) - 2.326_348).abs() < 1e-5);
        assert!((z_critical(0.5)).abs() < 1e-9);
        assert!((z_critical(0.999) - 3.090_232).abs() < 1e-5);
    }

    #[test]
    fn no_verdict_before_the_minimum_sample() {
        assert_eq!(
            guard().judge(counts(199, 199), counts(10_000, 0)),
            Verdict::Insufficient
        );
        assert_eq!(
            guard().judge(counts(10_000, 9_000), counts(199, 0)),
            Verdict::Insufficient
        );
    }

    #[test]
    fn a_clear_regression_beyond_the_threshold_is_caught() {
        // 10% vs 2% on a few hundred evaluations.
        let v = guard().judge(counts(400, 40), counts(20_000, 400));
        assert!(
            matches!(v, Verdict::Regression { increase, .. } if (increase - 0.08).abs() < 1e-9),
            "{v:?}"
        );
    }

    #[test]
    fn an_increase_within_the_threshold_is_healthy_however_certain() {
        // +1 point on a million evaluations each: significant, but accepted by the owner.
        assert_eq!(
            guard().judge(counts(1_000_000, 30_000), counts(1_000_000, 20_000)),
            Verdict::Healthy
        );
    }

    #[test]
    fn the_confidence_decides_on_thin_evidence() {
        // 16 errors in 200 against none in 200: +8 points, 6 beyond the threshold, z = 3.13.
        let expected_z = 0.06 / (0.08f64 * 0.92 / 200.0).sqrt();
        match guard().judge(counts(200, 16), counts(200, 0)) {
            Verdict::Regression { increase, z } => {
                assert!((increase - 0.08).abs() < 1e-12);
                assert!((z - expected_z).abs() < 1e-9, "{z}");
            }
            other => panic!("{other:?}"),
        }
        let strict = GuardConfig {
            confidence: 0.9999,
            ..guard()
        };
        assert_eq!(
            strict.judge(counts(200, 16), counts(200, 0)),
            Verdict::Healthy
        );
    }

    #[test]
    fn an_increase_just_past_the_threshold_needs_many_samples() {
        // +3 points is 1 beyond the threshold: not shown on 1,000, shown on 20,000.
        assert_eq!(
            guard().judge(counts(1_000, 40), counts(50_000, 500)),
            Verdict::Healthy
        );
        assert!(matches!(
            guard().judge(counts(20_000, 800), counts(50_000, 500)),
            Verdict::Regression { .. }
        ));
    }

    #[test]
    fn a_better_new_variation_is_healthy() {
        assert_eq!(
            guard().judge(counts(5_000, 0), counts(5_000, 500)),
            Verdict::Healthy
        );
    }

    #[test]
    fn configuration_problems_name_the_field() {
        let bad = GuardConfig {
            max_error_rate_increase: 2.0,
            min_evaluations: 0,
            confidence: 1.5,
            ..guard()
        };
        let fields: Vec<_> = bad.problems().into_iter().map(|(f, _)| f).collect();
        assert_eq!(
            fields,
            [
                "guard.max_error_rate_increase",
                "guard.confidence",
                "guard.min_evaluations"
            ]
        );
        assert!(guard().problems().is_empty());
    }
}
