//! What every guard of a release says together: the error guard, each metric guard on the
//! histograms the SDKs sent, each Prometheus guard on the scheduler's last reading. Any
//! regression decides; any guard short of evidence (or a Prometheus that cannot answer)
//! holds the release; otherwise it is healthy. Pure, over the release's own figures.

use std::collections::BTreeMap;

use flag_sdk::histogram::Histogram;

use super::guard::Verdict;
use super::metric_guard::MetricVerdict;
use super::plan::{Release, Step};
use super::prometheus::Reading;

/// All guards' verdict.
#[derive(Debug, Clone, PartialEq)]
pub enum Assessment {
    /// Some guard cannot decide yet: what it waits for.
    Insufficient(String),
    /// No guard shows a regression.
    Healthy,
    /// A guard shows one: its figures.
    Regression(String),
}

impl Release {
    /// Asks every guard.
    pub fn assess(&self) -> Assessment {
        let mut waiting = Vec::new();
        match self.verdict() {
            Verdict::Regression { increase, z } => {
                return Assessment::Regression(self.error_figures(increase, z))
            }
            Verdict::Insufficient => waiting.push(format!(
                "{} evaluations on each side",
                self.plan.guard.min_evaluations
            )),
            Verdict::Healthy => {}
        }
        for guard in &self.plan.guard.metrics {
            let (new, rest) = self.metric_sides(&guard.metric);
            match guard.judge(&new, &rest, self.plan.guard.confidence) {
                MetricVerdict::Regression {
                    new: a,
                    rest: b,
                    score,
                } => {
                    let n = (new.count, rest.count);
                    let figures = guard.figures(&self.plan.variation, a, b, score, n);
                    return Assessment::Regression(figures);
                }
                MetricVerdict::Insufficient => waiting.push(format!(
                    "{} values of `{}` on each side",
                    guard.min_samples, guard.metric
                )),
                MetricVerdict::Healthy => {}
            }
        }
        if !self.plan.guard.prometheus.is_empty() {
            match &self.prometheus {
                None => waiting.push("a first reading of the Prometheus guard".to_owned()),
                Some(Reading {
                    error: Some(why), ..
                }) => waiting.push(format!("Prometheus: {why}")),
                Some(reading) => {
                    for (guard, values) in self.plan.guard.prometheus.iter().zip(&reading.values) {
                        if let Some(figures) = guard.judge(&self.plan.variation, values) {
                            return Assessment::Regression(figures);
                        }
                    }
                }
            }
        }
        if waiting.is_empty() {
            Assessment::Healthy
        } else {
            Assessment::Insufficient(waiting.join(", and "))
        }
    }

    /// Adds a histogram of `metric` the SDKs sent for `variation` (ignored unless a guard
    /// names the metric), then asks the guards; a regression acts at once.
    pub fn observe_metric(
        &mut self,
        variation: &str,
        metric: &str,
        histogram: &Histogram,
    ) -> Option<Step> {
        if !self.plan.guard.metrics.iter().any(|g| g.metric == metric) {
            return None;
        }
        self.measured
            .entry(metric.to_owned())
            .or_default()
            .entry(variation.to_owned())
            .or_default()
            .merge(histogram);
        self.react()
    }

    /// The new variation's values of `metric` and everyone else's.
    pub fn metric_sides(&self, metric: &str) -> (Histogram, Histogram) {
        let mut new = Histogram::default();
        let mut rest = Histogram::default();
        let empty = BTreeMap::new();
        for (variation, h) in self.measured.get(metric).unwrap_or(&empty) {
            if *variation == self.plan.variation {
                new.merge(h);
            } else {
                rest.merge(h);
            }
        }
        (new, rest)
    }

    /// The variations the release splits traffic between, with their index among
    /// `variations` (the flag's): the released one first, then the rest's.
    pub fn compared_variations(&self, variations: &[&str]) -> Vec<(String, usize)> {
        std::iter::once(self.plan.variation.clone())
            .chain(
                self.rest_weights(variations)
                    .into_iter()
                    .filter(|w| w.weight > 0)
                    .map(|w| w.variation),
            )
            .filter_map(|v| {
                let index = variations.iter().position(|k| *k == v)?;
                Some((v, index))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use flag_sdk::histogram::{bucket_of, BUCKETS};
    use flag_sdk::Serve;

    use super::*;
    use crate::release::guard::{Counts, GuardConfig};
    use crate::release::metric_guard::{MetricGuard, Statistic};
    use crate::release::plan::{OnRegression, ReleasePlan, ReleaseState};
    use crate::release::prometheus::PrometheusGuard;

    const VARIATIONS: &[&str] = &["on", "off"];

    fn release(metrics: Vec<MetricGuard>, prometheus: Vec<PrometheusGuard>) -> Release {
        let plan = ReleasePlan {
            variation: "on".into(),
            stages: vec![1, 50],
            hold_seconds: 600,
            guard: GuardConfig {
                max_error_rate_increase: 0.02,
                min_evaluations: 100,
                confidence: 0.95,
                metrics,
                prometheus,
            },
            on_regression: OnRegression::Rollback,
            bucket_by: None,
        };
        let mut r = Release::start(plan, Serve::Variation("off".into()), VARIATIONS, 0).0;
        for (variation, evaluations) in [("off", 10_000), ("on", 500)] {
            r.observe(
                variation,
                Counts {
                    evaluations,
                    errors: 0,
                },
            );
        }
        r
    }

    fn latency() -> MetricGuard {
        MetricGuard {
            metric: "latency_ms".into(),
            statistic: Statistic::P95,
            max_increase: Some(0.2),
            max_increase_abs: None,
            min_samples: 200,
        }
    }

    fn values(n: u32, low: f64, high: f64) -> Histogram {
        let mut dense = vec![0u32; BUCKETS];
        let (mut sum, mut squares) = (0.0, 0.0);
        for i in 0..n {
            let v = low + (high - low) * f64::from(i) / f64::from(n);
            dense[bucket_of(v)] += 1;
            sum += v;
            squares += v * v;
        }
        Histogram::from_dense(&dense, sum, squares)
    }

    #[test]
    fn a_metric_guard_holds_without_values_and_rolls_back_on_slowness() {
        let mut r = release(vec![latency()], Vec::new());
        assert_eq!(r.tick(600_000, VARIATIONS, None), None);
        assert!(
            r.reason
                .as_deref()
                .unwrap()
                .contains("200 values of `latency_ms`"),
            "{:?}",
            r.reason
        );
        assert_eq!(
            r.observe_metric("on", "other_metric", &values(500, 1.0, 2.0)),
            None
        );
        assert!(
            !r.measured.contains_key("other_metric"),
            "unguarded metrics are not kept"
        );
        assert_eq!(
            r.observe_metric("off", "latency_ms", &values(5_000, 100.0, 300.0)),
            None
        );
        let step = r
            .observe_metric("on", "latency_ms", &values(300, 500.0, 700.0))
            .expect("rolled back");
        assert_eq!(step.event, "release.rolled_back");
        assert!(step.reason.contains("latency_ms p95"), "{}", step.reason);
        assert_eq!(r.state, ReleaseState::RolledBack);
    }

    fn prometheus_guard() -> PrometheusGuard {
        PrometheusGuard {
            query: "lat{v=\"{{variation}}\"}".into(),
            max_increase: Some(0.2),
            max_increase_abs: None,
        }
    }

    fn reading(at: i64, on: f64, error: Option<&str>) -> Reading {
        Reading {
            at,
            next_at: at + 1_000,
            values: vec![BTreeMap::from([("on".into(), on), ("off".into(), 0.2)])],
            error: error.map(str::to_owned),
        }
    }

    #[test]
    fn a_prometheus_guard_is_read_between_stages_holds_blind_and_rolls_back() {
        let mut r = release(Vec::new(), vec![prometheus_guard()]);
        assert_eq!(r.next_at(), Some(0), "the first reading is due at once");
        assert_eq!(r.tick(0, VARIATIONS, Some(reading(0, 0.2, None))), None);
        assert_eq!(r.next_at(), Some(1_000), "then every interval");
        // At the end of the hold an unreachable Prometheus holds the stage and says why.
        let refused = reading(600_000, 0.0, Some("Prometheus at http://x unreachable"));
        assert_eq!(r.tick(600_000, VARIATIONS, Some(refused)), None);
        assert_eq!(r.percent(), 1);
        let reason = r.reason.clone().unwrap();
        assert!(
            reason.contains("holding 1%") && reason.contains("unreachable"),
            "{reason}"
        );
        // Without a Prometheus configured, the same.
        assert_eq!(r.tick(601_000, VARIATIONS, None), None);
        assert!(r.reason.as_deref().unwrap().contains("--prometheus-url"));
        let step = r
            .tick(661_000, VARIATIONS, Some(reading(661_000, 0.3, None)))
            .expect("regression");
        assert_eq!(step.event, "release.rolled_back");
        assert!(step.reason.contains("0.3000 vs 0.2000"), "{}", step.reason);
    }

    #[test]
    fn the_compared_variations_are_the_released_one_and_the_baselines() {
        let r = release(Vec::new(), Vec::new());
        assert_eq!(
            r.compared_variations(&["off", "on", "unused"]),
            [("on".to_owned(), 1), ("off".to_owned(), 0)]
        );
    }
}
